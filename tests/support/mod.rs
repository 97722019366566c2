//! Fixtures for the integration tests: real sshd test hosts, each a small
//! machine of its own (`scripts/testhosts.sh` in own-engine mode: its own
//! network namespace and address, its own Docker engine, its own filesystem
//! for `/var/lib/rbuild` and `/srv/rbuild`), and the built `rbuild`.
//!
//! A test reads like a spec:
//!
//! ```ignore
//! let f = Fleet::new("first", 3);          // h1..h3, each with its engine
//! let names = f.web_everywhere();          // one tiny stack per host
//! let run = f.run(&[]);                    // rbuild -F .. -i .. --json
//! assert_eq!(run.row("h1", &names[0])["action"], "rebuilt");
//! let c = f.assert_running("h1", &names[0]); // on h1's own engine
//! ```
//!
//! Modules, one per concern:
//! - [`stacks`]: the files of test stacks (Dockerfiles, compose files);
//! - [`inventory`]: the inventory as a value, serialized to YAML;
//! - [`docker`]: a Docker engine (a host's, or the machine's for local mode)
//!   and what runs on it;
//! - [`users`]: login users other than root;
//! - [`registry`]: the local image registry;
//! - [`runs`]: running `rbuild` and reading what it reported;
//! - [`fleet`]: the hosts of one test, their stacks and their files;
//! - [`net`]: faults on the wire (a link cut after N bytes).
//!
//! Everything a test creates is its own and is removed on drop, panics
//! included: a host's teardown removes its engine, containers, images and
//! files; what lives on the machine (local-mode projects, images built here,
//! manifests pushed to the registry) has a guard of its own.

#![allow(dead_code)]

pub mod docker;
pub mod fleet;
pub mod inventory;
pub mod net;
pub mod registry;
pub mod runs;
pub mod stacks;
pub mod users;

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use docker::{Container, DockerGuard, Engine};
pub use fleet::{Fleet, HostView, builder_of};
pub use inventory::{Hooks, Rollout};
pub use net::{Cutter, Slow};
pub use registry::{REGISTRY, registry_digest};
pub use runs::{Background, peak_rss_kib, rbuild_command, run_command};
pub use stacks::{
    BASE_IMAGE, StackDef, compose, dockerfile, healthcheck, httpd_dockerfile, httpd_extra,
    sleeper_cmd, sleeper_dockerfile,
};
pub use users::LoginUser;

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
/// never share a name on the machine (local-mode projects, users, images).
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

/// Poll `f` until it is true; panic after [`PATIENCE`] with `what`.
/// Who holds a stack's lock (`STATE_DIR/NAME.lock`, a file held with flock
/// and holding "PID BOOT_ID" while held, emptied after; a holder killed
/// leaves its pid, and the kernel lets go): `None` when no live process
/// does. (The test hosts share this machine's pid namespace.)
pub fn lock_owner(lock: &std::path::Path) -> Option<String> {
    std::fs::read_to_string(lock)
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .filter(|s| {
            let pid = s.split_whitespace().next().unwrap_or("");
            std::path::Path::new("/proc").join(pid).exists()
        })
}

pub fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        if start.elapsed() > PATIENCE {
            panic!("gave up waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

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
