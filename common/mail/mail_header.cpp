// mail_header.cpp — the address-list parser; see mail_header.hpp.
//
// Two passes, each linear: lex() cuts the value into tokens (atoms, quoted-strings, encoded
// words, domain literals and the specials < > @ , ; : .), dropping whitespace, folding and
// comments; the Parser then reads the address-list grammar from the tokens. Dropping CFWS in the
// lexer is what makes the obsolete forms (CFWS around the dots of a local part or a domain) read
// like the current ones, as RFC 5322 §4.4 asks.
#include "common/mail/mail_header.hpp"

#include <cstdint>

#include "common/address.hpp"
#include "common/idna.hpp"

namespace postwarden {

namespace {

enum class Kind : std::uint8_t { atom, quoted, encoded_word, literal, special };

struct Token {
    Kind kind;
    char special;               // for Kind::special
    std::uint32_t begin, end;   // the text: inside the quotes or brackets for quoted and literal
    std::uint32_t at() const {  // where the token starts in the value, for errors
        return kind == Kind::quoted || kind == Kind::literal ? begin - 1 : begin;
    }
};

bool is_blank(char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

// RFC 5322 specials, with '[' ']' and '\\' (which cannot stand alone in an atom either).
bool is_special(char c) {
    return c != '\0' && std::string_view("()<>[]:;@\\,.\"").find(c) != std::string_view::npos;
}

// Control characters other than blanks are not atext either, but in a display name they are
// harmless (obs-phrase is lenient there); an address refuses them later.
bool atom_char(char c) {
    return c != '\0' && !is_blank(c) && !is_special(c);
}

bool atext(unsigned char c) {
    if (c >= 0x80) return true;  // UTF8-non-ascii, RFC 6532 §3.2
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
    for (char x : std::string_view("!#$%&'*+-/=?^_`{|}~"))
        if (c == static_cast<unsigned char>(x)) return true;
    return false;
}

// RFC 2047 §2 token: printable ASCII but for blanks and especials.
bool encoded_word_token_char(char c) {
    return c > ' ' && c < 0x7f &&
           std::string_view("()<>@,;:\"/[]?.=").find(c) == std::string_view::npos;
}

// The end of an encoded word "=?charset?encoding?text?=" starting at i, or npos.
std::size_t encoded_word_end(std::string_view s, std::size_t i) {
    if (s.compare(i, 2, "=?") != 0) return std::string_view::npos;
    std::size_t j = i + 2;
    for (int part = 0; part < 2; ++part) {  // charset, encoding
        std::size_t start = j;
        while (j < s.size() && encoded_word_token_char(s[j]))
            ++j;
        if (j == start || j == s.size() || s[j] != '?') return std::string_view::npos;
        ++j;
    }
    while (j < s.size() && s[j] > ' ' && s[j] < 0x7f && s[j] != '?')
        ++j;
    if (s.compare(j, 2, "?=") != 0) return std::string_view::npos;
    return j + 2;
}

struct Failure {
    std::string what;
    std::size_t at = 0;
};

class Lexer {
  public:
    explicit Lexer(std::string_view s) : s_(s) {}

    bool run(std::vector<Token>& out) {
        while (i_ < s_.size()) {
            char c = s_[i_];
            bool ok = true;
            if (is_blank(c))
                ++i_;
            else if (c == '(')
                ok = comment();
            else if (c == '"')
                ok = delimited(out, Kind::quoted, '"', "unterminated quoted string");
            else if (c == '[')
                ok = delimited(out, Kind::literal, ']', "unterminated domain literal");
            else if (c == ')' || c == ']' || c == '\\' || c == '\0')
                ok = fail(c == ')'    ? "')' without '('"
                          : c == ']'  ? "']' without '['"
                          : c == '\\' ? "'\\' outside a quoted string or comment"
                                      : "NUL byte",
                          i_);
            else if (is_special(c))
                out.push_back({Kind::special, c, pos(i_), pos(i_ + 1)}), ++i_;
            else
                word(out);
            if (!ok) return false;
        }
        return true;
    }

    Failure failure;

  private:
    static std::uint32_t pos(std::size_t i) { return static_cast<std::uint32_t>(i); }

    bool fail(std::string what, std::size_t at) {
        failure = {std::move(what), at};
        return false;
    }

    // A comment, nested ones and quoted-pairs inside; it stands for a blank.
    bool comment() {
        std::size_t start = i_;
        int depth = 0;
        for (; i_ < s_.size(); ++i_) {
            char c = s_[i_];
            if (c == '\\') {
                ++i_;
            } else if (c == '(') {
                if (++depth > max_comment_depth)
                    return fail("comments nested deeper than " + std::to_string(max_comment_depth),
                                i_);
            } else if (c == ')') {
                if (--depth == 0) return ++i_, true;
            } else if (c == '\0') {
                return fail("NUL byte", i_);
            }
        }
        return fail("unterminated comment", start);
    }

    // A quoted-string or a domain literal: the text up to `close`, quoted-pairs skipped.
    bool delimited(std::vector<Token>& out, Kind kind, char close, const char* unterminated) {
        std::size_t start = i_++;
        for (; i_ < s_.size(); ++i_) {
            char c = s_[i_];
            if (c == '\\') {
                ++i_;
            } else if (c == close) {
                out.push_back({kind, 0, pos(start + 1), pos(i_)});
                return ++i_, true;
            } else if (c == '\0') {
                return fail("NUL byte", i_);
            } else if (kind == Kind::literal && c == '[') {
                return fail("'[' inside a domain literal", i_);
            }
        }
        return fail(unterminated, start);
    }

    // An atom, or an encoded word that holds specials (one that does not is an atom anyway).
    void word(std::vector<Token>& out) {
        std::size_t start = i_, ew = encoded_word_end(s_, i_);
        if (ew != std::string_view::npos) {
            for (std::size_t k = start; k < ew; ++k)
                if (!atom_char(s_[k])) {
                    out.push_back({Kind::encoded_word, 0, pos(start), pos(ew)});
                    i_ = ew;
                    return;
                }
        }
        while (i_ < s_.size() && atom_char(s_[i_]))
            ++i_;
        out.push_back({Kind::atom, 0, pos(start), pos(i_)});
    }

    std::string_view s_;
    std::size_t i_ = 0;
};

bool valid_utf8(std::string_view s) {
    for (std::size_t i = 0; i < s.size();) {
        auto c = static_cast<unsigned char>(s[i]);
        std::size_t n = c < 0x80                 ? 0
                        : c >= 0xc2 && c <= 0xdf ? 1
                        : c >= 0xe0 && c <= 0xef ? 2
                        : c >= 0xf0 && c <= 0xf4 ? 3
                                                 : 4;
        if (n == 4 || i + n >= s.size()) return false;
        std::uint32_t cp = c & (0x7fu >> n);
        for (std::size_t k = 1; k <= n; ++k) {
            auto d = static_cast<unsigned char>(s[i + k]);
            if ((d & 0xc0) != 0x80) return false;
            cp = (cp << 6) | (d & 0x3fu);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += n + 1;
    }
    return true;
}

bool host_name_char(char c) {
    auto u = static_cast<unsigned char>(c);
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || u >= 0x80;
}

class Parser {
  public:
    Parser(std::string_view s, const std::vector<Token>& tokens, std::vector<MailAddress>& out)
        : s_(s), t_(tokens), out_(out) {}

    // address-list, with the empty elements of obs-addr-list.
    bool run() {
        while (pos_ < t_.size()) {
            if (special(pos_, ',')) {
                ++pos_;
                continue;
            }
            if (!address()) return false;
            if (pos_ < t_.size() && !special(pos_, ','))
                return fail("unexpected " + describe(pos_) + " after an address", pos_);
        }
        return true;
    }

    Failure failure;

  private:
    bool special(std::size_t k, char c) const {
        return k < t_.size() && t_[k].kind == Kind::special && t_[k].special == c;
    }
    std::string_view text(std::size_t k) const {
        return s_.substr(t_[k].begin, t_[k].end - t_[k].begin);
    }
    std::string describe(std::size_t k) const {
        switch (t_[k].kind) {
            case Kind::atom:
                return "word";
            case Kind::quoted:
                return "quoted string";
            case Kind::encoded_word:
                return "encoded word";
            case Kind::literal:
                return "domain literal";
            case Kind::special:
                break;
        }
        return std::string("'") + t_[k].special + "'";
    }
    bool fail(std::string what, std::size_t k) {
        failure = {std::move(what), k < t_.size() ? t_[k].at() : s_.size()};
        return false;
    }

    // Where the element starting at `from` ends: at a ',' ';' or ':' outside angle brackets, or
    // at the end. nullopt (failure set) for unbalanced brackets.
    std::optional<std::size_t> element_end(std::size_t from) {
        std::optional<std::size_t> open;
        for (std::size_t k = from; k < t_.size(); ++k) {
            if (special(k, '<')) {
                if (open) return fail("'<' inside '<...>'", k), std::nullopt;
                open = k;
            } else if (special(k, '>')) {
                if (!open) return fail("'>' without '<'", k), std::nullopt;
                open.reset();
            } else if (!open && (special(k, ',') || special(k, ';') || special(k, ':'))) {
                return k;
            }
        }
        if (open) return fail("unbalanced '<'", *open), std::nullopt;
        return t_.size();
    }

    // address = mailbox / group
    bool address() {
        auto end = element_end(pos_);
        if (!end) return false;
        if (special(*end, ':')) return group(*end);
        if (special(*end, ';')) return fail("';' outside a group", *end);
        if (!mailbox(pos_, *end)) return false;
        pos_ = *end;
        return true;
    }

    // group = display-name ":" [group-list] ";", members separated by commas, empty ones allowed
    // (obs-group-list, obs-mbox-list).
    bool group(std::size_t colon) {
        if (pos_ == colon) return fail("group without a name", colon);
        if (!phrase(pos_, colon, false)) return false;
        pos_ = colon + 1;
        while (true) {
            if (pos_ == t_.size()) return fail("group without ';'", colon);
            if (special(pos_, ',')) {
                ++pos_;
            } else if (special(pos_, ';')) {
                ++pos_;
                return true;
            } else {
                auto end = element_end(pos_);
                if (!end) return false;
                if (special(*end, ':')) return fail("group inside a group", *end);
                if (!mailbox(pos_, *end)) return false;
                pos_ = *end;
            }
        }
    }

    // mailbox = name-addr / addr-spec, tokens [b, e), brackets balanced (element_end).
    bool mailbox(std::size_t b, std::size_t e) {
        for (std::size_t open = b; open < e; ++open) {
            if (!special(open, '<')) continue;
            if (!phrase(b, open, true)) return false;
            std::size_t close = open + 1;
            while (!special(close, '>'))
                ++close;
            if (close + 1 != e) return fail("text after '>'", close + 1);
            return angle_addr(open + 1, close);
        }
        return addr_spec(b, e);
    }

    // A display name: words, encoded words and dots (obs-phrase); '@' too before an angle-addr.
    bool phrase(std::size_t b, std::size_t e, bool allow_at) {
        for (std::size_t k = b; k < e; ++k) {
            auto kind = t_[k].kind;
            if (kind == Kind::atom || kind == Kind::quoted || kind == Kind::encoded_word ||
                special(k, '.') || (allow_at && special(k, '@')))
                continue;
            return fail("unexpected " + describe(k) + " in a display name", k);
        }
        return true;
    }

    // angle-addr, with the obs-route of obs-angle-addr ("@a,@b:") skipped.
    bool angle_addr(std::size_t b, std::size_t e) {
        if (b == e) return fail("empty address '<>'", b - 1);
        if (special(b, '@') || special(b, ',')) {
            std::size_t colon = b;
            while (colon < e && !special(colon, ':'))
                ++colon;
            if (colon == e) return fail("route without ':'", b);
            for (std::size_t k = b; k < colon; ++k)
                if (special(k, '@') && !(k + 1 < colon && (t_[k + 1].kind == Kind::atom ||
                                                           t_[k + 1].kind == Kind::literal)))
                    return fail("route without a domain after '@'", k);
            b = colon + 1;
        }
        return addr_spec(b, e);
    }

    // addr-spec = local-part "@" domain
    bool addr_spec(std::size_t b, std::size_t e) {
        std::size_t at = b;
        while (at < e && !special(at, '@'))
            ++at;
        if (at == e)
            return fail(b == e ? std::string("empty address") : "no '@' in the address", b);
        MailAddress a;
        if (!local_part(b, at, a.local) || !domain(at + 1, e, a.domain)) return false;
        if (out_.size() == max_addresses)
            return fail("more than " + std::to_string(max_addresses) + " addresses", b);
        out_.push_back(std::move(a));
        return true;
    }

    // local-part: words joined by dots (dot-atom, quoted-string, obs-local-part); dots anywhere.
    bool local_part(std::size_t b, std::size_t e, std::string& out) {
        if (b == e) return fail("empty local part", b);
        bool after_word = false;
        for (std::size_t k = b; k < e; ++k) {
            bool word = t_[k].kind == Kind::atom || t_[k].kind == Kind::quoted ||
                        (t_[k].kind == Kind::encoded_word && plain_dot_atom(text(k)));
            if (!word && !special(k, '.'))
                return fail("unexpected " + describe(k) + " in a local part", k);
            if (word && after_word) return fail("words without '.' or '<...>' between them", k);
            after_word = word;
            if (t_[k].kind == Kind::quoted)
                unquote(text(k), out);
            else
                out += text(k);
        }
        for (char c : out)
            if ((static_cast<unsigned char>(c) < ' ' && c != '\t') || c == 0x7f)
                return fail("control character in the local part", b);
        if (!valid_utf8(out)) return fail("invalid UTF-8 in the local part", b);
        return true;
    }

    // Text the lexer took for an encoded word that, read as RFC 5322 text, is atoms and dots:
    // inside an addr-spec it is that (RFC 2047 §5: no encoded words there).
    static bool plain_dot_atom(std::string_view w) {
        for (char c : w)
            if (c != '.' && !atom_char(c)) return false;
        return true;
    }

    // The value of a quoted-string: quoted-pairs unescaped, folding line ends dropped (they are
    // invisible, RFC 5322 §3.2.4).
    static void unquote(std::string_view q, std::string& out) {
        for (std::size_t i = 0; i < q.size(); ++i) {
            if (q[i] == '\\' && i + 1 < q.size())
                out.push_back(q[++i]);
            else if (q[i] != '\r' && q[i] != '\n')
                out.push_back(q[i]);
        }
    }

    // domain: atoms joined by dots (dot-atom, obs-domain), one trailing dot allowed; a host name.
    bool domain(std::size_t b, std::size_t e, std::string& out) {
        if (b == e) return fail("no domain after '@'", b);
        bool after_atom = false;
        for (std::size_t k = b; k < e; ++k) {
            if (t_[k].kind == Kind::literal)
                return fail("address literal instead of a domain name", k);
            if (t_[k].kind == Kind::atom && !after_atom) {
                out += text(k);
            } else if (special(k, '.') && after_atom) {
                out += '.';
            } else {
                return fail("unexpected " + describe(k) + " in the domain", k);
            }
            after_atom = !after_atom;
        }
        if (!out.empty() && out.back() == '.') out.pop_back();
        out = to_lower(out);
        return host_name(out, b);
    }

    bool host_name(std::string_view d, std::size_t k) {
        if (d.size() > 253) return fail("domain longer than 253 bytes", k);
        if (!valid_utf8(d)) return fail("invalid UTF-8 in the domain", k);
        std::size_t label = 0;
        for (char c : d) {
            if (c == '.') {
                label = 0;
            } else if (!host_name_char(c)) {
                return fail("domain is not a host name", k);
            } else if (++label > 63) {
                return fail("domain label longer than 63 bytes", k);
            }
        }
        // A name DNS cannot hold (an emoji …) has no DMARC policy anyone could find: it is
        // unreadable, not a domain without a policy.
        if (!is_ascii(d) && !to_a_label(d)) return fail("domain has no A-label spelling", k);
        return true;
    }

    std::string_view s_;
    const std::vector<Token>& t_;
    std::vector<MailAddress>& out_;
    std::size_t pos_ = 0;
};

bool dot_string(std::string_view s) {
    if (s.empty() || s.front() == '.' || s.back() == '.') return false;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '.' ? s[i + 1] == '.' : !atext(static_cast<unsigned char>(s[i]))) return false;
    }
    return true;
}

}  // namespace

std::string MailAddress::address() const {
    if (dot_string(local)) return local + "@" + domain;
    std::string quoted = "\"";
    for (char c : local) {
        if (c == '"' || c == '\\') quoted.push_back('\\');
        quoted.push_back(c);
    }
    return quoted + "\"@" + domain;
}

AddressList read_address_list(std::string_view value) {
    AddressList result;
    auto failed = [&](const Failure& f) {
        result.addresses.clear();
        result.error = f.what + " at byte " + std::to_string(f.at);
        return result;
    };
    if (value.size() > max_address_list_bytes)
        return failed({"longer than " + std::to_string(max_address_list_bytes) + " bytes", 0});
    std::vector<Token> tokens;
    Lexer lexer(value);
    if (!lexer.run(tokens)) return failed(lexer.failure);
    Parser parser(value, tokens, result.addresses);
    if (!parser.run()) return failed(parser.failure);
    return result;
}

std::optional<std::vector<MailAddress>> parse_address_list(std::string_view value) {
    auto list = read_address_list(value);
    if (!list.ok()) return std::nullopt;
    return std::move(list.addresses);
}

}  // namespace postwarden
