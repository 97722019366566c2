//! Two runs on one stack at once: the second is refused by the stack's lock
//! on the host (or waits for it, with `--lock-wait`), and the first
//! finishes cleanly; Ctrl-C lets the host in flight finish.

use crate::support::*;

/// A run held in its health gate (inside the stack's lock) until the test
/// opens the gate (no sleeping, no timing): a second run meanwhile is
/// refused (`locked`) and does not disturb it; a third with `--lock-wait`
/// waits for the lock (a step says so, naming the holder) instead of
/// reporting `locked`, then does its work (v2, due meanwhile); the runs
/// never interleave, and no lock is left held.
#[test]
fn a_second_run_during_a_rebuild_reports_locked_and_one_with_lock_wait_waits() {
    let f = Fleet::new("locked", 1);
    let gate = f.root.path().join("gate");
    std::fs::create_dir(&gate).unwrap();
    let name = f.add_stack("h1", "web", &StackDef::behind_gate("v1", &gate, 100000));
    let lock = f.lock_dir("h1", &name);

    let mut first = f.spawn_into_gate(
        f.command(&["--json", "--up-timeout-period", "600"]),
        "h1",
        &name,
        None,
    );
    let owner = lock_owner(&lock).expect("the first run holds the lock");

    let second = f.run(&[]);
    second.assert_code(1);
    second.expect("h1", &name, "failed", "locked");
    assert!(
        second.error_of("h1", &name).contains("lock"),
        "{}",
        second.dump()
    );
    assert!(first.running(), "the second run did not disturb the first");

    // v2 is due; the third run waits for the first's lock
    f.write(&name, "Dockerfile", &sleeper_dockerfile("v2"));
    let log = f.root.path().join("third.log");
    let mut c = f.command(&["--json", "--lock-wait", "10m", "--up-timeout-period", "600"]);
    c.env("NO_COLOR", "1");
    let mut third = Background::spawn_stderr_to(c, &log);
    wait_for("the third run to wait for the lock", || {
        !third.running()
            || std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("waiting for the lock")
    });
    assert!(
        third.running(),
        "the third run ended early: {}",
        third.finish().dump()
    );
    let pid = owner.split_whitespace().next().unwrap();
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .contains(&format!("(pid {pid})")),
        "the step names the holder"
    );
    // the first run's lock is its own all along: the third has not started
    assert_eq!(lock_owner(&lock).unwrap(), owner);

    std::fs::write(gate.join("open"), "").unwrap();
    let first = first.finish();
    first.assert_code(0);
    first.expect("h1", &name, "rebuilt", "first_build");
    let third = third.finish();
    third.assert_code(0);
    third.expect("h1", &name, "rebuilt", "first_build");

    // one healthy generation, consistent state, no lock left behind
    let now = f.assert_running("h1", &name);
    assert_eq!(now.health, "healthy");
    assert_eq!(f.container_file("h1", &now.id, "/tmp/version"), "v2\n");
    let st = f.state("h1", &name);
    assert_eq!(st["last_result"], "ok");
    assert!(st["images"].contains(&now.image));
    assert!(lock_owner(&lock).is_none(), "no lock left held");
    // the history: two rebuilds, one after the other
    let hist = f.history_lines("h1", &name);
    assert_eq!(
        hist.iter().filter(|l| l.contains(" rebuilt ")).count(),
        2,
        "{hist:?}"
    );
    f.run(&[])
        .assert_code(0)
        .expect("h1", &name, "skipped", "up_to_date");
    assert_eq!(f.assert_running("h1", &name), now);
}

#[test]
fn ctrl_c_starts_no_new_host_and_lets_the_one_in_flight_finish() {
    let f = Fleet::new("ctrlc", 2);
    let gate = f.root.path().join("gate");
    std::fs::create_dir(&gate).unwrap();
    let first = f.add_stack("h1", "web", &StackDef::behind_gate("v1", &gate, 100_000));
    let second = f.add_stack("h2", "web", &StackDef::sleeper("v1"));

    // one host at a time: h1 is in flight (held in its health gate), h2 waits
    let mut run =
        Background::spawn(f.command(&["--json", "-j", "1", "--up-timeout-period", "600"]));
    wait_for("h1 to wait in its health gate", || {
        !run.running()
            || f.containers("h1", &first)
                .iter()
                .any(|c| c.health == "starting")
    });
    assert!(run.running(), "ended early: {}", run.finish().dump());
    run.interrupt();
    std::fs::write(gate.join("open"), "").unwrap();
    let run = run.finish();

    run.assert_code(130);
    run.expect("h1", &first, "rebuilt", "first_build");
    run.expect("h2", &second, "skipped", "interrupted");
    assert_eq!(f.assert_running("h1", &first).health, "healthy");
    assert!(f.containers("h2", &second).is_empty(), "h2 was not touched");
    assert!(f.view("h2").images.is_empty(), "h2 built or pulled nothing");
    assert!(!f.state_dir("h2").join(format!("{second}.state")).exists());
}
