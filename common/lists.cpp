// lists.cpp — list planning and precedence; see lists.hpp.
#include "common/lists.hpp"

#include <algorithm>

#include "common/address.hpp"
#include "common/idna.hpp"

namespace postwarden {

namespace {

constexpr const char* kind_names[2] = {"allow", "block"};
constexpr const char* set_names[3] = {"sender", "domain", "net"};

std::string key_of(std::string_view prefix, std::string_view kind, std::string_view list,
                   std::string_view rcpt_domain) {
    std::string key;
    key.reserve(prefix.size() + kind.size() + list.size() + rcpt_domain.size() + 2);
    key.append(prefix).append(kind).append(1, ':').append(list);
    if (!rcpt_domain.empty()) key.append(1, ':').append(rcpt_domain);
    return key;
}

std::shared_ptr<const ListLevelKeys> spell_level(std::string_view prefix,
                                                 std::string_view rcpt_domain) {
    auto keys = std::make_shared<ListLevelKeys>();
    for (int k = 0; k < 2; ++k)
        for (int w = 0; w < 3; ++w)
            keys->sets[k][w] = key_of(prefix, kind_names[k], set_names[w], rcpt_domain);
    if (rcpt_domain.empty()) {
        keys->block_login = key_of(prefix, "block", "login", "");
        keys->block_tld = key_of(prefix, "block", "tld", "");
        keys->allow_tld = key_of(prefix, "allow", "tld", "");
    }
    return keys;
}

}  // namespace

std::string ListQuery::member(std::size_t j) const {
    return client ? network_candidate(*client, j) : std::string(members[j]);
}

std::vector<std::string> ListQuery::spelled() const {
    if (client) return network_candidates(*client);
    return {members.begin(), members.end()};
}

std::shared_ptr<const ListLevelKeys> ListKeys::level(std::string_view prefix,
                                                     std::string_view recipient_domain) {
    if (!global_ || prefix != prefix_) {
        prefix_ = prefix;
        global_ = spell_level(prefix, "");
        domains_.clear();
    }
    if (recipient_domain.empty()) return global_;
    // Bounded: recipient domains come from clients. A name longer than DNS allows is spelled
    // for its plan alone, so 4096 domains of keys stay under 8 MB.
    if (recipient_domain.size() > 253) return spell_level(prefix, recipient_domain);
    if (auto it = domains_.find(recipient_domain); it != domains_.end()) return it->second;
    if (domains_.size() >= 4096) domains_.clear();
    return domains_.emplace(recipient_domain, spell_level(prefix, recipient_domain)).first->second;
}

void ListPlan::add(ListKind kind, ListWhat what, std::string_view key, bool per_domain,
                   std::span<const std::string_view> members, bool net) {
    if (!net && members.empty()) return;
    queries_[count_++] = {key, members, kind, what, per_domain, net ? &*client_ : nullptr};
}

// sender, domain and (inbound only) net lists of one level, allow before block.
void ListPlan::add_level(const ListLevelKeys& keys, bool per_domain, const ListSubject& f) {
    std::span<const std::string_view> sender;
    if (!sender_.empty()) sender = {&sender_, 1};
    for (auto kind : {ListKind::allow, ListKind::block}) {
        const auto& sets = keys.sets[static_cast<int>(kind)];
        add(kind, ListWhat::sender, sets[0], per_domain, sender);
        add(kind, ListWhat::domain, sets[1], per_domain, domains_);
        if (!f.outbound && client_) add(kind, ListWhat::net, sets[2], per_domain, {}, true);
    }
}

namespace {

// `name` itself when it is ASCII (no copy: the common case, checked inline), else its canonical
// spelling kept in `own`.
[[gnu::noinline]] std::string_view respell(std::string_view name, std::string* own, bool address) {
    *own = address ? canonical_address(name) : canonical_domain(name);
    return *own;
}

inline std::string_view canonical(std::string_view name, std::string* own, bool address) {
    if (is_ascii(name)) [[likely]]
        return name;
    return respell(name, own, address);
}

}  // namespace

ListPlan::ListPlan(const ListSubject& f, const Config& config, ListKeys* keys)
    : client_(f.client), sender_(canonical(f.sender, &own_sender_, true)), login_(f.login) {
    auto sender_domain = canonical(f.sender_domain, &own_sender_domain_, false);
    auto recipient_domain = canonical(f.recipient_domain, &own_recipient_domain_, false);
    tld_ = top_level_domain(sender_domain);
    domains_ = domain_and_parents(sender_domain);
    const auto& prefix = config.redis.prefix;
    ListKeys own;
    if (!keys) keys = &own;
    global_keys_ = keys->level(prefix, "");
    if (f.outbound && !login_.empty())
        add(ListKind::block, ListWhat::login, global_keys_->block_login, false, {&login_, 1});
    // Outbound mail goes to foreign domains: only the global lists speak for it.
    if (!f.outbound && !recipient_domain.empty()) {
        domain_keys_ = keys->level(prefix, recipient_domain);
        add_level(*domain_keys_, true, f);
    }
    add_level(*global_keys_, false, f);
    if (!tld_.empty()) {
        add(ListKind::block, ListWhat::tld, global_keys_->block_tld, false, {&tld_, 1});
        add(ListKind::allow, ListWhat::tld_exempt, global_keys_->allow_tld, false, domains_);
    }
}

ListOutcome evaluate_lists(std::span<const ListQuery> queries,
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
                return {&queries[i],
                        std::string(queries[i].key) + " " + queries[i].member(found[i])};
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
