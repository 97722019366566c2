#!/usr/bin/env bash
# bench.sh - rbuild's benchmark: fleet runs against N local sshd hosts, side by
# side with the floor (one fresh `ssh host true` per host at the same concurrency).
#
# Usage: scripts/bench.sh [options]        (Debian 12, as root; not a test: no pass/fail)
#   --hosts LIST       host counts N, comma-separated       (default 50,200)
#   --rtt LIST         round-trip times in ms               (default 0,50)
#                      (no netem here: a delaying TCP forwarder, scripts/bench/delayfwd.py,
#                      sits in front of every sshd for RTT > 0)
#   --reps N           repetitions of each timed case       (default 3)
#   --kex LIST         default,curve25519                   (default both; curve25519 adds
#                      `KexAlgorithms curve25519-sha256` to the ssh config of floor AND rbuild)
#   -j N               concurrency of rbuild and of the floor (default 32, rbuild's default)
#   --rebuild-pct P    share of hosts whose stack is rebuilt in the rebuild case (default 10, 0 = skip)
#   --rebuild-reps N   repetitions of the rebuild case      (default 1)
#   --one-reps N       repetitions of the one-host case and of `rbuild --version` (default 10)
#   --first I          loopback index of h1 (default 2001: 127.0.9.1; tests use lower ranges)
#   --persist SECS     the window of the repeated-check case (default 600; 0 = skip that case)
#   --profile          also: strace exec count, strace -c, phase timestamps (at the smallest N, RTT 0)
#   --no-cargo         skip `cargo build --release`; use target/release/rbuild as it is
#   --keep             keep the work directory (hosts, forwarders and containers are still removed)
#   --downtime [OPTS]  instead: the downtime of a rebuild (scripts/bench/downtime.sh OPTS: one
#                      host with its own engine, a client polling a published port)
#
# What it does: builds rbuild (release), brings up max(N) hosts with scripts/testhosts.sh
# in a temp dir (h1..hN, .bashrc masked), gives every host ONE stack `bench-hK-app`
# (an image-only busybox service; every tenth host instead a tiny `FROM busybox` +
# `COPY stamp` build), builds them all once (set-up), then measures:
#   1. the floor; 2. rbuild with every stack up to date (-q), for each N, RTT and kex, with
#   its registry digest checks (the default) and with --no-digests (a registry-counts record:
#   the manifest requests of one up-to-date run of all the hosts);
#   3. rbuild when one stack in ten needs a rebuild; 4. one host: rbuild vs `ssh true`;
#   5. `rbuild --version` start-up; 6. a repeated check within the `--persist` window (the
#   masters of a first `--persist` run reused) against the floor, measured side by side.
# Per run it records (scripts/bench/measure.py): wall time, rbuild's own CPU and peak
# RSS, the CPU of everything on the client side (a cpuacct cgroup: every ssh process),
# the CPU of the sshd side (another cgroup), the number of handshakes and of remote
# commands per host (sshd.log, LogLevel VERBOSE) and the CPU the rest of the
# machine used meanwhile (noise). Prints Markdown tables at the end (scripts/bench/report.py).
#
# Everything started is torn down on exit (trap): hosts, forwarders, cgroups, and the
# bench-hK-app containers, networks and images.
set -euo pipefail

PROG=bench.sh
log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
usage() { sed -n '3,25p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

REPO=$(cd "$(dirname "$0")/.." && pwd)
BENCH=$REPO/scripts/bench
HOSTS=50,200 RTTS=0,50 REPS=3 KEXES=default,curve25519 J=32
REBUILD_PCT=10 REBUILD_REPS=1 ONE_REPS=10 FIRST=2001 PROFILE=0 CARGO=1 KEEP=0 PERSIST=600

while [ $# -gt 0 ]; do
  case "$1" in
    --downtime) shift; exec "$BENCH/downtime.sh" "$@" ;;
    --hosts) HOSTS=$2; shift 2 ;;
    --rtt) RTTS=$2; shift 2 ;;
    --reps) REPS=$2; shift 2 ;;
    --kex) KEXES=$2; shift 2 ;;
    -j) J=$2; shift 2 ;;
    --rebuild-pct) REBUILD_PCT=$2; shift 2 ;;
    --rebuild-reps) REBUILD_REPS=$2; shift 2 ;;
    --one-reps) ONE_REPS=$2; shift 2 ;;
    --first) FIRST=$2; shift 2 ;;
    --persist) PERSIST=$2; shift 2 ;;
    --profile) PROFILE=1; shift ;;
    --no-cargo) CARGO=0; shift ;;
    --keep) KEEP=1; shift ;;
    -h | --help) usage ;;
    *) log "unknown option $1"; usage ;;
  esac
done

IFS=, read -r -a NS <<<"$HOSTS"
IFS=, read -r -a RS <<<"$RTTS"
IFS=, read -r -a KS <<<"$KEXES"
for x in "${NS[@]}" "${RS[@]}" "$REPS" "$J" "$REBUILD_PCT" "$REBUILD_REPS" "$ONE_REPS" "$FIRST" "$PERSIST"; do
  case "$x" in '' | *[!0-9]*) die "not a number: '$x'" ;; esac
done
for k in "${KS[@]}"; do
  case "$k" in default | curve25519) ;; *) die "--kex takes default and/or curve25519, not '$k'" ;; esac
done
for r in "${RS[@]}"; do [ "$r" -lt 10000 ] || die "RTT $r ms: too large"; done
NMAX=0
for n in "${NS[@]}"; do [ "$n" -ge 1 ] || die "N must be >= 1"; [ "$n" -gt "$NMAX" ] && NMAX=$n; done
NMIN=$NMAX
for n in "${NS[@]}"; do [ "$n" -lt "$NMIN" ] && NMIN=$n; done
[ "$REBUILD_PCT" -le 100 ] || die "--rebuild-pct is a percentage"

[ "$(id -u)" -eq 0 ] || die "must run as root (test hosts are sshd daemons on 127.0.x.y:22)"
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3) || die "python3 is needed"
for c in ssh sshd docker xargs; do
  command -v "$c" >/dev/null || [ -x "/usr/sbin/$c" ] || die "$c is needed (see /work/shared/TESTING.md or scripts/setup-deps.sh)"
done
docker compose version >/dev/null 2>&1 || die "docker compose (v2) is needed"
BASE_IMAGE=127.0.0.1:5000/rbuild/busybox:1
docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 ||
  docker pull -q "$BASE_IMAGE" >/dev/null 2>&1 ||
  die "base image $BASE_IMAGE is missing (run scripts/setup-deps.sh)"

# file descriptors: rbuild and the forwarder hold a few per host in flight
want_fds=$((NMAX * 8 + J * 16 + 1024))
[ "$want_fds" -lt 65536 ] && want_fds=65536
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$want_fds" ]; then
  ulimit -Hn "$want_fds" 2>/dev/null || want_fds=$hard
fi
ulimit -Sn "$want_fds" 2>/dev/null || ulimit -Sn "$(ulimit -Hn)"
log "ulimit -n: $(ulimit -Sn) (hard $(ulimit -Hn))"

# --- build ---------------------------------------------------------------------
if [ "$CARGO" = 1 ]; then
  log "cargo build --release"
  (cd "$REPO" && cargo build --release --quiet) || die "cargo build --release failed"
fi
[ -x "$REPO/target/release/rbuild" ] || die "$REPO/target/release/rbuild missing"

W=$(mktemp -d /tmp/rbuild-bench.XXXXXX)
chmod 755 "$W"
mkdir -p "$W/bin" "$W/cfg" "$W/inv/stacks" "$W/out" "$W/prof"
# a snapshot: the tree may be rebuilt while we run
cp "$REPO/target/release/rbuild" "$W/bin/rbuild"
RB=$W/bin/rbuild
RESULTS=$W/results.jsonl
: >"$RESULTS"
TH=$W/th

# --- cgroups (CPU accounting only) ----------------------------------------------
CGROOT=""
if [ -w /sys/fs/cgroup/cpuacct/cgroup.procs ] 2>/dev/null && [ -f /sys/fs/cgroup/cpuacct/cpuacct.usage ]; then
  CGROOT=/sys/fs/cgroup/cpuacct
else
  m=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
  [ -n "$m" ] && [ -w "$m/cgroup.procs" ] && CGROOT=$m
fi
CGC="" CGS="" CGF=""
if [ -n "$CGROOT" ]; then
  tag=rbuild-bench-$$
  CGC=$CGROOT/$tag-client CGS=$CGROOT/$tag-sshd CGF=$CGROOT/$tag-fwd
  mkdir -p "$CGC" "$CGS" "$CGF" || { CGC="" CGS="" CGF=""; }
fi
[ -n "$CGC" ] || log "no writable cgroup (cpuacct or cgroup2): client/sshd CPU will be n/a"

FWD_PIDS=()
# --persist's runtime directory: short, a socket's path is bounded
PD=$(mktemp -d /tmp/rbp.XXXXXX)
# ask the masters kept there to exit
persist_exit() {
  local s
  for s in "$PD"/rbuild/ssh/*; do
    [ -S "$s" ] && ssh -S "$s" -O exit x 2>/dev/null
  done
  return 0
}
cleanup() {
  local rc=$? p ids
  trap - EXIT INT TERM
  set +e
  log "cleaning up"
  persist_exit
  rm -rf "$PD"
  for p in "${FWD_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${FWD_PIDS[@]}"; do wait "$p" 2>/dev/null; done
  [ -d "$TH" ] && "$REPO/scripts/testhosts.sh" down "$TH" 2>/dev/null
  ids=$(docker ps -a --filter label=com.docker.compose.project \
    --format '{{.ID}} {{.Label "com.docker.compose.project"}}' | awk '$2 ~ /^bench-h[0-9]+-app$/ { print $1 }')
  # in batches: one `docker rm -f` of 500 containers removes them all at
  # once, and has stalled the engine here
  [ -n "$ids" ] && printf '%s\n' $ids | xargs -n 25 docker rm -f >/dev/null
  ids=$(docker network ls --filter label=com.docker.compose.project \
    --format '{{.ID}} {{.Label "com.docker.compose.project"}}' | awk '$2 ~ /^bench-h[0-9]+-app$/ { print $1 }')
  [ -n "$ids" ] && docker network rm $ids >/dev/null
  ids=$(docker images -aq --filter label=com.docker.compose.project | sort -u)
  [ -n "$ids" ] && ids=$(docker image inspect --format '{{.Id}} {{index .Config.Labels "com.docker.compose.project"}}' $ids |
    awk '$2 ~ /^bench-h[0-9]+-app$/ { print $1 }')
  [ -n "$ids" ] && docker image rm -f $ids >/dev/null 2>&1
  for cg in "$CGC" "$CGS" "$CGF"; do
    [ -n "$cg" ] && [ -d "$cg" ] || continue
    for p in $(cat "$cg/cgroup.procs" 2>/dev/null); do
      log "left in $(basename "$cg"): $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | cut -c1-120)"
      echo "$p" >"$CGROOT/cgroup.procs" 2>/dev/null
    done
    rmdir "$cg" 2>/dev/null
  done
  if [ "$KEEP" = 1 ]; then log "kept $W"; else rm -rf "$W"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# run a command in a cgroup (or not, without cgroups)
in_cg() {
  local cg=$1; shift
  if [ -n "$cg" ]; then
    (echo "$BASHPID" >"$cg/cgroup.procs" && exec "$@")
  else
    "$@"
  fi
}

# --- hosts ------------------------------------------------------------------------
log "bringing up $NMAX hosts (h1..h$NMAX from loopback index $FIRST) in $TH"
in_cg "$CGS" "$REPO/scripts/testhosts.sh" up "$TH" "$NMAX" "$FIRST" || die "testhosts.sh up failed"
seq 1 "$NMAX" | sed 's/^/h/' >"$W/hostnames"
# processes in the sshd cgroup when no session runs: one listening sshd per host
SERVER_IDLE=-1
[ -n "$CGS" ] && SERVER_IDLE=$(wc -w <"$CGS/cgroup.procs")

# --- forwarders (RTT > 0) ------------------------------------------------------------
port_of() { echo $((20000 + $1)); }
for r in "${RS[@]}"; do
  [ "$r" -gt 0 ] || continue
  [ -f "$W/fwd-$r.pid" ] && continue
  p=$(port_of "$r")
  (
    [ -n "$CGF" ] && echo "$BASHPID" >"$CGF/cgroup.procs"
    exec "$PY" "$BENCH/delayfwd.py" --rtt-ms "$r" --hosts-file "$TH/hosts.txt" --listen-port "$p" --target-port 22
  ) >"$W/fwd-$r.out" 2>"$W/fwd-$r.err" &
  FWD_PIDS+=($!)
  echo $! >"$W/fwd-$r.pid"
  for _ in $(seq 200); do grep -q '^ready' "$W/fwd-$r.out" 2>/dev/null && break; sleep 0.05; done
  grep -q '^ready' "$W/fwd-$r.out" || { cat "$W/fwd-$r.err" >&2; die "forwarder for RTT $r ms did not start"; }
  log "forwarder: RTT $r ms on port $p of every host's address ($(cat "$W/fwd-$r.out"))"
done

# --- ssh configs: per RTT and kex (used by the floor and rbuild alike) ---------------------
cfg_of() { echo "$W/cfg/rtt$1-$2.conf"; }
for r in "${RS[@]}" 0; do
  for k in "${KS[@]}" default; do
    c=$(cfg_of "$r" "$k")
    if [ "$r" -gt 0 ]; then
      # through the forwarder; HostKeyAlias keeps known_hosts ("hN key") matching, strict checking stays on
      awk -v P="$(port_of "$r")" '/^Host /{ n = $2 } /^  Port 22$/{ print "  Port " P; print "  HostKeyAlias " n; next } { print }' \
        "$TH/ssh_config" >"$c"
    else
      cp "$TH/ssh_config" "$c"
    fi
    if [ "$k" = curve25519 ]; then printf 'Host *\n  KexAlgorithms curve25519-sha256\n' >>"$c"; fi
  done
done
KEX_SEEN=""
for r in "${RS[@]}"; do
  for k in "${KS[@]}"; do
    c=$(cfg_of "$r" "$k")
    got=$(ssh -v -F "$c" h1 true 2>&1 | tr -d '\r' | sed -n 's/.*kex: algorithm: //p' | head -n1) ||
      die "ssh -F $c h1 true failed"
    [ -n "$got" ] || die "ssh -F $c h1 true failed: $(ssh -F "$c" h1 true 2>&1 | tail -n 2)"
    KEX_SEEN+="rtt $r ms, $k: $got; "
  done
done
log "negotiated: $KEX_SEEN"

# --- stacks and inventories -------------------------------------------------------------
S=$W/inv/stacks
mkdir -p "$S/img" "$S/build"
# network_mode none: no per-stack bridge network (the engine's default address
# pools allow only ~30 networks, far fewer than the hosts)
cat >"$S/img/compose.yaml" <<EOF
services:
  app:
    image: $BASE_IMAGE
    command: ["sleep", "1000000"]
    init: true
    network_mode: none
EOF
cat >"$S/build/compose.yaml" <<EOF
services:
  app:
    build: .
    command: ["sleep", "1000000"]
    init: true
    network_mode: none
EOF
printf 'FROM %s\nCOPY stamp /stamp\n' "$BASE_IMAGE" >"$S/build/Dockerfile"
echo "stamp $(date +%s%N)" >"$S/build/stamp"

# host k has the build stack when it is one of the REBUILD_PCT % (evenly spread)
is_build_host() { [ $(($1 * REBUILD_PCT / 100)) -gt $((($1 - 1) * REBUILD_PCT / 100)) ]; }
n_build_hosts() { echo $(($1 * REBUILD_PCT / 100)); }
write_inventory() {
  local n=$1 k d
  {
    echo "# generated by $PROG: $n hosts, one stack each"
    echo "hosts:"
    for ((k = 1; k <= n; k++)); do
      d=img
      is_build_host "$k" && d=build
      printf '  h%d:\n    stacks:\n      - name: bench-h%d-app\n        compose_file: stacks/%s/compose.yaml\n' "$k" "$k" "$d"
    done
  } >"$W/inv/n$n.yaml"
}
for n in "${NS[@]}" 1 "$NMAX"; do write_inventory "$n"; done

# measure LABELS... -- CMD...: one JSON line into $RESULTS; returns the command's status
RUN_NO=0
measure() {
  local labels=() extra=()
  while [ "$1" != -- ]; do labels+=(--label "$1"); shift; done
  shift
  RUN_NO=$((RUN_NO + 1))
  local errf=$W/out/run$RUN_NO.err outf=${MEASURE_STDOUT:-$W/out/run$RUN_NO.out}
  [ -n "$CGC" ] && extra+=(--cg-client "$CGC" --cg-server "$CGS" --cg-fwd "$CGF" --server-idle "$SERVER_IDLE")
  [ -n "${MEASURE_N:-}" ] && extra+=(--logs "$TH" --nhosts "$MEASURE_N")
  [ -n "${MEASURE_HWM:-}" ] && extra+=(--hwm)
  local line rc=0
  line=$("$PY" "$BENCH/measure.py" "${labels[@]}" "${extra[@]}" --stdout "$outf" -- "$@" 2>"$errf") || rc=$?
  [ -n "$line" ] || { cat "$errf" >&2; die "measure.py failed"; }
  echo "$line" >>"$RESULTS"
  LAST=$line
  if [ "$rc" -ne 0 ]; then
    log "FAILED (run $RUN_NO): $*"
    tail -n 5 "$errf" | sed 's/^/    stderr: /' >&2
    tail -n 5 "$outf" 2>/dev/null | sed 's/^/    stdout: /' >&2
  fi
  return "$rc"
}
field() { "$PY" -c 'import json,sys; v=json.loads(sys.argv[1]).get(sys.argv[2]); print("n/a" if v is None else v)' "$LAST" "$1"; }

floor() { # N CFG
  head -n "$1" "$W/hostnames" | xargs -P "$J" -I{} ssh -F "$2" {} true
}

# --- set-up: build every stack once ------------------------------------------------------
C0=$(cfg_of 0 default)
log "first build of $NMAX stacks (set-up: image-only services; $(n_build_hosts "$NMAX") tiny builds)"
MEASURE_STDOUT=$W/out/first.json measure case=first tool=rbuild n="$NMAX" j="$J" -- \
  "$RB" -F "$C0" -i "$W/inv/n$NMAX.yaml" -j "$J" --json ||
  die "the first build failed; see above and $W/out/first.json"
log "first build: $(field wall_s) s"
"$RB" -F "$C0" -i "$W/inv/n$NMAX.yaml" -j "$J" --dry-run --json >"$W/out/dry.json" || die "dry run failed"
"$PY" - "$W/out/dry.json" <<'EOF' || die "stacks are not up to date after the first build"
import json, sys
d = json.load(open(sys.argv[1]))
bad = [r for r in d["results"] if r["action"] != "skipped"]
if bad:
    print(bad[:3], file=sys.stderr); sys.exit(1)
EOF
# what the registries were asked by one up-to-date run of all the hosts (the digest checks)
"$RB" -F "$C0" -i "$W/inv/n$NMAX.yaml" -j "$J" --json >"$W/out/registry.json" || true
"$PY" - "$W/out/registry.json" "$NMAX" >>"$RESULTS" <<'EOF' || die "no registry counts in the run's document"
import json, sys
d = json.load(open(sys.argv[1]))
r = d["registry"]
print(json.dumps({"case": "registry", "n": int(sys.argv[2]), "references": r["references"],
                  "requests": r["requests"], "stacks": len(d["results"])}))
EOF
log "registry: $(tail -n 1 "$RESULTS")"

# settle: the first build leaves the engine busy for a while (500 containers
# starting, image clean-up); wait until the machine is idle (under 15% busy
# over 5 s), for at most 2 minutes, so the first cells are not measured on it
busy_pct() { # over the next 5 s, from /proc/stat
  local a b
  read -r _ a1 a2 a3 a4 a5 a6 a7 a8 _ </proc/stat
  sleep 5
  read -r _ b1 b2 b3 b4 b5 b6 b7 b8 _ </proc/stat
  a=$((b1 + b2 + b3 + b6 + b7 + b8 - a1 - a2 - a3 - a6 - a7 - a8))
  b=$((a + b4 + b5 - a4 - a5))
  echo $((b > 0 ? 100 * a / b : 0))
}
for _ in $(seq 24); do
  pct=$(busy_pct)
  [ "$pct" -lt 15 ] && break
  log "settling: machine ${pct}% busy"
done
log "settled: machine ${pct}% busy"

# warm-up (page cache, sshd binaries): not recorded
floor "$NMIN" "$C0" || true
"$RB" -F "$C0" -i "$W/inv/n$NMIN.yaml" -j "$J" -q || true

# --- 1+2. up to date: floor vs rbuild ------------------------------------------------------
for n in "${NS[@]}"; do
  for r in "${RS[@]}"; do
    for k in "${KS[@]}"; do
      c=$(cfg_of "$r" "$k")
      for ((rep = 1; rep <= REPS; rep++)); do
        # alternate the order so drift (a concurrent load) hits both alike
        # (and rbuild with --no-digests: what the registry lookups cost)
        order="floor rbuild rbuild-nodigests"
        [ $((rep % 2)) -eq 0 ] && order="rbuild-nodigests rbuild floor"
        line="N=$n rtt=${r}ms kex=$k rep $rep/$REPS:"
        for tool in $order; do
          if [ "$tool" = rbuild-nodigests ]; then
            MEASURE_N=$n MEASURE_HWM=1 measure case=uptodate tool=rbuild-nodigests n="$n" rtt="$r" kex="$k" rep="$rep" -- \
              "$RB" -F "$c" -i "$W/inv/n$n.yaml" -j "$J" -q --no-digests || true
          elif [ "$tool" = floor ]; then
            MEASURE_N=$n measure case=uptodate tool=floor n="$n" rtt="$r" kex="$k" rep="$rep" -- \
              bash -c 'head -n "$1" "$2" | xargs -P "$3" -I{} ssh -F "$4" {} true' floor "$n" "$W/hostnames" "$J" "$c" || true
          else
            MEASURE_N=$n MEASURE_HWM=1 measure case=uptodate tool=rbuild n="$n" rtt="$r" kex="$k" rep="$rep" -- \
              "$RB" -F "$c" -i "$W/inv/n$n.yaml" -j "$J" -q || true
            [ -s "$W/out/run$RUN_NO.out" ] && log "note: rbuild -q printed something (run $RUN_NO): $(head -c 300 "$W/out/run$RUN_NO.out")"
          fi
          line+=" $tool $(field wall_s)s"
        done
        log "$line"
      done
    done
  done
done

# --- 6. a repeated check within the persist window -----------------------------------------
# A first `--persist` run leaves a master per host (recorded as tool=cold); each repetition
# then times a run through them (tool=warm) beside a fresh floor, in alternating order.
if [ "$PERSIST" -gt 0 ]; then
  k=${KS[0]}
  for n in "${NS[@]}"; do
    for r in "${RS[@]}"; do
      c=$(cfg_of "$r" "$k")
      persist_exit
      XDG_RUNTIME_DIR=$PD MEASURE_N=$n measure case=persist tool=cold n="$n" rtt="$r" kex="$k" rep=0 -- \
        "$RB" -F "$c" -i "$W/inv/n$n.yaml" -j "$J" -q --persist "$PERSIST" || true
      line="persist N=$n rtt=${r}ms kex=$k: first $(field wall_s)s;"
      for ((rep = 1; rep <= REPS; rep++)); do
        order="floor warm"
        [ $((rep % 2)) -eq 0 ] && order="warm floor"
        for tool in $order; do
          if [ "$tool" = floor ]; then
            MEASURE_N=$n measure case=persist tool=floor n="$n" rtt="$r" kex="$k" rep="$rep" -- \
              bash -c 'head -n "$1" "$2" | xargs -P "$3" -I{} ssh -F "$4" {} true' floor "$n" "$W/hostnames" "$J" "$c" || true
          else
            XDG_RUNTIME_DIR=$PD MEASURE_N=$n MEASURE_HWM=1 measure case=persist tool=warm n="$n" rtt="$r" kex="$k" rep="$rep" -- \
              "$RB" -F "$c" -i "$W/inv/n$n.yaml" -j "$J" -q --persist "$PERSIST" || true
          fi
          line+=" $tool $(field wall_s)s"
        done
      done
      log "$line"
      persist_exit
    done
  done
fi

# --- 4. one host; 5. start-up -------------------------------------------------------------
for r in "${RS[@]}"; do
  for k in "${KS[@]}"; do
    c=$(cfg_of "$r" "$k")
    for ((rep = 1; rep <= ONE_REPS; rep++)); do
      MEASURE_N=1 measure case=one tool=floor n=1 rtt="$r" kex="$k" rep="$rep" -- ssh -F "$c" h1 true || true
      MEASURE_N=1 MEASURE_HWM=1 measure case=one tool=rbuild n=1 rtt="$r" kex="$k" rep="$rep" -- \
        "$RB" -F "$c" -i "$W/inv/n1.yaml" -q || true
    done
    log "one host rtt=${r}ms kex=$k: done"
  done
done
for ((rep = 1; rep <= ONE_REPS; rep++)); do
  measure case=version tool=rbuild rep="$rep" -- "$RB" --version || true
done

# --- profile extras ------------------------------------------------------------------------
if [ "$PROFILE" = 1 ]; then
  n=$NMIN c=$(cfg_of 0 "${KS[0]}")
  log "profile: N=$n, RTT 0, kex ${KS[0]}"
  strace -f -qq -z -e trace=execve -e signal=none -o "$W/prof/execve.txt" \
    "$RB" -F "$c" -i "$W/inv/n$n.yaml" -j "$J" -q || true
  strace -f -c -o "$W/prof/strace-c.txt" "$RB" -F "$c" -i "$W/inv/n$n.yaml" -j "$J" -q || true
  # one host's timeline: rbuild start, the ssh exec (the master, running the check as its
  # own session), its exit
  strace -f -ttt -qq -z -e trace=execve,connect,exit_group -e signal=none -o "$W/prof/timeline.txt" \
    "$RB" -F "$c" -i "$W/inv/n1.yaml" -q || true
  {
    echo "## Profile (N=$n, RTT 0, kex ${KS[0]})"
    echo
    echo "Programs exec'd by rbuild and its children (strace -f -e execve), per host:"
    echo
    echo '```'
    sed -n 's/^\([0-9]*\) *execve("\([^"]*\)".*/\1 \2/p' "$W/prof/execve.txt" | sort -u | awk '{ print $2 }' | sort | uniq -c |
      awk -v n="$n" '{ printf "%6d  %-30s %.2f per host\n", $1, $2, $1 / n }'
    echo '```'
    echo
    echo 'strace -f -c (rbuild and the ssh processes it forks, by time; futex and wait4 are waiting, not CPU):'
    echo
    echo '```'
    sed -n '1,20p' "$W/prof/strace-c.txt"
    echo '```'
    echo
    echo "One host, RTT 0 (strace -ttt; ms since rbuild's execve):"
    echo
    echo '```'
    awk 'NR == 1 { t0 = $2 } { printf "%8.1f  %s\n", ($2 - t0) * 1000, substr($0, index($0, $3), 110) }' "$W/prof/timeline.txt"
    echo '```'
  } >"$W/prof/profile.md"
fi

# --- 3. one stack in ten needs a rebuild ------------------------------------------------------
if [ "$REBUILD_PCT" -gt 0 ]; then
  k=${KS[0]}
  for n in "${NS[@]}"; do
    [ "$(n_build_hosts "$n")" -gt 0 ] || continue
    for r in "${RS[@]}"; do
      for ((rep = 1; rep <= REBUILD_REPS; rep++)); do
        echo "stamp $(date +%s%N)" >"$S/build/stamp" # the build hosts' stack changed
        MEASURE_N=$n MEASURE_HWM=1 MEASURE_STDOUT=$W/out/rebuild-$n-$r-$rep.json \
          measure case=rebuild tool=rbuild n="$n" rtt="$r" kex="$k" rep="$rep" \
          json_out="$W/out/rebuild-$n-$r-$rep.json" -- \
          "$RB" -F "$(cfg_of "$r" "$k")" -i "$W/inv/n$n.yaml" -j "$J" --json || true
        log "rebuild case N=$n rtt=${r}ms ($(n_build_hosts "$n") stacks due): $(field wall_s)s"
      done
    done
  done
fi

# --- report ---------------------------------------------------------------------------------
{
  echo "# rbuild benchmark"
  echo
  echo "- machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1), kernel $(uname -r), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)"
  echo "- $(ssh -V 2>&1); $(docker --version); $(docker compose version)"
  echo "- rbuild $("$RB" --version | awk '{ print $2 }') (release build), git $(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null)$(cd "$REPO" && git diff --quiet 2>/dev/null || echo '+uncommitted')"
  echo "- hosts: scripts/testhosts.sh, sshd on 127.0.x.y:22 from index $FIRST, LogLevel VERBOSE; root's .bashrc and .profile MASKED (empty) in every host's mount namespace"
  echo "- concurrency -j $J for rbuild and the floor; $REPS repetitions; RTT via scripts/bench/delayfwd.py (RTT/2 each way, connect 1.5 RTT)"
  echo "- negotiated key exchange: $KEX_SEEN"
  echo "- load average at start of the report: $(cut -d' ' -f1-3 /proc/loadavg) (the machine may be shared: see 'other load CPU')"
  echo
} >"$W/header.md"
"$PY" "$BENCH/report.py" "$RESULTS" "$W/header.md" | tee "$W/report.md"
[ -f "$W/prof/profile.md" ] && cat "$W/prof/profile.md" | tee -a "$W/report.md"
if [ "$KEEP" = 1 ]; then
  log "raw results: $RESULTS; report: $W/report.md"
else
  cp "$RESULTS" "/tmp/rbuild-bench-results.$$.jsonl" && cp "$W/report.md" "/tmp/rbuild-bench-report.$$.md" &&
    log "raw results: /tmp/rbuild-bench-results.$$.jsonl; report: /tmp/rbuild-bench-report.$$.md"
fi
