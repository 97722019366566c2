//! Results and their rendering. Workers send [`Progress`] events; one
//! monitor ([`progress`]) draws them; at the end the rows become a table
//! ([`table`]) or a JSON document ([`json`]). Rendering is pure.

pub mod check;
pub mod history;
pub mod json;
pub mod log;
pub mod output;
pub mod plan;
pub mod progress;
pub mod rows;
pub mod status;
pub mod table;

use std::io::IsTerminal;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::decide::Reason;
use crate::exit::Exit;
use crate::trees::Change;

/// `--color`: when output is coloured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ColorWhen {
    /// On a terminal, unless `NO_COLOR` is set (to anything but empty).
    #[default]
    Auto,
    /// Always, on a terminal or not, `NO_COLOR` or not.
    Always,
    /// Never.
    Never,
}

impl ColorWhen {
    /// Whether a stream is coloured: `terminal` says if it is one,
    /// `no_color` is the value of `NO_COLOR`.
    pub fn resolve(self, terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
        match self {
            ColorWhen::Always => true,
            ColorWhen::Never => false,
            ColorWhen::Auto => terminal && no_color.is_none_or(|v| v.is_empty()),
        }
    }
}

static COLOR: OnceLock<ColorWhen> = OnceLock::new();

/// Set `--color` for the process, once (before anything is printed).
pub fn set_color(when: ColorWhen) {
    let _ = COLOR.set(when);
}

fn color_for(terminal: bool) -> bool {
    COLOR
        .get()
        .copied()
        .unwrap_or_default()
        .resolve(terminal, std::env::var_os("NO_COLOR").as_deref())
}

/// Whether what goes to stdout (the table) is coloured.
pub fn color_stdout() -> bool {
    color_for(std::io::stdout().is_terminal())
}

/// Whether what goes to stderr (errors, logs) is coloured.
pub fn color_stderr() -> bool {
    color_for(std::io::stderr().is_terminal())
}

/// `text` with the `error:`, `warning:` and `hint:` that start its lines
/// (after indentation) in colour: bold red, bold yellow, bold cyan. Without
/// `color`, `text` unchanged.
pub fn paint_prefixes(text: &str, color: bool) -> String {
    if !color {
        return text.to_owned();
    }
    const PREFIXES: [(&str, &str); 3] = [
        ("error:", "\x1b[1;31m"),
        ("warning:", "\x1b[1;33m"),
        ("hint:", "\x1b[1;36m"),
    ];
    let mut out = String::with_capacity(text.len() + 16);
    for line in text.split_inclusive('\n') {
        let rest = line.trim_start();
        let indent = &line[..line.len() - rest.len()];
        match PREFIXES.iter().find(|(p, _)| rest.starts_with(p)) {
            Some((p, code)) => {
                out.push_str(indent);
                out.push_str(code);
                out.push_str(p);
                out.push_str("\x1b[0m");
                out.push_str(&rest[p.len()..]);
            }
            None => out.push_str(line),
        }
    }
    out
}

/// A command's output, rendered: what goes to stdout (data, for pipes) and
/// what goes to stderr (notes, `error:` lines). The one writer
/// ([`crate::app`]) prints them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rendered {
    pub stdout: String,
    pub stderr: String,
}

impl Rendered {
    pub fn out(stdout: String) -> Rendered {
        Rendered {
            stdout,
            stderr: String::new(),
        }
    }

    pub fn err(stderr: String) -> Rendered {
        Rendered {
            stdout: String::new(),
            stderr,
        }
    }
}

/// What happened to a stack on a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Rebuilt,
    /// It did not run as recorded; it was brought up again (no build).
    Started,
    Skipped,
    Failed,
    /// The new generation failed its health gate and the previous one runs
    /// again.
    RolledBack,
    /// `--dry-run`: this stack is due.
    WouldRebuild,
    /// `--dry-run`: this stack does not run and would be started.
    WouldStart,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Rebuilt => "rebuilt",
            Action::Started => "started",
            Action::Skipped => "skipped",
            Action::Failed => "failed",
            Action::RolledBack => "rolled_back",
            Action::WouldRebuild => "would_rebuild",
            Action::WouldStart => "would_start",
        }
    }
}

/// One row of the summary: a stack on a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub host: String,
    pub stack: String,
    pub action: Action,
    pub reason: Reason,
    pub duration: Duration,
    pub error: Option<String>,
    pub hint: Option<String>,
    /// What scripts get besides (`--json`, metrics, notifications).
    pub detail: Detail,
}

/// A row's particulars for scripts: when it ran, what it shipped, what
/// docker said when it failed.
impl Row {
    /// A row with no error, hint, duration or detail yet.
    pub fn new(host: &str, stack: &str, action: Action, reason: Reason) -> Row {
        Row {
            host: host.to_owned(),
            stack: stack.to_owned(),
            action,
            reason,
            duration: Duration::ZERO,
            error: None,
            hint: None,
            detail: Default::default(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Detail {
    /// The tail of the docker output of a failed or rolled back rebuild.
    pub output: Vec<String>,
    /// When work on the stack started (its host's connect, or its step of
    /// the apply).
    pub started: Option<SystemTime>,
    /// When its result was known.
    pub finished: Option<SystemTime>,
    /// The sha256 of the stack's files on this machine, if they were read.
    pub hash: Option<String>,
    /// A dry run's plan for a stack it would rebuild: what would be shipped.
    pub plan: Option<ShipPlan>,
    /// Its images against the registries: what moved, what cools down,
    /// what cannot be told (`None`: nothing to say, or not asked).
    pub images: Option<Box<crate::fresh::Freshness>>,
}

/// What a rebuild would ship.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShipPlan {
    /// Whether the stack's files would be shipped (`false`: the host has
    /// them as they are; the rebuild is for its age, or forced).
    pub ship: bool,
    /// Files and bytes of the stack (all are shipped when any is).
    pub files: usize,
    pub bytes: u64,
    /// The files that differ from those of the build the host runs, or
    /// `None` when this controller does not know that build's files (it
    /// did not ship it: another admin box did, or its cache was wiped).
    pub changed: Option<Vec<Change>>,
}

/// What workers tell the monitor.
#[derive(Debug, Clone)]
pub enum Progress {
    /// The run starts, with this many hosts.
    Start { hosts: usize },
    /// Work on a host starts (it got its slot: connect and check).
    HostStart { host: String },
    /// A host's rebuild step started (`ship`, `build`, `pull`, `up`, ...).
    Step {
        host: String,
        stack: String,
        step: String,
    },
    /// A note from the remote side (a stale lock taken over, ...).
    Note {
        host: String,
        stack: String,
        text: String,
    },
    /// A stack's result, with the tail of the remote log when it failed.
    Result { row: Box<Row>, log: Vec<String> },
    /// A host is finished.
    HostDone { host: String },
}

/// Every action, in the order the summary counts them.
pub const ACTIONS: [Action; 7] = [
    Action::Rebuilt,
    Action::Started,
    Action::WouldRebuild,
    Action::WouldStart,
    Action::RolledBack,
    Action::Failed,
    Action::Skipped,
];

/// Counts by action, for the summary line.
pub fn counts(rows: &[Row]) -> Vec<(Action, usize)> {
    ACTIONS
        .into_iter()
        .map(|a| (a, rows.iter().filter(|r| r.action == a).count()))
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// What a row counts as for the run's exit status (see [`Exit`] and
/// `docs/reference/exit-codes.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Done, or nothing to do (`ok: true`).
    Ok,
    /// A change of this run failed or was rolled back, or the stack could
    /// not be tried for a reason of its own (locked, unreadable, its
    /// rollout halted by a failure): exit 1.
    Failed,
    /// Its host could not be reached, or its check failed: exit 3.
    Unreachable,
    /// Held back by an earlier failure of the same files, nothing tried:
    /// exit 4.
    HeldBack,
    /// Ctrl-C came before its host: the run's 130 says it.
    Interrupted,
}

impl Standing {
    /// The exit status a row of this standing asks for.
    pub fn exit(self) -> Exit {
        match self {
            Standing::Ok => Exit::Success,
            Standing::Failed => Exit::Failure,
            Standing::Unreachable => Exit::Unreachable,
            Standing::HeldBack => Exit::HeldBack,
            Standing::Interrupted => Exit::Interrupted,
        }
    }
}

impl Row {
    /// What the row counts as for the exit status.
    pub fn standing(&self) -> Standing {
        match (self.action, self.reason) {
            (_, Reason::Interrupted) => Standing::Interrupted,
            (Action::Failed, Reason::HostFailed) => Standing::Unreachable,
            // `rbuild rollback` asked for it: done
            (Action::RolledBack, Reason::Manual) => Standing::Ok,
            (Action::Failed | Action::RolledBack, _) => Standing::Failed,
            (_, Reason::PreviousFailure) => Standing::HeldBack,
            (_, Reason::RolloutHalted) => Standing::Failed,
            _ => Standing::Ok,
        }
    }

    /// Whether the row counts toward a zero exit status (`ok` in JSON):
    /// `false` exactly for the rows that make it non-zero.
    pub fn ok(&self) -> bool {
        self.standing() == Standing::Ok
    }
}

/// One exit status for a whole run, the rows' merged (in the order
/// 130/143, 1, 3, 4, 0): 1 when a change failed or was rolled back, 3 when
/// hosts were not reached and nothing else failed, 4 when stacks were only
/// held back by an earlier failure; 130 after Ctrl-C.
pub fn exit_of(rows: &[Row], interrupted: bool) -> Exit {
    let rows = Exit::merge_all(rows.iter().map(|r| r.standing().exit()));
    if interrupted {
        rows.merge(Exit::Interrupted)
    } else {
        rows
    }
}

/// Whether a run changed or failed anything (what `--quiet` reports).
pub fn eventful(rows: &[Row]) -> bool {
    rows.iter()
        .any(|r| r.action != Action::Skipped || r.error.is_some())
}

/// `1.2s`, `250ms`, `3m04s`.
pub fn human_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        let s = d.as_secs();
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

/// A coarse age: `42s`, `5m`, `3h`, `2d`.
pub fn human_age(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 2 * 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(action: Action) -> Row {
        Row::new("h", "s", action, Reason::UpToDate)
    }

    #[test]
    fn exit_of_merges_the_rows() {
        let held = Row::new("h", "s", Action::Skipped, Reason::PreviousFailure);
        let halted = Row::new("h", "s", Action::Skipped, Reason::RolloutHalted);
        let down = Row::new("h", "s", Action::Failed, Reason::HostFailed);
        let by_hand = Row::new("h", "s", Action::RolledBack, Reason::Manual);
        let cut = Row::new("h", "s", Action::Skipped, Reason::Interrupted);
        let ok = row(Action::Rebuilt);
        let failed = row(Action::Failed);
        for (rows, interrupted, exit) in [
            (vec![], false, Exit::Success),
            (
                vec![row(Action::Skipped), ok.clone(), row(Action::WouldRebuild)],
                false,
                Exit::Success,
            ),
            (vec![ok.clone(), failed.clone()], false, Exit::Failure),
            (vec![row(Action::RolledBack)], false, Exit::Failure),
            (vec![by_hand.clone()], false, Exit::Success),
            (vec![held.clone(), ok.clone()], false, Exit::HeldBack),
            (vec![halted.clone()], false, Exit::Failure),
            (vec![down.clone(), ok.clone()], false, Exit::Unreachable),
            (vec![down.clone(), held.clone()], false, Exit::Unreachable),
            (vec![held.clone(), failed.clone()], false, Exit::Failure),
            (vec![down.clone(), failed.clone()], false, Exit::Failure),
            (vec![failed.clone()], true, Exit::Interrupted),
            (vec![ok.clone(), cut.clone()], true, Exit::Interrupted),
            (vec![ok.clone()], true, Exit::Interrupted),
        ] {
            assert_eq!(exit_of(&rows, interrupted), exit, "{rows:?}");
            // `ok` names exactly the rows that make it non-zero
            let not_ok: Vec<Exit> = rows
                .iter()
                .filter(|r| !r.ok())
                .map(|r| r.standing().exit())
                .collect();
            if !interrupted {
                assert_eq!(not_ok.is_empty(), exit == Exit::Success, "{rows:?}");
                assert_eq!(Exit::merge_all(not_ok), exit, "{rows:?}");
            }
        }
        assert_eq!(Exit::Usage.code(), 2);
    }

    #[test]
    fn when_to_colour() {
        use std::ffi::OsStr;
        let set = Some(OsStr::new("1"));
        let empty = Some(OsStr::new(""));
        assert!(ColorWhen::Auto.resolve(true, None));
        assert!(
            ColorWhen::Auto.resolve(true, empty),
            "empty NO_COLOR is unset"
        );
        assert!(!ColorWhen::Auto.resolve(true, set));
        assert!(!ColorWhen::Auto.resolve(false, None));
        assert!(ColorWhen::Always.resolve(false, set), "the flag wins");
        assert!(!ColorWhen::Never.resolve(true, None));
    }

    #[test]
    fn prefixes_are_painted_only_when_asked() {
        let text = "error: x: bad\nhint: fix it\n  hint: indented\nnot an error: no\n";
        assert_eq!(paint_prefixes(text, false), text);
        assert_eq!(
            paint_prefixes(text, true),
            "\x1b[1;31merror:\x1b[0m x: bad\n\x1b[1;36mhint:\x1b[0m fix it\n  \x1b[1;36mhint:\x1b[0m indented\nnot an error: no\n"
        );
    }
}
