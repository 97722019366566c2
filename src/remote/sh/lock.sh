# shellcheck shell=sh disable=SC2034,SC2154 # a part of the host script: its variables are set and read across parts (src/remote/script.rs joins them, and the joined script is checked whole)
# The stack's lock: two runs on one stack never interleave. STATE_DIR/NAME.lock
# is a file held with flock(1) on the shell's descriptor 9 for the whole
# attempt; the kernel lets go of it when the shell dies, however it dies,
# so there is no stale lock to take over (and no race between two runs
# taking one over). While held it holds "PID BOOT_ID" for the check's
# `locked=`.

# lock_take NAME: take the stack's lock, or set holder to its holder and
# fail (1), or fail with lock_err when it cannot be made (2). With
# lock_wait, waits that many seconds for a live holder (a step says so).
lock_take() {
	l=$state_dir/$1.lock
	holder=
	if ! command -v flock >/dev/null 2>&1; then
		lock_err="\`flock\` is not on this host (util-linux, or busybox's): the stack cannot be locked"
		return 2
	fi
	if [ -d "$l" ] && ! lock_take_over "$1"; then return 1; fi
	# (tried in a subshell first: a redirection that fails on `exec` ends
	# the shell)
	if ! lock_err=$({ exec 9>>"$l"; } 2>&1); then
		lock_err="could not make the stack's lock $l: ${lock_err##*: }"
		return 2
	fi
	exec 9>>"$l"
	if ! flock -n 9 && ! stop_watcher "$l"; then
		holder=$(lock_holder "$1") || holder=unknown
		if [ "${lock_wait:-0}" -gt 0 ]; then
			echo "$m step $1 waiting for the lock (pid $holder)"
			if ! flock -w "$lock_wait" 9; then
				holder=$(lock_holder "$1") || holder=unknown
				exec 9>&-
				return 1
			fi
		else
			exec 9>&-
			return 1
		fi
	fi
	boot=-
	[ -r /proc/sys/kernel/random/boot_id ] && read -r boot </proc/sys/kernel/random/boot_id
	echo "$$ $boot" 2>/dev/null >"$l" || :
	held_lock=$1
	return 0
}

# lock_take_over NAME: an older rbuild's lock directory, held while its
# holder lives (1, holder set); a dead holder's is removed, once: two runs
# that find it take turns on STATE_DIR/NAME.lock.takeover (flock'd on
# descriptor 8), and the second finds it gone (else it could remove the
# lock file the first has made and locked since).
lock_take_over() {
	lt=$state_dir/$1.lock.takeover
	{ exec 8>>"$lt"; } 2>/dev/null || return 0
	exec 8>>"$lt"
	flock -w 30 8 || :
	if [ -d "$state_dir/$1.lock" ]; then
		if holder=$(lock_holder "$1"); then
			exec 8>&-
			return 1
		fi
		echo "$m note $1 stale lock recovered"
		rm -rf "$state_dir/$1.lock"
	fi
	rm -f "$lt"
	exec 8>&-
	return 0
}

# stop_watcher LOCK: the lock is held by a watcher of the stack (its owner
# line ends in `watch`): it gives way to this run (SIGTERM, and the lock
# within 10 s). A watcher stopped inside its rollback leaves that
# rollback's journal, which the recovery finishes.
stop_watcher() {
	sw_pid='' sw_what=''
	read -r sw_pid _ sw_what <"$1" 2>/dev/null || :
	[ "$sw_what" = watch ] && is_num "$sw_pid" || return 1
	kill "$sw_pid" 2>/dev/null || :
	flock -w 10 9 || return 1
	echo "$m note $n its watcher (pid $sw_pid) gave way to this run"
}

# unlock: let go of the lock taken last (emptied first: no holder named),
# unless a watcher of the stack (apply.sh) holds it on: then it names the
# watcher.
unlock() {
	[ -n "${held_lock:-}" ] || return 0
	if [ -n "${watcher:-}" ]; then
		echo "$watcher ${boot:--} watch" 2>/dev/null >"$state_dir/$held_lock.lock" || :
	else
		: >"$state_dir/$held_lock.lock"
	fi
	exec 9>&-
	held_lock='' watcher=''
}
