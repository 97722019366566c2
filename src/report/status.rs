//! `rbuild status`'s table and JSON document (pure), from the stacks
//! [`crate::status`] assessed.

use serde::Serialize;

use super::history::{AttemptJson, rfc3339, time_json};
use super::human_age;
use crate::decide::Reason;
use crate::remote::{AttemptResult, Health, LastResult, ServiceState};
use crate::status::{Files, Next, StackStatus};

fn ago(now: Option<u64>, at: u64) -> String {
    match now {
        Some(now) if now >= at => format!("{} ago", human_age(now - at)),
        _ => rfc3339(at),
    }
}

fn services_cell(s: &StackStatus) -> String {
    s.services
        .iter()
        .map(|v| match v.health {
            Health::None | Health::Unknown => format!("{} {}", v.name, v.state),
            ref h => format!("{} {} {h}", v.name, v.state),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether the stack's last word is a rollback by hand (`rbuild
/// rollback`): held by the operator's decision, not a failure.
fn rolled_back_by_hand(s: &StackStatus) -> bool {
    s.last_result == Some(LastResult::RolledBack)
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
        Some(Next::Held) if s.next_reason == Some(Reason::Held) => {
            "held (rolled back by hand)".to_owned()
        }
        Some(Next::Held) => format!("held ({reason})"),
    }
}

/// The last failed attempt, unless it is the rollback by hand that holds
/// the stack (see [`held_cell`]).
fn failure_cell(s: &StackStatus) -> Option<String> {
    let a = s.last_failure.as_ref()?;
    if rolled_back_by_hand(s) && a.result == AttemptResult::RolledBack {
        return None;
    }
    Some(format!("{}: {} {}", ago(s.now, a.at), a.result, a.detail))
}

/// A rollback by hand that holds the stack: when, and from what to what.
fn held_cell(s: &StackStatus) -> Option<String> {
    if !rolled_back_by_hand(s) {
        return None;
    }
    Some(match &s.last_failure {
        Some(a) if a.result == AttemptResult::RolledBack => {
            format!("rolled back {} ({})", ago(s.now, a.at), a.detail)
        }
        _ => "rolled back by hand".to_owned(),
    })
}

fn status_cell(s: &StackStatus) -> String {
    match (&s.problem, &s.error) {
        (_, Some(e)) => format!("unreachable: {e}"),
        (Some(p), None) => p.clone(),
        (None, None) => "ok".to_owned(),
    }
}

fn built_cell(s: &StackStatus) -> String {
    match (s.built_at, &s.hash) {
        (Some(at), Some(h)) => format!("{} {}", ago(s.now, at), h.get(..12).unwrap_or(h)),
        _ => "-".to_owned(),
    }
}

fn files_cell(s: &StackStatus) -> &'static str {
    match s.files {
        None => "-",
        Some(Files::Same) => "same",
        Some(Files::Changed) => "changed",
        Some(Files::Unreadable) => "unreadable",
    }
}

/// Below this width, `rbuild status` stacks and folds its columns (see
/// [`render_table`]).
pub const WIDE: u16 = 140;

/// The status as a table (pure). Every column (`--wide`, a width of
/// [`WIDE`] or more, or no width: piped output keeps each row whole);
/// narrower, four: the host over its stack, the status over the
/// generation that runs and its age, the services one a line, and the
/// next run over what else there is to say (the last failure, a rollback
/// by hand that holds the stack, the lock, files changed here). No word is ever
/// broken: a column is at least as wide as its longest word. `color`:
/// STATUS in colour (`ok` green, a problem red).
pub fn render_table(
    all: &[StackStatus],
    unicode: bool,
    width: Option<u16>,
    color: bool,
    wide: bool,
) -> String {
    let every = wide || width.is_none_or(|w| w >= WIDE);
    let mut t = super::table::new_table(unicode, if wide { None } else { width });
    super::table::style(&mut t, color);
    let header: Vec<&str> = if every {
        vec![
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
        ]
    } else {
        vec!["HOST/STACK", "STATUS", "SERVICES", "NEXT / NOTE"]
    };
    let mut longest: Vec<usize> = header.iter().map(|h| longest_word(h)).collect();
    t.set_header(header);
    for s in all {
        let fine = s.problem.is_none() && s.error.is_none();
        let texts: Vec<String> = if every {
            vec![
                s.host.clone(),
                s.stack.clone(),
                status_cell(s),
                services_cell(s),
                s.generation.map_or("-".to_owned(), |g| g.to_string()),
                built_cell(s),
                files_cell(s).to_owned(),
                match (held_cell(s), images_cell(s)) {
                    (Some(h), _) => format!("held, {h}"),
                    (None, Some(i)) => format!("{}\n{i}", next_cell(s)),
                    (None, None) => next_cell(s),
                },
                failure_cell(s).unwrap_or_else(|| "-".to_owned()),
                s.locked_by.clone().unwrap_or_else(|| "-".to_owned()),
            ]
        } else {
            let runs = match (s.generation, s.built_at) {
                (Some(g), Some(at)) => format!("\ngen {g}, built {}", ago(s.now, at)),
                (Some(g), None) => format!("\ngen {g}"),
                (None, Some(at)) => format!("\nbuilt {}", ago(s.now, at)),
                (None, None) => String::new(),
            };
            vec![
                format!("{}\n  {}", s.host, s.stack),
                match (&s.problem, &s.error) {
                    (_, Some(_)) => "unreachable".to_owned(),
                    _ => status_cell(s) + &runs,
                },
                match services_cell(s) {
                    c if c.is_empty() => "-".to_owned(),
                    c => c,
                },
                note_cell(s),
            ]
        };
        for (l, text) in longest.iter_mut().zip(&texts) {
            *l = (*l).max(longest_word(text));
        }
        let mut cells: Vec<comfy_table::Cell> =
            texts.into_iter().map(comfy_table::Cell::new).collect();
        if color {
            let at = if every { 2 } else { 1 };
            let status = std::mem::replace(&mut cells[at], "".into());
            cells[at] = status.fg(if fine {
                comfy_table::Color::Green
            } else {
                comfy_table::Color::Red
            });
        }
        t.add_row(cells);
    }
    // a column no narrower than its longest word: no word is broken
    for (c, l) in t.column_iter_mut().zip(longest) {
        c.set_constraint(comfy_table::ColumnConstraint::LowerBoundary(
            // the width comfy-table counts has the cell's padding in it
            comfy_table::Width::Fixed((l + 2).min(u16::MAX.into()) as u16),
        ));
    }
    let bad = all.iter().filter(|s| s.problem.is_some()).count();
    let outdated = all.iter().filter(|s| s.outdated()).count();
    format!(
        "{t}\n{} stack{}, {}{}\n",
        all.len(),
        if all.len() == 1 { "" } else { "s" },
        if bad == 0 {
            "all fine".to_owned()
        } else {
            format!("{bad} with a problem")
        },
        match outdated {
            0 => String::new(),
            n => format!(", {n} on an image that moved since its build"),
        }
    )
}

/// What moved of the images a stack runs on: a line each, `moved` (the
/// next run deploys it) or `cooling` (younger than `min_age`).
fn images_cell(s: &StackStatus) -> Option<String> {
    let f = s.images.as_ref()?;
    let lines: Vec<String> = f
        .moved
        .iter()
        .map(|m| format!("moved: {}", m.reference))
        .chain(
            f.cooling
                .iter()
                .map(|m| format!("cooling: {} (new {} ago)", m.reference, human_age(m.age))),
        )
        .collect();
    (!lines.is_empty()).then(|| lines.join("\n"))
}

/// What the narrow table's NEXT / NOTE says of a stack: the next run,
/// why its host could not be asked, a rollback by hand that holds it, its
/// last failure, its files changed or unreadable here, the run holding
/// its lock.
fn note_cell(s: &StackStatus) -> String {
    let mut notes = Vec::new();
    match held_cell(s) {
        Some(h) => notes.push(format!("next: held, {h}")),
        None if s.next.is_some() => notes.push(format!("next: {}", next_cell(s))),
        None => {}
    }
    if let Some(i) = images_cell(s) {
        notes.push(i);
    }
    if let Some(e) = &s.error {
        notes.push(e.clone());
    }
    if let Some(f) = failure_cell(s) {
        notes.push(format!("last failure {f}"));
    }
    match s.files {
        Some(Files::Changed) if s.hash.is_some() => notes.push("files changed here".to_owned()),
        Some(Files::Unreadable) => notes.push("files unreadable here".to_owned()),
        _ => {}
    }
    if let Some(pid) = &s.locked_by {
        notes.push(format!("locked by pid {pid}"));
    }
    match notes.is_empty() {
        true => "-".to_owned(),
        false => notes.join("\n"),
    }
}

/// The width of the longest word of `text`.
fn longest_word(text: &str) -> usize {
    text.split_whitespace()
        .map(|w| w.chars().count())
        .max()
        .unwrap_or(0)
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
    state: &'a ServiceState,
    health: Option<&'a Health>,
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
    last_result: Option<&'a LastResult>,
    built_at: Option<String>,
    built_age_s: Option<u64>,
    hash: Option<&'a str>,
    generation: Option<u64>,
    kept_generations: &'a [u64],
    cut_off: Option<&'a str>,
    files: Option<Files>,
    next: Option<Next>,
    next_reason: Option<Reason>,
    next_due_at: Option<String>,
    last_failure: Option<AttemptJson<'a>>,
    locked_by: Option<&'a str>,
    /// The host's clock when it was asked.
    checked_at: Option<String>,
    /// It runs on an image that moved in its registry since its build.
    outdated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    images: Option<&'a crate::fresh::Freshness>,
}

/// The status as one JSON document (pure): version 2, its fields in
/// `docs/reference/json.md`, its schema `schemas/status.schema.json`.
pub fn render_json(all: &[StackStatus], exit_code: u8) -> String {
    let doc = Doc {
        version: super::json::VERSION,
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
                        health: (v.health != Health::Unknown).then_some(&v.health),
                    })
                    .collect(),
                running: s.running,
                last_result: s.last_result.as_ref(),
                built_at: s.built_at.and_then(time_json),
                built_age_s: s.built_at.zip(s.now).map(|(b, n)| n.saturating_sub(b)),
                hash: s.hash.as_deref(),
                generation: s.generation,
                kept_generations: &s.kept,
                cut_off: s.cut_off.as_deref(),
                files: s.files,
                next: s.next,
                next_reason: s.next_reason,
                next_due_at: s.due_at.and_then(time_json),
                last_failure: s.last_failure.as_ref().map(AttemptJson::of),
                locked_by: s.locked_by.as_deref(),
                checked_at: s.now.and_then(time_json),
                outdated: s.outdated(),
                images: s.images.as_ref(),
            })
            .collect(),
        exit_code,
    };
    super::json::pretty(&doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::Exit;
    use crate::host::HostError;
    use crate::remote::{Attempt, BadState, Service, StatusStack};
    use crate::remote::{Recorded, StackState};
    use crate::status::{assess, exit_of, unreachable};

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
                    state: (*s).into(),
                    health: (*h).into(),
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
        let s = assess("web1", "blog", Some("h1"), 3600, 1600, &f, None);
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
        let s = assess("web1", "blog", Some("h2"), 3600, 1600, &f, None);
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
        let s = assess("web1", "blog", Some("h1"), 3600, 1600, &down, None);
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
        let s2 = assess("web1", "blog", Some("h1"), 3600, 1600, &sick, None);
        assert_eq!(s2.problem.as_deref(), Some("app unhealthy"));
        let never = found(None, None, &[]);
        let s3 = assess("web1", "blog", Some("h1"), 3600, 1600, &never, None);
        assert_eq!(s3.problem.as_deref(), Some("never built here"));
        assert_eq!(s3.next_reason, Some(Reason::FirstBuild));
        let e = HostError::ConnectTimeout(10);
        let s4 = unreachable("web2", "blog", &e, e.hint());
        assert_eq!(exit_of(&[s.clone(), s4.clone()]), Exit::Failure);
        // only unreachable hosts: retry later
        assert_eq!(exit_of(std::slice::from_ref(&s4)), Exit::Unreachable);
        let doc = render_json(&[s.clone(), s4.clone()], 1);
        crate::report::json::assert_valid("status", &doc);
        let table = render_table(&[s.clone(), s4.clone()], false, None, false, false);
        let coloured = render_table(&[s, s4], false, None, true, false);
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
            bases: None,
        }
    }

    #[test]
    fn the_running_generation_is_shown_and_a_cut_off_run_is_named() {
        let mut st = built("h1", 1000);
        st.generation = Some(3);
        let mut f = found(Some(st), Some(true), &[("app", "running", "healthy")]);
        f.generations = vec![generation(2, false), generation(3, true)];
        let ok = assess("web1", "blog", Some("h1"), 3600, 1600, &f, None);
        assert_eq!((ok.generation, &ok.kept[..]), (Some(3), &[2][..]));
        // an older state line names none: the running `generation` line does
        let mut older = f.clone();
        if let Ok(Some(s)) = &mut older.recorded.state {
            s.generation = None;
        }
        assert_eq!(
            assess("web1", "blog", Some("h1"), 3600, 1600, &older, None).generation,
            Some(3)
        );
        // killed at its gate: the host says it is down, and why
        let mut cut = f.clone();
        cut.recorded.running = Some(false);
        cut.recorded.phase = Some("gate".into());
        cut.services = vec![];
        let c = assess("web1", "shop", Some("h1"), 3600, 1600, &cut, None);
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
        let n = assess("web2", "blog", Some("h1"), 3600, 1600, &first, None);
        assert_eq!(
            n.problem.as_deref(),
            Some("an earlier run was cut off on the host (at build); never built here")
        );
        assert_eq!(n.generation, None);
        insta::assert_snapshot!(render_table(
            &[ok.clone(), c.clone(), n],
            false,
            None,
            false,
            false
        ));
        let text = render_json(&[ok, c], 1);
        crate::report::json::assert_valid("status", &text);
        insta::assert_snapshot!("status_json", text);
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
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
            let s = assess("web1", "blog", Some("h1"), 3600, 1600, &f, None);
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
        let s = assess("web1", "blog", Some("h2"), 3600, 1600, &f, None);
        assert_eq!(
            (s.next, s.next_reason),
            (Some(Next::Held), Some(Reason::PreviousFailure))
        );
        assert_eq!(s.due_at, Some(5100));
        assert_eq!(s.problem.as_deref(), Some("its last rebuild failed"));
        assert!(s.hint.as_deref().unwrap().contains("rbuild logs web1 blog"));
        let text = render_json(&[s], 1);
        crate::report::json::assert_valid("status", &text);
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        let row = &doc["stacks"][0];
        assert_eq!(row["ok"], false);
        assert_eq!(row["next"], "held");
        assert_eq!(row["last_failure"]["result"], "rolled_back");
        assert_eq!(row["last_failure"]["finished_at"], "1970-01-01T00:25:00Z");
        assert_eq!(row["last_failure"]["generation"], 3);
        assert_eq!(row["last_failure"]["images"], serde_json::json!([]));
        assert_eq!(row["checked_at"], "1970-01-01T00:26:40Z");
        assert_eq!(row["services"][0]["health"], "healthy");
        assert_eq!(row["built_age_s"], 600);
        assert_eq!(doc["exit_code"], 1);
    }

    #[test]
    fn a_stack_on_a_moved_image_is_outdated_and_the_next_run_deploys_it() {
        use crate::fresh::{Freshness, Moved};
        let mut st = built("h1", 1000);
        st.generation = Some(2);
        let f = found(Some(st), Some(true), &[("app", "running", "none")]);
        let m = |built: bool, age: u64| Moved {
            reference: "127.0.0.1:5000/base:1".into(),
            service: "app".into(),
            built,
            recorded: format!("sha256:{}", "a".repeat(64)),
            current: format!("sha256:{}", "b".repeat(64)),
            age,
        };
        let moved = Freshness {
            moved: vec![m(true, 60)],
            ..Freshness::default()
        };
        let s = assess("web1", "blog", Some("h1"), 86400, 1600, &f, Some(&moved));
        assert!(s.outdated());
        assert_eq!(
            (s.next, s.next_reason),
            (Some(Next::Now), Some(Reason::BaseMoved))
        );
        let cooling = Freshness {
            cooling: vec![m(false, 600)],
            ..Freshness::default()
        };
        let c = assess("web2", "proxy", Some("h1"), 86400, 1600, &f, Some(&cooling));
        assert!(c.outdated());
        assert_eq!(
            (c.next, c.next_reason),
            (Some(Next::Later), Some(Reason::Cooling))
        );
        let same = assess(
            "web3",
            "api",
            Some("h1"),
            86400,
            1600,
            &f,
            Some(&Freshness::default()),
        );
        assert!(!same.outdated());
        let all = [s, c, same];
        insta::assert_snapshot!(
            "status_table_outdated",
            render_table(&all, false, None, false, true)
        );
        let text = render_json(&all, 0);
        crate::report::json::assert_valid("status", &text);
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(doc["stacks"][0]["outdated"], true);
        assert_eq!(doc["stacks"][0]["next_reason"], "base_moved");
        assert_eq!(doc["stacks"][0]["images"]["moved"][0]["built"], true);
        assert_eq!(doc["stacks"][1]["next_reason"], "cooling");
        assert_eq!(doc["stacks"][2]["outdated"], false);
        assert!(doc["stacks"][2].get("images").is_none());
    }

    /// A fleet's stacks in every shape the table shows: fine with two
    /// services, failed and held, rolled back by hand, locked with files
    /// changed here, cut off, and a host that could not be asked.
    fn shapes() -> Vec<StackStatus> {
        let mut st = built("a1b2c3d4e5f6a7b8", 1000);
        st.generation = Some(3);
        let mut f = found(
            Some(st.clone()),
            Some(true),
            &[
                ("app", "running", "healthy"),
                ("worker", "running", "none"),
                ("migrate", "exited:0", "none"),
            ],
        );
        f.generations = vec![generation(2, false), generation(3, true)];
        let fine = assess(
            "web1.example.com",
            "blog",
            Some("a1b2c3d4e5f6a7b8"),
            86400,
            1600,
            &f,
            None,
        );

        let mut failed = st.clone();
        failed.last_result = Some("failed".into());
        failed.failed_hash = Some("ffff".into());
        failed.failed_at = 1500;
        let mut ff = found(Some(failed), Some(true), &[("app", "running", "healthy")]);
        ff.last_failure = Some(Attempt {
            at: 1500,
            hash: "ffff".into(),
            result: "rolled_back".into(),
            images: "-".into(),
            generation: Some(3),
            detail: "not healthy: app(unhealthy)".into(),
        });
        let held_back = assess(
            "web1.example.com",
            "shop",
            Some("ffff"),
            86400,
            1600,
            &ff,
            None,
        );

        let mut by_hand = st.clone();
        by_hand.last_result = Some("rolled_back".into());
        by_hand.failed_hash = Some("a1b2c3d4e5f6a7b8".into());
        by_hand.failed_at = 1400;
        by_hand.generation = Some(2);
        let mut fh = found(Some(by_hand), Some(true), &[("app", "running", "healthy")]);
        fh.last_failure = Some(Attempt {
            at: 1400,
            hash: "a1b2c3d4e5f6a7b8".into(),
            result: "rolled_back".into(),
            images: "-".into(),
            generation: Some(2),
            detail: "by hand, from generation 3 to generation 2".into(),
        });
        let rolled = assess(
            "web2",
            "blog",
            Some("a1b2c3d4e5f6a7b8"),
            86400,
            1600,
            &fh,
            None,
        );

        let mut fl = found(
            Some(st.clone()),
            Some(true),
            &[("app", "running", "starting")],
        );
        fl.recorded.locked_by = Some("4242".into());
        let locked = assess("web2", "api", Some("b0b0"), 86400, 1600, &fl, None);

        let mut cut = found(Some(st), Some(false), &[]);
        cut.recorded.phase = Some("gate".into());
        let cut = assess(
            "web3",
            "blog",
            Some("a1b2c3d4e5f6a7b8"),
            86400,
            1600,
            &cut,
            None,
        );

        let e = HostError::ConnectTimeout(10);
        let down = unreachable("web4", "blog", &e, e.hint());
        vec![fine, held_back, rolled, locked, cut, down]
    }

    #[test]
    fn status_fits_80_and_120_columns_without_breaking_a_word() {
        let all = shapes();
        for (name, width, wide) in [
            ("80", Some(80), false),
            ("120", Some(120), false),
            ("140", Some(140), false),
            ("wide", Some(80), true),
        ] {
            let text = render_table(&all, true, width, false, wide);
            if !wide {
                for l in text.lines() {
                    assert!(
                        l.chars().count() <= width.unwrap() as usize,
                        "{name}: {l}\n{text}"
                    );
                }
            }
            // every word of every header and cell is whole somewhere
            for w in [
                "SERVICES",
                "running",
                "healthy",
                "previous_failure",
                "unreachable",
                "migrate",
            ] {
                assert!(text.contains(w), "{name}: {w}\n{text}");
            }
            insta::assert_snapshot!(format!("status_table_{name}"), text);
        }
    }

    #[test]
    fn a_rollback_by_hand_is_held_not_a_failure() {
        let all = shapes();
        let rolled = &all[2];
        assert_eq!(rolled.problem, None);
        assert_eq!(failure_cell(rolled), None);
        assert_eq!(next_cell(rolled), "held (rolled back by hand)");
        assert_eq!(
            held_cell(rolled).as_deref(),
            Some("rolled back 3m ago (by hand, from generation 3 to generation 2)")
        );
        assert!(note_cell(rolled).starts_with("next: held, rolled back 3m ago"));
        assert!(!note_cell(rolled).contains("last failure"));
        // a failed rebuild rolled back by the gate is a failure
        assert!(
            failure_cell(&all[1])
                .unwrap()
                .contains("rolled_back not healthy")
        );
        assert_eq!(held_cell(&all[1]), None);
    }
}
