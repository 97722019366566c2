//! Operator commands on the hosts: `rbuild status`, `rbuild logs`, the
//! stacks' `before`/`after` hooks, `--lock-wait`.

use serde_json::Value;

use crate::support::*;

/// The `status --json` row of STACK on HOST.
fn status_row<'a>(doc: &'a Value, host: &str, stack: &str) -> &'a Value {
    let rows: Vec<&Value> = doc["stacks"]
        .as_array()
        .expect("stacks")
        .iter()
        .filter(|r| r["host"] == host && r["stack"] == stack)
        .collect();
    assert_eq!(rows.len(), 1, "one row for {host}/{stack}: {doc}");
    rows[0]
}

#[test]
fn status_shows_every_stack_as_its_host_sees_it_and_changes_nothing() {
    let f = Fleet::new("status", 2);
    let web = f.add_stack("h1", "web", &StackDef::gated(&sleeper_cmd("v1"), 30));
    let other = f.add_stack("h2", "web", &StackDef::sleeper("v1"));
    f.run(&["--up-timeout-period", "60"]).assert_code(0);
    let c = f.assert_running("h1", &web);
    let state = f.state_text("h1", &web);

    // all fine: exit 0, one row per stack
    let run = run_command(f.command(&["--json", "status"]));
    run.assert_code(0);
    let doc = run.doc();
    assert_eq!(doc["version"], 2);
    assert_eq!(doc["exit_code"], 0);
    let r = status_row(doc, "h1", &web);
    assert_eq!(r["ok"], true, "{}", run.dump());
    assert_eq!(r["services"][0]["name"], "app");
    assert_eq!(r["services"][0]["state"], "running");
    assert_eq!(r["services"][0]["health"], "healthy");
    assert_eq!(r["files"], "same");
    assert_eq!(r["next"], "later");
    assert_eq!(r["next_reason"], "up_to_date");
    assert_eq!(r["last_result"], "ok");
    assert!(r["last_failure"].is_null());
    assert!(r["locked_by"].is_null());
    let at = |v: &serde_json::Value| humantime::parse_rfc3339(v.as_str().unwrap()).unwrap();
    assert_eq!(
        at(&r["next_due_at"]),
        at(&r["built_at"]) + std::time::Duration::from_secs(86400)
    );
    assert!(at(&r["checked_at"]) >= at(&r["built_at"]));
    assert_eq!(status_row(doc, "h2", &other)["ok"], true);

    // files changed here, a host down: the change is due, the host a row;
    // only a host not reached: exit 3 (retry later)
    f.write(&web, "Dockerfile", &dockerfile(None, &sleeper_cmd("v2")));
    f.stop_host("h2");
    let run = run_command(f.command(&["--json", "status"]));
    run.assert_code(3);
    let doc = run.doc();
    let r = status_row(doc, "h1", &web);
    assert_eq!(r["ok"], true, "{}", run.dump());
    assert_eq!(r["files"], "changed");
    assert_eq!(r["next"], "now");
    assert_eq!(r["next_reason"], "config_changed");
    let down = status_row(doc, "h2", &other);
    assert_eq!(down["ok"], false);
    assert!(down["error"].as_str().is_some(), "{}", run.dump());

    // --limit: only h1, all fine again; the table says so too
    let run = run_command(f.command(&["status", "--limit", "h1"]));
    run.assert_code(0);
    assert!(run.stdout.contains(&web), "{}", run.dump());
    // (h2's stack is not listed: its name, not "h2", which the test's
    // unique token may hold)
    assert!(!run.stdout.contains(&other), "{}", run.dump());
    assert!(run.stdout.contains("app running healthy"), "{}", run.dump());
    assert!(run.stdout.contains("1 stack, all fine"), "{}", run.dump());

    // nothing was touched
    assert_eq!(f.state_text("h1", &web), state);
    assert_eq!(f.assert_running("h1", &web), c);

    // a stack stopped by hand is a problem
    f.docker("h1", &["stop", &c.id]);
    let run = run_command(f.command(&["--json", "status", "--limit", "h1"]));
    run.assert_code(1);
    let doc = run.doc();
    let r = status_row(doc, "h1", &web);
    assert_eq!(r["ok"], false);
    assert_eq!(r["running"], false);
    assert!(
        r["problem"].as_str().unwrap().contains("not running"),
        "{}",
        run.dump()
    );
}

/// `--dry-run` shows a plan: per stack it would rebuild, the files and
/// bytes it would ship and which files changed since the build the host
/// runs (known when this controller shipped that build); nothing changes.
/// `rbuild logs` prints the last failed attempt kept on the host (none
/// before one failed), and `status` names the failure and holds the stack
/// back.
#[test]
fn a_dry_run_plans_files_bytes_and_changes_and_logs_prints_the_last_failed_attempt() {
    let f = Fleet::new("dryplan", 1);
    let name = f.add_stack("h1", "web", &StackDef::sleeper("v1"));
    let plan = |run: &crate::support::runs::Run| run.row("h1", &name)["plan"].clone();
    let changed = |p: &Value| -> Vec<(String, String)> {
        p["changed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["path"].as_str().unwrap().to_owned(),
                    c["change"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let local = f.local_dir(&name);
    let size = |files: &[&str]| -> u64 {
        files
            .iter()
            .map(|p| std::fs::metadata(local.join(p)).unwrap().len())
            .sum()
    };

    // never built there: every file is new
    let run = f.run(&["--dry-run"]);
    run.assert_code(0);
    run.expect("h1", &name, "would_rebuild", "first_build");
    let p = plan(&run);
    assert_eq!(p["ship"], true);
    assert_eq!(p["files"], 3, "{p}");
    assert_eq!(p["bytes"], size(&[".env", "Dockerfile", "compose.yml"]));
    assert_eq!(
        changed(&p),
        [".env", "Dockerfile", "compose.yml"].map(|s| (s.to_owned(), "added".to_owned()))
    );
    assert!(
        f.state_text("h1", &name).is_none(),
        "a dry run builds nothing"
    );

    f.run(&[]).assert_code(0);
    let none = run_command(f.command(&["logs", "h1", &name]));
    none.assert_code(0);
    assert!(none.stdout.is_empty(), "{}", none.dump());
    assert!(
        none.stderr.contains("no failed attempt is kept"),
        "{}",
        none.dump()
    );

    let before = f.view("h1");
    f.write(&name, "Dockerfile", &sleeper_dockerfile("v2"));
    f.write(&name, "notes.txt", "hello\n");
    let run = f.run(&["--dry-run"]);
    run.expect("h1", &name, "would_rebuild", "config_changed");
    let p = plan(&run);
    assert_eq!(p["files"], 4);
    assert_eq!(
        p["bytes"],
        size(&[".env", "Dockerfile", "compose.yml", "notes.txt"])
    );
    assert_eq!(
        changed(&p),
        [
            ("Dockerfile".to_owned(), "modified".to_owned()),
            ("notes.txt".to_owned(), "added".to_owned())
        ]
    );
    // the table says it too
    let plain = f.run_plain(&["--dry-run"]);
    assert!(
        plain.stdout.contains(&format!("h1 {name}: ship 4 files, ")),
        "{}",
        plain.dump()
    );
    assert!(
        plain
            .stdout
            .contains("changed: Dockerfile (modified), notes.txt (added)"),
        "{}",
        plain.dump()
    );
    // a controller that did not ship the host's build cannot say what changed
    let mut c = f.command(&["--json", "--dry-run"]);
    c.env("RBUILD_CACHE_DIR", f.root.path().join("other-cache"));
    let run = run_command(c);
    assert!(plan(&run)["changed"].is_null(), "{}", run.dump());
    assert_eq!(plan(&run)["files"], 4);
    assert!(f.view("h1") == before, "dry runs changed the host");

    // a build that fails: its output is kept on the host
    f.write(
        &name,
        "Dockerfile",
        &dockerfile(Some("echo marker-of-the-failed-build; exit 3"), "sleep 1"),
    );
    f.run(&[])
        .assert_code(1)
        .expect("h1", &name, "failed", "config_changed");
    let kept = f.state_dir("h1").join(format!("{name}.failed"));
    assert!(kept.is_file());
    assert!(std::fs::metadata(&kept).unwrap().len() <= 65536 + 4096);

    let run = run_command(f.command(&["logs", "h1", &name]));
    run.assert_code(0);
    assert!(
        run.stdout.contains("marker-of-the-failed-build"),
        "{}",
        run.dump()
    );
    assert!(
        run.stdout.starts_with(&format!("# h1 {name}: failed at ")),
        "{}",
        run.dump()
    );
    let run = run_command(f.command(&["--json", "logs", "h1", &name]));
    run.assert_code(0);
    let doc = run.doc();
    assert_eq!(doc["attempt"]["result"], "failed");
    assert!(
        doc["attempt"]["detail"]
            .as_str()
            .unwrap()
            .contains("build failed")
    );
    assert!(
        doc["output"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().unwrap().contains("marker-of-the-failed-build")),
        "{}",
        run.dump()
    );

    // status names the failure, holds the stack back, and exits 1
    let run = run_command(f.command(&["--json", "status"]));
    run.assert_code(1);
    let doc = run.doc();
    let r = status_row(doc, "h1", &name);
    assert_eq!(r["last_failure"]["result"], "failed");
    assert_eq!(r["next"], "held");
    assert_eq!(r["next_reason"], "previous_failure");
    assert!(
        r["hint"].as_str().unwrap().contains("rbuild logs h1"),
        "{}",
        run.dump()
    );
    // what ran before still runs
    assert_eq!(r["services"][0]["state"], "running");

    // an unknown stack is a usage error
    run_command(f.command(&["logs", "h1", "nosuch"])).assert_code(2);
}
