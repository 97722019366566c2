# shellcheck shell=sh disable=SC2034,SC2154 # a part of the host script: its variables are set and read across parts (src/remote/script.rs joins them, and the joined script is checked whole)
# zero_downtime: a service replaced beside its old containers.

# replace_beside: zero_downtime, as docker-rollout does it for one
# service: each service of $zd_services (chosen by the controller: no fixed
# host port, no container_name) that runs is scaled to twice its running
# containers with `--no-recreate`, so the new ones (the new image) start
# beside the old ones; the new ones must pass the gate (running, healthy
# where they have a healthcheck, through the settle window); then the old
# ones are stopped and removed. A new one that fails its gate, or an `up`
# that fails, fails it: the new containers are removed, the old ones never
# stopped (verdict and failed_gen set). The `up` that follows brings up
# the rest of the stack; the replaced services' new containers are what it
# wants already.
replace_beside() {
	zd_rest=$zd_services
	while [ -n "$zd_rest" ]; do
		zd_svc=${zd_rest%%:*}
		if [ "$zd_svc" = "$zd_rest" ]; then zd_rest=; else zd_rest=${zd_rest#*:}; fi
		zd_running=$(service_containers "$zd_svc") || zd_running=
		[ -n "$zd_running" ] || continue
		zd_all=$(service_containers "$zd_svc" -a) || zd_all=$zd_running
		zd_count=0
		for _ in $zd_running; do zd_count=$((zd_count + 1)); done
		echo "$m step $n replace"
		zd_deadline=$(($(now) + up_timeout))
		if run_logged "$log" dc_timeout "$up_timeout" -p "$n" up -d --no-deps --no-recreate \
			--scale "$zd_svc=$((zd_count * 2))" "$zd_svc"; then rc=0; else rc=$?; fi
		zd_fresh=''
		for id in $(service_containers "$zd_svc" -a 2>>"$log"); do
			case "
$zd_all
" in *"
$id
"*) ;; *) zd_fresh="$zd_fresh $id" ;; esac
		done
		if [ "$rc" != 0 ]; then
			emit_log_tail "$n" "$log"
			remove_fresh
			if [ "$rc" = 124 ]; then
				verdict="up of $zd_svc beside its old containers took longer than ${up_timeout}s (up_timeout)"
			else
				verdict="up of $zd_svc beside its old containers failed"
			fi
			return 1
		fi
		if [ -z "$zd_fresh" ]; then
			verdict="up of $zd_svc beside its old containers started no new one"
			return 1
		fi
		look_only=$zd_fresh
		if ! wait_healthy "$n" "$zd_deadline" "$settle"; then
			look_only=
			failed_gen=$snap_images
			remove_fresh
			verdict="$zd_svc beside its old containers: $verdict; the old ones kept running"
			return 1
		fi
		look_only=
		# shellcheck disable=SC2086 # split on purpose: container ids (hex words)
		if ! dk stop $zd_running >>"$log" 2>&1 || ! dk rm $zd_running >>"$log" 2>&1; then
			echo "$m note $n $zd_svc: its old containers could not all be removed"
		fi
		echo "$m note $n $zd_svc replaced beside its old containers"
	done
	return 0
}

# remove_fresh: the new containers of a failed replace_beside ($zd_fresh) go.
remove_fresh() {
	# shellcheck disable=SC2086 # split on purpose: container ids (hex words)
	[ -z "$zd_fresh" ] || dk rm -f $zd_fresh >>"$log" 2>&1 || :
}

