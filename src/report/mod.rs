//! Results and their rendering. Workers send [`Progress`] events; one
//! monitor ([`progress`]) draws them; at the end the rows become a table
//! ([`table`]) or a JSON document ([`json`]). Rendering is pure.

pub mod json;
pub mod plan;
pub mod progress;
pub mod rows;
pub mod table;

use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::decide::Reason;

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
    pub plan: Option<plan::ShipPlan>,
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
