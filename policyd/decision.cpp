// decision.cpp — pure decision logic of policyd; see decision.hpp for the flow.
#include "policyd/decision.hpp"

#include <charconv>

#include "common/address.hpp"
#include "common/log.hpp"

namespace postwarden::policy {

namespace {

std::string upper(std::string_view s) {
    std::string out(s);
    for (char& c : out)
        if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    return out;
}

// Every client field of a decision line, escaped and cut at log::field_max (common/log.hpp).
void append_printable(std::string& out, std::string_view s) {
    log::append_printable(out, s);
}

}  // namespace

Facts facts_of(const Request& r, const Config& config) {
    Facts f;
    f.state = upper(r.get("protocol_state"));
    f.queue_id = std::string(r.get("queue_id"));
    f.instance = std::string(r.get("instance"));
    f.client_address = std::string(r.get("client_address"));
    f.client = parse_ip(f.client_address);
    f.client_name = std::string(r.get("client_name"));
    f.helo = to_lower(r.get("helo_name"));
    f.sender = to_lower(r.get("sender"));
    f.sender_domain = domain_of(f.sender);
    f.recipient = to_lower(r.get("recipient"));
    f.recipient_domain = domain_of(f.recipient);
    f.login = to_lower(r.get("sasl_username"));
    f.outbound =
        !f.login.empty() || (f.client && any_contains(config.policyd.trusted_networks, *f.client));
    return f;
}

ListSubject list_subject(const Facts& f) {
    return {f.client, f.sender, f.sender_domain, f.recipient_domain, f.login, f.outbound};
}

std::optional<long long> whole_number(std::string_view text) {
    long long n = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
    return n;
}

std::string expand(std::string_view text, std::string_view name, std::string_view value) {
    std::string pattern = "{" + std::string(name) + "}";
    std::string out;
    std::size_t pos = 0;
    for (auto at = text.find(pattern); at != std::string_view::npos; at = text.find(pattern, pos)) {
        out.append(text.substr(pos, at - pos)).append(value);
        pos = at + pattern.size();
    }
    return out.append(text.substr(pos));
}

Decision dunno(std::string reason, std::string detail) {
    return {"DUNNO", std::move(reason), std::move(detail)};
}

Decision list_decision(const ListOutcome& o, const Config& config) {
    const auto& r = config.replies;
    std::string detail = "list=" + o.matched;
    switch (o.verdict) {
        case ListVerdict::block_login:
            return {"REJECT " + r.blocked_login, "block-login", detail};
        case ListVerdict::block_sender:
            return {"REJECT " + r.blocked_sender, "block-sender", detail};
        case ListVerdict::block_network:
            return {"REJECT " + r.blocked_network, "block-net", detail};
        case ListVerdict::block_tld:
            return {"REJECT " + r.blocked_tld, "block-tld", detail};
        case ListVerdict::allow:
            return dunno("allow", detail);
        case ListVerdict::none:
            break;
    }
    return dunno("none");
}

Decision greylist_decision(const GreylistOutcome& o, const Config& config) {
    auto secs = std::to_string(o.seconds);
    switch (o.verdict) {
        case GreylistVerdict::defer_new:
        case GreylistVerdict::defer_early:
            return {"DEFER_IF_PERMIT " + expand(config.replies.greylisted, "seconds", secs),
                    "greylist",
                    (o.verdict == GreylistVerdict::defer_new ? "triplet=new" : "triplet=early")};
        case GreylistVerdict::passed:
            if (o.seconds == 0) return dunno("greylist-passed", "delay=0");
            return {"PREPEND " + expand(config.replies.greylist_passed, "seconds", secs),
                    "greylist-passed", "delay=" + secs};
        case GreylistVerdict::known:
            return dunno("greylist-known");
        case GreylistVerdict::client_allowed:
            return dunno("greylist-client", "passed=" + secs);
    }
    return dunno("greylist-known");
}

Decision unavailable_decision(FailMode mode, std::string_view check, const Config& config) {
    std::string reason = std::string(check) + "-unavailable";
    if (mode == FailMode::open) return dunno(reason, "fail_mode=open");
    return {"DEFER_IF_PERMIT " + config.replies.unavailable, reason, "fail_mode=closed"};
}

Decision lists_unavailable_decision(const Facts& facts, bool quota_applies, const Config& config) {
    if (config.lists.fail_mode == FailMode::closed)
        return unavailable_decision(FailMode::closed, "lists", config);
    if (facts.outbound && quota_applies)
        return unavailable_decision(config.quota.fail_mode, "quota", config);
    if (!facts.outbound && config.greylist.enabled)
        return unavailable_decision(config.greylist.fail_mode, "greylist", config);
    return unavailable_decision(FailMode::open, "lists", config);
}

// Appends in place rather than with operator+ chains: fewer temporaries on a per-request path.
std::string log_line(const Facts& f, const Decision& d) {
    std::string line;
    line.reserve(160 + f.client_name.size() + f.helo.size() + f.sender.size() + f.recipient.size() +
                 d.detail.size());
    if (f.queue_id.empty())
        line.append("NOQUEUE");
    else
        append_printable(line, f.queue_id);
    line.append(": action=").append(std::string_view(d.action).substr(0, d.action.find(' ')));
    line.append(" reason=").append(d.reason);
    line.append(" client=");
    append_printable(line, f.client_name.empty() ? "unknown" : f.client_name);
    line.append("[");
    append_printable(line, f.client_address);
    line.append("]");
    if (!f.helo.empty()) {
        line.append(" helo=<");
        append_printable(line, f.helo);
        line.append(">");
    }
    if (!f.login.empty()) {
        line.append(" sasl_username=");
        append_printable(line, f.login);
    }
    line.append(" sender=<");
    append_printable(line, f.sender);
    line.append("> rcpt=<");
    append_printable(line, f.recipient);
    line.append(">");
    if (!d.detail.empty()) {
        line.append(" ");
        // several fields (SPF's domain and explanation among them): room for a few
        log::append_printable(line, d.detail, 3 * log::field_max);
    }
    return line;
}

}  // namespace postwarden::policy
