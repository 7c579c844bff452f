#!/usr/bin/env bash
# UDP through a real bottleneck: btestd serve in one network namespace,
# btestd client in another, joined by a veth pair shaped on both sides with
#   tc qdisc ... root tbf rate RATE burst 32kb latency 50ms
# and for each rate and binary one unlimited UDP test (the server sends, as
# a RouterOS user runs `/tool bandwidth-test protocol=udp direction=receive`).
# Prints goodput, what the sender sent, datagrams lost over the test (and as
# a share of those received), the first second (Mbit received, or sent with
# --direction send, and datagrams lost) and the loss in each second.
#
#   sudo bench/bottleneck.sh [--bin PATH]... [--rates "10mbit 100mbit 1gbit"]
#                            [--duration SECS] [--direction receive|send]
#                            [--fixed PERCENT]
#
# --bin may be given more than once (e.g. an older build to compare); the
# default is target/release/btestd, built first. --fixed PERCENT adds, for
# the first binary, a test that asks for PERCENT of the bottleneck rate:
# a sender holding a fixed overshoot (MikroTik documents its UDP sender as
# sending "110% or more" of what arrives).
#
# Needs root (ip netns). Creates namespaces btb-s-PID / btb-c-PID and
# removes them, with their veth pair and every process it started, when it
# ends in any way; every run is bounded by `timeout`.
set -euo pipefail
cd "$(dirname "$0")/.."

bins=()
rates="10mbit 100mbit 1gbit"
duration=8
direction=receive
fixed=0
while [ $# -gt 0 ]; do
    case "$1" in
        --bin) bins+=("$2"); shift 2 ;;
        --rates) rates="$2"; shift 2 ;;
        --duration) duration="$2"; shift 2 ;;
        --direction) direction="$2"; shift 2 ;;
        --fixed) fixed="$2"; shift 2 ;;
        -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
done
case "$direction" in receive|send) ;; *) echo "--direction is receive or send" >&2; exit 2 ;; esac
case "$duration" in ''|*[!0-9]*) echo "--duration is whole seconds" >&2; exit 2 ;; esac
if [ "$(id -u)" != 0 ]; then
    echo "needs root for ip netns and tc (run with sudo)" >&2
    exit 1
fi
if [ ${#bins[@]} -eq 0 ]; then
    cargo build --release --quiet
    bins=(target/release/btestd)
fi
for b in "${bins[@]}"; do
    [ -x "$b" ] || { echo "not an executable: $b" >&2; exit 2; }
done

ns_s="btb-s-$$"
ns_c="btb-c-$$"
veth_s="btbs$$"
veth_c="btbc$$"
addr_s=10.213.0.1
addr_c=10.213.0.2
tmp="$(mktemp -d /tmp/btestd-bottleneck.XXXXXX)"
server_pid=""
client_pid=""

cleanup() {
    set +e
    for pid in $client_pid $server_pid; do
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    ip netns del "$ns_s" 2>/dev/null
    ip netns del "$ns_c" 2>/dev/null
    ip link del "$veth_s" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip netns add "$ns_s"
ip netns add "$ns_c"
ip link add "$veth_s" type veth peer name "$veth_c"
ip link set "$veth_s" netns "$ns_s"
ip link set "$veth_c" netns "$ns_c"
ip -n "$ns_s" addr add "$addr_s/24" dev "$veth_s"
ip -n "$ns_c" addr add "$addr_c/24" dev "$veth_c"
ip -n "$ns_s" link set lo up
ip -n "$ns_c" link set lo up
ip -n "$ns_s" link set "$veth_s" up
ip -n "$ns_c" link set "$veth_c" up

shape() {
    ip netns exec "$ns_s" tc qdisc replace dev "$veth_s" root tbf rate "$1" burst 32kb latency 50ms
    ip netns exec "$ns_c" tc qdisc replace dev "$veth_c" root tbf rate "$1" burst 32kb latency 50ms
}

# Bits per second of a tc rate such as 100mbit or 1gbit.
rate_bps() {
    local r="${1,,}"
    case "$r" in
        *gbit) echo $(( ${r%gbit} * 1000000000 )) ;;
        *mbit) echo $(( ${r%mbit} * 1000000 )) ;;
        *kbit) echo $(( ${r%kbit} * 1000 )) ;;
        *bit) echo "${r%bit}" ;;
        *) echo "unknown rate $1 (use kbit, mbit or gbit)" >&2; return 1 ;;
    esac
}

# run LABEL BIN [client args...]: one test; prints one table row.
run() {
    local label="$1" bin="$2"
    shift 2
    local log="$tmp/server.log" csv="$tmp/client.csv"
    : >"$log"
    ip netns exec "$ns_s" timeout $((duration + 30)) "$bin" serve --listen "$addr_s:2000" --no-db 2>"$log" &
    server_pid=$!
    local _
    for _ in $(seq 50); do
        grep -q "listening on" "$log" && break
        sleep 0.1
    done
    # In the background, so that a signal is handled at once rather than after the test.
    ip netns exec "$ns_c" timeout $((duration + 15)) "$bin" client --proto udp --direction "$direction" \
        --duration "$duration" --format csv "$@" "$addr_s" >"$csv" &
    client_pid=$!
    wait "$client_pid" || true
    client_pid=""
    for _ in $(seq 50); do
        grep -q " ended: " "$log" && break
        sleep 0.1
    done
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
    local ended
    ended="$(grep " ended: " "$log" | tail -1)"
    # Server-side figures from its end line: secs, rx/tx bytes, lost.
    local srv
    srv="$(echo "$ended" | tr ' ' '\n' | awk -F= '$1=="secs"||$1=="rx_bytes"||$1=="tx_bytes"||$1=="lost"{v[$1]=$2}
        END{printf "%s %s %s %s", v["secs"]+0, v["rx_bytes"]+0, v["tx_bytes"]+0, v["lost"]+0}')"
    awk -F, -v label="$label" -v dir="$direction" -v srv="$srv" '
        BEGIN { split(srv, s, " ") }
        $1 == "interval" { n++; rx[n] = $4; tx[n] = $3; lost[n] = $10 }
        $1 == "summary" { secs = $2; ctx = $3; crx = $4; clost = $10 }
        END {
            if (secs == "") { printf "%-24s client failed\n", label; exit }
            if (dir == "receive") {
                got = crx; lostn = clost; sent = s[3]; first = rx[1] * 8 / 1e6; first_lost = lost[1]
                per = lost[1]
                for (i = 2; i <= n; i++) per = per " " lost[i]
            } else {
                got = s[2]; lostn = s[4]; sent = ctx; first = tx[1] * 8 / 1e6; first_lost = "-"; per = "-"
            }
            share = 0
            if (got > 0) share = 100 * lostn / (got / 1500)
            printf "%-24s %8.1f %8.1f %9d %7.1f%% %9.1f %9s  %s\n", label, got * 8 / secs / 1e6,
                sent * 8 / secs / 1e6, lostn, share, first, first_lost, per
        }' "$csv"
}

echo "btestd UDP through a tbf bottleneck (burst 32kb latency 50ms), ${duration} s, direction=$direction"
echo "kernel $(uname -r), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
for rate in $rates; do
    bps="$(rate_bps "$rate")"
    shape "$rate"
    echo
    echo "bottleneck $rate"
    printf "%-24s %8s %8s %9s %8s %9s %9s  %s\n" "sender" "goodput" "sent" "lost" "loss" "1st s" "1st s" \
        "lost per second"
    printf "%-24s %8s %8s %9s %8s %9s %9s\n" "" "Mbit/s" "Mbit/s" "datagrams" "of rcvd" "Mbit" "lost"
    for b in "${bins[@]}"; do
        run "$b" "$b"
    done
    if [ "$fixed" -gt 0 ]; then
        ask=$((bps * fixed / 100))
        side=--remote-speed
        [ "$direction" = send ] && side=--speed
        run "asks ${fixed}% ($((ask / 1000000))M)" "${bins[0]}" "$side" "$ask"
    fi
done
