//! [`Fleet`]: the hosts of one test, each a small machine of its own
//! (`scripts/testhosts.sh` in own-engine mode), the stacks they run, the
//! inventory naming them, and what a test reads or breaks on a host: its
//! files, its engine, its sshd.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use super::docker::{Container, DockerGuard, Engine};
use super::inventory::{Inventory, Rollout, SharedStack, Stack};
use super::registry::ManifestGuard;
use super::runs::{Run, rbuild_command, run_command};
use super::stacks::StackDef;
use super::{claim_prefix, sh, testhosts_script};

/// Host index blocks: every fleet gets its own range, within 1000..2000
/// (1..=20 are the demo's, 2001 and up the benchmark's), so its addresses
/// (198.18.x.y) and network namespaces are its own. The start depends on
/// the pid so two suites running at once rarely collide, and `up` is
/// retried on the next block if they do.
const BLOCK: u32 = 10;
fn next_block() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let k = NEXT.fetch_add(1, Ordering::SeqCst);
    1000 + ((std::process::id() % 4) * 250 + k * BLOCK) % 1000
}

/// Where fleets keep their files, hosts' engine data (`hK/docker`)
/// included: /dev/shm, a tmpfs, when there is one. On the disk's ext4,
/// every host unpacking the base image and then `down` deleting its engine
/// data made the inode allocator the suite's biggest cost (ext4's
/// `recently_deleted` scans); a tmpfs has no such cost, and a host's data
/// is a few MiB.
fn scratch_dir() -> PathBuf {
    let shm = Path::new("/dev/shm");
    let tmpfs = std::fs::read_to_string("/proc/self/mounts")
        .unwrap_or_default()
        .lines()
        .any(|l| {
            l.split_whitespace().take(3).collect::<Vec<_>>() == ["tmpfs", "/dev/shm", "tmpfs"]
        });
    if tmpfs && shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// A directory's files, recursively: relative path -> (mode, contents);
/// directories end in `/`.
pub type Snapshot = BTreeMap<String, (u32, Vec<u8>)>;

/// Everything a host holds, to prove later that a run did not touch it:
/// its state directory (state files, history, rebuild logs, locks) and
/// stack directories byte for byte, and every container (ID, image, status,
/// health) and image of its engine.
#[derive(Debug, PartialEq, Eq)]
pub struct HostView {
    pub state: Snapshot,
    pub srv: Snapshot,
    pub containers: Vec<Container>,
    pub images: Vec<String>,
}

/// N real sshd test hosts h1..hN, each with its own address, Docker engine
/// and filesystem; the stacks they run, and the inventory naming them.
pub struct Fleet {
    /// Root of everything local to the test (stacks, inventory, hosts).
    pub root: tempfile::TempDir,
    /// The testhosts.sh DIR (ssh_config, hK/state, hK/srv, hK/sshd.log,
    /// hK/run/docker.sock).
    pub th: PathBuf,
    /// `t<abbrev><token>`: every stack name of this test starts so.
    pub prefix: String,
    pub hosts: usize,
    /// The inventory rbuild is given (written before each run).
    inventory: RefCell<Inventory>,
    /// The local directory of each stack, by name.
    dirs: RefCell<BTreeMap<String, PathBuf>>,
    /// Images the test built on the machine's engine (to push them).
    local: DockerGuard,
    /// Manifests the test pushed to the local registry.
    manifests: ManifestGuard,
}

impl Fleet {
    /// `n` hosts h1..hN, up: accepting ssh, their engines answering.
    pub fn new(abbrev: &str, n: usize) -> Fleet {
        Fleet::with_env(abbrev, n, &[])
    }

    /// Like [`Fleet::new`], with environment for `testhosts.sh up`, e.g.
    /// `RBUILD_TESTHOST_COMPOSE_V1=h2` or `RBUILD_TESTHOST_LEGACY_BUILDER=h2`
    /// (that host builds with the legacy builder; the others with BuildKit).
    pub fn with_env(abbrev: &str, n: usize, env: &[(&str, &str)]) -> Fleet {
        assert!(n as u32 <= BLOCK);
        let prefix = claim_prefix(abbrev);
        let root = tempfile::Builder::new()
            .prefix(&format!("rbuild-{prefix}-"))
            .tempdir_in(scratch_dir())
            .unwrap();
        let th = root.path().join("th");
        let mut inventory = Inventory::default();
        // no watcher after a gate: it holds the stack's lock for a minute
        // (the tests of it set their own window)
        inventory.defaults.watch = Some("0".into());
        for k in 1..=n {
            inventory.host(&format!("h{k}"));
        }
        let f = Fleet {
            root,
            th,
            prefix,
            hosts: n,
            inventory: RefCell::new(inventory),
            dirs: RefCell::new(BTreeMap::new()),
            local: DockerGuard::default(),
            manifests: ManifestGuard::default(),
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
                .env("RBUILD_TESTHOST_ENGINE", "own")
                // generous: hosts of parallel tests boot at once on 2 cores
                .env("RBUILD_TESTHOST_TIMEOUT", "120")
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

    /// Write `def` into `stacks/LABEL/` and remember it as stack `name`'s
    /// directory; returns its compose file relative to the root.
    fn place(&self, label: &str, name: &str, def: &StackDef) -> String {
        let rel = Path::new("stacks").join(label);
        let dir = self.root.path().join(&rel);
        def.write_to(&dir);
        self.dirs.borrow_mut().insert(name.to_owned(), dir);
        rel.join(def.compose_file_name())
            .to_str()
            .unwrap()
            .to_owned()
    }

    /// Add `def` as stack `stack` of `host`; returns its name. Its entry can
    /// be changed with [`Fleet::edit_inventory`] (`inv.stack(host, name)`).
    pub fn add_stack(&self, host: &str, stack: &str, def: &StackDef) -> String {
        let name = self.name(host, stack);
        let compose_file = self.place(&format!("{host}-{stack}"), &name, def);
        self.edit_inventory(|inv| {
            inv.host(host).stacks.push(Stack {
                name: name.clone(),
                compose_file,
                ..Stack::default()
            })
        });
        name
    }

    /// The name of shared stack `stack`: the same on every host that runs
    /// it (one compose project on each host's engine).
    pub fn shared_name(&self, stack: &str) -> String {
        format!("{}-{stack}", self.prefix)
    }

    /// Add `def` as a top-level shared stack `stack`, run by `hosts` and by
    /// the hosts of `groups`, with `rollout` if given; returns its name.
    pub fn add_shared_stack(
        &self,
        stack: &str,
        def: &StackDef,
        hosts: &[&str],
        groups: &[&str],
        rollout: Option<Rollout>,
    ) -> String {
        let name = self.shared_name(stack);
        let compose_file = self.place(&format!("shared-{stack}"), &name, def);
        self.edit_inventory(|inv| {
            for h in hosts {
                inv.host(h);
            }
            inv.stacks.insert(
                name.clone(),
                SharedStack {
                    compose_file,
                    hosts: hosts.iter().map(|h| h.to_string()).collect(),
                    groups: groups.iter().map(|g| g.to_string()).collect(),
                    rollout,
                    ..SharedStack::default()
                },
            );
        });
        name
    }

    /// Change the inventory (a value): every later run is given it.
    pub fn edit_inventory<R>(&self, f: impl FnOnce(&mut Inventory) -> R) -> R {
        f(&mut self.inventory.borrow_mut())
    }

    /// The inventory as it stands.
    pub fn inventory(&self) -> Inventory {
        self.inventory.borrow().clone()
    }

    /// The inventory's YAML text, as rbuild is given it.
    pub fn inventory_text(&self) -> String {
        self.inventory.borrow().to_yaml()
    }

    /// Put `host` in `groups` (its `groups:` key).
    pub fn set_groups(&self, host: &str, groups: &[&str]) {
        self.edit_inventory(|inv| {
            inv.host(host).groups = groups.iter().map(|g| g.to_string()).collect()
        });
    }

    /// Log in to `host` as `user` (the host's `user:`).
    pub fn set_user(&self, host: &str, user: &str) {
        self.edit_inventory(|inv| inv.host(host).user = Some(user.to_owned()));
    }

    /// Remove the image reference `r` (`repo:tag`) of the machine's engine
    /// on drop.
    pub fn track_ref(&self, r: &str) {
        self.local.image_ref(r);
    }

    /// Remove image `id` of the machine's engine on drop, once no tag names
    /// it (never forced).
    pub fn track_image(&self, id: &str) {
        self.local.image(id);
    }

    /// Delete the manifest `digest` of `repo` from the local registry on drop.
    pub fn track_manifest(&self, repo: &str, digest: &str) {
        self.manifests.manifest(repo, digest);
    }

    /// Build `dockerfile` on the machine's engine (in the test's directory
    /// `label`) and push it to the local registry as `repo:tag`; returns the
    /// image ID. The tag and the image are removed on drop, the manifest
    /// deleted from the registry.
    pub fn push_image(&self, label: &str, repo: &str, tag: &str, dockerfile: &str) -> String {
        let ctx = self.root.path().join(label);
        std::fs::create_dir_all(&ctx).unwrap();
        std::fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
        let reference = format!("{}/{repo}:{tag}", crate::support::REGISTRY);
        self.track_ref(&reference);
        let local = Engine::local();
        local.docker(&["build", "-q", "-t", &reference, ctx.to_str().unwrap()]);
        let id = local.image_id(&reference);
        self.track_image(&id);
        local.docker(&["push", "-q", &reference]);
        self.track_manifest(repo, &crate::support::registry_digest(repo, tag));
        id
    }

    /// One `web` sleeper stack on every host; returns the names, h1 first.
    pub fn web_everywhere(&self) -> Vec<String> {
        self.host_names()
            .iter()
            .map(|h| self.add_stack(h, "web", &StackDef::sleeper("v1")))
            .collect()
    }

    /// The local directory of stack `name`.
    pub fn local_dir(&self, name: &str) -> PathBuf {
        self.dirs
            .borrow()
            .get(name)
            .unwrap_or_else(|| panic!("no stack {name}"))
            .clone()
    }

    /// Change (or add) a file of stack `name` locally.
    pub fn write(&self, name: &str, rel: &str, contents: &str) {
        std::fs::write(self.local_dir(name).join(rel), contents).unwrap();
    }

    pub fn inventory_path(&self) -> PathBuf {
        self.root.path().join("inventory.yaml")
    }

    /// `rbuild -F ssh_config -i inventory.yaml ARGS` (no `--json`), run in
    /// the test's root directory, not yet started; writes the inventory.
    pub fn command(&self, args: &[&str]) -> Command {
        std::fs::write(self.inventory_path(), self.inventory_text()).unwrap();
        self.command_raw(args)
    }

    /// Like [`Fleet::command`] but leaves inventory.yaml as it is.
    pub fn command_raw(&self, args: &[&str]) -> Command {
        let mut c = rbuild_command();
        // the controller's cache (the trees of what it shipped) is the test's
        c.env("RBUILD_CACHE_DIR", self.root.path().join("cache"));
        // and so is its state (`-q`'s memory, when each digest was first seen)
        c.env("XDG_STATE_HOME", self.root.path().join("state"));
        c.current_dir(self.root.path())
            .arg("-F")
            .arg(self.th.join("ssh_config"))
            .arg("-i")
            .arg(self.inventory_path())
            .args(args);
        c
    }

    /// Start `c` in the background and wait until a new container of stack
    /// `name` on `host` (one not on `old_image`) waits in its health gate
    /// (`starting`: a closed gate, see `StackDef::behind_gate`); panics
    /// with the run's output if it ended first.
    pub fn spawn_into_gate(
        &self,
        c: Command,
        host: &str,
        name: &str,
        old_image: Option<&str>,
    ) -> crate::support::Background {
        let mut bg = crate::support::Background::spawn(c);
        crate::support::wait_for(
            &format!("{host} {name}: a run waiting in its health gate"),
            || {
                !bg.running()
                    || self
                        .containers(host, name)
                        .iter()
                        .any(|c| Some(c.image.as_str()) != old_image && c.health == "starting")
            },
        );
        if !bg.running() {
            panic!("the run ended early: {}", bg.finish().dump());
        }
        bg
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

    /// Run against inventory `text` as written: for INVALID inventories
    /// only (a valid one is a value, see [`Fleet::edit_inventory`]).
    pub fn run_inventory(&self, text: &str, args: &[&str]) -> Run {
        std::fs::write(self.inventory_path(), text).unwrap();
        run_command(self.command_raw(args))
    }

    // -- the hosts ----------------------------------------------------

    /// `testhosts.sh SUB TH HOST`: e.g. `engine-stop`, `socket-gone`,
    /// `disk-full` (see the script's header).
    pub fn testhosts(&self, sub: &str, host: &str) {
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

    /// Silently drop tcp/22 to the host (a rule in the host's own network
    /// namespace: it goes with the host).
    pub fn drop_packets(&self, host: &str) {
        self.testhosts("drop", host);
    }

    /// The host's address (198.18.x.y), as `testhosts.sh addr` prints it.
    pub fn addr(&self, host: &str) -> String {
        sh(Command::new(testhosts_script())
            .arg("addr")
            .arg(&self.th)
            .arg(host))
        .trim()
        .to_owned()
    }

    /// The host's own Docker engine.
    pub fn engine(&self, host: &str) -> Engine {
        Engine::at(&self.host_dir(host).join("run/docker.sock"), host)
    }

    /// `docker ARGS` on the host's engine, its stdout; panics if it fails.
    pub fn docker(&self, host: &str, args: &[&str]) -> String {
        self.engine(host).docker(args)
    }

    /// Every container of compose project `project` on the host's engine.
    pub fn containers(&self, host: &str, project: &str) -> Vec<Container> {
        self.engine(host).containers(project)
    }

    /// The one container of a one-service project on the host.
    pub fn the_container(&self, host: &str, project: &str) -> Container {
        self.engine(host).the_container(project)
    }

    /// Assert the project runs exactly one container on the host, running
    /// (and healthy if it has a healthcheck); returns it.
    pub fn assert_running(&self, host: &str, project: &str) -> Container {
        self.engine(host).assert_running(project)
    }

    /// Read a file from inside a container of the host.
    pub fn container_file(&self, host: &str, id: &str, path: &str) -> String {
        self.engine(host).container_file(id, path)
    }

    /// What the host holds now (files, containers, images).
    pub fn view(&self, host: &str) -> HostView {
        let e = self.engine(host);
        HostView {
            state: Fleet::snapshot(&self.state_dir(host)),
            srv: Fleet::snapshot(&self.srv_dir(host)),
            containers: e.all_containers(),
            images: e.images(),
        }
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

    /// The stack's lock on the host (a file held with flock; see `lock_owner`).
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

    /// The stack's log on the host (`STATE_DIR/NAME.log`: its last
    /// rebuild's build and up output); empty if missing.
    pub fn build_log(&self, host: &str, name: &str) -> String {
        std::fs::read_to_string(self.state_dir(host).join(format!("{name}.log")))
            .unwrap_or_default()
    }

    /// Which builder built the stack's last rebuild on the host (see
    /// [`builder_of`]).
    pub fn builder(&self, host: &str, name: &str) -> &'static str {
        builder_of(&self.build_log(host, name))
    }

    /// The state file's text, if any.
    pub fn state_text(&self, host: &str, name: &str) -> Option<String> {
        std::fs::read_to_string(self.state_path(host, name)).ok()
    }

    /// The state file as key=value pairs; panics if missing.
    /// The stack's state file as its keys. Besides the file's own keys,
    /// `prev_images` is the images of the generation a rollback goes back to
    /// (the newest kept one older than the running one; `-`: none), and
    /// `generations` the kept generations' numbers, comma-joined.
    pub fn state(&self, host: &str, name: &str) -> BTreeMap<String, String> {
        let text = self
            .state_text(host, name)
            .unwrap_or_else(|| panic!("no state file for {name} on {host}"));
        let mut st: BTreeMap<String, String> = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .filter(|(k, _)| *k != "generation")
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let gens: Vec<(u64, String)> = text
            .lines()
            .filter_map(|l| l.strip_prefix("generation="))
            .filter_map(|g| {
                let w: Vec<&str> = g.split_whitespace().collect();
                Some((w.first()?.parse().ok()?, w.get(3)?.to_string()))
            })
            .collect();
        if st.get("version").map(String::as_str) == Some("2") {
            let running: u64 = st.get("gen").and_then(|g| g.parse().ok()).unwrap_or(0);
            let prev = gens
                .iter()
                .filter(|(g, _)| *g < running)
                .max_by_key(|(g, _)| *g)
                .map_or("-".to_owned(), |(_, images)| images.clone());
            st.insert("prev_images".into(), prev);
            let numbers: Vec<String> = gens.iter().map(|(g, _)| g.to_string()).collect();
            st.insert("generations".into(), numbers.join(","));
        }
        st
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
    pub fn snapshot(dir: &Path) -> Snapshot {
        let mut out = BTreeMap::new();
        fn walk(base: &Path, dir: &Path, out: &mut Snapshot) {
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

/// Which builder printed a rebuild's output (a stack's `NAME.log`):
/// `buildkit` (`#N [SERVICE internal] load build definition`, its steps in
/// no fixed order), `legacy` (`Step 1/N : FROM`), or `none`.
pub fn builder_of(log: &str) -> &'static str {
    let buildkit = log.lines().any(|l| {
        l.strip_prefix('#').is_some_and(|rest| {
            let (n, step) = rest.split_once(' ').unwrap_or_default();
            !n.is_empty()
                && n.bytes().all(|b| b.is_ascii_digit())
                && step.starts_with('[')
                && step.contains("internal] load build definition")
        })
    });
    let legacy = log.lines().any(|l| l.starts_with("Step 1/"));
    match (buildkit, legacy) {
        (true, false) => "buildkit",
        (false, true) => "legacy",
        (false, false) => "none",
        (true, true) => panic!("both builders' output in one log:\n{log}"),
    }
}

/// The last `n` lines of a file (empty if it cannot be read).
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

impl Drop for Fleet {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // what the hosts saw, for the failure's report
            for h in self.host_names() {
                for log in ["sshd.log", "dockerd.log"] {
                    let p = self.host_dir(&h).join(log);
                    eprintln!("--- {h}/{log} (last lines)\n{}", tail(&p, 15));
                }
            }
        }
        // each host's engine, containers, images, files and iptables rules
        // go with it
        let _ = Command::new(testhosts_script())
            .arg("down")
            .arg(&self.th)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .status();
        // then the fields: the root dir, the machine's images, manifests
    }
}
