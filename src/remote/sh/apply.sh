# shellcheck shell=sh disable=SC2034,SC2154 # a part of the host script: its variables are set and read across parts (src/remote/script.rs joins them, and the joined script is checked whole)
# An apply of one stack, as phases. Each phase is recorded in the stack's
# journal (STATE_DIR/NAME.journal) before it starts; the state file is
# written once the attempt's outcome is known (its commit point); the
# journal goes last. A shell that dies anywhere leaves the journal, and the
# next apply or rollback of the stack begins with recover, whose outcome
# is a function of (journal, files, state) alone (PROTOCOL.md has the
# table):
#   ship      the files are swapped in              -> files restored
#   build, pull, hook                              -> files restored, names back on what runs
#   switch, gate, undo, rollback, start            -> files restored; what runs
#             may be the cut-off attempt's: the check says running=0, and the
#             next apply starts the recorded generation (or rebuilds)
#   commit    the state was written (its `attempt` is the journal's): the
#             files are committed; else as gate

# recover: finish or undo an attempt on $n that was cut off (its journal is
# there), before anything else. Sets cut_phase (`-`: none).
recover() {
	cut_phase=-
	if ! read_journal; then
		# an older rbuild's ship cut off: its carry journal alone
		[ ! -f "$carry" ] || { first_ship=0 && restore_files; }
		return 0
	fi
	cut_phase=$j_phase
	first_ship=$j_first
	if [ "$j_attempt" != - ] && [ "$j_attempt" = "$st_attempt" ]; then
		# it reached its commit point: what it recorded stands
		commit_files
		end_journal
		echo "$m note $n an earlier run was cut off after it recorded generation $st_gen: its files are kept"
		cut_phase=-
		return 0
	fi
	restore_files
	case $j_phase in
	ship | build | pull | hook)
		# its containers were never replaced: the names compose uses point
		# at what runs again
		retag "$j_images" "$j_names"
		end_journal
		echo "$m note $n an earlier run was cut off (at $j_phase): its files are as they were before it"
		cut_phase=-
		;;
	*)
		# what runs may be what that attempt started, never gated: the
		# recorded generation is put back by this apply (journal kept
		# until then)
		echo "$m note $n an earlier run was cut off (at $j_phase): its files are as they were before it, and generation ${j_target} is put back"
		;;
	esac
}

# remember [CGROUPS]: this attempt at $hash failed; what the state names
# (the generation that ran before) runs. It is tried again when the files
# change, when forced, or after the build period, not on every run.
remember() {
	st_last_result=failed st_failed_hash=$hash st_failed_at=$(now)
	st_cgroups=${1:-$st_cgroups} st_attempt=$attempt
	save_state "$n" || echo "$m note $n could not record the failed attempt in $state_dir: $write_err"
}

# record_broken: what runs did not pass its gate and the generation the
# state names could not be put back: the state says so (the check reports it
# not running, the next run puts it right) and keeps every generation.
# `saw` says what the host sees running now.
record_broken() {
	st_last_result=broken st_failed_hash=$1 st_failed_at=$2 st_cgroups=- st_attempt=$attempt
	if save_state "$n"; then
		end_journal
	else
		echo "$m note $n could not record the failed attempt in $state_dir: $write_err"
	fi
	if snapshot "$n" 2>>"$log"; then
		if [ "$snap_images" = - ]; then saw="nothing of it runs"; else saw="what runs now: $snap_images"; fi
	else
		saw="the engine does not answer"
	fi
	snap_images=-
}

# restore_images LIST NAMES DEADLINE: tag each "svc=id" of LIST with the
# name compose uses for svc (from NAMES, "svc=name"), bring the stack up
# without building and gate it. Sets rb to what went wrong.
restore_images() {
	retag "$1" "$2"
	if ! up_stack; then
		emit_log_tail "$n" "$log"
		rb="up of the previous images failed"
		engine_trouble "$log" && rb="$rb: $detail"
		return 1
	fi
	if ! wait_healthy "$n" "$3" "$settle"; then
		rb="previous images $verdict"
		return 1
	fi
}

# not_built WHAT: the build, the pull or the before hook failed. The files
# go back, the names compose uses point at what runs again, what was built
# goes.
not_built() {
	emit_log_tail "$n" "$log"
	journal undo || :
	restore_files
	retag "$before" "$before_names"
	drop_untested "$before,$(gen_images)"
	remember
	end_journal
	detail="$1; the running containers were left as they were"
}

# rollback WHY: the new generation failed its gate. The failed generation
# stops, the previous files come back, the previous images are put back
# under the names compose uses, and the stack comes up without building,
# gated again.
rollback() {
	why=$1
	if [ "$before" = - ] && [ "$failed_gen" != - ]; then
		# the images of a failed first build stay while its stopped
		# containers use them (for their logs): a later rebuild that
		# passes removes them (leftover)
		rest=$failed_gen
		while [ -n "$rest" ]; do
			next_item
			case ",$st_leftover," in *",$item,"*) continue ;; esac
			[ "$st_leftover" != - ] || st_leftover=
			st_leftover="${st_leftover:+$st_leftover,}$item"
		done
	fi
	if [ "$before" = - ]; then
		# nothing ran before: stop the new containers rather than leave
		# them crash-looping (kept, for their logs); an earlier failed
		# attempt's images, no longer in use, go now; the files stay
		journal undo || :
		run_logged "$log" dc_timeout "$up_timeout" -p "$n" stop
		drop_untested "$failed_gen"
		first_ship=1
		restore_files
		remember
		end_journal
		result=failed detail="$why; nothing to roll back to (first build); the new containers were stopped"
		return
	fi
	echo "$m step $n rollback"
	journal undo || :
	# the failed generation's changed services stop before the files are
	# swapped back: a crash-looping container that restarts meanwhile
	# recreates its bind-mount source under $dir. The services whose image
	# did not change (a database beside the app) are left running (a
	# replace beside its old containers that failed left only the old ones
	# running: they stay)
	[ "$keep_running" = 1 ] || stop_changed "$failed_gen" "$before"
	restore_files
	journal rollback || :
	if ! restore_images "$before" "$before_names" "$(($(now) + up_timeout))"; then
		record_broken "$hash" "$(now)"
		result=failed detail="$why; rollback failed too: generation $before_gen could not be put back: $rb; $saw"
		return
	fi
	# the failed generation's images go (what it built, and what it
	# pulled and ran); an image a kept generation uses stays
	kept=$(gen_images)
	drop_untested "$before,$kept"
	remove_images "$failed_gen" "$before,$kept"
	remember "$(cgroups_now)"
	end_journal
	snap_images=$before
	result=rolled_back detail="$why; generation $before_gen runs again"
}

# apply_stack: rebuild (or start) one stack; sets result and detail.
apply_stack() {
	file_paths
	failed_gen=- leftover='' keep_running=0 new_gen=- kind=apply saw='' first_ship=0 files_swapped=0 b_bases=-
	new_log
	read_state "$n"
	if state_foreign; then
		result=failed detail="$(foreign_detail)"
		return
	fi
	# the generation a failed attempt goes back to: the one the state
	# names, which passed its gate
	before_gen=$st_gen before=$st_images before_names=$st_names
	[ "$before_gen" != - ] || before=-
	recover

	# what runs now (and the first look at the engine: one that does not
	# answer stops here, before anything is shipped)
	if ! snapshot "$n" 2>>"$log"; then
		if engine_trouble "$log"; then
			result=failed
			return
		fi
		snap_images=- snap_names=-
	fi
	if [ "$before_gen" = - ] && [ "$snap_images" != - ]; then
		# never built here, yet something runs under this project (a
		# deployment started by hand, taken over): a failed first build
		# goes back to it
		before=$snap_images before_names=$snap_names before_gen=0
	fi

	# start: the stack does not run as recorded; up what is there, gated
	if [ "$mode" = start ]; then
		start_stack
		return
	fi
	if [ "$mode" = verify ]; then
		verify_stack
		return
	fi

	if [ "$shipped" = 1 ]; then
		echo "$m step $n ship"
		ship || return
		files_swapped=1
	fi
	use_files "$compose_files" "$profiles"

	# pull: an image-only service's image moved; the built services keep
	# their images (no build), and what they were built from
	if [ "$mode" != pull ]; then
		build_step || return
		journal pull || :
	elif ! journal pull; then
		not_built "could not write the journal in $state_dir: $write_err"
		no_space "$write_err"
		return
	fi
	echo "$m step $n pull"
	if [ "$flavour" = v2 ]; then
		pull_skip=--ignore-buildable
	else
		pull_skip=--ignore-pull-failures
	fi
	if run_logged "$log" dc_timeout "$build_timeout" -p "$n" pull "$pull_skip" --quiet; then rc=0; else rc=$?; fi
	if [ "$rc" = 124 ]; then
		cause=timeout
		not_built "the pull took longer than ${build_timeout}s (build_timeout) and was stopped"
		return
	elif [ "$rc" != 0 ]; then
		not_built "pull failed"
		return
	fi

	# the before hook (a migration): after the build and pull, before any
	# container is replaced; one that fails is a failed build
	if [ -n "$hook_before" ]; then
		journal hook || :
		if ! run_hook before "$hook_before"; then
			[ "$hook_rc" != 124 ] || cause=timeout
			not_built "$(hook_failed before)"
			return
		fi
	fi

	journal switch || :
	# zero_downtime: its services are replaced beside the old containers
	# first; one that fails leaves the old ones running, and is rolled back
	if [ -n "$zd_services" ] && [ "$before" != - ] && ! replace_beside; then
		keep_running=1
		rollback "$verdict"
		return
	fi

	echo "$m step $n up"
	deadline=$(($(now) + up_timeout))
	if up_stack; then rc=0; else rc=$?; fi
	if [ "$rc" != 0 ]; then
		failed_gen=-
		snapshot "$n" 2>>"$log" && failed_gen=$snap_images
		# what the engine says of the containers (a job another waits for
		# that exited non-zero fails the `up` itself), and their words
		look "$n" 2>>"$log" || bad=
		[ -z "$bad" ] || last_words "$bad"
		emit_log_tail "$n" "$log"
		if [ "$rc" = 124 ]; then
			rollback "up took longer than ${up_timeout}s (up_timeout)"
		elif port_taken "$log"; then
			rollback "up failed: $taken"
		else
			rollback "up failed${bad:+:$bad}"
		fi
		return
	fi
	journal gate || :
	echo "$m step $n wait"
	if ! wait_healthy "$n" "$deadline" "$settle"; then
		# what the failed generation ran, pulled images included
		failed_gen=$snap_images
		last_words "$verdict"
		emit_log_tail "$n" "$log"
		rollback "$verdict"
		return
	fi
	gated_images=$snap_images gated_names=$snap_names
	if ! probe_gate "$(($(now) > deadline ? $(now) + 10 : deadline))"; then
		failed_gen=$gated_images
		emit_log_tail "$n" "$log"
		rollback "$verdict"
		return
	fi
	snap_images=$gated_images snap_names=$gated_names
	commit_rebuild
}

# build_step: build the stack's images (`build --pull --no-cache`, its
# output in the log, in BuildKit's plain progress) and read from that
# output what they were built from (b_bases). Fails, having undone the
# attempt (not_built), when the build does.
build_step() {
	if ! journal build; then
		not_built "could not write the journal in $state_dir: $write_err"
		no_space "$write_err"
		return 1
	fi
	echo "$m step $n build"
	BUILDKIT_PROGRESS=plain
	export BUILDKIT_PROGRESS
	if run_logged "$log" dc_timeout "$build_timeout" -p "$n" build --pull --no-cache; then rc=0; else rc=$?; fi
	[ "$rc" != 0 ] || build_bases "$log"
	trim_log
	if [ "$rc" = 124 ]; then
		cause=timeout
		not_built "the build took longer than ${build_timeout}s (build_timeout) and was stopped"
		return 1
	elif [ "$rc" != 0 ]; then
		if grep -q -i 'no space left on device' "$log" 2>/dev/null; then
			cause=no_space
			not_built "build failed: no space left on device (the engine's storage, $(dk info --format '{{.DockerRootDir}}' 2>/dev/null || echo 'its data root'), is full)"
		else
			not_built "build failed"
		fi
		return 1
	fi
}

# commit_rebuild: the new generation passed its gate: it is recorded (the
# commit point), its files stay, the generations past `keep` lose their
# images, and the after hook runs.
commit_rebuild() {
	after=$snap_images after_names=$snap_names
	# what it was built from: its built services' bases (the build's, or
	# for a pull the running generation's), and the registry digests of
	# the images it runs (one look at the engine)
	image_bases "$after" "$after_names" || :
	[ "$mode" != pull ] || b_bases=$(kept_bases "$st_bases" "$i_bases")
	new_bases=$(join_bases "$b_bases" "$i_bases")
	# a rebuild that produced the very images that ran is the same
	# generation, built again
	if [ "$after" = "$before" ] && [ "$before_gen" != - ] && [ "$before_gen" != 0 ]; then
		new_gen=$before_gen
	else
		new_gen=$((st_last_gen + 1))
	fi
	journal commit || :
	echo "$m step $n prune"
	k=$keep
	[ "$remove" != 1 ] || k=1
	prev_gens=$st_gens
	# a deployment taken over (started by hand, never built here) is kept
	# as generation 0 until it rotates out, its images with it
	if [ "$before_gen" = 0 ] && [ "$before" != - ] && [ "$before" != "$after" ]; then
		st_gens="0 0 - $before $before_names -
$st_gens"
	fi
	built=$(now)
	# a pull built nothing: its build time stays the running generation's
	# (the build period counts from the last build)
	if [ "$mode" = pull ] && [ "$before_gen" != - ] && is_num "$st_built_at" && [ "$st_built_at" != 0 ]; then
		built=$st_built_at
	fi
	gen_add "$new_gen" "$built" "$hash" "$after" "$after_names" "$new_bases" "$k"
	st_hash=$hash st_built_at=$built st_gen=$new_gen st_last_result=ok st_compose=$flavour
	st_images=$after st_names=$after_names st_cgroups=$(cgroups_now) st_attempt=$attempt st_bases=$new_bases
	[ "$new_gen" -le "$st_last_gen" ] || st_last_gen=$new_gen
	if ! save_state "$n"; then
		# the state cannot name the new generation: it does not stay
		st_gens=$prev_gens
		read_state "$n"
		failed_gen=$after
		cause=no_space
		no_space_err=$write_err
		rollback "rebuilt, but the state file in $state_dir could not be written ($no_space_err)"
		# (dash's printf says only "I/O error" of a full disk; df says 100%)
		case "$no_space_err $(df -P "$state_dir" 2>/dev/null)" in
		*"No space"* | *"no space"* | *"cut short"* | *"I/O error"* | *" 100% "*) cause=no_space ;;
		*) cause= ;;
		esac
		[ "$result" != rolled_back ] || result=failed
		return
	fi
	at state.written
	commit_files
	end_journal
	# images a prune could not remove before are tried again; then the
	# generations that are no longer kept
	kept=$(gen_images)
	leftover=''
	remove_images "$st_leftover" "$kept"
	remove_images "$g_dropped" "$kept"
	if [ "${leftover:--}" != "${st_leftover:--}" ]; then
		st_leftover=${leftover:--}
		save_state "$n" || :
	fi
	result=rebuilt detail="generation $new_gen, with compose $flavour"
	[ "$mode" != pull ] || detail="generation $new_gen, pulled (no build), with compose $flavour"
	start_watch
	# the after hook, once the new generation passed its gate and is
	# recorded: one that fails leaves it running and recorded, and says so
	if [ -n "$hook_after" ] && ! run_hook after "$hook_after"; then
		emit_log_tail "$n" "$log"
		cause=after_hook detail="$(hook_failed after); the rebuild itself passed: the new version runs (generation $new_gen) and is recorded"
		keep_failed failed "$detail"
	fi
}

# verify_stack: a container of the generation that runs was restarted
# since its gate (the check saw its process change). One look at the
# engine: a service restarted by its policy (its restart count), exited
# non-zero or unhealthy has crashed: the newest kept generation before it
# is put back, gated, and these files are held like a failed rebuild (row
# `rolled_back`, reason `restarted`). Nothing wrong: the engine restarted
# them (its upgrade, a restart of the daemon), and what runs is recorded
# again. Sets result and detail.
verify_stack() {
	kind=verify
	use_files "$compose_files" "$profiles"
	# (a container the engine restarted may still be starting: it is
	# given the up timeout, as a gate)
	if wait_healthy "$n" "$(($(now) + up_timeout))" "$settle" 2>>"$log"; then
		st_cgroups=$(cgroups_now) st_attempt=$attempt
		if ! save_state "$n"; then
			result=failed detail="could not write the state file in $state_dir: $write_err"
			no_space "$write_err"
			return
		fi
		result=started detail="its containers were restarted, not by a crash (the engine, or the host); generation $st_gen runs as recorded"
		return
	fi
	if engine_trouble "$log"; then
		result=failed
		return
	fi
	last_words "$verdict"
	emit_log_tail "$n" "$log"
	revert "generation $st_gen crashed after its gate: $verdict"
}

# revert WHY: the generation that runs crashed after its gate (WHY): the
# newest kept generation before it comes back, gated (its changed services
# stopped first), and these files are held like a failed rebuild. Sets
# result and detail.
revert() {
	if ! gen_older "$st_gen"; then
		result=failed detail="$1; no older generation is kept to roll back to"
		return
	fi
	gen_get "$g_older"
	failed_gen=$st_images
	journal rollback || :
	echo "$m step $n rollback"
	stop_changed "$failed_gen" "$g_images"
	if restore_images "$g_images" "$g_names" "$(($(now) + up_timeout))"; then
		# the state names the generation that runs, its hash and build
		# time among it; the crashed files are held as a failed attempt
		st_failed_hash=$st_hash st_failed_at=$(now)
		st_gen=$g_older st_images=$g_images st_names=$g_names st_last_result=failed st_bases=$g_bases
		st_hash=$g_hash st_built_at=$g_built st_cgroups=$(cgroups_now) st_attempt=$attempt
		if ! save_state "$n"; then
			result=failed detail="$1; generation $g_older runs again, but the state file could not be written: $write_err"
			no_space "$write_err"
			return
		fi
		end_journal
		snap_images=$g_images
		result=rolled_back detail="$1; generation $g_older runs again"
	else
		# the state names what is to be put back
		st_gen=$g_older st_images=$g_images st_names=$g_names st_bases=$g_bases
		record_broken "$st_hash" "$(now)"
		result=failed detail="$1; rollback failed too: generation $g_older could not be put back: $rb; $saw"
	fi
}

# start_watch: after a passed gate, a watcher of the stack for $watch
# seconds, detached from this shell (it outlives the connection) and
# holding the stack's lock on (descriptor 9): a look every 5 s; a service
# restarted by its policy, exited non-zero or unhealthy makes it put the
# generation before back (revert) and record it (state, history,
# NAME.failed for `rbuild logs`). Its own words go to STATE_DIR/NAME.watch.
start_watch() {
	[ "$watch" -gt 0 ] && gen_older "$st_gen" || return 0
	(
		trap - EXIT INT TERM
		exec </dev/null >>"$state_dir/$n.watch" 2>&1
		watch_stack
	) &
	watcher=$!
	echo "$m note $n watched on the host for ${watch}s (pid $watcher): a crash then rolls it back"
}

# watch_stack: the watcher's loop (see start_watch).
watch_stack() {
	w_end=$(($(now) + watch))
	echo "$(now) watching generation $st_gen of $n for ${watch}s"
	m="@rbuild:watch"
	while [ "$(now)" -lt "$w_end" ]; do
		sleep 5
		look "$n" || continue
		[ -n "$bad" ] || continue
		log=$state_dir/$n.log
		echo "--- the watcher: crashed after its gate:$bad" >>"$log"
		last_words "$bad"
		revert "generation $st_gen crashed after its gate, within the watch window:$bad"
		echo "$(now) $result $detail"
		add_history "$n" "$result" "$snap_images" "(watch) $detail"
		keep_failed "$result" "$detail"
		break
	done
	echo "$(now) done watching"
	: >"$state_dir/$n.lock"
}

# start_stack: up the generation the state names

# start_stack: up the generation the state names, which does not run as
# recorded (stopped by hand, a reboot without restart policies, an OOM
# kill, an earlier run cut off, a rollback that failed), no build, gated
# like a rebuild; sets result and detail.
start_stack() {
	kind=start
	journal start || :
	use_files "$compose_files" "$profiles"
	why="it was not running"
	if [ "$cut_phase" != - ]; then
		why="an earlier run was cut off (at $cut_phase)"
	elif [ "$st_last_result" = broken ]; then
		why="its last rollback had failed"
	fi
	# the names compose uses point at the recorded generation
	if [ "$cut_phase" != - ] || [ "$st_last_result" = broken ]; then
		retag "$before" "$before_names"
	fi
	# an earlier run cut off may have swapped the files back
	[ "$cut_phase" = - ] || files_swapped=1
	echo "$m step $n up"
	deadline=$(($(now) + up_timeout))
	if up_stack; then rc=0; else rc=$?; fi
	if [ "$rc" != 0 ]; then
		emit_log_tail "$n" "$log"
		record_broken "$st_failed_hash" "$st_failed_at"
		if port_taken "$log"; then
			detail="$why, and up failed: $taken"
		elif engine_trouble "$log"; then
			detail="$why, and up failed: $detail"
		else
			detail="$why, and up failed; $saw"
		fi
		return
	fi
	echo "$m step $n wait"
	if ! wait_healthy "$n" "$deadline" "$settle"; then
		record_broken "$st_failed_hash" "$st_failed_at"
		detail="$why, and once up it is $verdict"
		return
	fi
	[ "$st_last_result" != broken ] || st_last_result=failed
	[ "$st_failed_hash" != - ] || st_last_result=ok
	st_images=$snap_images st_names=$snap_names st_cgroups=$(cgroups_now) st_attempt=$attempt
	if ! save_state "$n"; then
		detail="started, but could not write the state file in $state_dir: $write_err"
		no_space "$write_err"
		return
	fi
	end_journal
	result=started detail="$why; generation $st_gen runs"
	[ "$st_gen" != - ] || detail=$why
}
