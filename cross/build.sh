#!/usr/bin/env bash
# Builds a stripped, static release binary of btestd for a router target and
# prints its size (the figure README gives for flash):
#
#   bash cross/build.sh TARGET [CARGO ARGS...]
#
# TARGET: mips-unknown-linux-musl, mipsel-unknown-linux-musl,
# armv7-unknown-linux-musleabihf, aarch64-unknown-linux-musl (also
# x86_64-unknown-linux-musl and x86_64-unknown-freebsd).
# The release profile comes from Cargo.toml; try a smaller one with e.g.
# CARGO_PROFILE_RELEASE_OPT_LEVEL=z. Same toolchain as cross/ci.sh (Debian's
# rustc with -Zbuild-std, zig as C compiler and linker), installed on first use.
# Prints the binary's path on the last line.
set -euo pipefail
# shellcheck source=cross/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

target=${1:?usage: cross/build.sh TARGET [CARGO ARGS...]}
shift
zig_target "$target" >/dev/null || {
    echo "unsupported target $target" >&2
    exit 2
}
manifest=Cargo.toml bin=btestd

install_tools >&2
# Release binaries are stripped, so std's backtrace symbolizer (gimli,
# addr2line, miniz) could never name a frame: build std without it.
# panic=abort never unwinds, so no unwind tables either (about 90 KB).
# std's optimize_for_size picks its smaller algorithms (sorting, formatting
# helpers): about 9 KB; the data path is system calls, not std code.
# -Zlocation-detail=none drops the file:line of every panic site (about
# 19 KB); a panic still prints its message, which names what went wrong.
# SHA-256 (EC-SRP5's hash, a few per login) from its compact portable
# code, not the unrolled and SHA-NI ones: about 10 KB.
# -Zfmt-debug=none makes every Debug impl print nothing (about 10 KB): no
# message, log line or error of btestd's uses {:?} outside tests.
# On x86_64 and aarch64 LLVM's machine outliner folds repeated instruction
# sequences into shared calls (about 10 KB of Rust; cross/lib.sh does the
# same for SQLite's C): code size, not speed, is what routers run out of.
outline=
case $target in
    x86_64-* | aarch64-*) outline="-Cllvm-args=-enable-machine-outliner=always" ;;
esac
RUSTFLAGS="-C force-unwind-tables=no -Zlocation-detail=none -Zfmt-debug=none --cfg sha2_backend=\"soft\" --cfg sha2_backend_soft=\"compact\" $outline ${RUSTFLAGS-}" \
    cross_cargo "$target" build --release -Zbuild-std=std,panic_abort -Zbuild-std-features=optimize_for_size \
    --manifest-path "$manifest" --bin "$bin" "$@" >&2

out=$CROSS_TARGET_DIR/$target/release/$bin
! command -v file >/dev/null || file "$out" | sed "s/^[^:]*: //" >&2
printf '%s %s: %d bytes (%d KiB)\n' "$target" "$bin" "$(stat -c %s "$out")" "$(($(stat -c %s "$out") / 1024))" >&2
echo "$out"
