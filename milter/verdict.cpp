// verdict.cpp — From reading, DMARC enforcement and the Authentication-Results entries; see
// verdict.hpp.
#include "milter/verdict.hpp"

#include <algorithm>

namespace postwarden::milter {

FromFields read_from(const std::vector<std::string>& fields, int count, bool too_long) {
    FromFields f;
    if (count == 0) return f;
    f.kind = FromFields::Kind::malformed;
    if (count > 1) return f.problem = "several From fields", f;
    if (too_long || fields.empty()) return f.problem = "From field too long", f;
    auto list = parse_address_list(fields.front());
    if (!list) return f.problem = "unreadable From field", f;
    if (list->empty()) return f.problem = "From field without an address", f;
    f.kind = FromFields::Kind::usable;
    f.addresses = std::move(*list);
    for (const auto& a : f.addresses)
        if (std::find(f.domains.begin(), f.domains.end(), a.domain) == f.domains.end())
            f.domains.push_back(a.domain);
    if (f.domains.size() > max_from_domains) {
        f.kind = FromFields::Kind::malformed;
        f.problem = "more than " + std::to_string(max_from_domains) + " From domains";
    }
    return f;
}

namespace {

DmarcAction for_reject(const Config& config, const std::string& domain, bool temporary,
                       std::string reason) {
    const auto& mode = config.milter.dmarc_reject;
    if (mode == "none") return {DmarcAction::Kind::none, domain, reason + " (dmarc_reject=none)"};
    if (mode == "quarantine") return {DmarcAction::Kind::hold, domain, reason};
    if (temporary) return {DmarcAction::Kind::tempfail, domain, reason + " (temporary error)"};
    return {DmarcAction::Kind::reject, domain, reason};
}

DmarcAction for_quarantine(const Config& config, const std::string& domain, std::string reason) {
    const auto& mode = config.milter.dmarc_quarantine;
    if (mode == "hold") return {DmarcAction::Kind::hold, domain, reason};
    if (mode == "header") return {DmarcAction::Kind::header, domain, reason};
    return {DmarcAction::Kind::none, domain, reason + " (dmarc_quarantine=none)"};
}

// The record could not be fetched (SPEC §10). Aligned mail passes whatever the record says;
// for the rest the policy may be p=reject, so the sender is asked to try again, unless no
// policy would be enforced anyway.
DmarcAction for_unknown_policy(const Config& config, const dmarc::Evaluation& e) {
    if (e.aligned) return {DmarcAction::Kind::none, e.from_domain, ""};
    if (config.milter.dmarc_reject == "none" && config.milter.dmarc_quarantine == "none")
        return {DmarcAction::Kind::none, e.from_domain,
                "record lookup failed (dmarc_reject=none, dmarc_quarantine=none)"};
    return {DmarcAction::Kind::unknown_policy, e.from_domain,
            "record lookup failed, nothing aligned"};
}

int strength(DmarcAction::Kind k) {
    switch (k) {
        case DmarcAction::Kind::reject:
            return 5;
        case DmarcAction::Kind::tempfail:
            return 4;
        case DmarcAction::Kind::unknown_policy:
            return 3;
        case DmarcAction::Kind::hold:
            return 2;
        case DmarcAction::Kind::header:
            return 1;
        case DmarcAction::Kind::none:
            return 0;
    }
    return 0;
}

}  // namespace

DmarcAction dmarc_action(const FromFields& from, const std::vector<dmarc::Evaluation>& evaluations,
                         const Config& config) {
    if (from.kind == FromFields::Kind::malformed)
        return for_reject(config, "", false, "malformed From: " + from.problem);
    DmarcAction best;
    for (const auto& e : evaluations) {
        if (e.result == dmarc::Result::temperror) {
            auto a = for_unknown_policy(config, e);
            if (strength(a.kind) > strength(best.kind)) best = a;
            continue;
        }
        if (e.result != dmarc::Result::fail) continue;
        DmarcAction a;
        std::string reason = "dmarc=fail p=" + std::string(dmarc::to_string(e.published));
        if (e.sampled_out) reason += " (pct sampled out)";
        if (e.policy == dmarc::Policy::reject)
            a = for_reject(config, e.from_domain, e.maybe_temporary, reason);
        else if (e.policy == dmarc::Policy::quarantine)
            a = for_quarantine(config, e.from_domain, reason);
        else
            a = {DmarcAction::Kind::none, e.from_domain, reason};
        if (strength(a.kind) > strength(best.kind) || best.reason.empty()) best = a;
    }
    return best;
}

bool dkim_aligned_with(const std::vector<dkim::Signature>& signatures,
                       const std::vector<std::string>& domains,
                       const dmarc::PublicSuffixList& psl) {
    for (const auto& s : signatures) {
        if (s.result != dkim::Result::pass) continue;
        for (const auto& d : domains)
            if (dmarc::aligned(s.domain, d, dmarc::Alignment::relaxed, psl)) return true;
    }
    return false;
}

namespace {

std::string dmarc_comment(const dmarc::Evaluation& e) {
    if (e.result == dmarc::Result::none || e.result == dmarc::Result::temperror) return e.reason;
    std::string c = "p=" + std::string(dmarc::to_string(e.published));
    if (e.sampled_out) c += " pct-sampled-out";
    return c;
}

}  // namespace

AuthResults auth_results_for(const std::string& authserv_id,
                             const std::optional<spf::Outcome>& spf_mailfrom,
                             const std::optional<spf::Outcome>& spf_helo,
                             const std::vector<dkim::Signature>& signatures, const FromFields& from,
                             const std::vector<dmarc::Evaluation>& evaluations) {
    AuthResults r;
    r.authserv_id = authserv_id;
    if (spf_mailfrom && !spf_mailfrom->domain.empty())
        r.spf_mailfrom = AuthResults::Spf{std::string(spf::to_string(spf_mailfrom->result)),
                                          spf_mailfrom->domain};
    if (spf_helo && !spf_helo->domain.empty())
        r.spf_helo =
            AuthResults::Spf{std::string(spf::to_string(spf_helo->result)), spf_helo->domain};
    for (const auto& s : signatures)
        r.dkim.push_back(
            {std::string(dkim::to_string(s.result)), s.domain, s.selector, s.algorithm, s.reason});
    if (from.kind == FromFields::Kind::malformed)
        r.dmarc.push_back({"permerror", "", from.problem});
    for (const auto& e : evaluations)
        r.dmarc.push_back(
            {std::string(dmarc::to_string(e.result)), e.from_domain, dmarc_comment(e)});
    return r;
}

}  // namespace postwarden::milter
