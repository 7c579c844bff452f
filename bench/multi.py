#!/usr/bin/env python3
"""Multi-connection tests as RouterOS 7 runs them, against `btestd serve`
with default flags on loopback.

Usage: bench/multi.py [--bin PATH] [--client-bin PATH] [--rounds R] [--clients K]

1. burst: a 20-connection test whose 19 extra connections are all opened
   before any sends its join request; prints how many were closed before
   HELLO and how long until data began (the join timeout is 5 s).
2. together: K identical `btestd client --connections 20` runs started at
   the same moment from one address, R rounds; prints the runs and the
   rounds in which every run succeeded.
"""
import argparse
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import DEFAULT_BIN, Proc, free_port, wait_port  # noqa: E402


def recv_exact(s, n):
    b = b""
    while len(b) < n:
        chunk = s.recv(n - len(b))
        if not chunk:
            break
        b += chunk
    return b


def burst(port, conns=20):
    """(closed before HELLO, seconds until data) for one test."""
    p = socket.create_connection(("127.0.0.1", port), timeout=10)
    assert recv_exact(p, 4) == b"\x01\0\0\0"
    p.sendall(bytes([1, 2, 1, conns, 0, 0x80]) + bytes(10))
    ok = recv_exact(p, 4)
    assert ok[0] == 1 and ok[3] == 0, ok
    t0 = time.monotonic()
    extra = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(conns - 1)]
    greeted = [s for s in extra if recv_exact(s, 4) == b"\x01\0\0\0"]
    for s in greeted:
        s.sendall(ok[1:3] + b"\x02" + bytes(13))
    for s in greeted:
        recv_exact(s, 4)
    recv_exact(p, 1)
    waited = time.monotonic() - t0
    for s in extra + [p]:
        s.close()
    return conns - 1 - len(greeted), waited


def together(client_bin, port, clients, rounds):
    ok = rounds_ok = 0
    for _ in range(rounds):
        argv = [client_bin, "client", f"127.0.0.1:{port}", "--connections", "20", "--duration", "1"]
        kids = [subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(clients)]
        codes = [k.wait(60) for k in kids]
        ok += codes.count(0)
        rounds_ok += all(c == 0 for c in codes)
    return ok, rounds_ok


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=DEFAULT_BIN, help="the server's btestd")
    ap.add_argument("--client-bin", help="the clients' btestd (default: --bin)")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--clients", type=int, default=2)
    args = ap.parse_args()
    port = free_port()
    server = Proc([args.bin, "serve", "--no-db", "--listen", f"127.0.0.1:{port}"])
    try:
        wait_port(port)
        closed, waited = burst(port)
        print(f"burst: {closed} of 19 extra connections closed before HELLO; data after {waited:.2f} s")
        time.sleep(1)
        ok, rounds_ok = together(args.client_bin or args.bin, port, args.clients, args.rounds)
        total = args.clients * args.rounds
        print(f"together: {ok} of {total} runs succeeded; all {args.clients} in {rounds_ok} of {args.rounds} rounds")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
