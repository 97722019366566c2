//! An invalid inventory is refused with `file:line` before any host is
//! touched (exit 2, no ssh connection made).

use crate::support::*;

/// Run against `text` (an inventory naming h1's stack) and check that it is
/// refused at `line` without touching h1.
fn refused_at(abbrev: &str, text: impl Fn(&str, &str) -> String, line: u32, what: &str) {
    let f = Fleet::new(abbrev, 1);
    let name = f.add_stack("h1", "web", &StackDef::sleeper("v1"));
    let compose = f
        .local_dir(&name)
        .join("compose.yml")
        .strip_prefix(f.root.path())
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let run = f.run_inventory(&text(&name, &compose), &["--json"]);
    run.assert_code(2);
    let want = format!("inventory.yaml:{line}:");
    assert!(run.stderr.contains(&want), "want `{want}`:\n{}", run.dump());
    assert!(run.stderr.contains(what), "want `{what}`:\n{}", run.dump());
    // nothing was touched: no login on the host, nothing written there
    assert_eq!(f.accepted_logins("h1"), 0, "no ssh connection was made");
    assert_eq!(Fleet::entries(&f.state_dir("h1")), Vec::<String>::new());
    assert_eq!(Fleet::entries(&f.srv_dir("h1")), Vec::<String>::new());
    assert!(containers(&name).is_empty());
}

#[test]
fn an_unknown_key_is_refused_with_its_line() {
    refused_at(
        "badkey",
        |name, compose| {
            format!(
                "hosts:\n  h1:\n    stacks:\n      - name: {name}\n        compose_file: {compose}\n        remote_dri: /srv/x\n"
            )
        },
        6,
        "remote_dri",
    );
}

#[test]
fn a_missing_compose_file_is_refused_with_its_line() {
    refused_at(
        "badfile",
        |name, _| {
            format!(
                "hosts:\n  h1:\n    stacks:\n      - name: {name}\n        compose_file: stacks/nope/compose.yml\n"
            )
        },
        5,
        "does not exist",
    );
}

#[test]
fn a_duplicate_stack_is_refused_with_its_line() {
    refused_at(
        "baddup",
        |name, compose| {
            format!(
                "hosts:\n  h1:\n    stacks:\n      - name: {name}\n        compose_file: {compose}\n      - name: {name}\n        compose_file: {compose}\n"
            )
        },
        6,
        "listed twice",
    );
}
