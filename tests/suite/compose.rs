//! Compose v1 (`docker-compose`) and v2 (`docker compose`) hosts.

use crate::support::*;

/// h1 runs Compose v2, h2 Compose v1: both build, record which they use,
/// rebuild on a change, and (h2, a gated stack) roll a crashing version
/// back to the old image, healthy.
#[test]
fn compose_v1_and_v2_hosts_both_rebuild_and_v1_rolls_back_too() {
    let f = Fleet::with_env("flavours", 2, &[("RBUILD_TESTHOST_COMPOSE_V1", "h2")]);
    let names = f.web_everywhere();
    let gated = compose(&format!("    restart: unless-stopped\n{}", healthcheck(3)));
    let back = f.add_stack(
        "h2",
        "back",
        &StackDef::sleeper("v1").with("compose.yml", &gated),
    );

    let run = f.run(&[]);
    run.assert_code(0);
    run.expect("h1", &names[0], "rebuilt", "first_build");
    run.expect("h2", &names[1], "rebuilt", "first_build");
    run.expect("h2", &back, "rebuilt", "first_build");
    for (h, name, flavour) in [
        ("h1", &names[0], "v2"),
        ("h2", &names[1], "v1"),
        ("h2", &back, "v1"),
    ] {
        let c = f.assert_running(h, name);
        assert_eq!(f.container_file(h, &c.id, "/tmp/version"), "v1\n");
        let st = f.state(h, name);
        assert_eq!(st["compose"], flavour, "{h}: {st:?}");
        assert!(st["images"].contains(&c.image));
        // what the build was made from, as each compose's build recorded it
        assert_eq!(
            st["bases"],
            format!("{BASE_IMAGE}@{}", registry_digest("rbuild/busybox", "1")),
            "{h}: {st:?}"
        );
    }
    let v1 = f.assert_running("h2", &back);

    // both keep working on a change; a crashing version is rolled back
    f.write(&names[1], "Dockerfile", &sleeper_dockerfile("v2"));
    f.write(&back, "Dockerfile", &dockerfile(None, "exit 1"));
    let run = f.run(&["--up-timeout-period", "30"]);
    run.assert_code(1);
    run.expect("h1", &names[0], "skipped", "up_to_date");
    run.expect("h2", &names[1], "rebuilt", "config_changed");
    let c = f.assert_running("h2", &names[1]);
    assert_eq!(f.container_file("h2", &c.id, "/tmp/version"), "v2\n");
    assert_eq!(f.state("h2", &names[1])["compose"], "v1");
    run.expect("h2", &back, "rolled_back", "config_changed");
    let now = f.assert_running("h2", &back);
    assert_eq!(now.image, v1.image);
    assert_eq!(now.health, "healthy");
}
