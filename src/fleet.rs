//! The executor: every selected host, a bounded number at once. Per host,
//! one remote command checks every stack (reading state files only, no
//! docker CLI); a second one ships and rebuilds what is due. A failed host
//! becomes rows in the summary, never an abort of the others.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::sync::{mpsc::UnboundedSender, watch};

use crate::config::{Mode, Settings};
use crate::decide::{self, Reason};
use crate::host::{self, Conn, HostError, ssh};
use crate::inventory::{Host, Stack};
use crate::remote::{self, ApplyStack, Event, StackState};
use crate::report::{Action, Progress, Row};
use crate::stack::{self, Contents};

/// Hashed stack directories, shared by every host that runs them.
pub type Hashed = HashMap<PathBuf, Arc<Contents>>;

/// Hash every distinct stack directory once, before any host is touched.
pub fn hash_stacks(hosts: &[Host]) -> Result<Hashed, stack::StackError> {
    let mut out = Hashed::new();
    for h in hosts {
        for s in &h.stacks {
            let dir = stack_dir(s);
            if let std::collections::hash_map::Entry::Vacant(e) = out.entry(dir) {
                let c = stack::read(e.key())?;
                e.insert(Arc::new(c));
            }
        }
    }
    Ok(out)
}

fn stack_dir(s: &Stack) -> PathBuf {
    s.compose_file
        .parent()
        .map(|p| p.to_path_buf())
        .unwrap_or_default()
}

/// Payloads by the stacks (name, directory) they carry.
type PayloadCache = std::sync::Mutex<HashMap<Vec<(String, PathBuf)>, Arc<Vec<u8>>>>;

/// What every host task shares.
struct Ctx {
    settings: Arc<Settings>,
    hashed: Arc<Hashed>,
    ssh: ssh::SshSettings,
    tx: UnboundedSender<Progress>,
    /// Payloads already built, by the set of stack directories they carry.
    payloads: PayloadCache,
}

/// Run every host; returns one row per stack per host, in inventory order.
pub async fn run(
    settings: Arc<Settings>,
    hashed: Arc<Hashed>,
    ssh: ssh::SshSettings,
    tx: UnboundedSender<Progress>,
    cancel: watch::Receiver<bool>,
) -> Vec<Row> {
    let _ = tx.send(Progress::Start {
        hosts: settings.hosts.len(),
    });
    let ctx = Arc::new(Ctx {
        settings: settings.clone(),
        hashed,
        ssh,
        tx,
        payloads: Default::default(),
    });
    let tasks = settings.hosts.iter().cloned().enumerate().map(|(i, h)| {
        let ctx = ctx.clone();
        let cancel = cancel.clone();
        async move {
            let rows = if *cancel.borrow() {
                interrupted_rows(&h)
            } else {
                // each host on its own task: a panic or a slow host stays its own
                let ctx2 = ctx.clone();
                let h2 = h.clone();
                match tokio::spawn(async move { run_host(&ctx2, &h2).await }).await {
                    Ok(rows) => rows,
                    Err(e) => {
                        failed_rows(&h, Reason::HostFailed, format!("internal error: {e}"), None)
                    }
                }
            };
            for r in &rows {
                if r.reason == Reason::HostFailed || r.reason == Reason::Interrupted {
                    let _ = ctx.tx.send(Progress::Result {
                        row: r.clone(),
                        log: vec![],
                    });
                }
            }
            let _ = ctx.tx.send(Progress::HostDone {
                host: h.name.clone(),
            });
            (i, rows)
        }
    });
    let mut done: Vec<(usize, Vec<Row>)> = futures::stream::iter(tasks)
        .buffer_unordered(settings.concurrency)
        .collect()
        .await;
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().flat_map(|(_, rows)| rows).collect()
}

fn interrupted_rows(h: &Host) -> Vec<Row> {
    h.stacks
        .iter()
        .map(|s| Row {
            host: h.name.clone(),
            stack: s.name.clone(),
            action: Action::Skipped,
            reason: Reason::Interrupted,
            duration: Duration::ZERO,
            error: None,
            hint: None,
        })
        .collect()
}

fn failed_rows(h: &Host, reason: Reason, error: String, hint: Option<&str>) -> Vec<Row> {
    h.stacks
        .iter()
        .map(|s| Row {
            host: h.name.clone(),
            stack: s.name.clone(),
            action: Action::Failed,
            reason,
            duration: Duration::ZERO,
            error: Some(error.clone()),
            hint: hint.map(str::to_owned),
        })
        .collect()
}

fn host_error_rows(h: &Host, e: &HostError, started: Instant) -> Vec<Row> {
    let mut rows = failed_rows(h, Reason::HostFailed, e.to_string(), e.hint());
    for r in &mut rows {
        r.duration = started.elapsed();
    }
    rows
}

/// A remote run that did not speak the protocol: say what it printed.
fn protocol_error(out: &host::Output) -> String {
    if let Some(Event::Fatal { text }) =
        out.events.iter().find(|e| matches!(e, Event::Fatal { .. }))
    {
        return text.clone();
    }
    let mut msg = match out.code {
        Some(c) => format!("the remote script exited with status {c}"),
        None => "the connection was lost while the remote script ran".to_owned(),
    };
    if !out.stderr.trim().is_empty() {
        msg.push_str(": ");
        msg.push_str(&out.stderr.trim().replace('\n', " / "));
    }
    msg
}

async fn run_host(ctx: &Ctx, h: &Host) -> Vec<Row> {
    let started = Instant::now();
    let st = &ctx.settings;
    let conn = match st.mode {
        Mode::Local => Conn::Local,
        Mode::Fleet => match ssh::connect(h, &ctx.ssh).await {
            Ok(c) => Conn::Ssh(c),
            Err(e) => return host_error_rows(h, &e, started),
        },
    };
    let rows = work(ctx, h, &conn, started).await;
    conn.close().await;
    rows
}

async fn work(ctx: &Ctx, h: &Host, conn: &Conn, started: Instant) -> Vec<Row> {
    let st = &ctx.settings;
    let names: Vec<&str> = h.stacks.iter().map(|s| s.name.as_str()).collect();

    // 1. check: one command, state files only
    let out = match conn
        .run(
            &remote::check_args(h.state_dir.as_deref(), &names),
            None,
            &mut |_| {},
        )
        .await
    {
        Ok(o) => o,
        Err(e) => return host_error_rows(h, &e, started),
    };
    let Some(now) = out.events.iter().find_map(|e| match e {
        Event::Hello { now } => Some(*now),
        _ => None,
    }) else {
        let mut rows = failed_rows(h, Reason::HostFailed, protocol_error(&out), None);
        rows.iter_mut().for_each(|r| r.duration = started.elapsed());
        return rows;
    };
    let states: HashMap<&str, Option<&StackState>> = out
        .events
        .iter()
        .filter_map(|e| match e {
            Event::State { stack, state } => Some((stack.as_str(), state.as_ref())),
            _ => None,
        })
        .collect();
    let checked = started.elapsed();

    // 2. decide, purely
    let mut rows: Vec<Option<Row>> = vec![None; h.stacks.len()];
    let mut due: Vec<(usize, Reason, bool)> = Vec::new(); // index, reason, ship
    for (i, s) in h.stacks.iter().enumerate() {
        let c = &ctx.hashed[&stack_dir(s)];
        let state = states.get(s.name.as_str()).copied().flatten();
        let d = decide::decide(&decide::Input {
            force: st.force,
            hash: &c.hash,
            state,
            now,
            build_period: st.build_period(s),
        });
        let row = |action, reason, error: Option<String>| Row {
            host: h.name.clone(),
            stack: s.name.clone(),
            action,
            reason,
            duration: checked,
            error,
            hint: None,
        };
        if !d.rebuild {
            rows[i] = Some(row(Action::Skipped, d.reason, None));
        } else if let Some(pid) = state.and_then(|s| s.locked_by.as_deref()) {
            let mut r = row(
                Action::Failed,
                Reason::Locked,
                Some(format!(
                    "another rbuild run (pid {pid} on the host) holds the lock of this stack ({})",
                    d.reason.as_str()
                )),
            );
            r.hint = Some(
                "wait for it to finish; a lock whose holder is gone is taken over by itself".into(),
            );
            rows[i] = Some(r);
        } else if st.dry_run {
            rows[i] = Some(row(Action::WouldRebuild, d.reason, None));
        } else {
            let ship = st.mode == Mode::Fleet
                && state.and_then(|s| s.hash.as_deref()) != Some(c.hash.as_str());
            due.push((i, d.reason, ship));
        }
    }
    for r in rows.iter().flatten() {
        let _ = ctx.tx.send(Progress::Result {
            row: r.clone(),
            log: vec![],
        });
    }

    // 3. ship and rebuild what is due: one more command
    if !due.is_empty() {
        let results = apply(ctx, h, conn, &due).await;
        for ((i, _, _), row) in due.iter().zip(results) {
            rows[*i] = Some(row);
        }
    }
    rows.into_iter()
        .map(|r| r.expect("every stack has a row"))
        .collect()
}

/// The payload carrying these stacks, built once per distinct set.
fn payload_for(ctx: &Ctx, stacks: &[&Stack]) -> Result<Arc<Vec<u8>>, stack::StackError> {
    let key: Vec<(String, PathBuf)> = stacks
        .iter()
        .map(|s| (s.name.clone(), stack_dir(s)))
        .collect();
    if let Some(p) = ctx.payloads.lock().expect("not poisoned").get(&key) {
        return Ok(p.clone());
    }
    let parts: Vec<(&str, &Contents)> = stacks
        .iter()
        .map(|s| (s.name.as_str(), ctx.hashed[&stack_dir(s)].as_ref()))
        .collect();
    let p = Arc::new(stack::payload(&parts)?);
    ctx.payloads
        .lock()
        .expect("not poisoned")
        .insert(key, p.clone());
    Ok(p)
}

async fn apply(ctx: &Ctx, h: &Host, conn: &Conn, due: &[(usize, Reason, bool)]) -> Vec<Row> {
    let st = &ctx.settings;
    let shipped: Vec<&Stack> = due
        .iter()
        .filter(|(_, _, ship)| *ship)
        .map(|(i, _, _)| &h.stacks[*i])
        .collect();
    let payload = if shipped.is_empty() {
        None
    } else {
        match payload_for(ctx, &shipped) {
            Ok(p) => Some(p),
            Err(e) => {
                return due
                    .iter()
                    .map(|(i, reason, _)| Row {
                        host: h.name.clone(),
                        stack: h.stacks[*i].name.clone(),
                        action: Action::Failed,
                        reason: *reason,
                        duration: Duration::ZERO,
                        error: Some(format!("cannot pack the stack: {e}")),
                        hint: None,
                    })
                    .collect();
            }
        }
    };
    let specs: Vec<ApplyStack> = due
        .iter()
        .map(|(i, _, ship)| {
            let s = &h.stacks[*i];
            ApplyStack {
                name: s.name.clone(),
                dir: s.remote_dir.clone().unwrap_or_default(),
                compose_file: s
                    .compose_file
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                shipped: *ship,
                up_timeout: st.up_timeout(s),
                hash: ctx.hashed[&stack_dir(s)].hash.clone(),
            }
        })
        .collect();
    let args = remote::apply_args(
        h.state_dir.as_deref(),
        h.compose.as_arg(),
        st.remove_images,
        payload.is_some(),
        &specs,
    );

    // Per-stack timing and logs, gathered as events stream in.
    let mut mark = Instant::now();
    let mut durations: HashMap<String, Duration> = HashMap::new();
    let mut logs: HashMap<String, Vec<String>> = HashMap::new();
    let tx = ctx.tx.clone();
    let host_name = h.name.clone();
    let mut on_event = |e: &Event| match e {
        Event::Step { stack, step } => {
            let _ = tx.send(Progress::Step {
                host: host_name.clone(),
                stack: stack.clone(),
                step: step.clone(),
            });
        }
        Event::Note { stack, text } => {
            let _ = tx.send(Progress::Note {
                host: host_name.clone(),
                stack: stack.clone(),
                text: text.clone(),
            });
        }
        Event::Log { stack, text } => logs.entry(stack.clone()).or_default().push(text.clone()),
        Event::Done { stack, .. } => {
            durations.insert(stack.clone(), mark.elapsed());
            mark = Instant::now();
        }
        _ => {}
    };
    let out = conn.run(&args, payload, &mut on_event).await;
    let (events, lost) = match out {
        Ok(o) => {
            let lost = protocol_error(&o);
            (o.events, lost)
        }
        Err(e) => (vec![], e.to_string()),
    };
    due.iter()
        .map(|(i, reason, _)| {
            let s = &h.stacks[*i];
            let done = events.iter().find_map(|e| match e {
                Event::Done {
                    stack,
                    result,
                    detail,
                } if *stack == s.name => Some((result.as_str(), detail.as_str())),
                _ => None,
            });
            let mut row = Row {
                host: h.name.clone(),
                stack: s.name.clone(),
                action: Action::Failed,
                reason: *reason,
                duration: durations.get(&s.name).copied().unwrap_or_default(),
                error: None,
                hint: None,
            };
            match done {
                Some(("rebuilt", _)) => row.action = Action::Rebuilt,
                Some(("rolled_back", detail)) => {
                    row.action = Action::RolledBack;
                    row.error = Some(format!("{detail}; rolled back to the previous images"));
                }
                Some(("locked", pid)) => {
                    row.reason = Reason::Locked;
                    row.error = Some(format!(
                        "another rbuild run (pid {pid} on the host) holds the lock of this stack"
                    ));
                }
                Some((_, detail)) => row.error = Some(detail.to_owned()),
                None => {
                    row.error = Some(format!(
                        "no result: {lost}; a rebuild may still be running on the host (it holds the stack's lock)"
                    ))
                }
            }
            let log = logs.remove(&s.name).unwrap_or_default();
            let _ = ctx.tx.send(Progress::Result {
                row: row.clone(),
                log,
            });
            row
        })
        .collect()
}
