//! What a call's output means: the typed answer of each call, decoded from
//! its events once, here, with the handshake (`hello` in this protocol,
//! `end` for a check) checked. Everything else reads these answers.

use std::collections::HashMap;

use super::PROTOCOL;
use super::call::{Apply, Check};
use super::event::{Attempt, Cause, Event, Generation, Outcome, Recorded};
use super::words::{Health, ServiceState};

/// What one run of a call printed, as the host seam hands it back.
#[derive(Debug, Default, Clone)]
pub struct Transcript {
    pub events: Vec<Event>,
    /// The script's exit status (`None`: killed, or the connection was lost).
    pub code: Option<i32>,
    /// The tail of what it wrote to stderr.
    pub stderr: String,
}

/// Why a call's output does not make a whole answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemoteError {
    /// The command could not run on this host; the script said why.
    #[error("{text}")]
    Fatal { text: String, cause: Option<Cause> },
    /// The host answered in another protocol.
    #[error("the host's remote side speaks protocol {found}, this rbuild {PROTOCOL}")]
    Protocol { found: String },
    /// The output ended before the answer was complete.
    #[error("{}", cut_off(*code, stderr))]
    Cut { code: Option<i32>, stderr: String },
    /// A complete check that left out a stack it was asked about.
    #[error("the check did not report the stack `{0}`")]
    Unreported(String),
    /// The connection failed while the command ran.
    #[error("{0}")]
    Transport(String),
    /// The controller stopped waiting: the host took longer than every
    /// bound of the work it was given.
    #[error("the host gave no result within {0}s")]
    TimedOut(u64),
}

impl RemoteError {
    /// Whether the remote script may still be running: the connection was
    /// lost, not the script ended.
    pub fn may_still_run(&self) -> bool {
        matches!(
            self,
            RemoteError::Cut { code: None, .. }
                | RemoteError::Transport(_)
                | RemoteError::TimedOut(_)
        )
    }
}

fn cut_off(code: Option<i32>, stderr: &str) -> String {
    let mut msg = match code {
        Some(c) => format!("the remote script exited with status {c}"),
        None => "the connection was lost while the remote script ran".to_owned(),
    };
    if !stderr.trim().is_empty() {
        msg.push_str(": ");
        msg.push_str(&stderr.trim().replace('\n', " / "));
    }
    msg
}

impl Transcript {
    fn cut(&self) -> RemoteError {
        RemoteError::Cut {
            code: self.code,
            stderr: self.stderr.clone(),
        }
    }

    /// The command spoke this protocol and did not give up: the host's
    /// clock from its `hello`.
    fn greeted(&self) -> Result<u64, RemoteError> {
        if let Some((text, cause)) = self.events.iter().find_map(|e| match e {
            Event::Fatal { text, cause } => Some((text, cause)),
            _ => None,
        }) {
            return Err(RemoteError::Fatal {
                text: text.clone(),
                cause: *cause,
            });
        }
        match self.events.iter().find_map(|e| match e {
            Event::Hello { proto, now } => Some((proto, *now)),
            _ => None,
        }) {
            Some((proto, now)) if *proto == PROTOCOL.to_string() => Ok(now),
            Some((proto, _)) => Err(RemoteError::Protocol {
                found: proto.clone(),
            }),
            None => Err(self.cut()),
        }
    }
}

/// The answer of a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckAnswer {
    /// The host's clock.
    pub now: u64,
    /// What was found for each stack the check was asked about.
    pub stacks: HashMap<String, Recorded>,
    /// The check holds its session open (`end hold`).
    pub held: bool,
    /// A dry run's check ([`Check::plan`]): what a rebuild on this host
    /// would fail on, if anything (the cause, when this controller knows
    /// it, and the host's words).
    pub cannot_rebuild: Option<(Option<Cause>, String)>,
}

/// Decode a check: the whole answer, `end` included, so that a connection
/// lost half-way never makes the stacks it did not report look never built.
pub fn check_answer(t: &Transcript, call: &Check) -> Result<CheckAnswer, RemoteError> {
    let now = t.greeted()?;
    let held = t
        .events
        .iter()
        .find_map(|e| match e {
            Event::End { hold } => Some(*hold),
            _ => None,
        })
        .ok_or_else(|| t.cut())?;
    let mut found: HashMap<&str, &Recorded> = HashMap::new();
    for e in &t.events {
        if let Event::State { stack, recorded } = e {
            found.insert(stack, recorded);
        }
    }
    let mut stacks = HashMap::new();
    for s in &call.stacks {
        let r = found
            .get(s.name.as_str())
            .ok_or_else(|| RemoteError::Unreported(s.name.clone()))?;
        stacks.insert(s.name.clone(), (*r).clone());
    }
    let cannot_rebuild = t.events.iter().find_map(|e| match e {
        Event::Caps { problem } => problem.clone(),
        _ => None,
    });
    Ok(CheckAnswer {
        now,
        stacks,
        held,
        cannot_rebuild,
    })
}

/// How a stack's apply or rollback ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackResult {
    pub outcome: Outcome,
    pub detail: String,
    /// What is at fault, where the script named it.
    pub cause: Option<Cause>,
    /// The tail of the failed docker command's output, if any.
    pub log: Vec<String>,
}

/// The answer of an apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyAnswer {
    /// Each stack that reported how it ended.
    pub results: HashMap<String, StackResult>,
    /// Why some stack has no result; `None` when every stack has one.
    pub cut: Option<RemoteError>,
}

/// Decode an apply: each stack's result, and for those without one, why.
pub fn apply_answer(t: &Transcript, call: &Apply) -> ApplyAnswer {
    let greeted = t.greeted();
    let mut results = results(t);
    if greeted.is_err() {
        results.clear();
    }
    let complete = call
        .stacks
        .iter()
        .all(|s| results.contains_key(&s.place.name));
    let cut = (!complete).then(|| greeted.err().unwrap_or_else(|| t.cut()));
    ApplyAnswer { results, cut }
}

/// Decode a rollback of stack `name`.
pub fn rollback_answer(t: &Transcript, name: &str) -> Result<StackResult, RemoteError> {
    t.greeted()?;
    results(t).remove(name).ok_or_else(|| t.cut())
}

/// The answer of a history.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryAnswer {
    /// Every attempt, oldest first.
    pub attempts: Vec<Attempt>,
    /// The generations whose images are kept on the host, the running one
    /// marked (none from a host whose state has no generations yet).
    pub generations: Vec<Generation>,
}

/// Decode a history: every attempt, oldest first, and the kept
/// generations.
pub fn history_answer(t: &Transcript) -> Result<HistoryAnswer, RemoteError> {
    t.greeted()?;
    if t.code != Some(0) {
        return Err(t.cut());
    }
    let mut a = HistoryAnswer::default();
    for e in &t.events {
        match e {
            Event::History { attempt, .. } => a.attempts.push(attempt.clone()),
            Event::Generation { generation, .. } => a.generations.push(generation.clone()),
            _ => {}
        }
    }
    Ok(a)
}

/// One service container of a stack, as `status` found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub name: String,
    /// `running`, `exited:CODE`, `restarting`, `created`, ...; `gone`: its
    /// recorded cgroup is not there (the engine was not asked).
    pub state: ServiceState,
    /// `healthy`, `unhealthy`, `starting`, `none` (no healthcheck); `-`:
    /// not known (the engine was not asked).
    pub health: Health,
}

/// What `status` found for one stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusStack {
    /// What the check reads.
    pub recorded: Recorded,
    pub services: Vec<Service>,
    /// The last failed attempt kept on the host, if any.
    pub last_failure: Option<Attempt>,
    /// Its generations whose images are kept, the running one marked.
    pub generations: Vec<Generation>,
}

/// The answer of a status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusAnswer {
    /// The host's clock.
    pub now: u64,
    pub stacks: HashMap<String, StatusStack>,
}

/// Decode a status: complete (`end`), every stack asked about reported.
pub fn status_answer(t: &Transcript, names: &[String]) -> Result<StatusAnswer, RemoteError> {
    let now = t.greeted()?;
    if !t.events.iter().any(|e| matches!(e, Event::End { .. })) {
        return Err(t.cut());
    }
    let mut stacks: HashMap<String, StatusStack> = HashMap::new();
    for e in &t.events {
        if let Event::State { stack, recorded } = e {
            stacks.insert(
                stack.clone(),
                StatusStack {
                    recorded: recorded.clone(),
                    services: vec![],
                    last_failure: None,
                    generations: vec![],
                },
            );
        }
    }
    for e in &t.events {
        match e {
            Event::Service {
                stack,
                service,
                state,
                health,
            } => {
                if let Some(s) = stacks.get_mut(stack) {
                    s.services.push(Service {
                        name: service.clone(),
                        state: state.clone(),
                        health: health.clone(),
                    });
                }
            }
            Event::History { stack, attempt } => {
                if let Some(s) = stacks.get_mut(stack) {
                    s.last_failure = Some(attempt.clone());
                }
            }
            Event::Generation { stack, generation } => {
                if let Some(s) = stacks.get_mut(stack) {
                    s.generations.push(generation.clone());
                }
            }
            _ => {}
        }
    }
    if let Some(missing) = names.iter().find(|n| !stacks.contains_key(*n)) {
        return Err(RemoteError::Unreported(missing.clone()));
    }
    Ok(StatusAnswer { now, stacks })
}

/// A stack's last failed attempt, as `logs` reads it back from the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedAttempt {
    pub attempt: Attempt,
    /// Its output (docker's and the hooks'), at most its last 64 KiB.
    pub output: Vec<String>,
}

/// Decode a logs call: `None` when no failed attempt is kept.
pub fn logs_answer(t: &Transcript) -> Result<Option<FailedAttempt>, RemoteError> {
    t.greeted()?;
    if !t.events.iter().any(|e| matches!(e, Event::End { .. })) {
        return Err(t.cut());
    }
    let Some(attempt) = t.events.iter().find_map(|e| match e {
        Event::History { attempt, .. } => Some(attempt.clone()),
        _ => None,
    }) else {
        return Ok(None);
    };
    let output = t
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Log { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect();
    Ok(Some(FailedAttempt { attempt, output }))
}

/// Every `done`, with the stack's `log` lines.
fn results(t: &Transcript) -> HashMap<String, StackResult> {
    let mut r = Results::default();
    t.events.iter().for_each(|e| r.push(e));
    r.done
}

/// Stacks' results gathered from events as they come (an answer that may
/// never be complete: the caller gives up waiting).
#[derive(Debug, Default)]
pub struct Results {
    logs: HashMap<String, Vec<String>>,
    /// Each stack that reported how it ended.
    pub done: HashMap<String, StackResult>,
}

impl Results {
    pub fn push(&mut self, e: &Event) {
        match e {
            Event::Log { stack, text } => self
                .logs
                .entry(stack.clone())
                .or_default()
                .push(text.clone()),
            Event::Done {
                stack,
                outcome,
                detail,
                cause,
            } => {
                self.done.insert(
                    stack.clone(),
                    StackResult {
                        outcome: outcome.clone(),
                        detail: detail.clone(),
                        cause: *cause,
                        log: self.logs.remove(stack).unwrap_or_default(),
                    },
                );
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::ComposePref;
    use crate::remote::call::{ApplyStack, CheckStack, Place};
    use crate::remote::event::{Token, parse_line};

    fn transcript(lines: &[&str], code: Option<i32>) -> Transcript {
        Transcript {
            events: lines
                .iter()
                .filter_map(|l| {
                    parse_line(&l.replace("@rbuild ", "@rbuild:T "), &Token::fixed("T"))
                })
                .collect(),
            code,
            stderr: "boom".into(),
        }
    }

    fn check(names: &[&str]) -> Check {
        Check {
            state_dir: None,
            hold: true,
            plan: false,
            stacks: names
                .iter()
                .map(|n| CheckStack {
                    name: n.to_string(),
                    hash: "h".into(),
                    period: 1,
                })
                .collect(),
        }
    }

    const WEB: &str = "@rbuild state web exists=0 version=- hash=- built_at=0 last_result=- failed_hash=- failed_at=0 locked=-";

    #[test]
    fn a_check_needs_hello_every_stack_and_end() {
        let ok = transcript(
            &["@rbuild hello proto=4 now=5", WEB, "@rbuild end hold"],
            Some(0),
        );
        let a = check_answer(&ok, &check(&["web"])).unwrap();
        assert_eq!((a.now, a.held), (5, true));
        assert_eq!(a.stacks["web"].state, Ok(None));
        assert_eq!(a.cannot_rebuild, None);

        // a dry run's check says what a rebuild would fail on
        let plan = |caps: &str| {
            let t = transcript(
                &["@rbuild hello proto=4 now=5", WEB, caps, "@rbuild end"],
                Some(0),
            );
            check_answer(&t, &check(&["web"])).unwrap().cannot_rebuild
        };
        assert_eq!(plan("@rbuild caps ok"), None);
        assert_eq!(
            plan("@rbuild caps cause=no_docker `docker` is not in the PATH"),
            Some((Some(Cause::NoDocker), "`docker` is not in the PATH".into()))
        );
        assert_eq!(
            plan("@rbuild caps something new"),
            Some((None, "something new".into()))
        );

        // cut before `end`: the connection was lost
        let cut = transcript(&["@rbuild hello proto=4 now=5", WEB], None);
        let e = check_answer(&cut, &check(&["web"])).unwrap_err();
        assert!(e.may_still_run());
        assert_eq!(
            e.to_string(),
            "the connection was lost while the remote script ran: boom"
        );
        // another protocol, a fatal, a stack left out, no hello at all
        let other = transcript(
            &["@rbuild hello proto=2 now=5", WEB, "@rbuild end"],
            Some(0),
        );
        assert_eq!(
            check_answer(&other, &check(&["web"]))
                .unwrap_err()
                .to_string(),
            "the host's remote side speaks protocol 2, this rbuild 4"
        );
        let fatal = transcript(&["@rbuild fatal protocol 3 not supported"], Some(3));
        assert_eq!(
            check_answer(&fatal, &check(&["web"])).unwrap_err(),
            RemoteError::Fatal {
                text: "protocol 3 not supported".into(),
                cause: None
            }
        );
        let e = check_answer(&ok, &check(&["web", "db"])).unwrap_err();
        assert_eq!(e, RemoteError::Unreported("db".into()));
        let silent = transcript(&["Welcome to the host"], Some(0));
        assert_eq!(
            check_answer(&silent, &check(&["web"]))
                .unwrap_err()
                .to_string(),
            "the remote script exited with status 0: boom"
        );
    }

    fn apply(names: &[&str]) -> Apply {
        Apply {
            state_dir: None,
            compose: ComposePref::Auto,
            remove_images: false,
            prune_cache: None,
            payload: None,
            stacks: names
                .iter()
                .map(|n| ApplyStack {
                    place: Place {
                        name: n.to_string(),
                        dir: None,
                        compose_files: vec!["compose.yml".into()],
                        profiles: vec![],
                    },
                    mode: crate::remote::StackMode::Ship,
                    adopt: false,
                    up_timeout: 60,
                    settle: 10,
                    build_timeout: 1800,
                    hash: "h".into(),
                    options: Default::default(),
                    hooks: Default::default(),
                })
                .collect(),
        }
    }

    #[test]
    fn an_apply_gives_each_stack_its_result_and_says_why_others_have_none() {
        let t = transcript(
            &[
                "@rbuild hello proto=4 now=5",
                "@rbuild step web build",
                "@rbuild log web ERROR: no such image",
                "@rbuild log db unrelated",
                "@rbuild done web failed build failed",
                "@rbuild step db build",
            ],
            None,
        );
        let a = apply_answer(&t, &apply(&["web", "db"]));
        let web = &a.results["web"];
        assert_eq!(web.outcome, Outcome::Failed);
        assert_eq!(web.detail, "build failed");
        assert_eq!(web.log, ["ERROR: no such image"]);
        assert!(!a.results.contains_key("db"));
        assert!(a.cut.as_ref().unwrap().may_still_run());

        let done = transcript(
            &[
                "@rbuild hello proto=4 now=5",
                "@rbuild done web rebuilt with compose v2",
            ],
            Some(0),
        );
        assert_eq!(apply_answer(&done, &apply(&["web"])).cut, None);

        // a fatal after hello: nothing ran, and nothing may still run
        let fatal = transcript(
            &[
                "@rbuild hello proto=4 now=5",
                "@rbuild fatal cause=no_compose no compose here",
            ],
            Some(3),
        );
        let a = apply_answer(&fatal, &apply(&["web"]));
        assert_eq!(
            a.cut,
            Some(RemoteError::Fatal {
                text: "no compose here".into(),
                cause: Some(Cause::NoCompose)
            })
        );
        assert!(!a.cut.unwrap().may_still_run());
    }

    #[test]
    fn status_and_logs_answers() {
        let t = transcript(
            &[
                "@rbuild hello proto=4 now=5",
                WEB,
                "@rbuild service web app running healthy",
                "@rbuild service web job exited:0 none",
                "@rbuild service other x running none",
                "@rbuild history web 4 h2 rolled_back app=1 gen=3 not healthy: app(unhealthy)",
                "@rbuild generation web 3 running 2 h1 app=1",
                "@rbuild generation other 9 running 2 h1 app=1",
                "@rbuild end",
            ],
            Some(0),
        );
        let names = ["web".to_owned()];
        let a = status_answer(&t, &names).unwrap();
        let web = &a.stacks["web"];
        assert_eq!(web.services.len(), 2);
        assert_eq!(web.services[1].state, ServiceState::Exited(0));
        assert_eq!(
            web.last_failure.as_ref().unwrap().result,
            crate::remote::AttemptResult::RolledBack
        );
        assert_eq!(web.last_failure.as_ref().unwrap().generation, Some(3));
        assert_eq!(
            web.generations
                .iter()
                .map(|g| (g.number, g.running))
                .collect::<Vec<_>>(),
            [(3, true)]
        );
        assert_eq!(
            status_answer(&t, &["db".to_owned()]).unwrap_err(),
            RemoteError::Unreported("db".into())
        );
        // cut before `end`
        let cut = transcript(&["@rbuild hello proto=4 now=5", WEB], None);
        assert!(status_answer(&cut, &names).unwrap_err().may_still_run());

        let l = transcript(
            &[
                "@rbuild hello proto=4 now=5",
                "@rbuild history web 4 h2 failed - build failed",
                "@rbuild log web step 1/2",
                "@rbuild log web ",
                "@rbuild log web ERROR: boom",
                "@rbuild end",
            ],
            Some(0),
        );
        let f = logs_answer(&l).unwrap().unwrap();
        assert_eq!(f.attempt.detail, "build failed");
        assert_eq!(f.output, ["step 1/2", "", "ERROR: boom"]);
        let none = transcript(&["@rbuild hello proto=4 now=5", "@rbuild end"], Some(0));
        assert_eq!(logs_answer(&none).unwrap(), None);
    }

    #[test]
    fn history_and_rollback_answers() {
        let t = transcript(
            &[
                "@rbuild hello proto=4 now=5",
                "@rbuild history web 1 h1 rebuilt app=1 with compose v2",
                "@rbuild history web 2 h2 failed - build failed",
            ],
            Some(0),
        );
        let h = history_answer(&t).unwrap();
        assert_eq!(h.attempts.len(), 2);
        assert_eq!(h.attempts[1].detail, "build failed");
        assert!(h.generations.is_empty(), "an older host names none");

        let t = transcript(
            &[
                "@rbuild hello proto=4 now=5",
                "@rbuild history web 1 h1 rebuilt app=1 gen=1 with compose v2",
                "@rbuild history web 2 h2 rebuilt app=2 gen=2 with compose v2",
                "@rbuild generation web 1 kept 1 h1 app=1",
                "@rbuild generation web 2 running 2 h2 app=2",
            ],
            Some(0),
        );
        let h = history_answer(&t).unwrap();
        assert_eq!(h.attempts[1].generation, Some(2));
        assert_eq!(
            h.generations
                .iter()
                .map(|g| (g.number, g.running))
                .collect::<Vec<_>>(),
            [(1, false), (2, true)]
        );
        assert!(history_answer(&transcript(&["@rbuild hello proto=4 now=5"], None)).is_err());

        let t = transcript(
            &["@rbuild hello proto=4 now=5", "@rbuild done web locked 77"],
            Some(0),
        );
        assert_eq!(
            rollback_answer(&t, "web").unwrap().outcome,
            Outcome::Locked { pid: "77".into() }
        );
        assert!(rollback_answer(&t, "db").is_err());
    }
}
