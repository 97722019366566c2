#!/bin/sh
# examples/ci/deploy.sh: a CI deploy step. Rebuilds the stacks of the
# selected hosts, prints the summary table to the job's log, and fails the
# job when any stack failed or was rolled back (rbuild's exit status: 0 all
# fine, 1 a stack failed or was rolled back or a host could not be reached,
# 2 a usage or inventory error, before any host is contacted).
#
#   RBUILD      the rbuild binary                  (default: rbuild in the PATH)
#   INVENTORY   the inventory file                 (default: deploy/inventory.yaml)
#   LIMIT       hosts to deploy to (--limit globs) (default: every host)
#   FORCE       1: rebuild even unchanged stacks   (default: 1, fresh base images)
#
# The ssh key and known_hosts come from the CI's secrets (host keys are
# checked strictly: put the hosts' keys in known_hosts, never disable it).
set -eu
RBUILD=${RBUILD:-rbuild}
INVENTORY=${INVENTORY:-deploy/inventory.yaml}
set -- -i "$INVENTORY"
[ -z "${LIMIT:-}" ] || set -- "$@" --limit "$LIMIT"
[ "${FORCE:-1}" != 1 ] || set -- "$@" --force-rebuild
# for a machine-readable report instead, add `--json >rbuild-report.json`
status=0
"$RBUILD" "$@" || status=$?
case $status in
0) echo "deploy: every stack is up and healthy" ;;
1) echo "deploy: a stack failed or was rolled back, or a host was not reached: see above" >&2 ;;
*) echo "deploy: rbuild could not run (exit status $status)" >&2 ;;
esac
exit "$status"
