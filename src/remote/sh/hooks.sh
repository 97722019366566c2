# shellcheck shell=sh disable=SC2034,SC2154 # a part of the host script: its variables are set and read across parts (src/remote/script.rs joins them, and the joined script is checked whole)
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

# probe_url URL [TEXT]: the HTTP probe: URL answers (a status below 400,
# within 5 s), and its answer holds TEXT when given. curl or wget, whichever
# the host has.
probe_url() {
	pu_body=$state_dir/.$n.probe.tmp.$$
	if command -v curl >/dev/null 2>&1; then
		curl -fsS -m 5 -o "$pu_body" "$1"
	elif command -v wget >/dev/null 2>&1; then
		wget -q -T 5 -O "$pu_body" "$1"
	else
		echo "neither curl nor wget is on this host for the probe"
		false
	fi || {
		rm -f "$pu_body"
		return 1
	}
	if [ -n "${2:-}" ] && ! grep -q -F -e "$2" "$pu_body"; then
		echo "the answer of $1 does not hold \`$2\`"
		rm -f "$pu_body"
		return 1
	fi
	rm -f "$pu_body"
}

# probe_gate DEADLINE: the stack's probe ($probe), once its containers
# passed the gate: run in the stack's directory once a second until it
# succeeds or DEADLINE passes; its output into the attempt's log. Sets
# verdict when it fails.
probe_gate() {
	[ -n "${probe:-}" ] || return 0
	echo "$m step $n probe"
	while :; do
		if (cd "$dir" && eval "$probe") >>"$log" 2>&1 </dev/null; then
			return 0
		fi
		if [ "$(now)" -ge "$1" ]; then
			verdict="its probe did not pass within the up timeout: $(tail -n 1 "$log" 2>/dev/null)"
			return 1
		fi
		sleep 1
	done
}

# hook_failed WHICH: the words for a hook that failed (hook_rc).
hook_failed() {
	if [ "$hook_rc" = 124 ]; then
		echo "the $1 hook took longer than ${build_timeout}s (build_timeout) and was stopped"
	else
		echo "the $1 hook failed (exit status $hook_rc)"
	fi
}

