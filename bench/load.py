#!/usr/bin/env python3
"""Load tests of a real btestd server on loopback, bounded in time and count.

Usage: bench/load.py [--bin PATH] [--idle N] [--tests N] [--test-secs S] [--churn N]

1. idle:  N connections opened and held in the handshake; meanwhile a real
          test must get its OK and first data within 100 ms.
2. tests: N concurrent low-rate tests (btestd client processes) for S seconds.
3. churn: N short tests (connect, command, some data, close), 32 at a time.

Prints server RSS, CPU seconds and errors for each phase. Only the server
started here is stopped, by PID.
"""
import argparse
import os
import resource
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import DEFAULT_BIN, Proc, cpu_seconds, free_port, recv_exact, status_kb, wait_port  # noqa: E402


def tcp_cmd(direction, remote_bps):
    return struct.pack("<BBBBHHII", 1, direction, 1, 0, 32768, 0, remote_bps, 0)


class Server:
    def __init__(self, binary, extra):
        self.binary = binary
        self.dir = tempfile.TemporaryDirectory(prefix="btestd-load-")
        self.db = os.path.join(self.dir.name, "btestd.db")
        self.log = tempfile.NamedTemporaryFile(mode="w+", prefix="btestd-load-", suffix=".log")
        self.port = free_port()
        argv = [binary, "serve", "--listen", f"127.0.0.1:{self.port}", "--db", self.db, *extra]
        self.proc = Proc(argv, stderr=self.log)
        self.p = self.proc.p
        wait_port(self.port)

    def report(self, phase, cpu0, errors, extra=""):
        pid = self.p.pid
        print(f"{phase:<6} rss {status_kb(pid, 'VmRSS') / 1024:6.1f} MB  peak {status_kb(pid, 'VmHWM') / 1024:6.1f} MB  "
              f"cpu {cpu_seconds(pid) - cpu0:6.2f} s  errors {errors}  {extra}")

    def log_lines(self):
        self.log.seek(0)
        return self.log.read().splitlines()

    def session_records(self):
        out = subprocess.run([self.binary, "usage", "--sessions", "--limit", "1000000", "--format", "csv",
                              "--db", self.db], capture_output=True, text=True, check=True).stdout
        return sum(int(line.rsplit(",", 1)[1]) for line in out.splitlines()[1:] if line)

    def stop(self):
        return self.proc.stop()


def real_test_latency(port):
    """Seconds from connect to the OK and the first data byte of a receive test."""
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        assert recv_exact(s, 4) == b"\x01\0\0\0"
        s.sendall(tcp_cmd(2, 1_000_000))
        assert recv_exact(s, 4) == b"\x01\0\0\0"
        recv_exact(s, 1)
        return time.monotonic() - t0


def phase_idle(server, n):
    cpu0 = cpu_seconds(server.p.pid)
    held, errors = [], 0
    for _ in range(n):
        try:
            s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            held.append(s)
        except OSError:
            errors += 1
    for s in held:
        try:
            if recv_exact(s, 4) != b"\x01\0\0\0":
                errors += 1
        except OSError:
            errors += 1
    lat = max(real_test_latency(server.port) for _ in range(5))
    server.report("idle", cpu0, errors, f"held {len(held)}, worst real-test start {lat * 1000:.1f} ms (target < 100)")
    for s in held:
        s.close()
    return errors == 0 and lat < 0.1


def phase_tests(server, binary, n, secs):
    cpu0 = cpu_seconds(server.p.pid)
    procs = [subprocess.Popen([binary, "client", f"127.0.0.1:{server.port}", "--duration", str(secs),
                               "--direction", ["receive", "send", "both"][i % 3], "--speed", "200k",
                               "--remote-speed", "200k", "--format", "csv"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(n)]
    time.sleep(secs / 2)
    mid_rss = status_kb(server.p.pid, "VmRSS") / 1024
    errors = 0
    for p in procs:
        out, err = p.communicate(timeout=secs + 60)
        if p.returncode != 0:
            errors += 1
            if errors <= 3:
                print(f"  client failed: {err.strip()}", file=sys.stderr)
    server.report("tests", cpu0, errors, f"{n} concurrent tests of {secs} s; rss mid-run {mid_rss:.1f} MB")
    return errors == 0


def phase_churn(server, n):
    cpu0 = cpu_seconds(server.p.pid)
    errors = 0
    lock = threading.Lock()
    todo = iter(range(n))

    def worker():
        nonlocal errors
        while True:
            with lock:
                if next(todo, None) is None:
                    return
            try:
                with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
                    assert recv_exact(s, 4) == b"\x01\0\0\0"
                    s.sendall(tcp_cmd(3, 10_000_000))
                    assert recv_exact(s, 4) == b"\x01\0\0\0"
                    s.sendall(b"\0" * 1000)
                    recv_exact(s, 1000)
                    s.shutdown(socket.SHUT_WR)
            except (OSError, AssertionError):
                with lock:
                    errors += 1

    t0 = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.monotonic() - t0
    server.report("churn", cpu0, errors, f"{n} short tests in {took:.1f} s ({n / took:.0f}/s)")
    return errors == 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=DEFAULT_BIN)
    ap.add_argument("--idle", type=int, default=2000)
    ap.add_argument("--tests", type=int, default=500)
    ap.add_argument("--test-secs", type=int, default=60)
    ap.add_argument("--churn", type=int, default=10000)
    ap.add_argument("--server-arg", action="append", default=[], help="extra argument for btestd serve")
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    n = max(args.idle, args.tests, 64) + 100
    extra = ["--max-handshakes", str(n), "--max-handshakes-per-ip", str(n), "--max-sessions", str(n),
             "--max-sessions-per-ip", str(n), "--handshake-timeout", "120", "-q", *args.server_arg]
    server = Server(args.bin, extra)
    ok = True
    real_tests = 5 + args.tests + args.churn
    try:
        print(f"server pid {server.p.pid}, idle rss {status_kb(server.p.pid, 'VmRSS') / 1024:.1f} MB")
        ok &= phase_idle(server, args.idle)
        ok &= phase_tests(server, args.bin, args.tests, args.test_secs)
        ok &= phase_churn(server, args.churn)
    finally:
        code = server.stop()
    records = server.session_records()
    print(f"usage records: {records} of {real_tests} tests")
    ok &= records == real_tests
    problems = [l for l in server.log_lines() if "[ERROR]" in l]
    print(f"server exit {code}; error lines: {len(problems)}")
    for l in problems[:5]:
        print("  " + l)
    sys.exit(0 if ok and code == 0 and not problems else 1)


if __name__ == "__main__":
    main()
