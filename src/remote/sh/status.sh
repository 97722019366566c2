# shellcheck shell=sh disable=SC2034,SC2154 # a part of the host script: its variables are set and read across parts (src/remote/script.rs joins them, and the joined script is checked whole)
# The operator's read-only commands: history, status, logs (they read the
# failed-attempt file write.sh keeps).

# status_services NAME: a `service` line for each service container of
# stack NAME: from the host's one `docker ps` ($ps_out) where it answered,
# else from the cgroup directories its state file records (health `-`).
status_services() {
	if [ "$ps_ok" = 1 ]; then
		while read -r p svc state status; do
			[ "$p" = "$1" ] || continue
			case $status in
			*"(healthy)"*) health=healthy ;;
			*"(unhealthy)"*) health=unhealthy ;;
			*"(health: starting)"*) health=starting ;;
			*) health=none ;;
			esac
			case $state in exited)
				code=${status#*(} code=${code%%)*}
				state=exited:$code
				;;
			esac
			echo "$m service $1 $svc $state $health"
		done <<EOF
$ps_out
EOF
		return 0
	fi
	read_state "$1"
	rest=$st_cgroups
	while [ "$rest" != - ] && [ -n "$rest" ]; do
		next_item
		cdir=${item#*:}
		case $cdir in [0-9]*:*) cdir=${cdir#*:} ;; esac
		if [ -d "$cdir" ]; then state=running; else state=gone; fi
		echo "$m service $1 ${item%%:*} $state -"
	done
}

# do_status (NAME HASH PERIOD)...: what the check reads, then per stack its
# service containers (one `docker ps` for the whole host, bounded) and its
# last failed attempt (the first line of NAME.failed, as a `history` line).
do_status() {
	do_check "$@"
	printf '%s\n' "$out"
	ps_ok=0 ps_out=
	if command -v docker >/dev/null 2>&1 &&
		ps_out=$(bounded 20 docker ps -a --filter label=com.docker.compose.project \
			--filter label=com.docker.compose.oneoff=False \
			--format '{{.Label "com.docker.compose.project"}} {{.Label "com.docker.compose.service"}} {{.State}} {{.Status}}' 2>/dev/null); then
		ps_ok=1
	fi
	while [ $# -ge 3 ]; do
		n=$1
		shift 3
		status_services "$n"
		read_state "$n"
		print_generations "$n"
		f=$state_dir/$n.failed
		if [ -f "$f" ] && IFS= read -r line <"$f"; then echo "$m history $n $line"; fi
	done
	echo "$m end"
}

# do_logs NAME: the last failed attempt of NAME (its NAME.failed): its
# first line as a `history` line, the output as `log` lines; then `end`.
do_logs() {
	echo "$m hello proto=$rbuild_proto now=$(now)"
	f=$state_dir/$1.failed
	if [ -f "$f" ]; then
		first=1
		while IFS= read -r line || [ -n "$line" ]; do
			if [ "$first" = 1 ]; then
				echo "$m history $1 $line"
				first=0
			else
				echo "$m log $1 $line"
			fi
		done <"$f"
	fi
	echo "$m end"
}

# print_generations NAME: a `generation` line for each kept generation of
# NAME (read_state read it), `running` for the one the state names, with
# what it was built from (`bases=`, `-` in an older rbuild's line).
print_generations() {
	while read -r gg gb gh gi _ gx; do
		[ -n "$gg" ] || continue
		if [ "$gg" = "$st_gen" ]; then pg=running; else pg=kept; fi
		echo "$m generation $1 $gg $pg $gb $gh $gi bases=${gx:--}"
	done <<EOF2
$st_gens
EOF2
}

# do_history NAME: its kept generations, then its recorded attempts.
do_history() {
	echo "$m hello proto=$rbuild_proto now=$(now)"
	n=$1
	read_state "$1"
	print_generations "$1"
	h=$state_dir/$1.history
	[ -f "$h" ] || return 0
	while IFS= read -r line; do
		echo "$m history $1 $line"
	done <"$h"
}
