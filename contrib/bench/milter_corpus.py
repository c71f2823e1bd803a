#!/usr/bin/env python3
"""milter_corpus.py — the corpus of the milter benchmark: DKIM-signed messages and the DNS zone
that makes them pass SPF, DKIM and DMARC, signed by an independent signer (python3-dkim, with
python3-nacl for ed25519 and the openssl command for RSA keys).

    milter_corpus.py DIR [--messages N] [--domains D] [--seed S]

writes into DIR:
  manifest.tsv   one message a line: file, client address, HELO, MAIL FROM, RCPT TO (tabs)
  msg-NNNN.eml   the messages, CRLF line ends, each with one DKIM-Signature (relaxed/relaxed)
  zone           tests/fixtures/dnsserver.py zone: per domain SPF (198.51.100.0/24), an
                 rsa-2048 key (selector rsa) and an ed25519 key (selector ed), DMARC p=reject
  keys/          the private keys (scratch data: generated per run)

Messages alternate rsa-sha256 and ed25519-sha256 over D sender domains (bench1.test ...), bodies
of 1 to 8 KB of text; every one passes everything, as most legitimate inbound mail does, so each
milter does its whole work (all lookups, signature verification, Authentication-Results).
"""
import argparse
import base64
import email.utils
import os
import random
import subprocess

import dkim
import nacl.signing

CLIENT_NET = "198.51.100"
WORDS = ("mail policy relay postfix header body signature domain record lookup message "
         "server client network quota greylist sender recipient public suffix").split()


def keys_for(directory, domain):
    pem = subprocess.run(["openssl", "genrsa", "2048"], check=True, capture_output=True).stdout
    der = subprocess.run(["openssl", "rsa", "-pubout", "-outform", "DER"], input=pem, check=True,
                         capture_output=True).stdout
    ed = nacl.signing.SigningKey.generate()
    with open(os.path.join(directory, domain + ".rsa.pem"), "wb") as f:
        f.write(pem)
    return {"rsa": (pem, base64.b64encode(der).decode()),
            "ed": (base64.b64encode(bytes(ed)), base64.b64encode(bytes(ed.verify_key)).decode())}


def txt(value):
    """A TXT record value in dnsserver.py's syntax (long strings are split there)."""
    return '"%s"' % value


def body_text(rng):
    lines, size, target = [], 0, rng.randint(1024, 8192)
    while size < target:
        line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 12)))
        lines.append(line)
        size += len(line) + 2
    return "\r\n".join(lines) + "\r\n"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("dir")
    p.add_argument("--messages", type=int, default=200)
    p.add_argument("--domains", type=int, default=10)
    p.add_argument("--seed", type=int, default=6)
    a = p.parse_args()
    rng = random.Random(a.seed)
    os.makedirs(os.path.join(a.dir, "keys"), exist_ok=True)
    zone, keys = [], {}
    for d in range(1, a.domains + 1):
        domain = "bench%d.test" % d
        keys[domain] = keys_for(os.path.join(a.dir, "keys"), domain)
        zone += ["%s A %s.%d" % (domain, CLIENT_NET, d),
                 "%s TXT %s" % (domain, txt("v=spf1 ip4:%s.0/24 ip4:127.0.0.0/8 -all" % CLIENT_NET)),
                 "mx.%s A %s.%d" % (domain, CLIENT_NET, d),
                 "mx.%s TXT %s" % (domain, txt("v=spf1 a -all")),
                 "rsa._domainkey.%s TXT %s" % (domain, txt("v=DKIM1; k=rsa; p=" + keys[domain]["rsa"][1])),
                 "ed._domainkey.%s TXT %s" % (domain, txt("v=DKIM1; k=ed25519; p=" + keys[domain]["ed"][1])),
                 "_dmarc.%s TXT %s" % (domain, txt("v=DMARC1; p=reject"))]
    with open(os.path.join(a.dir, "zone"), "w") as f:
        f.write("# milter benchmark zone (contrib/bench/milter_corpus.py)\n" + "\n".join(zone) + "\n")

    manifest = []
    for i in range(a.messages):
        d = i % a.domains + 1
        domain = "bench%d.test" % d
        selector = "rsa" if i % 2 == 0 else "ed"
        sender = "news%d@%s" % (i, domain)
        rcpt = "user%d@rcpt.example" % (i % 50)
        head = ["From: Bench Sender <%s>" % sender, "To: <%s>" % rcpt,
                "Subject: benchmark message %d" % i,
                "Date: %s" % email.utils.formatdate(1_780_000_000 + i),
                "Message-ID: <bench.%d@%s>" % (i, domain), "MIME-Version: 1.0",
                "Content-Type: text/plain; charset=us-ascii"]
        message = ("\r\n".join(head) + "\r\n\r\n" + body_text(rng)).encode()
        key = keys[domain][selector][0]
        sig = dkim.sign(message, selector.encode(), domain.encode(), key,
                        canonicalize=(b"relaxed", b"relaxed"),
                        signature_algorithm=b"rsa-sha256" if selector == "rsa" else b"ed25519-sha256",
                        include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
        name = "msg-%04d.eml" % i
        with open(os.path.join(a.dir, name), "wb") as f:
            f.write(sig.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") + message)
        manifest.append("\t".join([name, "%s.%d" % (CLIENT_NET, d), "mx." + domain, sender, rcpt]))
    with open(os.path.join(a.dir, "manifest.tsv"), "w") as f:
        f.write("\n".join(manifest) + "\n")
    print("%d messages, %d domains in %s" % (a.messages, a.domains, a.dir))


if __name__ == "__main__":
    main()
