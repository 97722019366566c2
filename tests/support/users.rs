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
/// hosts share. Removed with its home on drop.
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
