//! A fleet run, end to end: hash the stacks, run the hosts with a monitor
//! drawing progress, write the metrics file and notify; returns the rows
//! and the merged exit status.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::Outcome;
use crate::config::Settings;
use crate::fleet;
use crate::host::World;
use crate::registry::Upstream;
use crate::report::output::Output;
use crate::report::{self, progress};
use crate::ship::Shipments;

/// Run with resolved settings; `cancel` turns true on Ctrl-C; the signal
/// watcher's `interrupts` go to the progress display, which says them.
pub async fn run(
    settings: Settings,
    world: World,
    cancel_rx: tokio::sync::watch::Receiver<bool>,
    interrupts: tokio::sync::mpsc::UnboundedReceiver<progress::Interrupt>,
) -> Outcome {
    let started = Instant::now();
    let names: Vec<&str> = settings.hosts.iter().map(|h| h.name.as_str()).collect();
    tracing::info!(
        "{} host{} selected: {}",
        names.len(),
        if names.len() == 1 { "" } else { "s" },
        names.join(", ")
    );
    let shipments = Shipments::hash(&settings.hosts, settings.mode == crate::config::Mode::Local);
    for h in &settings.hosts {
        for s in &h.stacks {
            match shipments.hash_of(s) {
                Ok(hash) => tracing::debug!(
                    "{} {}: {} hashed: {hash}",
                    h.name,
                    s.name,
                    s.dir().display()
                ),
                Err(e) => tracing::debug!("{} {}: unreadable: {e}", h.name, s.name),
            }
        }
    }
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let style = progress::Style::of_stderr(settings.quiet, settings.verbose);
    let monitor = tokio::spawn(progress::watch(rx, style, Some(interrupts)));

    let upstream = Arc::new(if settings.digests {
        Upstream::start(&settings.hosts, !settings.dry_run)
    } else {
        Upstream::off()
    });
    let settings = Arc::new(settings);
    let rows = fleet::run(
        settings.clone(),
        Arc::new(shipments),
        upstream.clone(),
        Arc::new(world),
        tx,
        cancel_rx.clone(),
    )
    .await;
    let _ = monitor.await;
    let registry = upstream.lookups().await;
    if let Some(l) = &registry {
        tracing::info!(
            "registry: {} manifest request{} for {} distinct reference{}",
            l.requests,
            if l.requests == 1 { "" } else { "s" },
            l.digests.len(),
            if l.digests.len() == 1 { "" } else { "s" },
        );
    }
    let interrupted = *cancel_rx.borrow();
    let exit = report::exit_of(&rows, interrupted);
    if let Some(path) = settings
        .metrics_file
        .as_deref()
        .filter(|_| !settings.dry_run)
    {
        let info = crate::metrics::RunInfo {
            finished: std::time::SystemTime::now(),
            duration: started.elapsed(),
            exit_code: exit.code(),
            shard: settings.shard,
        };
        if let Err(e) = crate::metrics::write(path, &crate::metrics::render(&rows, &info)) {
            // an error, so that `-q` (cron) keeps it: a textfile collector
            // that never gets the file says nothing either
            tracing::error!(
                "could not write the metrics file {}: {e} (the run's result is unchanged)\nhint: create its directory, writable by this user, or point --metrics-file elsewhere",
                path.display()
            );
        }
    }

    if let Some(n) = settings
        .notify
        .clone()
        .filter(|n| !settings.dry_run && n.wanted(&rows))
    {
        let (url, body) = (n.shown(), report::json::render(&rows, exit.code()));
        let sent = tokio::task::spawn_blocking(move || n.send(&body))
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
        match sent {
            Ok(()) => tracing::info!("notified {url}"),
            // an error, so that `-q` keeps it: the webhook may be the only
            // alert there is
            Err(e) => {
                tracing::error!("could not notify {url}: {e} (the run's result is unchanged)")
            }
        }
    }

    let elapsed = started.elapsed();
    let output = if settings.quiet && !settings.json {
        let (shown, warnings) = mail(&settings, &rows);
        Output::Mail {
            rows,
            shown,
            elapsed,
            warnings,
            registry,
        }
    } else {
        Output::Run {
            rows,
            elapsed,
            registry,
        }
    };
    Outcome { output, exit }
}

/// `-q`: which rows cron's mail shows, from what was reported before (see
/// [`crate::reported`]), and the memory kept for the next run (not after
/// a dry run). A memory that cannot be read or written is a warning, and
/// the mail says what it would with none.
fn mail(settings: &Settings, rows: &[report::Row]) -> (Vec<bool>, Vec<String>) {
    use crate::reported;
    let keys: Vec<Option<String>> = rows
        .iter()
        .map(|r| {
            let h = settings.hosts.iter().find(|h| h.name == r.host)?;
            let s = h.stacks.iter().find(|s| s.name == r.stack)?;
            Some(reported::key(&s.dir(), &r.host, &r.stack))
        })
        .collect();
    let mut warnings = Vec::new();
    let Some(path) = reported::path() else {
        warnings.push(
            "no $XDG_STATE_HOME or $HOME: what was reported is not remembered; a failure that persists is reported on every run".to_owned(),
        );
        return (
            reported::decide(rows, &keys, &Default::default(), SystemTime::now()).0,
            warnings,
        );
    };
    let before = reported::load(&path).unwrap_or_else(|e| {
        warnings.push(format!("{e}; reporting as if nothing was reported before"));
        Default::default()
    });
    let (shown, after) = reported::decide(rows, &keys, &before, SystemTime::now());
    if after != before
        && !settings.dry_run
        && let Err(e) = reported::save(&path, &after)
    {
        warnings.push(format!(
            "{e}: what was reported is not remembered; a failure that persists is reported on every run"
        ));
        // nothing remembered: everything is news
        let none = reported::decide(rows, &keys, &Default::default(), SystemTime::now()).0;
        return (none, warnings);
    }
    (shown, warnings)
}
