//! rbuild keeps Docker Compose stacks rebuilt, fresh and healthy, on this
//! machine or on a fleet of hosts over plain SSH.
//!
//! A stack is rebuilt (`build --pull --no-cache`, pull, `up -d`, health gate,
//! prune) when it was never built, when its files changed, when its last
//! build is older than the build period, or when forced. A rebuild whose new
//! containers do not come up healthy is rolled back to the images that ran
//! before.
//!
//! # Layout
//!
//! ```text
//! src/main.rs            tiny: parse, run, print the error once, exit with the merged code
//! src/run.rs             one run end to end: settings, hashing, executor, monitor, output
//! src/cli.rs             clap derive: flags and env vars
//! src/config.rs          the resolved settings everything else reads (cli + env + inventory)
//! src/inventory.rs       YAML model and validation with file:line errors
//! src/stack.rs           what a stack ships: file walk, .rbuildignore, sha256, the tar stream
//! src/decide.rs          pure: state + hash + now + flags -> rebuild or not, and why
//! src/plan.rs            pure: what a host's check found -> each stack's verdict (skip, held, locked, rebuild, ship)
//! src/ship.rs            every stack hashed once per run; payloads built once per set of stacks
//! src/remote/mod.rs      the remote side and its protocol, in one place (PROTOCOL.md: every line and file)
//! src/remote/remote.sh   the one POSIX sh script that does all work on a host
//! src/remote/script.rs   the script as shipped: stripped, cut for the check, quoted into a command line
//! src/remote/call.rs     the typed calls (check, apply, rollback, history) and their arguments
//! src/remote/event.rs    the `@rbuild` lines, parsed into typed events
//! src/remote/answer.rs   what a call's events mean: typed answers, the handshake checked
//! src/host/mod.rs        the seam: a connection that runs a typed call (Conn, Connect; World is the real one)
//! src/host/ssh.rs        over OpenSSH: the first command is the master's own session, the next one goes over native mux (openssh)
//! src/host/local.rs      on this machine, under sh
//! src/fleet.rs           the executor: connect, check, plan, apply, report; bounded concurrency; scripted-host unit tests
//! src/rollout.rs         rollouts across hosts: serial batches, canary, failure budget
//! src/manual.rs          `rbuild history` and `rbuild rollback` on one stack of one host
//! src/report/mod.rs      rows, actions, progress events
//! src/report/rows.rs     every summary row and its words, one wording per message
//! src/report/progress.rs the one place that draws progress (indicatif on a terminal)
//! src/report/table.rs    the summary table
//! src/report/json.rs     the `--json` document
//! src/exit.rs            exit codes and their merge
//! src/**/snapshots/      insta snapshots of the rendered table and history
//! tests/cli.rs           everything that ends before a host is contacted: exact stderr and status, no hosts
//! tests/tests.rs         the integration test binary against real hosts (tests/suite/*.rs, by topic)
//! tests/support/mod.rs   its fixture: sshd test hosts, stacks, inventories, cleanup
//! scripts/setup-deps.sh  installs and starts Docker, Compose v1+v2, sshd, a local registry
//! scripts/testhosts.sh   local sshd "hosts" on 127.0.x.y, each in a mount namespace
//! scripts/demo.sh        the demo: three hosts, a fleet rebuild, a rollback
//! scripts/test.sh        the test command (README, .ci/run)
//! scripts/bench.sh       the benchmark against the ssh floor (scripts/bench/: helpers, results)
//! scripts/demo/stacks/   the demo's compose stacks
//! inventory.example.yaml every inventory key, explained
//! .ci/run                CI: fmt, clippy, scripts/test.sh
//! ```

pub mod cli;
pub mod config;
pub mod decide;
pub mod exit;
pub mod fleet;
pub mod host;
pub mod inventory;
pub mod manual;
pub mod plan;
pub mod remote;
pub mod report;
pub mod rollout;
pub mod run;
pub mod ship;
pub mod stack;
