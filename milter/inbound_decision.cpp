// inbound_decision.cpp — what the end of an inbound message answers; see inbound_decision.hpp.
#include "milter/inbound_decision.hpp"

#include "common/auth_results.hpp"

namespace postwarden::milter {

namespace {

Decision refusal(std::string action, std::string reason, std::optional<std::string> note,
                 Effects::Step step, std::string rcode, std::string xcode, std::string text) {
    Decision d;
    d.action = std::move(action);
    d.reason = std::move(reason);
    d.note = std::move(note);
    d.effects.step = step;
    d.effects.rcode = std::move(rcode);
    d.effects.xcode = std::move(xcode);
    d.effects.text = std::move(text);
    return d;
}

// DMARC enforcement that refuses the message, permanently or for now.
std::optional<Decision> dmarc_refusal(const DmarcAction& a) {
    switch (a.kind) {
        case DmarcAction::Kind::reject:
            return refusal("reject", "dmarc", a.reason, Effects::Step::reject, "550", "5.7.1",
                           a.domain.empty()
                               ? "Rejected by DMARC policy: " + printable(a.reason)
                               : "Rejected by DMARC policy for " + printable(a.domain));
        case DmarcAction::Kind::tempfail:
            return refusal("tempfail", "dmarc-temperror", std::nullopt, Effects::Step::tempfail,
                           "451", "4.7.1",
                           "DMARC policy for " + printable(a.domain) +
                               " could not be evaluated, try again later");
        case DmarcAction::Kind::unknown_policy:
            return refusal("tempfail", "dmarc-temperror", a.reason, Effects::Step::tempfail, "451",
                           "4.7.5",
                           "DMARC policy for " + printable(a.domain) +
                               " could not be looked up, try again later");
        default:
            return std::nullopt;
    }
}

Decision lookup(Decision::Lookup what) {
    Decision d;
    d.lookup = what;
    return d;
}

// S2 for mail DMARC lets through, short of the headers: trusted when SPF passes and a valid
// DKIM signature aligns with the envelope sender's or the From domain; else greylisted here
// (checks.hpp), whatever policyd's own SPF lookup answered at RCPT: it hands SPF-passing mail
// over without deferring it. With trust_authenticated off policyd greylisted the mail at RCPT,
// and accepting it still earns the client auto-allow.
Decision greylisting(const Facts& f, const Config& config) {
    const auto& g = config.greylist;
    Decision d;
    d.action = "accept";
    d.reason = "verified";
    if (g.enabled && g.trust_authenticated) {
        if (spf_passed(f) && f.dkim_aligned) return d.reason = "trusted", d;
        if (!f.greylist) return lookup(Decision::Lookup::greylist);
        using Deferred = GreylistFacts::Deferred;
        if (f.greylist->deferred == Deferred::yes)
            return refusal("tempfail", "greylist", std::nullopt, Effects::Step::tempfail, "451",
                           "4.7.1", "Greylisted, please try again later");
        if (f.greylist->deferred == Deferred::unavailable && g.fail_mode == FailMode::closed)
            return refusal("tempfail", "greylist", std::nullopt, Effects::Step::tempfail, "451",
                           "4.3.0", "Policy service unavailable");
        d.count_auto_allow = f.greylist->countable;
    } else if (g.enabled && g.auto_allow_clients > 0) {
        if (!f.auto_allow_countable) return lookup(Decision::Lookup::auto_allow);
        d.count_auto_allow = *f.auto_allow_countable;
    }
    return d;
}

// Accepted (d from greylisting()): forged verdicts removed, ours added at the top, and what
// DMARC enforcement asks of an accepted message. Auto-allow counts mail accepted as it is (no
// DMARC failure, even one set to pass), from a sender whose SPF does not disown the client.
Decision accepted(Decision d, const Facts& f, const Config& config, const DmarcAction& a) {
    auto& e = d.effects;
    e.step = Effects::Step::accept;
    e.remove_auth_results.assign(f.forged_auth_results.rbegin(), f.forged_auth_results.rend());
    e.insert_headers.emplace_back(
        "Authentication-Results",
        format_auth_results(auth_results_for(config.milter.authserv_id, f.spf_mailfrom, f.spf_helo,
                                             f.signatures, f.from, f.evaluations)));
    if (a.kind == DmarcAction::Kind::header)
        e.insert_headers.emplace_back("X-Postwarden-DMARC", "quarantine");
    if (a.kind == DmarcAction::Kind::hold) {
        e.quarantine = "DMARC policy for " + printable(a.domain.empty() ? "From" : a.domain);
        d.action = "hold";
    }
    const bool dmarc_failed = a.kind != DmarcAction::Kind::none || !a.reason.empty();
    if (dmarc_failed) d.reason = "dmarc";
    const bool spf_fail = f.spf_mailfrom && f.spf_mailfrom->result == spf::Result::fail;
    d.count_auto_allow = d.count_auto_allow && !dmarc_failed && !spf_fail;
    return d;
}

std::string summary(const Facts& f) {
    const auto& spf = f.spf_mailfrom;
    std::string s = " spf=" + std::string(spf ? spf::to_string(spf->result) : "none");
    std::string dkim = f.signatures.empty() ? "none" : "";
    for (const auto& g : f.signatures)
        dkim += (dkim.empty() ? "" : ",") + std::string(dkim::to_string(g.result)) +
                (g.domain.empty() ? "" : ":" + printable(g.domain));
    std::string dm = f.evaluations.empty() ? "none" : "";
    for (const auto& e : f.evaluations)
        dm += (dm.empty() ? "" : ",") + std::string(dmarc::to_string(e.result)) + ":" +
              printable(e.from_domain);
    return s + " dkim=" + dkim + " dmarc=" + dm;
}

}  // namespace

bool spf_passed(const Facts& f) {
    return f.spf_mailfrom && f.spf_mailfrom->result == spf::Result::pass &&
           !f.spf_mailfrom->domain.empty();
}

Decision decide(const Facts& facts, const Config& config) {
    auto action = dmarc_action(facts.from, facts.evaluations, config);
    if (auto refused = dmarc_refusal(action)) return *refused;
    auto d = greylisting(facts, config);
    if (d.lookup != Decision::Lookup::none || d.effects.step == Effects::Step::tempfail) return d;
    return accepted(std::move(d), facts, config, action);
}

std::string log_line(const Facts& f, const Decision& d) {
    std::string line = log_prefix(f.queue_id) + "action=" + d.action + " reason=" + d.reason;
    if (d.note) line += " " + printable(*d.note);
    line += " client=" + (f.client ? f.client->to_string() : std::string("unknown")) + " sender=<" +
            printable(f.sender) + ">" + summary(f);
    if (f.greylist)
        line += " greylist=" + (f.greylist->detail.empty() ? std::string("-") : f.greylist->detail);
    if (const auto n = d.effects.remove_auth_results.size(); n > 0)
        line += " removed_auth_results=" + std::to_string(n);
    return line;
}

}  // namespace postwarden::milter
