#!/usr/bin/env python3
"""run_rfc7208.py — runs the openspf RFC 7208 test suite through postwarden's SPF path.

For each scenario of the suite (a YAML document: zone data plus test cases) it starts
tests/fixtures/dnsserver.py serving that zone data on 127.0.0.1, starts spf_query pointed at
it, sends every test case (host, mailfrom, helo) and compares the result with the expected one
(a result, or a list of acceptable results). Where a case expects fail with a specific
explanation (not "DEFAULT"), the explanation must match too.

Exit status 0 only if every case passes, except those listed in --known-deviations (one
"scenario-index/test-name  reason" per line, '#' comments), which are reported but not counted
as failures; a listed case that passes is an error too, so the list never goes stale.

Usage:
    run_rfc7208.py --spf-query PATH --dnsserver PATH --suite rfc7208-tests.yml
                   [--known-deviations FILE] [--only TEST-NAME] [--timeout-ms N] [-v]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

import yaml


def load_known(path):
    known = {}
    if not path or not os.path.exists(path):
        return known
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                key, _, reason = line.partition(" ")
                known[key] = reason.strip()
    return known


class DnsServer:
    def __init__(self, script, suite, index, workdir):
        self.port_file = os.path.join(workdir, "port.%d" % index)
        self.proc = subprocess.Popen(
            [sys.executable, script, "--rfc7208", suite, "--scenario", str(index),
             "--port-file", self.port_file], stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while not os.path.exists(self.port_file):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("dnsserver.py did not start for scenario %d" % index)
            time.sleep(0.02)
        with open(self.port_file) as f:
            self.port = int(f.read())

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class SpfQuery:
    def __init__(self, binary, port, timeout_ms):
        self.proc = subprocess.Popen(
            [binary, "--nameserver", "127.0.0.1:%d" % port, "--timeout-ms", str(timeout_ms)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, encoding="utf-8",
            errors="surrogateescape")

    def check(self, host, mailfrom, helo):
        for field in (host, mailfrom, helo):
            if "\t" in field or "\n" in field:
                raise ValueError("tab or newline in a test field")
        self.proc.stdin.write("%s\t%s\t%s\n" % (host, mailfrom, helo))
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("spf_query died")
        result, _, rest = line.rstrip("\n").partition("\t")
        _, _, explanation = rest.partition("\t")
        return result, explanation

    def stop(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


def verdict(test, result, explanation):
    expected = test["result"]
    expected = expected if isinstance(expected, list) else [expected]
    if result not in expected:
        return "got %s, expected %s" % (result, "/".join(expected))
    want = test.get("explanation")
    if want and want != "DEFAULT" and result == "fail" and explanation != want:
        return "explanation %r, expected %r" % (explanation, want)
    return None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--spf-query", required=True)
    parser.add_argument("--dnsserver", required=True)
    parser.add_argument("--suite", required=True)
    parser.add_argument("--known-deviations")
    parser.add_argument("--only", help="run only this test name")
    parser.add_argument("--timeout-ms", type=int, default=1000)
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()

    with open(args.suite, encoding="utf-8") as f:
        scenarios = [doc for doc in yaml.safe_load_all(f) if doc]
    known = load_known(args.known_deviations)
    passed = failed = deviated = 0
    problems = []
    with tempfile.TemporaryDirectory() as workdir:
        for index, scenario in enumerate(scenarios):
            tests = {name: t for name, t in scenario["tests"].items()
                     if not args.only or name == args.only}
            if not tests:
                continue
            server = DnsServer(args.dnsserver, args.suite, index, workdir)
            query = None
            try:
                # inside the try: a server must never outlive the runner (it would hold ctest's
                # output pipe open)
                query = SpfQuery(args.spf_query, server.port, args.timeout_ms)
                for name, test in tests.items():
                    key = "%d/%s" % (index, name)
                    result, explanation = query.check(str(test["host"]),
                                                      str(test.get("mailfrom", "")),
                                                      str(test.get("helo", "")))
                    problem = verdict(test, result, explanation)
                    if problem and key in known:
                        deviated += 1
                        print("KNOWN  %s: %s (%s)" % (key, problem, known[key]))
                    elif problem:
                        failed += 1
                        problems.append("FAIL   %s [%s]: %s" % (key, test.get("spec"), problem))
                    elif key in known:
                        failed += 1
                        problems.append("FAIL   %s passes but is listed as a known deviation"
                                        % key)
                    else:
                        passed += 1
                        if args.verbose:
                            print("ok     %s: %s" % (key, result))
            finally:
                try:
                    if query:
                        query.stop()
                finally:
                    server.stop()
    for line in problems:
        print(line)
    total = passed + failed + deviated
    print("RFC 7208 suite: %d passed / %d total, %d failed, %d known deviations"
          % (passed, total, failed, deviated))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
