#!/usr/bin/env python3
"""from_differential.py FROM_PARSE — our From parser against Python's email.headerregistry.

Over generated From fields (seeded, so every run sees the same ones) and over real-world shapes
written by hand, compares per field whether it is readable and the (local part, domain) of every
mailbox. FROM_PARSE is tests/mail/from_parse.cpp: values on stdin ended by NUL, one JSON line
each on stdout.

Python reads a field as email.policy.default does (linesep characters removed, then the From
header class, email.headerregistry.AddressHeader); it never fails but records defects. It counts
as readable here when it raised nothing and recorded no InvalidHeaderDefect, NonPrintableDefect
or HeaderMissingRequiredValue (ObsoleteHeaderDefect and NonASCIILocalPartDefect are RFC 5322
§4.4 and RFC 6532, both readable). Where the two disagree, the difference must belong to one of
the classes in WHY, each of which says which side is right and why; anything else fails the
test. The figures per class are printed.
"""
import base64
import json
import random
import re
import subprocess
import sys
from email import errors, policy
from email.header import decode_header, make_header

SEED = 5322
GENERATED = 1500

FATAL = (errors.InvalidHeaderDefect, errors.NonPrintableDefect, errors.HeaderMissingRequiredValue)


class Field:
    """A From value, and where it is lenient on purpose (see mail_header.hpp), the same field
    written by the strict grammar: `kinds` names the leniencies, `strict` is that spelling."""

    def __init__(self, value, kinds=(), strict=None, origin="real-world"):
        self.value = value
        self.kinds = set(kinds)
        self.strict = value if strict is None else strict
        self.origin = origin


# ---------------------------------------------------------------------------------------------
# Real-world shapes, as mailers and lists write them.

REAL_WORLD = [
    Field('"Smith, John" <john.smith@example.com>'),                   # Outlook, "Last, First"
    Field('John Smith <john.smith@example.com>'),                      # Gmail
    Field('"John Smith" <john.smith@example.com>'),                    # Thunderbird
    Field('john.smith@example.com'),                                   # bare addr-spec
    Field('<john.smith@example.com>'),                                 # angle-addr alone
    Field('john.smith@example.com (John Smith)'),                      # old style comment name
    Field('"\'John Smith\'" <john.smith@example.com>'),                 # Outlook quoting quotes
    Field('"john.smith@example.com" <john.smith@example.com>'),        # name = address, quoted
    Field('John Smith via dev-list <dev-list@lists.example.org>'),     # Google Groups rewrite
    Field('"John Smith via dev-list" <dev-list@lists.example.org>'),
    Field('"John Smith (via dev-list)" <dev-list-bounces@lists.example.org>'),  # Mailman
    Field('"Smith, John via users" <users@lists.example.org>'),
    Field('undisclosed-recipients:;'),
    Field('Undisclosed recipients:;'),
    Field('=?UTF-8?Q?J=C3=B6rg_M=C3=BCller?= <joerg@example.de>'),      # Thunderbird, Q
    Field('=?UTF-8?B?5bGx55Sw5aSq6YOO?= <yamada@example.jp>'),         # B encoding
    Field('=?iso-8859-1?Q?Fran=E7ois?= <francois@example.fr>'),
    Field('"=?UTF-8?Q?M=C3=BCller=2C_J=C3=B6rg?=" <joerg@example.de>'),  # encoded word in quotes
    Field('=?utf-8?Q?M=C3=BCller,_J=C3=B6rg?= <joerg@example.de>'),     # comma in encoded text
    Field('=?UTF-8?Q?Caf=C3=A9?=\r\n =?UTF-8?Q?_de_Paris?= <cafe@example.fr>'),  # folded words
    Field('Jörg Müller <joerg@example.de>'),                           # RFC 6532 name
    Field('"Jörg Müller" <jörg@müller.example>'),                      # SMTPUTF8 address
    Field('山田太郎 <yamada@example.jp>'),
    Field('Amazon.com <shipment-tracking@amazon.com>'),                # obs-phrase dot
    Field('J. R. R. Tolkien <jrrt@example.org>'),
    Field('Dr. Jane Doe, Jr. <jane@example.org>', origin="real-world unreadable"),
    Field('"Dr. Jane Doe, Jr." <jane@example.org>'),
    Field('no-reply@accounts.google.com'),
    Field('"GitHub" <noreply@github.com>'),
    Field('Bank of Example <alerts@bank.example>'),
    Field('"Example Support" <support+ticket-12345@example.com>'),
    Field('"O\'Brien, Pat" <pat.o\'brien@example.ie>'),
    Field('Pat O\'Brien <pat.o\'brien@example.ie>'),
    Field('"Pat \\"The Hammer\\" O\'Brien" <pat@example.ie>'),
    Field('John Smith <John.Smith@EXAMPLE.COM>'),
    Field('John Smith\r\n\t<john.smith@example.com>'),                 # folded before '<'
    Field('"Smith, John"\n <john.smith@example.com>,\n "Doe, Jane" <jane.doe@example.com>'),
    Field('a@example.com, b@example.org'),                             # several authors
    Field('Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>'),  # RFC 5322 A.5
    Field('"Joe Q. Public" <john.q.public@example.com>'),             # RFC 5322 A.1.2
    Field('Mary Smith <mary@x.test>, jdoe@example.org, Who? <one@y.test>'),
    Field('<boss@nil.test>, "Giant; \\"Big\\" Box" <sysservices@example.net>'),
    Field('A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;'),
    Field('Joe Q. Public <john.q.public@example.com>'),               # RFC 5322 A.6.1
    Field('Mary Smith <@node.test:mary@example.net>'),                 # A.6.1 obs-route
    Field('John Doe <jdoe@machine(comment).  example>'),               # A.6.3 obs-domain
    Field('"Mary Smith: Personal Account" <smith@home.example>'),     # A.1.2
    Field('MAILER-DAEMON@mx.example.net (Mail Delivery System)'),      # Postfix bounce
    Field('"postmaster@example.net" <postmaster@example.net>'),
    Field('Facebook <notification+zj4za=c@facebookmail.com>'),
    Field('"Mailman list" <list-bounces+alice=example.org@lists.example.org>'),
    Field('"ebay" <ebay@ebay.com>'),
    Field('<"odd local"@example.com>'),
    Field('"very.(),:;<>[]\\".VERY.\\"very@\\\\ \\"very\\".unusual"@strange.example.com'),
    Field('user.name+tag+sorting@example.com'),
    Field('alice@example.com.', kinds={"trailing_dot"}, strict='alice@example.com'),
    Field('alice@example.com <alice@example.com>', kinds={"at_in_name"},
          strict='"alice@example.com" <alice@example.com>'),
    Field('Mailer <mailer@[192.0.2.25]>'),                             # address literal
    Field('John Doe john@example.com', origin="real-world unreadable"),  # a name without <>
    Field('"Bank" <ceo@bank.example', origin="real-world unreadable"),
    Field('ceo@bank.example>', origin="real-world unreadable"),
    Field('alice@example.com; bob@example.com', origin="real-world unreadable"),
]

# ---------------------------------------------------------------------------------------------
# Generated fields: random combinations of the grammar's parts.

ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
ATEXT_EXTRA = "!#$%&'*+-/^_`{|}~"  # '=' and '?' left out: no accidental encoded words
UTF8_WORDS = ["é", "ü", "ß", "ø", "日本", "Ωμέγα", "ç", "😀", "ñ", "ä"]
SPECIALS = '()<>[]:;@,."'


def atom(r, utf8=0.1, extra=0.15):
    out = ""
    for _ in range(r.randint(1, 7)):
        x = r.random()
        out += r.choice(UTF8_WORDS) if x < utf8 else r.choice(ATEXT_EXTRA) if x < utf8 + extra \
            else r.choice(ALNUM)
    return out


def fold(r):
    return r.choice(["\r\n ", "\r\n\t", "\n ", "\n\t"])


def comment(r, depth=0):
    parts = []
    for _ in range(r.randint(0, 3)):
        x = r.random()
        if x < 0.2 and depth < 3:
            parts.append(comment(r, depth + 1))
        elif x < 0.35:
            parts.append("\\" + r.choice("()\\\"a<"))
        elif x < 0.45:
            parts.append(r.choice(UTF8_WORDS))
        elif x < 0.5:
            parts.append(fold(r))
        else:
            parts.append(r.choice([atom(r), " ", '"', "<>", "@", ",", ";", ":", "[x]", "."]))
    return "(" + "".join(parts) + ")"


def cfws(r, p=0.4):
    """Nothing mostly; else blanks, a fold or a comment (with blanks around it)."""
    if r.random() > p:
        return ""
    x = r.random()
    if x < 0.4:
        return r.choice([" ", "  ", "\t"])
    if x < 0.6:
        return fold(r)
    return r.choice(["", " "]) + comment(r) + r.choice(["", " "])


def quoted(r, utf8=0.1):
    parts = []
    for _ in range(r.randint(0, 8)):
        x = r.random()
        if x < 0.12:
            parts.append("\\" + r.choice('"\\ax. @'))
        elif x < 0.2:
            parts.append(" ")
        elif x < 0.2 + utf8:
            parts.append(r.choice(UTF8_WORDS))
        elif x < 0.4:
            parts.append(r.choice(SPECIALS.replace('"', "")))
        elif x < 0.43:
            parts.append(fold(r))
        else:
            parts.append(r.choice(ALNUM))
    return '"' + "".join(parts) + '"'


def q_encode(text):
    out = ""
    for b in text.encode():
        c = chr(b)
        out += "_" if c == " " else c if c.isalnum() and b < 0x80 else "=%02X" % b
    return out


def encoded_word(r):
    text = r.choice(["Jörg", "Müller, Jörg", "a <b@c>", "日本語", "x;y:z", "Ça va?", "O'Brien"])
    if r.random() < 0.5:
        return "=?utf-8?b?" + base64.b64encode(text.encode()).decode() + "?="
    if r.random() < 0.3:  # specials left in the encoded text, as some mailers do
        return "=?utf-8?q?" + text.replace(" ", "_").replace("?", "=3F") \
            .encode("ascii", "replace").decode().replace("?", "_") + "?="
    return "=?utf-8?q?" + q_encode(text) + "?="


def phrase(r):
    """A display name: words, quoted strings, encoded words, dots after the first word."""
    words = []
    for i in range(r.randint(1, 4)):
        x = r.random()
        if x < 0.45:
            w = atom(r, utf8=0.15, extra=0.05)
        elif x < 0.75:
            w = quoted(r)
        else:
            w = encoded_word(r)
        if i > 0 and r.random() < 0.15:
            w = "." + cfws(r) + w if r.random() < 0.5 else w + "."
        words.append(w)
    out = ""
    for w in words:
        sep = cfws(r, 0.3)
        out += w + (sep if sep.strip(" \t") == "" and sep else " " + sep)
    return out


def local_part(r, lenient):
    """(text, kinds, strict text)"""
    x = r.random()
    if x < 0.45:
        t = ".".join(atom(r) for _ in range(r.randint(1, 3)))
    elif x < 0.7:
        t = quoted(r)
    elif x < 0.85:  # obs-local-part: words with CFWS around the dots
        t = (cfws(r) + "." + cfws(r)).join(
            quoted(r) if r.random() < 0.4 else atom(r) for _ in range(r.randint(2, 3)))
    elif x < 0.9:  # RFC 2047 §5: no encoded words in an addr-spec, plain text there
        t = "=?utf-8?q?" + atom(r, utf8=0, extra=0) + "?="
    else:
        a = atom(r, utf8=0, extra=0)
        t = r.choice([a + ".." + a, a + ".", "." + a])  # dots anywhere (docomo)
    return t, set(), t


def label(r):
    x = r.random()
    if x < 0.08:
        return r.choice(["bücher", "日本", "ñandú", "xn--bcher-kva"])
    n = r.randint(1, 10)
    s = "".join(r.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
                for _ in range(n))
    if n > 2 and r.random() < 0.2:
        s = s[0] + "-" + s[2:]
    return s


def domain(r, lenient):
    """(text, kinds, strict text)"""
    x = r.random()
    if x < 0.04:
        return "[" + r.choice(["192.0.2.1", "IPv6:2001:db8::1", " 10.0.0.1 "]) + "]", set(), None
    labels = [label(r) for _ in range(r.randint(1, 4))]
    if x < 0.08:  # atext a DNS name cannot hold, or a label too long
        labels[-1] = r.choice(["exa!mple", "a=b", "x" * 64, "a+b", "c{d}"])
    if x < 0.2:  # obs-domain: CFWS around the dots
        t = "".join(l + cfws(r, 0.5) + "." + cfws(r, 0.5) for l in labels[:-1]) + labels[-1]
        return t, set(), None
    t = ".".join(labels)
    if lenient and r.random() < 0.05:
        return t + ".", {"trailing_dot"}, t
    return t, set(), None


def addr_spec(r, lenient):
    lp, kinds, lps = local_part(r, lenient)
    d, dk, ds = domain(r, lenient)
    sep1, sep2 = cfws(r, 0.15), cfws(r, 0.15)
    kinds |= dk
    return lp + sep1 + "@" + sep2 + d, kinds, lps + sep1 + "@" + sep2 + (ds or d)


def route(r):
    doms = ["@" + cfws(r, 0.2) + ".".join(label(r) for _ in range(r.randint(1, 3)))
            for _ in range(r.randint(1, 3))]
    return r.choice(["", ","]) + r.choice([",", ", ", ",,"]).join(doms) + ":"


def mailbox(r, lenient):
    spec, kinds, strict_spec = addr_spec(r, lenient)
    x = r.random()
    if x < 0.3:
        return cfws(r) + spec + cfws(r), kinds, strict_spec
    rt = route(r) if r.random() < 0.08 else ""
    inner = "<" + cfws(r, 0.2) + rt + spec + cfws(r, 0.2) + ">"
    strict_inner = "<" + rt + strict_spec + ">"
    if x < 0.4:
        return cfws(r) + inner + cfws(r), kinds, strict_inner
    name = phrase(r)
    if lenient and r.random() < 0.05:  # an unquoted address as display name
        name_addr = atom(r, 0, 0) + "@" + label(r) + "." + label(r)
        return name_addr + " " + inner, kinds | {"at_in_name"}, '"' + name_addr + '" ' + strict_inner
    sep = r.choice(["", " ", " ", cfws(r, 1)])
    return name + sep + inner + cfws(r), kinds, name + " " + strict_inner


def group(r, lenient):
    members = [mailbox(r, lenient) for _ in range(r.randint(0, 3))]
    name = phrase(r)
    kinds = set().union(*(m[1] for m in members)) if members else set()
    sep = r.choice([",", ", ", ",,", ",\r\n "])
    value = name + ":" + cfws(r) + sep.join(m[0] for m in members) + ";" + cfws(r)
    strict = name + ":" + ", ".join(m[2] for m in members) + ";"
    return value, kinds, strict


CORRUPTIONS = [
    ("drop '>'", lambda v, r: v.replace(">", "", 1)),
    ("drop '<'", lambda v, r: v.replace("<", "", 1)),
    ("drop a quote", lambda v, r: v.replace('"', "", 1)),
    ("drop ')'", lambda v, r: v.replace(")", "", 1)),
    ("stray ')'", lambda v, r: v + ")"),
    ("drop '@'", lambda v, r: v.replace("@", "", 1)),
    ("drop ';'", lambda v, r: v.replace(";", "", 1)),
    ("text after", lambda v, r: v + " trailer"),
    ("second angle", lambda v, r: v.replace(">", "> <x@y.example>", 1) if ">" in v
     else "<x@y.example> " + v),
    ("semicolon list", lambda v, r: v + "; x@y.example"),
    ("backslash", lambda v, r: v.replace("@", "\\@", 1)),
    ("double '@'", lambda v, r: v.replace("@", "@@", 1)),
    ("empty <>", lambda v, r: "Name <>"),
]


def generate(r):
    lenient = r.random() < 0.3
    elements, kinds, stricts = [], set(), []
    for _ in range(r.choice([1, 1, 1, 1, 2, 2, 3, 4])):
        value, k, strict = group(r, lenient) if r.random() < 0.12 else mailbox(r, lenient)
        elements.append(value)
        stricts.append(strict)
        kinds |= k
    seps = [r.choice([",", ", ", ",\r\n\t", ",,", " , "]) for _ in elements[1:]]
    value = elements[0] + "".join(s + e for s, e in zip(seps, elements[1:]))
    if r.random() < 0.05:
        value = r.choice([",", " , "]) + value + ","
    strict = ", ".join(stricts)
    if not kinds and r.random() < 0.15:
        name, corrupt = r.choice(CORRUPTIONS)
        value = corrupt(value, r)
        return Field(value, origin="generated, " + name)
    return Field(value, kinds, strict if kinds else None, origin="generated")


# ---------------------------------------------------------------------------------------------
# Both parsers.

def ascii_lower(s):
    return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in s)


def python_reads(value):
    """{'exception': str|None, 'readable': bool, 'addresses': [(local, domain)], 'fatal': [..]}"""
    unfolded = re.sub(r"\n|\r", "", value)  # what email.policy's header_fetch_parse does
    try:
        header = policy.default.header_factory("From", unfolded)
        addresses = [(a.username, ascii_lower(a.domain)) for a in header.addresses]
        fatal = [d for d in header.defects if isinstance(d, FATAL)]
    except Exception as e:  # noqa: BLE001 - Python's parser has bugs; they are a class below
        return {"exception": "%s: %s" % (type(e).__name__, e), "readable": False,
                "addresses": [], "fatal": []}
    return {"exception": None, "readable": not fatal, "addresses": addresses,
            "fatal": [str(d) for d in fatal]}


def ours_read(program, values):
    data = b"".join(v.encode("utf-8") + b"\0" for v in values)
    out = subprocess.run([program], input=data, stdout=subprocess.PIPE, check=True).stdout
    lines = out.decode("utf-8", "surrogateescape").splitlines()
    if len(lines) != len(values):
        sys.exit("from_parse answered %d lines for %d fields" % (len(lines), len(values)))
    results = []
    for line in lines:
        j = json.loads(line)
        results.append({"readable": j["ok"], "error": j.get("error", ""),
                        "addresses": [(a["local"], a["domain"]) for a in j.get("addresses", [])]})
    return results


# ---------------------------------------------------------------------------------------------
# The differences we know: which side is right and why. A field may show several at once, so
# each explains part of a difference: a pair of addresses that differ, or some of Python's
# defects. A field passes when, with the explained parts taken out, both sides agree.

WHY = {
    "address literal":
        "ours: RFC 9989 evaluates the author domain in DNS; an address literal names none, and "
        "README documents such a From as malformed",
    "domain not a host name":
        "ours: RFC 5322 dot-atom is wider than a DNS host name (RFC 5321 §4.1.2 Domain, RFC 1035 "
        "§2.3.4 sizes); no DMARC record can be found for such a domain",
    "encoded word in a local part":
        "ours: RFC 2047 §5 (3): an encoded word must not appear in an addr-spec, so it is plain "
        "atext there; Python decodes it and flags the field",
    "encoded word flagged in a display name":
        "both read the same addresses; Python flags an encoded word without blanks around it or "
        "inside quotes, which RFC 2047 §6.3 says to show as it is, not to refuse",
    "control character outside the address":
        "ours: obs-ctext and obs-qtext (RFC 5322 §4.1) allow them in comments and quoted display "
        "names; Python flags them, and reads the same addresses",
    "dots anywhere in a local part":
        "ours, on purpose: RFC 5322 §3.4.1 wants dots between words only, but such addresses "
        "exist (docomo.ne.jp) and read unambiguously; Python reads the same local part and flags "
        "it",
    "at_in_name":
        "ours, on purpose: '@' in a display name; the address is the one in angle brackets "
        "(RFC 5322 §3.4 name-addr), Python reads the display name as the address. We read what "
        "the quoted spelling gives, in both parsers",
    "trailing_dot":
        "ours, on purpose: a trailing dot on a domain is not RFC 5322, but the same DNS name "
        "(RFC 1034 §3.1); we read what the spelling without it gives, in both parsers",
    "Python raises":
        "ours: Python's parser raises on some fields (AttributeError on a phrase that starts with "
        "'.' and on some groups, TypeError on some local parts that start with '.', IndexError on "
        "'a@' at the end); we read them by the grammar",
}

HOST_LABEL = re.compile(r"^[a-z0-9_\x80-\U0010ffff-]{1,63}$")
ENCODED_WORD = re.compile(r"^=\?[^?]+\?[qQbB]\?[^?]*\?=$")
DOT_DEFECTS = re.compile(r"^(invalid repeated|Invalid leading|Invalid trailing) '\.'|"
                         r"^local-part is not dot-atom, quoted-string, or obs-local-part$")
PYTHON_BUGS = re.compile(r"(AttributeError|IndexError|TypeError)")


def not_host_name(domain):
    return len(domain.encode()) > 253 or not all(HOST_LABEL.match(l) for l in domain.split("."))


def decoded(word):
    try:
        return str(make_header(decode_header(word)))
    except Exception:  # noqa: BLE001 - an undecodable word simply does not match
        return None


def loose_dots(local):
    return local.startswith(".") or local.endswith(".") or ".." in local


def has_control(addresses):
    return any(ord(c) < 32 and c != "\t" or c == "\x7f" for l, d in addresses for c in l + d)


def explain(f, o, so, p, sp):
    """The set of classes that explain every difference, or None when something is left."""
    used = set()
    if f.kinds:  # a leniency the generator wrote: Python reads the strict spelling
        if (so["readable"], so["addresses"]) != (o["readable"], o["addresses"]):
            return None
        used |= f.kinds
        p = sp
    if p["exception"]:
        return used | {"Python raises"} if PYTHON_BUGS.match(p["exception"]) else None
    fatal = list(p["fatal"])
    ours_ew = any(ENCODED_WORD.match(l) for l, _ in o["addresses"])
    if any(re.search("encoded.word", d) for d in fatal):
        fatal = [d for d in fatal if not re.search("encoded.word", d)]
        used.add("encoded word in a local part" if ours_ew else
                 "encoded word flagged in a display name")
    if any(loose_dots(l) for l, _ in o["addresses"]) and any(DOT_DEFECTS.search(d) for d in fatal):
        fatal = [d for d in fatal if not DOT_DEFECTS.search(d)]
        used.add("dots anywhere in a local part")
    if not has_control(o["addresses"]) and any("non-printable" in d for d in fatal):
        fatal = [d for d in fatal if "non-printable" not in d]
        used.add("control character outside the address")
    readable = not fatal
    if o["readable"] and readable:
        if len(o["addresses"]) != len(p["addresses"]):
            return None
        for ours, theirs in zip(o["addresses"], p["addresses"]):
            if ours == theirs:
                continue
            if ENCODED_WORD.match(ours[0]) and ours[1] == theirs[1] \
                    and decoded(ours[0]) == theirs[0]:
                used.add("encoded word in a local part")
                continue
            return None
        return used
    if not o["readable"] and not readable:
        return used | {"both unreadable"}
    if not o["readable"] and readable:
        if o["error"].startswith("address literal") and \
                any(d.startswith("[") for _, d in p["addresses"]):
            return used | {"address literal"}
        if re.match(r"domain (is not|label|longer)", o["error"]) and \
                any(not_host_name(d) for _, d in p["addresses"]):
            return used | {"domain not a host name"}
    return None


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    r = random.Random(SEED)
    fields = list(REAL_WORLD)
    fields += [generate(r) for _ in range(GENERATED)]

    values = [f.value for f in fields] + [f.strict for f in fields]
    ours = ours_read(sys.argv[1], values)
    ours, ours_strict = ours[:len(fields)], ours[len(fields):]

    counts = {"same": 0, "both unreadable": 0}
    failures = []
    for f, o, so in zip(fields, ours, ours_strict):
        p = python_reads(f.value)
        sp = python_reads(f.strict) if f.strict != f.value else p
        if o["readable"] == p["readable"] and o["addresses"] == p["addresses"]:
            counts["both unreadable" if not o["readable"] else "same"] += 1
            continue
        used = explain(f, o, so, p, sp)
        if used is None:
            failures.append((f, o, p))
        for name in used or ():
            counts[name] = counts.get(name, 0) + 1

    readable = sum(1 for o in ours if o["readable"])
    print("%d From fields (%d real-world, %d generated, seed %d), %d readable by us" % (
        len(fields), len(REAL_WORLD), GENERATED, SEED, sum(o["readable"] for o in ours[:len(fields)])))
    for name, count in counts.items():
        reason = WHY.get(name, "")
        print("  %5d %s%s" % (count, name, ": " + reason if reason else ""))
    for f, o, p in failures[:40]:
        print("\nUNEXPLAINED DIFFERENCE (%s): %r\n  ours:   %s\n  python: %s" % (
            f.origin, f.value, o, p))
    if failures:
        print("\n%d unexplained differences" % len(failures))
        return 1
    if len(fields) < 1000 or counts["same"] < len(fields) // 2 or readable == 0:
        print("too few fields compared or agreed on")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
