#!/usr/bin/env python3
"""The long attacks against a btestd server with default flags, on loopback;
the fast ones are tests/attack.rs. Many 127.0.0.x source addresses stand for
many hosts. Every loop is bounded in count and time; only the server started
here is stopped, by PID.

Usage: bench/attack.py [--bin PATH] [--only NAME]

never-read  20 tests x 32 connections from 2 addresses whose clients never
            read: kernel TCP memory (/proc/net/sockstat "mem" pages) at its
            peak, tests admitted, and a concurrent real test's throughput
            against the same test alone.
trickle     100 tests from 10 addresses sending (or taking) a byte a second:
            how many are still running after 25 s and whether a real test is
            admitted meanwhile.
log-flood   one address connecting, taking HELLO and hanging up for 5 s:
            log lines per second about it.
"""
import argparse
import csv
import io
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import DEFAULT_BIN, Proc, free_port, recv_exact, wait_port  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")


def tcp_cmd(direction, conns=0):
    """direction 1: the server receives, 2: it transmits; zeros payload."""
    return struct.pack("<BBBBHHII", 1, direction, 1, conns, 32768, 0, 0, 0)


def sockstat_mem():
    with open("/proc/net/sockstat") as f:
        for line in f:
            if line.startswith("TCP:"):
                parts = line.split()
                return int(parts[parts.index("mem") + 1]) * PAGE
    return 0


def connect_from(src, port, timeout=5):
    s = socket.socket()
    s.settimeout(timeout)
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    return s


class Server:
    def __init__(self, binary, extra=()):
        self.port = free_port()
        self.dir = tempfile.TemporaryDirectory(prefix="btestd-attack-")
        self.log = open(os.path.join(self.dir.name, "log"), "w+")
        self.proc = Proc([binary, "serve", "--listen", f"127.0.0.1:{self.port}", "--udp-port-base",
                          str(free_port()), "--db", os.path.join(self.dir.name, "db"), *extra], stderr=self.log)
        wait_port(self.port)

    def lines(self):
        self.log.flush()
        with open(self.log.name) as f:
            return f.read().splitlines()

    def stop(self):
        self.proc.stop()


def open_test(port, src, direction, conns):
    """A test with `conns` connections (0 = one); returns its sockets, or None if refused."""
    s = connect_from(src, port)
    try:
        if recv_exact(s, 4) != b"\x01\x00\x00\x00":
            return None
        s.sendall(tcp_cmd(direction, conns))
        rep = recv_exact(s, 4)
    except (OSError, ConnectionError):
        return None
    if rep[0] != 1:
        return None
    socks = [s]
    for _ in range(max(conns, 1) - 1):
        j = connect_from(src, port)
        try:
            recv_exact(j, 4)
            j.sendall(rep[1:3] + bytes(14))
            recv_exact(j, 4)
        except (OSError, ConnectionError):
            break
        socks.append(j)
    return socks


def real_test(binary, port, secs=4):
    out = subprocess.run([binary, "client", f"127.0.0.1:{port}", "--direction", "receive", "--duration",
                          str(secs), "--format", "csv"], capture_output=True, text=True, timeout=secs + 30)
    rows = [r for r in csv.DictReader(io.StringIO(out.stdout)) if r.get("kind") == "summary"]
    if out.returncode != 0 or not rows:
        return None
    r = rows[0]
    return (int(r["rx_bytes"]) + int(r["tx_bytes"])) * 8 / float(r["seconds"]) / 1e6


def never_read(binary):
    srv = Server(binary)
    try:
        alone = real_test(binary, srv.port)
        base = sockstat_mem()
        tests = []
        for i in range(20):
            t = open_test(srv.port, f"127.0.0.{30 + i // 10}", 2, 32)
            if t:
                for s in t:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                tests.append(t)
        peak = [0]
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                peak[0] = max(peak[0], sockstat_mem() - base)
                time.sleep(0.2)
        th = threading.Thread(target=sample)
        th.start()
        time.sleep(2)
        during = real_test(binary, srv.port)
        time.sleep(2)
        stop.set()
        th.join()
        conns = sum(len(t) for t in tests)
        print(f"never-read: {len(tests)} of 20 tests admitted ({conns} connections); kernel TCP memory "
              f"+{peak[0] / 2**20:.0f} MiB at peak; a real test alone {alone or 0:.0f} Mbit/s, "
              f"beside them {during or 0:.0f} Mbit/s")
        for t in tests:
            for s in t:
                s.close()
    finally:
        srv.stop()


def trickle(binary):
    srv = Server(binary)
    try:
        tests = []
        for i in range(100):
            t = open_test(srv.port, f"127.0.0.{40 + i // 10}", 1 if i % 2 else 2, 0)
            if t:
                t[0].setblocking(False)
                tests.append(t[0])
        start = time.time()
        while time.time() - start < 25:
            for s in tests:
                try:
                    s.send(b"\0")
                except OSError:
                    pass
            time.sleep(1)
        ended = sum(1 for l in srv.lines() if " ended: " in l and "idle-timeout" in l)
        legit = real_test(binary, srv.port, 2)
        print(f"trickle: {len(tests)} tests opened; {ended} ended by the idle timeout within 25 s; "
              f"a real test then: {'served' if legit else 'refused'}")
        for s in tests:
            s.close()
    finally:
        srv.stop()


def log_flood(binary):
    srv = Server(binary)
    try:
        n, start = 0, time.time()
        while time.time() - start < 5 and n < 50000:
            try:
                s = connect_from("127.0.0.60", srv.port, timeout=0.2)
                try:
                    s.recv(4)
                except OSError:
                    pass
                s.close()
                n += 1
            except OSError:
                pass
        secs = time.time() - start
        time.sleep(1.2)
        about = [l for l in srv.lines() if "127.0.0.60" in l]
        size = sum(len(l) + 1 for l in srv.lines())
        print(f"log-flood: {n} connections in {secs:.1f} s; {len(about)} log lines about that address "
              f"({len(about) / secs:.0f}/s), log {size / secs / 1024:.0f} KB/s")
    finally:
        srv.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=DEFAULT_BIN)
    ap.add_argument("--only", choices=["never-read", "trickle", "log-flood"])
    args = ap.parse_args()
    for name, fn in (("never-read", never_read), ("trickle", trickle), ("log-flood", log_flood)):
        if args.only in (None, name):
            fn(args.bin)


if __name__ == "__main__":
    main()
