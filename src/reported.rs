//! `-q`'s memory: which persisting failures this controller already
//! reported, so that cron's mail says a failure when it first happens and
//! when it changes, then at most once a day (not every 30 minutes).
//!
//! A run under `-q` shows the rows that changed or failed ([`decide`],
//! pure); a stack held back by its earlier failure (`previous_failure`)
//! is shown only when its failing files (their hash) are not the ones
//! last reported, or when that was a day ago or more. The memory is a
//! small JSON file, `$XDG_STATE_HOME/rbuild/reported.json` (default
//! `~/.local/state/rbuild/reported.json`), keyed by the stack's directory
//! here (which stands for its inventory), its host and its name; written
//! atomically. One that cannot be read or written is a warning, and the
//! run reports as if nothing was remembered.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::decide::Reason;
use crate::report::{Action, Row};

/// A persisting failure is reported again after this long.
pub const AGAIN_AFTER: Duration = Duration::from_secs(86_400);

/// What was reported, by stack (see [`key`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Memory {
    pub version: u32,
    pub stacks: BTreeMap<String, Entry>,
}

/// The last report of a stack's failure: the hash of the files that
/// failed, and when (RFC 3339, UTC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub hash: Option<String>,
    pub reported_at: String,
}

/// The key of a stack of a host: its directory here, its host, its name.
pub fn key(dir: &Path, host: &str, stack: &str) -> String {
    format!("{} {host} {stack}", dir.display())
}

/// Whether a row is worth a mail at all: it changed something, failed, or
/// has something wrong to say (not an `up_to_date` skip).
pub fn eventful(r: &Row) -> bool {
    r.action != Action::Skipped || r.error.is_some() || r.reason.holds_back()
}

/// Which rows a `-q` run shows, and the memory after it (pure). `keys`:
/// each row's [`key`] (`None`: not remembered). A failure is remembered
/// when it is shown; a stack that ends well is forgotten.
pub fn decide(
    rows: &[Row],
    keys: &[Option<String>],
    memory: &Memory,
    now: SystemTime,
) -> (Vec<bool>, Memory) {
    let mut after = memory.clone();
    after.version = 1;
    let mut shown = Vec::with_capacity(rows.len());
    for (r, key) in rows.iter().zip(keys) {
        let Some(key) = key else {
            shown.push(eventful(r));
            continue;
        };
        let remember = |after: &mut Memory| {
            after.stacks.insert(
                key.clone(),
                Entry {
                    hash: r.detail.hash.clone(),
                    reported_at: humantime::format_rfc3339_seconds(now).to_string(),
                },
            );
        };
        let failed = matches!(r.action, Action::Failed | Action::RolledBack);
        if r.reason == Reason::PreviousFailure {
            let recent = memory.stacks.get(key).is_some_and(|e| {
                e.hash == r.detail.hash
                    && humantime::parse_rfc3339(&e.reported_at)
                        .is_ok_and(|at| now.duration_since(at).is_ok_and(|ago| ago < AGAIN_AFTER))
            });
            if !recent {
                remember(&mut after);
            }
            shown.push(!recent);
        } else if failed {
            remember(&mut after);
            shown.push(true);
        } else {
            if matches!(r.action, Action::Rebuilt | Action::Started)
                || (r.action == Action::Skipped && r.error.is_none() && !r.reason.holds_back())
            {
                after.stacks.remove(key);
            }
            shown.push(eventful(r));
        }
    }
    (shown, after)
}

/// Where the memory is kept: `$XDG_STATE_HOME/rbuild/reported.json`,
/// default `~/.local/state/rbuild/reported.json`; `None` without a home.
pub fn path() -> Option<PathBuf> {
    Some(crate::local_files::xdg("XDG_STATE_HOME", ".local/state")?.join("rbuild/reported.json"))
}

/// The memory in `path`; none yet is an empty one.
pub fn load(path: &Path) -> Result<Memory, String> {
    match std::fs::read(path) {
        // none yet (writing it says why, if it cannot be written)
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            Ok(Memory::default())
        }
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| format!("{} is not what rbuild writes: {e}", path.display())),
    }
}

/// Write the memory to `path` atomically (a file beside it, renamed),
/// making its directory.
pub fn save(path: &Path, memory: &Memory) -> Result<(), String> {
    let fail = |e: &dyn std::fmt::Display| format!("cannot write {}: {e}", path.display());
    let text = serde_json::to_string_pretty(memory).map_err(|e| fail(&e))?;
    crate::local_files::write_atomically(path, format!("{text}\n").as_bytes()).map_err(|e| fail(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(action: Action, reason: Reason, hash: &str) -> Row {
        let mut r = Row::new("web1", "blog", action, reason);
        r.detail.hash = Some(hash.to_owned());
        if reason == Reason::PreviousFailure {
            r.error = Some("these files failed their rebuild 5m ago".into());
        }
        r
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
    }

    /// One run of `rows` (one stack) against `memory`: what is shown.
    fn run(memory: &mut Memory, r: Row, now: SystemTime) -> bool {
        let (shown, after) = decide(&[r], &[Some("k".into())], memory, now);
        *memory = after;
        shown[0]
    }

    #[test]
    fn a_persisting_failure_is_mailed_when_it_happens_changes_and_once_a_day() {
        let mut m = Memory::default();
        // it fails: shown
        assert!(run(
            &mut m,
            row(Action::Failed, Reason::ConfigChanged, "h1"),
            at(0)
        ));
        // held back by it, every 30 minutes: not shown within the day
        for k in 1..48 {
            assert!(
                !run(
                    &mut m,
                    row(Action::Skipped, Reason::PreviousFailure, "h1"),
                    at(k * 1800)
                ),
                "{k}"
            );
        }
        // a day after it was reported: shown once more
        assert!(run(
            &mut m,
            row(Action::Skipped, Reason::PreviousFailure, "h1"),
            at(86_400)
        ));
        assert!(!run(
            &mut m,
            row(Action::Skipped, Reason::PreviousFailure, "h1"),
            at(88_200)
        ));
        // its files change and fail again: shown
        assert!(run(
            &mut m,
            row(Action::Failed, Reason::ConfigChanged, "h2"),
            at(90_000)
        ));
        assert!(!run(
            &mut m,
            row(Action::Skipped, Reason::PreviousFailure, "h2"),
            at(91_800)
        ));
        // a held-back failure with other files than those reported: shown
        assert!(run(
            &mut m,
            row(Action::Skipped, Reason::PreviousFailure, "h3"),
            at(93_600)
        ));
        // fixed: forgotten; the same failure later is news again
        assert!(run(
            &mut m,
            row(Action::Rebuilt, Reason::ConfigChanged, "h4"),
            at(95_400)
        ));
        assert!(m.stacks.is_empty());
        assert!(run(
            &mut m,
            row(Action::Skipped, Reason::PreviousFailure, "h3"),
            at(97_200)
        ));
    }

    #[test]
    fn only_rows_that_changed_or_failed_are_shown() {
        let rows = [
            Row::new("web1", "a", Action::Skipped, Reason::UpToDate),
            Row::new("web1", "b", Action::Rebuilt, Reason::Expired),
            Row::new("web1", "c", Action::Skipped, Reason::Held),
            Row {
                error: Some("down".into()),
                ..Row::new("web2", "a", Action::Failed, Reason::HostFailed)
            },
            Row::new("web2", "b", Action::Skipped, Reason::RolloutHalted),
        ];
        let keys: Vec<Option<String>> = rows.iter().map(|_| None).collect();
        let (shown, _) = decide(&rows, &keys, &Memory::default(), at(0));
        assert_eq!(shown, [false, true, false, true, true]);
    }

    #[test]
    fn the_memory_is_written_whole_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/rbuild/reported.json");
        assert_eq!(load(&path).unwrap(), Memory::default());
        let (_, m) = decide(
            &[row(Action::Failed, Reason::ConfigChanged, "h1")],
            &[Some(key(Path::new("/srv/blog"), "web1", "blog"))],
            &Memory::default(),
            at(0),
        );
        save(&path, &m).unwrap();
        assert_eq!(load(&path).unwrap(), m);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"/srv/blog web1 blog\""), "{text}");
        assert!(
            text.contains("\"reported_at\": \"2023-11-14T22:13:20Z\""),
            "{text}"
        );
        std::fs::write(&path, "not json").unwrap();
        assert!(
            load(&path)
                .unwrap_err()
                .contains("is not what rbuild writes")
        );
        // a file where its directory should be
        let blocked = dir.path().join("file");
        std::fs::write(&blocked, "").unwrap();
        assert!(save(&blocked.join("reported.json"), &m).is_err());
    }
}
