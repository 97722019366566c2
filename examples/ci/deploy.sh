#!/bin/sh
# examples/ci/deploy.sh: a CI deploy step. Copy it into your repository
# (say ci/deploy.sh) and call it from the job, as github-actions.yml does.
#
# It validates the inventory and every stack first (`rbuild check`: no host
# is contacted), then runs rbuild on the selected hosts. Only what is due is
# rebuilt: a stack whose files did not change since its host built it is
# skipped, so there is no need to force anything.
#
#   RBUILD             the rbuild binary                     (default: rbuild in the PATH)
#   INVENTORY          the inventory file                    (default: deploy/inventory.yaml)
#   LIMIT              hosts to deploy to (--limit patterns) (default: every host)
#   RETRIES            runs again after exit status 3        (default: 1)
#   RETRY_DELAY        seconds between those runs            (default: 60)
#   FAIL_ON_HELD_BACK  1: fail the job on exit status 4 too  (default: 0)
#
# rbuild's exit status, and what this step makes of it:
#   0  every stack is fine                                   -> pass
#   1  a change of this run failed or was rolled back        -> fail
#   2  usage or inventory error, nothing touched             -> fail
#   3  hosts could not be reached, nothing else failed       -> run again, then fail
#   4  stacks held back by an older failure, nothing tried   -> report, pass
#      (that failure failed its own run; FAIL_ON_HELD_BACK=1 fails here too)
#   130, 143  interrupted, terminated                        -> fail
#
# The ssh key and known_hosts come from the CI's secrets (host keys are
# checked strictly: put the hosts' keys in known_hosts, never disable it).
set -eu
RBUILD=${RBUILD:-rbuild}
INVENTORY=${INVENTORY:-deploy/inventory.yaml}
RETRIES=${RETRIES:-1}
RETRY_DELAY=${RETRY_DELAY:-60}
set -- -i "$INVENTORY"
[ -z "${LIMIT:-}" ] || set -- "$@" --limit "$LIMIT"

# 1. validate here, before any host is touched (exit status 2 on a mistake)
"$RBUILD" check "$@"

# 2. deploy; hosts that could not be reached are tried again
status=0
"$RBUILD" "$@" || status=$?
while [ "$status" = 3 ] && [ "$RETRIES" -gt 0 ]; do
	echo "deploy: hosts could not be reached; trying again in ${RETRY_DELAY}s" >&2
	sleep "$RETRY_DELAY"
	RETRIES=$((RETRIES - 1))
	status=0
	"$RBUILD" "$@" || status=$?
done

case $status in
0) echo "deploy: every stack is up and healthy" ;;
1) echo "deploy: a stack failed or was rolled back: see the table above" >&2 ;;
3) echo "deploy: hosts could not be reached: see the table above" >&2 ;;
4)
	echo "deploy: stacks are held back by an older failure (nothing was tried): see the table above" >&2
	if [ "${FAIL_ON_HELD_BACK:-0}" != 1 ]; then
		exit 0
	fi
	;;
*) echo "deploy: rbuild stopped (exit status $status)" >&2 ;;
esac
exit "$status"
