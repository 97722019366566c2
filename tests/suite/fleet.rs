//! The rebuild decision on a healthy fleet: first build, up to date, changed
//! files, expiry, force, dry run and quiet output; login shells, sessions and
//! ssh options. (The decision itself, every reason, is unit-tested in
//! src/decide.rs and src/plan.rs: these show it on real hosts.)

use crate::support::*;

/// One fleet through its life, each step checked on every host: a dry run
/// of a fresh fleet touches nothing; the first run rebuilds every host (one
/// login, two commands each); the second finds everything up to date (one
/// login, one command, nothing written); `-q` prints nothing when nothing
/// happened; a dry run of a change (and a forced one) touches nothing; a
/// changed file rebuilds only its stack; `-q` prints the summary once
/// something happened; no ssh process is left behind.
#[test]
fn a_fleet_is_built_checked_and_changed_stack_by_stack() {
    let f = Fleet::new("first", 3);
    let names = f.web_everywhere();
    let hosts = ["h1", "h2", "h3"];
    let count = |h: &str| (f.accepted_logins(h), f.remote_commands(h));
    let since = |was: &[(usize, usize)]| -> Vec<(usize, usize)> {
        hosts
            .iter()
            .zip(was)
            .map(|(h, (l, c))| (count(h).0 - l, count(h).1 - c))
            .collect()
    };

    // a dry run on a fresh fleet: nothing is shipped, built or recorded
    let run = f.run(&["--dry-run"]);
    run.assert_code(0);
    for (k, name) in names.iter().enumerate() {
        let h = hosts[k];
        run.expect(h, name, "would_rebuild", "first_build");
        assert!(f.containers(h, name).is_empty(), "no container for {name}");
        assert!(f.engine(h).images().is_empty(), "{h}: nothing was built");
        assert_eq!(Fleet::entries(&f.state_dir(h)), Vec::<String>::new());
        assert_eq!(Fleet::entries(&f.srv_dir(h)), Vec::<String>::new());
    }

    // the first run: every host rebuilt, the check then the apply over the
    // same connection
    let was: Vec<_> = hosts.iter().map(|h| count(h)).collect();
    let run = f.run(&[]);
    run.assert_code(0);
    assert_eq!(run.rows().len(), 3, "{}", run.dump());
    assert_eq!(
        since(&was),
        [(1, 2); 3],
        "a first build: one login, two commands"
    );
    for (k, name) in names.iter().enumerate() {
        let h = hosts[k];
        run.expect(h, name, "rebuilt", "first_build");

        // the container runs the image built from the shipped files
        let c = f.assert_running(h, name);
        assert_eq!(f.container_file(h, &c.id, "/tmp/version"), "v1\n");

        // the host recorded the build
        let st = f.state(h, name);
        assert_eq!(st["version"], "2");
        assert_eq!(st["last_result"], "ok");
        assert_eq!(st["hash"].len(), 64, "hash= is a sha256: {st:?}");
        assert!(st["hash"].chars().all(|c| c.is_ascii_hexdigit()));
        assert!(st["images"].contains(&c.image), "{st:?} vs {c:?}");

        // the stack's files are on the host, private
        let remote = f.remote_dir(h, name);
        let local = f.local_dir(name);
        for file in ["Dockerfile", "compose.yml", ".env"] {
            assert_eq!(
                std::fs::read(remote.join(file)).unwrap(),
                std::fs::read(local.join(file)).unwrap(),
                "{file} on {h}"
            );
        }
        assert_eq!(mode(&remote.join(".env")), 0o600, ".env on {h}");
        assert_eq!(mode(&remote), 0o700, "stack dir on {h}");
    }
    // each host got only its own stack, and runs only it
    for (k, name) in names.iter().enumerate() {
        let h = hosts[k];
        assert_eq!(Fleet::entries(&f.srv_dir(h)), [name.as_str()]);
        let all = f.engine(h).all_containers();
        assert_eq!(all, f.containers(h, name), "{h} runs only {name}");
    }
    let before: Vec<Container> = hosts_and(&names)
        .map(|(h, n)| f.assert_running(&h, n))
        .collect();
    let states: Vec<String> = hosts_and(&names)
        .map(|(h, n)| f.state_text(&h, n).unwrap())
        .collect();
    let state_dirs: Vec<_> = hosts
        .iter()
        .map(|h| Fleet::snapshot(&f.state_dir(h)))
        .collect();

    // the second run: up to date, one login and one command per host, and
    // the check writes nothing on the host
    let was: Vec<_> = hosts.iter().map(|h| count(h)).collect();
    let run = f.run(&[]);
    run.assert_code(0);
    assert_eq!(since(&was), [(1, 1); 3], "an up-to-date check: one command");
    for (k, name) in names.iter().enumerate() {
        let h = hosts[k];
        run.expect(h, name, "skipped", "up_to_date");
        // nothing was recreated, nothing recorded
        assert_eq!(f.assert_running(h, name), before[k], "{name} untouched");
        assert_eq!(f.state_text(h, name).unwrap(), states[k]);
        assert!(Fleet::snapshot(&f.state_dir(h)) == state_dirs[k], "{h}");
    }

    // -q, nothing happened: nothing printed
    let quiet = f.run_plain(&["-q"]);
    quiet.assert_code(0);
    assert_eq!(quiet.stdout, "", "{}", quiet.dump());

    // a dry run of a change, and a forced one: nothing changes anywhere
    let on_host: Vec<HostView> = hosts.iter().map(|h| f.view(h)).collect();
    let v1 = std::fs::read_to_string(f.local_dir(&names[0]).join("Dockerfile")).unwrap();
    f.write(&names[0], "Dockerfile", &sleeper_dockerfile("v2"));
    let run = f.run(&["--dry-run"]);
    run.assert_code(0);
    run.expect("h1", &names[0], "would_rebuild", "config_changed");
    run.expect("h2", &names[1], "skipped", "up_to_date");
    run.expect("h3", &names[2], "skipped", "up_to_date");
    let run = f.run(&["--dry-run", "--force-rebuild"]);
    run.assert_code(0);
    run.expect("h2", &names[1], "would_rebuild", "forced");
    for (k, h) in hosts.iter().enumerate() {
        assert_eq!(f.assert_running(h, &names[k]), before[k], "{h}: container");
        assert!(
            f.view(h) == on_host[k],
            "{h}: state or stack dir, containers or images changed"
        );
    }
    f.write(&names[0], "Dockerfile", &v1);

    // a changed file rebuilds only that stack: two commands over one login
    // on its host, one on the others
    let old_hash = f.state("h2", &names[1])["hash"].clone();
    let untouched = [f.view("h1"), f.view("h3")];
    let v2 = sleeper_dockerfile("v2");
    f.write(&names[1], "Dockerfile", &v2);
    let was: Vec<_> = hosts.iter().map(|h| count(h)).collect();
    let run = f.run(&[]);
    run.assert_code(0);
    run.expect("h1", &names[0], "skipped", "up_to_date");
    run.expect("h2", &names[1], "rebuilt", "config_changed");
    run.expect("h3", &names[2], "skipped", "up_to_date");
    assert_eq!(since(&was), [(1, 1), (1, 2), (1, 1)]);

    // h2 runs the new version from a new container; the others are untouched
    let c2 = f.assert_running("h2", &names[1]);
    assert_ne!(c2.id, before[1].id);
    assert_ne!(c2.image, before[1].image);
    assert_eq!(f.container_file("h2", &c2.id, "/tmp/version"), "v2\n");
    assert_eq!(f.assert_running("h1", &names[0]), before[0]);
    assert_eq!(f.assert_running("h3", &names[2]), before[2]);
    assert!(
        [f.view("h1"), f.view("h3")] == untouched,
        "h1 and h3: containers, images and files as they were"
    );
    // the host has the new file and a new hash
    assert_eq!(
        std::fs::read_to_string(f.remote_dir("h2", &names[1]).join("Dockerfile")).unwrap(),
        v2
    );
    let st = f.state("h2", &names[1]);
    assert_ne!(st["hash"], old_hash);
    assert!(st["images"].contains(&c2.image));
    // the previous generation is kept for rollback
    assert!(st["prev_images"].contains(&before[1].image), "{st:?}");

    // -q, something happened: the summary is printed even so
    f.write(&names[2], "Dockerfile", &sleeper_dockerfile("v2"));
    let quiet = f.run_plain(&["-q"]);
    quiet.assert_code(0);
    assert!(quiet.stdout.contains(&names[2]), "{}", quiet.dump());
    let c3 = f.assert_running("h3", &names[2]);
    assert_eq!(f.container_file("h3", &c3.id, "/tmp/version"), "v2\n");

    // no ssh process is left behind
    let config = f.host_dir("h1").parent().unwrap().join("ssh_config");
    let left = std::process::Command::new("pgrep")
        .args(["-a", "-f", &format!("^ssh .*{}", config.display())])
        .output()
        .unwrap();
    assert!(
        left.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&left.stdout)
    );
}

/// Each name with its host: `names[k]` is on `h{k+1}`.
fn hosts_and(names: &[String]) -> impl Iterator<Item = (String, &String)> {
    names
        .iter()
        .enumerate()
        .map(|(k, n)| (format!("h{}", k + 1), n))
}

fn mode(p: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// Hosts whose login shell is zsh (h1) or fish (h2) rebuild and check,
/// and so does a host whose sshd allows one session per connection (h3,
/// `MaxSessions 1`: the check holds the connection's one session, so the
/// apply cannot open a second one beside it and gets a connection of its
/// own); the logins and commands each costs.
#[test]
fn hosts_whose_login_shell_is_zsh_or_fish_or_with_one_session_rebuild_and_check() {
    let zsh = LoginUser::new("z", "/usr/bin/zsh");
    let fish = LoginUser::new("f", "/usr/bin/fish");
    let f = Fleet::new("shells", 3);
    f.set_user("h1", &zsh.name);
    f.set_user("h2", &fish.name);
    let names = f.web_everywhere();
    f.restart_host_with("h3", "MaxSessions 1");
    let state = |u: &LoginUser, name: &str| {
        u.home
            .join(".local/state/rbuild")
            .join(format!("{name}.state"))
    };
    let count = |h: &str| (f.accepted_logins(h), f.remote_commands(h));

    let run = f.run(&[]);
    run.assert_code(0);
    run.expect("h1", &names[0], "rebuilt", "first_build");
    run.expect("h2", &names[1], "rebuilt", "first_build");
    run.expect("h3", &names[2], "rebuilt", "first_build");
    for (h, n) in hosts_and(&names) {
        let c = f.assert_running(&h, n);
        assert_eq!(f.container_file(&h, &c.id, "/tmp/version"), "v1\n");
    }
    // zsh runs the check itself; fish cannot, so the check runs again
    // under `sh` over a new connection, and the apply follows over that
    assert_eq!(count("h1"), (1, 2), "first build, zsh");
    assert_eq!(count("h2"), (2, 3), "first build, fish");
    assert_eq!(count("h3"), (2, 2), "first build, one session a connection");
    // a non-root user's state and stacks live in its home, private; its
    // builds (Compose v1's `docker build`, with its buildx) use BuildKit
    for (u, n) in [(&zsh, &names[0]), (&fish, &names[1])] {
        let log = u.home.join(".local/state/rbuild").join(format!("{n}.log"));
        let log = std::fs::read_to_string(log).unwrap_or_default();
        assert_eq!(builder_of(&log), "buildkit", "{}:\n{log}", u.name);
        let mode = |p: &std::path::Path| {
            std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).unwrap().permissions())
                & 0o777
        };
        assert_eq!(mode(&state(u, n)), 0o600);
        assert_eq!(mode(&u.home.join(".local/state/rbuild")), 0o700);
        assert_eq!(
            mode(&u.home.join(".local/share/rbuild/stacks").join(n)),
            0o700
        );
    }

    let run = f.run(&[]);
    run.assert_code(0);
    run.expect("h1", &names[0], "skipped", "up_to_date");
    run.expect("h2", &names[1], "skipped", "up_to_date");
    run.expect("h3", &names[2], "skipped", "up_to_date");
    assert_eq!(count("h1"), (2, 3), "up to date, zsh: one command");
    assert_eq!(count("h2"), (4, 5), "up to date, fish: two");
    assert_eq!(count("h3").0, 3, "up to date, one session: one login");
}

/// A stack whose every build differs (as a real one picking up updates
/// does): a build of unchanged files gives a new image, and a new container.
fn fresh_each_build(f: &Fleet) -> Vec<String> {
    let def = StackDef::sleeper("v1").with(
        "Dockerfile",
        &dockerfile(
            Some("cat /proc/sys/kernel/random/uuid >/build-id"),
            &sleeper_cmd("v1"),
        ),
    );
    f.host_names()
        .iter()
        .map(|h| f.add_stack(h, "web", &def))
        .collect()
}

/// `--force-rebuild` and an expired build period rebuild up-to-date
/// stacks anew. Also the two builders: h1 builds with BuildKit (the
/// suite's default, as on every current Docker install), h2 with the legacy
/// builder (`DOCKER_BUILDKIT=0` in its sshd's environment); both rebuild
/// with `--pull --no-cache` from the loopback registry's base image.
#[test]
fn force_rebuild_and_an_expired_build_period_rebuild_up_to_date_stacks() {
    let f = Fleet::with_env("force", 2, &[("RBUILD_TESTHOST_LEGACY_BUILDER", "h2")]);
    let names = fresh_each_build(&f);
    f.run(&[]).assert_code(0);
    let before: Vec<Container> = hosts_and(&names)
        .map(|(h, n)| f.assert_running(&h, n))
        .collect();
    let ids: Vec<String> = hosts_and(&names)
        .zip(&before)
        .map(|((h, _), c)| f.container_file(&h, &c.id, "/build-id"))
        .collect();

    // each builder's record of the base it pulled (issue 22): the same
    // reference and the digest the registry serves
    let base = format!("{BASE_IMAGE}@{}", registry_digest("rbuild/busybox", "1"));
    for (h, name) in hosts_and(&names) {
        let want = if h == "h2" { "legacy" } else { "buildkit" };
        assert_eq!(f.builder(&h, name), want, "{h}:\n{}", f.build_log(&h, name));
        assert_eq!(
            f.state(&h, name)["bases"],
            base,
            "{h}:\n{}",
            f.build_log(&h, name)
        );
    }

    let run = f.run(&["--force-rebuild"]);
    run.assert_code(0);
    for (k, name) in names.iter().enumerate() {
        let h = format!("h{}", k + 1);
        run.expect(&h, name, "rebuilt", "forced");
        let want = if h == "h2" { "legacy" } else { "buildkit" };
        assert_eq!(f.builder(&h, name), want, "{h}:\n{}", f.build_log(&h, name));
        let c = f.assert_running(&h, name);
        assert_ne!(c.id, before[k].id);
        assert_ne!(c.image, before[k].image);
        assert_ne!(
            f.container_file(&h, &c.id, "/build-id"),
            ids[k],
            "built anew"
        );
    }

    // --build-period 0: every build is expired
    let first = f.assert_running("h1", &names[0]);
    let run = f.run(&["--build-period", "0"]);
    run.assert_code(0);
    run.expect("h1", &names[0], "rebuilt", "expired");
    run.expect("h2", &names[1], "rebuilt", "expired");
    let second = f.assert_running("h1", &names[0]);
    assert_ne!(second.id, first.id, "recreated");
    assert_ne!(second.image, first.image, "rebuilt image");

    // the original script's environment variable works too
    let mut c = f.command(&["--json"]);
    c.env("BUILD_PERIOD", "0");
    let run = run_command(c);
    run.assert_code(0);
    run.expect("h1", &names[0], "rebuilt", "expired");
    run.expect("h2", &names[1], "rebuilt", "expired");
    let third = f.assert_running("h1", &names[0]);
    assert_ne!(third.id, second.id);
    f.assert_running("h2", &names[1]);

    // and with the default period, it is up to date again
    let run = f.run(&[]);
    run.expect("h1", &names[0], "skipped", "up_to_date");
    run.expect("h2", &names[1], "skipped", "up_to_date");
}

#[test]
fn ssh_options_from_the_inventory_win_over_the_ssh_config() {
    let f = Fleet::new("sshopts", 1);
    let name = f.add_stack("h1", "web", &StackDef::sleeper("v1"));
    let ip = f.addr("h1");
    // By IP, ssh_config's `Host h1` block does not apply: no key, no user.
    // The inventory's address and ssh_options supply them.
    let key = f.th.join("id_ed25519");
    let known = f.th.join("known_hosts");
    f.edit_inventory(|inv| {
        let h = inv.host("h1");
        h.address = Some(ip.clone());
        h.ssh_options = [
            ("User", "root"),
            ("IdentityFile", key.to_str().unwrap()),
            ("IdentitiesOnly", "yes"),
            ("UserKnownHostsFile", known.to_str().unwrap()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    });
    let run = f.run(&[]);
    run.assert_code(0);
    run.expect("h1", &name, "rebuilt", "first_build");
    f.assert_running("h1", &name);

    // without them, the same address is refused (no key offered)
    f.edit_inventory(|inv| inv.host("h1").ssh_options.clear());
    let run = f.run(&[]);
    run.assert_code(3);
    run.expect("h1", &name, "failed", "host_failed");
}
