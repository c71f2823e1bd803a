// greylist_store.cpp — the memo, first sight and greylist.lua behind GreylistStore::check(); the
// invariants of each shortcut are in greylist_store.hpp.
#include "policyd/greylist_store.hpp"

#include <string>

#include "common/log.hpp"
#include "common/redis/scripts.hpp"

namespace postwarden::policy {

namespace {

// SCARD's reply; nullopt for an error (a key of another type).
std::optional<long> members_of(const redis::Value& value) {
    if (value.type != redis::Value::Type::integer) return std::nullopt;
    return static_cast<long>(value.integer);
}

enum class FirstSight { deferred, undo_then_script, script };

// What the first-sight command's reply means (greylist_store.hpp). written: it answered nil;
// threshold: greylist_auto_allow() of the keys; client_count: SCARD's answer, if one was asked.
FirstSight read_first_sight(bool written, long threshold, std::optional<long> client_count) {
    const bool below = threshold <= 0 || (client_count && *client_count < threshold);
    if (written && below) return FirstSight::deferred;
    return written ? FirstSight::undo_then_script : FirstSight::script;
}

}  // namespace

struct GreylistStore::Ask {
    GreylistKeys keys;
    std::shared_ptr<const Config> config;
    Done done;
    std::optional<long> client_count;  // the client's auto-allow domains, read before first sight
};

GreylistStore::GreylistStore(redis::Client& redis)
    : redis_(redis), script_(std::string(script_text("greylist"))) {}

void GreylistStore::ask(GreylistKeys keys, const std::shared_ptr<const Config>& config, Done done) {
    auto a = std::make_shared<Ask>(Ask{std::move(keys), config, std::move(done), std::nullopt});
    if (!greylist_first_sight_applies(*config) ||
        std::chrono::steady_clock::now() < first_sight_off_until_)
        return run_script(std::move(a));
    // The script reads the client's count first. Here the SCARD goes out with the SET, in one
    // write (one round trip); its reply arrives first and decides what the SET's means.
    if (greylist_auto_allow(a->keys, *config) > 0)
        redis_.command({"SCARD", a->keys.client}, [a](redis::Reply r) {
            a->client_count = r.ok ? members_of(r.value) : std::nullopt;
        });
    first_sight(std::move(a));
}

void GreylistStore::first_sight(std::shared_ptr<Ask> a) {
    auto command = greylist_first_sight_command(a->keys, unix_now_ms(), *a->config);
    redis_.command(std::move(command), [this, a](redis::Reply r) {
        if (!r.ok) return a->done(std::nullopt);
        const bool written = r.value.type == redis::Value::Type::nil;
        auto sight =
            read_first_sight(written, greylist_auto_allow(a->keys, *a->config), a->client_count);
        if (sight == FirstSight::deferred)
            return a->done(GreylistOutcome{GreylistVerdict::defer_new, a->config->greylist.delay});
        if (r.value.is_error() && r.value.str.find("syntax") != std::string::npos)
            first_sight_refused(r.value.str);
        if (sight == FirstSight::undo_then_script)
            redis_.command({"DEL", a->keys.triplet}, [](redis::Reply) {});
        run_script(a);
    });
}

// A Redis before 7.0 refuses NX with GET: the script does it all for ten minutes.
void GreylistStore::first_sight_refused(const std::string& error) {
    auto now = std::chrono::steady_clock::now();
    if (now >= first_sight_off_until_)
        log::warning("Redis refused SET NX GET (" + error +
                     "): new triplets go through the greylist script for 10 minutes");
    first_sight_off_until_ = now + std::chrono::minutes(10);
}

void GreylistStore::run_script(std::shared_ptr<Ask> a) {
    redis_.eval(script_, {a->keys.triplet, a->keys.client},
                greylist_args(a->keys, unix_now_ms(), *a->config), [this, a](redis::Reply r) {
                    std::optional<GreylistOutcome> outcome;
                    const auto& v = r.value;
                    if (r.ok && v.type == redis::Value::Type::array && v.elements.size() == 2)
                        outcome = parse_greylist_reply(v.elements[0].str, v.elements[1].integer);
                    if (!outcome) {
                        if (r.ok) log::warning("greylist script: unexpected reply " + v.str);
                        return a->done(std::nullopt);
                    }
                    memo_.remember(a->keys, *outcome, *a->config, unix_now_ms());
                    a->done(outcome);
                });
}

}  // namespace postwarden::policy
