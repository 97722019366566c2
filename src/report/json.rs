//! The run's document (`--json`, `-o json`; `rbuild rollback --json` and
//! `rbuild merge --json` print it too): version 2, described field by
//! field in `docs/reference/json.md`, its schema `schemas/run.schema.json`.
//!
//! ```json
//! {"version":2,
//!  "results":[{"host":"web1","stack":"blog","action":"rebuilt",
//!   "reason":"expired","ok":true,"duration_ms":12340,"error":null,
//!   "hint":null,"started_at":"2026-01-02T03:04:05Z",
//!   "finished_at":"2026-01-02T03:04:17Z","hash":"9f2c…","output":[]}],
//!  "counts":{"rebuilt":1,"started":0,…,"unreachable":0,"held_back":0,
//!   "skipped":0},"hosts":1,"exit_code":0}
//! ```
//!
//! Every row is counted once in `counts`: `unreachable` are the `failed`
//! rows of a host not reached (`reason: host_failed`), `held_back` the
//! `skipped` rows held back by an earlier failure or a halted rollout;
//! `failed` and `skipped` count the others. A row's `ok` is `false`
//! exactly when it makes the exit status non-zero.

use std::time::{Duration, SystemTime};

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

pub use super::ACTIONS;
use super::{Action, Detail, Row, ShipPlan};
use crate::decide::Reason;
use crate::exit::Exit;
use crate::fresh::Freshness;
use crate::registry::Lookups;

/// The version of every document rbuild prints.
pub const VERSION: u32 = 2;

#[derive(Serialize)]
struct Doc<'a> {
    version: u32,
    results: Vec<Result<'a>>,
    counts: IndexMap<&'static str, usize>,
    hosts: usize,
    exit_code: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    registry: Option<Registry<'a>>,
}

/// What the registries were asked in a run: each distinct reference once.
#[derive(Serialize)]
struct Registry<'a> {
    references: usize,
    requests: usize,
    digests: &'a crate::fresh::Digests,
}

#[derive(Serialize)]
struct Result<'a> {
    host: &'a str,
    stack: &'a str,
    action: Action,
    reason: Reason,
    ok: bool,
    duration_ms: u64,
    error: Option<&'a str>,
    hint: Option<&'a str>,
    started_at: Option<String>,
    finished_at: Option<String>,
    hash: Option<&'a str>,
    output: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    plan: Option<&'a ShipPlan>,
    #[serde(skip_serializing_if = "Option::is_none")]
    images: Option<&'a Freshness>,
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

/// The keys of `counts`, in their order: each row is counted under one.
pub const COUNTED: [&str; 9] = [
    "rebuilt",
    "started",
    "would_rebuild",
    "would_start",
    "rolled_back",
    "failed",
    "unreachable",
    "held_back",
    "skipped",
];

/// The key of `counts` a row is counted under.
pub fn counted_as(r: &Row) -> &'static str {
    match r.action {
        Action::Failed if r.reason == Reason::HostFailed => "unreachable",
        Action::Skipped if r.reason.holds_back() => "held_back",
        a => a.as_str(),
    }
}

/// How many rows are counted under each key, every key named (0
/// included).
pub fn counts(rows: &[Row]) -> IndexMap<&'static str, usize> {
    COUNTED
        .into_iter()
        .map(|k| (k, rows.iter().filter(|r| counted_as(r) == k).count()))
        .collect()
}

/// How many hosts the rows are of.
pub fn hosts(rows: &[Row]) -> usize {
    let mut h: Vec<&str> = rows.iter().map(|r| r.host.as_str()).collect();
    h.sort_unstable();
    h.dedup();
    h.len()
}

fn doc(rows: &[Row], exit_code: u8) -> Doc<'_> {
    Doc {
        version: VERSION,
        results: rows
            .iter()
            .map(|r| Result {
                host: &r.host,
                stack: &r.stack,
                action: r.action,
                reason: r.reason,
                ok: r.ok(),
                duration_ms: r.duration.as_millis() as u64,
                error: r.error.as_deref(),
                hint: r.hint.as_deref(),
                started_at: r.detail.started.map(rfc3339),
                finished_at: r.detail.finished.map(rfc3339),
                hash: r.detail.hash.as_deref(),
                output: &r.detail.output,
                plan: r.detail.plan.as_ref(),
                images: r.detail.images.as_deref(),
            })
            .collect(),
        counts: counts(rows),
        hosts: hosts(rows),
        exit_code,
        registry: None,
    }
}

pub fn render(rows: &[Row], exit_code: u8) -> String {
    pretty(&doc(rows, exit_code))
}

/// A run's document with what its registries were asked.
pub fn render_run(rows: &[Row], exit_code: u8, registry: Option<&Lookups>) -> String {
    let mut d = doc(rows, exit_code);
    d.registry = registry.map(|l| Registry {
        references: l.digests.len(),
        requests: l.requests,
        digests: &l.digests,
    });
    pretty(&d)
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
    pretty(&ErrorDoc {
        doc: doc(&[], exit_code),
        error,
        hint,
    })
}

/// A run's document read back (`rbuild merge`): its rows, its exit status
/// and, when it stopped before any host, its error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRead {
    pub rows: Vec<Row>,
    pub exit: Exit,
    pub error: Option<String>,
}

#[derive(Deserialize)]
struct DocIn {
    version: u64,
    results: Vec<ResultIn>,
    exit_code: u64,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct ResultIn {
    host: String,
    stack: String,
    action: Action,
    reason: Reason,
    duration_ms: u64,
    error: Option<String>,
    hint: Option<String>,
    started_at: Option<String>,
    finished_at: Option<String>,
    hash: Option<String>,
    output: Vec<String>,
    #[serde(default)]
    plan: Option<PlanIn>,
    #[serde(default)]
    images: Option<Freshness>,
}

#[derive(Deserialize)]
struct PlanIn {
    ship: bool,
    files: usize,
    bytes: u64,
    changed: Option<Vec<ChangeIn>>,
}

#[derive(Deserialize)]
struct ChangeIn {
    path: String,
    change: String,
}

fn time_in(t: Option<String>) -> std::result::Result<Option<SystemTime>, String> {
    t.map(|t| humantime::parse_rfc3339(&t).map_err(|e| format!("`{t}`: {e}")))
        .transpose()
}

/// Read a run's document (version 2) back into its rows: what `rbuild
/// merge` fans in. The error says what does not fit.
pub fn parse(text: &str) -> std::result::Result<RunRead, String> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not a JSON document: {e}"))?;
    match v.get("version").and_then(serde_json::Value::as_u64) {
        Some(n) if n == u64::from(VERSION) => {}
        Some(n) => {
            return Err(format!(
                "a document of version {n}; this rbuild reads version {VERSION}"
            ));
        }
        None => return Err("not an rbuild run's document (no `version`)".into()),
    }
    let d: DocIn =
        serde_json::from_value(v).map_err(|e| format!("not an rbuild run's document: {e}"))?;
    debug_assert_eq!(d.version, u64::from(VERSION));
    let exit = Exit::of_code(d.exit_code)
        .ok_or_else(|| format!("`exit_code` {} is no exit status of rbuild", d.exit_code))?;
    let mut rows = Vec::with_capacity(d.results.len());
    for r in d.results {
        let plan = match r.plan {
            None => None,
            Some(p) => Some(ShipPlan {
                ship: p.ship,
                files: p.files,
                bytes: p.bytes,
                changed: match p.changed {
                    None => None,
                    Some(c) => Some(
                        c.into_iter()
                            .map(|c| {
                                let change = match c.change.as_str() {
                                    "added" => "added",
                                    "modified" => "modified",
                                    "removed" => "removed",
                                    other => return Err(format!("`{other}` is no change")),
                                };
                                Ok(crate::trees::Change {
                                    path: c.path,
                                    change,
                                })
                            })
                            .collect::<std::result::Result<_, String>>()?,
                    ),
                },
            }),
        };
        rows.push(Row {
            host: r.host,
            stack: r.stack,
            action: r.action,
            reason: r.reason,
            duration: Duration::from_millis(r.duration_ms),
            error: r.error,
            hint: r.hint,
            detail: Detail {
                output: r.output,
                started: time_in(r.started_at)?,
                finished: time_in(r.finished_at)?,
                hash: r.hash,
                plan,
                images: r.images.map(Box::new),
            },
        });
    }
    Ok(RunRead {
        rows,
        exit,
        error: d.error,
    })
}

/// Test only: `doc` is valid against `schemas/NAME.schema.json` (draft
/// 2020-12), or the test fails naming every error.
#[cfg(test)]
pub(crate) fn assert_valid(name: &str, doc: &str) {
    let path = format!("{}/schemas/{name}.schema.json", env!("CARGO_MANIFEST_DIR"));
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("the schema file"))
            .expect("the schema is JSON");
    let validator = jsonschema::draft202012::new(&schema).expect("a valid schema");
    let doc: serde_json::Value = serde_json::from_str(doc).expect("the document is JSON");
    let errors: Vec<String> = validator
        .iter_errors(&doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{path}: {errors:#?}\n{doc:#}");
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
        let text = render(&rows, 0);
        assert_valid("run", &text);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["version"], 2);
        assert_eq!(v["results"][0]["action"], "would_rebuild");
        assert_eq!(v["results"][0]["reason"], "config_changed");
        assert_eq!(v["results"][0]["ok"], true);
        assert_eq!(v["results"][0]["duration_ms"], 7);
        assert!(v["results"][0]["error"].is_null());
        assert!(v["results"][0]["started_at"].is_null());
        assert!(v["results"][0]["hash"].is_null());
        assert_eq!(v["results"][0]["output"], serde_json::json!([]));
        assert_eq!(v["exit_code"], 0);
    }

    #[test]
    fn a_usage_error_is_a_document_too() {
        let text = render_error("bad flag", Some("try this"), 2);
        assert_valid("run", &text);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["version"], 2);
        assert_eq!(v["results"], serde_json::json!([]));
        assert_eq!(v["counts"]["failed"], 0);
        assert_eq!(v["counts"]["held_back"], 0);
        assert_eq!(v["exit_code"], 2);
        assert_eq!(v["error"], "bad flag");
        assert_eq!(v["hint"], "try this");
    }

    #[test]
    fn a_row_says_what_moved_and_the_run_what_it_asked_the_registries() {
        use crate::fresh::{Freshness, Lookup, Moved, Unknown};
        let mut r = row("web1", Action::Rebuilt);
        r.reason = Reason::BaseMoved;
        r.detail.images = Some(Box::new(Freshness {
            moved: vec![Moved {
                reference: "127.0.0.1:5000/base:1".into(),
                service: "app".into(),
                built: true,
                recorded: "sha256:aa".into(),
                current: "sha256:bb".into(),
                age: 30,
            }],
            cooling: vec![],
            unknown: vec![Unknown {
                image: "docker.io/library/redis:7".into(),
                why: "registry-1.docker.io: connection refused".into(),
            }],
        }));
        let mut lookups = Lookups {
            requests: 2,
            ..Lookups::default()
        };
        lookups.digests.insert(
            "127.0.0.1:5000/base:1".into(),
            Lookup::Digest {
                digest: "sha256:bb".into(),
                first_seen: 1_800_000_000,
            },
        );
        lookups.digests.insert(
            "docker.io/library/redis:7".into(),
            Lookup::Unavailable {
                error: "registry-1.docker.io: connection refused".into(),
            },
        );
        let text = render_run(&[r], 0, Some(&lookups));
        assert_valid("run", &text);
        insta::assert_snapshot!("run_json_images", text);
        // and it reads back (merge)
        let back = parse(&text).unwrap();
        assert_eq!(back.rows[0].reason, Reason::BaseMoved);
        assert_eq!(
            back.rows[0].detail.images.as_ref().unwrap().moved[0].current,
            "sha256:bb"
        );
    }

    #[test]
    fn rows_carry_their_times_hash_and_output_and_the_run_its_counts() {
        let mut failed = row("web1", Action::Failed);
        failed.detail = Detail {
            images: None,
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
        assert_eq!(r["ok"], false);
        // every key counted, none left out
        let text = render(&rows, 1);
        assert_valid("run", &text);
        insta::assert_snapshot!("run_json", text);
        let at: Vec<usize> = COUNTED
            .iter()
            .map(|k| text.find(&format!("\"{k}\": ")).unwrap())
            .collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "in a stable order");
        assert_eq!(v["counts"]["rebuilt"], 2);
        assert_eq!(v["counts"]["failed"], 1);
        assert_eq!(v["counts"]["skipped"], 0);
        assert_eq!(v["hosts"], 2);
    }

    #[test]
    fn held_back_and_unreachable_are_counted_and_not_ok() {
        let rows = vec![
            Row::new("web1", "blog", Action::Skipped, Reason::PreviousFailure),
            Row::new("web1", "shop", Action::Skipped, Reason::RolloutHalted),
            Row::new("web2", "blog", Action::Failed, Reason::HostFailed),
            Row::new("web3", "blog", Action::Skipped, Reason::UpToDate),
            Row::new("web3", "shop", Action::Failed, Reason::Locked),
        ];
        let exit = crate::report::exit_of(&rows, false);
        let text = render(&rows, exit.code());
        assert_valid("run", &text);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let c = &v["counts"];
        assert_eq!(
            (
                &c["held_back"],
                &c["unreachable"],
                &c["skipped"],
                &c["failed"]
            ),
            (&2.into(), &1.into(), &1.into(), &1.into())
        );
        let counted: u64 = c
            .as_object()
            .unwrap()
            .values()
            .map(|n| n.as_u64().unwrap())
            .sum();
        assert_eq!(counted, rows.len() as u64, "each row counted once");
        // `select(.ok|not)`: all but the one up to date
        let not_ok: Vec<(&str, &str)> = v["results"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["ok"] == false)
            .map(|r| (r["host"].as_str().unwrap(), r["stack"].as_str().unwrap()))
            .collect();
        assert_eq!(
            not_ok,
            [
                ("web1", "blog"),
                ("web1", "shop"),
                ("web2", "blog"),
                ("web3", "shop")
            ]
        );
        assert_eq!(v["exit_code"], 1);
    }

    #[test]
    fn a_document_reads_back_into_its_rows() {
        let mut planned = row("web1", Action::WouldRebuild);
        planned.detail = Detail {
            images: None,
            started: Some(UNIX_EPOCH + Duration::from_secs(1_800_000_000)),
            finished: Some(UNIX_EPOCH + Duration::from_secs(1_800_000_001)),
            hash: Some("ab12".into()),
            plan: Some(ShipPlan {
                ship: true,
                files: 3,
                bytes: 120,
                changed: Some(vec![crate::trees::Change {
                    path: "compose.yml".into(),
                    change: "modified",
                }]),
            }),
            output: vec![],
        };
        let mut failed = row("web2", Action::Failed);
        failed.error = Some("build failed".into());
        failed.hint = Some("look".into());
        failed.detail.output = vec!["ERROR".into()];
        let rows = vec![planned, failed];
        // a dry run's plan is inside its row
        assert_valid("run", &render(&rows, 1));
        let read = parse(&render(&rows, 1)).unwrap();
        assert_eq!(
            read,
            RunRead {
                rows,
                exit: Exit::Failure,
                error: None
            }
        );
        let err = parse(&render_error("bad", None, 2)).unwrap();
        assert_eq!((err.exit, err.error.as_deref()), (Exit::Usage, Some("bad")));
    }

    #[test]
    fn what_is_no_run_document_is_said() {
        for (text, says) in [
            ("{", "not a JSON document"),
            ("{}", "no `version`"),
            (
                r#"{"version":1,"results":[]}"#,
                "version 1; this rbuild reads version 2",
            ),
            (
                r#"{"version":2,"stacks":[]}"#,
                "not an rbuild run's document",
            ),
            (
                r#"{"version":2,"results":[],"exit_code":7}"#,
                "`exit_code` 7 is no exit status",
            ),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
        }
    }
}
