// effects.hpp — what a milter step answers the MTA (Effects), and client text as it goes into a
// reply or a log line. Shared by the Session (session.hpp) and the pure end-of-message decision
// (inbound_decision.hpp), which must not need the Services to say what it would answer.
//
// Entry points: Effects, printable(), log_prefix(). Pure: values in, values out.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace postwarden::milter {

// What a callback answers and what it asks the MTA to change.
struct Effects {
    enum class Step { next, accept, reject, tempfail } step = Step::next;
    std::string rcode, xcode, text;        // the SMTP reply for reject / tempfail
    std::vector<int> remove_auth_results;  // indices, highest first (Postfix renumbers)
    std::vector<std::pair<std::string, std::string>> insert_headers;  // at the top, in order
    std::string quarantine;                                           // hold with this reason
};

// Client text as the milter puts it in a log line or in an SMTP reply's text: control bytes and
// DEL become '?', and at most 256 bytes are kept. Not log::printable: a reply may carry neither a
// control byte nor that function's \xNN escapes, and log lines keep the spelling they have.
std::string printable(std::string_view s);

// "QUEUEID: " that starts every log line of a message; "NOQUEUE: " before Postfix assigned one.
std::string log_prefix(std::string_view queue_id);

}  // namespace postwarden::milter
