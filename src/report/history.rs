//! The one-stack documents: `rbuild history`'s table and JSON, `rbuild
//! logs`' kept failed attempt (pure).

use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;

use super::Rendered;
use crate::remote::{Attempt, AttemptResult, FailedAttempt, Generation};

#[derive(Serialize)]
struct HistoryDoc<'a> {
    version: u32,
    host: &'a str,
    stack: &'a str,
    history: Vec<AttemptJson<'a>>,
    /// The kept generations, oldest first (empty: the host counts none yet).
    generations: Vec<GenerationJson<'a>>,
}

/// An attempt as every document shows it (`history`, `logs`, and
/// `status`'s `last_failure`).
#[derive(Serialize)]
pub(crate) struct AttemptJson<'a> {
    /// When it ended (host clock), RFC 3339.
    finished_at: Option<String>,
    hash: &'a str,
    result: &'a AttemptResult,
    images: Vec<ImageJson<'a>>,
    /// The generation that runs after the attempt (`null`: none, or a line
    /// older than generations).
    generation: Option<u64>,
    detail: &'a str,
}

impl<'a> AttemptJson<'a> {
    pub(crate) fn of(a: &'a Attempt) -> AttemptJson<'a> {
        AttemptJson {
            finished_at: time_json(a.at),
            hash: &a.hash,
            result: &a.result,
            images: images_json(&a.images),
            generation: a.generation,
            detail: &a.detail,
        }
    }
}

#[derive(Serialize)]
struct GenerationJson<'a> {
    generation: u64,
    running: bool,
    built_at: Option<String>,
    hash: &'a str,
    images: Vec<ImageJson<'a>>,
}

/// One service's image, as every document lists them.
#[derive(Debug, PartialEq, Eq, Serialize)]
pub(crate) struct ImageJson<'a> {
    /// The compose service (`null` when the host wrote none).
    service: Option<&'a str>,
    /// The image's id, as the engine gives it (`sha256:…`).
    image: &'a str,
}

/// The host's `service=image-id,...` (`-` or empty: none) as a list.
pub(crate) fn images_json(images: &str) -> Vec<ImageJson<'_>> {
    images
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty() && *p != "-")
        .map(|p| match p.split_once('=') {
            Some((service, image)) => ImageJson {
                service: Some(service),
                image,
            },
            None => ImageJson {
                service: None,
                image: p,
            },
        })
        .collect()
}

/// The last second RFC 3339 can write (9999-12-31T23:59:59Z).
const LAST_RFC3339: u64 = 253_402_300_799;

/// A host time as RFC 3339, or as the number it is when it is no time
/// RFC 3339 can write (a host can record anything).
pub fn rfc3339(at: u64) -> String {
    time_json(at).unwrap_or_else(|| format!("{at} (not a time)"))
}

/// A host time for a document: RFC 3339, or `null` when it is no time
/// RFC 3339 can write.
pub(crate) fn time_json(at: u64) -> Option<String> {
    match UNIX_EPOCH.checked_add(Duration::from_secs(at)) {
        Some(t) if at <= LAST_RFC3339 => Some(humantime::format_rfc3339_seconds(t).to_string()),
        _ => None,
    }
}

/// `service=sha256:0123…` as `service=0123456789ab`, one a line.
fn short_images(images: &str) -> String {
    images
        .split(',')
        .map(|p| match p.split_once('=') {
            Some((svc, id)) => {
                let id = id.strip_prefix("sha256:").unwrap_or(id);
                format!("{svc}={}", id.get(..12).unwrap_or(id))
            }
            None => p.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn short_hash(h: &str) -> &str {
    h.get(..12).unwrap_or(h)
}

/// `rbuild history`: the table (or, `json`, the document); no attempt yet
/// is a note on stderr.
pub fn history(
    host: &str,
    stack: &str,
    attempts: &[Attempt],
    generations: &[Generation],
    json: bool,
    unicode: bool,
) -> Rendered {
    if json {
        Rendered::out(super::json::pretty(&HistoryDoc {
            version: super::json::VERSION,
            host,
            stack,
            history: attempts.iter().map(AttemptJson::of).collect(),
            generations: generations
                .iter()
                .map(|g| GenerationJson {
                    generation: g.number,
                    running: g.running,
                    built_at: time_json(g.built_at),
                    hash: &g.hash,
                    images: images_json(&g.images),
                })
                .collect(),
        }))
    } else if attempts.is_empty() {
        Rendered::err(format!("{host} {stack}: no rebuild recorded yet\n"))
    } else {
        Rendered::out(render_history(attempts, generations, unicode))
    }
}

/// `rbuild logs`: the kept failed attempt (or, `json`, the document);
/// none kept is a note on stderr.
pub fn logs(host: &str, stack: &str, kept: Option<&FailedAttempt>, json: bool) -> Rendered {
    if json {
        Rendered::out(super::json::pretty(&LogsDoc {
            version: super::json::VERSION,
            host,
            stack,
            attempt: kept.map(|k| AttemptJson::of(&k.attempt)),
            output: kept.map_or(&[][..], |k| &k.output[..]),
        }))
    } else if let Some(k) = kept {
        Rendered::out(render_logs(host, stack, k))
    } else {
        Rendered::err(format!(
            "{host} {stack}: no failed attempt is kept (none since rbuild began keeping them)\n"
        ))
    }
}

/// Render a stack's history as a table (pure): its attempts, each with the
/// generation that ran after it (`*` marks the one running now), then the
/// generations whose images are kept on the host, if it names any.
fn render_history(attempts: &[Attempt], generations: &[Generation], unicode: bool) -> String {
    let running = generations.iter().find(|g| g.running).map(|g| g.number);
    let mut t = super::table::new_table(unicode, None);
    t.set_header(["TIME (UTC)", "GEN", "HASH", "RESULT", "IMAGES", "DETAIL"]);
    for a in attempts {
        let gen_cell = match a.generation {
            Some(n) if Some(n) == running => format!("{n}*"),
            Some(n) => n.to_string(),
            None => "-".to_owned(),
        };
        t.add_row([
            rfc3339(a.at).as_str(),
            gen_cell.as_str(),
            short_hash(&a.hash),
            a.result.as_str(),
            short_images(&a.images).as_str(),
            a.detail.as_str(),
        ]);
    }
    let mut out = format!("{t}\n");
    if generations.is_empty() {
        return out;
    }
    let mut g = super::table::new_table(unicode, None);
    g.set_header(["GEN", "", "BUILT (UTC)", "HASH", "IMAGES"]);
    for k in generations {
        g.add_row([
            k.number.to_string().as_str(),
            if k.running { "running" } else { "kept" },
            rfc3339(k.built_at).as_str(),
            short_hash(&k.hash),
            short_images(&k.images).as_str(),
        ]);
    }
    let older = generations
        .iter()
        .any(|k| !k.running && running.is_some_and(|r| k.number < r));
    out.push_str(&format!(
        "\nkept generations, their images on the host (`*` above: the one running):\n{g}\n"
    ));
    if older {
        out.push_str("`rbuild rollback` puts back the newest one older than the one running; `--to GEN` any of them\n");
    }
    out
}

#[derive(Serialize)]
struct LogsDoc<'a> {
    version: u32,
    host: &'a str,
    stack: &'a str,
    attempt: Option<AttemptJson<'a>>,
    output: &'a [String],
}

/// A kept failed attempt: a line saying which, then its output (pure).
fn render_logs(host: &str, stack: &str, k: &FailedAttempt) -> String {
    let a = &k.attempt;
    let mut out = format!(
        "# {host} {stack}: {} at {} (hash {}): {}\n",
        a.result,
        rfc3339(a.at),
        a.hash.get(..12).unwrap_or(&a.hash),
        a.detail
    );
    for l in &k.output {
        out.push_str(l);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(
        at: u64,
        hash: &str,
        result: &str,
        generation: Option<u64>,
        detail: &str,
    ) -> Attempt {
        Attempt {
            at,
            hash: hash.into(),
            result: result.into(),
            images: "app=sha256:1,db=sha256:2".into(),
            generation,
            detail: detail.into(),
        }
    }

    #[test]
    fn history_table() {
        // an older host: no generations
        let a = [attempt(
            1_795_600_000,
            "0123456789abcdef",
            "rolled_back",
            None,
            "not healthy: app(unhealthy)",
        )];
        insta::assert_snapshot!(render_history(&a, &[], false));
    }

    #[test]
    fn history_table_with_generations() {
        let a = [
            attempt(
                1_795_500_000,
                "aaaa56789abcdef0",
                "rebuilt",
                Some(1),
                "with compose v2",
            ),
            attempt(
                1_795_550_000,
                "bbbb56789abcdef0",
                "rebuilt",
                Some(2),
                "with compose v2",
            ),
            attempt(
                1_795_600_000,
                "cccc56789abcdef0",
                "rolled_back",
                Some(2),
                "not healthy: app(unhealthy)",
            ),
            attempt(
                1_795_650_000,
                "cccc56789abcdef0",
                "rebuilt",
                Some(3),
                "with compose v2",
            ),
            attempt(
                1_795_700_000,
                "bbbb56789abcdef0",
                "rolled_back",
                Some(2),
                "from generation 3 to generation 2",
            ),
        ];
        let g = |number, running, built_at, hash: &str| Generation {
            number,
            running,
            built_at,
            hash: hash.into(),
            images: format!("app=sha256:{number}{number}{number}"),
            bases: None,
        };
        let kept = [
            g(1, false, 1_795_500_000, "aaaa56789abcdef0"),
            g(2, true, 1_795_550_000, "bbbb56789abcdef0"),
            g(3, false, 1_795_650_000, "cccc56789abcdef0"),
        ];
        insta::assert_snapshot!(render_history(&a, &kept, false));
        let doc = history("web1", "blog", &a[3..], &kept[1..], true, false).stdout;
        crate::report::json::assert_valid("history", &doc);
        insta::assert_snapshot!("history_json", doc);
    }

    #[test]
    fn a_time_past_year_9999_is_shown_as_the_number_it_is() {
        assert_eq!(rfc3339(LAST_RFC3339), "9999-12-31T23:59:59Z");
        assert_eq!(rfc3339(u64::MAX), format!("{} (not a time)", u64::MAX));
        let a = [Attempt {
            at: LAST_RFC3339 + 1,
            hash: "h".into(),
            result: "rebuilt".into(),
            images: "-".into(),
            generation: None,
            detail: String::new(),
        }];
        assert!(render_history(&a, &[], false).contains("253402300800 (not a time)"));
        // in a document: no time at all
        let doc = history("h", "s", &a, &[], true, false).stdout;
        crate::report::json::assert_valid("history", &doc);
        let v: serde_json::Value = serde_json::from_str(&doc).unwrap();
        assert!(v["history"][0]["finished_at"].is_null());
        assert_eq!(v["history"][0]["images"], serde_json::json!([]));
    }

    #[test]
    fn images_are_a_list_of_services_and_their_image() {
        let list = |s: &str| serde_json::to_value(images_json(s)).unwrap();
        assert_eq!(
            list("app=sha256:1,db=sha256:2"),
            serde_json::json!([
                {"service": "app", "image": "sha256:1"},
                {"service": "db", "image": "sha256:2"}
            ])
        );
        assert_eq!(list("-"), serde_json::json!([]));
        assert_eq!(list(""), serde_json::json!([]));
        assert_eq!(
            list("sha256:9"),
            serde_json::json!([{"service": null, "image": "sha256:9"}])
        );
    }

    #[test]
    fn a_kept_failed_attempt_is_a_line_then_its_output() {
        let kept = FailedAttempt {
            attempt: attempt(
                1_795_600_000,
                "cccc56789abcdef0",
                "rolled_back",
                Some(2),
                "not healthy: app(exited:1)",
            ),
            output: vec![
                "#5 [app 2/3] RUN make".into(),
                "app-1  | panic: config not found".into(),
            ],
        };
        let text = logs("web1", "blog", Some(&kept), false);
        assert_eq!(text.stderr, "");
        insta::assert_snapshot!("logs_text", text.stdout);
        let doc = logs("web1", "blog", Some(&kept), true).stdout;
        crate::report::json::assert_valid("logs", &doc);
        insta::assert_snapshot!("logs_json", doc);
    }
}
