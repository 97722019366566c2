//! The commands on one stack of one host: `rbuild history HOST STACK`,
//! `rbuild logs HOST STACK` and `rbuild rollback HOST STACK [--to GEN]`.
//! Same seam, same remote script.

use std::time::Instant;

use super::Outcome;
use crate::cli::Command;
use crate::config::Settings;
use crate::error::Error;
use crate::exit::Exit;
use crate::host::{Conn, Connect, HostError, World};
use crate::remote::{self, Event};
use crate::report::output::Output;
use crate::report::{self, Action, Progress, rows};

/// Run a command on one stack. An unknown host or stack is a usage error
/// (exit 2, nothing touched); a host that fails, a failure (exit 1).
pub async fn run(cmd: Command, settings: Settings, world: World) -> Result<Outcome, Error> {
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
            Ok(Outcome {
                output: Output::History {
                    host: host.clone(),
                    stack: stack.clone(),
                    attempts: answer.attempts,
                    generations: answer.generations,
                },
                exit: Exit::Success,
            })
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
            Ok(Outcome {
                output: Output::Logs {
                    host: host.clone(),
                    stack: stack.clone(),
                    kept,
                },
                exit: Exit::Success,
            })
        }
        Command::Rollback { to, .. } => {
            // a rollback takes a while (up, the health gate): its steps are
            // shown as a fleet run's are
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            let monitor = tokio::spawn(report::progress::run(
                rx,
                report::progress::Style::of_stderr(settings.quiet, settings.verbose),
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
            Ok(Outcome {
                output: Output::Rollback {
                    row,
                    elapsed: started.elapsed(),
                },
                exit,
            })
        }
    }
}
