//! The executor: every selected host, a bounded number at once. Per host,
//! one remote command checks every stack (reading state files only, no
//! docker CLI); a second one ships and rebuilds what is due. A failed host
//! becomes rows in the summary, never an abort of the others.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc::UnboundedSender, watch};

use crate::config::{Mode, Settings};
use crate::decide::{self, Reason};
use crate::host::{self, Conn, HostError, ssh};
use crate::inventory::{Host, Stack};
use crate::remote::{self, ApplyStack, CheckStack, Event, StackState};
use crate::report::{Action, Progress, Row};
use crate::rollout::{Clearance, Coordinator, Outcome, Policy};
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
    /// Hosts being connected to or worked on at once (`-j`). A host waiting
    /// for its turn in a rollout holds no slot and no connection.
    slots: Arc<Semaphore>,
    rollout: Coordinator,
    cancel: watch::Receiver<bool>,
}

impl Ctx {
    /// A slot, or `None` once Ctrl-C was pressed.
    async fn slot(&self) -> Option<OwnedSemaphorePermit> {
        let mut cancel = self.cancel.clone();
        if *cancel.borrow_and_update() {
            return None;
        }
        tokio::select! {
            p = self.slots.clone().acquire_owned() => p.ok().filter(|_| !*self.cancel.borrow()),
            Ok(_) = cancel.wait_for(|c| *c) => None,
        }
    }

    async fn connect(&self, h: &Host) -> Result<Conn, HostError> {
        match self.settings.mode {
            Mode::Local => Ok(Conn::Local),
            Mode::Fleet => ssh::connect(h, &self.ssh).map(|c| Conn::Ssh(Box::new(c))),
        }
    }
}

/// The rollout coordinator for these hosts: each stack name with its policy
/// and how many hosts run it.
fn coordinator(hosts: &[Host]) -> Coordinator {
    let mut by_name: HashMap<&str, (Policy, usize)> = HashMap::new();
    for s in hosts.iter().flat_map(|h| &h.stacks) {
        by_name.entry(&s.name).or_insert((s.rollout, 0)).1 += 1;
    }
    Coordinator::new(
        by_name
            .into_iter()
            .map(|(n, (p, total))| (n.to_owned(), p, total)),
    )
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
        slots: Arc::new(Semaphore::new(settings.concurrency)),
        rollout: coordinator(&settings.hosts),
        cancel,
    });
    // Hosts start in inventory order, each on its own task once it has a
    // slot; after Ctrl-C the rest do not start.
    let mut tasks = Vec::with_capacity(settings.hosts.len());
    for h in settings.hosts.iter().cloned() {
        let slot = ctx.slot().await;
        let ctx = ctx.clone();
        tasks.push(tokio::spawn(async move {
            let rows = match slot {
                None => interrupted_rows(&h),
                Some(slot) => {
                    let (ctx2, h2) = (ctx.clone(), h.clone());
                    // a panic stays with its host
                    match tokio::spawn(async move { run_host(&ctx2, &h2, slot).await }).await {
                        Ok(rows) => rows,
                        Err(e) => failed_rows(
                            &h,
                            Reason::HostFailed,
                            format!("internal error: {e}"),
                            None,
                        ),
                    }
                }
            };
            for r in &rows {
                if matches!(
                    r.reason,
                    Reason::HostFailed | Reason::Interrupted | Reason::RolloutHalted
                ) {
                    let _ = ctx.tx.send(Progress::Result {
                        row: r.clone(),
                        log: vec![],
                    });
                }
            }
            let _ = ctx.tx.send(Progress::HostDone {
                host: h.name.clone(),
            });
            rows
        }));
    }
    let mut rows = Vec::new();
    for t in tasks {
        rows.extend(t.await.expect("a host task reports its own panics"));
    }
    rows
}

fn interrupted_rows(h: &Host) -> Vec<Row> {
    h.stacks.iter().map(|s| interrupted_row(h, s)).collect()
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

async fn run_host(ctx: &Ctx, h: &Host, slot: OwnedSemaphorePermit) -> Vec<Row> {
    let started = Instant::now();
    let mut conn = match ctx.connect(h).await {
        Ok(c) => c,
        Err(e) => return host_error_rows(h, &e, started),
    };
    let (mut rows, due) = match check(ctx, h, &mut conn, started).await {
        Ok(checked) => checked,
        Err(rows) => {
            conn.close().await;
            return rows;
        }
    };
    if due.is_empty() {
        conn.close().await;
        return settle(rows);
    }

    let names: Vec<String> = due.iter().map(|d| h.stacks[d.0].name.clone()).collect();
    let (mut conn, _slot, start, halted) = match ctx.rollout.try_start(&names) {
        Clearance::Go { start, halted } => (conn, slot, start, halted),
        Clearance::Wait => {
            // a waiting host lets go of its connection and its slot
            conn.close().await;
            drop(slot);
            match wait_turn(ctx, h, &names).await {
                Turn::Go(conn, slot, start, halted) => (conn, slot, start, halted),
                Turn::AllHalted(halted) => {
                    halt_rows(ctx, h, &due, &halted, &mut rows);
                    return settle(rows);
                }
                Turn::Failed(None) => {
                    for (i, _, _) in &due {
                        rows[*i] = Some(interrupted_row(h, &h.stacks[*i]));
                    }
                    return settle(rows);
                }
                Turn::Failed(Some(e)) => {
                    for ((i, _, _), row) in due.iter().zip(unreached_rows(ctx, h, &due, &e)) {
                        rows[*i] = Some(row);
                    }
                    return settle(rows);
                }
            }
        }
    };
    halt_rows(ctx, h, &due, &halted, &mut rows);
    let go: Vec<Due> = due
        .iter()
        .filter(|d| start.contains(&h.stacks[d.0].name))
        .copied()
        .collect();
    if !go.is_empty() {
        let (results, outcomes): (Vec<Row>, Vec<(String, Outcome)>) =
            match apply(ctx, h, &mut conn, &go).await {
                Ok(results) => {
                    let outcomes = results
                        .iter()
                        .map(|r| {
                            let o = match (r.action, r.reason) {
                                (Action::Rebuilt, _) => Outcome::Passed,
                                (_, Reason::Locked) => Outcome::Neutral,
                                _ => Outcome::Failed,
                            };
                            (r.stack.clone(), o)
                        })
                        .collect();
                    (results, outcomes)
                }
                // nothing started: that says nothing of the new version
                Err(e) => {
                    let rows = unreached_rows(ctx, h, &go, &e);
                    let outcomes = rows
                        .iter()
                        .map(|r| (r.stack.clone(), Outcome::Neutral))
                        .collect();
                    (rows, outcomes)
                }
            };
        ctx.rollout.finish(&outcomes);
        for ((i, _, _), row) in go.iter().zip(results) {
            rows[*i] = Some(row);
        }
    }
    conn.close().await;
    settle(rows)
}

/// Every stack of a host has its row by now.
fn settle(rows: Vec<Option<Row>>) -> Vec<Row> {
    rows.into_iter().map(|r| r.expect("decided")).collect()
}

/// How waiting for a host's turn in a rollout ended.
enum Turn {
    /// Start these stacks (the others halted), with a new connection.
    Go(Conn, OwnedSemaphorePermit, Vec<String>, Vec<String>),
    /// Every due stack's rollout halted: nothing to start.
    AllHalted(Vec<String>),
    /// Ctrl-C (`None`), or the host could not be reached again.
    Failed(Option<HostError>),
}

/// Wait until the host's due stacks may start, then take a slot and
/// connect again.
async fn wait_turn(ctx: &Ctx, h: &Host, names: &[String]) -> Turn {
    let mut cancel = ctx.cancel.clone();
    let (start, halted) = tokio::select! {
        c = ctx.rollout.start(names) => c,
        Ok(_) = cancel.wait_for(|c| *c) => return Turn::Failed(None),
    };
    if start.is_empty() {
        return Turn::AllHalted(halted);
    }
    let resumed = match ctx.slot().await {
        None => Err(None),
        Some(slot) => ctx.connect(h).await.map(|c| (c, slot)).map_err(Some),
    };
    match resumed {
        Ok((conn, slot)) => Turn::Go(conn, slot, start, halted),
        Err(e) => {
            // the slots taken in the rollout say nothing of the new version
            let neutral: Vec<_> = start
                .iter()
                .map(|s| (s.clone(), Outcome::Neutral))
                .collect();
            ctx.rollout.finish(&neutral);
            Turn::Failed(e)
        }
    }
}

/// Rows for the due stacks whose rollout halted.
fn halt_rows(ctx: &Ctx, h: &Host, due: &[Due], halted: &[String], rows: &mut [Option<Row>]) {
    for (i, reason, _) in due {
        let s = &h.stacks[*i];
        if halted.contains(&s.name) {
            let why = ctx.rollout.halt_reason(&s.name).unwrap_or_default();
            rows[*i] = Some(Row {
                action: Action::Skipped,
                reason: Reason::RolloutHalted,
                error: Some(format!(
                    "not rebuilt ({}): the rollout of `{}` halted, {why}",
                    reason.as_str(),
                    s.name
                )),
                ..interrupted_row(h, s)
            });
        }
    }
}

/// Rows for due stacks whose host could not be reached for their rebuild,
/// each shown as it settles.
fn unreached_rows(ctx: &Ctx, h: &Host, due: &[Due], e: &HostError) -> Vec<Row> {
    due.iter()
        .map(|(i, reason, _)| {
            let row = Row {
                action: Action::Failed,
                reason: *reason,
                error: Some(format!("connecting for the rebuild: {e}")),
                hint: e.hint().map(str::to_owned),
                ..interrupted_row(h, &h.stacks[*i])
            };
            let _ = ctx.tx.send(Progress::Result {
                row: row.clone(),
                log: vec![],
            });
            row
        })
        .collect()
}

fn interrupted_row(h: &Host, s: &Stack) -> Row {
    Row {
        host: h.name.clone(),
        stack: s.name.clone(),
        action: Action::Skipped,
        reason: Reason::Interrupted,
        duration: Duration::ZERO,
        error: None,
        hint: None,
    }
}

/// A stack that is due: its index on the host, why, and whether its files
/// must be shipped.
type Due = (usize, Reason, bool);

/// Check every stack of a host with one command and decide. Returns a row
/// for each stack that is settled and the list of due ones, or the rows of
/// a failed host.
async fn check(
    ctx: &Ctx,
    h: &Host,
    conn: &mut Conn,
    started: Instant,
) -> Result<(Vec<Option<Row>>, Vec<Due>), Vec<Row>> {
    let st = &ctx.settings;
    let stacks: Vec<CheckStack> = h
        .stacks
        .iter()
        .map(|s| CheckStack {
            name: &s.name,
            hash: &ctx.hashed[&stack_dir(s)].hash,
            // forced: every stack is due
            period: if st.force { 0 } else { st.build_period(s) },
        })
        .collect();
    // a dry run never applies: nothing to hold the connection for
    let hold = !st.dry_run;
    let out = conn
        .run(
            &remote::check_args(h.state_dir.as_deref(), hold, &stacks),
            None,
            &mut |_| {},
        )
        .await
        .map_err(|e| host_error_rows(h, &e, started))?;
    // the whole answer, `end` included: a connection lost half-way must not
    // make the stacks it did not report look never built
    let ended = out.events.iter().any(|e| matches!(e, Event::End { .. }));
    let hello = out.events.iter().find_map(|e| match e {
        Event::Hello { now } => Some(*now),
        _ => None,
    });
    let (Some(now), true) = (hello, ended) else {
        let mut rows = failed_rows(h, Reason::HostFailed, protocol_error(&out), None);
        rows.iter_mut().for_each(|r| r.duration = started.elapsed());
        return Err(rows);
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

    let mut rows: Vec<Option<Row>> = vec![None; h.stacks.len()];
    let mut due: Vec<Due> = Vec::new();
    for (i, s) in h.stacks.iter().enumerate() {
        let hash = stacks[i].hash;
        let state = states.get(s.name.as_str()).copied().flatten();
        let d = decide::decide(&decide::Input {
            force: st.force,
            hash,
            state,
            now,
            build_period: st.build_period(s),
        });
        let row = |action, reason, error: Option<String>, hint: Option<&str>| Row {
            host: h.name.clone(),
            stack: s.name.clone(),
            action,
            reason,
            duration: checked,
            error,
            hint: hint.map(str::to_owned),
        };
        if d.reason == Reason::PreviousFailure {
            let ago = now.saturating_sub(state.map_or(0, |s| s.failed_at));
            let runs = if state.is_some_and(|s| s.hash.is_some()) {
                "the previous version still runs"
            } else {
                "no version runs (it never built)"
            };
            rows[i] = Some(row(
                Action::Skipped,
                d.reason,
                Some(format!(
                    "these files failed their rebuild {} ago; {runs}",
                    crate::report::human_age(ago)
                )),
                Some(
                    "fix the stack (any change is retried), or `--force-rebuild` to retry as it is",
                ),
            ));
        } else if !d.rebuild {
            rows[i] = Some(row(Action::Skipped, d.reason, None, None));
        } else if let Some(pid) = state.and_then(|s| s.locked_by.as_deref()) {
            rows[i] = Some(row(
                Action::Failed,
                Reason::Locked,
                Some(format!(
                    "another rbuild run (pid {pid} on the host) holds the lock of this stack ({})",
                    d.reason.as_str()
                )),
                Some("wait for it to finish; a lock whose holder is gone is taken over by itself"),
            ));
        } else if st.dry_run {
            rows[i] = Some(row(Action::WouldRebuild, d.reason, None, None));
        } else {
            let ship =
                st.mode == Mode::Fleet && state.and_then(|s| s.hash.as_deref()) != Some(hash);
            due.push((i, d.reason, ship));
        }
    }
    for r in rows.iter().flatten() {
        let _ = ctx.tx.send(Progress::Result {
            row: r.clone(),
            log: vec![],
        });
    }
    Ok((rows, due))
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

/// Ship and rebuild the due stacks of a host: a row for each, or `Err` when
/// the host could not be reached (nothing started).
async fn apply(ctx: &Ctx, h: &Host, conn: &mut Conn, due: &[Due]) -> Result<Vec<Row>, HostError> {
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
                return Ok(due
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
                    .collect());
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
                compose_file: s.compose_file_name(),
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
        Err(e @ (HostError::Connect { .. } | HostError::ConnectTimeout(_))) => return Err(e),
        Err(e) => (vec![], e.to_string()),
    };
    Ok(due
        .iter()
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
        .collect())
}
