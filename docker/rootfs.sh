#!/bin/sh
# Lays out the container's whole root file system in DEST: the static btestd
# binary, /data for the database (owned by the unprivileged user that runs
# btestd), /tmp for SQLite's temporary files, and /etc/passwd and /etc/group
# naming that user. The Dockerfile's build stage runs it and copies DEST as
# the image's only layer; docker/test-rootfs.sh runs it to test that tree
# without a container engine. Run as root (it sets owners).
#
#   sh docker/rootfs.sh DEST BINARY
set -eu
dest=${1:?usage: rootfs.sh DEST BINARY}
bin=${2:?usage: rootfs.sh DEST BINARY}
uid=10001

install -d -m 0755 "${dest}" "${dest}/etc"
install -m 0755 "${bin}" "${dest}/btestd"
install -d -m 0750 -o "${uid}" -g "${uid}" "${dest}/data"
install -d -m 1777 "${dest}/tmp"
echo "btestd:x:${uid}:${uid}:btestd:/data:/nonexistent" >"${dest}/etc/passwd"
echo "btestd:x:${uid}:" >"${dest}/etc/group"
chmod 0644 "${dest}/etc/passwd" "${dest}/etc/group"
