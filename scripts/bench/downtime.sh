#!/usr/bin/env bash
# downtime.sh - how long a rebuild takes a service away (scripts/bench.sh --downtime).
#
# Usage: scripts/bench.sh --downtime [options]   (or scripts/bench/downtime.sh [options])
#   --reps N        forced rebuilds per case                        (default 5)
#   --cases LIST    plain,zero_downtime                             (default both)
#   --settle SECS   the stacks' settle window                       (default 2)
#   --rbuild PATH   the rbuild binary    (default target/release/rbuild, else target/debug/rbuild;
#                   its own speed does not matter here: the downtime is the engine's)
#   --first I       loopback index of the test host (default 2901)
#   --keep          keep the work directory
#
# Not a test: no pass/fail. One test host (scripts/testhosts.sh, own-engine mode: a small
# machine with its own network namespace, filesystem and dockerd) runs one stack per case,
# a busybox `httpd` service built `FROM 127.0.0.1:5000/rbuild/busybox:1` + `COPY stamp`
# (each rebuild makes a new image) with a 1 s healthcheck and `init: true`:
#   plain          publishes the fixed host port 8080: the normal rebuild (build, pull,
#                  one `up`, gate). Two clients poll during `rbuild --force-rebuild`:
#                  HTTP on ADDR:8080 every 10 ms (a fresh connection each, 100 ms timeout), and the host's
#                  engine API every 20 ms (a running, healthy container of the service).
#   zero_downtime  no fixed host port, `zero_downtime: true`: the new container is started
#                  beside the old one and gated before the old one goes. Only the engine
#                  API client (there is no fixed port to poll).
# Each rep rewrites the stamp and runs `rbuild --force-rebuild --json`, the clients running
# from 1 s before until 1 s after. scripts/bench/poll.py defines an outage (a run of failed
# probes, from the first failed probe to the next good one) and prints per rep; this
# prints min / median / max over the reps of the longest outage and of the total outage
# per rebuild, in ms, as a Markdown table.
set -euo pipefail

PROG=downtime.sh
log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
usage() { sed -n '3,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

REPO=$(cd "$(dirname "$0")/../.." && pwd)
BENCH=$REPO/scripts/bench
REPS=5 CASES=plain,zero_downtime SETTLE=2 RB="" FIRST=2901 KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --reps) REPS=$2; shift 2 ;;
    --cases) CASES=$2; shift 2 ;;
    --settle) SETTLE=$2; shift 2 ;;
    --rbuild) RB=$2; shift 2 ;;
    --first) FIRST=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h | --help) usage ;;
    *) log "unknown option $1"; usage ;;
  esac
done
for x in "$REPS" "$SETTLE" "$FIRST"; do
  case "$x" in '' | *[!0-9]*) die "not a number: '$x'" ;; esac
done
IFS=, read -r -a CS <<<"$CASES"
for c in "${CS[@]}"; do
  case "$c" in plain | zero_downtime) ;; *) die "--cases takes plain and/or zero_downtime, not '$c'" ;; esac
done
[ "$(id -u)" -eq 0 ] || die "must run as root (the test host is an sshd with its own engine)"
if [ -z "$RB" ]; then
  RB=$REPO/target/release/rbuild
  [ -x "$RB" ] || RB=$REPO/target/debug/rbuild
fi
[ -x "$RB" ] || die "no rbuild binary (cargo build, or --rbuild PATH)"
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3) || die "python3 is needed"
BASE_IMAGE=127.0.0.1:5000/rbuild/busybox:1
docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 ||
  die "base image $BASE_IMAGE is missing (run scripts/setup-deps.sh)"

W=$(mktemp -d /tmp/rbuild-downtime.XXXXXX)
chmod 755 "$W"
TH=$W/th
cp "$RB" "$W/rbuild"
RB=$W/rbuild
POLLERS=()
cleanup() {
  local rc=$? p
  trap - EXIT INT TERM
  set +e
  for p in "${POLLERS[@]}"; do kill -TERM "$p" 2>/dev/null; done
  [ -d "$TH" ] && "$REPO/scripts/testhosts.sh" down "$TH" >/dev/null 2>&1
  if [ "$KEEP" = 1 ]; then log "kept $W"; else rm -rf "$W"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "bringing up one host (own engine, index $FIRST) in $TH"
RBUILD_TESTHOST_ENGINE=own RBUILD_TESTHOST_TIMEOUT=120 "$REPO/scripts/testhosts.sh" up "$TH" 1 "$FIRST" >/dev/null ||
  die "testhosts.sh up failed"
ADDR=$("$REPO/scripts/testhosts.sh" addr "$TH" h1)
SOCK=$TH/h1/run/docker.sock

# --- the stacks ---------------------------------------------------------------------
mkdir -p "$W/inv/stacks"
write_stack() { # CASE: stacks/CASE/{Dockerfile,compose.yml,stamp}
  local d=$W/inv/stacks/$1 ports
  mkdir -p "$d"
  printf 'FROM %s\nRUN mkdir -p /www && echo ok >/www/index.html\nCOPY stamp /stamp\nCMD ["httpd", "-f", "-p", "8080", "-h", "/www"]\n' \
    "$BASE_IMAGE" >"$d/Dockerfile"
  if [ "$1" = plain ]; then ports='    ports:\n      - "8080:8080"\n'; else ports=''; fi
  printf 'services:\n  web:\n    build: .\n    init: true\n%b    healthcheck:\n      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"]\n      interval: 1s\n      timeout: 3s\n      retries: 30\n' \
    "$ports" >"$d/compose.yml"
  echo "stamp $(date +%s%N)" >"$d/stamp"
}
for c in "${CS[@]}"; do
  write_stack "$c"
  {
    echo "# generated by $PROG"
    echo "hosts:"
    echo "  h1:"
    echo "    stacks:"
    echo "      - name: bench-down-$c"
    echo "        compose_file: stacks/$c/compose.yml"
    echo "        settle: $SETTLE"
    if [ "$c" = zero_downtime ]; then echo "        zero_downtime: true"; fi
  } >"$W/inv/$c.yaml"
done

rbuild() { # CASE ARGS...
  local c=$1
  shift
  "$RB" -F "$TH/ssh_config" -i "$W/inv/$c.yaml" "$@"
}
for c in "${CS[@]}"; do
  log "first build of $c"
  rbuild "$c" --json >"$W/first-$c.json" || { cat "$W/first-$c.json" >&2; die "the first build of $c failed"; }
done

# --- the reps --------------------------------------------------------------------------
RESULTS=$W/results.jsonl
: >"$RESULTS"
for c in "${CS[@]}"; do
  project=bench-down-$c
  for ((rep = 1; rep <= REPS; rep++)); do
    echo "stamp $(date +%s%N)" >"$W/inv/stacks/$c/stamp"
    POLLERS=()
    if [ "$c" = plain ]; then
      "$PY" "$BENCH/poll.py" --http "$ADDR:8080" --every-ms 10 --timeout-ms 100 "$W/$c-$rep-http.json" &
      POLLERS+=($!)
    fi
    "$PY" "$BENCH/poll.py" --docker-sock "$SOCK" --project "$project" --service web --every-ms 20 "$W/$c-$rep-ps.json" &
    POLLERS+=($!)
    sleep 1
    t0=$(date +%s%N)
    rc=0
    rbuild "$c" --json --force-rebuild >"$W/$c-$rep-run.json" 2>"$W/$c-$rep-run.err" || rc=$?
    t1=$(date +%s%N)
    sleep 1
    for p in "${POLLERS[@]}"; do kill -TERM "$p"; done
    for p in "${POLLERS[@]}"; do wait "$p" || true; done
    POLLERS=()
    "$PY" - "$W" "$c" "$rep" "$rc" $(((t1 - t0) / 1000000)) "$project" >>"$RESULTS" <<'EOF'
import json, os, sys
w, case, rep, rc, wall_ms, project = sys.argv[1:]
rec = {"case": case, "rep": int(rep), "rc": int(rc), "wall_ms": int(wall_ms)}
try:
    doc = json.load(open(f"{w}/{case}-{rep}-run.json"))
    row = [r for r in doc["results"] if r["stack"] == project][0]
    rec["action"] = row["action"]
    rec["apply_ms"] = row.get("duration_ms")
except Exception as e:  # noqa: BLE001
    rec["action"] = f"no row: {e}"
for probe in ("http", "ps"):
    p = f"{w}/{case}-{rep}-{probe}.json"
    if os.path.exists(p):
        rec[probe] = json.load(open(p))
print(json.dumps(rec))
line = f"{case} rep {rep}: {rec['action']} in {rec['wall_ms']} ms"
for p in ("http", "ps"):
    if p in rec:
        r = rec[p]
        line += f"; {p}: {r['outages']} outage(s), longest {r['longest_ms']} ms, total {r['total_ms']} ms ({r['failed']}/{r['probes']} probes failed)"
        if "containers_seen" in r:
            line += f", {r['containers_seen']} containers seen"
print(f"downtime.sh: {line}", file=sys.stderr)
EOF
  done
done

# --- the table --------------------------------------------------------------------------
"$PY" - "$RESULTS" <<'EOF'
import json, statistics as st, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def mmm(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return "n/a"
    return f"{min(xs):.0f} / {st.median(xs):.0f} / {max(xs):.0f}"
print("| case | client | reps | rebuilt | longest outage ms (min / median / max) | total outage ms (min / median / max) | outages per rebuild | rbuild wall s (median) |")
print("|---|---|---|---|---|---|---|---|")
for case in dict.fromkeys(r["case"] for r in rows):
    rs = [r for r in rows if r["case"] == case]
    for probe, what in (("http", "HTTP on the fixed port, every 10 ms"), ("ps", "engine API: a running, healthy container, every 20 ms")):
        ps = [r[probe] for r in rs if probe in r]
        if not ps:
            continue
        ok = sum(1 for r in rs if r["action"] == "rebuilt")
        outs = sorted({p["outages"] for p in ps})
        print(f"| {case} | {what} | {len(rs)} | {ok} | {mmm([p['longest_ms'] for p in ps])} | {mmm([p['total_ms'] for p in ps])} | {'–'.join(map(str, [outs[0], outs[-1]])) if len(outs) > 1 else outs[0]} | {st.median(r['wall_ms'] for r in rs) / 1000:.1f} |")
EOF
log "raw records: $RESULTS"
[ "$KEEP" = 1 ] && cp "$RESULTS" "$W/keep-results.jsonl"
exit 0
