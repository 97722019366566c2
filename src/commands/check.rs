//! `rbuild check -i INVENTORY`: everything a run checks before it contacts
//! a host, and nothing more: the inventory (parsed and validated, the
//! selection applied), every compose file parsed, every file it references
//! inside its stack's root, and every stack's directory read and hashed as
//! it would ship. No host is contacted.

use super::Outcome;
use crate::compose::Unreadable;
use crate::config::Settings;
use crate::exit::Exit;
use crate::inventory::Stack;
use crate::report::check::{Checked, Problem};
use crate::report::output::Output;
use crate::ship::Shipments;

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

/// An error's text as problems: each line an error, each `hint:` line
/// the hint of the error before it.
pub fn problems_of(text: &str) -> Vec<Problem> {
    let mut out: Vec<Problem> = Vec::new();
    for l in text.lines() {
        let l = l.strip_prefix("error: ").unwrap_or(l);
        let t = l.trim_start();
        if let Some(h) = t.strip_prefix("hint: ").or(t.strip_prefix("tip: ")) {
            match out.last_mut() {
                Some(p) if p.hint.is_none() => p.hint = Some(h.to_owned()),
                Some(p) => {
                    let joined = format!("{}\n{h}", p.hint.take().unwrap_or_default());
                    p.hint = Some(joined);
                }
                None => out.push(Problem {
                    error: String::new(),
                    hint: Some(h.to_owned()),
                }),
            }
        } else if l.starts_with("Usage: ") || l.starts_with("For more information") {
        } else if !l.trim().is_empty() {
            out.push(Problem {
                error: l.trim_end().to_owned(),
                hint: None,
            });
        }
    }
    out
}

/// A check that could not start (the inventory does not parse, the
/// selection matches nothing, the command line is wrong): the error as
/// the check's own problems, exit 2. `rbuild check --json` prints its
/// document for these too.
pub fn refused(text: &str) -> Outcome {
    Outcome {
        output: Output::Check(Checked {
            hosts: 0,
            stacks: 0,
            problems: problems_of(text),
        }),
        exit: Exit::Usage,
    }
}

/// Check, and say what was found: exit 0, or 2 when anything is wrong (a
/// run would stop there too).
pub fn run(settings: &Settings) -> Outcome {
    let problems = problems(settings);
    let exit = if problems.is_empty() {
        Exit::Success
    } else {
        Exit::Usage
    };
    Outcome {
        output: Output::Check(Checked {
            hosts: settings.hosts.len(),
            stacks: settings.hosts.iter().map(|h| h.stacks.len()).sum(),
            problems,
        }),
        exit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_s_lines_are_problems_and_their_hints() {
        assert_eq!(
            problems_of(
                "inv.yaml:3: host `a`: bad key\nhint: did you mean `stacks`?\ninv.yaml:9: a stack is no list\n"
            ),
            [
                Problem {
                    error: "inv.yaml:3: host `a`: bad key".into(),
                    hint: Some("did you mean `stacks`?".into()),
                },
                Problem {
                    error: "inv.yaml:9: a stack is no list".into(),
                    hint: None,
                },
            ]
        );
        let clap = "error: unexpected argument '--bogus' found\n\n  tip: to pass '--bogus' as a value, use '-- --bogus'\n\nUsage: rbuild check\n\nFor more information, try '--help'.\n";
        assert_eq!(
            problems_of(clap),
            [Problem {
                error: "unexpected argument '--bogus' found".into(),
                hint: Some("to pass '--bogus' as a value, use '-- --bogus'".into()),
            }]
        );
        let r = refused("no inventory");
        assert_eq!(r.exit, Exit::Usage);
    }
}
