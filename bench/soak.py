#!/usr/bin/env python3
"""Soak test: mixed TCP/UDP tests with authentication and quotas against one
server for a long time (default 30 minutes; run outside CI).

Usage: bench/soak.py [--minutes M] [--concurrency N] [--bin PATH]

Passes when: no client test fails, the server's RSS grows by less than 1 MB
between the end of warm-up (first 10% of the run) and the end, and the usage
persisted in the database equals the bytes the clients measured (within 1%,
the bytes still in flight when a test closes).
"""
import argparse
import csv
import io
import os
import random
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import DEFAULT_BIN, Proc, free_port, status_kb, wait_port  # noqa: E402


def admin(binary, db, *args):
    return subprocess.run([binary, *args, "--db", db], capture_output=True, text=True, check=True).stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--bin", default=DEFAULT_BIN)
    args = ap.parse_args()
    rng = random.Random(1)
    work = tempfile.TemporaryDirectory(prefix="btestd-soak-")
    db = os.path.join(work.name, "btestd.db")
    admin(args.bin, db, "user", "add", "soak", "--password", "s0ak", "--md5")
    admin(args.bin, db, "quota", "set", "--user", "soak", "--month-total", "10TB")
    admin(args.bin, db, "quota", "set", "--ip-default", "--day-total", "10TB")
    port = free_port()
    log = open(os.path.join(work.name, "server.log"), "w")
    srv = Proc([args.bin, "serve", "--listen", f"127.0.0.1:{port}", "--db", db, "--udp-port-base",
                str(free_port()), "--max-sessions-per-ip", "100"], stderr=log)
    wait_port(port)
    end = time.time() + args.minutes * 60
    warm = time.time() + args.minutes * 6
    lock = threading.Lock()
    totals = {"tests": 0, "failed": 0, "bytes": 0}
    rss = []

    def one_test():
        proto = rng.choice(["tcp", "udp"])
        cmd = [args.bin, "client", f"127.0.0.1:{port}", "--proto", proto, "--user", "soak", "--password", "s0ak",
               "--direction", rng.choice(["send", "receive", "both"]), "--duration", str(rng.randint(3, 15)),
               "--speed", rng.choice(["1M", "10M", "50M"]), "--remote-speed", rng.choice(["1M", "10M", "50M"]),
               "--format", "csv"]
        if proto == "tcp":
            cmd += ["--connections", str(rng.choice([1, 1, 4, 20]))]
        if rng.random() < 0.2:
            cmd.append("--random")
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        rows = [r for r in csv.DictReader(io.StringIO(out.stdout)) if r["kind"] == "summary"]
        with lock:
            totals["tests"] += 1
            if out.returncode != 0 or not rows:
                totals["failed"] += 1
                print(f"failed: {' '.join(cmd[3:])}: {out.stderr.strip()}", file=sys.stderr)
            else:
                totals["bytes"] += int(rows[0]["tx_bytes"]) + int(rows[0]["rx_bytes"])

    def worker():
        while time.time() < end:
            one_test()

    threads = [threading.Thread(target=worker) for _ in range(args.concurrency)]
    for t in threads:
        t.start()
    base = None
    while any(t.is_alive() for t in threads):
        time.sleep(10)
        kb = status_kb(srv.pid, "VmRSS")
        rss.append(kb)
        if base is None and time.time() >= warm:
            base = kb
        print(f"{time.strftime('%H:%M:%S')} tests {totals['tests']} failed {totals['failed']} rss {kb / 1024:.2f} MB",
              flush=True)
    for t in threads:
        t.join()
    final = status_kb(srv.pid, "VmRSS")
    code = srv.stop()
    out = admin(args.bin, db, "usage", "--user", "soak", "--period", "month", "--format", "csv")
    row = next(csv.DictReader(io.StringIO(out)))
    persisted = int(row["total_bytes"])
    growth = (final - (base or final)) / 1024
    diff = abs(persisted - totals["bytes"]) / max(totals["bytes"], 1)
    print(f"tests {totals['tests']}, failed {totals['failed']}; RSS after warm-up {(base or 0) / 1024:.2f} MB, "
          f"at end {final / 1024:.2f} MB (growth {growth:.2f} MB, peak {max(rss) / 1024:.2f} MB); "
          f"usage persisted {persisted} vs measured {totals['bytes']} ({diff * 100:.3f}%); server exit {code}")
    ok = totals["failed"] == 0 and growth < 1.0 and diff <= 0.01 and code == 0
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
