//! Freshness by digest (issue 22), against the loopback registry and real
//! hosts: a base image moved behind the same tag rebuilds only the stacks
//! built FROM it, with the new base running; an image-only service's new
//! digest is pulled, nothing built; nothing moved costs one manifest
//! request per distinct reference for the whole run; `min_age` holds a new
//! digest back and `status --outdated` names what runs on it.

use crate::support::*;

/// A sleeper image pushed as `REGISTRY/repo:tag` whose `/etc/release` says
/// `release` (the same tag each time: an update); returns its image ID.
fn push(f: &Fleet, repo: &str, tag: &str, release: &str) -> String {
    f.push_image(
        &format!("push-{}-{release}", repo.replace('/', "-")),
        repo,
        tag,
        &format!(
            "FROM {BASE_IMAGE}\nRUN echo '{release}' >/etc/release\nCMD {}\n",
            "cp /etc/release /tmp/version; touch /tmp/ok; exec sleep 1000000"
        ),
    )
}

/// The registry's access log (scripts/setup-deps.sh).
fn registry_log() -> std::path::PathBuf {
    std::path::PathBuf::from(
        std::env::var("RBUILD_REGISTRY_DIR").unwrap_or_else(|_| "/tmp/rbuild-registry".into()),
    )
    .join("registry.log")
}

/// The manifest requests rbuild (its user agent) made for repositories
/// under `prefix/` since the log was `from` bytes long: `(method, path)`.
fn rbuild_requests(prefix: &str, from: u64) -> Vec<(String, String)> {
    let text = std::fs::read(registry_log()).unwrap();
    let text = String::from_utf8_lossy(&text[from as usize..]).into_owned();
    text.lines()
        // the access log's lines: `ADDR - - [TIME] "METHOD PATH HTTP/1.1" ... "UA"`
        .filter(|l| l.contains("\"rbuild/") && !l.starts_with("time="))
        .filter_map(|l| {
            let req = l.split('"').nth(1)?;
            let mut w = req.split(' ');
            let (method, path) = (w.next()?, w.next()?);
            (path.starts_with(&format!("/v2/{prefix}/")) && path.contains("/manifests/"))
                .then(|| (method.to_owned(), path.to_owned()))
        })
        .collect()
}

/// [`rbuild_requests`] once the registry logged at least `n` of them (it
/// writes its access log as each response completes: a line may land just
/// after the run ended), in order.
fn requests_seen(prefix: &str, from: u64, n: usize) -> Vec<(String, String)> {
    wait_for(
        &format!("{n} rbuild manifest requests in the registry's log"),
        || rbuild_requests(prefix, from).len() >= n,
    );
    let mut asked = rbuild_requests(prefix, from);
    asked.sort();
    asked
}

fn log_len() -> u64 {
    std::fs::metadata(registry_log()).map_or(0, |m| m.len())
}

/// What a service's container says of its release (`/tmp/version`).
fn release(f: &Fleet, host: &str, project: &str) -> String {
    let c = f.assert_running(host, project);
    f.container_file(host, &c.id, "/tmp/version")
}

#[test]
fn a_moved_base_rebuilds_what_is_built_from_it_and_a_moved_image_is_pulled() {
    let f = Fleet::new("fresh", 2);
    let base_repo = format!("{}/base", f.prefix);
    let proxy_repo = format!("{}/proxy", f.prefix);
    push(&f, &base_repo, "1", "base 1");
    let proxy_v1 = push(&f, &proxy_repo, "stable", "proxy 1");

    // `app` FROM the base on both hosts; `proxy` image-only on h1; `other`
    // FROM the test image (which does not move) on h1
    let app = f.add_shared_stack(
        "app",
        &StackDef {
            files: vec![
                (
                    "Dockerfile".into(),
                    format!(
                        "ARG BASE={REGISTRY}/{base_repo}\nFROM $BASE:1\nCMD cp /etc/release /tmp/version; touch /tmp/ok; exec sleep 1000000\n"
                    ),
                    0o644,
                ),
                ("compose.yml".into(), compose(""), 0o644),
            ],
        },
        &["h1", "h2"],
        &[],
        None,
    );
    let proxy = f.add_stack(
        "h1",
        "proxy",
        &StackDef {
            files: vec![(
                "compose.yml".into(),
                format!(
                    "services:\n  proxy:\n    image: {REGISTRY}/{proxy_repo}:stable\n    init: true\n"
                ),
                0o644,
            )],
        },
    );
    let other = f.add_stack("h1", "other", &StackDef::sleeper("v1"));

    let run = f.run(&[]);
    run.assert_code(0);
    for h in ["h1", "h2"] {
        run.expect(h, &app, "rebuilt", "first_build");
        assert_eq!(release(&f, h, &app), "base 1\n");
    }
    run.expect("h1", &proxy, "rebuilt", "first_build");
    run.expect("h1", &other, "rebuilt", "first_build");
    // what each generation was made from is recorded on its host
    let bases = f.state("h1", &app)["bases"].clone();
    assert!(
        bases.starts_with(&format!("{REGISTRY}/{base_repo}:1@sha256:")),
        "{bases}"
    );
    assert!(
        f.state("h1", &proxy)["bases"]
            .starts_with(&format!("{REGISTRY}/{proxy_repo}:stable@sha256:")),
        "{:?}",
        f.state("h1", &proxy)
    );

    // nothing moved: every stack up to date, and each distinct reference
    // asked about once for the whole run (three: base, proxy, busybox)
    let from = log_len();
    let run = f.run(&[]);
    run.assert_code(0);
    for (h, s) in [("h1", &app), ("h2", &app), ("h1", &proxy), ("h1", &other)] {
        run.expect(h, s, "skipped", "up_to_date");
    }
    // (asked in parallel: in no particular order)
    assert_eq!(
        requests_seen(&f.prefix, from, 2),
        [
            ("HEAD".to_owned(), format!("/v2/{base_repo}/manifests/1")),
            (
                "HEAD".to_owned(),
                format!("/v2/{proxy_repo}/manifests/stable")
            ),
        ],
        "one manifest HEAD per distinct reference of this fleet"
    );
    let registry = &run.doc()["registry"];
    assert_eq!(registry["references"], 3, "{}", run.dump());
    assert_eq!(registry["requests"], 3, "{}", run.dump());

    // a new base behind the same tag: only the stacks built FROM it are
    // rebuilt, on every host, and the new base runs
    push(&f, &base_repo, "1", "base 2");
    let from = log_len();
    let run = f.run(&[]);
    run.assert_code(0);
    for h in ["h1", "h2"] {
        let r = run.expect(h, &app, "rebuilt", "base_moved");
        assert_eq!(
            r["images"]["moved"][0]["reference"],
            format!("{REGISTRY}/{base_repo}:1"),
            "{}",
            run.dump()
        );
        assert_eq!(release(&f, h, &app), "base 2\n");
    }
    run.expect("h1", &proxy, "skipped", "up_to_date");
    run.expect("h1", &other, "skipped", "up_to_date");
    assert_eq!(requests_seen(&f.prefix, from, 2).len(), 2);

    // the image-only service's new digest: pulled and recreated, nothing
    // built (the app's image and the other stack's stay as they were)
    let app_image = f.assert_running("h1", &app).image;
    let proxy_v2 = push(&f, &proxy_repo, "stable", "proxy 2");
    assert_ne!(proxy_v1, proxy_v2);
    let run = f.run(&[]);
    run.assert_code(0);
    run.expect("h1", &proxy, "rebuilt", "image_moved");
    run.expect("h1", &app, "skipped", "up_to_date");
    assert_eq!(f.assert_running("h1", &proxy).image, proxy_v2);
    assert_eq!(release(&f, "h1", &proxy), "proxy 2\n");
    assert_eq!(f.assert_running("h1", &app).image, app_image);
    // and once deployed, nothing moved any more
    let run = f.run(&[]);
    run.assert_code(0);
    run.expect("h1", &proxy, "skipped", "up_to_date");
    run.expect("h2", &app, "skipped", "up_to_date");
}

#[test]
fn a_new_digest_younger_than_min_age_waits_and_status_names_it_outdated() {
    let f = Fleet::new("freshage", 1);
    let repo = format!("{}/base", f.prefix);
    push(&f, &repo, "1", "base 1");
    let app = f.add_stack(
        "h1",
        "app",
        &StackDef {
            files: vec![
                (
                    "Dockerfile".into(),
                    format!(
                        "FROM {REGISTRY}/{repo}:1\nCMD cp /etc/release /tmp/version; touch /tmp/ok; exec sleep 1000000\n"
                    ),
                    0o644,
                ),
                ("compose.yml".into(), compose(""), 0o644),
            ],
        },
    );
    f.run(&[])
        .assert_code(0)
        .expect("h1", &app, "rebuilt", "first_build");
    let status = f.run(&["status", "--outdated"]);
    status.assert_code(0);
    assert_eq!(
        status.doc()["stacks"].as_array().unwrap().len(),
        0,
        "nothing outdated: {}",
        status.dump()
    );

    push(&f, &repo, "1", "base 2");
    f.edit_inventory(|inv| inv.defaults.min_age = Some("1h".into()));
    // (this controller's memory of when it first saw each digest is the
    // test's own: XDG_STATE_HOME)
    let run = f.run(&[]);
    run.assert_code(0);
    let r = run.expect("h1", &app, "skipped", "cooling");
    let note = r["error"].as_str().unwrap();
    assert!(note.contains("deployed once it is min_age old"), "{note}");
    assert_eq!(release(&f, "h1", &app), "base 1\n", "not deployed yet");

    let status = f.run(&["status", "--outdated"]);
    status.assert_code(0);
    let stacks = status.doc()["stacks"].as_array().unwrap().clone();
    assert_eq!(stacks.len(), 1, "{}", status.dump());
    assert_eq!(stacks[0]["outdated"], true);
    assert_eq!(stacks[0]["next_reason"], "cooling");

    // min_age met (0 now): deployed
    f.edit_inventory(|inv| inv.defaults.min_age = None);
    let run = f.run(&[]);
    run.assert_code(0);
    run.expect("h1", &app, "rebuilt", "base_moved");
    assert_eq!(release(&f, "h1", &app), "base 2\n");
}
