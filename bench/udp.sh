#!/usr/bin/env bash
# UDP packet rate of btestd's server against iperf3 on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
exec python3 bench/bench.py udp "$@"
