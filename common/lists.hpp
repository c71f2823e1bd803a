// lists.hpp — the operator's block and allow lists (SPEC §3) as pure functions: which sets a
// mail is looked up in, and what their answers mean (precedence: per recipient domain over
// global, allow over block at the same level; block:login and block:tld apply to outbound mail
// whatever the allow lists say). policyd decides with them at RCPT; the milter asks them whether
// an allow entry exempts a recipient from greylisting at end of message (S2). No Redis here:
// the caller asks the sets (list_cache.hpp) and feeds the answers back.
#pragma once

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

// One set lookup: is any of `members` in the set `key`? (SMISMEMBER key members...)
struct ListQuery {
    std::string key;
    std::vector<std::string> members;
    ListKind kind;
    ListWhat what;
    bool per_recipient_domain;
};

std::vector<ListQuery> plan_lists(const ListSubject& subject, const Config& config);

enum class ListVerdict { none, allow, block_login, block_sender, block_network, block_tld };

struct ListOutcome {
    ListVerdict verdict = ListVerdict::none;
    std::string matched;  // "key member" that decided, for the log
};

// hits[i][j]: whether queries[i].members[j] is in queries[i].key.
ListOutcome evaluate_lists(const std::vector<ListQuery>& queries,
                           const std::vector<std::vector<bool>>& hits, bool outbound);

}  // namespace postwarden
