#!/usr/bin/env bash
# Proves the portability claims: btestd type-checks for big-endian 32-bit MIPS
# (mips-unknown-linux-musl) and FreeBSD (x86_64-unknown-freebsd), and its
# library unit tests (SQLite store included) pass on MIPS under qemu-mips. Also
# lints cross/, init-scripts/ and the systemd unit, and holds the release
# binary to its size budget.
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
# Flash budget for a static, stripped release binary on x86_64 (SQLite and
# libc included); the router targets are measured the same way by build.sh.
SIZE_TARGET=x86_64-unknown-linux-musl
SIZE_BUDGET=1200000

# `step` runs this in an `||` list, where set -e does not apply: hence `|| exit`.
lint() (
    cd "$REPO_DIR" || exit
    shellcheck -x cross/*.sh cross/zig-cc cross/zig-ar || exit
    # rc.subr and rc.common exist only on the target systems.
    shellcheck -s sh -e SC1091 init-scripts/openwrt/btestd.init || exit
    # The OpenWrt package's helpers and the init script's test stand-ins.
    shellcheck -s sh init-scripts/openwrt/test.sh init-scripts/openwrt/make-source.sh tests/openwrt/stubs.sh || exit
    echo "shellcheck: clean"
    # FreeBSD/pfSense/OPNsense rc script: shellcheck and rc.subr stand-ins.
    sh init-scripts/freebsd/test-rc.sh || exit
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

# The router build leaves out the web page (cargo feature "web", see README).
size_budget() {
    local out size
    out=$(bash "$CROSS_DIR/build.sh" "$SIZE_TARGET" --no-default-features | tail -n 1) || return
    size=$(stat -c %s "$out") || return
    if [ "$size" -gt "$SIZE_BUDGET" ]; then
        echo "btestd for $SIZE_TARGET is $size bytes, over the budget of $SIZE_BUDGET:" \
            "find the growth with cargo bloat, or shrink something else"
        return 1
    fi
    echo "btestd for $SIZE_TARGET: $size bytes, budget $SIZE_BUDGET"
}

trap step_summary EXIT
step "install toolchain (apt, pip)" install_tools
step "lint scripts, systemd unit, SQLite flags" lint
# The integration tests and benchmarks drive Linux loopback processes from
# the host; the library and the binary are what must build everywhere.
step "check $FREEBSD (library and binary)" cross_cargo "$FREEBSD" check -Zbuild-std --lib --bins
step "build $MIPS binary" cross_cargo "$MIPS" build -Zbuild-std --bins
step "build lib unit tests for $MIPS" cross_cargo "$MIPS" test -Zbuild-std --lib --no-run
step "run lib unit tests under qemu-mips" cross_cargo "$MIPS" test -Zbuild-std --lib
step "size budget ($SIZE_TARGET release)" size_budget
# The container image's root file system with that binary, run as the image would.
step "container root file system (docker/test-rootfs.sh)" bash "$REPO_DIR/docker/test-rootfs.sh"
