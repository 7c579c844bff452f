#!/usr/bin/env python3
"""Loopback benchmarks of btestd against iperf3, measured in one run.

Usage: bench/bench.py tcp [--duration S] [--bin PATH]

Prints throughput, server CPU seconds per GB moved (utime+stime from
/proc/PID/stat), server peak RSS (VmHWM) and the btestd/iperf3 ratio for each
direction. Servers listen on 127.0.0.1 only and are stopped by PID.
"""
import argparse
import csv
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def status_kb(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def wait_port(port, timeout=10):
    """Waits for a TCP listener on `port` without connecting to it (iperf3 -1
    would take a probe connection for its one test)."""
    deadline = time.time() + timeout
    want = f":{port:04X} "
    while time.time() < deadline:
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                with open(table) as f:
                    if any(want in line and line.split()[3] == "0A" for line in f):
                        return
            except OSError:
                pass
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


class Proc:
    """A server process we started; stopped by PID, bounded."""

    def __init__(self, argv):
        self.p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


def run_btestd(binary, direction, duration):
    port = free_port()
    srv = Proc([binary, "serve", "--listen", f"127.0.0.1:{port}", "-q"])
    try:
        wait_port(port)
        time.sleep(0.2)
        idle_rss = status_kb(srv.p.pid, "VmRSS")
        cpu0 = cpu_seconds(srv.p.pid)
        out = subprocess.run(
            [binary, "client", f"127.0.0.1:{port}", "--direction", direction, "--duration", str(duration),
             "--format", "csv"],
            capture_output=True, text=True, timeout=duration + 30)
        cpu1 = cpu_seconds(srv.p.pid)
        peak = status_kb(srv.p.pid, "VmHWM")
    finally:
        srv.stop()
    rows = [r for r in csv.DictReader(io.StringIO(out.stdout)) if r["kind"] == "summary"]
    if out.returncode != 0 or not rows:
        raise RuntimeError(f"btestd client failed: {out.stderr}")
    s = rows[0]
    moved = int(s["tx_bytes"]) + int(s["rx_bytes"])
    return dict(gbps=moved * 8 / float(s["seconds"]) / 1e9, bytes=moved, cpu=cpu1 - cpu0,
                peak_kb=peak, idle_kb=idle_rss)


def run_iperf3(direction, duration):
    port = free_port()
    srv = Proc(["iperf3", "-s", "-1", "-B", "127.0.0.1", "-p", str(port)])
    try:
        wait_port(port)
        time.sleep(0.2)
        idle_rss = status_kb(srv.p.pid, "VmRSS")
        cpu0 = cpu_seconds(srv.p.pid)
        flags = {"send": [], "receive": ["-R"], "both": ["--bidir"]}[direction]
        out = subprocess.run(["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(duration), "-J"] + flags,
                             capture_output=True, text=True, timeout=duration + 30)
        cpu1 = cpu_seconds(srv.p.pid)
        peak = status_kb(srv.p.pid, "VmHWM")
    finally:
        srv.stop()
    end = json.loads(out.stdout)["end"]
    moved = end["sum_received"]["bytes"]
    secs = end["sum_received"]["seconds"]
    if "sum_received_bidir_reverse" in end:
        moved += end["sum_received_bidir_reverse"]["bytes"]
    return dict(gbps=moved * 8 / secs / 1e9, bytes=moved, cpu=cpu1 - cpu0, peak_kb=peak, idle_kb=idle_rss)


def tcp(args):
    if not shutil.which("iperf3"):
        sys.exit("iperf3 is needed as the reference: apt-get install iperf3")
    print(f"TCP, one connection, {args.duration} s per run, loopback; server = measured process")
    print(f"{'direction':<10} {'impl':<8} {'Gbit/s':>8} {'cpu s/GB':>9} {'peak RSS':>9} {'idle RSS':>9}")
    worst = None
    for direction in ["receive", "send", "both"]:
        b = run_btestd(args.bin, direction, args.duration)
        i = run_iperf3(direction, args.duration)
        for name, r in (("btestd", b), ("iperf3", i)):
            print(f"{direction:<10} {name:<8} {r['gbps']:>8.2f} {r['cpu'] / (r['bytes'] / 1e9):>9.3f} "
                  f"{r['peak_kb'] / 1024:>7.1f}MB {r['idle_kb'] / 1024:>7.1f}MB")
        ratio = b["gbps"] / i["gbps"]
        cpu_ratio = (b["cpu"] / b["bytes"]) / (i["cpu"] / i["bytes"]) if i["cpu"] > 0 else float("nan")
        print(f"{direction:<10} ratio    {ratio:>8.2f}x throughput, {cpu_ratio:.2f}x CPU per GB (btestd/iperf3)")
        worst = ratio if worst is None else min(worst, ratio)
    print(f"worst throughput ratio btestd/iperf3: {worst:.2f} (target >= 0.90)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["tcp"])
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--bin", default=os.path.join(os.path.dirname(__file__), "..", "target", "release", "btestd"))
    args = ap.parse_args()
    {"tcp": tcp}[args.what](args)


if __name__ == "__main__":
    main()
