//! `--json`: one document on stdout (every field is described in the
//! README's "Output for scripts").
//!
//! ```json
//! {"version":1,
//!  "results":[{"host":"web1","stack":"blog","action":"rebuilt",
//!   "reason":"expired","duration_ms":12340,"error":null,"hint":null,
//!   "started_at":"2026-01-02T03:04:05Z","finished_at":"2026-01-02T03:04:17Z",
//!   "hash":"9f2c…","output":[]}],
//!  "counts":{"rebuilt":1,"started":0,…},"hosts":1,"exit_code":0}
//! ```

use std::time::SystemTime;

use indexmap::IndexMap;
use serde::Serialize;

pub use super::ACTIONS;
use super::{Action, Row};
use crate::decide::Reason;

#[derive(Serialize)]
struct Doc<'a> {
    version: u32,
    results: Vec<Result<'a>>,
    counts: IndexMap<&'static str, usize>,
    hosts: usize,
    exit_code: u8,
}

#[derive(Serialize)]
struct Result<'a> {
    host: &'a str,
    stack: &'a str,
    action: Action,
    reason: Reason,
    duration_ms: u64,
    error: Option<&'a str>,
    hint: Option<&'a str>,
    started_at: Option<String>,
    finished_at: Option<String>,
    hash: Option<&'a str>,
    output: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    plan: Option<&'a super::ShipPlan>,
}

/// A document as rbuild prints every one: pretty, with a final newline.
pub fn pretty(doc: &impl Serialize) -> String {
    let mut s = serde_json::to_string_pretty(doc).expect("serializable");
    s.push('\n');
    s
}

/// A time as RFC 3339, UTC, to the second.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// How many rows have each action, every action named (0 included).
pub fn counts(rows: &[Row]) -> IndexMap<&'static str, usize> {
    ACTIONS
        .into_iter()
        .map(|a| (a.as_str(), rows.iter().filter(|r| r.action == a).count()))
        .collect()
}

/// How many hosts the rows are of.
pub fn hosts(rows: &[Row]) -> usize {
    let mut h: Vec<&str> = rows.iter().map(|r| r.host.as_str()).collect();
    h.sort_unstable();
    h.dedup();
    h.len()
}

pub fn render(rows: &[Row], exit_code: u8) -> String {
    let doc = Doc {
        version: 1,
        results: rows
            .iter()
            .map(|r| Result {
                host: &r.host,
                stack: &r.stack,
                action: r.action,
                reason: r.reason,
                duration_ms: r.duration.as_millis() as u64,
                error: r.error.as_deref(),
                hint: r.hint.as_deref(),
                started_at: r.detail.started.map(rfc3339),
                finished_at: r.detail.finished.map(rfc3339),
                hash: r.detail.hash.as_deref(),
                output: &r.detail.output,
                plan: r.detail.plan.as_ref(),
            })
            .collect(),
        counts: counts(rows),
        hosts: hosts(rows),
        exit_code,
    };
    let mut s = serde_json::to_string_pretty(&doc).expect("serializable");
    s.push('\n');
    s
}

/// The document of a run that stopped before any host was contacted (a
/// usage error, exit 2): the run's shape with no rows, and its `error` and
/// `hint` at the top level, as a row would carry them.
pub fn render_error(error: &str, hint: Option<&str>, exit_code: u8) -> String {
    #[derive(Serialize)]
    struct ErrorDoc<'a> {
        #[serde(flatten)]
        doc: Doc<'a>,
        error: &'a str,
        hint: Option<&'a str>,
    }
    let doc = ErrorDoc {
        doc: Doc {
            version: 1,
            results: vec![],
            counts: counts(&[]),
            hosts: 0,
            exit_code,
        },
        error,
        hint,
    };
    let mut s = serde_json::to_string_pretty(&doc).expect("serializable");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Detail;
    use std::time::{Duration, UNIX_EPOCH};

    fn row(host: &str, action: Action) -> Row {
        Row {
            duration: Duration::from_millis(7),
            ..Row::new(host, "blog", action, Reason::ConfigChanged)
        }
    }

    #[test]
    fn json_shape() {
        let rows = vec![row("web1", Action::WouldRebuild)];
        let v: serde_json::Value = serde_json::from_str(&render(&rows, 0)).unwrap();
        assert_eq!(v["results"][0]["action"], "would_rebuild");
        assert_eq!(v["results"][0]["reason"], "config_changed");
        assert_eq!(v["results"][0]["duration_ms"], 7);
        assert!(v["results"][0]["error"].is_null());
        assert!(v["results"][0]["started_at"].is_null());
        assert!(v["results"][0]["hash"].is_null());
        assert_eq!(v["results"][0]["output"], serde_json::json!([]));
        assert_eq!(v["exit_code"], 0);
    }

    #[test]
    fn a_usage_error_is_a_document_too() {
        let v: serde_json::Value =
            serde_json::from_str(&render_error("bad flag", Some("try this"), 2)).unwrap();
        assert_eq!(v["version"], 1);
        assert_eq!(v["results"], serde_json::json!([]));
        assert_eq!(v["counts"]["failed"], 0);
        assert_eq!(v["exit_code"], 2);
        assert_eq!(v["error"], "bad flag");
        assert_eq!(v["hint"], "try this");
    }

    #[test]
    fn rows_carry_their_times_hash_and_output_and_the_run_its_counts() {
        let mut failed = row("web1", Action::Failed);
        failed.detail = Detail {
            output: vec!["ERROR: failed to solve".into()],
            started: Some(UNIX_EPOCH + Duration::from_secs(1_800_000_000)),
            finished: Some(UNIX_EPOCH + Duration::from_secs(1_800_000_012)),
            hash: Some("ab12".into()),
            plan: None,
        };
        let rows = vec![
            failed,
            row("web1", Action::Rebuilt),
            row("web2", Action::Rebuilt),
        ];
        let v: serde_json::Value = serde_json::from_str(&render(&rows, 1)).unwrap();
        let r = &v["results"][0];
        assert_eq!(r["started_at"], "2027-01-15T08:00:00Z");
        assert_eq!(r["finished_at"], "2027-01-15T08:00:12Z");
        assert_eq!(r["hash"], "ab12");
        assert_eq!(r["output"][0], "ERROR: failed to solve");
        // every action counted, none left out
        let text = render(&rows, 1);
        insta::assert_snapshot!("run_json", text);
        let at: Vec<usize> = ACTIONS
            .iter()
            .map(|a| text.find(&format!("\"{}\": ", a.as_str())).unwrap())
            .collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "in a stable order");
        assert_eq!(v["counts"]["rebuilt"], 2);
        assert_eq!(v["counts"]["failed"], 1);
        assert_eq!(v["counts"]["skipped"], 0);
        assert_eq!(v["hosts"], 2);
    }
}
