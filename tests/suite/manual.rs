//! `rbuild history HOST STACK` and `rbuild rollback HOST STACK`.

use crate::support::*;

#[test]
fn history_lists_the_attempts_newest_last() {
    let f = Fleet::new("history", 1);
    let name = f.add_stack("h1", "web", &StackDef::gated(&sleeper_cmd("v1"), 3));
    f.run(&["--up-timeout-period", "60"]).assert_code(0);
    let v1 = f.assert_running("h1", &name);
    let good = f.state("h1", &name);
    f.write(
        &name,
        "Dockerfile",
        &dockerfile(None, "echo v2 >/tmp/version; exit 1"),
    );
    f.run(&["--up-timeout-period", "30"]).assert_code(1);
    let failed = f.state("h1", &name);

    let run = run_command(f.command(&["--json", "history", "h1", &name]));
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
    assert_eq!(h[0]["hash"], good["hash"].as_str());
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
    let run = run_command(f.command(&["history", "h1", &name]));
    run.assert_code(0);
    let rebuilt = run.stdout.find("rebuilt").expect("a rebuilt row");
    let rolled = run.stdout.find("rolled_back").expect("a rolled_back row");
    assert!(rebuilt < rolled, "{}", run.dump());
    assert!(run.stdout.contains(&good["hash"][..12]), "{}", run.dump());
}

#[test]
fn rollback_by_hand_puts_the_previous_generation_back() {
    let f = Fleet::new("manualrollback", 1);
    let name = f.add_stack("h1", "web", &StackDef::gated(&sleeper_cmd("v1"), 3));
    f.run(&["--up-timeout-period", "60"]).assert_code(0);
    let v1 = f.assert_running("h1", &name);
    f.write(&name, "Dockerfile", &sleeper_dockerfile("v2"));
    f.run(&["--up-timeout-period", "60"]).assert_code(0).expect(
        "h1",
        &name,
        "rebuilt",
        "config_changed",
    );
    let v2 = f.assert_running("h1", &name);
    assert_ne!(v2.image, v1.image);
    let built = f.state("h1", &name);

    let run = run_command(f.command(&[
        "--json",
        "--up-timeout-period",
        "60",
        "rollback",
        "h1",
        &name,
    ]));
    run.assert_code(0);
    run.expect("h1", &name, "rolled_back", "manual");
    assert_eq!(run.rows().len(), 1);
    let now = f.assert_running("h1", &name);
    assert_eq!(now.image, v1.image, "v1's image runs again");
    assert_eq!(now.health, "healthy");
    assert_eq!(f.container_file("h1", &now.id, "/tmp/version"), "v1\n");
    let st = f.state("h1", &name);
    assert_eq!(st["images"], format!("app={}", v1.image));
    // never forward: nothing older than v1 is kept; v2 stays kept for `--to`
    assert_eq!(st["prev_images"], "-");
    assert_eq!(st["generations"], "1,2");
    assert_eq!(st["gen"], "1");
    assert_eq!(st["last_result"], "rolled_back");
    assert_eq!(st["failed_hash"], built["hash"]);
    let hist = f.history_lines("h1", &name);
    assert!(
        hist.last().is_some_and(|l| l.contains(" rolled_back ")),
        "{hist:?}"
    );
    assert!(lock_owner(&f.lock_dir("h1", &name)).is_none());

    // the rollback holds: the next run does not go forward to v2 at once,
    // and an operator's choice is not a failure
    let run = f.run(&[]);
    run.assert_code(0);
    run.expect("h1", &name, "skipped", "held");
    assert_eq!(f.assert_running("h1", &name), now, "nothing was touched");

    // forced, it does
    f.run(&["--force-rebuild", "--up-timeout-period", "60"])
        .assert_code(0)
        .expect("h1", &name, "rebuilt", "forced");
    let again = f.assert_running("h1", &name);
    assert_eq!(f.container_file("h1", &again.id, "/tmp/version"), "v2\n");
    assert_eq!(f.state("h1", &name)["last_result"], "ok");
}

#[test]
fn rollback_by_hand_with_nothing_kept_fails_and_bad_names_are_usage_errors() {
    let f = Fleet::new("manualnothing", 1);
    let name = f.add_stack("h1", "web", &StackDef::sleeper("v1"));
    f.run(&[]).assert_code(0);
    let v1 = f.assert_running("h1", &name);
    let st = f.state_text("h1", &name).unwrap();

    let run = run_command(f.command(&["--json", "rollback", "h1", &name]));
    run.assert_code(1);
    run.expect("h1", &name, "failed", "manual");
    assert!(
        run.error_of("h1", &name)
            .contains("no generation older than"),
        "{}",
        run.dump()
    );
    assert_eq!(f.assert_running("h1", &name), v1, "nothing was touched");
    assert_eq!(f.state_text("h1", &name).unwrap(), st);

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
    assert_eq!(f.assert_running("h1", &name), v1);
}
