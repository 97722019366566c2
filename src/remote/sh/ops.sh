# shellcheck shell=sh disable=SC2034,SC2154 # a part of the host script: its variables are set and read across parts (src/remote/script.rs joins them, and the joined script is checked whole)
# The commands that change things: apply and rollback, and what they
# share (the payload, the clock file, the temp files of dead shells).

# On every way out the lock is let go and the payload removed. A controller
# that dies (or a connection that drops) closes our stdout: a rebuild under
# way still runs to its end, state and lock included, rather than stopping
# half-way.
payload=
held_lock=
on_exit() {
	unlock
	[ -z "$payload" ] || rm -f "$payload"
}
trap 'on_exit' EXIT
trap 'on_exit; exit 130' INT
trap 'on_exit; exit 143' TERM
trap '' PIPE HUP

# save_clock EPOCH: leave STATE_DIR/.clock for now_nofork (see there), EPOCH
# being the time now.
save_clock() {
	[ -r /proc/uptime ] && [ -r /proc/sys/kernel/random/boot_id ] || return 0
	read -r up _ </proc/uptime
	read -r boot </proc/sys/kernel/random/boot_id
	if ! { { echo "$boot $1 ${up%%.*}" >"$state_dir/.clock.$$"; } 2>/dev/null &&
		mv -f "$state_dir/.clock.$$" "$state_dir/.clock"; }; then
		rm -f "$state_dir/.clock.$$"
	fi
}


# state_foreign: the state file read_state read was written in a version
# this script does not read (a newer rbuild's, or one without a version):
# nothing in it is to be trusted or overwritten.
state_foreign() {
	[ "$st_exists" = bad ] || { [ "$st_exists" = 1 ] && [ "$st_version" != 1 ] && [ "$st_version" != 2 ]; }
}
foreign_detail() {
	if [ "$st_exists" = bad ]; then
		echo "its state file $state_dir/$n.state is not a regular file; it is left as it is"
	else
		case $st_version in
		-) echo "its state file $state_dir/$n.state is not an rbuild state file (empty, or no version line: a write cut short); it is left as it is" ;;
		'?') echo "its state file $state_dir/$n.state has a version that is no number (a file edited by hand, or Windows line ends); it is left as it is" ;;
		*) echo "its state file has version $st_version, written by a newer rbuild; this rbuild reads versions 1 and $state_version (upgrade rbuild on the controller)" ;;
		esac
	fi
}


emit_log_tail() {
	tail -n 15 "$2" 2>/dev/null | tr -d '\r' | while IFS= read -r line; do
		echo "$m log $1 $line"
	done
}


# do_plan (NAME HASH PERIOD)...: a dry run's check: what the check reads,
# then a `caps` line. It is sent the whole script (not the check's cut, which
# every run's check ships), and never holds.
do_plan() {
	do_check "$@"
	printf '%s\n%s\n%s end\n' "$out" "$m caps $(caps)" "$m"
}


default_dir() {
	if [ "$root" = 1 ]; then echo "/srv/rbuild/$1"; else echo "$HOME/.local/share/rbuild/stacks/$1"; fi
}

# sha256_of FILE: its hex sha256, with whichever tool the host has.
sha256_of() {
	if command -v sha256sum >/dev/null 2>&1; then
		so_out=$(sha256sum "$1")
	elif command -v shasum >/dev/null 2>&1; then
		so_out=$(shasum -a 256 "$1")
	elif command -v openssl >/dev/null 2>&1; then
		so_out=$(openssl dgst -sha256 -r "$1")
	else
		return 1
	fi
	echo "${so_out%% *}"
}

# receive SIZE SHA256: store the payload from stdin and check that it is
# what the controller announced, before anything is unpacked.
receive() {
	payload=$state_dir/.payload.$$.tar
	if ! err=$({ cat >"$payload"; } 2>&1); then
		case $err in *"No space left"* | *"no space left"*) c=no_space ;; *) c= ;; esac
		echo "$m fatal ${c:+cause=$c }could not store the shipped stacks in $state_dir: $err"
		exit 3
	fi
	got=$(size_of "$payload")
	if [ "$got" != "$1" ]; then
		echo "$m fatal cause=payload the shipped stacks arrived cut: $got of $1 bytes; nothing was changed"
		exit 3
	fi
	if ! sum=$(sha256_of "$payload"); then
		echo "$m fatal cause=no_sha256 none of \`sha256sum\`, \`shasum\`, \`openssl\` is on this host: the shipped stacks cannot be checked"
		exit 3
	fi
	if [ "$sum" != "$2" ]; then
		echo "$m fatal cause=payload the shipped stacks arrived changed (sha256 $sum, sent $2); nothing was changed"
		exit 3
	fi
}

# clean_leftovers: temp files of earlier applies whose shell is gone (a
# killed run, a full disk).
clean_leftovers() {
	for f in "$state_dir"/.payload.*.tar "$state_dir"/.*.tmp.* "$state_dir"/.clock.* "$state_dir"/*.log.tmp.*; do
		[ -e "$f" ] || continue
		case $f in */.payload.*.tar) pid=${f%.tar} pid=${pid##*.} ;; *) pid=${f##*.} ;; esac
		case $pid in '' | *[!0-9]*) continue ;; esac
		[ "$pid" = $$ ] || [ -d "/proc/$pid" ] || rm -f "$f"
	done
}

do_apply() {
	compose_pref=$1
	remove=$2
	prune=$3
	payload_size=$4
	payload_sha=$5
	shift 5
	rebuilt_any=0
	# a directory of the user's keeps its mode; one made here is 0700
	# (umask)
	if [ ! -d "$state_dir" ] && ! mkdir -p "$state_dir"; then
		echo "$m fatal could not create the state directory $state_dir"
		exit 3
	fi
	now=$(now)
	echo "$m hello proto=$rbuild_proto now=$now"
	clean_leftovers
	save_clock "$now"
	payload=
	[ "$payload_size" = 0 ] || receive "$payload_size" "$payload_sha"
	need_docker "$compose_pref"
	while [ $# -ge 14 ]; do
		n=$1 dir=$2 compose_files=$3 profiles=$4 mode=$5 adopt=$6 up_timeout=$7 settle=$8 build_timeout=$9
		shift 9
		hash=$1 hook_before=$3 hook_after=$4 probe=$5
		stack_options "$2"
		shift 5
		shipped=0
		[ "$mode" != ship ] || shipped=1
		[ -n "$dir" ] || dir=$(default_dir "$n")
		attempt=$$.$now.$n
		if ! lock_take "$n"; then
			if [ -n "$holder" ]; then
				echo "$m done $n locked $holder"
			else
				cause=
				detail=$lock_err
				no_space "$detail"
				echo "$m done $n failed${cause:+ cause=$cause} $detail"
			fi
			continue
		fi
		result=failed detail='' snap_images=- cause=
		apply_stack
		# (a pull built nothing: no build cache to prune)
		[ "$result" != rebuilt ] || [ "$mode" = pull ] || rebuilt_any=1
		add_history "$n" "$result" "$snap_images" "$detail"
		keep_failed "$result" "$detail"
		unlock
		echo "$m done $n $result${cause:+ cause=$cause} $detail"
	done
	[ -z "$payload" ] || rm -f "$payload"
	payload=
	# after a rebuild; and on every run with --prune-image-cache (PRUNE 0)
	if [ "$rebuilt_any" = 1 ] || [ "$prune" = 0 ]; then prune_cache; fi
	return 0
}

# prune_cache: keep the engine's build cache bounded after a rebuild: what
# no build uses and is older than $prune seconds goes (0: all of it). Never
# an image, never cache a build uses.
prune_cache() {
	case $prune in
	- | '' | *[!0-9]*) return 0 ;;
	0) set -- ;;
	*) set -- --filter "until=${prune}s" ;;
	esac
	if out=$(dk builder prune -f "$@" 2>&1); then
		# (the classic builder says "Total reclaimed space:", buildx "Total:")
		freed=$(echo "$out" | sed -n 's/^Total\( reclaimed space\)\{0,1\}:[[:space:]]*//p')
		# a note only when it freed something: "0B reclaimed" every run is noise
		case $freed in
		'' | 0 | 0B) ;;
		*) echo "$m note - pruned the build cache: $freed reclaimed" ;;
		esac
	fi
}

