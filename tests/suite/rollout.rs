//! Rollouts across hosts: a failed canary or a spent failure budget halts a
//! shared stack's rollout, and the hosts that had not started are not
//! touched; checks are never held back; `--limit` matches groups, takes
//! exclusions and tags, and `--shard` splits the hosts.
//!
//! A shared stack is one compose project on each host's own engine. A host
//! a rollout did not reach is shown untouched by everything it holds
//! ([`HostView`]): its state directory (state file, history, the rebuild
//! log every attempt truncates, no lock) and stack directory byte for byte,
//! and its engine's containers (IDs, images, running and healthy) and
//! images.

use std::collections::BTreeMap;

use crate::support::*;

/// Each host's state file, its container and everything it holds, to
/// prove later that a host was not touched.
#[allow(clippy::type_complexity)]
fn record_hosts(
    f: &Fleet,
    hosts: &[String],
    name: &str,
) -> (
    BTreeMap<String, BTreeMap<String, String>>,
    BTreeMap<String, Container>,
    BTreeMap<String, HostView>,
) {
    let good = hosts
        .iter()
        .map(|h| (h.clone(), f.state(h, name)))
        .collect();
    let running = hosts
        .iter()
        .map(|h| (h.clone(), f.assert_running(h, name)))
        .collect();
    let before = hosts.iter().map(|h| (h.clone(), f.view(h))).collect();
    (good, running, before)
}

/// A host that was rolled back: it still claims its good build, remembers
/// the failed input, recorded the attempt, and runs its old image again.
fn assert_rolled_back_on(
    f: &Fleet,
    host: &str,
    name: &str,
    good: &BTreeMap<String, String>,
    v1: &Container,
) {
    let st = f.state(host, name);
    assert_eq!(st["hash"], good["hash"], "{host}");
    assert_eq!(st["images"], good["images"], "{host}");
    assert_eq!(st["last_result"], "failed", "{host}");
    assert_eq!(st["failed_hash"].len(), 64, "{host}");
    assert_ne!(st["failed_hash"], good["hash"], "{host}");
    let hist = f.history_lines(host, name);
    assert!(
        hist.last().is_some_and(|l| l.contains(" rolled_back ")),
        "{host}: {hist:?}"
    );
    assert!(lock_owner(&f.lock_dir(host, name)).is_none(), "{host}");
    let now = f.assert_running(host, name);
    assert_eq!(
        now.image, v1.image,
        "{host}: runs the image recorded before"
    );
    assert_eq!(now.health, "healthy", "{host}");
    assert_eq!(f.container_file(host, &now.id, "/tmp/version"), "v1\n");
}

/// A host the rollout never reached: everything it holds is as it was,
/// its container the same one, running the same image.
fn assert_untouched(f: &Fleet, host: &str, name: &str, v1: &Container, before: &HostView) {
    assert_eq!(&f.assert_running(host, name), v1, "{host}: its container");
    assert!(
        &f.view(host) == before,
        "{host}: its state dir, stack dir, containers and images are as they were"
    );
}

#[test]
fn a_failed_canary_halts_the_rollout_and_leaves_the_other_hosts_alone() {
    let f = Fleet::new("canary", 4);
    let hosts = f.host_names();
    for h in &hosts {
        f.set_groups(h, &["front"]);
    }
    let name = f.add_shared_stack(
        "web",
        &StackDef::gated(&sleeper_cmd("v1"), 3),
        &[],
        &["front"],
        Some(Rollout::canary()),
    );
    let inv: serde_json::Value = serde_saphyr::from_str(&f.inventory_text()).unwrap();
    for h in &hosts {
        assert_eq!(
            inv["hosts"][h]["groups"],
            serde_json::json!(["front"]),
            "{inv}"
        );
    }
    assert_eq!(inv["stacks"][&name]["rollout"]["canary"], true, "{inv}");

    // the first rollout, canary first, then the other three at once, passes
    let run = f.run(&["--up-timeout-period", "120"]);
    run.assert_code(0);
    for h in &hosts {
        run.expect(h, &name, "rebuilt", "first_build");
        let st = f.state(h, &name);
        assert_eq!(st["last_result"], "ok", "{h}");
        assert_eq!(f.history_lines(h, &name).len(), 1, "{h}");
        assert!(f.remote_dir(h, &name).join("compose.yml").is_file(), "{h}");
        let c = f.assert_running(h, &name);
        assert_eq!(c.health, "healthy", "{h}");
        assert!(st["images"].contains(&c.image), "{h}: {st:?}");
        assert_eq!(f.container_file(h, &c.id, "/tmp/version"), "v1\n");
        // one project on each host's own engine, and nothing else
        assert_eq!(f.engine(h).all_containers(), vec![c.clone()], "{h}");
    }
    let (good, v1, before) = record_hosts(&f, &hosts, &name);

    // a broken version: it crash-loops on the canary, which is rolled back,
    // and nobody else starts
    f.write(
        &name,
        "Dockerfile",
        &dockerfile(None, "echo v2 >/tmp/version; exit 1"),
    );
    let run = f.run(&["--up-timeout-period", "60"]);
    run.assert_code(1);
    let canary = run.hosts_with(&name, "rolled_back");
    assert_eq!(canary.len(), 1, "exactly one canary:\n{}", run.dump());
    let canary = &canary[0];
    run.expect(canary, &name, "rolled_back", "config_changed");
    let halted: Vec<&String> = hosts.iter().filter(|h| *h != canary).collect();
    for h in &halted {
        run.expect(h, &name, "skipped", "rollout_halted");
        let err = run.error_of(h, &name);
        assert!(err.contains("canary failed"), "{h}: {err}");
        assert!(err.contains(&name), "{h}: {err}");
    }

    // the canary is back on its old image, healthy, with its old files
    assert_rolled_back_on(&f, canary, &name, &good[canary], &v1[canary]);
    assert!(
        Fleet::snapshot(&f.srv_dir(canary)) == before[canary].srv,
        "the canary's files are the old ones again"
    );
    // the others were not touched at all
    for h in &halted {
        assert_untouched(&f, h, &name, &v1[*h], &before[*h]);
    }
}

#[test]
fn a_spent_failure_budget_halts_the_rest_of_the_rollout() {
    let f = Fleet::new("budget", 4);
    let hosts = f.host_names();
    let all: Vec<&str> = hosts.iter().map(String::as_str).collect();
    let name = f.add_shared_stack(
        "web",
        &StackDef::gated(&sleeper_cmd("v1"), 3),
        &all,
        &[],
        None,
    );
    let run = f.run(&["--up-timeout-period", "120"]);
    run.assert_code(0);
    for h in &hosts {
        run.expect(h, &name, "rebuilt", "first_build");
    }
    let (good, v1, before) = record_hosts(&f, &hosts, &name);

    // broken everywhere, one host at a time, one failure tolerated: the
    // second failure halts the rollout
    f.write(
        &name,
        "Dockerfile",
        &dockerfile(None, "echo v2 >/tmp/version; exit 1"),
    );
    let run = f.run(&[
        "--serial",
        "1",
        "--max-failures",
        "1",
        "--up-timeout-period",
        "60",
    ]);
    run.assert_code(1);
    let failed = run.hosts_with(&name, "rolled_back");
    assert_eq!(failed.len(), 2, "{}", run.dump());
    let halted = run.hosts_with(&name, "skipped");
    assert_eq!(halted.len(), 2, "{}", run.dump());
    for h in &failed {
        run.expect(h, &name, "rolled_back", "config_changed");
        assert_rolled_back_on(&f, h, &name, &good[h], &v1[h]);
    }
    for h in &halted {
        run.expect(h, &name, "skipped", "rollout_halted");
        let err = run.error_of(h, &name);
        assert!(
            err.contains("2 of its rebuilds failed") && err.contains("max_failures (1)"),
            "{h}: {err}"
        );
        assert_untouched(&f, h, &name, &v1[h], &before[h]);
    }
}

#[test]
fn hosts_with_nothing_due_are_not_held_back_by_a_rollout() {
    let f = Fleet::new("nowait", 3);
    let gate = f.root.path().join("gate");
    std::fs::create_dir(&gate).unwrap();
    std::fs::write(gate.join("open"), "").unwrap();
    let name = f.add_shared_stack(
        "web",
        &StackDef::behind_gate("v1", &gate, 100000),
        &["h1", "h2", "h3"],
        &[],
        None,
    );
    f.run(&["--up-timeout-period", "120"]).assert_code(0);
    let h3_container = f.assert_running("h3", &name);
    let h3_before = f.view("h3");

    // h1 and h2 are due (their state is gone), h3 is not. Their containers
    // are gone too, so each rebuild starts a new one (the same files build
    // the same image, which compose would leave running). With --serial 1
    // one of h1/h2 rebuilds and waits in its health gate until the test
    // opens it; the other waits for its turn; h3 is reported meanwhile.
    for h in ["h1", "h2"] {
        std::fs::remove_file(f.state_path(h, &name)).unwrap();
        let old = f.the_container(h, &name);
        f.docker(h, &["rm", "-f", &old.id]);
    }
    std::fs::remove_file(gate.join("open")).unwrap();
    let progress = f.root.path().join("progress.log");
    let mut bg = Background::spawn_stderr_to(
        f.command(&[
            "--json",
            "-v",
            "--serial",
            "1",
            "--up-timeout-period",
            "600",
        ]),
        &progress,
    );
    let line = |h: &str| format!("{h} {name}: skipped (up_to_date)");
    let starting = |h: &str| {
        f.containers(h, &name)
            .iter()
            .any(|c| c.health == "starting")
    };
    wait_for(
        "h3 to be reported while a rebuild waits in its gate",
        || {
            let text = std::fs::read_to_string(&progress).unwrap_or_default();
            !bg.running() || (text.contains(&line("h3")) && (starting("h1") || starting("h2")))
        },
    );
    assert!(
        bg.running(),
        "the run ended with the gate closed: {}",
        std::fs::read_to_string(&progress).unwrap_or_default()
    );
    // exactly one of h1/h2 is rebuilding: the other is held back, and has
    // no container yet
    let locked: Vec<&str> = ["h1", "h2"]
        .into_iter()
        .filter(|h| lock_owner(&f.lock_dir(h, &name)).is_some())
        .collect();
    assert_eq!(locked.len(), 1, "{locked:?}");
    let with_container: Vec<&str> = ["h1", "h2"]
        .into_iter()
        .filter(|h| !f.containers(h, &name).is_empty())
        .collect();
    assert_eq!(with_container, locked);

    std::fs::write(gate.join("open"), "").unwrap();
    let run = bg.finish();
    run.assert_code(0);
    run.expect("h1", &name, "rebuilt", "first_build");
    run.expect("h2", &name, "rebuilt", "first_build");
    run.expect("h3", &name, "skipped", "up_to_date");
    assert_untouched(&f, "h3", &name, &h3_container, &h3_before);
    for h in ["h1", "h2"] {
        assert_eq!(f.assert_running(h, &name).health, "healthy", "{h}");
    }
}

/// `--limit` by group (a host in two groups included), by pattern with an
/// exclusion, `--exclude @TAG` and `--shard`: each selects exactly its
/// hosts, and a host left out is not even contacted; `status` selects the
/// same way.
#[test]
fn limit_groups_exclusions_tags_and_shards_select_exactly_their_hosts() {
    let f = Fleet::new("select", 3);
    f.set_groups("h1", &["front"]);
    f.set_groups("h2", &["front", "west"]);
    f.set_groups("h3", &["back"]);
    f.edit_inventory(|inv| inv.host("h3").tags = vec!["eu".into()]);
    let names = f.web_everywhere();
    let hosts_of = |run: &crate::support::runs::Run| -> Vec<String> {
        let mut h: Vec<String> = run
            .rows()
            .iter()
            .map(|r| r["host"].as_str().unwrap().to_owned())
            .collect();
        h.sort();
        h
    };
    let untouched = |h: &str, name: &str| {
        assert_eq!(f.accepted_logins(h), 0, "{h} was contacted");
        assert!(f.containers(h, name).is_empty());
        assert!(f.engine(h).images().is_empty(), "{h} built nothing");
        assert_eq!(Fleet::entries(&f.state_dir(h)), Vec::<String>::new());
        assert_eq!(Fleet::entries(&f.srv_dir(h)), Vec::<String>::new());
    };

    // a group: the front hosts; h3 is not even contacted
    let run = f.run(&["--limit", "front"]);
    run.assert_code(0);
    run.expect("h1", &names[0], "rebuilt", "first_build");
    run.expect("h2", &names[1], "rebuilt", "first_build");
    assert_eq!(
        hosts_of(&run),
        ["h1", "h2"],
        "only the front hosts:\n{}",
        run.dump()
    );
    f.assert_running("h1", &names[0]);
    f.assert_running("h2", &names[1]);
    untouched("h3", &names[2]);

    // every host less h1: h1 is not contacted
    let logins_h1 = f.accepted_logins("h1");
    let run = f.run(&["--limit", "h*,!h1"]);
    run.assert_code(0);
    assert_eq!(hosts_of(&run), ["h2", "h3"], "{}", run.dump());
    run.expect("h2", &names[1], "skipped", "up_to_date");
    run.expect("h3", &names[2], "rebuilt", "first_build");
    assert_eq!(f.accepted_logins("h1"), logins_h1, "h1 was contacted");

    // `--exclude @TAG`: h3 (tagged eu) is left out
    f.write(&names[0], "Dockerfile", &sleeper_dockerfile("v2"));
    let logins_h3 = f.accepted_logins("h3");
    let run = f.run(&["--dry-run", "--exclude", "@eu"]);
    run.assert_code(0);
    assert_eq!(hosts_of(&run), ["h1", "h2"], "{}", run.dump());
    run.expect("h1", &names[0], "would_rebuild", "config_changed");
    run.expect("h2", &names[1], "skipped", "up_to_date");
    assert_eq!(f.accepted_logins("h3"), logins_h3, "h3 was contacted");

    // shards: disjoint, and together every host
    let one = f.run(&["--dry-run", "--shard", "1/2"]);
    let two = f.run(&["--dry-run", "--shard", "2/2"]);
    one.assert_code(0);
    two.assert_code(0);
    let (one, two) = (hosts_of(&one), hosts_of(&two));
    assert!(one.iter().all(|h| !two.contains(h)), "{one:?} {two:?}");
    let mut all = [one, two].concat();
    all.sort();
    assert_eq!(all, ["h1", "h2", "h3"]);
    // and `status` selects the same way
    let run = run_command(f.command(&["--json", "status", "--limit", "@eu"]));
    let rows = run.doc()["stacks"].as_array().expect("stacks");
    assert_eq!(rows.len(), 1, "{}", run.dump());
    assert_eq!(rows[0]["host"], "h3", "{}", run.dump());
}
