# shellcheck shell=sh disable=SC2034,SC2154 # a part of the host script: its variables are set and read across parts (src/remote/script.rs joins them, and the joined script is checked whole)
# The health gate: what the stack's containers are doing, and whether they
# come up and stay up.

# look PROJECT: one look at the stack's service containers. Sets bad (what
# is wrong), pending (what is not there yet), marks (each container's id,
# start time and restart count: what must not change while it settles),
# and snap_images (what runs). A one-shot service (restart "no" or "on-failure") that exited 0 is
# done, not wrong; one that exits non-zero is wrong.
look() {
	bad='' pending='' marks='' snap_images='' snap_names='' pids=''
	# look_only: these containers only (zero_downtime: the new ones)
	if [ -n "${look_only:-}" ]; then
		ids=$look_only
	else
		ids=$(stack_containers "$1") || { bad=" (could not list the containers)"; return 1; }
	fi
	[ -n "$ids" ] || return 0
	# shellcheck disable=SC2086 # split on purpose: container ids (hex words)
	states=$(dk inspect --format '{{index .Config.Labels "com.docker.compose.service"}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}} {{.RestartCount}} {{.State.ExitCode}} {{.Image}} {{.ID}} {{.State.StartedAt}} {{.State.Pid}} {{.Config.Image}} {{.HostConfig.RestartPolicy.Name}}' $ids) || {
		bad=" (could not inspect the containers)"
		return 1
	}
	# (the policy last: it may be empty; `.ID`, not `.Id`, which would make
	# the CLI fall back to raw JSON, where a missing Health breaks the
	# template)
	while read -r svc status health restarts code img id started pid ref policy; do
		case ",$snap_images," in *",$svc=$img,"*) ;; *)
			snap_images="${snap_images:+$snap_images,}$svc=$img"
			snap_names="${snap_names:+$snap_names,}$svc=$ref"
			;;
		esac
		marks="$marks $svc:$id:$started:$restarts"
		case $status/$health in
		running/*)
			# a one-shot job (restart "no" or on-failure in its compose
			# file) is waited for: it must exit 0 within the up timeout
			case ${one_shots:-} in *":$svc:"*)
				pending="$pending $svc(one-shot, still running)"
				continue
				;;
			esac
			;;
		esac
		case $status/$health in
		running/none | running/healthy)
			pids="$pids $svc:$pid"
			[ "$restarts" = 0 ] || bad="$bad $svc(restarting)" ;;
		running/starting) pending="$pending $svc(starting)" ;;
		running/unhealthy) bad="$bad $svc(unhealthy)" ;;
		exited/*)
			if [ "$code" != 0 ]; then
				bad="$bad $svc(exited:$code)"
			else
				case $policy in
				'' | no | on-failure) ;;
				# it will be started again: a service that stops
				*) pending="$pending $svc(exited:0)" ;;
				esac
			fi
			;;
		restarting/*) bad="$bad $svc(restarting)" ;;
		created/*) pending="$pending $svc(created)" ;;
		*) bad="$bad $svc($status)" ;;
		esac
	done <<EOF
$states
EOF
}

# cgroup_dir PID: the cgroup directory of a process (one that exists as
# long as its container runs), from /proc/PID/cgroup: cgroup v1's pids (or
# memory) hierarchy, else v2's.
cgroup_dir() {
	[ -r "/proc/$1/cgroup" ] || return 1
	v1='' v2=''
	while IFS= read -r line; do
		case $line in
		0::/?*) v2=/sys/fs/cgroup${line#0::} ;;
		*:pids:/?*) v1=/sys/fs/cgroup/pids${line#*:pids:} ;;
		*:memory:/?*) [ -n "$v1" ] || v1=/sys/fs/cgroup/memory${line#*:memory:} ;;
		esac
	done <"/proc/$1/cgroup"
	for d in "$v1" "$v2"; do
		if [ -n "$d" ] && [ -d "$d" ]; then
			echo "$d"
			return 0
		fi
	done
	return 1
}

# cgroups_now: "svc:PID:DIR,..." for the running service containers of the
# last look, so that a check can tell whether they still run; - if that
# cannot be told here.
cgroups_now() {
	cgs=''
	for sp in $pids; do
		cg=$(cgroup_dir "${sp#*:}") || { cgs=''; break; }
		cgs="${cgs:+$cgs,}${sp%%:*}:${sp#*:}:$cg"
	done
	echo "${cgs:--}"
}

# last_words VERDICT: the failing services' own words, into the attempt's
# log: the last 20 lines of each one's container log and its health probe's
# last outputs, for the row's tail, `rbuild logs` and the mail. VERDICT is
# the gate's (` app(unhealthy) migrate(exited:1)`).
last_words() {
	for lw_word in $1; do
		case $lw_word in *\(*\)) ;; *) continue ;; esac
		lw_svc=${lw_word%%(*}
		lw_id=$(service_containers "$lw_svc" -a 2>/dev/null | head -n 1)
		[ -n "$lw_id" ] || continue
		{
			echo "--- $lw_svc: the last lines of its container's log"
			dk logs --tail 20 "$lw_id" 2>&1 | tail -n 20
			lw_probe=$(dk inspect --format '{{if .State.Health}}{{range .State.Health.Log}}exit {{.ExitCode}}: {{.Output}}{{end}}{{end}}' "$lw_id" 2>/dev/null | tail -n 4)
			if [ -n "$lw_probe" ]; then
				echo "--- $lw_svc: its health probe's last output"
				echo "$lw_probe"
			fi
		} >>"$log" 2>&1
	done
}

# changed BEFORE AFTER: the services whose containers are not the same ones,
# started once, from the marks BEFORE to AFTER.
changed() {
	out=''
	for mk in $1; do
		case " $2 " in *" $mk "*) ;; *) out="$out ${mk%%:*}(restarted)" ;; esac
	done
	echo "$out"
}

# wait_healthy PROJECT DEADLINE SETTLE: within DEADLINE every service
# container runs, healthy where it has a healthcheck (a one-shot one has
# exited 0), and then stays so for SETTLE seconds (no longer than what is
# left until DEADLINE), the same containers, not restarted. Sets verdict
# (what is wrong) or, on success, snap_images (what runs now).
wait_healthy() {
	settled_at=
	while :; do
		if ! look "$1" || [ -n "$bad" ]; then
			if [ -n "$settled_at" ]; then
				verdict="not healthy within ${3}s of coming up:$bad"
			else
				verdict="not healthy:$bad"
			fi
			return 1
		fi
		: "${snap_images:=-}" "${snap_names:=-}"
		t=$(now)
		if [ -n "$pending" ]; then
			if [ -n "$settled_at" ]; then
				verdict="not steady within ${3}s of coming up:$pending"
				return 1
			fi
			if [ "$t" -ge "$2" ]; then
				verdict="not healthy within the up timeout:$pending"
				return 1
			fi
		elif [ -z "$settled_at" ]; then
			# all up: now it must stay so
			settled_at=$t base=$marks
			window=$3
			[ "$((t + window))" -le "$2" ] || window=$(($2 - t))
			[ "$window" -ge 0 ] || window=0
		else
			what=$(changed "$base" "$marks")
			if [ -n "$what" ]; then
				verdict="not steady within ${3}s of coming up:$what"
				return 1
			fi
		fi
		if [ -n "$settled_at" ] && [ "$t" -ge "$((settled_at + window))" ]; then
			return 0
		fi
		sleep 1
	done
}

