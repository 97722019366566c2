//! `rbuild check -i INVENTORY`: everything a run checks before it contacts
//! a host, and nothing more: the inventory (parsed and validated, the
//! selection applied), every compose file parsed, every file it references
//! inside its stack's root, and every stack's directory read and hashed as
//! it would ship. No host is contacted.

use serde::Serialize;

use crate::compose::Unreadable;
use crate::config::Settings;
use crate::exit::Exit;
use crate::inventory::Stack;
use crate::ship::Shipments;

/// One thing wrong, as `error:` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// `FILE:LINE: what` or `host `H`, stack `S`: what`.
    pub error: String,
    pub hint: Option<String>,
}

/// The problems of the stacks of `settings` (its inventory is valid, or
/// there would be no settings): compose files that do not parse, stack
/// directories that cannot be read. Each distinct compose file and stack
/// directory is named once.
pub fn problems(settings: &Settings) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (host, s) in settings
        .hosts
        .iter()
        .flat_map(|h| h.stacks.iter().map(move |s| (h, s)))
    {
        for f in &s.compose_files {
            let path = s.root.join(f);
            if seen.insert(path.clone())
                && let Some(p) = compose_problem(&path, &host.name, s)
            {
                out.push(p);
            }
        }
    }
    // what the compose files need must ship: an `.rbuildignore` rule that
    // leaves out a build context or an env file makes every build on the
    // host fail (bind-mount sources may be data kept on the host alone)
    let mut seen = std::collections::HashSet::new();
    for (host, s) in settings
        .hosts
        .iter()
        .flat_map(|h| h.stacks.iter().map(move |s| (h, s)))
    {
        if !seen.insert(s.dir()) {
            continue;
        }
        let Ok(entries) = crate::stack::list(&s.dir()) else {
            continue;
        };
        for n in crate::compose::needed(&s.root, &s.compose_files) {
            let ships = n.rel.is_empty()
                || entries
                    .iter()
                    .any(|e| e.path == n.rel || crate::stack::under(&e.path, &n.rel));
            let is_there = s.root.join(&n.rel).exists();
            if ships || !is_there || n.what == "bind-mount source" {
                continue;
            }
            out.push(Problem {
                error: format!(
                    "{}:{}: host `{}`, stack `{}`: the {} `{}` is left out by the stack's `.rbuildignore`, so it is not shipped: the host could not build or start the stack",
                    n.file.display(),
                    n.line,
                    host.name,
                    s.name,
                    n.what,
                    n.path
                ),
                hint: Some(
                    "take it out of `.rbuildignore`; to keep what a container writes on the host, mount that directory alone (or the code `:ro`) and list only the data directory"
                        .into(),
                ),
            });
        }
    }
    let shipments = Shipments::hash(&settings.hosts, false);
    let mut seen = std::collections::HashSet::new();
    for (host, s) in settings
        .hosts
        .iter()
        .flat_map(|h| h.stacks.iter().map(move |s| (h, s)))
    {
        if let Err(e) = shipments.hash_of(s)
            && seen.insert(s.dir())
        {
            out.push(Problem {
                error: format!(
                    "host `{}`, stack `{}`: cannot read the stack: {e}",
                    host.name, s.name
                ),
                hint: Some(
                    "fix the file's permissions or name on this machine, or list it in the stack's `.rbuildignore`"
                        .into(),
                ),
            });
        }
    }
    out
}

/// A compose file that compose could not read: not YAML, or not a mapping.
fn compose_problem(path: &std::path::Path, host: &str, s: &Stack) -> Option<Problem> {
    Some(match crate::compose::unreadable(path)? {
        Unreadable::Io(e) => Problem {
            error: format!(
                "{}: host `{host}`, stack `{}`: cannot read the compose file: {e}",
                path.display(),
                s.name
            ),
            hint: None,
        },
        Unreadable::Syntax { line, message } => Problem {
            error: format!(
                "{}{}: host `{host}`, stack `{}`: the compose file is not valid YAML: {message}",
                path.display(),
                if line > 0 {
                    format!(":{line}")
                } else {
                    String::new()
                },
                s.name
            ),
            hint: Some(
                "compose would refuse it too: `docker compose config` shows the same".into(),
            ),
        },
    })
}

/// How many hosts and stacks (one per stack of a host) were checked.
pub fn counts(settings: &Settings) -> (usize, usize) {
    let stacks = settings.hosts.iter().map(|h| h.stacks.len()).sum();
    (settings.hosts.len(), stacks)
}

/// The report `rbuild check` prints: `ok: N hosts, M stacks` on stdout,
/// or each problem as `error:`/`hint:` lines on stderr. Returns (stdout,
/// stderr, exit).
pub fn render(settings: &Settings, problems: &[Problem]) -> (String, String, Exit) {
    let (hosts, stacks) = counts(settings);
    if settings.json {
        #[derive(Serialize)]
        struct Doc<'a> {
            version: u32,
            ok: bool,
            hosts: usize,
            stacks: usize,
            errors: &'a [Problem],
            exit_code: u8,
        }
        let exit = if problems.is_empty() {
            Exit::Success
        } else {
            Exit::Usage
        };
        let mut s = serde_json::to_string_pretty(&Doc {
            version: 1,
            ok: problems.is_empty(),
            hosts,
            stacks,
            errors: problems,
            exit_code: exit.code(),
        })
        .expect("serializable");
        s.push('\n');
        return (s, String::new(), exit);
    }
    if problems.is_empty() {
        let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
        return (
            format!(
                "ok: {}, {}\n",
                plural(hosts, "host"),
                plural(stacks, "stack")
            ),
            String::new(),
            Exit::Success,
        );
    }
    let mut err = String::new();
    for p in problems {
        err.push_str(&format!("error: {}\n", p.error));
        if let Some(h) = &p.hint {
            err.push_str(&format!("hint: {h}\n"));
        }
    }
    (String::new(), err, Exit::Usage)
}
