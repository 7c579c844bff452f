#!/usr/bin/env python3
"""Writes the checked-in seed corpus under fuzz/corpus/<target>/.

Seeds are meaningful protocol inputs: captured commands from
protocol.md, complete MD5 and EC-SRP5 exchanges built from
tests/vectors/*.json, status messages split across reads, and UDP sequences
with gaps. The input layout of each target is documented at the top of
fuzz/fuzz_targets/<target>.rs. It overwrites its own named seeds and leaves
other files (the `cmin-*` inputs kept from fuzzing runs) alone; delete those
by hand when a layout changes. Re-run after changing a layout:

    python3 fuzz/gen_corpus.py        # from the repository root
"""

import hashlib
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
VECTORS = os.path.join(HERE, "..", "tests", "vectors")
CORPUS = os.path.join(HERE, "corpus")

# Must match fuzz_targets/handshake.rs.
USER, PASSWORD = b"admin", b"pw-0-2265b1f5"
CHALLENGE = bytes.fromhex("ad32d6f94d28161625f2f390bb895637")


def load(name):
    with open(os.path.join(VECTORS, name)) as f:
        return json.load(f)


def command(proto, direction, random, conns, tx_size, buf=0, remote=0, local=0):
    return struct.pack("<BBBBHHII", proto, direction, 0 if random else 1, conns, tx_size, buf, remote, local)


def status(cpu, seq, nbytes):
    cpu_byte = 0 if cpu is None else 0x80 | min(cpu, 100)
    return bytes([7, cpu_byte, 0, 0]) + struct.pack("<II", seq, nbytes)


def md5_response(user, password, challenge):
    inner = hashlib.md5(password + challenge).digest()
    h = hashlib.md5(password + inner).digest()
    return h + user[:32].ljust(32, b"\0")


def main():
    seeds = {}

    def seed(target, name, data):
        seeds.setdefault(target, {})[name] = bytes(data)

    ec = load("ecsrp5.json")["vectors"]
    md5v = load("md5.json")["vectors"]
    v0 = ec[0]
    assert v0["username"] == USER.decode() and v0["password"] == PASSWORD.decode()
    other = next(v for v in ec if v["username"] != v0["username"])

    # command: captured commands, replies, statuses (the target tries every
    # parser on every input).
    tcp_rx = bytes.fromhex("01020100008000000000000000000000")
    seed("command", "tcp-server-transmits", tcp_rx)
    seed("command", "udp-both-1500", bytes.fromhex("00030100dc0500000000000000000000"))
    seed("command", "tcp-10-connections", bytes.fromhex("0102010a008000000000000000000000"))
    seed("command", "tcp-random-receive", bytes.fromhex("01010000008000000000000000000000"))
    seed("command", "tcp-speeds", bytes.fromhex("0102010000800000ffffffff01000000"))
    seed("command", "round-trip-vector", bytes.fromhex("010300140080ffff40420f0001000000"))
    seed("command", "tcp-101-connections", command(1, 1, False, 101, 32768))
    seed("command", "reply-ok-token", bytes.fromhex("01bc0400"))
    seed("command", "reply-md5", bytes.fromhex("02000000"))
    seed("command", "join-request", bytes.fromhex("04bc0200000000000000000000000000"))
    seed("command", "status-routeros6", bytes.fromhex("0700000001000000366e0300"))
    seed("command", "status-cpu-flag", status(89, 2, 0x07800707))

    # handshake: flags, join byte, split seed, then the client's byte stream.
    cmd = command(1, 3, False, 0, 32768)
    good_md5 = md5_response(USER, PASSWORD, CHALLENGE)
    seed("handshake", "none-tcp", bytes([0, 0, 0]) + tcp_rx)
    seed("handshake", "none-udp-split", bytes([0, 0, 7]) + bytes.fromhex("00030100dc0500000000000000000000"))
    seed("handshake", "join", bytes([1, 0x04, 0]) + bytes.fromhex("04bc0200000000000000000000000000"))
    seed("handshake", "md5-ok", bytes([1, 0, 0]) + cmd + good_md5)
    seed("handshake", "md5-ok-split-drain", bytes([0x11, 0, 0x35]) + cmd + good_md5)
    seed("handshake", "md5-wrong-password", bytes([1, 0, 0]) + cmd + md5_response(USER, b"nope", CHALLENGE))
    seed("handshake", "md5-unknown-user", bytes([1, 0, 3]) + cmd + md5_response(b"bob", PASSWORD, CHALLENGE))
    seed("handshake", "md5-disabled", bytes([1 | 4, 0, 0]) + cmd + good_md5)
    seed("handshake", "md5-no-secret", bytes([1 | 8, 0, 0]) + cmd + good_md5)
    msg1, msg3 = bytes.fromhex(v0["wire_msg1"]), bytes.fromhex(v0["wire_msg3"])
    seed("handshake", "ecsrp5-ok", bytes([2, 0, 0]) + cmd + msg1 + msg3)
    seed("handshake", "ecsrp5-ok-split-drain", bytes([0x12, 0, 0x9d]) + cmd + msg1 + msg3)
    seed("handshake", "ecsrp5-ok-disabled", bytes([2 | 4, 0, 0]) + cmd + msg1 + msg3)
    bad3 = msg3[:-1] + bytes([msg3[-1] ^ 1])
    seed("handshake", "ecsrp5-wrong-proof", bytes([2, 0, 0]) + cmd + msg1 + bad3)
    seed(
        "handshake",
        "ecsrp5-unknown-user",
        bytes([2, 0, 0x41]) + cmd + bytes.fromhex(other["wire_msg1"]) + bytes.fromhex(other["wire_msg3"]),
    )
    seed("handshake", "ecsrp5-empty-hello", bytes([2, 0, 0]) + cmd + b"\0")
    seed("handshake", "ecsrp5-short-proof", bytes([2, 0, 0]) + cmd + msg1 + b"\x1f" + msg3[1:32])

    # auth: mode byte, then the mode's fields (see auth.rs).
    def sl(b):
        return bytes([len(b)]) + b

    for i, v in enumerate(md5v[1:3], 1):
        ch = bytes.fromhex(v["challenge"])
        u, p = v["username"].encode(), v["password"].encode()
        seed("auth", f"md5-vector{i}", bytes([0]) + ch + sl(u) + sl(p) + bytes.fromhex(v["wire_response"]))
    for i, v in enumerate(ec[:3]):
        seed("auth", f"hello-vector{i}", bytes([1]) + bytes.fromhex(v["wire_msg1"])[1:])
    for i, v in enumerate(ec[:2]):
        hello = bytes.fromhex(v["wire_msg1"])[1:]
        user = hello[: hello.index(0)]
        px, par = bytes.fromhex(v["client_pub_x"]), v["client_pub_parity"]
        sb = bytes.fromhex(v["server_secret_s_b"])
        cc = bytes.fromhex(v["client_cc"])
        # Genuine validator of another user: start succeeds, finish refuses.
        seed("auth", f"server-genuine{i}", bytes([2, 0]) + px + bytes([par]) + sb + sl(user) + cc)
        # The vector's own validator row: the exchange succeeds.
        row = bytes.fromhex(v["salt"]) + bytes.fromhex(v["validator_x_gamma"]) + bytes([v["validator_parity"]])
        seed("auth", f"server-row{i}", bytes([2, 1]) + px + bytes([par]) + sb + row + sl(user) + cc)
        sa = bytes.fromhex(v["client_secret_s_a"])
        m2, m4 = bytes.fromhex(v["wire_msg2"])[1:], bytes.fromhex(v["wire_msg4"])[1:]
        pw = v["password"].encode()
        seed("auth", f"client-vector{i}", bytes([3]) + sa + sl(user) + sl(pw) + sl(m2) + m4)
        salt = bytes.fromhex(v["salt"])
        seed("auth", f"agree-vector{i}", bytes([4, 0]) + salt + sa + sb + sl(user) + sl(pw))
        seed("auth", f"agree-wrong{i}", bytes([4, 1]) + salt + sa + sb + sl(user) + sl(pw))

    # status_scan: mode, chunk (LE, 10 bits), split seed, stream.
    st = status(42, 7, 0x07800707)
    zero_stream = bytes(100) + st + bytes(50)
    seed("status_scan", "zeros-bytewise", bytes([0, 0, 0, 0]) + zero_stream)
    seed("status_scan", "zeros-split", bytes([0, 0, 0, 0x2b]) + zero_stream)
    seed("status_scan", "zeros-stray-tag", bytes([0, 0, 0, 0x03]) + bytes([0, 7, 1, 0, 0]) + status(1, 1, 5))
    seed(
        "status_scan",
        "zeros-routeros6",
        bytes([0, 0, 0, 0x11]) + bytes(20) + status(None, 1, 224822) + bytes(7) + status(None, 2, 0),
    )
    block = bytes([0x55] + [0x07 if i % 2 == 0 else 0x85 for i in range(1, 16)])
    st2 = status(3, 9, 1234)
    rnd = block + st2 + block + block + st2
    seed("status_scan", "random16-bytewise", bytes([1, 16, 0, 0]) + rnd)
    seed("status_scan", "random16-split", bytes([1, 16, 0, 0x0e]) + rnd)
    # A raw CPU load (no 0x80 flag), then a UDP control connection's frames
    # after a stray byte, a 12-byte non-status frame and a lone tag pair.
    raw_load = bytes([7, 0x59, 0, 0]) + struct.pack("<II", 3, 77)
    seed("status_scan", "zeros-raw-load", bytes([0, 0, 0, 0x05]) + bytes(30) + raw_load + bytes(9))
    junk = b"\x42" + status(10, 1, 0) + b"\x55" * 12 + status(20, 2, 0) + b"\x07\x07" + raw_load
    seed("status_scan", "frames-junk-bytewise", bytes([2, 0, 0, 0]) + junk)
    seed("status_scan", "frames-junk-split", bytes([2, 0, 0, 0x17]) + junk)

    # udp_accounting: mode 0 = narrow (base, then port + 2-byte offset),
    # mode 1 = wide (port + 4-byte LE sequence number).
    def narrow(base, recs):
        return bytes([0]) + struct.pack("<I", base) + b"".join(struct.pack("<BH", p, o) for p, o in recs)

    def wide(recs):
        return bytes([1]) + b"".join(struct.pack("<BI", p, s) for p, s in recs)

    seed("udp_accounting", "in-order", narrow(1000, [(1, i) for i in range(20)]))
    seed("udp_accounting", "gaps-late", narrow(0, [(1, o) for o in [1, 2, 5, 3, 6, 4, 9, 9, 8]]))
    seed("udp_accounting", "jump-and-stale", narrow(7, [(2, 0), (2, 1), (2, 300), (2, 2), (2, 299), (2, 200)]))
    seed("udp_accounting", "wrap", narrow(0xFFFFFFF0, [(3, i) for i in range(0, 40, 3)]))
    seed("udp_accounting", "older-than-first", narrow(0, [(4, 10), (4, 12), (4, 9), (4, 11)]))
    seed("udp_accounting", "many-ports", narrow(0, [(p, p % 5) for p in range(40)] + [(p, 7) for p in range(40)]))
    seed("udp_accounting", "restart", wide([(5, 3_000_000_000), (5, 3_000_000_001), (5, 0), (5, 1), (5, 500_000_000)]))
    seed("udp_accounting", "every-tenth", wide([(6, s) for s in range(0, 120) if s % 10 != 0 or s == 0]))

    # http: requests a browser, curl and Prometheus send, and the control lines.
    seed("http", "browser-page", b"GET / HTTP/1.1\r\nHost: 192.0.2.1:8080\r\nUser-Agent: Mozilla/5.0\r\n"
         b"Accept: text/html\r\nAccept-Encoding: gzip, deflate\r\nConnection: keep-alive\r\n\r\n")
    seed("http", "status-token", b"GET /api/status?token=s3cret-token-0123456789 HTTP/1.1\r\nHost: x\r\n\r\n")
    seed("http", "metrics-bearer", b"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer abc\r\n\r\n")
    seed("http", "post", b"POST /api/status HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}")
    seed("http", "control-status-json", b"status json\n")
    seed("http", "control-metrics", b"metrics\r\n")

    total = 0
    for target, files in sorted(seeds.items()):
        d = os.path.join(CORPUS, target)
        os.makedirs(d, exist_ok=True)
        for name, data in sorted(files.items()):
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
            total += len(data)
        print(f"{target}: {len(files)} seeds")
    print(f"{sum(map(len, seeds.values()))} seeds, {total} bytes")


if __name__ == "__main__":
    main()
