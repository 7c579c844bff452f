#!/usr/bin/env python3
"""Loopback benchmarks of btestd against iperf3, measured in one run.

Usage: bench/bench.py tcp|udp [--duration S] [--bin PATH]

tcp: one TCP connection per direction (receive, send, both).
udp: the server transmits 1500-byte datagrams at unlimited rate (iperf3:
     -u -b 0 -l 1472 -R); packets per second sent and delivered. btestd's
     sender ramps up from 10 Mbit/s as a sender on a real path must, so it
     runs 8 s longer and is scored over its last --duration seconds.

Prints throughput, server CPU seconds per GB moved (utime+stime from
/proc/PID/stat), server peak RSS (VmHWM), idle RSS (VmRSS, which counts
the shared pages of libc and the binary) and idle anon (RssAnon: memory of
the server's own), and the btestd/iperf3 ratios. --bin also measures a
cross-built static binary (target/cross/x86_64-unknown-linux-musl/...).
Servers listen on 127.0.0.1 only and are stopped by PID.
"""
import argparse
import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import DEFAULT_BIN, Proc, cpu_seconds, free_port, status_kb, wait_port  # noqa: E402


def run_client(argv, server_pid, timeout):
    """Runs a client to completion; returns its output and the server's
    peak RSS (kB), sampled while the client runs since a one-shot server
    (iperf3 -1) is gone by the time the client exits."""
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    deadline = time.time() + timeout
    while p.poll() is None and time.time() < deadline:
        try:
            peak = max(peak, status_kb(server_pid, "VmHWM"))
        except OSError:
            pass
        time.sleep(0.1)
    out, err = p.communicate(timeout=max(1, deadline - time.time()))
    return subprocess.CompletedProcess(argv, p.returncode, out, err), peak


def run_btestd(binary, direction, duration, extra=()):
    port = free_port()
    log = tempfile.TemporaryFile(mode="w+")
    db = tempfile.TemporaryDirectory(prefix="btestd-bench-")
    srv = Proc([binary, "serve", "--listen", f"127.0.0.1:{port}", "--udp-port-base", str(free_port()),
                "--db", os.path.join(db.name, "btestd.db")], stderr=log)
    try:
        wait_port(port)
        time.sleep(0.2)
        idle_rss = status_kb(srv.pid, "VmRSS")
        idle_anon = status_kb(srv.pid, "RssAnon")
        cpu0 = cpu_seconds(srv.pid)
        out, peak = run_client(
            [binary, "client", f"127.0.0.1:{port}", "--direction", direction, "--duration", str(duration),
             "--format", "csv", *extra], srv.pid, duration + 30)
        time.sleep(0.3)
        cpu1 = cpu_seconds(srv.pid)
    finally:
        srv.stop()
    all_rows = list(csv.DictReader(io.StringIO(out.stdout)))
    rows = [r for r in all_rows if r["kind"] == "summary"]
    if out.returncode != 0 or not rows:
        raise RuntimeError(f"btestd client failed: {out.stderr}")
    s = rows[0]
    log.seek(0)
    ended = [l for l in log.read().splitlines() if " ended: " in l]
    server_tx = int(re.search(r"tx_bytes=(\d+)", ended[-1]).group(1)) if ended else 0
    moved = int(s["tx_bytes"]) + int(s["rx_bytes"])
    secs = float(s["seconds"])
    return dict(gbps=moved * 8 / secs / 1e9, bytes=moved, cpu=cpu1 - cpu0, peak_kb=peak, idle_kb=idle_rss,
                anon_kb=idle_anon,
                secs=secs, rx=int(s["rx_bytes"]), server_tx=server_tx, lost=int(s["lost_packets"]),
                intervals=[r for r in all_rows if r["kind"] == "interval"])


def run_iperf3(direction, duration):
    port = free_port()
    srv = Proc(["iperf3", "-s", "-1", "-B", "127.0.0.1", "-p", str(port)])
    try:
        wait_port(port)
        time.sleep(0.2)
        idle_rss = status_kb(srv.pid, "VmRSS")
        idle_anon = status_kb(srv.pid, "RssAnon")
        cpu0 = cpu_seconds(srv.pid)
        flags = {"send": [], "receive": ["-R"], "both": ["--bidir"]}[direction]
        out, peak = run_client(["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(duration), "-J"] + flags,
                               srv.pid, duration + 30)
        cpu1 = cpu_seconds(srv.pid)
    finally:
        srv.stop()
    end = json.loads(out.stdout)["end"]
    moved = end["sum_received"]["bytes"]
    secs = end["sum_received"]["seconds"]
    if "sum_received_bidir_reverse" in end:
        moved += end["sum_received_bidir_reverse"]["bytes"]
    return dict(gbps=moved * 8 / secs / 1e9, bytes=moved, cpu=cpu1 - cpu0, peak_kb=peak, idle_kb=idle_rss,
                anon_kb=idle_anon)


def tcp(args):
    if not shutil.which("iperf3"):
        sys.exit("iperf3 is needed as the reference: apt-get install iperf3")
    print(f"TCP, one connection, {args.duration} s per run, loopback; server = measured process")
    print(f"{'direction':<10} {'impl':<8} {'Gbit/s':>8} {'cpu s/GB':>9} {'peak RSS':>9} {'idle RSS':>9}"
          f" {'idle anon':>9}")
    worst = None
    for direction in ["receive", "send", "both"]:
        b = run_btestd(args.bin, direction, args.duration)
        i = run_iperf3(direction, args.duration)
        for name, r in (("btestd", b), ("iperf3", i)):
            print(f"{direction:<10} {name:<8} {r['gbps']:>8.2f} {r['cpu'] / (r['bytes'] / 1e9):>9.3f} "
                  f"{r['peak_kb'] / 1024:>7.1f}MB {r['idle_kb'] / 1024:>7.1f}MB {r['anon_kb'] / 1024:>7.1f}MB")
        ratio = b["gbps"] / i["gbps"]
        cpu_ratio = (b["cpu"] / b["bytes"]) / (i["cpu"] / i["bytes"]) if i["cpu"] > 0 else float("nan")
        print(f"{direction:<10} ratio    {ratio:>8.2f}x throughput, {cpu_ratio:.2f}x CPU per GB (btestd/iperf3)")
        worst = ratio if worst is None else min(worst, ratio)
    print(f"worst throughput ratio btestd/iperf3: {worst:.2f} (target >= 0.90)")


UDP_RAMP_SECS = 8


def udp(args):
    if not shutil.which("iperf3"):
        sys.exit("iperf3 is needed as the reference: apt-get install iperf3")
    d = args.duration
    # btestd's UDP sender starts at 10 Mbit/s and doubles while the client's
    # reports keep up, as a sender on a real path must; its capacity shows
    # once the ramp is over, so it is scored over the last d seconds.
    b = run_btestd(args.bin, "receive", d + UDP_RAMP_SECS, ["--proto", "udp", "--tx-size", "1500"])
    steady = [r for r in b["intervals"] if float(r["seconds"]) > UDP_RAMP_SECS]
    port = free_port()
    srv = Proc(["iperf3", "-s", "-1", "-B", "127.0.0.1", "-p", str(port)])
    try:
        wait_port(port)
        time.sleep(0.2)
        cpu0 = cpu_seconds(srv.pid)
        out, peak = run_client(["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(d), "-J", "-u", "-b", "0",
                                "-l", "1472", "-R"], srv.pid, d + 30)
        cpu1 = cpu_seconds(srv.pid)
    finally:
        srv.stop()
    e = json.loads(out.stdout)["end"]["sum"]
    i_sent_pps = e["packets"] / e["seconds"]
    i_got_pps = (e["packets"] - e["lost_packets"]) / e["seconds"]
    secs = float(steady[-1]["seconds"]) - UDP_RAMP_SECS
    b_got_pps = sum(int(r["rx_bytes"]) for r in steady) / 1500 / secs
    b_lost = sum(int(r["lost_packets"]) for r in steady)
    b_sent_pps = b_got_pps + b_lost / secs
    i_gb = (e["packets"] * 1500) / 1e9
    print(f"UDP, server transmits 1500-byte IP packets at unlimited rate, {d} s, loopback "
          f"(btestd: the {d} s after its {UDP_RAMP_SECS} s ramp)")
    print(f"{'impl':<8} {'sent pps':>10} {'delivered pps':>14} {'Gbit/s':>8} {'lost':>7} {'cpu s/GB':>9} {'peak RSS':>9}")
    print(f"{'btestd':<8} {b_sent_pps:>10.0f} {b_got_pps:>14.0f} {b_got_pps * 1500 * 8 / 1e9:>8.2f} "
          f"{b_lost:>7} {b['cpu'] / (b['server_tx'] / 1e9):>9.3f} {b['peak_kb'] / 1024:>7.1f}MB")
    print(f"{'iperf3':<8} {i_sent_pps:>10.0f} {i_got_pps:>14.0f} {i_got_pps * 1500 * 8 / 1e9:>8.2f} "
          f"{e['lost_packets']:>7} {(cpu1 - cpu0) / i_gb:>9.3f} {peak / 1024:>7.1f}MB")
    print(f"ratio btestd/iperf3: {b_sent_pps / i_sent_pps:.2f}x packets/s sent, "
          f"{b_got_pps / i_got_pps:.2f}x delivered (target >= 1.2)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["tcp", "udp"])
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--bin", default=DEFAULT_BIN)
    args = ap.parse_args()
    {"tcp": tcp, "udp": udp}[args.what](args)


if __name__ == "__main__":
    main()
