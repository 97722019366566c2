//! Every summary row rbuild makes, and its words: one function per kind of
//! row, one wording per message. The executor and the manual commands build
//! their rows here and nowhere else.

use std::time::Duration;

use super::{Action, Row, human_age};
use crate::decide::Reason;
use crate::plan::Verdict;
use crate::remote::event::OLDEST_STATE_VERSION;
use crate::remote::{BadState, Cause, Outcome, RemoteError, STATE_VERSION, StackResult};
use crate::stack::StackError;

/// The hint of every `locked` row.
const LOCKED_HINT: &str = "wait for it to finish, or give `--lock-wait 10m` to wait for it; a lock whose holder is gone is taken over by itself";

impl Row {
    fn error(mut self, e: impl Into<String>) -> Row {
        self.error = Some(e.into());
        self
    }

    /// Words for a row that did not fail (its ERROR column, `error` in
    /// JSON): what else the host said.
    fn note(mut self, n: Option<String>) -> Row {
        self.error = n;
        self
    }

    fn hint(mut self, h: Option<&str>) -> Row {
        self.hint = h.map(str::to_owned);
        self
    }

    fn took(mut self, d: Duration) -> Row {
        self.duration = d;
        self
    }
}

/// What to do about what the host named at fault.
fn cause_hint(cause: Option<Cause>) -> Option<&'static str> {
    Some(match cause? {
        Cause::Engine => {
            "start the Docker engine on the host (`systemctl start docker`), then run rbuild again"
        }
        Cause::EngineDenied => {
            "add the deploying user to the host's `docker` group (`usermod -aG docker USER`), or deploy as a user in it"
        }
        Cause::NoDocker => {
            "install Docker on the host, or put `docker` in the PATH that non-interactive ssh sessions get"
        }
        Cause::NoCompose => {
            "install the Compose v2 plugin (`docker compose`) or Compose v1 (`docker-compose`) on the host"
        }
        Cause::NotOurs => {
            "point the stack at a directory of its own (`remote_dir`), or set `adopt: true` on it to ship there: what is there stays, but a file rbuild ships replaces the one at its path"
        }
        Cause::NoSpace => "free space on the host (its state directory, its stack directories)",
        Cause::Payload => {
            "the connection was cut while the files were sent, or a file changed meanwhile: run rbuild again"
        }
        Cause::NoSha256 => "install coreutils (`sha256sum`) or openssl on the host",
        Cause::AfterHook => {
            "the hook's output: `rbuild logs HOST STACK`; it runs again with the next rebuild (fix it, then `--force-rebuild` to run it now)"
        }
        Cause::PortTaken => {
            "find what holds the port on the host (`ss -ltnp`), or publish the service on another one"
        }
        Cause::Timeout => {
            "raise `build_timeout` (inventory, or `--build-timeout`) if the build is just slow; the host's log of it is `STATE_DIR/NAME.log`"
        }
    })
}

/// The words of a stack whose earlier run was cut off on its host, killed
/// in `phase`.
pub fn cut_off_words(phase: &str) -> String {
    format!("an earlier run was cut off on the host (at {phase})")
}

fn locked_message(pid: &str) -> String {
    format!("another rbuild run (pid {pid} on the host) holds the lock of this stack")
}

/// A row's words on its images (its ERROR column when it did not fail):
/// what moved and is deployed, what waits for `min_age`; in a dry run's
/// plan also what cannot be told (the build period alone applies).
pub fn images_note(f: &crate::fresh::Freshness, dry_run: bool) -> Option<String> {
    use crate::fresh::short;
    let age = |s: u64| humantime::format_duration(Duration::from_secs(s)).to_string();
    let mut parts: Vec<String> = Vec::new();
    for m in &f.moved {
        parts.push(format!(
            "{} moved ({} -> {})",
            m.reference,
            short(&m.recorded),
            short(&m.current)
        ));
    }
    for m in &f.cooling {
        parts.push(format!(
            "{} moved {} ago ({}): deployed once it is min_age old",
            m.reference,
            age(m.age),
            short(&m.current)
        ));
    }
    if dry_run {
        for u in &f.unknown {
            parts.push(format!(
                "{}: not checked ({}); the build period applies",
                u.image, u.why
            ));
        }
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// The row of a stack settled by its check (any verdict but `Rebuild`).
pub fn settled(host: &str, stack: &str, v: &Verdict, checked: Duration) -> Row {
    let r = match v {
        Verdict::Skip(reason) => Row::new(host, stack, Action::Skipped, *reason),
        Verdict::WouldRebuild(reason) => Row::new(host, stack, Action::WouldRebuild, *reason),
        Verdict::WouldStart { cut_off } => Row::new(
            host,
            stack,
            Action::WouldStart,
            crate::plan::start_reason(cut_off.as_deref()),
        )
        .note(cut_off.as_deref().map(cut_off_words)),
        Verdict::WouldVerify => Row::new(host, stack, Action::WouldStart, Reason::Restarted).note(
            Some(
                "a container of what runs restarted since its gate: the run looks, and rolls a crash loop back"
                    .to_owned(),
            ),
        ),
        Verdict::PreviousFailure {
            failed_ago,
            earlier_runs,
            generation,
            running,
        } => {
            // what the host saw: the generation its state names, and
            // whether its containers were there at the check
            let which = generation.map_or("the version built before".to_owned(), |g| {
                format!("generation {g}")
            });
            let runs = match (earlier_runs, running) {
                (false, _) => "no version runs (it never built)".to_owned(),
                (true, Some(true)) => format!("{which} still runs"),
                (true, _) => format!("{which} is the one recorded as running"),
            };
            Row::new(host, stack, Action::Skipped, Reason::PreviousFailure)
                .error(format!(
                    "these files failed their rebuild {} ago; {runs}",
                    human_age(*failed_ago)
                ))
                .hint(Some(
                    "fix the stack (any change is retried), or `--force-rebuild` to retry as it is",
                ))
        }
        Verdict::Locked { pid, due } => Row::new(host, stack, Action::Failed, Reason::Locked)
            .error(format!("{} ({})", locked_message(pid), due.as_str()))
            .hint(Some(LOCKED_HINT)),
        Verdict::Unreadable(BadState::NotAFile) => {
            Row::new(host, stack, Action::Failed, Reason::StateUnreadable)
                .error("its state file on the host is not a regular file (a directory?), so it is left as it is")
                .hint(Some(
                    "look at `STATE_DIR/NAME.state` on the host: move it aside to have the stack built as new",
                ))
        }
        Verdict::Unreadable(BadState::NoVersion) => {
            Row::new(host, stack, Action::Failed, Reason::StateUnreadable)
                .error("its state file on the host is not an rbuild state file (empty, or no version line: a write cut short), so it is left as it is")
                .hint(Some(
                    "look at `STATE_DIR/NAME.state` on the host: moving it aside makes the stack a first build (its history stays)",
                ))
        }
        Verdict::Unreadable(BadState::Newer(version)) => {
            Row::new(host, stack, Action::Failed, Reason::StateUnreadable)
                .error(format!(
                    "its state file on the host has version {version}, written by a newer rbuild; this one reads versions {OLDEST_STATE_VERSION} to {STATE_VERSION}, so it is left as it is"
                ))
                .hint(Some(
                    "run the newer rbuild, or upgrade this one; moving the state file aside makes the stack a first build",
                ))
        }
        Verdict::Unreadable(BadState::Unknown(version)) => {
            Row::new(host, stack, Action::Failed, Reason::StateUnreadable)
                .error(format!(
                    "its state file on the host has version `{}`, which no rbuild writes (damaged, or not an rbuild state file), so it is left as it is",
                    version.escape_debug()
                ))
                .hint(Some(
                    "look at `STATE_DIR/NAME.state` on the host: moving it aside makes the stack a first build (its history stays)",
                ))
        }
        Verdict::Rebuild { .. } | Verdict::Start { .. } | Verdict::Verify => {
            unreachable!("a due stack is not settled by its check")
        }
    };
    r.took(checked)
}

/// A dry run's row for a stack that would be rebuilt or started on a host
/// that cannot (no docker, no compose, the engine not usable): it would
/// fail, and says on what.
pub fn would_fail(
    host: &str,
    stack: &str,
    due: Reason,
    problem: &(Option<Cause>, String),
    checked: Duration,
) -> Row {
    Row::new(host, stack, Action::Failed, due)
        .error(format!("would fail: {}", problem.1))
        .hint(cause_hint(problem.0))
        .took(checked)
}

/// The row of a stack whose host failed as a whole (not reached, or its
/// check failed): the host's error and its hint.
pub fn host_failed(
    host: &str,
    stack: &str,
    e: &dyn std::fmt::Display,
    hint: Option<&str>,
    took: Duration,
) -> Row {
    Row::new(host, stack, Action::Failed, Reason::HostFailed)
        .error(e.to_string())
        .hint(hint)
        .took(took)
}

/// The stack's files on this machine cannot be read: nothing is done with
/// it on its host.
pub fn unreadable(host: &str, stack: &str, e: &StackError) -> Row {
    Row::new(host, stack, Action::Failed, Reason::Unreadable)
        .error(format!("cannot read the stack: {e}"))
        .hint(Some(
            "fix the file's permissions or name on this machine, or list it in the stack's `.rbuildignore`",
        ))
}

/// A host's task panicked (a bug): its stacks fail, the others go on.
pub fn internal_error<'a>(
    host: &str,
    stacks: impl IntoIterator<Item = &'a str>,
    e: &dyn std::fmt::Display,
) -> Vec<Row> {
    stacks
        .into_iter()
        .map(|s| {
            Row::new(host, s, Action::Failed, Reason::HostFailed)
                .error(format!("internal error: {e}"))
        })
        .collect()
}

/// Ctrl-C came before the stack's host (or its turn in a rollout).
pub fn interrupted(host: &str, stack: &str) -> Row {
    Row::new(host, stack, Action::Skipped, Reason::Interrupted)
}

/// The stack was due, but its rollout halted before this host's turn.
pub fn halted(host: &str, stack: &str, due: Reason, why: &str) -> Row {
    Row::new(host, stack, Action::Skipped, Reason::RolloutHalted).error(format!(
        "not rebuilt ({}): the rollout of `{stack}` halted, {why}",
        due.as_str()
    ))
}

/// The stack was due, but its host could not be reached for the rebuild.
pub fn unreached(
    host: &str,
    stack: &str,
    due: Reason,
    e: &dyn std::fmt::Display,
    hint: Option<&str>,
) -> Row {
    Row::new(host, stack, Action::Failed, due)
        .error(format!("connecting for the rebuild: {e}"))
        .hint(hint)
}

/// The stack was due, but its files could not be packed.
pub fn pack_failed(host: &str, stack: &str, due: Reason, e: &StackError) -> Row {
    Row::new(host, stack, Action::Failed, due).error(format!("cannot pack the stack: {e}"))
}

/// How a due stack's rebuild ended: its result, or why there is none.
pub fn applied(
    host: &str,
    stack: &str,
    due: Reason,
    result: Option<&StackResult>,
    cut: Option<&RemoteError>,
    took: Duration,
) -> Row {
    let r = match result.map(|r| (&r.outcome, r.detail.as_str())) {
        // rebuilt and recorded, but its after hook failed: a failure to see
        Some((Outcome::Rebuilt, detail))
            if result.and_then(|r| r.cause) == Some(Cause::AfterHook) =>
        {
            Row::new(host, stack, Action::Failed, due)
                .error(detail)
                .hint(cause_hint(Some(Cause::AfterHook)))
        }
        Some((Outcome::Rebuilt, _)) => Row::new(host, stack, Action::Rebuilt, due),
        // recovered: the host's words say where the run was cut off and
        // which generation runs again
        Some((Outcome::Started, detail)) if due == Reason::CutOff => {
            Row::new(host, stack, Action::Started, due).note(Some(if detail.is_empty() {
                "an earlier run was cut off on the host".to_owned()
            } else {
                detail.to_owned()
            }))
        }
        Some((Outcome::Started, _)) => Row::new(host, stack, Action::Started, due),
        // the host's words say what failed and which generation runs again
        Some((Outcome::RolledBack, detail)) => {
            Row::new(host, stack, Action::RolledBack, due).error(detail)
        }
        Some((Outcome::Failed, detail)) => Row::new(host, stack, Action::Failed, due)
            .error(detail)
            .hint(cause_hint(result.and_then(|r| r.cause))),
        Some((Outcome::Locked { pid }, _)) => Row::new(host, stack, Action::Failed, Reason::Locked)
            .error(locked_message(pid))
            .hint(Some(LOCKED_HINT)),
        None => Row::new(host, stack, Action::Failed, due)
            .error(no_result(cut))
            .hint(match cut {
                Some(RemoteError::Fatal { cause, .. }) => cause_hint(*cause),
                _ => None,
            }),
    };
    r.took(took)
}

/// How `rbuild rollback` ended for its stack.
pub fn rolled_back_by_hand(host: &str, stack: &str, result: &StackResult, took: Duration) -> Row {
    let r = match &result.outcome {
        // the host says from which generation to which
        Outcome::RolledBack => Row::new(host, stack, Action::RolledBack, Reason::Manual)
            .note((!result.detail.is_empty()).then(|| result.detail.clone())),
        Outcome::Locked { pid } => Row::new(host, stack, Action::Failed, Reason::Locked)
            .error(locked_message(pid))
            .hint(Some(LOCKED_HINT)),
        Outcome::Rebuilt | Outcome::Started | Outcome::Failed => {
            Row::new(host, stack, Action::Failed, Reason::Manual)
                .error(result.detail.clone())
                .hint(cause_hint(result.cause))
        }
    };
    r.took(took)
}

/// Why a stack has no result.
fn no_result(cut: Option<&RemoteError>) -> String {
    match cut {
        // it never started: nothing runs on
        Some(RemoteError::Fatal { text, .. }) => text.clone(),
        Some(e) if e.may_still_run() => format!(
            "no result: {e}; a rebuild may still be running on the host (it holds the stack's lock)"
        ),
        Some(e) => format!("no result: {e}"),
        None => "no result from the host".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn images_are_worded_moved_cooling_and_in_a_dry_run_unknown() {
        use crate::fresh::{Freshness, Moved, Unknown};
        let m = |age| Moved {
            reference: "127.0.0.1:5000/base:1".into(),
            service: "app".into(),
            built: true,
            recorded: format!("sha256:{}", "a".repeat(64)),
            current: format!("sha256:{}", "b".repeat(64)),
            age,
        };
        let f = Freshness {
            moved: vec![m(10)],
            cooling: vec![m(7200)],
            unknown: vec![Unknown {
                image: "web".into(),
                why: "its image names ${TAG}, unset here".into(),
            }],
        };
        assert_eq!(
            super::images_note(&f, false).unwrap(),
            "127.0.0.1:5000/base:1 moved (sha256:aaaaaaaaaaaa -> sha256:bbbbbbbbbbbb); \
             127.0.0.1:5000/base:1 moved 2h ago (sha256:bbbbbbbbbbbb): deployed once it is min_age old"
        );
        assert!(super::images_note(&f, true).unwrap().ends_with(
            "web: not checked (its image names ${TAG}, unset here); the build period applies"
        ));
        assert_eq!(super::images_note(&Freshness::default(), true), None);
    }

    use super::*;

    #[test]
    fn one_wording_for_a_held_lock() {
        let at_check = settled(
            "h",
            "s",
            &Verdict::Locked {
                pid: "42".into(),
                due: Reason::Expired,
            },
            Duration::ZERO,
        );
        let result = StackResult {
            outcome: Outcome::Locked { pid: "42".into() },
            detail: String::new(),
            cause: None,
            log: vec![],
        };
        let at_apply = applied(
            "h",
            "s",
            Reason::Expired,
            Some(&result),
            None,
            Duration::ZERO,
        );
        let by_hand = rolled_back_by_hand("h", "s", &result, Duration::ZERO);
        for r in [&at_check, &at_apply, &by_hand] {
            assert_eq!(r.reason, Reason::Locked);
            assert_eq!(r.action, Action::Failed);
            assert!(
                r.error.as_deref().unwrap().starts_with(
                    "another rbuild run (pid 42 on the host) holds the lock of this stack"
                ),
                "{r:?}"
            );
            assert_eq!(r.hint.as_deref(), Some(LOCKED_HINT));
        }
    }

    #[test]
    fn a_state_file_not_read_is_never_blamed_on_a_newer_rbuild_unless_it_is_one() {
        let row = |b: BadState| {
            let r = settled("h", "s", &Verdict::Unreadable(b), Duration::ZERO);
            assert_eq!(
                (r.action, r.reason),
                (Action::Failed, Reason::StateUnreadable)
            );
            (r.error.unwrap(), r.hint.unwrap())
        };
        let (e, h) = row(BadState::NoVersion);
        assert_eq!(
            e,
            "its state file on the host is not an rbuild state file (empty, or no version line: a write cut short), so it is left as it is"
        );
        assert!(!h.contains("newer"), "{h}");
        let (e, h) = row(BadState::Unknown("0".into()));
        assert!(e.contains("version `0`, which no rbuild writes"), "{e}");
        assert!(!e.contains("newer") && !h.contains("newer"), "{e} {h}");
        let (e, _) = row(BadState::Newer("3".into()));
        assert_eq!(
            e,
            "its state file on the host has version 3, written by a newer rbuild; this one reads versions 1 to 2, so it is left as it is"
        );
    }

    #[test]
    fn a_run_cut_off_on_the_host_says_so() {
        let dry = settled(
            "h",
            "s",
            &Verdict::WouldStart {
                cut_off: Some("gate".into()),
            },
            Duration::ZERO,
        );
        assert_eq!(
            (dry.action, dry.reason),
            (Action::WouldStart, Reason::CutOff)
        );
        assert_eq!(
            dry.error.as_deref(),
            Some("an earlier run was cut off on the host (at gate)")
        );
        let plain = settled(
            "h",
            "s",
            &Verdict::WouldStart { cut_off: None },
            Duration::ZERO,
        );
        assert_eq!((plain.reason, plain.error), (Reason::NotRunning, None));
        let started = |detail: &str, due| {
            let result = StackResult {
                outcome: Outcome::Started,
                detail: detail.into(),
                cause: None,
                log: vec![],
            };
            applied("h", "s", due, Some(&result), None, Duration::ZERO)
        };
        let r = started(
            "an earlier run was cut off (at gate); generation 3 runs again",
            Reason::CutOff,
        );
        assert_eq!((r.action, r.reason), (Action::Started, Reason::CutOff));
        assert_eq!(
            r.error.as_deref(),
            Some("an earlier run was cut off (at gate); generation 3 runs again")
        );
        assert_eq!(
            started("", Reason::CutOff).error.as_deref(),
            Some("an earlier run was cut off on the host")
        );
        assert_eq!(started("with compose v2", Reason::NotRunning).error, None);
    }

    #[test]
    fn a_rollback_by_hand_says_from_which_generation_to_which() {
        let result = |outcome, detail: &str| StackResult {
            outcome,
            detail: detail.into(),
            cause: None,
            log: vec![],
        };
        let r = rolled_back_by_hand(
            "h",
            "s",
            &result(Outcome::RolledBack, "from generation 3 to generation 2"),
            Duration::ZERO,
        );
        assert_eq!((r.action, r.reason), (Action::RolledBack, Reason::Manual));
        assert_eq!(
            r.error.as_deref(),
            Some("from generation 3 to generation 2")
        );
        let r = rolled_back_by_hand(
            "h",
            "s",
            &result(
                Outcome::Failed,
                "no generation older than 3 is kept (keep_generations: 2)",
            ),
            Duration::ZERO,
        );
        assert_eq!((r.action, r.reason), (Action::Failed, Reason::Manual));
        assert_eq!(
            r.error.as_deref(),
            Some("no generation older than 3 is kept (keep_generations: 2)")
        );
    }

    #[test]
    fn a_stack_without_a_result_says_whether_it_may_still_run() {
        let lost = RemoteError::Cut {
            code: None,
            stderr: String::new(),
        };
        let r = applied("h", "s", Reason::Expired, None, Some(&lost), Duration::ZERO);
        assert!(r.error.unwrap().contains("may still be running"));
        let exited = RemoteError::Cut {
            code: Some(2),
            stderr: "sh: syntax error".into(),
        };
        let r = applied(
            "h",
            "s",
            Reason::Expired,
            None,
            Some(&exited),
            Duration::ZERO,
        );
        assert_eq!(
            r.error.as_deref(),
            Some("no result: the remote script exited with status 2: sh: syntax error")
        );
        let fatal = RemoteError::Fatal {
            text: "no compose here".into(),
            cause: Some(Cause::NoCompose),
        };
        let r = applied(
            "h",
            "s",
            Reason::Expired,
            None,
            Some(&fatal),
            Duration::ZERO,
        );
        assert_eq!(r.error.as_deref(), Some("no compose here"));
        assert!(r.hint.unwrap().contains("Compose v2 plugin"));
        // a stack that failed for its engine says what to do
        let down = StackResult {
            outcome: Outcome::Failed,
            detail: "the Docker engine does not answer: Cannot connect".into(),
            cause: Some(Cause::Engine),
            log: vec![],
        };
        let r = applied("h", "s", Reason::Expired, Some(&down), None, Duration::ZERO);
        assert!(r.hint.unwrap().contains("start the Docker engine"));
    }
}
