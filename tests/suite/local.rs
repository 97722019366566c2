//! Local mode: `rbuild COMPOSE_FILE`, no SSH, the stack built where it is:
//! on the machine's own engine, so this test cleans up after itself there.

use crate::support::*;

#[test]
fn local_mode_rebuilds_in_place_then_skips() {
    let root = tempfile::tempdir().unwrap();
    let local = Engine::local();
    let guard = DockerGuard::default();
    // project name = directory name: unique to this test and process
    let project = format!("tlocal{}", token());
    let dir = root.path().join(&project);
    StackDef::sleeper("v1").write_to(&dir);
    let state_dir = root.path().join("state");
    guard.project(&project);
    guard.state_file(state_dir.join(format!("{project}.state")));

    let local_run = || {
        let mut c = rbuild_command();
        c.arg("--json")
            .arg("--state-dir")
            .arg(&state_dir)
            .arg(dir.join("compose.yml"));
        run_command(c)
    };
    let run = local_run();
    run.assert_code(0);
    run.expect("local", &project, "rebuilt", "first_build");
    let c = local.assert_running(&project);
    assert_eq!(local.container_file(&c.id, "/tmp/version"), "v1\n");
    let state = std::fs::read_to_string(state_dir.join(format!("{project}.state"))).unwrap();
    assert!(state.contains("\nlast_result=ok\n"), "{state}");
    assert!(state.contains("\nhash="), "{state}");
    // built in place: nothing was shipped anywhere else
    assert!(dir.join("compose.yml").is_file());

    let run = local_run();
    run.assert_code(0);
    run.expect("local", &project, "skipped", "up_to_date");
    assert_eq!(local.assert_running(&project), c);
    assert_eq!(
        std::fs::read_to_string(state_dir.join(format!("{project}.state"))).unwrap(),
        state
    );
}
