# shellcheck shell=bash
# Shared by cross/ci.sh and cross/build.sh; sourcing it only defines things.
#
# The recipe (cross-notes.md): Debian's rustc-web/cargo-web with the
# matching std sources build std for the target (-Zbuild-std, unlocked with
# RUSTC_BOOTSTRAP=1), and zig (from PyPI) is the C compiler and linker
# through cross/zig-cc. All per-target settings are environment variables set
# by cross_env inside a subshell, so the host's own cargo builds never see them.

CROSS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$CROSS_DIR")
# Debian's toolchain; rustup's cargo and rustc stay first on PATH for host builds.
DEB_RUSTC=/usr/bin/rustc
DEB_CARGO=/usr/bin/cargo
APT_PACKAGES=(rustc-web cargo-web rust-web-src qemu-user)
ZIGLANG_VERSION=0.17.1
CROSS_CACHE=${BTESTD_CROSS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/btestd-cross}
ZIG_VENV=$CROSS_CACHE/zig-venv
# Debian's rustc has different artifacts from rustup's: keep them apart.
CROSS_TARGET_DIR=${BTESTD_CROSS_TARGET_DIR:-${CARGO_TARGET_DIR:-$REPO_DIR/target}/cross}
ZIG=

STEP_LOG=()

# step NAME COMMAND...: runs COMMAND, prints and records how long it took.
step() {
    local name=$1 start=$SECONDS rc=0
    shift
    printf '\n==> %s\n' "$name"
    "$@" || rc=$?
    local took=$((SECONDS - start))
    STEP_LOG+=("$(printf '%5d s  %s%s' "$took" "$name" "$([ "$rc" = 0 ] || echo "  (FAILED, exit $rc)")")")
    printf '<== %s: %d s%s\n' "$name" "$took" "$([ "$rc" = 0 ] || echo ", FAILED")"
    return "$rc"
}

step_summary() {
    printf '\nStep timings:\n'
    printf '  %s\n' "${STEP_LOG[@]}"
}

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# install_apt PACKAGE...: installs those that are missing; nothing when all are there.
install_apt() {
    local missing=() pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing+=("$pkg")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        echo "apt: $* already installed"
        return 0
    fi
    echo "apt: installing ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Installs zig from PyPI into a private venv (Debian's python refuses system-wide pip).
install_zig() {
    if [ ! -x "$ZIG_VENV/bin/python3" ]; then
        python3 -m venv "$ZIG_VENV" || {
            # Debian's python3 needs python3-venv for that.
            install_apt python3-venv && python3 -m venv "$ZIG_VENV"
        } || return
    fi
    local have
    have=$("$ZIG_VENV/bin/python3" -c 'import importlib.metadata as m; print(m.version("ziglang"))' 2>/dev/null || true)
    if [ "$have" != "$ZIGLANG_VERSION" ]; then
        echo "pip: installing ziglang==$ZIGLANG_VERSION"
        "$ZIG_VENV/bin/python3" -m pip install -q --disable-pip-version-check "ziglang==$ZIGLANG_VERSION" || return
    else
        echo "pip: ziglang $have already installed"
    fi
    find_zig
}

find_zig() {
    ZIG=$("$ZIG_VENV/bin/python3" -c 'import os, ziglang; print(os.path.join(os.path.dirname(ziglang.__file__), "zig"))') &&
        [ -x "$ZIG" ] && echo "zig $("$ZIG" version) at $ZIG"
}

install_tools() {
    install_apt "${APT_PACKAGES[@]}" && install_zig && echo "$("$DEB_CARGO" --version), $("$DEB_RUSTC" --version)"
}

# The zig target (its libc and ABI) matching a Rust target. The Rust MIPS
# musl targets are soft-float, hence musleabi rather than musleabihf.
zig_target() {
    case $1 in
        mips-unknown-linux-musl) echo mips-linux-musleabi ;;
        mipsel-unknown-linux-musl) echo mipsel-linux-musleabi ;;
        aarch64-unknown-linux-musl) echo aarch64-linux-musl ;;
        armv7-unknown-linux-musleabihf) echo arm-linux-musleabihf ;;
        x86_64-unknown-linux-musl) echo x86_64-linux-musl ;;
        x86_64-unknown-freebsd) echo x86_64-freebsd ;;
        *) return 1 ;;
    esac
}

# Extra zig cc flags per target (the CPU the Rust target assumes).
zig_cflags() {
    case $1 in
        armv7-unknown-linux-musleabihf) echo "-mcpu=generic+v7a+vfp3d16+thumb2" ;;
        mips-unknown-linux-musl | mipsel-unknown-linux-musl) echo "-mcpu=mips32r2" ;;
        # LLVM's machine outliner (see cross/build.sh): about 11 KB of SQLite.
        x86_64-* | aarch64-*) echo "-mllvm -enable-machine-outliner=always" ;;
    esac
}

# Libraries the libc crate links for declarations btestd never calls, and
# which zig has no stubs for: cross/zig-cc drops them.
zig_drop_libs() {
    case $1 in
        *-freebsd) echo "-lkvm -lmemstat -lprocstat -ldevstat" ;;
    esac
}

qemu_for() {
    case $1 in
        mips-unknown-linux-musl) echo qemu-mips ;;
        mipsel-unknown-linux-musl) echo qemu-mipsel ;;
        aarch64-unknown-linux-musl) echo qemu-aarch64 ;;
        armv7-unknown-linux-musleabihf) echo qemu-arm ;;
    esac
}

# cross_env TARGET: exports the toolchain for TARGET. Call it in a subshell.
cross_env() {
    local target=$1 upper lower zt
    upper=$(echo "$target" | tr 'a-z-' 'A-Z_')
    lower=${target//-/_}
    zt=$(zig_target "$target") || {
        echo "no zig target known for $target" >&2
        return 1
    }
    [ -n "$ZIG" ] || find_zig >/dev/null || return
    export RUSTC=$DEB_RUSTC RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR=$CROSS_TARGET_DIR
    BTESTD_ZIG_CFLAGS=$(zig_cflags "$target")
    BTESTD_ZIG_DROP=$(zig_drop_libs "$target")
    export BTESTD_ZIG=$ZIG BTESTD_ZIG_TARGET=$zt BTESTD_ZIG_CFLAGS BTESTD_ZIG_DROP
    export "CC_$lower=$CROSS_DIR/zig-cc" "AR_$lower=$CROSS_DIR/zig-ar"
    export "CARGO_TARGET_${upper}_LINKER=$CROSS_DIR/zig-cc"
    # Global RUSTFLAGS would override the per-target ones: fold them in.
    local flags="${RUSTFLAGS-}"
    case $target in
        *-musl*) flags="-C link-self-contained=no $flags" ;;
    esac
    case $target in
        # MIPS static-pie is broken with zig's lld + musl: musl's start-up
        # code adds the load address to every GOT entry, so an undefined weak
        # symbol (std probes getrandom, gettid, ... that way) becomes a call
        # to the ELF header instead of null. A non-PIE static binary has no
        # such relocation step, and MIPS non-PIC code is smaller too.
        mips*) flags="-C relocation-model=static $flags" ;;
    esac
    export "CARGO_TARGET_${upper}_RUSTFLAGS=$flags"
    unset RUSTFLAGS CARGO_ENCODED_RUSTFLAGS
    local qemu
    qemu=$(qemu_for "$target")
    [ -z "$qemu" ] || export "CARGO_TARGET_${upper}_RUNNER=$qemu"
}

# cross_cargo TARGET SUBCOMMAND ARGS...: Debian's cargo for TARGET, from the repository root.
cross_cargo() {
    local target=$1 sub=$2
    shift 2
    (
        cross_env "$target" && cd "$REPO_DIR" &&
            "$DEB_CARGO" "$sub" --target "$target" "$@"
    )
}
