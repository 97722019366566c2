//! The compose files of made-up stacks: what they reference, what their
//! services allow, what a file sets.

use super::*;
use std::fs;

fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for (p, text) in files {
        let p = d.path().join(p);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }
    d
}

const DEPLOY: &str = "services:\n  web:\n    build: ..\n    env_file:\n      - ./local.env\n      - ../common.env\n    extends:\n      file: ../base.yml\n      service: base\n    volumes:\n      - ../data:/data\n      - /var/run/docker.sock:/s\n      - named:/n\ninclude:\n  - ../db/compose.yml\n";

fn project() -> tempfile::TempDir {
    tree(&[
        ("deploy/compose.yml", DEPLOY),
        ("deploy/local.env", ""),
        ("common.env", "A=1\n"),
        ("base.yml", "services:\n  base:\n    env_file: common.env\n"),
        (
            "db/compose.yml",
            "services:\n  db:\n    build:\n      context: .\n      dockerfile: ../Dockerfile.db\n",
        ),
    ])
}

#[test]
fn references_inside_the_root_pass() {
    let d = project();
    assert_eq!(check(d.path(), &["deploy/compose.yml".into()]), Ok(()));
}

#[test]
fn a_reference_leaving_the_root_names_file_line_and_path() {
    let d = project();
    let e = check(&d.path().join("deploy"), &["compose.yml".into()]).unwrap_err();
    assert_eq!(e.file, d.path().join("deploy/compose.yml"));
    assert_eq!(
        (e.line, e.what, e.path.as_str()),
        (3, "build context", "..")
    );
}

#[test]
fn each_kind_of_reference_is_found_on_its_line() {
    let cases: &[(&str, u64, &str, &str)] = &[
        (
            "services:\n  a:\n    image: x\n    env_file:\n      - a.env\n      - ../b.env\n",
            6,
            "env_file",
            "../b.env",
        ),
        (
            "services:\n  a:\n    env_file: ../b.env\n",
            3,
            "env_file",
            "../b.env",
        ),
        (
            "services:\n  a:\n    env_file:\n      - path: ../b.env\n        required: false\n",
            4,
            "env_file",
            "../b.env",
        ),
        (
            "services:\n  a:\n    build:\n      context: .\n      dockerfile: ../Dockerfile\n",
            5,
            "dockerfile",
            "../Dockerfile",
        ),
        (
            "services:\n  a:\n    extends:\n      file: ../base.yml\n      service: b\n",
            4,
            "extends file",
            "../base.yml",
        ),
        (
            "services:\n  a:\n    volumes:\n      - ./ok:/ok\n      - ../conf:/conf:ro\n",
            5,
            "bind-mount source",
            "../conf",
        ),
        (
            "services:\n  a:\n    volumes:\n      - type: bind\n        source: ../x\n        target: /x\n",
            5,
            "bind-mount source",
            "../x",
        ),
        (
            "include:\n  - path: ../other/compose.yml\n",
            2,
            "include",
            "../other/compose.yml",
        ),
        (
            "secrets:\n  s:\n    file: ../secret.txt\n",
            3,
            "secret file",
            "../secret.txt",
        ),
        (
            "services:\n  a:\n    build: /abs/elsewhere\n",
            3,
            "build context",
            "/abs/elsewhere",
        ),
    ];
    for (text, line, what, path) in cases {
        let d = tree(&[("s/compose.yml", text)]);
        let e = check(&d.path().join("s"), &["compose.yml".into()]).unwrap_err();
        assert_eq!(
            (e.line, e.what, e.path.as_str()),
            (*line, *what, *path),
            "{text}"
        );
    }
}

#[test]
fn what_is_not_a_file_of_the_stack_is_left_alone() {
    let d = tree(&[(
        "s/compose.yml",
        "services:\n  a:\n    build: https://github.com/x/y.git\n    env_file: ${ENV_FILE:-../x.env}\n    volumes:\n      - /srv/data:/data\n      - ~/cache:/cache\n      - data:/d\n  b:\n    extends: a\n  c:\nvolumes:\n  data: {}\n",
    )]);
    assert_eq!(check(&d.path().join("s"), &["compose.yml".into()]), Ok(()));
}

#[test]
fn included_and_extended_files_are_read_in_turn() {
    let d = tree(&[
        ("r/s/compose.yml", "include:\n  - ../inc/compose.yml\n"),
        (
            "r/inc/compose.yml",
            "services:\n  a:\n    env_file: ../../outside.env\n",
        ),
    ]);
    let e = check(&d.path().join("r"), &["s/compose.yml".into()]).unwrap_err();
    assert_eq!(e.file, d.path().join("r/inc/compose.yml"));
    assert_eq!((e.line, e.path.as_str()), (3, "../../outside.env"));
}

#[test]
fn services_with_a_fixed_host_port_or_a_name_are_not_replaced_beside() {
    let d = tree(&[
        (
            "compose.yml",
            "services:\n  web:\n    build: .\n    ports:\n      - \"80\"\n      - 8081\n      - \"127.0.0.1::82\"\n      - target: 83\n  api:\n    image: x\n    ports:\n      - \"8080:80\"\n  db:\n    image: y\n    container_name: the-db\n  six:\n    image: z\n    ports:\n      - \"[::1]:9000:90/tcp\"\n  var:\n    image: z\n    ports:\n      - \"${PORT}\"\n  long:\n    image: z\n    ports:\n      - target: 80\n        published: \"8443\"\n  hostnet:\n    image: z\n    network_mode: host\n  ext:\n    extends:\n      file: base.yml\n      service: b\n  worker:\n    image: w\n",
        ),
        (
            "compose.override.yml",
            "services:\n  worker:\n    ports:\n      - 9090:90\n  extra:\n    image: e\n",
        ),
    ]);
    let (safe, not) = beside(
        d.path(),
        &["compose.yml".into(), "compose.override.yml".into()],
    );
    assert_eq!(safe, ["web", "extra"]);
    assert_eq!(
        not,
        [
            ("api".to_owned(), NotBeside::FixedPort),
            ("db".to_owned(), NotBeside::ContainerName),
            ("six".to_owned(), NotBeside::FixedPort),
            ("var".to_owned(), NotBeside::FixedPort),
            ("long".to_owned(), NotBeside::FixedPort),
            ("hostnet".to_owned(), NotBeside::HostNetwork),
            ("ext".to_owned(), NotBeside::Extends),
            ("worker".to_owned(), NotBeside::FixedPort),
        ]
    );
}

#[test]
fn jobs_are_the_services_others_wait_to_complete() {
    let d = tree(&[
        (
            "compose.yml",
            "services:\n  app:\n    image: x\n    depends_on:\n      migrate: {condition: service_completed_successfully}\n      db: {condition: service_healthy}\n  migrate: {image: x, restart: \"no\"}\n  web: {image: x, restart: \"no\"}\n  api: {image: x, restart: on-failure}\n  db: {image: x}\n",
        ),
        (
            "compose.prod.yml",
            "services:\n  worker:\n    depends_on: {seed: {condition: service_completed_successfully}}\n  seed: {image: x}\n",
        ),
    ]);
    let files = ["compose.yml".to_owned(), "compose.prod.yml".to_owned()];
    // a server with restart "no" or on-failure that nothing waits for is
    // no job
    assert_eq!(one_shots(d.path(), &files), ["migrate", "seed"]);
    assert_eq!(one_shots(d.path(), &files[..1]), ["migrate"]);
}

#[test]
fn the_variables_compose_interpolates() {
    let d = tree(&[(
        "compose.yml",
        "services:\n  app:\n    image: \"reg/app:${TAG}\"\n    environment: [\"A=${B:-x}\", \"P=$$HOME\", \"Q=$PORT\"]\n    command: [\"sh\", \"-c\", \"echo $$1 ${TAG}\"]\n",
    )]);
    assert_eq!(
        variables(d.path(), &["compose.yml".into()]),
        ["B", "PORT", "TAG"]
    );
}

#[test]
fn services_that_mount_the_stack_directory() {
    let d = tree(&[(
        "compose.yml",
        "services:\n  proxy:\n    image: x\n    volumes: [\"./site:/www:ro\", \"./conf/app.conf:/etc/app.conf:ro\"]\n  code:\n    build: .\n    volumes: [\".:/code\"]\n  long:\n    image: x\n    volumes:\n      - {type: bind, source: ./data, target: /data}\n  db:\n    image: x\n    volumes: [\"dbdata:/var/lib/db\", \"/etc/localtime:/etc/localtime:ro\"]\n    secrets: [db_pw]\n  app:\n    image: x\n    secrets: [token]\n  plain: {image: x}\nsecrets:\n  db_pw: {file: ./secrets/db_pw.txt}\n  token: {external: true}\nvolumes:\n  dbdata: {}\n",
    )]);
    let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    assert_eq!(
        mounting(d.path(), &["compose.yml".into()]),
        pairs(&[
            ("proxy", "site"),
            ("proxy", "conf/app.conf"),
            ("code", "."),
            ("long", "data"),
            ("db", "secrets/db_pw.txt"),
        ])
    );
}

#[test]
fn a_file_that_does_not_parse_names_no_service() {
    let d = tree(&[("compose.yml", "services: [\n")]);
    assert_eq!(beside(d.path(), &["compose.yml".into()]), (vec![], vec![]));
}
#[test]
fn the_name_a_compose_file_sets() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("compose.yml");
    std::fs::write(&f, "name: shop\nservices:\n  app:\n    image: x\n").unwrap();
    assert_eq!(compose_name(&f).as_deref(), Some("shop"));
    std::fs::write(&f, "services: {}\n").unwrap();
    assert_eq!(compose_name(&f), None);
    assert_eq!(override_of(d.path(), "compose.yml"), None);
    std::fs::write(d.path().join("compose.override.yml"), "").unwrap();
    assert_eq!(
        override_of(d.path(), "compose.yml").as_deref(),
        Some("compose.override.yml")
    );
    assert_eq!(override_of(d.path(), "prod.yml"), None);
}

#[test]
fn a_stacks_images_are_its_froms_after_args_and_its_image_only_services() {
    let d = tree(&[
        (
            "compose.yml",
            "services:\n  app:\n    build:\n      context: app\n      args:\n        PY: \"3.12\"\n  worker:\n    build: app\n  proxy:\n    image: ${REGISTRY:-127.0.0.1:5000}/proxy:${TAG}\n  db:\n    image: 127.0.0.1:5000/db@sha256:0000000000000000000000000000000000000000000000000000000000000000\n  inline:\n    build:\n      dockerfile_inline: |\n        FROM scratch\n        COPY --from=busybox:1.36 /bin/sh /sh\n  unset:\n    image: app:${NOPE}\n",
        ),
        (".env", "TAG=stable\n"),
        (
            "app/Dockerfile",
            "# syntax=docker/dockerfile:1\nARG PY=3.11\nARG BASE=127.0.0.1:5000/python\nFROM ${BASE}:${PY}-slim AS build\nRUN true\nFROM --platform=$BUILDPLATFORM build AS test\nFROM \\\n  127.0.0.1:5000/runtime:1\nCOPY --from=build /a /a\nCOPY --from=0 /b /b\n",
        ),
    ]);
    let got = image_inputs(d.path(), &["compose.yml".into()]);
    let images: Vec<(&str, &str, bool)> = got
        .images
        .iter()
        .map(|i| (i.service.as_str(), i.reference.as_str(), i.built))
        .collect();
    assert_eq!(
        images,
        [
            // compose's build args win over the Dockerfile's ARG defaults
            ("app", "127.0.0.1:5000/python:3.12-slim", true),
            ("app", "127.0.0.1:5000/runtime:1", true),
            ("worker", "127.0.0.1:5000/python:3.11-slim", true),
            ("worker", "127.0.0.1:5000/runtime:1", true),
            // the .env and a variable's default
            ("proxy", "127.0.0.1:5000/proxy:stable", false),
            (
                "db",
                "127.0.0.1:5000/db@sha256:0000000000000000000000000000000000000000000000000000000000000000",
                false
            ),
            ("inline", "busybox:1.36", true),
        ]
    );
    assert_eq!(
        got.unknown,
        [(
            "unset".to_owned(),
            "its image names ${NOPE}, unset here".to_owned()
        )]
    );
}

#[test]
fn an_image_not_told_by_the_files_is_unknown_with_why() {
    let d = tree(&[
        (
            "compose.yml",
            "services:\n  a:\n    build: https://github.com/o/r.git\n  b:\n    build: missing\n  c:\n    build: c\n",
        ),
        ("c/Dockerfile", "ARG V\nFROM 127.0.0.1:5000/x:${V}\n"),
    ]);
    let got = image_inputs(d.path(), &["compose.yml".into()]);
    assert!(got.images.is_empty(), "{got:?}");
    let whys: Vec<&str> = got.unknown.iter().map(|(_, w)| w.as_str()).collect();
    assert!(whys[0].contains("is remote"), "{whys:?}");
    assert!(whys[1].contains("cannot be read"), "{whys:?}");
    assert!(whys[2].contains("${V}"), "{whys:?}");
}
