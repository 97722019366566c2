//! One host of a run: connect, check every stack with one command, plan,
//! wait for its turn where a rollout holds it back, apply what is due with
//! a second command; a row for each stack, whatever happens.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc::UnboundedSender, watch};

use crate::config::{Mode, Settings};
use crate::decide::Reason;
use crate::fresh::{self, Freshness};
use crate::host::{Conn, Connect, HostError};
use crate::inventory::{Host, Stack};
use crate::plan::{self, Verdict};
use crate::registry::{Lookups, Upstream};
use crate::remote::{
    Announced, Apply, ApplyAnswer, ApplyStack, Check, CheckStack, Event, RemoteError, Results,
    StackMode, StackOptions,
};
use crate::report::{Action, Progress, Row, rows};
use crate::rollout::{Clearance, Coordinator, Outcome, Policy};
use crate::ship::Shipments;

use super::wire::{apply_bound, hooks, place};

/// What every host task shares.
pub(super) struct Ctx<C> {
    pub(super) settings: Arc<Settings>,
    pub(super) shipments: Arc<Shipments>,
    pub(super) world: Arc<C>,
    pub(super) tx: UnboundedSender<Progress>,
    /// Hosts being connected to or worked on at once (`-j`). A host waiting
    /// for its turn in a rollout holds no slot and no connection.
    pub(super) slots: Arc<Semaphore>,
    pub(super) rollout: Coordinator,
    pub(super) cancel: watch::Receiver<bool>,
    /// Each stack's images and what the registries say of them.
    pub(super) upstream: Arc<Upstream>,
}

impl<C: Connect> Ctx<C> {
    /// A slot, or `None` once Ctrl-C was pressed.
    pub(super) async fn slot(&self) -> Option<OwnedSemaphorePermit> {
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
    pub(super) fn report(&self, row: &Row, log: Vec<String>) {
        let _ = self.tx.send(Progress::Result {
            row: Box::new(row.clone()),
            log,
        });
    }
}

/// The rollout coordinator for these hosts: each stack name with its policy
/// and how many hosts run it.
pub(super) fn coordinator(hosts: &[Host]) -> Coordinator {
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

pub(super) fn names(h: &Host) -> impl Iterator<Item = &str> {
    h.stacks.iter().map(|s| s.name.as_str())
}

/// What scripts get besides a host's rows: when each started and ended
/// (those the apply timed keep theirs), the hash of its files.
pub(super) fn detail<C>(ctx: &Ctx<C>, h: &Host, rows: &mut [Row], begun: SystemTime) {
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

/// The rows of a host as they settle, one per stack, and what its check
/// found of each stack's images.
struct HostRows(Vec<Option<Row>>, Vec<Option<Freshness>>, bool);

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

    /// Every stack of a host has its row by now; each carries what the
    /// check found of its images.
    fn settle(self) -> Vec<Row> {
        self.0
            .into_iter()
            .zip(self.1)
            .map(|(r, f)| {
                let mut r = r.expect("decided");
                if r.error.is_none()
                    && let Some(f) = &f
                {
                    r.error = rows::images_note(f, self.2);
                }
                r.detail.images = f.filter(|f| *f != Freshness::default()).map(Box::new);
                r
            })
            .collect()
    }
}

pub(super) async fn run_host<C: Connect>(
    ctx: &Ctx<C>,
    h: &Host,
    slot: OwnedSemaphorePermit,
) -> Vec<Row> {
    let started = Instant::now();
    let n = h.stacks.len();
    let mut rows = HostRows(vec![None; n], vec![None; n], ctx.settings.dry_run);
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
    let recorded = |s: &Stack| &answer.stacks[&s.name];
    // the registries' answers, awaited only where they can change the
    // verdict: a stack up to date by its files and the clock
    let up_to_date = |s: &Stack, hash: &str| {
        let input = plan::Input {
            hash,
            build_period: st.build_period(s),
            recorded: recorded(s),
            fresh: None,
        };
        plan::plan(&opts, answer.now, &input) == Verdict::Skip(Reason::UpToDate)
    };
    let lookups = if open.iter().any(|(_, s, hash)| up_to_date(s, hash)) {
        ctx.upstream.lookups().await
    } else {
        None
    };
    let mut due = Vec::new();
    for (index, s, hash) in open {
        let fresh = freshness(ctx, s, recorded(s), lookups.as_deref());
        let input = plan::Input {
            hash,
            build_period: st.build_period(s),
            recorded: recorded(s),
            fresh: fresh.as_ref(),
        };
        let verdict = plan::plan(&opts, answer.now, &input);
        if let Some(f) = &fresh {
            log_freshness(h, s, f);
        }
        rows.1[index] = fresh.clone();
        match verdict {
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
                    } else if reason == Reason::ImageMoved {
                        // only an image-only service's image moved: pulled,
                        // nothing built
                        StackMode::Pull
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

/// A stack's images against the registries' answers (`None`: none asked,
/// or the stack's state cannot be read).
fn freshness<C>(
    ctx: &Ctx<C>,
    s: &Stack,
    recorded: &crate::remote::Recorded,
    lookups: Option<&Lookups>,
) -> Option<Freshness> {
    let state = recorded.state.as_ref().ok()?.as_ref()?;
    ctx.upstream
        .freshness(s, state.bases.as_deref(), lookups?, ctx.settings.min_age(s))
}

/// `-v`: what the registries' answers mean for a stack.
fn log_freshness(h: &Host, s: &Stack, f: &Freshness) {
    for m in &f.moved {
        tracing::info!(
            "{} {}: {} moved: {} -> {}",
            h.name,
            s.name,
            m.reference,
            fresh::short(&m.recorded),
            fresh::short(&m.current)
        );
    }
    for m in &f.cooling {
        tracing::info!(
            "{} {}: {} moved {}s ago: waits for min_age",
            h.name,
            s.name,
            m.reference,
            m.age
        );
    }
    for u in &f.unknown {
        tracing::info!(
            "{} {}: {}: freshness unknown: {}",
            h.name,
            s.name,
            u.image,
            u.why
        );
    }
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
