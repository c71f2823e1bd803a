// blocked.cpp — `postwarden blocked` and `postwarden unblock`: the block lists that stop senders
// (block:login, block:sender, block:domain; SPEC §3, S4, S6) and logins (block:auth and the client
// addresses locked out, SPEC §8) with the reasons policyd's
// auto_block writes into block:why ("auto_block 3000/3600: 3001 recipients attempted at
// 2024-05-01T09:41:17Z", policyd/quota.cpp block_reason).
#include <algorithm>

#include "admin/commands.hpp"
#include "admin/json.hpp"
#include "common/address.hpp"
#include "common/quota_keys.hpp"

namespace postwarden::admin {

namespace {

// The lists `blocked` shows; `unblock` edits the first two (a domain is unblocked with
// `list del block:domain`, a login in block:auth with `auth unlock`).
const std::vector<std::string> blocked_lists = {"block:login", "block:sender", "block:domain",
                                                "block:auth"};

struct Why {
    std::string reason, time;  // time: RFC 3339, "" when the text carries none
};

bool looks_like_rfc3339(std::string_view t) {
    if (t.size() != 20 || t[4] != '-' || t[7] != '-' || t[10] != 'T' || t[13] != ':' ||
        t[16] != ':' || t[19] != 'Z')
        return false;
    for (std::size_t i : {0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18})
        if (t[i] < '0' || t[i] > '9') return false;
    return true;
}

// block:why's value split into reason and time; a value written by hand is all reason.
Why parse_why(std::string_view text) {
    auto at = text.rfind(" at ");
    if (at != std::string_view::npos && looks_like_rfc3339(text.substr(at + 4)))
        return {std::string(text.substr(0, at)), std::string(text.substr(at + 4))};
    return {std::string(text), ""};
}

void why_json(JsonWriter& json, const std::string* why) {
    if (!why) {
        json.key("reason").null().key("time").null().key("why").null();
        return;
    }
    auto w = parse_why(*why);
    json.field("reason", w.reason).key("time");
    w.time.empty() ? json.null() : json.value(w.time);
    json.field("why", *why);
}

}  // namespace

Output blocked(Context& ctx) {
    std::vector<std::vector<std::string>> commands;
    for (const auto& name : blocked_lists)
        commands.push_back({"SMEMBERS", ctx.store.key(name)});
    commands.push_back({"HGETALL", ctx.store.key("block:why")});
    auto replies = ctx.store.batch(std::move(commands));
    auto why = hash_of(replies.back());

    Output out;
    JsonWriter json;
    json.begin_object().key("blocked").begin_array();
    std::vector<std::vector<std::string>> rows = {{"LIST", "MEMBER", "SINCE", "REASON"}};
    for (std::size_t i = 0; i < blocked_lists.size(); ++i) {
        auto members = strings_of(replies[i]);
        std::sort(members.begin(), members.end());
        for (const auto& m : members) {
            auto it = why.find(m);
            const std::string* text = it == why.end() ? nullptr : &it->second;
            json.begin_object().field("list", blocked_lists[i]).field("member", m);
            why_json(json, text);
            json.end_object();
            auto w = text ? parse_why(*text) : Why{"-", ""};
            rows.push_back({blocked_lists[i], printable(m), w.time.empty() ? "-" : w.time,
                            printable(w.reason)});
        }
    }
    // Client addresses locked out for failed logins (SPEC §8): they end by themselves.
    for (const auto& locked : locked_clients(ctx)) {
        auto reason = "too many failed logins, locked until " + rfc3339(locked.until_ms);
        json.begin_object().field("list", "auth:lockout").field("member", locked.client);
        json.field("reason", reason).key("time").null().field("why", reason).end_object();
        rows.push_back({"auth:lockout", locked.client, "-", reason});
    }
    json.end_array().end_object();
    out.json = json.str();
    out.text = rows.size() > 1 ? columns(rows) : "nothing is blocked\n";
    return out;
}

Output unblock(Context& ctx, std::string_view who_text) {
    auto who = to_lower(who_text);
    if (who.empty()) throw Failure(exit_usage, "unblock: empty name");
    auto why_key = ctx.store.key("block:why");
    // The reason is read before it is deleted, to say what was lifted. block:login goes before
    // block:why: policyd writes them the other way round, so a blocked login never lacks its
    // reason, and neither does it here for the moment between the two.
    auto replies = ctx.store.batch({{"HGET", why_key, who},
                                    {"SREM", ctx.store.key("block:login"), who},
                                    {"SREM", ctx.store.key("block:sender"), who},
                                    {"HDEL", why_key, who}});
    const auto& why = replies[0];
    bool had_why = why.type == redis::Value::Type::string;

    Output out;
    JsonWriter json;
    json.begin_object().field("member", who).key("removed_from").begin_array();
    std::vector<std::string> removed;
    for (std::size_t i = 0; i < 2; ++i)
        if (replies[i + 1].integer > 0) {
            removed.push_back(blocked_lists[i]);
            json.value(blocked_lists[i]);
        }
    json.end_array();
    why_json(json, had_why ? &why.str : nullptr);
    out.json = json.end_object().str();

    for (const auto& list : removed) {
        out.text += "removed " + printable(who) + " from " + list;
        if (had_why) out.text += " (" + printable(why.str) + ")";
        out.text += "\n";
    }
    if (removed.empty()) {
        out.exit_code = exit_not_found;
        out.message = printable(who) + " is not on block:login or block:sender";
        if (had_why) out.message += "; its stale block:why entry was removed";
        if (who.find('@') == std::string::npos)
            out.message += " (a domain is unblocked with: postwarden list del block:domain " +
                           printable(who) + ")";
    }
    return out;
}

}  // namespace postwarden::admin
