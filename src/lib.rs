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
//! src/lib.rs             this map; a test keeps it true to the tree
//! src/run.rs             one run end to end: settings, hashing, executor, monitor, output
//! src/cli.rs             clap derive: flags and env vars
//! src/config.rs          the resolved settings everything else reads (cli + env + inventory)
//! src/inventory.rs       YAML model and validation with file:line errors
//! src/stack.rs           what a stack ships: file walk, .rbuildignore, sha256, the tar stream
//! src/compose.rs         what a stack's compose files reference on disk, each checked to be inside its root
//! src/decide.rs          pure: state + hash + now + flags -> rebuild or not, and why
//! src/plan.rs            pure: what a host's check found -> each stack's verdict (skip, held, locked, rebuild, ship)
//! src/ship.rs            every stack hashed once per run; payloads built once per set of stacks
//! src/trees.rs           the files of each hash this controller shipped (a cache), for the dry run's changed files
//! src/remote/mod.rs      the remote side and its protocol, in one place
//! src/remote/PROTOCOL.md every line the script prints and every file it keeps, tested against the code
//! src/remote/sh/head.sh     the host script, in parts joined in this order: arguments, protocol, the clock
//! src/remote/sh/state.sh    reading a stack's state file (versions 1 and 2) and its journal's phase
//! src/remote/sh/check.sh    the check, the hot path; the script is cut after it for a check
//! src/remote/sh/write.sh    every write: the state file (checked, atomic), the journal of phases, history, the log, the failed attempt
//! src/remote/sh/bound.sh    `bounded`: every command that could hang, the operator's and the engine's
//! src/remote/sh/lock.sh     the stack's lock: a flock(1)'d file the kernel lets go of when its holder dies
//! src/remote/sh/engine.sh   docker and compose: which flavour, the engine's answers, the stack's containers and images
//! src/remote/sh/gate.sh     the health gate: a look at the containers, cgroups, the settle window
//! src/remote/sh/files.sh    shipping only what rbuild ships, and putting the old copy back from any cut-off step
//! src/remote/sh/generations.sh  numbered generations: which are kept, the one older, the images to keep
//! src/remote/sh/hooks.sh    the stacks' before and after hooks
//! src/remote/sh/beside.sh   zero_downtime: a service replaced beside its old containers
//! src/remote/sh/apply.sh    an apply as phases: recover, ship, build, pull, switch, gate, commit or undo; start
//! src/remote/sh/rollback.sh `rbuild rollback`: a kept generation back by hand, never forward without --to
//! src/remote/sh/status.sh   status, logs, history and the failed-attempt file they read
//! src/remote/sh/ops.sh      apply's and rollback's frame: traps, the payload, the clock file, temp files
//! src/remote/sh/main.sh     the command the controller asked for
//! src/remote/script.rs   the script as shipped: stripped, cut for the check, quoted into a command line
//! src/remote/call.rs     the typed calls (check, apply, rollback, history) and their arguments
//! src/remote/event.rs    the `@rbuild` lines, parsed into typed events
//! src/remote/answer.rs   what a call's events mean: typed answers, the handshake checked
//! src/host/mod.rs        the seam: a connection that runs a typed call (Conn, Connect; World is the real one)
//! src/host/ssh.rs        over OpenSSH: the first command is the master's own session, the next one goes over native mux (openssh)
//! src/host/local.rs      on this machine, under sh
//! src/host/lines.rs      a call's output as bounded lines; the stderr tail kept for errors
//! src/fleet.rs           the executor: connect, check, plan, apply, report; bounded concurrency; scripted-host unit tests
//! src/rollout.rs         rollouts across hosts: serial batches, canary, failure budget
//! src/check.rs           `rbuild check`: the inventory and every stack validated here, no host contacted
//! src/manual.rs          `rbuild history`, `rbuild rollback` and `rbuild logs` on one stack of one host
//! src/select.rs          pure: `--limit`, `--exclude`, `@tag` and `--shard K/N` -> the selected hosts
//! src/status.rs          `rbuild status`: every stack of the selected hosts as its host sees it, one command a host
//! tests/suite/operator.rs  `status`, `logs`, the dry run's plan against the test hosts
//! tests/suite/hooks.rs     the stacks' `before`/`after` hooks: where they run, what a failing one leaves
//! tests/suite/notify.rs    `notify:` against a local HTTP server: when it posts, what a failing webhook changes (nothing)
//! tests/suite/concurrency.rs  two runs on one stack: `locked`, `--lock-wait`, Ctrl-C
//! tests/suite/state_machine.rs  issue 18 on real hosts: a death inside the undo, an engine restart in the gate, a full disk on the state write, the stale-lock race, generations
//! src/report/mod.rs      rows, actions, progress events
//! src/report/rows.rs     every summary row and its words, one wording per message
//! src/report/progress.rs the one place that draws progress (indicatif on a terminal)
//! src/report/table.rs    the summary table
//! src/report/json.rs     the `--json` document
//! src/report/plan.rs     `--dry-run`'s plan: files and bytes a rebuild would ship, the files that changed
//! src/exit.rs            exit codes and their merge
//! src/notify.rs          `notify:`: the run's JSON posted to a webhook when something changed or failed
//! src/metrics.rs         `--metrics-file`: the run in Prometheus text format, written atomically
//! src/**/snapshots/      insta snapshots of the rendered table and history
//! tests/cli.rs           everything that ends before a host is contacted: exact stderr and status, no hosts
//! tests/tests.rs         the integration test binary against real hosts (tests/suite/*.rs, by topic)
//! tests/script.rs        the host script's fast tests: a temp host, a fake docker, every branch; the kill-at-every-step sweeps (their tables: target/tmp/kill-table/)
//! tests/script/fake-docker  a fake `docker`/`docker-compose` (a world in files, calls recorded, scripted faults, kill at call N)
//! tests/suite/gate.rs    the health gate watches: crashes after 1 s and 5 s, restart loops, healthy then not, one-shots, the rollback target
//! tests/suite/drift.rs   stacks kept running: stopped or removed by hand, started again; the check's cost; expired and stopped
//! tests/suite/machines.rs  what only hosts with engines of their own show: bind mounts, ports, engine faults
//! tests/suite/faults.rs    the fault suite: each fault, then the host's real state (RELIABILITY.md maps the cases)
//! tests/suite/model.rs    compose's project model on hosts (several files, override, profiles, env files); local mode: takeover, BUILD_TTL, data, history, rollback
//! tests/suite/projects.rs  compose projects as people have them: `root:`, the stack directory's mode and group
//! tests/suite/downtime.rs  `zero_downtime`: the new container starts before the old one stops; a failing one leaves it
//! tests/suite/examples.rs the examples/ files (cron, systemd, CI step) run as written against test hosts
//! tests/suite/report.rs  what a run reports: the live display under tmux, plain lines, rollback progress
//! tests/suite/corpus.rs  issue 19's corpus on real hosts: each shape deployed, changed, broken, rolled back
//! tests/corpus/          the corpus: compose projects shaped like public samples (app + db, proxy, migration, ...)
//! tests/support/mod.rs   the fixture's entry: the built rbuild, unique names, what each module offers
//! tests/support/fleet.rs Fleet: one test's hosts (each a machine), its stacks and inventory, faults
//! tests/support/docker.rs  a host's own engine (or the machine's) and its containers, cleanup guards
//! tests/support/inventory.rs  the inventory as a serde value the tests edit
//! tests/support/runs.rs  one run of rbuild: status, output, the --json rows; background runs
//! tests/support/stacks.rs  test stacks' files: Dockerfiles, compose files, StackDef
//! tests/support/registry.rs  the local registry and what a test pushed to it
//! tests/support/users.rs login users other than root
//! tests/support/net.rs   faults on the wire: a TCP forwarder that cuts a connection after N bytes
//! scripts/setup-deps.sh  installs and starts Docker, Compose v1+v2, sshd, a local registry
//! scripts/testhosts.sh   local sshd "hosts" on 127.0.1.N, each a small machine: own network, filesystem, engine
//! scripts/demo.sh        the demo: three hosts, a fleet rebuild, a rollback
//! scripts/test.sh        the test command (README, .ci/run)
//! scripts/sh-coverage.sh branch coverage of the host script (its parts, joined) by tests/script.rs, by part and line
//! scripts/bench.sh       the benchmark against the ssh floor; `--downtime`: a rebuild's downtime (scripts/bench/: helpers, results)
//! scripts/demo/stacks/   the demo's compose stacks
//! inventory.example.yaml every inventory key, explained
//! examples/              a cron file, a systemd service + timer + OnFailure unit, a CI deploy step
//! .ci/run                CI: fmt, clippy, scripts/test.sh
//! ```

pub mod app;
pub mod cli;
pub mod commands;
pub mod compose;
pub mod config;
pub mod decide;
pub mod error;
pub mod exit;
pub mod fleet;
pub mod host;
pub mod inventory;
pub mod metrics;
pub mod notify;
pub mod plan;
pub mod remote;
pub mod report;
pub mod rollout;
pub mod select;
pub mod ship;
pub mod stack;
pub mod status;
pub mod trees;

#[cfg(test)]
mod layout {
    use std::path::Path;

    /// The paths the Layout section above names, globs left out.
    fn named() -> Vec<String> {
        let doc = include_str!("lib.rs");
        let block = doc
            .split("//! ```text\n")
            .nth(1)
            .and_then(|rest| rest.split("//! ```\n").next())
            .expect("the Layout block");
        block
            .lines()
            .filter_map(|l| l.strip_prefix("//! ")?.split_whitespace().next())
            .filter(|p| !p.contains('*'))
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn every_path_the_layout_names_exists() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        for p in named() {
            assert!(
                root.join(&p).exists(),
                "Layout names {p}, which is not in the tree"
            );
        }
    }

    #[test]
    fn every_source_file_is_in_the_layout() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let named = named();
        let mut missing = Vec::new();
        for dir in [
            "src",
            "src/host",
            "src/remote",
            "src/remote/sh",
            "src/report",
            "tests",
            "tests/support",
            "tests/script",
            "scripts",
        ] {
            for e in std::fs::read_dir(root.join(dir)).unwrap() {
                let path = e.unwrap().path();
                if path.is_file() {
                    let rel = path
                        .strip_prefix(root)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned();
                    if !named.contains(&rel) {
                        missing.push(rel);
                    }
                }
            }
        }
        assert!(
            missing.is_empty(),
            "not in the Layout of src/lib.rs: {missing:?}"
        );
    }
}
