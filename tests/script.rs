//! The host script's fast tests: the shipped script (`rbuild::remote`) run
//! under `sh` on a temp "host" (a state directory, a stacks directory) with a
//! fake `docker` / `docker-compose` on its PATH (`tests/script/fake-docker`:
//! a small world in files, every call recorded, scripted faults). No engine,
//! no ssh: every test takes milliseconds, and none asserts a time.
//!
//! `RBUILD_SH_COVERAGE=DIR`: the script runs under `bash --posix` with
//! xtrace into DIR (a file per run), for `scripts/sh-coverage.sh`.
//!
//! The kill sweeps (`killed_*`): a scenario (a rebuild, a failed build, a
//! failed gate rolled back, a first build and a failed one, a manual
//! rollback with and without `--to`, a start) is set up once, and a copy of
//! its host is killed at each point in turn, then the same command runs
//! again (its faults lifted); the invariants hold: no byte of the stack's
//! data files lost, the check after the kill names the phase and says
//! `running=0`, the next run ends in a `done` line, the state's `images=`
//! is what the fake's running containers use, and no journal, carry list,
//! stage, old or dead copy is left. The points are the script's `at STEP`
//! calls (its line `at() { :; }` replaced by one that kills the shell at
//! the Nth call of a step); the file-step sweeps kill instead at each
//! `mv`/`rm`/`mkdir` of an undo (the fake installed as them, its
//! `kill_at_call`). Each sweep prints its table (scenario, kill point, what
//! the check said, what the next run did) to the test's own stderr (CI's log
//! shows it) and writes it to `target/tmp/kill-table/`. Tests marked
//! `#[ignore = "bug: ..."]` show a bug of the script: run them with
//! `--include-ignored`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use rbuild::inventory::ComposePref;
use rbuild::remote::call::Hooks;
use rbuild::remote::{
    Announced, Apply, ApplyStack, Base, Call, Cause, Check, CheckStack, Event, History, Logs,
    Outcome, Place, Rollback, StackMode, StackOptions, Status, Token, parse_line, script,
};
use sha2::{Digest, Sha256};

const TOKEN: &str = "t0k";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A compose file: the fake reads no YAML, but compose needs the file there.
const COMPOSE: &str = "services:\n  app:\n    build: .\n";

/// One stack of a host: its files (what a ship sends) and its settings.
#[derive(Clone)]
struct Stack {
    name: String,
    files: Vec<(String, String)>,
    mode: StackMode,
    settle: u64,
    up_timeout: u64,
    options: StackOptions,
    hooks: Hooks,
    adopt: bool,
}

impl Stack {
    fn hash(&self) -> String {
        let mut h = Sha256::new();
        for (p, c) in &self.files {
            h.update(p.as_bytes());
            h.update([0]);
            h.update(c.as_bytes());
            h.update([0]);
        }
        hex(&h.finalize())[..16].to_owned()
    }
}

/// The tools of a host made by [`Host::without`].
const HOST_TOOLS: &[&str] = &[
    "sh",
    "awk",
    "sed",
    "grep",
    "tar",
    "find",
    "date",
    "sleep",
    "mv",
    "rm",
    "mkdir",
    "rmdir",
    "cat",
    "tail",
    "head",
    "tr",
    "wc",
    "sync",
    "chmod",
    "chgrp",
    "df",
    "ls",
    "timeout",
    "sha256sum",
    "shasum",
    "openssl",
    "env",
    "kill",
    "touch",
    "printf",
    "echo",
    "cut",
    "sort",
    "id",
    "perl",
    "flock",
    "docker",
    "docker-compose",
];

/// A temp host: state directory, stacks, the fake docker's world.
struct Host {
    root: tempfile::TempDir,
    stacks: Vec<Stack>,
    compose: ComposePref,
    remove_images: bool,
    prune: Option<u64>,
    /// The script to run instead of the shipped one (the kill harness).
    script: Option<String>,
    /// More environment for the script.
    env: Vec<(String, String)>,
    /// The host's tools are this directory (see [`Host::without`]), not
    /// /usr/bin:/bin.
    tools: Option<PathBuf>,
}

/// A run of the script: its output, parsed.
struct Run {
    stdout: String,
    stderr: String,
    code: Option<i32>,
    events: Vec<Event>,
    /// The fake killed the script's shell (at a call or a step).
    killed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Container {
    id: String,
    project: String,
    service: String,
    image: String,
    status: String,
}

static RUNS: AtomicUsize = AtomicUsize::new(0);

/// A live process holding a stack's lock ([`Host::hold_lock`]).
struct Holder(std::process::Child);

impl Holder {
    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Host {
    fn new() -> Host {
        let root = tempfile::tempdir().unwrap();
        for d in [
            "state",
            "stacks",
            "fake",
            "bin",
            "home",
            "fake/fail",
            "fake/health",
            "fake/crash",
        ] {
            std::fs::create_dir_all(root.path().join(d)).unwrap();
        }
        let fake = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/script/fake-docker");
        for name in ["docker", "docker-compose"] {
            std::os::unix::fs::symlink(&fake, root.path().join("bin").join(name)).unwrap();
        }
        // `sync` does nothing: a power loss is not what these tests test, and
        // each apply's dozen fsyncs on a shared disk were most of the
        // suite's time
        std::os::unix::fs::symlink("/bin/true", root.path().join("bin/sync")).unwrap();
        let h = Host {
            root,
            stacks: Vec::new(),
            compose: ComposePref::V2,
            remove_images: false,
            prune: None,
            script: None,
            env: Vec::new(),
            tools: None,
        };
        h.services("app build - always none");
        h
    }

    /// A copy of this host (its files, the fake's world, its stacks) in a
    /// new temp directory: the kill sweeps set a scenario up once and kill
    /// a copy of it at each point. Paths of this host in its files (the
    /// manifest's `dir=`) become the copy's.
    fn copy(&self) -> Host {
        fn walk(from: &Path, to: &Path, old: &str, new: &str) {
            for e in std::fs::read_dir(from).unwrap().flatten() {
                let (src, dst) = (e.path(), to.join(e.file_name()));
                let meta = std::fs::symlink_metadata(&src).unwrap();
                if meta.is_symlink() {
                    let target = std::fs::read_link(&src).unwrap();
                    let target = target.to_string_lossy().replacen(old, new, 1);
                    std::os::unix::fs::symlink(target, &dst).unwrap();
                } else if meta.is_dir() {
                    std::fs::create_dir(&dst).unwrap();
                    walk(&src, &dst, old, new);
                    std::fs::set_permissions(&dst, meta.permissions()).unwrap();
                } else {
                    let bytes = std::fs::read(&src).unwrap();
                    let bytes = match String::from_utf8(bytes) {
                        Ok(t) if t.contains(old) => t.replace(old, new).into_bytes(),
                        Ok(t) => t.into_bytes(),
                        Err(e) => e.into_bytes(),
                    };
                    std::fs::write(&dst, bytes).unwrap();
                    std::fs::set_permissions(&dst, meta.permissions()).unwrap();
                }
            }
        }
        let root = tempfile::tempdir().unwrap();
        let (old, new) = (
            self.root.path().to_str().unwrap().to_owned(),
            root.path().to_str().unwrap().to_owned(),
        );
        walk(self.root.path(), root.path(), &old, &new);
        Host {
            root,
            stacks: self.stacks.clone(),
            compose: self.compose,
            remove_images: self.remove_images,
            prune: self.prune,
            script: self.script.clone(),
            env: self.env.clone(),
            tools: self
                .tools
                .as_ref()
                .map(|t| PathBuf::from(t.to_str().unwrap().replacen(&old, &new, 1))),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }

    fn state_dir(&self) -> PathBuf {
        self.path("state")
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.path("stacks").join(name)
    }

    /// A stack shipped with these files (a compose.yaml is added).
    fn stack(mut self, name: &str, files: &[(&str, &str)]) -> Host {
        let mut all = vec![("compose.yaml".to_owned(), COMPOSE.to_owned())];
        all.extend(files.iter().map(|(p, c)| (p.to_string(), c.to_string())));
        self.stacks.push(Stack {
            name: name.to_owned(),
            files: all,
            mode: StackMode::Ship,
            settle: 0,
            up_timeout: 5,
            options: StackOptions::default(),
            hooks: Hooks::default(),
            adopt: false,
        });
        self
    }

    fn compose(mut self, c: ComposePref) -> Host {
        self.compose = c;
        self
    }

    /// A host whose PATH lacks these tools (and the fake's docker and
    /// docker-compose, when named).
    fn without(mut self, tools: &[&str]) -> Host {
        let dir = self.path("tools");
        std::fs::create_dir_all(&dir).unwrap();
        // every tool the script and its hooks here run (a new one the
        // script uses fails these tests until it is listed)
        for name in HOST_TOOLS.iter().filter(|t| !tools.contains(t)) {
            for from in ["/usr/bin", "/bin"] {
                let p = Path::new(from).join(name);
                if p.exists() {
                    let _ = std::os::unix::fs::symlink(p, dir.join(name));
                    break;
                }
            }
        }
        for t in tools {
            let _ = std::fs::remove_file(self.path("bin").join(t));
        }
        self.tools = Some(dir);
        self
    }

    /// Install the fake as these tools too: file tools (`mv`, `rm`,
    /// `mkdir`, `tar`, `cat`: recorded, failed by `fail/TOOL`), or `date`
    /// and `sleep` (a clock a sleep moves on at once).
    fn shim(&self, tools: &[&str]) {
        let fake = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/script/fake-docker");
        for name in tools {
            let _ = std::os::unix::fs::symlink(&fake, self.path("bin").join(name));
        }
    }

    /// At the script's next `sleep`, run this awk program over the fake's
    /// containers (fields as in its `containers` file).
    fn on_sleep(&self, awk: &str) {
        self.fake(
            "on_sleep",
            &format!(
                "awk '{awk}' \"$FAKE_DOCKER/containers\" >\"$FAKE_DOCKER/c.new\" && mv \"$FAKE_DOCKER/c.new\" \"$FAKE_DOCKER/containers\""
            ),
        );
    }

    fn env(mut self, k: &str, v: &str) -> Host {
        self.env.push((k.into(), v.into()));
        self
    }

    fn get(&mut self, name: &str) -> &mut Stack {
        self.stacks.iter_mut().find(|s| s.name == name).unwrap()
    }

    /// A new version of a stack's files: its next apply ships them.
    fn edit(&mut self, name: &str, file: &str, text: &str) {
        let s = self.get(name);
        s.files.retain(|(p, _)| p != file);
        s.files.push((file.to_owned(), text.to_owned()));
    }

    // --- the fake's world

    /// The project's services: `SERVICE build|image REF POLICY HEALTH` lines.
    fn services(&self, text: &str) {
        std::fs::write(self.path("fake/services"), format!("{text}\n")).unwrap();
    }

    /// A scripted fault or answer (a file of the fake's world).
    fn fake(&self, rel: &str, text: &str) {
        let p = self.path("fake").join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        // (a fault of the same name limited to N times before: no more)
        let _ = std::fs::remove_file(self.path("fake").join(format!("{rel}.times")));
        let text = if text.is_empty() {
            String::new()
        } else {
            format!("{text}\n")
        };
        std::fs::write(p, text).unwrap();
    }

    /// The fault holds for the next `n` times only.
    fn fake_times(&self, rel: &str, text: &str, n: u32) {
        self.fake(rel, text);
        self.fake(&format!("{rel}.times"), &n.to_string());
    }

    fn unfake(&self, rel: &str) {
        let p = self.path("fake").join(rel);
        let _ = std::fs::remove_file(&p);
        let _ = std::fs::remove_file(p.with_extension("times"));
    }

    fn containers(&self) -> Vec<Container> {
        std::fs::read_to_string(self.path("fake/containers"))
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                Container {
                    id: f[0].into(),
                    project: f[1].into(),
                    service: f[2].into(),
                    image: f[3].into(),
                    status: f[5].into(),
                }
            })
            .collect()
    }

    /// `service=image` of the project's running containers, sorted.
    fn running(&self, project: &str) -> String {
        let mut v: Vec<String> = self
            .containers()
            .into_iter()
            .filter(|c| c.project == project && c.status == "running")
            .map(|c| format!("{}={}", c.service, c.image))
            .collect();
        v.sort();
        v.dedup();
        if v.is_empty() {
            "-".into()
        } else {
            v.join(",")
        }
    }

    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.path("fake/calls"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// The image id a tag names in the fake engine.
    fn tag(&self, r: &str) -> Option<String> {
        std::fs::read_to_string(self.path("fake/tags"))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{r} ")).map(str::to_owned))
    }

    fn images(&self) -> Vec<String> {
        std::fs::read_to_string(self.path("fake/images"))
            .unwrap_or_default()
            .lines()
            .map(|l| l.split(' ').next().unwrap().to_owned())
            .collect()
    }

    /// Stop the project's containers by hand (as a reboot would).
    fn stop_all(&self) {
        let t = std::fs::read_to_string(self.path("fake/containers")).unwrap();
        let t: String = t
            .lines()
            .map(|l| {
                let mut f: Vec<&str> = l.split(' ').collect();
                f[5] = "exited";
                f.join(" ") + "\n"
            })
            .collect();
        std::fs::write(self.path("fake/containers"), t).unwrap();
    }

    // --- the host's files

    fn state(&self, name: &str) -> BTreeMap<String, String> {
        std::fs::read_to_string(self.state_dir().join(format!("{name}.state")))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    fn write_state(&self, name: &str, text: &str) {
        std::fs::write(self.state_dir().join(format!("{name}.state")), text).unwrap();
    }

    /// `images=` of the state, sorted as [`Host::running`] is.
    fn state_images(&self, name: &str) -> String {
        let v = self
            .state(name)
            .get("images")
            .cloned()
            .unwrap_or("-".into());
        let mut v: Vec<&str> = v.split(',').collect();
        v.sort();
        v.join(",")
    }

    /// The kept generations the state file lists (its `generation=`
    /// lines): `GEN BUILT_AT HASH IMAGES NAMES`, split.
    fn gens(&self, name: &str) -> Vec<Vec<String>> {
        std::fs::read_to_string(self.state_dir().join(format!("{name}.state")))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.strip_prefix("generation="))
            .map(|l| l.split(' ').map(str::to_owned).collect())
            .collect()
    }

    /// The numbers of the kept generations, ascending.
    fn gen_numbers(&self, name: &str) -> Vec<u64> {
        let mut v: Vec<u64> = self
            .gens(name)
            .iter()
            .map(|g| g[0].parse().unwrap())
            .collect();
        v.sort();
        v
    }

    /// The images of a kept generation.
    fn gen_images(&self, name: &str, g: u64) -> Option<String> {
        self.gens(name)
            .into_iter()
            .find(|x| x[0] == g.to_string())
            .map(|x| x[3].clone())
    }

    /// Hold the stack's lock as a live run does: a child shell that takes
    /// it with `flock` and writes "PID BOOT_ID" into it, killed (by its
    /// pid) when the holder is dropped.
    fn hold_lock(&self, name: &str) -> Holder {
        let lock = self.state_dir().join(format!("{name}.lock"));
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(
                "exec 9>>\"$1\"; flock -n 9 || exit 1; b=-; \
                 [ -r /proc/sys/kernel/random/boot_id ] && read -r b </proc/sys/kernel/random/boot_id; \
                 echo \"$$ $b\" >\"$1\"; echo ready; exec sleep 600",
            )
            .arg("sh")
            .arg(&lock)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        assert_eq!(line.trim(), "ready", "the holder could not take the lock");
        Holder(child)
    }

    /// A file written into the stack's directory "by a container".
    fn data(&self, name: &str, rel: &str, text: &str) {
        let p = self.dir(name).join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn read(&self, name: &str, rel: &str) -> Option<String> {
        std::fs::read_to_string(self.dir(name).join(rel)).ok()
    }

    // --- calls

    fn apply_stack(&self, s: &Stack) -> ApplyStack {
        ApplyStack {
            place: Place {
                name: s.name.clone(),
                dir: Some(self.dir(&s.name).to_str().unwrap().to_owned()),
                compose_files: vec!["compose.yaml".into()],
                profiles: vec![],
            },
            mode: s.mode,
            adopt: s.adopt,
            up_timeout: s.up_timeout,
            settle: s.settle,
            build_timeout: 5,
            hash: s.hash(),
            options: s.options.clone(),
            hooks: s.hooks.clone(),
        }
    }

    /// The payload of the stacks shipped: a tar of `NAME/PATH` entries.
    fn payload(&self) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for s in self.stacks.iter().filter(|s| s.mode == StackMode::Ship) {
            let mut dirs = std::collections::BTreeSet::new();
            dirs.insert(s.name.clone());
            for (p, _) in &s.files {
                let mut d = Path::new(p).parent();
                while let Some(x) = d.filter(|x| !x.as_os_str().is_empty()) {
                    dirs.insert(format!("{}/{}", s.name, x.display()));
                    d = x.parent();
                }
            }
            for d in dirs {
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                h.set_mtime(0);
                b.append_data(&mut h, format!("{d}/"), std::io::empty())
                    .unwrap();
            }
            for (p, c) in &s.files {
                let mut h = tar::Header::new_gnu();
                h.set_mode(0o644);
                h.set_size(c.len() as u64);
                h.set_mtime(0);
                b.append_data(&mut h, format!("{}/{p}", s.name), c.as_bytes())
                    .unwrap();
            }
        }
        b.into_inner().unwrap()
    }

    fn apply_call(&self, payload: &[u8]) -> Apply {
        let shipping = self.stacks.iter().any(|s| s.mode == StackMode::Ship);
        Apply {
            state_dir: Some(self.state_dir().to_str().unwrap().to_owned()),
            compose: self.compose,
            remove_images: self.remove_images,
            prune_cache: self.prune,
            payload: shipping.then(|| Announced {
                size: payload.len() as u64,
                sha256: hex(&Sha256::digest(payload)),
            }),
            stacks: self.stacks.iter().map(|s| self.apply_stack(s)).collect(),
        }
    }

    /// An apply of every stack (shipped, unless its mode says otherwise).
    fn apply(&self) -> Run {
        self.apply_with(|_| {})
    }

    /// An apply, its call changed first by `f`.
    fn apply_with(&self, f: impl FnOnce(&mut Apply)) -> Run {
        let payload = self.payload();
        let mut call = self.apply_call(&payload);
        f(&mut call);
        let payload = if call.payload.is_some() {
            payload
        } else {
            vec![]
        };
        self.run(&Call::Apply(call), payload)
    }

    fn check(&self, stacks: &[(&str, &str, u64)], hold: bool, plan: bool) -> Run {
        self.run(
            &Call::Check(Check {
                state_dir: Some(self.state_dir().to_str().unwrap().to_owned()),
                hold,
                plan,
                stacks: stacks
                    .iter()
                    .map(|(n, h, p)| CheckStack {
                        name: n.to_string(),
                        hash: h.to_string(),
                        period: *p,
                    })
                    .collect(),
            }),
            vec![],
        )
    }

    fn status(&self) -> Run {
        self.run(
            &Call::Status(Status {
                state_dir: Some(self.state_dir().to_str().unwrap().to_owned()),
                stacks: self
                    .stacks
                    .iter()
                    .map(|s| CheckStack {
                        name: s.name.clone(),
                        hash: s.hash(),
                        period: 3600,
                    })
                    .collect(),
            }),
            vec![],
        )
    }

    fn history(&self, name: &str) -> Run {
        self.run(
            &Call::History(History {
                state_dir: Some(self.state_dir().to_str().unwrap().to_owned()),
                name: name.into(),
            }),
            vec![],
        )
    }

    fn logs(&self, name: &str) -> Run {
        self.run(
            &Call::Logs(Logs {
                state_dir: Some(self.state_dir().to_str().unwrap().to_owned()),
                name: name.into(),
            }),
            vec![],
        )
    }

    /// `rbuild rollback`: the newest kept generation older than the one
    /// that runs.
    fn rollback(&self, name: &str) -> Run {
        self.rollback_to(name, None)
    }

    /// `rbuild rollback --to GEN` (`None`: without `--to`).
    fn rollback_to(&self, name: &str, to: Option<u64>) -> Run {
        let s = self.stacks.iter().find(|s| s.name == name).unwrap();
        self.run(
            &Call::Rollback(Rollback {
                state_dir: Some(self.state_dir().to_str().unwrap().to_owned()),
                compose: self.compose,
                place: self.apply_stack(s).place,
                up_timeout: 5,
                settle: 0,
                to,
            }),
            vec![],
        )
    }

    /// Run a call's script (or [`Host::script`]) under `sh -c`, as the
    /// controller's `sh -c SCRIPT rbuild PROTO TOKEN COMMAND STATE_DIR ARGS`.
    fn run(&self, call: &Call, stdin: Vec<u8>) -> Run {
        let args = call.args(&Token::fixed(TOKEN));
        let script = match (&self.script, call) {
            (Some(s), Call::Apply(_) | Call::Rollback(_)) => s.as_str(),
            _ => call.script(),
        };
        self.run_script(script, &args, stdin)
    }

    fn run_script(&self, script: &str, args: &[String], stdin: Vec<u8>) -> Run {
        let _ = std::fs::remove_file(self.path("fake/killed"));
        let bin = self.path("bin");
        let mut c = Command::new("/bin/sh");
        let tools = match &self.tools {
            Some(t) => t.display().to_string(),
            None => "/usr/bin:/bin".into(),
        };
        c.env_clear()
            .env("PATH", format!("{}:{tools}", bin.display()))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("HOME", self.path("home"))
            .env("DOCKER_CONFIG", self.path("home/.docker"))
            .env("FAKE_DOCKER", self.path("fake"))
            .env("LC_ALL", "C")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // the script's shell keeps the wrapper's pid (exec): the fake
        // kills it there
        let wrapper = "FAKE_KILL_PID=$$; export FAKE_KILL_PID;";
        match std::env::var_os("RBUILD_SH_COVERAGE") {
            Some(dir) => {
                let dir = PathBuf::from(dir);
                std::fs::create_dir_all(&dir).unwrap();
                let n = RUNS.fetch_add(1, Ordering::SeqCst);
                // the script as run, line for line (the trace's line numbers):
                // the whole script (the check's cut is a head of it, a kill
                // sweep's changes one line: their lines are the same), or
                // the operator commands' (its own parts, its own lines)
                let which = if script == script::operator_script() {
                    std::fs::write(dir.join("operator.sh"), script).unwrap();
                    "op"
                } else {
                    if script == script::script() {
                        std::fs::write(dir.join("script.sh"), script).unwrap();
                    }
                    "full"
                };
                let trace = dir.join(format!("trace.{which}.{}.{n}", std::process::id()));
                // (the trace on descriptor 7: the script's lock is on 9)
                // bash ignores PS4 from the environment as root: set on the
                // script's first line, which keeps every line's number
                let traced = format!("PS4='+${{LINENO}} '; set -x; {script}");
                c.env("RBUILD_TRACE", trace).arg("-c").arg(format!(
                    "{wrapper} exec 7>>\"$RBUILD_TRACE\"; BASH_XTRACEFD=7 exec /bin/bash --posix -c \"$0\" \"$@\""
                ))
                .arg(traced);
            }
            None => {
                c.arg("-c")
                    .arg(format!("{wrapper} exec /bin/sh -c \"$0\" \"$@\""))
                    .arg(script);
            }
        }
        c.args(args);
        let mut child = c.spawn().unwrap();
        let mut input = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || {
            let _ = input.write_all(&stdin);
        });
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let token = Token::fixed(TOKEN);
        Run {
            events: stdout
                .lines()
                .filter_map(|l| parse_line(l, &token))
                .collect(),
            stdout,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            code: out.status.code(),
            killed: self.path("fake/killed").exists(),
        }
    }
}

fn word(o: &Outcome) -> &'static str {
    match o {
        Outcome::Rebuilt => "rebuilt",
        Outcome::Started => "started",
        Outcome::RolledBack => "rolled_back",
        Outcome::Failed => "failed",
        Outcome::Locked { .. } => "locked",
    }
}

impl Run {
    fn done(&self, name: &str) -> Option<(&'static str, &str, Option<Cause>)> {
        self.events.iter().find_map(|e| match e {
            Event::Done {
                stack,
                outcome,
                detail,
                cause,
            } if stack == name => Some((word(outcome), detail.as_str(), *cause)),
            _ => None,
        })
    }

    fn expect_done(&self, name: &str, result: &str) -> &Run {
        match self.done(name) {
            Some((w, _, _)) if w == result => self,
            _ => panic!("want `done {name} {result}`:\n{self}"),
        }
    }

    fn expect_detail(&self, name: &str, text: &str) -> &Run {
        let (_, d, _) = self
            .done(name)
            .unwrap_or_else(|| panic!("no done:\n{self}"));
        assert!(d.contains(text), "want {text:?} in the detail:\n{self}");
        self
    }

    fn expect_cause(&self, name: &str, want: Cause) -> &Run {
        let (_, _, c) = self
            .done(name)
            .unwrap_or_else(|| panic!("no done:\n{self}"));
        assert_eq!(c, Some(want), "{self}");
        self
    }

    fn expect_fatal(&self, text: &str, want: Option<Cause>) -> &Run {
        let found = self.events.iter().any(
            |e| matches!(e, Event::Fatal { text: t, cause } if t.contains(text) && *cause == want),
        );
        assert!(found, "want a fatal {text:?} ({want:?}):\n{self}");
        assert_eq!(self.code, Some(3), "{self}");
        self
    }

    fn expect_note(&self, name: &str, text: &str) -> &Run {
        let found = self.events.iter().any(
            |e| matches!(e, Event::Note { stack, text: t } if stack == name && t.contains(text)),
        );
        assert!(found, "want a note {text:?}:\n{self}");
        self
    }

    fn steps(&self, name: &str) -> Vec<&str> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Step { stack, step } if stack == name => Some(step.as_str()),
                _ => None,
            })
            .collect()
    }

    fn recorded(&self, name: &str) -> rbuild::remote::Recorded {
        self.events
            .iter()
            .find_map(|e| match e {
                Event::State { stack, recorded } if stack == name => Some(recorded.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no state line for {name}:\n{self}"))
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}, killed {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.killed, self.stdout, self.stderr
        )
    }
}

/// A host with stack `web` rebuilt once (v1), `data/db.txt` written into its
/// directory by "a container".
fn built() -> Host {
    let h = Host::new().stack("web", &[("app.txt", "v1")]);
    h.apply().expect_done("web", "rebuilt");
    h.data("web", "data/db.txt", "precious");
    h
}

/// The first image the fake built for `web`'s app (v1's).
const V1: &str = "app=sha256:i1";

// ---------------------------------------------------------------- apply

#[test]
fn a_first_apply_ships_builds_and_records_what_runs() {
    let h = Host::new().stack("web", &[("app.txt", "v1"), ("conf/a.conf", "x")]);
    let r = h.apply();
    r.expect_done("web", "rebuilt")
        .expect_detail("web", "with compose v2");
    assert_eq!(
        r.steps("web"),
        ["ship", "build", "pull", "up", "wait", "prune"]
    );
    assert_eq!(h.read("web", "conf/a.conf").as_deref(), Some("x"));
    assert_eq!(h.running("web"), V1);
    assert_eq!(h.state_images("web"), V1);
    let st = h.state("web");
    assert_eq!(st["version"], "2");
    assert_eq!(st["last_result"], "ok");
    assert_eq!(st["gen"], "1");
    assert_eq!(st["last_gen"], "1");
    assert_eq!(st["compose"], "v2");
    assert_eq!(st["end"], "1");
    assert!(st["attempt"].ends_with(".web"), "{st:?}");
    assert!(!st.contains_key("prev_images"), "{st:?}");
    assert_eq!(h.gen_numbers("web"), [1]);
    assert_eq!(h.gen_images("web", 1).as_deref(), Some(V1));
    h.no_leftovers("web");
    assert!(
        h.calls()
            .iter()
            .any(|c| c == "docker compose -p web build --pull --no-cache")
    );
    // the stage and the old copy are gone, the manifest lists what shipped
    let files = std::fs::read_to_string(h.state_dir().join("web.files")).unwrap();
    assert!(files.contains("f conf/a.conf"), "{files}");
    assert!(!h.path("stacks/.web.rbuild-old").exists());
    assert!(!h.path("stacks/.web.rbuild-stage").exists());
    assert_eq!(r.code, Some(0));
}

#[test]
fn a_second_apply_keeps_the_data_and_the_previous_generation() {
    let mut h = built();
    h.edit("web", "app.txt", "v2");
    h.apply().expect_done("web", "rebuilt");
    assert_eq!(h.read("web", "app.txt").as_deref(), Some("v2"));
    assert_eq!(h.read("web", "data/db.txt").as_deref(), Some("precious"));
    // generation 1 is kept beside the one that runs
    assert_eq!(h.gen_numbers("web"), [1, 2]);
    assert_eq!(h.state("web")["gen"], "2");
    assert_eq!(h.gen_images("web", 1).as_deref(), Some(V1));
    assert_ne!(h.running("web"), V1);
    assert_eq!(h.state_images("web"), h.running("web"));
    h.no_leftovers("web");
}

#[test]
fn a_file_shipped_before_and_no_more_is_removed() {
    let mut h = Host::new().stack("web", &[("old.txt", "o")]);
    h.apply().expect_done("web", "rebuilt");
    h.get("web").files.retain(|(p, _)| p != "old.txt");
    h.apply().expect_done("web", "rebuilt");
    assert_eq!(h.read("web", "old.txt"), None);
}

#[test]
fn compose_v1_builds_with_docker_compose() {
    let h = Host::new()
        .stack("web", &[("app.txt", "v1")])
        .compose(ComposePref::V1);
    h.apply()
        .expect_done("web", "rebuilt")
        .expect_detail("web", "with compose v1");
    assert!(
        h.calls()
            .iter()
            .any(|c| c.starts_with("docker-compose -p web pull --ignore-pull-failures"))
    );
    assert!(h.tag("web_app").is_some());
}

#[test]
fn a_failed_build_leaves_files_data_and_containers_as_they_were() {
    let mut h = built();
    h.edit("web", "app.txt", "v2");
    h.fake("fail/build", "ERROR: failed to solve: boom");
    let r = h.apply();
    r.expect_done("web", "failed").expect_detail(
        "web",
        "build failed; the running containers were left as they were",
    );
    assert!(
        r.events
            .iter()
            .any(|e| matches!(e, Event::Log { text, .. } if text.contains("boom")))
    );
    assert_eq!(h.read("web", "app.txt").as_deref(), Some("v1"));
    assert_eq!(h.read("web", "data/db.txt").as_deref(), Some("precious"));
    assert_eq!(h.running("web"), V1);
    let st = h.state("web");
    assert_eq!(st["last_result"], "failed");
    assert_eq!(st["failed_hash"], h.stacks[0].hash());
    // the failed attempt's output is kept for `logs`
    let logs = h.logs("web");
    assert!(
        logs.events
            .iter()
            .any(|e| matches!(e, Event::Log { text, .. } if text.contains("boom"))),
        "{logs}"
    );
}

#[test]
fn a_build_past_its_timeout_is_named() {
    let mut h = built();
    h.edit("web", "app.txt", "v2");
    h.fake("fail/build", "");
    h.fake("fail/build.rc", "124");
    h.apply()
        .expect_done("web", "failed")
        .expect_cause("web", Cause::Timeout)
        .expect_detail("web", "took longer than 5s");
}

#[test]
fn a_failed_pull_leaves_what_runs() {
    let mut h = Host::new().stack("web", &[("app.txt", "v1")]);
    h.services("app build - always none\ndb image postgres:16 always none");
    h.apply().expect_done("web", "rebuilt");
    let before = h.running("web");
    h.edit("web", "app.txt", "v2");
    h.fake("fail/pull", "manifest unknown");
    h.apply()
        .expect_done("web", "failed")
        .expect_detail("web", "pull failed");
    assert_eq!(h.running("web"), before);
    assert_eq!(h.read("web", "app.txt").as_deref(), Some("v1"));
    // what the failed build made is gone; the name points at what runs
    assert_eq!(h.tag("web-app").as_deref(), Some("sha256:i1"));
    assert!(
        !h.images().contains(&"sha256:i4".to_owned()),
        "{:?}",
        h.images()
    );
}

#[test]
fn a_pull_past_its_timeout_is_named() {
    let mut h = built();
    h.edit("web", "app.txt", "v2");
    h.fake("fail/pull", "");
    h.fake("fail/pull.rc", "124");
    h.apply()
        .expect_done("web", "failed")
        .expect_cause("web", Cause::Timeout);
}

#[test]
fn a_failed_gate_rolls_back_to_the_previous_images_files_and_data() {
    let mut h = built();
    h.edit("web", "app.txt", "v2");
    // only the new generation's container is unhealthy
    h.fake_times("health/app", "unhealthy", 1);
    let r = h.apply();
    r.expect_done("web", "rolled_back")
        .expect_detail("web", "not healthy: app(unhealthy)");
    assert!(r.steps("web").contains(&"rollback"));
    assert_eq!(h.running("web"), V1, "the old images run again");
    assert_eq!(h.state_images("web"), V1);
    assert_eq!(h.read("web", "app.txt").as_deref(), Some("v1"));
    assert_eq!(h.read("web", "data/db.txt").as_deref(), Some("precious"));
    assert_eq!(h.tag("web-app").as_deref(), Some("sha256:i1"));
    assert_eq!(h.state("web")["last_result"], "failed");
}

#[test]
fn a_crash_in_the_gate_rolls_back() {
    let mut h = built();
    h.edit("web", "app.txt", "v2");
    h.fake_times("crash/app", "3", 1);
    h.apply()
        .expect_done("web", "rolled_back")
        .expect_detail("web", "app(restarting)");
    assert_eq!(h.running("web"), V1);
}

#[test]
fn a_rollback_that_fails_too_records_a_broken_stack() {
    let mut h = built();
    h.edit("web", "app.txt", "v2");
    h.fake_times("health/app", "unhealthy", 2);
    h.apply().expect_done("web", "failed").expect_detail(
        "web",
        "rollback failed too: generation 1 could not be put back: previous images not healthy",
    );
    assert_eq!(h.state("web")["last_result"], "broken");
    // the check sees it broken: due
    let c = h.check(&[("web", &h.stacks[0].hash(), 3600)], true, false);
    assert!(c.events.contains(&Event::End { hold: true }), "{c}");
}

#[test]
fn an_up_that_fails_rolls_back() {
    let mut h = built();
    h.edit("web", "app.txt", "v2");
    h.fake_times("fail/up", "Error response from daemon: driver failed programming external connectivity: Bind for 0.0.0.0:80 failed: port is already allocated", 1);
    h.apply()
        .expect_done("web", "rolled_back")
        .expect_detail("web", "a port it publishes is taken");
    assert_eq!(h.running("web"), V1);
}

#[test]
fn an_up_past_its_timeout_rolls_back() {
    let mut h = built();
    h.edit("web", "app.txt", "v2");
    h.fake_times("fail/up", "", 1);
    h.fake("fail/up.rc", "124");
    h.apply()
        .expect_done("web", "rolled_back")
        .expect_detail("web", "up took longer than 5s");
}

#[test]
fn a_plain_up_failure_rolls_back() {
    let mut h = built();
    h.edit("web", "app.txt", "v2");
    h.fake_times("fail/up", "something broke", 1);
    h.apply()
        .expect_done("web", "rolled_back")
        .expect_detail("web", "up failed");
}

#[test]
fn a_service_still_starting_at_the_up_timeout_fails_its_gate() {
    let mut h = built();
    h.edit("web", "app.txt", "v2");
    h.get("web").up_timeout = 0;
    h.fake_times("health/app", "starting", 1);
    h.apply()
        .expect_done("web", "rolled_back")
        .expect_detail("web", "not healthy within the up timeout: app(starting)");
}

#[test]
fn a_failing_first_build_stops_its_containers() {
    let h = Host::new().stack("web", &[("app.txt", "v1")]);
    h.fake("health/app", "unhealthy");
    h.apply()
        .expect_done("web", "failed")
        .expect_detail("web", "nothing to roll back to (first build)");
    assert_eq!(h.running("web"), "-");
    assert!(h.containers().iter().all(|c| c.status == "exited"));
    // its images stay while its stopped containers use them
    assert_eq!(h.state("web")["leftover"], V1);
    // and go after the next rebuild that passes
    h.unfake("health/app");
    let mut h = h;
    h.edit("web", "app.txt", "v2");
    h.apply().expect_done("web", "rebuilt");
}

/// A first ship has no old copy to go back to: its files stay (its
/// containers may have written there) and the manifest names them
/// (PROTOCOL.md, "Shipping"; the script before issue 18 removed them).
#[test]
fn a_first_build_failing_to_build_keeps_its_files_and_the_manifest_names_them() {
    let h = Host::new().stack("web", &[("app.txt", "v1")]);
    h.fake("fail/build", "nope");
    h.apply().expect_done("web", "failed");
    assert!(h.containers().is_empty());
    assert_eq!(h.read("web", "app.txt").as_deref(), Some("v1"));
    let files = std::fs::read_to_string(h.state_dir().join("web.files")).unwrap();
    assert!(files.contains("f app.txt"), "{files}");
    let st = h.state("web");
    assert_eq!(st["last_result"], "failed");
    assert_eq!(st["gen"], "-");
    h.no_leftovers("web");
    // the next ship replaces them as rbuild's own
    h.unfake("fail/build");
    h.apply().expect_done("web", "rebuilt");
    h.no_leftovers("web");
}

#[test]
fn start_mode_ups_what_is_there() {
    let mut h = built();
    h.stop_all();
    h.get("web").mode = StackMode::Start;
    let calls = h.calls().len();
    h.apply()
        .expect_done("web", "started")
        .expect_detail("web", "it was not running");
    assert_eq!(h.running("web"), V1);
    assert!(!h.calls()[calls..].iter().any(|c| c.contains(" build ")));
}

#[test]
fn start_mode_that_fails_records_broken() {
    let mut h = built();
    h.stop_all();
    h.get("web").mode = StackMode::Start;
    h.fake("fail/up", "boom");
    h.apply()
        .expect_done("web", "failed")
        .expect_detail("web", "it was not running, and up failed");
    assert_eq!(h.state("web")["last_result"], "broken");
    h.unfake("fail/up");
    h.fake("health/app", "unhealthy");
    h.apply()
        .expect_done("web", "failed")
        .expect_detail("web", "once up it is not healthy");
}

#[test]
fn build_mode_rebuilds_the_files_on_the_host() {
    let mut h = built();
    h.get("web").mode = StackMode::Build;
    let r = h.apply();
    r.expect_done("web", "rebuilt");
    assert!(!r.steps("web").contains(&"ship"));
}

#[test]
fn a_live_run_holding_the_lock_is_reported_locked() {
    let h = built();
    let holder = h.hold_lock("web");
    let pid = holder.pid();
    let r = h.apply();
    r.expect_done("web", "locked");
    assert!(r.stdout.contains(&format!("done web locked {pid}")), "{r}");
    // the check reports it too
    let c = h.check(&[("web", "x", 60)], false, false);
    assert_eq!(c.recorded("web").locked_by, Some(pid.to_string()));
    // and the holder's lock is its own still
    assert!(
        std::fs::read_to_string(h.state_dir().join("web.lock"))
            .unwrap()
            .starts_with(&format!("{pid} "))
    );
    // the holder dies: the kernel lets go, nothing is taken over
    drop(holder);
    let c = h.check(&[("web", "x", 60)], false, false);
    assert_eq!(c.recorded("web").locked_by, None);
    let r = h.apply();
    r.expect_done("web", "rebuilt");
    assert!(!r.stdout.contains("stale lock"), "{r}");
    h.no_leftovers("web");
}

/// A lock file a killed run left naming it: no lock (flock's holder is
/// gone), nothing to take over.
#[test]
fn a_dead_runs_lock_file_is_no_lock() {
    let h = built();
    std::fs::write(h.state_dir().join("web.lock"), "999999999 -\n").unwrap();
    let c = h.check(&[("web", "x", 60)], false, false);
    assert_eq!(c.recorded("web").locked_by, None);
    let r = h.apply();
    r.expect_done("web", "rebuilt");
    assert!(!r.stdout.contains("stale lock"), "{r}");
    h.no_leftovers("web");
}

/// The takeover exists only for an older rbuild's lock directory: taken
/// over once its pid is gone, held while it lives.
#[test]
fn an_older_rbuilds_lock_directory_is_taken_over_once_its_holder_is_gone() {
    let h = built();
    let lock = h.state_dir().join("web.lock");
    std::fs::remove_file(&lock).unwrap();
    std::fs::create_dir(&lock).unwrap();
    std::fs::write(lock.join("owner"), format!("{} -", std::process::id())).unwrap();
    let r = h.apply();
    r.expect_done("web", "locked");
    assert!(
        r.stdout
            .contains(&format!("done web locked {}", std::process::id())),
        "{r}"
    );
    h.rollback("web").expect_done("web", "locked");
    std::fs::write(lock.join("owner"), "999999999 -").unwrap();
    h.apply()
        .expect_done("web", "rebuilt")
        .expect_note("web", "stale lock recovered");
    assert!(lock.is_file(), "a flock'd file from now on");
    h.no_leftovers("web");
}

/// A host without flock(1) cannot lock a stack: each stack fails, saying so.
#[test]
fn a_host_without_flock_fails_each_stack_saying_so() {
    let h = built().without(&["flock"]);
    h.apply()
        .expect_done("web", "failed")
        .expect_detail("web", "`flock` is not on this host");
    h.rollback("web")
        .expect_done("web", "failed")
        .expect_detail("web", "`flock` is not on this host");
    assert_eq!(h.read("web", "app.txt").as_deref(), Some("v1"));
}

#[test]
fn an_engine_that_is_down_changes_nothing() {
    let mut h = built();
    h.edit("web", "app.txt", "v2");
    h.fake("engine_down", "");
    h.apply()
        .expect_done("web", "failed")
        .expect_cause("web", Cause::Engine)
        .expect_detail("web", "Cannot connect to the Docker daemon");
    assert_eq!(h.read("web", "app.txt").as_deref(), Some("v1"));
}

#[test]
fn no_docker_and_no_compose_are_fatal() {
    let h = built();
    std::fs::remove_file(h.path("bin/docker")).unwrap();
    std::fs::remove_file(h.path("bin/docker-compose")).unwrap();
    // (a docker on this machine's own PATH is not in the script's)
    if Path::new("/usr/bin/docker").exists() {
        return;
    }
    h.apply()
        .expect_fatal("is not in the PATH", Some(Cause::NoDocker));
    let h = Host::new()
        .stack("web", &[("app.txt", "v1")])
        .compose(ComposePref::V1);
    std::fs::remove_file(h.path("bin/docker-compose")).unwrap();
    if Path::new("/usr/bin/docker-compose").exists() {
        return;
    }
    h.apply().expect_fatal("neither", Some(Cause::NoCompose));
}

#[test]
fn hooks_run_in_the_stack_dir_and_a_failing_before_is_a_failed_build() {
    let mut h = built();
    h.edit("web", "app.txt", "v2");
    h.get("web").hooks = Hooks {
        before: Some("echo \"$RBUILD_STACK $COMPOSE_PROJECT_NAME\" > before.out".into()),
        after: Some("echo after; exit 3".into()),
        ..Hooks::default()
    };
    let r = h.apply();
    r.expect_done("web", "rebuilt")
        .expect_cause("web", Cause::AfterHook)
        .expect_detail("web", "the after hook failed (exit status 3)");
    assert_eq!(h.read("web", "before.out").as_deref(), Some("web web\n"));
    h.edit("web", "app.txt", "v3");
    h.get("web").hooks = Hooks {
        before: Some("exit 7".into()),
        after: None,
        ..Hooks::default()
    };
    let before = h.running("web");
    h.apply()
        .expect_done("web", "failed")
        .expect_detail("web", "the before hook failed (exit status 7)");
    assert_eq!(h.running("web"), before);
}

#[test]
fn remove_images_and_prune() {
    let mut h = built();
    h.edit("web", "app.txt", "v2");
    h.remove_images = true;
    h.prune = Some(0);
    let r = h.apply();
    r.expect_done("web", "rebuilt")
        .expect_note("web", "removed image sha256:i1")
        .expect_note("-", "pruned the build cache: 1.5MB reclaimed");
    assert_eq!(h.gen_numbers("web"), [2]);
    assert!(!h.images().contains(&"sha256:i1".to_owned()));
    // a prune with an age, and one that freed nothing: no note
    h.fake("prune_out", "Total reclaimed space: 0B");
    h.prune = Some(3600);
    h.edit("web", "app.txt", "v3");
    let r = h.apply();
    assert!(
        h.calls()
            .iter()
            .any(|c| c.contains("builder prune -f --filter until=3600s"))
    );
    assert!(!r.stdout.contains("pruned"), "{r}");
}

#[test]
fn the_generation_before_the_previous_one_is_removed() {
    let mut h = built();
    h.edit("web", "app.txt", "v2");
    h.apply().expect_done("web", "rebuilt");
    h.edit("web", "app.txt", "v3");
    h.apply()
        .expect_done("web", "rebuilt")
        .expect_note("web", "removed image sha256:i1");
}

#[test]
fn an_image_in_use_is_left_over_and_tried_again() {
    let mut h = built();
    h.edit("web", "app.txt", "v2");
    h.remove_images = true;
    h.fake_times("fail/rm", "conflict: image is being used", 1);
    h.apply().expect_done("web", "rebuilt");
    assert_eq!(h.state("web")["leftover"], V1);
    h.edit("web", "app.txt", "v3");
    h.apply()
        .expect_done("web", "rebuilt")
        .expect_note("web", "removed image sha256:i1");
}

#[test]
fn zero_downtime_replaces_beside_the_old_containers() {
    let mut h = built();
    h.edit("web", "app.txt", "v2");
    h.get("web").options.zero_downtime = vec!["app".into()];
    h.apply()
        .expect_done("web", "rebuilt")
        .expect_note("web", "app replaced beside its old containers");
    assert!(h.calls().iter().any(|c| c.contains("--scale app=2 app")));
    // a new one that fails its gate leaves the old one running
    h.edit("web", "app.txt", "v3");
    let before = h.running("web");
    h.fake_times("health/app", "unhealthy", 1);
    h.apply()
        .expect_done("web", "rolled_back")
        .expect_detail("web", "the old ones kept running");
    assert_eq!(h.running("web"), before);
    // an up that fails
    h.fake_times("fail/scale", "boom", 1);
    h.apply()
        .expect_done("web", "rolled_back")
        .expect_detail("web", "up of app beside its old containers failed");
}

#[test]
fn one_shots_must_exit_zero() {
    let mut h = built();
    h.services("app build - always none\nmigrate build - no none");
    h.edit("web", "app.txt", "v2");
    h.get("web").options.one_shots = vec!["migrate".into()];
    h.fake_times("crash/migrate", "0", 1);
    h.apply().expect_done("web", "rebuilt");
    h.edit("web", "app.txt", "v3");
    h.fake_times("crash/migrate", "2", 1);
    h.apply()
        .expect_done("web", "rolled_back")
        .expect_detail("web", "migrate(exited:2)");
}

#[test]
fn a_directory_rbuild_did_not_make_is_refused_unless_adopted() {
    let mut h = Host::new().stack("web", &[("app.txt", "v1")]);
    h.data("web", "mine.txt", "user's");
    h.apply()
        .expect_done("web", "failed")
        .expect_cause("web", Cause::NotOurs);
    h.get("web").adopt = true;
    h.get("web").options.dir_mode = Some(0o750);
    h.apply().expect_done("web", "rebuilt");
    assert_eq!(h.read("web", "mine.txt").as_deref(), Some("user's"));
}

#[test]
fn a_state_file_of_another_version_is_left_alone() {
    let h = built();
    h.write_state("web", "version=9\nhash=x\n");
    h.apply()
        .expect_done("web", "failed")
        .expect_detail("web", "has version 9");
    assert_eq!(h.state("web")["version"], "9");
    h.rollback("web")
        .expect_done("web", "failed")
        .expect_detail("web", "version 9");
}

#[test]
fn the_payload_is_checked_before_anything_is_unpacked() {
    let h = built();
    h.apply_with(|a| a.payload.as_mut().unwrap().size += 1)
        .expect_fatal("arrived cut", Some(Cause::Payload));
    h.apply_with(|a| a.payload.as_mut().unwrap().sha256 = "00".repeat(32))
        .expect_fatal("arrived changed", Some(Cause::Payload));
    assert_eq!(h.read("web", "app.txt").as_deref(), Some("v1"));
    // and its temp file is gone
    let left: Vec<_> = std::fs::read_dir(h.state_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".payload"))
        .collect();
    assert!(left.is_empty());
}

#[test]
fn a_protocol_mismatch_and_an_unknown_command_are_fatal() {
    let h = Host::new();
    let r = h.run_script(
        script::script(),
        &[
            "rbuild".into(),
            "999".into(),
            TOKEN.into(),
            "apply".into(),
            String::new(),
        ],
        vec![],
    );
    assert!(r.stdout.contains("fatal protocol 999"), "{r}");
    let proto = rbuild::remote::PROTOCOL.to_string();
    let r = h.run_script(
        script::script(),
        &[
            "rbuild".into(),
            proto,
            TOKEN.into(),
            "frob".into(),
            String::new(),
        ],
        vec![],
    );
    r.expect_fatal("unknown command frob", None);
}

#[test]
fn an_engine_this_user_may_not_use_is_named() {
    let h = built();
    h.fake(
        "engine_down",
        "permission denied while trying to connect to the Docker daemon socket at unix:///var/run/docker.sock",
    );
    h.apply()
        .expect_done("web", "failed")
        .expect_cause("web", Cause::EngineDenied);
}

#[test]
fn profiles_and_the_auto_compose_are_passed_to_compose() {
    let h = Host::new()
        .stack("web", &[("app.txt", "v1")])
        .compose(ComposePref::Auto);
    h.apply_with(|a| a.stacks[0].place.profiles = vec!["debug".into()])
        .expect_done("web", "rebuilt");
}

#[test]
fn containers_created_or_paused_fail_the_gate() {
    let mut h = built();
    h.edit("web", "app.txt", "v2");
    h.get("web").up_timeout = 0;
    h.fake_times("status/app", "created", 1);
    h.apply()
        .expect_done("web", "rolled_back")
        .expect_detail("web", "app(created)");
    h.edit("web", "app.txt", "v3");
    h.fake_times("status/app", "paused", 1);
    h.apply()
        .expect_done("web", "rolled_back")
        .expect_detail("web", "app(paused)");
    // a service that stops (exit 0) but is to be restarted is not up yet
    h.edit("web", "app.txt", "v4");
    h.fake_times("crash/app", "0", 1);
    h.apply()
        .expect_done("web", "rolled_back")
        .expect_detail("web", "app(exited:0)");
}

#[test]
fn a_one_shot_still_running_at_the_up_timeout_fails_its_gate() {
    let mut h = Host::new().stack("web", &[("app.txt", "v1")]);
    h.services("app build - always none\nmigrate build - no none");
    h.apply().expect_done("web", "rebuilt");
    h.edit("web", "app.txt", "v2");
    h.get("web").up_timeout = 0;
    h.get("web").options.one_shots = vec!["migrate".into()];
    h.fake_times("status/migrate", "running", 1);
    h.apply()
        .expect_done("web", "rolled_back")
        .expect_detail("web", "migrate(one-shot, still running)");
}

#[test]
fn a_stack_missing_from_the_payload_is_not_unpacked() {
    let h = built();
    h.apply_with(|a| {
        a.stacks[0].place.name = "ghost".into();
        a.stacks[0].place.dir = Some(h.dir("ghost").to_str().unwrap().into());
    })
    .expect_done("ghost", "failed")
    .expect_detail("ghost", "could not unpack the stack");
}

#[test]
fn a_dir_group_that_does_not_exist_fails_the_ship() {
    let mut h = built();
    h.edit("web", "app.txt", "v2");
    h.get("web").options.dir_group = Some("no-such-group-rbuild".into());
    h.get("web").options.lock_wait = 1;
    h.apply()
        .expect_done("web", "failed")
        .expect_detail("web", "could not give");
    assert_eq!(h.read("web", "app.txt").as_deref(), Some("v1"));
}

#[test]
fn a_hook_past_the_build_timeout_is_stopped() {
    let mut h = built();
    h.edit("web", "app.txt", "v2");
    h.get("web").hooks.before = Some("exit 124".into());
    h.apply()
        .expect_done("web", "failed")
        .expect_cause("web", Cause::Timeout)
        .expect_detail("web", "the before hook took longer than 5s");
}

#[test]
fn a_rebuild_that_makes_the_same_images_keeps_the_previous_generation() {
    let mut h = Host::new().stack("web", &[("app.txt", "v1")]);
    h.services("app build - always none");
    h.apply().expect_done("web", "rebuilt");
    h.edit("web", "app.txt", "v2");
    h.apply().expect_done("web", "rebuilt");
    assert_eq!(h.gen_numbers("web"), [1, 2]);
    // only pulled images, none new upstream: generation 3, then the same
    // images again: generation 3 built again, 2 still kept
    h.services("db image postgres:16 always none");
    h.apply()
        .expect_done("web", "rebuilt")
        .expect_detail("web", "generation 3");
    h.get("web").mode = StackMode::Build;
    let g3 = h.gen_images("web", 3);
    for _ in 0..2 {
        h.apply()
            .expect_done("web", "rebuilt")
            .expect_detail("web", "generation 3,");
        assert_eq!(h.gen_numbers("web"), [2, 3]);
        assert_eq!(h.gen_images("web", 3), g3);
        assert_eq!(h.state("web")["last_gen"], "3");
    }
}

#[test]
fn zero_downtime_failures_leave_the_old_containers() {
    let mut h = built();
    h.get("web").options.zero_downtime = vec!["app".into()];
    h.edit("web", "app.txt", "v2");
    h.fake_times("fail/scale", "", 1);
    h.fake("fail/scale.rc", "124");
    h.apply()
        .expect_done("web", "rolled_back")
        .expect_detail("web", "took longer than 5s (up_timeout)");
    h.fake_times("fail/scale", "", 1);
    h.fake("fail/scale.rc", "0");
    h.apply()
        .expect_done("web", "rolled_back")
        .expect_detail("web", "started no new one");
    h.fake_times("fail/stop", "no", 1);
    h.fake("fail/stop.rc", "1");
    h.apply()
        .expect_done("web", "rebuilt")
        .expect_note("web", "its old containers could not all be removed");
}

#[test]
fn start_mode_with_a_port_taken_says_so() {
    let mut h = built();
    h.stop_all();
    h.get("web").mode = StackMode::Start;
    h.fake(
        "fail/up",
        "Error starting userland proxy: listen tcp4 0.0.0.0:80: bind: address already in use",
    );
    h.apply()
        .expect_done("web", "failed")
        .expect_detail("web", "a port it publishes is taken");
}

#[test]
fn the_payload_is_checked_with_whichever_sha256_tool_the_host_has() {
    for (hidden, ok) in [
        (&["sha256sum"][..], true),
        (&["sha256sum", "shasum"], true),
        (&["sha256sum", "shasum", "openssl"], false),
    ] {
        let h = Host::new()
            .stack("web", &[("app.txt", "v1")])
            .without(hidden);
        let r = h.apply();
        if ok {
            r.expect_done("web", "rebuilt");
        } else {
            r.expect_fatal("none of", Some(Cause::NoSha256));
        }
    }
}

#[test]
fn a_host_without_docker_or_compose() {
    let h = Host::new()
        .stack("web", &[("app.txt", "v1")])
        .without(&["docker", "docker-compose"]);
    h.apply()
        .expect_fatal("is not in the PATH", Some(Cause::NoDocker));
    let r = h.check(&[("web", "h", 60)], false, true);
    assert!(r.stdout.contains("caps cause=no_docker"), "{r}");
    // neither flavour: no plugin where the CLI looks (this machine may have
    // one), `docker compose version` fails, no docker-compose
    let plugin = [
        "/usr/local/lib",
        "/usr/local/libexec",
        "/usr/lib",
        "/usr/libexec",
    ]
    .iter()
    .any(|d| {
        Path::new(d)
            .join("docker/cli-plugins/docker-compose")
            .exists()
    });
    let h = Host::new()
        .stack("web", &[("app.txt", "v1")])
        .compose(ComposePref::Auto)
        .without(&["docker-compose"]);
    h.fake("fail/version", "docker: 'compose' is not a docker command.");
    let r = h.apply();
    if !plugin {
        r.expect_fatal("neither", Some(Cause::NoCompose));
    }
    // an explicit v1 is taken at its word: without docker-compose, its
    // build fails (no `no_compose`)
    let h = Host::new()
        .stack("web", &[("app.txt", "v1")])
        .compose(ComposePref::V1)
        .without(&["docker-compose"]);
    h.apply()
        .expect_done("web", "failed")
        .expect_detail("web", "build failed");
}

#[test]
fn the_dry_run_judges_the_engine_by_its_socket() {
    let h = built().env("DOCKER_HOST", "unix:///nonexistent/docker.sock");
    let r = h.check(&[("web", "h", 60)], false, true);
    assert!(r.stdout.contains("caps cause=engine"), "{r}");
    let h = built().env("DOCKER_HOST", "tcp://127.0.0.1:2375");
    let r = h.check(&[("web", "h", 60)], false, true);
    assert!(r.stdout.contains("caps ok"), "{r}");
}

#[test]
fn a_state_directory_that_cannot_be_made_is_fatal() {
    let h = Host::new().stack("web", &[("app.txt", "v1")]);
    std::fs::write(h.path("file"), "").unwrap();
    h.apply_with(|a| a.state_dir = Some(h.path("file/state").to_str().unwrap().into()))
        .expect_fatal("could not create the state directory", None);
}

#[test]
fn a_lock_that_cannot_be_made_fails_the_stack() {
    let h = built();
    // a link to where no file can be made
    std::fs::remove_file(h.state_dir().join("web.lock")).unwrap();
    std::os::unix::fs::symlink(h.path("nowhere/web.lock"), h.state_dir().join("web.lock")).unwrap();
    h.apply()
        .expect_done("web", "failed")
        .expect_detail("web", "could not make the stack's lock");
    h.rollback("web")
        .expect_done("web", "failed")
        .expect_detail("web", "could not make the stack's lock");
}

#[test]
fn an_apply_leaves_a_state_file_that_is_not_a_file_alone() {
    let h = Host::new().stack("web", &[("app.txt", "v1")]);
    std::fs::create_dir(h.state_dir().join("web.state")).unwrap();
    h.apply()
        .expect_done("web", "failed")
        .expect_detail("web", "is not a regular file");
}

#[test]
fn a_failed_first_build_twice_keeps_its_leftovers_once() {
    let mut h = Host::new().stack("web", &[("app.txt", "v1")]);
    h.fake("health/app", "unhealthy");
    h.apply().expect_done("web", "failed");
    h.edit("web", "app.txt", "v2");
    h.apply().expect_done("web", "failed");
    h.get("web").mode = StackMode::Build;
    h.apply().expect_done("web", "failed");
    let left = h.state("web")["leftover"].clone();
    assert_eq!(left.matches("app=").count(), left.split(',').count());
}

#[test]
fn the_check_on_odd_state_and_locks() {
    let h = Host::new();
    // a fresh host: no clock left by an apply
    let r = h.check(&[("web", "h", 60)], false, false);
    assert_eq!(r.recorded("web").state, Ok(None));
    // a build time that is no number: due
    h.write_state("web", "version=1\nhash=h\nbuilt_at=soon\nlast_result=ok\n");
    let r = h.check(&[("web", "h", 60)], true, false);
    assert!(r.events.contains(&Event::End { hold: true }), "{r}");
    // a lock whose owner names no pid
    let lock = h.state_dir().join("web.lock");
    std::fs::create_dir(&lock).unwrap();
    std::fs::write(lock.join("owner"), "who -\n").unwrap();
    let r = h.check(&[("web", "h", 60)], false, false);
    assert_eq!(r.recorded("web").locked_by.as_deref(), Some("unknown"));
    // a lock of another boot is no lock
    std::fs::write(
        lock.join("owner"),
        format!("{} other-boot\n", std::process::id()),
    )
    .unwrap();
    let r = h.check(&[("web", "h", 60)], false, false);
    assert_eq!(r.recorded("web").locked_by, None);
    // a lock with no owner, made minutes ago: its maker died at once
    std::fs::remove_file(lock.join("owner")).unwrap();
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(600);
    std::fs::File::open(&lock)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let r = h.check(&[("web", "h", 60)], false, false);
    assert_eq!(r.recorded("web").locked_by, None);
}

#[test]
fn status_words_each_health() {
    let h = Host::new().stack("web", &[("app.txt", "v1")]);
    h.services("app build - always healthy\ndb image postgres:16 always starting");
    h.get_status_fixture();
    let r = h.status();
    assert!(r.stdout.contains("service web app running healthy"), "{r}");
    assert!(r.stdout.contains("service web db running starting"), "{r}");
}

#[test]
fn the_gate_watches_the_settle_window() {
    for (change, want) in [
        ("", None),
        (
            r#"$3 == "app" && $6 == "running" { $11 = "later" } { print }"#,
            Some("not steady within 2s of coming up: app(restarted)"),
        ),
        (
            r#"$3 == "app" && $6 == "running" { $7 = "unhealthy" } { print }"#,
            Some("not healthy within 2s of coming up: app(unhealthy)"),
        ),
        (
            r#"$3 == "app" && $6 == "running" { $7 = "starting" } { print }"#,
            Some("not steady within 2s of coming up: app(starting)"),
        ),
    ] {
        let mut h = built();
        h.shim(&["date", "sleep"]);
        h.edit("web", "app.txt", "v2");
        h.get("web").settle = 2;
        if !change.is_empty() {
            h.services("app build - always healthy");
            h.on_sleep(change);
        }
        let r = h.apply();
        match want {
            None => {
                r.expect_done("web", "rebuilt");
            }
            Some(w) => {
                r.expect_done("web", "rolled_back").expect_detail("web", w);
            }
        }
    }
}

#[test]
fn lock_wait_polls_a_live_holder() {
    let mut h = built();
    let holder = h.hold_lock("web");
    let pid = holder.pid();
    h.get("web").options.lock_wait = 1;
    let r = h.apply();
    r.expect_done("web", "locked");
    assert!(
        r.stdout
            .contains(&format!("step web waiting for the lock (pid {pid})")),
        "{r}"
    );
    // a holder that lets go while it waits
    let killer = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        drop(holder);
    });
    h.get("web").options.lock_wait = 30;
    let r = h.apply();
    killer.join().unwrap();
    r.expect_done("web", "rebuilt");
    assert!(r.stdout.contains("waiting for the lock"), "{r}");
    h.no_leftovers("web");
}

#[test]
fn a_full_disk_is_named() {
    // unpacking
    let mut h = built();
    h.edit("web", "app.txt", "v2");
    h.shim(&["tar", "mv", "cat"]);
    h.fake("fail/tar", "*");
    h.apply()
        .expect_done("web", "failed")
        .expect_cause("web", Cause::NoSpace);
    h.unfake("fail/tar");
    // the state file
    h.fake("fail/mv", "*.state.tmp.*");
    let before = std::fs::read_to_string(h.state_dir().join("web.state")).unwrap();
    h.apply()
        .expect_done("web", "failed")
        .expect_cause("web", Cause::NoSpace)
        .expect_detail("web", "rebuilt, but the state file in")
        .expect_detail("web", "could not be written")
        .expect_detail("web", "generation 1 runs again");
    // the old state file is whole and names what runs
    assert_eq!(
        std::fs::read_to_string(h.state_dir().join("web.state")).unwrap(),
        before
    );
    assert_eq!(h.running("web"), V1);
    assert_eq!(h.state_images("web"), V1);
    h.stop_all();
    h.get("web").mode = StackMode::Start;
    h.apply()
        .expect_done("web", "failed")
        .expect_detail("web", "started, but could not write the state file");
    h.unfake("fail/mv");
    // the payload
    h.get("web").mode = StackMode::Ship;
    h.fake("fail/cat", "");
    h.apply()
        .expect_fatal("could not store the shipped stacks", Some(Cause::NoSpace));
}

#[test]
fn an_apply_cleans_what_dead_runs_left() {
    let h = built();
    let dead = h.state_dir().join(".payload.999999999.tar");
    let odd = h.state_dir().join(".web.state.tmp.abc");
    std::fs::write(&dead, "").unwrap();
    std::fs::write(&odd, "").unwrap();
    h.apply().expect_done("web", "rebuilt");
    assert!(!dead.exists());
    assert!(odd.exists());
}

#[test]
fn a_host_without_timeout_runs_docker_unbounded() {
    let h = Host::new()
        .stack("web", &[("app.txt", "v1")])
        .without(&["timeout"]);
    h.apply().expect_done("web", "rebuilt");
}

#[test]
fn auto_picks_compose_v1_where_v2_does_not_work() {
    let plugin = [
        "/usr/local/lib",
        "/usr/local/libexec",
        "/usr/lib",
        "/usr/libexec",
    ]
    .iter()
    .any(|d| {
        Path::new(d)
            .join("docker/cli-plugins/docker-compose")
            .exists()
    });
    let h = Host::new()
        .stack("web", &[("app.txt", "v1")])
        .compose(ComposePref::Auto);
    h.fake("fail/version", "docker: 'compose' is not a docker command.");
    let r = h.apply();
    r.expect_done("web", "rebuilt");
    if !plugin {
        r.expect_detail("web", "with compose v1");
    }
}

#[test]
fn the_running_containers_cgroups_are_recorded_for_the_check() {
    let h = Host::new().stack("web", &[("app.txt", "v1")]);
    // the containers "are" this test process
    h.fake("pid", &std::process::id().to_string());
    h.apply().expect_done("web", "rebuilt");
    let cg = h.state("web")["cgroups"].clone();
    if cg == "-" {
        return; // no cgroup directory for a process here
    }
    let r = h.check(&[("web", &h.stacks[0].hash(), 3600)], false, false);
    assert_eq!(r.recorded("web").running, Some(true), "{cg}");
}

#[test]
fn data_inside_a_shipped_directory_is_carried() {
    let mut h = Host::new().stack("web", &[("conf/a.conf", "1")]);
    h.apply().expect_done("web", "rebuilt");
    h.data("web", "conf/local.txt", "mine");
    h.edit("web", "conf/a.conf", "2");
    h.apply().expect_done("web", "rebuilt");
    assert_eq!(h.read("web", "conf/local.txt").as_deref(), Some("mine"));
    assert_eq!(h.read("web", "conf/a.conf").as_deref(), Some("2"));
}

#[test]
fn a_pulled_image_that_failed_first_is_tried_again() {
    let mut h = Host::new().stack("web", &[("app.txt", "v1")]);
    h.services("db image postgres:16 always none");
    h.fake_times("health/db", "unhealthy", 2);
    h.apply().expect_done("web", "failed");
    h.edit("web", "app.txt", "v2");
    h.apply().expect_done("web", "failed");
    h.edit("web", "app.txt", "v3");
    h.apply().expect_done("web", "rebuilt");
    assert_eq!(h.state("web")["leftover"], "-");
}

#[test]
fn what_runs_is_read_from_each_container() {
    let mut h = built();
    let docker = |args: &[&str]| {
        let out = Command::new(h.path("bin/docker"))
            .args(args)
            .env("FAKE_DOCKER", h.path("fake"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    };
    // one container created, not run; two of one service and image
    h.services("app build - always none\nworker build - always none");
    h.fake("status/worker", "created");
    docker(&["compose", "-p", "web", "up", "-d"]);
    docker(&[
        "compose",
        "-p",
        "web",
        "up",
        "-d",
        "--no-deps",
        "--no-recreate",
        "--scale",
        "app=2",
        "app",
    ]);
    h.unfake("status/worker");
    h.edit("web", "app.txt", "v2");
    h.apply().expect_done("web", "rebuilt");
}

#[test]
fn a_manual_rollback_puts_the_previous_generation_back() {
    let mut h = built();
    h.edit("web", "app.txt", "v2");
    h.apply().expect_done("web", "rebuilt");
    let v2 = h.running("web");
    h.rollback("web")
        .expect_done("web", "rolled_back")
        .expect_detail("web", "by hand, from generation 2 to generation 1");
    assert_eq!(h.running("web"), V1);
    assert_eq!(h.state_images("web"), V1);
    let st = h.state("web");
    assert_eq!(st["gen"], "1");
    assert_eq!(st["last_result"], "rolled_back");
    // both generations stay kept
    assert_eq!(h.gen_numbers("web"), [1, 2]);
    assert_eq!(h.gen_images("web", 2).as_deref(), Some(v2.as_str()));
    h.no_leftovers("web");
    // again: never forward (PROTOCOL.md: TO `-`), what runs untouched
    h.rollback("web")
        .expect_done("web", "failed")
        .expect_detail("web", "no generation older than 1 is kept");
    assert_eq!(h.running("web"), V1);
    // forward only by --to
    h.rollback_to("web", Some(2))
        .expect_done("web", "rolled_back")
        .expect_detail("web", "from generation 1 to generation 2");
    assert_eq!(h.running("web"), v2);
    assert_eq!(h.state_images("web"), v2);
}

#[test]
fn a_manual_rollback_without_a_previous_generation_fails() {
    let h = built();
    h.rollback("web")
        .expect_done("web", "failed")
        .expect_detail("web", "no generation older than 1 is kept");
    let fresh = Host::new().stack("web", &[]);
    std::fs::remove_dir(fresh.state_dir()).unwrap();
    fresh
        .rollback("web")
        .expect_detail("web", "no state directory");
}

#[test]
fn a_manual_rollback_that_fails_puts_back_what_ran() {
    let mut h = built();
    h.edit("web", "app.txt", "v2");
    h.apply().expect_done("web", "rebuilt");
    let v2 = h.running("web");
    h.fake_times("health/app", "unhealthy", 1);
    h.rollback("web").expect_done("web", "failed").expect_detail(
        "web",
        "rollback to generation 1 failed: previous images not healthy: app(unhealthy); generation 2 runs again",
    );
    assert_eq!(h.running("web"), v2);
    assert_eq!(h.state_images("web"), v2);
    assert_eq!(h.state("web")["gen"], "2");
    h.no_leftovers("web");
    // its up fails
    h.fake_times("fail/up", "boom", 1);
    h.rollback("web")
        .expect_done("web", "failed")
        .expect_detail("web", "up of the previous images failed");
    // both fail
    h.fake_times("health/app", "unhealthy", 2);
    h.rollback("web")
        .expect_done("web", "failed")
        .expect_detail("web", "could not be put back either");
    // the engine is down
    h.fake("engine_down", "");
    h.rollback("web")
        .expect_done("web", "failed")
        .expect_cause("web", Cause::Engine);
}

#[test]
fn a_manual_rollback_while_locked() {
    let h = built();
    let holder = h.hold_lock("web");
    let r = h.rollback("web");
    r.expect_done("web", "locked");
    assert!(
        r.stdout
            .contains(&format!("done web locked {}", holder.pid())),
        "{r}"
    );
}

// ---------------------------------------------------------------- check, status, logs, history

#[test]
fn the_check_reads_each_stacks_state() {
    let h = built();
    let hash = h.stacks[0].hash();
    // up to date: a host with nothing due lets go at once
    let r = h.check(&[("web", &hash, 3600)], true, false);
    let rec = r.recorded("web");
    let st = rec.state.clone().unwrap().unwrap();
    assert_eq!(st.hash.as_deref(), Some(hash.as_str()));
    assert_eq!(st.last_result, Some(rbuild::remote::LastResult::Ok));
    assert_eq!(rec.locked_by, None);
    assert!(r.events.contains(&Event::End { hold: false }), "{r}");
    // due by hash, by period; never built
    for (n, want, period) in [
        ("web", "other", 3600),
        ("web", hash.as_str(), 0),
        ("new", "h", 3600),
    ] {
        let r = h.check(&[(n, want, period)], true, false);
        assert!(r.events.contains(&Event::End { hold: true }), "{r}");
    }
    let r = h.check(&[("new", "h", 60)], false, false);
    assert_eq!(r.recorded("new").state, Ok(None));
    assert!(r.events.contains(&Event::End { hold: false }));
}

#[test]
fn the_check_tells_running_from_cgroup_dirs() {
    let h = built();
    let cg = h.path("cgroup-app");
    std::fs::create_dir(&cg).unwrap();
    h.write_state(
        "web",
        &format!(
            "version=1\nhash=h\nbuilt_at=1\nlast_result=ok\ncgroups=app:{}\n",
            cg.display()
        ),
    );
    let r = h.check(&[("web", "h", 3600)], false, false);
    assert_eq!(r.recorded("web").running, Some(true));
    std::fs::remove_dir(&cg).unwrap();
    let r = h.check(&[("web", "h", 3600)], true, false);
    assert_eq!(r.recorded("web").running, Some(false));
    assert!(r.events.contains(&Event::End { hold: true }));
    // and status says which is gone, without the engine
    h.fake("engine_down", "");
    let r = h.status();
    assert!(
        r.events.iter().any(|e| matches!(e, Event::Service { service, state, .. } if service == "app" && *state == rbuild::remote::ServiceState::Gone)),
        "{r}"
    );
}

#[test]
fn the_check_reports_state_files_it_does_not_read() {
    let h = built();
    h.write_state("web", "version=9\n");
    let r = h.check(&[("web", "h", 60)], false, false);
    assert_eq!(
        r.recorded("web").state,
        Err(rbuild::remote::BadState::Newer("9".into()))
    );
    std::fs::remove_file(h.state_dir().join("web.state")).unwrap();
    std::fs::create_dir(h.state_dir().join("web.state")).unwrap();
    let r = h.check(&[("web", "h", 60)], false, false);
    assert_eq!(
        r.recorded("web").state,
        Err(rbuild::remote::BadState::NotAFile)
    );
    // a build time in the future is no time: due
    std::fs::remove_dir(h.state_dir().join("web.state")).unwrap();
    h.write_state(
        "web",
        "version=1\nhash=h\nbuilt_at=99999999999\nlast_result=ok\n",
    );
    let r = h.check(&[("web", "h", 60)], true, false);
    assert!(r.events.contains(&Event::End { hold: true }), "{r}");
}

#[test]
fn the_dry_runs_check_says_what_a_rebuild_would_fail_on() {
    let h = built();
    let r = h.check(&[("web", "h", 60)], false, true);
    assert!(
        r.events.iter().any(|e| matches!(e, Event::Caps { .. })),
        "{r}"
    );
}

#[test]
fn status_lists_the_service_containers_and_the_last_failure() {
    let mut h = built();
    h.edit("web", "app.txt", "v2");
    h.fake_times("health/app", "unhealthy", 1);
    h.apply().expect_done("web", "rolled_back");
    let r = h.status();
    assert!(
        r.events.iter().any(|e| matches!(e, Event::Service { service, state, .. } if service == "app" && *state == rbuild::remote::ServiceState::Running)),
        "{r}"
    );
    assert!(
        r.events.iter().any(
            |e| matches!(e, Event::History { attempt, .. } if attempt.result == rbuild::remote::AttemptResult::RolledBack)
        ),
        "{r}"
    );
    assert!(r.events.contains(&Event::End { hold: false }));
    // healths and exits as docker ps words them
    h.fake("health/app", "unhealthy");
    h.stop_all();
    h.get("web").mode = StackMode::Start;
    h.apply();
    let r = h.status();
    assert!(
        r.stdout.contains("service web app running unhealthy"),
        "{r}"
    );
    h.stop_all();
    let r = h.status();
    assert!(r.stdout.contains("service web app exited:0 none"), "{r}");
}

#[test]
fn history_lists_every_attempt() {
    let mut h = built();
    h.edit("web", "app.txt", "v2");
    h.fake("fail/build", "x");
    h.apply();
    let r = h.history("web");
    let results: Vec<&str> = r
        .events
        .iter()
        .filter_map(|e| match e {
            Event::History { attempt, .. } => Some(attempt.result.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(results, ["rebuilt", "failed"], "{r}");
    assert!(h.history("none").events.len() == 1);
    let r = h.logs("none");
    assert!(r.events.contains(&Event::End { hold: false }));
}

// ---------------------------------------------------------------- bases

/// A digest made of one hex digit.
fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

fn base(reference: &str, d: &str) -> Base {
    Base {
        reference: reference.into(),
        digest: d.into(),
    }
}

/// BuildKit's plain progress of a build FROM `127.0.0.1:5000/base:1`
/// resolved to digest `d`.
fn buildkit_log(d: &str) -> String {
    format!(
        "#0 building with \"default\" instance using docker driver\n\n\
         #3 [app internal] load metadata for 127.0.0.1:5000/base:1\n#3 DONE 0.0s\n\n\
         #4 [app 1/2] FROM 127.0.0.1:5000/base:1@{d}\n\
         #4 resolve 127.0.0.1:5000/base:1@{d} done\n#4 CACHED\n\n\
         #5 [app 2/2] RUN true\n#5 DONE 0.1s\n"
    )
}

impl Host {
    /// The `bases=` of the state file (`None`: no such line).
    fn bases(&self, name: &str) -> Option<String> {
        self.state(name).get("bases").cloned()
    }

    /// The bases the check reads for the stack (and that it made no docker
    /// call to read them).
    fn checked_bases(&self, name: &str) -> Option<Vec<Base>> {
        let calls = self.calls().len();
        let s = self.stacks.iter().find(|s| s.name == name).unwrap();
        let r = self.check(&[(name, &s.hash(), 3600)], false, false);
        assert_eq!(self.calls().len(), calls, "the check calls no docker");
        r.recorded(name).state.unwrap().unwrap().bases
    }

    /// The `docker image inspect` calls made so far.
    fn image_inspects(&self) -> usize {
        self.calls()
            .iter()
            .filter(|c| c.starts_with("docker image inspect --format"))
            .count()
    }
}

#[test]
fn the_bases_of_a_buildkit_build_are_read_from_its_log() {
    let h = Host::new().stack("web", &[("app.txt", "v1")]);
    h.services("app build - always none\nworker build - always none");
    let (a, b, z) = (digest('a'), digest('b'), digest('0'));
    h.fake(
        "build_out",
        &format!(
            "{}#6 [app] FROM 127.0.0.1:5000/tools:latest\n\
             #6 resolve 127.0.0.1:5000/tools:latest done\n\
             #7 [app stage-1 1/2] RUN echo FROM x@{z}\n#7 0.315 FROM x@{z}\n\
             #8 [worker build 1/3] FROM docker.io/library/busybox:1.36@{b}\n\
             #9 [worker 1/1] FROM 127.0.0.1:5000/base:1@{a}\n#9 CACHED\n",
            buildkit_log(&a)
        ),
    );
    h.apply().expect_done("web", "rebuilt");
    // each FROM's digest once, sorted; a FROM line without one (BuildKit's
    // COPY --from=IMAGE) and a RUN's output are not bases
    let want = format!("127.0.0.1:5000/base:1@{a},docker.io/library/busybox:1.36@{b}");
    assert_eq!(h.bases("web").as_deref(), Some(want.as_str()));
    assert_eq!(h.gens("web")[0][5], want);
    assert_eq!(
        std::fs::read_to_string(h.path("fake/build_progress"))
            .unwrap()
            .trim(),
        "plain"
    );
    // built images have no registry digests: one look at them, nothing more
    assert_eq!(h.image_inspects(), 1);
    let want = Some(vec![
        base("127.0.0.1:5000/base:1", &a),
        base("docker.io/library/busybox:1.36", &b),
    ]);
    assert_eq!(h.checked_bases("web"), want);
    // status: the state line and the generation lines say the same
    let r = h.status();
    assert_eq!(r.recorded("web").state.unwrap().unwrap().bases, want);
    let gens: Vec<_> = r
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Generation { generation, .. } => Some(generation.bases.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(gens, std::slice::from_ref(&want), "{r}");
    // and history's
    let r = h.history("web");
    assert!(
        r.events
            .iter()
            .any(|e| matches!(e, Event::Generation { generation, .. } if generation.bases == want)),
        "{r}"
    );
}

#[test]
fn the_bases_of_a_legacy_build_are_read_from_its_pulls() {
    // compose v1 and the legacy builder: `Step` lines as written (an ARG
    // not substituted), and the pull of each FROM (and COPY --from) image
    let h = Host::new()
        .stack("web", &[("app.txt", "v1")])
        .compose(ComposePref::V1);
    let (a, b, c) = (digest('a'), digest('b'), digest('c'));
    h.fake(
        "build_out",
        &format!(
            "Building app\nStep 1/7 : ARG TAG=1\nStep 2/7 : FROM 127.0.0.1:5000/base:${{TAG}} AS base\n\
             1: Pulling from base\n\x1b[1A\x1b[2Kbd65eb03da13: Pull complete \x1b[1BDigest: {a}\n\
             Status: Image is up to date for 127.0.0.1:5000/base:1\n ---> ec512af1537b\n\
             Step 3/7 : RUN echo Digest: {c}\n ---> Running in a91b8e94fd41\nDigest: {c}\n ---> 169090993221\n\
             Step 4/7 : FROM base\n ---> 169090993221\n\
             Step 5/7 : COPY --from=busybox:latest /bin/true /t\nlatest: Pulling from library/busybox\n\
             Digest: {b}\nStatus: Downloaded newer image for busybox:latest\n ---> acf1ca38213f\n\
             Step 6/7 : FROM 127.0.0.1:5000/pinned@{c}\n127.0.0.1:5000/pinned@{c}: Pulling from pinned\n\
             Digest: {c}\nStatus: Image is up to date for 127.0.0.1:5000/pinned@{c}\n ---> ec512af1537b\n\
             Step 7/7 : CMD [\"true\"]\nSuccessfully built 6ae66a93efa9\n"
        ),
    );
    h.apply()
        .expect_done("web", "rebuilt")
        .expect_detail("web", "compose v1");
    assert_eq!(
        h.checked_bases("web"),
        Some(vec![
            base("127.0.0.1:5000/base:1", &a),
            // pinned: as written, not its digest twice
            base("127.0.0.1:5000/pinned", &c),
            base("busybox:latest", &b),
        ])
    );
}

#[test]
fn a_base_pinned_by_digest_is_recorded_as_written() {
    let h = Host::new().stack("web", &[("app.txt", "v1")]);
    let a = digest('a');
    h.fake(
        "build_out",
        &format!(
            "#4 [app 1/1] FROM 127.0.0.1:5000/base@{a}\n#4 resolve 127.0.0.1:5000/base@{a} done\n"
        ),
    );
    h.apply().expect_done("web", "rebuilt");
    assert_eq!(h.bases("web"), Some(format!("127.0.0.1:5000/base@{a}")));
    assert_eq!(
        h.checked_bases("web"),
        Some(vec![base("127.0.0.1:5000/base", &a)])
    );
}

#[test]
fn a_build_from_nothing_a_registry_holds_records_none() {
    // FROM scratch, or stages only: BuildKit resolves no FROM
    let h = Host::new().stack("web", &[("app.txt", "v1")]);
    h.fake(
        "build_out",
        "#1 [app internal] load build definition from Dockerfile\n#1 DONE 0.0s\n#2 [app 1/1] COPY app.txt /\n",
    );
    h.apply().expect_done("web", "rebuilt");
    assert_eq!(h.bases("web").as_deref(), Some("none"));
    assert_eq!(h.gens("web")[0][5], "none");
    assert_eq!(h.checked_bases("web"), Some(vec![]));
}

#[test]
fn an_image_only_services_digest_is_recorded_and_unreadable_ones_are_not() {
    let mut h = Host::new().stack("web", &[("app.txt", "v1")]);
    h.services("app build - always none\ndb image 127.0.0.1:5000/db:16 always none");
    let (a, d) = (digest('a'), digest('d'));
    h.fake("build_out", &buildkit_log(&a));
    h.fake("registry", &format!("127.0.0.1:5000/db:16 {d}"));
    h.apply().expect_done("web", "rebuilt");
    assert_eq!(
        h.checked_bases("web"),
        Some(vec![
            base("127.0.0.1:5000/base:1", &a),
            base("127.0.0.1:5000/db:16", &d)
        ])
    );
    // one `docker image inspect` for every image of the stack
    assert_eq!(h.image_inspects(), 1);
    let inspect = h
        .calls()
        .into_iter()
        .find(|c| c.starts_with("docker image inspect --format"))
        .unwrap();
    assert_eq!(inspect.matches(" sha256:i").count(), 2, "{inspect}");

    // the engine does not answer that look: not recorded, the rebuild
    // stands
    h.edit("web", "app.txt", "v2");
    h.fake_times(
        "fail/image_inspect",
        "Cannot connect to the Docker daemon",
        1,
    );
    h.apply().expect_done("web", "rebuilt");
    assert_eq!(h.bases("web").as_deref(), Some("-"));
    assert_eq!(h.checked_bases("web"), None);
    // an image whose digests name another repository than its name: not
    // recorded either (a digest of another name would look moved forever)
    h.edit("web", "app.txt", "v3");
    h.unfake("registry");
    let images = std::fs::read_to_string(h.path("fake/images")).unwrap();
    assert!(images.contains("127.0.0.1:5000/db@"), "{images}");
    std::fs::write(
        h.path("fake/images"),
        images.replace("127.0.0.1:5000/db@", "127.0.0.1:5000/elsewhere@"),
    )
    .unwrap();
    h.apply().expect_done("web", "rebuilt");
    assert_eq!(h.bases("web").as_deref(), Some("-"));
}

#[test]
fn pull_mode_pulls_builds_nothing_and_records_a_new_generation() {
    let mut h = Host::new().stack("web", &[("app.txt", "v1")]);
    h.services("app build - always none\ndb image 127.0.0.1:5000/db:16 always none");
    let (a, d, e, f) = (digest('a'), digest('d'), digest('e'), digest('f'));
    h.fake("build_out", &buildkit_log(&a));
    h.fake("registry", &format!("127.0.0.1:5000/db:16 {d}"));
    h.apply().expect_done("web", "rebuilt");
    let app = h
        .containers()
        .into_iter()
        .find(|c| c.service == "app")
        .unwrap();
    let built_at = h.state("web")["built_at"].clone();

    // the registry's db:16 moved; a build now would read another base
    h.fake("registry", &format!("127.0.0.1:5000/db:16 {e}"));
    h.fake("build_out", &buildkit_log(&f));
    h.get("web").mode = StackMode::Pull;
    let calls = h.calls().len();
    let r = h.apply();
    r.expect_done("web", "rebuilt")
        .expect_detail("web", "generation 2, pulled (no build)");
    assert_eq!(r.steps("web"), ["pull", "up", "wait", "prune"]);
    let new_calls = &h.calls()[calls..];
    assert!(
        !new_calls.iter().any(|c| c.contains(" build ")),
        "{new_calls:?}"
    );
    assert!(
        new_calls
            .iter()
            .any(|c| c == "docker compose -p web pull --ignore-buildable --quiet"),
        "{new_calls:?}"
    );
    // no build, so no build cache to prune
    assert!(!new_calls.iter().any(|c| c.starts_with("docker builder")));
    // the built service kept its container and what it was built from;
    // the pulled one runs the new image
    let now = h.containers();
    assert!(now.contains(&app), "{now:?}");
    assert_eq!(h.state_images("web"), h.running("web"));
    assert_eq!(h.gen_numbers("web"), [1, 2]);
    assert_eq!(
        h.checked_bases("web"),
        Some(vec![
            base("127.0.0.1:5000/base:1", &a),
            base("127.0.0.1:5000/db:16", &e)
        ])
    );
    // the build period counts from the last build
    assert_eq!(h.state("web")["built_at"], built_at);

    // nothing moved: the same generation, pulled again
    h.apply().expect_done("web", "rebuilt");
    assert_eq!(h.gen_numbers("web"), [1, 2]);
    assert_eq!(h.state("web")["gen"], "2");

    // and back: the rollback puts generation 1 and its bases back
    h.rollback("web").expect_done("web", "rolled_back");
    assert_eq!(
        h.checked_bases("web"),
        Some(vec![
            base("127.0.0.1:5000/base:1", &a),
            base("127.0.0.1:5000/db:16", &d)
        ])
    );
}

#[test]
fn a_failed_pull_in_pull_mode_leaves_what_runs() {
    let mut h = Host::new().stack("web", &[("app.txt", "v1")]);
    h.services("app build - always none\ndb image 127.0.0.1:5000/db:16 always none");
    h.fake("registry", &format!("127.0.0.1:5000/db:16 {}", digest('d')));
    h.apply().expect_done("web", "rebuilt");
    let (runs, bases) = (h.running("web"), h.bases("web"));
    h.fake("registry", &format!("127.0.0.1:5000/db:16 {}", digest('e')));
    h.fake("fail/pull", "manifest unknown");
    h.get("web").mode = StackMode::Pull;
    h.apply()
        .expect_done("web", "failed")
        .expect_detail("web", "pull failed");
    assert_eq!((h.running("web"), h.bases("web")), (runs, bases));
    h.no_leftovers("web");
}

#[test]
fn rollbacks_put_back_the_bases_of_the_generation_they_run_and_a_start_keeps_them() {
    let mut h = built();
    let (a, b, c) = (digest('a'), digest('b'), digest('c'));
    h.fake("build_out", &buildkit_log(&a));
    h.edit("web", "app.txt", "v2");
    h.apply().expect_done("web", "rebuilt");
    h.fake("build_out", &buildkit_log(&b));
    h.edit("web", "app.txt", "v3");
    h.apply().expect_done("web", "rebuilt");
    let of = |d: &str| Some(vec![base("127.0.0.1:5000/base:1", d)]);
    assert_eq!(h.checked_bases("web"), of(&b));
    // a failed gate goes back to what ran: its bases stay
    h.fake("build_out", &buildkit_log(&c));
    h.edit("web", "app.txt", "v4");
    h.fake_times("health/app", "unhealthy", 1);
    h.apply().expect_done("web", "rolled_back");
    assert_eq!(h.checked_bases("web"), of(&b));
    // by hand: the generation before, with its own
    h.rollback("web").expect_done("web", "rolled_back");
    assert_eq!(h.checked_bases("web"), of(&a));
    // a start runs the recorded generation: the same bases
    h.stop_all();
    h.get("web").mode = StackMode::Start;
    h.apply().expect_done("web", "started");
    assert_eq!(h.checked_bases("web"), of(&a));
}

#[test]
fn an_older_rbuilds_state_and_generation_lines_read_as_not_recorded() {
    let mut h = built();
    // what an rbuild before bases wrote: no `bases=`, 5-field generations
    let text = std::fs::read_to_string(h.state_dir().join("web.state")).unwrap();
    let old: String = text
        .lines()
        .filter(|l| !l.starts_with("bases="))
        .map(|l| match l.strip_prefix("generation=") {
            Some(g) => format!(
                "generation={}\n",
                g.split(' ').take(5).collect::<Vec<_>>().join(" ")
            ),
            None => format!("{l}\n"),
        })
        .collect();
    assert!(!old.contains("bases") && old != text, "{old}");
    h.write_state("web", &old);
    assert_eq!(h.checked_bases("web"), None);
    let r = h.history("web");
    assert!(
        r.events.iter().any(
            |e| matches!(e, Event::Generation { generation, .. } if generation.bases.is_none())
        ),
        "{r}"
    );
    // a rebuild: its generation recorded, the older one's kept as `-`
    h.fake("build_out", &buildkit_log(&digest('a')));
    h.edit("web", "app.txt", "v2");
    h.apply().expect_done("web", "rebuilt");
    assert_eq!(
        h.gens("web")
            .iter()
            .map(|g| g[5].as_str())
            .collect::<Vec<_>>(),
        [
            "-",
            format!("127.0.0.1:5000/base:1@{}", digest('a')).as_str()
        ]
    );
    // rolled back to it: not recorded
    h.rollback("web").expect_done("web", "rolled_back");
    assert_eq!(h.bases("web").as_deref(), Some("-"));
    assert_eq!(h.checked_bases("web"), None);
}

// ---------------------------------------------------------------- kills

/// Where the harness kills the script: at a step (`at STEP`, the script's
/// test hook: its line `at() { :; }` replaced; the Nth time STEP comes) or
/// at the fake's Nth call (docker, and with `files` mv/rm/mkdir too).
#[derive(Debug, Clone)]
enum KillAt {
    Step(String, usize),
    Call(usize),
}

/// How a sweep picks its kill points.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Sweep {
    /// Each `at STEP` of the script (its test hook).
    Steps,
    /// Each call of the fake: docker's, and mv/rm/mkdir's (the fake
    /// installed as them), so that a kill falls between two file steps.
    Files,
}

/// The script's test hook, where it has one.
const AT_HOOK: &str = "at() { :; }";

/// `base` (a stripped script) with its `at` hook replaced by `def`; None
/// when it has no hook (the script before issue 18's).
fn with_hook(base: &str, def: &str) -> Option<String> {
    base.lines().any(|l| l == AT_HOOK).then(|| {
        base.lines()
            .map(|l| if l == AT_HOOK { def } else { l })
            .collect::<Vec<_>>()
            .join("\n")
            + "\n"
    })
}

/// A scenario of the kill sweep: a host as it is before the run to kill
/// (faults armed), the run, and the run after the kill (the same command,
/// the faults lifted).
struct Scenario {
    name: &'static str,
    setup: fn() -> Host,
    /// What the killed run does (and the run after the kill does again).
    act: fn(&Host) -> Run,
    /// Faults to lift before the run after the kill.
    lift: &'static [&'static str],
}

fn v2(h: &mut Host) {
    h.edit("web", "app.txt", "v2");
}

/// Three generations kept (`keep=3`), the third running.
fn three_generations() -> Host {
    let mut h = built();
    h.get("web").options.keep = Some(3);
    for v in ["v2", "v3"] {
        h.edit("web", "app.txt", v);
        h.apply().expect_done("web", "rebuilt");
    }
    assert_eq!(h.gen_numbers("web"), [1, 2, 3]);
    h
}

fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "rebuild",
            setup: || {
                let mut h = built();
                v2(&mut h);
                h
            },
            act: Host::apply,
            lift: &[],
        },
        Scenario {
            name: "failed build",
            setup: || {
                let mut h = built();
                v2(&mut h);
                h.fake("fail/build", "boom");
                h
            },
            act: Host::apply,
            lift: &["fail/build"],
        },
        Scenario {
            name: "failed gate",
            setup: || {
                let mut h = built();
                v2(&mut h);
                h.fake_times("health/app", "unhealthy", 1);
                h
            },
            act: Host::apply,
            lift: &["health/app"],
        },
        Scenario {
            name: "first build",
            setup: || {
                let h = Host::new().stack("web", &[("app.txt", "v1")]);
                std::fs::create_dir_all(h.dir("web")).unwrap();
                h.data("web", "data/db.txt", "precious");
                h.get_adopted()
            },
            act: Host::apply,
            lift: &[],
        },
        Scenario {
            name: "failed first build",
            setup: || {
                let h = Host::new().stack("web", &[("app.txt", "v1")]);
                std::fs::create_dir_all(h.dir("web")).unwrap();
                h.data("web", "data/db.txt", "precious");
                h.fake("health/app", "unhealthy");
                h.get_adopted()
            },
            act: Host::apply,
            lift: &["health/app"],
        },
        Scenario {
            name: "rollback",
            setup: || {
                let mut h = built();
                v2(&mut h);
                h.apply().expect_done("web", "rebuilt");
                h
            },
            act: |h| h.rollback("web"),
            lift: &[],
        },
        Scenario {
            name: "rollback --to 1",
            setup: three_generations,
            act: |h| h.rollback_to("web", Some(1)),
            lift: &[],
        },
        Scenario {
            name: "pull",
            setup: || {
                let mut h = Host::new().stack("web", &[("app.txt", "v1")]);
                h.services("app build - always none\ndb image 127.0.0.1:5000/db:16 always none");
                h.fake("build_out", &buildkit_log(&digest('a')));
                h.fake("registry", &format!("127.0.0.1:5000/db:16 {}", digest('d')));
                h.apply().expect_done("web", "rebuilt");
                h.data("web", "data/db.txt", "precious");
                h.fake("registry", &format!("127.0.0.1:5000/db:16 {}", digest('e')));
                h.get("web").mode = StackMode::Pull;
                h
            },
            act: Host::apply,
            lift: &[],
        },
        Scenario {
            name: "start",
            setup: || {
                let mut h = built();
                h.stop_all();
                h.get("web").mode = StackMode::Start;
                h
            },
            act: Host::apply,
            lift: &[],
        },
    ]
}

impl Host {
    /// Containers up as the services say, without an apply.
    fn get_status_fixture(&self) {
        let out = Command::new(self.path("bin/docker"))
            .args(["compose", "-p", "web", "up", "-d"])
            .env("FAKE_DOCKER", self.path("fake"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }

    fn get_adopted(mut self) -> Host {
        self.get("web").adopt = true;
        self
    }

    /// The data files of the stack's directory ("written by containers"),
    /// with their bytes.
    fn data_files(&self, name: &str) -> BTreeMap<String, String> {
        let dir = self.dir(name).join("data");
        let mut m = BTreeMap::new();
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for e in rd.flatten() {
                m.insert(
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read_to_string(e.path()).unwrap_or_default(),
                );
            }
        }
        m
    }

    /// What an attempt that ended leaves behind that it should not: its
    /// journal, a carry list, a half-written manifest, the stage, old or
    /// dead copy beside the stack's directory, a temp file, a lock still
    /// naming a holder.
    fn leftovers(&self, name: &str) -> Vec<String> {
        let mut v = Vec::new();
        for f in ["journal", "carry", "carry.back", "carry.tmp", "files.new"] {
            let p = self.state_dir().join(format!("{name}.{f}"));
            if p.symlink_metadata().is_ok() {
                v.push(p.display().to_string());
            }
        }
        for c in ["old", "stage", "dead"] {
            let p = self.path("stacks").join(format!(".{name}.rbuild-{c}"));
            if p.symlink_metadata().is_ok() {
                v.push(p.display().to_string());
            }
        }
        for e in std::fs::read_dir(self.state_dir()).unwrap().flatten() {
            let f = e.file_name().to_string_lossy().into_owned();
            if f.contains(".tmp.") || f.starts_with(".payload.") {
                v.push(f);
            }
        }
        let lock = self.state_dir().join(format!("{name}.lock"));
        if let Ok(t) = std::fs::read_to_string(&lock)
            && !t.is_empty()
        {
            v.push(format!("{name}.lock holding {t:?}"));
        }
        v
    }

    fn no_leftovers(&self, name: &str) {
        let l = self.leftovers(name);
        assert!(l.is_empty(), "left behind: {l:?}");
    }

    /// Install the fake as `mv`, `rm` and `mkdir` too: a kill may then fall
    /// between two file steps of the script.
    fn kill_on_files(&self) {
        self.shim(&["mv", "rm", "mkdir"]);
    }
}

/// One row of a sweep's table: where the run was killed, what the check
/// said then, what the next run did.
struct Row {
    point: String,
    check: String,
    result: &'static str,
    detail: String,
}

/// Kill the scenario's run at `at`, then run it again: the invariants
/// hold. Ok(None): the run was not killed (the sweep is over). Err: what
/// broke.
fn kill_once(
    sc: &Scenario,
    template: &Host,
    base: &str,
    at: &KillAt,
) -> Result<Option<Row>, String> {
    let mut h = template.copy();
    let data = h.data_files("web");
    match at {
        KillAt::Step(step, nth) => {
            h.script = with_hook(
                base,
                &format!(
                    "at() {{ [ \"$1\" = {step} ] && {{ RBUILD_AT_N=$((${{RBUILD_AT_N:-0}} + 1)); [ \"$RBUILD_AT_N\" = {nth} ] && {{ echo at {step} > \"$FAKE_DOCKER/killed\"; kill -9 $$; }}; }}; :; }}"
                ),
            );
            assert!(h.script.is_some(), "the script has no `at` hook");
        }
        KillAt::Call(n) => {
            let done = h.calls().len();
            h.fake("kill_at_call", &(done + n).to_string());
        }
    }
    let r = (sc.act)(&h);
    let _ = std::fs::remove_file(h.path("fake/kill_at_call"));
    if !r.killed {
        return Ok(None);
    }
    let killed = std::fs::read_to_string(h.path("fake/killed")).unwrap_or_default();
    let what = format!("{} killed at {at:?} ({})", sc.name, killed.trim());
    h.script = None;
    // what the check says of a run cut off: its phase, and not running
    let hash = h.stacks[0].hash();
    let rec = h
        .check(&[("web", &hash, 3600)], false, false)
        .recorded("web");
    let journal = h.state_dir().join("web.journal").exists();
    let check = match &rec.phase {
        Some(p) => format!("phase={p}"),
        None => "-".into(),
    };
    if journal && (rec.phase.is_none() || rec.running != Some(false)) {
        return Err(format!(
            "{what}: a journal is left, but the check says phase {:?} running {:?}",
            rec.phase, rec.running
        ));
    }
    for f in sc.lift {
        h.unfake(f);
    }
    let again = (sc.act)(&h);
    let Some((result, detail, _)) = again.done("web") else {
        return Err(format!(
            "{what}: the next run ended in no done line:\n{again}"
        ));
    };
    if !["rebuilt", "started", "rolled_back", "failed"].contains(&result) {
        return Err(format!("{what}: the next run ended {result}:\n{again}"));
    }
    let now = h.data_files("web");
    if now != data {
        return Err(format!("{what}: data {data:?} became {now:?}:\n{again}"));
    }
    if h.state_images("web") != h.running("web") {
        return Err(format!(
            "{what}: the state says {} runs, the engine runs {}:\n{again}",
            h.state_images("web"),
            h.running("web")
        ));
    }
    let left = h.leftovers("web");
    if !left.is_empty() {
        return Err(format!("{what}: the next run left {left:?}:\n{again}"));
    }
    let point = match at {
        KillAt::Step(s, n) if *n > 1 => format!("{s} #{n}"),
        KillAt::Step(s, _) => s.clone(),
        KillAt::Call(n) => format!(
            "call {n}: {}",
            killed.trim().replace(h.root.path().to_str().unwrap(), "")
        ),
    };
    Ok(Some(Row {
        point,
        check,
        result,
        detail: detail.to_owned(),
    }))
}

/// The kill points of a scenario, learned from a run of a copy of its
/// host whose `at` hook logs each step: each `at STEP` the run passes
/// (Steps), or each `mv`, `rm`, `mkdir` call from its undo on (Files).
fn kill_points(template: &Host, sc: &Scenario, base: &str, mode: Sweep) -> Vec<KillAt> {
    let mut h = template.copy();
    h.script = Some(
        with_hook(base, "at() { echo \"@at $1\" >>\"$FAKE_DOCKER/calls\"; }")
            .expect("the script has no `at` hook"),
    );
    let before = h.calls().len();
    (sc.act)(&h);
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let (mut calls, mut undo) = (0, false);
    let mut points = Vec::new();
    for line in &h.calls()[before..] {
        if let Some(step) = line.strip_prefix("@at ") {
            undo |= step == "undo";
            let n = seen.entry(step.to_owned()).or_default();
            *n += 1;
            if mode == Sweep::Steps {
                points.push(KillAt::Step(step.to_owned(), *n));
            }
            continue;
        }
        calls += 1;
        let file = ["mv ", "rm ", "mkdir "].iter().any(|t| line.starts_with(t));
        if mode == Sweep::Files && undo && file {
            points.push(KillAt::Call(calls));
        }
    }
    points
}

/// Kill the scenario at each point in turn. The table, as markdown rows
/// (scenario, killed at, what the check said, what the next run did); the
/// first broken invariant as Err.
fn sweep(sc: &Scenario, base: &str, mode: Sweep) -> Result<Vec<String>, String> {
    let template = (sc.setup)();
    if mode == Sweep::Files {
        template.kill_on_files();
    }
    let mut table = Vec::new();
    let mut errors = Vec::new();
    for at in kill_points(&template, sc, base, mode) {
        match kill_once(sc, &template, base, &at) {
            Ok(Some(row)) => table.push(format!(
                "| {} | `{}` | {} | `{}` | {} |",
                sc.name,
                row.point,
                row.check,
                row.result,
                row.detail.replace('|', "/")
            )),
            Ok(None) => {
                errors.push(format!("{}: not killed at {at:?}", sc.name));
            }
            Err(e) => {
                table.push(format!("| {} | `{at:?}` | | BROKEN | |", sc.name));
                errors.push(e);
            }
        }
    }
    match errors.into_iter().next() {
        Some(e) => {
            eprintln!("{}", table.join("\n"));
            Err(e)
        }
        None => Ok(table),
    }
}

/// Sweep a scenario over the shipped script; print its table to the test
/// run's own stderr (not captured: CI's log shows it) and write it to
/// `target/tmp/kill-table/SCENARIO.md`.
fn sweep_scenario(name: &str, mode: Sweep) -> Vec<String> {
    let sc = scenarios().into_iter().find(|s| s.name == name).unwrap();
    let table = sweep(&sc, script::script(), mode).unwrap_or_else(|e| panic!("{e}"));
    assert!(!table.is_empty(), "{name}: no kill point");
    let head = "| scenario | killed at | the check then | next run | its detail |\n|---|---|---|---|---|\n";
    let text = format!("{head}{}\n", table.join("\n"));
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("kill-table");
    let _ = std::fs::create_dir_all(&dir);
    let suffix = if mode == Sweep::Files { ".files" } else { "" };
    let _ = std::fs::write(
        dir.join(format!("{}{suffix}.md", name.replace([' ', '-'], "_"))),
        &text,
    );
    let _ =
        std::io::stderr().write_all(format!("\nkill sweep: {name} ({mode:?})\n{text}").as_bytes());
    table
}

/// The results of a table's rows whose kill point starts with one of
/// `points`.
fn results_at<'a>(table: &'a [String], points: &[&str]) -> Vec<&'a str> {
    table
        .iter()
        .filter(|r| points.iter().any(|p| r.contains(&format!("| `{p}"))))
        .map(|r| r.split(" | ").nth(3).unwrap().trim_matches('`'))
        .collect()
}

#[test]
fn the_shipped_script_has_the_at_hook_and_a_rebuild_passes_every_phase() {
    let logging = with_hook(
        script::script(),
        "at() { echo \"$1\" >>\"$FAKE_DOCKER/steps\"; }",
    );
    assert!(logging.is_some(), "no line `{AT_HOOK}` in the script");
    let sc = scenarios()
        .into_iter()
        .find(|s| s.name == "rebuild")
        .unwrap();
    let points: Vec<String> = kill_points(&(sc.setup)(), &sc, script::script(), Sweep::Steps)
        .into_iter()
        .map(|p| match p {
            KillAt::Step(s, _) => s,
            KillAt::Call(_) => unreachable!(),
        })
        .collect();
    for phase in [
        "ship",
        "build",
        "pull",
        "switch",
        "gate",
        "commit",
        "state.write",
    ] {
        assert!(points.iter().any(|p| p == phase), "{phase} in {points:?}");
    }
}

#[test]
fn killed_at_each_step_of_a_rebuild() {
    let t = sweep_scenario("rebuild", Sweep::Steps);
    // the files as they were, then the rebuild it was going to do
    assert!(
        results_at(
            &t,
            &[
                "ship",
                "build",
                "pull",
                "switch",
                "gate",
                "commit",
                "state.write"
            ]
        )
        .iter()
        .all(|r| *r == "rebuilt"),
        "{t:#?}"
    );
}

#[test]
fn killed_at_each_step_of_a_failed_build() {
    let t = sweep_scenario("failed build", Sweep::Steps);
    assert!(
        results_at(&t, &["ship", "build", "undo"])
            .iter()
            .all(|r| *r == "rebuilt"),
        "{t:#?}"
    );
}

#[test]
fn killed_at_each_step_of_a_rollback_after_a_failed_gate() {
    sweep_scenario("failed gate", Sweep::Steps);
}

#[test]
fn killed_at_each_step_of_a_first_build() {
    let t = sweep_scenario("first build", Sweep::Steps);
    assert!(t.iter().all(|r| r.contains("| `rebuilt` |")), "{t:#?}");
}

#[test]
fn killed_at_each_step_of_a_failed_first_build() {
    sweep_scenario("failed first build", Sweep::Steps);
}

#[test]
fn killed_at_each_step_of_a_manual_rollback() {
    let t = sweep_scenario("rollback", Sweep::Steps);
    assert!(t.iter().all(|r| r.contains("| `rolled_back` |")), "{t:#?}");
}

#[test]
fn killed_at_each_step_of_a_manual_rollback_to_a_generation() {
    let t = sweep_scenario("rollback --to 1", Sweep::Steps);
    assert!(t.iter().all(|r| r.contains("| `rolled_back` |")), "{t:#?}");
}

#[test]
fn killed_at_each_step_of_a_start() {
    let t = sweep_scenario("start", Sweep::Steps);
    assert!(t.iter().all(|r| r.contains("| `started` |")), "{t:#?}");
}

#[test]
fn killed_at_each_step_of_a_pull() {
    let t = sweep_scenario("pull", Sweep::Steps);
    // every step of a pull (no build), and the next run pulls again
    let steps: Vec<&str> = t.iter().map(|r| r.split(" | ").nth(1).unwrap()).collect();
    for p in ["pull", "switch", "gate", "commit", "state.write"] {
        assert!(
            steps.iter().any(|s| s.starts_with(&format!("`{p}"))),
            "{p} in {steps:?}"
        );
    }
    assert!(!steps.iter().any(|s| s.starts_with("`build")), "{steps:?}");
    assert!(t.iter().all(|r| r.contains("| `rebuilt` |")), "{t:#?}");
}

/// Issue 18, defect 1: a kill between any two file steps (each `mv`, `rm`,
/// `mkdir`, and each docker call) of an undo loses no byte of data.
#[test]
fn killed_between_file_steps_of_a_failed_build() {
    sweep_scenario("failed build", Sweep::Files);
}

#[test]
fn killed_between_file_steps_of_a_rollback_after_a_failed_gate() {
    sweep_scenario("failed gate", Sweep::Files);
}

/// Issue 18, defect 1, left by hand as an older rbuild's undo killed
/// between its `rm -rf` of the stack's directory and its `mv` of the old
/// copy back leaves it: the old copy aside, a carry list alone (no
/// journal). The next apply puts the old copy back before anything else.
#[test]
fn a_death_inside_an_older_rbuilds_undo_loses_no_data() {
    let mut h = built();
    v2(&mut h);
    let old = h.path("stacks/.web.rbuild-old");
    std::fs::rename(h.dir("web"), &old).unwrap();
    std::fs::write(h.state_dir().join("web.carry"), "data\n").unwrap();
    // the check calls it a ship cut off
    let rec = h.check(&[("web", "x", 60)], false, false).recorded("web");
    assert_eq!(rec.phase.as_deref(), Some("ship"));
    assert_eq!(rec.running, Some(false));
    let r = h.apply();
    r.expect_done("web", "rebuilt");
    assert_eq!(
        h.read("web", "data/db.txt").as_deref(),
        Some("precious"),
        "{r}"
    );
    assert_eq!(h.read("web", "app.txt").as_deref(), Some("v2"));
    h.no_leftovers("web");
}

/// The undo of the new script killed after it set the new copy aside,
/// before the old copy went back (`.rbuild-dead` and `.rbuild-old` both
/// there, no stack directory): the next run finishes it.
#[test]
fn a_death_between_the_new_copy_aside_and_the_old_copy_back_loses_no_data() {
    let mut h = built();
    v2(&mut h);
    h.fake("fail/build", "boom");
    h.script = with_hook(
        script::script(),
        "at() { [ \"$1\" = undo.new_aside ] && { echo at > \"$FAKE_DOCKER/killed\"; kill -9 $$; }; :; }",
    );
    let r = h.apply();
    assert!(r.killed, "{r}");
    assert!(!h.dir("web").exists());
    assert!(h.path("stacks/.web.rbuild-old").is_dir());
    assert!(h.path("stacks/.web.rbuild-dead").is_dir());
    h.script = None;
    h.unfake("fail/build");
    let r = h.apply();
    r.expect_done("web", "rebuilt")
        .expect_note("web", "an earlier run was cut off (at undo)");
    assert_eq!(h.read("web", "data/db.txt").as_deref(), Some("precious"));
    h.no_leftovers("web");
}

/// Issue 18, defect 2: the engine restarts during the health gate (every
/// Docker package upgrade does one). The failed attempt must not lose the
/// rollback target, and once the engine is back the next run puts right
/// what it left: the state names what runs.
#[test]
fn an_engine_restart_in_the_gate_keeps_the_rollback_target() {
    // where the gate's first look is, in the calls of a twin's apply
    let twin = |h: &mut Host| {
        v2(h);
        h.fake_times("health/app", "unhealthy", 1);
    };
    let mut probe = built();
    twin(&mut probe);
    let base = probe.calls().len();
    probe.apply().expect_done("web", "rolled_back");
    let calls = probe.calls();
    let up = calls[base..]
        .iter()
        .position(|c| c.ends_with("up -d --remove-orphans"))
        .unwrap();
    let mut h = built();
    twin(&mut h);
    h.fake("down_at_call", &(h.calls().len() + up + 2).to_string());
    let r = h.apply();
    r.expect_done("web", "failed").expect_detail(
        "web",
        "rollback failed too: generation 1 could not be put back",
    );
    // the engine is back: its restart policy brought the containers up
    h.unfake("engine_down");
    h.unfake("down_at_call");
    let st = h.state("web");
    assert_eq!(st["last_result"], "broken", "{r}");
    assert_eq!(st["gen"], "1", "the state lost the rollback target:\n{r}");
    assert_eq!(st["images"], V1, "the state lost what ran:\n{r}");
    assert_eq!(h.gen_images("web", 1).as_deref(), Some(V1));
    // the check says it does not run as recorded: the next run puts it right
    let rec = h.check(&[("web", "x", 60)], false, false).recorded("web");
    assert_eq!(rec.running, Some(false));
    let again = h.apply();
    again.expect_done("web", "rebuilt");
    assert_eq!(h.state_images("web"), h.running("web"), "{again}");
    h.no_leftovers("web");
    // and `rbuild rollback` still has generation 1
    h.rollback("web").expect_done("web", "rolled_back");
    assert_eq!(h.running("web"), V1);
}

/// Issue 18, defect 5: an empty, garbage or CRLF state file (a write cut
/// short, an editor) is no newer rbuild's: named for what it is, left
/// alone.
#[test]
fn a_state_file_cut_short_is_not_blamed_on_a_newer_rbuild() {
    for (text, words) in [
        ("", "not an rbuild state file"),
        ("garbage\n", "not an rbuild state file"),
        ("version=1\r\nhash=h\r\n", "no number"),
    ] {
        let h = built();
        h.write_state("web", text);
        let r = h.apply();
        r.expect_done("web", "failed").expect_detail("web", words);
        let (_, detail, _) = r.done("web").unwrap();
        assert!(!detail.contains("upgrade rbuild"), "{text:?}: {r}");
        assert_eq!(
            std::fs::read_to_string(h.state_dir().join("web.state")).unwrap(),
            text
        );
        h.rollback("web")
            .expect_done("web", "failed")
            .expect_detail("web", words);
    }
}

// ---------------------------------------------------------------- protocol 4's branches

/// A state file of version 1 (an rbuild before protocol 4): its `images`
/// and `prev_images` are read as generations, and the next write is
/// version 2.
#[test]
fn a_state_file_of_version_1_is_read_as_generations_and_upgraded() {
    let mut h = built();
    v2(&mut h);
    h.apply().expect_done("web", "rebuilt");
    let v2 = h.running("web");
    let st = h.state("web");
    h.write_state(
        "web",
        &format!(
            "version=1\nhash={}\nbuilt_at={}\nlast_result=ok\ncompose=v2\nimages={v2}\nnames=app=web-app\nprev_images={V1}\nfailed_hash=-\nfailed_at=0\n",
            st["hash"], st["built_at"]
        ),
    );
    let rec = h
        .check(&[("web", &st["hash"], 3600)], false, false)
        .recorded("web");
    assert!(rec.state.unwrap().is_some());
    // the previous images are generation 1, the running ones 2
    h.rollback_to("web", Some(2))
        .expect_done("web", "failed")
        .expect_detail("web", "generation 2 runs already");
    h.get("web").mode = StackMode::Build;
    h.apply()
        .expect_done("web", "rebuilt")
        .expect_detail("web", "generation 3,");
    assert_eq!(h.state("web")["version"], "2");
    assert_eq!(h.gen_numbers("web"), [2, 3]);
    assert_eq!(h.gen_images("web", 2), Some(v2.clone()));
    h.get("web").mode = StackMode::Ship;
    // version 1 without prev_images: one generation
    h.write_state(
        "web",
        &format!(
            "version=1\nhash=x\nbuilt_at=1\nlast_result=ok\nimages={V1}\nnames=app=web-app\nprev_images=-\n"
        ),
    );
    h.edit("web", "app.txt", "v3");
    h.apply()
        .expect_done("web", "rebuilt")
        .expect_detail("web", "generation 2,");
    assert_eq!(h.gen_numbers("web"), [1, 2]);
    assert_eq!(h.gen_images("web", 1).as_deref(), Some(V1));
}

/// A deployment started by hand under the project (never built here) is
/// taken over as generation 0: a rollback can go back to it.
#[test]
fn a_deployment_started_by_hand_is_kept_as_generation_0() {
    let h = Host::new().stack("web", &[("app.txt", "v1")]);
    // `docker compose up` by hand: an image built under compose's name
    h.get_status_fixture();
    let by_hand = h.running("web");
    h.apply()
        .expect_done("web", "rebuilt")
        .expect_detail("web", "generation 1");
    assert_eq!(h.gen_numbers("web"), [0, 1]);
    assert_eq!(h.gen_images("web", 0), Some(by_hand.clone()));
    h.rollback("web")
        .expect_done("web", "rolled_back")
        .expect_detail("web", "from generation 1 to generation 0");
    assert_eq!(h.running("web"), by_hand);
}

/// keep=3: three generations keep their images, a fourth drops the
/// first's; a rollback goes to the newest older one each time, `--to`
/// anywhere kept, never to one not kept or the one running.
#[test]
fn generations_are_kept_and_dropped_and_rollback_to_picks_any_kept_one() {
    let mut h = three_generations();
    h.edit("web", "app.txt", "v4");
    h.apply()
        .expect_done("web", "rebuilt")
        .expect_note("web", "removed image sha256:i1");
    assert_eq!(h.gen_numbers("web"), [2, 3, 4]);
    let g = |n| h.gen_images("web", n).unwrap();
    let (g2, g3, g4) = (g(2), g(3), g(4));
    h.rollback_to("web", Some(4))
        .expect_done("web", "failed")
        .expect_detail("web", "generation 4 runs already");
    h.rollback_to("web", Some(1))
        .expect_done("web", "failed")
        .expect_detail("web", "generation 1 is not kept here (kept: 2, 3, 4)");
    assert_eq!(h.running("web"), g4);
    h.rollback("web")
        .expect_detail("web", "from generation 4 to generation 3");
    assert_eq!(h.running("web"), g3);
    h.rollback("web")
        .expect_detail("web", "from generation 3 to generation 2");
    assert_eq!(h.running("web"), g2);
    h.rollback("web")
        .expect_done("web", "failed")
        .expect_detail(
            "web",
            "no generation older than 2 is kept (keep_generations: 3 kept",
        );
    h.rollback_to("web", Some(4))
        .expect_done("web", "rolled_back")
        .expect_detail("web", "from generation 2 to generation 4");
    assert_eq!(h.running("web"), g4);
    assert_eq!(h.state_images("web"), g4);
}

#[test]
fn a_rollback_of_a_stack_never_built_says_so() {
    let h = Host::new().stack("web", &[("app.txt", "v1")]);
    h.fake("fail/build", "nope");
    h.apply().expect_done("web", "failed");
    h.rollback("web")
        .expect_done("web", "failed")
        .expect_detail("web", "no generation is recorded here (never built)");
    // no stack directory given (the default one) and no state directory
    let fresh = Host::new().stack("web", &[]);
    std::fs::remove_dir(fresh.state_dir()).unwrap();
    let s = fresh.stacks[0].clone();
    let r = fresh.run(
        &Call::Rollback(Rollback {
            state_dir: Some(fresh.state_dir().to_str().unwrap().to_owned()),
            compose: fresh.compose,
            place: Place {
                dir: None,
                ..fresh.apply_stack(&s).place
            },
            up_timeout: 5,
            settle: 0,
            to: None,
        }),
        vec![],
    );
    r.expect_detail("web", "no state directory");
}

/// The `at` hook makes the state file's temp file a link to /dev/full (a
/// full disk: the write fails) or /dev/null (the write "succeeds" but
/// reads back short).
fn state_write_into(h: &mut Host, dev: &str) {
    h.script = with_hook(
        script::script(),
        &format!(
            "at() {{ [ \"$1\" = state.write ] && ln -sf {dev} \"$state_dir/.$n.state.tmp.$$\"; :; }}"
        ),
    );
}

#[test]
fn a_state_write_that_fails_or_reads_back_short_keeps_the_old_state() {
    for (dev, cause) in [("/dev/full", None), ("/dev/null", Some(Cause::NoSpace))] {
        let mut h = built();
        v2(&mut h);
        let before = std::fs::read_to_string(h.state_dir().join("web.state")).unwrap();
        state_write_into(&mut h, dev);
        let r = h.apply();
        r.expect_done("web", "failed")
            .expect_detail("web", "could not be written");
        if cause.is_some() {
            assert_eq!(r.done("web").unwrap().2, cause, "{dev}: {r}");
        }
        assert_eq!(
            std::fs::read_to_string(h.state_dir().join("web.state")).unwrap(),
            before,
            "{dev}"
        );
        assert_eq!(h.running("web"), V1);
        h.no_leftovers("web");
    }
}

#[test]
fn a_journal_that_cannot_be_written_changes_nothing() {
    let mut h = built();
    v2(&mut h);
    h.shim(&["mv"]);
    h.fake("fail/mv", "*.journal.tmp.*");
    h.apply()
        .expect_done("web", "failed")
        .expect_cause("web", Cause::NoSpace)
        .expect_detail("web", "could not write the journal");
    assert_eq!(h.read("web", "app.txt").as_deref(), Some("v1"));
    h.get("web").mode = StackMode::Build;
    h.apply()
        .expect_done("web", "failed")
        .expect_detail("web", "could not write the journal");
    assert_eq!(h.running("web"), V1);
    h.unfake("fail/mv");
    h.no_leftovers("web");
}

#[test]
fn a_stack_directory_that_cannot_be_moved_aside_is_put_back() {
    let mut h = built();
    v2(&mut h);
    h.shim(&["mv"]);
    h.fake("fail/mv", "*rbuild-old");
    h.apply()
        .expect_done("web", "failed")
        .expect_detail("web", "could not move");
    assert_eq!(h.read("web", "app.txt").as_deref(), Some("v1"));
    assert_eq!(h.read("web", "data/db.txt").as_deref(), Some("precious"));
    h.no_leftovers("web");
}

#[test]
fn a_build_that_fills_the_engines_disk_is_named() {
    let mut h = built();
    v2(&mut h);
    h.fake(
        "fail/build",
        "write /var/lib/docker/x: no space left on device",
    );
    h.apply()
        .expect_done("web", "failed")
        .expect_cause("web", Cause::NoSpace)
        .expect_detail("web", "is full");
}

#[test]
fn a_start_whose_up_finds_no_engine_says_so() {
    let mut h = built();
    h.stop_all();
    h.get("web").mode = StackMode::Start;
    h.fake(
        "fail/up",
        "Cannot connect to the Docker daemon at unix:///var/run/docker.sock.",
    );
    h.apply()
        .expect_done("web", "failed")
        .expect_detail("web", "and up failed: the Docker engine does not answer");
    // broken, then a start that works
    assert_eq!(h.state("web")["last_result"], "broken");
    h.unfake("fail/up");
    h.apply()
        .expect_done("web", "started")
        .expect_detail("web", "its last rollback had failed; generation 1 runs");
    assert_eq!(h.state_images("web"), h.running("web"));
    assert_eq!(h.state("web")["last_result"], "ok");
}

/// A holder that has taken the lock but not written its pid yet.
#[test]
fn a_lock_holder_that_names_no_pid_yet_is_unknown() {
    let h = built();
    let lock = h.state_dir().join("web.lock");
    let mut child = Command::new("flock")
        .arg(&lock)
        .args(["sleep", "600"])
        .spawn()
        .unwrap();
    // wait until it holds it
    while Command::new("flock")
        .args(["-n"])
        .arg(&lock)
        .arg("true")
        .status()
        .unwrap()
        .success()
    {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let r = h.apply();
    let _ = child.kill();
    let _ = child.wait();
    r.expect_done("web", "locked");
    assert!(r.stdout.contains("done web locked unknown"), "{r}");
}

#[test]
fn a_manual_rollback_whose_state_cannot_be_written_says_what_runs() {
    let mut h = built();
    v2(&mut h);
    h.apply().expect_done("web", "rebuilt");
    h.shim(&["mv"]);
    h.fake("fail/mv", "*.state.tmp.*");
    h.rollback("web")
        .expect_done("web", "failed")
        .expect_cause("web", Cause::NoSpace)
        .expect_detail(
            "web",
            "generation 1 runs, but the state file could not be written",
        );
    // its journal says so: the next run puts it right
    let rec = h.check(&[("web", "x", 60)], false, false).recorded("web");
    assert_eq!(rec.phase.as_deref(), Some("rollback"));
    // a rollback that fails too, and its state cannot be written either
    h.fake_times("fail/up", "boom", 2);
    let r = h.rollback("web");
    r.expect_done("web", "failed")
        .expect_detail("web", "could not be put back either")
        .expect_note("web", "could not record the failed attempt");
    // the clock file cannot be replaced: no matter
    h.unfake("fail/mv");
    h.unfake("fail/up");
    h.fake("fail/mv", "*/.clock.*");
    h.apply().expect_done("web", "rebuilt");
    assert!(
        !std::fs::read_dir(h.state_dir())
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with(".clock."))
    );
}

/// A rebuild killed after its state named the new generation, before its
/// journal went (the commit point passed): the next run keeps its files
/// (the state's `attempt` is the journal's).
#[test]
fn a_rebuild_killed_after_its_commit_point_keeps_what_it_recorded() {
    let mut template = built();
    v2(&mut template);
    template.kill_on_files();
    let probe = template.copy();
    let before = probe.calls().len();
    probe.apply().expect_done("web", "rebuilt");
    let n = probe.calls()[before..]
        .iter()
        .position(|c| c.starts_with("rm -f ") && c.ends_with("/web.journal"))
        .unwrap();
    let h = template.copy();
    h.fake("kill_at_call", &(h.calls().len() + n + 1).to_string());
    let r = h.apply();
    assert!(r.killed, "{r}");
    h.unfake("kill_at_call");
    assert_eq!(h.state("web")["gen"], "2");
    let rec = h.check(&[("web", "x", 60)], false, false).recorded("web");
    assert_eq!(rec.phase.as_deref(), Some("commit"));
    let mut h2 = h;
    h2.get("web").mode = StackMode::Build;
    let r = h2.apply();
    r.expect_done("web", "rebuilt").expect_note(
        "web",
        "cut off after it recorded generation 2: its files are kept",
    );
    assert_eq!(h2.read("web", "app.txt").as_deref(), Some("v2"));
    assert_eq!(h2.read("web", "data/db.txt").as_deref(), Some("precious"));
    assert_eq!(h2.state_images("web"), h2.running("web"));
    h2.no_leftovers("web");
}

/// A version 1 state file's previous images (`prev_images`) become
/// generation 1 with no names (version 1 kept none for them), so a
/// rollback to it retags nothing: `up` brings the running images up again,
/// the gate passes, and the state records generation 1's images while
/// generation 2's run. (The script before protocol 4 rolled back with the
/// names that ran.)
#[test]
fn a_rollback_to_a_version_1_files_previous_images_runs_them() {
    let mut h = built();
    v2(&mut h);
    h.apply().expect_done("web", "rebuilt");
    let v2 = h.running("web");
    let st = h.state("web");
    h.write_state(
        "web",
        &format!(
            "version=1\nhash={}\nbuilt_at={}\nlast_result=ok\ncompose=v2\nimages={v2}\nnames=app=web-app\nprev_images={V1}\nfailed_hash=-\nfailed_at=0\n",
            st["hash"], st["built_at"]
        ),
    );
    h.rollback("web")
        .expect_done("web", "rolled_back")
        .expect_detail("web", "from generation 2 to generation 1");
    assert_eq!(h.state_images("web"), h.running("web"));
    assert_eq!(h.running("web"), V1);
}

/// A full disk at the state write, where printf itself fails (dash says
/// "I/O error", not the errno's words): the row is failed, but its cause
/// is not named no_space.
#[test]
fn a_full_disk_under_the_state_write_is_named_no_space() {
    let mut h = built();
    v2(&mut h);
    state_write_into(&mut h, "/dev/full");
    h.apply()
        .expect_done("web", "failed")
        .expect_cause("web", Cause::NoSpace);
}

/// A hook that prints more than a MiB: the log keeps its last MiB; where
/// the cut cannot be made (its temp file cannot be renamed), the log
/// stays whole and nothing is left.
#[test]
fn a_log_past_a_mib_is_cut_and_a_cut_that_fails_leaves_no_temp_file() {
    let mut h = built();
    v2(&mut h);
    h.get("web").hooks.before = Some("head -c 1100000 /dev/zero | tr '\\0' x; echo".into());
    h.apply().expect_done("web", "rebuilt");
    let len = |h: &Host| {
        std::fs::metadata(h.state_dir().join("web.log"))
            .unwrap()
            .len()
    };
    assert!(len(&h) <= 1_048_576, "{}", len(&h));
    h.edit("web", "app.txt", "v3");
    h.shim(&["mv"]);
    h.fake("fail/mv", "*.log.tmp.*");
    h.apply().expect_done("web", "rebuilt");
    assert!(len(&h) > 1_048_576);
    h.no_leftovers("web");
}

// ------------------------------------------------- issue 19: probe, mounts, verify

/// A probe (a command run in the stack's directory) is part of the gate: one
/// that succeeds passes, one that never does (an HTTP probe of a closed
/// port, on the fake clock) rolls the rebuild back, saying so.
#[test]
fn a_probe_is_part_of_the_gate() {
    let mut h = built();
    h.shim(&["date", "sleep"]);
    v2(&mut h);
    h.get("web").hooks.probe = Some("test -f app.txt".into());
    let r = h.apply();
    r.expect_done("web", "rebuilt");
    assert!(r.steps("web").contains(&"probe"));
    h.edit("web", "app.txt", "v3");
    h.get("web").hooks.probe = Some("probe_url http://127.0.0.1:9/ ok".into());
    h.apply()
        .expect_done("web", "rolled_back")
        .expect_detail("web", "its probe did not pass within the up timeout");
    assert_eq!(h.read("web", "app.txt").as_deref(), Some("v2"));
}

/// What the services mount of the stack's directory: a mounted path whose
/// content the ship does not change keeps its very inode (its container is
/// left alone); a service that mounts a changed one is recreated after the
/// `up` that left it.
#[test]
fn a_mounted_path_keeps_its_inode_unless_it_changed() {
    use std::os::unix::fs::MetadataExt;
    let mut h = Host::new().stack("web", &[("app.txt", "v1"), ("conf/app.conf", "c1")]);
    h.get("web").options.mounts = vec![
        ("app".into(), "conf/app.conf".into()),
        ("app".into(), "app.txt".into()),
    ];
    h.apply().expect_done("web", "rebuilt");
    let ino = |h: &Host, p: &str| std::fs::metadata(h.dir("web").join(p)).unwrap().ino();
    let conf = ino(&h, "conf/app.conf");
    // the image changes, not the mounted config: kept, no recreate
    h.edit("web", "Dockerfile.txt", "x");
    h.apply().expect_done("web", "rebuilt");
    assert_eq!(ino(&h, "conf/app.conf"), conf, "the same inode");
    // the mounted config changes: a new inode, and its service recreated
    // (the fake keeps a container whose image did not change)
    h.services("app build web-app unless-stopped none");
    h.edit("web", "conf/app.conf", "c2");
    h.apply().expect_done("web", "rebuilt");
    assert_ne!(ino(&h, "conf/app.conf"), conf);
    assert_eq!(h.read("web", "conf/app.conf").as_deref(), Some("c2"));
    h.no_leftovers("web");
}

/// A container of what runs restarted since its gate (the process recorded
/// with its cgroup is gone, the cgroup there): the check says so, at no
/// docker cost; the next run (verify) looks: nothing wrong is recorded
/// again (`started`); a crash (restarted by its policy) rolls back to the
/// generation before, and those files are held as failed.
#[test]
fn a_restart_after_the_gate_is_seen_and_a_crash_is_rolled_back() {
    let mut h = built();
    v2(&mut h);
    h.apply().expect_done("web", "rebuilt");
    let cg = h.path("cg/app");
    std::fs::create_dir_all(&cg).unwrap();
    let restarted = |h: &Host| {
        let text = std::fs::read_to_string(h.state_dir().join("web.state")).unwrap();
        let text: String = text
            .lines()
            .map(|l| match l.split_once('=') {
                Some(("cgroups", _)) => format!("cgroups=app:999999999:{}\n", cg.display()),
                _ => format!("{l}\n"),
            })
            .collect();
        h.write_state("web", &text);
        let r = h.check(&[("web", &h.stacks[0].hash(), 3600)], false, false);
        assert!(r.recorded("web").restarted, "the check sees the restart");
    };
    restarted(&h);
    h.get("web").mode = StackMode::Verify;
    h.apply()
        .expect_done("web", "started")
        .expect_detail("web", "not by a crash");
    // now a crash: the engine counts its restarts
    restarted(&h);
    let world = h.path("fake/containers");
    let text = std::fs::read_to_string(&world).unwrap();
    let text: String = text
        .lines()
        .map(|l| {
            let mut w: Vec<&str> = l.split(' ').collect();
            // (its RestartCount is the 8th column)
            if w.len() > 7 && w[2] == "app" && w[5] == "running" {
                w[7] = "3";
            }
            format!("{}\n", w.join(" "))
        })
        .collect();
    std::fs::write(&world, text).unwrap();
    h.apply()
        .expect_done("web", "rolled_back")
        .expect_detail("web", "generation 2 crashed after its gate");
    assert_eq!(h.running("web"), V1, "generation 1 runs again");
    let st = h.state("web");
    assert_eq!(
        (st["gen"].as_str(), st["last_result"].as_str()),
        ("1", "failed")
    );
    h.no_leftovers("web");
}

/// A `before` hook that hangs is stopped at `build_timeout`, like a hung
/// build: the rebuild fails with the bound named and a timeout for its
/// cause, the hook's process is gone, the old containers and files stay,
/// the lock is free. (A real hook, a real `sleep`, a bound of 1 s.)
#[test]
fn a_hanging_before_hook_is_stopped_at_the_build_timeout() {
    let mut h = built();
    let before = h.running("web");
    h.edit("web", "app.txt", "v2");
    let pid_file = h.path("hook.pid");
    h.get("web").hooks.before = Some(format!(
        "echo waiting for a lock; echo $$ >{}; exec sleep 100000",
        pid_file.display()
    ));
    let r = h.apply_with(|a| a.stacks[0].build_timeout = 1);
    r.expect_done("web", "failed")
        .expect_cause("web", Cause::Timeout)
        .expect_detail(
            "web",
            "the before hook took longer than 1s (build_timeout) and was stopped",
        );
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    assert!(
        !Path::new("/proc").join(pid.trim()).exists(),
        "the hook's process {} was stopped",
        pid.trim()
    );
    assert_eq!(h.running("web"), before);
    assert_eq!(h.read("web", "app.txt").as_deref(), Some("v1"));
    assert_eq!(h.read("web", "data/db.txt").as_deref(), Some("precious"));
    let c = h.check(&[("web", "x", 60)], false, false);
    assert_eq!(c.recorded("web").locked_by, None);
    h.no_leftovers("web");
}

/// Two applies of one stack at once, each round finding the lock a killed
/// run left: never both inside the lock (the before hook notes an
/// overlap), at most one says it took a stale lock over, at least one
/// rebuilds, the other is refused (`locked`) or rebuilds after it; no lock
/// is held after, the state names what runs, nothing is left behind.
/// `older`: the lock is an older rbuild's lock directory whose owner is
/// dead, else a lock file naming a dead pid (what a killed run of this
/// rbuild leaves).
fn two_applies_at_a_stale_lock(older: bool) {
    let mut h = built();
    let marks = h.path("marks");
    std::fs::create_dir(&marks).unwrap();
    h.get("web").hooks.before = Some(format!(
        "if mkdir {m}/inside 2>/dev/null; then sleep 0.2; rmdir {m}/inside; else echo overlap >>{m}/overlaps; fi",
        m = marks.display()
    ));
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    let lock = h.state_dir().join("web.lock");
    const ROUNDS: usize = 20;
    for round in 1..=ROUNDS {
        h.edit("web", "app.txt", &format!("v{round}"));
        // a pid no process has now
        let dead = (900_000..)
            .find(|p| !Path::new("/proc").join(p.to_string()).exists())
            .unwrap();
        let owner = format!("{dead} {}\n", boot.trim());
        let _ = std::fs::remove_file(&lock);
        if older {
            std::fs::create_dir(&lock).unwrap();
            std::fs::write(lock.join("owner"), owner).unwrap();
        } else {
            std::fs::write(&lock, owner).unwrap();
        }
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(|| h.apply());
            let b = s.spawn(|| h.apply());
            (a.join().unwrap(), b.join().unwrap())
        });
        let words: Vec<&str> = [&a, &b]
            .iter()
            .map(|r| r.done("web").map_or("-", |(w, _, _)| w))
            .collect();
        let dump = || format!("round {round}: {words:?}\n{a}\n{b}");
        assert!(
            !marks.join("overlaps").exists(),
            "two applies held the lock at once: {}",
            dump()
        );
        let took_over = [&a, &b]
            .iter()
            .filter(|r| r.stdout.contains("stale lock recovered"))
            .count();
        assert!(took_over <= usize::from(older), "{}", dump());
        assert!(words.contains(&"rebuilt"), "{}", dump());
        assert!(
            words.iter().all(|w| *w == "rebuilt" || *w == "locked"),
            "{}",
            dump()
        );
        assert!(lock.is_file(), "round {round}: a flock'd file");
        let free = Command::new("flock")
            .args(["-n", "-E", "75"])
            .arg(&lock)
            .arg("true")
            .status()
            .unwrap();
        assert!(free.success(), "round {round}: the lock is held");
        assert_eq!(h.read("web", "app.txt"), Some(format!("v{round}")));
        assert_eq!(h.state("web")["last_result"], "ok", "{}", dump());
        assert_eq!(h.state_images("web"), h.running("web"), "{}", dump());
        h.no_leftovers("web");
    }
}

/// Issue 18, defect 4, for this rbuild's locks (flock'd files): see
/// [`two_applies_at_a_stale_lock`].
#[test]
fn two_applies_never_both_take_over_a_stale_lock() {
    two_applies_at_a_stale_lock(false);
}

/// The same race at an older rbuild's lock directory.
#[test]
fn two_applies_never_both_take_over_an_older_rbuilds_stale_lock_directory() {
    two_applies_at_a_stale_lock(true);
}

/// An older rbuild's lock directory whose holder is gone is taken over once,
/// and said: a run killed on this boot (a pid no process has), and a run
/// from before a reboot (pid 1 lives, but the boot is another). Each time
/// the stack is rebuilt, the note says so, and the lock is this rbuild's
/// flock'd file, free after.
#[test]
fn an_older_rbuilds_lock_directory_from_a_dead_run_or_another_boot_is_taken_over() {
    let mut h = built();
    let lock = h.state_dir().join("web.lock");
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    let dead = (900_000..)
        .find(|p| !Path::new("/proc").join(p.to_string()).exists())
        .unwrap();
    for (version, owner) in [
        ("v2", format!("{dead} {}\n", boot.trim())),
        ("v3", "1 00000000-0000-0000-0000-000000000000\n".to_owned()),
    ] {
        let _ = std::fs::remove_file(&lock);
        std::fs::create_dir(&lock).unwrap();
        std::fs::write(lock.join("owner"), &owner).unwrap();
        h.edit("web", "app.txt", version);
        h.apply()
            .expect_done("web", "rebuilt")
            .expect_note("web", "stale lock recovered");
        assert_eq!(h.read("web", "app.txt").as_deref(), Some(version));
        assert_eq!(h.state("web")["last_result"], "ok");
        assert_eq!(h.state_images("web"), h.running("web"));
        assert!(lock.is_file(), "{owner}: a flock'd file from now on");
        let c = h.check(&[("web", "x", 60)], false, false);
        assert_eq!(c.recorded("web").locked_by, None, "{owner}: released");
        h.no_leftovers("web");
    }
}
