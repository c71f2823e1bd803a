// inbound.cpp — the end of an inbound message (SPEC §5): DKIM verdicts, DMARC for every From
// domain, enforcement, trusted greylisting (S2), and our one Authentication-Results header.
//
// Order, and why: a permanent DMARC verdict comes before greylisting (no point in making a
// sender retry a message we will refuse); the forged Authentication-Results headers are removed
// and ours is added only when the message is accepted.
#include <random>

#include "common/address.hpp"
#include "common/clock.hpp"
#include "common/log.hpp"
#include "milter/checks.hpp"
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

Effects with_reply(Effects e, Effects::Step step, std::string rcode, std::string xcode,
                   std::string text) {
    e.step = step;
    e.rcode = std::move(rcode);
    e.xcode = std::move(xcode);
    e.text = std::move(text);
    return e;
}

std::string summary(const std::optional<spf::Outcome>& spf,
                    const std::vector<dkim::Signature>& sigs,
                    const std::vector<dmarc::Evaluation>& evals) {
    std::string s = " spf=" + std::string(spf ? spf::to_string(spf->result) : "none");
    std::string dkim = sigs.empty() ? "none" : "";
    for (const auto& g : sigs)
        dkim += (dkim.empty() ? "" : ",") + std::string(dkim::to_string(g.result)) +
                (g.domain.empty() ? "" : ":" + printable(g.domain));
    std::string dm = evals.empty() ? "none" : "";
    for (const auto& e : evals)
        dm += (dm.empty() ? "" : ",") + std::string(dmarc::to_string(e.result)) + ":" +
              printable(e.from_domain);
    return s + " dkim=" + dkim + " dmarc=" + dm;
}

}  // namespace

Effects Session::end_of_message_inbound() {
    const auto& config = *config_;
    auto& m = message_;
    auto signatures = m.dkim ? m.dkim->finish() : std::vector<dkim::Signature>{};
    auto from = read_from(m.from_fields, m.from_count, m.from_too_long);
    auto ids = identifiers(m.spf_mailfrom, signatures);
    auto lookup = [this](const std::string& name) {
        return services_.resolver.query(name, dns::Type::txt);
    };
    std::vector<dmarc::Evaluation> evaluations;
    int draw = random_percent();  // one draw per message, so pct applies to messages
    for (const auto& domain : from.domains)
        evaluations.push_back(dmarc::evaluate(
            domain, dmarc::discover(domain, lookup, services_.psl), ids, services_.psl, draw));

    std::string line = log_prefix() + "client=" + (client_ ? client_->to_string() : "unknown") +
                       " sender=<" + printable(m.sender) + ">" +
                       summary(m.spf_mailfrom, signatures, evaluations);
    auto action = dmarc_action(from, evaluations, config);
    count_verdicts(m.spf_mailfrom, signatures, evaluations);
    Effects e;
    if (action.kind == DmarcAction::Kind::reject) {
        count_action("reject", "dmarc");
        log::info(log_prefix() + "action=reject reason=dmarc " + printable(action.reason) + " " +
                  line.substr(log_prefix().size()));
        std::string text = action.domain.empty()
                               ? "Rejected by DMARC policy: " + printable(action.reason)
                               : "Rejected by DMARC policy for " + printable(action.domain);
        return with_reply(e, Effects::Step::reject, "550", "5.7.1", text);
    }
    if (action.kind == DmarcAction::Kind::tempfail) {
        count_action("tempfail", "dmarc-temperror");
        log::info(log_prefix() + "action=tempfail reason=dmarc-temperror " +
                  line.substr(log_prefix().size()));
        return with_reply(e, Effects::Step::tempfail, "451", "4.7.1",
                          "DMARC policy for " + printable(action.domain) +
                              " could not be evaluated, try again later");
    }

    if (action.kind == DmarcAction::Kind::unknown_policy) {
        count_action("tempfail", "dmarc-temperror");
        log::info(log_prefix() + "action=tempfail reason=dmarc-temperror " +
                  printable(action.reason) + " " + line.substr(log_prefix().size()));
        return with_reply(e, Effects::Step::tempfail, "451", "4.7.5",
                          "DMARC policy for " + printable(action.domain) +
                              " could not be looked up, try again later");
    }

    // S2: trusted when SPF passes and a valid DKIM signature aligns with the envelope sender's
    // or the From domain; else greylisted here (checks.hpp), whatever policyd's own SPF lookup
    // answered at RCPT: it hands SPF-passing mail over without deferring it.
    std::string reason = "verified", detail;
    std::optional<GreylistKeys> countable;
    const auto& spf = m.spf_mailfrom;
    if (config.greylist.enabled && config.greylist.trust_authenticated) {
        const bool spf_pass = spf && spf->result == spf::Result::pass && !spf->domain.empty();
        auto domains = from.domains;
        if (spf_pass) domains.push_back(spf->domain);
        if (spf_pass && dkim_aligned_with(signatures, domains, services_.psl)) {
            reason = "trusted";
        } else {
            auto g = greylist_message(services_, config, client_, m.sender, m.recipients,
                                      spf_pass ? spf->domain : "", unix_now_ms());
            countable = g.countable;
            detail = " greylist=" + (g.detail.empty() ? std::string("-") : g.detail);
            if (g.deferred == CheckResult::yes || (g.deferred == CheckResult::unavailable &&
                                                   config.greylist.fail_mode == FailMode::closed)) {
                count_action("tempfail", "greylist");
                log::info(log_prefix() + "action=tempfail reason=greylist " +
                          line.substr(log_prefix().size()) + detail);
                if (g.deferred == CheckResult::yes)
                    return with_reply(e, Effects::Step::tempfail, "451", "4.7.1",
                                      "Greylisted, please try again later");
                return with_reply(e, Effects::Step::tempfail, "451", "4.3.0",
                                  "Policy service unavailable");
            }
        }
    } else if (config.greylist.enabled && config.greylist.auto_allow_clients > 0) {
        // policyd greylisted this mail at RCPT; accepting it still earns the client auto-allow.
        countable = countable_passed(services_, config, client_, m.sender, m.recipients);
    }

    // Accepted: remove forged verdicts, then add ours at the top.
    remove_forged(e);
    e.insert_headers.emplace_back(
        "Authentication-Results",
        format_auth_results(auth_results_for(config.milter.authserv_id, m.spf_mailfrom, m.spf_helo,
                                             signatures, from, evaluations)));
    if (action.kind == DmarcAction::Kind::header)
        e.insert_headers.emplace_back("X-Postwarden-DMARC", "quarantine");
    if (action.kind == DmarcAction::Kind::hold)
        e.quarantine =
            "DMARC policy for " + printable(action.domain.empty() ? "From" : action.domain);
    std::string verb = action.kind == DmarcAction::Kind::hold ? "hold" : "accept";
    if (action.kind != DmarcAction::Kind::none || !action.reason.empty()) reason = "dmarc";
    count_action(verb, reason);
    log::info(log_prefix() + "action=" + verb + " reason=" + reason + " " +
              line.substr(log_prefix().size()) + detail + removed_note());
    // Auto-allow counts mail accepted as it is (no DMARC failure, even one set to pass), from a
    // sender whose SPF does not disown the client.
    if (countable && action.kind == DmarcAction::Kind::none && action.reason.empty() &&
        !(spf && spf->result == spf::Result::fail))
        count_accepted(services_, config, *countable, m.sender, unix_now_ms());
    e.step = Effects::Step::accept;
    return e;
}

}  // namespace postwarden::milter
