// session.hpp — one SMTP connection as the milter sees it, and the message in progress. The
// libmilter callbacks (callbacks.cpp) feed it what the MTA sends and apply the Effects it returns;
// nothing here includes libmilter, so the decisions read as plain C++.
//
// Entry points: Session::connect/helo/mail/rcpt/header/end_of_headers/body/end_of_message/abort.
//
// Threading: a Session belongs to one libmilter connection, whose callbacks libmilter runs one
// at a time; it only shares the (thread-safe) Services. Blocking: SPF at MAIL FROM, DKIM key and
// DMARC lookups at end of message, Redis for S8 and S2 — each bounded by its timeout.
//
// Memory per connection is bounded: recipients past max_recipients are not kept (greylisting uses
// the first ones), at most max_from_fields From fields of at most max_from_bytes are kept, at
// most max_forged_auth_results indices of forged Authentication-Results, and the DKIM verifier
// bounds the rest (common/mail/dkim.hpp). The body is hashed, never stored. HARDENING.md lists
// every bound.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/dns/spf.hpp"
#include "common/greylist.hpp"
#include "common/inet.hpp"
#include "common/mail/dkim.hpp"
#include "common/mail/dkim_sign.hpp"
#include "milter/effects.hpp"
#include "milter/inbound_decision.hpp"
#include "milter/services.hpp"

namespace postwarden::milter {

constexpr std::size_t max_recipients = 1000;
constexpr std::size_t max_from_fields = 8;
constexpr std::size_t max_from_bytes = 64 * 1024;
// Authentication-Results fields claiming our authserv-id, remembered to be removed. A message
// with more is refused (550 5.7.1) rather than passed on with forged verdicts left in it.
constexpr std::size_t max_forged_auth_results = 64;

struct Message {
    std::string queue_id;
    std::string sender;  // envelope, without <>
    std::string login;   // {auth_authen}
    std::vector<std::string> recipients;
    std::optional<spf::Outcome> spf_mailfrom, spf_helo;
    int auth_results_seen = 0;
    std::vector<int> forged_auth_results;  // 1-based among Authentication-Results fields
    bool too_many_forged = false;          // more than max_forged_auth_results
    std::vector<std::string> from_fields;
    int from_count = 0;  // all From fields, also those past max_from_fields
    bool from_too_long = false;
    std::unique_ptr<dkim::Verifier> dkim;
    // Outbound: the header fields [dkim] sign_headers names, kept until end of headers (at most
    // dkim::max_signed_header_bytes: past it the message is not signed), then the signer.
    std::vector<std::string> signed_fields;
    std::size_t signed_bytes = 0;
    bool signed_too_large = false;
    std::unique_ptr<dkim::Signer> signer;
    std::string dkim_note;  // for the log line
};

class Session {
  public:
    // Takes the configuration in force now and keeps it for the whole connection.
    explicit Session(const Services& services)
        : services_(services), config_(services.config()), signing_(services.signing()) {}

    // client_ip: empty or unparseable for non-SMTP mail (non_smtpd_milters), which is outbound.
    Effects connect(std::string_view client_name, std::string_view client_ip);
    Effects helo(std::string_view name);
    Effects mail(std::string_view sender, std::string_view login, std::string_view queue_id);
    Effects rcpt(std::string_view recipient);
    // value as libmilter gives it: with its leading space when SMFIP_HDR_LEADSPC was agreed.
    Effects header(std::string_view name, std::string_view value, bool leading_space);
    Effects end_of_headers(std::string_view queue_id);
    Effects body(std::string_view chunk);
    Effects end_of_message(std::string_view queue_id);
    void abort();  // the message ends without end_of_message; the connection may go on

  private:
    bool outbound() const;
    Effects end_of_message_inbound();  // inbound.cpp
    Facts inbound_facts();
    std::optional<GreylistKeys> look_up(Decision::Lookup what, Facts& facts);
    Effects end_of_message_outbound();
    Effects check_from();     // S8 on the header From
    Effects start_signing();  // outbound, after S8 passed
    void keep_for_signing(std::string_view name, const std::string& field);
    void add_signatures(Effects& e);
    Effects refuse_forged() const;
    void remove_forged(Effects& e) const;
    std::string removed_note() const;  // " removed_auth_results=N" for the log, or ""
    std::string log_prefix() const;

    const Services& services_;
    const std::shared_ptr<const Config> config_;
    const std::shared_ptr<const dkim::SigningLibrary> signing_;
    std::string client_name_, helo_;
    std::optional<IpAddress> client_;
    bool trusted_network_ = false;
    Message message_;
};

std::string_view trim_header_value(std::string_view value);

}  // namespace postwarden::milter
