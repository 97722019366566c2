//! The inventory parsed from text: inheritance, errors at their lines,
//! the example inventory; the parser fuzzed; every key in the example.

use super::validate::{valid_host_name, valid_remote_path};
use super::values::DEFAULT_KEEP_GENERATIONS;
use super::*;
use crate::rollout::Limit;

/// A duration key's seconds.
fn secs<const MIN: u64, const MAX: u64>(s: Option<values::Seconds<MIN, MAX>>) -> Option<u64> {
    s.map(|s| s.0)
}

pub(super) fn dir_with_compose() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("web")).unwrap();
    std::fs::write(d.path().join("web/compose.yml"), "services: {}\n").unwrap();
    d
}

fn parse(d: &tempfile::TempDir, text: &str) -> Result<Inventory, InventoryError> {
    Inventory::parse(&d.path().join("inventory.yaml"), text)
}

#[test]
fn minimal_inventory_inherits_defaults() {
    let d = dir_with_compose();
    let inv = parse(
        &d,
        "defaults:\n  user: deploy\n  build_period: 1h\n  remote_root: /opt/stacks\nhosts:\n  web1:\n    stacks:\n      - name: web\n        compose_file: web/compose.yml\n        up_timeout: 90\n",
    )
    .unwrap();
    let h = &inv.hosts[0];
    assert_eq!(h.name, "web1");
    assert_eq!(h.address, "web1");
    assert_eq!(h.user.as_deref(), Some("deploy"));
    assert_eq!(secs(h.stacks[0].keys.build_period), Some(3600));
    assert_eq!(secs(h.stacks[0].keys.up_timeout), Some(90));
    assert_eq!(h.stacks[0].remote_dir.as_deref(), Some("/opt/stacks/web"));
    assert!(h.stacks[0].compose_file.ends_with("web/compose.yml"));
}

#[test]
fn keep_generations_per_stack_over_the_defaults() {
    let d = dir_with_compose();
    let text = |defaults: &str, stack: &str| {
        format!(
            "{defaults}hosts:\n  web1:\n    stacks:\n      - name: web\n        compose_file: web/compose.yml\n{stack}stacks:\n  shared:\n    compose_file: web/compose.yml\n    hosts: [web1]\n    keep_generations: 7\n"
        )
    };
    let keep = |defaults: &str, stack: &str| {
        let inv = parse(&d, &text(defaults, stack)).unwrap();
        let s = &inv.hosts[0].stacks;
        (s[0].keep_generations(), s[1].keep_generations())
    };
    assert_eq!(keep("", ""), (DEFAULT_KEEP_GENERATIONS, 7));
    assert_eq!(keep("defaults:\n  keep_generations: 4\n", ""), (4, 7));
    assert_eq!(
        keep(
            "defaults:\n  keep_generations: 4\n",
            "        keep_generations: 1\n"
        ),
        (1, 7)
    );
    assert_eq!(keep("", "        keep_generations: \"100\"\n"), (100, 7));
    for bad in ["0", "101", "-1", "two", "2.5", "99999999999"] {
        let e = parse(&d, &text("", &format!("        keep_generations: {bad}\n"))).unwrap_err();
        assert_eq!(e.line, 6, "{bad}: {e}");
        assert!(
            e.message.contains("keep_generations") && e.message.contains("1 to 100"),
            "{bad}: {e}"
        );
    }
    let e = parse(&d, &text("defaults:\n  keep_generations: 0\n", "")).unwrap_err();
    assert_eq!(e.line, 2, "{e}");
}

#[test]
fn ssh_config_blocks_are_not_ssh_options() {
    let d = dir_with_compose();
    for key in ["Match", "Host", "include"] {
        let e = parse(
            &d,
            &format!("hosts:\n  web1:\n    ssh_options:\n      {key}: all\n    stacks:\n      - name: web\n        compose_file: web/compose.yml\n"),
        )
        .unwrap_err();
        assert_eq!(e.line, 4, "{e}");
        assert!(e.message.contains("config block"), "{e}");
    }
}

#[test]
fn hosts_keep_the_order_of_the_file() {
    let d = dir_with_compose();
    let host = |n: &str| {
        format!("  {n}:\n    stacks:\n      - name: web\n        compose_file: web/compose.yml\n")
    };
    let text = format!(
        "hosts:\n{}{}{}{}",
        host("web10"),
        host("web2"),
        host("db"),
        host("web1")
    );
    let inv = parse(&d, &text).unwrap();
    let names: Vec<&str> = inv.hosts.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["web10", "web2", "db", "web1"]);
    // a host listed twice is refused, not merged
    let e = parse(&d, &format!("{text}{}", host("db"))).unwrap_err();
    assert!(e.to_string().contains("`db` is given twice"), "{e}");
}

#[test]
fn unknown_key_names_line_and_key() {
    let d = dir_with_compose();
    let e = parse(
        &d,
        "hosts:\n  web1:\n    adress: 10.0.0.1\n    stacks:\n      - name: web\n        compose_file: web/compose.yml\n",
    )
    .unwrap_err();
    assert_eq!(e.line, 3, "{e}");
    assert!(e.message.contains("adress"), "{e}");
    assert!(e.to_string().contains("inventory.yaml:3:"), "{e}");
    assert!(e.hint.is_some());
}

#[test]
fn missing_compose_file_names_line() {
    let d = dir_with_compose();
    let e = parse(
        &d,
        "hosts:\n  web1:\n    stacks:\n      - name: web\n        compose_file: nope/compose.yml\n",
    )
    .unwrap_err();
    assert_eq!(e.line, 5, "{e}");
    assert!(e.message.contains("does not exist"), "{e}");
}

#[test]
fn duplicate_stack_on_a_host() {
    let d = dir_with_compose();
    let e = parse(
        &d,
        "hosts:\n  web1:\n    stacks:\n      - name: web\n        compose_file: web/compose.yml\n      - name: web\n        compose_file: web/compose.yml\n",
    )
    .unwrap_err();
    assert_eq!(e.line, 6, "{e}");
    assert!(e.message.contains("listed twice"), "{e}");
}

#[test]
fn stack_names_are_validated() {
    for bad in [
        "Web",
        "-web",
        "web;rm -rf /",
        "we b",
        "",
        "web$(id)",
        "../x",
    ] {
        assert!(!valid_stack_name(bad), "{bad:?}");
    }
    for good in ["web", "web-1", "a_b", "0day"] {
        assert!(valid_stack_name(good), "{good:?}");
    }
    let d = dir_with_compose();
    let e = parse(
        &d,
        "hosts:\n  web1:\n    stacks:\n      - name: \"x; touch /tmp/pwned\"\n        compose_file: web/compose.yml\n",
    )
    .unwrap_err();
    assert_eq!(e.line, 4);
}

#[test]
fn option_injection_in_address_or_user_is_refused() {
    let d = dir_with_compose();
    for (key, v) in [
        ("address", "-oProxyCommand=touch /tmp/x"),
        ("user", "-oProxyCommand=x"),
        ("address", "a b"),
    ] {
        let e = parse(
            &d,
            &format!(
                "hosts:\n  web1:\n    {key}: \"{v}\"\n    stacks:\n      - name: web\n        compose_file: web/compose.yml\n"
            ),
        )
        .unwrap_err();
        assert_eq!(e.line, 3, "{key}={v}: {e}");
    }
    assert!(!valid_host_name("-x"));
}

#[test]
fn remote_paths_must_be_absolute() {
    let d = dir_with_compose();
    let e = parse(
        &d,
        "hosts:\n  web1:\n    state_dir: relative/dir\n    stacks:\n      - name: web\n        compose_file: web/compose.yml\n",
    )
    .unwrap_err();
    assert_eq!(e.line, 3, "{e}");
    assert!(!valid_remote_path("/srv/../etc"));
}

#[test]
fn durations_take_seconds_or_human_units() {
    let d = dir_with_compose();
    let inv = parse(
        &d,
        "defaults:\n  build_period: 2d\nhosts:\n  a:\n    build_period: 600\n    stacks:\n      - name: web\n        compose_file: web/compose.yml\n  b:\n    stacks:\n      - name: web\n        compose_file: web/compose.yml\n",
    )
    .unwrap();
    assert_eq!(secs(inv.hosts[0].stacks[0].keys.build_period), Some(600));
    assert_eq!(
        secs(inv.hosts[1].stacks[0].keys.build_period),
        Some(2 * 86400)
    );
    let e = parse(
        &d,
        "defaults:\n  build_period: soon\nhosts:\n  a:\n    stacks:\n      - name: web\n        compose_file: web/compose.yml\n",
    )
    .unwrap_err();
    assert_eq!(e.line, 2, "{e}");
}

#[test]
fn the_example_inventory_is_valid() {
    let d = tempfile::tempdir().unwrap();
    for s in ["blog", "shop", "status"] {
        std::fs::create_dir_all(d.path().join("stacks").join(s)).unwrap();
        std::fs::write(
            d.path().join(format!("stacks/{s}/compose.yml")),
            "services: {}\n",
        )
        .unwrap();
    }
    std::fs::write(
        d.path().join("stacks/shop/compose.prod.yml"),
        "services: {}\n",
    )
    .unwrap();
    let text = include_str!("../../inventory.example.yaml");
    let inv = parse(&d, text).unwrap();
    assert_eq!(inv.hosts.len(), 2);
    let web2 = &inv.hosts[1];
    assert_eq!(web2.user.as_deref(), Some("admin"));
    assert_eq!(web2.compose, ComposePref::V1);
    assert_eq!(web2.ssh_options["ProxyJump"], "bastion.example.com");
    assert_eq!(web2.ssh_options["ServerAliveCountMax"], "3");
    assert_eq!(
        secs(inv.hosts[0].stacks[0].keys.build_period),
        Some(12 * 3600)
    );
    assert!(inv.hosts[0].stacks[0].adopt);
    assert_eq!(secs(inv.hosts[0].stacks[1].keys.build_period), Some(86400));
    assert_eq!(secs(inv.hosts[0].stacks[1].keys.settle), Some(10));
    assert_eq!(secs(inv.hosts[0].stacks[1].keys.build_timeout), Some(1800));
    // the shared stack, on both hosts of its group, canary first
    for h in &inv.hosts {
        let st = h.stacks.iter().find(|s| s.name == "status").unwrap();
        assert!(st.rollout.canary, "{}", h.name);
        assert_eq!(st.rollout.serial, Some(Limit::Percent(25)));
        assert_eq!(st.rollout.max_failures, Some(Limit::Count(1)));
    }
}

#[test]
fn shared_stacks_land_on_hosts_by_group_or_name() {
    let d = dir_with_compose();
    let inv = parse(
        &d,
        "defaults:\n  rollout:\n    max_failures: 1\nstacks:\n  web:\n    compose_file: web/compose.yml\n    groups: [front]\n    hosts: [c]\n    rollout:\n      serial: 25%\n      canary: true\nhosts:\n  a:\n    groups: [front]\n  b:\n    stacks:\n      - name: other\n        compose_file: web/compose.yml\n  c: {}\n",
    )
    .unwrap();
    let names = |i: usize| -> Vec<&str> {
        inv.hosts[i]
            .stacks
            .iter()
            .map(|s| s.name.as_str())
            .collect()
    };
    assert_eq!(names(0), ["web"]);
    assert_eq!(names(1), ["other"]);
    assert_eq!(names(2), ["web"]);
    assert_eq!(inv.hosts[0].groups, ["front"]);
    let web = &inv.hosts[0].stacks[0].rollout;
    assert_eq!(web.serial, Some(Limit::Percent(25)));
    assert!(web.canary);
    assert_eq!(web.max_failures, Some(Limit::Count(1)), "inherits defaults");
    assert_eq!(
        inv.hosts[1].stacks[0].rollout.max_failures,
        Some(Limit::Count(1))
    );
    assert!(!inv.hosts[1].stacks[0].rollout.canary);
}

#[test]
fn shared_stack_errors() {
    let d = dir_with_compose();
    let e = parse(
        &d,
        "stacks:\n  web:\n    compose_file: web/compose.yml\n    groups: [frnt]\nhosts:\n  a:\n    groups: [front]\n",
    )
    .unwrap_err();
    assert_eq!(e.line, 4, "{e}");
    assert!(e.message.contains("frnt"), "{e}");
    let e = parse(
        &d,
        "stacks:\n  web:\n    compose_file: web/compose.yml\n    hosts: [a]\nhosts:\n  a:\n    stacks:\n      - name: web\n        compose_file: web/compose.yml\n",
    )
    .unwrap_err();
    assert!(e.message.contains("listed twice"), "{e}");
    let e = parse(
        &d,
        "defaults:\n  rollout:\n    serial: lots\nhosts:\n  a:\n    stacks:\n      - name: web\n        compose_file: web/compose.yml\n",
    )
    .unwrap_err();
    assert_eq!(e.line, 3, "{e}");
}

#[test]
fn zero_downtime_names_the_services_that_can_run_beside_and_refuses_none() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("web")).unwrap();
    std::fs::write(
        d.path().join("web/compose.yml"),
        "services:\n  app:\n    build: .\n    ports:\n      - \"80\"\n  proxy:\n    image: p\n    ports:\n      - \"443:443\"\n",
    )
    .unwrap();
    let text = |zd: &str| {
        format!(
            "stacks:\n  shared:\n    compose_file: web/compose.yml\n    hosts: [h]\n    zero_downtime: {zd}\nhosts:\n  h:\n    stacks:\n      - name: web\n        compose_file: web/compose.yml\n        zero_downtime: {zd}\n"
        )
    };
    let inv = parse(&d, &text("true")).unwrap();
    for s in &inv.hosts[0].stacks {
        assert_eq!(s.zero_downtime, ["app"], "{}", s.name);
    }
    let inv = parse(&d, &text("false")).unwrap();
    assert!(
        inv.hosts[0]
            .stacks
            .iter()
            .all(|s| s.zero_downtime.is_empty())
    );

    std::fs::write(
        d.path().join("web/compose.yml"),
        "services:\n  app:\n    build: .\n    ports:\n      - \"8080:80\"\n",
    )
    .unwrap();
    let e = parse(&d, &text("true")).unwrap_err();
    assert_eq!(e.line, 11, "{e}");
    assert!(
        e.message
            .contains("no service can run a second container beside its old one: `app` publishes a fixed host port"),
        "{e}"
    );
    assert!(e.hint.as_deref().unwrap().contains("container_name"), "{e}");
}

#[test]
fn a_root_above_the_compose_file_is_the_stack() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("proj/deploy")).unwrap();
    std::fs::write(
        d.path().join("proj/deploy/compose.yml"),
        "services:\n  app:\n    build: ..\n    volumes:\n      - ../data:/data\n      - ./logs:/logs\n",
    )
    .unwrap();
    std::fs::write(
        d.path().join("proj/deploy/compose.override.yml"),
        "services: {}\n",
    )
    .unwrap();
    let inv = parse(
        &d,
        "hosts:\n  h:\n    stacks:\n      - name: web\n        compose_file: proj/deploy/compose.yml\n        root: proj\n",
    )
    .unwrap();
    let s = &inv.hosts[0].stacks[0];
    assert_eq!(s.dir(), d.path().join("proj"));
    assert_eq!(
        s.compose_files,
        ["deploy/compose.yml", "deploy/compose.override.yml"]
    );
    assert_eq!(s.data_dirs, ["data", "deploy/logs"]);

    let e = parse(
        &d,
        "hosts:\n  h:\n    stacks:\n      - name: web\n        compose_file: proj/deploy/compose.yml\n        root: proj/deploy/nope\n",
    )
    .unwrap_err();
    assert_eq!(e.line, 6, "{e}");
    assert!(e.message.contains("is not a directory"), "{e}");
    std::fs::create_dir_all(d.path().join("other")).unwrap();
    let e = parse(
        &d,
        "hosts:\n  h:\n    stacks:\n      - name: web\n        compose_file: proj/deploy/compose.yml\n        root: other\n",
    )
    .unwrap_err();
    assert!(e.message.contains("is not inside the stack's root"), "{e}");
}

#[test]
fn dir_mode_quoted_or_not_is_octal() {
    let d = dir_with_compose();
    for (v, want) in [("\"0750\"", 0o750), ("0755", 0o755), ("\"0o700\"", 0o700)] {
        let inv = parse(
            &d,
            &format!("hosts:\n  h:\n    stacks:\n      - name: web\n        compose_file: web/compose.yml\n        dir_mode: {v}\n        dir_group: 1000\n"),
        )
        .unwrap();
        let s = &inv.hosts[0].stacks[0];
        assert_eq!(
            (s.dir_mode, s.dir_group.as_deref()),
            (Some(want), Some("1000")),
            "{v}"
        );
    }
    // YAML 1.2's 0o750 is the number 488: refused, not taken as 0488
    assert!(parse(&d, "hosts:\n  h:\n    stacks:\n      - name: web\n        compose_file: web/compose.yml\n        dir_mode: 0o750\n").is_err());
}

#[test]
fn several_compose_files_the_override_and_profiles() {
    let d = dir_with_compose();
    std::fs::write(d.path().join("web/compose.prod.yml"), "services: {}\n").unwrap();
    let inv = parse(
        &d,
        "hosts:\n  a:\n    stacks:\n      - name: web\n        compose_file: [web/compose.yml, web/compose.prod.yml]\n        profiles: [debug, jobs]\n",
    )
    .unwrap();
    let s = &inv.hosts[0].stacks[0];
    assert_eq!(s.compose_files, ["compose.yml", "compose.prod.yml"]);
    assert_eq!(s.profiles, ["debug", "jobs"]);
    // one standard file: its override comes along, as compose does it
    std::fs::write(d.path().join("web/compose.override.yaml"), "services: {}\n").unwrap();
    let inv = parse(
        &d,
        "hosts:\n  a:\n    stacks:\n      - name: web\n        compose_file: web/compose.yml\n",
    )
    .unwrap();
    assert_eq!(
        inv.hosts[0].stacks[0].compose_files,
        ["compose.yml", "compose.override.yaml"]
    );
    // a file outside the stack's directory, a missing one, a bad profile
    std::fs::write(d.path().join("base.yml"), "services: {}\n").unwrap();
    for (files, want) in [
        (
            "[web/compose.yml, base.yml]",
            "is not in the stack's directory",
        ),
        ("[web/compose.yml, web/nope.yml]", "does not exist"),
    ] {
        let e = parse(
            &d,
            &format!(
                "hosts:\n  a:\n    stacks:\n      - name: web\n        compose_file: {files}\n"
            ),
        )
        .unwrap_err();
        assert_eq!(e.line, 5, "{e}");
        assert!(e.message.contains(want), "{e}");
    }
    let e = parse(
        &d,
        "hosts:\n  a:\n    stacks:\n      - name: web\n        compose_file: web/compose.yml\n        profiles: [\"a b\"]\n",
    )
    .unwrap_err();
    assert_eq!(e.line, 6, "{e}");
}

/// The error of an inventory whose shape the parser does not take: its
/// line, message and hint.
fn shape_error(text: &str) -> (u64, String, String) {
    let d = dir_with_compose();
    let e = parse(&d, text).unwrap_err();
    (e.line, e.message, e.hint.unwrap_or_default())
}

#[test]
fn hosts_as_a_list_is_named_as_that_shape() {
    for text in [
        "hosts:\n  - web1\n  - web2\n",
        "hosts:\n- web1\n",
        "hosts:\n  - name: web1\n    stacks: []\n",
    ] {
        let (line, message, hint) = shape_error(text);
        assert_eq!(line, 2, "{text}");
        assert_eq!(
            message,
            "`hosts:` is written as a list: it is a map from each host's name to its keys"
        );
        assert!(
            hint.starts_with("write `web1:` under `hosts:`, not `- web1`"),
            "{hint}"
        );
    }
    let (line, message, _) = shape_error("hosts: web1\n");
    assert_eq!(
        (line, message.as_str()),
        (
            1,
            "`hosts:` is one value: it is a map from each host's name to its keys"
        )
    );
}

#[test]
fn stacks_as_paths_or_one_value_or_a_list_of_shared_stacks_are_named_as_shapes() {
    let (line, message, hint) = shape_error(
        "hosts:\n  web1:\n    address: 10.0.0.1\n    stacks:\n      - web/compose.yml\n",
    );
    assert_eq!(line, 5);
    assert!(
        message.starts_with("a host's `stacks:` lists `web/compose.yml` as a path"),
        "{message}"
    );
    assert_eq!(
        hint,
        "write `- name: web` and, in line with `name:`, `compose_file: web/compose.yml`"
    );
    let (line, message, _) = shape_error("hosts:\n  web1:\n    stacks: web/compose.yml\n");
    assert_eq!(line, 3);
    assert_eq!(
        message,
        "a host's `stacks:` is one value: it lists the host's stacks"
    );
    let (line, message, hint) =
        shape_error("stacks:\n  - blog/compose.yml\nhosts:\n  web1:\n    stacks: []\n");
    assert_eq!(line, 2);
    assert!(
        message.starts_with("the top-level `stacks:` is written as a list"),
        "{message}"
    );
    assert!(hint.starts_with("write `blog:` under `stacks:`"), "{hint}");
}

#[test]
fn a_tab_in_the_indentation_is_named_at_its_line() {
    let (line, message, _) = shape_error("hosts:\n  web1:\n\tstacks:\n      - name: web\n");
    assert_eq!(line, 3);
    assert_eq!(
        message,
        "a tab in the indentation: YAML indents with spaces only"
    );
    let (line, _, _) = shape_error(
        "hosts:\n  web1:\n    stacks:\n      - name: web\n  \t  compose_file: web/compose.yml\n",
    );
    assert_eq!(line, 5);
    // a tab in a block scalar's text is the script's, not the inventory's
    let d = dir_with_compose();
    parse(
        &d,
        "hosts:\n  web1:\n    stacks:\n      - name: web\n        compose_file: web/compose.yml\n        hooks:\n          before: |\n            if true; then\n            \techo a\n            fi\n",
    )
    .unwrap();
}

#[test]
fn a_key_out_of_line_is_named_at_its_own_line() {
    let stack = "    stacks:\n      - name: web\n        compose_file: web/compose.yml\n";
    // one space too many on the host's first key: that key, not the next
    let (line, message, hint) =
        shape_error(&format!("hosts:\n  web1:\n     address: 10.0.0.1\n{stack}"));
    assert_eq!(line, 3);
    assert_eq!(
        message,
        "`address:` is indented 5 spaces, the next key of its block (`stacks:`) 4"
    );
    assert!(hint.starts_with("indent every key of a block"), "{hint}");
    // one space too few on a later key: that key
    let (line, message, _) = shape_error(&format!(
        "hosts:\n  web1:\n    address: 10.0.0.1\n   user: deploy\n{stack}"
    ));
    assert_eq!(line, 4);
    assert!(
        message.starts_with("`user:` is indented 3 spaces, in line with no block"),
        "{message}"
    );
    // deeper than a key with a value
    let (line, message, _) = shape_error(
        "hosts:\n  web1:\n    stacks:\n      - name: web\n          compose_file: web/compose.yml\n",
    );
    assert_eq!(line, 5);
    assert_eq!(
        message,
        "`compose_file:` is indented 10 spaces, deeper than `name:` above it, which has a value of its own"
    );
    // a stack's key between its item's columns
    let (line, message, _) = shape_error(
        "hosts:\n  web1:\n    stacks:\n      - name: web\n       compose_file: web/compose.yml\n",
    );
    assert_eq!(line, 5);
    assert!(
        message.starts_with("`compose_file:` is indented 7 spaces"),
        "{message}"
    );
    // a block scalar's lines are not keys
    let d = dir_with_compose();
    parse(
        &d,
        "hosts:\n  web1:\n    stacks:\n      - name: web\n        compose_file: web/compose.yml\n        hooks:\n          before: |\n            echo a:\n              echo b: c\n",
    )
    .unwrap();
}

#[test]
fn syntax_error_has_a_line() {
    let d = dir_with_compose();
    let e = parse(&d, "hosts:\n  web1:\n    stacks: [\n").unwrap_err();
    assert!(e.line > 0, "{e}");
}
mod fuzz {
    //! The parser on arbitrary text and on inventories made of real keys
    //! with odd values: it never panics, and every error names its line.

    use proptest::prelude::*;

    use super::dir_with_compose as dir;
    use super::*;

    /// Every error of a document with something in it has a line.
    fn check(d: &tempfile::TempDir, text: &str) {
        if let Err(e) = Inventory::parse(&d.path().join("inventory.yaml"), text) {
            let shown = e.to_string();
            assert!(!e.message.is_empty(), "{text:?}");
            if !text.trim().is_empty() {
                assert!(e.line > 0, "no line for {shown:?} in\n{text}");
            }
        }
    }

    const KEYS: &[&str] = &[
        "address",
        "user",
        "port",
        "identity_file",
        "ssh_options",
        "state_dir",
        "remote_root",
        "compose",
        "build_period",
        "up_timeout",
        "build_timeout",
        "connect_timeout",
        "groups",
        "tags",
        "stacks",
        "adopt",
        "zero_downtime",
        "rollout",
        "adress",
        "remote_dir",
        "hosts",
        "defaults",
        "name",
        "compose_file",
        "serial",
        "canary",
        "max_failures",
    ];

    const VALUES: &[&str] = &[
        "",
        "x",
        "-oProxyCommand=id",
        "/",
        "//",
        "/./",
        "/srv/../etc",
        "relative",
        "0",
        "1",
        "22",
        "22x",
        "65536",
        "-1",
        "18446744073709551615",
        "99999999999999999999",
        "1d",
        "sixty",
        "25%",
        "200%",
        "true",
        "no",
        "null",
        "~",
        "[]",
        "{}",
        "[a, b]",
        "{a: 1}",
        "\"a\\nb\"",
        "web/compose.yml",
        "'x; touch /tmp/pwned'",
        "\"\\t\"",
        "!!binary aGk=",
        "&a x",
        "*a",
        "|\n  block",
        "web",
        "v1",
        "auto",
    ];

    fn value() -> impl Strategy<Value = String> {
        prop::sample::select(VALUES).prop_map(str::to_owned)
    }

    fn key() -> impl Strategy<Value = String> {
        prop::sample::select(KEYS).prop_map(str::to_owned)
    }

    /// A host entry: a few `key: value` lines and maybe a stack.
    fn host() -> impl Strategy<Value = String> {
        (
            "[a-z][a-z0-9.-]{0,8}",
            prop::collection::vec((key(), value()), 0..4),
            any::<bool>(),
            prop::collection::vec((key(), value()), 0..3),
        )
            .prop_map(|(name, keys, stack, skeys)| {
                let mut t = format!("  {name}:\n");
                for (k, v) in keys {
                    t.push_str(&format!("    {k}: {v}\n"));
                }
                if stack {
                    t.push_str(
                        "    stacks:\n      - name: web\n        compose_file: web/compose.yml\n",
                    );
                    for (k, v) in skeys {
                        t.push_str(&format!("        {k}: {v}\n"));
                    }
                }
                t
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
            let d = dir();
            let _ = Inventory::parse(&d.path().join("inventory.yaml"), &text);
        }

        #[test]
        fn inventories_of_real_keys_and_odd_values_name_their_line(
            defaults in prop::collection::vec((key(), value()), 0..3),
            hosts in prop::collection::vec(host(), 0..3),
            indent_slip in any::<bool>(),
        ) {
            let d = dir();
            let mut text = String::new();
            if !defaults.is_empty() {
                text.push_str("defaults:\n");
                for (k, v) in &defaults {
                    text.push_str(&format!("  {k}: {v}\n"));
                }
            }
            text.push_str("hosts:\n");
            for h in &hosts {
                text.push_str(h);
            }
            if indent_slip {
                // a mis-indented line somewhere
                text = text.replacen("\n    ", "\n   ", 1);
            }
            check(&d, &text);
        }
    }
}

/// `inventory.example.yaml` says it shows every key: each key each block
/// of the inventory takes (as the parser lists them for an unknown one) is
/// in it, set or commented out.
mod example {
    use super::*;

    /// The keys the block reached by `text` (with `zzz_unknown` in it)
    /// takes, from the parser's hint.
    fn keys_of(text: &str) -> Vec<String> {
        let d = tempfile::tempdir().unwrap();
        let e = Inventory::parse(&d.path().join("inventory.yaml"), text).unwrap_err();
        let hint = e.hint.clone().unwrap_or_default();
        let list = hint
            .strip_prefix("the keys here are ")
            .and_then(|h| h.split_once(';'))
            .map(|(l, _)| l)
            .unwrap_or_else(|| panic!("no key list for {text:?}: {e}"));
        list.split(", ").map(str::to_owned).collect()
    }

    #[test]
    fn the_example_inventory_shows_every_key() {
        let example = include_str!("../../inventory.example.yaml");
        let stack = "{name: a, compose_file: a.yml";
        let blocks = [
            ("top level", "zzz_unknown: 1\nhosts: {}\n".to_owned()),
            (
                "defaults",
                "defaults: {zzz_unknown: 1}\nhosts: {}\n".to_owned(),
            ),
            (
                "rollout",
                "defaults: {rollout: {zzz_unknown: 1}}\nhosts: {}\n".to_owned(),
            ),
            ("host", "hosts: {h: {zzz_unknown: 1}}\n".to_owned()),
            (
                "host's stack",
                format!("hosts: {{h: {{stacks: [{stack}, zzz_unknown: 1}}]}}}}\n"),
            ),
            (
                "hooks",
                format!("hosts: {{h: {{stacks: [{stack}, hooks: {{zzz_unknown: x}}}}]}}}}\n"),
            ),
            (
                "notify",
                "notify: {url: http://x, zzz_unknown: 1}\nhosts: {}\n".to_owned(),
            ),
            (
                "shared stack",
                "stacks: {s: {compose_file: a.yml, zzz_unknown: 1}}\nhosts: {}\n".to_owned(),
            ),
        ];
        let mut missing = Vec::new();
        for (block, text) in &blocks {
            for k in keys_of(text) {
                let shown = example.lines().any(|l| {
                    let l = l.trim_start().trim_start_matches('#').trim_start();
                    l.strip_prefix(k.as_str())
                        .is_some_and(|rest| rest.starts_with(':'))
                        || l.strip_prefix("- ")
                            .and_then(|l| l.strip_prefix(k.as_str()))
                            .is_some_and(|rest| rest.starts_with(':'))
                });
                if !shown {
                    missing.push(format!("{block}: {k}"));
                }
            }
        }
        assert!(
            missing.is_empty(),
            "not in inventory.example.yaml: {missing:?}"
        );
    }
}
