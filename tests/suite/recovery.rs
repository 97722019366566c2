//! Recovering from what goes wrong: a broken image pulled under an old tag,
//! a rollback that fails too, a controller killed mid-rebuild. (A stale
//! lock taken over: tests/script.rs.)

use crate::support::*;

/// An image on the test base with `cmd`, built on the machine's engine
/// (context dir `label`) and pushed as `repo:tag`; returns its ID. The local
/// tag is tracked for removal, the pushed manifest for deletion from the
/// registry.
fn push_image(f: &Fleet, label: &str, repo: &str, tag: &str, cmd: &str) -> String {
    f.push_image(&format!("image-{label}"), repo, tag, &dockerfile(None, cmd))
}

#[test]
fn a_broken_image_under_the_same_tag_is_rolled_back_to_the_old_image() {
    let f = Fleet::new("imageonly", 1);
    let repo = format!("{}/app", f.prefix);
    let reference = format!("{REGISTRY}/{repo}:stable");
    let good = push_image(&f, "good", &repo, "stable", &sleeper_cmd("good"));
    let h1 = f.engine("h1");
    // the host pulls it: nothing of it is there before the first run
    assert!(!h1.has_image(&reference) && !h1.has_image(&good));

    let def = StackDef {
        files: vec![(
            "compose.yml".into(),
            format!(
                "services:\n  app:\n    image: {reference}\n    init: true\n    restart: unless-stopped\n{}",
                healthcheck(3)
            ),
            0o644,
        )],
    };
    let name = f.add_stack("h1", "app", &def);
    f.run(&["--up-timeout-period", "60"]).assert_code(0).expect(
        "h1",
        &name,
        "rebuilt",
        "first_build",
    );
    let v1 = f.assert_running("h1", &name);
    assert_eq!(v1.image, good, "runs the pushed image");
    assert_eq!(v1.health, "healthy");
    let st_good = f.state("h1", &name);

    // a broken image is pushed under the same tag; on the host the tag still
    // names the good one, so only the run's pull can bring the broken one
    let broken = push_image(
        &f,
        "broken",
        &repo,
        "stable",
        "echo broken >/tmp/version; exit 1",
    );
    assert_ne!(broken, good);
    assert_eq!(h1.image_id(&reference), good);
    assert!(!h1.has_image(&broken));

    let run = f.run(&["--force-rebuild", "--up-timeout-period", "60"]);
    run.assert_code(1);
    run.expect("h1", &name, "rolled_back", "forced");
    let err = run.error_of("h1", &name);
    assert!(err.contains("not healthy"), "{}", run.dump());
    // the broken image was pulled and ran, then went with the failed
    // generation; the old one runs again, healthy, under the tag compose uses
    assert!(
        !h1.has_image(&broken),
        "the failed generation's image is removed"
    );
    let now = f.assert_running("h1", &name);
    assert_eq!(now.image, good, "runs the OLD image again");
    assert_eq!(now.health, "healthy");
    assert_eq!(f.container_file("h1", &now.id, "/tmp/version"), "good\n");
    assert_eq!(
        h1.image_id(&reference),
        good,
        "the tag names the old image again, so a later `up` runs it too"
    );
    let st = f.state("h1", &name);
    assert_eq!(st["hash"], st_good["hash"]);
    assert_eq!(st["images"], st_good["images"]);
    assert_eq!(st["last_result"], "failed");
}

#[test]
fn a_rollback_that_fails_too_is_failed_and_claims_nothing() {
    let f = Fleet::new("rollbackfails", 1);
    // the old version is healthy only while GATE/open exists
    let gate = f.root.path().join("gate");
    std::fs::create_dir(&gate).unwrap();
    std::fs::write(gate.join("open"), "").unwrap();
    let name = f.add_stack("h1", "web", &StackDef::behind_gate("v1", &gate, 3));
    f.run(&["--up-timeout-period", "60"]).assert_code(0);
    let v1 = f.assert_running("h1", &name);
    assert_eq!(v1.health, "healthy");
    let good = f.state("h1", &name);
    let good_files = Fleet::snapshot(&f.remote_dir("h1", &name));

    // the new version crashes, and the old one cannot be healthy any more
    f.write(
        &name,
        "Dockerfile",
        &dockerfile(None, "echo v2 >/tmp/version; exit 1"),
    );
    std::fs::remove_file(gate.join("open")).unwrap();
    let run = f.run(&["--up-timeout-period", "60"]);
    run.assert_code(1);
    run.expect("h1", &name, "failed", "config_changed");
    let err = run.error_of("h1", &name);
    let (first, second) = err
        .split_once("rollback failed too")
        .unwrap_or_else(|| panic!("names both failures: {}", run.dump()));
    assert!(first.contains("not healthy: app("), "{err}");
    assert!(second.contains("previous images not healthy"), "{err}");
    assert!(second.contains("unhealthy"), "{err}");

    // what runs: the old image, put back, but not healthy
    let now = f.the_container("h1", &name);
    assert_eq!(now.image, v1.image);
    assert_eq!(now.health, "unhealthy", "{now:?}");
    // no success claimed: the state names the last good build, which runs
    // again, and says it is broken
    let st = f.state("h1", &name);
    assert_eq!(st["hash"], good["hash"]);
    assert_eq!(st["built_at"], good["built_at"]);
    assert_eq!(st["images"], good["images"]);
    assert_eq!(st["last_result"], "broken");
    assert_eq!(st["failed_hash"].len(), 64);
    assert_ne!(st["failed_hash"], good["hash"]);
    assert!(Fleet::snapshot(&f.remote_dir("h1", &name)) == good_files);
    let hist = f.history_lines("h1", &name);
    assert_eq!(hist.len(), 2, "{hist:?}");
    assert!(hist[1].contains(" failed "), "{hist:?}");
    assert!(lock_owner(&f.lock_dir("h1", &name)).is_none());
}

/// The controller stopped while a rebuild waits in its health gate, first
/// with SIGKILL (v2), then with SIGTERM (v3: systemd stopping the unit,
/// `timeout` in cron; the controller exits 143 at once and removes its
/// private directory): each time the host's run is not cut off with it,
/// holds the lock (a run meanwhile is refused), finishes on its own (state
/// written, history, lock released), and the next run finds it done.
#[test]
fn a_controller_killed_or_terminated_mid_rebuild_leaves_the_host_consistent() {
    let f = Fleet::new("killed", 1);
    let gate = f.root.path().join("gate");
    std::fs::create_dir(&gate).unwrap();
    std::fs::write(gate.join("open"), "").unwrap();
    let name = f.add_stack("h1", "web", &StackDef::behind_gate("v1", &gate, 100000));
    f.run(&["--up-timeout-period", "60"]).assert_code(0);
    let lock = f.lock_dir("h1", &name);

    for (version, signal) in [("v2", "KILL"), ("v3", "TERM")] {
        let was = f.assert_running("h1", &name);
        // the rebuild waits in its health gate (closed) when the controller
        // is stopped; its ssh control sockets go under the test's root
        f.write(&name, "Dockerfile", &sleeper_dockerfile(version));
        std::fs::remove_file(gate.join("open")).unwrap();
        let tmp = f.root.path().join(format!("t-{signal}"));
        std::fs::create_dir(&tmp).unwrap();
        let mut c = f.command(&["--json", "--up-timeout-period", "600"]);
        c.env("TMPDIR", &tmp);
        let bg = f.spawn_into_gate(c, "h1", &name, Some(&was.image));
        let owner = lock_owner(&lock).unwrap();
        if signal == "KILL" {
            bg.kill9();
        } else {
            bg.signal(signal);
            let run = bg.finish();
            assert_eq!(run.code, 143, "{}", run.dump());
            let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().collect();
            assert!(left.is_empty(), "private directory left: {left:?}");
        }

        // the rebuild goes on without its controller, holding the lock: a
        // run meanwhile is refused
        let pid = owner.split_whitespace().next().unwrap();
        assert!(
            std::path::Path::new("/proc").join(pid).exists(),
            "{signal}: the remote run ({owner}) outlived its controller"
        );
        let run = f.run(&[]);
        run.assert_code(1);
        run.expect("h1", &name, "failed", "locked");

        // once healthy, it finishes by itself: state written, lock released
        std::fs::write(gate.join("open"), "").unwrap();
        wait_for("the orphaned rebuild to release the lock", || {
            lock_owner(&lock).is_none()
        });
        let now = f.assert_running("h1", &name);
        assert_eq!(now.health, "healthy");
        assert_ne!(now.image, was.image);
        assert_eq!(
            f.container_file("h1", &now.id, "/tmp/version"),
            format!("{version}\n")
        );
        let st = f.state("h1", &name);
        assert_eq!(st["last_result"], "ok");
        assert_eq!(st["images"], format!("app={}", now.image));
        let hist = f.history_lines("h1", &name);
        assert!(
            hist.last().is_some_and(|l| l.contains(" rebuilt ")),
            "{signal}: {hist:?}"
        );

        // the next run finds it done
        f.run(&[])
            .assert_code(0)
            .expect("h1", &name, "skipped", "up_to_date");
        assert_eq!(f.assert_running("h1", &name), now);
        assert!(lock_owner(&lock).is_none());
    }
}
