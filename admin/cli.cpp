// cli.cpp — argument parsing, usage texts and dispatch of `postwarden`; see cli.hpp.
#include "admin/cli.hpp"

#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "admin/commands.hpp"
#include "admin/json.hpp"
#include "admin/members.hpp"
#include "common/clock.hpp"
#include "common/log.hpp"

namespace postwarden::admin {

namespace {

const char* const default_config = "/etc/postwarden/postwarden.conf";

const char* const usage_text =
    "usage: postwarden [-c FILE] [--json] COMMAND [ARGS]\n"
    "\n"
    "Shows and edits postwarden's state in Redis (the [redis] section of the configuration).\n"
    "\n"
    "commands:\n"
    "  blocked                     logins, senders and domains on the block lists, with reason\n"
    "                              and time from block:why\n"
    "  unblock LOGIN|ADDRESS       remove from block:login and block:sender, and from block:why\n"
    "  quota LOGIN                 usage in every quota window, limits, throttle expiry\n"
    "  auth status ADDRESS|LOGIN   login protection: lockout, failed logins, block:auth\n"
    "  auth unlock ADDRESS|LOGIN   lift a lockout or block:auth, forget the failed logins\n"
    "  greylist stats              triplets waiting and passed, auto-allowed clients (walks the\n"
    "                              keyspace with SCAN)\n"
    "  list show LIST [MEMBER...]  the members of LIST, or whether these are on it\n"
    "  list add LIST MEMBER...     add members, checked first: none is stored if one is invalid\n"
    "  list del LIST MEMBER...     remove members\n"
    "  dkim keygen|activate|retire|list|check ...  DKIM signing keys and selectors\n"
    "  help [COMMAND]              this text, or one command's\n"
    "\n"
    "options:\n"
    "  -c FILE      configuration file (default /etc/postwarden/postwarden.conf)\n"
    "  --json       machine-readable output on stdout (errors too: {\"error\": ...})\n"
    "  -h, --help   this text; `postwarden COMMAND --help` for one command\n"
    "  --           the end of the options (for a member starting with '-')\n"
    "\n"
    "exit status:\n"
    "  0  done\n"
    "  1  not found: nothing to unblock or remove, a member not listed\n"
    "  2  bad usage, configuration or input; nothing was changed\n"
    "  3  Redis unreachable or too slow: temporary, try again\n"
    "  4  Redis refused a command (wrong key type, ACL)\n";

std::string list_help() {
    return "usage: postwarden list show LIST [MEMBER...]\n"
           "       postwarden list add LIST MEMBER...\n"
           "       postwarden list del LIST MEMBER...\n"
           "\n"
           "The operator's lists (Redis sets under [redis] prefix):\n" +
           std::string(known_lists_text()) +
           "\n"
           "Names are lower-cased and networks written canonically (2001:db8::/32, host bits\n"
           "clear) before they are stored, as the daemons look them up. `add` checks every\n"
           "member first and stores none if one is malformed (exit 2). `show` with members\n"
           "exits 1 unless all are listed; `del` exits 1 when none was listed.\n";
}

const std::map<std::string, std::string>& command_help() {
    static const std::map<std::string, std::string> help = {
        {"blocked",
         "usage: postwarden blocked\n"
         "\n"
         "Members of block:login, block:sender and block:domain, with the reason and time\n"
         "recorded in block:why (written by the quota's auto_block).\n"},
        {"unblock",
         "usage: postwarden unblock LOGIN|ADDRESS\n"
         "\n"
         "Removes it (lower-cased) from block:login and block:sender and deletes its block:why\n"
         "entry. Exits 1 when it was on neither list. A domain: `postwarden list del\n"
         "block:domain DOMAIN`.\n"},
        {"quota",
         "usage: postwarden quota LOGIN\n"
         "\n"
         "The limits in force for LOGIN ([quota] limits or quota:limits:LOGIN), the recipients\n"
         "counted in each window now (reservations waiting for END-OF-MESSAGE included), the\n"
         "attempts counted for auto_block, the throttle's expiry and whether LOGIN is blocked.\n"
         "Read-only.\n"},
        {"greylist",
         "usage: postwarden greylist stats\n"
         "\n"
         "Greylist triplets waiting for their retry (and how many of those waited out the\n"
         "delay) and passed; client identities counted, and those auto-allowed\n"
         "(auto_allow_clients). The triplets are not indexed: this walks the whole keyspace\n"
         "with SCAN ... MATCH ... COUNT 1000, in steps that do not block Redis, but on a big\n"
         "database it takes a while.\n"},
        {"list", list_help()},
        {"auth",
         "usage: postwarden auth status|unlock ADDRESS|LOGIN\n"
         "\n"
         "Login protection for Dovecot ([auth]). ADDRESS is a client IP address (an IPv6 client\n"
         "is counted per /64, which may be given as 2001:db8:1:2::/64); anything else is a login.\n"
         "status: whether the address is locked out and until when, its failed logins in the\n"
         "window of ip_lockout; for a login, its failed logins, the delay they earn, and\n"
         "whether it is in block:auth. unlock: deletes the lockout and the failed logins, and\n"
         "takes a login off block:auth; exits 1 when there was nothing.\n"},
        {"dkim",
         "usage: postwarden dkim keygen DOMAIN [--type rsa|ed25519|both] [--bits N] [--selector "
         "S]\n"
         "       postwarden dkim activate|retire DOMAIN SELECTOR\n"
         "       postwarden dkim list [DOMAIN]\n"
         "       postwarden dkim check DOMAIN\n"
         "\n"
         "keygen writes [dkim] key_dir/DOMAIN/SELECTOR.key (default selectors rsa-YYYYMM and\n"
         "ed-YYYYMM, RSA 2048 bits), mode 0600, owned by the milter's user, never over an\n"
         "existing file, and prints the TXT records to publish; it activates nothing. activate\n"
         "adds SELECTOR to dkim:selectors:DOMAIN (refused when the milter could not use its\n"
         "key file); retire removes it (exit 1 when it was not active). list shows active\n"
         "selectors and key files; check compares each one's published key with its key file:\n"
         "ok, missing, mismatch or malformed (exit 1 when an active one is not ok, 3 when DNS\n"
         "did not answer). docs/dkim.md has the rotation recipe.\n"},
    };
    return help;
}

struct Arguments {
    std::string config_path = default_config;
    bool json = false, help = false;
    std::vector<std::string> words;  // the command and its arguments
};

// Throws Failure(exit_usage) on an unknown option or a missing option value.
Arguments parse_arguments(int argc, char** argv) {
    Arguments a;
    bool options = true;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        if (options && arg == "--") {
            options = false;
        } else if (options && arg == "-c") {
            if (i + 1 >= argc) throw Failure(exit_usage, "-c needs a FILE");
            a.config_path = argv[++i];
        } else if (options && arg == "--json") {
            a.json = true;
        } else if (options && (arg == "-h" || arg == "--help")) {
            a.help = true;
        } else if (options && a.words.size() >= 2 && a.words[0] == "dkim" &&
                   (arg == "--type" || arg == "--bits" || arg == "--selector")) {
            a.words.push_back(arg);  // dkim keygen's own options, read by admin/dkim.cpp
        } else if (options && arg.size() > 1 && arg[0] == '-') {
            throw Failure(exit_usage, "unknown option '" + printable(arg) + "'");
        } else {
            a.words.push_back(arg);
        }
    }
    return a;
}

// The command's arguments must number between min and max.
void arity(const Arguments& a, std::size_t min, std::size_t max, const std::string& name) {
    auto n = a.words.size() - 1;
    const auto& help = command_help().at(name);
    if (n < min || n > max) throw Failure(exit_usage, help.substr(0, help.find('\n')));
}

const std::map<std::string, ListAction> list_actions = {
    {"show", ListAction::show}, {"add", ListAction::add}, {"del", ListAction::del}};

void check_dkim_usage(const Arguments& a) {
    const auto n = a.words.size();
    const auto action = n > 1 ? a.words[1] : "";
    const bool ok = (action == "keygen" && n >= 3) || (action == "list" && n <= 3) ||
                    (action == "check" && n == 3) ||
                    ((action == "activate" || action == "retire") && n == 4);
    if (!ok) {
        const auto& help = command_help().at("dkim");
        throw Failure(exit_usage, help.substr(0, help.find("\n\n")));
    }
}

// The command's shape, checked before the configuration is read or Redis asked.
void check_usage(const Arguments& a) {
    const auto& cmd = a.words[0];
    if (cmd == "blocked") arity(a, 0, 0, cmd);
    if (cmd == "unblock" || cmd == "quota") arity(a, 1, 1, cmd);
    if (cmd == "greylist" && (a.words.size() != 2 || a.words[1] != "stats"))
        throw Failure(exit_usage, "usage: postwarden greylist stats");
    if (cmd == "auth" &&
        (a.words.size() != 3 || (a.words[1] != "status" && a.words[1] != "unlock")))
        throw Failure(exit_usage, "usage: postwarden auth status|unlock ADDRESS|LOGIN");
    if (cmd == "dkim") check_dkim_usage(a);
    if (cmd == "list" && (a.words.size() < 3 || !list_actions.contains(a.words[1])))
        throw Failure(exit_usage, "usage: postwarden list show|add|del LIST [MEMBER...]");
}

Output dispatch(const Arguments& a, Context& ctx) {
    const auto& cmd = a.words[0];
    std::vector<std::string> rest(a.words.begin() + 1, a.words.end());
    if (cmd == "blocked") return blocked(ctx);
    if (cmd == "unblock") return unblock(ctx, rest[0]);
    if (cmd == "quota") return quota(ctx, rest[0]);
    if (cmd == "greylist") return greylist_stats(ctx);
    if (cmd == "auth")
        return rest[0] == "status" ? auth_status(ctx, rest[1]) : auth_unlock(ctx, rest[1]);
    if (cmd == "dkim") return dkim_command(ctx, rest);
    std::vector<std::string> members(rest.begin() + 2, rest.end());
    return list(ctx, list_actions.at(rest[0]), rest[1], members);
}

bool known_command(const std::string& word) {
    return command_help().contains(word);
}

// Loads the configuration, runs the command, prints its output; Failure propagates.
int run_command(const Arguments& a, std::ostream& out, std::ostream& err) {
    std::string error;
    auto config = load_config(a.config_path, &error);
    if (!config) throw Failure(exit_usage, error);
    // Connection trouble is logged by the Redis client with its reason (refused, authentication
    // failed ...); that goes to stderr, the rest of its chatter is below warning.
    log::open("postwarden", true);
    log::set_min_level(log::Level::warning);
    Store store(*config);
    Context ctx{*config, store, unix_now_ms()};
    auto output = dispatch(a, ctx);
    out << (a.json ? output.json : output.text);
    if (!output.message.empty()) err << "postwarden: " << output.message << "\n";
    return output.exit_code;
}

// A failure on stderr, and with --json as {"error": ..., "exit_code": ...} on stdout too.
int report(const Arguments& a, int code, const std::string& message, std::ostream& out,
           std::ostream& err) {
    err << "postwarden: " << message << "\n";
    if (a.json) {
        JsonWriter json;
        json.begin_object().field("error", message).field("exit_code", code).end_object();
        out << json.str();
    }
    return code;
}

}  // namespace

int run_cli(int argc, char** argv, std::ostream& out, std::ostream& err) {
    Arguments a;
    try {
        a = parse_arguments(argc, argv);
        if (!a.words.empty() && a.words[0] == "help") {
            a.help = true;
            a.words.erase(a.words.begin());
        }
        if (a.help) {
            if (a.words.empty()) return out << usage_text, exit_ok;
            if (!known_command(a.words[0]))
                throw Failure(exit_usage, "unknown command '" + printable(a.words[0]) + "'");
            return out << command_help().at(a.words[0]), exit_ok;
        }
        if (a.words.empty()) return err << usage_text, exit_usage;
        if (!known_command(a.words[0])) {
            err << usage_text;
            throw Failure(exit_usage, "unknown command '" + printable(a.words[0]) + "'");
        }
        check_usage(a);
        return run_command(a, out, err);
    } catch (const Failure& f) {
        return report(a, f.code, f.what(), out, err);
    } catch (const std::exception& e) {
        // std::stoll on a value that is not what the scripts write, and the like.
        return report(a, exit_redis_error, std::string("unexpected data in Redis: ") + e.what(),
                      out, err);
    }
}

}  // namespace postwarden::admin
