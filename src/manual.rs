//! Commands on one stack of one host: `rbuild history HOST STACK` and
//! `rbuild rollback HOST STACK`. Same seam, same remote script.

use std::time::{Duration, Instant, UNIX_EPOCH};

use serde::Serialize;

use crate::cli::Command;
use crate::config::Settings;
use crate::exit::Exit;
use crate::host::{Conn, Connect, HostError, World};
use crate::remote::Event;
use crate::remote::{self, Attempt, Generation};
use crate::report::{self, Action, Progress, rows};
use crate::run::{Error, print_out};

#[derive(Serialize)]
struct HistoryDoc<'a> {
    version: u32,
    host: &'a str,
    stack: &'a str,
    history: Vec<AttemptJson<'a>>,
    /// The kept generations, oldest first (empty: the host counts none yet).
    generations: Vec<GenerationJson<'a>>,
}

#[derive(Serialize)]
struct AttemptJson<'a> {
    at: u64,
    hash: &'a str,
    result: &'a str,
    images: &'a str,
    /// The generation that runs after the attempt (`null`: none, or a line
    /// older than generations).
    generation: Option<u64>,
    detail: &'a str,
}

impl<'a> AttemptJson<'a> {
    fn of(a: &'a Attempt) -> AttemptJson<'a> {
        AttemptJson {
            at: a.at,
            hash: &a.hash,
            result: &a.result,
            images: &a.images,
            generation: a.generation,
            detail: &a.detail,
        }
    }
}

#[derive(Serialize)]
struct GenerationJson<'a> {
    generation: u64,
    running: bool,
    built_at: u64,
    hash: &'a str,
    images: &'a str,
}

/// The last second RFC 3339 can write (9999-12-31T23:59:59Z).
const LAST_RFC3339: u64 = 253_402_300_799;

/// A host time as RFC 3339, or as the number it is when it is no time
/// RFC 3339 can write (a host can record anything).
pub(crate) fn rfc3339(at: u64) -> String {
    match UNIX_EPOCH.checked_add(Duration::from_secs(at)) {
        Some(t) if at <= LAST_RFC3339 => humantime::format_rfc3339_seconds(t).to_string(),
        _ => format!("{at} (not a time)"),
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

/// Render a stack's history as a table (pure): its attempts, each with the
/// generation that ran after it (`*` marks the one running now), then the
/// generations whose images are kept on the host, if it names any.
pub fn render_history(attempts: &[Attempt], generations: &[Generation], unicode: bool) -> String {
    let running = generations.iter().find(|g| g.running).map(|g| g.number);
    let mut t = crate::report::table::new_table(unicode, None);
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
    let mut g = crate::report::table::new_table(unicode, None);
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

/// Run a command on one stack. An unknown host or stack is a usage error
/// (exit 2, nothing touched); a host that fails, a failure (exit 1).
pub async fn run(cmd: Command, settings: Settings, world: World) -> Result<Exit, Error> {
    let (target, stack) = cmd.target();
    // local mode: the one stack of the one host, this machine
    let (host, stack) = match stack {
        Some(stack) => (target.to_owned(), stack.to_owned()),
        None => {
            let h = &settings.hosts[0];
            (h.name.clone(), h.stacks[0].name.clone())
        }
    };
    let (host, stack) = (&host, &stack);
    let Some(h) = settings.hosts.iter().find(|h| h.name == *host) else {
        return Err(Error::usage(format!(
            "host `{host}` is not in the inventory"
        )));
    };
    let Some(s) = h.stacks.iter().find(|s| s.name == *stack) else {
        let names: Vec<&str> = h.stacks.iter().map(|s| s.name.as_str()).collect();
        return Err(Error::usage(format!(
            "host `{host}` runs no stack `{stack}`\nhint: its stacks: {}",
            names.join(", ")
        )));
    };
    let started = Instant::now();
    let begun = std::time::SystemTime::now();
    let failed = |e: HostError| {
        let hint = e.hint().map(|h| format!("\nhint: {h}")).unwrap_or_default();
        Error::failed(format!("{host}: {e}{hint}"))
    };
    let mut conn = world.connect(h).await.map_err(failed)?;
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stdout());
    match cmd {
        Command::History { .. } => {
            let answer = conn
                .history(remote::History {
                    state_dir: h.state_dir.clone(),
                    name: s.name.clone(),
                })
                .await;
            conn.close().await;
            let answer = answer.map_err(failed)?;
            let attempts = &answer.attempts;
            if settings.json {
                let doc = HistoryDoc {
                    version: 1,
                    host,
                    stack,
                    history: attempts.iter().map(AttemptJson::of).collect(),
                    generations: answer
                        .generations
                        .iter()
                        .map(|g| GenerationJson {
                            generation: g.number,
                            running: g.running,
                            built_at: g.built_at,
                            hash: &g.hash,
                            images: &g.images,
                        })
                        .collect(),
                };
                let mut text = serde_json::to_string_pretty(&doc).expect("serializable");
                text.push('\n');
                print_out(&text)?;
            } else if attempts.is_empty() {
                eprintln!("{host} {stack}: no rebuild recorded yet");
            } else {
                print_out(&render_history(attempts, &answer.generations, terminal))?;
            }
            Ok(Exit::Success)
        }
        Command::Logs { .. } => {
            let kept = conn
                .logs(remote::Logs {
                    state_dir: h.state_dir.clone(),
                    name: s.name.clone(),
                })
                .await;
            conn.close().await;
            let kept = kept.map_err(failed)?;
            if settings.json {
                let doc = LogsDoc {
                    version: 1,
                    host,
                    stack,
                    attempt: kept.as_ref().map(|k| AttemptJson::of(&k.attempt)),
                    output: kept.as_ref().map_or(&[][..], |k| &k.output[..]),
                };
                let mut text = serde_json::to_string_pretty(&doc).expect("serializable");
                text.push('\n');
                print_out(&text)?;
            } else if let Some(k) = kept {
                print_out(&render_logs(host, stack, &k))?;
            } else {
                eprintln!(
                    "{host} {stack}: no failed attempt is kept (none since rbuild began keeping them)"
                );
            }
            Ok(Exit::Success)
        }
        Command::Rollback { to, .. } => {
            // a rollback takes a while (up, the health gate): its steps are
            // shown as a fleet run's are
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            let monitor = tokio::spawn(report::progress::run(
                rx,
                report::progress::Style {
                    terminal: std::io::IsTerminal::is_terminal(&std::io::stderr()),
                    quiet: settings.quiet,
                    verbose: settings.verbose,
                },
            ));
            let _ = tx.send(Progress::Start { hosts: 1 });
            let _ = tx.send(Progress::HostStart { host: host.clone() });
            let steps = tx.clone();
            let mut on_event = move |e: &Event| {
                if let Event::Step { stack, step } = e {
                    let _ = steps.send(Progress::Step {
                        host: host.clone(),
                        stack: stack.clone(),
                        step: step.clone(),
                    });
                }
            };
            let result = conn
                .rollback(
                    remote::Rollback {
                        state_dir: h.state_dir.clone(),
                        compose: h.compose,
                        place: crate::fleet::place(s),
                        up_timeout: settings.up_timeout(s),
                        settle: settings.settle(s),
                        to,
                    },
                    &mut on_event,
                )
                .await;
            conn.close().await;
            let _ = tx.send(Progress::HostDone { host: host.clone() });
            // the monitor ends once every sender is gone
            drop((on_event, tx));
            let _ = monitor.await;
            let result = result.map_err(failed)?;
            let mut row = rows::rolled_back_by_hand(host, stack, &result, started.elapsed());
            row.detail.started = Some(begun);
            row.detail.finished = Some(std::time::SystemTime::now());
            if row.action == Action::Failed {
                row.detail.output = result.log.clone();
            }
            // a rollback asked for is a success (a rebuild's is not)
            let exit = if row.action == Action::RolledBack {
                Exit::Success
            } else {
                Exit::Failure
            };
            let rows = [row];
            let out = if settings.json {
                report::json::render(&rows, exit.code())
            } else {
                report::table::render(
                    &rows,
                    started.elapsed(),
                    terminal,
                    report::table::stdout_width(terminal),
                    report::color_stdout(),
                )
            };
            print_out(&out)?;
            Ok(exit)
        }
    }
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
pub fn render_logs(host: &str, stack: &str, k: &remote::FailedAttempt) -> String {
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
        };
        let kept = [
            g(1, false, 1_795_500_000, "aaaa56789abcdef0"),
            g(2, true, 1_795_550_000, "bbbb56789abcdef0"),
            g(3, false, 1_795_650_000, "cccc56789abcdef0"),
        ];
        insta::assert_snapshot!(render_history(&a, &kept, false));
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
    }
}
