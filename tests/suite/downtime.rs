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

/// A first build of a zero_downtime sleeper stack on `f`'s h1, then a
/// rebuild to v2 with Compose `flavour`: it is replaced beside, as the
/// engine's log shows.
fn replaced_beside(f: &Fleet, flavour: &str) {
    let name = f.add_stack("h1", "web", &service("v1"));
    f.edit_inventory(|inv| inv.stack("h1", &name).zero_downtime = Some(true));
    f.run(&["--settle", "1"])
        .assert_code(0)
        .expect("h1", &name, "rebuilt", "first_build");
    let old = f.assert_running("h1", &name);

    f.write(&name, "Dockerfile", &sleeper_dockerfile("v2"));
    let since = epoch_now() - 1;
    let run = f.run(&["--settle", "1"]);
    run.assert_code(0)
        .expect("h1", &name, "rebuilt", "config_changed");

    // afterwards: exactly one container, a new one, of the new image
    let new = f.assert_running("h1", &name);
    assert_ne!(new.id, old.id, "{}", run.dump());
    assert_ne!(new.image, old.image);
    assert_eq!(new.health, "healthy");
    assert_eq!(f.container_file("h1", &new.id, "/tmp/version"), "v2\n");
    assert!(
        run.stderr.contains(&format!(
            "h1 {name}: app replaced beside its old containers"
        )),
        "{}",
        run.dump()
    );
    assert_beside(&events(f, "h1", &name, since), &old, &new);
    assert_eq!(f.state("h1", &name)["compose"], flavour);
}

#[test]
fn zero_downtime_starts_the_new_container_before_the_old_one_stops() {
    replaced_beside(&Fleet::new("zerodown", 1), "v2");
}

#[test]
fn zero_downtime_works_with_compose_v1() {
    replaced_beside(
        &Fleet::with_env("zeroone", 1, &[("RBUILD_TESTHOST_COMPOSE_V1", "h1")]),
        "v1",
    );
}

#[test]
fn zero_downtime_replaces_only_the_services_without_a_fixed_port() {
    let f = Fleet::new("zeromix", 1);
    // `app` has no port; `front` publishes the fixed host port 8080
    let two = |v: &str| {
        service(v).with(
            "compose.yml",
            &format!(
                "{}  front:\n    build: .\n    init: true\n    ports:\n      - \"8080:80\"\n",
                compose(&healthcheck(30))
            ),
        )
    };
    let name = f.add_stack("h1", "web", &two("v1"));
    f.edit_inventory(|inv| inv.stack("h1", &name).zero_downtime = Some(true));
    let run = f.run(&["--settle", "1"]);
    run.assert_code(0)
        .expect("h1", &name, "rebuilt", "first_build");
    assert!(
        run.stderr.contains(
            "these get the normal `up` (stopped, then started): `front` publishes a fixed host port"
        ),
        "{}",
        run.dump()
    );
    let of = |svc: &str| {
        let c: Vec<Container> = f
            .containers("h1", &name)
            .into_iter()
            .filter(|c| c.service == svc)
            .collect();
        assert_eq!(c.len(), 1, "{svc}: {c:?}");
        assert!(c[0].running(), "{c:?}");
        c[0].clone()
    };
    let (app, front) = (of("app"), of("front"));

    f.write(&name, "Dockerfile", &sleeper_dockerfile("v2"));
    let since = epoch_now() - 1;
    f.run(&["--settle", "1"])
        .assert_code(0)
        .expect("h1", &name, "rebuilt", "config_changed");
    let (app2, front2) = (of("app"), of("front"));
    assert_ne!(app2.image, app.image);
    assert_ne!(front2.image, front.image);
    let ev = events(&f, "h1", &name, since);
    let only = |ids: [&str; 2]| -> Vec<_> {
        ev.iter()
            .filter(|(_, _, id)| ids.contains(&id.as_str()))
            .cloned()
            .collect()
    };
    assert_beside(&only([&app.id, &app2.id]), &app, &app2);
    // `front` was recreated as `up` does it: stopped, then the new one
    // started
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
}

#[test]
fn zero_downtime_leaves_the_old_container_running_when_the_new_one_fails() {
    let f = Fleet::new("zerofail", 1);
    let name = f.add_stack("h1", "web", &service("v1"));
    f.edit_inventory(|inv| inv.stack("h1", &name).zero_downtime = Some(true));
    f.run(&["--settle", "1"])
        .assert_code(0)
        .expect("h1", &name, "rebuilt", "first_build");
    let old = f.assert_running("h1", &name);
    let good = f.state("h1", &name);

    // v2 exits at once
    f.write(
        &name,
        "Dockerfile",
        &dockerfile(None, "echo v2 >/tmp/version; exit 3"),
    );
    let since = epoch_now() - 1;
    let run = f.run(&["--settle", "1", "--up-timeout-period", "30"]);
    run.assert_code(1);
    let r = run.expect("h1", &name, "rolled_back", "config_changed");
    let error = r["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("app beside its old containers: not healthy: app(exited:3)")
            && error.contains("the old ones kept running"),
        "{}",
        run.dump()
    );

    // the very same container runs on, never stopped; the new one is gone
    let now = f.assert_running("h1", &name);
    assert_eq!(now.id, old.id);
    assert_eq!(now.image, old.image);
    assert_eq!(f.container_file("h1", &now.id, "/tmp/version"), "v1\n");
    let ev = events(&f, "h1", &name, since);
    assert!(
        !ev.iter().any(|(_, a, id)| a == "die" && *id == old.id),
        "the old container was stopped: {ev:?}"
    );
    assert!(
        ev.iter().any(|(_, a, id)| a == "start" && *id != old.id),
        "no new container was tried: {ev:?}"
    );
    // the state: the good build, and the failed attempt remembered
    let st = f.state("h1", &name);
    assert_eq!(st["hash"], good["hash"]);
    assert_eq!(st["images"], good["images"]);
    assert_eq!(st["last_result"], "failed");
    assert_ne!(st["failed_hash"], good["hash"]);
}

#[test]
fn zero_downtime_doubles_a_service_of_two_replicas_then_keeps_two() {
    let f = Fleet::new("zeroreplicas", 1);
    let two = |v: &str| {
        service(v).with(
            "compose.yml",
            &compose(&format!(
                "    deploy:\n      replicas: 2\n{}",
                healthcheck(30)
            )),
        )
    };
    let name = f.add_stack("h1", "web", &two("v1"));
    f.edit_inventory(|inv| inv.stack("h1", &name).zero_downtime = Some(true));
    f.run(&["--settle", "1"])
        .assert_code(0)
        .expect("h1", &name, "rebuilt", "first_build");
    let old = f.containers("h1", &name);
    assert_eq!(old.len(), 2, "{old:?}");

    f.write(&name, "Dockerfile", &sleeper_dockerfile("v2"));
    let since = epoch_now() - 1;
    f.run(&["--settle", "1"])
        .assert_code(0)
        .expect("h1", &name, "rebuilt", "config_changed");
    let new = f.containers("h1", &name);
    assert_eq!(new.len(), 2, "{new:?}");
    for c in &new {
        assert!(c.running() && c.health == "healthy", "{c:?}");
        assert!(old.iter().all(|o| o.id != c.id && o.image != c.image));
    }
    // both new ones started before either old one died
    let ev = events(&f, "h1", &name, since);
    let first_die = ev.iter().find(|(_, a, _)| a == "die").unwrap().0;
    for c in &new {
        assert!(
            ev.iter()
                .any(|(t, a, id)| a == "start" && *id == c.id && *t < first_die),
            "{ev:?}"
        );
    }
}
