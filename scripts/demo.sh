#!/usr/bin/env bash
# rbuild demo: a real fleet rebuild on this machine.
#
# Usage (as root, on Debian 12): scripts/demo.sh [--keep]
#
# Installs and starts what it needs (scripts/setup-deps.sh: Docker engine,
# Compose v1 and v2, a local image registry), builds rbuild, starts three
# local hosts that are machines of their own (h1..h3: each its own network
# namespace and address, sshd with strict host-key checking, Docker engine
# and disk; h3 with Compose v1 only), and runs rbuild against them:
#   1. the first run builds every stack (first_build): `web` on h1 and h3,
#      publishing port 8080 on each, `cache` on h2;
#   2. a second run has nothing to do (up_to_date: one ssh command per host);
#   3. web's page changes: only the hosts running it rebuild, each serves
#      the new page, and the data its container wrote stays;
#   4. a dry run with --force-rebuild shows what would happen, changing nothing;
#   5. a broken change fails its health gate on the canary, is rolled back
#      there by itself, and the other host is not touched;
#   6. the stack's history on one host.
# Then it tears everything down, unless --keep is given (the hosts stay up
# and the commands to use them are printed).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
keep=0
[ "${1:-}" = --keep ] && keep=1

if [ "$(id -u)" != 0 ]; then
	echo "demo: run as root (it starts dockerd and sshd test hosts)" >&2
	exit 2
fi
if ! command -v cargo >/dev/null 2>&1; then
	echo "demo: cargo is missing: install Rust (https://rustup.rs), then run this again" >&2
	exit 2
fi

if [ -t 2 ] && [ -z "${NO_COLOR:-}" ]; then
	say() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }
else
	say() { printf '\n== %s\n' "$*" >&2; }
fi

"$here/setup-deps.sh"

say "building rbuild"
(cd "$repo" && cargo build --release --quiet)
rbuild=$repo/target/release/rbuild

work=/tmp/rbuild-demo
hosts=$work/hosts
th() { "$here/testhosts.sh" "$@"; }

cleanup() {
	[ "$keep" = 1 ] && return 0
	# the hosts go with their engines, containers and files
	th down "$hosts" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

# A fresh start: hosts, their state and stack directories, the stacks.
th down "$hosts" >/dev/null 2>&1 || true
rm -rf "$work"
mkdir -p "$work"
cp -r "$here/demo/stacks" "$work/stacks"
chmod 600 "$work/stacks/web/.env" # git does not keep modes; secrets stay 0600

say "starting three hosts, each with its own Docker engine (h3 has Compose v1 only)"
RBUILD_TESTHOST_ENGINE=own RBUILD_TESTHOST_COMPOSE_V1=h3 th up "$hosts" 3 1

# One stack on two hosts, under one name, as on a real fleet, rolled out
# canary first.
cat >"$work/inventory.yaml" <<'INV'
defaults:
  build_period: 1d
  up_timeout: 60
stacks:
  web:
    compose_file: stacks/web/compose.yml
    hosts: [h1, h3]
    rollout: {canary: true}   # one host first; the other only once it passed
hosts:
  h1: {}
  h2:
    stacks:
      - name: cache
        compose_file: stacks/cache/compose.yml
  h3: {}
INV

page() { curl -fsS --max-time 5 "http://$(th addr "$hosts" "$1"):8080/" 2>&1 || true; }

# a run may fail (5. is meant to): only a usage error stops the demo
run() {
	printf '$ rbuild %s\n' "$*" >&2
	rc=0
	"$rbuild" -F "$hosts/ssh_config" -i "$work/inventory.yaml" "$@" || rc=$?
	if [ "$rc" = 2 ]; then
		echo "demo: rbuild refused its arguments or the inventory" >&2
		exit 1
	fi
}

say "1. first run: every stack is built"
run
say "2. second run: nothing is due (one ssh command per host, no docker CLI)"
run
printf 'h1 serves: %s\n' "$(page h1)" >&2
say "3. the web stack's page changes: only the hosts running it rebuild"
echo '<h1>rbuild demo, v2</h1>' >"$work/stacks/web/index.html"
run
printf 'h1 serves: %s\nh3 serves: %s\n' "$(page h1)" "$(page h3)" >&2
printf 'the data web wrote on h1 stayed (a line per start):\n' >&2
sed 's/^/  /' "$hosts/h1/srv/web/data/starts" >&2 || true
say "4. --dry-run --force-rebuild: what would happen, nothing changes"
run --dry-run --force-rebuild
say "5. a broken change (its healthcheck now fails): rolled back on its canary; the other host is not touched"
sed -i 's|CMD test -f /www/index.html|CMD test -f /www/missing.html|' "$work/stacks/web/Dockerfile"
run --up-timeout-period 30
say "6. what h1 recorded for web"
"$rbuild" -F "$hosts/ssh_config" -i "$work/inventory.yaml" history h1 web || true
say "the containers that run now, each host's own"
for h in h1 h2 h3; do
	th docker "$hosts" "$h" ps --format "$h"'\t{{.Label "com.docker.compose.project"}}\t{{.Image}}\t{{.Status}}' >&2 || true
done

if [ "$keep" = 1 ]; then
	cat >&2 <<EOF

The hosts stay up. Try:
  $rbuild -F $hosts/ssh_config -i $work/inventory.yaml --json
    ssh -F $hosts/ssh_config h1 cat /var/lib/rbuild/web.state
  $here/testhosts.sh docker $hosts h1 ps
Tear down: $here/testhosts.sh down $hosts
EOF
fi
