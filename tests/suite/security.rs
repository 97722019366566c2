//! Shell metacharacters in inventory values are carried as plain data:
//! never executed, locally or on a host. (Values refused before any host
//! is contacted, such as a stack name with metacharacters or an address
//! that is an ssh option, are tested in tests/cli.rs.)

use crate::support::*;

#[test]
fn metacharacters_in_a_compose_file_name_and_remote_dir_are_never_run() {
    let f = Fleet::new("metapath", 1);
    let tok = &f.prefix;
    // no `/` can be in a file name: `cd;cd ..;cd tmp` reaches /tmp without one
    let m_file = std::path::PathBuf::from(format!("/tmp/PWNED3-{tok}"));
    let m_dir = f.root.path().join("PWNED4");
    let compose_name = format!("my app $(cd;cd ..;cd tmp;touch PWNED3-{tok}) `id`.yml");
    let remote_dir = format!("/srv/rbuild/dir with space $(touch {})", m_dir.display());
    let name = f.add_stack(
        "h1",
        "web",
        &StackDef::sleeper("v1").compose_named(&compose_name),
    );
    f.edit_inventory(|inv| inv.stack("h1", &name).remote_dir = Some(remote_dir.clone()));

    let run = f.run(&[]);
    let markers_absent = || {
        assert!(!m_file.exists(), "the compose file name was executed");
        assert!(!m_dir.exists(), "the remote_dir was executed");
    };
    markers_absent();
    // It works, with the names taken literally.
    run.assert_code(0);
    run.expect("h1", &name, "rebuilt", "first_build");
    f.assert_running("h1", &name);
    let on_host = f
        .srv_dir("h1")
        .join(remote_dir.strip_prefix("/srv/rbuild/").unwrap());
    assert!(on_host.join(&compose_name).is_file(), "{}", run.dump());
    assert_eq!(f.state("h1", &name)["last_result"], "ok");

    // and a second run (check only) is just as literal
    f.run(&[])
        .assert_code(0)
        .expect("h1", &name, "skipped", "up_to_date");
    let _ = std::fs::remove_file(&m_file);
    markers_absent();
}
