# shellcheck shell=sh disable=SC2034,SC2154 # a part of the host script: its variables are set and read across parts (src/remote/script.rs joins them, and the joined script is checked whole)
# rbuild rollback: a kept generation back by hand, gated. Without TO, the
# newest kept generation older than the one that runs: never forward.

do_rollback() {
	n=$2 dir=$3 compose_files=$4 profiles=$5 up_timeout=$6 settle=$7 to=${8:--} cause=
	echo "$m hello proto=$rbuild_proto now=$(now)"
	need_docker "$1"
	[ -n "$dir" ] || dir=$(default_dir "$n")
	if [ ! -d "$state_dir" ]; then
		echo "$m done $n failed no rebuild is recorded here (no state directory $state_dir)"
		return 0
	fi
	attempt=$$.$(now).$n
	if ! lock_take "$n"; then
		if [ -n "$holder" ]; then
			echo "$m done $n locked $holder"
		else
			echo "$m done $n failed $lock_err"
		fi
		return 0
	fi
	file_paths
	use_files "$compose_files" "$profiles"
	new_log
	read_state "$n"
	hash=$st_hash snap_images=- probe='' kind=rollback first_ship=0 new_gen=- saw='' mount_list='' remount_services=- files_swapped=0
	before_gen=$st_gen before=$st_images before_names=$st_names
	if state_foreign; then
		result=failed detail="$(foreign_detail)"
	else
		recover
		rollback_to
	fi
	add_history "$n" "$result" "$snap_images" "$detail"
	keep_failed "$result" "$detail"
	unlock
	echo "$m done $n $result${cause:+ cause=$cause} $detail"
}

# rollback_to: the rollback itself ($to: a generation, or - for the one
# before the one that runs); sets result and detail.
rollback_to() {
	result=failed
	if [ "$st_gen" = - ]; then
		detail="no generation is recorded here (never built)"
		return
	fi
	if [ "$to" = - ]; then
		if ! gen_older "$st_gen"; then
			detail="no generation older than $st_gen is kept (keep_generations: $(echo "$st_gens" | grep -c .) kept; --remove-images keeps none)"
			return
		fi
		target=$g_older
	elif [ "$to" = "$st_gen" ] && [ "$cut_phase" = - ]; then
		detail="generation $to runs already"
		return
	else
		target=$to
	fi
	if ! gen_get "$target"; then
		detail="generation $target is not kept here (kept: $(echo "$st_gens" | awk 'NF { printf "%s%s", s, $1; s = ", " }'))"
		return
	fi
	if ! snapshot "$n" 2>>"$log" && engine_trouble "$log"; then
		return
	fi
	journal rollback || :
	echo "$m step $n rollback"
	if restore_images "$g_images" "$g_names" "$(($(now) + up_timeout))"; then
		# the state names what the gate saw run
		from=$st_gen
		st_gen=$target st_images=$snap_images st_names=$snap_names st_last_result=rolled_back st_bases=$g_bases
		st_failed_hash=$st_hash st_failed_at=$(now) st_cgroups=$(cgroups_now) st_attempt=$attempt
		if ! save_state "$n"; then
			detail="generation $target runs, but the state file could not be written: $write_err"
			no_space "$write_err"
			return
		fi
		end_journal
		snap_images=$g_images
		result=rolled_back detail="by hand, from generation $from to generation $target"
	elif why=$rb && restore_images "$before" "$before_names" "$(($(now) + up_timeout))"; then
		# what ran before the rollback runs again; the state is as it
		# was, but for the new containers
		st_cgroups=$(cgroups_now) st_attempt=$attempt
		save_state "$n" && end_journal
		snap_images=$before
		result=failed detail="rollback to generation $target failed: $why; generation $st_gen runs again"
	else
		record_broken "$st_failed_hash" "$st_failed_at"
		result=failed detail="rollback to generation $target failed: $why; generation $st_gen could not be put back either${rb:+: $rb}; $saw"
	fi
}
