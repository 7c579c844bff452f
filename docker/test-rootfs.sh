#!/usr/bin/env bash
# Tests the container image without a container engine: lays out the image's
# root file system with docker/rootfs.sh (what the Dockerfile copies), then
# runs the Dockerfile's ENTRYPOINT in it the way the engine would: chroot,
# the Dockerfile's USER (not root), a private mount namespace with /proc and
# a minimal /dev, the database on /data. A real client then runs a TCP and a
# UDP test against it, the HEALTHCHECK command is run inside it, and SIGTERM
# (STOPSIGNAL) must end it cleanly with the usage written to /data.
#
#   sudo bash docker/test-rootfs.sh [BINARY]
#
# BINARY defaults to `bash cross/build.sh x86_64-unknown-linux-musl` (what
# the Dockerfile builds; slow the first time). Needs root (chroot, mounts),
# unshare and python3. Talks to 127.0.0.1 only; bounded (about 20 s); stops
# only the server it started, by PID, and removes its directory. Prints the
# image's size, i.e. of the root file system.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/.." && pwd)
bin=${1:-}
if [ -z "$bin" ]; then
    bin=$(bash "$top/cross/build.sh" x86_64-unknown-linux-musl | tail -n 1)
fi
[ "$(id -u)" = 0 ] || {
    echo "needs root (chroot and mounts)" >&2
    exit 2
}
file "$bin" 2>/dev/null | grep -q 'statically linked' || {
    echo "$bin is not a static binary: FROM scratch has no libc" >&2
    exit 1
}

tmp=$(mktemp -d)
pid=
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; fi
    rm -rf "$tmp"
}
trap cleanup EXIT
failures=0
fail() {
    echo "FAIL: $*"
    failures=$((failures + 1))
}

# What the Dockerfile says: USER, ENTRYPOINT and the HEALTHCHECK command.
read -r user entrypoint health < <(python3 - "$here/Dockerfile" <<'EOF'
import json, re, sys
text = re.sub(r"\\\n\s*", " ", open(sys.argv[1]).read())
final = text.split("\nFROM scratch", 1)[1]
def grab(pattern):
    m = re.search(pattern, final, re.M)
    if not m:
        sys.exit(f"no {pattern} in the Dockerfile's final stage")
    return m.group(1)
user = grab(r"^USER\s+(\S+)")
entry = json.loads(grab(r"^ENTRYPOINT\s+(\[.*\])"))
health = json.loads(grab(r"^HEALTHCHECK\s.*?CMD\s+(\[.*\])"))
print(user, "\x1f".join(entry), "\x1f".join(health))
EOF
)
IFS=$'\x1f' read -r -a entrypoint <<<"$entrypoint"
IFS=$'\x1f' read -r -a health <<<"$health"
if [ "${health[0]}" != /btestd ] || [ "${health[1]}" != probe ]; then
    fail "HEALTHCHECK is not btestd probe: ${health[*]}"
fi
case "${user%%:*}" in 0 | root) fail "the image runs as root" ;; esac

root=$tmp/rootfs
sh "$here/rootfs.sh" "$root" "$bin"
size=$(du -sb "$root" | cut -f1)
echo "image root file system: $size bytes ($(find "$root" | wc -l) entries)"

# The engine's part: /proc and a small /dev exist at run time, not in the image.
mkdir "$tmp/dev"
port_base=$((42000 + RANDOM % 2000))
# shellcheck disable=SC2016 # expanded by the inner shell
unshare -m sh -c '
    set -e
    root=$1 user=$2
    shift 2
    mkdir -p "$root/proc" "$root/dev"
    mount -t proc proc "$root/proc"
    mount -t tmpfs -o size=16k,mode=755 btestd-rootfs-dev "$root/dev"
    for n in null zero random urandom; do
        touch "$root/dev/$n"
        mount --bind "/dev/$n" "$root/dev/$n"
    done
    exec chroot --userspec="$user" "$root" "$@"
' sh "$root" "$user" "${entrypoint[@]}" --listen 127.0.0.1:0 \
    --udp-port-base "$port_base" --udp-port-count 16 2>"$tmp/log" &
pid=$!

addr=
for _ in $(seq 100); do
    addr=$(sed -n 's/.*listening on \(127\.0\.0\.1:[0-9]*\).*/\1/p' "$tmp/log" | head -n 1)
    [ -n "$addr" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$addr" ]; then
    echo "FAIL: btestd did not start in the root file system:"
    cat "$tmp/log"
    exit 1
fi
echo "btestd runs in the root file system as $user, listening on $addr"

in_image() { chroot --userspec="$user" "$root" "$@"; }

# The health check, as the engine runs it (inside the container, its user).
in_image "${health[0]}" "${health[1]}" "$addr" || fail "health check failed while btestd runs"

for proto in tcp udp; do
    out=$(timeout 30 "$bin" client "$addr" --proto "$proto" --duration 2 --format csv) ||
        fail "$proto test against the image: exit $?"
    rx=$(printf '%s\n' "$out" | awk -F, '$1 == "summary" { print $4 }')
    [ "${rx:-0}" -gt 0 ] || fail "$proto test received nothing: $out"
    echo "$proto test: $rx bytes received"
done

kill -TERM "$pid"
status=0
timeout 10 tail --pid="$pid" -f /dev/null || fail "btestd did not stop within 10 s of SIGTERM"
wait "$pid" || status=$?
pid=
[ "$status" = 0 ] || fail "btestd exited $status on SIGTERM: $(tail -n 5 "$tmp/log")"
! in_image "${health[0]}" "${health[1]}" "$addr" 2>/dev/null || fail "health check passes with btestd stopped"

db=$root/data/btestd.db
if [ -f "$db" ]; then
    [ "$(stat -c %u "$db")" = "${user%%:*}" ] || fail "the database belongs to uid $(stat -c %u "$db"), not $user"
    sessions=$(in_image /btestd usage --db /data/btestd.db --sessions 2>&1 | grep -c -E '(tcp|udp)' || true)
    [ "$sessions" -ge 2 ] || fail "the database on /data does not hold the two tests: $sessions"
else
    fail "no database on /data"
fi
! grep -E '\[(ERROR|WARN)\]' "$tmp/log" || fail "btestd logged errors or warnings"

if [ "$failures" -gt 0 ]; then
    echo "$failures failure(s); btestd's log:"
    cat "$tmp/log"
    exit 1
fi
echo "container root file system: all checks pass (image size $size bytes)"
