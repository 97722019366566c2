//! `rbuild merge SHARD.json...`: fan in the run documents of a fleet split
//! with `--shard K/N` (a CI matrix, an Indexed Job, N cron boxes): their
//! rows as one run, and one exit status, the shards' merged (130/143 > 1 >
//! 3 > 4 > 0, see [`crate::exit::Exit::merge`]). Reads files; contacts no
//! host.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Outcome;
use crate::error::Error;
use crate::exit::Exit;
use crate::report::json::{self, RunRead};
use crate::report::output::Output;

/// Read every shard's document and merge them. A file missing,
/// unreadable, or no run document of this version is a usage error naming
/// it; so is a stack of a host that two documents both have (a shard given
/// twice). Local-mode documents merge too (their host is `local`).
pub fn run(paths: &[PathBuf]) -> Result<Outcome, Error> {
    let mut docs = Vec::with_capacity(paths.len());
    for p in paths {
        docs.push((p.display().to_string(), read(p)?));
    }
    merge(docs)
}

fn read(path: &Path) -> Result<RunRead, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::usage(format!("cannot read `{}`: {e}", path.display())))?;
    json::parse(&text).map_err(|e| {
        Error::usage(format!(
            "`{}`: {e}\nhint: give the documents that `rbuild --shard K/N --json` printed, one a shard",
            path.display()
        ))
    })
}

/// The shards' documents (each named as given) as one run: their rows in
/// the order given, its time from the first start to the last end, and
/// the merged exit status.
pub fn merge(docs: Vec<(String, RunRead)>) -> Result<Outcome, Error> {
    let mut owner: std::collections::HashMap<(&str, &str), usize> = Default::default();
    for (i, (name, d)) in docs.iter().enumerate() {
        for r in &d.rows {
            let key = (r.host.as_str(), r.stack.as_str());
            match owner.insert(key, i) {
                Some(other) if other != i => {
                    return Err(Error::usage(format!(
                        "host `{}`, stack `{}` is in both `{}` and `{name}`\nhint: give each shard's document once (the shards of one `--shard K/N` split share no host)",
                        key.0, key.1, docs[other].0
                    )));
                }
                _ => {}
            }
        }
    }
    let mut notes = Vec::new();
    let mut exit = Exit::Success;
    let mut rows = Vec::new();
    for (name, d) in docs {
        if let Some(e) = &d.error {
            notes.push(format!(
                "warning: `{name}`: that run stopped before any host (exit status {}): {e}",
                d.exit.code()
            ));
        }
        exit = exit.merge(d.exit);
        rows.extend(d.rows);
    }
    let exit = exit.merge(crate::report::exit_of(&rows, false));
    let first = rows.iter().filter_map(|r| r.detail.started).min();
    let last = rows.iter().filter_map(|r| r.detail.finished).max();
    let elapsed = match (first, last) {
        (Some(a), Some(b)) => b.duration_since(a).unwrap_or_default(),
        _ => Duration::ZERO,
    };
    Ok(Outcome {
        output: Output::Merge {
            rows,
            elapsed,
            notes,
        },
        exit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::Reason;
    use crate::report::{Action, Row};
    use std::time::UNIX_EPOCH;

    fn doc(rows: Vec<Row>) -> RunRead {
        let exit = crate::report::exit_of(&rows, false);
        RunRead {
            rows,
            exit,
            error: None,
        }
    }

    fn row(host: &str, action: Action, reason: Reason) -> Row {
        Row::new(host, "blog", action, reason)
    }

    fn merged(docs: Vec<RunRead>) -> Exit {
        let named = docs
            .into_iter()
            .enumerate()
            .map(|(i, d)| (format!("shard-{i}.json"), d))
            .collect();
        merge(named).unwrap().exit
    }

    #[test]
    fn the_exit_status_is_the_shards_merged() {
        let ok = || doc(vec![row("a", Action::Rebuilt, Reason::Expired)]);
        let held = || doc(vec![row("b", Action::Skipped, Reason::PreviousFailure)]);
        let down = || doc(vec![row("c", Action::Failed, Reason::HostFailed)]);
        let failed = || doc(vec![row("d", Action::RolledBack, Reason::Expired)]);
        let interrupted = || RunRead {
            exit: Exit::Interrupted,
            ..doc(vec![row("e", Action::Skipped, Reason::Interrupted)])
        };
        let refused = || RunRead {
            rows: vec![],
            exit: Exit::Usage,
            error: Some("bad inventory".into()),
        };
        for (docs, exit) in [
            (vec![], Exit::Success),
            (
                vec![
                    ok(),
                    doc(vec![row("f", Action::Started, Reason::NotRunning)]),
                ],
                Exit::Success,
            ),
            (vec![ok(), held()], Exit::HeldBack),
            (vec![held(), down()], Exit::Unreachable),
            (vec![down(), failed(), held()], Exit::Failure),
            (vec![failed(), interrupted()], Exit::Interrupted),
            (vec![ok(), refused()], Exit::Usage),
        ] {
            assert_eq!(merged(docs.clone()), exit, "{docs:?}");
        }
    }

    #[test]
    fn rows_follow_in_order_and_the_time_spans_every_shard() {
        let at = |s| Some(UNIX_EPOCH + Duration::from_secs(s));
        let mut a = row("a", Action::Rebuilt, Reason::Expired);
        (a.detail.started, a.detail.finished) = (at(100), at(110));
        let mut b = row("b", Action::Skipped, Reason::UpToDate);
        (b.detail.started, b.detail.finished) = (at(90), at(130));
        let out = merge(vec![
            ("1.json".into(), doc(vec![a])),
            ("2.json".into(), doc(vec![b])),
            (
                "3.json".into(),
                RunRead {
                    rows: vec![],
                    exit: Exit::Usage,
                    error: Some("bad".into()),
                },
            ),
        ])
        .unwrap();
        let Output::Merge {
            rows,
            elapsed,
            notes,
        } = out.output
        else {
            panic!("a merge");
        };
        assert_eq!(
            rows.iter().map(|r| r.host.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(elapsed, Duration::from_secs(40));
        assert_eq!(
            notes,
            ["warning: `3.json`: that run stopped before any host (exit status 2): bad"]
        );
    }

    #[test]
    fn a_stack_in_two_documents_is_a_usage_error() {
        let e = merge(vec![
            (
                "1.json".into(),
                doc(vec![row("a", Action::Rebuilt, Reason::Expired)]),
            ),
            (
                "2.json".into(),
                doc(vec![row("a", Action::Skipped, Reason::UpToDate)]),
            ),
        ])
        .unwrap_err();
        assert_eq!(e.exit(), Exit::Usage);
        assert!(
            e.to_string()
                .starts_with("host `a`, stack `blog` is in both `1.json` and `2.json`"),
            "{e}"
        );
    }

    #[test]
    fn a_file_that_is_no_run_document_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.json");
        let e = run(std::slice::from_ref(&missing)).unwrap_err();
        assert_eq!(e.exit(), Exit::Usage);
        assert!(e.to_string().contains("missing.json"), "{e}");
        let old = dir.path().join("old.json");
        std::fs::write(&old, r#"{"version":1,"results":[]}"#).unwrap();
        let e = run(&[old]).unwrap_err();
        assert!(
            e.to_string().contains("old.json`: a document of version 1"),
            "{e}"
        );
    }
}
