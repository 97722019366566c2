//! The command line (clap derive). Flags and environment variables of the
//! original `rbuild.py` (`BUILD_PERIOD`, `UP_TIMEOUT_PERIOD`,
//! `--force-rebuild`, `--remove-images`) keep working.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::inventory;
use crate::rollout::Limit;

/// Keep Docker Compose stacks rebuilt, fresh and healthy, here or on a
/// fleet over SSH.
///
/// With COMPOSE_FILE arguments, rebuilds those stacks here. With
/// `-i INVENTORY` (or `RBUILD_INVENTORY`, or an inventory where rbuild
/// looks: `./rbuild.yaml`, `$XDG_CONFIG_HOME/rbuild/inventory.yaml`,
/// `/etc/rbuild/inventory.yaml`), runs against every host of the
/// inventory; `rbuild deploy` names that same run. A stack is rebuilt
/// (`build --pull --no-cache`, pull, `up`) when it was never built, when
/// its files changed, when its last build is older than the build period,
/// or when forced.
#[derive(Debug, Parser)]
#[command(
    name = "rbuild",
    version,
    max_term_width = 100,
    after_help = "Every flag: `rbuild --help`; the manual: `rbuild man`.",
    after_long_help = "Exit status: 0 fine, 1 a change failed or was rolled back, 2 bad usage or \
inventory, 3 only unreachable hosts, 4 only held back by an earlier failure, 130 Ctrl-C, 143 \
SIGTERM. The manual: `rbuild man`."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Commands>,

    /// Compose files to rebuild on this machine (local mode, no SSH).
    #[arg(value_name = "COMPOSE_FILE")]
    pub compose_files: Vec<PathBuf>,

    /// The inventory: the fleet to run against.
    ///
    /// Without it (and without `RBUILD_INVENTORY` and COMPOSE_FILE), the
    /// first of `./rbuild.yaml`, `$XDG_CONFIG_HOME/rbuild/inventory.yaml`
    /// (default `~/.config`) and `/etc/rbuild/inventory.yaml` that exists.
    #[arg(
        short,
        long,
        env = "RBUILD_INVENTORY",
        value_name = "INVENTORY",
        global = true
    )]
    pub inventory: Option<PathBuf>,

    /// Rebuild after this long [default: 1d].
    ///
    /// Seconds or a duration such as `12h` or `1d` [default: 1d, or the
    /// inventory's `build_period`]. `BUILD_TTL`, the original script's
    /// name, is read too; this wins.
    #[arg(long, env = "BUILD_PERIOD", value_name = "SECS", value_parser = period)]
    pub build_period: Option<u64>,

    /// Time for `up` and the health gate.
    ///
    /// Time for `up` and for the containers to run and be healthy: seconds
    /// or a duration such as `2m` [default: 60, or the inventory's
    /// `up_timeout`].
    #[arg(long, env = "UP_TIMEOUT_PERIOD", value_name = "SECS", global = true, value_parser = up_timeout)]
    pub up_timeout_period: Option<u64>,

    /// Time the build and the pull may take [default: 30m].
    ///
    /// Seconds or a duration such as `45m`; a build that takes longer is
    /// stopped and fails, and the running containers stay [default: 30m,
    /// or the inventory's `build_timeout`].
    #[arg(long, env = "RBUILD_BUILD_TIMEOUT", value_name = "SECS", value_parser = up_timeout, hide_short_help = true)]
    pub build_timeout: Option<u64>,

    /// Time a stack must stay up once it came up [default: 10].
    ///
    /// Every service running, healthy where it has a healthcheck, not
    /// restarted, within the up timeout: seconds or a duration
    /// [default: 10, or the inventory's `settle`].
    #[arg(long, env = "RBUILD_SETTLE", value_name = "SECS", global = true, value_parser = settle, hide_short_help = true)]
    pub settle: Option<u64>,

    /// How long the host watches a passed stack [default: 60].
    ///
    /// After a passed gate, the host watches the stack this long and rolls
    /// a crash back by itself (0: no watcher): seconds or a duration
    /// [default: 60, or the inventory's `watch`].
    #[arg(long, env = "RBUILD_WATCH", value_name = "SECS", global = true, value_parser = settle, hide_short_help = true)]
    pub watch: Option<u64>,

    /// Rebuild every selected stack, due or not.
    #[arg(long)]
    pub force_rebuild: bool,

    /// Ask no registry whether an image moved: stacks are rebuilt by their
    /// files and the build period alone.
    #[arg(long, env = "RBUILD_NO_DIGESTS", global = true, hide_short_help = true, value_parser = clap::builder::FalseyValueParser::new())]
    pub no_digests: bool,

    /// Also remove the images a rebuilt stack ran before.
    ///
    /// After a successful rebuild, also remove the images the stack ran
    /// before (normally kept one generation for rollback). Never removes an
    /// image that any container uses.
    #[arg(long)]
    pub remove_images: bool,

    /// Prune all of the build cache that no build uses.
    ///
    /// After rebuilding, prune all of the build cache that no build uses
    /// (without it, the cache older than the build period is pruned).
    #[arg(long, hide_short_help = true)]
    pub prune_image_cache: bool,

    /// Hosts to work on at once.
    #[arg(short = 'j', long, env = "RBUILD_CONCURRENCY", default_value_t = 32, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub concurrency: u32,

    /// Only these hosts: globs over names and groups, `@TAG`, `!PATTERN`.
    ///
    /// Only hosts whose name or group matches one of these globs
    /// (comma-separated or repeated), e.g. `web*,db1`; `@TAG` matches the
    /// host's tags, `!PATTERN` leaves hosts out (`'web*,!web3'`; only
    /// exclusions: every host less those).
    #[arg(long, value_name = "PATTERN", value_delimiter = ',', global = true)]
    pub limit: Vec<String>,

    /// Leave out the hosts that match these patterns.
    ///
    /// As in `--limit`: globs over names and groups, `@TAG`;
    /// comma-separated or repeated.
    #[arg(long, value_name = "PATTERN", value_delimiter = ',', global = true)]
    pub exclude: Vec<String>,

    /// Only the K-th of N parts of the selected hosts.
    ///
    /// 1-based, e.g. `2/4`: a host's part is fixed by its name's hash, so a
    /// CI matrix or N cron boxes share one inventory without overlap, and
    /// adding a host moves no other.
    #[arg(long, value_name = "K/N", global = true, hide_short_help = true)]
    pub shard: Option<crate::select::Shard>,

    /// Rebuild a stack on at most this many hosts at once.
    ///
    /// A count, or a percentage of the hosts that run it (`25%`)
    /// [default: no limit, or the inventory's `rollout.serial`].
    #[arg(long, value_name = "N|P%")]
    pub serial: Option<Limit>,

    /// Rebuild each stack on one host first.
    ///
    /// The others start only when it passed [default: the inventory's
    /// `rollout.canary`].
    #[arg(long, hide_short_help = true)]
    pub canary: bool,

    /// Stop a stack's rollout after this many failures.
    ///
    /// Once more than this many of its rebuilds failed: a count or a
    /// percentage; hosts not yet started are skipped (`rollout_halted`)
    /// [default: no limit, or `rollout.max_failures`].
    #[arg(long, value_name = "N|P%", hide_short_help = true)]
    pub max_failures: Option<Limit>,

    /// Show what would be rebuilt and why; change nothing.
    ///
    /// Decide and report what would be rebuilt and why, and the files and
    /// bytes each rebuild would ship; change nothing (Ansible's `--check`).
    #[arg(short = 'n', long)]
    pub dry_run: bool,

    /// Ansible's `--check`: refused, with a hint towards `--dry-run`.
    #[arg(long, hide = true, global = true)]
    pub check: bool,

    /// Print one JSON document on stdout (= `-o json`).
    #[arg(long, global = true)]
    pub json: bool,

    /// Stdout's format: `table` (the default) or `json`.
    #[arg(
        short = 'o',
        long,
        value_name = "FORMAT",
        value_enum,
        global = true,
        hide_possible_values = true
    )]
    pub output: Option<OutputFormat>,

    /// `rbuild status`: every column, each row whole, whatever the width.
    ///
    /// Below 140 columns the table stacks and folds its columns so that
    /// no word is broken; `--wide` shows all ten.
    #[arg(long, global = true, hide_short_help = true)]
    pub wide: bool,

    /// Also write the run's results as Prometheus metrics to this file.
    ///
    /// In the Prometheus text format (for node_exporter's textfile
    /// collector), atomically. Not written under `--dry-run`. A failure to
    /// write it is an `error:` line on stderr, even under `-q`; the exit
    /// status stays the run's.
    #[arg(
        long,
        env = "RBUILD_METRICS_FILE",
        value_name = "PATH",
        hide_short_help = true
    )]
    pub metrics_file: Option<PathBuf>,

    /// Wait up to this long for a stack's lock another run holds.
    ///
    /// For a deploy that must happen, instead of reporting `locked` at
    /// once: seconds or a duration such as `10m` [default: 0, no wait].
    #[arg(long, env = "RBUILD_LOCK_WAIT", value_name = "SECS", value_parser = lock_wait, hide_short_help = true)]
    pub lock_wait: Option<u64>,

    /// Do not post to the inventory's `notify:` webhook this time.
    ///
    /// For an ad-hoc run that should not page anyone.
    #[arg(long, hide_short_help = true)]
    pub no_notify: bool,

    /// For cron: print only the stacks that changed or failed
    ///
    /// Each with the tail of its output and its hint, and nothing when
    /// there are none. A failure that persists (`previous_failure`) is printed when
    /// it first happens or changes, then once a day: what was reported is
    /// kept in `$XDG_STATE_HOME/rbuild/reported.json` (default
    /// `~/.local/state`). The exit status is the run's, whatever is printed.
    #[arg(short, long)]
    pub quiet: bool,

    /// When to colour: `auto`, `always` or `never`.
    ///
    /// Colours the table's actions, `error:` and `hint:`: `auto` (on a
    /// terminal, unless `NO_COLOR` is set), `always` or `never`.
    #[arg(
        long,
        value_name = "WHEN",
        value_enum,
        default_value_t,
        global = true,
        hide_short_help = true
    )]
    pub color: crate::report::ColorWhen,

    /// More logs on stderr (-v: steps, -vv: debug, -vvv: trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Time for a host's SSH connection [default: 10].
    ///
    /// Seconds or a duration [default: 10, or the inventory's
    /// `connect_timeout`]; a host that does not answer in time is reported
    /// as not reached, never waited on.
    #[arg(
        long,
        env = "RBUILD_CONNECT_TIMEOUT",
        default_value = "10",
        value_name = "SECS",
        value_parser = connect_timeout,
        hide_short_help = true
    )]
    pub connect_timeout: u64,

    /// Use this ssh config file instead of `~/.ssh/config`.
    ///
    /// What ssh reads for every host (`HostName`, `User`, keys,
    /// `ProxyJump`), as `ssh -F FILE` does.
    #[arg(
        short = 'F',
        long,
        env = "RBUILD_SSH_CONFIG",
        value_name = "FILE",
        global = true,
        hide_short_help = true
    )]
    pub ssh_config: Option<PathBuf>,

    /// Keep the ssh connections open this long after the run [default: 0].
    ///
    /// Each host's multiplexed master stays in the background for this
    /// long after its last use, in a private directory of yours
    /// (`$XDG_RUNTIME_DIR/rbuild/ssh`, else `/tmp/rbuild-ssh-UID`), and the
    /// next rbuild within it (`status`, a dry run, the run, `logs`) reuses
    /// it: no handshake. Anyone who can use a socket there acts as you on
    /// that host. Seconds or a duration such as `5m` [default: 0, off: each
    /// run connects afresh and leaves nothing running].
    #[arg(
        long,
        env = "RBUILD_PERSIST",
        value_name = "SECS",
        value_parser = persist,
        global = true,
        hide_short_help = true
    )]
    pub persist: Option<u64>,

    /// Trust the key of a host never seen before (ssh's `accept-new`).
    ///
    /// A changed key is always refused.
    #[arg(long, global = true, hide_short_help = true)]
    pub accept_new_host_keys: bool,

    /// Local mode: keep state in this directory.
    ///
    /// [default: /var/lib/rbuild as root, else $XDG_STATE_HOME/rbuild].
    #[arg(
        long,
        env = "RBUILD_STATE_DIR",
        value_name = "DIR",
        hide_short_help = true
    )]
    pub state_dir: Option<PathBuf>,

    /// Local mode: the directory that is each stack's root.
    ///
    /// Hashed; every file its compose files reference must be inside it
    /// [default: the compose file's directory].
    #[arg(long, value_name = "DIR", hide_short_help = true)]
    pub root: Option<PathBuf>,
}

/// `-o/--output`: what stdout prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// The table (or text) for people.
    Table,
    /// One JSON document.
    Json,
}

impl Cli {
    /// Whether stdout prints the JSON document: `--json` or `-o json`.
    pub fn json(&self) -> bool {
        self.json || self.output == Some(OutputFormat::Json)
    }
}

/// The command line, `deploy` given the run's own flags: for `rbuild help
/// deploy`, its page and its completion (a run's arguments have `deploy`
/// taken out before they are parsed, see [`without_deploy`]).
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    let root = Cli::command();
    let run_args: Vec<clap::Arg> = root
        .get_arguments()
        .filter(|a| !a.is_global_set())
        .cloned()
        .collect();
    root.mut_subcommand("deploy", |d| d.args(run_args))
}

/// The arguments with `deploy` taken out where it names the subcommand
/// (the first word that is neither an option nor an option's value):
/// `rbuild deploy ARGS` is `rbuild ARGS`, with the same flags.
pub fn without_deploy(cmd: &clap::Command, mut args: Vec<OsString>) -> Vec<OsString> {
    let takes_value = |a: &clap::Arg| a.get_action().takes_values();
    let mut i = 1;
    while i < args.len() {
        let Some(a) = args[i].to_str() else { break };
        if a == "--" {
            break;
        }
        if let Some(long) = a.strip_prefix("--") {
            let value_follows = !long.contains('=')
                && cmd
                    .get_arguments()
                    .any(|arg| arg.get_long() == Some(long) && takes_value(arg));
            i += if value_follows { 2 } else { 1 };
            continue;
        }
        if let Some(shorts) = a.strip_prefix('-').filter(|s| !s.is_empty()) {
            let mut skip = 1;
            for (k, c) in shorts.char_indices() {
                if cmd
                    .get_arguments()
                    .any(|arg| arg.get_short() == Some(c) && takes_value(arg))
                {
                    if k + c.len_utf8() == shorts.len() {
                        skip = 2;
                    }
                    break;
                }
            }
            i += skip;
            continue;
        }
        if a == "deploy" {
            args.remove(i);
        }
        break;
    }
    args
}

/// The subcommand a mistyped word most likely meant, as clap itself
/// suggests one (Jaro similarity above 0.7), for a COMPOSE_FILE argument
/// that does not exist and looks like no file (no `/`, no `.`).
pub fn meant_subcommand(word: &str) -> Option<String> {
    if word.contains(['/', '.']) || std::path::Path::new(word).exists() {
        return None;
    }
    use clap::CommandFactory;
    Cli::command()
        .get_subcommands()
        .map(|c| c.get_name().to_owned())
        .map(|name| (strsim::jaro(word, &name), name))
        .filter(|(score, _)| *score > 0.7)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, name)| name)
}

/// A build period, as `--build-period` takes it.
pub fn period(v: &str) -> Result<u64, String> {
    inventory::parse_seconds(v, 0, inventory::MAX_PERIOD)
}

fn up_timeout(v: &str) -> Result<u64, String> {
    inventory::parse_seconds(v, 1, inventory::MAX_UP_TIMEOUT)
}

fn settle(v: &str) -> Result<u64, String> {
    inventory::parse_seconds(v, 0, inventory::MAX_UP_TIMEOUT)
}

fn lock_wait(v: &str) -> Result<u64, String> {
    inventory::parse_seconds(v, 0, inventory::MAX_UP_TIMEOUT)
}

fn persist(v: &str) -> Result<u64, String> {
    inventory::parse_seconds(v, 0, inventory::MAX_UP_TIMEOUT)
}

/// `--to GEN`: a generation's number, as `rbuild history` shows it.
fn generation(v: &str) -> Result<u64, String> {
    v.trim().parse().map_err(|_| {
        format!("`{v}` is not a generation: give its number, as `rbuild history` shows it")
    })
}

fn connect_timeout(v: &str) -> Result<u64, String> {
    inventory::parse_seconds(v, 1, inventory::MAX_CONNECT_TIMEOUT)
}

/// Every subcommand.
#[derive(Debug, Subcommand)]
pub enum Commands {
    /// Rebuild what is due on the hosts of the inventory (the default).
    ///
    /// `rbuild deploy` is `rbuild` with no subcommand: the same run, the
    /// same flags (`rbuild deploy -i inventory.yaml --dry-run`), given
    /// after `deploy` or before it.
    Deploy,
    #[command(flatten)]
    Stack(Command),
    #[command(flatten)]
    Fleet(FleetCommand),
    /// Fan in the documents of sharded runs: one table, one exit status
    ///
    /// The documents of runs split with `--shard K/N` (each written
    /// by `rbuild --shard K/N --json > shard-K.json`): one table (or, with
    /// `--json`, one run document) and one exit status, the most severe of
    /// the shards' (130/143 > 1 > 3 > 4 > 0). A file that is missing,
    /// unreadable or not a run document of this version is a usage error
    /// (exit status 2).
    Merge {
        /// The shards' run documents.
        #[arg(value_name = "SHARD.json", required = true)]
        shards: Vec<PathBuf>,
    },
    #[command(flatten)]
    Meta(Meta),
}

/// Commands on the selected hosts of the inventory that change nothing.
#[derive(Debug, Subcommand)]
pub enum FleetCommand {
    /// Show every stack of the selected hosts as its host sees it.
    ///
    /// Services running and healthy, last successful build and its age,
    /// whether the local files changed since, when the next rebuild is due,
    /// the last failed attempt, the lock. One remote command per host;
    /// nothing is changed. Exit status 1 when a stack has a problem, 3
    /// when the only problems are hosts that cannot be asked.
    Status {
        /// Only the stacks running on an image that moved in its registry
        /// since their build (a base of a built service, or an image-only
        /// service's image).
        #[arg(long)]
        outdated: bool,
    },
    /// Validate the inventory and every stack without connecting.
    ///
    /// The inventory, the selection, every compose file (parsed; every
    /// file it references inside the stack's root) and every stack's
    /// directory (read and hashed as it would ship). Prints `ok: N hosts,
    /// M stacks`, or every error with its file and line (exit status 2).
    /// No host is contacted.
    Check,
}

/// Commands on one stack of one inventory host (HOST and STACK), or in
/// local mode on one COMPOSE_FILE.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the last rebuild attempts of STACK on HOST.
    ///
    /// Time, hash, result, images, newest last; and the kept generations.
    /// Local mode: `history COMPOSE_FILE`.
    History {
        /// HOST of the inventory, or (local mode) the stack's COMPOSE_FILE.
        #[arg(value_name = "HOST|COMPOSE_FILE")]
        target: String,
        /// STACK on HOST.
        stack: Option<String>,
    },
    /// Print the output of the last failed attempt of STACK on HOST.
    ///
    /// Docker's and the hooks', its last 64 KiB, kept on the host. Local
    /// mode: `logs COMPOSE_FILE`.
    Logs {
        /// HOST of the inventory, or (local mode) the stack's COMPOSE_FILE.
        #[arg(value_name = "HOST|COMPOSE_FILE")]
        target: String,
        /// STACK on HOST.
        stack: Option<String>,
    },
    /// Put an older generation of STACK back on HOST.
    ///
    /// Its files and images, brought up without building, with the same
    /// health gate as a rebuild: the newest kept generation older than the
    /// running one (run again to go further back; never forward), or
    /// `--to GEN`, any kept one (`rbuild history` lists them). Local mode:
    /// `rollback COMPOSE_FILE`.
    Rollback {
        /// HOST of the inventory, or (local mode) the stack's COMPOSE_FILE.
        #[arg(value_name = "HOST|COMPOSE_FILE")]
        target: String,
        /// STACK on HOST.
        stack: Option<String>,
        /// The kept generation to put back (a number `rbuild history`
        /// shows).
        #[arg(long, value_name = "GEN", value_parser = generation)]
        to: Option<u64>,
    },
}

impl Command {
    /// What the command names: HOST and STACK, or a COMPOSE_FILE.
    pub fn target(&self) -> (&str, Option<&str>) {
        match self {
            Command::History { target, stack }
            | Command::Rollback { target, stack, .. }
            | Command::Logs { target, stack } => (target, stack.as_deref()),
        }
    }

    /// The subcommand's name, as typed.
    pub fn name(&self) -> &'static str {
        match self {
            Command::History { .. } => "history",
            Command::Logs { .. } => "logs",
            Command::Rollback { .. } => "rollback",
        }
    }
}

/// Commands that only print something about rbuild itself.
#[derive(Debug, Subcommand)]
pub enum Meta {
    /// Print the shell completion script for SHELL.
    ///
    /// SHELL: bash, zsh, fish, elvish, powershell; e.g. `rbuild completions
    /// bash > /etc/bash_completion.d/rbuild`. The script asks rbuild for
    /// candidates as you type: host and group names after `--limit` and
    /// `--exclude`, HOST then STACK after `history`, `logs` and `rollback`,
    /// read from the inventory (`-i`, `RBUILD_INVENTORY`, or where rbuild
    /// looks for one).
    Completions { shell: clap_complete::Shell },
    /// Print the manual page rbuild(1), or write every page to a directory.
    ///
    /// On stdout, e.g. `rbuild man > /usr/local/share/man/man1/rbuild.1`;
    /// with `--dir DIR`, writes rbuild.1 and a page for each subcommand
    /// (rbuild-status.1, ...) into DIR.
    Man {
        /// Write rbuild.1 and rbuild-SUBCOMMAND.1 into this directory.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Print rbuild's version (as `--version`).
    Version,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_on_the_command_line_read_as_in_the_inventory() {
        let cli = Cli::try_parse_from([
            "rbuild",
            "--build-period",
            "1d",
            "--up-timeout-period",
            "2m",
            "--connect-timeout",
            "30",
            "compose.yml",
        ])
        .unwrap();
        assert_eq!(cli.build_period, Some(86400));
        assert_eq!(cli.up_timeout_period, Some(120));
        assert_eq!(cli.connect_timeout, 30);
        for bad in [
            ["--build-period", "soon"],
            ["--build-period", "3650000d"],
            ["--up-timeout-period", "0"],
            ["--connect-timeout", "18446744073709551615"],
        ] {
            assert!(
                Cli::try_parse_from(["rbuild", bad[0], bad[1], "compose.yml"]).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_mistyped_subcommand_is_told_apart_from_a_compose_file() {
        for (typo, meant) in [
            ("statsu", Some("status")),
            ("stauts", Some("status")),
            ("histroy", Some("history")),
            ("rollbak", Some("rollback")),
            ("chekc", Some("check")),
            ("compose.yml", None),
            ("web/compose", None),
            ("deplyo", Some("deploy")),
            // not a file either way: the hint does no harm
            ("blog", Some("logs")),
        ] {
            assert_eq!(meant_subcommand(typo).as_deref(), meant, "{typo}");
        }
    }

    #[test]
    fn deploy_is_taken_out_where_it_names_the_subcommand() {
        use clap::CommandFactory;
        let cmd = Cli::command();
        let strip = |args: &[&str]| -> Vec<String> {
            let os = std::iter::once("rbuild")
                .chain(args.iter().copied())
                .map(OsString::from)
                .collect();
            without_deploy(&cmd, os)
                .into_iter()
                .skip(1)
                .map(|a| a.into_string().unwrap())
                .collect()
        };
        for (args, want) in [
            (&["deploy", "-i", "x"][..], &["-i", "x"][..]),
            (&["-i", "x", "deploy", "-n"], &["-i", "x", "-n"]),
            (&["-vq", "-ix", "deploy"], &["-vq", "-ix"]),
            (&["--limit=web", "deploy"], &["--limit=web"]),
            // the value of an option, a file after the first word, after `--`
            (&["-i", "deploy"], &["-i", "deploy"]),
            (
                &["--inventory", "deploy", "status"],
                &["--inventory", "deploy", "status"],
            ),
            (&["-vi", "deploy"], &["-vi", "deploy"]),
            (
                &["web/compose.yml", "deploy"],
                &["web/compose.yml", "deploy"],
            ),
            (&["--", "deploy"], &["--", "deploy"]),
        ] {
            assert_eq!(strip(args), want, "{args:?}");
        }
        let cli = Cli::try_parse_from(
            std::iter::once(OsString::from("rbuild")).chain(
                strip(&["deploy", "-n", "--json"])
                    .into_iter()
                    .map(OsString::from),
            ),
        )
        .unwrap();
        assert!(cli.dry_run && cli.json() && cli.command.is_none());
    }
}
