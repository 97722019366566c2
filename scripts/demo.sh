#!/usr/bin/env bash
# rbuild demo: a real fleet rebuild on this machine.
#
# Usage (as root, on Debian 12): scripts/demo.sh [--keep]
#
# Installs and starts what it needs (scripts/setup-deps.sh: Docker engine,
# Compose v1 and v2, a local image registry), builds rbuild, starts three
# local sshd "hosts" (h1..h3 on 127.0.1.1-3, strict host-key checking, h3
# with Compose v1 only), and runs rbuild against them:
#   1. the first run builds every stack (first_build);
#   2. a second run has nothing to do (up_to_date: one ssh command per host);
#   3. one stack's file changes: only the hosts running it rebuild;
#   4. a dry run with --force-rebuild shows what would happen, changing nothing;
#   5. a broken change fails its health gate and is rolled back by itself;
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
projects="demo-web demo-cache"

cleanup() {
	[ "$keep" = 1 ] && return 0
	"$here/testhosts.sh" down "$hosts" >/dev/null 2>&1 || true
	for p in $projects; do
		docker ps -aq --filter "label=com.docker.compose.project=$p" | xargs -r docker rm -f >/dev/null 2>&1 || true
		docker network rm "${p}_default" >/dev/null 2>&1 || true
	done
	docker image rm demo-web-web demo-web-v1_web >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

# A fresh start: hosts, their state and stack directories, the stacks.
"$here/testhosts.sh" down "$hosts" >/dev/null 2>&1 || true
for p in $projects; do
	docker ps -aq --filter "label=com.docker.compose.project=$p" | xargs -r docker rm -f >/dev/null 2>&1 || true
done
rm -rf "$work"
mkdir -p "$work"
cp -r "$here/demo/stacks" "$work/stacks"
chmod 600 "$work/stacks/web/.env" # git does not keep modes; secrets stay 0600

say "starting three sshd test hosts (h3 has Compose v1 only)"
RBUILD_TESTHOST_COMPOSE_V1=h3 "$here/testhosts.sh" up "$hosts" 3 1

# One engine serves all three "hosts", so each host's stacks get their own
# compose project names here; on a real fleet the same name on every host is
# the usual thing.
cat >"$work/inventory.yaml" <<'EOF'
defaults:
  build_period: 1d
  up_timeout: 60
hosts:
  h1:
    stacks:
      - name: demo-web
        compose_file: stacks/web/compose.yml
  h2:
    stacks:
      - name: demo-cache
        compose_file: stacks/cache/compose.yml
  h3:
    stacks:
      - name: demo-web-v1
        compose_file: stacks/web/compose.yml
EOF
projects="$projects demo-web-v1"

run() {
	printf '$ rbuild %s\n' "$*" >&2
	"$rbuild" -F "$hosts/ssh_config" -i "$work/inventory.yaml" "$@" || true
}

say "1. first run: every stack is built"
run
say "2. second run: nothing is due (one ssh command per host, no docker CLI)"
run
say "3. the web stack's page changes: only the hosts running it rebuild"
echo '<h1>rbuild demo, v2</h1>' >"$work/stacks/web/index.html"
run
say "4. --dry-run --force-rebuild: what would happen, nothing changes"
run --dry-run --force-rebuild
say "5. a broken change (its healthcheck now fails): rolled back by itself"
sed -i 's|CMD test -f /www/index.html|CMD test -f /www/missing.html|' "$work/stacks/web/Dockerfile"
run --up-timeout-period 30
say "6. what h1 recorded for demo-web"
"$rbuild" -F "$hosts/ssh_config" -i "$work/inventory.yaml" history h1 demo-web || true
say "the containers that run now"
docker ps --filter label=com.docker.compose.project --format '{{.Label "com.docker.compose.project"}}\t{{.Image}}\t{{.Status}}' |
	grep '^demo-' >&2 || true

if [ "$keep" = 1 ]; then
	cat >&2 <<EOF

The hosts stay up. Try:
  $rbuild -F $hosts/ssh_config -i $work/inventory.yaml --json
  ssh -F $hosts/ssh_config h1 cat /var/lib/rbuild/demo-web.state
Tear down: $here/testhosts.sh down $hosts
EOF
fi
