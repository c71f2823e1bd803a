// handler.cpp — the asynchronous steps of one request. A RequestFlow holds a request's state while
// Redis and SPF answer, and reads in the order it runs: lists → greylisting (inbound) → quota
// (SASL users); each step ends in finish() or starts the next one. The state each check keeps in
// Redis is behind its store (greylist_store.hpp); what the answers mean is decision.hpp.
#include "policyd/handler.hpp"

#include <boost/asio/io_context.hpp>

#include <algorithm>
#include <chrono>

#include "common/clock.hpp"
#include "common/log.hpp"
#include "common/scripts.hpp"
#include "policyd/decision.hpp"
#include "policyd/metrics.hpp"
#include "policyd/quota.hpp"
#include "policyd/spf_service.hpp"

namespace postwarden::policy {

namespace {

// The quota script, hashed once per process (EVALSHA sends the hash).
const redis::Script& quota_script() {
    static const redis::Script script(std::string(script_text("quota")));
    return script;
}

// END-OF-MESSAGE's recipient_count; -1 when absent or not a number.
long recipient_count_of(const Request& request) {
    auto n = whole_number(request.get("recipient_count"));
    return n && *n >= 0 ? *n : -1;
}

struct RequestFlow : std::enable_shared_from_this<RequestFlow> {
    redis::Client& redis;
    SpfService& spf;
    ListCache& lists;
    ListKeys& list_keys;
    GreylistStore& greylist;
    QuotaState& quota;
    std::shared_ptr<const Config> config;
    Facts facts;
    std::function<void(std::string)> reply;

    std::optional<ListPlan> plan;  // views into facts
    std::vector<std::vector<bool>> hits;
    bool lists_failed = false;
    long recipient_count = -1;  // END-OF-MESSAGE only

    RequestFlow(redis::Client& r, SpfService& s, ListCache& l, ListKeys& k, GreylistStore& g,
                QuotaState& q, std::shared_ptr<const Config> c, Facts f,
                std::function<void(std::string)> cb)
        : redis(r),
          spf(s),
          lists(l),
          list_keys(k),
          greylist(g),
          quota(q),
          config(std::move(c)),
          facts(std::move(f)),
          reply(std::move(cb)) {}

    void finish(const Decision& d) {
        count_decision(d.action, d.reason);
        log::info(log_line(facts, d));
        reply(d.action);
    }

    void start_lists();
    void lists_done();
    void after_lists(const ListOutcome& outcome);
    void start_greylist();
    void run_greylist(const std::string& spf_domain, std::string spf_detail);
    void greylist_failed();
    void finish_greylist(const GreylistOutcome& outcome, const std::string& spf_detail);
    void start_quota();
    void run_reserve(std::vector<QuotaWindow> limits);
    void run_reserve_script(std::vector<QuotaWindow> limits, long long now, Undo undo,
                            ReserveTransaction t);
    void run_commit(std::vector<QuotaWindow> limits);
    void run_commit_script(std::vector<QuotaWindow> limits, long long done);
    void finish_commit(const CommitOutcome& outcome);
    void write_block(std::string reason, Decision decision);
    void quota_failed();
};

// All list lookups of a request in one go: from memory while the list cache tracks the lists,
// otherwise in one pipelined batch (list_cache.hpp).
void RequestFlow::start_lists() {
    plan.emplace(list_subject(facts), *config, &list_keys);
    if (plan->empty()) return after_lists({});
    std::vector<ListCache::Query> asked;
    asked.reserve(plan->size());
    for (const auto& q : *plan)
        asked.push_back({q.key, q.members, q.client});
    lists.lookup(asked, [self = shared_from_this()](bool ok, std::vector<std::vector<bool>> h) {
        self->lists_failed = !ok;
        self->hits = std::move(h);
        self->lists_done();
    });
}

void RequestFlow::lists_done() {
    if (lists_failed)
        return finish(lists_unavailable_decision(facts, quota_applies(facts, *config), *config));
    after_lists(evaluate_lists(plan->queries(), hits, facts.outbound));
}

void RequestFlow::after_lists(const ListOutcome& outcome) {
    if (outcome.verdict != ListVerdict::none && outcome.verdict != ListVerdict::allow)
        return finish(list_decision(outcome, *config));
    // Outbound allow-list entries do not skip the quota (SPEC §4).
    if (facts.outbound && quota_applies(facts, *config)) return start_quota();
    if (facts.outbound)
        return finish(dunno("outbound", outcome.matched.empty() ? "" : "list=" + outcome.matched));
    if (outcome.verdict == ListVerdict::allow) return finish(list_decision(outcome, *config));
    start_greylist();
}

void RequestFlow::start_greylist() {
    if (!config->greylist.enabled) return finish(dunno("greylist-off"));
    if (!facts.client) return run_greylist("", "");
    spf.check(facts.client->to_string(), facts.sender, facts.helo,
              [self = shared_from_this()](spf::Outcome o) {
                  std::string detail = "spf=" + std::string(spf::to_string(o.result));
                  bool pass = o.result == spf::Result::pass && !o.domain.empty();
                  if (pass) detail += " spf_domain=" + o.domain;
                  if (pass && self->config->greylist.trust_authenticated)
                      return self->finish(dunno("spf-handoff", detail));
                  self->run_greylist(pass ? o.domain : "", std::move(detail));
              });
}

// The greylist store answers (greylist_store.hpp): from memory, by first sight, or by the script.
void RequestFlow::run_greylist(const std::string& spf_domain, std::string spf_detail) {
    auto keys =
        postwarden::greylist_keys(facts.client, facts.sender, facts.recipient, spf_domain, *config);
    greylist.check(std::move(keys), config,
                   [self = shared_from_this(),
                    spf_detail = std::move(spf_detail)](std::optional<GreylistOutcome> outcome) {
                       if (!outcome) return self->greylist_failed();
                       self->finish_greylist(*outcome, spf_detail);
                   });
}

void RequestFlow::greylist_failed() {
    finish(unavailable_decision(config->greylist.fail_mode, "greylist", *config));
}

void RequestFlow::finish_greylist(const GreylistOutcome& outcome, const std::string& spf_detail) {
    auto d = greylist_decision(outcome, *config);
    if (!spf_detail.empty()) d.detail = d.detail.empty() ? spf_detail : d.detail + " " + spf_detail;
    finish(d);
}

// The per-user override is read before the script, from the list cache (Redis reports its
// changes; a GET only when it is not cached): it lies outside the user's hash tag (one Redis
// Cluster slot per script), and exactness does not depend on it, since the script counts
// atomically against whatever windows it is given.
void RequestFlow::start_quota() {
    auto key = quota_override_key(facts.login, *config);
    lists.get(key, [self = shared_from_this(), key](bool ok, const redis::Value& value) {
        if (!ok) return self->quota_failed();
        std::optional<std::string> text;
        if (value.type == redis::Value::Type::string) text = value.str;
        if (value.is_error()) text = value.str;  // not a string: reported as invalid below
        auto limits = effective_limits(text, *self->config);
        if (!limits.warning.empty())
            log::warning(key + ": " + limits.warning + "; [quota] limits apply");
        if (self->facts.state == "RCPT") return self->run_reserve(std::move(limits.windows));
        self->run_commit(std::move(limits.windows));
    });
}

// The usual reservation is one transaction (reserve_transaction); whatever else it finds, the
// script decides, one round trip later, after taking back what the transaction wrote. Without
// limits only auto_block counts, and the script does it all. A key the transaction made anew
// without its TTL gets it from a PEXPIRE sent at once; the decision does not wait for it.
void RequestFlow::run_reserve(std::vector<QuotaWindow> limits) {
    auto now = unix_now_ms();
    if (limits.empty()) return run_reserve_script(std::move(limits), now, Undo::nothing, {});
    auto transaction = reserve_transaction(facts, limits, now, *config, &quota.memo);
    const auto commands = std::move(transaction.commands);
    redis.transaction(commands, [self = shared_from_this(), limits, now,
                                 t = std::move(transaction)](redis::Reply r) mutable {
        if (!r.ok) return self->quota_failed();
        auto read = read_reserve_transaction(r.value, t, limits, now, *self->config);
        if (!read) {
            log::warning("quota transaction: unexpected reply " +
                         (r.value.is_error() ? r.value.str : "shape"));
            return self->quota_failed();
        }
        for (auto& argv : note_transaction(self->quota.memo, t, *read)) {
            auto key = argv[1];
            self->redis.command(std::move(argv), [key](redis::Reply e) {
                if (!e.ok || e.value.is_error())
                    log::warning(key + ": TTL not set (" + (e.ok ? e.value.str : e.error) +
                                 "); the user's next recipient sets it");
            });
        }
        if (read->reserved) {
            self->quota.reservations.add(t.held, t.member, now);
            return self->finish(quota_decision(*read->reserved, limits, *self->config));
        }
        self->run_reserve_script(std::move(limits), now, read->undo, std::move(t));
    });
}

// t: the transaction that came first, whose reservation is remembered for the commit when the
// script makes it (none without limits: then nothing is reserved, only auto_block counts).
void RequestFlow::run_reserve_script(std::vector<QuotaWindow> limits, long long now, Undo undo,
                                     ReserveTransaction t) {
    auto call = reserve_call(facts, limits, now, *config, undo);
    redis.eval(quota_script(), std::move(call.keys), std::move(call.args),
               [self = shared_from_this(), limits, now, held = std::move(t.held),
                member = std::move(t.member)](redis::Reply r) {
                   auto outcome = r.ok ? parse_reserve_reply(r.value) : std::nullopt;
                   if (!outcome) {
                       if (r.ok) log::warning("quota script: unexpected reply " + r.value.str);
                       return self->quota_failed();
                   }
                   if (outcome->verdict == QuotaVerdict::reserved && !member.empty())
                       self->quota.reservations.add(held, member, now);
                   auto d = quota_decision(*outcome, limits, *self->config);
                   if (outcome->verdict != QuotaVerdict::blocked) return self->finish(d);
                   self->write_block(block_reason(*outcome, *self->config, now), d);
               });
}

// auto_block: the reason first, then the login, so a blocked login never lacks its reason. These
// operator keys are not under the user's hash tag, so they are written here, not in the script;
// both writes are idempotent. The script decided: the reply is the block whatever they answer.
void RequestFlow::write_block(std::string reason, Decision decision) {
    const auto& p = config->redis.prefix;
    redis.command({"HSET", p + "block:why", facts.login, std::move(reason)},
                  [self = shared_from_this(), decision, p](redis::Reply r) {
                      if (!r.ok || r.value.is_error())
                          log::error("auto_block of " + self->facts.login +
                                     ": block:why not written: " + r.error + r.value.str);
                      self->redis.command(
                          {"SADD", p + "block:login", self->facts.login},
                          [self, decision](redis::Reply r) {
                              if (!r.ok || r.value.is_error())
                                  log::error("auto_block of " + self->facts.login +
                                             ": block:login not written: " + r.error + r.value.str);
                              self->finish(decision);
                          });
                  });
}

// The usual commit is one transaction (commit_transaction) that takes the reservations this
// process made; the script commits whatever else the message holds, and every commit it cannot
// take. done: what the transaction committed before the script, for the log.
void RequestFlow::run_commit(std::vector<QuotaWindow> limits) {
    auto now = unix_now_ms();
    auto transaction = commit_transaction(facts, recipient_count,
                                          quota.reservations.take(facts, *config), now, *config);
    if (!transaction) return run_commit_script(std::move(limits), 0);
    redis.transaction(*transaction, [self = shared_from_this(),
                                     limits = std::move(limits)](redis::Reply r) mutable {
        auto read = r.ok ? read_commit_transaction(r.value) : std::nullopt;
        if (!read) {
            if (r.ok)
                log::warning("quota commit transaction: unexpected reply " +
                             (r.value.is_error() ? r.value.str : "shape"));
            return self->quota_failed();
        }
        if (read->others) return self->run_commit_script(std::move(limits), read->committed);
        self->finish_commit({read->committed, 0});
    });
}

void RequestFlow::run_commit_script(std::vector<QuotaWindow> limits, long long done) {
    // Postfix accepted recipient_count; done of them are committed already.
    long left = recipient_count < 0 ? -1 : std::max(0L, recipient_count - static_cast<long>(done));
    auto call = commit_call(facts, left, limits, unix_now_ms(), *config);
    redis.eval(quota_script(), std::move(call.keys), std::move(call.args),
               [self = shared_from_this(), done](redis::Reply r) {
                   auto outcome = r.ok ? parse_commit_reply(r.value) : std::nullopt;
                   if (!outcome) {
                       if (r.ok) log::warning("quota commit: unexpected reply " + r.value.str);
                       return self->quota_failed();
                   }
                   outcome->committed += done;
                   self->finish_commit(*outcome);
               });
}

void RequestFlow::finish_commit(const CommitOutcome& outcome) {
    finish(dunno("quota-commit", commit_detail(outcome)));
}

// At RCPT per [quota] fail_mode. END-OF-MESSAGE is always DUNNO (SPEC §4): the reservations keep
// counting until reserve_ttl, so an uncommitted message still holds its room meanwhile.
void RequestFlow::quota_failed() {
    if (facts.state != "RCPT") return finish(dunno("quota-unavailable", "commit=failed"));
    finish(unavailable_decision(config->quota.fail_mode, "quota", *config));
}

}  // namespace

Handler::Handler(redis::Client& redis, SpfService& spf, ListCache& lists)
    : redis_(redis), spf_(spf), lists_(lists), greylist_(redis) {}

void Handler::handle(const Request& request, std::shared_ptr<const Config> config,
                     std::function<void(std::string)> reply) {
    auto facts = facts_of(request, *config);
    count_request(facts.state);
    if (request.get("request") != "smtpd_access_policy") {
        log::warning("request type '" + log::printable(request.get("request")) +
                     "' is not smtpd_access_policy: answered DUNNO");
        return reply("DUNNO");
    }
    // Only RCPT decides; END-OF-MESSAGE commits quota reservations and answers DUNNO (SPEC §4).
    if (facts.state == "END-OF-MESSAGE" && quota_applies(facts, *config)) {
        auto flow =
            std::make_shared<RequestFlow>(redis_, spf_, lists_, list_keys_, greylist_, quota_,
                                          std::move(config), std::move(facts), std::move(reply));
        flow->recipient_count = recipient_count_of(request);
        return flow->start_quota();
    }
    if (facts.state != "RCPT") return reply("DUNNO");
    auto flow =
        std::make_shared<RequestFlow>(redis_, spf_, lists_, list_keys_, greylist_, quota_,
                                      std::move(config), std::move(facts), std::move(reply));
    flow->start_lists();
}

}  // namespace postwarden::policy
