#!/usr/bin/env bash
# testhosts.sh - run local sshd "test hosts" for rbuild's tests.
#
# Usage:
#   scripts/testhosts.sh up    DIR N [FIRST]   start hosts h1..hN (restarts any already running)
#   scripts/testhosts.sh down  DIR             stop every host started for DIR (ok if already down)
#   scripts/testhosts.sh stop  DIR hN          stop one host's sshd (connection refused afterwards)
#   scripts/testhosts.sh start DIR hN          start one host's sshd again (after stop)
#   scripts/testhosts.sh drop  DIR hN          iptables: silently DROP tcp/22 to the host
#   scripts/testhosts.sh undrop DIR hN         remove that DROP rule
#   scripts/testhosts.sh addr  DIR hN          print the host's address
#  own-engine mode only (RBUILD_TESTHOST_ENGINE=own at up):
#   scripts/testhosts.sh exec   DIR hN CMD...  run CMD inside the host's mount+net namespaces
#   scripts/testhosts.sh docker DIR hN ARGS... docker CLI against the host's own engine
#   scripts/testhosts.sh engine-stop  DIR hN   stop the host's dockerd (its containers stop; sshd stays)
#   scripts/testhosts.sh engine-start DIR hN   start it again; returns when it answers
#   scripts/testhosts.sh socket-unreadable|socket-ok DIR hN   chmod 000 the docker socket / restore
#   scripts/testhosts.sh socket-gone|socket-back DIR hN       move the docker socket aside / back
#   scripts/testhosts.sh disk-full|disk-ok DIR hN             fill the host's filesystem / free it
#
# Hosts are always named h1..hN; host hK has loopback index i = FIRST+K-1 (FIRST
# defaults to 1), so several DIRs can run side by side with disjoint FIRST ranges
# (indices 1..20: scripts/demo.sh, 1000-1999: tests, 2001+: scripts/bench.sh).
#
# Environment (read by `up`, remembered in DIR for every later subcommand):
#   RBUILD_TESTHOST_ENGINE=shared|own   engine mode (default shared, see below)
#   RBUILD_TESTHOST_COMPOSE_V1=h2,h3    these hosts are "Compose v1 only": an empty
#       directory is bind-mounted over the docker CLI plugin dirs in their namespace,
#       so `docker compose` fails there and only `docker-compose` (v1) works.
#       The buildx plugin is masked with them: such a host is Debian 12's own
#       docker.io + docker-compose, whose builds use the legacy builder.
#   RBUILD_TESTHOST_LEGACY_BUILDER=h2   these hosts build with the legacy builder:
#       `SetEnv DOCKER_BUILDKIT=0` in their sshd_config, so every ssh session
#       (any user, Compose v1 or v2) has it (hN/builder says "legacy"). Every
#       other host builds with BuildKit: Compose v2 always, and `docker build`
#       (Compose v1's builds too) where the buildx plugin is installed
#       (scripts/setup-deps.sh puts it in /root/.docker/cli-plugins, which the
#       hosts' namespaces share). Commands run with `exec`/`docker` below do
#       not go through sshd and do not get the setting.
#   RBUILD_TESTHOST_FS_SIZE=2g          own mode: size of each host's tmpfs (only the
#       pages in use cost memory)
#   RBUILD_TESTHOST_TIMEOUT=60          own mode: seconds `up`/`engine-start` wait for
#       a host (sshd, engine, registry path) before failing with the tail of its logs
#
# Files in DIR (DIR must not contain whitespace), both modes:
#   id_ed25519, id_ed25519.pub   client key (generated once, reused)
#   authorized_keys              copy of id_ed25519.pub, used by every host
#   ssh_host_ed25519_key[.pub]   ONE host key shared by all hosts of DIR (generated once)
#   known_hosts                  for every host: "ADDR key" and "hN key" lines
#   ssh_config                   "Host hN" block per host (strict host key checking, BatchMode)
#   hosts.txt                    "hN ADDR" per line
#   engine                       "shared" or "own" (the mode `up` chose)
#   empty, empty.d/              masks bind-mounted inside the hosts' mount namespaces
#   hN/sshd_config hN/sshd.pid hN/sshd.log (LogLevel VERBOSE) hN/run.sh (starts sshd)
#   hN/flavour ("compose-v1-only"), hN/builder ("legacy"): only on such hosts
#   hN/state  -> seen as /var/lib/rbuild by commands run over ssh on hN
#   hN/srv    -> seen as /srv/rbuild     by commands run over ssh on hN
#
# == Shared engine mode (default; scripts/bench.sh runs hundreds of these) ==
# Host hK's sshd listens on 127.0.$((1 + (i-1)/250)).$((1 + (i-1)%250)):22
# (1 -> 127.0.1.1, 251 -> 127.0.2.1) and runs in its own mount namespace
# (unshare -m --propagation private) where hN/state and hN/srv are bind-mounted as
# above and an empty file is bind-mounted over /root/.bashrc (and /root/.profile)
# so no pyenv init runs per ssh command. The machine's docker engine/socket is
# shared by all hosts: the engine cannot see hN/srv (bind mounts and file secrets
# from a stack dir fail), and projects/ports must be distinct across hosts.
# drop/undrop add/remove "INPUT -d 127.0.x.y -p tcp --dport 22 -j DROP" in the
# machine's iptables.
#
# == Own engine mode (RBUILD_TESTHOST_ENGINE=own): every host is a small machine ==
# Address plan: host index i is 198.18.$((1 + (i-1)/250)).$((1 + (i-1)%250))
# (RFC 2544 benchmark range; index 1 -> 198.18.1.1, 1001 -> 198.18.5.1). Each host:
#   - network namespace rbt<i>: lo up, eth0 = veth whose root-side peer rbtv<i> is a
#     port of bridge rbtbr0 (198.18.0.1/16, root namespace, shared by all DIRs). No
#     default route: a host and its containers reach only 198.18.0.0/16, i.e. the
#     root ns at 198.18.0.1 (host-to-host frames cross the bridge through the
#     machine's iptables FORWARD chain, br_netfilter, whose DROP policy, set by the
#     machine's dockerd, drops them).
#     Its sshd listens on ADDR:22; its iptables are its own.
#   - a private mount namespace (inside rbt<i>), held by a "holder" process
#     (`sleep infinity` shown as rbt-holder-<i>, pid in hN/holder.pid) so the
#     namespaces outlive sshd and dockerd. In it: /var/lib/rbuild = hN/state,
#     /srv/rbuild = hN/srv, /run = hN/run (so /var/run/docker.sock, the default
#     socket, is hN/run/docker.sock), /etc/docker = hN/etc-docker, a sysfs of the
#     netns on /sys (with the machine's cgroup mounts), .bashrc/.profile and the
#     Compose-v1-only plugin masks as in shared mode. /tmp, /root/.docker (CLI
#     config and plugins) and the rest of the machine's filesystem are shared.
#   - its own dockerd (and the containerd it manages) started in those namespaces:
#     --data-root hN/docker (on DIR's filesystem; overlay2), --exec-root /run/docker,
#     --pidfile /run/docker.pid, -H unix:///run/docker.sock, --cgroup-parent /rbt<i>
#     (its containers live in /sys/fs/cgroup/*/rbt<i>/), --shutdown-timeout 3,
#     log hN/dockerd.log. It starts with no images; 127.0.0.1:5000 inside the netns
#     is a socat (hN/socat.log) forwarding to 198.18.0.1:5000, where ONE socat in
#     the root ns relays to the machine's registry on 127.0.0.1:5000 (started by the
#     first `up`, stopped by the last `down`). 127.0.0.0/8 registries need no TLS,
#     so `docker pull 127.0.0.1:5000/rbuild/busybox:1` and `FROM` that image work.
#   - a filesystem of its own: a tmpfs (RBUILD_TESTHOST_FS_SIZE) mounted in the ROOT
#     namespace on hN/fs, with hN/state and hN/srv bind mounts of hN/fs/state and
#     hN/fs/srv, so the tests in the root ns and the host see the same files.
# `up` returns when every host's sshd listens, its engine answers and its registry
# path answers; the hosts start in parallel. Measured here (2 cores, shared): up
# 0.5 s for 1 host, 0.8-1.1 s for 3, 1.9 s for 6; down about 1.4 s; an idle host
# costs about 120 MiB RSS (dockerd 73, containerd 38, sshd 5, socat 5, holder 2). A leftover netns/veth of index i with
# no live process (a killed run) is reclaimed; one with live processes makes `up`
# fail with "... is already in use" (the tests then try the next block).
# Re-running `up` on a DIR that is up restarts its hosts like a reboot: processes
# and namespaces are renewed, files in hN/state, hN/srv and hN/docker are kept.
# Extra files in DIR for own mode:
#   hN/index hN/mntns            the host's index and mount namespace id
#   hN/fs/ (tmpfs) hN/fs/state hN/fs/srv hN/fs/.filler (only while disk-full)
#   hN/run/ (= /run inside: docker.sock docker.pid docker/ sshd/)  hN/docker/
#   hN/etc-docker/ hN/sys/ (mount staging point)  hN/holder.sh hN/holder.pid
#   hN/holder.log hN/engine.sh (starts dockerd) hN/dockerd.log hN/socat.log
# Starting, breaking and removing one host (own mode):
#   start/stop        `stop DIR hN` kills its sshd (and sessions): connection
#       refused; engine and containers keep running. `start DIR hN` starts sshd
#       again in the host's existing namespaces (nsenter into the holder).
#   engine stopped    `engine-stop`: SIGTERM dockerd (it stops its containers),
#       SIGKILL after 20 s, then any leftover containerd/shim/docker-proxy and
#       container processes are killed. Over ssh `docker ...` then fails with
#       "Cannot connect to the Docker daemon". `engine-start` starts it again
#       (containers with a restart policy come back) and waits until it answers.
#   socket unreadable `socket-unreadable`: chmod 000 hN/run/docker.sock. root
#       bypasses file modes, so this only breaks a non-root (docker-group) user;
#       `socket-ok` restores the mode it had.
#   socket gone       `socket-gone`: renames the socket to docker.sock.gone (the
#       engine keeps running) so even root gets "Cannot connect"; `socket-back`
#       renames it back (if the engine made a new one meanwhile, that one stays).
#   disk full         `disk-full`: shrinks the host's tmpfs to what it holds and
#       fills the rest with hN/fs/.filler, so writes to /var/lib/rbuild and
#       /srv/rbuild fail with "No space left on device" on both sides (df shows
#       100%); this costs no memory. `disk-ok` removes the filler and restores
#       the size. (hN/docker is not on this filesystem: the engine keeps working.)
#   packets dropped   `drop`: "INPUT -p tcp --dport 22 -j DROP" in the host's own
#       netns (goes away with it); `undrop` removes it.
#   removed           `down DIR`: per host, `docker rm -f` all containers, SIGTERM
#       dockerd (SIGKILL after 10 s, or 2 s if it did not answer), kill sshd, thaw
#       paused containers, then SIGKILL whatever is left in the netns, the
#       mount namespace and cgroup rbt<i>; delete the netns, veth and cgroups; unmount hN/state, hN/srv, hN/fs; remove hN/docker and hN/run.
#       The last `down` on the machine also removes rbtbr0 and the relay.
#
# Usage example:
#   scripts/testhosts.sh up /tmp/th 3 && ssh -F /tmp/th/ssh_config h1 true
#   RBUILD_TESTHOST_ENGINE=own scripts/testhosts.sh up /tmp/thm 3 1001
#   ssh -F /tmp/thm/ssh_config h1 docker ps; scripts/testhosts.sh docker /tmp/thm h1 ps
set -euo pipefail

PROG=testhosts.sh
log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
usage() { sed -n '/^# Usage:/,/^#$/p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

# Docker CLI plugin directories (client looks in all that exist).
PLUGIN_DIRS=(
  /root/.docker/cli-plugins
  /usr/local/lib/docker/cli-plugins
  /usr/local/libexec/docker/cli-plugins
  /usr/lib/docker/cli-plugins
  /usr/libexec/docker/cli-plugins
)

# own-engine mode: machine-wide pieces shared by all DIRs
BRIDGE=rbtbr0
BRIDGE_MAC=02:72:62:74:00:01
BRIDGE_ADDR=198.18.0.1
REGISTRY_PORT=5000
SHARED_RUN=/run/rbuild-testhosts # lock, relay log, rbt<i> records (index -> host dir)

ip_of_index() {
  local i=$1
  printf '127.0.%d.%d\n' $((1 + (i - 1) / 250)) $((1 + (i - 1) % 250))
}

addr_of_index() {
  local i=$1
  printf '198.18.%d.%d\n' $((1 + (i - 1) / 250)) $((1 + (i - 1) % 250))
}

abs_dir() {
  local d=$1
  case "$d" in /*) ;; *) d="$PWD/$d" ;; esac
  case "$d" in *[[:space:]]*) die "DIR must not contain whitespace: $d" ;; esac
  printf '%s\n' "${d%/}"
}

# ip of host NAME in DIR, from hosts.txt
host_ip() {
  local dir=$1 name=$2 ip
  [ -f "$dir/hosts.txt" ] || die "$dir/hosts.txt missing (run up first)"
  ip=$(awk -v n="$name" '$1 == n { print $2 }' "$dir/hosts.txt")
  [ -n "$ip" ] || die "no host $name in $dir/hosts.txt"
  printf '%s\n' "$ip"
}

# engine mode of DIR: shared (default) or own
dir_mode() {
  local m=shared
  if [ -s "$1/engine" ]; then read -r m <"$1/engine" || true; fi
  printf '%s\n' "$m"
}

# live_pid PIDFILE ARG: the pid in PIDFILE if that process is alive and has
# ARG among its arguments (a guard against pid reuse), or nothing. No forks:
# fast for 500 hosts.
live_pid() {
  local pid args=()
  [ -s "$1" ] || return 0
  read -r pid <"$1" || true
  case "$pid" in '' | *[!0-9]*) return 0 ;; esac
  is_alive "$pid" || return 0
  { mapfile -d '' args <"/proc/$pid/cmdline"; } 2>/dev/null || return 0
  case " ${args[*]} " in *" $2 "*) printf '%s\n' "$pid" ;; esac
  return 0
}

# pid of the running sshd of host dir hd (one using this host's config), or nothing
running_pid() { live_pid "$1/sshd.pid" "$1/sshd_config"; }

# all descendants of the given pids (their ssh sessions), from one ps snapshot
descendants() {
  ps -eo pid=,ppid= | awk -v roots="$*" '
    { kids[$2] = kids[$2] " " $1 }
    END {
      n = split(roots, q, " ")
      for (i = 1; i <= n; i++) {
        m = split(kids[q[i]], c, " ")
        for (j = 1; j <= m; j++) { print c[j]; q[++n] = c[j] }
      }
    }'
}

# true if pid exists and is not a zombie (pid 1 here may reap late); no forks
is_alive() {
  local line st
  { read -r line <"/proc/$1/stat"; } 2>/dev/null || return 1
  st=${line##*) }
  case "$st" in Z* | X*) return 1 ;; esac
}

# stop the sshds (and their live sessions) of the given host dirs; wait for exit
stop_hosts() {
  local hd pid pids=() all=() _
  for hd in "$@"; do
    pid=$(running_pid "$hd")
    [ -n "$pid" ] && pids+=("$pid")
  done
  if [ "${#pids[@]}" -gt 0 ]; then
    mapfile -t all < <(printf '%s\n' "${pids[@]}"; descendants "${pids[@]}")
    kill -TERM "${all[@]}" 2>/dev/null || true
    for _ in $(seq 100); do
      local alive=()
      for pid in "${all[@]}"; do is_alive "$pid" && alive+=("$pid"); done
      [ "${#alive[@]}" -eq 0 ] && break
      all=("${alive[@]}")
      sleep 0.05
    done
    for pid in "${all[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  fi
  for hd in "$@"; do rm -f "$hd/sshd.pid"; done
}

# start host dirs (each has run.sh); wait until every pid file exists (= listening)
start_hosts() {
  local hd pending=() still _
  for hd in "$@"; do
    rm -f "$hd/sshd.pid"
    # run.sh returns once sshd has daemonized; run many at once
    "$hd/run.sh" &
  done
  wait || true
  pending=("$@")
  for _ in $(seq 300); do
    still=()
    for hd in "${pending[@]}"; do
      [ -s "$hd/sshd.pid" ] || still+=("$hd")
    done
    [ "${#still[@]}" -eq 0 ] && return 0
    pending=("${still[@]}")
    sleep 0.05
  done
  for hd in "${pending[@]}"; do
    log "sshd of $hd did not come up; last log lines:"
    tail -n 5 "$hd/sshd.log" >&2 2>/dev/null || true
  done
  die "${#pending[@]} host(s) failed to start"
}

# ---------------------------------------------------------------- own-engine mode

# machine-wide lock (fd 9) around claiming indices, the bridge and the relay.
# Every process started while it is held must get 9>&- or it would keep it.
lock_shared() {
  mkdir -p "$SHARED_RUN"
  exec 9>"$SHARED_RUN/lock"
  flock -w 300 9 || die "could not take $SHARED_RUN/lock"
}
unlock_shared() { exec 9>&-; }

# the root-ns relay 198.18.0.1:5000 -> 127.0.0.1:5000: its pid, or nothing
relay_pid() {
  ss -Hltnp "src $BRIDGE_ADDR:$REGISTRY_PORT" 2>/dev/null | sed -n 's/.*"socat",pid=\([0-9]*\),.*/\1/p' | head -n 1
}

ensure_bridge_and_relay() { # under lock
  # a MAC of its own: a bridge without one takes its lowest port's and
  # changes it as hosts come and go, and hosts' ARP caches then send the
  # machine's packets nowhere
  ip link show "$BRIDGE" >/dev/null 2>&1 || ip link add "$BRIDGE" address "$BRIDGE_MAC" type bridge
  ip link set "$BRIDGE" address "$BRIDGE_MAC"
  echo 1 >"/proc/sys/net/ipv4/conf/$BRIDGE/arp_notify" 2>/dev/null || true
  ip -4 -o addr show dev "$BRIDGE" | grep -q " $BRIDGE_ADDR/16 " || ip addr add "$BRIDGE_ADDR/16" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  if [ -z "$(ss -Hltn "src $BRIDGE_ADDR:$REGISTRY_PORT" 2>/dev/null)" ]; then
    setsid socat "TCP-LISTEN:$REGISTRY_PORT,bind=$BRIDGE_ADDR,reuseaddr,fork" "TCP:127.0.0.1:$REGISTRY_PORT" \
      </dev/null >>"$SHARED_RUN/relay.log" 2>&1 9>&- &
    local _
    for _ in $(seq 100); do
      [ -n "$(ss -Hltn "src $BRIDGE_ADDR:$REGISTRY_PORT" 2>/dev/null)" ] && return 0
      sleep 0.05
    done
    die "registry relay on $BRIDGE_ADDR:$REGISTRY_PORT did not start (see $SHARED_RUN/relay.log)"
  fi
}

# under lock: when no host of any DIR is left, remove the bridge and the relay
maybe_remove_bridge_and_relay() {
  ip -o link show type veth 2>/dev/null | grep -q ': rbtv[0-9]*@' && return 0
  compgen -G "/run/netns/rbt[0-9]*" >/dev/null && return 0
  local pid; pid=$(relay_pid)
  [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null || true
  ip link del "$BRIDGE" 2>/dev/null || true
}

# is path a mount point (in this, the root, namespace)?
is_mounted() { awk -v p="$1" '$5 == p { f = 1 } END { exit !f }' /proc/self/mountinfo; }

# live pids belonging to index i: in netns rbt<i>, in cgroups rbt<i>, or in mount ns MNT
index_pids() {
  local i=$1 mnt=${2:-} pid
  {
    ip netns pids "rbt$i" 2>/dev/null || true
    cat /sys/fs/cgroup/*/"rbt$i"/cgroup.procs /sys/fs/cgroup/*/"rbt$i"/*/cgroup.procs 2>/dev/null || true
    if [ -n "$mnt" ]; then
      find /proc/[0-9]*/ns/mnt -maxdepth 0 -printf '%l %p\n' 2>/dev/null |
        awk -v m="$mnt" '$1 == m { split($2, a, "/"); print a[3] }' || true
    fi
  } | sort -un | while read -r pid; do
    [ "$pid" != "$$" ] && is_alive "$pid" && printf '%s\n' "$pid"
  done
  return 0
}

# SIGKILL everything of index i until nothing is left (bounded); paused
# (frozen) containers are thawed first, SIGKILL does not reach frozen tasks
kill_index_procs() {
  local i=$1 mnt=${2:-} hd=${3:-} pids f _
  for f in /sys/fs/cgroup/freezer/"rbt$i"/*/freezer.state; do
    [ -f "$f" ] && { echo THAWED >"$f"; } 2>/dev/null || true
  done
  for _ in $(seq 100); do
    # the mount namespace's id is the host's only while its holder lives
    # in it: the kernel reuses a freed id at once, and another host's
    # processes may have it then
    if [ -n "$mnt" ] && { [ -z "$hd" ] || [ -z "$(holder_pid "$hd")" ]; }; then mnt=; fi
    pids=$(index_pids "$i" "$mnt")
    [ -z "$pids" ] && return 0
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
    sleep 0.05
  done
  log "WARNING: processes of rbt$i still alive: $(index_pids "$i" "$mnt" | tr '\n' ' ')"
}

rm_cgroups() {
  local i=$1 c _
  for _ in $(seq 20); do
    local left=0
    for c in /sys/fs/cgroup/*/"rbt$i"; do
      [ -d "$c" ] || continue
      find "$c" -depth -type d -exec rmdir {} + 2>/dev/null || left=1
    done
    [ "$left" -eq 0 ] && return 0
    sleep 0.1
  done
  log "WARNING: could not remove cgroups rbt$i"
}

# delete netns rbt<i> and veth rbtv<i> (the netns itself is freed asynchronously)
rm_netns() {
  local i=$1
  [ -e "/run/netns/rbt$i" ] && { ip netns del "rbt$i" 2>/dev/null || true; }
  ip link del "rbtv$i" 2>/dev/null || true
}

# the host's mounts in the root ns (bind mounts first, then the tmpfs). Every
# mount namespace made while they existed (other hosts, any `unshare -m`) holds
# copies that would pin the tmpfs: removing the mount-point directories detaches
# those copies too (the kernel does so for mount points in other namespaces).
umount_host_fs() {
  local hd=$1 m
  for m in "$hd/state" "$hd/srv" "$hd/fs"; do
    while is_mounted "$m"; do umount "$m" 2>/dev/null || umount -l "$m" || break; done
  done
  rmdir "$hd/state" "$hd/srv" "$hd/fs" 2>/dev/null || true
  mkdir -p "$hd/state" "$hd/srv"
}

# pid of host hd's namespace holder (validated against its recorded mount ns)
holder_pid() {
  local hd=$1 pid mnt
  [ -s "$hd/holder.pid" ] && [ -s "$hd/mntns" ] || return 0
  read -r pid <"$hd/holder.pid" || true
  read -r mnt <"$hd/mntns" || true
  case "$pid" in '' | *[!0-9]*) return 0 ;; esac
  is_alive "$pid" || return 0
  [ "$(readlink "/proc/$pid/ns/mnt" 2>/dev/null)" = "$mnt" ] && printf '%s\n' "$pid"
  return 0
}

need_holder() {
  local pid; pid=$(holder_pid "$1")
  [ -n "$pid" ] || die "the namespaces of ${1##*/} are gone (run up again)"
  printf '%s\n' "$pid"
}

# pid of host hd's dockerd (one whose data root is the host's), or nothing
dockerd_pid() { live_pid "$1/run/docker.pid" "$1/docker"; }

engine_answers() {
  [ -S "$1/run/docker.sock" ] && docker -H "unix://$1/run/docker.sock" version >/dev/null 2>&1
}

# SIGTERM host hd's dockerd, wait up to BOUND s, then SIGKILL
engine_term() {
  local hd=$1 bound=$2 pid _
  pid=$(dockerd_pid "$hd")
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq $((bound * 10))); do
    is_alive "$pid" || return 0
    sleep 0.1
  done
  log "dockerd of ${hd##*/} still running after ${bound} s: SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  for _ in $(seq 50); do is_alive "$pid" || return 0; sleep 0.1; done
}

# after the engine is gone: its containerd, shims, proxies and containers
engine_leftover_pids() {
  local i=$1 pid comm
  {
    cat /sys/fs/cgroup/*/"rbt$i"/cgroup.procs /sys/fs/cgroup/*/"rbt$i"/*/cgroup.procs 2>/dev/null || true
    for pid in $(ip netns pids "rbt$i" 2>/dev/null); do
      { read -r comm <"/proc/$pid/comm"; } 2>/dev/null || continue
      case "$comm" in dockerd | containerd* | docker-proxy | runc) printf '%s\n' "$pid" ;; esac
    done
  } | sort -un | while read -r pid; do is_alive "$pid" && printf '%s\n' "$pid"; done
  return 0
}

# kill all processes of own-engine host hd and delete its netns, veth, cgroups.
# HOW=down: remove its containers first; HOW=restart: let dockerd stop them.
own_stop_host() {
  local hd=$1 how=$2 i mnt="" sock ids grace=10
  [ -s "$hd/index" ] || return 0
  read -r i <"$hd/index"
  [ -s "$hd/mntns" ] && read -r mnt <"$hd/mntns"
  if [ -n "$(dockerd_pid "$hd")" ]; then
    grace=2 # an engine that does not answer gets 2 s after SIGTERM, not 10
    for sock in "$hd/run/docker.sock" "$hd/run/docker.sock.gone"; do
      [ -S "$sock" ] || continue
      if ids=$(timeout 5 docker -H "unix://$sock" ps -aq 2>/dev/null); then
        grace=10
        if [ "$how" = down ] && [ -n "$ids" ]; then
          # shellcheck disable=SC2086
          timeout 30 docker -H "unix://$sock" rm -f $ids >/dev/null 2>&1 || true
        fi
      fi
      break
    done
  fi
  engine_term "$hd" "$grace"
  stop_hosts "$hd"
  kill_index_procs "$i" "$mnt" "$hd"
  rm_netns "$i"
  rm_cgroups "$i"
  rm -f "$hd/holder.pid" "$hd/mntns"
}

# own_stop_host, then remove the host's filesystem and engine data
own_down_host() {
  local hd=$1 i=""
  [ -s "$hd/index" ] && read -r i <"$hd/index"
  own_stop_host "$hd" down
  umount_host_fs "$hd"
  rm -rf "$hd/docker" "$hd/run" "$hd/etc-docker"
  rmdir "$hd/sys" 2>/dev/null || true
  rm -f "$hd/index"
  if [ -n "$i" ] && [ "$(cat "$SHARED_RUN/rbt$i" 2>/dev/null)" = "$hd" ]; then rm -f "$SHARED_RUN/rbt$i"; fi
}

# under lock, before index i is used by host dir hd: fail if it is in use,
# reclaim what a killed run left behind (netns, veth, cgroups, mounts)
claim_index() {
  local i=$1 hd=$2 old
  if [ -e "/run/netns/rbt$i" ] && [ -n "$(ip netns pids "rbt$i" 2>/dev/null)" ]; then
    die "$(addr_of_index "$i") (netns rbt$i) is already in use (another test-host DIR?)"
  fi
  if [ -e "/run/netns/rbt$i" ] || ip link show "rbtv$i" >/dev/null 2>&1 || compgen -G "/sys/fs/cgroup/*/rbt$i" >/dev/null; then
    log "reclaiming leftovers of index $i (netns rbt$i / veth rbtv$i / cgroups; no live process in the netns)"
    kill_index_procs "$i"
    rm_netns "$i"
    rm_cgroups "$i"
  fi
  old=$(cat "$SHARED_RUN/rbt$i" 2>/dev/null || true)
  if [ -n "$old" ] && [ "$old" != "$hd" ] && [ -d "$old" ]; then
    # a killed run's host dir that no `down` cleaned: unmount its tmpfs
    if [ -z "$(holder_pid "$old")" ]; then umount_host_fs "$old"; fi
  fi
  printf '%s\n' "$hd" >"$SHARED_RUN/rbt$i"
}

# under lock: netns, veth, tmpfs and the namespace holder of host dir hd (index i)
own_create_host() {
  local hd=$1 i=$2 addr ns=rbt$2 fs_size=$3 _
  addr=$(addr_of_index "$i")
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  ip link add "rbtv$i" type veth peer name eth0 netns "$ns"
  ip link set "rbtv$i" master "$BRIDGE" up
  ip -n "$ns" addr add "$addr/16" dev eth0
  ip -n "$ns" link set eth0 up

  mkdir -p "$hd/fs" "$hd/state" "$hd/srv" "$hd/run" "$hd/docker" "$hd/etc-docker" "$hd/sys"
  if is_mounted "$hd/fs"; then
    mount -o "remount,size=$fs_size" "$hd/fs"
  else
    mount -t tmpfs -o "size=$fs_size,mode=0755" "rbtfs$i" "$hd/fs"
  fi
  rm -f "$hd/fs/.filler"
  mkdir -p "$hd/fs/state" "$hd/fs/srv"
  local d
  for d in state srv; do
    if ! is_mounted "$hd/$d"; then
      # files from a shared-mode run of this DIR move onto the host's filesystem
      if [ -n "$(ls -A "$hd/$d")" ]; then cp -a "$hd/$d/." "$hd/fs/$d/" && find "$hd/$d" -mindepth 1 -delete; fi
      mount --bind "$hd/fs/$d" "$hd/$d"
    fi
  done
  # /run of the host: fresh on every boot
  find "$hd/run" -mindepth 1 -delete 2>/dev/null || rm -rf "${hd:?}/run/"*

  rm -f "$hd/holder.pid" "$hd/mntns"
  : >"$hd/holder.log"
  setsid nsenter "--net=/run/netns/$ns" unshare -m --propagation private "$hd/holder.sh" \
    </dev/null >>"$hd/holder.log" 2>&1 9>&- &
  local pid=""
  for _ in $(seq 200); do
    if [ -s "$hd/holder.pid" ]; then read -r pid <"$hd/holder.pid" || true; fi
    [ -n "$pid" ] && break
    sleep 0.02
  done
  [ -n "$pid" ] || { tail -n 5 "$hd/holder.log" >&2 || true; die "namespaces of ${hd##*/} could not be set up"; }
  readlink "/proc/$pid/ns/mnt" >"$hd/mntns"
  [ -n "$(holder_pid "$hd")" ] || die "holder of ${hd##*/} died (see $hd/holder.log)"
}

# start the socat forwarder inside host hd's namespaces
start_forwarder() {
  local hd=$1 h=$2
  setsid nsenter -t "$h" -m -n -- socat "TCP-LISTEN:$REGISTRY_PORT,bind=127.0.0.1,reuseaddr,fork" \
    "TCP:$BRIDGE_ADDR:$REGISTRY_PORT" </dev/null >>"$hd/socat.log" 2>&1 9>&- &
}

start_engine() {
  local hd=$1
  rm -f "$hd/run/docker.sock.gone" "$hd/run/docker.sock.mode"
  [ -n "$(dockerd_pid "$hd")" ] || rm -f "$hd/run/docker.pid"
  setsid "$hd/engine.sh" </dev/null >>"$hd/dockerd.log" 2>&1 9>&- &
}

tail_logs() {
  local hd=$1 f
  for f in holder.log sshd.log socat.log dockerd.log; do
    [ -s "$hd/$f" ] || continue
    log "${hd##*/}/$f, last lines:"
    tail -n 8 "$hd/$f" >&2 || true
  done
}

# wait until host hd answers: sshd (ssh), engine (eng), registry path (reg)
wait_host() {
  local hd=$1 h=$2 want=$3 timeout=$4 reg_ok=$5 t_end ok_ssh="" ok_eng="" ok_reg=""
  t_end=$((SECONDS + timeout))
  case "$want" in *ssh*) ;; *) ok_ssh=1 ;; esac
  case "$want" in *eng*) ;; *) ok_eng=1 ;; esac
  case "$want" in *reg*) ;; *) ok_reg=1 ;; esac
  while :; do
    if [ -z "$ok_ssh" ] && [ -s "$hd/sshd.pid" ]; then ok_ssh=1; fi
    if [ -z "$ok_eng" ] && engine_answers "$hd"; then ok_eng=1; fi
    if [ -z "$ok_reg" ]; then
      if [ "$reg_ok" = 1 ]; then
        nsenter -t "$h" -n curl -fsS -m 2 -o /dev/null "http://127.0.0.1:$REGISTRY_PORT/v2/" 2>/dev/null && ok_reg=1
      else
        [ -n "$(nsenter -t "$h" -n ss -Hltn "src 127.0.0.1:$REGISTRY_PORT" 2>/dev/null)" ] && ok_reg=1
      fi
    fi
    [ -n "$ok_ssh$ok_eng$ok_reg" ] && [ "$ok_ssh$ok_eng$ok_reg" = 111 ] && return 0
    if [ "$SECONDS" -ge "$t_end" ]; then
      local missing=""
      [ -n "$ok_ssh" ] || missing="$missing, sshd not listening"
      [ -n "$ok_eng" ] || missing="$missing, engine not answering"
      [ -n "$ok_reg" ] || missing="$missing, registry forwarder not answering"
      log "${hd##*/} not ready after ${timeout} s${missing}"
      tail_logs "$hd"
      return 1
    fi
    sleep 0.1
  done
}

# boot one own-engine host whose namespaces exist: forwarder, sshd, engine
own_boot_host() {
  local hd=$1 timeout=$2 reg_ok=$3 h
  h=$(holder_pid "$hd")
  [ -n "$h" ] || { tail_logs "$hd"; return 1; }
  start_forwarder "$hd" "$h"
  rm -f "$hd/sshd.pid"
  "$hd/run.sh" </dev/null || { tail_logs "$hd"; return 1; }
  start_engine "$hd"
  wait_host "$hd" "$h" ssh,eng,reg "$timeout" "$reg_ok"
}

# write holder.sh, engine.sh and run.sh of own-engine host hd
write_own_scripts() {
  local dir=$1 hd=$2 i=$3 name=$4 addr=$5 masks=$6 extra_plugins=$7
  cat >"$hd/holder.sh" <<EOF
#!/bin/bash
# namespace holder of test host $name ($addr, index $i); generated by $PROG.
# Started as: nsenter --net=/run/netns/rbt$i unshare -m --propagation private $hd/holder.sh
# Sets up the host's private mount namespace, then sleeps; sshd, dockerd and the
# registry forwarder are started in its namespaces with nsenter -t PID -m -n.
set -e
# a sysfs of this netns (so /sys/class/net shows eth0), with the machine's cgroups
mount -t sysfs -o nosuid,nodev,noexec sysfs "$hd/sys"
mount --rbind /sys/fs/cgroup "$hd/sys/fs/cgroup"
mount --move "$hd/sys" /sys
mount --bind "$hd/fs/state" /var/lib/rbuild
mount --bind "$hd/fs/srv" /srv/rbuild
for f in $masks; do mount --bind "$dir/empty" "\$f"; done
for d in $extra_plugins; do mount --bind "$dir/empty.d" "\$d"; done
mount --bind "$hd/etc-docker" /etc/docker
mkdir -p "$hd/run/sshd"
chmod 0755 "$hd/run" "$hd/run/sshd"
mount --bind "$hd/run" /run
echo \$\$ >"$hd/holder.pid"
exec -a "rbt-holder-$i" sleep infinity
EOF
  cat >"$hd/engine.sh" <<EOF
#!/bin/sh
# start the docker engine of test host $name ($addr) in its namespaces; generated by $PROG
set -e
read -r holder <"$hd/holder.pid"
exec nsenter -t "\$holder" -m -n -- dockerd \\
  --data-root "$hd/docker" \\
  --exec-root /run/docker \\
  --pidfile /run/docker.pid \\
  -H unix:///run/docker.sock \\
  --cgroup-parent /rbt$i \\
  --shutdown-timeout 3
EOF
  cat >"$hd/run.sh" <<EOF
#!/bin/sh
# start test host $name's sshd ($addr) in the host's namespaces; generated by $PROG
set -e
read -r holder <"$hd/holder.pid"
exec nsenter -t "\$holder" -m -n -- /usr/sbin/sshd -f "$hd/sshd_config" -E "$hd/sshd.log"
EOF
  chmod +x "$hd/holder.sh" "$hd/engine.sh" "$hd/run.sh"
}

# ---------------------------------------------------------------- subcommands

cmd_up() {
  if [ $# -lt 2 ] || [ $# -gt 3 ]; then usage; fi
  local dir n first mode
  dir=$(abs_dir "$1"); n=$2; first=${3:-1}
  case "$n$first" in *[!0-9]*) die "N and FIRST must be numbers" ;; esac
  [ "$n" -ge 1 ] || die "N must be >= 1"
  [ "$first" -ge 1 ] || die "FIRST must be >= 1"
  [ $((first + n - 1)) -le 63750 ] || die "index too large"
  [ "$(id -u)" -eq 0 ] || die "must run as root"
  mode=${RBUILD_TESTHOST_ENGINE:-shared}
  case "$mode" in shared | own) ;; *) die "RBUILD_TESTHOST_ENGINE must be shared or own, not '$mode'" ;; esac
  local fs_size=${RBUILD_TESTHOST_FS_SIZE:-2g} timeout=${RBUILD_TESTHOST_TIMEOUT:-60}
  if [ "$mode" = own ]; then
    case "$dir/" in /run/* | /var/run/* | /sys/* | /proc/* | /var/lib/rbuild/* | /srv/rbuild/* | /etc/docker/*)
      die "DIR must not be under a path the hosts' namespaces mask: $dir" ;;
    esac
    local t
    for t in dockerd socat nsenter unshare curl; do command -v "$t" >/dev/null || die "$t not found (scripts/setup-deps.sh installs it)"; done
  fi
  local t0; t0=$(date +%s%N)

  mkdir -p "$dir" "$dir/empty.d" /run/sshd /var/lib/rbuild /srv/rbuild
  : >"$dir/empty"
  [ -f "$dir/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C rbuild-test-client -f "$dir/id_ed25519"
  [ -f "$dir/ssh_host_ed25519_key" ] || ssh-keygen -q -t ed25519 -N '' -C rbuild-test-host -f "$dir/ssh_host_ed25519_key"
  cp "$dir/id_ed25519.pub" "$dir/authorized_keys"
  local hostkey; hostkey=$(awk '{ print $1 " " $2 }' "$dir/ssh_host_ed25519_key.pub")

  # restart semantics: stop any hosts of DIR still running
  local old=() old_own=() hd
  for hd in "$dir"/h*/; do
    [ -d "$hd" ] || continue
    hd=${hd%/}
    if [ -s "$hd/index" ]; then old_own+=("$hd"); else old+=("$hd"); fi
  done
  [ "${#old[@]}" -gt 0 ] && stop_hosts "${old[@]}"
  if [ "${#old_own[@]}" -gt 0 ]; then
    local k0
    for hd in "${old_own[@]}"; do
      k0=${hd##*/h}
      if [ "$mode" = own ] && [ "$k0" -le "$n" ] 2>/dev/null; then
        own_stop_host "$hd" restart &
      else
        own_down_host "$hd" &
      fi
    done
    wait
  fi
  printf '%s\n' "$mode" >"$dir/engine"

  # Compose-v1-only and legacy-builder host sets
  local v1=",${RBUILD_TESTHOST_COMPOSE_V1:-},"
  local legacy=",${RBUILD_TESTHOST_LEGACY_BUILDER:-},"
  local mask_plugins=""
  local pd
  for pd in "${PLUGIN_DIRS[@]}"; do
    [ -d "$pd" ] && mask_plugins="$mask_plugins $pd"
  done
  mkdir -p /root/.docker/cli-plugins
  case "$mask_plugins" in *" /root/.docker/cli-plugins"*) ;; *) mask_plugins="$mask_plugins /root/.docker/cli-plugins" ;; esac

  local a i ip
  if [ "$mode" = shared ]; then
    # addresses already listening on :22 (other DIRs, a system sshd) would clash
    local listening
    listening=$(ss -Hltn 2>/dev/null | awk '{ print $4 }' | grep -E '(^|:)22$' || true)
    if printf '%s\n' "$listening" | grep -qE '^(0\.0\.0\.0|\*|\[::\]):22$'; then
      die "something listens on *:22 already; test hosts cannot bind 127.0.x.y:22"
    fi
    local -A busy=()
    for a in $listening; do busy[$a]=1; done
    for ((i = first; i < first + n; i++)); do
      ip="127.0.$((1 + (i - 1) / 250)).$((1 + (i - 1) % 250))"
      [ -z "${busy[$ip:22]:-}" ] || die "$ip:22 is already in use (another test-host DIR?)"
    done
  fi

  local masks="/root/.bashrc"
  [ -e /root/.profile ] && masks="$masks /root/.profile"

  local k name hds=() cfg="" kh="" ht=""
  for ((k = 1; k <= n; k++)); do
    name="h$k"
    i=$((first + k - 1))
    if [ "$mode" = own ]; then ip=$(addr_of_index "$i"); else ip="127.0.$((1 + (i - 1) / 250)).$((1 + (i - 1) % 250))"; fi
    hd="$dir/$name"
    mkdir -p "$hd/state" "$hd/srv"
    : >"$hd/sshd.log"
    cat >"$hd/sshd_config" <<EOF
# test host $name ($ip), generated by $PROG
ListenAddress $ip:22
HostKey $dir/ssh_host_ed25519_key
AuthorizedKeysFile $dir/authorized_keys
PidFile $hd/sshd.pid
PermitRootLogin yes
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
LogLevel VERBOSE
MaxStartups 1000:30:1000
MaxSessions 100
PrintMotd no
PrintLastLog no
UseDNS no
X11Forwarding no
Subsystem sftp internal-sftp
EOF
    case "$legacy" in
      *",$name,"*)
        printf '%s\n' "SetEnv DOCKER_BUILDKIT=0" >>"$hd/sshd_config"
        echo legacy >"$hd/builder"
        ;;
      *) rm -f "$hd/builder" ;;
    esac
    local extra_plugins=""
    case "$v1" in *",$name,"*) extra_plugins="$mask_plugins"; echo "compose-v1-only" >"$hd/flavour" ;;
      *) rm -f "$hd/flavour" ;; esac
    if [ "$mode" = own ]; then
      printf '%s\n' "$i" >"$hd/index.new"
      : >"$hd/dockerd.log"
      : >"$hd/socat.log"
      write_own_scripts "$dir" "$hd" "$i" "$name" "$ip" "$masks" "$extra_plugins"
    else
    # run.sh: start this host's sshd in its own mount namespace; returns when sshd daemonized
    cat >"$hd/run.sh" <<EOF
#!/bin/sh
# start test host $name ($ip); generated by $PROG
set -e
mkdir -p /run/sshd /var/lib/rbuild /srv/rbuild
exec unshare -m --propagation private sh -c '
  set -e
  mount --bind "\$1" /var/lib/rbuild
  mount --bind "\$2" /srv/rbuild
  for f in $masks; do mount --bind "\$3" "\$f"; done
  for d in $extra_plugins; do mount --bind "\$4" "\$d"; done
  exec /usr/sbin/sshd -f "\$5" -E "\$6"
' sh "$hd/state" "$hd/srv" "$dir/empty" "$dir/empty.d" "$hd/sshd_config" "$hd/sshd.log"
EOF
    chmod +x "$hd/run.sh"
    fi
    hds+=("$hd")
    ht+="$name $ip"$'\n'
    kh+="$ip $hostkey"$'\n'"$name $hostkey"$'\n'
    cfg+="Host $name
  HostName $ip
  User root
  Port 22
  IdentityFile $dir/id_ed25519
  IdentitiesOnly yes
  UserKnownHostsFile $dir/known_hosts
  StrictHostKeyChecking yes
  BatchMode yes
  LogLevel ERROR

"
  done
  printf '%s' "$ht" >"$dir/hosts.txt"
  printf '%s' "$kh" >"$dir/known_hosts"
  printf '%s' "$cfg" >"$dir/ssh_config"

  if [ "$mode" = own ]; then
    own_up "$dir" "$fs_size" "$timeout" "${hds[@]}"
  else
    start_hosts "${hds[@]}"
  fi
  local t1; t1=$(date +%s%N)
  if [ "$mode" = own ]; then
    log "up: $n host(s) h1..h$n at $(addr_of_index "$first")..$(addr_of_index $((first + n - 1))), own engines, in $(((t1 - t0) / 1000000)) ms (ssh -F $dir/ssh_config h1)"
  else
    log "up: $n host(s) h1..h$n at $(ip_of_index "$first")..$(ip_of_index $((first + n - 1))) in $(((t1 - t0) / 1000000)) ms (ssh -F $dir/ssh_config h1)"
  fi
}

# own-engine part of up: claim indices and create namespaces (under the machine
# lock), then boot all hosts in parallel. On any failure the hosts of this up
# are torn down again (their logs stay in DIR).
OWN_UP_HDS=()
own_up() {
  local dir=$1 fs_size=$2 timeout=$3 hd i reg_ok=0
  shift 3
  curl -fsS -m 3 -o /dev/null "http://127.0.0.1:$REGISTRY_PORT/v2/" 2>/dev/null && reg_ok=1
  [ "$reg_ok" = 1 ] || log "WARNING: no registry answers on 127.0.0.1:$REGISTRY_PORT (scripts/setup-deps.sh starts it); hosts will not be able to pull"
  OWN_UP_HDS=("$@")
  trap own_up_abort EXIT
  lock_shared
  for hd in "$@"; do
    read -r i <"$hd/index.new"
    claim_index "$i" "$hd"
  done
  ensure_bridge_and_relay
  for hd in "$@"; do
    mv -f "$hd/index.new" "$hd/index"
    read -r i <"$hd/index"
    own_create_host "$hd" "$i" "$fs_size"
  done
  unlock_shared
  printf '%s\n' "$fs_size" >"$dir/fs_size"

  local pids=() failed=0 p
  for hd in "$@"; do
    own_boot_host "$hd" "$timeout" "$reg_ok" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || failed=$((failed + 1)); done
  if [ "$failed" -gt 0 ]; then
    log "ERROR: $failed host(s) failed to start"
    exit 1
  fi
  trap - EXIT
}

own_up_abort() {
  local rc=$? hd
  [ "$rc" -ne 0 ] || return 0
  trap - EXIT
  unlock_shared
  for hd in "${OWN_UP_HDS[@]}"; do
    rm -f "$hd/index.new"
    own_down_host "$hd" &
  done
  wait
  lock_shared; maybe_remove_bridge_and_relay; unlock_shared
  log "up aborted: its hosts were torn down again (logs kept in their dirs)"
  exit "$rc"
}

cmd_down() {
  [ $# -eq 1 ] || usage
  local dir hd hds=() own=()
  dir=$(abs_dir "$1")
  [ -d "$dir" ] || return 0
  for hd in "$dir"/h*/; do
    hd=${hd%/}
    if [ -s "$hd/index" ]; then own+=("$hd"); elif [ -f "$hd/sshd_config" ]; then hds+=("$hd"); fi
  done
  [ "${#hds[@]}" -gt 0 ] && stop_hosts "${hds[@]}"
  if [ "${#own[@]}" -gt 0 ]; then
    for hd in "${own[@]}"; do own_down_host "$hd" & done
    wait
    lock_shared; maybe_remove_bridge_and_relay; unlock_shared
  fi
  log "down: $dir"
}

cmd_stop() {
  [ $# -eq 2 ] || usage
  local dir; dir=$(abs_dir "$1")
  host_ip "$dir" "$2" >/dev/null
  stop_hosts "$dir/$2"
  log "stopped $2"
}

cmd_start() {
  [ $# -eq 2 ] || usage
  local dir; dir=$(abs_dir "$1")
  host_ip "$dir" "$2" >/dev/null
  [ -x "$dir/$2/run.sh" ] || die "$dir/$2/run.sh missing (run up first)"
  if [ -n "$(running_pid "$dir/$2")" ]; then log "$2 already running"; return 0; fi
  [ "$(dir_mode "$dir")" = own ] && need_holder "$dir/$2" >/dev/null
  start_hosts "$dir/$2"
  log "started $2"
}

rule() { printf '%s\n' INPUT -d "$1" -p tcp --dport 22 -j DROP; }
own_rule() { printf '%s\n' INPUT -p tcp --dport 22 -j DROP; }

# iptables, in host NAME's netns in own mode, else the machine's
host_iptables() {
  local dir=$1 name=$2
  shift 2
  if [ "$(dir_mode "$dir")" = own ]; then
    local i; read -r i <"$dir/$name/index" || die "$name: no index (run up first)"
    ip netns exec "rbt$i" iptables "$@"
  else
    iptables "$@"
  fi
}

cmd_drop() {
  [ $# -eq 2 ] || usage
  local dir ip r
  dir=$(abs_dir "$1"); ip=$(host_ip "$dir" "$2")
  if [ "$(dir_mode "$dir")" = own ]; then mapfile -t r < <(own_rule); else mapfile -t r < <(rule "$ip"); fi
  host_iptables "$dir" "$2" -C "${r[@]}" 2>/dev/null || host_iptables "$dir" "$2" -A "${r[@]}"
  log "dropping tcp/22 to $2 ($ip)"
}

cmd_undrop() {
  [ $# -eq 2 ] || usage
  local dir ip r
  dir=$(abs_dir "$1"); ip=$(host_ip "$dir" "$2")
  if [ "$(dir_mode "$dir")" = own ]; then mapfile -t r < <(own_rule); else mapfile -t r < <(rule "$ip"); fi
  while host_iptables "$dir" "$2" -C "${r[@]}" 2>/dev/null; do host_iptables "$dir" "$2" -D "${r[@]}"; done
  log "no longer dropping tcp/22 to $2 ($ip)"
}

cmd_addr() {
  [ $# -eq 2 ] || usage
  local dir; dir=$(abs_dir "$1")
  host_ip "$dir" "$2"
}

# own-engine subcommands: check the mode and the host; sets OWN_HD
own_host() {
  [ $# -ge 2 ] || usage
  local dir; dir=$(abs_dir "$1")
  host_ip "$dir" "$2" >/dev/null
  [ "$(dir_mode "$dir")" = own ] || die "$SUB needs own-engine mode (RBUILD_TESTHOST_ENGINE=own at up); $dir is in shared mode"
  OWN_HD="$dir/$2"
  [ -s "$OWN_HD/index" ] || die "$2 is not up (run up first)"
}

cmd_exec() {
  own_host "$@"
  shift 2
  [ $# -ge 1 ] || usage
  local h; h=$(need_holder "$OWN_HD")
  # cd inside the namespaces (nsenter --wd would keep a directory of the root ns)
  exec nsenter -t "$h" -m -n -- sh -c 'cd "$1" 2>/dev/null || cd /; shift; exec "$@"' sh "$PWD" "$@"
}

cmd_docker() {
  own_host "$@"
  shift 2
  exec docker -H "unix://$OWN_HD/run/docker.sock" "$@"
}

cmd_engine_stop() {
  [ $# -eq 2 ] || usage
  own_host "$@"
  local hd=$OWN_HD i pids _
  read -r i <"$hd/index"
  if [ -z "$(dockerd_pid "$hd")" ]; then log "engine of $2 is not running"; fi
  engine_term "$hd" 20
  local f
  for f in /sys/fs/cgroup/freezer/"rbt$i"/*/freezer.state; do
    [ -f "$f" ] && { echo THAWED >"$f"; } 2>/dev/null || true
  done
  for _ in $(seq 100); do
    pids=$(engine_leftover_pids "$i")
    [ -z "$pids" ] && break
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
    sleep 0.05
  done
  log "engine of $2 stopped"
}

cmd_engine_start() {
  [ $# -eq 2 ] || usage
  own_host "$@"
  local hd=$OWN_HD h
  h=$(need_holder "$hd")
  if [ -n "$(dockerd_pid "$hd")" ]; then
    log "engine of $2 already running"
  else
    start_engine "$hd"
  fi
  wait_host "$hd" "$h" eng "${RBUILD_TESTHOST_TIMEOUT:-60}" 0 || die "engine of $2 did not come up"
  log "engine of $2 started"
}

cmd_socket_unreadable() {
  [ $# -eq 2 ] || usage
  own_host "$@"
  local s=$OWN_HD/run/docker.sock
  [ -S "$s" ] || die "$s missing (engine stopped or socket gone?)"
  [ -s "$s.mode" ] || stat -c %a "$s" >"$s.mode"
  chmod 000 "$s"
  log "docker socket of $2 is mode 000 (breaks non-root users only: root bypasses file modes)"
}

cmd_socket_ok() {
  [ $# -eq 2 ] || usage
  own_host "$@"
  local s=$OWN_HD/run/docker.sock mode=660
  [ -s "$s.mode" ] && read -r mode <"$s.mode"
  [ -S "$s" ] && chmod "$mode" "$s"
  rm -f "$s.mode"
  log "docker socket of $2 is mode $mode again"
}

cmd_socket_gone() {
  [ $# -eq 2 ] || usage
  own_host "$@"
  local s=$OWN_HD/run/docker.sock
  if [ -S "$s" ]; then mv -f "$s" "$s.gone"; elif [ ! -S "$s.gone" ]; then die "$s missing"; fi
  log "docker socket of $2 moved to $s.gone"
}

cmd_socket_back() {
  [ $# -eq 2 ] || usage
  own_host "$@"
  local s=$OWN_HD/run/docker.sock
  if [ -S "$s.gone" ]; then
    if [ -S "$s" ]; then rm -f "$s.gone"; else mv -f "$s.gone" "$s"; fi
  fi
  log "docker socket of $2 is back"
}

cmd_disk_full() {
  [ $# -eq 2 ] || usage
  own_host "$@"
  local fs=$OWN_HD/fs bs blocks free size _
  is_mounted "$fs" || die "$fs is not mounted"
  # shrink the tmpfs to what it holds (+ 256 KiB), so filling it costs no memory
  for _ in $(seq 20); do
    read -r bs blocks free < <(stat -f -c '%S %b %f' "$fs")
    size=$(((blocks - free + 64) * bs))
    mount -o "remount,size=$size" "$fs" 2>/dev/null && break
    sleep 0.05
  done
  dd if=/dev/zero of="$fs/.filler" bs=64k oflag=append conv=notrunc status=none 2>/dev/null || true
  dd if=/dev/zero of="$fs/.filler" bs=4k oflag=append conv=notrunc status=none 2>/dev/null || true
  read -r free < <(stat -f -c '%a' "$fs")
  [ "$free" -eq 0 ] || die "could not fill $fs ($free blocks free)"
  log "filesystem of $2 is full ($fs/.filler)"
}

cmd_disk_ok() {
  [ $# -eq 2 ] || usage
  own_host "$@"
  local fs=$OWN_HD/fs size=2g
  [ -s "${OWN_HD%/*}/fs_size" ] && read -r size <"${OWN_HD%/*}/fs_size"
  rm -f "$fs/.filler"
  mount -o "remount,size=$size" "$fs"
  log "filesystem of $2 has space again ($size)"
}

[ $# -ge 1 ] || usage
SUB=$1; shift
case "$SUB" in
  up) cmd_up "$@" ;;
  down) cmd_down "$@" ;;
  stop) cmd_stop "$@" ;;
  start) cmd_start "$@" ;;
  drop) cmd_drop "$@" ;;
  undrop) cmd_undrop "$@" ;;
  addr) cmd_addr "$@" ;;
  exec) cmd_exec "$@" ;;
  docker) cmd_docker "$@" ;;
  engine-stop) cmd_engine_stop "$@" ;;
  engine-start) cmd_engine_start "$@" ;;
  socket-unreadable) cmd_socket_unreadable "$@" ;;
  socket-ok) cmd_socket_ok "$@" ;;
  socket-gone) cmd_socket_gone "$@" ;;
  socket-back) cmd_socket_back "$@" ;;
  disk-full) cmd_disk_full "$@" ;;
  disk-ok) cmd_disk_ok "$@" ;;
  -h | --help | help) usage ;;
  *) usage ;;
esac
