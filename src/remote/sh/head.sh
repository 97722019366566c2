# shellcheck shell=sh disable=SC2034,SC2154 # a part of the host script: its variables are set and read across parts (src/remote/script.rs joins them, and the joined script is checked whole)
# rbuild host side, part 1 of the script: the head every command ships.
# The controller joins src/remote/sh/*.sh (src/remote/script.rs says which
# parts each command ships) and runs the result as
#   sh -c "$SCRIPT" rbuild PROTO TOKEN COMMAND STATE_DIR [ARGS...]
# with every argument quoted by the controller, except the check, which runs
# in the remote user's login shell itself after `set -- PROTO TOKEN check ...`
# (so the parts before the cut, this one, state.sh and check.sh, are POSIX
# sh that bash, zsh's sh emulation, mksh and busybox run alike). POSIX sh
# plus `date +%s`, `tar`, `mkdir`, `mv`, `flock`; docker only where work is
# due.
#
# Every line it prints, every file it keeps on a host, the phases of an
# apply and what the next run does after a kill in each are listed in
# PROTOCOL.md beside this folder; src/remote/ holds their typed counterparts
# on the controller. Lines that carry "@rbuild:TOKEN " are events; anything
# else is noise the controller ignores.
set -u
umask 077

# The protocol this script speaks (src/remote/mod.rs has the same number;
# a unit test keeps them equal).
rbuild_proto=4
# The state file version this script writes; it reads 1 and 2.
# shellcheck disable=SC2034 # read after the cut: a check ships without it
state_version=2
# Seconds a recorded time may lie in the host's future and still count as
# now (src/decide.rs: CLOCK_SLACK); beyond, it is not believed.
clock_slack=300

proto=$1
# Every line for the controller starts with "@rbuild:TOKEN ", TOKEN being
# the run's random word: a line of the user's rc files (or of a file they
# print) is never taken for one.
m="@rbuild:$2"
cmd=$3
state_dir=$4
shift 4

if [ "$proto" != "$rbuild_proto" ]; then
	echo "$m fatal protocol $proto not supported (remote speaks $rbuild_proto)"
	exit 3
fi

# at STEP: a step boundary. Nothing in the shipped script; the script tests
# replace this one line to kill the shell at a chosen step (tests/script.rs).
at() { :; }

# Root or not, without a fork (the check path is hot: every fork is a cost
# on every host of every run): root owns `/`.
root=0
if [ -O / ] 2>/dev/null; then root=1; fi

if [ -z "$state_dir" ]; then
	if [ "$root" = 1 ]; then
		state_dir=/var/lib/rbuild
	else
		state_dir=${XDG_STATE_HOME:-$HOME/.local/state}/rbuild
	fi
fi

now() { date +%s; }

# is_num VALUE: a decimal the shell's arithmetic takes (no sign, no leading
# zero, which would read as octal, at most 17 digits).
is_num() {
	case $1 in '' | *[!0-9]* | 0?* | ??????????????????*) return 1 ;; esac
}

# next_item: the first item of the comma-separated list in `rest` into
# `item`, and `rest` left with the others (no fork: the check's loops use
# it). The caller loops while `rest` is not empty.
next_item() {
	item=${rest%%,*}
	if [ "$item" = "$rest" ]; then rest=; else rest=${rest#*,}; fi
}

# now_nofork: the time in `now` without a fork; the check runs on every
# host on every run. The shell reads a file a byte at a time, and /proc/stat
# (boot time) is a kilobyte, so an apply leaves STATE_DIR/.clock, "BOOT_ID
# EPOCH UPTIME", and while the host has not rebooted the time is that epoch
# plus the uptime since: three short reads. Else boot time plus uptime, and
# `date` where there is no /proc.
now_nofork() {
	now='' up='' boot=-
	if [ -r /proc/uptime ]; then
		read -r up _ </proc/uptime
		up=${up%%.*}
		[ -f "$state_dir/.clock" ] && read -r boot </proc/sys/kernel/random/boot_id
	fi
	if [ "$boot" != - ]; then
		read -r c_boot c_epoch c_up _ <"$state_dir/.clock" || :
		if [ "$c_boot" = "$boot" ] && is_num "${c_epoch-}" && is_num "${c_up-}" && [ "$up" -ge "$c_up" ]; then
			now=$((c_epoch + up - c_up))
		fi
	fi
	if [ -z "$now" ] && [ -n "$up" ] && [ -r /proc/stat ]; then
		while read -r k v; do
			if [ "$k" = btime ]; then now=$((v + up)) && break; fi
		done </proc/stat
	fi
	[ -n "$now" ] || now=$(date +%s)
}
