//! rbuild's integration tests, one binary: `cargo test --test tests`.
//!
//! Every test runs the built `rbuild` against REAL sshd test hosts
//! (`scripts/testhosts.sh`) and the REAL Docker engine, and checks the real
//! effect: containers, state files and stack directories on the hosts. Needs
//! root, Docker, Compose v1 and v2 and the local registry with the test base
//! image: `scripts/setup-deps.sh` provides them all.
//!
//! Tests run in parallel: each has its own loopback range, compose project
//! names and temp dirs (see `support`).

mod support;

// The tests, one module per area. They live in tests/suite/ so that cargo
// does not build each file as a test binary of its own.
mod suite {
    mod compose;
    mod concurrency;
    mod failures;
    mod fleet;
    mod health;
    mod local;
    mod manual;
    mod recovery;
    mod rollout;
    mod security;
}
