#!/usr/bin/env python3
"""dns53.py — tests/fixtures/dnsserver.py's zone server on a random 127.x.y.z, port 53, for
programs that can only be told an address, not a port (OpenDMARC and libspf2 read
/etc/resolv.conf; milter.sh gives them a private one in a mount namespace, as tests/e2e does
for Postfix).

    dns53.py ZONE ADDRESS-FILE     serves until SIGTERM; writes the address once serving

The answers are dnsserver.py's own, but UDP is served by one thread that keeps each answer by
its query (the zone never changes): dnsserver.py starts a thread per datagram, which a milter
asking five questions per message, many sessions at once, turns into the bottleneck.
"""
import importlib.util
import os
import random
import signal
import socket
import sys
import threading

here = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location(
    "dnsserver", os.path.join(here, "../../tests/fixtures/dnsserver.py"))
ds = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ds)


def main(zone_path, address_file):
    zone = ds.load_zone_text(open(zone_path).read())
    ds.UDPServer.address_family = ds.TCPServer.address_family = socket.AF_INET
    for _ in range(50):
        address = "127.%d.%d.%d" % (random.randint(1, 254), random.randint(0, 255),
                                    random.randint(1, 254))
        try:
            udp = ds.UDPServer((address, 53), ds.UDPHandler)
        except OSError:
            continue
        try:
            tcp = ds.TCPServer((address, 53), ds.TCPHandler)
        except OSError:
            udp.server_close()
            continue
        break
    else:
        sys.exit("dns53.py: no free 127.x.y.z:53")
    udp.zone = tcp.zone = zone
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    threading.Thread(target=tcp.serve_forever, daemon=True).start()
    with open(address_file + ".tmp", "w") as f:
        f.write(address + "\n")
    os.rename(address_file + ".tmp", address_file)
    serve_udp(udp.socket, zone)


def serve_udp(sock, zone):
    answers = {}
    while True:
        packet, peer = sock.recvfrom(4096)
        key = packet[2:]  # the query without its ID
        response = answers.get(key)
        if response is None:
            try:
                response = ds.answer(zone, packet, ds.UDP_LIMIT, peer[1])
            except Exception as e:  # a test server must survive any query
                ds.log("udp: %r" % e)
                continue
            if response is None:
                continue
            answers[key] = response[2:]
        else:
            response = packet[:2] + response
        sock.sendto(response, peer)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
