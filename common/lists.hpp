// lists.hpp — the operator's block and allow lists (SPEC §3) as pure functions: which sets a
// mail is looked up in, and what their answers mean (precedence: per recipient domain over
// global, allow over block at the same level; block:login and block:tld apply to outbound mail
// whatever the allow lists say). policyd decides with them at RCPT; the milter asks them whether
// an allow entry exempts a recipient from greylisting at end of message (S2). No Redis here:
// the caller asks the sets (list_cache.hpp) and feeds the answers back.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/config.hpp"
#include "common/inet.hpp"

namespace postwarden {

// What the lists look at, normalised (lower-cased) by the caller.
struct ListSubject {
    std::optional<IpAddress> client;
    std::string sender;  // "" for the null sender
    std::string sender_domain;
    std::string recipient_domain;
    std::string login;  // SASL login, "" when none
    bool outbound = false;
};

enum class ListKind { allow, block };
enum class ListWhat { sender, domain, net, login, tld, tld_exempt };

// One set lookup: is any of the candidate members in the set `key`? (SMISMEMBER key members...)
// A net query names the client instead of spelling its candidates: they are the address and
// every network holding it ("192.0.2.1", "192.0.2.1/32" … "0.0.0.0/0", network_candidates()),
// 34 strings for v4 and 130 for v6, which the list cache need not spell to answer (it knows
// which prefix lengths a set holds); size() and spelled() give them when they are needed.
struct ListQuery {
    std::string key;
    // Shared by the queries of one request that ask for the same names (allow and block, per
    // recipient domain and global): planned once, not copied per set.
    std::shared_ptr<const std::vector<std::string>> members;  // null for a net query
    ListKind kind;
    ListWhat what;
    bool per_recipient_domain;
    std::optional<IpAddress> client;  // a net query's client

    std::size_t size() const { return client ? network_candidate_count(*client) : members->size(); }
    std::string member(std::size_t j) const {
        return client ? network_candidate(*client, j) : (*members)[j];
    }
    std::vector<std::string> spelled() const {
        return client ? network_candidates(*client) : *members;
    }
};

std::vector<ListQuery> plan_lists(const ListSubject& subject, const Config& config);

enum class ListVerdict { none, allow, block_login, block_sender, block_network, block_tld };

struct ListOutcome {
    ListVerdict verdict = ListVerdict::none;
    std::string matched;  // "key member" that decided, for the log
};

// hits[i][j]: whether queries[i].member(j) is in queries[i].key; past the end of hits[i]: not.
ListOutcome evaluate_lists(const std::vector<ListQuery>& queries,
                           const std::vector<std::vector<bool>>& hits, bool outbound);

}  // namespace postwarden
