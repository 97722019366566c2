//! Commands on one stack of one host: `rbuild history HOST STACK` and
//! `rbuild rollback HOST STACK`. Same seam, same remote script.

use std::time::{Duration, Instant, UNIX_EPOCH};

use comfy_table::{Table, presets};
use serde::Serialize;

use crate::cli::Command;
use crate::config::Settings;
use crate::decide::Reason;
use crate::exit::Exit;
use crate::host::{Conn, HostError, ssh};
use crate::remote::{self, Attempt, Event};
use crate::report::{self, Action, Row};

#[derive(Serialize)]
struct HistoryDoc<'a> {
    version: u32,
    host: &'a str,
    stack: &'a str,
    history: Vec<AttemptJson<'a>>,
}

#[derive(Serialize)]
struct AttemptJson<'a> {
    at: u64,
    hash: &'a str,
    result: &'a str,
    images: &'a str,
    detail: &'a str,
}

/// Render a stack's history as a table (pure).
pub fn render_history(attempts: &[Attempt], unicode: bool) -> String {
    let mut t = Table::new();
    t.load_style(if unicode {
        presets::UTF8_FULL_CONDENSED
    } else {
        presets::ASCII_FULL_CONDENSED
    });
    t.set_header(["TIME (UTC)", "HASH", "RESULT", "IMAGES", "DETAIL"]);
    for a in attempts {
        let time = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(a.at));
        // `service=sha256:0123…` as `service=0123456789ab`, one a line
        let images = a
            .images
            .split(',')
            .map(|p| match p.split_once('=') {
                Some((svc, id)) => {
                    let id = id.strip_prefix("sha256:").unwrap_or(id);
                    format!("{svc}={}", id.get(..12).unwrap_or(id))
                }
                None => p.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("\n");
        t.add_row([
            time.to_string().as_str(),
            a.hash.get(..12).unwrap_or(&a.hash),
            a.result.as_str(),
            images.as_str(),
            a.detail.as_str(),
        ]);
    }
    format!("{t}\n")
}

/// Run a command on one stack. `Err` for usage errors (unknown host or
/// stack): exit 2, nothing touched.
pub async fn run(cmd: Command, settings: Settings, ssh: ssh::SshSettings) -> anyhow::Result<Exit> {
    let (Command::History { host, stack } | Command::Rollback { host, stack }) = &cmd;
    let Some(h) = settings.hosts.iter().find(|h| h.name == *host) else {
        eprintln!("error: host `{host}` is not in the inventory");
        return Ok(Exit::Usage);
    };
    let Some(s) = h.stacks.iter().find(|s| s.name == *stack) else {
        let names: Vec<&str> = h.stacks.iter().map(|s| s.name.as_str()).collect();
        eprintln!(
            "error: host `{host}` runs no stack `{stack}`\nhint: its stacks: {}",
            names.join(", ")
        );
        return Ok(Exit::Usage);
    };
    let started = Instant::now();
    let failed = |e: HostError| {
        eprintln!("error: {host}: {e}");
        if let Some(hint) = e.hint() {
            eprintln!("hint: {hint}");
        }
        Ok(Exit::Failure)
    };
    let mut conn = match ssh::connect(h, &ssh) {
        Ok(c) => Conn::Ssh(Box::new(c)),
        Err(e) => return failed(e),
    };
    let args = match &cmd {
        Command::History { .. } => remote::history_args(h.state_dir.as_deref(), &s.name),
        Command::Rollback { .. } => remote::rollback_args(
            h.state_dir.as_deref(),
            h.compose.as_arg(),
            &s.name,
            s.remote_dir.as_deref().unwrap_or(""),
            &s.compose_file_name(),
            settings.up_timeout(s),
        ),
    };
    let out = conn.run(&args, None, &mut |_| {}).await;
    conn.close().await;
    let out = match out {
        Ok(o) => o,
        Err(e) => return failed(e),
    };
    if let Some(Event::Fatal { text }) =
        out.events.iter().find(|e| matches!(e, Event::Fatal { .. }))
    {
        eprintln!("error: {host}: {text}");
        return Ok(Exit::Failure);
    }
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stdout());
    match cmd {
        Command::History { .. } => {
            let attempts: Vec<Attempt> = out
                .events
                .into_iter()
                .filter_map(|e| match e {
                    Event::History { attempt, .. } => Some(attempt),
                    _ => None,
                })
                .collect();
            if settings.json {
                let doc = HistoryDoc {
                    version: 1,
                    host,
                    stack,
                    history: attempts
                        .iter()
                        .map(|a| AttemptJson {
                            at: a.at,
                            hash: &a.hash,
                            result: &a.result,
                            images: &a.images,
                            detail: &a.detail,
                        })
                        .collect(),
                };
                println!("{}", serde_json::to_string_pretty(&doc)?);
            } else if attempts.is_empty() {
                eprintln!("{host} {stack}: no rebuild recorded yet");
            } else {
                print!("{}", render_history(&attempts, terminal));
            }
            Ok(Exit::Success)
        }
        Command::Rollback { .. } => {
            let done = out.events.iter().find_map(|e| match e {
                Event::Done { result, detail, .. } => Some((result.clone(), detail.clone())),
                _ => None,
            });
            let mut row = Row {
                host: host.clone(),
                stack: stack.clone(),
                action: Action::Failed,
                reason: Reason::Manual,
                duration: started.elapsed(),
                error: None,
                hint: None,
            };
            match done {
                Some((r, _)) if r == "rolled_back" => row.action = Action::RolledBack,
                Some((r, pid)) if r == "locked" => {
                    row.reason = Reason::Locked;
                    row.error = Some(format!("another rbuild run (pid {pid}) holds the lock"));
                }
                Some((_, detail)) => row.error = Some(detail),
                None => row.error = Some("no result from the host".into()),
            }
            // a rollback asked for is a success (a rebuild's is not)
            let exit = if row.action == Action::RolledBack {
                Exit::Success
            } else {
                Exit::Failure
            };
            let rows = [row];
            if settings.json {
                print!("{}", report::json::render(&rows, exit.code()));
            } else {
                print!(
                    "{}",
                    report::table::render(&rows, started.elapsed(), terminal, None)
                );
            }
            Ok(exit)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_table() {
        let a = [Attempt {
            at: 1_795_600_000,
            hash: "0123456789abcdef".into(),
            result: "rolled_back".into(),
            images: "app=sha256:1,db=sha256:2".into(),
            detail: "not healthy: app(unhealthy)".into(),
        }];
        insta::assert_snapshot!(render_history(&a, false));
    }
}
