# shellcheck shell=sh disable=SC2034,SC2154 # a part of the host script: its variables are set and read across parts (src/remote/script.rs joins them, and the joined script is checked whole)
# Writing on the host: the state file, the journal of an attempt, the
# history. Every write checks every step and replaces its file atomically
# (a temp file beside it, synced, renamed): a write that fails leaves the
# old file as it was, and says so by its status.

# write_file FILE TEXT: FILE's content becomes TEXT (which ends in the line
# `end=1`, read back before the rename: a full disk that cut the write
# short is seen), atomically. Fails, leaving FILE as it was, when any step
# fails; `write_err` says why.
write_file() {
	wf_tmp=${1%/*}/.${1##*/}.tmp.$$
	write_err=
	if ! write_err=$({ printf '%s' "$2" >"$wf_tmp"; } 2>&1); then
		rm -f "$wf_tmp"
		write_err=${write_err:-could not write $wf_tmp}
		return 1
	fi
	wf_end=0
	while IFS= read -r wf_line; do
		if [ "$wf_line" = end=1 ]; then wf_end=1; else wf_end=0; fi
	done <"$wf_tmp"
	if [ "$wf_end" != 1 ]; then
		rm -f "$wf_tmp"
		write_err="$wf_tmp was cut short (the disk is full?)"
		return 1
	fi
	sync "$wf_tmp" 2>/dev/null || sync
	if ! write_err=$(mv -f "$wf_tmp" "$1" 2>&1); then
		rm -f "$wf_tmp"
		return 1
	fi
}

# save_state NAME: NAME.state written whole from the st_* variables (the one
# place that writes it). Fails as write_file does.
save_state() {
	at state.write
	write_file "$state_dir/$1.state" "version=$state_version
hash=$st_hash
built_at=$st_built_at
gen=$st_gen
last_gen=$st_last_gen
last_result=$st_last_result
compose=$st_compose
images=$st_images
names=$st_names
cgroups=$st_cgroups
leftover=${st_leftover:--}
failed_hash=$st_failed_hash
failed_at=$st_failed_at
attempt=$st_attempt
bases=$st_bases
$(echo "$st_gens" | sed -n 's/^./generation=&/p')
end=1
"
}

# journal PHASE: the attempt on $n enters PHASE, recorded in NAME.journal
# before the phase starts (with what the next run needs to put things
# right if this shell dies in it: see recover). Fails as write_file does.
journal() {
	j_phase=$1
	write_file "$journal" "phase=$1
kind=$kind
hash=${hash:--}
target=$before_gen
images=$before
names=$before_names
new_gen=${new_gen:--}
first=${first_ship:-0}
attempt=$attempt
end=1
" || return 1
	at "$1"
}

# read_journal: the journal of an attempt that was cut off, into j_*.
read_journal() {
	j_phase=- j_target=- j_images=- j_names=- j_first=0 j_attempt=-
	[ -f "$journal" ] || return 1
	while IFS='=' read -r k v; do
		case $k in
		phase) j_phase=$v ;;
		target) j_target=$v ;;
		images) j_images=$v ;;
		names) j_names=$v ;;
		first) j_first=$v ;;
		attempt) j_attempt=$v ;;
		esac
	done <"$journal"
}

# end_journal: the attempt is over, whichever way.
end_journal() {
	rm -f "$journal"
}

# add_history NAME RESULT IMAGES DETAIL: append one attempt to NAME.history
# (`TIME HASH RESULT IMAGES gen=GEN DETAIL`, GEN the generation that runs
# after it), keeping the last 20, atomically.
add_history() {
	h=$state_dir/$1.history
	ah_line=$(echo "$(now) ${hash:--} $2 ${3:--} gen=${st_gen:--} $4" | tr -d '\n' | tr '\t' ' ')
	ah_old=
	[ -f "$h" ] && ah_old=$(tail -n 19 "$h")
	ah_tmp=$state_dir/.$1.history.tmp.$$
	if { [ -z "$ah_old" ] || printf '%s\n' "$ah_old"; } >"$ah_tmp" 2>/dev/null &&
		printf '%s\n' "$ah_line" >>"$ah_tmp" 2>/dev/null && mv -f "$ah_tmp" "$h"; then
		return 0
	fi
	rm -f "$ah_tmp"
	echo "$m note $1 could not record the attempt in $h"
}

# keep_failed RESULT DETAIL: a failed attempt's output ($log: docker's, and
# the hooks') kept as STATE_DIR/NAME.failed for `rbuild logs` and `rbuild
# status`: a first line as in NAME.history, then the output's last 64 KiB.
# Replaced atomically by each failed attempt; a success leaves it.
keep_failed() {
	case $1 in failed | rolled_back) ;; *) return 0 ;; esac
	kf=$state_dir/.$n.failed.tmp.$$
	{
		echo "$(now) ${hash:--} $1 ${snap_images:--} $2" | tr -d '\n' | tr '\t' ' '
		echo
		[ -z "${log:-}" ] || tail -c 65536 "$log" 2>/dev/null | tr -d '\r'
	} >"$kf" 2>/dev/null && mv -f "$kf" "$state_dir/$n.failed" && return 0
	rm -f "$kf"
}

# new_log: the attempt's log, $log, made anew (never written through a link
# someone left there).
new_log() {
	log=$state_dir/$n.log
	rm -f "$log"
	: >"$log"
}

# size_of FILE: its size in bytes (0 if it cannot be read), from `ls -ln`:
# a host may lack `wc` and `stat`.
size_of() {
	read -r _ _ _ _ so_size _ <<EOF
$(ls -ln "$1" 2>/dev/null)
EOF
	is_num "${so_size:-}" || so_size=0
	echo "$so_size"
}

# trim_log: the attempt's log keeps its last MiB (a hook or a build can print
# without bound).
trim_log() {
	[ "$(size_of "$log")" -gt 1048576 ] || return 0
	if ! { tail -c 1048576 "$log" >"$log.tmp.$$" && mv -f "$log.tmp.$$" "$log"; }; then
		rm -f "$log.tmp.$$"
	fi
}
