//! The health gate: a rebuild whose new containers do not come up healthy
//! is rolled back to the images that ran before, and not retried in a loop.

use crate::support::*;

#[test]
fn a_crash_looping_rebuild_is_rolled_back_and_not_retried() {
    let f = Fleet::new("rollback", 1);
    let name = f.add_stack("h1", "web", &StackDef::gated(&sleeper_cmd("v1"), 3));
    f.run(&["--up-timeout-period", "60"]).assert_code(0).expect(
        "h1",
        &name,
        "rebuilt",
        "first_build",
    );
    let v1 = f.assert_running("h1", &name);
    assert_eq!(v1.health, "healthy");
    let good = f.state("h1", &name);
    let good_files = Fleet::snapshot(&f.remote_dir("h1", &name));

    // v2 exits at once: it crash-loops and never gets healthy
    f.write(
        &name,
        "Dockerfile",
        &dockerfile(None, "echo v2 >/tmp/version; exit 1"),
    );
    let run = f.run(&["--up-timeout-period", "30"]);
    run.assert_code(1);
    let r = run.expect("h1", &name, "rolled_back", "config_changed");
    assert!(
        r["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{}",
        run.dump()
    );

    // the old image runs again, healthy
    let now = f.assert_running("h1", &name);
    assert_eq!(now.image, v1.image, "runs the image recorded before");
    assert_eq!(now.health, "healthy");
    assert_eq!(f.container_file("h1", &now.id, "/tmp/version"), "v1\n");
    // the host still claims the good build, remembers the failed input,
    // and has the files that run
    let st = f.state("h1", &name);
    assert_eq!(st["hash"], good["hash"]);
    assert_eq!(st["built_at"], good["built_at"]);
    assert_eq!(st["images"], good["images"]);
    assert_eq!(st["last_result"], "failed");
    assert_ne!(st["failed_hash"], good["hash"]);
    assert_eq!(st["failed_hash"].len(), 64);
    assert!(Fleet::snapshot(&f.remote_dir("h1", &name)) == good_files);

    // the same broken input is not rebuilt again, but it is not fine either:
    // the run says so, and exits 4 (held back, nothing tried)
    let run = f.run(&["--up-timeout-period", "30"]);
    run.expect("h1", &name, "skipped", "previous_failure");
    run.assert_code(4);
    assert!(
        run.error_of("h1", &name).contains("still runs"),
        "{}",
        run.dump()
    );
    assert_eq!(f.assert_running("h1", &name), now, "nothing was touched");
    assert_eq!(f.state("h1", &name), st);
}

#[test]
fn a_service_slow_to_get_healthy_within_the_timeout_is_rebuilt() {
    let f = Fleet::new("slowhealthy", 1);
    let name = f.add_stack("h1", "web", &StackDef::gated(&sleeper_cmd("v1"), 60));
    f.run(&["--up-timeout-period", "30"]).assert_code(0);
    let v1 = f.assert_running("h1", &name);

    // v2 fails its healthcheck for about 3 s, then passes
    let slow = "echo v2 >/tmp/version; sleep 3; touch /tmp/ok; exec sleep 1000000";
    f.write(&name, "Dockerfile", &dockerfile(None, slow));
    let run = f.run(&["--up-timeout-period", "30"]);
    run.assert_code(0);
    run.expect("h1", &name, "rebuilt", "config_changed");
    let v2 = f.assert_running("h1", &name);
    assert_eq!(v2.health, "healthy");
    assert_ne!(v2.image, v1.image);
    assert_eq!(f.container_file("h1", &v2.id, "/tmp/version"), "v2\n");
    let st = f.state("h1", &name);
    assert_eq!(st["last_result"], "ok");
    assert!(st["images"].contains(&v2.image));
}

#[test]
fn a_first_build_that_fails_its_gate_has_nothing_to_roll_back_to() {
    let f = Fleet::new("firstgate", 1);
    let name = f.add_stack("h1", "web", &StackDef::gated("exit 1", 3));

    let run = f.run(&["--up-timeout-period", "30"]);
    run.assert_code(1);
    run.expect("h1", &name, "failed", "first_build");
    let err = run.error_of("h1", &name);
    assert!(err.contains("nothing to roll back to"), "{}", run.dump());
    assert!(err.contains("the new containers were stopped"), "{err}");
    // they are kept (for their logs), stopped: not running, not restarting
    // (restart: unless-stopped would bring them back unless stopped by hand)
    let c = f.the_container("h1", &name);
    assert_eq!(c.status, "exited", "{c:?}");

    // no success was claimed; the failed input is remembered
    let st = f.state("h1", &name);
    assert_eq!(st["hash"], "-", "{st:?}");
    assert_eq!(st["last_result"], "failed");
    assert_eq!(st["failed_hash"].len(), 64);
    let run = f.run(&["--up-timeout-period", "30"]);
    run.expect("h1", &name, "skipped", "previous_failure");
    run.assert_code(4);
    assert!(
        run.error_of("h1", &name).contains("no version runs"),
        "{}",
        run.dump()
    );
}

#[test]
fn a_running_but_unhealthy_rebuild_is_rolled_back() {
    let f = Fleet::new("unhealthy", 1);
    let name = f.add_stack("h1", "web", &StackDef::gated(&sleeper_cmd("v1"), 2));
    f.run(&["--up-timeout-period", "60"]).assert_code(0);
    let v1 = f.assert_running("h1", &name);
    assert_eq!(v1.health, "healthy");

    // v2 runs, but never creates /tmp/ok: its healthcheck fails
    f.write(
        &name,
        "Dockerfile",
        &dockerfile(None, "echo v2 >/tmp/version; exec sleep 1000000"),
    );
    let run = f.run(&["--up-timeout-period", "30"]);
    run.assert_code(1);
    run.expect("h1", &name, "rolled_back", "config_changed");
    let err = run.error_of("h1", &name);
    assert!(err.contains("app(unhealthy)"), "names the service: {err}");

    let now = f.assert_running("h1", &name);
    assert_eq!(now.image, v1.image, "runs the image recorded before");
    assert_eq!(now.health, "healthy");
    assert_eq!(f.container_file("h1", &now.id, "/tmp/version"), "v1\n");
    assert_eq!(f.state("h1", &name)["last_result"], "failed");
}
