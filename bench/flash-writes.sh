#!/bin/sh
# Bytes btestd writes to the flash side per hour of continuous tests.
#
#   bench/flash-writes.sh MINUTES MODE [BTESTD]
#
# MODE "flash": the database itself on disk (the old OpenWrt setup, a
# commit a second). MODE "ram": the database on tmpfs (/dev/shm) with a
# --persist copy on disk saved every --persist-interval (PERSIST_INTERVAL,
# default 3600, the OpenWrt default). Back-to-back 10 s tests from one
# user at 10 Mbit/s run for MINUTES; then SIGTERM. Prints the server's
# /proc/PID/io write_bytes (what reached the block layer, i.e. the disk;
# tmpfs writes are not counted) and wchar, and write_bytes extrapolated to
# an hour. The "ram" numbers include the save at stop.
set -eu
minutes=$1
mode=$2
bin=${3:-target/release/btestd}
work=$(mktemp -d /var/tmp/btestd-flash.XXXXXX)
ram=$(mktemp -d /dev/shm/btestd-ram.XXXXXX)
trap 'rm -rf "$work" "$ram"' EXIT
port=$((20000 + $$ % 10000))
case $mode in
flash) db=$work/btestd.db; set -- --db "$db" ;;
ram) db=$ram/btestd.db; set -- --db "$db" --persist "$work/btestd.db" --persist-interval "${PERSIST_INTERVAL:-3600}" ;;
*) echo "MODE is flash or ram" >&2; exit 2 ;;
esac
"$bin" user add alice --password pw --db "$db" >/dev/null
"$bin" serve --listen "127.0.0.1:$port" --udp-port-base $((port + 1)) -q "$@" 2>"$work/log" &
pid=$!
sleep 1
end=$(($(date +%s) + minutes * 60))
while [ "$(date +%s)" -lt "$end" ]; do
	"$bin" client "127.0.0.1:$port" --user alice --password pw --duration 10 --remote-speed 10M --format csv >/dev/null
done
read_io() { sed -n "s/^$1: //p" "/proc/$pid/io"; }
sync
w=$(read_io write_bytes)
c=$(read_io wchar)
kill -TERM "$pid"
wait "$pid" || true
echo "mode=$mode minutes=$minutes write_bytes=$w wchar=$c (before the stop) per_hour_write_bytes=$((w * 60 / minutes))"
[ "$mode" = ram ] && echo "flash copy: $(stat -c %s "$work/btestd.db") bytes"
exit 0
