# shellcheck shell=sh disable=SC2034,SC2154 # a part of the host script: its variables are set and read across parts (src/remote/script.rs joins them, and the joined script is checked whole)
# lock_holder NAME: print the pid holding NAME's lock if it is alive. The
# lock (lock.sh) is a file held with flock(1), holding "PID BOOT_ID" while
# held and empty after; the kernel lets go of it when its holder dies, so a
# pid that is gone holds nothing. A directory is an older rbuild's lock.
lock_holder() {
	l=$state_dir/$1.lock
	pid=- boot=-
	if [ -d "$l" ]; then
		if [ -f "$l/owner" ]; then
			read -r pid boot <"$l/owner"
		elif [ -n "$(find "$l" -prune -mmin +1 2>/dev/null)" ]; then
			return 1 # no owner a minute after it was made: its maker died at once
		fi
	elif [ -s "$l" ]; then
		read -r pid boot what <"$l" || :
		# a watcher after a passed gate (apply.sh) gives way to any run
		[ "${what:-}" != watch ] || return 1
	else
		return 1
	fi
	if [ "$boot" != - ] && [ -r /proc/sys/kernel/random/boot_id ]; then
		read -r cur </proc/sys/kernel/random/boot_id
		[ "$cur" = "$boot" ] || return 1
	fi
	case $pid in '' | - | *[!0-9]*) echo unknown; return 0 ;; esac
	if [ -d /proc ]; then
		[ -d "/proc/$pid" ] || return 1
	else
		kill -0 "$pid" 2>/dev/null || return 1
	fi
	echo "$pid"
}

# do_check (NAME HASH PERIOD)...: each stack's state, as lines in `out` (the
# check prints them in one write: one packet to the controller). Sets
# may_be_due when a stack's recorded hash is not HASH, its build is PERIOD
# seconds old, it does not run as recorded, or an earlier attempt on it was
# cut off: the controller decides, this only lets a host with nothing to do
# go without waiting for its verdict.
do_check() {
	now_nofork
	out="$m hello proto=$rbuild_proto now=$now"
	may_be_due=0
	while [ $# -ge 3 ]; do
		n=$1 want=$2 period=$3
		shift 3
		read_state "$n"
		read_phase "$n"
		holder=-
		if [ -s "$state_dir/$n.lock" ] || [ -d "$state_dir/$n.lock" ]; then
			holder=$(lock_holder "$n") || holder=-
		fi
		# whether what the last rebuild left running still runs: each of its
		# service containers' cgroup directory is still there (no docker CLI,
		# no fork: a test of a directory), and whether it was restarted
		# since its gate: its process is not the one recorded then
		# (`svc:PID:DIR`; an older rbuild recorded `svc:DIR`)
		run=- restarted=0
		rest=$st_cgroups
		[ "$rest" = - ] || run=1
		while [ "$rest" != - ] && [ -n "$rest" ]; do
			next_item
			item=${item#*:}
			case $item in
			[0-9]*:*) cpid=${item%%:*} item=${item#*:} ;;
			*) cpid= ;;
			esac
			if [ ! -d "$item" ]; then
				run=0
			elif [ -n "$cpid" ] && [ ! -d "/proc/$cpid" ]; then
				restarted=1
			fi
		done
		# an attempt cut off (its journal is there), or a stack whose
		# rollback failed: what runs is not what the state names, and the
		# next apply puts it right
		if [ "$st_phase" != - ] || [ "$st_last_result" = broken ]; then run=0; fi
		[ "$run" != 0 ] && [ "$restarted" = 0 ] || may_be_due=1
		out="$out
$m state $n exists=$st_exists version=$st_version hash=$st_hash built_at=$st_built_at last_result=$st_last_result failed_hash=$st_failed_hash failed_at=$st_failed_at locked=$holder running=$run gen=$st_gen phase=$st_phase restarted=$restarted bases=$st_bases"
		if is_num "$st_built_at"; then
			age=$((now - st_built_at))
			# a build time in the future is no time: due
			if [ "$age" -lt "-$clock_slack" ]; then age=$period; elif [ "$age" -lt 0 ]; then age=0; fi
			[ "$st_hash" = "$want" ] && [ "$age" -lt "$period" ] || may_be_due=1
		else
			may_be_due=1
		fi
	done
}

# The check ends here, and so does the script it ships (the controller cuts
# it at the next line): everything after is for the other commands.
# `check STATE_DIR hold|nohold (NAME HASH PERIOD)...`: with `hold`, when a
# stack may be due, `end hold` closes the output and the check waits for its
# stdin to close, so that an ssh master running it as its own session stays
# up while the controller decides whether an apply follows over it. A dry
# run's check (`plan`) is sent the whole script: see do_plan.
if [ "$cmd" = check ] && [ "$1" != plan ]; then
	mode=$1
	shift
	do_check "$@"
	if [ "$mode" = hold ] && [ "$may_be_due" = 1 ]; then
		printf '%s\n%s end hold\n' "$out" "$m"
		# `cat`, not `read`: a TMOUT in the user's rc files would end a
		# `read` in bash early (a fork only where something may be due)
		cat >/dev/null || :
	else
		printf '%s\n%s end\n' "$out" "$m"
	fi
	exit 0
fi
#@rbuild-cut
