//! The health gate watches (issue #12, section 1): a service passes only
//! when it is up (healthy where it has a healthcheck, a one-shot one exited
//! 0) and then stays so through the settle window. A version that crashes
//! after a while, restart-loops or turns unhealthy is rolled back to the
//! last generation that passed; the failed attempt is remembered, its
//! images are removed, and the names compose uses point at what runs.

use std::collections::BTreeMap;

use crate::support::*;

/// The one running container of `name` on `host`, and the version it says.
fn runs(f: &Fleet, host: &str, name: &str) -> (Container, String) {
    let c = f.assert_running(host, name);
    let v = f.container_file(host, &c.id, "/tmp/version");
    (c, v.trim().to_owned())
}

/// The image ID the name compose uses for `service` points at, from the
/// state's `names=` (`svc=name,...`).
fn named_image(f: &Fleet, host: &str, st: &BTreeMap<String, String>, service: &str) -> String {
    let names = &st["names"];
    let name = names
        .split(',')
        .find_map(|p| p.strip_prefix(&format!("{service}=")))
        .unwrap_or_else(|| panic!("no name for {service} in names={names}"));
    f.engine(host).image_id(name)
}

/// The host of a stack of this suite (`PREFIX-HOST-STACK`).
fn host_of(name: &str) -> String {
    name.split('-').nth(1).unwrap().to_owned()
}

/// A `svc=x,...` list as a set (its order is the engine's).
fn pairs(list: &str) -> std::collections::BTreeSet<&str> {
    list.split(',').collect()
}

/// A container's exit code.
fn exit_code(f: &Fleet, host: &str, c: &Container) -> String {
    f.docker(host, &["inspect", "--format", "{{.State.ExitCode}}", &c.id])
        .trim()
        .to_owned()
}

/// (a) exits at once, after 1 s and after 5 s (`restart: unless-stopped`),
/// (b) restart-loops under `restart: always`, (c) is healthy once, then
/// unhealthy, or runs but is never healthy: each is rolled back, the old
/// version runs (its image, healthy, the files it ran with on the host),
/// the state keeps the good build, and the next run says
/// `previous_failure` (exit 1). Beside them, a version slow to get healthy
/// within the timeout is rebuilt. `rbuild history` lists the attempts of
/// one of them, newest last, as JSON and as a table. Each stack is on a
/// host of its own, so that their gates run at once.
#[test]
fn crashing_looping_and_turning_unhealthy_versions_are_rolled_back_and_not_retried() {
    let f = Fleet::new("gatewatch", 7);
    let always = |cmd: &str| {
        StackDef::gated(cmd, 2).with(
            "compose.yml",
            &compose(&format!("    restart: always\n{}", healthcheck(2))),
        )
    };
    // (stack, the CMD of its broken v2)
    let cases: Vec<(String, &str)> = vec![
        (
            f.add_stack("h1", "atonce", &StackDef::gated(&sleeper_cmd("v1"), 2)),
            "echo v2 >/tmp/version; exit 1",
        ),
        (
            f.add_stack("h2", "one", &StackDef::gated(&sleeper_cmd("v1"), 2)),
            "echo v2 >/tmp/version; touch /tmp/ok; sleep 1; exit 1",
        ),
        (
            f.add_stack("h3", "five", &StackDef::gated(&sleeper_cmd("v1"), 2)),
            "echo v2 >/tmp/version; touch /tmp/ok; sleep 5; exit 1",
        ),
        (
            f.add_stack("h4", "always", &always(&sleeper_cmd("v1"))),
            "echo v2 >/tmp/version; touch /tmp/ok; sleep 1; exit 1",
        ),
        (
            f.add_stack("h5", "flaky", &StackDef::gated(&sleeper_cmd("v1"), 2)),
            "echo v2 >/tmp/version; touch /tmp/ok; sleep 3; rm /tmp/ok; exec sleep 1000000",
        ),
        (
            f.add_stack("h6", "never", &StackDef::gated(&sleeper_cmd("v1"), 2)),
            "echo v2 >/tmp/version; exec sleep 1000000",
        ),
    ];
    // fails its healthcheck for about 3 s, then passes (60 retries)
    let slow = f.add_stack("h7", "slow", &StackDef::gated(&sleeper_cmd("v1"), 60));
    let run = f.run(&["--up-timeout-period", "40"]);
    run.assert_code(0);
    let mut good = BTreeMap::new();
    let mut good_files = BTreeMap::new();
    for (name, _) in &cases {
        run.expect(&host_of(name), name, "rebuilt", "first_build");
        let (c, v) = runs(&f, &host_of(name), name);
        assert_eq!((c.health.as_str(), v.as_str()), ("healthy", "v1"), "{name}");
        good.insert(name.clone(), (c, f.state(&host_of(name), name)));
        good_files.insert(
            name.clone(),
            Fleet::snapshot(&f.remote_dir(&host_of(name), name)),
        );
    }
    run.expect("h7", &slow, "rebuilt", "first_build");
    let slow_v1 = f.assert_running("h7", &slow);

    for (name, cmd) in &cases {
        f.write(name, "Dockerfile", &dockerfile(None, cmd));
    }
    f.write(
        &slow,
        "Dockerfile",
        &dockerfile(
            None,
            "echo v2 >/tmp/version; sleep 3; touch /tmp/ok; exec sleep 1000000",
        ),
    );
    // the 5 s crash and the turn to unhealthy (about 5 s after the start)
    // come after a 3 s window: this one is 8 s
    let images_before: Vec<_> = f
        .host_names()
        .iter()
        .map(|h| f.engine(h).images())
        .collect();
    let run = f.run(&["--up-timeout-period", "40", "--settle", "8"]);
    run.assert_code(1);
    // slow to get healthy, within the timeout: rebuilt
    run.expect("h7", &slow, "rebuilt", "config_changed");
    let slow_v2 = f.assert_running("h7", &slow);
    let mut images: Vec<_> = f
        .host_names()
        .iter()
        .map(|h| f.engine(h).images())
        .collect();
    images[6].retain(|i| *i != slow_v2.image);
    assert_eq!(
        images, images_before,
        "the failed attempts' images are removed (the slow one's new image is all that is new)"
    );
    assert_eq!(slow_v2.health, "healthy");
    assert_ne!(slow_v2.image, slow_v1.image);
    assert_eq!(f.container_file("h7", &slow_v2.id, "/tmp/version"), "v2\n");
    let st = f.state("h7", &slow);
    assert_eq!(st["last_result"], "ok");
    assert!(st["images"].contains(&slow_v2.image));
    for (name, _) in &cases {
        run.expect(&host_of(name), name, "rolled_back", "config_changed");
        let err = run.error_of(&host_of(name), name);
        if name.ends_with("-flaky") || name.ends_with("-never") {
            assert!(err.contains("app(unhealthy)"), "{name}: {err}");
        } else {
            assert!(
                ["app(restart", "app(exited:1)", "app(starting)"]
                    .iter()
                    .any(|w| err.contains(w)),
                "{name}: names the crash: {err}"
            );
        }
        assert!(err.contains("not "), "{name}: {err}");

        // the good version runs again, on its image
        let (was, st_good) = &good[name];
        let (now, v) = runs(&f, &host_of(name), name);
        assert_eq!(now.image, was.image, "{name}: runs the image that passed");
        assert_eq!(
            (now.health.as_str(), v.as_str()),
            ("healthy", "v1"),
            "{name}"
        );
        // the state keeps the good build and remembers the failed input
        let st = f.state(&host_of(name), name);
        for k in ["hash", "built_at", "images", "names"] {
            assert_eq!(st[k], st_good[k], "{name}: {k}");
        }
        assert_eq!(st["last_result"], "failed", "{name}");
        assert_eq!(st["failed_hash"].len(), 64, "{name}");
        assert_ne!(st["failed_hash"], st_good["hash"], "{name}");
        // the name compose uses points at what runs
        assert_eq!(
            named_image(&f, &host_of(name), &st, "app"),
            was.image,
            "{name}"
        );
        // the host has the files that run
        assert!(
            Fleet::snapshot(&f.remote_dir(&host_of(name), name)) == good_files[name],
            "{name}: the stack dir on the host is the good one"
        );
    }

    // the history of one: the build, then the rolled back attempt
    let name = &cases[0].0;
    let (v1, st_good) = &good[name];
    let failed = f.state("h1", name);
    let run = run_command(f.command(&["--json", "history", "h1", name]));
    run.assert_code(0);
    let doc = run.doc();
    assert_eq!(doc["version"], 2);
    assert_eq!(doc["host"], "h1");
    assert_eq!(doc["stack"], name.as_str());
    let h = doc["history"].as_array().expect("history");
    assert_eq!(h.len(), 2, "{}", run.dump());
    for a in h {
        let keys: Vec<&String> = a.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "detail",
                "finished_at",
                "generation",
                "hash",
                "images",
                "result"
            ],
            "{a}"
        );
    }
    assert_eq!(h[0]["result"], "rebuilt");
    assert_eq!(h[0]["hash"], st_good["hash"].as_str());
    assert_eq!(h[1]["result"], "rolled_back");
    assert_eq!(h[1]["hash"], failed["failed_hash"].as_str());
    assert!(
        h[1]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("not healthy")),
        "{}",
        run.dump()
    );
    // RFC 3339 times, in order
    let at = |a: &serde_json::Value| {
        humantime::parse_rfc3339(a["finished_at"].as_str().unwrap()).unwrap()
    };
    assert!(at(&h[0]) <= at(&h[1]), "{}", run.dump());
    // what ran after each attempt: v1 both times
    let v1_images = serde_json::json!([{"service": "app", "image": v1.image}]);
    assert_eq!(h[0]["images"], v1_images);
    assert_eq!(h[1]["images"], v1_images);
    // the table, newest last
    let run = run_command(f.command(&["history", "h1", name]));
    run.assert_code(0);
    let rebuilt = run.stdout.find("rebuilt").expect("a rebuilt row");
    let rolled = run.stdout.find("rolled_back").expect("a rolled_back row");
    assert!(rebuilt < rolled, "{}", run.dump());
    assert!(
        run.stdout.contains(&st_good["hash"][..12]),
        "{}",
        run.dump()
    );

    // not retried: the same broken input is a previous failure, exit 1
    let before: Vec<_> = cases
        .iter()
        .map(|(n, _)| (f.assert_running(&host_of(n), n), f.state(&host_of(n), n)))
        .collect();
    let run = f.run(&["--up-timeout-period", "40", "--settle", "8"]);
    run.assert_code(4);
    run.expect("h7", &slow, "skipped", "up_to_date");
    for ((name, _), (c, st)) in cases.iter().zip(&before) {
        run.expect(&host_of(name), name, "skipped", "previous_failure");
        assert!(
            run.error_of(&host_of(name), name).contains("still runs"),
            "{}",
            run.dump()
        );
        assert_eq!(
            &f.assert_running(&host_of(name), name),
            c,
            "{name}: untouched"
        );
        assert_eq!(&f.state(&host_of(name), name), st, "{name}");
    }
}

/// (d) One-shot services (`restart: "no"`): one that exits 0 beside a
/// long-running service passes; a migration that exits 1 after about 3 s
/// fails its gate and is rolled back; `depends_on` with
/// `condition: service_completed_successfully` works, and a failing job it
/// waits for fails `up` and is rolled back too. Each stack is on a host of
/// its own, so that their gates run at once.
#[test]
fn one_shot_services_pass_when_they_exit_0_and_a_failing_migration_is_rolled_back() {
    let f = Fleet::new("gateoneshot", 4);
    let job = |cmd: &str, dep: bool| {
        let depends = if dep {
            "    depends_on:\n      migrate:\n        condition: service_completed_successfully\n"
        } else {
            ""
        };
        StackDef::sleeper("v1").with(
            "compose.yml",
            &format!(
                "{}  migrate:\n    build: .\n    init: true\n    restart: \"no\"\n    command: [\"/bin/sh\", \"-c\", {cmd:?}]\n",
                compose(depends)
            ),
        )
    };
    let ok = "echo migrated >/tmp/version; sleep 1; exit 0";
    let beside = f.add_stack("h1", "beside", &job(ok, false));
    let failing = f.add_stack("h2", "failing", &job(ok, false));
    let after = f.add_stack("h3", "after", &job(ok, true));
    let held = f.add_stack("h4", "held", &job(ok, true));
    let all = [&beside, &failing, &after, &held];

    let run = f.run(&["--up-timeout-period", "40"]);
    run.assert_code(0);
    let mut v1 = BTreeMap::new();
    for name in all {
        run.expect(&host_of(name), name, "rebuilt", "first_build");
        let cs = f.containers(&host_of(name), name);
        assert_eq!(cs.len(), 2, "{name}: {cs:?}");
        let (app, migrate) = (&cs[0], &cs[1]);
        assert_eq!(
            (app.service.as_str(), app.status.as_str()),
            ("app", "running")
        );
        assert_eq!(
            f.container_file(&host_of(name), &app.id, "/tmp/version"),
            "v1\n"
        );
        assert_eq!(migrate.service, "migrate");
        assert_eq!(migrate.status, "exited", "{name}: the job ran to its end");
        assert_eq!(exit_code(&f, &host_of(name), migrate), "0", "{name}");
        let st = f.state(&host_of(name), name);
        assert_eq!(st["last_result"], "ok", "{name}");
        assert!(
            st["images"].contains(&format!("app={}", app.image)),
            "{st:?}"
        );
        v1.insert(name.clone(), (app.clone(), migrate.clone(), st));
    }

    // v2 of `failing`: the app is new, the migration exits 1 after ~3 s,
    // inside an 8 s settle window; v2 of `held`: its migration exits 1, and
    // the app that depends on it is never started
    let break_it = |name: &str, broken: &str| {
        f.write(name, "Dockerfile", &sleeper_dockerfile("v2"));
        let text = std::fs::read_to_string(f.local_dir(name).join("compose.yml")).unwrap();
        f.write(
            name,
            "compose.yml",
            &text.replace(&format!("{ok:?}"), &format!("{broken:?}")),
        );
    };
    break_it(&failing, "echo migrating >/tmp/version; sleep 3; exit 1");
    break_it(&held, "echo migrating >/tmp/version; sleep 1; exit 1");
    let images_before: Vec<_> = f
        .host_names()
        .iter()
        .map(|h| f.engine(h).images())
        .collect();
    let run = f.run(&["--up-timeout-period", "40", "--settle", "8"]);
    run.assert_code(1);
    assert_eq!(
        f.host_names()
            .iter()
            .map(|h| f.engine(h).images())
            .collect::<Vec<_>>(),
        images_before,
        "the failed attempts' images are removed"
    );
    run.expect(&host_of(&beside), &beside, "skipped", "up_to_date");
    run.expect(&host_of(&after), &after, "skipped", "up_to_date");
    run.expect(
        &host_of(&failing),
        &failing,
        "rolled_back",
        "config_changed",
    );
    let err = run.error_of(&host_of(&failing), &failing);
    assert!(
        err.contains("migrate(exited:1)"),
        "names the job: {}",
        run.dump()
    );
    run.expect(&host_of(&held), &held, "rolled_back", "config_changed");
    let err = run.error_of(&host_of(&held), &held);
    assert!(err.contains("up failed"), "{}", run.dump());

    for name in [&failing, &held] {
        // v1's app runs again; the migration that ran is v1's (exit 0)
        let (app_was, migrate_was, st_good) = &v1[name];
        let cs = f.containers(&host_of(name), name);
        assert_eq!(cs.len(), 2, "{name}: {cs:?}");
        assert_eq!(cs[0].service, "app");
        assert!(cs[0].running(), "{name}: {cs:?}");
        assert_eq!(cs[0].image, app_was.image, "{name}: v1's app runs");
        assert_eq!(
            f.container_file(&host_of(name), &cs[0].id, "/tmp/version"),
            "v1\n"
        );
        assert_eq!(cs[1].service, "migrate");
        assert_eq!(cs[1].image, migrate_was.image, "{name}: v1's migration ran");
        assert_eq!(exit_code(&f, &host_of(name), &cs[1]), "0", "{name}: {cs:?}");
        let st = f.state(&host_of(name), name);
        for k in ["hash", "built_at"] {
            assert_eq!(st[k], st_good[k], "{name}: {k}");
        }
        // the one-shot's image is part of the generation that is kept
        for k in ["images", "names"] {
            assert_eq!(pairs(&st[k]), pairs(&st_good[k]), "{name}: {k}");
        }
        assert_eq!(st["last_result"], "failed", "{name}");
        assert_eq!(named_image(&f, &host_of(name), &st, "app"), app_was.image);
        assert_eq!(
            named_image(&f, &host_of(name), &st, "migrate"),
            migrate_was.image
        );
    }

    // and it is not retried
    let run = f.run(&["--up-timeout-period", "40"]);
    run.assert_code(4);
    run.expect(&host_of(&failing), &failing, "skipped", "previous_failure");
    run.expect(&host_of(&held), &held, "skipped", "previous_failure");
    for name in [&beside, &after] {
        run.expect(&host_of(name), name, "skipped", "up_to_date");
        assert_eq!(
            running_service(&f, &host_of(name), name, "app"),
            v1[name].0.id
        );
    }
}

/// The ID of the running container of `service` of `name` on `host`.
fn running_service(f: &Fleet, host: &str, name: &str, service: &str) -> String {
    let cs = f.containers(host, name);
    let c = cs
        .iter()
        .find(|c| c.service == service)
        .unwrap_or_else(|| panic!("{name}: no {service}: {cs:?}"));
    assert!(c.running(), "{name}: {c:?}");
    c.id.clone()
}

/// (e) The rollback target is the last generation that passed its gate:
/// a failed first build (nothing to roll back to: its containers kept,
/// stopped; not retried), a good second, a failed third goes back to the
/// second; `rbuild rollback` never restores the failed first attempt, and
/// after a good fourth it puts the second back, which then holds (`held`)
/// until forced. (f) A failed attempt's images are removed, the first
/// build's included, and the names compose uses point at what runs.
/// Unknown hosts and stacks given to `rollback` and `history` are usage
/// errors, no host contacted.
#[test]
fn the_rollback_target_is_the_last_generation_that_passed_and_failed_images_go() {
    let f = Fleet::new("gatetarget", 1);
    let h1 = f.engine("h1");
    let name = f.add_stack(
        "h1",
        "web",
        &StackDef::gated("echo v1 >/tmp/version; exit 1", 2),
    );
    let t = ["--up-timeout-period", "30"];
    let ver = |v: &str| f.write(&name, "Dockerfile", &dockerfile(None, v));

    // 1: the first build fails its gate; its container is kept, stopped
    let run = f.run(&t);
    run.assert_code(1);
    run.expect("h1", &name, "failed", "first_build");
    let err = run.error_of("h1", &name);
    assert!(err.contains("nothing to roll back to"), "{}", run.dump());
    assert!(err.contains("the new containers were stopped"), "{err}");
    // they are kept (for their logs), stopped: not running, not restarting
    // (restart: unless-stopped would bring them back unless stopped by hand)
    let first = f.the_container("h1", &name);
    assert_eq!(first.status, "exited", "{first:?}");
    // no success was claimed; the failed input is remembered
    let st1 = f.state("h1", &name);
    assert_eq!(
        (st1["hash"].as_str(), st1["last_result"].as_str()),
        ("-", "failed")
    );
    assert_eq!(st1["failed_hash"].len(), 64);
    let run = f.run(&t);
    run.expect("h1", &name, "skipped", "previous_failure");
    run.assert_code(4);
    assert!(
        run.error_of("h1", &name).contains("no version runs"),
        "{}",
        run.dump()
    );

    // 2: fixed, it passes; the failed first attempt's image is gone
    ver(&sleeper_cmd("v2"));
    let run = f.run(&t);
    run.assert_code(0);
    // (no build passed yet: still a first build)
    run.expect("h1", &name, "rebuilt", "first_build");
    let (v2, v) = runs(&f, "h1", &name);
    assert_eq!(v, "v2");
    assert!(
        !h1.has_image(&first.image),
        "the failed first attempt's image {} is removed",
        first.image
    );
    let st2 = f.state("h1", &name);
    assert_eq!(st2["last_result"], "ok");
    assert_eq!(st2["images"], format!("app={}", v2.image));
    assert_eq!(named_image(&f, "h1", &st2, "app"), v2.image);

    // 3: it fails again: back to the second, never the first; the
    // untested image is gone, the engine holds what it held before
    let images_before = h1.images();
    ver("echo v3 >/tmp/version; exit 1");
    let run = f.run(&t);
    run.assert_code(1);
    run.expect("h1", &name, "rolled_back", "config_changed");
    let (now, v) = runs(&f, "h1", &name);
    assert_eq!((now.image.as_str(), v.as_str()), (v2.image.as_str(), "v2"));
    assert_eq!(
        h1.images(),
        images_before,
        "the failed attempt's images are removed"
    );
    let st3 = f.state("h1", &name);
    for k in ["hash", "built_at", "images", "names", "prev_images"] {
        assert_eq!(st3[k], st2[k], "{k}");
    }
    assert_eq!(st3["last_result"], "failed");
    assert_eq!(
        named_image(&f, "h1", &st3, "app"),
        v2.image,
        "the name points at what runs"
    );

    // by hand: there is no passed generation before the second, so nothing
    // is restored (not the failed first attempt), nothing is touched
    let rollback = || {
        run_command(f.command(&[
            "--json",
            "--up-timeout-period",
            "30",
            "rollback",
            "h1",
            &name,
        ]))
    };
    let run = rollback();
    run.assert_code(1);
    run.expect("h1", &name, "failed", "manual");
    assert!(
        run.error_of("h1", &name)
            .contains("no generation older than"),
        "{}",
        run.dump()
    );
    assert_eq!(f.assert_running("h1", &name), now, "nothing was touched");
    assert_eq!(f.state("h1", &name), st3);

    // 4: a good fourth; now rollback by hand goes to the second (the last
    // that passed before it), not to the failed third or first
    ver(&sleeper_cmd("v4"));
    let run = f.run(&t);
    run.assert_code(0);
    run.expect("h1", &name, "rebuilt", "config_changed");
    let (v4, v) = runs(&f, "h1", &name);
    assert_eq!(v, "v4");
    let st4 = f.state("h1", &name);
    assert_eq!(st4["prev_images"], format!("app={}", v2.image));

    let run = rollback();
    run.assert_code(0);
    run.expect("h1", &name, "rolled_back", "manual");
    assert_eq!(run.rows().len(), 1);
    let (back, v) = runs(&f, "h1", &name);
    assert_eq!((back.image.as_str(), v.as_str()), (v2.image.as_str(), "v2"));
    assert_eq!(back.health, "healthy");
    // the state claims what runs
    let st = f.state("h1", &name);
    assert_eq!(st["images"], format!("app={}", v2.image));
    // a rollback never goes forward: nothing older than the second is
    // kept, the fourth stays kept for `--to`
    assert_eq!(st["prev_images"], "-");
    assert_eq!(st["generations"], "1,2");
    assert_eq!(st["gen"], "1");
    assert_eq!(st["last_result"], "rolled_back");
    assert!(
        f.state_text("h1", &name).unwrap().contains(&v4.image),
        "the fourth stays kept"
    );
    assert_eq!(named_image(&f, "h1", &st, "app"), v2.image);
    assert!(!h1.has_image(&first.image));
    assert_eq!(st["failed_hash"], st4["hash"]);
    let hist = f.history_lines("h1", &name);
    assert!(
        hist.last().is_some_and(|l| l.contains(" rolled_back ")),
        "{hist:?}"
    );
    assert!(lock_owner(&f.lock_dir("h1", &name)).is_none());

    // the rollback holds: the next run does not go forward to the fourth
    // at once, and an operator's choice is not a failure
    let run = f.run(&t);
    run.assert_code(0);
    run.expect("h1", &name, "skipped", "held");
    assert_eq!(f.assert_running("h1", &name), back, "nothing was touched");

    // unknown hosts and stacks: usage errors, no host contacted
    let logins = f.accepted_logins("h1");
    for (args, says) in [
        (
            vec!["rollback", "h9", &name],
            "host `h9` is not in the inventory",
        ),
        (vec!["rollback", "h1", "nope"], "runs no stack `nope`"),
        (
            vec!["history", "h9", &name],
            "host `h9` is not in the inventory",
        ),
        (vec!["history", "h1", "nope"], "runs no stack `nope`"),
    ] {
        let run = run_command(f.command(&args));
        run.assert_code(2);
        assert!(run.stderr.contains(says), "{args:?}:\n{}", run.dump());
    }
    assert_eq!(f.accepted_logins("h1"), logins, "no host was contacted");

    // forced, it goes forward
    let run = f.run(&["--force-rebuild", "--up-timeout-period", "30"]);
    run.assert_code(0);
    run.expect("h1", &name, "rebuilt", "forced");
    let (_, v) = runs(&f, "h1", &name);
    assert_eq!(v, "v4");
    assert_eq!(f.state("h1", &name)["last_result"], "ok");
}

/// A job (a service another one waits for to complete:
/// `service_completed_successfully`) is waited for to its end, however long
/// it runs within the up timeout, not only through the settle window: one
/// that fails after the window is still a failed rebuild, and a rebuild
/// whose job is still running has not passed.
#[test]
fn a_one_shot_job_is_waited_for_past_the_settle_window() {
    let f = Fleet::new("gatelongjob", 1);
    // the app and a job `migrate` running `cmd`, which the app waits for
    let job = |cmd: &str| {
        format!(
            "{}  migrate:\n    build: .\n    init: true\n    restart: \"no\"\n    command: [\"/bin/sh\", \"-c\", {cmd:?}]\n",
            compose(
                "    depends_on:\n      migrate:\n        condition: service_completed_successfully\n"
            )
        )
    };
    let name = f.add_stack(
        "h1",
        "web",
        &StackDef::sleeper("v1").with("compose.yml", &job("exit 0")),
    );
    f.run(&["--up-timeout-period", "60", "--settle", "2"])
        .assert_code(0)
        .expect("h1", &name, "rebuilt", "first_build");
    let v1 = f.state("h1", &name);

    // v2's migration fails 6 s after it starts: past the 2 s window
    f.write(&name, "compose.yml", &job("sleep 6; exit 1"));
    f.write(&name, "Dockerfile", &sleeper_dockerfile("v2"));
    let run = f.run(&["--up-timeout-period", "60", "--settle", "2"]);
    run.assert_code(1);
    run.expect("h1", &name, "rolled_back", "config_changed");
    assert!(
        run.error_of("h1", &name).contains("migrate(exited:1)"),
        "{}",
        run.dump()
    );
    let st = f.state("h1", &name);
    assert_eq!(st["hash"], v1["hash"]);
    assert_eq!(st["last_result"], "failed");

    // v3's migration takes 6 s and succeeds: the rebuild passes once it
    // has ended (it is not running any more when the run reports)
    f.write(&name, "compose.yml", &job("sleep 6; exit 0"));
    f.write(&name, "Dockerfile", &sleeper_dockerfile("v3"));
    let run = f.run(&["--up-timeout-period", "60", "--settle", "2"]);
    run.assert_code(0);
    run.expect("h1", &name, "rebuilt", "config_changed");
    let migrate = f
        .containers("h1", &name)
        .into_iter()
        .find(|c| c.service == "migrate")
        .unwrap();
    assert_eq!(
        migrate.status, "exited",
        "the job had ended when the gate passed"
    );
    assert_eq!(exit_code(&f, "h1", &migrate), "0");
    assert_eq!(f.state("h1", &name)["last_result"], "ok");
}
