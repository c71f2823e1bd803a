#!/usr/bin/env python3
"""dkim_corpus.py — a generated corpus of DKIM-signed messages and dkimpy's verdict on each
signature, for the differential test of the milter's verifier (dkim_differential_test.cpp).

    dkim_corpus.py DIR
        writes DIR/zone (dnsserver.py zone text with every public key), DIR/NNN.eml (the
        messages, CRLF line ends) and DIR/verdicts (one line per signature:
        "NNN<TAB>d<TAB>s<TAB>pass|fail<TAB>what the case is"), and prints the number of messages.

What varies: key (RSA 2048 and 1024, Ed25519; RSA 512 and 768 and rsa-sha1, which RFC 8301
refuses), canonicalization (all four), body shape, folded and oversized header fields, l=, several
signatures on one message, and what is changed after signing (a signed header field, the body,
white space that relaxed canonicalization ignores, an unsigned field added, text after l=).
Each signature of a message has its own (d=, s=), so verdicts are matched by them.

dkimpy (python3-dkim) verifies with its defaults (minkey=1024) and with keys from the same zone
text, so both verifiers see the same keys. Test fixture only: keys are made per run.
"""
import base64
import itertools
import os
import subprocess
import sys

import dkim
import nacl.signing

DOMAIN = "corpus.test"
CANONS = ["relaxed/relaxed", "relaxed/simple", "simple/relaxed", "simple/simple"]


def rsa_key(bits):
    pem = subprocess.run(["openssl", "genrsa", str(bits)], check=True,
                         capture_output=True).stdout
    der = subprocess.run(["openssl", "rsa", "-pubout", "-outform", "DER"], input=pem,
                         check=True, capture_output=True).stdout
    return pem, "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()


def ed_key():
    key = nacl.signing.SigningKey.generate()
    return (base64.b64encode(bytes(key)),
            "v=DKIM1; k=ed25519; p=" + base64.b64encode(bytes(key.verify_key)).decode())


def make_keys():
    """name -> (private key, algorithm, TXT record); each also published as name + "b", so
    that two signatures of one message can use the same key under different selectors."""
    keys = {}
    for bits in (2048, 1024, 768, 512):
        pem, txt = rsa_key(bits)
        keys["rsa%d" % bits] = (pem, b"rsa-sha256", txt)
    keys["sha1"] = (keys["rsa2048"][0], b"rsa-sha1", keys["rsa2048"][2])
    priv, txt = ed_key()
    keys["ed"] = (priv, b"ed25519-sha256", txt)
    return keys


BODIES = [
    b"Hello.\r\n",
    b"",
    b"Hello,\r\n\r\nthis is  a\ttest with  runs of   blanks.  \r\n\r\n\r\n",
    b"line one\r\n" + b"x" * 990 + b"\r\n" + b"line three \t \r\n",
    b"no final line end",
]


def headers(n, subject):
    return [
        (b"From", b" News <news@" + DOMAIN.encode() + b">"),
        (b"To", b" bob@rcpt.example"),
        (b"Subject", subject),
        (b"Date", b" Mon, 1 Jan 2024 10:00:00 +0000"),
        (b"Message-ID", b" <%d@corpus.test>" % n),
    ]


def render(fields, body):
    return b"".join(name + b":" + value + b"\r\n" for name, value in fields) + b"\r\n" + body


def sign(message, key, selector, canon, keys, length=False):
    priv, algorithm, _ = keys[key]
    h, b = canon.encode().split(b"/")
    sig = dkim.sign(message, selector.encode(), DOMAIN.encode(), priv, canonicalize=(h, b),
                    signature_algorithm=algorithm, length=length,
                    include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
    return sig  # "DKIM-Signature: ...\r\n", folded


SUBJECTS = {
    "plain": b" hello",
    "folded": b" a subject that is\r\n\tfolded over\r\n  three lines",
    "oversized": b" " + b"\r\n ".join([b"word%04d " % i * 8 for i in range(300)]),
}

# What is done to the message after it was signed: (name, function(message) -> message).
def tamper_subject(m):
    return m.replace(b"Subject:", b"Subject: Re:", 1)


def tamper_body(m):
    return m + b"appended by a forger\r\n"


def blanks_in_header(m):
    return m.replace(b"\r\nTo: bob@rcpt.example", b"\r\nTo:   bob@rcpt.example  ", 1)


def blanks_in_body(m):
    head, sep, body = m.partition(b"\r\n\r\n")
    return head + sep + body.replace(b" ", b"  ").replace(b"\r\n", b" \r\n")


def unsigned_field(m):
    return b"Received: from relay.example by mx.rcpt.example; Mon, 1 Jan 2024\r\n" + m


def empty_lines_after(m):
    return m + (b"" if m.endswith(b"\r\n") else b"\r\n") + b"\r\n\r\n"


CHANGES = [
    ("untouched", lambda m: m),
    ("signed Subject changed", tamper_subject),
    ("body appended", tamper_body),
    ("blanks added in a signed field", blanks_in_header),
    ("blanks added in the body", blanks_in_body),
    ("unsigned field added", unsigned_field),
    ("empty lines added at the end", empty_lines_after),
]


def main(directory):
    keys = make_keys()
    zone = {}
    for name, (_, _, txt) in keys.items():
        for selector in (name, name + "b"):
            zone["%s._domainkey.%s" % (selector, DOMAIN)] = txt.encode()
    with open(os.path.join(directory, "zone"), "w") as f:
        for name, txt in sorted(zone.items()):
            f.write('%s TXT "%s"\n' % (name, txt.decode()))

    def dnsfunc(name, timeout=5):
        return zone.get(name.decode().rstrip(".").lower())

    cases = []  # (message bytes, [(selector, what)])
    n = 0
    # One signature: every key with every canonicalization and change, over the body shapes.
    for key, canon, (change, fn) in itertools.product(keys, CANONS, CHANGES):
        body = BODIES[n % len(BODIES)]
        subject = list(SUBJECTS.values())[n % len(SUBJECTS)]
        m = render(headers(n, subject), body)
        m = fn(sign(m, key, key, canon, keys) + m)
        cases.append((m, [(key, "%s %s, %s" % (key, canon, change))]))
        n += 1
    # l=: the signed length covers the body, then text is appended after it.
    for key, canon in itertools.product(("rsa2048", "ed"), CANONS):
        m = render(headers(n, SUBJECTS["plain"]), b"Signed part.\r\n")
        signed = sign(m, key, key, canon, keys, length=True) + m
        cases.append((signed, [(key, "%s %s, l= covering the body" % (key, canon))]))
        cases.append((signed + b"Unsigned text appended later.\r\n",
                      [(key, "%s %s, l= and text appended" % (key, canon))]))
        n += 2
    # Several signatures on one message, each with its own selector; the field order varies.
    for first, second, canon in itertools.product(("rsa2048", "ed", "sha1", "rsa512"),
                                                  ("ed", "rsa1024"), CANONS[:2]):
        if first == second:
            continue
        m = render(headers(n, SUBJECTS["folded"]), BODIES[2])
        s1 = sign(m, first, first, canon, keys)
        s2 = sign(m, second, second + "b", canon, keys)
        what = "%s and %s %s" % (first, second, canon)
        cases.append((s2 + s1 + m, [(first, what), (second + "b", what)]))
        # the first signer's body is changed: a new signature over the new body, the old fails
        changed = tamper_body(m)
        s3 = sign(changed, second, second + "b", canon, keys)
        cases.append((s3 + s1 + changed,
                      [(first, what + ", body changed after it"), (second + "b", what + ", last")]))
        n += 2

    with open(os.path.join(directory, "verdicts"), "w") as out:
        for i, (message, sigs) in enumerate(cases):
            with open(os.path.join(directory, "%03d.eml" % i), "wb") as f:
                f.write(message)
            d = dkim.DKIM(message, minkey=1024)
            # dkimpy's idx counts DKIM-Signature fields from the top; map selectors to it.
            fields = [v for k, v in d.headers if k.lower() == b"dkim-signature"]
            for selector, what in sigs:
                idx = next(j for j, v in enumerate(fields)
                           if (b"s=" + selector.encode() + b";") in v.replace(b"\r\n", b"")
                           .replace(b" ", b"").replace(b"\t", b""))
                try:
                    ok = d.verify(idx=idx, dnsfunc=dnsfunc)
                except Exception:  # dkimpy raises on some malformed input: not a pass
                    ok = False
                out.write("%03d\t%s\t%s\t%s\t%s\n" % (i, DOMAIN, selector,
                                                      "pass" if ok else "fail", what))
    print(len(cases))


if __name__ == "__main__":
    main(sys.argv[1])
