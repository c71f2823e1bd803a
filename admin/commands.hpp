// commands.hpp — the commands of the admin CLI `postwarden` (SPEC §7): each reads or edits the
// keys of SPEC §3 through Store and returns its output both for people and as JSON; cli.cpp
// parses the command line and prints one of them.
//
// Entry points: blocked, unblock (blocked.cpp), quota (quota.cpp), greylist_stats
// (greylist.cpp), list (list.cpp).
// Errors: input that cannot be used throws Failure(exit_usage) before anything is written; Redis
// trouble throws Failure from Store. Threading: the main thread.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "admin/store.hpp"
#include "common/config.hpp"

namespace postwarden::admin {

struct Output {
    int exit_code = exit_ok;
    std::string text;     // for people, on stdout
    std::string json;     // with --json, on stdout instead of text
    std::string message;  // on stderr in both modes: why nothing was done
};

struct Context {
    const Config& config;
    Store& store;
    long long now_ms;  // the clock, unix milliseconds, as the daemons pass it to the scripts
};

// block:login, block:sender and block:domain with the reason and time from block:why.
Output blocked(Context& context);
// Removes who from block:login and block:sender, and its block:why entry; exit 1 when it was
// on neither list.
Output unblock(Context& context, std::string_view who);
// A login's usage in every quota window, the limits in force, attempts, throttle, block.
Output quota(Context& context, std::string_view login);
// Greylist triplets waiting and passed, client identities counted and auto-allowed. Walks the
// keyspace with SCAN.
Output greylist_stats(Context& context);

// SPEC §8: a client address's lockout and failures, or a login's failures, delay and block:auth
// (auth.cpp); unlock deletes them and takes the login off block:auth, exit 1 when nothing was.
Output auth_status(Context& context, std::string_view address_or_login);
Output auth_unlock(Context& context, std::string_view address_or_login);
struct LockedClient {
    std::string client;  // auth_client_id()
    long long until_ms = 0;
};
// The client addresses locked now, sorted (from policyd's index auth:locked), for `blocked`.
std::vector<LockedClient> locked_clients(Context& context);

enum class ListAction { show, add, del };
Output list(Context& context, ListAction action, std::string_view list_name,
            const std::vector<std::string>& members);

// `dkim keygen|activate|retire|list|check ...` (dkim.cpp); args start with the action, shaped
// by cli.cpp.
Output dkim_command(Context& context, const std::vector<std::string>& args);

// ---- helpers the commands share (output.cpp) -------------------------------------------------

// Text from Redis or the command line for a terminal: control bytes as \xNN.
std::string printable(std::string_view text);
// Rows as aligned columns (two spaces between), one line each.
std::string columns(const std::vector<std::vector<std::string>>& rows);
// The strings of an array reply (SMEMBERS, SCAN's keys); other types give an empty list.
std::vector<std::string> strings_of(const redis::Value& value);
// HGETALL's reply as a map.
std::map<std::string, std::string> hash_of(const redis::Value& value);

}  // namespace postwarden::admin
