//! rbuild's integration tests, one binary: `cargo test --test tests`.
//!
//! Every test runs the built `rbuild` against REAL sshd test hosts
//! (`scripts/testhosts.sh`), each a small machine of its own: its own
//! address, its own REAL Docker engine, its own `/var/lib/rbuild` and
//! `/srv/rbuild`. Each test checks the real effect on each host: its
//! containers, its state files and its stack directories. Needs root,
//! Docker, Compose v1 and v2 and the local registry with the test base
//! image: `scripts/setup-deps.sh` provides them all.
//!
//! Tests run in parallel: each has its own hosts (addresses, engines) and
//! temp dirs (see `support`). What runs before a host is contacted (usage
//! and inventory errors) is tested in tests/cli.rs, without hosts.

mod support;

// The tests, one module per area. They live in tests/suite/ so that cargo
// does not build each file as a test binary of its own.
mod suite {
    mod compose;
    mod concurrency;
    mod corpus;
    mod downtime;
    mod drift;
    mod examples;
    mod failures;
    mod faults;
    mod fleet;
    mod freshness;
    mod gate;
    mod hooks;
    mod local;
    mod machines;
    mod model;
    mod notify;
    mod operator;
    mod persist;
    mod projects;
    mod recovery;
    mod report;
    mod rollout;
    mod security;
    mod state_machine;
}
