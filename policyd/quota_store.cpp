// quota_store.cpp — the reservation and commit round trips behind QuotaStore; the order of
// commands and what may be left out are in quota_store.hpp.
#include "policyd/quota_store.hpp"

#include <algorithm>
#include <string>
#include <utility>

#include "common/clock.hpp"
#include "common/log.hpp"
#include "common/redis/scripts.hpp"

namespace postwarden::policy {

// Pointers, not copies: borrowed from the caller until done (quota_store.hpp).
struct QuotaStore::Reserve {
    const Facts* facts;
    const std::vector<QuotaWindow>* limits;
    const Config* config;
    long long now;
    Reserved done;
};

struct QuotaStore::Commit {
    const Facts* facts;
    long recipient_count;
    const std::vector<QuotaWindow>* limits;
    const Config* config;
    Committed done;
};

QuotaStore::QuotaStore(redis::Client& redis)
    : redis_(redis), script_(std::string(script_text("quota"))) {}

void QuotaStore::reserve(const Facts& facts, const std::vector<QuotaWindow>& limits,
                         const Config& config, Reserved done) {
    Reserve r{&facts, &limits, &config, unix_now_ms(), std::move(done)};
    if (limits.empty()) return reserve_script(std::move(r), Undo::nothing, {});
    auto transaction = reserve_transaction(facts, limits, r.now, config, &memo_);
    const auto commands = std::move(transaction.commands);
    redis_.transaction(
        commands, [this, r = std::move(r), t = std::move(transaction)](redis::Reply reply) mutable {
            if (!reply.ok) return r.done(std::nullopt);
            auto read = read_reserve_transaction(reply.value, t, *r.limits, r.now, *r.config);
            if (!read) {
                log::warning("quota transaction: unexpected reply " +
                             (reply.value.is_error() ? reply.value.str : "shape"));
                return r.done(std::nullopt);
            }
            set_ttls(note_transaction(memo_, t, *read));
            if (read->reserved) {
                reservations_.add(t.held, t.member, r.now);
                return r.done(read->reserved);
            }
            reserve_script(std::move(r), read->undo, std::move(t));
        });
}

// The PEXPIREs of keys the transaction may have made anew; nothing waits for them.
void QuotaStore::set_ttls(std::vector<std::vector<std::string>> pexpires) {
    for (auto& argv : pexpires) {
        auto key = argv[1];
        redis_.command(std::move(argv), [key](redis::Reply e) {
            if (!e.ok || e.value.is_error())
                log::warning(key + ": TTL not set (" + (e.ok ? e.value.str : e.error) +
                             "); the user's next recipient sets it");
        });
    }
}

// t: the transaction that came first, whose reservation is remembered for the commit when the
// script makes it (none without limits: then nothing is reserved, only auto_block counts).
void QuotaStore::reserve_script(Reserve r, Undo undo, ReserveTransaction t) {
    auto call = reserve_call(*r.facts, *r.limits, r.now, *r.config, undo);
    redis_.eval(script_, std::move(call.keys), std::move(call.args),
                [this, r = std::move(r), held = std::move(t.held),
                 member = std::move(t.member)](redis::Reply reply) mutable {
                    auto outcome = reply.ok ? parse_reserve_reply(reply.value) : std::nullopt;
                    if (!outcome) {
                        if (reply.ok)
                            log::warning("quota script: unexpected reply " + reply.value.str);
                        return r.done(std::nullopt);
                    }
                    if (outcome->verdict == QuotaVerdict::reserved && !member.empty())
                        reservations_.add(held, member, r.now);
                    if (outcome->verdict != QuotaVerdict::blocked) return r.done(outcome);
                    write_block(std::move(r), *outcome);
                });
}

// auto_block: the reason first, then the login (quota_store.hpp).
void QuotaStore::write_block(Reserve r, QuotaOutcome outcome) {
    std::vector<std::string> hset{"HSET", r.config->redis.prefix + "block:why", r.facts->login,
                                  block_reason(outcome, *r.config, r.now)};
    redis_.command(std::move(hset), [this, r = std::move(r), outcome](redis::Reply reply) mutable {
        const auto& login = r.facts->login;
        if (!reply.ok || reply.value.is_error())
            log::error("auto_block of " + login + ": block:why not written: " + reply.error +
                       reply.value.str);
        auto sadd = std::vector<std::string>{"SADD", r.config->redis.prefix + "block:login", login};
        redis_.command(std::move(sadd), [r = std::move(r), outcome](redis::Reply reply) mutable {
            if (!reply.ok || reply.value.is_error())
                log::error("auto_block of " + r.facts->login +
                           ": block:login not written: " + reply.error + reply.value.str);
            r.done(outcome);
        });
    });
}

void QuotaStore::commit(const Facts& facts, long recipient_count,
                        const std::vector<QuotaWindow>& limits, const Config& config,
                        Committed done) {
    Commit c{&facts, recipient_count, &limits, &config, std::move(done)};
    auto transaction = commit_transaction(facts, recipient_count, reservations_.take(facts, config),
                                          unix_now_ms(), config);
    if (!transaction) return commit_script(std::move(c), 0);
    redis_.transaction(*transaction, [this, c = std::move(c)](redis::Reply reply) mutable {
        auto read = reply.ok ? read_commit_transaction(reply.value) : std::nullopt;
        if (!read) {
            if (reply.ok)
                log::warning("quota commit transaction: unexpected reply " +
                             (reply.value.is_error() ? reply.value.str : "shape"));
            return c.done(std::nullopt);
        }
        if (read->others) return commit_script(std::move(c), read->committed);
        c.done(CommitOutcome{read->committed, 0});
    });
}

// done: what the transaction committed before the script; the outcome counts it too.
void QuotaStore::commit_script(Commit c, long long done) {
    // Postfix accepted recipient_count; done of them are committed already.
    long left =
        c.recipient_count < 0 ? -1 : std::max(0L, c.recipient_count - static_cast<long>(done));
    auto call = commit_call(*c.facts, left, *c.limits, unix_now_ms(), *c.config);
    redis_.eval(script_, std::move(call.keys), std::move(call.args),
                [c = std::move(c), done](redis::Reply reply) mutable {
                    auto outcome = reply.ok ? parse_commit_reply(reply.value) : std::nullopt;
                    if (!outcome) {
                        if (reply.ok)
                            log::warning("quota commit: unexpected reply " + reply.value.str);
                        return c.done(std::nullopt);
                    }
                    outcome->committed += done;
                    c.done(outcome);
                });
}

}  // namespace postwarden::policy
