// signer.cpp — choosing the signing domain and keys; see signer.hpp.
#include "milter/signer.hpp"

#include <sys/stat.h>

#include <algorithm>

#include "common/idna.hpp"
#include "common/log.hpp"

namespace postwarden::milter {

std::vector<std::string> usable_selectors(std::vector<std::string> members) {
    std::vector<std::string> out;
    for (auto& m : members)
        if (dkim::valid_selector(m)) out.push_back(std::move(m));
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    if (out.size() > dkim::max_signing_keys) out.resize(dkim::max_signing_keys);
    return out;
}

namespace {

SigningPlan skip(std::string why) {
    SigningPlan p;
    p.note = "dkim=unsigned dkim_reason=" + std::move(why);
    return p;
}

bool has_key_dir(const Config& config, const std::string& domain) {
    struct stat st {};
    return stat((config.dkim.key_dir + "/" + domain).c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// The signing domain's keys; those without a usable file are noted in p.skipped.
void gather_keys(const Services& services, const Config& config,
                 const std::vector<std::string>& selectors, SigningPlan& p) {
    for (const auto& selector : selectors) {
        std::string why;
        auto key = services.keys.get(dkim::key_path(config.dkim.key_dir, p.domain, selector), &why);
        if (key)
            p.keys.push_back({p.domain, selector, std::move(key)});
        else
            p.skipped.push_back(selector + ": " + why);
    }
}

}  // namespace

SigningPlan plan_signing(const Services& services, const Config& config, const FromFields& from) {
    if (from.kind == FromFields::Kind::absent) return skip("no-from");
    if (from.kind == FromFields::Kind::malformed) return skip("malformed-from");
    if (from.domains.size() != 1) return skip("several-from-domains");
    auto ascii = to_a_label(from.domains.front());
    if (!ascii || !dkim::valid_key_domain(*ascii)) return skip("from-domain-unusable");
    const std::string domain = *ascii;
    std::string org = services.psl.organizational_domain(domain);
    if (org == domain || !dkim::valid_key_domain(org)) org.clear();
    // A domain without a directory of keys has none to sign with: no Redis round trip for the
    // domains this host does not sign (and none at all while [dkim] is not set up).
    const bool own = has_key_dir(config, domain),
               org_own = !org.empty() && has_key_dir(config, org);
    if (!own && !org_own) return skip("no-key-directory");
    const std::string key = config.redis.prefix + "dkim:selectors:";
    std::vector<std::string> keys{key + domain};
    if (org_own) keys.push_back(key + org);
    auto sets = services.selectors.members(keys);
    if (!sets) {
        log::warning("dkim selectors of " + domain + ": Redis did not answer in time");
        SigningPlan p;
        p.outcome = SigningPlan::Outcome::unavailable;
        p.note = "dkim=unavailable";
        return p;
    }
    SigningPlan p;
    p.domain = domain;
    auto selectors = usable_selectors(std::move(sets->front()));
    if (selectors.empty() && sets->size() > 1) {
        p.domain = org;
        selectors = usable_selectors(std::move((*sets)[1]));
    }
    if (selectors.empty()) return skip("no-active-selector");
    gather_keys(services, config, selectors, p);
    if (p.keys.empty()) {
        auto s = std::move(p.skipped);
        p = skip("no-usable-key");
        p.domain = domain;
        p.skipped = std::move(s);
        return p;
    }
    p.outcome = SigningPlan::Outcome::sign;
    return p;
}

}  // namespace postwarden::milter
