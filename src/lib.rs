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
//! A run reads straight down: `app` parses and dispatches, a command under
//! `commands/` resolves its settings and asks the executor (`fleet`), which
//! drives hosts through the seam (`host/`) with typed calls (`remote/`);
//! the pure core decides (`decide`, `plan`, `status`); the command returns
//! an [`commands::Outcome`] and `report/` renders every byte of it. A new
//! command is one file under `commands/` and one under `report/`. After
//! `|`: what a file (or every file of a folder) never imports; a test
//! checks it against the `use crate::` lines, along with "no import
//! cycle" and "no file of src/ over 800 lines before its tests".
//!
//! ```text
//! src/main.rs              tiny: rbuild::app::main                     | imports only: app
//! src/lib.rs               this map
//! src/layout.rs            (test) this map kept true: paths, rules, no cycle, file sizes
//! src/app.rs               parse, dispatch, signals, logging; the one writer of stdout and of the error
//! src/error.rs             the error a command stops with, usage or failure, and its exit | imports only: exit
//! src/exit.rs              the documented exit statuses and their precedence (Exit::merge) | imports nothing
//! src/cli.rs               clap derive: flags, env vars, subcommands   | never: app, commands, fleet, host, remote
//! src/complete.rs          shell completion: host, group and stack names from the inventory | never: app, commands, fleet, host, remote, report
//! src/config.rs            the settings resolved once from cli + env + inventory | never: app, commands, fleet, host, report
//! src/commands/            one file a command; each returns an Outcome, none prints | never: app
//! src/commands/mod.rs        Outcome: what to show and the exit status
//! src/commands/run.rs        a fleet run: hash, executor, monitor, metrics file, notify
//! src/commands/status.rs     `rbuild status`: every stack as its host sees it
//! src/commands/check.rs      `rbuild check`: the inventory and every stack validated, no host contacted
//! src/commands/stack.rs      `rbuild history`, `logs`, `rollback` on one stack of one host
//! src/commands/merge.rs      `rbuild merge`: the run documents of `--shard K/N` runs as one run and one exit status
//! src/commands/meta.rs       `rbuild completions`, `rbuild man` (rbuild(1) and a page per subcommand), `rbuild version`
//! src/inventory.rs         the inventory: parse a file into the model; its parts below | never: app, commands, config, fleet, host, notify, remote, report
//! src/inventory/           the YAML model and its validation, file:line errors | never: app, commands, config, fleet, host, notify, remote, report
//! src/inventory/model.rs     the validated model the rest reads: Inventory, Host, Stack, Hooks, Probe, Notify
//! src/inventory/keys.rs      the keys a stack inherits, declared once: the table, Inheritable and its merge
//! src/inventory/values.rs    values with rules of their own: durations, limits, ports, modes, groups
//! src/inventory/raw.rs       the inventory as written: strict serde shapes, every value with its line
//! src/inventory/resolve.rs   raw -> model: defaults -> host -> stack, shared stacks placed
//! src/inventory/validate.rs  names and paths: stack and host names, ssh words, remote paths, overlaps
//! src/inventory/error.rs     InventoryError, and the YAML parser's messages in an inventory's words
//! src/inventory/shape.rs     the text's shape where the parser only says it does not fit: lists for maps, tabs, the key out of line
//! src/inventory/tests.rs     (test) inventories parsed from text; the fuzz and example tests
//! src/compose.rs           everything rbuild reads of a stack's compose files; its parts below | imports nothing
//! src/compose/             the compose model, read from files and paths, checked inside the stack's root | imports nothing
//! src/compose/files.rs       a compose file as a whole: does it parse, its `name:`, its .env, its override
//! src/compose/refs.rs        what compose files reference on disk, kept inside the stack's root
//! src/compose/services.rs    what services allow and need: zero_downtime, jobs, mounts, writable binds, variables
//! src/compose/images.rs      the images a stack is made from: each Dockerfile's FROMs after its ARGs, each image-only service's image
//! src/compose/tests.rs       (test) compose files of made-up stacks
//! src/stack.rs             what a stack ships: file walk, .rbuildignore, sha256, the tar stream | imports nothing
//! src/ship.rs              every stack hashed once a run; payloads built once per set of stacks | never: host, remote, report
//! src/trees.rs             the files of each hash this controller shipped, for the dry run's changed files | never: host, remote, report
//! src/decide.rs            pure: state + hash + now + flags -> rebuild or not, and why | never: fleet, host, inventory, report
//! src/fresh.rs            pure: a stack's images, the bases its host recorded, the registries' digests -> moved, cooling, unknown | never: fleet, host, inventory, report
//! src/plan.rs              pure: what a host's check found -> each stack's verdict | never: fleet, host, inventory, report
//! src/status.rs            pure: a host's status answer -> each stack assessed | never: fleet, host, inventory
//! src/registry.rs         the registries asked once a run: a manifest HEAD per distinct reference, credentials, first-seen memory | never: app, commands, fleet, host, report
//! src/select.rs            pure: --limit, --exclude, @tag, --shard K/N -> the selected hosts | imports nothing
//! src/rollout.rs           pure: serial batches, canary, failure budget | imports nothing
//! src/fleet.rs             the one executor: every host a bounded number at once, for a run and for status | never: app, commands
//! src/fleet/               the executor's parts | never: app, commands
//! src/fleet/host.rs          one host: connect, check, plan, its turn in a rollout, apply; a row for each stack
//! src/fleet/wire.rs          a stack as the script's arguments: its place, hooks, probe; an apply's bound
//! src/fleet/tests.rs         (test) the executor against scripted hosts: down, locked, halted, cut, Ctrl-C
//! src/host/                the seam: a connection that runs a typed call | never: app, commands, fleet, report
//! src/host/mod.rs            World, the real one: ssh in fleet mode, sh here in local mode
//! src/host/conn.rs           the seam: Conn (runs a typed call), Connect, HostError; a script's output driven
//! src/host/ssh.rs            over OpenSSH: the master's own session first, then native mux
//! src/host/persist.rs        `--persist`: the private per-user directory of kept masters, a socket looked at before reuse
//! src/host/local.rs          on this machine, under sh
//! src/host/lines.rs          a call's output as bounded lines; the stderr tail kept for errors
//! src/remote/              the protocol, pure: calls, script, events, answers | never: app, commands, config, fleet, host, inventory, report
//! src/remote/mod.rs          the protocol and state versions
//! src/remote/PROTOCOL.md     every line the script prints and every file it keeps, tested against the code
//! src/remote/call.rs         the typed calls and their arguments
//! src/remote/script.rs       the script as shipped: joined, stripped, cut for the check, quoted
//! src/remote/event.rs        the `@rbuild` lines, parsed into typed events
//! src/remote/words.rs        the result and state words, typed
//! src/remote/answer.rs       what a call's events mean: typed answers, the handshake checked
//! src/remote/sh/             the host script in parts, joined in this order:
//! src/remote/sh/{head,state,check,write,bound,lock,engine,gate,files,generations,hooks,beside,apply,rollback,status,ops,main}.sh
//! src/report/              every byte for the terminal, pure but for progress | never: app, commands, fleet, host
//! src/report/mod.rs          rows, actions, progress events, Rendered, colour, the run's exit status
//! src/report/output.rs       a command's Output, the View it is drawn in, and which document it renders to
//! src/report/rows.rs         every row of a run and its words, one wording per message
//! src/report/table.rs        the run's summary table
//! src/report/json.rs         the run's `--json` document (rollback's, merge's), read back for `rbuild merge`
//! src/report/plan.rs         `--dry-run`'s plan: files and bytes a rebuild would ship
//! src/report/status.rs       `rbuild status`'s table and document
//! src/report/history.rs      `rbuild history`'s and `rbuild logs`' table, text and documents
//! src/report/check.rs        `rbuild check`'s report and document
//! src/report/progress.rs     the one place that draws on stderr: progress (indicatif on a terminal), Ctrl-C's lines, the log above the bars
//! src/report/log.rs          a log event's look on stderr: `warning:`, `error:`, `-v` `info:`
//! src/report/snapshots/      insta snapshots of every rendered document
//! src/local_files.rs      this controller's own files: the XDG places, a file written atomically | imports nothing
//! src/reported.rs         `-q`'s memory: persisting failures reported when new, changed, or a day old | never: app, commands, fleet, host
//! src/notify.rs            `notify:`: the run's document posted to a webhook | never: app, commands, fleet, host
//! src/metrics.rs           `--metrics-file`: the run in Prometheus text, written atomically, a shard's series labelled | never: app, commands, fleet, host
//! tests/cli.rs             everything that ends before a host is contacted: exact stderr and status
//! tests/docs.rs            the manual against the binary, no host: every command shown, the flags page, links, examples
//! tests/script.rs          the host script's fast tests: a fake docker, every branch, kill at every step
//! tests/script/fake-docker   a fake `docker`/`docker-compose`: a world in files, calls recorded, faults
//! tests/tests.rs           the real-host suite's one binary: tests/suite/*.rs, by topic
//! tests/suite/compose.rs     compose v1 and v2, BuildKit and the legacy builder on hosts
//! tests/suite/concurrency.rs two runs on one stack: `locked`, `--lock-wait`, Ctrl-C
//! tests/suite/corpus.rs      the corpus (tests/corpus/): each shape deployed, changed, broken, rolled back
//! tests/suite/downtime.rs    `zero_downtime`: the new container starts before the old one stops
//! tests/suite/drift.rs       stacks stopped or removed by hand, started again; the check's cost
//! tests/suite/examples.rs    the examples/ files run as written against test hosts
//! tests/suite/failures.rs    builds and ups that fail, and what the host keeps
//! tests/suite/faults.rs      each fault, then the host's real state (RELIABILITY.md maps the cases)
//! tests/suite/fleet.rs       many hosts: concurrency, rollouts, an unreachable host is a row
//! tests/suite/freshness.rs  base images and image-only services moved in the registry: rebuilt, pulled, min_age, status --outdated
//! tests/suite/gate.rs        the gate: crashes, restart loops, unhealthy, slow, one-shots, the rollback target, rollback by hand, history
//! tests/suite/hooks.rs       `before`/`after` hooks: where they run, what a failing one leaves
//! tests/suite/local.rs       local mode: this machine, no ssh
//! tests/suite/machines.rs    what only hosts with engines of their own show: binds, ports, engine faults
//! tests/suite/model.rs       compose's project model: several files, override, profiles, env files
//! tests/suite/notify.rs      `notify:` against a local HTTP server; `--metrics-file` on the same runs
//! tests/suite/operator.rs    `status`, `logs`, the dry run's plan
//! tests/suite/persist.rs     `--persist`: masters kept, reused with no handshake, dead ones replaced, the directory refused
//! tests/suite/projects.rs    `root:`, the stack directory's mode and group
//! tests/suite/recovery.rs    runs cut off, and the next run's recovery
//! tests/suite/report.rs      the live display under tmux, plain lines, rollback progress
//! tests/suite/rollout.rs     serial batches, canaries, failure budgets on hosts
//! tests/suite/security.rs    quoting, host keys, the modes of what rbuild writes
//! tests/suite/state_machine.rs  a kill inside the undo, an engine restart in the gate, a full disk on the state write
//! tests/support/{mod,fleet,docker,inventory,runs,stacks,registry,users,net}.rs  the real-host fixture
//! tests/corpus/            compose projects shaped like public samples
//! schemas/{run,check,status,history,logs}.schema.json  each JSON document's schema (draft 2020-12), checked in tests
//! scripts/{setup-deps,testhosts,demo,test,sh-coverage,bench}.sh  set-up, test hosts, demo, tests, coverage, benchmark
//! scripts/demo/ scripts/bench/  the demo's stacks; the benchmark's helpers and results
//! ```
//!
//! # House rules
//!
//! - A command is one file under `commands/` returning an
//!   [`commands::Outcome`], and its document one file under `report/`.
//!   Nothing else prints: `app.rs` writes stdout and the error a command
//!   stops with, `report/progress.rs` draws on stderr, logs go through
//!   `tracing`.
//! - A host's failure is a row, never a `?` out of the executor. A command
//!   stops with an [`error::Error`] only before any host is touched (usage,
//!   exit 2) or when its one host fails (exit 1).
//! - The core is pure: `decide`, `plan`, `status`, `select`, `rollout` and
//!   `report/` take values and return values, with table-driven tests.
//!   I/O lives in `host/`, `app.rs`, `commands/`, `fleet.rs` and the file
//!   readers (`stack.rs`, `ship.rs`, `compose.rs`, `inventory/`).
//! - Each concept has one home: the protocol's lines, files and words in
//!   `remote/` (and PROTOCOL.md), the compose model in `compose.rs`, the
//!   inventory's keys in `inventory/`, a row's wording in `report/rows.rs`.
//! - Every rendered document is snapshot-tested (insta): a changed wording
//!   is a reviewed snapshot.
//! - A test goes as low as it can: pure functions in unit tests, the host
//!   script's branches in `tests/script.rs` against the fake docker, and
//!   only what a real engine and sshd show in `tests/suite/`.

pub mod app;
pub mod cli;
pub mod commands;
pub mod complete;
pub mod compose;
pub mod config;
pub mod decide;
pub mod error;
pub mod exit;
pub mod fleet;
pub mod fresh;
pub mod host;
pub mod inventory;
pub mod local_files;
pub mod metrics;
pub mod notify;
pub mod plan;
pub mod registry;
pub mod remote;
pub mod report;
pub mod reported;
pub mod rollout;
pub mod select;
pub mod ship;
pub mod stack;
pub mod status;
pub mod trees;

#[cfg(test)]
mod layout;
