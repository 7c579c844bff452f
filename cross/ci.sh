#!/usr/bin/env bash
# Proves the portability claims: btestd type-checks for big-endian 32-bit MIPS
# (mips-unknown-linux-musl) and FreeBSD (x86_64-unknown-freebsd), and its
# library unit tests (SQLite store included) pass on MIPS under qemu-mips. Also
# lints cross/, init-scripts/ and the systemd unit.
#
#   bash cross/ci.sh
#
# Idempotent: installs only what is missing, from Debian (rustc-web, cargo-web,
# rust-web-src, qemu-user, shellcheck) and PyPI (ziglang); crates come from
# crates.io. Needs root or sudo for apt. Artifacts go to $CARGO_TARGET_DIR/cross
# (or target/cross), zig's cache to ~/.cache/zig. Host builds are untouched:
# every cross setting lives in a subshell (cross/lib.sh).
set -euo pipefail
# shellcheck source=cross/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

APT_PACKAGES+=(shellcheck)
MIPS=mips-unknown-linux-musl
FREEBSD=x86_64-unknown-freebsd

# `step` runs this in an `||` list, where set -e does not apply: hence `|| exit`.
lint() (
    cd "$REPO_DIR" || exit
    shellcheck -x cross/*.sh cross/zig-cc cross/zig-ar || exit
    # rc.subr and rc.common exist only on the target systems.
    shellcheck -s sh -e SC1091 init-scripts/freebsd/btestd init-scripts/openwrt/btestd.init || exit
    echo "shellcheck: clean"
    if command -v systemd-analyze >/dev/null; then
        # verify wants ExecStart's binary to exist.
        dir=$(mktemp -d)
        sed 's#^ExecStart=/usr/local/bin/btestd #ExecStart=/bin/true #' \
            init-scripts/systemd/btestd.service >"$dir/btestd.service"
        systemd-analyze verify "$dir/btestd.service" || exit
        rm -r "$dir"
        echo "systemd unit: verified"
    fi
    python3 cross/check-sqlite-flags.py
)

trap step_summary EXIT
step "install toolchain (apt, pip)" install_tools
step "lint scripts, systemd unit, SQLite flags" lint
# The integration tests and benchmarks drive Linux loopback processes from
# the host; the library and the binary are what must build everywhere.
step "check $FREEBSD (library and binary)" cross_cargo "$FREEBSD" check -Zbuild-std --lib --bins
step "build $MIPS binary" cross_cargo "$MIPS" build -Zbuild-std --bins
step "build lib unit tests for $MIPS" cross_cargo "$MIPS" test -Zbuild-std --lib --no-run
step "run lib unit tests under qemu-mips" cross_cargo "$MIPS" test -Zbuild-std --lib
