//! What only hosts that are machines of their own allow: files from the
//! stack directory mounted into containers by the host's engine, one stack
//! name (one compose project) and one published port on several hosts at
//! once, a host's engine stopped or its socket broken while the others work,
//! and a state file of another version.

use std::process::Command;

use crate::support::*;

/// `curl http://ADDR:PORT/` once the host answers there (polled: the port
/// may take a moment to be published); the body.
fn fetch(f: &Fleet, host: &str, port: u16) -> String {
    let url = format!("http://{}:{port}/", f.addr(host));
    let get = || {
        Command::new("curl")
            .args(["-fsS", "-m", "10", &url])
            .output()
            .expect("curl runs")
    };
    wait_for(&format!("{url} to answer"), || get().status.success());
    String::from_utf8_lossy(&get().stdout).into_owned()
}

/// What a container's web server serves on its port 80 (asked from inside).
fn served(f: &Fleet, host: &str, id: &str) -> String {
    f.docker(
        host,
        &["exec", id, "wget", "-q", "-O", "-", "http://127.0.0.1/"],
    )
}

#[test]
fn a_file_secret_and_a_bind_mounted_file_of_the_stack_reach_the_container() {
    let f = Fleet::new("files", 1);
    let compose_yml = format!(
        "services:\n  app:\n    build: .\n    init: true\n    secrets:\n      - db_password\n    volumes:\n      - ./site/index.html:/www/index.html:ro\n{}secrets:\n  db_password:\n    file: ./db/password.txt\n",
        httpd_extra()
    );
    let def = StackDef::sleeper("v1")
        .with("Dockerfile", &httpd_dockerfile(""))
        .with("compose.yml", &compose_yml)
        .with("site/index.html", "<h1>site v1</h1>\n")
        .with_mode("db/password.txt", "s3cret-1\n", 0o600);
    let name = f.add_stack("h1", "web", &def);

    let run = f.run(&[]);
    run.assert_code(0);
    run.expect("h1", &name, "rebuilt", "first_build");
    let c = f.assert_running("h1", &name);
    assert_eq!(
        f.container_file("h1", &c.id, "/run/secrets/db_password"),
        "s3cret-1\n"
    );
    assert_eq!(
        f.container_file("h1", &c.id, "/www/index.html"),
        "<h1>site v1</h1>\n"
    );
    assert_eq!(served(&f, "h1", &c.id), "<h1>site v1</h1>\n");
    // the engine mounted the files of the stack's directory on the host
    let remote = f.remote_dir("h1", &name);
    assert_eq!(
        std::fs::read_to_string(remote.join("db/password.txt")).unwrap(),
        "s3cret-1\n"
    );

    // new contents locally: the next run ships them and the container has them
    f.write(&name, "site/index.html", "<h1>site v2</h1>\n");
    f.write(&name, "db/password.txt", "s3cret-2\n");
    let run = f.run(&[]);
    run.assert_code(0);
    run.expect("h1", &name, "rebuilt", "config_changed");
    let c = f.assert_running("h1", &name);
    assert_eq!(
        std::fs::read_to_string(remote.join("site/index.html")).unwrap(),
        "<h1>site v2</h1>\n",
        "shipped"
    );
    assert_eq!(
        f.container_file("h1", &c.id, "/run/secrets/db_password"),
        "s3cret-2\n",
        "the container reads the new secret"
    );
    assert_eq!(
        f.container_file("h1", &c.id, "/www/index.html"),
        "<h1>site v2</h1>\n",
        "the container has the new file"
    );
    assert_eq!(served(&f, "h1", &c.id), "<h1>site v2</h1>\n");
}

#[test]
fn a_port_published_by_one_stack_on_two_hosts_answers_on_each() {
    let f = Fleet::new("ports", 2);
    let def = StackDef::httpd("v1").with(
        "compose.yml",
        &compose(&format!(
            "    ports:\n      - \"8080:80\"\n{}",
            httpd_extra()
        )),
    );
    let name = f.add_shared_stack("web", &def, &["h1", "h2"], &[], None);

    let run = f.run(&[]);
    run.assert_code(0);
    for h in ["h1", "h2"] {
        run.expect(h, &name, "rebuilt", "first_build");
        f.assert_running(h, &name);
        assert_eq!(fetch(&f, h, 8080), "v1\n", "{h}");
    }
    assert_ne!(f.addr("h1"), f.addr("h2"));

    // a new version: each host serves it on its own port 8080
    f.write(
        &name,
        "Dockerfile",
        &httpd_dockerfile("echo v2 >/www/index.html; "),
    );
    let run = f.run(&[]);
    run.assert_code(0);
    for h in ["h1", "h2"] {
        run.expect(h, &name, "rebuilt", "config_changed");
        f.assert_running(h, &name);
        assert_eq!(fetch(&f, h, 8080), "v2\n", "{h}");
    }
}

/// Each host's engine fault fails that host alone, with its words and
/// hint, ships and records nothing there and leaves the old containers
/// running; once put right, the next run rebuilds those hosts (and only
/// them): h2's engine stopped; h3 (root) with its socket gone; h4 logging
/// in as a user the socket is not for (mode 000; root would bypass that).
/// h1 is fine and rebuilds meanwhile.
#[test]
fn engine_faults_fail_their_host_alone_with_a_hint_and_it_is_rebuilt_once_put_right() {
    let user = LoginUser::new("sock", "/bin/bash");
    let f = Fleet::new("enginestop", 4);
    f.set_user("h4", &user.name);
    let names = f.web_everywhere();
    f.run(&[]).assert_code(0);
    let v1: Vec<Container> = ["h1", "h2", "h3", "h4"]
        .iter()
        .zip(&names)
        .map(|(h, n)| f.assert_running(h, n))
        .collect();
    // h4 logs in as the user: its stacks live in the user's home
    let h4_dir = user.home.join(".local/share/rbuild/stacks");
    let h4_state = user.home.join(".local/state/rbuild");
    assert!(h4_dir.join(&names[3]).join("compose.yml").is_file());
    let h4_state_text =
        || std::fs::read_to_string(h4_state.join(format!("{}.state", names[3]))).unwrap();
    for n in &names {
        f.write(n, "Dockerfile", &sleeper_dockerfile("v2"));
    }
    f.testhosts("engine-stop", "h2");
    f.testhosts("socket-gone", "h3");
    f.testhosts("socket-unreadable", "h4");
    let files = [
        Fleet::snapshot(&f.srv_dir("h2")),
        Fleet::snapshot(&f.srv_dir("h3")),
        Fleet::snapshot(&h4_dir),
    ];
    let states = [
        f.state_text("h2", &names[1]).unwrap(),
        f.state_text("h3", &names[2]).unwrap(),
        h4_state_text(),
    ];

    let run = f.run(&[]);
    run.assert_code(1);
    run.expect("h1", &names[0], "rebuilt", "config_changed");
    let c = f.assert_running("h1", &names[0]);
    assert_ne!(c.id, v1[0].id);
    assert_eq!(f.container_file("h1", &c.id, "/tmp/version"), "v2\n");
    for (h, n, error, hint) in [
        (
            "h2",
            &names[1],
            "the Docker engine does not answer: ",
            "start the Docker engine",
        ),
        (
            "h3",
            &names[2],
            "the Docker engine does not answer: ",
            "start the Docker engine",
        ),
        (
            "h4",
            &names[3],
            "this user may not use the Docker engine: ",
            "`docker` group",
        ),
    ] {
        run.expect(h, n, "failed", "config_changed");
        assert!(run.error_of(h, n).contains(error), "{h}: {}", run.dump());
        assert!(run.hint_of(h, n).contains(hint), "{h}: {}", run.dump());
    }
    // nothing shipped, nothing recorded as built
    assert!(Fleet::snapshot(&f.srv_dir("h2")) == files[0], "h2 files");
    assert!(Fleet::snapshot(&f.srv_dir("h3")) == files[1], "h3 files");
    assert!(Fleet::snapshot(&h4_dir) == files[2], "h4 files");
    assert_eq!(f.state_text("h2", &names[1]).unwrap(), states[0]);
    assert_eq!(f.state_text("h3", &names[2]).unwrap(), states[1]);
    assert_eq!(h4_state_text(), states[2]);

    // put right: the next run rebuilds h2, h3 and h4, and only them; the
    // old containers ran on meanwhile
    f.testhosts("engine-start", "h2");
    f.testhosts("socket-back", "h3");
    f.testhosts("socket-ok", "h4");
    for (k, h) in ["h3", "h4"].iter().enumerate() {
        assert_eq!(f.assert_running(h, &names[k + 2]), v1[k + 2], "{h}");
    }
    let run = f.run(&[]);
    run.assert_code(0);
    run.expect("h1", &names[0], "skipped", "up_to_date");
    assert_eq!(f.assert_running("h1", &names[0]), c);
    for (h, n) in ["h2", "h3", "h4"].iter().zip(&names[1..]) {
        run.expect(h, n, "rebuilt", "config_changed");
        let c = f.assert_running(h, n);
        assert_eq!(f.container_file(h, &c.id, "/tmp/version"), "v2\n");
    }
}

#[test]
fn a_state_file_of_another_version_fails_its_stack_and_is_left_alone() {
    let f = Fleet::new("stateversion", 1);
    let web = f.add_stack("h1", "web", &StackDef::sleeper("v1"));
    let api = f.add_stack("h1", "api", &StackDef::sleeper("v1"));
    f.run(&[]).assert_code(0);
    let web_c = f.assert_running("h1", &web);
    let api_c = f.assert_running("h1", &api);

    // a state file some newer rbuild wrote: version 3, the usual keys
    let text = f.state_text("h1", &web).unwrap();
    assert!(text.starts_with("version=2\n"), "{text}");
    let foreign = text.replacen("version=2\n", "version=3\n", 1);
    std::fs::write(f.state_path("h1", &web), &foreign).unwrap();
    let web_files = Fleet::snapshot(&f.remote_dir("h1", &web));
    for n in [&web, &api] {
        f.write(n, "Dockerfile", &sleeper_dockerfile("v2"));
    }

    let run = f.run(&[]);
    run.assert_code(1);
    run.expect("h1", &web, "failed", "state_unreadable");
    assert!(
        run.error_of("h1", &web).contains("version 3"),
        "{}",
        run.dump()
    );
    // the other stack on the host is rebuilt
    run.expect("h1", &api, "rebuilt", "config_changed");
    let api_now = f.assert_running("h1", &api);
    assert_ne!(api_now.id, api_c.id);
    assert_eq!(f.container_file("h1", &api_now.id, "/tmp/version"), "v2\n");
    // the foreign state file, the stack's files and its container: untouched
    assert_eq!(f.state_text("h1", &web).unwrap(), foreign);
    assert!(Fleet::snapshot(&f.remote_dir("h1", &web)) == web_files);
    assert_eq!(f.assert_running("h1", &web), web_c);
    assert_eq!(f.container_file("h1", &web_c.id, "/tmp/version"), "v1\n");
}

/// Host capability faults each get their own message and hint, on their
/// host alone: `docker` not in the PATH of ssh sessions (h1), a port the
/// stack publishes already held by another container (h2). `--dry-run`
/// tells the first apart before anything is shipped.
#[test]
fn docker_missing_in_path_and_a_taken_port_fail_with_their_own_hints() {
    use std::os::unix::fs::symlink;
    let f = Fleet::new("capab", 2);
    // a PATH with every tool of the machine but docker's
    let bin = f.root.path().join("nodocker-bin");
    std::fs::create_dir(&bin).unwrap();
    for d in ["/usr/local/bin", "/usr/sbin", "/usr/bin"] {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            let n = e.file_name();
            let s = n.to_string_lossy();
            if !s.starts_with("docker") && !bin.join(&n).exists() {
                symlink(e.path(), bin.join(&n)).unwrap();
            }
        }
    }
    f.restart_host_with("h1", &format!("SetEnv PATH={}", bin.display()));
    let def = StackDef::httpd("v1").with(
        "compose.yml",
        &compose(&format!(
            "    ports:\n      - \"8080:80\"\n{}",
            httpd_extra()
        )),
    );
    let names = [
        f.add_stack("h1", "web", &def),
        f.add_stack("h2", "web", &def),
    ];
    let blocker = format!("{}-blocker", f.prefix);
    f.docker(
        "h2",
        &[
            "run",
            "-d",
            "--name",
            &blocker,
            "-p",
            "8080:80",
            crate::support::stacks::BASE_IMAGE,
            "sleep",
            "100000",
        ],
    );

    // the plan already knows h1 cannot build
    let run = f.run(&["--dry-run"]);
    let row = run.row("h1", &names[0]);
    assert_ne!(row["action"], "would_rebuild", "{}", run.dump());
    assert!(
        run.error_of("h1", &names[0])
            .contains("`docker` is not in the PATH"),
        "{}",
        run.dump()
    );

    let run = f.run(&[]);
    run.assert_code(1);
    assert_eq!(run.row("h1", &names[0])["action"], "failed");
    assert!(
        run.error_of("h1", &names[0])
            .contains("`docker` is not in the PATH"),
        "{}",
        run.dump()
    );
    assert!(
        run.hint_of("h1", &names[0])
            .contains("PATH that non-interactive ssh sessions get")
    );
    assert!(
        !run.stdout.contains("may still be running")
            && !run.stderr.contains("may still be running")
    );
    assert!(lock_owner(&f.lock_dir("h1", &names[0])).is_none());

    run.expect("h2", &names[1], "failed", "first_build");
    assert!(
        run.error_of("h2", &names[1])
            .contains("a port it publishes is taken"),
        "{}",
        run.dump()
    );
    assert!(
        run.hint_of("h2", &names[1]).contains("ss -ltnp"),
        "{}",
        run.dump()
    );
    assert!(
        f.containers("h2", &names[1]).iter().all(|c| !c.running()),
        "nothing of the stack runs on h2"
    );
    assert!(
        f.docker("h2", &["ps", "-q", "--filter", &format!("name={blocker}")])
            .trim()
            .len()
            > 1
    );
    assert!(lock_owner(&f.lock_dir("h2", &names[1])).is_none());

    // the port freed, a forced run builds it there
    f.docker("h2", &["rm", "-f", &blocker]);
    let run = f.run(&["--force-rebuild", "--limit", "h2"]);
    run.assert_code(0)
        .expect("h2", &names[1], "rebuilt", "forced");
    assert_eq!(fetch(&f, "h2", 8080), "v1\n");
}
