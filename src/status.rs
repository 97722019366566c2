//! `rbuild status -i INVENTORY`: every stack of every selected host as its
//! host sees it, with one remote command per host (the check's reading of
//! state files and locks, one `docker ps` for the whole host, the last
//! failed attempt). Nothing is changed. The assessment and the rendering
//! are pure ([`assess`], [`render_table`], [`render_json`]); [`run`] asks
//! the hosts.

use std::sync::Arc;

use serde::Serialize;
use tokio::sync::Semaphore;

use crate::config::Settings;
use crate::decide::Reason;
use crate::exit::Exit;
use crate::host::{Conn, Connect, HostError, World};
use crate::inventory::Stack;
use crate::manual::rfc3339;
use crate::plan::{self, Verdict};
use crate::remote::{Attempt, BadState, CheckStack, Service, Status, StatusStack};
use crate::report::human_age;
use crate::report::rows::cut_off_words;
use crate::run::{Error, print_out};
use crate::ship::Shipments;

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
    pub last_result: Option<String>,
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
        }
    }
}

/// A stack of a host that could not be asked.
pub fn unreachable(host: &str, stack: &str, e: &HostError) -> StackStatus {
    StackStatus {
        problem: Some("host unreachable".to_owned()),
        error: Some(e.to_string()),
        hint: e.hint().map(str::to_owned),
        ..StackStatus::blank(host, stack)
    }
}

/// What a service's state and health say is wrong, if anything.
fn service_problem(s: &Service) -> Option<String> {
    match (s.state.as_str(), s.health.as_str()) {
        ("running", "unhealthy") => Some(format!("{} unhealthy", s.name)),
        ("running", _) | ("exited:0", _) => None,
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
) -> StackStatus {
    let mut st = StackStatus {
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
        match st.last_result.as_deref() {
            Some("broken") => p.push("broken: what runs did not pass its gate".to_owned()),
            Some("failed") => p.push("its last rebuild failed".to_owned()),
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

/// The exit status of a status: 0 when every stack is fine, 1 when any
/// host could not be asked or any stack has a problem.
pub fn exit_of(all: &[StackStatus]) -> Exit {
    if all.iter().any(|s| s.problem.is_some()) {
        Exit::Failure
    } else {
        Exit::Success
    }
}

fn ago(now: Option<u64>, at: u64) -> String {
    match now {
        Some(now) if now >= at => format!("{} ago", human_age(now - at)),
        _ => rfc3339(at),
    }
}

fn services_cell(s: &StackStatus) -> String {
    s.services
        .iter()
        .map(|v| match v.health.as_str() {
            "none" | "-" => format!("{} {}", v.name, v.state),
            h => format!("{} {} {h}", v.name, v.state),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn next_cell(s: &StackStatus) -> String {
    let reason = s.next_reason.map(Reason::as_str).unwrap_or("");
    match s.next {
        None => "-".to_owned(),
        Some(Next::Now) => format!("now ({reason})"),
        Some(Next::Later) => match (s.due_at, s.now) {
            (Some(at), Some(now)) if at > now => format!("in {}", human_age(at - now)),
            _ => "now".to_owned(),
        },
        Some(Next::Held) => format!("held ({reason})"),
    }
}

/// The status as a table (pure); `color`: STATUS in colour (`ok` green, a
/// problem red).
pub fn render_table(all: &[StackStatus], unicode: bool, width: Option<u16>, color: bool) -> String {
    let mut t = crate::report::table::new_table(unicode, width);
    crate::report::table::style(&mut t, color);
    t.set_header([
        "HOST",
        "STACK",
        "STATUS",
        "SERVICES",
        "GEN",
        "BUILT",
        "FILES",
        "NEXT",
        "LAST FAILURE",
        "LOCK",
    ]);
    for s in all {
        let status = match (&s.problem, &s.error) {
            (_, Some(e)) => format!("unreachable: {e}"),
            (Some(p), None) => p.clone(),
            (None, None) => "ok".to_owned(),
        };
        let built = match (s.built_at, &s.hash) {
            (Some(at), Some(h)) => format!("{} {}", ago(s.now, at), h.get(..12).unwrap_or(h)),
            _ => "-".to_owned(),
        };
        let files = match s.files {
            None => "-",
            Some(Files::Same) => "same",
            Some(Files::Changed) => "changed",
            Some(Files::Unreadable) => "unreadable",
        };
        let failure = match &s.last_failure {
            Some(a) => format!("{}: {} {}", ago(s.now, a.at), a.result, a.detail),
            None => "-".to_owned(),
        };
        let fine = s.problem.is_none() && s.error.is_none();
        let status = match color {
            true => comfy_table::Cell::new(status).fg(if fine {
                comfy_table::Color::Green
            } else {
                comfy_table::Color::Red
            }),
            false => comfy_table::Cell::new(status),
        };
        t.add_row(vec![
            comfy_table::Cell::new(&s.host),
            comfy_table::Cell::new(&s.stack),
            status,
            comfy_table::Cell::new(services_cell(s)),
            comfy_table::Cell::new(s.generation.map_or("-".to_owned(), |g| g.to_string())),
            comfy_table::Cell::new(built),
            comfy_table::Cell::new(files),
            comfy_table::Cell::new(next_cell(s)),
            comfy_table::Cell::new(failure),
            comfy_table::Cell::new(s.locked_by.as_deref().unwrap_or("-")),
        ]);
    }
    let bad = all.iter().filter(|s| s.problem.is_some()).count();
    format!(
        "{t}\n{} stack{}, {}\n",
        all.len(),
        if all.len() == 1 { "" } else { "s" },
        if bad == 0 {
            "all fine".to_owned()
        } else {
            format!("{bad} with a problem")
        }
    )
}

#[derive(Serialize)]
struct Doc<'a> {
    version: u32,
    stacks: Vec<StackJson<'a>>,
    exit_code: u8,
}

#[derive(Serialize)]
struct ServiceJson<'a> {
    name: &'a str,
    state: &'a str,
    health: Option<&'a str>,
}

#[derive(Serialize)]
struct FailureJson<'a> {
    at: u64,
    hash: &'a str,
    result: &'a str,
    detail: &'a str,
}

#[derive(Serialize)]
struct StackJson<'a> {
    host: &'a str,
    stack: &'a str,
    ok: bool,
    problem: Option<&'a str>,
    error: Option<&'a str>,
    hint: Option<&'a str>,
    services: Vec<ServiceJson<'a>>,
    running: Option<bool>,
    last_result: Option<&'a str>,
    built_at: Option<u64>,
    built_age_s: Option<u64>,
    hash: Option<&'a str>,
    generation: Option<u64>,
    kept_generations: &'a [u64],
    cut_off: Option<&'a str>,
    files: Option<Files>,
    next: Option<Next>,
    next_reason: Option<Reason>,
    next_due_at: Option<u64>,
    last_failure: Option<FailureJson<'a>>,
    locked_by: Option<&'a str>,
    host_now: Option<u64>,
}

/// The status as one JSON document (pure); its fields are listed in the
/// README.
pub fn render_json(all: &[StackStatus], exit: Exit) -> String {
    let doc = Doc {
        version: 1,
        stacks: all
            .iter()
            .map(|s| StackJson {
                host: &s.host,
                stack: &s.stack,
                ok: s.problem.is_none(),
                problem: s.problem.as_deref(),
                error: s.error.as_deref(),
                hint: s.hint.as_deref(),
                services: s
                    .services
                    .iter()
                    .map(|v| ServiceJson {
                        name: &v.name,
                        state: &v.state,
                        health: (v.health != "-").then_some(v.health.as_str()),
                    })
                    .collect(),
                running: s.running,
                last_result: s.last_result.as_deref(),
                built_at: s.built_at,
                built_age_s: s.built_at.zip(s.now).map(|(b, n)| n.saturating_sub(b)),
                hash: s.hash.as_deref(),
                generation: s.generation,
                kept_generations: &s.kept,
                cut_off: s.cut_off.as_deref(),
                files: s.files,
                next: s.next,
                next_reason: s.next_reason,
                next_due_at: s.due_at,
                last_failure: s.last_failure.as_ref().map(|a| FailureJson {
                    at: a.at,
                    hash: &a.hash,
                    result: &a.result,
                    detail: &a.detail,
                }),
                locked_by: s.locked_by.as_deref(),
                host_now: s.now,
            })
            .collect(),
        exit_code: exit.code(),
    };
    let mut text = serde_json::to_string_pretty(&doc).expect("serializable");
    text.push('\n');
    text
}

/// Ask one host about its stacks.
async fn host_status(
    settings: &Settings,
    shipments: &Shipments,
    world: &World,
    h: &crate::inventory::Host,
) -> Vec<StackStatus> {
    let hash = |s: &Stack| shipments.hash_of(s).ok().map(str::to_owned);
    let failed = |e: &HostError| -> Vec<StackStatus> {
        h.stacks
            .iter()
            .map(|s| unreachable(&h.name, &s.name, e))
            .collect()
    };
    let mut conn = match world.connect(h).await {
        Ok(c) => c,
        Err(e) => return failed(&e),
    };
    let call = Status {
        state_dir: h.state_dir.clone(),
        stacks: h
            .stacks
            .iter()
            .map(|s| CheckStack {
                name: s.name.clone(),
                hash: hash(s).unwrap_or_else(|| "-".to_owned()),
                period: settings.build_period(s),
            })
            .collect(),
    };
    let answer = conn.status(call).await;
    conn.close().await;
    match answer {
        Err(e) => failed(&e),
        Ok(a) => h
            .stacks
            .iter()
            .map(|s| {
                assess(
                    &h.name,
                    &s.name,
                    hash(s).as_deref(),
                    settings.build_period(s),
                    a.now,
                    &a.stacks[&s.name],
                )
            })
            .collect(),
    }
}

/// `rbuild status`: every selected host at once (`-j` at a time), then
/// the table or the JSON document.
pub async fn run(settings: Settings, world: World) -> Result<Exit, Error> {
    let shipments = Arc::new(Shipments::hash(&settings.hosts, false));
    let settings = Arc::new(settings);
    let world = Arc::new(world);
    let slots = Arc::new(Semaphore::new(settings.concurrency));
    let mut tasks = Vec::new();
    for index in 0..settings.hosts.len() {
        let (settings, shipments, world, slots) = (
            settings.clone(),
            shipments.clone(),
            world.clone(),
            slots.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let _slot = slots.acquire_owned().await;
            let h = &settings.hosts[index];
            host_status(&settings, &shipments, &world, h).await
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(
            t.await
                .map_err(|e| Error::failed(format!("internal error: {e}")))?,
        );
    }
    let exit = exit_of(&all);
    let out = if settings.json {
        render_json(&all, exit)
    } else {
        let terminal = std::io::IsTerminal::is_terminal(&std::io::stdout());
        let width = crate::report::table::stdout_width(terminal);
        render_table(&all, terminal, width, crate::report::color_stdout())
    };
    print_out(&out)?;
    Ok(exit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::{Recorded, StackState};

    fn found(
        state: Option<StackState>,
        running: Option<bool>,
        services: &[(&str, &str, &str)],
    ) -> StatusStack {
        StatusStack {
            recorded: Recorded {
                state: Ok(state),
                locked_by: None,
                running,
                phase: None,
                restarted: false,
            },
            services: services
                .iter()
                .map(|(n, s, h)| Service {
                    name: n.to_string(),
                    state: s.to_string(),
                    health: h.to_string(),
                })
                .collect(),
            last_failure: None,
            generations: vec![],
        }
    }

    fn built(hash: &str, at: u64) -> StackState {
        StackState {
            hash: Some(hash.into()),
            built_at: at,
            last_result: Some("ok".into()),
            ..StackState::default()
        }
    }

    #[test]
    fn a_healthy_stack_is_fine_and_due_when_its_period_ends() {
        let f = found(
            Some(built("h1", 1000)),
            Some(true),
            &[("app", "running", "healthy"), ("job", "exited:0", "none")],
        );
        let s = assess("web1", "blog", Some("h1"), 3600, 1600, &f);
        assert_eq!(s.problem, None);
        assert_eq!(s.files, Some(Files::Same));
        assert_eq!(s.next, Some(Next::Later));
        assert_eq!(s.due_at, Some(4600));
        assert_eq!(next_cell(&s), "in 50m");
        assert_eq!(exit_of(&[s]), Exit::Success);
    }

    #[test]
    fn changed_files_are_due_now_and_no_problem() {
        let f = found(
            Some(built("h1", 1000)),
            Some(true),
            &[("app", "running", "none")],
        );
        let s = assess("web1", "blog", Some("h2"), 3600, 1600, &f);
        assert_eq!(s.files, Some(Files::Changed));
        assert_eq!(
            (s.next, s.next_reason),
            (Some(Next::Now), Some(Reason::ConfigChanged))
        );
        assert_eq!(s.problem, None);
    }

    #[test]
    fn what_is_wrong_is_a_problem_and_the_exit_status_says_so() {
        let down = found(
            Some(built("h1", 1000)),
            Some(false),
            &[("app", "exited:137", "none")],
        );
        let s = assess("web1", "blog", Some("h1"), 3600, 1600, &down);
        assert_eq!(
            s.problem.as_deref(),
            Some("not running as recorded; app exited:137")
        );
        assert_eq!(
            (s.next, s.next_reason),
            (Some(Next::Now), Some(Reason::NotRunning))
        );
        assert!(
            s.hint
                .as_deref()
                .unwrap()
                .contains("rbuild history web1 blog")
        );
        let sick = found(
            Some(built("h1", 1000)),
            Some(true),
            &[("app", "running", "unhealthy")],
        );
        let s2 = assess("web1", "blog", Some("h1"), 3600, 1600, &sick);
        assert_eq!(s2.problem.as_deref(), Some("app unhealthy"));
        let never = found(None, None, &[]);
        let s3 = assess("web1", "blog", Some("h1"), 3600, 1600, &never);
        assert_eq!(s3.problem.as_deref(), Some("never built here"));
        assert_eq!(s3.next_reason, Some(Reason::FirstBuild));
        let e = HostError::ConnectTimeout(10);
        let s4 = unreachable("web2", "blog", &e);
        assert_eq!(exit_of(&[s.clone(), s4.clone()]), Exit::Failure);
        let table = render_table(&[s.clone(), s4.clone()], false, None, false);
        let coloured = render_table(&[s, s4], false, None, true);
        assert!(coloured.contains("\x1b["), "{coloured}");
        assert!(
            table.contains("unreachable: connection timed out after 10s"),
            "{table}"
        );
        assert!(table.contains("2 stacks, 2 with a problem"), "{table}");
    }

    fn generation(number: u64, running: bool) -> crate::remote::Generation {
        crate::remote::Generation {
            number,
            running,
            built_at: 900,
            hash: format!("h{number}"),
            images: "app=sha256:1".into(),
        }
    }

    #[test]
    fn the_running_generation_is_shown_and_a_cut_off_run_is_named() {
        let mut st = built("h1", 1000);
        st.generation = Some(3);
        let mut f = found(Some(st), Some(true), &[("app", "running", "healthy")]);
        f.generations = vec![generation(2, false), generation(3, true)];
        let ok = assess("web1", "blog", Some("h1"), 3600, 1600, &f);
        assert_eq!((ok.generation, &ok.kept[..]), (Some(3), &[2][..]));
        // an older state line names none: the running `generation` line does
        let mut older = f.clone();
        if let Ok(Some(s)) = &mut older.recorded.state {
            s.generation = None;
        }
        assert_eq!(
            assess("web1", "blog", Some("h1"), 3600, 1600, &older).generation,
            Some(3)
        );
        // killed at its gate: the host says it is down, and why
        let mut cut = f.clone();
        cut.recorded.running = Some(false);
        cut.recorded.phase = Some("gate".into());
        cut.services = vec![];
        let c = assess("web1", "shop", Some("h1"), 3600, 1600, &cut);
        assert_eq!(
            c.problem.as_deref(),
            Some("an earlier run was cut off on the host (at gate); no container of it exists")
        );
        assert_eq!(
            (c.next, c.next_reason),
            (Some(Next::Now), Some(Reason::CutOff))
        );
        // a first build cut off
        let mut first = found(None, Some(false), &[]);
        first.recorded.phase = Some("build".into());
        let n = assess("web2", "blog", Some("h1"), 3600, 1600, &first);
        assert_eq!(
            n.problem.as_deref(),
            Some("an earlier run was cut off on the host (at build); never built here")
        );
        assert_eq!(n.generation, None);
        insta::assert_snapshot!(render_table(
            &[ok.clone(), c.clone(), n],
            false,
            None,
            false
        ));
        let doc: serde_json::Value =
            serde_json::from_str(&render_json(&[ok, c], Exit::Failure)).unwrap();
        assert_eq!(doc["stacks"][0]["generation"], 3);
        assert_eq!(doc["stacks"][0]["kept_generations"], serde_json::json!([2]));
        assert_eq!(doc["stacks"][0]["cut_off"], serde_json::Value::Null);
        assert_eq!(doc["stacks"][1]["cut_off"], "gate");
        assert_eq!(doc["stacks"][1]["next_reason"], "cut_off");
    }

    #[test]
    fn a_state_file_not_read_is_named_for_what_it_is() {
        let bad = |b: BadState| {
            let mut f = found(None, None, &[]);
            f.recorded.state = Err(b);
            let s = assess("web1", "blog", Some("h1"), 3600, 1600, &f);
            (s.problem.unwrap(), s.hint.unwrap())
        };
        let (p, h) = bad(BadState::NoVersion);
        assert!(
            p.contains("not an rbuild state file") && !h.contains("newer"),
            "{p} {h}"
        );
        let (p, h) = bad(BadState::Unknown("x".into()));
        assert!(
            p.contains("no rbuild writes") && !h.contains("newer"),
            "{p} {h}"
        );
        let (p, h) = bad(BadState::Newer("3".into()));
        assert!(
            p.contains("newer rbuild") && h.contains("upgrade"),
            "{p} {h}"
        );
    }

    #[test]
    fn a_failed_attempt_is_held_and_named() {
        let mut st = built("h1", 1000);
        st.last_result = Some("failed".into());
        st.failed_hash = Some("h2".into());
        st.failed_at = 1500;
        let mut f = found(Some(st), Some(true), &[("app", "running", "healthy")]);
        f.last_failure = Some(Attempt {
            at: 1500,
            hash: "h2".into(),
            result: "rolled_back".into(),
            images: "-".into(),
            generation: Some(3),
            detail: "not healthy: app(unhealthy)".into(),
        });
        let s = assess("web1", "blog", Some("h2"), 3600, 1600, &f);
        assert_eq!(
            (s.next, s.next_reason),
            (Some(Next::Held), Some(Reason::PreviousFailure))
        );
        assert_eq!(s.due_at, Some(5100));
        assert_eq!(s.problem.as_deref(), Some("its last rebuild failed"));
        assert!(s.hint.as_deref().unwrap().contains("rbuild logs web1 blog"));
        let doc: serde_json::Value =
            serde_json::from_str(&render_json(&[s], Exit::Failure)).unwrap();
        let row = &doc["stacks"][0];
        assert_eq!(row["ok"], false);
        assert_eq!(row["next"], "held");
        assert_eq!(row["last_failure"]["result"], "rolled_back");
        assert_eq!(row["services"][0]["health"], "healthy");
        assert_eq!(row["built_age_s"], 600);
        assert_eq!(doc["exit_code"], 1);
    }
}
