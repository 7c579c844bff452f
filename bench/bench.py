#!/usr/bin/env python3
"""Benchmarks of btestd against iperf3, measured in one run.

Usage: bench/bench.py tcp|udp|udp-rx [--duration S] [--bin PATH] [--before PATH]
                      [--netns]

tcp: the server transmitting on one connection (against iperf3 -R and
     iperf3 -Z, whose sender uses sendfile), the server receiving (against
     iperf3's receiver), both ways, and 20 connections (RouterOS 7's
     speed-test default) against one; CPU seconds per GB of both sides
     (the client's from its rusage), and the server's worst event-loop
     iteration from its log.
udp: the server transmits 1500-byte datagrams at unlimited rate (iperf3:
     -u -b 0 -l 1472 -R); packets per second sent and delivered. btestd's
     sender ramps up from 10 Mbit/s as a sender on a real path must, so it
     runs 8 s longer and is scored over its last --duration seconds.
udp-rx: the server receives what the btestd client sends unlimited; its
     CPU per GB received, side by side with --before (an older build).

--netns (root; tcp and udp-rx): each server runs in its own network namespace
on CPU 1 and each client in another on CPU 0, joined by a veth pair whose
receive work (RPS) is steered to the receiving side's CPU, as two hosts
would each do their own. On loopback the sender's system call also does
the receiver's TCP work, so there CPU per GB and connection counts
measure how the kernel splits one machine's work as much as either side.

Prints throughput, server CPU seconds per GB moved (utime+stime from
/proc/PID/stat), server peak RSS (VmHWM), idle RSS (VmRSS, which counts
the shared pages of libc and the binary) and idle anon (RssAnon: memory of
the server's own), and the ratios. --bin also measures a cross-built static
binary (target/cross/x86_64-unknown-linux-musl/...). Servers listen on
127.0.0.1 only (or the namespaces' own addresses) and are stopped by PID.
"""
import argparse
import csv
import io
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import DEFAULT_BIN, Proc, cpu_seconds, free_port, status_kb, wait_port  # noqa: E402


class Path:
    """Where servers and clients run: loopback, or a namespace pair."""

    def __init__(self):
        self.server_addr = "127.0.0.1"
        self.server_cmd = []
        self.client_cmd = []
        self.made = []

    def name(self):
        return "veth between two namespaces, RPS to each side's CPU" if self.made else "loopback"

    def split(self):
        """Server namespace on CPU 1, client namespace on CPU 0. Removed by
        close(), also when a step fails."""
        tag = os.getpid()
        server_ns, client_ns = f"btb-bs-{tag}", f"btb-bc-{tag}"
        server_if, client_if = f"btbs{tag}"[:15], f"btbc{tag}"[:15]
        sh = lambda *a: subprocess.run(a, check=True)  # noqa: E731
        for ns in (server_ns, client_ns):
            sh("ip", "netns", "add", ns)
            self.made.append(ns)
        sh("ip", "link", "add", server_if, "netns", server_ns, "type", "veth", "peer", "name", client_if,
           "netns", client_ns)

        def side(ns, dev, addr, cpu):
            """Brings one end up; returns the prefix that runs a command there."""
            ex = ["ip", "netns", "exec", ns]
            sh(*ex, "ip", "addr", "add", f"{addr}/24", "dev", dev)
            sh(*ex, "ip", "link", "set", dev, "up")
            sh(*ex, "ip", "link", "set", "lo", "up")
            # `ip netns exec` mounts the namespace's own /sys.
            sh(*ex, "sh", "-c", f"echo {1 << cpu:x} > /sys/class/net/{dev}/queues/rx-0/rps_cpus")
            return ex + ["taskset", "-c", str(cpu)]

        self.server_addr = "10.214.0.1"
        self.server_cmd = side(server_ns, server_if, self.server_addr, 1)
        self.client_cmd = side(client_ns, client_if, "10.214.0.2", 0)

    def close(self):
        for ns in self.made:
            subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)
        self.made = []


PATH = Path()


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_client(argv, server_pid, timeout):
    """Runs a client to completion; returns its output and the server's
    peak RSS (kB), sampled while the client runs since a one-shot server
    (iperf3 -1) is gone by the time the client exits. The client's CPU
    seconds are in the result's `cpu` attribute (its rusage: the only
    child reaped meanwhile)."""
    c0 = children_cpu()
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
    done = subprocess.CompletedProcess(argv, p.returncode, out, err)
    done.cpu = children_cpu() - c0
    return done, peak


def run_btestd(binary, direction, duration, extra=()):
    port = free_port()
    log = tempfile.TemporaryFile(mode="w+")
    db = tempfile.TemporaryDirectory(prefix="btestd-bench-")
    srv = Proc(PATH.server_cmd + [binary, "serve", "--listen", f"{PATH.server_addr}:{port}", "--udp-port-base",
                                  str(free_port()), "--db", os.path.join(db.name, "btestd.db")], stderr=log)
    try:
        wait_port(port, pid=srv.pid)
        time.sleep(0.2)
        idle_rss = status_kb(srv.pid, "VmRSS")
        idle_anon = status_kb(srv.pid, "RssAnon")
        cpu0 = cpu_seconds(srv.pid)
        out, peak = run_client(
            PATH.client_cmd + [binary, "client", f"{PATH.server_addr}:{port}", "--direction", direction,
                               "--duration", str(duration), "--format", "csv", *extra], srv.pid, duration + 30)
        time.sleep(0.3)
        cpu1 = cpu_seconds(srv.pid)
    finally:
        srv.stop()
        db.cleanup()
    all_rows = list(csv.DictReader(io.StringIO(out.stdout)))
    rows = [r for r in all_rows if r["kind"] == "summary"]
    if out.returncode != 0 or not rows:
        raise RuntimeError(f"btestd client failed: {out.stderr}")
    s = rows[0]
    log.seek(0)
    lines = log.read().splitlines()
    ended = [l for l in lines if " ended: " in l]
    server_tx = int(re.search(r"tx_bytes=(\d+)", ended[-1]).group(1)) if ended else 0
    server_rx = int(re.search(r"rx_bytes=(\d+)", ended[-1]).group(1)) if ended else 0
    server_lost = int(re.search(r" lost=(\d+)", ended[-1]).group(1)) if ended else 0
    turns = [(int(m.group(1)), int(m.group(2)), int(m.group(3)), int(m.group(4))) for l in lines
             for m in [re.search(r"worst iteration (\d+) us, (\d+) us on CPU; (\d+) of (\d+)", l)] if m]
    moved = int(s["tx_bytes"]) + int(s["rx_bytes"])
    secs = float(s["seconds"])
    return dict(gbps=moved * 8 / secs / 1e9, bytes=moved, cpu=cpu1 - cpu0, peak_kb=peak, idle_kb=idle_rss,
                anon_kb=idle_anon, client_cpu=out.cpu, worst_turn_us=turns[-1] if turns else None,
                secs=secs, rx=int(s["rx_bytes"]), server_tx=server_tx, server_rx=server_rx, server_lost=server_lost,
                lost=int(s["lost_packets"]), intervals=[r for r in all_rows if r["kind"] == "interval"])


def run_iperf3(direction, duration, extra=()):
    port = free_port()
    srv = Proc(PATH.server_cmd + ["iperf3", "-s", "-1", "-B", PATH.server_addr, "-p", str(port)])
    try:
        wait_port(port, pid=srv.pid)
        time.sleep(0.2)
        idle_rss = status_kb(srv.pid, "VmRSS")
        idle_anon = status_kb(srv.pid, "RssAnon")
        cpu0 = cpu_seconds(srv.pid)
        flags = {"send": [], "receive": ["-R"], "both": ["--bidir"]}[direction]
        out, peak = run_client(PATH.client_cmd + ["iperf3", "-c", PATH.server_addr, "-p", str(port), "-t",
                                                  str(duration), "-J"] + flags
                               + list(extra), srv.pid, duration + 30)
        cpu1 = cpu_seconds(srv.pid)
    finally:
        srv.stop()
    end = json.loads(out.stdout)["end"]
    moved = end["sum_received"]["bytes"]
    secs = end["sum_received"]["seconds"]
    if "sum_received_bidir_reverse" in end:
        moved += end["sum_received_bidir_reverse"]["bytes"]
    return dict(gbps=moved * 8 / secs / 1e9, bytes=moved, cpu=cpu1 - cpu0, peak_kb=peak, idle_kb=idle_rss,
                anon_kb=idle_anon, client_cpu=out.cpu)


SPIN = """
import os, sys, time
os.sched_setaffinity(0, {int(sys.argv[1])})
end = time.monotonic() + float(sys.argv[2])
worst, last = 0.0, time.monotonic()
while last < end:
    now = time.monotonic()
    worst = max(worst, now - last)
    last = now
print(worst)
"""


def machine_stalls(secs=3):
    """The longest gap a thread spinning alone on each CPU saw, in ms: time
    the host or the kernel took from it, which a guest counts as that
    thread's CPU time too. No event-loop iteration measured here can be
    shorter than this."""
    cpus = sorted(os.sched_getaffinity(0))[:2]
    procs = [subprocess.Popen([sys.executable, "-c", SPIN, str(c), str(secs)], stdout=subprocess.PIPE, text=True)
             for c in cpus]
    return [float(p.communicate()[0]) * 1000 for p in procs]


def per_gb(cpu, moved):
    return cpu / (moved / 1e9) if moved else float("nan")


def tcp(args):
    if not shutil.which("iperf3"):
        sys.exit("iperf3 is needed as the reference: apt-get install iperf3")
    d = args.duration
    print(f"TCP, {d} s per run, {PATH.name()}; 'server' is btestd serve or iperf3 -s, 'client' the other end")
    print(f"{'case':<18} {'impl':<10} {'Gbit/s':>8} {'srv cpu/GB':>10} {'cli cpu/GB':>10} {'peak RSS':>9}"
          f" {'idle RSS':>9} {'idle anon':>9} {'worst turn wall/CPU':>20}")

    def row(case, name, r):
        t = r.get("worst_turn_us")
        turn = f"{t[0] / 1000:.1f}/{t[1] / 1000:.1f}ms" if t is not None else "-"
        print(f"{case:<18} {name:<10} {r['gbps']:>8.2f} {per_gb(r['cpu'], r['bytes']):>10.3f} "
              f"{per_gb(r['client_cpu'], r['bytes']):>10.3f} {r['peak_kb'] / 1024:>7.1f}MB "
              f"{r['idle_kb'] / 1024:>7.1f}MB {r['anon_kb'] / 1024:>7.1f}MB {turn:>20}")

    # The server sends: btestd's server against iperf3's sender, plain (-R:
    # its server sends) and with -Z (sendfile; its client sends).
    b_tx = run_btestd(args.bin, "receive", d)
    i_tx = run_iperf3("receive", d)
    z_tx = run_iperf3("send", d, ["-Z"])
    row("server sends", "btestd", b_tx)
    row("server sends", "iperf3 -R", i_tx)
    row("client sends", "iperf3 -Z", z_tx)
    # The server receives: btestd's server against iperf3's receiving server.
    b_rx = run_btestd(args.bin, "send", d)
    i_rx = run_iperf3("send", d)
    row("server receives", "btestd", b_rx)
    row("server receives", "iperf3", i_rx)
    b_both = run_btestd(args.bin, "both", d)
    i_both = run_iperf3("both", d)
    row("both", "btestd", b_both)
    row("both", "iperf3", i_both)
    b_20 = run_btestd(args.bin, "receive", d, ["--connections", "20"])
    row("20 conns sending", "btestd", b_20)
    b_20rx = run_btestd(args.bin, "send", d, ["--connections", "20"])
    row("20 conns receiving", "btestd", b_20rx)

    tx_cpu = per_gb(b_tx["cpu"], b_tx["bytes"]) / per_gb(z_tx["client_cpu"], z_tx["bytes"])
    print(f"server sending: {tx_cpu:.2f}x the CPU per GB of iperf3 -Z's sender (goal <= 0.80), "
          f"{b_tx['gbps'] / z_tx['gbps']:.2f}x its throughput (goal >= 1.00)")
    rx_cpu = per_gb(b_rx["cpu"], b_rx["bytes"]) / per_gb(i_rx["cpu"], i_rx["bytes"])
    print(f"server receiving: {rx_cpu:.2f}x the CPU per GB of iperf3's receiver (goal <= 0.50), "
          f"{b_rx['gbps'] / i_rx['gbps']:.2f}x its throughput")
    print(f"both: {b_both['gbps'] / i_both['gbps']:.2f}x iperf3 --bidir's throughput")
    stalls = ", ".join(f"{ms:.2f} ms" for ms in machine_stalls())
    print(f"this machine, idle: a thread spinning alone on each CPU for 3 s was stopped for up to {stalls}")
    for name, r, one in (("sending", b_20, b_tx), ("receiving", b_20rx, b_rx)):
        wall, cpu, slow, turns = r["worst_turn_us"] or (float("nan"),) * 4
        print(f"20 connections {name}: {r['gbps'] / one['gbps']:.2f}x one connection's throughput (goal >= 0.90), "
              f"worst event-loop iteration {cpu / 1000:.2f} ms on CPU (goal < 5), {wall / 1000:.2f} ms wall, "
              f"{slow} of {turns} iterations >= 5 ms on CPU")


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


def udp_rx(args):
    d = args.duration
    print(f"UDP, the server receives 1500-byte IP packets the btestd client sends unlimited, {d} s after its "
          f"{UDP_RAMP_SECS} s ramp, {PATH.name()}")
    print(f"{'build':<8} {'delivered pps':>14} {'Gbit/s':>8} {'lost':>8} {'srv cpu/GB':>10} {'cli cpu/GB':>10}"
          f" {'peak RSS':>9}")
    results = []
    for name, binary in (("this", args.bin), ("before", args.before)):
        if not binary:
            continue
        r = run_btestd(binary, "send", d + UDP_RAMP_SECS, ["--proto", "udp", "--tx-size", "1500"])
        steady = [i for i in r["intervals"] if float(i["seconds"]) > UDP_RAMP_SECS]
        secs = float(steady[-1]["seconds"]) - UDP_RAMP_SECS
        pps = sum(int(i["tx_bytes"]) for i in steady) / 1500 / secs
        cpu = per_gb(r["cpu"], r["server_rx"])
        results.append(cpu)
        print(f"{name:<8} {pps:>14.0f} {pps * 1500 * 8 / 1e9:>8.2f} {r['server_lost']:>8} {cpu:>10.3f} "
              f"{per_gb(r['client_cpu'], r['server_rx']):>10.3f} {r['peak_kb'] / 1024:>7.1f}MB")
    if len(results) == 2:
        print(f"server CPU per GB received: {results[0] / results[1]:.2f}x the older build's (goal <= 0.50)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["tcp", "udp", "udp-rx"])
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--bin", default=DEFAULT_BIN)
    ap.add_argument("--before", help="udp-rx: an older btestd build measured side by side")
    ap.add_argument("--netns", action="store_true", help="tcp, udp-rx: across a veth pair between two namespaces")
    args = ap.parse_args()
    if args.netns:
        if args.what == "udp":
            sys.exit("--netns measures tcp and udp-rx")
        if os.geteuid() != 0 or (os.cpu_count() or 1) < 2:
            sys.exit("--netns needs root (ip netns) and two CPUs")
    try:
        if args.netns:
            PATH.split()
        {"tcp": tcp, "udp": udp, "udp-rx": udp_rx}[args.what](args)
    finally:
        PATH.close()


if __name__ == "__main__":
    main()
