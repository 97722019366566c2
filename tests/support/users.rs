//! Login users other than root, for hosts whose `user:` is not root.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use super::token;

/// A local user whose login shell is `shell`, in the `docker` group (so it
/// may use every test host's engine: their sockets are the `docker`
/// group's), with no password (not locked: sshd without PAM refuses locked
/// accounts). The test hosts take the test key for every user (one
/// AuthorizedKeysFile); its home is on the machine's filesystem, which the
/// hosts share. It has the machine's buildx plugin (root's, which it
/// cannot read under /root) in its own `~/.docker/cli-plugins`, so its
/// builds use BuildKit as root's do; not root's Compose v2 plugin: such a
/// user's hosts are Compose v1 hosts, as before. Removed with its home on
/// drop.
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
        give_buildx(&name, &home);
        LoginUser { name, home }
    }
}

/// Where the machine's buildx plugin is (scripts/setup-deps.sh puts it in
/// root's plugins), if anywhere.
fn machine_buildx() -> Option<PathBuf> {
    [
        "/root/.docker/cli-plugins",
        "/usr/local/lib/docker/cli-plugins",
        "/usr/local/libexec/docker/cli-plugins",
        "/usr/lib/docker/cli-plugins",
        "/usr/libexec/docker/cli-plugins",
    ]
    .iter()
    .map(|d| Path::new(d).join("docker-buildx"))
    .find(|p| p.is_file())
}

/// `~NAME/.docker/cli-plugins/docker-buildx`: a hard link to the machine's
/// plugin (a copy if the homes are on another filesystem); the directories
/// are the user's, so buildx can keep its state in `~/.docker/buildx`.
fn give_buildx(name: &str, home: &Path) {
    let Some(plugin) = machine_buildx() else {
        return;
    };
    let dir = home.join(".docker/cli-plugins");
    std::fs::create_dir_all(&dir).unwrap();
    let to = dir.join("docker-buildx");
    if std::fs::hard_link(&plugin, &to).is_err() {
        std::fs::copy(&plugin, &to).unwrap();
    }
    let out = Command::new("chown")
        .args([&format!("{name}:"), home.join(".docker").to_str().unwrap()])
        .args([dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "chown {name}'s ~/.docker: {out:?}");
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
