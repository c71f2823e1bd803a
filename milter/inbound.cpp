// inbound.cpp — the end of an inbound message (SPEC §5), the shell around inbound_decision.hpp:
// gather the facts (DKIM verdicts, DMARC for every From domain: DNS), decide, look up
// greylisting (Redis) when the decision asks for it and decide again, then log the one line,
// count the metrics and, for mail accepted as it is, the client's auto-allow.
#include <random>

#include "common/clock.hpp"
#include "common/log.hpp"
#include "milter/checks.hpp"
#include "milter/inbound_decision.hpp"
#include "milter/metrics.hpp"
#include "milter/session.hpp"
#include "milter/verdict.hpp"

namespace postwarden::milter {

namespace {

int random_percent() {
    thread_local std::mt19937 rng{std::random_device{}()};
    return std::uniform_int_distribution<int>(0, 99)(rng);
}

dmarc::Identifiers identifiers(const std::optional<spf::Outcome>& spf,
                               const std::vector<dkim::Signature>& signatures) {
    dmarc::Identifiers ids;
    if (spf) {
        ids.spf_pass = spf->result == spf::Result::pass;
        ids.spf_temperror = spf->result == spf::Result::temperror;
        ids.spf_domain = spf->domain;
    }
    for (const auto& s : signatures) {
        if (s.result == dkim::Result::pass) ids.dkim_pass_domains.push_back(s.domain);
        if (s.result == dkim::Result::temperror) ids.dkim_temperror = true;
    }
    return ids;
}

// DMARC for every From domain: two TXT lookups each.
std::vector<dmarc::Evaluation> evaluate_dmarc(const Services& services, const Facts& f) {
    auto ids = identifiers(f.spf_mailfrom, f.signatures);
    auto lookup = [&services](const std::string& name) {
        return services.resolver.query(name, dns::Type::txt);
    };
    std::vector<dmarc::Evaluation> evaluations;
    int draw = random_percent();  // one draw per message, so pct applies to messages
    for (const auto& domain : f.from.domains)
        evaluations.push_back(dmarc::evaluate(domain, dmarc::discover(domain, lookup, services.psl),
                                              ids, services.psl, draw));
    return evaluations;
}

GreylistFacts::Deferred deferred(CheckResult r) {
    switch (r) {
        case CheckResult::yes:
            return GreylistFacts::Deferred::yes;
        case CheckResult::unavailable:
            return GreylistFacts::Deferred::unavailable;
        case CheckResult::no:
            break;
    }
    return GreylistFacts::Deferred::no;
}

}  // namespace

// What the message says and DNS answers: the DKIM verdicts (key lookups) and DMARC.
Facts Session::inbound_facts() {
    auto& m = message_;
    Facts f;
    f.queue_id = m.queue_id;
    f.client = client_;
    f.sender = m.sender;
    f.spf_mailfrom = m.spf_mailfrom;
    f.spf_helo = m.spf_helo;
    f.signatures = m.dkim ? m.dkim->finish() : std::vector<dkim::Signature>{};
    f.from = read_from(m.from_fields, m.from_count, m.from_too_long);
    f.evaluations = evaluate_dmarc(services_, f);
    auto domains = f.from.domains;
    if (spf_passed(f)) domains.push_back(f.spf_mailfrom->domain);
    f.dkim_aligned = dkim_aligned_with(f.signatures, domains, services_.psl);
    f.forged_auth_results = m.forged_auth_results;
    return f;
}

// Adds the answer to f; returns the network triplet that accepting the message would count.
std::optional<GreylistKeys> Session::look_up(Decision::Lookup what, Facts& f) {
    const auto& config = *config_;
    if (what == Decision::Lookup::auto_allow) {
        auto countable =
            countable_passed(services_, config, client_, f.sender, message_.recipients);
        f.auto_allow_countable = countable.has_value();
        return countable;
    }
    auto g = greylist_message(services_, config, client_, f.sender, message_.recipients,
                              spf_passed(f) ? f.spf_mailfrom->domain : "", unix_now_ms());
    f.greylist = GreylistFacts{deferred(g.deferred), g.detail, g.countable.has_value()};
    return g.countable;
}

// Gather, decide; when the decision asks for Redis, look it up and decide again (the second
// decision has its answer and asks for nothing more); then count, log and answer.
Effects Session::end_of_message_inbound() {
    auto facts = inbound_facts();
    count_verdicts(facts.spf_mailfrom, facts.signatures, facts.evaluations);
    auto decision = decide(facts, *config_);
    std::optional<GreylistKeys> countable;
    if (decision.lookup != Decision::Lookup::none) {
        countable = look_up(decision.lookup, facts);
        decision = decide(facts, *config_);
    }
    count_action(decision.action, decision.reason);
    log::info(log_line(facts, decision));
    if (decision.count_auto_allow && countable)
        count_accepted(services_, *config_, *countable, facts.sender, unix_now_ms());
    return decision.effects;
}

}  // namespace postwarden::milter
