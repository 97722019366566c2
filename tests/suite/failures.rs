//! Failures stay contained: an unreachable host fails its own rows only, and
//! a host key that is unknown or changed is refused. (A build that fails
//! leaves the running generation alone: tests/suite/corpus.rs, the app and
//! database stack, on a real shape; tests/script.rs, each branch.)

use crate::support::*;

#[test]
fn stopped_and_silent_hosts_fail_alone() {
    let f = Fleet::new("unreach", 3);
    let names = f.web_everywhere();
    f.stop_host("h2"); // connection refused
    f.drop_packets("h3"); // packets swallowed: a connect timeout

    let run = f.run(&["--connect-timeout", "3"]);
    run.assert_code(3);
    run.expect("h1", &names[0], "rebuilt", "first_build");
    f.assert_running("h1", &names[0]);
    for (h, name) in [("h2", &names[1]), ("h3", &names[2])] {
        let r = run.expect(h, name, "failed", "host_failed");
        let err = r["error"].as_str().unwrap_or("");
        assert!(!err.trim().is_empty(), "{h}: error: {}", run.dump());
        assert!(f.containers(h, name).is_empty(), "{h}: nothing ran");
        assert!(f.engine(h).images().is_empty(), "{h}: nothing was built");
        assert_eq!(Fleet::entries(&f.state_dir(h)), Vec::<String>::new());
        assert_eq!(Fleet::entries(&f.srv_dir(h)), Vec::<String>::new());
    }
    assert!(
        run.error_of("h2", &names[1])
            .to_lowercase()
            .contains("refused"),
        "{}",
        run.dump()
    );
}

#[test]
fn unknown_and_changed_host_keys_are_refused_with_a_hint() {
    let f = Fleet::new("hostkeys", 1);
    let name = f.add_stack("h1", "web", &StackDef::sleeper("v1"));
    let known = f.th.join("known_hosts");
    let original = std::fs::read_to_string(&known).unwrap();

    // unknown: strict checking refuses it, says why and how to fix it
    std::fs::write(&known, "").unwrap();
    let run = f.run(&[]);
    run.assert_code(3);
    run.expect("h1", &name, "failed", "host_failed");
    let err = run.error_of("h1", &name);
    assert!(err.contains("Host key verification failed"), "{err}");
    let hint = run.hint_of("h1", &name);
    assert!(hint.contains("known_hosts"), "{hint}");
    assert!(
        Fleet::entries(&f.state_dir("h1")).is_empty(),
        "nothing ran on h1"
    );

    // a changed key is refused even with --accept-new-host-keys
    let other = tempfile::tempdir().unwrap();
    let fake = other.path().join("k");
    let ok = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&fake)
        .status()
        .unwrap();
    assert!(ok.success());
    let fake_pub = std::fs::read_to_string(fake.with_extension("pub")).unwrap();
    let key = fake_pub
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    let changed: String = original
        .lines()
        .map(|l| {
            let host = l.split_whitespace().next().unwrap_or("");
            format!("{host} {key}\n")
        })
        .collect();
    std::fs::write(&known, &changed).unwrap();
    let run = f.run(&["--accept-new-host-keys"]);
    run.assert_code(3);
    run.expect("h1", &name, "failed", "host_failed");
    assert!(
        Fleet::entries(&f.state_dir("h1")).is_empty(),
        "nothing ran on h1"
    );

    // unknown, with --accept-new-host-keys: trusted, recorded, rebuilt
    std::fs::write(&known, "").unwrap();
    let run = f.run(&["--accept-new-host-keys"]);
    run.assert_code(0);
    run.expect("h1", &name, "rebuilt", "first_build");
    assert!(
        !std::fs::read_to_string(&known).unwrap().is_empty(),
        "key recorded"
    );
}
