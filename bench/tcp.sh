#!/usr/bin/env bash
# TCP throughput, CPU per GB of both sides and memory of btestd against
# iperf3 (plain and -Z) on loopback, 20 connections against one, then the
# server's UDP receive cost; BTESTD_BEFORE=PATH measures an older build's
# UDP receive beside it.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
python3 bench/bench.py tcp "$@"
exec python3 bench/bench.py udp-rx ${BTESTD_BEFORE:+--before "$BTESTD_BEFORE"} "$@"
