#!/bin/sh
# Run by the packages feed's CI on the target after installing the package:
# test.sh PACKAGE VERSION. Checks that the binary runs on this CPU, reports
# the packaged version, and handles a database with its flash copy.
# shellcheck disable=SC3043

[ "$1" = btestd ] || exit 0

# VERSION may carry the package release (0.1.0-r1); the binary knows 0.1.0.
btestd --version | grep -F "btestd ${2%%-*}" || exit 1

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
btestd user add ci-user --password ci-pass --db "$dir/ram/btestd.db" --persist "$dir/flash/btestd.db" || exit 1
rm -r "$dir/ram"
btestd user set ci-user --disable --db "$dir/ram/btestd.db" --persist "$dir/flash/btestd.db" || exit 1
btestd user list --db "$dir/ram/btestd.db" | grep -q '^ci-user  *no ' || exit 1
# The local time zone comes from /etc/TZ here; a server starts and stops.
btestd serve --listen 127.0.0.1:0 --db "$dir/ram/btestd.db" --persist "$dir/flash/btestd.db" -q &
pid=$!
sleep 1
kill -TERM "$pid" && wait "$pid"
