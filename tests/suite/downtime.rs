//! `zero_downtime: true`: a service with no fixed host port is replaced
//! beside its old container (started, gated, and only then the old one
//! removed), as the engine's own event log shows; a new version that fails
//! its gate leaves the old container running, never stopped.

use crate::support::*;

/// A healthy sleeper (healthcheck every second) at `version`, no ports.
fn service(version: &str) -> StackDef {
    StackDef::sleeper(version).with("compose.yml", &compose(&healthcheck(30)))
}

/// The engine's `start` and `die` events of project `project` on `host`
/// since `since` (epoch seconds), in order: (time in ns, action, id).
fn events(f: &Fleet, host: &str, project: &str, since: u64) -> Vec<(u128, String, String)> {
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    let out = f.docker(
        host,
        &[
            "events",
            "--since",
            &since.to_string(),
            "--until",
            &until.to_string(),
            "--filter",
            "type=container",
            "--filter",
            &format!("label=com.docker.compose.project={project}"),
            "--filter",
            "event=start",
            "--filter",
            "event=die",
            "--format",
            "{{.TimeNano}} {{.Action}} {{.Actor.ID}}",
        ],
    );
    let mut v: Vec<(u128, String, String)> = out
        .lines()
        .map(|l| {
            let mut w = l.split_whitespace();
            (
                w.next().unwrap().parse().unwrap(),
                w.next().unwrap().to_owned(),
                w.next().unwrap().to_owned(),
            )
        })
        .collect();
    v.sort();
    v
}

fn epoch_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The engine's log says `new` started before `old` died, and at no moment
/// between did none of the service's containers run (`ev`: the events of the
/// service's containers only).
fn assert_beside(ev: &[(u128, String, String)], old: &Container, new: &Container) {
    let at = |action: &str, id: &str| {
        ev.iter()
            .find(|(_, a, i)| a == action && i == id)
            .map(|(t, _, _)| *t)
            .unwrap_or_else(|| panic!("no {action} of {id} in {ev:?}"))
    };
    assert!(
        at("start", &new.id) < at("die", &old.id),
        "the new container started after the old one stopped: {ev:?}"
    );
    let mut running = vec![old.id.clone()];
    for (_, action, id) in ev {
        if action == "start" {
            running.push(id.clone());
        } else {
            running.retain(|r| r != id);
            assert!(!running.is_empty(), "nothing ran after {id} died: {ev:?}");
        }
    }
    assert_eq!(running, std::slice::from_ref(&new.id), "{ev:?}");
}

/// Where this test's stacks are: `zero_downtime: true` for each.
fn zero_downtime(f: &Fleet, host: &str, stack: &str, def: &StackDef) -> String {
    let name = f.add_stack(host, stack, def);
    f.edit_inventory(|inv| inv.stack(host, &name).zero_downtime = Some(true));
    name
}

/// The containers of `svc` of `name` on h3: exactly one, running.
fn one_of(f: &Fleet, name: &str, svc: &str) -> Container {
    let c: Vec<Container> = f
        .containers("h3", name)
        .into_iter()
        .filter(|c| c.service == svc)
        .collect();
    assert_eq!(c.len(), 1, "{svc}: {c:?}");
    assert!(c[0].running(), "{c:?}");
    c[0].clone()
}

/// Every shape of `zero_downtime: true`, each a stack on a host of its own
/// (the engine's event log is read afterwards, and it keeps only its last
/// 256 events: the healthchecks of a few stacks on one engine would push
/// a rebuild's out), deployed in one run and changed in the next:
/// - `web` on h1 (Compose v2) and on h2 (Compose v1): a sleeper replaced
///   beside, as the engine's log shows (the new container started before
///   the old one stopped, and something ran at every moment);
/// - `mix` (h3): only the service without a fixed host port is replaced beside;
///   the one publishing 8080 gets the normal `up` (stopped, then started);
/// - `fail` (h4): a new version that exits at once leaves the very same old
///   container running, never stopped, and the state keeps the good build;
/// - `replicas` (h5): a service of two replicas is doubled (both new ones
///   started before either old one died), then kept at two.
#[test]
fn zero_downtime_replaces_beside_with_compose_v1_and_v2_and_keeps_the_old_on_failure() {
    let f = Fleet::with_env("zerodown", 5, &[("RBUILD_TESTHOST_COMPOSE_V1", "h2")]);
    let web = zero_downtime(&f, "h1", "web", &service("v1"));
    let web_v1 = zero_downtime(&f, "h2", "web", &service("v1"));
    // `app` has no port; `front` publishes the fixed host port 8080
    let mix = zero_downtime(
        &f,
        "h3",
        "mix",
        &service("v1").with(
            "compose.yml",
            &format!(
                "{}  front:\n    build: .\n    init: true\n    ports:\n      - \"8080:80\"\n",
                compose(&healthcheck(30))
            ),
        ),
    );
    let fail = zero_downtime(&f, "h4", "fail", &service("v1"));
    let replicas = zero_downtime(
        &f,
        "h5",
        "replicas",
        &service("v1").with(
            "compose.yml",
            &compose(&format!(
                "    deploy:\n      replicas: 2\n{}",
                healthcheck(30)
            )),
        ),
    );

    let run = f.run(&["--settle", "1"]);
    run.assert_code(0);
    for (h, name) in [
        ("h1", &web),
        ("h2", &web_v1),
        ("h3", &mix),
        ("h4", &fail),
        ("h5", &replicas),
    ] {
        run.expect(h, name, "rebuilt", "first_build");
    }
    assert!(
        run.stderr.contains(
            "these get the normal `up` (stopped, then started): `front` publishes a fixed host port"
        ),
        "{}",
        run.dump()
    );
    let old = [
        f.assert_running("h1", &web),
        f.assert_running("h2", &web_v1),
    ];
    let (app, front) = (one_of(&f, &mix, "app"), one_of(&f, &mix, "front"));
    let fail_old = f.assert_running("h4", &fail);
    let fail_good = f.state("h4", &fail);
    let replicas_old = f.containers("h5", &replicas);
    assert_eq!(replicas_old.len(), 2, "{replicas_old:?}");

    for name in [&web, &web_v1, &mix, &replicas] {
        f.write(name, "Dockerfile", &sleeper_dockerfile("v2"));
    }
    // `fail`'s v2 exits at once
    f.write(
        &fail,
        "Dockerfile",
        &dockerfile(None, "echo v2 >/tmp/version; exit 3"),
    );
    let since = epoch_now() - 1;
    let run = f.run(&["--settle", "1", "--up-timeout-period", "30"]);
    run.assert_code(1);

    // web, Compose v2 and v1: exactly one container afterwards, a new one,
    // of the new image, started beside the old one
    for (k, (h, name, flavour)) in [("h1", &web, "v2"), ("h2", &web_v1, "v1")]
        .into_iter()
        .enumerate()
    {
        run.expect(h, name, "rebuilt", "config_changed");
        let new = f.assert_running(h, name);
        assert_ne!(new.id, old[k].id, "{}", run.dump());
        assert_ne!(new.image, old[k].image);
        assert_eq!(new.health, "healthy");
        assert_eq!(f.container_file(h, &new.id, "/tmp/version"), "v2\n");
        assert!(
            run.stderr.contains(&format!(
                "{h} {name}: app replaced beside its old containers"
            )),
            "{}",
            run.dump()
        );
        assert_beside(&events(&f, h, name, since), &old[k], &new);
        assert_eq!(f.state(h, name)["compose"], flavour);
    }

    // mix: `app` beside, `front` as `up` does it
    run.expect("h3", &mix, "rebuilt", "config_changed");
    let (app2, front2) = (one_of(&f, &mix, "app"), one_of(&f, &mix, "front"));
    assert_ne!(app2.image, app.image);
    assert_ne!(front2.image, front.image);
    let ev = events(&f, "h3", &mix, since);
    let only = |ids: [&str; 2]| -> Vec<_> {
        ev.iter()
            .filter(|(_, _, id)| ids.contains(&id.as_str()))
            .cloned()
            .collect()
    };
    assert_beside(&only([&app.id, &app2.id]), &app, &app2);
    let front_ev: Vec<(String, String)> = only([&front.id, &front2.id])
        .into_iter()
        .map(|(_, a, id)| (a, id))
        .collect();
    assert_eq!(
        front_ev,
        [
            ("die".to_owned(), front.id.clone()),
            ("start".to_owned(), front2.id.clone())
        ],
        "{ev:?}"
    );

    // fail: rolled back, the very same container runs on, never stopped;
    // the new one is gone
    let r = run.expect("h4", &fail, "rolled_back", "config_changed");
    let error = r["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("app beside its old containers: not healthy: app(exited:3)")
            && error.contains("the old ones kept running"),
        "{}",
        run.dump()
    );
    let now = f.assert_running("h4", &fail);
    assert_eq!(now.id, fail_old.id);
    assert_eq!(now.image, fail_old.image);
    assert_eq!(f.container_file("h4", &now.id, "/tmp/version"), "v1\n");
    let ev = events(&f, "h4", &fail, since);
    assert!(
        !ev.iter().any(|(_, a, id)| a == "die" && *id == fail_old.id),
        "the old container was stopped: {ev:?}"
    );
    assert!(
        ev.iter()
            .any(|(_, a, id)| a == "start" && *id != fail_old.id),
        "no new container was tried: {ev:?}"
    );
    // the state: the good build, and the failed attempt remembered
    let st = f.state("h4", &fail);
    assert_eq!(st["hash"], fail_good["hash"]);
    assert_eq!(st["images"], fail_good["images"]);
    assert_eq!(st["last_result"], "failed");
    assert_ne!(st["failed_hash"], fail_good["hash"]);

    // replicas: two new ones, both started before either old one died
    run.expect("h5", &replicas, "rebuilt", "config_changed");
    let new = f.containers("h5", &replicas);
    assert_eq!(new.len(), 2, "{new:?}");
    for c in &new {
        assert!(c.running() && c.health == "healthy", "{c:?}");
        assert!(
            replicas_old
                .iter()
                .all(|o| o.id != c.id && o.image != c.image)
        );
    }
    let ev = events(&f, "h5", &replicas, since);
    let first_die = ev.iter().find(|(_, a, _)| a == "die").unwrap().0;
    for c in &new {
        assert!(
            ev.iter()
                .any(|(t, a, id)| a == "start" && *id == c.id && *t < first_die),
            "{ev:?}"
        );
    }
}
