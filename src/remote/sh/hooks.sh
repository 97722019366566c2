# Hooks: the stack's `before` and `after` commands.

# run_hook WHICH CMD: the stack's `before` or `after` hook, `sh -c CMD` in
# the stack's directory, bounded by the build timeout, its output into the
# attempt's log. Compose's variables point at the stack (a hook may run
# `docker compose run --rm app migrate`). Sets hook_rc.
run_hook() {
	echo "$m step $n $1"
	echo "--- $1 hook: $2" >>"$log"
	if (cd "$dir" && COMPOSE_PROJECT_NAME=$n RBUILD_STACK=$n RBUILD_HASH=$hash \
		run_logged "$log" bounded "$build_timeout" sh -c "$2"); then
		hook_rc=0
	else
		hook_rc=$?
	fi
	trim_log
	[ "$hook_rc" = 0 ]
}

# hook_failed WHICH: the words for a hook that failed (hook_rc).
hook_failed() {
	if [ "$hook_rc" = 124 ]; then
		echo "the $1 hook took longer than ${build_timeout}s (build_timeout) and was stopped"
	else
		echo "the $1 hook failed (exit status $hook_rc)"
	fi
}

