//! `rbuild completions SHELL`, `rbuild man [--dir DIR]` and `rbuild
//! version`: about rbuild itself, nothing else read. The manual is
//! clap_mangen's sections of the command line, and rbuild's own (EXIT
//! STATUS, ENVIRONMENT, FILES, EXAMPLES, SEE ALSO) in roff.

use std::path::Path;

use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, italic, roman};

use super::Outcome;
use crate::cli::Meta;
use crate::error::Error;
use crate::exit::Exit;
use crate::report::output::Output;

pub fn run(m: Meta) -> Result<Outcome, Error> {
    let output = match m {
        Meta::Completions { shell } => {
            Output::Text(crate::complete::registration(shell).map_err(|e| Error::Failed(e.into()))?)
        }
        Meta::Man { dir: None } => {
            let mut out = Vec::new();
            render_main(&manual_command(), &mut out).map_err(|e| Error::Failed(e.into()))?;
            Output::Text(String::from_utf8_lossy(&out).into_owned())
        }
        Meta::Man { dir: Some(dir) } => {
            let written = write_pages(&dir).map_err(|e| {
                Error::Failed(
                    anyhow::Error::new(e)
                        .context(format!("writing the manual pages into `{}`", dir.display())),
                )
            })?;
            let mut text = String::new();
            for p in written {
                text.push_str(&format!("{}\n", p.display()));
            }
            Output::Text(text)
        }
        Meta::Version => Output::Version(env!("CARGO_PKG_VERSION").to_owned()),
    };
    Ok(Outcome {
        output,
        exit: Exit::Success,
    })
}

/// The command line as the manual shows it (`deploy` with the run's own
/// flags), built so that subcommands carry their `rbuild-NAME` names.
fn manual_command() -> clap::Command {
    let mut cmd = crate::cli::command();
    cmd.build();
    cmd
}

/// The subcommands the manual names in SUBCOMMANDS and SEE ALSO, each of
/// which has a page of its own.
fn subcommands(cmd: &clap::Command) -> Vec<&clap::Command> {
    let mut subs: Vec<&clap::Command> =
        cmd.get_subcommands().filter(|s| !s.is_hide_set()).collect();
    subs.sort_by_key(|s| s.get_display_order());
    subs
}

/// Write rbuild.1 and rbuild-SUBCOMMAND.1 for every subcommand into `dir`
/// (made if missing); the paths written.
fn write_pages(dir: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let cmd = manual_command();
    let main = dir.join("rbuild.1");
    let mut f = std::fs::File::create(&main)?;
    render_main(&cmd, &mut f)?;
    let mut written = vec![main];
    for sub in subcommands(&cmd) {
        let man = Man::new(sub.clone());
        let path = dir.join(man.get_filename());
        let mut f = std::fs::File::create(&path)?;
        render_sub(&man, &mut f)?;
        written.push(path);
    }
    Ok(written)
}

/// A subcommand's page: clap_mangen's, and SEE ALSO rbuild(1).
fn render_sub(man: &Man, w: &mut dyn std::io::Write) -> std::io::Result<()> {
    man.render(w)?;
    let mut r = Roff::new();
    r.control("SH", ["SEE ALSO"]);
    r.text([bold("rbuild"), roman("(1)")]);
    r.to_writer(w)
}

fn section(r: &mut Roff, title: &str) {
    r.control("SH", [title]);
}

/// A tagged paragraph: `tag` in bold, then `text`.
fn item(r: &mut Roff, tag: &str, text: &str) {
    r.control("TP", []);
    r.text([bold(tag)]);
    r.text([roman(text)]);
}

/// rbuild(1): clap_mangen's NAME, SYNOPSIS, DESCRIPTION, OPTIONS and
/// SUBCOMMANDS, then rbuild's own sections.
fn render_main(cmd: &clap::Command, w: &mut dyn std::io::Write) -> std::io::Result<()> {
    let man = Man::new(cmd.clone());
    man.render_title(w)?;
    man.render_name_section(w)?;
    man.render_synopsis_section(w)?;
    man.render_description_section(w)?;
    man.render_options_section(w)?;
    man.render_subcommands_section(w)?;
    let mut r = Roff::new();
    section(&mut r, "EXIT STATUS");
    r.text([roman(
        "When several happen, the first of 130/143, 1, 3, 4 that applies is the status.",
    )]);
    for (code, text) in EXIT_STATUS {
        item(&mut r, code, text);
    }
    section(&mut r, "ENVIRONMENT");
    for (var, text) in ENVIRONMENT {
        item(&mut r, var, text);
    }
    section(&mut r, "FILES");
    for (file, text) in FILES {
        item(&mut r, file, text);
    }
    section(&mut r, "EXAMPLES");
    for (command, text) in EXAMPLES {
        r.control("TP", []);
        r.text([bold(*command)]);
        r.text([roman(*text)]);
    }
    section(&mut r, "SEE ALSO");
    let mut refs = Vec::new();
    for sub in subcommands(cmd) {
        refs.push(bold(format!("rbuild-{}", sub.get_name())));
        refs.push(roman("(1), "));
    }
    refs.extend([
        bold("ssh"),
        roman("(1), "),
        bold("ssh_config"),
        roman("(5), "),
        bold("docker-compose"),
        roman("(1); the README and "),
        italic("docs/"),
        roman(" of rbuild's repository."),
    ]);
    r.text(refs);
    r.to_writer(w)?;
    man.render_version_section(w)
}

/// The exit statuses (src/exit.rs), for EXIT STATUS.
const EXIT_STATUS: &[(&str, &str)] = &[
    (
        "0",
        "Everything selected is fine: rebuilt, started or up to date.",
    ),
    (
        "1",
        "A change of this run failed or was rolled back (a build, up, health gate or hook failed, a rollout halted); for status, a stack has a problem.",
    ),
    (
        "2",
        "Bad usage or an invalid inventory or compose file; nothing was touched.",
    ),
    (
        "3",
        "Hosts could not be reached (or their check failed) and no change failed: retry later.",
    ),
    (
        "4",
        "Stacks were held back by an earlier failure (previous_failure), nothing was tried, and nothing else is wrong.",
    ),
    (
        "130",
        "Interrupted (Ctrl-C): no new host started; a second Ctrl-C leaves at once.",
    ),
    ("143", "Terminated (SIGTERM)."),
];

/// The environment rbuild reads, for ENVIRONMENT.
const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "RBUILD_INVENTORY",
        "The inventory, as -i gives it. Without either (and without COMPOSE_FILE), rbuild looks for one in the places under FILES.",
    ),
    (
        "BUILD_PERIOD",
        "Rebuild when the last build is older than this (--build-period).",
    ),
    (
        "BUILD_TTL",
        "The original script's name for BUILD_PERIOD; BUILD_PERIOD wins.",
    ),
    (
        "UP_TIMEOUT_PERIOD",
        "Time for up and the health gate (--up-timeout-period).",
    ),
    (
        "RBUILD_*",
        "Each flag that names one: RBUILD_BUILD_TIMEOUT, RBUILD_SETTLE, RBUILD_WATCH, RBUILD_CONCURRENCY, RBUILD_METRICS_FILE, RBUILD_LOCK_WAIT, RBUILD_CONNECT_TIMEOUT, RBUILD_SSH_CONFIG, RBUILD_STATE_DIR; RBUILD_LOG, a tracing filter for the logs on stderr.",
    ),
    (
        "COMPOSE_PROJECT_NAME",
        "Local mode: the project name of a stack, as compose reads it.",
    ),
    ("NO_COLOR", "When set, --color auto does not colour."),
    (
        "XDG_CONFIG_HOME",
        "Where rbuild/inventory.yaml is looked for (default ~/.config).",
    ),
    (
        "XDG_STATE_HOME",
        "Where this machine's state is kept: local mode's stacks, what a quiet run last reported (default ~/.local/state).",
    ),
    (
        "COMPLETE",
        "Set by the completion script: rbuild prints candidates instead of running.",
    ),
];

/// The files rbuild reads and keeps, for FILES.
const FILES: &[(&str, &str)] = &[
    (
        "./rbuild.yaml",
        "The first place an inventory is looked for when none is given.",
    ),
    (
        "$XDG_CONFIG_HOME/rbuild/inventory.yaml",
        "The second (default ~/.config/rbuild/inventory.yaml).",
    ),
    ("/etc/rbuild/inventory.yaml", "The third."),
    (
        "/var/lib/rbuild",
        "On each host (or the inventory's state_dir): each stack's state, generations, lock and kept logs; in local mode as root too.",
    ),
    (
        "$XDG_STATE_HOME/rbuild",
        "On this machine (default ~/.local/state/rbuild): local mode's state when not root, and the controller's own: the files each shipped hash held (for the dry run's changed files) and what a quiet run last reported.",
    ),
    (
        "~/.ssh/config",
        "How hosts are reached, unless -F FILE; ssh's known_hosts for their keys.",
    ),
];

/// Commands a newcomer runs first, for EXAMPLES.
const EXAMPLES: &[(&str, &str)] = &[
    (
        "rbuild /srv/blog/compose.yml",
        "Rebuild the stack of this compose file here, if it is due.",
    ),
    (
        "rbuild check -i inventory.yaml",
        "Validate the inventory and every stack; no host is contacted.",
    ),
    (
        "rbuild deploy -i inventory.yaml --dry-run",
        "What would be rebuilt on each host and why, and what would ship.",
    ),
    (
        "rbuild -i inventory.yaml --limit 'web*' --serial 1",
        "Rebuild what is due on the web hosts, one host at a time.",
    ),
    (
        "rbuild -q",
        "For cron, the inventory at /etc/rbuild/inventory.yaml: print only what changed or failed.",
    ),
    (
        "rbuild status -i inventory.yaml",
        "Every stack as its host sees it.",
    ),
    (
        "rbuild logs -i inventory.yaml web1 blog",
        "The output of blog's last failed attempt on web1.",
    ),
    (
        "rbuild rollback -i inventory.yaml web1 blog",
        "Put blog's previous generation back on web1.",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_see_also_names_is_written_and_each_section_is_there() {
        let d = tempfile::tempdir().unwrap();
        let written = write_pages(d.path()).unwrap();
        let main = std::fs::read_to_string(d.path().join("rbuild.1")).unwrap();
        for header in [
            "NAME",
            "SYNOPSIS",
            "DESCRIPTION",
            "OPTIONS",
            "SUBCOMMANDS",
            "EXIT STATUS",
            "ENVIRONMENT",
            "FILES",
            "EXAMPLES",
            "SEE ALSO",
        ] {
            assert!(
                main.contains(&format!(".SH {header}\n"))
                    || main.contains(&format!(".SH \"{header}\"\n")),
                "{header} in\n{main}"
            );
        }
        let see_also = &main[main.find("SEE ALSO").unwrap()..];
        let mut named = 0;
        for part in see_also.split("\\fBrbuild\\-").skip(1) {
            let page = part.split("\\fR").next().unwrap().replace("\\-", "-");
            assert!(
                d.path().join(format!("rbuild-{page}.1")).is_file(),
                "rbuild-{page}(1) is named but not written: {written:?}"
            );
            named += 1;
        }
        assert!(named >= 9, "{see_also}");
        for code in ["0", "1", "2", "3", "4", "130", "143"] {
            assert!(main.contains(&format!("\\fB{code}\\fR")), "{code}");
        }
        let deploy = std::fs::read_to_string(d.path().join("rbuild-deploy.1")).unwrap();
        assert!(deploy.contains("force\\-rebuild"), "{deploy}");
    }
}
