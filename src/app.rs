//! The application: parse the arguments, set up logging and signals, run
//! the command asked for, and write what it returns: the one writer of
//! stdout, and of the error a command stops with (printed once, here).

use std::io::Write;
use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};

use crate::cli::Cli;
use crate::commands::{self, Outcome};
use crate::config::Settings;
use crate::error::Error;
use crate::exit::Exit;
use crate::host::World;
use crate::host::ssh::SshSettings;
use crate::report::output::View;
use crate::report::{self, Rendered};

/// The process: run, print an error once, exit with the merged status
/// (docs/reference/exit-codes.md).
pub fn main() -> ExitCode {
    match run() {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(e) => {
            write_err(&format!("error: {e}\n"));
            ExitCode::from(e.exit().code())
        }
    }
}

/// Text for stderr, its `error:`, `warning:` and `hint:` in colour where
/// stderr takes it; a closed stderr (`2>&1 | head`) is no reason to panic.
fn write_err(text: &str) {
    let painted = report::paint_prefixes(text, report::color_stderr());
    let _ = std::io::stderr().write_all(painted.as_bytes());
}

/// A command's rendered output: stderr's notes, then the data on stdout.
fn write(r: &Rendered) -> Result<(), Error> {
    if !r.stderr.is_empty() {
        write_err(&r.stderr);
    }
    print_out(&r.stdout)
}

/// Write data for stdout; a closed pipe (`rbuild ... | head`) is not an
/// error.
fn print_out(text: &str) -> Result<(), Error> {
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

/// Whether `--json` or `-o json` is on the command line (before a `--`),
/// looked at before the arguments are parsed: a usage error then still
/// prints a JSON document.
fn json_asked() -> bool {
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .take_while(|a| a != "--")
        .collect();
    args.iter().enumerate().any(|(i, a)| {
        a == "--json"
            || a == "--output=json"
            || a == "-ojson"
            || a == "-o=json"
            || ((a == "-o" || a == "--output") && args.get(i + 1).is_some_and(|v| v == "json"))
    })
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

/// Parse the process's arguments, run and write the output. Under
/// `--json`, a usage error (exit 2) also prints a JSON document on stdout
/// (see [`report::json::render_error`]); the message stays on stderr.
fn run() -> Result<Exit, Error> {
    let json = json_asked();
    match parse_and_run(json) {
        Ok((outcome, view)) => {
            write(&report::output::render(
                &outcome.output,
                outcome.exit.code(),
                &view,
            ))?;
            Ok(outcome.exit)
        }
        Err(e) => {
            if json && let Error::Usage(_) = &e {
                print_json_error(&e.to_string(), e.exit());
            }
            Err(e)
        }
    }
}

/// A usage error as the `--json` document on stdout (see
/// [`report::json::render_error`]); for `rbuild check`, the check's own
/// document.
fn print_json_error(text: &str, exit: Exit) {
    if check_asked() {
        let refused = commands::check::refused(text);
        let r = report::output::render(&refused.output, exit.code(), &View::of_stdout(true, false));
        let _ = print_out(&r.stdout);
        return;
    }
    let (error, hint) = split_hint(text);
    let _ = print_out(&report::json::render_error(
        &error,
        hint.as_deref(),
        exit.code(),
    ));
}

/// Whether the command line names `check` as its subcommand, looked at
/// before the arguments are parsed (the values of options skipped): a
/// usage error of `check --json` then prints the check's document.
fn check_asked() -> bool {
    let cmd = Cli::command();
    let mut valued: Vec<String> = Vec::new();
    for a in cmd.get_arguments().filter(|a| !a.is_positional()) {
        if a.get_action().takes_values() {
            valued.extend(a.get_long().map(|l| format!("--{l}")));
            valued.extend(a.get_short().map(|c| format!("-{c}")));
        }
    }
    let mut args = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .take_while(|a| a != "--");
    while let Some(a) = args.next() {
        if valued.contains(&a) {
            args.next();
        } else if !a.starts_with('-') {
            return a == "check";
        }
    }
    false
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

fn parse_and_run(json: bool) -> Result<(Outcome, View), Error> {
    // `COMPLETE=bash rbuild -- WORDS...`: the shell asks for candidates
    clap_complete::CompleteEnv::with_factory(crate::complete::command).complete();
    let mut cmd = crate::cli::command();
    if let Some(c) = color_asked() {
        cmd = cmd.color(c);
    }
    let args = crate::cli::without_deploy(&cmd, std::env::args_os().collect());
    let matches = match cmd.try_get_matches_from(args) {
        Ok(m) => m,
        Err(e) => {
            if e.use_stderr() && json {
                print_json_error(&e.render().to_string(), Exit::Usage);
            }
            e.exit()
        }
    };
    let inventory_from_env = matches.value_source("inventory") == Some(ValueSource::EnvVariable);
    let inventory_from_cli = matches.value_source("inventory") == Some(ValueSource::CommandLine);
    let mut cli = Cli::from_arg_matches(&matches).map_err(|e| Error::Usage(e.into()))?;
    report::set_color(cli.color);
    init_logging(cli.verbose, cli.quiet);
    refuse_words_of_other_tools(&cli, inventory_from_cli)?;
    match cli.command.take() {
        Some(crate::cli::Commands::Meta(m)) => {
            let view = View::of_stdout(cli.json(), false);
            return Ok((commands::meta::run(m)?, view));
        }
        other => cli.command = other,
    }
    if crate::config::wants_inventory(cli.command.as_ref())
        && cli.inventory.is_none()
        && cli.compose_files.is_empty()
    {
        let places = crate::config::inventory_places();
        let found = crate::config::default_inventory(&places, cli.command.as_ref())
            .map_err(|e| Error::Usage(e.into()))?;
        tracing::info!(
            "inventory: `{}`, the first that exists of {}",
            found.display(),
            places
                .iter()
                .map(|p| format!("`{}`", p.display()))
                .collect::<Vec<_>>()
                .join(", ")
        );
        cli.inventory = Some(found);
    }
    let command = match cli.command.take() {
        Some(crate::cli::Commands::Meta(_)) => unreachable!("dispatched above"),
        Some(crate::cli::Commands::Stack(c)) => Some(c),
        Some(crate::cli::Commands::Fleet(crate::cli::FleetCommand::Status { outdated })) => {
            let wide = cli.wide;
            let settings = fleet_settings(cli, inventory_from_env, "status")?;
            let view = View {
                wide,
                ..View::of_stdout(settings.json, false)
            };
            let (rt, control, world) = start(&settings)?;
            let private = control.path().to_owned();
            let outcome = rt.block_on(async move {
                tokio::spawn(watch_signals(None, private, true));
                commands::status::run(settings, world, outdated).await
            })?;
            return Ok((outcome, view));
        }
        Some(crate::cli::Commands::Fleet(crate::cli::FleetCommand::Check)) => {
            let json = cli.json();
            return match fleet_settings(cli, inventory_from_env, "check") {
                Ok(settings) => {
                    let view = View::of_stdout(settings.json, false);
                    Ok((commands::check::run(&settings), view))
                }
                // the check's own document, with what stopped it
                Err(e) if json => Ok((
                    commands::check::refused(&e.to_string()),
                    View::of_stdout(true, false),
                )),
                Err(e) => Err(e),
            };
        }
        Some(crate::cli::Commands::Merge { shards }) => {
            let view = View::of_stdout(cli.json(), cli.quiet);
            return Ok((commands::merge::run(&shards)?, view));
        }
        // `deploy` is taken out before parsing; it is the run all the same
        Some(crate::cli::Commands::Deploy) | None => None,
    };
    let settings = Settings::from_cli(cli, inventory_from_env, command.as_ref())
        .map_err(|e| Error::Usage(e.into()))?;
    let view = View::of_stdout(settings.json, settings.quiet);
    let (rt, control, world) = start(&settings)?;
    let (cancel_tx, cancel_rx) = tokio::sync::watch::channel(false);
    let (interrupt_tx, interrupt_rx) = tokio::sync::mpsc::unbounded_channel();
    let fleet_run = command.is_none();
    let quiet = settings.quiet;
    let private = control.path().to_owned();
    let outcome = rt.block_on(async move {
        tokio::spawn(watch_signals(
            fleet_run.then_some((cancel_tx, interrupt_tx)),
            private,
            quiet,
        ));
        match command {
            None => Ok(commands::run::run(settings, world, cancel_rx, interrupt_rx).await),
            Some(cmd) => commands::stack::run(cmd, settings, world).await,
        }
    })?;
    Ok((outcome, view))
}

/// Words people bring from other tools, and mistyped subcommands, refused
/// with the word rbuild uses: Ansible's `--check`; a COMPOSE_FILE argument
/// that is no file but close to a subcommand (`rbuild -i inv.yaml stauts`);
/// with `-i`, a word that is neither a subcommand nor a file.
fn refuse_words_of_other_tools(cli: &Cli, inventory_from_cli: bool) -> Result<(), Error> {
    if cli.check {
        return Err(Error::usage(
            "`--check` is not an rbuild flag: the dry run is `--dry-run` (`-n`)\n\
             hint: `rbuild -n` shows what would be rebuilt and why, changing nothing; `rbuild check` validates the inventory and every stack without connecting",
        ));
    }
    let words = || cli.compose_files.iter().filter_map(|f| f.to_str());
    if let Some((word, meant)) =
        words().find_map(|f| crate::cli::meant_subcommand(f).map(|m| (f, m)))
    {
        return Err(Error::usage(format!(
            "no subcommand or compose file named `{word}`\nhint: did you mean `rbuild {meant}`?"
        )));
    }
    if inventory_from_cli
        && let Some(word) =
            words().find(|f| !f.contains(['/', '.']) && !std::path::Path::new(f).exists())
    {
        let names: Vec<String> = Cli::command()
            .get_subcommands()
            .filter(|c| !c.is_hide_set())
            .map(|c| format!("`{}`", c.get_name()))
            .collect();
        return Err(Error::usage(format!(
            "no subcommand or compose file named `{word}`\nhint: the subcommands: {}",
            names.join(", ")
        )));
    }
    Ok(())
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
    let mut ssh = ssh_settings(settings, control.path());
    if settings.persist > 0 && settings.mode == crate::config::Mode::Fleet {
        let dir = crate::host::persist::control_dir().map_err(Error::usage)?;
        ssh.persist = Some(crate::host::ssh::Persist {
            secs: settings.persist,
            dir,
        });
    }
    let world = World {
        mode: settings.mode,
        ssh,
    };
    Ok((rt, control, world))
}

/// The settings of `status` and `check`, which read the hosts of an
/// inventory and take no compose file.
fn fleet_settings(cli: Cli, inventory_from_env: bool, command: &str) -> Result<Settings, Error> {
    if cli.inventory.is_none() || !cli.compose_files.is_empty() {
        let what = match command {
            "status" => "reads the hosts of an inventory",
            _ => "validates an inventory",
        };
        return Err(Error::usage(format!(
            "`{command}` {what}: give `--inventory FILE` and no COMPOSE_FILE\nhint: e.g. `rbuild {command} -i inventory.yaml`"
        )));
    }
    Settings::from_cli(cli, inventory_from_env, None).map_err(|e| Error::Usage(e.into()))
}

/// Ctrl-C in a fleet run: start no new host; the hosts in flight finish
/// cleanly; the progress display says so above its bars, naming them.
/// Ctrl-C again (or at once in a manual command), or SIGTERM: the display
/// names the hosts that may still be rebuilding on their own (a rebuild
/// under way on a host runs to its end there by itself) and clears its
/// bars; then remove the run's private directory and exit (130, SIGTERM
/// 143).
async fn watch_signals(
    fleet: Option<(
        tokio::sync::watch::Sender<bool>,
        tokio::sync::mpsc::UnboundedSender<report::progress::Interrupt>,
    )>,
    private: std::path::PathBuf,
    quiet: bool,
) {
    use report::progress::Interrupt;
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
    let Some((cancel, display)) = &fleet else {
        tokio::select! {
            _ = int.recv() => abort(Exit::Interrupted),
            _ = term.recv() => abort(Exit::Terminated),
        }
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => abort(Exit::Terminated),
    }
    let _ = cancel.send(true);
    // the display prints the line above its bars; without one (it ended),
    // it is printed here
    if display.send(Interrupt::Stop).is_err() && !quiet {
        write_err(
            "interrupted: starting no new host; waiting for the hosts in flight (Ctrl-C again to abort)\n",
        );
    }
    let code = tokio::select! {
        _ = int.recv() => Exit::Interrupted,
        _ = term.recv() => Exit::Terminated,
    };
    let (ack, mut acked) = tokio::sync::mpsc::unbounded_channel();
    if display.send(Interrupt::Abort { ack }).is_ok() {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), acked.recv()).await;
    }
    abort(code)
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
        persist: None,
    }
}

/// Logs on stderr in the words of its other lines (`warning:`, `error:`,
/// `-v` `info:`, `-vv` `debug:`, `-vvv` `trace:`; see [`report::log`]);
/// `-q` keeps errors only.
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
        // above the progress bars while they are drawn
        .with_writer(|| report::progress::LogWriter)
        .with_ansi(false)
        .event_format(report::log::Format {
            color: report::color_stderr(),
        })
        .try_init();
}
