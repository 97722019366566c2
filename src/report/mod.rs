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

use serde::Serialize;

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
    Result { row: Row, log: Vec<String> },
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

/// One exit status for a whole run: 1 when a stack failed, was rolled
/// back, or was held back by an earlier failure or a halted rollout; 130
/// after Ctrl-C.
pub fn exit_of(rows: &[Row], interrupted: bool) -> Exit {
    if interrupted {
        Exit::Interrupted
    } else if rows
        .iter()
        .any(|r| matches!(r.action, Action::Failed | Action::RolledBack) || r.reason.holds_back())
    {
        Exit::Failure
    } else {
        Exit::Success
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
        assert_eq!(exit_of(&[], false), Exit::Success);
        assert_eq!(
            exit_of(
                &[
                    row(Action::Skipped),
                    row(Action::Rebuilt),
                    row(Action::WouldRebuild)
                ],
                false
            ),
            Exit::Success
        );
        assert_eq!(
            exit_of(&[row(Action::Rebuilt), row(Action::Failed)], false),
            Exit::Failure
        );
        assert_eq!(exit_of(&[row(Action::RolledBack)], false), Exit::Failure);
        assert_eq!(exit_of(&[row(Action::Failed)], true), Exit::Interrupted);
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
