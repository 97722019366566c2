//! Compose projects as people have them: files outside the compose file's
//! directory (`root:`), a stack directory other users' containers read
//! (`dir_mode:`, `dir_group:`), and zero-downtime rebuilds.

use crate::support::*;

/// A project whose compose file is in `deploy/` and builds from its parent,
/// with an env file shared by the whole project beside it.
fn deploy_project(greeting: &str) -> StackDef {
    StackDef {
        files: vec![
            (
                "deploy/compose.yml".into(),
                "services:\n  app:\n    build: ..\n    init: true\n    env_file:\n      - ../common.env\n".into(),
                0o644,
            ),
            (
                "Dockerfile".into(),
                dockerfile(
                    None,
                    "echo $GREETING >/tmp/version; touch /tmp/ok; exec sleep 1000000",
                ),
                0o644,
            ),
            ("common.env".into(), format!("GREETING={greeting}\n"), 0o600),
        ],
    }
}

/// Two projects on one host, the second added once the first runs:
/// - `perm`: a stack directory other users' containers read: private to
///   the deploying user by default; `dir_mode:` and `dir_group:` are a
///   change of the stack, and let another user's container read it;
/// - `web`: a project whose compose file is in `deploy/` and builds from
///   its parent: without `root:` refused before any host is contacted
///   (naming the compose file and line); with it, hashed, shipped and
///   built, a change in `../common.env` noticed; a reference that leaves
///   the root refused the same way.
#[test]
fn a_project_root_above_the_compose_file_and_dir_mode_and_group() {
    let f = Fleet::new("projroot", 1);
    let reader = compose("    user: \"1000:1000\"\n    volumes:\n      - .:/app:ro\n");
    let def = StackDef::sleeper("v1")
        .with(
            "Dockerfile",
            &dockerfile(
                Some("mkdir -p /tmp && chmod 1777 /tmp"),
                "cat /app/hello.txt >/tmp/version 2>/dev/null || echo denied >/tmp/version; touch /tmp/ok; exec sleep 1000000",
            ),
        )
        .with("compose.yml", &reader)
        .with("hello.txt", "hello\n");
    let perm = f.add_stack("h1", "perm", &def);
    let remote = f.remote_dir("h1", &perm);
    let meta = |p: &std::path::Path| {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(p).unwrap();
        (m.mode() & 0o777, m.gid())
    };

    // the default: private to the deploying user
    f.run(&[])
        .assert_code(0)
        .expect("h1", &perm, "rebuilt", "first_build");
    let c = f.assert_running("h1", &perm);
    assert_eq!(f.container_file("h1", &c.id, "/tmp/version"), "denied\n");
    assert_eq!(meta(&remote).0, 0o700);

    // a mode and group of its own: a change of the stack
    f.edit_inventory(|inv| {
        let s = inv.stack("h1", &perm);
        s.dir_mode = Some("0750".into());
        s.dir_group = Some("1000".into());
    });
    let run = f.run(&[]);
    run.assert_code(0);
    run.expect("h1", &perm, "rebuilt", "config_changed");
    let c = f.assert_running("h1", &perm);
    assert_eq!(f.container_file("h1", &c.id, "/tmp/version"), "hello\n");
    assert_eq!(meta(&remote), (0o750, 1000));
    assert_eq!(meta(&remote.join("hello.txt")), (0o644, 1000));
    assert_eq!(meta(&remote.join(".env")).0, 0o600, "secrets stay private");
    f.run(&[])
        .assert_code(0)
        .expect("h1", &perm, "skipped", "up_to_date");

    let perm_c = f.assert_running("h1", &perm);

    let name = f.add_stack("h1", "web", &deploy_project("hello"));

    // without `root:`, the build context `..` leaves the stack: refused
    // before any host is contacted, naming the compose file and line
    let run = f.run(&[]);
    run.assert_code(2);
    assert!(
        run.stderr.contains("deploy/compose.yml:3:")
            && run
                .stderr
                .contains("build context `..` is outside the stack's directory")
            && run.stderr.contains("hint: ")
            && run.stderr.contains("`root:`"),
        "{}",
        run.dump()
    );
    assert!(f.containers("h1", &name).is_empty());

    let root = "stacks/h1-web".to_owned();
    f.edit_inventory(|inv| inv.stack("h1", &name).root = Some(root.clone()));
    let run = f.run(&[]);
    run.assert_code(0);
    run.expect("h1", &name, "rebuilt", "first_build");
    let c = f.assert_running("h1", &name);
    assert_eq!(f.container_file("h1", &c.id, "/tmp/version"), "hello\n");
    let remote = f.remote_dir("h1", &name);
    assert!(remote.join("deploy/compose.yml").is_file());
    assert!(remote.join("common.env").is_file());

    f.run(&[])
        .assert_code(0)
        .expect("h1", &name, "skipped", "up_to_date");

    // a change in ../common.env is noticed, shipped and built
    f.write(&name, "common.env", "GREETING=bye\n");
    let run = f.run(&[]);
    run.assert_code(0);
    run.expect("h1", &name, "rebuilt", "config_changed");
    let c = f.assert_running("h1", &name);
    assert_eq!(f.container_file("h1", &c.id, "/tmp/version"), "bye\n");
    assert_eq!(
        std::fs::read_to_string(remote.join("common.env")).unwrap(),
        "GREETING=bye\n"
    );

    // with `root:`, a reference that leaves the root is refused the same way
    f.write(
        &name,
        "deploy/compose.yml",
        "services:\n  app:\n    build: ..\n    init: true\n    env_file:\n      - ../../elsewhere.env\n",
    );
    let run = f.run(&[]);
    run.assert_code(2);
    assert!(
        run.stderr.contains("deploy/compose.yml:6:")
            && run
                .stderr
                .contains("env_file `../../elsewhere.env` is outside the stack's root"),
        "{}",
        run.dump()
    );
    assert_eq!(f.the_container("h1", &name).id, c.id, "nothing was touched");
    assert_eq!(f.assert_running("h1", &perm), perm_c, "perm ran on");
}
