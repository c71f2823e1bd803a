// handler.cpp — the asynchronous steps of one decision. A Job holds the request's state while
// Redis and SPF answer; each step ends in finish() or starts the next step.
#include "policyd/handler.hpp"

#include <boost/asio/io_context.hpp>

#include <chrono>

#include "common/log.hpp"
#include "common/scripts.hpp"
#include "policyd/decision.hpp"
#include "policyd/spf_service.hpp"

namespace postwarden::policy {

namespace {

long long unix_now_ms() {
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

// SMISMEMBER's reply as booleans; nullopt when it is not an array of integers.
std::optional<std::vector<bool>> membership(const redis::Value& v, std::size_t expected) {
    if (v.type != redis::Value::Type::array || v.elements.size() != expected) return std::nullopt;
    std::vector<bool> out;
    for (const auto& e : v.elements) {
        if (e.type != redis::Value::Type::integer) return std::nullopt;
        out.push_back(e.integer != 0);
    }
    return out;
}

struct Job : std::enable_shared_from_this<Job> {
    redis::Client& redis;
    SpfService& spf;
    const redis::Script& greylist;
    std::shared_ptr<const Config> config;
    Facts facts;
    std::function<void(std::string)> reply;

    std::vector<ListQuery> queries;
    std::vector<std::vector<bool>> hits;
    std::size_t outstanding = 0;
    bool lists_failed = false;

    Job(redis::Client& r, SpfService& s, const redis::Script& g, std::shared_ptr<const Config> c,
        Facts f, std::function<void(std::string)> cb)
        : redis(r),
          spf(s),
          greylist(g),
          config(std::move(c)),
          facts(std::move(f)),
          reply(std::move(cb)) {}

    void finish(const Decision& d) {
        log::info(log_line(facts, d));
        reply(d.action);
    }

    void start_lists();
    void lists_done();
    void after_lists(const ListOutcome& outcome);
    void start_greylist();
    void run_greylist(const std::string& spf_domain, const std::string& spf_detail);
};

// All list lookups of a request go out in one pipelined batch.
void Job::start_lists() {
    queries = plan_lists(facts, *config);
    hits.assign(queries.size(), {});
    outstanding = queries.size();
    if (queries.empty()) return after_lists({});
    for (std::size_t i = 0; i < queries.size(); ++i) {
        std::vector<std::string> argv{"SMISMEMBER", queries[i].key};
        argv.insert(argv.end(), queries[i].members.begin(), queries[i].members.end());
        redis.command(std::move(argv), [self = shared_from_this(), i](redis::Reply r) {
            if (!r.ok) {
                self->lists_failed = true;
            } else if (auto m = membership(r.value, self->queries[i].members.size())) {
                self->hits[i] = std::move(*m);
            } else {
                // An operator wrote something else than a SET under a list's name: the list is
                // ignored and said so, rather than failing every request.
                log::warning("list " + self->queries[i].key + " is not a set: " + r.value.str);
            }
            if (--self->outstanding == 0) self->lists_done();
        });
    }
}

void Job::lists_done() {
    if (lists_failed) {
        if (config->lists.fail_mode == FailMode::closed)
            return finish(unavailable_decision(FailMode::closed, "lists", *config));
        // Redis did not answer: greylisting, on the same Redis, would only wait out another
        // timeout. Answer for it now, so the request stays within one timeout_ms.
        if (facts.outbound) return finish(unavailable_decision(FailMode::open, "lists", *config));
        return finish(unavailable_decision(
            config->greylist.enabled ? config->greylist.fail_mode : FailMode::open,
            config->greylist.enabled ? "greylist" : "lists", *config));
    }
    after_lists(evaluate_lists(queries, hits, facts.outbound));
}

void Job::after_lists(const ListOutcome& outcome) {
    if (outcome.verdict != ListVerdict::none && outcome.verdict != ListVerdict::allow)
        return finish(list_decision(outcome, *config));
    if (facts.outbound)
        return finish(dunno("outbound", outcome.matched.empty() ? "" : "list=" + outcome.matched));
    if (outcome.verdict == ListVerdict::allow) return finish(list_decision(outcome, *config));
    start_greylist();
}

void Job::start_greylist() {
    if (!config->greylist.enabled) return finish(dunno("greylist-off"));
    if (!facts.client) return run_greylist("", "");
    spf.check(facts.client->to_string(), facts.sender, facts.helo,
              [self = shared_from_this()](spf::Outcome o) {
                  std::string detail = "spf=" + std::string(spf::to_string(o.result));
                  bool pass = o.result == spf::Result::pass && !o.domain.empty();
                  if (pass) detail += " spf_domain=" + o.domain;
                  if (pass && self->config->greylist.trust_authenticated)
                      return self->finish(dunno("spf-handoff", detail));
                  self->run_greylist(pass ? o.domain : "", detail);
              });
}

void Job::run_greylist(const std::string& spf_domain, const std::string& spf_detail) {
    auto keys = greylist_keys(facts.client, facts.sender, facts.recipient, spf_domain, *config);
    redis.eval(greylist, {keys.triplet, keys.client}, greylist_args(unix_now_ms(), *config),
               [self = shared_from_this(), spf_detail](redis::Reply r) {
                   std::optional<GreylistOutcome> outcome;
                   const auto& v = r.value;
                   if (r.ok && v.type == redis::Value::Type::array && v.elements.size() == 2)
                       outcome = parse_greylist_reply(v.elements[0].str, v.elements[1].integer);
                   if (!outcome) {
                       if (r.ok) log::warning("greylist script: unexpected reply " + v.str);
                       return self->finish(unavailable_decision(self->config->greylist.fail_mode,
                                                                "greylist", *self->config));
                   }
                   auto d = greylist_decision(*outcome, *self->config);
                   if (!spf_detail.empty())
                       d.detail = d.detail.empty() ? spf_detail : d.detail + " " + spf_detail;
                   self->finish(d);
               });
}

}  // namespace

Handler::Handler(redis::Client& redis, SpfService& spf)
    : redis_(redis), spf_(spf), greylist_(std::string(script_text("greylist"))) {}

void Handler::handle(const Request& request, std::shared_ptr<const Config> config,
                     std::function<void(std::string)> reply) {
    auto facts = facts_of(request, *config);
    if (request.get("request") != "smtpd_access_policy") {
        log::warning("request type '" + std::string(request.get("request")).substr(0, 64) +
                     "' is not smtpd_access_policy: answered DUNNO");
        return reply("DUNNO");
    }
    // Only RCPT decides; END-OF-MESSAGE will commit quota reservations (SPEC §4).
    if (facts.state != "RCPT") return reply("DUNNO");
    auto job = std::make_shared<Job>(redis_, spf_, greylist_, std::move(config), std::move(facts),
                                     std::move(reply));
    job->start_lists();
}

}  // namespace postwarden::policy
