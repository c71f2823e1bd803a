// protocol.hpp — the Postfix policy delegation protocol (SMTPD_POLICY_README): an incremental,
// bounded parser of requests and the formatting of replies. Pure: bytes in, requests out; no I/O.
//
// A request is "name=value" lines ended by an empty line. Bytes may arrive split anywhere or
// several requests at once; feed() takes whatever arrived and next() hands out complete requests in
// order. Limits (one place, here): a line of at most max_line bytes, at most max_attributes
// attributes and max_request bytes per request. Past a limit, or on a line without '=', the parser
// stops for good with an error: the session answers it and closes, since the stream can no longer
// be trusted to be in step.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace postwarden::policy {

struct Limits {
    std::size_t max_line = 4096;      // Postfix' own attributes are far shorter
    std::size_t max_attributes = 64;  // Postfix 3.7 sends about 30
    std::size_t max_request = 16384;
    // Requests cut out of the input and not yet taken with next(): a client may send several
    // before reading a reply (Postfix sends one), but one read of tiny ones must not become
    // hundreds of requests in memory.
    std::size_t max_waiting = 32;
};

// One request: attributes in arrival order. Values are kept verbatim (Postfix does not encode
// them); lookups return the last occurrence, as Postfix' own attr code does. A view get()
// returns lives until the next add().
class Request {
  public:
    void add(std::string_view name, std::string_view value);
    std::string_view get(std::string_view name) const;  // "" when absent
    bool has(std::string_view name) const;
    std::size_t size() const { return attrs_.size(); }  // attributes, repeated names included

  private:
    // Names and values lie back to back in text_: one allocation per request instead of up to
    // two per attribute (the parser's largest cost, callgrind).
    struct Attr {
        std::uint32_t at;  // the name's offset in text_; the value follows it
        std::uint32_t name_size;
        std::uint32_t value_size;
    };
    std::string_view name(const Attr& a) const { return {text_.data() + a.at, a.name_size}; }
    std::string_view value(const Attr& a) const {
        return {text_.data() + a.at + a.name_size, a.value_size};
    }

    std::string text_;
    std::vector<Attr> attrs_;
};

class Parser {
  public:
    explicit Parser(Limits limits = {}) : limits_(limits) {}

    // Consumes bytes. Returns false once the stream is in error (see error()).
    bool feed(std::string_view bytes);
    // The next complete request, in arrival order.
    std::optional<Request> next();
    bool failed() const { return !error_.empty(); }
    const std::string& error() const { return error_; }
    // True while a request has started but is not yet complete (for idle-timeout logging).
    bool partial() const { return !line_.empty() || current_.size() != 0; }

  private:
    bool take_line(std::string_view line);
    bool fail(std::string why);

    Limits limits_;
    std::string line_;  // bytes of the current, unfinished line
    Request current_;
    std::size_t current_bytes_ = 0;
    std::vector<Request> ready_;
    std::size_t ready_head_ = 0;
    std::string error_;
};

// "action=TEXT\n\n", with TEXT's line breaks and NULs replaced by spaces: a reply is one line.
std::string format_reply(std::string_view action);

}  // namespace postwarden::policy
