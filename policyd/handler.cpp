// handler.cpp — the asynchronous steps of one request. A RequestFlow holds a request's state while
// Redis and SPF answer, and reads in the order it runs: lists → greylisting (inbound) → quota
// (SASL users); each step ends in finish() or starts the next one. The state each check keeps in
// Redis is behind its store (greylist_store.hpp, quota_store.hpp); what the answers mean is
// decision.hpp. No Redis command is spelled here.
#include "policyd/handler.hpp"

#include <boost/asio/io_context.hpp>

#include "common/log.hpp"
#include "policyd/decision.hpp"
#include "policyd/metrics.hpp"
#include "policyd/quota.hpp"
#include "policyd/spf_service.hpp"

namespace postwarden::policy {

namespace {

// END-OF-MESSAGE's recipient_count; -1 when absent or not a number.
long recipient_count_of(const Request& request) {
    auto n = whole_number(request.get("recipient_count"));
    return n && *n >= 0 ? *n : -1;
}

struct RequestFlow : std::enable_shared_from_this<RequestFlow> {
    SpfService& spf;
    ListCache& lists;
    ListKeys& list_keys;
    GreylistStore& greylist;
    QuotaStore& quota;
    std::shared_ptr<const Config> config;
    Facts facts;
    std::function<void(std::string)> reply;

    std::optional<ListPlan> plan;  // views into facts
    std::vector<std::vector<bool>> hits;
    bool lists_failed = false;
    long recipient_count = -1;        // END-OF-MESSAGE only
    std::vector<QuotaWindow> limits;  // the user's, read in start_quota

    RequestFlow(SpfService& s, ListCache& l, ListKeys& k, GreylistStore& g, QuotaStore& q,
                std::shared_ptr<const Config> c, Facts f, std::function<void(std::string)> cb)
        : spf(s),
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
    void run_reserve();
    void run_commit();
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
        self->limits = std::move(limits.windows);
        if (self->facts.state == "RCPT") return self->run_reserve();
        self->run_commit();
    });
}

// The quota store answers (quota_store.hpp); limits and facts stay here, in the flow, while it
// does.
void RequestFlow::run_reserve() {
    quota.reserve(facts, limits, *config,
                  [self = shared_from_this()](std::optional<QuotaOutcome> outcome) {
                      if (!outcome) return self->quota_failed();
                      self->finish(quota_decision(*outcome, self->limits, *self->config));
                  });
}

void RequestFlow::run_commit() {
    quota.commit(facts, recipient_count, limits, *config,
                 [self = shared_from_this()](std::optional<CommitOutcome> outcome) {
                     if (!outcome) return self->quota_failed();
                     self->finish(dunno("quota-commit", commit_detail(*outcome)));
                 });
}

// At RCPT per [quota] fail_mode. END-OF-MESSAGE is always DUNNO (SPEC §4): the reservations keep
// counting until reserve_ttl, so an uncommitted message still holds its room meanwhile.
void RequestFlow::quota_failed() {
    if (facts.state != "RCPT") return finish(dunno("quota-unavailable", "commit=failed"));
    finish(unavailable_decision(config->quota.fail_mode, "quota", *config));
}

}  // namespace

Handler::Handler(redis::Client& redis, SpfService& spf, ListCache& lists)
    : spf_(spf), lists_(lists), greylist_(redis), quota_(redis) {}

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
            std::make_shared<RequestFlow>(spf_, lists_, list_keys_, greylist_, quota_,
                                          std::move(config), std::move(facts), std::move(reply));
        flow->recipient_count = recipient_count_of(request);
        return flow->start_quota();
    }
    if (facts.state != "RCPT") return reply("DUNNO");
    auto flow =
        std::make_shared<RequestFlow>(spf_, lists_, list_keys_, greylist_, quota_,
                                      std::move(config), std::move(facts), std::move(reply));
    flow->start_lists();
}

}  // namespace postwarden::policy
