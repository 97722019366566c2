//! The executor: every selected host, a bounded number at once. Per host it
//! reads: connect, check (one remote command for all its stacks, reading
//! state files only), plan ([`crate::plan`]), wait for its turn where a
//! rollout holds it back, apply (a second command that ships and rebuilds
//! what is due), report. A failed host becomes rows in the summary, never
//! an abort of the others.
//!
//! It runs against any [`Connect`]: the real world ([`crate::host::World`])
//! or, in its unit tests, a scripted one.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc::UnboundedSender, watch};

use crate::config::{Mode, Settings};
use crate::decide::Reason;
use crate::host::{Conn, Connect, HostError};
use crate::inventory::{Host, Stack};
use crate::plan::{self, Verdict};
use crate::remote::{
    Announced, Apply, ApplyAnswer, ApplyStack, Check, CheckStack, Event, Place, RemoteError,
    Results, StackMode, StackOptions, Status,
};
use crate::report::{Action, Progress, Row, rows};
use crate::rollout::{Clearance, Coordinator, Outcome, Policy};
use crate::ship::Shipments;
use crate::status::{self, StackStatus};

/// What every host task shares.
struct Ctx<C> {
    settings: Arc<Settings>,
    shipments: Arc<Shipments>,
    world: Arc<C>,
    tx: UnboundedSender<Progress>,
    /// Hosts being connected to or worked on at once (`-j`). A host waiting
    /// for its turn in a rollout holds no slot and no connection.
    slots: Arc<Semaphore>,
    rollout: Coordinator,
    cancel: watch::Receiver<bool>,
}

impl<C: Connect> Ctx<C> {
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

    /// Show a row as it settles (with the tail of its docker output).
    fn report(&self, row: &Row, log: Vec<String>) {
        let _ = self.tx.send(Progress::Result {
            row: row.clone(),
            log,
        });
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

fn names(h: &Host) -> impl Iterator<Item = &str> {
    h.stacks.iter().map(|s| s.name.as_str())
}

/// Run every host; returns one row per stack per host, in inventory order.
pub async fn run<C: Connect>(
    settings: Arc<Settings>,
    shipments: Arc<Shipments>,
    world: Arc<C>,
    tx: UnboundedSender<Progress>,
    cancel: watch::Receiver<bool>,
) -> Vec<Row> {
    let _ = tx.send(Progress::Start {
        hosts: settings.hosts.len(),
    });
    let ctx = Arc::new(Ctx {
        settings: settings.clone(),
        shipments,
        world,
        tx,
        slots: Arc::new(Semaphore::new(settings.concurrency)),
        rollout: coordinator(&settings.hosts),
        cancel,
    });
    let work = ctx.clone();
    each(
        &settings.hosts,
        move |_| {
            let ctx = work.clone();
            async move { ctx.slot().await }
        },
        move |h, slot| {
            let ctx = ctx.clone();
            async move {
                let rows = match slot {
                    None => {
                        let rows: Vec<Row> =
                            names(&h).map(|s| rows::interrupted(&h.name, s)).collect();
                        rows.iter().for_each(|r| ctx.report(r, vec![]));
                        rows
                    }
                    Some(slot) => {
                        let _ = ctx.tx.send(Progress::HostStart {
                            host: h.name.clone(),
                        });
                        let begun = SystemTime::now();
                        let (ctx2, h2) = (ctx.clone(), h.clone());
                        // a panic stays with its host
                        let mut rows =
                            match tokio::spawn(async move { run_host(&ctx2, &h2, slot).await })
                                .await
                            {
                                Ok(rows) => rows,
                                Err(e) => {
                                    let rows = rows::internal_error(&h.name, names(&h), &e);
                                    rows.iter().for_each(|r| ctx.report(r, vec![]));
                                    rows
                                }
                            };
                        detail(&ctx, &h, &mut rows, begun);
                        rows
                    }
                };
                let _ = ctx.tx.send(Progress::HostDone {
                    host: h.name.clone(),
                });
                rows
            }
        },
    )
    .await
}

/// The one executor: each host on a task of its own once `slot` gives it
/// one (`None`: no more hosts start, after Ctrl-C), in inventory order;
/// `work` turns a host and its slot into its results (a panic stays with
/// its host: `work` catches its own). The results, in inventory order.
async fn each<T, S, SF, W, WF>(hosts: &[Host], slot: S, work: W) -> Vec<T>
where
    T: Send + 'static,
    S: Fn(&Host) -> SF,
    SF: Future<Output = Option<OwnedSemaphorePermit>>,
    W: Fn(Host, Option<OwnedSemaphorePermit>) -> WF,
    WF: Future<Output = Vec<T>> + Send + 'static,
{
    let mut tasks = Vec::with_capacity(hosts.len());
    for h in hosts {
        let slot = slot(h).await;
        tasks.push(tokio::spawn(work(h.clone(), slot)));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.extend(t.await.expect("a host's work reports its own panics"));
    }
    out
}

/// `rbuild status`: every host asked at once (`-j` at a time), one
/// command each; its stacks assessed ([`crate::status::assess`]).
pub async fn status<C: Connect>(
    settings: Arc<Settings>,
    shipments: Arc<Shipments>,
    world: Arc<C>,
) -> Vec<StackStatus> {
    let slots = Arc::new(Semaphore::new(settings.concurrency));
    let hosts = settings.hosts.clone();
    each(
        &hosts,
        |_| {
            let slots = slots.clone();
            async move { slots.acquire_owned().await.ok() }
        },
        |h, slot| {
            let (settings, shipments, world) = (settings.clone(), shipments.clone(), world.clone());
            async move {
                let _slot = slot;
                let h2 = h.clone();
                tokio::spawn(async move { host_status(&settings, &shipments, &*world, &h2).await })
                    .await
                    .unwrap_or_else(|e| {
                        let e = HostError::Run {
                            message: format!("internal error: {e}"),
                        };
                        h.stacks
                            .iter()
                            .map(|s| status::unreachable(&h.name, &s.name, &e, None))
                            .collect()
                    })
            }
        },
    )
    .await
}

/// Ask one host about its stacks.
async fn host_status<C: Connect>(
    settings: &Settings,
    shipments: &Shipments,
    world: &C,
    h: &Host,
) -> Vec<StackStatus> {
    let hash = |s: &Stack| shipments.hash_of(s).ok().map(str::to_owned);
    let failed = |e: &HostError| -> Vec<StackStatus> {
        h.stacks
            .iter()
            .map(|s| status::unreachable(&h.name, &s.name, e, e.hint()))
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
                status::assess(
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

/// What scripts get besides a host's rows: when each started and ended
/// (those the apply timed keep theirs), the hash of its files.
fn detail<C>(ctx: &Ctx<C>, h: &Host, rows: &mut [Row], begun: SystemTime) {
    let now = SystemTime::now();
    for r in rows {
        r.detail.started.get_or_insert(begun);
        r.detail.finished.get_or_insert(now);
        r.detail.hash = h
            .stacks
            .iter()
            .find(|s| s.name == r.stack)
            .and_then(|s| ctx.shipments.hash_of(s).ok())
            .map(str::to_owned);
    }
}

/// Where the inventory puts `s` on its host, as the remote script names
/// it (an apply's stack, a rollback).
pub fn place(s: &Stack) -> Place {
    Place {
        name: s.name.clone(),
        dir: s.remote_dir.clone(),
        compose_files: s.compose_files.clone(),
        profiles: s.profiles.clone(),
    }
}

/// The hooks and probe of `s`, as the remote script runs them: a probe is
/// a command line, an HTTP one `probe_url URL [TEXT]` (a function of the
/// script).
fn hooks(s: &Stack) -> crate::remote::call::Hooks {
    use crate::inventory::Probe;
    crate::remote::call::Hooks {
        before: s.hooks.before.clone(),
        after: s.hooks.after.clone(),
        probe: s.hooks.probe.as_ref().map(|p| match p {
            Probe::Http { url, expect } => {
                let words = ["probe_url", url.as_str()]
                    .into_iter()
                    .chain(expect.as_deref());
                shlex::try_join(words).expect("the inventory refuses a NUL in a probe")
            }
            Probe::Command(c) => c.clone(),
        }),
    }
}

/// How long the controller waits for an apply: every bound the host keeps
/// for each stack (build and pull, up, the gate and a rollback, its looks
/// at the engine), the payload at a slow 256 KiB/s, and two minutes more.
fn apply_bound(stacks: impl Iterator<Item = (u64, u64)>, payload: u64) -> Duration {
    let per_stack: u64 = stacks.map(|(build, up)| 2 * build + 3 * up + 4 * 120).sum();
    Duration::from_secs(per_stack + payload / (256 * 1024) + 120)
}

/// A stack that is due: its index on the host, why, and what the apply
/// does with it.
#[derive(Debug, Clone, Copy)]
struct Due {
    index: usize,
    reason: Reason,
    mode: StackMode,
}

impl Due {
    /// A rebuild of a new version, which a rollout coordinates; a start of
    /// what is there is none.
    fn rebuilds(&self) -> bool {
        !matches!(self.mode, StackMode::Start | StackMode::Verify)
    }
}

/// The rows of a host as they settle, one per stack.
struct HostRows(Vec<Option<Row>>);

impl HostRows {
    fn set(&mut self, index: usize, row: Row) {
        self.0[index] = Some(row);
    }

    fn is_set(&self, index: usize) -> bool {
        self.0[index].is_some()
    }

    fn all_set(&self) -> bool {
        self.0.iter().all(Option::is_some)
    }

    /// Every stack of a host has its row by now.
    fn settle(self) -> Vec<Row> {
        self.0.into_iter().map(|r| r.expect("decided")).collect()
    }
}

async fn run_host<C: Connect>(ctx: &Ctx<C>, h: &Host, slot: OwnedSemaphorePermit) -> Vec<Row> {
    let started = Instant::now();
    let mut rows = HostRows(vec![None; h.stacks.len()]);
    // a stack whose files cannot be read fails alone, before anything
    for (index, s) in h.stacks.iter().enumerate() {
        if let Err(e) = ctx.shipments.hash_of(s) {
            let row = rows::unreadable(&h.name, &s.name, e);
            ctx.report(&row, vec![]);
            rows.set(index, row);
        }
    }
    if rows.all_set() {
        return rows.settle();
    }
    let failed = |mut rows: HostRows, e: &HostError| {
        for (index, s) in h.stacks.iter().enumerate() {
            if !rows.is_set(index) {
                let row = rows::host_failed(&h.name, &s.name, e, e.hint(), started.elapsed());
                ctx.report(&row, vec![]);
                rows.set(index, row);
            }
        }
        rows.settle()
    };
    let mut conn = match ctx.world.connect(h).await {
        Ok(c) => c,
        Err(e) => return failed(rows, &e),
    };
    let due = match check(ctx, h, &mut conn, started, &mut rows).await {
        Ok(due) => due,
        Err(e) => {
            conn.close().await;
            return failed(rows, &e);
        }
    };
    if due.is_empty() {
        // `--prune-image-cache` prunes on every run, as the original script
        // did: an apply of no stack, over the same connection
        if ctx.settings.prune_image_cache && !ctx.settings.dry_run {
            let _ = apply(ctx, h, &mut conn, &[]).await;
        }
        conn.close().await;
        return rows.settle();
    }

    // a rollout coordinates the rebuilds; a stack that is only started goes
    // along with the host's turn (or at once)
    let due_names: Vec<String> = due
        .iter()
        .filter(|d| d.rebuilds())
        .map(|d| h.stacks[d.index].name.clone())
        .collect();
    let starts = due.iter().any(|d| !d.rebuilds());
    let clearance = if due_names.is_empty() {
        Clearance::Go {
            start: vec![],
            halted: vec![],
        }
    } else {
        ctx.rollout.try_start(&due_names)
    };
    let (mut conn, _slot, start, halted) = match clearance {
        Clearance::Go { start, halted } => (conn, slot, start, halted),
        Clearance::Wait => {
            // a waiting host lets go of its connection and its slot
            conn.close().await;
            drop(slot);
            match wait_turn(ctx, h, &due_names, starts).await {
                Turn::Go(conn, slot, start, halted) => (conn, slot, start, halted),
                Turn::AllHalted(halted) => {
                    halt(ctx, h, &due, &halted, &mut rows);
                    return rows.settle();
                }
                Turn::Failed(e) => {
                    for d in &due {
                        let s = &h.stacks[d.index].name;
                        let row = match &e {
                            None => rows::interrupted(&h.name, s),
                            Some(e) => rows::unreached(&h.name, s, d.reason, e, e.hint()),
                        };
                        ctx.report(&row, vec![]);
                        rows.set(d.index, row);
                    }
                    return rows.settle();
                }
            }
        }
    };
    halt(ctx, h, &due, &halted, &mut rows);
    let go: Vec<Due> = due
        .iter()
        .filter(|d| !d.rebuilds() || start.contains(&h.stacks[d.index].name))
        .copied()
        .collect();
    if !go.is_empty() {
        let results = apply(ctx, h, &mut conn, &go).await;
        let outcomes: Vec<(String, Outcome)> = go
            .iter()
            .zip(&results)
            .filter(|(d, _)| d.rebuilds())
            .map(|(_, (r, reached))| {
                let o = match (reached, r.action, r.reason) {
                    // nothing started: that says nothing of the new version
                    (false, _, _) => Outcome::Neutral,
                    (_, Action::Rebuilt, _) => Outcome::Passed,
                    (_, _, Reason::Locked) => Outcome::Neutral,
                    _ => Outcome::Failed,
                };
                (r.stack.clone(), o)
            })
            .collect();
        ctx.rollout.finish(&outcomes);
        for (d, (row, _)) in go.iter().zip(results) {
            rows.set(d.index, row);
        }
    }
    conn.close().await;
    rows.settle()
}

/// How waiting for a host's turn in a rollout ended.
enum Turn<T> {
    /// Start these stacks (the others halted), with a new connection.
    Go(T, OwnedSemaphorePermit, Vec<String>, Vec<String>),
    /// Every due stack's rollout halted: nothing to start.
    AllHalted(Vec<String>),
    /// Ctrl-C (`None`), or the host could not be reached again.
    Failed(Option<HostError>),
}

/// Wait until the host's due stacks may start, then take a slot and
/// connect again (also when every rebuild halted but `starts`: stacks to
/// start go on).
async fn wait_turn<C: Connect>(
    ctx: &Ctx<C>,
    h: &Host,
    names: &[String],
    starts: bool,
) -> Turn<C::Conn> {
    let mut cancel = ctx.cancel.clone();
    let (start, halted) = tokio::select! {
        c = ctx.rollout.start(names) => c,
        Ok(_) = cancel.wait_for(|c| *c) => return Turn::Failed(None),
    };
    if start.is_empty() && !starts {
        return Turn::AllHalted(halted);
    }
    let resumed = match ctx.slot().await {
        None => Err(None),
        Some(slot) => ctx.world.connect(h).await.map(|c| (c, slot)).map_err(Some),
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
fn halt<C: Connect>(ctx: &Ctx<C>, h: &Host, due: &[Due], halted: &[String], rows: &mut HostRows) {
    for d in due {
        let s = &h.stacks[d.index];
        if halted.contains(&s.name) {
            let why = ctx.rollout.halt_reason(&s.name).unwrap_or_default();
            let row = rows::halted(&h.name, &s.name, d.reason, &why);
            ctx.report(&row, vec![]);
            rows.set(d.index, row);
        }
    }
}

/// Check every stack of a host with one command and plan. Returns a row
/// for each stack that is settled and the list of due ones. Stacks whose
/// row is set already are left out.
async fn check<C: Connect>(
    ctx: &Ctx<C>,
    h: &Host,
    conn: &mut C::Conn,
    started: Instant,
    rows: &mut HostRows,
) -> Result<Vec<Due>, HostError> {
    let st = &ctx.settings;
    let open: Vec<(usize, &Stack, &str)> = h
        .stacks
        .iter()
        .enumerate()
        .filter(|(index, _)| !rows.is_set(*index))
        .map(|(index, s)| (index, s, ctx.shipments.hash_of(s).expect("readable")))
        .collect();
    let call = Check {
        state_dir: h.state_dir.clone(),
        // a dry run never applies: nothing to hold the connection for
        hold: !st.dry_run,
        plan: st.dry_run,
        stacks: open
            .iter()
            .map(|(_, s, hash)| CheckStack {
                name: s.name.clone(),
                hash: hash.to_string(),
                // forced: every stack is due
                period: if st.force { 0 } else { st.build_period(s) },
            })
            .collect(),
    };
    let answer = conn.check(call).await?;
    let checked = started.elapsed();
    let opts = plan::Options {
        force: st.force,
        dry_run: st.dry_run,
        ships: st.mode == Mode::Fleet,
        lock_wait: st.lock_wait > 0,
    };
    let mut due = Vec::new();
    for (index, s, hash) in open {
        let input = plan::Input {
            hash,
            build_period: st.build_period(s),
            recorded: &answer.stacks[&s.name],
        };
        match plan::plan(&opts, answer.now, &input) {
            Verdict::Rebuild { reason, ship } => {
                if reason == Reason::TimeInFuture {
                    tracing::warn!(
                        "{} {}: its last build or failed attempt is recorded at a time in the host's future (the host's clock went back, or was wrong then): rebuilding",
                        h.name,
                        s.name
                    );
                }
                due.push(Due {
                    index,
                    reason,
                    mode: if ship {
                        StackMode::Ship
                    } else {
                        StackMode::Build
                    },
                })
            }
            Verdict::Start { cut_off } => due.push(Due {
                index,
                reason: plan::start_reason(cut_off.as_deref()),
                mode: StackMode::Start,
            }),
            Verdict::Verify => due.push(Due {
                index,
                reason: Reason::Restarted,
                mode: StackMode::Verify,
            }),
            v @ (Verdict::WouldRebuild(_) | Verdict::WouldStart { .. })
                if answer.cannot_rebuild.is_some() =>
            {
                let problem = answer.cannot_rebuild.as_ref().expect("checked");
                let due = match v {
                    Verdict::WouldRebuild(r) => r,
                    Verdict::WouldStart { cut_off } => plan::start_reason(cut_off.as_deref()),
                    _ => unreachable!("matched above"),
                };
                let row = rows::would_fail(&h.name, &s.name, due, problem, checked);
                ctx.report(&row, vec![]);
                rows.set(index, row);
            }
            v => {
                let mut row = rows::settled(&h.name, &s.name, &v, checked);
                if matches!(v, Verdict::WouldRebuild(_)) && st.mode == Mode::Fleet {
                    row.detail.plan = dry_plan(ctx, s, hash, &answer.stacks[&s.name]);
                }
                ctx.report(&row, vec![]);
                rows.set(index, row);
            }
        }
    }
    Ok(due)
}

/// A dry run's plan for a stack it would rebuild: its files and bytes, and
/// which of them differ from the build the host runs (by the tree this
/// controller remembered when it shipped that build).
fn dry_plan<C: Connect>(
    ctx: &Ctx<C>,
    s: &Stack,
    hash: &str,
    recorded: &crate::remote::event::Recorded,
) -> Option<crate::report::ShipPlan> {
    let tree = ctx.shipments.tree_of(s)?;
    let host_hash = match &recorded.state {
        Ok(Some(state)) => state.hash.clone(),
        _ => None,
    };
    let ship = host_hash.as_deref() != Some(hash);
    let (files, bytes) = tree.size();
    let changed = match &host_hash {
        // never built there: every file is new
        None => Some(tree.changes_from(&crate::trees::Tree::default())),
        Some(h) => ctx
            .shipments
            .shipped_tree(h)
            .map(|old| tree.changes_from(&old)),
    };
    Some(crate::report::ShipPlan {
        ship,
        files,
        bytes,
        changed,
    })
}

/// Ship and rebuild the due stacks of a host: a row for each, and whether
/// the host was reached for it.
async fn apply<C: Connect>(
    ctx: &Ctx<C>,
    h: &Host,
    conn: &mut C::Conn,
    due: &[Due],
) -> Vec<(Row, bool)> {
    let st = &ctx.settings;
    let stack = |d: &Due| &h.stacks[d.index];
    let shipped: Vec<&Stack> = due
        .iter()
        .filter(|d| d.mode == StackMode::Ship)
        .map(stack)
        .collect();
    let payload = if shipped.is_empty() {
        None
    } else {
        match ctx.shipments.payload(&shipped).await {
            Ok(p) => Some(p),
            Err(e) => {
                return due
                    .iter()
                    .map(|d| {
                        let row = rows::pack_failed(&h.name, &stack(d).name, d.reason, &e);
                        ctx.report(&row, vec![]);
                        (row, true)
                    })
                    .collect();
            }
        }
    };
    let call = Apply {
        state_dir: h.state_dir.clone(),
        compose: h.compose,
        remove_images: st.remove_images,
        // the build cache is kept bounded: after a rebuild, what is older
        // than the shortest build period of the stacks goes (a period of 0
        // would take it all, which only `--prune-image-cache` asks for)
        prune_cache: if st.prune_image_cache {
            Some(0)
        } else {
            due.iter()
                .map(|d| st.build_period(stack(d)))
                .min()
                .filter(|p| *p > 0)
        },
        payload: payload.as_ref().map(|p| Announced {
            size: p.size,
            sha256: p.sha256.clone(),
        }),
        stacks: due
            .iter()
            .map(|d| {
                let s = stack(d);
                ApplyStack {
                    place: place(s),
                    mode: d.mode,
                    adopt: s.adopt,
                    up_timeout: st.up_timeout(s),
                    settle: st.settle(s),
                    build_timeout: st.build_timeout(s),
                    hash: ctx.shipments.hash_of(s).expect("due: readable").to_owned(),
                    options: StackOptions {
                        dir_mode: s.dir_mode,
                        dir_group: s.dir_group.clone(),
                        zero_downtime: s.zero_downtime.clone(),
                        lock_wait: st.lock_wait,
                        one_shots: s.one_shots.clone(),
                        mounts: s.mounts.clone(),
                        watch: st.watch(s),
                        keep: Some(s.keep_generations()),
                    },
                    hooks: hooks(s),
                }
            })
            .collect(),
    };

    // The host bounds every step of its own; the controller waits for all
    // of them and then some, and gives up after that.
    let bound = apply_bound(
        due.iter()
            .map(|d| (st.build_timeout(stack(d)), st.up_timeout(stack(d)))),
        call.payload.as_ref().map_or(0, |p| p.size),
    ) + Duration::from_secs(st.lock_wait * due.len() as u64);
    // Per-stack timing, as the events stream in; steps and notes shown
    // live; the results as they come (for a host given up on).
    let mut mark = Instant::now();
    let mut durations: HashMap<String, Duration> = HashMap::new();
    let mut since = SystemTime::now();
    let mut times: HashMap<String, (SystemTime, SystemTime)> = HashMap::new();
    let mut seen = Results::default();
    let tx = ctx.tx.clone();
    let host = h.name.clone();
    let mut on_event = |e: &Event| {
        seen.push(e);
        match e {
            Event::Step { stack, step } => {
                let _ = tx.send(Progress::Step {
                    host: host.clone(),
                    stack: stack.clone(),
                    step: step.clone(),
                });
            }
            Event::Note { stack, text } => {
                let _ = tx.send(Progress::Note {
                    host: host.clone(),
                    stack: stack.clone(),
                    text: text.clone(),
                });
            }
            Event::Done { stack, .. } => {
                durations.insert(stack.clone(), mark.elapsed());
                mark = Instant::now();
                let now = SystemTime::now();
                times.insert(stack.clone(), (since, now));
                since = now;
            }
            _ => {}
        }
    };
    let answer = match tokio::time::timeout(bound, conn.apply(call, payload, &mut on_event)).await {
        Ok(a) => a,
        Err(_) => Ok(ApplyAnswer {
            results: seen.done,
            cut: Some(RemoteError::TimedOut(bound.as_secs())),
        }),
    };
    due.iter()
        .map(|d| {
            let s = &stack(d).name;
            let (row, log, reached) = match &answer {
                Err(e) => (
                    rows::unreached(&h.name, s, d.reason, &e, e.hint()),
                    vec![],
                    false,
                ),
                Ok(a) => {
                    let result = a.results.get(s);
                    let took = durations.get(s).copied().unwrap_or_default();
                    let mut row = rows::applied(&h.name, s, d.reason, result, a.cut.as_ref(), took);
                    let log = result.map(|r| r.log.clone()).unwrap_or_default();
                    if matches!(row.action, Action::Failed | Action::RolledBack) {
                        row.detail.output = log.clone();
                    }
                    if let Some((started, finished)) = times.get(s) {
                        row.detail.started = Some(*started);
                        row.detail.finished = Some(*finished);
                    }
                    (row, log, true)
                }
            };
            ctx.report(&row, log);
            (row, reached)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    //! The executor against a scripted host: rows for hosts that cannot be
    //! reached, locked stacks, halted rollouts, cut connections and Ctrl-C,
    //! without sshd or docker.

    use std::collections::HashMap;
    use std::sync::Mutex;

    use super::*;
    use crate::host::Payload;
    use crate::inventory::ComposePref;
    use crate::remote::{Call, Outcome as Ended, Recorded, StackState, Transcript};
    use crate::rollout::Policy;

    const NOW: u64 = 1_800_000_000;

    /// How one scripted host behaves.
    #[derive(Clone, Default)]
    struct Behaviour {
        /// Connecting fails.
        down: bool,
        /// What the check finds, by stack (default: never built).
        recorded: HashMap<String, Recorded>,
        /// How each stack's apply ends (default: rebuilt).
        ends: HashMap<String, Ended>,
        /// The connection is lost after this many stacks of an apply.
        cut_after: Option<usize>,
        /// ... or, with this, the host goes silent then, forever.
        hang: bool,
    }

    #[derive(Default)]
    struct World {
        hosts: HashMap<String, Behaviour>,
        /// Every call made: (host, command, stacks).
        calls: Mutex<Vec<(String, &'static str, Vec<String>)>>,
    }

    impl World {
        fn calls(&self, host: &str, command: &str) -> Vec<Vec<String>> {
            self.calls
                .lock()
                .unwrap()
                .iter()
                .filter(|(h, c, _)| h == host && *c == command)
                .map(|(_, _, s)| s.clone())
                .collect()
        }
    }

    struct Scripted {
        host: String,
        world: Arc<World>,
    }

    impl Connect for Arc<World> {
        type Conn = Scripted;

        async fn connect(&self, host: &Host) -> Result<Scripted, HostError> {
            if self.hosts.get(&host.name).is_some_and(|b| b.down) {
                return Err(HostError::Connect {
                    message: "Connection refused".into(),
                    hint: Some("is sshd running?"),
                });
            }
            Ok(Scripted {
                host: host.name.clone(),
                world: self.clone(),
            })
        }
    }

    impl Conn for Scripted {
        async fn run(
            &mut self,
            call: &Call,
            _payload: Option<Payload>,
            on_event: &mut (dyn FnMut(&Event) + Send),
        ) -> Result<Transcript, HostError> {
            let b = self
                .world
                .hosts
                .get(&self.host)
                .cloned()
                .unwrap_or_default();
            let hello = Event::Hello {
                proto: crate::remote::PROTOCOL.to_string(),
                now: NOW,
            };
            let mut events = vec![hello];
            let mut code = Some(0);
            let stacks: Vec<String> = match call {
                Call::Check(c) => {
                    for s in &c.stacks {
                        let recorded = b.recorded.get(&s.name).cloned().unwrap_or(Recorded {
                            state: Ok(None),
                            locked_by: None,
                            running: None,
                            phase: None,
                            restarted: false,
                        });
                        events.push(Event::State {
                            stack: s.name.clone(),
                            recorded,
                        });
                    }
                    events.push(Event::End { hold: c.hold });
                    c.stacks.iter().map(|s| s.name.clone()).collect()
                }
                Call::Apply(a) => {
                    for (k, s) in a.stacks.iter().enumerate() {
                        if b.cut_after == Some(k) {
                            code = None;
                            if b.hang {
                                events.iter().for_each(&mut *on_event);
                                std::future::pending::<()>().await;
                            }
                            break;
                        }
                        events.push(Event::Step {
                            stack: s.place.name.clone(),
                            step: "build".into(),
                        });
                        events.push(Event::Done {
                            stack: s.place.name.clone(),
                            outcome: b.ends.get(&s.place.name).cloned().unwrap_or(Ended::Rebuilt),
                            detail: "scripted".into(),
                            cause: None,
                        });
                    }
                    a.stacks.iter().map(|s| s.place.name.clone()).collect()
                }
                Call::Rollback(_) | Call::History(_) | Call::Status(_) | Call::Logs(_) => {
                    unreachable!("not the executor's")
                }
            };
            self.world
                .calls
                .lock()
                .unwrap()
                .push((self.host.clone(), call.name(), stacks));
            events.iter().for_each(on_event);
            Ok(Transcript {
                events,
                code,
                stderr: String::new(),
            })
        }

        async fn close(self) {}
    }

    /// Hosts running the named stacks (compose files in `dir`).
    fn hosts(dir: &std::path::Path, spec: &[(&str, &[&str])], policy: Policy) -> Vec<Host> {
        spec.iter()
            .map(|(h, stacks)| Host {
                name: h.to_string(),
                address: h.to_string(),
                user: None,
                port: None,
                identity_file: None,
                ssh_options: Default::default(),
                state_dir: None,
                compose: ComposePref::Auto,
                connect_timeout: None,
                groups: vec![],
                tags: vec![],
                stacks: stacks
                    .iter()
                    .map(|s| {
                        let compose_file = dir.join(s).join("compose.yml");
                        std::fs::create_dir_all(compose_file.parent().unwrap()).unwrap();
                        std::fs::write(&compose_file, format!("# {s}\nservices: {{}}\n")).unwrap();
                        Stack {
                            name: s.to_string(),
                            root: dir.join(s),
                            compose_file,
                            compose_files: vec!["compose.yml".into()],
                            profiles: vec![],
                            data_dirs: vec![],
                            remote_dir: None,
                            keys: crate::inventory::Inheritable {
                                watch: Some(crate::inventory::Seconds(0)),
                                ..Default::default()
                            },
                            rollout: policy,
                            adopt: false,
                            dir_mode: None,
                            dir_group: None,
                            zero_downtime: vec![],
                            hooks: Default::default(),
                            one_shots: vec![],
                            mounts: vec![],
                            env: vec![],
                        }
                    })
                    .collect(),
            })
            .collect()
    }

    fn settings(hosts: Vec<Host>) -> Settings {
        Settings {
            mode: Mode::Fleet,
            hosts,
            force: false,
            dry_run: false,
            remove_images: false,
            prune_image_cache: false,
            build_period: None,
            up_timeout: None,
            build_timeout: None,
            settle: None,
            watch: None,
            concurrency: 4,
            json: false,
            metrics_file: None,
            lock_wait: 0,
            notify: None,
            quiet: true,
            verbose: 0,
            connect_timeout: Duration::from_secs(1),
            ssh_config: None,
            accept_new_host_keys: false,
        }
    }

    /// Run the executor; the rows, and every progress event it sent.
    async fn execute(
        settings: Settings,
        world: &Arc<World>,
        cancelled: bool,
    ) -> (Vec<Row>, Vec<Progress>) {
        let shipments = Arc::new(Shipments::hash(&settings.hosts, false));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let (cancel_tx, cancel_rx) = watch::channel(cancelled);
        let rows = run(
            Arc::new(settings),
            shipments,
            Arc::new(world.clone()),
            tx,
            cancel_rx,
        )
        .await;
        drop(cancel_tx);
        let mut events = vec![];
        while let Ok(e) = rx.try_recv() {
            events.push(e);
        }
        (rows, events)
    }

    fn summary(rows: &[Row]) -> Vec<(String, String, &'static str, &'static str)> {
        rows.iter()
            .map(|r| {
                (
                    r.host.clone(),
                    r.stack.clone(),
                    r.action.as_str(),
                    r.reason.as_str(),
                )
            })
            .collect()
    }

    fn row<'a>(rows: &'a [Row], host: &str, stack: &str) -> &'a Row {
        rows.iter()
            .find(|r| r.host == host && r.stack == stack)
            .unwrap()
    }

    /// Every row was shown once, as it settled.
    fn shown_once(rows: &[Row], events: &[Progress]) {
        let shown: Vec<&Row> = events
            .iter()
            .filter_map(|e| match e {
                Progress::Result { row, .. } => Some(row),
                _ => None,
            })
            .collect();
        assert_eq!(shown.len(), rows.len(), "{shown:?}");
        // the same row, up to what is stamped on it after it was shown
        // (its times and hash, for `--json`)
        let key = |r: &Row| {
            (
                r.host.clone(),
                r.stack.clone(),
                r.action,
                r.reason,
                r.error.clone(),
                r.hint.clone(),
            )
        };
        for r in rows {
            assert!(
                shown.iter().any(|s| key(s) == key(r)),
                "{r:?} not shown in {shown:?}"
            );
        }
    }

    fn up_to_date(dir: &std::path::Path, stack: &str) -> Recorded {
        let c = crate::stack::read(&dir.join(stack)).unwrap();
        Recorded {
            state: Ok(Some(StackState {
                hash: Some(c.hash),
                built_at: NOW - 10,
                last_result: Some("ok".into()),
                ..StackState::default()
            })),
            locked_by: None,
            running: Some(true),
            phase: None,
            restarted: false,
        }
    }

    #[tokio::test]
    async fn an_unreachable_host_is_its_rows_and_the_others_go_on() {
        let dir = tempfile::tempdir().unwrap();
        let hs = hosts(
            dir.path(),
            &[("h1", &["web", "db"]), ("h2", &["web"])],
            Policy::default(),
        );
        let mut w = World::default();
        w.hosts.insert(
            "h1".into(),
            Behaviour {
                down: true,
                ..Behaviour::default()
            },
        );
        let w = Arc::new(w);
        let (rows, events) = execute(settings(hs), &w, false).await;
        assert_eq!(
            summary(&rows),
            [
                ("h1".into(), "web".into(), "failed", "host_failed"),
                ("h1".into(), "db".into(), "failed", "host_failed"),
                ("h2".into(), "web".into(), "rebuilt", "first_build"),
            ]
        );
        let r = row(&rows, "h1", "db");
        assert_eq!(
            r.error.as_deref(),
            Some("cannot connect: Connection refused")
        );
        assert_eq!(r.hint.as_deref(), Some("is sshd running?"));
        shown_once(&rows, &events);
        assert_eq!(w.calls("h2", "apply"), [vec!["web".to_string()]]);
    }

    #[tokio::test]
    async fn a_locked_stack_is_not_applied_and_up_to_date_ones_stay_alone() {
        let dir = tempfile::tempdir().unwrap();
        let hs = hosts(
            dir.path(),
            &[("h1", &["web", "db", "cache"])],
            Policy::default(),
        );
        let mut b = Behaviour::default();
        b.recorded.insert(
            "web".into(),
            Recorded {
                state: Ok(None),
                locked_by: Some("4242".into()),
                running: None,
                phase: None,
                restarted: false,
            },
        );
        b.recorded
            .insert("cache".into(), up_to_date(dir.path(), "cache"));
        let mut w = World::default();
        w.hosts.insert("h1".into(), b);
        let w = Arc::new(w);
        let (rows, events) = execute(settings(hs), &w, false).await;
        assert_eq!(
            summary(&rows),
            [
                ("h1".into(), "web".into(), "failed", "locked"),
                ("h1".into(), "db".into(), "rebuilt", "first_build"),
                ("h1".into(), "cache".into(), "skipped", "up_to_date"),
            ]
        );
        assert!(
            row(&rows, "h1", "web")
                .error
                .as_deref()
                .unwrap()
                .contains("pid 4242"),
            "{rows:?}"
        );
        assert_eq!(w.calls("h1", "apply"), [vec!["db".to_string()]]);
        shown_once(&rows, &events);
    }

    #[tokio::test]
    async fn a_failed_canary_halts_the_rollout_on_hosts_not_started() {
        let dir = tempfile::tempdir().unwrap();
        let policy = Policy {
            canary: true,
            ..Policy::default()
        };
        let hs = hosts(
            dir.path(),
            &[("h1", &["web"]), ("h2", &["web"]), ("h3", &["web"])],
            policy,
        );
        let mut w = World::default();
        for h in ["h1", "h2", "h3"] {
            let mut b = Behaviour::default();
            b.ends.insert("web".into(), Ended::RolledBack);
            w.hosts.insert(h.into(), b);
        }
        let w = Arc::new(w);
        let (rows, events) = execute(settings(hs), &w, false).await;
        let canary: Vec<&Row> = rows
            .iter()
            .filter(|r| r.action == Action::RolledBack)
            .collect();
        assert_eq!(canary.len(), 1, "{rows:?}");
        for r in rows.iter().filter(|r| r.host != canary[0].host) {
            assert_eq!(
                (r.action, r.reason),
                (Action::Skipped, Reason::RolloutHalted)
            );
            assert_eq!(
                r.error.as_deref(),
                Some("not rebuilt (first_build): the rollout of `web` halted, its canary failed")
            );
            assert!(
                w.calls(&r.host, "apply").is_empty(),
                "{} was applied",
                r.host
            );
            assert_eq!(w.calls(&r.host, "check").len(), 1, "checked all the same");
        }
        shown_once(&rows, &events);
    }

    #[tokio::test]
    async fn a_connection_cut_mid_apply_leaves_the_rest_without_a_result() {
        let dir = tempfile::tempdir().unwrap();
        let hs = hosts(dir.path(), &[("h1", &["web", "db"])], Policy::default());
        let mut w = World::default();
        w.hosts.insert(
            "h1".into(),
            Behaviour {
                cut_after: Some(1),
                ..Behaviour::default()
            },
        );
        let w = Arc::new(w);
        let (rows, _) = execute(settings(hs), &w, false).await;
        assert_eq!(row(&rows, "h1", "web").action, Action::Rebuilt);
        let db = row(&rows, "h1", "db");
        assert_eq!((db.action, db.reason), (Action::Failed, Reason::FirstBuild));
        assert_eq!(
            db.error.as_deref(),
            Some(
                "no result: the connection was lost while the remote script ran; a rebuild may still be running on the host (it holds the stack's lock)"
            )
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_host_that_goes_silent_is_given_up_on_and_what_it_said_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let hs = hosts(
            dir.path(),
            &[("h1", &["web", "db"]), ("h2", &["web"])],
            Policy::default(),
        );
        let mut w = World::default();
        w.hosts.insert(
            "h1".into(),
            Behaviour {
                cut_after: Some(1),
                hang: true,
                ..Behaviour::default()
            },
        );
        let w = Arc::new(w);
        let (rows, events) = execute(settings(hs), &w, false).await;
        assert_eq!(row(&rows, "h1", "web").action, Action::Rebuilt, "{rows:?}");
        assert_eq!(row(&rows, "h2", "web").action, Action::Rebuilt, "{rows:?}");
        let db = row(&rows, "h1", "db");
        assert_eq!((db.action, db.reason), (Action::Failed, Reason::FirstBuild));
        // 2 stacks of 30 min builds and 60 s ups, and the slack
        let secs = 2 * (2 * 1800 + 3 * 60 + 4 * 120) + 120;
        assert_eq!(
            db.error.as_deref(),
            Some(
                format!(
                    "no result: the host gave no result within {secs}s; a rebuild may still be running on the host (it holds the stack's lock)"
                )
                .as_str()
            )
        );
        shown_once(&rows, &events);
    }

    #[tokio::test]
    async fn after_ctrl_c_no_host_starts() {
        let dir = tempfile::tempdir().unwrap();
        let hs = hosts(
            dir.path(),
            &[("h1", &["web"]), ("h2", &["web", "db"])],
            Policy::default(),
        );
        let w = Arc::new(World::default());
        let (rows, events) = execute(settings(hs), &w, true).await;
        assert!(
            rows.iter()
                .all(|r| (r.action, r.reason) == (Action::Skipped, Reason::Interrupted)),
            "{rows:?}"
        );
        assert_eq!(rows.len(), 3);
        assert!(w.calls.lock().unwrap().is_empty(), "nothing was contacted");
        shown_once(&rows, &events);
    }

    #[tokio::test]
    async fn a_dry_run_checks_and_applies_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let hs = hosts(dir.path(), &[("h1", &["web", "db"])], Policy::default());
        let mut b = Behaviour::default();
        b.recorded.insert("db".into(), up_to_date(dir.path(), "db"));
        let mut w = World::default();
        w.hosts.insert("h1".into(), b);
        let w = Arc::new(w);
        let mut s = settings(hs);
        s.dry_run = true;
        let (rows, _) = execute(s, &w, false).await;
        assert_eq!(
            summary(&rows),
            [
                ("h1".into(), "web".into(), "would_rebuild", "first_build"),
                ("h1".into(), "db".into(), "skipped", "up_to_date"),
            ]
        );
        assert!(w.calls("h1", "apply").is_empty());
    }

    #[tokio::test]
    async fn an_unreadable_stack_fails_alone() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let hs = hosts(
            dir.path(),
            &[("h1", &["web", "odd"]), ("h2", &["odd"])],
            Policy::default(),
        );
        std::fs::write(
            dir.path()
                .join("odd")
                .join(std::ffi::OsStr::from_bytes(b"caf\xe9")),
            "x",
        )
        .unwrap();
        let w = Arc::new(World::default());
        let (rows, events) = execute(settings(hs), &w, false).await;
        assert_eq!(
            summary(&rows),
            [
                ("h1".into(), "web".into(), "rebuilt", "first_build"),
                ("h1".into(), "odd".into(), "failed", "unreadable"),
                ("h2".into(), "odd".into(), "failed", "unreadable"),
            ]
        );
        assert!(
            row(&rows, "h2", "odd")
                .error
                .as_deref()
                .unwrap()
                .contains("not UTF-8"),
            "{rows:?}"
        );
        // h1 checked and rebuilt only what it could read; h2 was not contacted
        assert_eq!(w.calls("h1", "check"), [vec!["web".to_string()]]);
        assert!(w.calls("h2", "check").is_empty());
        shown_once(&rows, &events);
    }

    #[test]
    fn a_stack_s_place_and_hooks_are_the_script_s_words() {
        use crate::inventory::{Hooks, Probe};
        let dir = tempfile::tempdir().unwrap();
        let mut s = hosts(dir.path(), &[("h1", &["web"])], Policy::default())
            .remove(0)
            .stacks
            .remove(0);
        s.remote_dir = Some("/srv/web".into());
        s.profiles = vec!["jobs".into()];
        assert_eq!(
            place(&s),
            Place {
                name: "web".into(),
                dir: Some("/srv/web".into()),
                compose_files: vec!["compose.yml".into()],
                profiles: vec!["jobs".into()],
            }
        );
        let mut probe = |p: Probe| {
            s.hooks = Hooks {
                before: Some("./migrate".into()),
                after: None,
                probe: Some(p),
            };
            let h = hooks(&s);
            assert_eq!(h.before.as_deref(), Some("./migrate"));
            h.probe.unwrap()
        };
        assert_eq!(
            probe(Probe::Http {
                url: "http://127.0.0.1:8000/health".into(),
                expect: Some("it's ok".into()),
            }),
            r#"probe_url http://127.0.0.1:8000/health "it's ok""#
        );
        assert_eq!(
            probe(Probe::Http {
                url: "http://x/".into(),
                expect: None,
            }),
            "probe_url http://x/"
        );
        assert_eq!(
            probe(Probe::Command("./ready.sh --x".into())),
            "./ready.sh --x"
        );
    }
}
