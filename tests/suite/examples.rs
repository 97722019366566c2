//! The examples shipped in examples/ (a cron line, a systemd service and
//! timer, a CI deploy step), run as written against real test hosts: only
//! the binary's, the inventory's and the metrics directory's paths are
//! replaced by the test's. That each example parses, and what the CI step
//! makes of every exit status, is checked without hosts in tests/docs.rs.

use std::path::Path;
use std::process::Command;

use crate::support::*;

/// Where the examples install rbuild (README, Install).
const BIN: &str = "/usr/local/bin/rbuild";
const INVENTORY: &str = "/etc/rbuild/inventory.yaml";
/// node_exporter's textfile collector, where the cron line and the service
/// write the metrics file (making the directory when it is missing).
const METRICS_DIR: &str = "/var/lib/node_exporter/textfile_collector";

fn example(rel: &str) -> String {
    std::fs::read_to_string(repo_root().join("examples").join(rel))
        .unwrap_or_else(|e| panic!("examples/{rel}: {e}"))
}

/// The example's command line with the test's binary, inventory and
/// metrics directory in place of the installed ones.
fn localised(line: &str, f: &Fleet, metrics_dir: &Path) -> String {
    line.replace(BIN, rbuild_bin().to_str().unwrap())
        .replace(INVENTORY, f.inventory_path().to_str().unwrap())
        .replace("/bin/mkdir", "mkdir")
        .replace(METRICS_DIR, metrics_dir.to_str().unwrap())
}

/// `sh -c LINE` as cron or systemd would start it, with the fleet's ssh
/// config (the one thing a test host needs that a real host has in
/// ~/.ssh/config).
fn run_line(f: &Fleet, line: &str) -> crate::support::runs::Run {
    std::fs::write(f.inventory_path(), f.inventory_text()).unwrap();
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(line)
        .env("RBUILD_SSH_CONFIG", f.th.join("ssh_config"))
        .env("RBUILD_CACHE_DIR", f.root.path().join("cache"))
        .env("RBUILD_SETTLE", "3")
        .env_remove("RBUILD_INVENTORY")
        .current_dir(f.root.path());
    run_command(c)
}

#[test]
fn the_examples_agree_with_the_readme_and_with_each_other() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    assert!(
        readme.contains(&format!("install -m 0755 target/release/rbuild {BIN}")),
        "the README installs rbuild where the examples call it"
    );
    let service = example("systemd/rbuild.service");
    let timer = example("systemd/rbuild.timer");
    let cron = example("cron/rbuild");
    for (name, text) in [("service", &service), ("cron", &cron)] {
        assert!(text.contains(&format!("{BIN} ")), "{name} calls {BIN}");
    }
    // no rebuild just because the machine booted; a failure is reported
    assert!(
        !timer
            .lines()
            .any(|l| l.trim_start().starts_with("OnBootSec")),
        "timer: no OnBootSec"
    );
    assert!(timer.contains("Persistent=true"));
    assert!(service.contains("OnFailure=rbuild-failure@%n.service"));
    example("systemd/rbuild-failure@.service");
    // systemd's own reading of the units: tests/docs.rs (no host needed)
}

fn command_of(text: &str, prefix: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no line starting {prefix:?}"))
        .to_owned()
}

#[test]
fn the_cron_line_the_service_and_the_ci_step_run_as_written() {
    let f = Fleet::new("examples", 2);
    let names = f.web_everywhere();
    // not there yet: the cron line and the service make it
    let metrics_dir = f.root.path().join("textfile_collector");
    let metrics = metrics_dir.join("rbuild.prom");

    // the cron line (after its five time fields and the user)
    let cron = example("cron/rbuild");
    let line = cron
        .lines()
        .find(|l| l.starts_with("*/30"))
        .expect("a cron line");
    let cmd: Vec<&str> = line.splitn(7, ' ').collect();
    assert_eq!(cmd[5], "root");
    let cmd = localised(cmd[6], &f, &metrics_dir);
    let run = run_line(&f, &cmd);
    run.assert_code(0);
    // -q: what changed is said
    for n in &names {
        assert!(run.stdout.contains(n.as_str()), "{}", run.dump());
    }
    assert!(run.stdout.contains("rebuilt"), "{}", run.dump());
    for (h, n) in ["h1", "h2"].iter().zip(&names) {
        f.assert_running(h, n);
    }
    assert!(
        std::fs::read_to_string(&metrics)
            .unwrap()
            .contains("rbuild_")
    );
    // the next one has nothing to say: cron sends no mail
    let run = run_line(&f, &cmd);
    run.assert_code(0);
    assert_eq!(run.stdout, "", "{}", run.dump());
    assert_eq!(run.stderr, "", "{}", run.dump());

    // the service: ExecStartPre makes the directory, ExecStart runs quietly
    std::fs::remove_dir_all(&metrics_dir).unwrap();
    let service = example("systemd/rbuild.service");
    let pre = command_of(&service, "ExecStartPre=");
    run_line(&f, &localised(&pre, &f, &metrics_dir)).assert_code(0);
    let exec = command_of(&service, "ExecStart=");
    let run = run_line(&f, &localised(&exec, &f, &metrics_dir));
    run.assert_code(0);
    assert_eq!(run.stdout, "", "-q, nothing due: {}", run.dump());
    assert!(metrics.exists(), "the service wrote the metrics file");

    // the CI step: nothing due, nothing rebuilt; a change to h1's stack
    // rebuilds it there only; a broken one fails the job
    let deploy = repo_root().join("examples/ci/deploy.sh");
    let ci = |limit: &str| {
        std::fs::write(f.inventory_path(), f.inventory_text()).unwrap();
        let mut c = Command::new(&deploy);
        c.env("RBUILD", rbuild_bin())
            .env("INVENTORY", f.inventory_path())
            .env("LIMIT", limit)
            .env("RETRY_DELAY", "1")
            .env("RBUILD_SSH_CONFIG", f.th.join("ssh_config"))
            .env("RBUILD_CACHE_DIR", f.root.path().join("cache"))
            .env("RBUILD_SETTLE", "3")
            .env("NO_COLOR", "1")
            .env_remove("FAIL_ON_HELD_BACK")
            .current_dir(f.root.path());
        run_command(c)
    };
    let v1 = f.assert_running("h1", &names[0]);
    let run = ci("h1");
    run.assert_code(0);
    assert!(
        run.stdout.contains("ok: 1 host, 1 stack"),
        "checked first: {}",
        run.dump()
    );
    assert!(
        run.stdout.contains("every stack is up and healthy"),
        "{}",
        run.dump()
    );
    assert!(
        !run.stdout.contains("rebuilt"),
        "nothing forced: {}",
        run.dump()
    );
    assert_eq!(f.assert_running("h1", &names[0]), v1, "left as it ran");

    let h2 = f.assert_running("h2", &names[1]);
    f.write(
        &names[0],
        "Dockerfile",
        &dockerfile(None, &sleeper_cmd("v2")),
    );
    let run = ci("h1");
    run.assert_code(0);
    assert!(run.stdout.contains("config_changed"), "{}", run.dump());
    let v2 = f.assert_running("h1", &names[0]);
    assert_ne!(v1.image, v2.image, "the changed stack was rebuilt");
    assert_eq!(
        f.assert_running("h2", &names[1]),
        h2,
        "LIMIT=h1 left h2 alone"
    );

    f.write(&names[0], "Dockerfile", &dockerfile(Some("false"), "true"));
    let run = ci("h1");
    run.assert_code(1);
    assert!(run.stderr.contains("a stack failed"), "{}", run.dump());
    assert!(run.stdout.contains("failed"), "{}", run.dump());
    assert_eq!(
        f.assert_running("h1", &names[0]),
        v2,
        "the old containers run"
    );

    // the same broken files again: held back by the older failure, nothing
    // tried. rbuild exits 4 for that (1 before the exit statuses of issue
    // 21), and the step reports it and passes.
    let direct = f.run_plain(&["--limit", "h1"]);
    let run = ci("h1");
    match direct.code {
        4 => {
            run.assert_code(0);
            assert!(run.stderr.contains("held back"), "{}", run.dump());
        }
        1 => {
            run.assert_code(1);
        }
        other => panic!("held back: exit {other}\n{}", direct.dump()),
    }
}
