//! Stacks kept running (issue #12, section 2): a stack stopped or removed
//! by hand is noticed by the check (its recorded containers' cgroups are
//! gone) and brought back with `up` (action `started`, reason
//! `not_running`), no rebuild; one that is due anyway is rebuilt. The check
//! stays one remote command per host, a drifted host one more.

use crate::support::runs::Run;
use crate::support::*;

/// Run and count the remote commands h1's sshd started for it.
fn counted(f: &Fleet, args: &[&str]) -> (Run, usize) {
    let before = f.remote_commands("h1");
    let run = f.run(args);
    (run, f.remote_commands("h1") - before)
}

/// (g) stopped by hand, (h) removed by hand, (i) one command for an
/// up-to-date host of 3 stacks, two for a drifted one, (j) expired and
/// stopped: rebuilt, not merely started.
#[test]
fn stacks_stopped_or_removed_by_hand_are_started_again_and_the_check_stays_one_command() {
    let f = Fleet::new("drift", 1);
    let stopped = f.add_stack("h1", "stopped", &StackDef::sleeper("v1"));
    let removed = f.add_stack("h1", "removed", &StackDef::sleeper("v1"));
    let expired = f.add_stack("h1", "expired", &StackDef::sleeper("v1"));
    let all = [&stopped, &removed, &expired];

    let (run, _) = counted(&f, &[]);
    run.assert_code(0);
    for name in all {
        run.expect("h1", name, "rebuilt", "first_build");
    }
    let was: Vec<Container> = all.iter().map(|n| f.assert_running("h1", n)).collect();
    let states: Vec<_> = all.iter().map(|n| f.state("h1", n)).collect();

    // (i) up to date: one command for the three stacks
    let (run, cmds) = counted(&f, &[]);
    run.assert_code(0);
    for name in all {
        run.expect("h1", name, "skipped", "up_to_date");
    }
    assert_eq!(cmds, 1, "an up-to-date check of 3 stacks is one command");

    // (g) stopped by hand: started again, the same image, no rebuild
    f.docker("h1", &["stop", &was[0].id]);
    assert_eq!(f.the_container("h1", &stopped).status, "exited");
    let (run, cmds) = counted(&f, &[]);
    run.assert_code(0);
    let r = run.expect("h1", &stopped, "started", "not_running");
    assert!(r["error"].is_null(), "{}", run.dump());
    run.expect("h1", &removed, "skipped", "up_to_date");
    run.expect("h1", &expired, "skipped", "up_to_date");
    assert!(cmds <= 2, "a drifted host: the check and the apply, {cmds}");
    let now = f.assert_running("h1", &stopped);
    assert_eq!(now.image, was[0].image, "no rebuild: the same image");
    assert_eq!(f.container_file("h1", &now.id, "/tmp/version"), "v1\n");
    let st = f.state("h1", &stopped);
    for k in ["hash", "built_at", "images", "names", "prev_images"] {
        assert_eq!(st[k], states[0][k], "{k}");
    }
    assert_eq!(st["last_result"], "ok");
    assert!(
        f.history_lines("h1", &stopped)
            .last()
            .is_some_and(|l| l.contains(" started ")),
        "{:?}",
        f.history_lines("h1", &stopped)
    );
    // and now it runs as recorded
    let (run, cmds) = counted(&f, &[]);
    run.assert_code(0);
    for name in all {
        run.expect("h1", name, "skipped", "up_to_date");
    }
    assert_eq!(cmds, 1);

    // (h) removed by hand (as `compose down` does): a new container of the
    // same image
    for c in f.containers("h1", &removed) {
        f.docker("h1", &["rm", "-f", &c.id]);
    }
    assert!(f.containers("h1", &removed).is_empty());
    let (run, cmds) = counted(&f, &[]);
    run.assert_code(0);
    run.expect("h1", &removed, "started", "not_running");
    run.expect("h1", &stopped, "skipped", "up_to_date");
    run.expect("h1", &expired, "skipped", "up_to_date");
    assert!(cmds <= 2, "a drifted host: the check and the apply, {cmds}");
    let now = f.assert_running("h1", &removed);
    assert_ne!(now.id, was[1].id, "a new container");
    assert_eq!(now.image, was[1].image, "no rebuild: the same image");
    assert_eq!(f.container_file("h1", &now.id, "/tmp/version"), "v1\n");
    let st = f.state("h1", &removed);
    for k in ["hash", "built_at", "images", "prev_images"] {
        assert_eq!(st[k], states[1][k], "{k}");
    }
    assert_eq!(st["last_result"], "ok");
    let (run, cmds) = counted(&f, &[]);
    run.assert_code(0);
    run.expect("h1", &removed, "skipped", "up_to_date");
    assert_eq!(cmds, 1);

    // (j) due anyway (its build period is over) and stopped: rebuilt
    f.edit_inventory(|inv| inv.stack("h1", &expired).build_period = Some("0".into()));
    f.docker("h1", &["stop", &was[2].id]);
    let (run, cmds) = counted(&f, &[]);
    run.assert_code(0);
    run.expect("h1", &expired, "rebuilt", "expired");
    run.expect("h1", &stopped, "skipped", "up_to_date");
    run.expect("h1", &removed, "skipped", "up_to_date");
    assert_eq!(cmds, 2);
    let now = f.assert_running("h1", &expired);
    assert_eq!(f.container_file("h1", &now.id, "/tmp/version"), "v1\n");
    let st = f.state("h1", &expired);
    assert_eq!(st["hash"], states[2]["hash"]);
    assert_eq!(st["last_result"], "ok");
    assert_eq!(st["images"], format!("app={}", now.image));
    assert!(
        st["built_at"].parse::<u64>().unwrap() > states[2]["built_at"].parse::<u64>().unwrap(),
        "a new build time: {st:?}"
    );
    assert!(
        f.history_lines("h1", &expired)
            .last()
            .is_some_and(|l| l.contains(" rebuilt ")),
        "{:?}",
        f.history_lines("h1", &expired)
    );
}
