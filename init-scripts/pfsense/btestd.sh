#!/bin/sh
#
# btestd on pfSense. pfSense reads no rc.conf and starts only the scripts in
# /usr/local/etc/rc.d whose names end in .sh: it runs them with "start" at
# boot and "stop" at shutdown. This one hands every command to the FreeBSD
# rc script installed beside it (/usr/local/etc/rc.d/btestd) with rc.subr's
# "one" prefix, so this file being there is what enables btestd; remove it
# (or make it non-executable) to disable. Settings go in
# /usr/local/etc/rc.conf.d/btestd, as on FreeBSD (see the rc script for the
# variables); btestd_enable is not needed.

rc="${0%/*}/btestd"
case "$1" in
start | stop | restart | status | reload)
	exec /bin/sh "${rc}" "one$1"
	;;
*)
	exec /bin/sh "${rc}" "$@"
	;;
esac
