# rbuild remote side. Shipped by the controller and run as
#   sh -c "$SCRIPT" rbuild PROTO TOKEN COMMAND STATE_DIR [ARGS...]
# with every argument quoted by the controller, except the check, which runs
# in the remote user's login shell itself after `set -- PROTO TOKEN check ...` (so
# the part before the cut is POSIX sh that bash, zsh's sh emulation, mksh and
# busybox run alike). POSIX sh plus `date +%s`, `tar`, `mkdir`, `mv`; docker
# only where work is due.
#
# Every line it prints, every file it keeps on a host, and the commands with
# their arguments are listed in PROTOCOL.md beside this file; src/remote/
# holds their typed counterparts on the controller. Lines that carry
# "@rbuild:TOKEN " are events; anything else is noise the controller ignores.
#
# The check is shipped alone: the script up to the line `#@rbuild-cut`, a
# quarter of the whole.
set -u
umask 077

# The protocol this script speaks (src/remote/mod.rs has the same number;
# a unit test keeps them equal).
rbuild_proto=3
# The state file version this script writes and reads.
state_version=1
# Seconds a recorded time may lie in the host's future and still count as
# now (src/decide.rs: CLOCK_SLACK); beyond, it is not believed.
clock_slack=300

proto=$1
# Every line for the controller starts with "@rbuild:TOKEN ", TOKEN being
# the run's random word: a line of the user's rc files (or of a file they
# print) is never taken for one.
m="@rbuild:$2"
cmd=$3
state_dir=$4
shift 4

if [ "$proto" != "$rbuild_proto" ]; then
	echo "$m fatal protocol $proto not supported (remote speaks $rbuild_proto)"
	exit 3
fi

# Root or not, without a fork (the check path is hot: every fork is a cost
# on every host of every run): root owns `/`.
root=0
if [ -O / ] 2>/dev/null; then root=1; fi

if [ -z "$state_dir" ]; then
	if [ "$root" = 1 ]; then
		state_dir=/var/lib/rbuild
	else
		state_dir=${XDG_STATE_HOME:-$HOME/.local/state}/rbuild
	fi
fi

now() { date +%s; }

# is_num VALUE: a decimal the shell's arithmetic takes (no sign, no leading
# zero, which would read as octal, at most 17 digits).
is_num() {
	case $1 in '' | *[!0-9]* | 0?* | ??????????????????*) return 1 ;; esac
}

# next_item: the first item of the comma-separated list in `rest` into
# `item`, and `rest` left with the others (no fork: the check's loops use
# it). The caller loops while `rest` is not empty.
next_item() {
	item=${rest%%,*}
	if [ "$item" = "$rest" ]; then rest=; else rest=${rest#*,}; fi
}

# now_nofork: the time in `now` without a fork; the check runs on every
# host on every run. The shell reads a file a byte at a time, and /proc/stat
# (boot time) is a kilobyte, so an apply leaves STATE_DIR/.clock, "BOOT_ID
# EPOCH UPTIME", and while the host has not rebooted the time is that epoch
# plus the uptime since: three short reads. Else boot time plus uptime, and
# `date` where there is no /proc.
now_nofork() {
	now= up= boot=-
	if [ -r /proc/uptime ]; then
		read -r up _ </proc/uptime
		up=${up%%.*}
		[ -f "$state_dir/.clock" ] && read -r boot </proc/sys/kernel/random/boot_id
	fi
	if [ "$boot" != - ]; then
		read -r c_boot c_epoch c_up _ <"$state_dir/.clock" || :
		if [ "$c_boot" = "$boot" ] && is_num "${c_epoch-}" && is_num "${c_up-}" && [ "$up" -ge "$c_up" ]; then
			now=$((c_epoch + up - c_up))
		fi
	fi
	if [ -z "$now" ] && [ -n "$up" ] && [ -r /proc/stat ]; then
		while read -r k v; do
			if [ "$k" = btime ]; then now=$((v + up)) && break; fi
		done </proc/stat
	fi
	[ -n "$now" ] || now=$(date +%s)
}

# read_state NAME: load NAME.state into st_* variables (builtins only).
# st_version is the file's `version=` (- if it has none): a version other
# than $state_version is not this script's to interpret.
read_state() {
	st_exists=0 st_version=- st_hash=- st_built_at=0 st_last_result=- st_failed_hash=- st_failed_at=0
	st_images=- st_names=- st_prev_images=- st_cgroups=- st_leftover=- st_compose=-
	f=$state_dir/$1.state
	if [ ! -f "$f" ]; then
		# something that is not a file (a directory, a dangling link) is
		# not "never built": it is reported, and left alone
		if [ -e "$f" ] || [ -L "$f" ]; then st_exists=bad; fi
		return 0
	fi
	st_exists=1
	while IFS='=' read -r k v; do
		case $k in
		version) st_version=$v ;;
		hash) st_hash=$v ;;
		built_at) st_built_at=$v ;;
		last_result) st_last_result=$v ;;
		failed_hash) st_failed_hash=$v ;;
		failed_at) st_failed_at=$v ;;
		images) st_images=$v ;;
		names) st_names=$v ;;
		cgroups) st_cgroups=$v ;;
		leftover) st_leftover=$v ;;
		prev_images) st_prev_images=$v ;;
		compose) st_compose=$v ;;

		esac
	done <"$f"
}

# lock_holder NAME: print the pid holding NAME's lock if it is alive.
lock_holder() {
	l=$state_dir/$1.lock
	[ -d "$l" ] || return 1
	pid=- boot=-
	if [ -f "$l/owner" ]; then
		read -r pid boot <"$l/owner"
	elif [ -n "$(find "$l" -prune -mmin +1 2>/dev/null)" ]; then
		return 1 # no owner a minute after it was made: its maker died at once
	fi
	if [ "$boot" != - ] && [ -r /proc/sys/kernel/random/boot_id ]; then
		read -r cur </proc/sys/kernel/random/boot_id
		[ "$cur" = "$boot" ] || return 1
	fi
	case $pid in '' | - | *[!0-9]*) echo unknown; return 0 ;; esac
	if [ -d /proc ]; then
		[ -d "/proc/$pid" ] || return 1
	else
		kill -0 "$pid" 2>/dev/null || return 1
	fi
	echo "$pid"
}

# do_check (NAME HASH PERIOD)...: each stack's state, as lines in `out` (the
# check prints them in one write: one packet to the controller). Sets may_be_due
# when a stack's recorded hash is not HASH or its build is PERIOD seconds
# old: the controller decides, this only lets a host with nothing to do go
# without waiting for its verdict.
do_check() {
	now_nofork
	out="$m hello proto=$rbuild_proto now=$now"
	may_be_due=0
	while [ $# -ge 3 ]; do
		n=$1 want=$2 period=$3
		shift 3
		read_state "$n"
		holder=-
		if [ -d "$state_dir/$n.lock" ]; then holder=$(lock_holder "$n") || holder=-; fi
		# whether what the last rebuild left running still runs: each of its
		# service containers' cgroup directory is still there (no docker CLI,
		# no fork: a test of a directory)
		run=-
		rest=$st_cgroups
		[ "$rest" = - ] || run=1
		while [ "$rest" != - ] && [ -n "$rest" ]; do
			next_item
			[ -d "${item#*:}" ] || run=0
		done
		[ "$run" != 0 ] || may_be_due=1
		out="$out
$m state $n exists=$st_exists version=$st_version hash=$st_hash built_at=$st_built_at last_result=$st_last_result failed_hash=$st_failed_hash failed_at=$st_failed_at locked=$holder running=$run"
		if is_num "$st_built_at"; then
			age=$((now - st_built_at))
			# a build time in the future is no time: due
			if [ "$age" -lt "-$clock_slack" ]; then age=$period; elif [ "$age" -lt 0 ]; then age=0; fi
			[ "$st_hash" = "$want" ] && [ "$age" -lt "$period" ] && [ "$st_last_result" != broken ] || may_be_due=1
		else
			may_be_due=1
		fi
	done
}

# The check ends here, and so does the script it ships (the controller cuts
# it at the next line): everything below is for commands that change things.
# `check STATE_DIR hold|nohold (NAME HASH PERIOD)...`: with `hold`, when a
# stack may be due, `end hold` closes the output and the check waits for its
# stdin to close, so that an ssh master running it as its own session stays
# up while the controller decides whether an apply follows over it. A dry
# run's check (`plan`) is sent the whole script: see do_plan.
if [ "$cmd" = check ] && [ "$1" != plan ]; then
	mode=$1
	shift
	do_check "$@"
	if [ "$mode" = hold ] && [ "$may_be_due" = 1 ]; then
		printf '%s\n%s end hold\n' "$out" "$m"
		# `cat`, not `read`: a TMOUT in the user's rc files would end a
		# `read` in bash early (a fork only where something may be due)
		cat >/dev/null || :
	else
		printf '%s\n%s end\n' "$out" "$m"
	fi
	exit 0
fi
#@rbuild-cut

# save_clock EPOCH: leave STATE_DIR/.clock for now_nofork (see there), EPOCH
# being the time now.
save_clock() {
	[ -r /proc/uptime ] && [ -r /proc/sys/kernel/random/boot_id ] || return 0
	read -r up _ </proc/uptime
	read -r boot </proc/sys/kernel/random/boot_id
		echo "$boot $1 ${up%%.*}" >"$state_dir/.clock.$$" &&
		mv -f "$state_dir/.clock.$$" "$state_dir/.clock" || rm -f "$state_dir/.clock.$$"
}

held_locks=
payload=
release_locks() {
	for n in $held_locks; do rm -rf "$state_dir/$n.lock"; done
	held_locks=
	# and the payload, on every way out
	[ -z "$payload" ] || rm -f "$payload"
}
trap 'release_locks' EXIT
trap 'release_locks; exit 130' INT
trap 'release_locks; exit 143' TERM
# A controller that dies (or a connection that drops) closes our stdout: a
# rebuild under way still runs to its end, state and lock included, rather
# than stopping half-way.
trap '' PIPE HUP

# lock_take NAME: take the stack's lock, or set holder to its holder and
# fail. Not to be run in a subshell: it prints an event and records the lock
# in held_locks.
lock_take() {
	l=$state_dir/$1.lock
	holder=
	waited=0
	while ! err=$(mkdir "$l" 2>&1); do
		if [ ! -d "$l" ]; then
			# no lock there: it could not be made (a full disk, no rights)
			holder=
			lock_err="could not make the stack's lock $l: ${err#mkdir: }"
			return 2
		fi
		if holder=$(lock_holder "$1"); then
			# --lock-wait: poll once a second, up to lock_wait seconds
			if [ "$waited" -lt "${lock_wait:-0}" ]; then
				[ "$waited" != 0 ] || echo "$m step $1 waiting for the lock (pid $holder)"
				sleep 1
				waited=$((waited + 1))
				continue
			fi
			return 1
		fi
		# stale: its holder is gone (killed run or reboot); take it over
		echo "$m note $1 stale lock recovered"
		rm -rf "$l"
		mkdir "$l" 2>/dev/null || { holder=unknown; return 1; }
		break
	done
	boot=-
	[ -r /proc/sys/kernel/random/boot_id ] && read -r boot </proc/sys/kernel/random/boot_id
	echo "$$ $boot" >"$l/owner"
	held_locks="$held_locks $1"
	return 0
}

unlock() {
	rm -rf "$state_dir/$1.lock"
	rest=
	for n in $held_locks; do [ "$n" = "$1" ] || rest="$rest $n"; done
	held_locks=$rest
}

# state_foreign: the state file read_state read was written in a version
# this script does not read (a newer rbuild's, or one without a version):
# nothing in it is to be trusted or overwritten.
state_foreign() {
	[ "$st_exists" = bad ] || { [ "$st_exists" = 1 ] && [ "$st_version" != "$state_version" ]; }
}
foreign_detail() {
	if [ "$st_exists" = bad ]; then
		echo "its state file $state_dir/$n.state is not a regular file; it is left as it is"
	else
		echo "its state file has version $st_version; this rbuild reads version $state_version (upgrade rbuild on the controller)"
	fi
}

# write_state NAME KEY=VALUE...: atomic replace of NAME.state. The compose
# flavour that built the running generation carries over unless given.
write_state() {
	n=$1
	shift
	tmp=$state_dir/.$n.state.tmp.$$
	{
		echo "version=$state_version"
		ws_compose=$st_compose
		for kv in "$@"; do
			echo "$kv"
			case $kv in compose=*) ws_compose=- ;; esac
		done
		if [ "$ws_compose" != - ]; then echo "compose=$ws_compose"; fi
	} >"$tmp" || {
		rm -f "$tmp"
		return 1
	}
	sync "$tmp" 2>/dev/null || sync
	mv -f "$tmp" "$state_dir/$n.state"
}

# add_history NAME RESULT IMAGES DETAIL: append one attempt to NAME.history,
# keeping the last 20, atomically.
add_history() {
	h=$state_dir/$1.history
	tmp=$state_dir/.$1.history.tmp.$$
	{
		[ -f "$h" ] && tail -n 19 "$h"
		echo "$(now) ${hash:--} $2 ${3:--} $4" | tr -d '\n' | tr '\t' ' '
		echo
	} >"$tmp" && mv -f "$tmp" "$h" || rm -f "$tmp"
}

emit_log_tail() {
	tail -n 15 "$2" 2>/dev/null | tr -d '\r' | while IFS= read -r line; do
		echo "$m log $1 $line"
	done
}

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

# do_plan (NAME HASH PERIOD)...: a dry run's check: what the check reads,
# then a `caps` line. It is sent the whole script (not the check's cut, which
# every run's check ships), and never holds.
do_plan() {
	do_check "$@"
	printf '%s\n%s\n%s end\n' "$out" "$m caps $(caps)" "$m"
}

# Seconds any one look at the engine (ps, inspect, tag, image rm) may take:
# a wedged engine must not hold the stack's lock forever.
step_timeout=120

# bounded SECS CMD...: CMD, killed after SECS where `timeout` exists (its
# status is then 124).
bounded() {
	secs=$1
	shift
	if command -v timeout >/dev/null 2>&1; then timeout "$secs" "$@"; else "$@"; fi
}

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
		# shellcheck disable=SC2086
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
	# shellcheck disable=SC2086
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

# cgroups_now: "svc:DIR,..." for the running service containers of the
# last look, so that a check can tell whether they still run; - if that
# cannot be told here.
cgroups_now() {
	cgs=''
	for sp in $pids; do
		cg=$(cgroup_dir "${sp#*:}") || { cgs=''; break; }
		cgs="${cgs:+$cgs,}${sp%%:*}:$cg"
	done
	echo "${cgs:--}"
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

# restore_images LIST NAMES DEADLINE: tag each "svc=id" of LIST with the
# name compose uses for svc (from NAMES, "svc=name"), bring the stack up
# without building and gate it. Sets rb to what went wrong.
restore_images() {
	retag "$1" "$2"
	if ! run_logged "$log" dc_timeout "$up_timeout" -p "$n" up -d --remove-orphans; then
		emit_log_tail "$n" "$log"
		rb="up of the previous images failed"
		return 1
	fi
	if ! wait_healthy "$n" "$3" "$settle"; then
		rb="previous images $verdict"
		return 1
	fi
}

# Shipping replaces only what rbuild ships. A stack's directory DIR may hold
# what its containers wrote (a bind-mounted data directory, uploads) and
# what `.rbuildignore` keeps from shipping: all that stays. The manifest
# (STATE_DIR/NAME.files: `dir=DIR`, then `d PATH` or `f PATH` a line) lists
# what rbuild shipped there last time. A ship unpacks the payload beside DIR
# (STAGE), carries every entry of DIR that rbuild did not ship and does not
# ship now into STAGE (a rename: the same inode, so running containers keep
# their mounts), then swaps STAGE in and keeps the old copy (OLD) until the
# rebuild succeeds. The carried entries are listed first in a journal
# (STATE_DIR/NAME.carry), so that an apply cut off at any point is undone by
# the next one (recover_ship). A file the payload now ships at a path where
# DIR holds one that rbuild did not ship replaces it; a file rbuild shipped
# before and ships no more is removed.

# paths_of DIR: `d PATH` or `f PATH` for every entry below DIR, parents
# first.
paths_of() {
	(cd "$1" && find . ! -name . -type d | sed 's|^\./|d |' && find . ! -name . ! -type d | sed 's|^\./|f |')
}

# owns_dir: the manifest says rbuild shipped to $dir. (A stack built by an
# rbuild from before manifests has none: its recorded build says the
# directory is rbuild's, and nothing of it is removed by this first ship.)
owns_dir() {
	if [ -f "$manifest" ]; then
		read -r first <"$manifest" && [ "$first" = "dir=$dir" ]
	else
		[ "$st_hash" != - ]
	fi
}

# carry_list: the entries of $dir that rbuild neither shipped (old manifest)
# nor ships now ($stage/$n), top-most only.
carry_list() {
	old_list=/dev/null
	[ -f "$manifest" ] && owns_dir && old_list=$manifest
	paths_of "$dir" | awk -v old="$old_list" -v new="$manifest.new" '
		BEGIN {
			while ((getline l < old) > 0) if (l !~ /^dir=/) shipped[substr(l, 3)] = 1
			while ((getline l < new) > 0) if (l !~ /^dir=/) now[substr(l, 3)] = 1
		}
		{
			p = substr($0, 3); q = p
			while ((i = match(q, /\/[^\/]*$/)) > 0) { q = substr(q, 1, i - 1); if (q in carried) next }
			if ((p in shipped) || (p in now)) next
			carried[p] = 1; print p
		}'
}

# move_entries LIST FROM TO: move each path of LIST from FROM to TO, where
# it is in FROM and not yet in TO.
move_entries() {
	while IFS= read -r p; do
		{ [ -e "$2/$p" ] || [ -L "$2/$p" ]; } || continue
		{ [ -e "$3/$p" ] || [ -L "$3/$p" ]; } && continue
		case $p in */*) mkdir -p "$3/${p%/*}" ;; esac
		mv "$2/$p" "$3/$p"
	done <"$1"
}

# ship: unpack the stack's files and swap them in; sets result, detail and
# cause and fails if nothing could be done.
ship() {
	if [ -d "$dir" ] && ! owns_dir && [ "$adopt" != 1 ] && [ -n "$(ls -A "$dir" 2>/dev/null)" ]; then
		result=failed cause=not_ours
		detail="$dir already holds files that rbuild did not put there; nothing was changed"
		return 1
	fi
	# -m: files get the time they land here, not the controller's. The
	# builder caches a build context by path, size and time: a file shipped
	# twice in one second at one size would otherwise be taken for the old
	# one.
	# A stack with a dir_mode of its own unpacks under that mode's umask (a
	# user other than root gets the files' modes less the umask).
	if ! err=$({ mkdir -p "$parent" && rm -rf "$stage" && mkdir "$stage" &&
		(umask "$ship_umask" && tar -xmof "$payload" -C "$stage" "$n"); } 2>&1); then
		rm -rf "$stage"
		result=failed detail="could not unpack the stack beside $dir: $err"
		no_space "$err"
		return 1
	fi
	chmod 700 "$stage/$n"
	if ! perms_err=$(set_perms "$stage/$n"); then
		rm -rf "$stage"
		result=failed detail="could not give $dir its dir_mode $dir_mode or dir_group $dir_group: $perms_err"
		return 1
	fi
	{ echo "dir=$dir" && paths_of "$stage/$n"; } >"$manifest.new" &&
		if [ -d "$dir" ]; then carry_list >"$journal.tmp"; else : >"$journal.tmp"; fi &&
		mv -f "$journal.tmp" "$journal" || {
		rm -rf "$stage" "$manifest.new" "$journal.tmp"
		result=failed detail="could not list the files of $dir in $state_dir"
		no_space "$(df -P "$state_dir" 2>/dev/null)"
		return 1
	}
	rm -rf "$old"
	move_entries "$journal" "$dir" "$stage/$n"
	if [ -e "$dir" ] && ! mv "$dir" "$old"; then
		recover_ship
		result=failed detail="could not move $dir aside"
		return 1
	fi
	mv "$stage/$n" "$dir" && rmdir "$stage"
}

# stack_options OPTIONS: a stack's options (`-`, or `KEY=VALUE` words
# joined by `,`, validated by the controller): dir_mode, dir_group,
# zero_downtime (services, `:`-joined), lock_wait (seconds), oneshot
# (services the gate waits for to exit 0, `:`-joined); ship_umask follows
# dir_mode.
stack_options() {
	dir_mode=700 dir_group='' zd_services='' lock_wait=0 one_shots=''
	rest=$1
	[ "$rest" != - ] || rest=''
	while [ -n "$rest" ]; do
		next_item
		case $item in
		dir_mode=*) dir_mode=${item#*=} ;;
		dir_group=*) dir_group=${item#*=} ;;
		zero_downtime=*) zd_services=${item#*=} ;;
		lock_wait=*) lock_wait=${item#*=} ;;
		oneshot=*) one_shots=":${item#*=}:" ;;
		esac
	done
	ship_umask=$(printf '%03o' $((0777 & ~0$dir_mode)))
}

# set_perms DIR: the shipped tree gets the stack's dir_mode (its
# directories; files keep their own modes, env files 0600) and dir_group
# (every shipped entry). The default (0700, the user's group) changes
# nothing.
set_perms() {
	if [ "$dir_mode" != 700 ]; then
		find "$1" -type d -exec chmod "$dir_mode" {} + 2>&1 || return 1
	fi
	if [ -n "$dir_group" ]; then
		chgrp -R "$dir_group" "$1" 2>&1 || return 1
	fi
}

# undo_ship: put the previous copy back after a failed build or pull, or
# for a rollback, so the files on the host match the containers that run.
undo_ship() {
	[ "$shipped" = 1 ] && [ -f "$journal" ] || return 0
	move_entries "$journal" "$dir" "$old"
	if [ -d "$old" ]; then rm -rf "$dir" && mv "$old" "$dir"; else rm -rf "$dir"; fi
	rm -f "$journal" "$manifest.new"
}

# commit_ship: the shipped files stay: the old copy goes, the manifest
# lists what was shipped.
commit_ship() {
	[ "$shipped" = 1 ] && [ -f "$journal" ] || return 0
	rm -rf "$old"
	mv -f "$manifest.new" "$manifest"
	rm -f "$journal"
}

# recover_ship: an apply cut off after it began to swap files (its journal
# is there) is undone: every carried entry goes back, and the old copy into
# place.
recover_ship() {
	if [ ! -f "$journal" ]; then
		rm -rf "$stage"
		return 0
	fi
	if [ -d "$stage/$n" ] && [ -d "$dir" ]; then
		move_entries "$journal" "$stage/$n" "$dir"
	elif [ -d "$stage/$n" ] && [ -d "$old" ]; then
		move_entries "$journal" "$stage/$n" "$old" && mv "$old" "$dir"
	elif [ -d "$old" ] && [ -d "$dir" ]; then
		move_entries "$journal" "$dir" "$old" && rm -rf "$dir" && mv "$old" "$dir"
	fi
	rm -rf "$stage" "$manifest.new"
	rm -f "$journal"
	echo "$m note $n the files of an apply that was cut off are as they were before it"
}

# no_space TEXT: where TEXT says the disk is full, say so (cause no_space).
no_space() {
	case $1 in *"No space left"* | *"no space left"* | *" 100% "*)
		cause=no_space
		detail="no space left on the device: $detail"
		;;
	esac
}

# apply_stack: rebuild one stack; sets result and detail.
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

apply_stack() {
	parent=${dir%/*}
	[ -n "$parent" ] || parent=/
	base=${dir##*/}
	old=$parent/.$base.rbuild-old
		stage=$parent/.$base.rbuild-stage
	manifest=$state_dir/$n.files
	journal=$state_dir/$n.carry
	failed_gen=- leftover= keep_running=0
	log=$state_dir/$n.log
	: >"$log"


	read_state "$n"
	if state_foreign; then
		result=failed detail="$(foreign_detail)"
		return
	fi

	# what runs now: the generation a failed rebuild goes back to (and the
	# first look at the engine: one that does not answer stops here, before
	# anything is shipped)
	if ! snapshot "$n" 2>>"$log"; then
		if engine_trouble "$log"; then
			result=failed
			return
		fi
		snap_images=- snap_names=-
	fi
	before=$snap_images before_names=$snap_names
	if [ "$before" = - ] && [ "$st_images" != - ] && [ "$st_last_result" != broken ]; then
		# nothing runs (stopped by hand, a reboot): the recorded generation,
		# which passed its gate, is the one to go back to
		before=$st_images before_names=$st_names
	elif [ "$before" != - ] && [ "$before" != "$st_images" ]; then
		# ... recorded in the state before anything is replaced, so it
		# outlives this run (a stack changed by hand since its last build)
		write_state "$n" "hash=$st_hash" "built_at=$st_built_at" "last_result=$st_last_result" \
			"failed_hash=$st_failed_hash" "failed_at=$st_failed_at" "images=$before" \
			"names=$before_names" "prev_images=$st_prev_images" "leftover=$st_leftover" && st_images=$before st_names=$before_names
	fi

	# An apply cut off mid-ship (killed, host down) is undone first.
	recover_ship
	if [ "$shipped" = 1 ]; then
		echo "$m step $n ship"
		ship || return
	fi

	use_files "$compose_files" "$profiles"

	# remember [KEY=VALUE]: this attempt at $hash failed. It is tried again
	# when the files change, when forced, or after the build period, not on
	# every run.
	remember() {
		write_state "$n" "hash=$st_hash" "built_at=$st_built_at" "last_result=failed" \
			"failed_hash=$hash" "failed_at=$(now)" "images=$st_images" "names=$st_names" \
			"prev_images=$st_prev_images" "leftover=$st_leftover" "cgroups=${1:-$st_cgroups}" ||
			echo "$m note $n could not record the failed attempt in $state_dir"
	}

	# not_built WHAT: the build or the pull failed. The files go back, the
	# names compose uses point at what runs again, what was built goes.
	not_built() {
		emit_log_tail "$n" "$log"
		undo_ship
		retag "$before" "$before_names"
		drop_untested "$before,$st_images,$st_prev_images"
		remember
		detail="$1; the running containers were left as they were"
	}

	# rollback WHY: the new generation failed its gate. Put the previous
	# images back under the names compose uses, restore the previous files,
	# bring the stack up without building and gate it again.
	rollback() {
		why=$1
		if [ "$before" = - ] && [ "$failed_gen" != - ]; then
			# the images of a failed first build stay while its stopped
			# containers use them (for their logs): a later rebuild that
			# passes removes them (leftover=)
			for pair in $(echo "$failed_gen" | tr ',' ' '); do
				case ",$st_leftover," in *",$pair,"*) continue ;; esac
				[ "$st_leftover" != - ] || st_leftover=
				st_leftover="${st_leftover:+$st_leftover,}$pair"
			done
		fi
		remember
		if [ "$before" = - ]; then
			# nothing ran before: stop the new containers rather than leave
			# them crash-looping (kept, for their logs); an earlier failed
			# attempt's images, no longer in use, go now
			run_logged "$log" dc_timeout "$up_timeout" -p "$n" stop
			drop_untested "$failed_gen"
			commit_ship
			result=failed detail="$why; nothing to roll back to (first build); the new containers were stopped"
			return
		fi
		echo "$m step $n rollback"
		# the failed generation stops before its files are swapped back: a
		# crash-looping container that restarts meanwhile recreates its
		# bind-mount source under $dir, and the old copy could not go back
		# (a replace beside its old containers that failed left only the old
		# ones running: they stay)
		[ "$keep_running" = 1 ] || run_logged "$log" dc_timeout "$up_timeout" -p "$n" stop
		undo_ship
		if ! restore_images "$before" "$before_names" "$(($(now) + up_timeout))"; then
			# the state claims nothing that does not run
			record_broken "$hash" "$(now)"
			result=failed detail="$why; rollback failed too: $rb"
			return
		fi
		# the failed generation's images go (what it built, and what it
		# pulled and ran); an image in use stays
		drop_untested "$before,$st_prev_images"
		remove_images "$failed_gen" "$before,$st_prev_images"
		# what runs now is the previous generation, in new containers
		remember "$(cgroups_now)"
		result=rolled_back detail="$why"
	}

	# start: the stack is not running as recorded; up what is there, gated
	if [ "$mode" = start ]; then
		start_stack
		return
	fi

	echo "$m step $n build"
	if run_logged "$log" dc_timeout "$build_timeout" -p "$n" build --pull --no-cache; then rc=0; else rc=$?; fi
	if [ "$rc" = 124 ]; then
		cause=timeout
		not_built "the build took longer than ${build_timeout}s (build_timeout) and was stopped"
		return
	elif [ "$rc" != 0 ]; then
		not_built "build failed"
		return
	fi
	echo "$m step $n pull"
	if [ "$flavour" = v2 ]; then
		pull_args='--ignore-buildable --quiet'
	else
		pull_args='--ignore-pull-failures --quiet'
	fi
	# shellcheck disable=SC2086
	if run_logged "$log" dc_timeout "$build_timeout" -p "$n" pull $pull_args; then rc=0; else rc=$?; fi
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
	if [ -n "$hook_before" ] && ! run_hook before "$hook_before"; then
		[ "$hook_rc" != 124 ] || cause=timeout
		not_built "$(hook_failed before)"
		return
	fi

	# zero_downtime: its services are replaced beside the old containers
	# first; one that fails leaves the old ones running, and is rolled back
	if [ -n "$zd_services" ] && [ "$before" != - ] && ! replace_beside; then
		keep_running=1
		rollback "$verdict"
		return
	fi

	echo "$m step $n up"
	deadline=$(($(now) + up_timeout))
	if run_logged "$log" dc_timeout "$up_timeout" -p "$n" up -d --remove-orphans; then rc=0; else rc=$?; fi
	if [ "$rc" != 0 ]; then
		emit_log_tail "$n" "$log"
		if [ "$rc" = 124 ]; then
			rollback "up took longer than ${up_timeout}s (up_timeout)"
		elif port_taken "$log"; then
			rollback "up failed: $taken"
		else
			rollback "up failed"
		fi
		return
	fi
	echo "$m step $n wait"
	if ! wait_healthy "$n" "$deadline" "$settle"; then
		# what the failed generation ran, pulled images included
		failed_gen=$snap_images
		rollback "$verdict"
		return
	fi

	after=$snap_images after_names=$snap_names
	echo "$m step $n prune"
	# images an earlier prune could not remove are tried again
	leftover=''
	remove_images "$st_leftover" "$after,$before"
	# Keep one generation (the images that ran before this rebuild) for
	# rollback; remove the generation before it. --remove-images removes the
	# replaced generation now as well.
	# A rebuild that produced the very images that ran replaced nothing: the
	# generation kept for rollback stays.
	if [ "$before" = "$after" ]; then
		prev=$st_prev_images
	else
		remove_images "$st_prev_images" "$after"
		prev=$before
	fi
	if [ "$remove" = 1 ]; then
		remove_images "$prev" "$after"
		prev=-
	fi
	commit_ship

	if ! write_state "$n" "hash=$hash" "built_at=$(now)" "last_result=ok" \
		"compose=$flavour" "images=$after" "names=$after_names" "prev_images=$prev" \
		"leftover=${leftover:--}" "cgroups=$(cgroups_now)"; then
		result=failed detail="rebuilt, but could not write the state file in $state_dir"
		no_space "$(df -P "$state_dir" 2>/dev/null)"
		return
	fi
	result=rebuilt detail="with compose $flavour"
	# the after hook, once the new generation passed its gate and is
	# recorded: one that fails leaves it running and recorded, and says so
	if [ -n "$hook_after" ] && ! run_hook after "$hook_after"; then
		emit_log_tail "$n" "$log"
		cause=after_hook detail="$(hook_failed after); the rebuild itself passed: the new version runs and is recorded"
		keep_failed failed "$detail"
	fi
}

# service_containers SVC [-a]: the ids of the stack's containers of
# service SVC (running ones; all with -a), a line each.
service_containers() {
	dk ps -q ${2:+"$2"} --filter "label=com.docker.compose.project=$n" \
		--filter "label=com.docker.compose.service=$1" --filter label=com.docker.compose.oneoff=False
}

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
			case " $(echo $zd_all) " in *" $id "*) ;; *) zd_fresh="$zd_fresh $id" ;; esac
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
		# shellcheck disable=SC2086
		if ! dk stop $zd_running >>"$log" 2>&1 || ! dk rm $zd_running >>"$log" 2>&1; then
			echo "$m note $n $zd_svc: its old containers could not all be removed"
		fi
		echo "$m note $n $zd_svc replaced beside its old containers"
	done
	return 0
}

# remove_fresh: the new containers of a failed replace_beside ($zd_fresh) go.
remove_fresh() {
	# shellcheck disable=SC2086
	[ -z "$zd_fresh" ] || dk rm -f $zd_fresh >>"$log" 2>&1 || :
}

# start_stack: up a stack that is not running as recorded (stopped by hand,
# a reboot without restart policies, an OOM kill) from what is there, no
# build, gated like a rebuild; sets result and detail.
start_stack() {
	echo "$m step $n up"
	deadline=$(($(now) + up_timeout))
	if run_logged "$log" dc_timeout "$up_timeout" -p "$n" up -d --remove-orphans; then rc=0; else rc=$?; fi
	if [ "$rc" != 0 ]; then
		emit_log_tail "$n" "$log"
		record_broken "$st_failed_hash" "$st_failed_at"
		if port_taken "$log"; then
			detail="it was not running, and up failed: $taken"
		else
			detail="it was not running, and up failed"
		fi
		return
	fi
	echo "$m step $n wait"
	if ! wait_healthy "$n" "$deadline" "$settle"; then
		record_broken "$st_failed_hash" "$st_failed_at"
		detail="it was not running, and once up it is $verdict"
		return
	fi
	if ! write_state "$n" "hash=$st_hash" "built_at=$st_built_at" "last_result=ok" \
		"failed_hash=$st_failed_hash" "failed_at=$st_failed_at" "images=$snap_images" \
		"names=$snap_names" "prev_images=$st_prev_images" "leftover=$st_leftover" "cgroups=$(cgroups_now)"; then
		detail="started, but could not write the state file in $state_dir"
		return
	fi
	result=started detail="it was not running"
}

# record_broken FAILED_HASH FAILED_AT: what runs now did not pass its gate:
# the state says so (the next run rebuilds it) and names what runs, never a
# generation that does not.
record_broken() {
	snapshot "$n" 2>>"$log" || snap_images=- snap_names=-
	write_state "$n" "hash=$st_hash" "built_at=$st_built_at" "last_result=broken" \
		"failed_hash=$1" "failed_at=$2" "images=$snap_images" "names=$snap_names" \
		"prev_images=$st_prev_images" "leftover=$st_leftover" ||
		echo "$m note $n could not record the failed attempt in $state_dir"
}

# rollback by hand: the previous generation (prev_images) back, gated.
do_rollback() {
	n=$2 dir=$3 compose_files=$4 profiles=$5 up_timeout=$6 settle=$7 cause=
	echo "$m hello proto=$rbuild_proto now=$(now)"
	need_docker "$1"
	[ -n "$dir" ] || dir=$(default_dir "$n")
	if [ ! -d "$state_dir" ]; then
		echo "$m done $n failed no rebuild is recorded here (no state directory $state_dir)"
		return 0
	fi
	if ! lock_take "$n"; then
		if [ -n "$holder" ]; then
			echo "$m done $n locked $holder"
		else
			echo "$m done $n failed $lock_err"
		fi
		return 0
	fi
	use_files "$compose_files" "$profiles"
	log=$state_dir/$n.log
	: >"$log"
	read_state "$n"
	hash=$st_hash snap_images=-
	if state_foreign; then
		result=failed detail="$(foreign_detail)"
	elif [ "$st_prev_images" = - ]; then
		result=failed detail="no previous generation is kept (first build, or --remove-images)"
	elif ! snapshot "$n" 2>>"$log" && engine_trouble "$log"; then
		result=failed
	else
		current=$snap_images current_names=$snap_names
		names=$snap_names
		[ "$names" != - ] || names=$st_names
		echo "$m step $n rollback"
		if restore_images "$st_prev_images" "$names" "$(($(now) + up_timeout))"; then
			write_state "$n" "hash=$st_hash" "built_at=$st_built_at" "last_result=rolled_back" \
				"failed_hash=$st_hash" "failed_at=$(now)" "images=$st_prev_images" "names=$names" \
				"prev_images=$current" "leftover=$st_leftover" "cgroups=$(cgroups_now)"
			result=rolled_back detail="by hand, to the previous generation"
		elif why=$rb && [ "$current" != - ] &&
			restore_images "$current" "$current_names" "$(($(now) + up_timeout))"; then
			# what ran before the rollback runs again; the state is as it
			# was, but for the new containers
			write_state "$n" "hash=$st_hash" "built_at=$st_built_at" "last_result=$st_last_result" \
				"failed_hash=$st_failed_hash" "failed_at=$st_failed_at" "images=$st_images" \
				"names=$st_names" "prev_images=$st_prev_images" "leftover=$st_leftover" "cgroups=$(cgroups_now)"
			snap_images=$current
			result=failed detail="rollback failed: $why; what ran before runs again"
		else
			record_broken "$st_failed_hash" "$st_failed_at"
			result=failed detail="rollback failed: $why; what ran before could not be put back either${rb:+: $rb}"
		fi
	fi
	add_history "$n" "$result" "$snap_images" "$detail"
	keep_failed "$result" "$detail"
	unlock "$n"
	echo "$m done $n $result${cause:+ cause=$cause} $detail"
}

do_history() {
	echo "$m hello proto=$rbuild_proto now=$(now)"
	h=$state_dir/$1.history
	[ -f "$h" ] || return 0
	while IFS= read -r line; do
		echo "$m history $1 $line"
	done <"$h"
}

# --- operator commands: status, logs (and the failed-attempt file they read)

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
	} >"$kf" && mv -f "$kf" "$state_dir/$n.failed" || rm -f "$kf"
}

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
		if [ -d "${item#*:}" ]; then state=running; else state=gone; fi
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

default_dir() {
	if [ "$root" = 1 ]; then echo "/srv/rbuild/$1"; else echo "$HOME/.local/share/rbuild/stacks/$1"; fi
}

# sha256_of FILE: its hex sha256, with whichever tool the host has.
sha256_of() {
	if command -v sha256sum >/dev/null 2>&1; then
		set -- $(sha256sum "$1")
	elif command -v shasum >/dev/null 2>&1; then
		set -- $(shasum -a 256 "$1")
	elif command -v openssl >/dev/null 2>&1; then
		set -- $(openssl dgst -sha256 -r "$1")
	else
		return 1
	fi
	echo "$1"
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
	got=$(wc -c <"$payload")
	if [ "$((got + 0))" != "$1" ]; then
		echo "$m fatal cause=payload the shipped stacks arrived cut: $((got + 0)) of $1 bytes; nothing was changed"
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
	for f in "$state_dir"/.payload.*.tar "$state_dir"/.*.tmp.* "$state_dir"/.clock.*; do
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
	while [ $# -ge 13 ]; do
		n=$1 dir=$2 compose_files=$3 profiles=$4 mode=$5 adopt=$6 up_timeout=$7 settle=$8 build_timeout=$9
		shift 9
		hash=$1 hook_before=$3 hook_after=$4
		stack_options "$2"
		shift 4
		shipped=0
		[ "$mode" != ship ] || shipped=1
		[ -n "$dir" ] || dir=$(default_dir "$n")
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
		[ "$result" != rebuilt ] || rebuilt_any=1
		add_history "$n" "$result" "$snap_images" "$detail"
		keep_failed "$result" "$detail"
		unlock "$n"
		echo "$m done $n $result${cause:+ cause=$cause} $detail"
	done
	[ -n "$payload" ] && rm -f "$payload"
	[ "$rebuilt_any" = 0 ] || prune_cache
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
		freed=$(echo "$out" | sed -n 's/^Total reclaimed space: *//p')
		# a note only when it freed something: "0B reclaimed" every run is noise
		case $freed in
		'' | 0 | 0B) ;;
		*) echo "$m note - pruned the build cache: $freed reclaimed" ;;
		esac
	fi
}

case $cmd in
check) shift && do_plan "$@" ;;
apply) do_apply "$@" ;;
rollback) do_rollback "$@" ;;
history) do_history "$@" ;;
status) do_status "$@" ;;
logs) do_logs "$@" ;;
*)
	echo "$m fatal unknown command $cmd"
	exit 3
	;;
esac
