//! Fixtures for the integration tests: real sshd test hosts
//! (`scripts/testhosts.sh`), a real Docker engine, the built `rbuild`.
//!
//! A test reads like a spec:
//!
//! ```ignore
//! let f = Fleet::new("first", 3);          // h1..h3, unique loopback IPs
//! let names = f.web_everywhere();          // one tiny stack per host
//! let run = f.run(&[]);                    // rbuild -F .. -i .. --json
//! assert_eq!(run.row("h1", &names[0])["action"], "rebuilt");
//! ```
//!
//! Everything a test creates is unique to it (loopback range, compose
//! project names, temp dirs) so tests run in parallel on one engine, and is
//! removed on drop, panics included: sshd hosts, iptables rules, containers,
//! images, networks.

#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The base image every test stack builds from (see scripts/setup-deps.sh).
pub const BASE_IMAGE: &str = "127.0.0.1:5000/rbuild/busybox:1";

/// Generous bound for anything we poll for: the machine is shared and noisy.
pub const PATIENCE: Duration = Duration::from_secs(180);

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn rbuild_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rbuild"))
}

fn testhosts_script() -> PathBuf {
    repo_root().join("scripts/testhosts.sh")
}

/// A short token unique to this test process, so two suites running at once
/// on the same engine never share a compose project name.
pub fn token() -> String {
    let mut n = std::process::id();
    let mut s = String::new();
    loop {
        let d = n % 36;
        s.insert(0, std::char::from_digit(d, 36).unwrap());
        n /= 36;
        if n == 0 {
            break;
        }
    }
    s
}

/// Each test's prefix (`t<abbrev><token>`) must be unique in the process.
fn claim_prefix(abbrev: &str) -> String {
    static SEEN: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    assert!(
        !abbrev.is_empty() && abbrev.chars().all(|c| c.is_ascii_lowercase()),
        "test abbreviation `{abbrev}`: lowercase letters only"
    );
    let mut seen = SEEN.lock().unwrap();
    let set = seen.get_or_insert_with(HashSet::new);
    assert!(
        set.insert(abbrev.to_owned()),
        "test abbreviation `{abbrev}` used twice"
    );
    format!("t{abbrev}{}", token())
}

/// Loopback index blocks: every fleet gets its own range, within 1000..2000
/// (1..=20 are the demo's, 2001 and up the benchmark's). The start depends
/// on the pid so two suites running at once rarely collide, and `up` is
/// retried on the next block if they do.
const BLOCK: u32 = 10;
fn next_block() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let k = NEXT.fetch_add(1, Ordering::SeqCst);
    1000 + ((std::process::id() % 4) * 250 + k * BLOCK) % 1000
}

/// Poll `f` until it is true; panic after [`PATIENCE`] with `what`.
pub fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        if start.elapsed() > PATIENCE {
            panic!("gave up waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------- stacks

/// A Dockerfile on the test base image. `run` adds a `RUN` step (for a
/// failing or slow build); `cmd` is the shell-form `CMD`.
pub fn dockerfile(run: Option<&str>, cmd: &str) -> String {
    let mut s = format!("FROM {BASE_IMAGE}\n");
    if let Some(r) = run {
        s.push_str(&format!("RUN {r}\n"));
    }
    s.push_str(&format!("CMD {cmd}\n"));
    s
}

/// The CMD of a healthy sleeper that records its version.
pub fn sleeper_cmd(version: &str) -> String {
    format!("echo {version} >/tmp/version; touch /tmp/ok; exec sleep 1000000")
}

/// The Dockerfile of a plain sleeper image at `version` (`FROM` the test
/// base image, `CMD` the sleeper).
pub fn sleeper_dockerfile(version: &str) -> String {
    dockerfile(None, &sleeper_cmd(version))
}

/// A compose file with one service `app` built from `.`; `init: true` so
/// stops are fast. `extra` is YAML for the service, indented 4 spaces.
pub fn compose(extra: &str) -> String {
    let mut s = String::from("services:\n  app:\n    build: .\n    init: true\n");
    s.push_str(extra);
    s
}

/// A healthcheck: healthy once `/tmp/ok` exists, checked every second.
pub fn healthcheck(retries: u32) -> String {
    format!(
        "    healthcheck:\n      test: [\"CMD\", \"test\", \"-f\", \"/tmp/ok\"]\n      interval: 1s\n      timeout: 3s\n      retries: {retries}\n"
    )
}

/// The files of one stack: (relative path, contents, mode).
#[derive(Debug, Clone)]
pub struct StackDef {
    pub files: Vec<(String, String, u32)>,
}

impl StackDef {
    /// The usual test stack: a healthy sleeper, a compose file and a `.env`
    /// secret (mode 0600).
    pub fn sleeper(version: &str) -> StackDef {
        StackDef {
            files: vec![
                ("Dockerfile".into(), sleeper_dockerfile(version), 0o644),
                ("compose.yml".into(), compose(""), 0o644),
                (".env".into(), format!("SECRET={version}\n"), 0o600),
            ],
        }
    }

    /// A sleeper with a 1 s healthcheck and a restart policy, so a crashing
    /// version crash-loops instead of just exiting.
    pub fn gated(cmd: &str, retries: u32) -> StackDef {
        StackDef::sleeper("v1")
            .with("Dockerfile", &dockerfile(None, cmd))
            .with(
                "compose.yml",
                &compose(&format!(
                    "    restart: unless-stopped\n{}",
                    healthcheck(retries)
                )),
            )
    }

    /// A sleeper (`version`) that is healthy only while `GATE/open` exists on
    /// the host: `gate` is bind-mounted at /gate and checked every second;
    /// `retries` failed checks make it unhealthy.
    pub fn behind_gate(version: &str, gate: &Path, retries: u32) -> StackDef {
        StackDef::sleeper(version).with(
            "compose.yml",
            &compose(&format!(
                "    volumes:\n      - {}:/gate\n    healthcheck:\n      test: [\"CMD\", \"test\", \"-f\", \"/gate/open\"]\n      interval: 1s\n      timeout: 3s\n      retries: {retries}\n",
                gate.display()
            )),
        )
    }

    /// Replace (or add) one file.
    pub fn with(mut self, path: &str, contents: &str) -> StackDef {
        self.files.retain(|(p, _, _)| p != path);
        self.files.push((path.into(), contents.into(), 0o644));
        self
    }

    /// Rename the compose file.
    pub fn compose_named(mut self, name: &str) -> StackDef {
        for f in &mut self.files {
            if f.0 == "compose.yml" {
                f.0 = name.into();
            }
        }
        self
    }

    pub fn compose_file_name(&self) -> String {
        self.files
            .iter()
            .map(|f| f.0.clone())
            .find(|p| p.ends_with(".yml") || p.ends_with(".yaml"))
            .expect("a stack has a compose file")
    }

    /// Write the files into `dir` (created).
    pub fn write_to(&self, dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        for (p, c, mode) in &self.files {
            let path = dir.join(p);
            std::fs::write(&path, c).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode)).unwrap();
        }
    }
}

// ---------------------------------------------------------------- docker

/// Run a command, returning stdout; panics (with stderr) if it fails.
pub fn sh(cmd: &mut Command) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn docker(args: &[&str]) -> String {
    sh(Command::new("docker").args(args))
}

/// A container of a compose project, as `docker inspect` sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    pub id: String,
    pub service: String,
    /// created, running, restarting, exited, ...
    pub status: String,
    /// `none` without a healthcheck, else starting, healthy, unhealthy.
    pub health: String,
    /// The image ID (`sha256:...`).
    pub image: String,
}

impl Container {
    pub fn running(&self) -> bool {
        self.status == "running"
    }
}

/// Every container of compose project `project`, sorted by service.
///
/// Safe to poll while compose works on the project: a container removed
/// between the listing and the inspection makes it look again.
pub fn containers(project: &str) -> Vec<Container> {
    let mut attempt = 0;
    loop {
        let ids = docker(&[
            "ps",
            "-aq",
            "--no-trunc",
            "--filter",
            &format!("label=com.docker.compose.project={project}"),
        ]);
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if ids.is_empty() {
            return vec![];
        }
        let mut args = vec![
            "inspect",
            "--format",
            "{{.ID}} {{index .Config.Labels \"com.docker.compose.service\"}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}} {{.Image}}",
        ];
        args.extend(ids);
        let out = Command::new("docker")
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .expect("docker runs");
        if !out.status.success() {
            attempt += 1;
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                attempt < 50 && err.contains("No such"),
                "docker inspect failed: {err}"
            );
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        let mut v: Vec<Container> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                Container {
                    id: f[0].into(),
                    service: f[1].into(),
                    status: f[2].into(),
                    health: f[3].into(),
                    image: f[4].into(),
                }
            })
            .collect();
        v.sort_by(|a, b| a.service.cmp(&b.service));
        return v;
    }
}

/// The one container of a one-service project; panics unless exactly one.
pub fn the_container(project: &str) -> Container {
    let c = containers(project);
    assert_eq!(
        c.len(),
        1,
        "project {project}: want one container, have {c:?}"
    );
    c.into_iter().next().unwrap()
}

/// Assert the project runs exactly one container, running (and healthy if it
/// has a healthcheck); returns it.
pub fn assert_running(project: &str) -> Container {
    let c = the_container(project);
    assert!(c.running(), "project {project}: not running: {c:?}");
    assert!(
        c.health == "none" || c.health == "healthy",
        "project {project}: not healthy: {c:?}"
    );
    c
}

/// Read a file from inside a container.
pub fn container_file(id: &str, path: &str) -> String {
    docker(&["exec", id, "cat", path])
}

/// Removes every container, image and network of its compose projects on
/// drop (panics included). Image IDs named in `extra_images` (from state
/// files) are removed too, never forced.
#[derive(Default)]
pub struct DockerGuard {
    projects: RefCell<Vec<String>>,
    /// State files whose `images=`/`prev_images=` lines name images to remove.
    state_files: RefCell<Vec<PathBuf>>,
    /// Image references (`repo:tag`) the test made, untagged after the projects.
    refs: RefCell<Vec<String>>,
    /// Image IDs the test made, removed (never forced) once untagged.
    ids: RefCell<Vec<String>>,
    /// Manifests the test pushed to the local registry: (repository, digest).
    manifests: RefCell<Vec<(String, String)>>,
}

impl DockerGuard {
    pub fn project(&self, name: &str) {
        self.projects.borrow_mut().push(name.to_owned());
    }

    pub fn state_file(&self, p: PathBuf) {
        self.state_files.borrow_mut().push(p);
    }
}

/// Untag `refs`, then remove `ids` that no tag names any more (never forced).
const IMAGES_SH: &str = r#"
n=$1; shift
i=0
for x in "$@"; do
  i=$((i + 1))
  if [ "$i" -le "$n" ]; then
    docker image rm "$x" >/dev/null 2>&1
  elif [ "$(docker image inspect --format '{{len .RepoTags}}' "$x" 2>/dev/null)" = 0 ]; then
    docker image rm "$x" >/dev/null 2>&1
  fi
done
true
"#;

const CLEANUP_SH: &str = r#"
p=$1; shift
imgs=$(for id in $(docker ps -aq --filter "label=com.docker.compose.project=$p"); do
  docker inspect --format '{{.Image}}' "$id"; done)
imgs="$imgs $(docker images -aq --no-trunc --filter "label=com.docker.compose.project=$p")"
refs=$(docker images --format '{{.Repository}}:{{.Tag}}' --filter "reference=$p-*" --filter "reference=${p}_*")
docker ps -aq --filter "label=com.docker.compose.project=$p" | xargs -r docker rm -f >/dev/null 2>&1
for r in $refs; do docker image rm "$r" >/dev/null 2>&1; done
# by ID only once untagged: an ID never removes another project's tag
for i in $imgs "$@"; do
  [ "$(docker image inspect --format '{{len .RepoTags}}' "$i" 2>/dev/null)" = 0 ] &&
    docker image rm "$i" >/dev/null 2>&1
done
docker network rm "${p}_default" >/dev/null 2>&1
true
"#;

impl Drop for DockerGuard {
    fn drop(&mut self) {
        let mut extra: Vec<String> = Vec::new();
        for f in self.state_files.borrow().iter() {
            if let Ok(text) = std::fs::read_to_string(f) {
                for line in text.lines() {
                    if let Some(v) = line
                        .strip_prefix("images=")
                        .or_else(|| line.strip_prefix("prev_images="))
                    {
                        for pair in v.split(',') {
                            if let Some((_, id)) = pair.split_once('=') {
                                extra.push(id.to_owned());
                            }
                        }
                    }
                }
            }
        }
        for p in self.projects.borrow().iter() {
            let _ = Command::new("sh")
                .arg("-c")
                .arg(CLEANUP_SH)
                .arg("cleanup")
                .arg(p)
                .args(&extra)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let refs = self.refs.borrow();
        let ids = self.ids.borrow();
        if !refs.is_empty() || !ids.is_empty() {
            let _ = Command::new("sh")
                .arg("-c")
                .arg(IMAGES_SH)
                .arg("images")
                .arg(refs.len().to_string())
                .args(refs.iter())
                .args(ids.iter())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        for (repo, digest) in self.manifests.borrow().iter() {
            let _ = Command::new("curl")
                .args(["-fsS", "-o", "/dev/null", "-X", "DELETE"])
                .arg(format!("http://{REGISTRY}/v2/{repo}/manifests/{digest}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

// ---------------------------------------------------------------- users

/// A local user whose login shell is `shell`, in the `docker` group, with
/// no password (not locked: sshd without PAM refuses locked accounts). The
/// test hosts take the test key for every user (one AuthorizedKeysFile).
/// Removed with its home on drop.
pub struct LoginUser {
    pub name: String,
    pub home: PathBuf,
}

impl LoginUser {
    pub fn new(tag: &str, shell: &str) -> LoginUser {
        assert!(
            Path::new(shell).exists(),
            "{shell} is not installed (scripts/setup-deps.sh installs it)"
        );
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let name = format!("rbt{tag}{n}{}", token());
        let home = PathBuf::from("/home").join(&name);
        // one left by a killed run whose pid this one reuses
        let _ = Command::new("userdel")
            .args(["--remove", &name])
            .stderr(Stdio::null())
            .status();
        let out = Command::new("useradd")
            .args(["--create-home", "--shell", shell, "--groups", "docker"])
            .args(["--password", "*", &name])
            .output()
            .unwrap();
        assert!(out.status.success(), "useradd {name}: {out:?}");
        LoginUser { name, home }
    }
}

impl Drop for LoginUser {
    fn drop(&mut self) {
        // its processes (a fish that lingers) first
        let _ = Command::new("pkill")
            .args(["-KILL", "-u", &self.name])
            .status();
        let _ = Command::new("userdel")
            .args(["--remove", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}

// ---------------------------------------------------------------- registry

/// The local registry (see scripts/setup-deps.sh); deleting is enabled.
pub const REGISTRY: &str = "127.0.0.1:5000";

/// The ID (`sha256:...`) of a local image.
pub fn image_id(reference: &str) -> String {
    docker(&["image", "inspect", "--format", "{{.Id}}", reference])
        .trim()
        .to_owned()
}

/// The digest of the manifest the registry serves for `repo:tag`.
pub fn registry_digest(repo: &str, tag: &str) -> String {
    let out = sh(Command::new("curl")
        .args(["-fsSI"])
        .args([
            "-H",
            "Accept: application/vnd.docker.distribution.manifest.v2+json",
        ])
        .args(["-H", "Accept: application/vnd.oci.image.manifest.v1+json"])
        .args([
            "-H",
            "Accept: application/vnd.docker.distribution.manifest.list.v2+json",
        ])
        .args(["-H", "Accept: application/vnd.oci.image.index.v1+json"])
        .arg(format!("http://{REGISTRY}/v2/{repo}/manifests/{tag}")));
    out.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("docker-content-digest")
                .then(|| v.trim().to_owned())
        })
        .unwrap_or_else(|| panic!("no digest for {repo}:{tag}:\n{out}"))
}

// ---------------------------------------------------------------- runs

/// One finished rbuild run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// The `--json` document, when the run printed one.
    pub json: Option<Value>,
}

impl Run {
    /// Run a prepared command to its end.
    pub fn from_command(mut c: Command) -> Run {
        Run::from_output(c.output().expect("run rbuild"))
    }

    fn from_output(out: std::process::Output) -> Run {
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let json = serde_json::from_str(&stdout).ok();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout,
            stderr,
            json,
        }
    }

    /// Everything, for assertion messages.
    pub fn dump(&self) -> String {
        format!(
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    pub fn rows(&self) -> &Vec<Value> {
        let doc = self
            .json
            .as_ref()
            .unwrap_or_else(|| panic!("no JSON document:\n{}", self.dump()));
        assert_eq!(doc["version"], 1, "{}", self.dump());
        assert_eq!(
            doc["exit_code"].as_i64(),
            Some(self.code as i64),
            "the document's exit_code is the process's:\n{}",
            self.dump()
        );
        doc["results"].as_array().expect("results")
    }

    /// The row of `stack` on `host`; panics if there is not exactly one.
    pub fn row(&self, host: &str, stack: &str) -> &Value {
        let rows: Vec<&Value> = self
            .rows()
            .iter()
            .filter(|r| r["host"] == host && r["stack"] == stack)
            .collect();
        assert_eq!(
            rows.len(),
            1,
            "want one row for {host}/{stack}:\n{}",
            self.dump()
        );
        rows[0]
    }

    /// Assert the row's action and reason (and, for successes, no error).
    pub fn expect(&self, host: &str, stack: &str, action: &str, reason: &str) -> &Value {
        let r = self.row(host, stack);
        assert_eq!(
            (r["action"].as_str(), r["reason"].as_str()),
            (Some(action), Some(reason)),
            "{host}/{stack}:\n{}",
            self.dump()
        );
        // a skip that still needs attention carries its error
        let attention = matches!(reason, "previous_failure" | "rollout_halted");
        if matches!(action, "rebuilt" | "skipped" | "would_rebuild") && !attention {
            assert!(r["error"].is_null(), "{host}/{stack}:\n{}", self.dump());
        }
        r
    }

    pub fn error_of(&self, host: &str, stack: &str) -> String {
        self.row(host, stack)["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{host}/{stack} has no error:\n{}", self.dump()))
            .to_owned()
    }

    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "exit status:\n{}", self.dump());
        self
    }
}

/// An `rbuild` command with a clean environment (no variable of the
/// developer's shell changes a test's meaning).
pub fn rbuild_command() -> Command {
    let mut c = Command::new(rbuild_bin());
    for v in [
        "BUILD_PERIOD",
        "UP_TIMEOUT_PERIOD",
        "RBUILD_INVENTORY",
        "RBUILD_CONCURRENCY",
        "RBUILD_CONNECT_TIMEOUT",
        "RBUILD_SSH_CONFIG",
        "RBUILD_STATE_DIR",
        "RBUILD_LOG",
    ] {
        c.env_remove(v);
    }
    c.env("NO_COLOR", "1").stdin(Stdio::null());
    c
}

/// Run to completion through assert_cmd.
pub fn run_command(c: Command) -> Run {
    let out = assert_cmd::Command::from_std(c)
        .timeout(Duration::from_secs(600))
        .output()
        .expect("rbuild runs");
    Run::from_output(out)
}

// ---------------------------------------------------------------- fleet

/// One stack in the inventory.
#[derive(Debug, Clone)]
struct InvStack {
    host: String,
    name: String,
    /// The local directory holding its files.
    dir: PathBuf,
    compose_file: String,
    /// Extra `key: "value"` lines for the stack entry.
    extra: Vec<(String, String)>,
    /// A top-level shared stack (then `host` is empty).
    shared: Option<Placement>,
}

/// Where a shared stack runs, and its `rollout:` (YAML flow map) if any.
#[derive(Debug, Clone)]
struct Placement {
    hosts: Vec<String>,
    groups: Vec<String>,
    rollout: Option<String>,
}

/// N real sshd test hosts (h1..hN) on a loopback range of their own, the
/// stacks they run, and the inventory naming them.
pub struct Fleet {
    /// Dropped first (fields drop in order): it reads the state files under
    /// `root` to find the images to remove.
    docker: DockerGuard,
    /// Root of everything local to the test (stacks, inventory, hosts).
    pub root: tempfile::TempDir,
    /// The testhosts.sh DIR (ssh_config, hN/state, hN/srv, hN/sshd.log).
    pub th: PathBuf,
    /// `t<abbrev><token>`: every compose project of this test starts so.
    pub prefix: String,
    pub hosts: usize,
    stacks: RefCell<Vec<InvStack>>,
    /// `groups:` of each host.
    groups: RefCell<BTreeMap<String, Vec<String>>>,
    /// `user:` of each host.
    users: RefCell<BTreeMap<String, String>>,
    /// The body of `defaults:` (YAML, indented 2 spaces), if any.
    defaults: RefCell<String>,
    dropped: Cell<bool>,
}

impl Fleet {
    /// `n` hosts h1..hN, up and accepting ssh.
    pub fn new(abbrev: &str, n: usize) -> Fleet {
        Fleet::with_env(abbrev, n, &[])
    }

    /// Like [`Fleet::new`], with environment for `testhosts.sh up`, e.g.
    /// `RBUILD_TESTHOST_COMPOSE_V1=h2`.
    pub fn with_env(abbrev: &str, n: usize, env: &[(&str, &str)]) -> Fleet {
        assert!(n as u32 <= BLOCK);
        let prefix = claim_prefix(abbrev);
        let root = tempfile::Builder::new()
            .prefix(&format!("rbuild-{prefix}-"))
            .tempdir()
            .unwrap();
        let th = root.path().join("th");
        let f = Fleet {
            docker: DockerGuard::default(),
            root,
            th,
            prefix,
            hosts: n,
            stacks: RefCell::new(vec![]),
            groups: RefCell::new(BTreeMap::new()),
            users: RefCell::new(BTreeMap::new()),
            defaults: RefCell::new(String::new()),
            dropped: Cell::new(false),
        };
        let mut last = String::new();
        let mut start_failures = 0;
        for _ in 0..100 {
            let first = next_block();
            let out = Command::new(testhosts_script())
                .arg("up")
                .arg(&f.th)
                .arg(n.to_string())
                .arg(first.to_string())
                .envs(env.iter().copied())
                .stdin(Stdio::null())
                .output()
                .unwrap();
            if out.status.success() {
                return f;
            }
            last = String::from_utf8_lossy(&out.stderr).into_owned();
            // taken by another suite running at once: try the next block
            if last.contains("failed to start") && start_failures < 3 {
                start_failures += 1;
            } else if !last.contains("already in use") {
                break;
            }
        }
        panic!("testhosts.sh up failed: {last}");
    }

    /// The compose project (and stack) name of `stack` on `host`.
    pub fn name(&self, host: &str, stack: &str) -> String {
        format!("{}-{host}-{stack}", self.prefix)
    }

    pub fn host_names(&self) -> Vec<String> {
        (1..=self.hosts).map(|k| format!("h{k}")).collect()
    }

    /// Add `def` as stack `stack` of `host`; returns its project name.
    pub fn add_stack(&self, host: &str, stack: &str, def: &StackDef) -> String {
        self.add_stack_with(host, stack, def, &[])
    }

    /// [`Fleet::add_stack`] with extra inventory keys for the stack.
    pub fn add_stack_with(
        &self,
        host: &str,
        stack: &str,
        def: &StackDef,
        extra: &[(&str, &str)],
    ) -> String {
        let name = self.name(host, stack);
        let dir = self
            .root
            .path()
            .join("stacks")
            .join(format!("{host}-{stack}"));
        def.write_to(&dir);
        self.docker.project(&name);
        self.docker.state_file(self.state_path(host, &name));
        self.stacks.borrow_mut().push(InvStack {
            host: host.into(),
            name: name.clone(),
            dir,
            compose_file: def.compose_file_name(),
            extra: extra
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            shared: None,
        });
        name
    }

    /// The compose project (and stack) name of shared stack `stack`: the
    /// same on every host that runs it.
    pub fn shared_name(&self, stack: &str) -> String {
        format!("{}-{stack}", self.prefix)
    }

    /// Add `def` as a top-level shared stack `stack`, run by `hosts` and by
    /// the hosts of `groups`, with `rollout` (a YAML flow map such as
    /// `{canary: true}`) if given; returns its name.
    ///
    /// Every test host shares the one Docker engine, so a shared stack is
    /// ONE compose project there, whichever host works on it.
    pub fn add_shared_stack(
        &self,
        stack: &str,
        def: &StackDef,
        hosts: &[&str],
        groups: &[&str],
        rollout: Option<&str>,
    ) -> String {
        let name = self.shared_name(stack);
        let dir = self
            .root
            .path()
            .join("stacks")
            .join(format!("shared-{stack}"));
        def.write_to(&dir);
        self.docker.project(&name);
        for h in self.host_names() {
            self.docker.state_file(self.state_path(&h, &name));
        }
        self.stacks.borrow_mut().push(InvStack {
            host: String::new(),
            name: name.clone(),
            dir,
            compose_file: def.compose_file_name(),
            extra: vec![],
            shared: Some(Placement {
                hosts: hosts.iter().map(|h| h.to_string()).collect(),
                groups: groups.iter().map(|g| g.to_string()).collect(),
                rollout: rollout.map(str::to_owned),
            }),
        });
        name
    }

    /// Put `host` in `groups` (its `groups:` key).
    pub fn set_groups(&self, host: &str, groups: &[&str]) {
        self.groups.borrow_mut().insert(
            host.to_owned(),
            groups.iter().map(|g| g.to_string()).collect(),
        );
    }

    /// Log in to `host` as `user` (the host's `user:`).
    pub fn set_user(&self, host: &str, user: &str) {
        self.users
            .borrow_mut()
            .insert(host.to_owned(), user.to_owned());
    }

    /// Remove the images a state file at `p` names on drop (for state
    /// directories other than a host's `/var/lib/rbuild`).
    pub fn track_state_file(&self, p: PathBuf) {
        self.docker.state_file(p);
    }

    /// The body of the inventory's `defaults:`, YAML indented 2 spaces,
    /// e.g. `"  rollout: {canary: true}\n"`.
    pub fn set_defaults(&self, yaml: &str) {
        *self.defaults.borrow_mut() = yaml.to_owned();
    }

    /// Remove the local image reference `r` (`repo:tag`) on drop.
    pub fn track_ref(&self, r: &str) {
        self.docker.refs.borrow_mut().push(r.to_owned());
    }

    /// Remove image `id` on drop, once no tag names it (never forced).
    pub fn track_image(&self, id: &str) {
        self.docker.ids.borrow_mut().push(id.to_owned());
    }

    /// Delete the manifest `digest` of `repo` from the local registry on drop.
    pub fn track_manifest(&self, repo: &str, digest: &str) {
        self.docker
            .manifests
            .borrow_mut()
            .push((repo.to_owned(), digest.to_owned()));
    }

    /// One `web` sleeper stack on every host; returns the names, h1 first.
    pub fn web_everywhere(&self) -> Vec<String> {
        self.host_names()
            .iter()
            .map(|h| self.add_stack(h, "web", &StackDef::sleeper("v1")))
            .collect()
    }

    fn inv_stack(&self, name: &str) -> InvStack {
        self.stacks
            .borrow()
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no stack {name}"))
            .clone()
    }

    /// The local directory of stack `name`.
    pub fn local_dir(&self, name: &str) -> PathBuf {
        self.inv_stack(name).dir
    }

    /// Change (or add) a file of stack `name` locally.
    pub fn write(&self, name: &str, rel: &str, contents: &str) {
        std::fs::write(self.local_dir(name).join(rel), contents).unwrap();
    }

    pub fn inventory_path(&self) -> PathBuf {
        self.root.path().join("inventory.yaml")
    }

    /// The inventory for the stacks, groups and defaults added so far.
    pub fn inventory_text(&self) -> String {
        let q = |s: &str| serde_json::to_string(s).unwrap(); // JSON strings are YAML
        let list = |v: &[String]| {
            let items: Vec<String> = v.iter().map(|s| q(s)).collect();
            format!("[{}]", items.join(", "))
        };
        let rel = |s: &InvStack| {
            let p = s
                .dir
                .strip_prefix(self.root.path())
                .unwrap()
                .join(&s.compose_file);
            q(p.to_str().unwrap())
        };
        let mut t = String::new();
        let defaults = self.defaults.borrow();
        if !defaults.is_empty() {
            t.push_str("defaults:\n");
            t.push_str(&defaults);
        }
        let mut by_host: BTreeMap<String, Vec<InvStack>> = BTreeMap::new();
        let mut shared = String::new();
        for s in self.stacks.borrow().iter() {
            match &s.shared {
                None => by_host.entry(s.host.clone()).or_default().push(s.clone()),
                Some(p) => {
                    shared.push_str(&format!("  {}:\n", q(&s.name)));
                    shared.push_str(&format!("    compose_file: {}\n", rel(s)));
                    if !p.hosts.is_empty() {
                        shared.push_str(&format!("    hosts: {}\n", list(&p.hosts)));
                        for h in &p.hosts {
                            by_host.entry(h.clone()).or_default();
                        }
                    }
                    if !p.groups.is_empty() {
                        shared.push_str(&format!("    groups: {}\n", list(&p.groups)));
                    }
                    if let Some(r) = &p.rollout {
                        shared.push_str(&format!("    rollout: {r}\n"));
                    }
                }
            }
        }
        if !shared.is_empty() {
            t.push_str("stacks:\n");
            t.push_str(&shared);
        }
        for h in self
            .groups
            .borrow()
            .keys()
            .chain(self.users.borrow().keys())
        {
            by_host.entry(h.clone()).or_default();
        }
        t.push_str("hosts:\n");
        for (h, stacks) in by_host {
            let groups = self.groups.borrow().get(&h).cloned().unwrap_or_default();
            let user = self.users.borrow().get(&h).cloned();
            if stacks.is_empty() && groups.is_empty() && user.is_none() {
                t.push_str(&format!("  {h}: {{}}\n"));
                continue;
            }
            t.push_str(&format!("  {h}:\n"));
            if let Some(u) = user {
                t.push_str(&format!("    user: {}\n", q(&u)));
            }
            if !groups.is_empty() {
                t.push_str(&format!("    groups: {}\n", list(&groups)));
            }
            if stacks.is_empty() {
                continue;
            }
            t.push_str("    stacks:\n");
            for s in stacks {
                t.push_str(&format!("      - name: {}\n", q(&s.name)));
                t.push_str(&format!("        compose_file: {}\n", rel(&s)));
                for (k, v) in &s.extra {
                    t.push_str(&format!("        {k}: {}\n", q(v)));
                }
            }
        }
        t
    }

    /// `rbuild -F ssh_config -i inventory.yaml ARGS` (no `--json`), run in
    /// the test's root directory, not yet started.
    pub fn command(&self, args: &[&str]) -> Command {
        std::fs::write(self.inventory_path(), self.inventory_text()).unwrap();
        self.command_raw(args)
    }

    /// Like [`Fleet::command`] but leaves inventory.yaml as it is.
    pub fn command_raw(&self, args: &[&str]) -> Command {
        let mut c = rbuild_command();
        c.current_dir(self.root.path())
            .arg("-F")
            .arg(self.th.join("ssh_config"))
            .arg("-i")
            .arg(self.inventory_path())
            .args(args);
        c
    }

    /// Run with `--json` and parse the document.
    pub fn run(&self, args: &[&str]) -> Run {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        let r = run_command(self.command(&a));
        assert!(
            r.json.is_some() || r.code == 2,
            "no JSON document:\n{}",
            r.dump()
        );
        r
    }

    /// Run without `--json`.
    pub fn run_plain(&self, args: &[&str]) -> Run {
        run_command(self.command(args))
    }

    /// Run against inventory `text` as written (for invalid inventories).
    pub fn run_inventory(&self, text: &str, args: &[&str]) -> Run {
        std::fs::write(self.inventory_path(), text).unwrap();
        run_command(self.command_raw(args))
    }

    // -- the hosts ----------------------------------------------------

    fn testhosts(&self, sub: &str, host: &str) {
        sh(Command::new(testhosts_script())
            .arg(sub)
            .arg(&self.th)
            .arg(host));
    }

    /// Stop a host's sshd: connection refused afterwards.
    pub fn stop_host(&self, host: &str) {
        self.testhosts("stop", host);
    }

    /// Restart a host's sshd with this line first in its sshd_config (sshd
    /// takes the first value it reads).
    pub fn restart_host_with(&self, host: &str, sshd_line: &str) {
        self.testhosts("stop", host);
        let conf = self.host_dir(host).join("sshd_config");
        let text = std::fs::read_to_string(&conf).unwrap();
        std::fs::write(&conf, format!("{sshd_line}\n{text}")).unwrap();
        self.testhosts("start", host);
    }

    /// Silently drop tcp/22 to the host (undone on drop, panics included).
    pub fn drop_packets(&self, host: &str) {
        self.dropped.set(true);
        self.testhosts("drop", host);
    }

    pub fn host_dir(&self, host: &str) -> PathBuf {
        self.th.join(host)
    }

    /// `/var/lib/rbuild` as `host` sees it.
    pub fn state_dir(&self, host: &str) -> PathBuf {
        self.host_dir(host).join("state")
    }

    /// `/srv/rbuild` as `host` sees it.
    pub fn srv_dir(&self, host: &str) -> PathBuf {
        self.host_dir(host).join("srv")
    }

    /// The stack's directory on the host (the default remote dir).
    pub fn remote_dir(&self, host: &str, name: &str) -> PathBuf {
        self.srv_dir(host).join(name)
    }

    pub fn state_path(&self, host: &str, name: &str) -> PathBuf {
        self.state_dir(host).join(format!("{name}.state"))
    }

    /// The stack's lock directory on the host.
    pub fn lock_dir(&self, host: &str, name: &str) -> PathBuf {
        self.state_dir(host).join(format!("{name}.lock"))
    }

    /// The lines of the stack's history file on the host (none if missing).
    pub fn history_lines(&self, host: &str, name: &str) -> Vec<String> {
        std::fs::read_to_string(self.state_dir(host).join(format!("{name}.history")))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// The state file's text, if any.
    pub fn state_text(&self, host: &str, name: &str) -> Option<String> {
        std::fs::read_to_string(self.state_path(host, name)).ok()
    }

    /// The state file as key=value pairs; panics if missing.
    pub fn state(&self, host: &str, name: &str) -> BTreeMap<String, String> {
        let text = self
            .state_text(host, name)
            .unwrap_or_else(|| panic!("no state file for {name} on {host}"));
        text.lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    /// Names in a directory (empty if it does not exist).
    pub fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Lines of the host's sshd log (LogLevel VERBOSE) that contain `what`.
    fn sshd_log_count(&self, host: &str, what: &str) -> usize {
        std::fs::read_to_string(self.host_dir(host).join("sshd.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(what))
            .count()
    }

    /// Remote commands the host's sshd started (sessions with a command).
    pub fn remote_commands(&self, host: &str) -> usize {
        self.sshd_log_count(host, "Starting session: command")
    }

    /// Logins (ssh handshakes) the host's sshd accepted.
    pub fn accepted_logins(&self, host: &str) -> usize {
        self.sshd_log_count(host, "Accepted publickey")
    }

    /// The files of a directory, recursively, with contents and modes.
    pub fn snapshot(dir: &Path) -> BTreeMap<String, (u32, Vec<u8>)> {
        let mut out = BTreeMap::new();
        fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, (u32, Vec<u8>)>) {
            let Ok(rd) = std::fs::read_dir(dir) else {
                return;
            };
            for e in rd.flatten() {
                let p = e.path();
                let meta = std::fs::symlink_metadata(&p).unwrap();
                let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
                let mode = meta.permissions().mode() & 0o7777;
                if meta.is_dir() {
                    out.insert(rel + "/", (mode, vec![]));
                    walk(base, &p, out);
                } else {
                    out.insert(rel, (mode, std::fs::read(&p).unwrap_or_default()));
                }
            }
        }
        walk(dir, dir, &mut out);
        out
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        if self.dropped.get() {
            for h in self.host_names() {
                let _ = Command::new(testhosts_script())
                    .arg("undrop")
                    .arg(&self.th)
                    .arg(&h)
                    .stdin(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
        let _ = Command::new(testhosts_script())
            .arg("down")
            .arg(&self.th)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .status();
        // self.docker drops after this: containers, images, networks
    }
}

/// A child process killed (by its pid) if still running when dropped.
pub struct Background(pub Option<std::process::Child>);

impl Background {
    pub fn spawn(mut c: Command) -> Background {
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        Background(Some(c.spawn().expect("spawn")))
    }

    /// Like [`Background::spawn`], with stderr written to `path` (so a test
    /// can read the progress lines while it runs); [`Background::finish`]
    /// then has an empty `stderr`.
    pub fn spawn_stderr_to(mut c: Command, path: &Path) -> Background {
        let f = std::fs::File::create(path).unwrap();
        c.stdout(Stdio::piped()).stderr(f);
        Background(Some(c.spawn().expect("spawn")))
    }

    /// SIGKILL it (no chance to clean up) and reap it.
    pub fn kill9(mut self) {
        let mut c = self.0.take().unwrap();
        c.kill().expect("SIGKILL");
        c.wait().unwrap();
    }

    /// Send SIGINT, as Ctrl-C would.
    pub fn interrupt(&self) {
        let pid = self.0.as_ref().unwrap().id().to_string();
        let ok = Command::new("kill").args(["-INT", &pid]).status().unwrap();
        assert!(ok.success(), "kill -INT {pid}");
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        let c = self.0.as_mut().unwrap();
        matches!(c.try_wait(), Ok(None))
    }

    /// Wait for it to finish.
    pub fn finish(mut self) -> Run {
        let child = self.0.take().unwrap();
        Run::from_output(child.wait_with_output().unwrap())
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
