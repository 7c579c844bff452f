#!/usr/bin/env bash
# TCP throughput, CPU and memory of btestd against iperf3 on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
exec python3 bench/bench.py tcp "$@"
