// lists.cpp — list planning and precedence; see lists.hpp.
#include "common/lists.hpp"

#include <algorithm>

#include "common/address.hpp"

namespace postwarden {

namespace {

const char* kind_name(ListKind kind) {
    return kind == ListKind::allow ? "allow" : "block";
}

void add_query(std::vector<ListQuery>& out, const Config& config, ListKind kind, ListWhat what,
               std::string_view list, std::string_view rcpt_domain,
               const std::shared_ptr<const std::vector<std::string>>& members,
               std::optional<IpAddress> client = {}) {
    if (!client && (!members || members->empty())) return;
    std::string key;
    key.reserve(config.redis.prefix.size() + 7 + list.size() + rcpt_domain.size());
    key.append(config.redis.prefix).append(kind_name(kind)).append(1, ':').append(list);
    if (!rcpt_domain.empty()) key.append(1, ':').append(rcpt_domain);
    out.push_back({std::move(key), client ? nullptr : members, kind, what, !rcpt_domain.empty(),
                   std::move(client)});
}

using Names = std::shared_ptr<const std::vector<std::string>>;

Names names(std::vector<std::string> list) {
    return std::make_shared<const std::vector<std::string>>(std::move(list));
}

// sender, domain and (inbound only) net lists of one level, allow before block.
void add_level(std::vector<ListQuery>& out, const ListSubject& f, const Config& config,
               std::string_view rcpt_domain, const Names& sender, const Names& domains) {
    for (auto kind : {ListKind::allow, ListKind::block}) {
        add_query(out, config, kind, ListWhat::sender, "sender", rcpt_domain, sender);
        add_query(out, config, kind, ListWhat::domain, "domain", rcpt_domain, domains);
        if (!f.outbound && f.client)
            add_query(out, config, kind, ListWhat::net, "net", rcpt_domain, nullptr, f.client);
    }
}

}  // namespace

std::vector<ListQuery> plan_lists(const ListSubject& f, const Config& config) {
    std::vector<ListQuery> out;
    out.reserve(16);
    if (f.outbound && !f.login.empty())
        add_query(out, config, ListKind::block, ListWhat::login, "login", "", names({f.login}));
    // Outbound mail goes to foreign domains: only the global lists speak for it.
    auto sender = f.sender.empty() ? nullptr : names({f.sender});
    auto domains = names(domain_and_parents(f.sender_domain));
    if (!f.outbound && !f.recipient_domain.empty())
        add_level(out, f, config, f.recipient_domain, sender, domains);
    add_level(out, f, config, "", sender, domains);
    auto tld = top_level_domain(f.sender_domain);
    if (!tld.empty()) {
        add_query(out, config, ListKind::block, ListWhat::tld, "tld", "",
                  names({std::string(tld)}));
        add_query(out, config, ListKind::allow, ListWhat::tld_exempt, "tld", "", domains);
    }
    return out;
}

ListOutcome evaluate_lists(const std::vector<ListQuery>& queries,
                           const std::vector<std::vector<bool>>& hits, bool outbound) {
    // The first member of each query that is in its set, or none; found once, then the rules
    // below only read it (a net query has 34 or 130 candidates).
    constexpr std::size_t none = static_cast<std::size_t>(-1);
    std::vector<std::size_t> found(queries.size(), none);
    for (std::size_t i = 0; i < queries.size() && i < hits.size(); ++i) {
        auto n = std::min(queries[i].size(), hits[i].size());
        for (std::size_t j = 0; j < n; ++j)
            if (hits[i][j]) {
                found[i] = j;
                break;
            }
    }
    auto first = [&](auto pred) -> std::pair<const ListQuery*, std::string> {
        for (std::size_t i = 0; i < queries.size(); ++i)
            if (found[i] != none && pred(queries[i]))
                return {&queries[i], queries[i].key + " " + queries[i].member(found[i])};
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
