// decision.hpp — what policyd decides, as pure functions of a request, the configuration and the
// answers Redis and SPF gave (STYLE §2: no sockets, no Redis, no clock). The handler (handler.hpp)
// is the shell that asks Redis and SPF and feeds their answers in here.
//
// Flow at protocol_state=RCPT (SPEC §4):
//   outbound: block:login → sender/domain lists → block:tld (unless allow:tld) → quota
//   inbound:  lists (per recipient domain, then global) → block:tld → greylisting
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/config.hpp"
#include "common/greylist.hpp"
#include "common/inet.hpp"
#include "common/lists.hpp"
#include "policyd/protocol.hpp"

namespace postwarden::policy {

// The request attributes a decision uses, normalised once (lower-cased where SPEC §3 says so).
struct Facts {
    std::string state;  // protocol_state, upper-case as Postfix sends it
    std::string queue_id;
    std::string instance;
    std::optional<IpAddress> client;
    std::string client_address;  // verbatim, for logs
    std::string client_name;
    std::string helo;
    std::string sender;  // lower-cased; "" for the null sender
    std::string sender_domain;
    std::string recipient;
    std::string recipient_domain;
    std::string login;  // sasl_username, lower-cased
    bool outbound = false;
};

Facts facts_of(const Request& request, const Config& config);

// ---- block and allow lists (common/lists.hpp) ---------------------------------------------

using postwarden::evaluate_lists;
using postwarden::ListKind;
using postwarden::ListOutcome;
using postwarden::ListPlan;
using postwarden::ListQuery;
using postwarden::ListVerdict;
using postwarden::ListWhat;

// Views of `facts`: the plan made from it must not outlive them.
ListSubject list_subject(const Facts& facts);

// ---- replies ---------------------------------------------------------------------------------

struct Decision {
    std::string action;  // what follows "action=": "DUNNO", "REJECT 5.7.1 ..."
    std::string reason;  // short fixed word for the log (see README "Logs")
    std::string detail;  // extra "key=value" fields for the log, may be empty
};

Decision dunno(std::string reason, std::string detail = {});
Decision list_decision(const ListOutcome& outcome, const Config& config);
Decision greylist_decision(const GreylistOutcome& outcome, const Config& config);
Decision unavailable_decision(FailMode mode, std::string_view check, const Config& config);

// The answer when the lists could not be read, and whose fail_mode gives it. [lists] fail_mode
// closed defers. Otherwise the check that would have come next answers for itself, at once: it
// asks the same Redis, so it would only wait out another timeout, and this keeps the request
// within one timeout_ms. Outbound, that is the quota (when quota_applies, quota.hpp); inbound,
// greylisting (when enabled); with neither, the lists' open mode.
Decision lists_unavailable_decision(const Facts& facts, bool quota_applies, const Config& config);

// The whole of `text` as a decimal integer (a policy attribute, a Redis counter); nullopt when
// it is not one.
std::optional<long long> whole_number(std::string_view text);

// Replaces "{name}" in a configured reply text.
std::string expand(std::string_view text, std::string_view name, std::string_view value);

// The decision log line (SPEC §6): "QUEUEID: action=... reason=... client=name[ip] ...".
std::string log_line(const Facts& facts, const Decision& decision);

}  // namespace postwarden::policy
