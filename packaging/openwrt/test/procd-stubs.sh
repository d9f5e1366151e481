# Stand-ins for OpenWrt's /lib/functions.sh (UCI) and procd helpers, enough to run an init
# script's start_service off the board (compat/tests/packaging.rs). UCI_CONFIG is the file
# config_load reads; procd_* print the instance's command, one argument per line.
config_load() { :; }
config_get() {
	_v=$(sed -n "s/^[[:space:]]*option[[:space:]]\{1,\}$3[[:space:]]\{1,\}'\(.*\)'\$/\1/p" "$UCI_CONFIG" | tail -n 1)
	[ -n "$_v" ] || _v=$4
	eval "$1=\$_v"
}
config_get_bool() {
	config_get "$@"
	eval "_b=\$$1"
	case "$_b" in 1|on|true|yes|enabled) eval "$1=1" ;; *) eval "$1=0" ;; esac
}
procd_open_instance() { echo "instance"; }
procd_set_param() {
	_k=$1; shift
	if [ "$_k" = command ]; then for _a in "$@"; do echo "arg $_a"; done; else echo "param $_k $*"; fi
}
procd_append_param() { shift; for _a in "$@"; do echo "arg $_a"; done; }
procd_close_instance() { echo "end"; }
procd_add_reload_trigger() { :; }
umount() { :; }
mkdir() { :; }
