// lists.cpp — list planning and precedence; see lists.hpp.
#include "common/lists.hpp"

#include "common/address.hpp"

namespace postwarden {

namespace {

const char* kind_name(ListKind kind) {
    return kind == ListKind::allow ? "allow" : "block";
}

void add_query(std::vector<ListQuery>& out, const Config& config, ListKind kind, ListWhat what,
               std::string_view list, std::string_view rcpt_domain,
               std::vector<std::string> members) {
    if (members.empty()) return;
    std::string key = config.redis.prefix + kind_name(kind) + ":" + std::string(list);
    if (!rcpt_domain.empty()) key += ":" + std::string(rcpt_domain);
    out.push_back({std::move(key), std::move(members), kind, what, !rcpt_domain.empty()});
}

// sender, domain and (inbound only) net lists of one level, allow before block. The names are
// spelled once per request by the caller: a v4 client has 34 network spellings.
struct Spellings {
    std::vector<std::string> domains, networks;
};

void add_level(std::vector<ListQuery>& out, const ListSubject& f, const Config& config,
               std::string_view rcpt_domain, const Spellings& names) {
    for (auto kind : {ListKind::allow, ListKind::block}) {
        if (!f.sender.empty())
            add_query(out, config, kind, ListWhat::sender, "sender", rcpt_domain, {f.sender});
        add_query(out, config, kind, ListWhat::domain, "domain", rcpt_domain, names.domains);
        add_query(out, config, kind, ListWhat::net, "net", rcpt_domain, names.networks);
    }
}

}  // namespace

std::vector<ListQuery> plan_lists(const ListSubject& f, const Config& config) {
    std::vector<ListQuery> out;
    if (f.outbound && !f.login.empty())
        add_query(out, config, ListKind::block, ListWhat::login, "login", "", {f.login});
    // Outbound mail goes to foreign domains: only the global lists speak for it.
    Spellings names{domain_and_parents(f.sender_domain), {}};
    if (!f.outbound && f.client) names.networks = network_candidates(*f.client);
    if (!f.outbound && !f.recipient_domain.empty())
        add_level(out, f, config, f.recipient_domain, names);
    add_level(out, f, config, "", names);
    auto tld = top_level_domain(f.sender_domain);
    if (!tld.empty()) {
        add_query(out, config, ListKind::block, ListWhat::tld, "tld", "", {std::string(tld)});
        add_query(out, config, ListKind::allow, ListWhat::tld_exempt, "tld", "",
                  domain_and_parents(f.sender_domain));
    }
    return out;
}

ListOutcome evaluate_lists(const std::vector<ListQuery>& queries,
                           const std::vector<std::vector<bool>>& hits, bool outbound) {
    auto hit = [&](std::size_t i) -> std::string {
        for (std::size_t j = 0; j < queries[i].members.size() && j < hits[i].size(); ++j)
            if (hits[i][j]) return queries[i].key + " " + queries[i].members[j];
        return {};
    };
    auto first = [&](auto pred) -> std::pair<const ListQuery*, std::string> {
        for (std::size_t i = 0; i < queries.size() && i < hits.size(); ++i)
            if (pred(queries[i]))
                if (auto m = hit(i); !m.empty()) return {&queries[i], m};
        return {nullptr, {}};
    };
    auto is = [](ListWhat w) { return [w](const ListQuery& q) { return q.what == w; }; };
    if (auto [q, m] = first(is(ListWhat::login)); q) return {ListVerdict::block_login, m};

    ListOutcome lists;
    for (bool per_domain : {true, false}) {
        auto level = [&](ListKind k) {
            return [=](const ListQuery& q) {
                return q.per_recipient_domain == per_domain && q.kind == k &&
                       (q.what == ListWhat::sender || q.what == ListWhat::domain ||
                        q.what == ListWhat::net);
            };
        };
        if (auto [q, m] = first(level(ListKind::allow)); q) {
            lists = {ListVerdict::allow, m};
            break;
        }
        if (auto [q, m] = first(level(ListKind::block)); q) {
            auto v =
                q->what == ListWhat::net ? ListVerdict::block_network : ListVerdict::block_sender;
            return {v, m};
        }
    }
    // An inbound allow entry skips the block lists, block:tld included; outbound, block:tld
    // applies whatever the allow lists say (SPEC §3).
    if (lists.verdict == ListVerdict::allow && !outbound) return lists;
    if (auto [q, m] = first(is(ListWhat::tld)); q && !first(is(ListWhat::tld_exempt)).first)
        return {ListVerdict::block_tld, m};
    return lists;
}

}  // namespace postwarden
