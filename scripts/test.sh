#!/usr/bin/env bash
# rbuild's test suite, for real: installs and starts what the integration
# tests need (scripts/setup-deps.sh: Docker engine, Compose v1 and v2, sshd,
# a local image registry with the test base image), then runs every unit and
# integration test. The integration tests start their own sshd test hosts
# (scripts/testhosts.sh) and clean up after themselves.
#
# Usage (as root, on Debian 12): scripts/test.sh [extra cargo test args]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
if [ "$(id -u)" != 0 ]; then
	echo "test: run as root (the tests start sshd hosts and use docker and iptables)" >&2
	exit 2
fi
"$here/setup-deps.sh"
cd "$(dirname "$here")"
cargo test --locked "$@"
