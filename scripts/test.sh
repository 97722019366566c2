#!/usr/bin/env bash
# rbuild's test suite, for real: installs and starts what the integration
# tests need (scripts/setup-deps.sh: Docker engine, Compose v1 and v2, sshd,
# a local image registry with the test base image), then runs every unit and
# integration test. The integration tests start their own sshd test hosts
# (scripts/testhosts.sh), each a small machine with its own Docker engine,
# and clean up after themselves.
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
# Three tests at a time (libtest's default is one per core: two here). An
# integration test's hosts are machines of their own, and much of a test is
# waiting (health checks, an engine starting or stopping): on 2 cores three
# at a time took the integration tests from about 177 s to 132 s, four were
# slower again (CPU-bound). An idle host costs about 120 MiB.
export RUST_TEST_THREADS=${RUST_TEST_THREADS:-3}
cargo test --locked "$@"
