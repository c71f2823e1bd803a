#!/usr/bin/env python3
"""dkim_tool.py — an independent DKIM signer for the milter tests: python3-dkim (dkimpy, Debian),
with python3-nacl for ed25519 and the openssl command for RSA keys.

    dkim_tool.py keygen DIR
        writes DIR/rsa.pem, DIR/rsa.pub (base64 for p=), DIR/ed25519.key, DIR/ed25519.pub, and
        short RSA keys DIR/rsa512.pem, rsa512.pub, rsa768.pem, rsa768.pub (RFC 8301 refuses them)
    dkim_tool.py sign KEYFILE rsa|rsa-sha1|ed25519 SELECTOR DOMAIN [relaxed/simple] [length]
        < message
        prints the DKIM-Signature field ("DKIM-Signature: ...", folded) for the message on stdin
    dkim_tool.py verify NAME=TXT... < message
        verifies every DKIM-Signature of the message on stdin with the key records given (NAME
        like rsa._domainkey.sender.test); prints one line per signature, top to bottom:
        "pass|fail d=DOMAIN s=SELECTOR a=ALGORITHM"

Test fixture only: keys are generated per test run and never leave the scratch directory.
"""
import base64
import subprocess
import sys

import dkim
import nacl.signing


def rsa_keygen(directory, name, bits):
    pem = subprocess.run(["openssl", "genrsa", str(bits)], check=True,
                         capture_output=True).stdout
    der = subprocess.run(["openssl", "rsa", "-pubout", "-outform", "DER"], input=pem, check=True,
                         capture_output=True).stdout
    with open(directory + "/" + name + ".pem", "wb") as f:
        f.write(pem)
    with open(directory + "/" + name + ".pub", "w") as f:
        f.write(base64.b64encode(der).decode())


def keygen(directory):
    rsa_keygen(directory, "rsa", 2048)
    rsa_keygen(directory, "rsa512", 512)
    rsa_keygen(directory, "rsa768", 768)
    key = nacl.signing.SigningKey.generate()
    with open(directory + "/ed25519.key", "w") as f:
        f.write(base64.b64encode(bytes(key)).decode())
    with open(directory + "/ed25519.pub", "w") as f:
        f.write(base64.b64encode(bytes(key.verify_key)).decode())


def sign(keyfile, kind, selector, domain, canon="relaxed/simple", length=False):
    message = sys.stdin.buffer.read()
    with open(keyfile, "rb") as f:
        key = f.read()
    algorithm = {"ed25519": b"ed25519-sha256", "rsa-sha1": b"rsa-sha1"}.get(kind, b"rsa-sha256")
    header, body = canon.split("/")
    sig = dkim.sign(message, selector.encode(), domain.encode(), key,
                    canonicalize=(header.encode(), body.encode()), signature_algorithm=algorithm,
                    include_headers=[b"from", b"to", b"subject", b"date"], length=length)
    sys.stdout.write(sig.decode())


def verify(records):
    message = sys.stdin.buffer.read()
    keys = {}
    for record in records:
        name, txt = record.split("=", 1)
        keys[name.lower().rstrip(".")] = txt.encode()

    def dnsfunc(name, timeout=5):
        return keys.get(name.decode().lower().rstrip("."), b"")

    d = dkim.DKIM(message)
    sigs = [v for (n, v) in d.headers if n.lower() == b"dkim-signature"]
    for i, value in enumerate(sigs):
        tags = dkim.util.parse_tag_value(b"".join(value.split()))
        ok = dkim.DKIM(message).verify(idx=i, dnsfunc=dnsfunc)
        print("%s d=%s s=%s a=%s" % ("pass" if ok else "fail", tags[b"d"].decode(),
                                     tags[b"s"].decode(), tags[b"a"].decode()))


if __name__ == "__main__":
    if sys.argv[1] == "verify":
        verify(sys.argv[2:])
    elif sys.argv[1] == "keygen":
        keygen(sys.argv[2])
    else:
        args = sys.argv[2:]
        canon = args[4] if len(args) > 4 else "relaxed/simple"
        sign(args[0], args[1], args[2], args[3], canon, len(args) > 5 and args[5] == "length")
