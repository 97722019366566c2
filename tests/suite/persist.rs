//! `--persist SECS` (issue 22, "Warm connections"): a run leaves each
//! host's ssh master in a private per-user directory, the next run within
//! the window goes through it with no handshake (the host's sshd accepts no
//! new login), a master killed or stopped is replaced without a word, and a
//! directory open to others is refused before any host is contacted.
//!
//! Each test gives rbuild a short `XDG_RUNTIME_DIR` of its own (a socket's
//! path is bounded), so its masters are its own; they are told to exit
//! (`ssh -O exit`) when the test ends.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::runs::Run;
use crate::support::*;

/// A test's runtime directory and the masters rbuild keeps in it.
struct Runtime(tempfile::TempDir);

impl Runtime {
    fn new() -> Runtime {
        // /tmp/rbpXXXXXX/rbuild/ssh: 25 bytes, within the 32 a socket's
        // directory may have
        Runtime(
            tempfile::Builder::new()
                .prefix("rbp")
                .tempdir_in("/tmp")
                .unwrap(),
        )
    }

    fn path(&self) -> &Path {
        self.0.path()
    }

    /// Where rbuild keeps the sockets.
    fn control_dir(&self) -> PathBuf {
        self.path().join("rbuild/ssh")
    }

    /// The sockets there, by name.
    fn sockets(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(self.control_dir())
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// The one socket; panics unless there is exactly one.
    fn socket(&self) -> PathBuf {
        let s = self.sockets();
        assert_eq!(s.len(), 1, "want one socket: {s:?}");
        s[0].clone()
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        for s in self.sockets() {
            let _ = Command::new("ssh")
                .arg("-S")
                .arg(&s)
                .args(["-O", "exit", "x"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// `ssh -O check`: the pid of the master behind `socket`, if one answers.
fn master_pid(socket: &Path) -> Option<u32> {
    let out = Command::new("ssh")
        .arg("-S")
        .arg(socket)
        .args(["-O", "check", "x"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stderr);
    let pid = text.split("pid=").nth(1)?.split(')').next()?;
    pid.parse().ok()
}

/// `rbuild --json --persist 60 ARGS` with the test's runtime directory.
fn run(f: &Fleet, rt: &Runtime, args: &[&str]) -> Run {
    let mut a = vec!["--json", "--persist", "60"];
    a.extend_from_slice(args);
    let mut c = f.command(&a);
    c.env("XDG_RUNTIME_DIR", rt.path());
    run_command(c)
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

#[test]
fn a_kept_master_answers_and_the_next_run_goes_through_it_without_a_handshake() {
    let f = Fleet::new("persist", 1);
    let names = f.web_everywhere();
    let rt = Runtime::new();
    let first = run(&f, &rt, &[]);
    first
        .assert_code(0)
        .expect("h1", &names[0], "rebuilt", "first_build");

    // the directory is the user's own, closed to others; one socket, named
    // HASH-%C, whose master answers
    let mode = std::fs::metadata(rt.control_dir())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700, "{mode:o}");
    let socket = rt.socket();
    let name = socket.file_name().unwrap().to_str().unwrap().to_owned();
    let (hash, conn) = name.split_once('-').unwrap();
    assert_eq!((hash.len(), conn.len()), (12, 40), "{name}");
    assert!(
        name.chars().all(|c| c == '-' || c.is_ascii_hexdigit()),
        "{name}"
    );
    let pid = master_pid(&socket).expect("the kept master answers `ssh -O check`");

    // the next run: through it, no new login; the same master after
    let logins = f.accepted_logins("h1");
    let commands = f.remote_commands("h1");
    let again = run(&f, &rt, &[]);
    again
        .assert_code(0)
        .expect("h1", &names[0], "skipped", "up_to_date");
    assert_eq!(
        f.accepted_logins("h1"),
        logins,
        "no handshake:\n{}",
        again.dump()
    );
    assert_eq!(
        f.remote_commands("h1"),
        commands + 1,
        "one command, the check"
    );
    assert_eq!(rt.socket(), socket);
    assert_eq!(master_pid(&socket), Some(pid), "the same master");

    // `status` and a dry run go through it too
    let status = {
        let mut c = f.command(&["--persist", "60", "status", "--json"]);
        c.env("XDG_RUNTIME_DIR", rt.path());
        run_command(c)
    };
    assert_eq!(status.code, 0, "{}", status.dump());
    run(&f, &rt, &["--dry-run"]).assert_code(0);
    assert_eq!(f.accepted_logins("h1"), logins, "no handshake");

    // a change is rebuilt through it: ship and apply as a second command
    f.write(&names[0], "Dockerfile", &sleeper_dockerfile("v2"));
    run(&f, &rt, &[])
        .assert_code(0)
        .expect("h1", &names[0], "rebuilt", "config_changed");
    assert_eq!(f.accepted_logins("h1"), logins, "no handshake");
    assert_eq!(master_pid(&socket), Some(pid));

    // without --persist: a connection of its own, as before; the kept
    // master is neither used nor touched
    let plain = f.run(&[]);
    plain
        .assert_code(0)
        .expect("h1", &names[0], "skipped", "up_to_date");
    assert_eq!(f.accepted_logins("h1"), logins + 1, "its own handshake");
    assert_eq!(rt.sockets(), vec![socket.clone()]);
    assert_eq!(master_pid(&socket), Some(pid));
}

#[test]
fn a_killed_or_stopped_master_is_replaced_without_a_word() {
    let f = Fleet::new("persistdead", 1);
    let names = f.web_everywhere();
    let rt = Runtime::new();
    run(&f, &rt, &[]).assert_code(0);
    let socket = rt.socket();
    let pid = master_pid(&socket).unwrap();

    // killed: its socket stays behind, refusing connections
    signal(pid, "KILL");
    wait_for("the master to die", || !alive(pid));
    assert!(socket.exists(), "SIGKILL leaves the socket");
    let logins = f.accepted_logins("h1");
    let run2 = run(&f, &rt, &[]);
    run2.assert_code(0)
        .expect("h1", &names[0], "skipped", "up_to_date");
    assert!(!run2.stderr.contains("warning"), "{}", run2.dump());
    assert_eq!(f.accepted_logins("h1"), logins + 1, "a new master");
    let pid2 = master_pid(&rt.socket()).expect("a new master answers");
    assert_ne!(pid2, pid);

    // stopped: it accepts on its socket and never answers
    std::thread::sleep(Duration::from_secs(4)); // older than a starting master
    signal(pid2, "STOP");
    let t = std::time::Instant::now();
    let run3 = run(&f, &rt, &[]);
    let took = t.elapsed();
    signal(pid2, "KILL");
    // not waited out: its socket was given up on after a second
    assert!(took < Duration::from_secs(8), "{took:?}\n{}", run3.dump());
    run3.assert_code(0)
        .expect("h1", &names[0], "skipped", "up_to_date");
    assert!(!run3.stderr.contains("warning"), "{}", run3.dump());
    assert_eq!(f.accepted_logins("h1"), logins + 2, "another new master");
    let pid3 = master_pid(&rt.socket()).expect("a new master answers");
    assert!(pid3 != pid2 && pid3 != pid);
}

/// A run refused before any host is contacted: its inventory names a host
/// nothing listens for.
fn refused_run(rt: &Runtime) -> Run {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("web")).unwrap();
    std::fs::write(
        d.path().join("web/compose.yaml"),
        "services:\n  web:\n    image: busybox\n",
    )
    .unwrap();
    std::fs::write(
        d.path().join("inventory.yaml"),
        "hosts:\n  h1:\n    address: 192.0.2.1\n    stacks:\n      - name: web\n        compose_file: web/compose.yaml\n",
    )
    .unwrap();
    let mut c = rbuild_command();
    c.current_dir(d.path())
        .args([
            "-i",
            "inventory.yaml",
            "--persist",
            "1m",
            "--connect-timeout",
            "1",
        ])
        .env("XDG_RUNTIME_DIR", rt.path());
    run_command(c)
}

#[test]
fn a_control_directory_open_to_others_or_someone_else_s_is_refused() {
    let rt = Runtime::new();
    std::fs::create_dir_all(rt.control_dir()).unwrap();
    let dir = rt.control_dir();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let r = refused_run(&rt);
    assert_eq!(r.code, 2, "{}", r.dump());
    assert!(
        r.stderr.contains("is open to others (mode 0755)")
            && r.stderr.contains("hint: `chmod 700 "),
        "{}",
        r.dump()
    );
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    // nobody's
    sh(Command::new("chown").args(["65534"]).arg(&dir));
    let r = refused_run(&rt);
    assert_eq!(r.code, 2, "{}", r.dump());
    assert!(r.stderr.contains("belongs to user 65534"), "{}", r.dump());
    sh(Command::new("chown").args(["0"]).arg(&dir));
}
