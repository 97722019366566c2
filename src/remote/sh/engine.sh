# shellcheck shell=sh disable=SC2034,SC2154 # a part of the host script: its variables are set and read across parts (src/remote/script.rs joins them, and the joined script is checked whole)
# Docker and compose on the host: which compose, the engine's answers,
# the stack's containers and images. Every docker command is bounded.

# compose_plugin: the Compose v2 plugin is in one of the places the docker
# CLI looks (a file test: starting `docker compose version` costs about
# 0.1 s of CPU).
compose_plugin() {
	for d in "${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins" /usr/local/lib/docker/cli-plugins \
		/usr/local/libexec/docker/cli-plugins /usr/lib/docker/cli-plugins /usr/libexec/docker/cli-plugins; do
		[ -x "$d/docker-compose" ] && return 0
	done
	return 1
}

# Compose flavour: v2 plugin where present (found, or elsewhere but
# working), else v1.
pick_compose() {
	case $1 in
	v2) flavour=v2 ;;
	v1) flavour=v1 ;;
	*)
		if compose_plugin || bounded 30 docker compose version >/dev/null 2>&1; then
			flavour=v2
		elif command -v docker-compose >/dev/null 2>&1; then
			flavour=v1
		else
			return 1
		fi
		;;
	esac
}

# need_docker PREF: the docker CLI and a compose flavour (see pick_compose),
# or a fatal naming which is missing.
need_docker() {
	if lacks "$1"; then
		[ -z "${payload:-}" ] || rm -f "$payload"
		echo "$m fatal $lack"
		exit 3
	fi
}

# lacks PREF: whether the docker CLI or a compose flavour (see
# pick_compose) is missing; `lack` says which, as a fatal says it.
lacks() {
	lack=
	if ! command -v docker >/dev/null 2>&1; then
		lack="cause=no_docker \`docker\` is not in the PATH of this ssh session ($PATH)"
	elif ! pick_compose "$1"; then
		lack="cause=no_compose neither \`docker compose\` nor \`docker-compose\` works on this host"
	fi
	[ -n "$lack" ]
}

# caps: whether this host could rebuild at all, for a dry run's plan: `ok`,
# or the cause and words of what a rebuild would fail on (as an apply's
# fatal says them). The engine is judged by its socket, not asked.
caps() {
	if lacks auto; then
		echo "$lack"
		return
	fi
	case ${DOCKER_HOST:-unix:///var/run/docker.sock} in
	unix://*)
		sock=${DOCKER_HOST:-unix:///var/run/docker.sock}
		sock=${sock#unix://}
		if [ ! -S "$sock" ]; then
			echo "cause=engine the Docker engine does not answer: its socket $sock is not there"
			return
		elif [ ! -r "$sock" ] || [ ! -w "$sock" ]; then
			echo "cause=engine_denied this user may not use the Docker engine: $sock is not theirs to read and write"
			return
		fi
		;;
	esac
	echo ok
}

# Seconds any one look at the engine (ps, inspect, tag, image rm) may take:
# a wedged engine must not hold the stack's lock forever.
step_timeout=120

# dk ARGS...: the docker CLI, bounded.
dk() { bounded "$step_timeout" docker "$@"; }

# use_files FILES PROFILES: compose takes the stack's compose files (FILES:
# their names in $dir, a line each, later ones overriding earlier ones) and
# its profiles (comma-separated, - for none) from the environment, as both
# flavours read it.
use_files() {
	COMPOSE_PATH_SEPARATOR='
'
	COMPOSE_FILE=
	rest=$1
	while [ -n "$rest" ]; do
		f=${rest%%"$COMPOSE_PATH_SEPARATOR"*}
		if [ "$f" = "$rest" ]; then rest=; else rest=${rest#*"$COMPOSE_PATH_SEPARATOR"}; fi
		COMPOSE_FILE="${COMPOSE_FILE:+$COMPOSE_FILE$COMPOSE_PATH_SEPARATOR}$dir/$f"
	done
	export COMPOSE_FILE COMPOSE_PATH_SEPARATOR
	if [ "$2" = - ]; then
		unset COMPOSE_PROFILES
	else
		COMPOSE_PROFILES=$2
		export COMPOSE_PROFILES
	fi
}

# dc ARGS...: the picked compose flavour.
dc() {
	if [ "$flavour" = v2 ]; then docker compose "$@"; else docker-compose "$@"; fi
}

# The stack's service containers (not one-off `run` containers).
stack_containers() {
	dk ps -a -q --filter "label=com.docker.compose.project=$1" --filter label=com.docker.compose.oneoff=False
}

# snapshot PROJECT: one look at what the stack runs: its running service
# containers, and beside them its one-shot ones (restart "no" or
# "on-failure") that exited 0, a migration's image being as much a part of
# the generation as the app's. Stopped ones, such as a failed first build's
# kept for their logs, are no generation to go back to. Sets snap_images
# ("service=image-id,...") and snap_names ("service=image-name,..."), or -.
snapshot() {
	snap_images='' snap_names='' live=0
	ids=$(stack_containers "$1") || return 1
	if [ -n "$ids" ]; then
		# shellcheck disable=SC2086 # split on purpose: container ids (hex words)
		lines=$(dk inspect --format '{{index .Config.Labels "com.docker.compose.service"}} {{.Image}} {{.Config.Image}} {{.State.Status}} {{.State.ExitCode}} {{.HostConfig.RestartPolicy.Name}}' $ids) || return 1
		# (the policy last: it may be empty)
		while read -r svc img ref status code policy; do
			case $status in
			exited)
				[ "$code" = 0 ] || continue
				case $policy in '' | no | on-failure) ;; *) continue ;; esac
				;;
			created | dead | removing) continue ;;
			*) live=1 ;;
			esac
			case ",$snap_images," in *",$svc=$img,"*) continue ;; esac
			snap_images="${snap_images:+$snap_images,}$svc=$img"
			snap_names="${snap_names:+$snap_names,}$svc=$ref"
		done <<EOF
$lines
EOF
	fi
	# one-shots that are done, with nothing running beside them: nothing runs
	[ "$live" = 1 ] || snap_images='' snap_names=''
	: "${snap_images:=-}" "${snap_names:=-}"
}

# port_taken LOG: whether `up` failed for a port that something else holds
# on the host; sets cause and taken (the engine's words).
port_taken() {
	taken=$(grep -m 1 -i -e 'port is already allocated' -e 'address already in use' "$1" 2>/dev/null) || return 1
	cause=port_taken
	taken="a port it publishes is taken on the host: ${taken##*Error response from daemon: }"
}

# engine_trouble LOG: after a docker command failed with its output in LOG,
# whether the engine itself is the trouble (not answering, or not this
# user's to use); sets cause and detail if so.
engine_trouble() {
	line=$(grep -m 1 -i -e 'cannot connect to the docker daemon' -e 'permission denied while trying to connect' "$1" 2>/dev/null) || return 1
	case $line in
	*[Pp]ermission\ denied*) cause=engine_denied detail="this user may not use the Docker engine: $line" ;;
	*) cause=engine detail="the Docker engine does not answer: $line" ;;
	esac
}

# run_logged LOG CMD...: run a docker command, its output appended to LOG.
run_logged() {
	log=$1
	shift
	"$@" >>"$log" 2>&1 </dev/null
}

# dc_timeout SECS ARGS...: compose, bounded where `timeout` exists.
dc_timeout() {
	secs=$1
	shift
	if [ "$flavour" = v2 ]; then
		bounded "$secs" docker compose "$@"
	else
		bounded "$secs" docker-compose "$@"
	fi
}

# remove_images LIST KEEP: remove each image ID of "svc=id,..." LIST that is
# not in KEEP, never forced: an image that any container uses stays.
remove_images() {
	[ "$1" != - ] || return 0
	for pair in $(echo "$1" | tr ',' ' '); do
		id=${pair#*=}
		case ",$2," in *"=$id,"*) continue ;; esac
		if dk image rm "$id" >/dev/null 2>&1; then
			echo "$m note $n removed image $id"
		elif dk image inspect "$id" >/dev/null 2>&1; then
			# in use, or the engine said no: tried again next time
			case ",$leftover," in *",$pair,"*) ;; *) leftover="${leftover:+$leftover,}$pair" ;; esac
		fi
	done
}

# retag LIST NAMES: tag each "svc=id" of LIST with the name compose uses
# for svc (from NAMES, "svc=name"): after a failed attempt, the names point
# at what runs, not at what was built and not tested.
retag() {
	[ "$1" != - ] && [ "$2" != - ] || return 0
	for pair in $(echo "$2" | tr ',' ' '); do
		svc=${pair%%=*}
		ref=${pair#*=}
		id=$(echo ",$1," | sed -n "s/.*,$svc=\([^,]*\),.*/\1/p")
		[ -n "$id" ] && dk tag "$id" "$ref" >>"$log" 2>&1
	done
}

# drop_untested KEEP: remove the images built for this stack that are not
# in KEEP ("svc=id,..." lists, comma-joined): a failed attempt leaves none
# behind. Never forced: an image a container uses stays.
drop_untested() {
	for id in $(dk images -q --no-trunc --filter "label=com.docker.compose.project=$n" 2>/dev/null); do
		case ",$1," in *"=$id,"*) continue ;; esac
		if dk image rm "$id" >/dev/null 2>&1; then
			echo "$m note $n removed image $id"
		fi
	done
}

# up_stack: `up -d --remove-orphans` of the stack; then, when its files
# were swapped ($files_swapped), the services that mount a path of the
# stack's directory whose content changed ($remount_services, see
# keep_mounted; every mounting service when that is not known) and whose
# containers that `up` left are recreated: compose recreates a container
# only when its image or config changed, and one it leaves keeps what it
# mounted, the old copy. The status of what failed.
up_stack() {
	us_before=
	if [ "${files_swapped:-0}" = 1 ] && [ "${remount_services-}" = - ] && [ -n "${mount_list:-}" ]; then
		# not known (a run cut off): every service that mounts something
		remount_services=
		rest=$mount_list
		while [ -n "$rest" ]; do
			us_item=${rest%%+*}
			if [ "$us_item" = "$rest" ]; then rest=; else rest=${rest#*+}; fi
			case " $remount_services " in *" ${us_item%%@*} "*) ;; *) remount_services="$remount_services ${us_item%%@*}" ;; esac
		done
	fi
	[ "${remount_services-}" != - ] || remount_services=
	if [ -n "$remount_services" ] && [ "${files_swapped:-0}" = 1 ]; then
		us_before=$(stack_containers "$n" 2>/dev/null | tr '\n' ' ') || us_before=
	fi
	run_logged "$log" dc_timeout "$up_timeout" -p "$n" up -d --remove-orphans || return
	[ -n "$us_before" ] || return 0
	us_stale=
	for us_svc in $remount_services; do
		for us_id in $(service_containers "$us_svc" 2>/dev/null); do
			case " $us_before " in *" $us_id "*)
				us_stale="$us_stale $us_svc"
				break
				;;
			esac
		done
	done
	[ -n "$us_stale" ] || return 0
	echo "$m note $n recreated$us_stale: they mount the stack's directory, whose files were replaced"
	# shellcheck disable=SC2086 # split on purpose: service names (plain words)
	run_logged "$log" dc_timeout "$up_timeout" -p "$n" up -d --no-deps --force-recreate $us_stale
}

# changed_services FAILED BEFORE: the services of the "svc=id,..." list
# FAILED whose image is not theirs in BEFORE (what a rollback must stop and
# bring back), space-separated; fails when FAILED is not known.
changed_services() {
	cs=
	[ "$1" != - ] && [ -n "$1" ] || return 1
	rest=$1
	while [ -n "$rest" ]; do
		next_item
		case ",$2," in *",$item,"*) continue ;; esac
		cs="$cs ${item%%=*}"
	done
	echo "$cs"
}

# stop_changed FAILED BEFORE: stop the services of the failed generation
# whose image is not theirs in BEFORE (see changed_services); every service
# when FAILED is not known.
stop_changed() {
	if sc_stop=$(changed_services "$1" "$2"); then
		# shellcheck disable=SC2086 # split on purpose: service names (plain words)
		[ -z "$sc_stop" ] || run_logged "$log" dc_timeout "$up_timeout" -p "$n" stop $sc_stop
	else
		run_logged "$log" dc_timeout "$up_timeout" -p "$n" stop
	fi
}

# service_containers SVC [-a]: the ids of the stack's containers of
# service SVC (running ones; all with -a), a line each.
service_containers() {
	dk ps -q ${2:+"$2"} --filter "label=com.docker.compose.project=$n" \
		--filter "label=com.docker.compose.service=$1" --filter label=com.docker.compose.oneoff=False
}

# no_space TEXT: where TEXT says the disk is full, say so (cause no_space).
no_space() {
	case $1 in *"No space left"* | *"no space left"* | *" 100% "*)
		cause=no_space
		detail="no space left on the device: $detail"
		;;
	esac
}

