#!/bin/sh
# Tests the FreeBSD rc script (files/btestd.in) and the pfSense and OPNsense
# pieces built on it, without FreeBSD: the script, with %%PREFIX%%
# substituted, runs under this system's sh against stand-ins for rc.subr's
# functions (load_rc_config, run_rc_command, checkyesno, err, ...) and for
# the commands that would change the system (id, install, chown, kill).
# The stand-ins record what the script asks for; each case asserts the exact
# daemon(8) command line built from example rc.conf settings.
#
#   sh init-scripts/freebsd/test-rc.sh
#
# Also shellchecks the scripts (as FreeBSD's sh) when shellcheck is there.
# Everything happens in a temporary directory, removed at the end.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "${here}/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "${tmp}"' EXIT INT TERM
failures=0

fail() {
	echo "FAIL: $*"
	failures=$((failures + 1))
}

# The script as the port installs it, but with a prefix of our own (holding
# a stand-in binary) and our rc.subr.
prefix="${tmp}/prefix"
mkdir -p "${prefix}/bin" "${tmp}/rc.d" "${tmp}/db"
printf '#!/bin/sh\nexit 0\n' >"${prefix}/bin/btestd"
chmod +x "${prefix}/bin/btestd"
sed -e "s#%%PREFIX%%#${prefix}#g" -e "s#^\. /etc/rc\.subr\$#. ${tmp}/rc.subr#" \
	"${here}/files/btestd.in" >"${tmp}/rc.d/btestd"
grep -q "^\. ${tmp}/rc.subr\$" "${tmp}/rc.d/btestd" || fail "the rc script does not source /etc/rc.subr"
! grep -q '%%' "${tmp}/rc.d/btestd" || fail "an unsubstituted %%...%% is left"
cp "${top}/init-scripts/pfsense/btestd.sh" "${tmp}/rc.d/btestd.sh"

cat >"${tmp}/rc.subr" <<'EOF'
# Stand-ins for FreeBSD's /etc/rc.subr, recording into $RECORD.
# shellcheck shell=sh disable=SC2034,SC2154,SC1090
record() { echo "$*" >>"${RECORD}"; }
checkyesno() {
	eval "_value=\$$1"
	case "${_value}" in
	[Yy][Ee][Ss] | [Tt][Rr][Uu][Ee] | [Oo][Nn] | 1) return 0 ;;
	[Nn][Oo] | [Ff][Aa][Ll][Ss][Ee] | [Oo][Ff][Ff] | 0) return 1 ;;
	*) echo "\$$1 is not set properly" >&2; return 1 ;;
	esac
}
err() { _code=$1; shift; echo "${name}: ERROR: $*" >&2; exit "${_code}"; }
warn() { echo "${name}: WARNING: $*" >&2; }
check_pidfile() { [ -z "${STUB_CHILD_PID:-}" ] || echo "${STUB_CHILD_PID}"; }
id() { case " ${STUB_USERS} " in *" $2 "*) echo 1001 ;; *) return 1 ;; esac; }
install() { record "install $*"; }
chown() { record "chown $*"; }
kill() { record "kill $*"; }
# /etc/rc.conf, /etc/rc.conf.d/$1 and %%PREFIX%%/etc/rc.conf.d/$1 in one file.
load_rc_config() { [ ! -f "${RC_CONF}" ] || . "${RC_CONF}"; }
run_rc_command() {
	_arg=$1
	_one=
	case "${_arg}" in one*) _one=yes _arg=${_arg#one} ;; esac
	case "${_arg}" in
	start)
		if [ -z "${_one}" ] && ! checkyesno "${rcvar}"; then
			echo "Cannot 'start' ${name}. Set ${rcvar} to YES in /etc/rc.conf or use 'onestart' instead of 'start'." >&2
			return 1
		fi
		eval "rc_flags=\$${name}_flags _user=\$${name}_user"
		if [ -n "${start_precmd}" ]; then ${start_precmd} || return 1; fi
		# rc.subr runs this through eval (as the user, with su -m): words.
		# shellcheck disable=SC2086
		record start as ${_user}: ${command} ${rc_flags} ${command_args}
		;;
	stop | status) record "${_arg} ${pidfile} ${procname}" ;;
	restart) run_rc_command "${_one:+one}stop" && run_rc_command "${_one:+one}start" ;;
	reload) ${reload_cmd} ;;
	*) echo "unknown command ${_arg}" >&2; return 1 ;;
	esac
}
EOF

# rc NAME SCRIPT ARG EXPECTED_STATUS RCCONF_TEXT: runs the script and checks
# its status; the record is then in ${tmp}/NAME.record.
rc() {
	_name=$1 _script=$2 _arg=$3 _want=$4
	printf '%s\n' "$5" >"${tmp}/${_name}.conf"
	: >"${tmp}/${_name}.record"
	_status=0
	RC_CONF="${tmp}/${_name}.conf" RECORD="${tmp}/${_name}.record" STUB_USERS="${STUB_USERS:-btestd}" \
		sh "${_script}" "${_arg}" >"${tmp}/${_name}.out" 2>&1 || _status=$?
	[ "${_status}" = "${_want}" ] || fail "${_name}: exit status ${_status}, expected ${_want}; output: $(cat "${tmp}/${_name}.out")"
}

# expect NAME LINE...: the record is exactly these lines.
expect() {
	_name=$1
	shift
	: >"${tmp}/${_name}.want"
	[ $# -eq 0 ] || printf '%s\n' "$@" >"${tmp}/${_name}.want"
	if ! cmp -s "${tmp}/${_name}.want" "${tmp}/${_name}.record"; then
		fail "${_name}: recorded
$(cat "${tmp}/${_name}.record")
expected
$(cat "${tmp}/${_name}.want")"
	fi
}

# output NAME TEXT: what the script printed contains TEXT.
output() {
	grep -qF -- "$2" "${tmp}/$1.out" || fail "$1: no '$2' in the output: $(cat "${tmp}/$1.out")"
}

run=/var/run/btestd
supervise="/usr/sbin/daemon -f"
pids="-P ${run}/btestd.pid -p ${run}/btestd-child.pid"
bin="${prefix}/bin/btestd"

rc defaults "${tmp}/rc.d/btestd" start 0 'btestd_enable="YES"'
expect defaults \
	"install -d -o btestd -m 0755 ${run}" \
	"install -d -o btestd -m 0750 /var/db/btestd" \
	"start as btestd: ${supervise} -R 15 -S -T btestd -s err -l daemon ${pids} ${bin} serve --syslog --db /var/db/btestd/btestd.db"

# Every variable; btestd_flags go to btestd, not to daemon(8).
touch "${tmp}/db/btestd.db"
STUB_USERS="btestd bt" rc everything "${tmp}/rc.d/btestd" start 0 "btestd_enable=YES
btestd_listen='0.0.0.0:2000 [::]:2000'
btestd_db=${tmp}/db/btestd.db
btestd_allow='192.168.0.0/16 fd00::/8'
btestd_deny=192.168.66.0/24
btestd_auth_scheme=md5
btestd_max_sessions=4
btestd_max_rate=100M
btestd_max_rate_total=500M
btestd_udp_port_base=3001
btestd_udp_port_count=100
btestd_flags='--max-duration 60 -v'
btestd_syslog=NO
btestd_restart_delay=60
btestd_user=bt"
expect everything \
	"install -d -o bt -m 0755 ${run}" \
	"chown bt ${tmp}/db/btestd.db" \
	"start as bt: ${supervise} -R 60 -S -T btestd ${pids} ${bin} serve --db ${tmp}/db/btestd.db --listen 0.0.0.0:2000 --listen [::]:2000 --allow 192.168.0.0/16 --allow fd00::/8 --deny 192.168.66.0/24 --auth-scheme md5 --max-sessions 4 --max-rate 100M --max-rate-total 500M --udp-port-base 3001 --udp-port-count 100 --max-duration 60 -v"

rc no-db "${tmp}/rc.d/btestd" start 0 'btestd_enable=YES
btestd_db=NO'
expect no-db \
	"install -d -o btestd -m 0755 ${run}" \
	"start as btestd: ${supervise} -R 15 -S -T btestd -s err -l daemon ${pids} ${bin} serve --syslog --no-db"

rc disabled "${tmp}/rc.d/btestd" start 1 ''
expect disabled
output disabled "Set btestd_enable to YES"

rc bad-delay "${tmp}/rc.d/btestd" start 1 'btestd_enable=YES
btestd_restart_delay=0'
expect bad-delay
output bad-delay "btestd_restart_delay must be a number of seconds"

STUB_USERS=nobody rc no-user "${tmp}/rc.d/btestd" start 1 'btestd_enable=YES'
expect no-user
output no-user "user btestd does not exist"

rc no-binary "${tmp}/rc.d/btestd" start 1 "btestd_enable=YES
btestd_bin=${tmp}/missing"
output no-binary "${tmp}/missing is missing or not executable"

STUB_CHILD_PID=4242 rc reload "${tmp}/rc.d/btestd" reload 0 'btestd_enable=YES'
expect reload "kill -HUP 4242"
rc reload-stopped "${tmp}/rc.d/btestd" reload 1 'btestd_enable=YES'
output reload-stopped "not running?"

rc stop "${tmp}/rc.d/btestd" stop 0 'btestd_enable=YES'
expect stop "stop ${run}/btestd.pid /usr/sbin/daemon"

# pfSense: no btestd_enable anywhere, and the .sh wrapper still starts it.
rc pfsense-start "${tmp}/rc.d/btestd.sh" start 0 'btestd_max_sessions=2'
expect pfsense-start \
	"install -d -o btestd -m 0755 ${run}" \
	"install -d -o btestd -m 0750 /var/db/btestd" \
	"start as btestd: ${supervise} -R 15 -S -T btestd -s err -l daemon ${pids} ${bin} serve --syslog --db /var/db/btestd/btestd.db --max-sessions 2"
rc pfsense-stop "${tmp}/rc.d/btestd.sh" stop 0 ''
expect pfsense-stop "stop ${run}/btestd.pid /usr/sbin/daemon"

# OPNsense: its rc.conf.d file as shipped, and each configd action's command.
opn="${top}/init-scripts/opnsense"
rc opnsense-start "${tmp}/rc.d/btestd" start 0 "$(cat "${opn}/rc.conf.d/btestd")"
expect opnsense-start \
	"install -d -o btestd -m 0755 ${run}" \
	"install -d -o btestd -m 0750 /var/db/btestd" \
	"start as btestd: ${supervise} -R 15 -S -T btestd -s err -l daemon ${pids} ${bin} serve --syslog --db /var/db/btestd/btestd.db --allow 10.0.0.0/8 --allow 172.16.0.0/12 --allow 192.168.0.0/16 --allow fc00::/7 --max-sessions 4 --max-duration 60"
actions=$(sed -n 's#^command:/usr/local/etc/rc.d/btestd \([a-z]*\).*#\1#p' "${opn}/actions_btestd.conf" | tr '\n' ' ')
[ "${actions}" = "start stop restart reload status " ] || fail "configd actions run '${actions}'"
! grep '^command:' "${opn}/actions_btestd.conf" | grep -qv '^command:/usr/local/etc/rc.d/btestd ' ||
	fail "a configd action runs something other than the rc script"
rc opnsense-actions "${tmp}/rc.d/btestd" restart 0 "$(cat "${opn}/rc.conf.d/btestd")"
if ! grep -q "^stop ${run}/btestd.pid" "${tmp}/opnsense-actions.record" ||
	! grep -q "^start as btestd: ${supervise}" "${tmp}/opnsense-actions.record"; then
	fail "configd restart: $(cat "${tmp}/opnsense-actions.record")"
fi

# syslog.d: the rule selects btestd's ident (openlog "btestd", daemon(8) -T
# btestd) and names the file newsyslog creates.
grep -qx '!btestd' "${here}/files/btestd.syslog.conf" || fail "syslog.d rule does not select program btestd"
log=$(awk '!/^[#!]/ && NF == 2 { print $2 }' "${here}/files/btestd.syslog.conf")
[ "${log}" = /var/log/btestd.log ] || fail "syslog.d rule writes '${log}'"
grep -q "^${log}[[:space:]].*[[:space:]]JC\$" "${here}/files/btestd.newsyslog.conf" ||
	fail "newsyslog does not create and rotate ${log}"
for f in etc/syslog.d/btestd.conf etc/newsyslog.conf.d/btestd.conf bin/btestd; do
	grep -qx "${f}" "${here}/pkg-plist" || fail "pkg-plist lacks ${f}"
done

if command -v shellcheck >/dev/null; then
	sed 's#%%PREFIX%%#/usr/local#g' "${here}/files/btestd.in" >"${tmp}/btestd"
	shellcheck -s sh -e SC1091 "${tmp}/btestd" "${top}/init-scripts/pfsense/btestd.sh" "$0" ||
		fail "shellcheck"
	shellcheck -s sh "${tmp}/rc.subr" || fail "shellcheck of the stand-ins"
else
	echo "shellcheck not installed: scripts not linted"
fi

if [ "${failures}" -gt 0 ]; then
	echo "${failures} failure(s)"
	exit 1
fi
echo "rc script (FreeBSD, pfSense, OPNsense): all cases pass"
