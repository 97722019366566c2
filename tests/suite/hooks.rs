//! The stacks' `before` and `after` hooks on a real host: run in the
//! stack's directory at their place in the rebuild, their output kept, a
//! failing `before` leaving the old containers running, a failing `after`
//! a failed row while the new version runs.

use crate::support::*;

/// A sleeper that records its version and whether the before hook's file
/// (`./migrated`, bind-mounted) was there when it started.
fn hooked(version: &str) -> StackDef {
    StackDef::sleeper(version)
        .with(
            "Dockerfile",
            &dockerfile(
                None,
                &format!(
                    "echo {version} >/tmp/version; cat /stack/migrated >/tmp/migrated 2>/dev/null; touch /tmp/ok; exec sleep 1000000"
                ),
            ),
        )
        .with(
            "compose.yml",
            &compose("    volumes:\n      - .:/stack:ro\n"),
        )
}

fn set_hooks(f: &Fleet, name: &str, before: Option<&str>, after: Option<&str>) {
    f.edit_inventory(|inv| {
        inv.stack("h1", name).hooks = Some(Hooks {
            before: before.map(str::to_owned),
            after: after.map(str::to_owned),
        })
    });
}

#[test]
fn hooks_run_around_the_up_and_their_failures_are_their_own() {
    let f = Fleet::new("hooks", 1);
    let name = f.add_stack("h1", "web", &hooked("v1"));
    // before: in the stack's directory, with compose's variables, before
    // the new containers start; after: once they passed the gate
    set_hooks(
        &f,
        &name,
        Some(
            "echo \"$COMPOSE_PROJECT_NAME $RBUILD_HASH\" > migrated; echo migrating; test -n \"$COMPOSE_FILE\"",
        ),
        Some("docker compose ps -q app > after-saw; echo after done"),
    );
    let run = f.run(&[]);
    run.assert_code(0);
    run.expect("h1", &name, "rebuilt", "first_build");
    let dir = f.remote_dir("h1", &name);
    let hash = f.state("h1", &name)["hash"].clone();
    let c = f.assert_running("h1", &name);
    // the container saw the before hook's file when it started
    assert_eq!(
        f.container_file("h1", &c.id, "/tmp/migrated"),
        format!("{name} {hash}\n")
    );
    // the after hook saw the new container running
    let saw = std::fs::read_to_string(dir.join("after-saw")).unwrap();
    assert!(c.id.starts_with(saw.trim()), "{saw} vs {}", c.id);
    // nothing runs again while nothing changed
    f.run(&[])
        .assert_code(0)
        .expect("h1", &name, "skipped", "up_to_date");

    // a changed hook is a change of the stack
    set_hooks(
        &f,
        &name,
        Some("echo \"$COMPOSE_PROJECT_NAME $RBUILD_HASH\" > migrated; echo migrating again"),
        None,
    );
    f.run(&[])
        .assert_code(0)
        .expect("h1", &name, "rebuilt", "config_changed");
    let v1 = f.assert_running("h1", &name);
    let good = f.state("h1", &name);

    // a failing before hook: the rebuild fails, the old containers run on
    f.write(&name, "Dockerfile", &sleeper_dockerfile("v2"));
    set_hooks(&f, &name, Some("echo the migration broke; exit 3"), None);
    let run = f.run(&[]);
    run.assert_code(1);
    run.expect("h1", &name, "failed", "config_changed");
    let err = run.error_of("h1", &name);
    assert!(
        err.contains("the before hook failed (exit status 3)"),
        "{}",
        run.dump()
    );
    assert!(
        err.contains("the running containers were left as they were"),
        "{err}"
    );
    let out = run.row("h1", &name)["output"].to_string();
    assert!(
        out.contains("the migration broke"),
        "the hook's output: {out}"
    );
    assert_eq!(f.assert_running("h1", &name), v1);
    assert_eq!(f.container_file("h1", &v1.id, "/tmp/version"), "v1\n");
    let st = f.state("h1", &name);
    assert_eq!(st["hash"], good["hash"]);
    assert_eq!(st["images"], good["images"]);
    assert_eq!(st["last_result"], "failed");
    // its output is kept for `rbuild logs`
    let logs = run_command(f.command(&["logs", "h1", &name]));
    logs.assert_code(0);
    assert!(
        logs.stdout.contains("the migration broke"),
        "{}",
        logs.dump()
    );
    assert!(lock_owner(&f.lock_dir("h1", &name)).is_none());

    // a failing after hook: the new version runs and is recorded; the row
    // says the hook failed, and the run exits 1
    set_hooks(&f, &name, None, Some("echo purge failed >&2; exit 4"));
    let run = f.run(&[]);
    run.assert_code(1);
    run.expect("h1", &name, "failed", "config_changed");
    let err = run.error_of("h1", &name);
    assert!(
        err.contains("the after hook failed (exit status 4)"),
        "{}",
        run.dump()
    );
    assert!(err.contains("the new version runs"), "{err}");
    assert!(
        run.hint_of("h1", &name).contains("rbuild logs"),
        "{}",
        run.dump()
    );
    let v2 = f.assert_running("h1", &name);
    assert_eq!(f.container_file("h1", &v2.id, "/tmp/version"), "v2\n");
    assert_eq!(f.state("h1", &name)["last_result"], "ok");
    // recorded: the next run has nothing to do
    f.run(&[])
        .assert_code(0)
        .expect("h1", &name, "skipped", "up_to_date");
}
