//! Shell completion that knows the fleet: host, group and `@tag` names
//! after `--limit` and `--exclude`, HOST then STACK after `history`, `logs`
//! and `rollback`, read from the inventory the words being completed name
//! (`-i`, `RBUILD_INVENTORY`, or where rbuild looks for one). The shell's
//! script (`rbuild completions SHELL`) calls `COMPLETE=SHELL rbuild --
//! WORDS...` for candidates (clap_complete's dynamic completion); an
//! inventory that does not read gives no candidates, never an error.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

use clap_complete::engine::{ArgValueCandidates, ArgValueCompleter, CompletionCandidate};

use crate::inventory::Inventory;

/// The command line with its completers: what the shell's script asks.
pub fn command() -> clap::Command {
    command_reading(words)
}

/// The command line with completers that read the words `words` gives.
fn command_reading(words: fn() -> Vec<OsString>) -> clap::Command {
    let selectors = move || ArgValueCandidates::new(move || selectors(&inventory_of(&words())));
    let mut cmd = crate::cli::command()
        .mut_arg("limit", |a| a.add(selectors()))
        .mut_arg("exclude", |a| a.add(selectors()));
    for name in ["history", "logs", "rollback"] {
        cmd = cmd.mut_subcommand(name, |s| {
            s.mut_arg("target", |a| {
                a.add(ArgValueCompleter::new(move |cur: &OsStr| {
                    prefixed(hosts_of(&words()), cur)
                }))
            })
            .mut_arg("stack", |a| {
                a.add(ArgValueCompleter::new(move |cur: &OsStr| {
                    prefixed(stacks_of(&words()), cur)
                }))
            })
        });
    }
    cmd
}

/// The words the shell is completing (after `--`), or none.
fn words() -> Vec<OsString> {
    std::env::args_os()
        .skip_while(|a| a != "--")
        .skip(1)
        .collect()
}

/// The inventory the words name, read leniently: none when it does not read.
fn inventory_of(words: &[OsString]) -> Option<Inventory> {
    Inventory::load(&inventory_named(words)?).ok()
}

/// `-i FILE`, `-iFILE`, `--inventory FILE`, `--inventory=FILE` among the
/// words; else `RBUILD_INVENTORY`; else the first place rbuild looks that
/// exists.
fn inventory_named(words: &[OsString]) -> Option<PathBuf> {
    let words: Vec<&str> = words.iter().filter_map(|w| w.to_str()).collect();
    let given = words.iter().enumerate().rev().find_map(|(i, w)| {
        if *w == "-i" || *w == "--inventory" {
            return words.get(i + 1).map(|v| v.to_string());
        }
        w.strip_prefix("--inventory=")
            .or_else(|| w.strip_prefix("-i").filter(|v| !v.is_empty()))
            .map(str::to_owned)
    });
    given
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("RBUILD_INVENTORY").map(PathBuf::from))
        .or_else(|| crate::config::default_inventory(&crate::config::inventory_places(), None).ok())
}

/// What `--limit` and `--exclude` take: host names, group names, `@tag`s.
fn selectors(inv: &Option<Inventory>) -> Vec<CompletionCandidate> {
    let Some(inv) = inv else { return vec![] };
    let mut out: Vec<CompletionCandidate> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let mut push = |value: String, help: &str| {
        if seen.insert(value.clone()) {
            out.push(CompletionCandidate::new(value).help(Some(help.to_owned().into())));
        }
    };
    for h in &inv.hosts {
        push(h.name.clone(), "host");
    }
    for h in &inv.hosts {
        for g in &h.groups {
            push(g.clone(), "group");
        }
        for t in &h.tags {
            push(format!("@{t}"), "tag");
        }
    }
    out
}

/// The inventory's host names.
fn hosts_of(words: &[OsString]) -> Vec<String> {
    inventory_of(words)
        .map(|inv| inv.hosts.into_iter().map(|h| h.name).collect())
        .unwrap_or_default()
}

/// The stacks of the HOST the words name after `history`, `logs` or
/// `rollback` (every stack of the inventory when it names none).
fn stacks_of(words: &[OsString]) -> Vec<String> {
    let Some(inv) = inventory_of(words) else {
        return vec![];
    };
    let strs: Vec<&str> = words.iter().filter_map(|w| w.to_str()).collect();
    let host = strs
        .iter()
        .position(|w| ["history", "logs", "rollback"].contains(w))
        .and_then(|i| strs[i + 1..].iter().find(|w| !w.starts_with('-')));
    let mut names: Vec<String> = inv
        .hosts
        .iter()
        .filter(|h| host.is_none_or(|n| h.name == **n))
        .flat_map(|h| h.stacks.iter().map(|s| s.name.clone()))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The names that start with what is typed so far.
fn prefixed(names: Vec<String>, current: &OsStr) -> Vec<CompletionCandidate> {
    let cur = current.to_string_lossy();
    names
        .into_iter()
        .filter(|n| n.starts_with(cur.as_ref()))
        .map(CompletionCandidate::new)
        .collect()
}

/// The script SHELL sources: it asks `rbuild` for candidates as one types.
pub fn registration(shell: clap_complete::Shell) -> Result<String, std::io::Error> {
    let name = shell.to_string();
    let shells = clap_complete::env::Shells::builtins();
    let completer = shells
        .completer(&name)
        .ok_or_else(|| std::io::Error::other(format!("no completion for `{name}`")))?;
    let mut out = Vec::new();
    completer.write_registration("COMPLETE", "rbuild", "rbuild", "rbuild", &mut out)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        static LINE: std::cell::RefCell<Vec<OsString>> = const { std::cell::RefCell::new(Vec::new()) };
    }

    /// The candidates clap_complete's engine gives for `line` (the last
    /// word is the one being completed), the completers reading `line`.
    fn candidates(dir: &std::path::Path, line: &[&str]) -> Vec<String> {
        let words: Vec<OsString> = line.iter().map(OsString::from).collect();
        LINE.with(|l| *l.borrow_mut() = words.clone());
        let mut cmd = command_reading(|| LINE.with(|l| l.borrow().clone()));
        let index = words.len() - 1;
        clap_complete::engine::complete(&mut cmd, words, index, Some(dir))
            .unwrap()
            .into_iter()
            .map(|c| c.get_value().to_string_lossy().into_owned())
            // flags are offered beside values when nothing is typed yet
            .filter(|v| !v.starts_with('-'))
            .collect()
    }

    #[test]
    fn candidates_come_from_the_inventory_the_words_name() {
        let d = tempfile::tempdir().unwrap();
        for s in ["web", "db"] {
            std::fs::create_dir_all(d.path().join(s)).unwrap();
            std::fs::write(d.path().join(s).join("compose.yml"), "services: {}\n").unwrap();
        }
        let inv = d.path().join("inv.yaml");
        std::fs::write(
            &inv,
            "hosts:\n  web1:\n    groups: [front]\n    tags: [eu]\n    stacks:\n      - name: web\n        compose_file: web/compose.yml\n  db1:\n    stacks:\n      - name: db\n        compose_file: db/compose.yml\n",
        )
        .unwrap();
        let i = inv.to_str().unwrap();
        assert_eq!(
            candidates(d.path(), &["rbuild", "-i", i, "--limit", ""]),
            ["web1", "db1", "front", "@eu"]
        );
        assert_eq!(
            candidates(d.path(), &["rbuild", "-i", i, "--limit", "w"]),
            ["web1"]
        );
        assert_eq!(
            candidates(d.path(), &["rbuild", "-i", i, "logs", ""]),
            ["web1", "db1"]
        );
        assert_eq!(
            candidates(
                d.path(),
                &["rbuild", &format!("--inventory={i}"), "history", "db1", ""]
            ),
            ["db"]
        );
        // an inventory that does not read: no candidates, no error
        assert!(candidates(d.path(), &["rbuild", "-i", "nope.yaml", "logs", "x"]).is_empty());
    }

    #[test]
    fn every_shell_of_completions_has_a_registration() {
        use clap::ValueEnum;
        for shell in clap_complete::Shell::value_variants() {
            let script = registration(*shell).unwrap();
            assert!(script.contains("COMPLETE"), "{shell}: {script}");
        }
    }
}
