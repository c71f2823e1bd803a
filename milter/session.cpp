// session.cpp — the milter's steps for one connection; see session.hpp. Inbound mail is verified
// (SPF at MAIL FROM, DKIM while the message streams, DMARC and S2 at its end); outbound mail
// (authenticated, trusted network, or non-SMTP) is only checked for S8. On every path,
// Authentication-Results fields claiming our authserv-id are removed.
#include "milter/session.hpp"

#include "common/address.hpp"
#include "common/log.hpp"
#include "milter/checks.hpp"
#include "milter/metrics.hpp"
#include "milter/signer.hpp"
#include "milter/verdict.hpp"

namespace postwarden::milter {

namespace {

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && to_lower(a) == to_lower(b);
}

// A field name as readers compare it: RFC 5322's obsolete syntax allows blanks before the colon
// ("Authentication-Results :"), and a reader that accepts them must not see a field we missed.
std::string_view field_name(std::string_view name) {
    while (!name.empty() && (name.back() == ' ' || name.back() == '\t'))
        name.remove_suffix(1);
    return name;
}

Effects reply(Effects::Step step, std::string rcode, std::string xcode, std::string text) {
    Effects e;
    e.step = step;
    e.rcode = std::move(rcode);
    e.xcode = std::move(xcode);
    e.text = std::move(text);
    return e;
}

Effects mismatch() {
    return reply(Effects::Step::reject, "550", "5.7.1", "Sender address does not match your login");
}

// [replies] unavailable, split into its status code and text.
Effects unavailable(const Config& config) {
    const auto& text = config.replies.unavailable;
    auto space = text.find(' ');
    return reply(
        Effects::Step::tempfail, "451", text.substr(0, space),
        space == std::string::npos ? "Policy service unavailable" : text.substr(space + 1));
}

// Addresses for the log: control characters would forge log lines.
std::string strip_brackets(std::string_view s) {
    while (!s.empty() && (s.front() == '<' || s.front() == ' '))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == '>' || s.back() == ' '))
        s.remove_suffix(1);
    return std::string(s);
}

}  // namespace

std::string_view trim_header_value(std::string_view v) {
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t'))
        v.remove_prefix(1);
    return v;
}

bool Session::outbound() const {
    return !message_.login.empty() || trusted_network_ || !client_;
}

std::string Session::log_prefix() const {
    return milter::log_prefix(message_.queue_id);
}

Effects Session::connect(std::string_view client_name, std::string_view client_ip) {
    client_name_ = std::string(client_name);
    client_ = parse_ip(client_ip);
    trusted_network_ = client_ && any_contains(config_->policyd.trusted_networks, *client_);
    return {};
}

Effects Session::helo(std::string_view name) {
    helo_ = std::string(name.substr(0, 255));
    return {};
}

Effects Session::mail(std::string_view sender, std::string_view login, std::string_view queue_id) {
    message_ = Message{};
    message_.sender = strip_brackets(sender);
    message_.login = std::string(login);
    message_.queue_id = std::string(queue_id);
    const auto& config = *config_;
    if (!message_.login.empty()) {
        if (!config.milter.enforce_from || message_.sender.empty()) return {};
        auto allowed = sender_allowed(services_, *config_, message_.login, {message_.sender});
        if (allowed == CheckResult::yes) return {};
        count_action(allowed == CheckResult::no ? "reject" : "tempfail", "sender-login-mismatch");
        log::info(log_prefix() + "action=" + (allowed == CheckResult::no ? "reject" : "tempfail") +
                  " reason=sender-login-mismatch login=" + printable(message_.login) +
                  " sender=" + printable(message_.sender));
        return allowed == CheckResult::no ? mismatch() : unavailable(config);
    }
    if (outbound()) return {};
    auto ip = client_->to_string();
    // One deadline for both checks: together they answer within Postfix's milter timeout.
    auto deadline = spf::Checker::Clock::now() + services_.spf.deadline();
    message_.spf_mailfrom = services_.spf.check_mailfrom(ip, message_.sender, helo_, deadline);
    if (!helo_.empty()) message_.spf_helo = services_.spf.check_helo(ip, helo_, deadline);
    message_.dkim = std::make_unique<dkim::Verifier>(services_.dkim, queue_id);
    return {};
}

Effects Session::rcpt(std::string_view recipient) {
    if (message_.recipients.size() < max_recipients)
        message_.recipients.push_back(strip_brackets(recipient));
    return {};
}

Effects Session::header(std::string_view name, std::string_view value, bool leading_space) {
    std::string field(name);
    field += leading_space ? ":" : ": ";
    field += value;
    if (message_.dkim) message_.dkim->header(field);
    if (outbound()) keep_for_signing(field_name(name), field);
    auto text = trim_header_value(value);
    if (iequals(field_name(name), "From")) {
        ++message_.from_count;
        if (text.size() > max_from_bytes)
            message_.from_too_long = true;
        else if (message_.from_fields.size() < max_from_fields)
            message_.from_fields.emplace_back(text);
    } else if (iequals(field_name(name), "Authentication-Results")) {
        ++message_.auth_results_seen;
        // Noted on every path, outbound too (SPEC §5): a SASL user, a web application on a
        // trusted network or a local sendmail(1) user could otherwise hand a local mailbox a
        // verdict that looks like ours.
        if (claims_authserv_id(text, config_->milter.authserv_id)) {
            if (message_.forged_auth_results.size() < max_forged_auth_results)
                message_.forged_auth_results.push_back(message_.auth_results_seen);
            else
                message_.too_many_forged = true;
        }
    }
    return {};
}

Effects Session::end_of_headers(std::string_view queue_id) {
    if (!queue_id.empty()) message_.queue_id = std::string(queue_id);
    if (message_.dkim) message_.dkim->end_of_headers();
    if (!outbound()) return {};
    Effects e = check_from();
    return e.step == Effects::Step::next ? start_signing() : e;
}

Effects Session::check_from() {
    if (message_.login.empty() || !config_->milter.enforce_from) return {};
    // S8 on the header From: every address must be the login's (a missing From is added by
    // Postfix' cleanup for local mail, and is nobody's address).
    auto from = read_from(message_.from_fields, message_.from_count, message_.from_too_long);
    std::vector<std::string> addresses;
    for (const auto& a : from.addresses)
        addresses.push_back(a.address());
    auto allowed = from.kind == FromFields::Kind::malformed ? CheckResult::no
                   : addresses.empty()
                       ? CheckResult::yes
                       : sender_allowed(services_, *config_, message_.login, addresses);
    if (allowed == CheckResult::yes) return {};
    std::string from_text = message_.from_fields.empty() ? "" : message_.from_fields.front();
    count_action(allowed == CheckResult::no ? "reject" : "tempfail", "from-login-mismatch");
    log::info(log_prefix() + "action=" + (allowed == CheckResult::no ? "reject" : "tempfail") +
              " reason=from-login-mismatch login=" + printable(message_.login) +
              " from=" + printable(from_text));
    return allowed == CheckResult::no ? mismatch() : unavailable(*config_);
}

void Session::keep_for_signing(std::string_view name, const std::string& field) {
    if (message_.signed_too_large || !signing_->selection().signs(name)) return;
    message_.signed_bytes += field.size();
    if (message_.signed_bytes > dkim::max_signed_header_bytes) {
        message_.signed_too_large = true;
        message_.signed_fields.clear();
        return;
    }
    message_.signed_fields.push_back(field);
}

// The keys of the From domain, and the signer fed the kept fields; the body streams into it.
Effects Session::start_signing() {
    if (message_.signed_too_large) {
        message_.dkim_note = "dkim=unsigned dkim_reason=headers-too-large";
        return {};
    }
    auto plan =
        plan_signing(services_, *config_,
                     read_from(message_.from_fields, message_.from_count, message_.from_too_long));
    for (const auto& why : plan.skipped)
        log::warning(log_prefix() + "dkim: selector " + printable(why) + "; skipped");
    message_.dkim_note = std::move(plan.note);
    if (plan.outcome == SigningPlan::Outcome::unavailable) {
        count_action("tempfail", "dkim-selectors-unavailable");
        log::info(log_prefix() + "action=tempfail reason=dkim-selectors-unavailable" +
                  (message_.login.empty() ? "" : " login=" + printable(message_.login)));
        return unavailable(*config_);
    }
    if (plan.outcome == SigningPlan::Outcome::sign)
        message_.signer = std::make_unique<dkim::Signer>(signing_, std::move(plan.keys),
                                                         message_.signed_fields, message_.queue_id);
    message_.signed_fields = {};
    return {};
}

Effects Session::body(std::string_view chunk) {
    if (message_.dkim) message_.dkim->body(chunk);
    if (message_.signer) message_.signer->body(chunk);
    return {};
}

void Session::add_signatures(Effects& e) {
    if (!message_.signer) return;
    std::vector<std::string> problems;
    auto signatures = message_.signer->finish(&problems);
    for (const auto& why : problems)
        log::warning(log_prefix() + "dkim: " + printable(why) + "; not signed with it");
    std::string selectors;
    for (const auto& s : signatures) {
        e.insert_headers.emplace_back("DKIM-Signature", s.value);
        selectors += (selectors.empty() ? "" : ",") + s.selector;
    }
    message_.dkim_note = signatures.empty()
                             ? "dkim=unsigned dkim_reason=signing-failed"
                             : "dkim=signed d=" + signatures.front().domain + " s=" + selectors;
}

Effects Session::end_of_message(std::string_view queue_id) {
    if (!queue_id.empty()) message_.queue_id = std::string(queue_id);
    metrics().messages.inc(outbound() ? 1 : 0);
    Effects e = message_.too_many_forged ? refuse_forged()
                : outbound()             ? end_of_message_outbound()
                                         : end_of_message_inbound();
    message_ = Message{};
    return e;
}

// Outbound mail is not verified (SPEC §5), but what claims our id goes all the same.
Effects Session::end_of_message_outbound() {
    Effects e;
    remove_forged(e);
    add_signatures(e);
    count_action("accept", "outbound");
    log::info(log_prefix() + "action=accept reason=outbound" +
              (message_.login.empty() ? "" : " login=" + printable(message_.login)) +
              removed_note() + (message_.dkim_note.empty() ? "" : " " + message_.dkim_note));
    return e;
}

// More fields claiming our id than the milter keeps track of: refused rather than passed on
// with forged verdicts left in it, whichever way the message came.
Effects Session::refuse_forged() const {
    count_action("reject", "forged-auth-results");
    log::info(log_prefix() + "action=reject reason=forged-auth-results client=" +
              (client_ ? client_->to_string() : "unknown") + " sender=<" +
              printable(message_.sender) + ">" +
              (message_.login.empty() ? "" : " login=" + printable(message_.login)));
    return reply(Effects::Step::reject, "550", "5.7.1",
                 "Too many Authentication-Results fields claiming " +
                     printable(config_->milter.authserv_id));
}

// Highest index first: Postfix renumbers the fields of a name after each deletion.
void Session::remove_forged(Effects& e) const {
    e.remove_auth_results.assign(message_.forged_auth_results.rbegin(),
                                 message_.forged_auth_results.rend());
}

std::string Session::removed_note() const {
    const auto n = message_.forged_auth_results.size();
    return n == 0 ? "" : " removed_auth_results=" + std::to_string(n);
}

void Session::abort() {
    message_ = Message{};
}

}  // namespace postwarden::milter
