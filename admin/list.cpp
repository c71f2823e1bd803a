// list.cpp — `postwarden list show|add|del LIST MEMBER...`: the operator's SETs of SPEC §3.
// `add` checks every member first (admin/members.hpp) and writes nothing unless all are valid,
// then adds them with one SADD; `del` removes with one SREM. The daemons see an edit on their
// next request (policyd's list cache is told by Redis), so nothing needs a reload.
#include <algorithm>

#include "admin/commands.hpp"
#include "admin/json.hpp"
#include "admin/members.hpp"
#include "common/address.hpp"
#include "common/idna.hpp"

namespace postwarden::admin {

namespace {

// The members given, normalised, without duplicates, in the order given.
std::vector<std::string> unique(std::vector<std::string> members) {
    std::vector<std::string> out;
    for (auto& m : members)
        if (std::find(out.begin(), out.end(), m) == out.end()) out.push_back(std::move(m));
    return out;
}

std::vector<std::string> valid_members(const ListName& list,
                                       const std::vector<std::string>& given) {
    std::vector<std::string> out;
    std::string problems;
    for (const auto& text : given) {
        std::string error;
        if (auto m = normalize_member(list.kind, text, &error))
            out.push_back(*m);
        else if (error.starts_with("'" + text + "'"))  // parse_cidr names the text itself
            problems += "\n  " + printable(error);
        else
            problems += "\n  '" + printable(text) + "': " + error;
    }
    if (!problems.empty())
        throw Failure(exit_usage, list.name + " takes " + std::string(describe(list.kind)) +
                                      "; refused, nothing was stored:" + problems);
    return unique(std::move(out));
}

// SMISMEMBER's answers as booleans, one per member.
std::vector<bool> listed(const redis::Value& reply, std::size_t count) {
    std::vector<bool> out(count, false);
    for (std::size_t i = 0; i < count && i < reply.elements.size(); ++i)
        out[i] = reply.elements[i].integer != 0;
    return out;
}

Output show_all(Context& ctx, const ListName& list) {
    auto members = strings_of(ctx.store.run({"SMEMBERS", ctx.store.key(list.name)}));
    std::sort(members.begin(), members.end());
    Output out;
    JsonWriter json;
    json.begin_object().field("list", list.name).key("members").begin_array();
    for (const auto& m : members) {
        out.text += printable(m) + "\n";
        json.value(m);
    }
    out.json = json.end_array().end_object().str();
    return out;
}

// `show LIST MEMBER...`: like grep, exit 1 unless every member is listed.
Output show_some(Context& ctx, const ListName& list, const std::vector<std::string>& members) {
    std::vector<std::string> argv = {"SMISMEMBER", ctx.store.key(list.name)};
    argv.insert(argv.end(), members.begin(), members.end());
    auto is = listed(ctx.store.run(std::move(argv)), members.size());
    Output out;
    JsonWriter json;
    json.begin_object().field("list", list.name).key("members").begin_array();
    std::vector<std::vector<std::string>> rows;
    for (std::size_t i = 0; i < members.size(); ++i) {
        rows.push_back({printable(members[i]), is[i] ? "listed" : "not listed"});
        json.begin_object().field("member", members[i]).field("listed", bool(is[i])).end_object();
        if (!is[i]) out.exit_code = exit_not_found;
    }
    out.text = columns(rows);
    out.json = json.end_array().end_object().str();
    return out;
}

// add and del: which members were (and were not) on the list before the edit, in one round trip
// with the edit itself. `also` are edited too but reported only when they were changed: the
// spellings an older version (or a redis-cli user) may have stored for a member.
Output edit(Context& ctx, ListAction action, const ListName& list,
            const std::vector<std::string>& members, const std::vector<std::string>& also = {}) {
    auto key = ctx.store.key(list.name);
    std::vector<std::string> check = {"SMISMEMBER", key}, change = {"SADD", key};
    if (action == ListAction::del) change[0] = "SREM";
    for (auto* names : {&members, &also}) {
        check.insert(check.end(), names->begin(), names->end());
        change.insert(change.end(), names->begin(), names->end());
    }
    auto replies = ctx.store.batch({std::move(check), std::move(change)});
    auto was = listed(replies[0], members.size() + also.size());

    bool add = action == ListAction::add;
    std::vector<std::string> done, unchanged;
    for (std::size_t i = 0; i < members.size(); ++i)
        (was[i] != add ? done : unchanged).push_back(members[i]);
    for (std::size_t i = 0; i < also.size(); ++i)
        if (was[members.size() + i] != add) done.push_back(also[i]);

    Output out;
    JsonWriter json;
    json.begin_object().field("list", list.name).key(add ? "added" : "removed").begin_array();
    for (const auto& m : done)
        json.value(m);
    json.end_array().key(add ? "already_listed" : "not_listed").begin_array();
    for (const auto& m : unchanged)
        json.value(m);
    out.json = json.end_array().end_object().str();

    for (const auto& m : done) {
        // m is the stored spelling (lower-cased, canonical CIDR), which may differ from the typed.
        out.text += (add ? "added " : "removed ") + printable(m) + (add ? " to " : " from ") +
                    list.name + "\n";
    }
    for (const auto& m : unchanged)
        out.text += printable(m) + (add ? " was already on " : " was not on ") + list.name + "\n";
    if (!add && done.empty()) {
        out.exit_code = exit_not_found;
        out.message = "nothing removed: not on " + list.name;
    }
    return out;
}

}  // namespace

Output list(Context& ctx, ListAction action, std::string_view list_name,
            const std::vector<std::string>& given) {
    std::string error;
    auto list = parse_list_name(list_name, &error);
    if (!list) throw Failure(exit_usage, error);
    if (action == ListAction::show && given.empty()) return show_all(ctx, *list);
    if (given.empty()) throw Failure(exit_usage, "list: no MEMBER given");
    if (action == ListAction::add) return edit(ctx, action, *list, valid_members(*list, given));
    std::vector<std::string> members, typed;
    for (const auto& g : given) {
        members.push_back(lenient_member(list->kind, g));
        // An internationalized member stored as typed (U-labels) never matched a lookup: `del`
        // removes that spelling too.
        if (!is_ascii(g) && to_lower(g) != members.back()) typed.push_back(to_lower(g));
    }
    members = unique(std::move(members));
    if (action == ListAction::show) return show_some(ctx, *list, members);
    return edit(ctx, action, *list, members, unique(std::move(typed)));
}

}  // namespace postwarden::admin
