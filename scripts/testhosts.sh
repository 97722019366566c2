#!/usr/bin/env bash
# testhosts.sh - run local sshd "test hosts" on loopback addresses for rbuild's tests.
#
# Usage:
#   scripts/testhosts.sh up    DIR N [FIRST]   start hosts h1..hN (restarts any already running)
#   scripts/testhosts.sh down  DIR             stop every sshd started for DIR (ok if already down)
#   scripts/testhosts.sh stop  DIR hN          stop one host (connection refused afterwards)
#   scripts/testhosts.sh start DIR hN          start one host again (after stop)
#   scripts/testhosts.sh drop  DIR hN          iptables: silently DROP tcp/22 to the host's IP
#   scripts/testhosts.sh undrop DIR hN         remove that DROP rule
#
# Hosts are always named h1..hN. Host hK listens on port 22 of loopback index
# FIRST+K-1 (FIRST defaults to 1), index i being
#   127.0.$((1 + (i-1)/250)).$((1 + (i-1)%250))   (1 -> 127.0.1.1, 251 -> 127.0.2.1)
# so several DIRs can run side by side with disjoint FIRST ranges.
#
# Files in DIR (DIR must not contain whitespace):
#   id_ed25519, id_ed25519.pub   client key (generated once, reused)
#   authorized_keys              copy of id_ed25519.pub, used by every host
#   ssh_host_ed25519_key[.pub]   ONE host key shared by all hosts of DIR (generated once)
#   known_hosts                  for every host: "IP key" and "hN key" lines
#   ssh_config                   "Host hN" block per host (strict host key checking, BatchMode)
#   hosts.txt                    "hN IP" per line
#   empty, empty.d/              masks bind-mounted inside the hosts' mount namespaces
#   hN/sshd_config hN/sshd.pid hN/sshd.log (LogLevel VERBOSE) hN/run.sh (how to start it)
#   hN/state  -> seen as /var/lib/rbuild by commands run over ssh on hN
#   hN/srv    -> seen as /srv/rbuild     by commands run over ssh on hN
#
# Each sshd runs in its own mount namespace (unshare -m --propagation private) where
# hN/state and hN/srv are bind-mounted as above and an empty file is bind-mounted over
# /root/.bashrc (and /root/.profile) so no pyenv init runs per ssh command.
# The docker engine/socket is shared by all hosts.
#
# Environment:
#   RBUILD_TESTHOST_COMPOSE_V1=h2,h3   these hosts are "Compose v1 only": an empty
#       directory is bind-mounted over the docker CLI plugin dirs in their namespace,
#       so `docker compose` fails there and only `docker-compose` (v1) works.
#       Read by `up` (and remembered for `start`).
#
# Usage example:
#   scripts/testhosts.sh up /tmp/th 3 && ssh -F /tmp/th/ssh_config h1 true
set -euo pipefail

PROG=testhosts.sh
log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
usage() { sed -n '3,10p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

# Docker CLI plugin directories (client looks in all that exist).
PLUGIN_DIRS=(
  /root/.docker/cli-plugins
  /usr/local/lib/docker/cli-plugins
  /usr/local/libexec/docker/cli-plugins
  /usr/lib/docker/cli-plugins
  /usr/libexec/docker/cli-plugins
)

ip_of_index() {
  local i=$1
  printf '127.0.%d.%d\n' $((1 + (i - 1) / 250)) $((1 + (i - 1) % 250))
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

# pid of the running sshd of host dir hd, or nothing (no forks: fast for 500 hosts)
running_pid() {
  local hd=$1 pid args=()
  [ -s "$hd/sshd.pid" ] || return 0
  read -r pid <"$hd/sshd.pid" || true
  case "$pid" in '' | *[!0-9]*) return 0 ;; esac
  # guard against pid reuse: must be an sshd using this host's config
  { mapfile -d '' args <"/proc/$pid/cmdline"; } 2>/dev/null || return 0
  case " ${args[*]} " in *" $hd/sshd_config "*) printf '%s\n' "$pid" ;; esac
}

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

cmd_up() {
  if [ $# -lt 2 ] || [ $# -gt 3 ]; then usage; fi
  local dir n first
  dir=$(abs_dir "$1"); n=$2; first=${3:-1}
  case "$n$first" in *[!0-9]*) die "N and FIRST must be numbers" ;; esac
  [ "$n" -ge 1 ] || die "N must be >= 1"
  [ "$first" -ge 1 ] || die "FIRST must be >= 1"
  [ $((first + n - 1)) -le 63750 ] || die "index too large"
  [ "$(id -u)" -eq 0 ] || die "must run as root"
  local t0; t0=$(date +%s%N)

  mkdir -p "$dir" "$dir/empty.d" /run/sshd /var/lib/rbuild /srv/rbuild
  : >"$dir/empty"
  [ -f "$dir/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C rbuild-test-client -f "$dir/id_ed25519"
  [ -f "$dir/ssh_host_ed25519_key" ] || ssh-keygen -q -t ed25519 -N '' -C rbuild-test-host -f "$dir/ssh_host_ed25519_key"
  cp "$dir/id_ed25519.pub" "$dir/authorized_keys"
  local hostkey; hostkey=$(awk '{ print $1 " " $2 }' "$dir/ssh_host_ed25519_key.pub")

  # restart semantics: stop any hosts of DIR still running
  local old=()
  for hd in "$dir"/h*/; do [ -d "$hd" ] && old+=("${hd%/}"); done
  [ "${#old[@]}" -gt 0 ] && stop_hosts "${old[@]}"

  # Compose-v1-only host set
  local v1=",${RBUILD_TESTHOST_COMPOSE_V1:-},"
  local mask_plugins=""
  local pd
  for pd in "${PLUGIN_DIRS[@]}"; do
    [ -d "$pd" ] && mask_plugins="$mask_plugins $pd"
  done
  mkdir -p /root/.docker/cli-plugins
  case "$mask_plugins" in *" /root/.docker/cli-plugins"*) ;; *) mask_plugins="$mask_plugins /root/.docker/cli-plugins" ;; esac

  # addresses already listening on :22 (other DIRs, a system sshd) would clash
  local listening
  listening=$(ss -Hltn 2>/dev/null | awk '{ print $4 }' | grep -E '(^|:)22$' || true)
  if printf '%s\n' "$listening" | grep -qE '^(0\.0\.0\.0|\*|\[::\]):22$'; then
    die "something listens on *:22 already; test hosts cannot bind 127.0.x.y:22"
  fi
  local -A busy=()
  local a i ip
  for a in $listening; do busy[$a]=1; done
  for ((i = first; i < first + n; i++)); do
    ip="127.0.$((1 + (i - 1) / 250)).$((1 + (i - 1) % 250))"
    [ -z "${busy[$ip:22]:-}" ] || die "$ip:22 is already in use (another test-host DIR?)"
  done

  local masks="/root/.bashrc"
  [ -e /root/.profile ] && masks="$masks /root/.profile"

  local k name hd hds=() cfg="" kh="" ht=""
  for ((k = 1; k <= n; k++)); do
    name="h$k"
    i=$((first + k - 1))
    ip="127.0.$((1 + (i - 1) / 250)).$((1 + (i - 1) % 250))"
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
    local extra_plugins=""
    case "$v1" in *",$name,"*) extra_plugins="$mask_plugins"; echo "compose-v1-only" >"$hd/flavour" ;;
      *) rm -f "$hd/flavour" ;; esac
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

  start_hosts "${hds[@]}"
  local t1; t1=$(date +%s%N)
  log "up: $n host(s) h1..h$n at $(ip_of_index "$first")..$(ip_of_index $((first + n - 1))) in $(((t1 - t0) / 1000000)) ms (ssh -F $dir/ssh_config h1)"
}

cmd_down() {
  [ $# -eq 1 ] || usage
  local dir hd hds=()
  dir=$(abs_dir "$1")
  [ -d "$dir" ] || return 0
  for hd in "$dir"/h*/; do [ -f "${hd}sshd_config" ] && hds+=("${hd%/}"); done
  [ "${#hds[@]}" -gt 0 ] && stop_hosts "${hds[@]}"
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
  start_hosts "$dir/$2"
  log "started $2"
}

rule() { printf '%s\n' INPUT -d "$1" -p tcp --dport 22 -j DROP; }

cmd_drop() {
  [ $# -eq 2 ] || usage
  local dir ip r
  dir=$(abs_dir "$1"); ip=$(host_ip "$dir" "$2")
  mapfile -t r < <(rule "$ip")
  iptables -C "${r[@]}" 2>/dev/null || iptables -A "${r[@]}"
  log "dropping tcp/22 to $2 ($ip)"
}

cmd_undrop() {
  [ $# -eq 2 ] || usage
  local dir ip r
  dir=$(abs_dir "$1"); ip=$(host_ip "$dir" "$2")
  mapfile -t r < <(rule "$ip")
  while iptables -C "${r[@]}" 2>/dev/null; do iptables -D "${r[@]}"; done
  log "no longer dropping tcp/22 to $2 ($ip)"
}

[ $# -ge 1 ] || usage
sub=$1; shift
case "$sub" in
  up) cmd_up "$@" ;;
  down) cmd_down "$@" ;;
  stop) cmd_stop "$@" ;;
  start) cmd_start "$@" ;;
  drop) cmd_drop "$@" ;;
  undrop) cmd_undrop "$@" ;;
  -h | --help | help) usage ;;
  *) usage ;;
esac
