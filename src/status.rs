//! `rbuild status`'s assessment (pure): what a host's status answer says
//! of each of its stacks: what runs, whether its files here are what the
//! host built, what the next run does and when, and what is wrong. The
//! hosts are asked by the executor ([`crate::fleet::status`]); the table
//! and the JSON document are drawn in [`crate::report::status`].

use serde::Serialize;

use crate::decide::Reason;
use crate::exit::Exit;
use crate::fresh::Freshness;
use crate::plan::{self, Verdict};
use crate::remote::{Attempt, BadState, Health, LastResult, Service, ServiceState, StatusStack};
use crate::report::rows::cut_off_words;

/// Whether the stack's files on this machine are what the host last built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Files {
    /// The hash the host recorded is theirs.
    Same,
    /// They changed since (or the stack was never built there).
    Changed,
    /// They cannot be read here.
    Unreadable,
}

/// When the next run would rebuild (or start) the stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Next {
    /// The next run does something (`reason` says what and why).
    Now,
    /// Up to date: at `due_at`, when the build period ends.
    Later,
    /// Held back until the files change or a rebuild is forced (a failed
    /// attempt within the period, or a rollback by hand).
    Held,
}

/// One stack of one host, assessed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackStatus {
    pub host: String,
    pub stack: String,
    /// What is wrong, when something is (the exit status counts these).
    pub problem: Option<String>,
    /// The host could not be asked: why.
    pub error: Option<String>,
    pub hint: Option<String>,
    pub services: Vec<Service>,
    /// What the check says of what runs: `None` when it cannot tell.
    pub running: Option<bool>,
    pub last_result: Option<LastResult>,
    /// Host time of the last successful build.
    pub built_at: Option<u64>,
    /// The host's clock when asked.
    pub now: Option<u64>,
    /// The hash recorded for the last successful build.
    pub hash: Option<String>,
    /// The generation that runs (`None`: none, or a host that counts none
    /// yet).
    pub generation: Option<u64>,
    /// The other generations whose images are kept (rollback targets).
    pub kept: Vec<u64>,
    /// The phase an earlier run was cut off in on the host, if one was.
    pub cut_off: Option<String>,
    pub files: Option<Files>,
    pub next: Option<Next>,
    /// Why the next run does what it does (`config_changed`, `up_to_date`).
    pub next_reason: Option<Reason>,
    /// Host time the build period ends (for `later` and `held`).
    pub due_at: Option<u64>,
    pub last_failure: Option<Attempt>,
    /// Pid of a run holding the stack's lock.
    pub locked_by: Option<String>,
    /// Its images against the registries: those that moved since the
    /// build that runs (`outdated`), those cooling down, those unknown.
    pub images: Option<Freshness>,
}

impl StackStatus {
    /// It runs on an image that has moved in its registry since its build.
    pub fn outdated(&self) -> bool {
        self.images
            .as_ref()
            .is_some_and(|f| !f.moved.is_empty() || !f.cooling.is_empty())
    }
}

impl StackStatus {
    fn blank(host: &str, stack: &str) -> StackStatus {
        StackStatus {
            host: host.to_owned(),
            stack: stack.to_owned(),
            problem: None,
            error: None,
            hint: None,
            services: vec![],
            running: None,
            last_result: None,
            built_at: None,
            now: None,
            hash: None,
            generation: None,
            kept: vec![],
            cut_off: None,
            files: None,
            next: None,
            next_reason: None,
            due_at: None,
            last_failure: None,
            locked_by: None,
            images: None,
        }
    }
}

/// A stack of a host that could not be asked.
pub fn unreachable(
    host: &str,
    stack: &str,
    e: &dyn std::fmt::Display,
    hint: Option<&str>,
) -> StackStatus {
    StackStatus {
        problem: Some("host unreachable".to_owned()),
        error: Some(e.to_string()),
        hint: hint.map(str::to_owned),
        ..StackStatus::blank(host, stack)
    }
}

/// What a service's state and health say is wrong, if anything.
fn service_problem(s: &Service) -> Option<String> {
    match (&s.state, &s.health) {
        (ServiceState::Running, Health::Unhealthy) => Some(format!("{} unhealthy", s.name)),
        (state, _) if state.is_fine() => None,
        (state, _) => Some(format!("{} {state}", s.name)),
    }
}

/// Assess one stack from what its host said (pure). `hash` is the stack's
/// hash here (`None`: its files cannot be read), `period` its build
/// period, `now` the host's clock.
pub fn assess(
    host: &str,
    stack: &str,
    hash: Option<&str>,
    period: u64,
    now: u64,
    found: &StatusStack,
    fresh: Option<&Freshness>,
) -> StackStatus {
    let mut st = StackStatus {
        images: fresh.cloned().filter(|f| *f != Freshness::default()),
        services: found.services.clone(),
        running: found.recorded.running,
        locked_by: found.recorded.locked_by.clone(),
        last_failure: found.last_failure.clone(),
        cut_off: found.recorded.phase.clone(),
        kept: found
            .generations
            .iter()
            .filter(|g| !g.running)
            .map(|g| g.number)
            .collect(),
        now: Some(now),
        ..StackStatus::blank(host, stack)
    };
    let state = match &found.recorded.state {
        Err(bad) => {
            st.problem = Some(match bad {
                BadState::NoVersion => "its state file is not an rbuild state file (empty, or no version line: a write cut short)".to_owned(),
                BadState::Newer(v) => format!("its state file has version {v}, written by a newer rbuild"),
                BadState::Unknown(v) => format!(
                    "its state file has version `{}`, which no rbuild writes",
                    v.escape_debug()
                ),
                BadState::NotAFile => "its state file is not a regular file".to_owned(),
            });
            st.hint = Some(match bad {
                BadState::Newer(_) => "upgrade rbuild on this machine, or run the newer one".to_owned(),
                _ => "look at `STATE_DIR/NAME.state` on the host: moving it aside makes the stack a first build".to_owned(),
            });
            return st;
        }
        Ok(s) => s.clone(),
    };
    if let Some(s) = &state {
        st.last_result = s.last_result.clone();
        st.hash = s.hash.clone();
        st.built_at = s.hash.as_ref().map(|_| s.built_at);
        st.generation = s.generation;
    }
    // an older state line names none: the `generation` line that runs does
    if st.generation.is_none() {
        st.generation = found
            .generations
            .iter()
            .find(|g| g.running)
            .map(|g| g.number);
    }
    st.files = Some(match hash {
        None => Files::Unreadable,
        Some(h) if st.hash.as_deref() == Some(h) => Files::Same,
        Some(_) => Files::Changed,
    });
    if let Some(hash) = hash {
        let v = plan::plan(
            &plan::Options {
                force: false,
                dry_run: true,
                ships: true,
                lock_wait: false,
            },
            now,
            &plan::Input {
                hash,
                build_period: period,
                recorded: &found.recorded,
                fresh,
            },
        );
        let (next, reason, due_at) = match v {
            Verdict::WouldRebuild(r) => (Next::Now, r, None),
            Verdict::WouldStart { cut_off } => {
                (Next::Now, plan::start_reason(cut_off.as_deref()), None)
            }
            Verdict::WouldVerify => (Next::Now, Reason::Restarted, None),
            Verdict::Locked { due, .. } => (Next::Now, due, None),
            Verdict::PreviousFailure { .. } => (
                Next::Held,
                Reason::PreviousFailure,
                state.as_ref().map(|s| s.failed_at.saturating_add(period)),
            ),
            Verdict::Skip(Reason::Held) => (Next::Held, Reason::Held, None),
            Verdict::Skip(r) => (
                Next::Later,
                r,
                st.built_at.map(|b| b.saturating_add(period)),
            ),
            Verdict::Unreadable(_)
            | Verdict::Rebuild { .. }
            | Verdict::Start { .. }
            | Verdict::Verify => {
                unreachable!("a dry run's plan of a readable state")
            }
        };
        st.next = Some(next);
        st.next_reason = Some(reason);
        st.due_at = due_at;
    }
    let mut problems: Vec<String> = st
        .cut_off
        .as_deref()
        .map(cut_off_words)
        .into_iter()
        .collect();
    if st.hash.is_none() {
        problems.push("never built here".to_owned());
    } else {
        let p = &mut problems;
        match st.last_result {
            Some(LastResult::Broken) => {
                p.push("broken: what runs did not pass its gate".to_owned())
            }
            Some(LastResult::Failed) => p.push("its last rebuild failed".to_owned()),
            _ => {}
        }
        // cut off: the host says it is down for that, said above
        if st.running == Some(false) && st.cut_off.is_none() {
            p.push("not running as recorded".to_owned());
        }
        p.extend(st.services.iter().filter_map(service_problem));
        if st.services.is_empty() {
            p.push("no container of it exists".to_owned());
        }
    }
    if !problems.is_empty() {
        st.problem = Some(problems.join("; "));
        st.hint = Some(if st.last_failure.is_some() {
            format!("`rbuild logs {host} {stack}` shows the output of its last failed attempt")
        } else {
            format!("`rbuild history {host} {stack}` lists its attempts")
        });
    }
    st
}

/// The exit status of a status: 0 when every stack is fine, 1 when a
/// stack has a problem, 3 when the only problems are hosts that could not
/// be asked (retry later).
pub fn exit_of(all: &[StackStatus]) -> Exit {
    Exit::merge_all(all.iter().map(|s| match (&s.problem, &s.error) {
        (None, _) => Exit::Success,
        // the host could not be asked
        (Some(_), Some(_)) => Exit::Unreachable,
        (Some(_), None) => Exit::Failure,
    }))
}
