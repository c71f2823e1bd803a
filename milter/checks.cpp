// checks.cpp — S8 alias lookups and S2 greylisting against Redis; see checks.hpp.
#include "milter/checks.hpp"

#include "common/address.hpp"
#include "common/greylist.hpp"
#include "common/lists.hpp"
#include "common/log.hpp"

namespace postwarden::milter {

std::vector<std::string> alias_candidates(std::string_view address) {
    auto lower = to_lower(address);
    auto domain = domain_of(lower);
    std::vector<std::string> out{lower};
    if (!domain.empty()) out.push_back("@" + domain);
    return out;
}

CheckResult sender_allowed(const Services& services, const Config& config, std::string_view login,
                           const std::vector<std::string>& addresses) {
    auto user = to_lower(login);
    std::vector<std::string> argv{"SMISMEMBER", config.redis.prefix + "alias:" + user};
    std::vector<std::size_t> owner;  // which address each candidate speaks for
    std::vector<bool> allowed(addresses.size(), false);
    for (std::size_t i = 0; i < addresses.size(); ++i) {
        if (to_lower(addresses[i]) == user) {
            allowed[i] = true;  // the login itself, when it is an address (SPEC §3)
            continue;
        }
        for (auto& c : alias_candidates(addresses[i])) {
            argv.push_back(std::move(c));
            owner.push_back(i);
        }
    }
    if (!owner.empty()) {
        auto reply = services.redis.command(std::move(argv));
        const auto& v = reply.value;
        if (!reply.ok || v.type != redis::Value::Type::array || v.elements.size() != owner.size()) {
            log::warning("alias lookup for " + user +
                         " failed: " + (reply.ok ? "unexpected reply " + v.str : reply.error));
            return CheckResult::unavailable;
        }
        for (std::size_t k = 0; k < owner.size(); ++k)
            if (v.elements[k].integer != 0) allowed[owner[k]] = true;
    }
    for (bool a : allowed)
        if (!a) return CheckResult::no;
    return CheckResult::yes;
}

namespace {

// Whether the operator's allow lists exempt this recipient's mail (SPEC §3: an allow entry skips
// greylisting). policyd answered allowed mail at RCPT without handing it over, so an allowed
// sender whose SPF passes must not be greylisted here either. One SMISMEMBER per set, all in
// one round trip.
CheckResult allowed(const Services& services, const Config& config,
                    const std::optional<IpAddress>& client, std::string_view sender,
                    std::string_view rcpt) {
    const auto lowered = to_lower(sender), sender_domain = domain_of(sender),
               rcpt_domain = domain_of(rcpt);
    const ListPlan queries({client, lowered, sender_domain, rcpt_domain, "", false}, config);
    std::vector<std::vector<std::string>> commands;
    for (const auto& q : queries) {
        commands.push_back({"SMISMEMBER", std::string(q.key)});
        auto members = q.spelled();
        commands.back().insert(commands.back().end(), members.begin(), members.end());
    }
    auto replies = services.redis.batch(std::move(commands));
    std::vector<std::vector<bool>> hits(queries.size());
    for (std::size_t i = 0; i < queries.size(); ++i) {
        if (!replies[i].ok) return CheckResult::unavailable;
        if (replies[i].value.type != redis::Value::Type::array) continue;  // not a set: ignored
        for (const auto& e : replies[i].value.elements)
            hits[i].push_back(e.integer != 0);
    }
    return evaluate_lists(queries.queries(), hits, false).verdict == ListVerdict::allow
               ? CheckResult::yes
               : CheckResult::no;
}

}  // namespace

namespace {

// What greylisting by network already holds for a message, read in one round trip: each
// recipient's network triplet, and the client's auto-allow domains when they apply.
struct NetworkState {
    std::vector<GreylistKeys> keys;  // per recipient
    std::vector<bool> passed;        // per recipient: the triplet is "p"
    long threshold = 0;              // greylist_auto_allow: 0 when auto-allow is off
    long domains = 0;                // the client's auto-allow domains
    bool domain_counted = false;     // the sender's domain is one of them
};

std::optional<NetworkState> read_network(const Services& services, const Config& config,
                                         const std::optional<IpAddress>& client,
                                         std::string_view sender,
                                         const std::vector<std::string>& recipients) {
    NetworkState s;
    std::vector<std::string> mget{"MGET"};
    for (const auto& rcpt : recipients) {
        s.keys.push_back(greylist_keys(client, sender, rcpt, "", config));
        mget.push_back(s.keys.back().triplet);
    }
    std::vector<std::vector<std::string>> commands{std::move(mget)};
    s.threshold = greylist_auto_allow(s.keys.front(), config);
    if (s.threshold > 0) {
        commands.push_back({"SCARD", s.keys.front().client});
        commands.push_back(
            {"SISMEMBER", s.keys.front().client, canonical_domain(domain_of(sender))});
    }
    auto replies = services.redis.batch(std::move(commands));
    for (const auto& r : replies)
        if (!r.ok || r.value.is_error()) {
            log::warning("greylist read failed: " + (r.ok ? r.value.str : r.error));
            return std::nullopt;
        }
    const auto& triplets = replies[0].value;
    if (triplets.type != redis::Value::Type::array || triplets.elements.size() != s.keys.size())
        return std::nullopt;
    for (const auto& t : triplets.elements)
        s.passed.push_back(t.type == redis::Value::Type::string && t.str == "p");
    if (s.threshold > 0) {
        s.domains = static_cast<long>(replies[1].value.integer);
        s.domain_counted = replies[2].value.integer != 0;
    }
    return s;
}

void add_detail(GreylistResult& out, std::string_view what) {
    if (!out.detail.empty()) out.detail += ",";
    out.detail += what;
}

}  // namespace

GreylistResult greylist_message(const Services& services, const Config& config,
                                const std::optional<IpAddress>& client, std::string_view sender,
                                const std::vector<std::string>& recipients,
                                std::string_view spf_domain, long long now_ms) {
    GreylistResult out;
    if (recipients.empty()) return out;
    auto network = read_network(services, config, client, sender, recipients);
    if (!network) {
        out.deferred = CheckResult::unavailable;
        return out;
    }
    if (network->threshold > 0 && network->domains >= network->threshold) {
        add_detail(out, "client");
        return out;
    }
    std::optional<std::size_t> network_pass;  // a recipient whose network triplet passed
    for (std::size_t i = 0; i < recipients.size(); ++i) {
        if (network->passed[i]) {
            if (!network_pass) network_pass = i;
            add_detail(out, "known");
            continue;
        }
        auto allow = allowed(services, config, client, sender, recipients[i]);
        if (allow == CheckResult::unavailable) {
            out.deferred = CheckResult::unavailable;
            return out;
        }
        if (allow == CheckResult::yes) {
            add_detail(out, "allow");
            continue;
        }
        const auto keys = spf_domain.empty()
                              ? network->keys[i]
                              : greylist_keys(client, sender, recipients[i], spf_domain, config);
        auto reply = services.redis.eval(services.greylist, {keys.triplet, keys.client},
                                         greylist_args(keys, now_ms, config));
        const auto& v = reply.value;
        std::optional<GreylistOutcome> outcome;
        if (reply.ok && v.type == redis::Value::Type::array && v.elements.size() == 2)
            outcome = parse_greylist_reply(v.elements[0].str, v.elements[1].integer);
        if (!outcome) {
            log::warning("greylist script failed: " +
                         (reply.ok ? "unexpected reply" : reply.error));
            out.deferred = CheckResult::unavailable;
            return out;
        }
        if (outcome->verdict == GreylistVerdict::defer_new ||
            outcome->verdict == GreylistVerdict::defer_early)
            out.deferred = CheckResult::yes;
        else if (keys.network && !network_pass &&
                 outcome->verdict != GreylistVerdict::client_allowed)
            network_pass = i;
        add_detail(out, v.elements[0].str);
    }
    // Accepting this message counts its sender's domain once towards the client's auto-allow.
    if (out.deferred == CheckResult::no && network_pass && network->threshold > 0 &&
        !network->domain_counted && !domain_of(sender).empty())
        out.countable = network->keys[*network_pass];
    return out;
}

std::optional<GreylistKeys> countable_passed(const Services& services, const Config& config,
                                             const std::optional<IpAddress>& client,
                                             std::string_view sender,
                                             const std::vector<std::string>& recipients) {
    if (recipients.empty() || domain_of(sender).empty()) return std::nullopt;
    auto network = read_network(services, config, client, sender, recipients);
    if (!network || network->threshold <= 0 || network->domain_counted) return std::nullopt;
    for (std::size_t i = 0; i < recipients.size(); ++i)
        if (network->passed[i]) return network->keys[i];
    return std::nullopt;
}

void count_accepted(const Services& services, const Config& config, const GreylistKeys& keys,
                    std::string_view sender, long long now_ms) {
    auto reply = services.redis.eval(services.greylist, {keys.triplet, keys.client},
                                     greylist_count_args(keys, domain_of(sender), now_ms, config));
    const auto& v = reply.value;
    if (!reply.ok || v.type != redis::Value::Type::array || v.elements.size() != 2)
        log::warning("greylist count for " + keys.identity +
                     " failed: " + (reply.ok ? "unexpected reply" : reply.error));
}

}  // namespace postwarden::milter
