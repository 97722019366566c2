//! The corpus (issue 19, "A corpus of real shapes"): the stacks of
//! `tests/corpus/`, each shaped like a compose project people deploy, are
//! deployed, changed (code, config, base image), broken (build, crash,
//! health) and rolled back on real test hosts. Each step checks what is
//! served (over HTTP to the host's address, from the machine), the data
//! kept, the services that must not have been restarted (same container,
//! same start) and the state.
//!
//! Tests marked `#[ignore = "issue 19 defect N: ..."]` fail on the current
//! code, each for the reason it names; `--include-ignored` runs them.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use crate::support::*;

/// The stack `tests/corpus/NAME/` as a [`StackDef`]: every file, with mode
/// 0600 under `secrets/` and 0644 elsewhere.
fn corpus(name: &str) -> StackDef {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<(String, String, u32)>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                let rel = p.strip_prefix(base).unwrap().to_str().unwrap().to_owned();
                let mode = if rel.starts_with("secrets/") {
                    0o600
                } else {
                    0o644
                };
                out.push((rel, std::fs::read_to_string(&p).unwrap(), mode));
            }
        }
    }
    let base = repo_root().join("tests/corpus").join(name);
    let mut files = Vec::new();
    walk(&base, &base, &mut files);
    StackDef { files }
}

/// A file of the stack as the test last wrote it locally.
fn local_text(f: &Fleet, name: &str, rel: &str) -> String {
    std::fs::read_to_string(f.local_dir(name).join(rel)).unwrap()
}

/// Replace `from` (which must be there) by `to` in a local file of the stack.
fn edit(f: &Fleet, name: &str, rel: &str, from: &str, to: &str) {
    let text = local_text(f, name, rel);
    assert!(text.contains(from), "{rel} has no `{from}`:\n{text}");
    f.write(name, rel, &text.replace(from, to));
}

/// `GET http://HOST_ADDR:PORT/PATH` from the machine, once the host answers
/// there with any HTTP status (polled: a port is published a moment after
/// its container starts); (status, body).
fn get(f: &Fleet, host: &str, port: u16, path: &str) -> (u16, String) {
    let url = format!("http://{}:{port}{path}", f.addr(host));
    let mut answer = (0, String::new());
    wait_for(&format!("{url} to answer"), || {
        let out = Command::new("curl")
            .args(["-sS", "-m", "10", "-w", "\n%{http_code}", &url])
            .output()
            .expect("curl runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "000"));
        let code: u16 = code.trim().parse().unwrap_or(0);
        answer = (code, body.to_owned());
        code != 0
    });
    answer
}

/// What the host serves at PORT/PATH; panics unless it is a 200.
fn serves(f: &Fleet, host: &str, port: u16, path: &str) -> String {
    let (code, body) = get(f, host, port, path);
    assert_eq!(code, 200, "{host}:{port}{path} answered {code}: {body}");
    body
}

/// The project's containers by service (one each).
fn services(f: &Fleet, host: &str, project: &str) -> BTreeMap<String, Container> {
    let mut m = BTreeMap::new();
    for c in f.containers(host, project) {
        assert!(
            m.insert(c.service.clone(), c.clone()).is_none(),
            "{project}: two containers of {}",
            c.service
        );
    }
    m
}

/// The running (and, with a healthcheck, healthy) container of `svc`.
fn running(f: &Fleet, host: &str, project: &str, svc: &str) -> Container {
    let all = services(f, host, project);
    let c = all
        .get(svc)
        .unwrap_or_else(|| panic!("{project}: no {svc} container: {all:?}"))
        .clone();
    assert!(c.running(), "{project}: {svc} not running: {c:?}");
    assert!(
        c.health == "none" || c.health == "healthy",
        "{project}: {svc} not healthy: {c:?}"
    );
    c
}

/// A container's life: its ID, when it started and how often it restarted.
/// The same life means the service was neither recreated nor restarted.
fn life(f: &Fleet, host: &str, id: &str) -> String {
    f.docker(
        host,
        &[
            "inspect",
            "--format",
            "{{.Id}} {{.State.StartedAt}} restarts={{.RestartCount}}",
            id,
        ],
    )
    .trim()
    .to_owned()
}

/// A container's exit code.
fn exit_code(f: &Fleet, host: &str, id: &str) -> String {
    f.docker(host, &["inspect", "--format", "{{.State.ExitCode}}", id])
        .trim()
        .to_owned()
}

/// Assert the state names the build that ran before (`good`) and remembers
/// a failed attempt at other files.
fn assert_failed_kept(f: &Fleet, host: &str, name: &str, good: &BTreeMap<String, String>) {
    let st = f.state(host, name);
    for k in ["hash", "built_at", "images", "names"] {
        assert_eq!(st[k], good[k], "{name}: the state keeps {k}");
    }
    assert_eq!(st["last_result"], "failed", "{name}: {st:?}");
    assert_ne!(st["failed_hash"], good["hash"], "{name}: {st:?}");
}

// -- a. app + database ------------------------------------------------

/// The app + database stack deployed: the database got its secret, a row
/// is written into it (its named volume) and the app serves it; returns
/// (name, the database's container).
fn app_db_deployed(f: &Fleet) -> (String, Container) {
    let name = f.add_stack("h1", "shop", &corpus("app-db"));
    let run = f.run(&[]);
    run.assert_code(0);
    run.expect("h1", &name, "rebuilt", "first_build");
    let db = running(f, "h1", &name, "db");
    running(f, "h1", &name, "app");
    assert_eq!(
        f.container_file("h1", &db.id, "/run/secrets/db_pw"),
        "correct-horse-1\n"
    );
    f.docker(
        "h1",
        &[
            "exec",
            &db.id,
            "sh",
            "-c",
            "echo 'order 1' >>/var/lib/db/www/rows",
        ],
    );
    assert_eq!(serves(f, "h1", 8000, "/"), "app v1\n");
    assert_eq!(serves(f, "h1", 8000, "/cgi-bin/rows"), "order 1\n");
    assert_eq!(f.state("h1", &name)["last_result"], "ok");
    (name, db)
}

/// A new app (code) and a new healthcheck (config) are rolled out without
/// touching the database; a build that fails (the old containers, files,
/// images and state kept; not retried unless forced), a healthcheck that
/// fails, and an app that crashes 2 s after it listens leave both running,
/// the rows kept: the database, which did not change, is never restarted,
/// not by the rollbacks either.
#[test]
fn app_and_database_the_app_changes_and_breaks_and_the_database_runs_on() {
    let f = Fleet::new("corpusappdb", 1);
    let (name, db) = app_db_deployed(&f);
    let db_life = life(&f, "h1", &db.id);

    // code: the app's page
    f.write(&name, "app/www/index.html", "app v2\n");
    let run = f.run(&[]);
    run.assert_code(0);
    run.expect("h1", &name, "rebuilt", "config_changed");
    let app = running(&f, "h1", &name, "app");
    assert_eq!(serves(&f, "h1", 8000, "/"), "app v2\n");
    assert_eq!(serves(&f, "h1", 8000, "/cgi-bin/rows"), "order 1\n");
    assert_eq!(life(&f, "h1", &db.id), db_life, "the database ran on");
    let good = f.state("h1", &name);
    assert_eq!(good["last_result"], "ok");

    // a build that fails: nothing is replaced
    let files = Fleet::snapshot(&f.remote_dir("h1", &name));
    let images = f.engine("h1").images();
    edit(
        &f,
        &name,
        "app/Dockerfile",
        "COPY www /www\n",
        "COPY www /www\nRUN exit 3\n",
    );
    let run = f.run(&[]);
    run.assert_code(1);
    run.expect("h1", &name, "failed", "config_changed");
    assert!(
        run.error_of("h1", &name).contains("build"),
        "{}",
        run.dump()
    );
    assert_eq!(running(&f, "h1", &name, "app").id, app.id);
    assert_eq!(life(&f, "h1", &db.id), db_life, "the database ran on");
    assert_eq!(serves(&f, "h1", 8000, "/"), "app v2\n");
    assert_failed_kept(&f, "h1", &name, &good);
    // no success was claimed: the state still names the build that runs;
    // the host keeps the files that run, and nothing the failed build made
    let st = f.state("h1", &name);
    for k in ["compose", "prev_images"] {
        assert_eq!(st[k], good[k], "{k}");
    }
    assert_eq!(st["failed_hash"].len(), 64);
    assert!(
        Fleet::snapshot(&f.remote_dir("h1", &name)) == files,
        "the stack dir on the host is the old one"
    );
    assert!(lock_owner(&f.lock_dir("h1", &name)).is_none());
    assert_eq!(
        f.engine("h1").images(),
        images,
        "the images there were before"
    );
    // a failed build is remembered like a failed gate: the next run does
    // not build the same files again, a forced one does
    let run = f.run(&[]);
    run.assert_code(4);
    run.expect("h1", &name, "skipped", "previous_failure");
    let run = f.run(&["--force-rebuild"]);
    run.assert_code(1);
    run.expect("h1", &name, "failed", "forced");
    assert_eq!(running(&f, "h1", &name, "app").id, app.id);
    assert_eq!(life(&f, "h1", &db.id), db_life, "the database ran on");
    edit(
        &f,
        &name,
        "app/Dockerfile",
        "COPY www /www\nRUN exit 3\n",
        "COPY www /www\n",
    );

    // a healthcheck that fails (a path the app does not have): rolled back
    edit(
        &f,
        &name,
        "compose.yml",
        "\"http://127.0.0.1:8000/\"]\n      interval: 1s\n      timeout: 3s\n      retries: 10",
        "\"http://127.0.0.1:8000/healthz\"]\n      interval: 1s\n      timeout: 3s\n      retries: 2",
    );
    let run = f.run(&[]);
    run.assert_code(1);
    run.expect("h1", &name, "rolled_back", "config_changed");
    assert!(
        run.error_of("h1", &name).contains("app(unhealthy)"),
        "{}",
        run.dump()
    );
    let back = running(&f, "h1", &name, "app");
    assert_eq!(back.image, app.image, "v2's app runs again");
    assert_eq!(serves(&f, "h1", 8000, "/"), "app v2\n");
    assert_eq!(serves(&f, "h1", 8000, "/cgi-bin/rows"), "order 1\n");
    assert_failed_kept(&f, "h1", &name, &good);
    edit(
        &f,
        &name,
        "compose.yml",
        "\"http://127.0.0.1:8000/healthz\"]\n      interval: 1s\n      timeout: 3s\n      retries: 2",
        "\"http://127.0.0.1:8000/\"]\n      interval: 1s\n      timeout: 3s\n      retries: 10",
    );

    // a new app that crashes 2 s after it listens: rolled back, and the
    // database is not restarted by the rollback
    let db_life = life(&f, "h1", &db.id);
    f.write(&name, "app/www/index.html", "app v3\n");
    edit(
        &f,
        &name,
        "app/Dockerfile",
        "CMD [\"httpd\", \"-f\", \"-p\", \"8000\", \"-h\", \"/www\"]",
        "CMD [\"sh\", \"-c\", \"httpd -p 8000 -h /www; sleep 2; exit 1\"]",
    );
    let run = f.run(&[]);
    run.assert_code(1);
    run.expect("h1", &name, "rolled_back", "config_changed");
    let back = running(&f, "h1", &name, "app");
    assert_eq!(back.image, app.image, "v2's app runs again");
    assert_eq!(serves(&f, "h1", 8000, "/"), "app v2\n");
    assert_eq!(serves(&f, "h1", 8000, "/cgi-bin/rows"), "order 1\n");
    assert_failed_kept(&f, "h1", &name, &good);
    assert_eq!(
        life(&f, "h1", &db.id),
        db_life,
        "the database, unchanged, was not restarted by the rollback"
    );
}

// -- b. an image-only proxy with bind-mounted files ---------------------

/// The proxy (an image-only server: its site and config are bind-mounted
/// files of the stack), with a probe on the host as part of its gate: the
/// container may be healthy (its page answers), the probe's URL must answer
/// `ok` too.
/// - Only the mounted files change (the site directory and the config
///   file): the proxy serves the new site and sees the new config.
/// - A config that makes the server exit (a bad flag, as a typo in an
///   nginx config would) shipped with new content: rolled back, and the
///   old site and config are what is served, the host has the old files.
/// - A version whose site lost the probe's page (healthy, not probed ok):
///   rolled back, the old site served.
#[test]
fn an_image_only_proxy_follows_its_mounted_files_and_its_probe_and_is_rolled_back() {
    let f = Fleet::new("corpusproxy", 1);
    let name = f.add_stack("h1", "proxy", &corpus("proxy"));
    f.write(&name, "site/health.txt", "ok\n");
    f.edit_inventory(|inv| {
        let p = &mut inv.stack("h1", &name).probe;
        p.insert("url".into(), "http://127.0.0.1:8080/health.txt".into());
        p.insert("expect".into(), "ok".into());
    });
    let run = f.run(&[]);
    run.assert_code(0);
    run.expect("h1", &name, "rebuilt", "first_build");
    assert!(run.stderr.contains(": probe"), "{}", run.dump());
    let c = running(&f, "h1", &name, "proxy");
    assert_eq!(serves(&f, "h1", 8080, "/"), "<h1>site v1</h1>\n");
    assert!(
        f.container_file("h1", &c.id, "/etc/app.conf")
            .contains("version=1")
    );

    // only the mounted files change
    f.write(&name, "site/index.html", "<h1>site v2</h1>\n");
    f.write(&name, "conf/app.conf", "upstream=app:8000\nversion=2\n");
    let run = f.run(&[]);
    run.assert_code(0);
    run.expect("h1", &name, "rebuilt", "config_changed");
    let c = running(&f, "h1", &name, "proxy");
    let conf = f.container_file("h1", &c.id, "/etc/app.conf");
    let (code, body) = get(&f, "h1", 8080, "/");
    assert_eq!(
        (code, body.as_str(), conf.contains("version=2")),
        (200, "<h1>site v2</h1>\n", true),
        "the new site is served and the new config mounted; /etc/app.conf:\n{conf}"
    );
    let good = f.state("h1", &name);
    assert_eq!(good["last_result"], "ok");

    // a config that makes the server exit, with new content
    f.write(&name, "site/index.html", "<h1>site v3</h1>\n");
    edit(
        &f,
        &name,
        "compose.yml",
        "\"-h\", \"/www\"]",
        "\"-h\", \"/www\", \"--no-such-flag\"]",
    );
    let run = f.run(&[]);
    run.assert_code(1);
    run.expect("h1", &name, "rolled_back", "config_changed");
    let c = running(&f, "h1", &name, "proxy");
    assert_eq!(serves(&f, "h1", 8080, "/"), "<h1>site v2</h1>\n");
    assert!(
        f.container_file("h1", &c.id, "/etc/app.conf")
            .contains("version=2")
    );
    assert_eq!(
        std::fs::read_to_string(f.remote_dir("h1", &name).join("site/index.html")).unwrap(),
        "<h1>site v2</h1>\n",
        "the host has the old files back"
    );
    assert_failed_kept(&f, "h1", &name, &good);
    edit(
        &f,
        &name,
        "compose.yml",
        "\"-h\", \"/www\", \"--no-such-flag\"]",
        "\"-h\", \"/www\"]",
    );

    // a new page, and the health page gone: healthy, but not probed ok
    f.write(&name, "site/index.html", "<h1>site v4</h1>\n");
    std::fs::remove_file(f.local_dir(&name).join("site/health.txt")).unwrap();
    let run = f.run(&["--up-timeout-period", "15"]);
    run.assert_code(1);
    run.expect("h1", &name, "rolled_back", "config_changed");
    assert!(
        run.error_of("h1", &name).contains("probe"),
        "{}",
        run.dump()
    );
    let (code, body) = get(&f, "h1", 8080, "/");
    assert_eq!((code, body.as_str()), (200, "<h1>site v2</h1>\n"));
    assert_failed_kept(&f, "h1", &name, &good);
}

// -- c. servers with restart "no" and on-failure --------------------------

/// Two servers that keep running, one `restart: "no"`, one `on-failure`:
/// the rebuild passes once they run (healthy), a change reaches both, and a
/// crash of the on-failure one is rolled back.
#[test]
fn servers_with_restart_no_and_on_failure_pass_once_they_run() {
    let f = Fleet::new("corpusrestart", 1);
    let name = f.add_stack("h1", "api", &corpus("restart-policies"));
    // short: the version of today fails only once this has passed
    let args = ["--up-timeout-period", "20"];
    let run = f.run(&args);
    run.assert_code(0);
    run.expect("h1", &name, "rebuilt", "first_build");
    running(&f, "h1", &name, "api");
    running(&f, "h1", &name, "web");
    assert_eq!(serves(&f, "h1", 8001, "/"), "v1\n");
    assert_eq!(serves(&f, "h1", 8002, "/"), "v1\n");

    f.write(&name, "index.html", "v2\n");
    let run = f.run(&args);
    run.assert_code(0);
    run.expect("h1", &name, "rebuilt", "config_changed");
    assert_eq!(serves(&f, "h1", 8001, "/"), "v2\n");
    assert_eq!(serves(&f, "h1", 8002, "/"), "v2\n");
    let good = f.state("h1", &name);
    let api = running(&f, "h1", &name, "api");

    // the on-failure server crashes 2 s after it listens: restarted by its
    // policy, not steady, rolled back
    edit(
        &f,
        &name,
        "compose.yml",
        "command: [\"httpd\", \"-f\", \"-p\", \"8002\", \"-h\", \"/www\"]",
        "command: [\"sh\", \"-c\", \"httpd -p 8002 -h /www; sleep 2; exit 1\"]",
    );
    let run = f.run(&args);
    run.assert_code(1);
    run.expect("h1", &name, "rolled_back", "config_changed");
    running(&f, "h1", &name, "web");
    assert_eq!(serves(&f, "h1", 8002, "/"), "v2\n");
    assert_eq!(running(&f, "h1", &name, "api").image, api.image);
    assert_failed_kept(&f, "h1", &name, &good);
}

// -- d. a slow starter that crashes after it listens ----------------------

/// A new version listens after 3 s and crashes about 9 s later, well after
/// the 3 s settle window: it passes its gate. Once it has crashed, it must
/// not be taken for running as recorded: rolled back (by the host's
/// watcher, or by the next run), v1 serves again, the state remembers the
/// failure. Then, from a good v3, the same late crash of a v4 with a
/// watcher on the host (`watch: 40`): the watcher puts v3 back by itself,
/// with no run of the controller, records it (the state, the history), and
/// the next run says the files failed.
#[test]
fn a_slow_starter_that_crashes_after_the_settle_window_is_rolled_back_by_the_run_or_the_watcher() {
    let f = Fleet::new("corpusslow", 1);
    let name = f.add_stack("h1", "node", &corpus("slow-crash"));
    let run = f.run(&[]);
    run.assert_code(0);
    run.expect("h1", &name, "rebuilt", "first_build");
    let v1 = running(&f, "h1", &name, "app");
    assert_eq!(serves(&f, "h1", 8000, "/"), "v1\n");
    let good = f.state("h1", &name);
    let late_crash = |v: &str| {
        format!(
            "mkdir -p /www\necho {v} >/www/index.html\nsleep 3\nhttpd -p 8000 -h /www\nsleep 9\nexit 1\n"
        )
    };

    // without a watcher: the next run
    f.write(&name, "start.sh", &late_crash("v2"));
    let run = f.run(&["--settle", "3"]);
    eprintln!("the run of the late-crashing version:\n{}", run.dump());
    // it crashes: the container restarts (or a watcher put v1 back)
    wait_for("v2 to crash or be rolled back", || {
        let c = services(&f, "h1", &name)["app"].clone();
        c.image == v1.image
            || f.docker("h1", &["inspect", "--format", "{{.RestartCount}}", &c.id])
                .trim()
                != "0"
    });
    let run = f.run(&["--settle", "3"]);
    let row = run.row("h1", &name);
    assert!(
        !(row["action"] == "skipped" && row["reason"] == "up_to_date"),
        "a crash-looping stack is not up to date:\n{}",
        run.dump()
    );
    let now = running(&f, "h1", &name, "app");
    assert_eq!(now.image, v1.image, "v1 runs again");
    assert_eq!(serves(&f, "h1", 8000, "/"), "v1\n");
    assert_failed_kept(&f, "h1", &name, &good);

    // a good v3 (v2 passed its gate: it is a kept generation, and would be
    // the watcher's rollback target otherwise)
    let start =
        std::fs::read_to_string(repo_root().join("tests/corpus/slow-crash/start.sh")).unwrap();
    f.write(&name, "start.sh", &start.replace("echo v1", "echo v3"));
    let run = f.run(&["--settle", "3"]);
    run.assert_code(0);
    run.expect("h1", &name, "rebuilt", "config_changed");
    let v3 = running(&f, "h1", &name, "app");
    assert_eq!(serves(&f, "h1", 8000, "/"), "v3\n");
    let good = f.state("h1", &name);

    // with a watcher on the host: the host alone
    f.edit_inventory(|inv| inv.stack("h1", &name).watch = Some("40".into()));
    f.write(&name, "start.sh", &late_crash("v4"));
    let run = f.run(&["--settle", "3"]);
    run.assert_code(0);
    run.expect("h1", &name, "rebuilt", "config_changed");
    assert!(run.stderr.contains("watched on the host"), "{}", run.dump());
    // nothing from the controller now: the host alone
    wait_for("the watcher to put v3 back", || {
        services(&f, "h1", &name)["app"].image == v3.image
            && f.state("h1", &name)["last_result"] == "failed"
    });
    assert_eq!(serves(&f, "h1", 8000, "/"), "v3\n");
    assert_failed_kept(&f, "h1", &name, &good);
    let hist = f.history_lines("h1", &name);
    assert!(
        hist.last()
            .is_some_and(|l| l.contains("rolled_back") && l.contains("(watch)")),
        "{hist:?}"
    );
    let run = f.run(&["--settle", "3"]);
    run.assert_code(4);
    run.expect("h1", &name, "skipped", "previous_failure");
}

// -- e. a one-shot migration ------------------------------------------------

/// The migration runs to its end before the app starts; a new schema is
/// migrated and served; a migration that exits 1 fails the rebuild and is
/// rolled back; the volume keeps every migration's record.
#[test]
fn a_one_shot_migration_runs_before_the_app_and_a_failing_one_is_rolled_back() {
    let f = Fleet::new("corpusmigrate", 1);
    let name = f.add_stack("h1", "django", &corpus("migration"));
    let run = f.run(&[]);
    run.assert_code(0);
    run.expect("h1", &name, "rebuilt", "first_build");
    let migrate = services(&f, "h1", &name)["migrate"].clone();
    assert_eq!(migrate.status, "exited", "the job ran to its end");
    assert_eq!(exit_code(&f, "h1", &migrate.id), "0");
    let app = running(&f, "h1", &name, "app");
    assert_eq!(serves(&f, "h1", 8000, "/"), "app v1\n");
    assert_eq!(serves(&f, "h1", 8000, "/schema"), "1\n");

    // code and schema: migrated, then served
    f.write(
        &name,
        "migrate.sh",
        "echo \"migrate to 2\" >>/data/migrations.log\necho 2 >/data/schema\nexit 0\n",
    );
    f.write(&name, "version", "app v2\n");
    let run = f.run(&[]);
    run.assert_code(0);
    run.expect("h1", &name, "rebuilt", "config_changed");
    let app2 = running(&f, "h1", &name, "app");
    assert_ne!(app2.id, app.id);
    assert_eq!(serves(&f, "h1", 8000, "/"), "app v2\n");
    assert_eq!(serves(&f, "h1", 8000, "/schema"), "2\n");
    assert_eq!(
        f.container_file("h1", &app2.id, "/data/migrations.log"),
        "migrate to 1\nmigrate to 2\n",
        "the volume kept the first migration's record"
    );
    let good = f.state("h1", &name);

    // a migration that fails: the app that waits for it never starts
    f.write(
        &name,
        "migrate.sh",
        "echo \"migrate to 3\" >>/data/migrations.log\nsleep 1\nexit 1\n",
    );
    f.write(&name, "version", "app v3\n");
    let run = f.run(&["--up-timeout-period", "40"]);
    run.assert_code(1);
    run.expect("h1", &name, "rolled_back", "config_changed");
    let back = running(&f, "h1", &name, "app");
    assert_eq!(back.image, app2.image, "v2's app runs again");
    assert_eq!(serves(&f, "h1", 8000, "/"), "app v2\n");
    assert_eq!(serves(&f, "h1", 8000, "/schema"), "2\n");
    let log = f.container_file("h1", &back.id, "/data/migrations.log");
    assert!(
        log.starts_with("migrate to 1\nmigrate to 2\nmigrate to 3\n"),
        "the volume keeps every record: {log}"
    );
    let migrate = services(&f, "h1", &name)["migrate"].clone();
    assert_eq!(exit_code(&f, "h1", &migrate.id), "0", "v2's migration ran");
    assert_failed_kept(&f, "h1", &name, &good);
}

// -- f. the whole directory mounted writable --------------------------------

/// The `.:/code` stack deployed: it serves v1 and logged its start into
/// `data/visits.log` of the stack directory on the host; returns (name,
/// the container, a reader of that log on the host).
fn code_mount_deployed(
    f: &Fleet,
    def: &StackDef,
) -> (String, Container, impl Fn() -> String + use<>) {
    let name = f.add_stack("h1", "dev", def);
    let run = f.run(&[]);
    run.assert_code(0);
    run.expect("h1", &name, "rebuilt", "first_build");
    let c = running(f, "h1", &name, "app");
    assert_eq!(serves(f, "h1", 8000, "/"), "v1\n");
    let visits = f.remote_dir("h1", &name).join("data/visits.log");
    let read = move || std::fs::read_to_string(&visits).unwrap_or_default();
    assert_eq!(read(), "start v1\n");
    (name, c, read)
}

/// `.:/code`: the app runs the code it finds in the stack's directory and
/// writes its data there. A new version (code and a requirement the image
/// installs) and a crashing one: what the app wrote survives the rebuild
/// and the rollback, and the app that runs reads the files that were
/// shipped. Then a Dockerfile of only FROM and CMD and a change of the
/// code alone (the same image ID): the new code runs from the new
/// directory.
#[test]
fn a_whole_directory_mount_keeps_what_the_app_wrote_through_a_rebuild_and_a_rollback() {
    let f = Fleet::new("corpuscode", 1);
    let (name, _, read) = code_mount_deployed(&f, &corpus("code-mount"));

    f.write(&name, "VERSION", "v2\n");
    f.write(&name, "requirements.txt", "web-framework==2.0\n");
    let run = f.run(&[]);
    run.assert_code(0);
    run.expect("h1", &name, "rebuilt", "config_changed");
    let v2 = running(&f, "h1", &name, "app");
    assert_eq!(serves(&f, "h1", 8000, "/"), "v2\n");
    assert_eq!(serves(&f, "h1", 8000, "/installed"), "web-framework==2.0\n");
    assert_eq!(read(), "start v1\nstart v2\n", "v1's data kept");
    assert_eq!(
        f.container_file("h1", &v2.id, "/code/data/visits.log"),
        read(),
        "the container writes into the stack directory the host has"
    );
    let good = f.state("h1", &name);

    // a crash after it wrote: rolled back, and what it wrote is kept
    f.write(
        &name,
        "app.sh",
        "mkdir -p /code/data\necho \"start $(cat /code/VERSION) broken\" >>/code/data/visits.log\nexit 1\n",
    );
    f.write(&name, "VERSION", "v3\n");
    f.write(&name, "requirements.txt", "web-framework==3.0\n");
    let run = f.run(&[]);
    run.assert_code(1);
    run.expect("h1", &name, "rolled_back", "config_changed");
    let back = running(&f, "h1", &name, "app");
    assert_eq!(back.image, v2.image);
    assert_eq!(serves(&f, "h1", 8000, "/"), "v2\n");
    let log = read();
    assert!(
        log.starts_with("start v1\nstart v2\nstart v3 broken\n") && log.ends_with("start v2\n"),
        "every start is kept, the failed version's too: {log}"
    );
    assert_eq!(
        f.container_file("h1", &back.id, "/code/data/visits.log"),
        log
    );
    assert_eq!(
        f.container_file("h1", &back.id, "/code/VERSION"),
        "v2\n",
        "the running app reads the files of its generation"
    );
    assert_failed_kept(&f, "h1", &name, &good);

    // the same project with a Dockerfile of only FROM and CMD (the code is
    // all in the mount), then a change of the code alone: the build gives
    // the image of the same ID. The app must run the new code from the new
    // directory, and keep writing where the host sees it.
    let app_sh =
        std::fs::read_to_string(repo_root().join("tests/corpus/code-mount/app.sh")).unwrap();
    f.write(&name, "app.sh", &app_sh);
    f.write(
        &name,
        "Dockerfile",
        &format!("FROM {REGISTRY}/rbuild/busybox:1\nCMD [\"sh\", \"/code/app.sh\"]\n"),
    );
    f.write(&name, "VERSION", "v4\n");
    let run = f.run(&[]);
    run.assert_code(0);
    run.expect("h1", &name, "rebuilt", "config_changed");
    let v4 = running(&f, "h1", &name, "app");
    assert_eq!(serves(&f, "h1", 8000, "/"), "v4\n");
    let log = read();
    assert!(log.ends_with("start v4\n"), "{log}");

    f.write(&name, "VERSION", "v5\n");
    let run = f.run(&[]);
    run.assert_code(0);
    run.expect("h1", &name, "rebuilt", "config_changed");
    let now = running(&f, "h1", &name, "app");
    let same = if now.id == v4.id {
        " (the same container)"
    } else {
        ""
    };
    assert_eq!(
        serves(&f, "h1", 8000, "/"),
        "v5\n",
        "the new code runs{same}"
    );
    assert_eq!(read(), format!("{log}start v5\n"), "the data kept");
    f.docker(
        "h1",
        &[
            "exec",
            &now.id,
            "sh",
            "-c",
            "echo note >>/code/data/visits.log",
        ],
    );
    assert_eq!(
        read(),
        format!("{log}start v5\nnote\n"),
        "what the app writes reaches the stack directory"
    );
}

// -- g. a Dockerfile of only FROM and CMD ------------------------------------

/// A base image with `/etc/base-release` saying `release`, built on the
/// machine and pushed as `REGISTRY/PREFIX/base:1` (the same tag each time:
/// a security update); the reference.
fn push_base(f: &Fleet, release: &str) -> String {
    let repo = format!("{}/base", f.prefix);
    f.push_image(
        &format!("base-{release}"),
        &repo,
        "1",
        &format!(
            "FROM {REGISTRY}/rbuild/busybox:1\nRUN echo 'base {release}' >/etc/base-release\n"
        ),
    );
    format!("{REGISTRY}/{repo}:1")
}

/// Code (the CMD), a new base image under the same tag (forced rebuild,
/// `--pull`), a base that cannot be pulled (build fails), a CMD that exits
/// (rolled back).
#[test]
fn a_dockerfile_of_only_from_and_cmd_follows_its_code_and_its_base_image() {
    let f = Fleet::new("corpusfromcmd", 1);
    let base = push_base(&f, "1");
    let def = corpus("from-cmd");
    let name = f.add_stack("h1", "tiny", &def);
    let busybox = format!("FROM {REGISTRY}/rbuild/busybox:1\n");
    edit(&f, &name, "Dockerfile", &busybox, &format!("FROM {base}\n"));
    let dockerfile = local_text(&f, &name, "Dockerfile");
    assert_eq!(
        dockerfile
            .lines()
            .map(|l| l.split(' ').next().unwrap())
            .collect::<Vec<_>>(),
        ["FROM", "CMD"]
    );
    let run = f.run(&[]);
    run.assert_code(0);
    run.expect("h1", &name, "rebuilt", "first_build");
    assert_eq!(serves(&f, "h1", 8000, "/"), "base 1\n");

    // code: the CMD
    edit(
        &f,
        &name,
        "Dockerfile",
        "cat /etc/base-release >",
        "{ echo v2; cat /etc/base-release; } >",
    );
    let run = f.run(&[]);
    run.assert_code(0);
    run.expect("h1", &name, "rebuilt", "config_changed");
    assert_eq!(serves(&f, "h1", 8000, "/"), "v2\nbase 1\n");

    // the base image: a new one under the same tag, picked up by --pull
    push_base(&f, "2");
    let run = f.run(&["--force-rebuild"]);
    run.assert_code(0);
    run.expect("h1", &name, "rebuilt", "forced");
    let v2 = running(&f, "h1", &name, "app");
    assert_eq!(serves(&f, "h1", 8000, "/"), "v2\nbase 2\n");
    let good = f.state("h1", &name);

    // a base that cannot be pulled: the build fails, nothing is replaced
    edit(
        &f,
        &name,
        "Dockerfile",
        &format!("FROM {base}\n"),
        &format!("FROM {base}-missing\n"),
    );
    let run = f.run(&[]);
    run.assert_code(1);
    run.expect("h1", &name, "failed", "config_changed");
    assert_eq!(running(&f, "h1", &name, "app").id, v2.id);
    assert_eq!(serves(&f, "h1", 8000, "/"), "v2\nbase 2\n");
    assert_failed_kept(&f, "h1", &name, &good);

    // a CMD that exits: rolled back
    f.write(
        &name,
        "Dockerfile",
        &format!("FROM {base}\nCMD [\"sh\", \"-c\", \"echo no such module >&2; exit 1\"]\n"),
    );
    let run = f.run(&[]);
    run.assert_code(1);
    run.expect("h1", &name, "rolled_back", "config_changed");
    let back = running(&f, "h1", &name, "app");
    assert_eq!(back.image, v2.image);
    assert_eq!(serves(&f, "h1", 8000, "/"), "v2\nbase 2\n");
    assert_failed_kept(&f, "h1", &name, &good);
}
