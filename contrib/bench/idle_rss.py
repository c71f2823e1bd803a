#!/usr/bin/env python3
"""idle_rss.py PORT PID [N] — RSS of a policy server holding N idle client connections.

Opens N connections to 127.0.0.1:PORT, sends one request on each and reads its answer (so every
session has been through the parser and the handler once, as Postfix's reused connections
have), keeps them open and idle, then prints the server's VmRSS before and after."""
import resource
import socket
import sys
import time

REQUEST = (b"request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\n"
           b"client_address=192.0.2.%d\nclient_name=mail.example.org\nhelo_name=mail.example.org\n"
           b"sender=someone@example.org\nrecipient=user@example.com\nqueue_id=\n"
           b"instance=1.%d\n\n")


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def main():
    port, pid = int(sys.argv[1]), int(sys.argv[2])
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, n + 100)), hard))
    before = rss_kb(pid)
    conns = []
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(REQUEST % (i % 250 + 1, i))
        reply = b""
        while not reply.endswith(b"\n\n"):
            chunk = s.recv(4096)
            if not chunk:
                raise SystemExit(f"connection {i} closed by the server")
            reply += chunk
        conns.append(s)
    time.sleep(1)
    after = rss_kb(pid)
    print(f"idle_connections={n} rss_before_kb={before} rss_after_kb={after} "
          f"per_connection_bytes={(after - before) * 1024 // max(n, 1)}")
    for s in conns:
        s.close()


if __name__ == "__main__":
    main()
