#!/bin/sh
# Stand-ins for what OpenWrt gives /etc/init.d/btestd: rc.common's
# start_service call, /lib/functions.sh's UCI helpers and procd.sh's
# instance, jail and data helpers. Each procd call is recorded, one line a
# call, on standard output; mkdir and chown only say what they would do.
#
#   sh tests/openwrt/stubs.sh INIT_SCRIPT UCI_FILE [USERS...]
#
# UCI_FILE is read the way functions.sh reads `uci export` output: its
# config/option/list lines are shell commands. USERS are the accounts
# user_exists knows. Record lines: "instance NAME", "arg VALUE" (the
# command, one argument a line), "param NAME VALUES", "jail NAME FLAGS",
# "mount ro|rw PATH", "json ...", "close", "trigger ...", "mkdir ...",
# "chown ...".
# shellcheck disable=SC1090,SC2034,SC3043

set -u
init_script=$1
uci_file=$2
shift 2
known_users=" $* "

# --- UCI (functions.sh) ---------------------------------------------------
CONFIG_SECTIONS=
CONFIG_SECTION=
CONFIG_N=0
config() {
	local name="${2:-}"
	if [ -z "$name" ]; then
		CONFIG_N=$((CONFIG_N + 1))
		name="cfg$CONFIG_N"
	fi
	CONFIG_SECTIONS="$CONFIG_SECTIONS $name"
	CONFIG_SECTION=$name
	eval "CONFIG_${name}_TYPE=\$1"
}
option() {
	eval "CONFIG_${CONFIG_SECTION}_$1=\$2"
}
list() {
	local n
	eval "n=\${CONFIG_${CONFIG_SECTION}_$1_LENGTH:-0}"
	n=$((n + 1))
	eval "CONFIG_${CONFIG_SECTION}_$1_LENGTH=$n"
	eval "CONFIG_${CONFIG_SECTION}_$1_ITEM$n=\$2"
}
config_load() {
	. "$uci_file"
}
config_get() {
	eval "$1=\${CONFIG_$2_$3:-\${4:-}}"
}
config_get_bool() {
	local v
	eval "v=\${CONFIG_$2_$3:-\${4:-}}"
	case "$v" in
	1 | on | true | yes | enabled) v=1 ;;
	0 | off | false | no | disabled) v=0 ;;
	*) v=${4:-} ;;
	esac
	eval "$1=\$v"
}
config_foreach() {
	local fn="$1" type="$2" s t
	shift 2
	for s in $CONFIG_SECTIONS; do
		eval "t=\${CONFIG_${s}_TYPE}"
		[ "$t" = "$type" ] && "$fn" "$s" "$@"
	done
}
config_list_foreach() {
	local s="$1" o="$2" fn="$3" n i v
	shift 3
	eval "n=\${CONFIG_${s}_${o}_LENGTH:-0}"
	i=1
	while [ "$i" -le "$n" ]; do
		eval "v=\${CONFIG_${s}_${o}_ITEM$i}"
		"$fn" "$v" "$@"
		i=$((i + 1))
	done
}
user_exists() {
	case "$known_users" in *" $1 "*) return 0 ;; esac
	return 1
}

# --- procd.sh ---------------------------------------------------------------
procd_open_instance() { echo "instance $1"; }
procd_set_param() {
	local name="$1"
	shift
	if [ "$name" = command ]; then
		for a in "$@"; do echo "arg $a"; done
	else
		echo "param $name $*"
	fi
}
procd_append_param() {
	local name="$1"
	shift
	[ "$name" = command ] || { echo "param+ $name $*"; return; }
	for a in "$@"; do echo "arg $a"; done
}
procd_add_jail() { echo "jail $*"; }
procd_add_jail_mount() { for p in "$@"; do echo "mount ro $p"; done; }
procd_add_jail_mount_rw() { for p in "$@"; do echo "mount rw $p"; done; }
procd_open_data() { echo "json open"; }
procd_close_data() { echo "json close"; }
json_add_array() { echo "json array $1"; }
json_close_array() { echo "json end-array"; }
json_add_object() { echo "json object"; }
json_close_object() { echo "json end-object"; }
json_add_string() { echo "json $1=$2"; }
procd_close_instance() { echo "close"; }
procd_add_reload_trigger() { echo "trigger reload $*"; }

# --- system commands the script changes the system with -----------------
mkdir() { echo "mkdir $*"; }
chown() { echo "chown $*"; }

. "$init_script"
start_service
service_triggers
