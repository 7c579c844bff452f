"""Helpers shared by the benchmark and load scripts: process figures from
/proc, free loopback ports, and servers stopped only by their own PID."""
import os
import signal
import socket
import subprocess
import time

TICK = os.sysconf("SC_CLK_TCK")
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
DEFAULT_BIN = os.path.join(ROOT, "target", "release", "btestd")


def cpu_seconds(pid):
    """User + system CPU seconds of a process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def status_kb(pid, key):
    """A kB figure of /proc/PID/status, e.g. VmRSS or VmHWM."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10, pid="self"):
    """Waits for a TCP listener on `port` without connecting to it (iperf3 -1
    would take a probe connection for its one test), in the network
    namespace of process `pid`."""
    deadline = time.time() + timeout
    want = f":{port:04X} "
    while time.time() < deadline:
        for table in (f"/proc/{pid}/net/tcp", f"/proc/{pid}/net/tcp6"):
            try:
                with open(table) as f:
                    if any(want in line and line.split()[3] == "0A" for line in f):
                        return
            except OSError:
                pass
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


def recv_exact(s, n):
    """Exactly n bytes from socket s, or ConnectionError when it closes first."""
    b = b""
    while len(b) < n:
        chunk = s.recv(n - len(b))
        if not chunk:
            raise ConnectionError("closed")
        b += chunk
    return b


class Proc:
    """A server process we started; stopped by PID, bounded in time."""

    def __init__(self, argv, stderr=subprocess.DEVNULL):
        self.p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=stderr)

    @property
    def pid(self):
        return self.p.pid

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                return self.p.wait(15)
            except subprocess.TimeoutExpired:
                self.p.kill()
        return self.p.wait()
