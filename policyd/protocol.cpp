// protocol.cpp — incremental policy request parser and reply formatting.
#include "policyd/protocol.hpp"

namespace postwarden::policy {

namespace {
// Postfix' attribute names are short lower-case words; anything else is not Postfix talking.
bool valid_name(std::string_view name) {
    if (name.size() > 64) return false;
    for (char c : name) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-' || c == '.';
        if (!ok) return false;
    }
    return true;
}
}  // namespace

// Sizes fit in 32 bits: the parser bounds a request at Limits::max_request bytes.
void Request::add(std::string_view name, std::string_view value) {
    if (attrs_.empty()) {  // Postfix sends about 30 attributes, 600-900 bytes
        attrs_.reserve(40);
        text_.reserve(1024);
    }
    attrs_.push_back({static_cast<std::uint32_t>(text_.size()),
                      static_cast<std::uint32_t>(name.size()),
                      static_cast<std::uint32_t>(value.size())});
    text_.append(name).append(value);
}

std::string_view Request::get(std::string_view wanted) const {
    for (auto it = attrs_.rbegin(); it != attrs_.rend(); ++it)
        if (name(*it) == wanted) return value(*it);
    return {};
}

bool Request::has(std::string_view wanted) const {
    for (const auto& a : attrs_)
        if (name(a) == wanted) return true;
    return false;
}

bool Parser::fail(std::string why) {
    error_ = std::move(why);
    line_.clear();
    return false;
}

bool Parser::feed(std::string_view bytes) {
    while (!failed() && !bytes.empty()) {
        auto nl = bytes.find('\n');
        std::string_view piece = bytes.substr(0, nl);
        if (line_.size() + piece.size() > limits_.max_line)
            return fail("line longer than " + std::to_string(limits_.max_line) + " bytes");
        if (nl == std::string_view::npos) {
            line_.append(piece);
            break;
        }
        bytes.remove_prefix(nl + 1);
        // A line whole in this read is parsed where it lies; only one split across reads is
        // gathered in line_, which keeps its capacity for the next.
        bool ok = true;
        if (line_.empty()) {
            ok = take_line(piece);
        } else {
            line_.append(piece);
            ok = take_line(line_);
            line_.clear();
        }
        if (!ok) return false;
    }
    return !failed();
}

bool Parser::take_line(std::string_view line) {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) {
        if (current_.size() == 0) return true;  // stray blank line: tolerated
        if (ready_.size() - ready_head_ >= limits_.max_waiting)
            return fail("more than " + std::to_string(limits_.max_waiting) +
                        " requests sent without waiting for a reply");
        ready_.push_back(std::move(current_));
        current_ = Request();
        current_bytes_ = 0;
        return true;
    }
    auto eq = line.find('=');
    if (eq == std::string_view::npos || eq == 0) return fail("malformed line: expected name=value");
    if (!valid_name(line.substr(0, eq))) return fail("malformed attribute name");
    if (current_.size() >= limits_.max_attributes)
        return fail("more than " + std::to_string(limits_.max_attributes) + " attributes");
    current_bytes_ += line.size() + 1;
    if (current_bytes_ > limits_.max_request)
        return fail("request larger than " + std::to_string(limits_.max_request) + " bytes");
    current_.add(line.substr(0, eq), line.substr(eq + 1));
    return true;
}

std::optional<Request> Parser::next() {
    if (ready_head_ == ready_.size()) {
        ready_.clear();
        ready_head_ = 0;
        return std::nullopt;
    }
    return std::move(ready_[ready_head_++]);
}

std::string format_reply(std::string_view action) {
    std::string out = "action=";
    for (char c : action)
        out.push_back(c == '\n' || c == '\r' || c == '\0' ? ' ' : c);
    out += "\n\n";
    return out;
}

}  // namespace postwarden::policy
