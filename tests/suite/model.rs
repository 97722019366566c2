//! Compose's own project model and the original script's users (issue 12,
//! sections 3 and 4): several compose files, the override file, profiles
//! and env files on a host; in local mode the project name compose itself
//! would use, a deployment started by hand taken over (one copy runs
//! afterwards), `BUILD_TTL`, data the containers write into the stack's
//! directory, `--prune-image-cache`, `history` and `rollback`.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::support::*;

/// A Dockerfile whose container records `$MODE`, `$SECRET2` and its version.
fn recording_dockerfile(version: &str) -> String {
    dockerfile(
        None,
        &format!(
            "echo {version} >/tmp/version; echo \"$MODE\" >/tmp/mode; echo \"$SECRET2\" >/tmp/secret; touch /tmp/ok; exec sleep 1000000"
        ),
    )
}

/// The inventory's `compose_file: FILE` line of a stack replaced by `with`
/// (at the same indentation): keys the test inventory model lacks.
fn with_stack_keys(text: &str, file: &str, with: &[String]) -> String {
    let mut out = String::new();
    for l in text.lines() {
        if l.trim_start() == format!("compose_file: {file}") {
            let indent = &l[..l.len() - l.trim_start().len()];
            for w in with {
                out.push_str(&format!("{indent}{w}\n"));
            }
        } else {
            out.push_str(l);
            out.push('\n');
        }
    }
    out
}

#[test]
fn several_compose_files_the_override_file_profiles_and_env_files_on_a_host() {
    let f = Fleet::new("model", 1);
    // a: two files given as a list, the second setting MODE; profile debug
    // enabled; an env file (0600) that reaches the container
    let base = format!(
        "{}    env_file: ./app.env\n  debug:\n    image: {}\n    init: true\n    command: sleep 1000000\n    profiles: [debug]\n",
        compose(""),
        crate::support::stacks::BASE_IMAGE
    );
    let a_def = StackDef::sleeper("a1")
        .with("Dockerfile", &recording_dockerfile("a1"))
        .with("compose.yml", &base)
        .with(
            "compose.prod.yml",
            "services:\n  app:\n    environment:\n      MODE: prod\n",
        )
        .with_mode("app.env", "SECRET2=s3cr3t\n", 0o600);
    let a = f.add_stack("h1", "a", &a_def);
    // b: the override file beside compose.yml is taken as compose takes it;
    // no profiles: the debug service does not run
    let b_def = StackDef::sleeper("b1")
        .with("Dockerfile", &recording_dockerfile("b1"))
        .with("compose.yml", &base)
        .with(
            "compose.override.yml",
            "services:\n  app:\n    environment:\n      MODE: override\n",
        )
        .with_mode("app.env", "SECRET2=other\n", 0o600);
    let b = f.add_stack("h1", "b", &b_def);
    let a_file = "stacks/h1-a/compose.yml".to_owned();
    let text = with_stack_keys(
        &f.inventory_text(),
        &a_file,
        &[
            format!("compose_file: [{a_file}, stacks/h1-a/compose.prod.yml]"),
            "profiles: [debug]".to_owned(),
        ],
    );

    let run = f.run_inventory(&text, &["--json"]);
    run.assert_code(0);
    run.expect("h1", &a, "rebuilt", "first_build");
    run.expect("h1", &b, "rebuilt", "first_build");
    let service = |name: &str, svc: &str| {
        f.containers("h1", name)
            .into_iter()
            .filter(|c| c.service == svc && c.running())
            .collect::<Vec<_>>()
    };
    let app_a = &service(&a, "app")[0];
    assert_eq!(f.container_file("h1", &app_a.id, "/tmp/mode"), "prod\n");
    assert_eq!(f.container_file("h1", &app_a.id, "/tmp/secret"), "s3cr3t\n");
    assert_eq!(service(&a, "debug").len(), 1, "profile debug enabled for a");
    let app_b = &service(&b, "app")[0];
    assert_eq!(f.container_file("h1", &app_b.id, "/tmp/mode"), "override\n");
    assert_eq!(f.container_file("h1", &app_b.id, "/tmp/secret"), "other\n");
    assert!(service(&b, "debug").is_empty(), "no profile for b");
    // the env files keep their mode on the host
    for n in [&a, &b] {
        let m = std::fs::metadata(f.remote_dir("h1", n).join("app.env"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(m & 0o777, 0o600, "{n}: app.env");
    }

    // a change in the second file alone is a change of the stack
    f.write(
        &a,
        "compose.prod.yml",
        "services:\n  app:\n    environment:\n      MODE: prod2\n",
    );
    let run = f.run_inventory(&text, &["--json"]);
    run.assert_code(0);
    run.expect("h1", &a, "rebuilt", "config_changed");
    run.expect("h1", &b, "skipped", "up_to_date");
    let app_a = &service(&a, "app")[0];
    assert_eq!(f.container_file("h1", &app_a.id, "/tmp/mode"), "prod2\n");
}

/// A free TCP port on 127.0.0.1 (for a port the machine's engine publishes).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET /` on 127.0.0.1:PORT once it answers; the body.
fn http_get(port: u16) -> String {
    let url = format!("http://127.0.0.1:{port}/");
    let get = || {
        std::process::Command::new("curl")
            .args(["-fsS", "-m", "10", &url])
            .output()
            .expect("curl runs")
    };
    wait_for(&format!("{url} to answer"), || get().status.success());
    String::from_utf8_lossy(&get().stdout).into_owned()
}

/// `rbuild [ARGS] --json --state-dir STATE ... COMPOSE_FILE` in local mode.
fn local(
    state: &Path,
    args: &[&str],
    file: &Path,
    env: &[(&str, &str)],
) -> crate::support::runs::Run {
    let mut c = rbuild_command();
    c.arg("--json")
        .arg("--state-dir")
        .arg(state)
        .args(args)
        .arg(file);
    c.envs(env.iter().copied());
    run_command(c)
}

#[test]
fn local_mode_takes_over_a_deployment_started_by_hand_under_compose_s_name() {
    let root = tempfile::tempdir().unwrap();
    let engine = Engine::local();
    let guard = DockerGuard::default();
    let project = format!("tadopt{}", token());
    // the directory's name is not the project's: the file's `name:` is
    let dir = root.path().join("deploy");
    let port = free_port();
    let compose_text = |extra: &str| {
        format!(
            "name: {project}\n{}",
            compose(&format!(
                "    ports:\n      - \"127.0.0.1:{port}:80\"\n{}{extra}",
                httpd_extra()
            ))
        )
    };
    StackDef::httpd("v0")
        .with("compose.yml", &compose_text(""))
        .write_to(&dir);
    let file = dir.join("compose.yml");
    let state = root.path().join("state");
    guard.project(&project);
    guard.project("deploy");
    guard.state_file(state.join(format!("{project}.state")));

    // started by hand, as the script or an admin left it
    sh(engine
        .command()
        .args(["compose", "-f"])
        .arg(&file)
        .args(["up", "-d", "--build", "--wait"]));
    let by_hand = engine.assert_running(&project);
    assert_eq!(http_get(port), "v0\n");

    // rbuild takes it over: the same project, one copy, on the same port
    let run = local(&state, &[], &file, &[]);
    run.assert_code(0);
    run.expect("local", &project, "rebuilt", "first_build");
    let v0 = engine.assert_running(&project);
    assert_eq!(engine.containers(&project).len(), 1, "one copy runs");
    assert!(
        engine.containers("deploy").is_empty(),
        "no second copy under the directory's name"
    );
    assert_eq!(http_get(port), "v0\n");

    // the next versions; the hand-built generation goes once two replaced it
    for v in ["v1", "v2"] {
        std::fs::write(
            dir.join("Dockerfile"),
            httpd_dockerfile(&format!("echo {v} >/www/index.html; ")),
        )
        .unwrap();
        local(&state, &[], &file, &[]).assert_code(0).expect(
            "local",
            &project,
            "rebuilt",
            "config_changed",
        );
        assert_eq!(http_get(port), format!("{v}\n"));
    }
    assert_eq!(engine.containers(&project).len(), 1);
    for old in [&by_hand.image, &v0.image] {
        let gone = !engine
            .try_docker(&["image", "inspect", old])
            .status
            .success();
        assert!(gone, "an image two generations old is removed: {old}");
    }

    // history and rollback work here too
    let mut c = rbuild_command();
    c.arg("--state-dir").arg(&state).arg("history").arg(&file);
    let hist = run_command(c);
    hist.assert_code(0);
    assert_eq!(hist.stdout.matches("rebuilt").count(), 3, "{}", hist.dump());
    let run = local(&state, &["rollback"], &file, &[]);
    run.assert_code(0);
    assert_eq!(run.rows()[0]["action"], "rolled_back", "{}", run.dump());
    assert_eq!(http_get(port), "v1\n");
    // a rollback by hand is held, not a failure, until the files change
    local(&state, &[], &file, &[])
        .assert_code(0)
        .expect("local", &project, "skipped", "held");
    local(&state, &["--force-rebuild"], &file, &[])
        .assert_code(0)
        .expect("local", &project, "rebuilt", "forced");
    assert_eq!(http_get(port), "v2\n");
    assert_eq!(engine.containers(&project).len(), 1);
}

#[test]
fn build_ttl_data_written_into_the_stack_and_prune_image_cache_in_local_mode() {
    let root = tempfile::tempdir().unwrap();
    let engine = Engine::local();
    let guard = DockerGuard::default();
    let project = format!("tttl{}", token());
    let dir = root.path().join(&project);
    // the container appends to ./data/log at every start
    StackDef::sleeper("v1")
        .with(
            "Dockerfile",
            &dockerfile(
                None,
                "echo start >>/data/log; touch /tmp/ok; exec sleep 1000000",
            ),
        )
        .with(
            "compose.yml",
            &compose("    volumes:\n      - ./data:/data\n"),
        )
        .write_to(&dir);
    std::fs::create_dir(dir.join("data")).unwrap();
    let file = dir.join("compose.yml");
    let state = root.path().join("state");
    guard.project(&project);
    guard.state_file(state.join(format!("{project}.state")));

    local(&state, &[], &file, &[]).assert_code(0).expect(
        "local",
        &project,
        "rebuilt",
        "first_build",
    );
    let c = engine.assert_running(&project);
    // what the container wrote is not a change of the stack
    assert_eq!(
        std::fs::read_to_string(dir.join("data/log")).unwrap(),
        "start\n"
    );
    local(&state, &[], &file, &[]).assert_code(0).expect(
        "local",
        &project,
        "skipped",
        "up_to_date",
    );
    assert_eq!(engine.assert_running(&project), c);

    // BUILD_TTL, as rbuild.py read it; BUILD_PERIOD wins when both are set
    local(&state, &[], &file, &[("BUILD_TTL", "0")])
        .assert_code(0)
        .expect("local", &project, "rebuilt", "expired");
    local(
        &state,
        &[],
        &file,
        &[("BUILD_TTL", "0"), ("BUILD_PERIOD", "1d")],
    )
    .assert_code(0)
    .expect("local", &project, "skipped", "up_to_date");

    // --prune-image-cache, as the script's cron lines have it
    let run = local(
        &state,
        &["--force-rebuild", "--prune-image-cache"],
        &file,
        &[],
    );
    run.assert_code(0);
    run.expect("local", &project, "rebuilt", "forced");
    engine.assert_running(&project);
    // the data survived every rebuild (the same files build the same image,
    // so compose may keep the container: one line per start it made)
    let log = std::fs::read_to_string(dir.join("data/log")).unwrap();
    assert!(
        log.lines().count() >= 1 && log.lines().all(|l| l == "start"),
        "{log}"
    );
    assert!(dir.join("data").is_dir(), "the data directory stays");

    // and on a run with nothing due, as the original script pruned on
    // every call: a build leaves cache, the run prunes it
    let ctx = root.path().join("cache-ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), dockerfile(None, "exit 0")).unwrap();
    std::fs::write(ctx.join("blob"), vec![7u8; 1 << 20]).unwrap();
    let built = engine.docker(&["build", "-q", ctx.to_str().unwrap()]);
    engine.docker(&["image", "rm", built.trim()]);
    let run = local(&state, &["--prune-image-cache"], &file, &[]);
    run.assert_code(0);
    run.expect("local", &project, "skipped", "up_to_date");
    assert!(
        run.stderr.contains("pruned the build cache"),
        "{}",
        run.dump()
    );
}

/// `--remove-images` removes the generation a rebuild replaced; an image it
/// cannot remove (another container uses it) is not forgotten: the state
/// keeps it as `leftover`, and a later rebuild removes it once it is free.
#[test]
fn remove_images_never_forgets_an_image_it_could_not_remove() {
    let f = Fleet::new("leftover", 1);
    let name = f.add_stack("h1", "web", &StackDef::sleeper("v1"));
    f.run(&[]).assert_code(0);
    let v1 = f.assert_running("h1", &name);
    // something else on the host runs v1's image
    let other = format!("{}-user", f.prefix);
    f.docker(
        "h1",
        &["run", "-d", "--name", &other, &v1.image, "sleep", "100000"],
    );

    f.write(&name, "Dockerfile", &sleeper_dockerfile("v2"));
    let run = f.run(&["--remove-images"]);
    run.assert_code(0);
    run.expect("h1", &name, "rebuilt", "config_changed");
    let has = |id: &str| {
        f.engine("h1")
            .try_docker(&["image", "inspect", id])
            .status
            .success()
    };
    assert!(has(&v1.image), "in use: not removed");
    let st = f.state("h1", &name);
    assert!(st["leftover"].contains(&v1.image), "remembered: {st:?}");
    assert_eq!(
        st["prev_images"], "-",
        "--remove-images keeps no generation"
    );

    // once free, the next rebuild removes it and forgets it
    f.docker("h1", &["rm", "-f", &other]);
    f.write(&name, "Dockerfile", &sleeper_dockerfile("v3"));
    f.run(&[])
        .assert_code(0)
        .expect("h1", &name, "rebuilt", "config_changed");
    assert!(!has(&v1.image), "removed once no container uses it");
    assert_eq!(f.state("h1", &name)["leftover"], "-");
}

/// Local mode: a variable the compose file interpolates from the
/// environment (`${...}`) is part of the stack, as in the original script:
/// the same value is up to date, a new value rebuilds and reaches the
/// container.
#[test]
fn a_changed_variable_the_compose_file_interpolates_rebuilds_in_local_mode() {
    let root = tempfile::tempdir().unwrap();
    let engine = Engine::local();
    let guard = DockerGuard::default();
    let project = format!("tvar{}", token());
    let var = format!("RBUILD_TEST_{}", project.to_uppercase());
    let dir = root.path().join(&project);
    StackDef::sleeper("v1")
        .with(
            "compose.yml",
            &compose(&format!("    environment:\n      - FLAVOUR=${{{var}}}\n")),
        )
        .write_to(&dir);
    let file = dir.join("compose.yml");
    let state = root.path().join("state");
    guard.project(&project);
    guard.state_file(state.join(format!("{project}.state")));
    // (no watcher: a second run follows at once)
    let args = ["--watch", "0"];

    local(&state, &args, &file, &[(&var, "vanilla")])
        .assert_code(0)
        .expect("local", &project, "rebuilt", "first_build");
    local(&state, &args, &file, &[(&var, "vanilla")])
        .assert_code(0)
        .expect("local", &project, "skipped", "up_to_date");
    local(&state, &args, &file, &[(&var, "chocolate")])
        .assert_code(0)
        .expect("local", &project, "rebuilt", "config_changed");
    let c = engine.assert_running(&project);
    let env = engine.docker(&[
        "inspect",
        "--format",
        "{{range .Config.Env}}{{.}} {{end}}",
        &c.id,
    ]);
    assert!(env.contains("FLAVOUR=chocolate"), "{env}");
}
