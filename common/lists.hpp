// lists.hpp — the operator's block and allow lists (SPEC §3) as pure functions: which sets a
// mail is looked up in, and what their answers mean (precedence: per recipient domain over
// global, allow over block at the same level; block:login and block:tld apply to outbound mail
// whatever the allow lists say). policyd decides with them at RCPT; the milter asks them whether
// an allow entry exempts a recipient from greylisting at end of message (S2). No Redis here:
// the caller asks the sets (list_cache.hpp) and feeds the answers back.
#pragma once

#include <array>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/config.hpp"
#include "common/inet.hpp"

namespace postwarden {

// What the lists look at, lower-cased by the caller. Views: the strings must outlive the ListPlan
// made from them. A sender or domain with non-ASCII bytes is brought to A-labels by the plan
// (canonical_address(), canonical_domain()): list members and per-recipient-domain key names
// are stored that way (`postwarden list` converts what it is given), so every spelling of an
// internationalized domain meets the entry.
struct ListSubject {
    std::optional<IpAddress> client;
    std::string_view sender;  // "" for the null sender
    std::string_view sender_domain;
    std::string_view recipient_domain;
    std::string_view login;  // SASL login, "" when none
    bool outbound = false;
};

enum class ListKind { allow, block };
enum class ListWhat { sender, domain, net, login, tld, tld_exempt };

// One set lookup: is any of the candidate members in the set `key`? (SMISMEMBER key members...)
// A net query names the client instead of spelling its candidates: they are the address and
// every network holding it ("192.0.2.1", "192.0.2.1/32" … "0.0.0.0/0", network_candidates()),
// 34 strings for v4 and 130 for v6, which the list cache need not spell to answer (it knows
// which prefix lengths a set holds); size() and spelled() give them when they are needed.
// Views into the ListPlan that made it.
struct ListQuery {
    std::string_view key;
    std::span<const std::string_view> members;  // empty for a net query
    ListKind kind = ListKind::allow;
    ListWhat what = ListWhat::sender;
    bool per_recipient_domain = false;
    const IpAddress* client = nullptr;  // a net query's client

    std::size_t size() const { return client ? network_candidate_count(*client) : members.size(); }
    std::string member(std::size_t j) const;
    std::vector<std::string> spelled() const;
};

// The keys of one level of lists: [allow, block] × [sender, domain, net]; the global level also
// has block:login, block:tld and allow:tld.
struct ListLevelKeys {
    std::string sets[2][3];
    std::string block_login, block_tld, allow_tld;
};

// Keys spelled once per recipient domain, not once per request (a request names up to 15 sets,
// each key an allocation). For one thread; holds at most 4096 recipient domains, none longer
// than a DNS name (253).
class ListKeys {
  public:
    std::shared_ptr<const ListLevelKeys> level(std::string_view prefix,
                                               std::string_view recipient_domain);

  private:
    struct Hash {
        using is_transparent = void;
        std::size_t operator()(std::string_view s) const {
            return std::hash<std::string_view>{}(s);
        }
    };
    std::string prefix_;
    std::shared_ptr<const ListLevelKeys> global_;
    std::unordered_map<std::string, std::shared_ptr<const ListLevelKeys>, Hash, std::equal_to<>>
        domains_;
};

// The set lookups for one mail, in precedence order. Not copyable: its queries point into it.
class ListPlan {
  public:
    // `keys` may be null: the keys are then spelled for this plan alone.
    ListPlan(const ListSubject& subject, const Config& config, ListKeys* keys = nullptr);
    ListPlan(const ListPlan&) = delete;
    ListPlan& operator=(const ListPlan&) = delete;

    std::span<const ListQuery> queries() const { return {queries_.data(), count_}; }
    auto begin() const { return queries().begin(); }
    auto end() const { return queries().end(); }
    std::size_t size() const { return count_; }
    bool empty() const { return count_ == 0; }

  private:
    void add(ListKind kind, ListWhat what, std::string_view key, bool per_domain,
             std::span<const std::string_view> members, bool net = false);
    void add_level(const ListLevelKeys& keys, bool per_domain, const ListSubject& subject);

    std::shared_ptr<const ListLevelKeys> domain_keys_, global_keys_;
    // A-label spellings of the subject's non-ASCII names; the views below point here then.
    std::string own_sender_, own_sender_domain_, own_recipient_domain_;
    std::optional<IpAddress> client_;
    std::string_view sender_, tld_, login_;
    std::vector<std::string_view> domains_;
    std::array<ListQuery, 16> queries_;  // login 1 + two levels of 6 + tld 2
    std::size_t count_ = 0;
};

enum class ListVerdict { none, allow, block_login, block_sender, block_network, block_tld };

struct ListOutcome {
    ListVerdict verdict = ListVerdict::none;
    std::string matched;  // "key member" that decided, for the log
};

// hits[i][j]: whether queries[i].member(j) is in queries[i].key; past the end of hits[i]: not.
ListOutcome evaluate_lists(std::span<const ListQuery> queries,
                           const std::vector<std::vector<bool>>& hits, bool outbound);

}  // namespace postwarden
