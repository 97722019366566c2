//! The executor: every selected host, a bounded number at once. Per host it
//! reads: connect, check (one remote command for all its stacks, reading
//! state files only), plan ([`crate::plan`]), wait for its turn where a
//! rollout holds it back, apply (a second command that ships and rebuilds
//! what is due), report. A failed host becomes rows in the summary, never
//! an abort of the others.
//!
//! It runs against any [`Connect`]: the real world ([`crate::host::World`])
//! or, in its unit tests, a scripted one.
//!
//! Its parts: [`host`] (one host: check, plan, its turn, apply) and
//! [`wire`] (stacks as the remote script's arguments).

mod host;
#[cfg(test)]
mod tests;
mod wire;

pub use wire::place;

use host::{Ctx, coordinator, detail, names, run_host};

use std::future::Future;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc::UnboundedSender, watch};

use crate::config::Settings;
use crate::host::{Conn, Connect, HostError};
use crate::inventory::{Host, Stack};
use crate::registry::Upstream;
use crate::remote::{CheckStack, Status};
use crate::report::{Progress, Row, rows};
use crate::ship::Shipments;
use crate::status::{self, StackStatus};

/// Run every host; returns one row per stack per host, in inventory order.
pub async fn run<C: Connect>(
    settings: Arc<Settings>,
    shipments: Arc<Shipments>,
    upstream: Arc<Upstream>,
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
        upstream,
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
    upstream: Arc<Upstream>,
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
            let upstream = upstream.clone();
            async move {
                let _slot = slot;
                let h2 = h.clone();
                tokio::spawn(async move {
                    host_status(&settings, &shipments, &upstream, &*world, &h2).await
                })
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
    upstream: &Upstream,
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
    let lookups = match &answer {
        Ok(_) => upstream.lookups().await,
        Err(_) => None,
    };
    match answer {
        Err(e) => failed(&e),
        Ok(a) => h
            .stacks
            .iter()
            .map(|s| {
                let bases = match &a.stacks[&s.name].recorded.state {
                    Ok(Some(st)) => st.bases.as_deref(),
                    _ => None,
                };
                let fresh = lookups
                    .as_deref()
                    .and_then(|l| upstream.freshness(s, bases, l, settings.min_age(s)));
                status::assess(
                    &h.name,
                    &s.name,
                    hash(s).as_deref(),
                    settings.build_period(s),
                    a.now,
                    &a.stacks[&s.name],
                    fresh.as_ref(),
                )
            })
            .collect(),
    }
}
