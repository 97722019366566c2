//! One run, end to end: resolve settings, hash the stacks, run the hosts
//! with a monitor drawing progress, print the summary, merge the exit code.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::Instant;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};

use crate::cli::Cli;
use crate::config::Settings;
use crate::exit::Exit;
use crate::fleet;
use crate::host::World;
use crate::host::ssh::SshSettings;
use crate::report::{self, progress};
use crate::ship::Shipments;

/// Why a run stopped with an error, classified once, here: printed once by
/// `main`, which exits with [`Error::exit`].
#[derive(Debug)]
pub enum Error {
    /// Bad usage, an invalid inventory, a stack that cannot be read: found
    /// before any host was contacted (exit 2, nothing touched).
    Usage(anyhow::Error),
    /// Something failed after hosts were contacted (exit 1).
    Failed(anyhow::Error),
}

impl Error {
    pub fn usage(msg: impl std::fmt::Display) -> Error {
        Error::Usage(anyhow::anyhow!("{msg}"))
    }

    pub fn failed(msg: impl std::fmt::Display) -> Error {
        Error::Failed(anyhow::anyhow!("{msg}"))
    }

    pub fn exit(&self) -> Exit {
        match self {
            Error::Usage(_) => Exit::Usage,
            Error::Failed(_) => Exit::Failure,
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Usage(e) | Error::Failed(e) => write!(f, "{e:#}"),
        }
    }
}

/// Write data for stdout; a closed pipe (`rbuild ... | head`) is not an
/// error.
pub fn print_out(text: &str) -> Result<(), Error> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|_| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::Failed(
            anyhow::Error::new(e).context("writing to stdout"),
        )),
        _ => Ok(()),
    }
}

/// Whether `--json` is on the command line (before a `--`), looked at
/// before the arguments are parsed: a usage error then still prints a JSON
/// document.
fn json_asked() -> bool {
    std::env::args_os()
        .skip(1)
        .take_while(|a| a != "--")
        .any(|a| a == "--json")
}

/// An error as `error` and `hint` (its `hint:` line, clap's `tip:`).
fn split_hint(text: &str) -> (String, Option<String>) {
    let mut error = Vec::new();
    let mut hint = None;
    for l in text.lines() {
        let l = l.strip_prefix("error: ").unwrap_or(l);
        match l
            .trim_start()
            .strip_prefix("hint: ")
            .or(l.trim_start().strip_prefix("tip: "))
        {
            Some(h) if hint.is_none() => hint = Some(h.to_owned()),
            _ if l.starts_with("Usage: ") || l.starts_with("For more information") => {}
            _ if !l.trim().is_empty() => error.push(l.trim_end()),
            _ => {}
        }
    }
    (error.join("\n"), hint)
}

/// Parse the process's arguments and run. Under `--json`, a usage error
/// (exit 2) also prints a JSON document on stdout (see
/// [`report::json::render_error`]); the message stays on stderr.
pub fn main() -> Result<Exit, Error> {
    let json = json_asked();
    let result = parse_and_run(json);
    if json && let Err(e @ Error::Usage(_)) = &result {
        print_json_error(&e.to_string(), e.exit());
    }
    result
}

/// A usage error as the `--json` document on stdout (see
/// [`report::json::render_error`]).
fn print_json_error(text: &str, exit: Exit) {
    let (error, hint) = split_hint(text);
    let _ = print_out(&report::json::render_error(
        &error,
        hint.as_deref(),
        exit.code(),
    ));
}

/// `--color` as the command line gives it, read before it is parsed: for
/// clap's own errors and help.
fn color_asked() -> Option<clap::ColorChoice> {
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .take_while(|a| a != "--")
        .collect();
    let value = args.iter().enumerate().rev().find_map(|(i, a)| {
        a.strip_prefix("--color=")
            .or_else(|| (a == "--color").then(|| args.get(i + 1).map(String::as_str))?)
    })?;
    match value {
        "always" => Some(clap::ColorChoice::Always),
        "never" => Some(clap::ColorChoice::Never),
        _ => None,
    }
}

fn parse_and_run(json: bool) -> Result<Exit, Error> {
    let mut cmd = Cli::command();
    if let Some(c) = color_asked() {
        cmd = cmd.color(c);
    }
    let matches = match cmd.try_get_matches() {
        Ok(m) => m,
        Err(e) => {
            if e.use_stderr() && json {
                print_json_error(&e.render().to_string(), Exit::Usage);
            }
            e.exit()
        }
    };
    let inventory_from_env = matches.value_source("inventory") == Some(ValueSource::EnvVariable);
    let mut cli = Cli::from_arg_matches(&matches).map_err(|e| Error::Usage(e.into()))?;
    report::set_color(cli.color);
    init_logging(cli.verbose, cli.quiet);
    if let Some((word, meant)) = cli
        .compose_files
        .iter()
        .filter_map(|f| f.to_str())
        .find_map(|f| crate::cli::meant_subcommand(f).map(|m| (f, m)))
    {
        return Err(Error::usage(format!(
            "no subcommand or compose file named `{word}`\nhint: did you mean `rbuild {meant}`?"
        )));
    }
    let command = match cli.command.take() {
        Some(crate::cli::Commands::Meta(m)) => return meta(m),
        Some(crate::cli::Commands::Stack(c)) => Some(c),
        Some(crate::cli::Commands::Fleet(crate::cli::FleetCommand::Status)) => {
            return status(cli, inventory_from_env);
        }
        Some(crate::cli::Commands::Fleet(crate::cli::FleetCommand::Check)) => {
            return check(cli, inventory_from_env);
        }
        None => None,
    };
    let settings = Settings::from_cli(cli, inventory_from_env, command.as_ref())
        .map_err(|e| Error::Usage(e.into()))?;
    let (rt, control, world) = start(&settings)?;
    let (cancel_tx, cancel_rx) = tokio::sync::watch::channel(false);
    let fleet_run = command.is_none();
    let quiet = settings.quiet;
    let private = control.path().to_owned();
    rt.block_on(async move {
        tokio::spawn(watch_signals(
            fleet_run.then_some(cancel_tx),
            private,
            quiet,
        ));
        match command {
            None => run(settings, world, cancel_rx).await,
            Some(cmd) => crate::manual::run(cmd, settings, world).await,
        }
    })
}

/// What every command that reaches hosts starts with: the runtime, the
/// run's private directory (ssh control sockets) and the world it runs in.
fn start(
    settings: &Settings,
) -> Result<(tokio::runtime::Runtime, tempfile::TempDir, World), Error> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::Usage(anyhow::Error::new(e).context("starting the runtime")))?;
    let control = control_dir().map_err(|e| {
        Error::Usage(anyhow::Error::new(e).context("creating the run's private directory"))
    })?;
    let world = World {
        mode: settings.mode,
        ssh: ssh_settings(settings, control.path()),
    };
    Ok((rt, control, world))
}

/// `rbuild status`: the selected hosts of the inventory, nothing changed.
fn status(cli: Cli, inventory_from_env: bool) -> Result<Exit, Error> {
    if cli.inventory.is_none() || !cli.compose_files.is_empty() {
        return Err(Error::usage(
            "`status` reads the hosts of an inventory: give `--inventory FILE` and no COMPOSE_FILE\nhint: e.g. `rbuild status -i inventory.yaml`",
        ));
    }
    let settings =
        Settings::from_cli(cli, inventory_from_env, None).map_err(|e| Error::Usage(e.into()))?;
    let (rt, control, world) = start(&settings)?;
    let private = control.path().to_owned();
    rt.block_on(async move {
        tokio::spawn(watch_signals(None, private, true));
        crate::status::run(settings, world).await
    })
}

/// `rbuild check`: what a run checks before it contacts a host, no host
/// contacted.
fn check(cli: Cli, inventory_from_env: bool) -> Result<Exit, Error> {
    if cli.inventory.is_none() || !cli.compose_files.is_empty() {
        return Err(Error::usage(
            "`check` validates an inventory: give `--inventory FILE` and no COMPOSE_FILE\nhint: e.g. `rbuild check -i inventory.yaml`",
        ));
    }
    let settings =
        Settings::from_cli(cli, inventory_from_env, None).map_err(|e| Error::Usage(e.into()))?;
    let problems = crate::check::problems(&settings);
    let (out, err, exit) = crate::check::render(&settings, &problems);
    let painted = report::paint_prefixes(&err, report::color_stderr());
    let _ = std::io::stderr().write_all(painted.as_bytes());
    print_out(&out)?;
    Ok(exit)
}

/// `completions` and `man`: about rbuild itself, nothing else read.
fn meta(m: crate::cli::Meta) -> Result<Exit, Error> {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    match m {
        crate::cli::Meta::Completions { shell } => {
            clap_complete::generate(shell, &mut cmd, "rbuild", &mut out);
        }
        crate::cli::Meta::Man => clap_mangen::Man::new(cmd)
            .render(&mut out)
            .map_err(|e| Error::Failed(e.into()))?,
    }
    print_out(&String::from_utf8_lossy(&out))?;
    Ok(Exit::Success)
}

/// Ctrl-C in a fleet run: start no new host; the hosts in flight finish
/// cleanly. Ctrl-C again (or at once in a manual command), or SIGTERM:
/// remove the run's private directory and exit now (130, SIGTERM 143); a
/// rebuild under way on a host runs to its end there by itself.
async fn watch_signals(
    cancel: Option<tokio::sync::watch::Sender<bool>>,
    private: std::path::PathBuf,
    quiet: bool,
) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return;
    };
    let abort = |code: Exit| -> ! {
        let _ = std::fs::remove_dir_all(&private);
        std::process::exit(code.code().into())
    };
    if let Some(cancel) = &cancel {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => abort(Exit::Terminated),
        }
        if !quiet {
            eprintln!(
                "interrupted: starting no new host; waiting for the hosts in flight (Ctrl-C again to abort)"
            );
        }
        let _ = cancel.send(true);
    }
    tokio::select! {
        _ = int.recv() => abort(Exit::Interrupted),
        _ = term.recv() => abort(Exit::Terminated),
    }
}

/// A private directory (0700) for this run's ssh control sockets and
/// generated ssh configs, removed at the end of the run.
fn control_dir() -> std::io::Result<tempfile::TempDir> {
    use std::os::unix::fs::PermissionsExt;
    tempfile::Builder::new()
        .prefix("rbuild-")
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir()
}

fn ssh_settings(settings: &Settings, control_dir: &std::path::Path) -> SshSettings {
    SshSettings {
        connect_timeout: settings.connect_timeout,
        config_file: settings.ssh_config.clone(),
        accept_new_host_keys: settings.accept_new_host_keys,
        control_dir: control_dir.to_owned(),
    }
}

fn init_logging(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (_, 0) => "warn",
        (_, 1) => "info",
        (_, 2) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("RBUILD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("rbuild={level}")));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(report::color_stderr())
        .without_time()
        .try_init();
}

/// Run with resolved settings; `cancel` turns true on Ctrl-C.
pub async fn run(
    settings: Settings,
    world: World,
    cancel_rx: tokio::sync::watch::Receiver<bool>,
) -> Result<Exit, Error> {
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
    let style = progress::Style {
        terminal: std::io::stderr().is_terminal(),
        quiet: settings.quiet,
        verbose: settings.verbose,
    };
    let monitor = tokio::spawn(progress::run(rx, style));

    let settings = Arc::new(settings);
    let rows = fleet::run(
        settings.clone(),
        Arc::new(shipments),
        Arc::new(world),
        tx,
        cancel_rx.clone(),
    )
    .await;
    let _ = monitor.await;
    let interrupted = *cancel_rx.borrow();
    let exit = Exit::merge(&rows, interrupted);
    if let Some(path) = settings
        .metrics_file
        .as_deref()
        .filter(|_| !settings.dry_run)
    {
        let info = crate::metrics::RunInfo {
            finished: std::time::SystemTime::now(),
            duration: started.elapsed(),
            exit_code: exit.code(),
        };
        if let Err(e) = crate::metrics::write(path, &crate::metrics::render(&rows, &info)) {
            tracing::warn!(
                "could not write the metrics file {}: {e} (the run's result is unchanged)",
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

    let out = if settings.json {
        report::json::render(&rows, exit.code())
    } else if settings.quiet && !report::eventful(&rows) {
        String::new()
    } else {
        let terminal = std::io::stdout().is_terminal();
        let width = report::table::stdout_width(terminal);
        let mut out = report::table::render(
            &rows,
            started.elapsed(),
            terminal,
            width,
            report::color_stdout(),
        );
        out.push_str(&report::plan::render(&rows));
        out
    };
    print_out(&out)?;
    Ok(exit)
}
