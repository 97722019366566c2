//! `--persist`: the private per-user directory where the ssh masters of
//! earlier runs wait, each socket named for how rbuild connects to its host,
//! and the look at a socket before it is reused.
//!
//! A master's socket is `DIR/<hash>-%C`: the hash covers rbuild's own ssh
//! arguments for the host (user, port, key, `-F` file, the host's
//! `ssh_options`), `%C` is ssh's own hash of where they lead (local host,
//! the resolved host name, port, user), so a master is reused only by a
//! connection made the same way to the same place, and a changed ssh config
//! gets a master of its own.

use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// A socket path ssh can bind on every Unix: `sockaddr_un` holds 104 bytes
/// on macOS (108 on Linux), its NUL included.
const SUN_PATH: usize = 104;
/// ssh binds `PATH.` and 16 random characters, then links the name.
const SSH_TEMP_SUFFIX: usize = 17;
/// Hex characters of rbuild's own hash of a host's ssh arguments.
pub const HASH_LEN: usize = 12;
/// `%C`: a SHA-1, in hex.
const CONN_HASH_LEN: usize = 40;
/// How long a master has to say hello before its socket is given up on.
const HELLO_WAIT: Duration = Duration::from_secs(1);
/// A socket younger than this may be a master of a run starting right now:
/// it is left alone even when it does not answer yet.
const YOUNG: Duration = Duration::from_secs(3);

/// The longest directory a socket name fits after.
const MAX_DIR_LEN: usize = SUN_PATH - 1 - SSH_TEMP_SUFFIX - CONN_HASH_LEN - 1 - HASH_LEN - 1;

/// The control directory cannot be used: someone else's, or open to others.
#[derive(Debug, thiserror::Error)]
#[error("{message}\nhint: {hint}")]
pub struct DirError {
    pub message: String,
    pub hint: String,
}

/// The effective user id: the owner of a file this process creates.
fn euid() -> std::io::Result<u32> {
    Ok(tempfile::tempfile()?.metadata()?.uid())
}

/// The directory for `--persist`'s sockets: `$XDG_RUNTIME_DIR/rbuild/ssh`
/// when the runtime directory is set (and short enough for a socket's
/// name), else `/tmp/rbuild-ssh-UID`; created 0700, and refused when it is
/// not a directory of this user's that only this user can enter.
pub fn control_dir() -> Result<PathBuf, DirError> {
    let io = |what: &str, p: &Path, e: std::io::Error| DirError {
        message: format!("--persist: cannot {what} `{}`: {e}", p.display()),
        hint:
            "run with `--persist 0` (the default), or set XDG_RUNTIME_DIR to a directory of yours"
                .to_owned(),
    };
    let uid = euid().map_err(|e| io("create a file in", &std::env::temp_dir(), e))?;
    let runtime = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|d| d.is_absolute() && d.is_dir())
        .map(|d| d.join("rbuild/ssh"))
        .filter(|d| d.as_os_str().len() <= MAX_DIR_LEN);
    let dir = match runtime {
        Some(d) => {
            let parent = d.parent().expect("rbuild/ssh has a parent");
            make_dir(parent).map_err(|e| io("create", parent, e))?;
            d
        }
        None => PathBuf::from(format!("/tmp/rbuild-ssh-{uid}")),
    };
    make_dir(&dir).map_err(|e| io("create", &dir, e))?;
    let meta = std::fs::symlink_metadata(&dir).map_err(|e| io("read", &dir, e))?;
    check_dir(&dir, &meta, uid)?;
    Ok(dir)
}

/// Create `dir` 0700 unless it exists (its mode is checked after).
fn make_dir(dir: &Path) -> std::io::Result<()> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        r => r,
    }
}

/// Whether the directory, as `symlink_metadata` read it, is one only `uid`
/// can use.
fn check_dir(dir: &Path, meta: &std::fs::Metadata, uid: u32) -> Result<(), DirError> {
    let shown = dir.display();
    let refuse = |message: String, hint: String| Err(DirError { message, hint });
    if !meta.file_type().is_dir() {
        return refuse(
            format!("--persist: `{shown}` is not a directory"),
            format!("remove it (`rm {shown}`): rbuild creates the directory itself, mode 0700"),
        );
    }
    if meta.uid() != uid {
        return refuse(
            format!(
                "--persist: `{shown}` belongs to user {}, not to you (uid {uid}): its ssh sockets would act as you on your hosts",
                meta.uid()
            ),
            "someone else made it: remove it (as root) and run again, or set XDG_RUNTIME_DIR to a directory of yours; `--persist 0` needs no directory"
                .to_owned(),
        );
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return refuse(
            format!(
                "--persist: `{shown}` is open to others (mode {mode:04o}): anyone who can use an ssh socket in it acts as you on your hosts"
            ),
            format!(
                "`chmod 700 {shown}` if it is yours, or remove it (rbuild creates it 0700); `--persist 0` needs no directory"
            ),
        );
    }
    Ok(())
}

/// rbuild's own hash of how it connects to a host: its ssh arguments, with
/// the text of a generated config in place of that file's name (it lives
/// in the run's private directory), `HASH_LEN` hex characters.
pub fn options_hash<'a>(args: impl IntoIterator<Item = &'a std::ffi::OsStr>) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for a in args {
        h.update(a.as_encoded_bytes());
        h.update([0]);
    }
    let digest = h.finalize();
    let mut hex = String::with_capacity(HASH_LEN);
    for b in digest.iter().take(HASH_LEN / 2) {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

/// What [`probe`] found among a host's sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// No socket: the run starts a master.
    Nothing,
    /// A master answered: the run goes through it (if ssh's `%C` names it).
    Live,
    /// Every socket was dead or silent, and is removed: the run starts a
    /// master.
    Replaced,
}

/// Before a host's first command: each socket in `dir` named `PREFIX-...`
/// whose master does not say hello within a second is removed, so that ssh
/// (`ControlMaster=auto`) starts a new master instead of waiting on it. A
/// refused socket (its master is dead) ssh would unlink itself; it is
/// removed here all the same.
pub async fn probe(dir: &Path, prefix: &str) -> Found {
    let dir = dir.to_owned();
    let prefix = format!("{prefix}-");
    tokio::task::spawn_blocking(move || probe_blocking(&dir, &prefix))
        .await
        .unwrap_or(Found::Nothing)
}

fn probe_blocking(dir: &Path, prefix: &str) -> Found {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Found::Nothing;
    };
    let mut found = Found::Nothing;
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        // `NAME.random`: ssh's name while it binds
        if !name.starts_with(prefix) || name.contains('.') {
            continue;
        }
        let path = e.path();
        match answers(&path) {
            Ok(()) => found = Found::Live,
            Err(why) => {
                let young = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| SystemTime::now().duration_since(t).ok())
                    .is_some_and(|age| age < YOUNG);
                if young && !why.is_dead() {
                    tracing::debug!("{}: a new master, not answering yet", path.display());
                    continue;
                }
                tracing::debug!("{}: {why}; removed", path.display());
                let _ = std::fs::remove_file(&path);
                if found == Found::Nothing {
                    found = Found::Replaced;
                }
            }
        }
    }
    found
}

/// Remove every socket of `dir` named `PREFIX-...`: their masters, if any
/// still run, are used no more and end after their idle time.
pub fn forget(dir: &Path, prefix: &str) {
    let prefix = format!("{prefix}-");
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Why a socket was given up on.
#[derive(Debug)]
enum Silent {
    Refused(std::io::Error),
    NoHello(String),
}

impl Silent {
    /// No process behind it at all.
    fn is_dead(&self) -> bool {
        matches!(self, Silent::Refused(_))
    }
}

impl std::fmt::Display for Silent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Silent::Refused(e) => write!(f, "no master behind the socket ({e})"),
            Silent::NoHello(why) => write!(f, "the master does not answer ({why})"),
        }
    }
}

/// Whether a master listens on `path` and says hello: ssh's multiplexing
/// protocol (PROTOCOL.mux) starts with the master's `MUX_MSG_HELLO`
/// (`uint32 length, uint32 0x00000001, uint32 version`).
fn answers(path: &Path) -> Result<(), Silent> {
    let mut s = std::os::unix::net::UnixStream::connect(path).map_err(Silent::Refused)?;
    s.set_read_timeout(Some(HELLO_WAIT))
        .map_err(|e| Silent::NoHello(e.to_string()))?;
    let mut head = [0u8; 8];
    s.read_exact(&mut head)
        .map_err(|e| Silent::NoHello(e.to_string()))?;
    if head[4..8] != [0, 0, 0, 1] {
        return Err(Silent::NoHello(format!("not a hello: {head:02x?}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_socket_name_fits_in_sockaddr_un_with_ssh_s_temporary_suffix() {
        assert_eq!(MAX_DIR_LEN, 32);
        let longest = format!(
            "{}/{}-{}.{}",
            "d".repeat(MAX_DIR_LEN),
            "h".repeat(HASH_LEN),
            "c".repeat(CONN_HASH_LEN),
            "r".repeat(16)
        );
        assert_eq!(longest.len(), SUN_PATH - 1);
        // /run/user/UID and /tmp/rbuild-ssh-UID fit
        assert!("/run/user/4294967295/rbuild/ssh".len() <= MAX_DIR_LEN);
        assert!("/tmp/rbuild-ssh-4294967295".len() <= MAX_DIR_LEN);
    }

    #[test]
    fn the_directory_is_refused_unless_it_is_the_user_s_own_and_closed_to_others() {
        let t = tempfile::tempdir().unwrap();
        let uid = euid().unwrap();
        let d = t.path().join("ssh");
        make_dir(&d).unwrap();
        let meta = || std::fs::symlink_metadata(&d).unwrap();
        assert_eq!(meta().mode() & 0o777, 0o700 & meta().mode());
        check_dir(&d, &meta(), uid).unwrap();
        // made again: kept as it is
        make_dir(&d).unwrap();
        for mode in [0o750, 0o705, 0o777, 0o1777] {
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = check_dir(&d, &meta(), uid).unwrap_err().to_string();
            assert!(e.contains(&format!("mode {mode:04o}")), "{e}");
            assert!(e.contains("\nhint: `chmod 700 "), "{e}");
        }
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
        let e = check_dir(&d, &meta(), uid + 1).unwrap_err().to_string();
        assert!(e.contains("not to you"), "{e}");
        // a symlink to a good directory is not one
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&d, &link).unwrap();
        let e = check_dir(&link, &std::fs::symlink_metadata(&link).unwrap(), uid)
            .unwrap_err()
            .to_string();
        assert!(e.contains("is not a directory"), "{e}");
    }

    #[test]
    fn the_hash_of_the_arguments_is_short_and_tells_them_apart() {
        let h = |a: &[&str]| options_hash(a.iter().map(std::ffi::OsStr::new));
        assert_eq!(h(&["-p", "22", "web1"]).len(), HASH_LEN);
        assert_eq!(h(&["-p", "22", "web1"]), h(&["-p", "22", "web1"]));
        assert_ne!(h(&["-p", "22", "web1"]), h(&["-p", "2222", "web1"]));
        // the boundaries count
        assert_ne!(h(&["ab", "c"]), h(&["a", "bc"]));
    }

    #[test]
    fn a_socket_with_no_master_or_a_silent_one_is_removed_a_live_one_kept() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path();
        // dead: a socket bound, its listener gone
        let dead = dir.join("aaaa-dead");
        drop(std::os::unix::net::UnixListener::bind(&dead).unwrap());
        // silent: listens, says nothing (accepted by the backlog); made old
        let silent = dir.join("bbbb-silent");
        let _l = std::os::unix::net::UnixListener::bind(&silent).unwrap();
        made_old(&silent);
        // live: says hello
        let live = dir.join("cccc-live");
        let l = std::os::unix::net::UnixListener::bind(&live).unwrap();
        let hello = std::thread::spawn(move || {
            use std::io::Write;
            let (mut s, _) = l.accept().unwrap();
            s.write_all(&[0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0, 4]).unwrap();
        });
        // someone else's prefix, and ssh's name while binding: untouched
        let other = dir.join("aaaab-dead");
        drop(std::os::unix::net::UnixListener::bind(&other).unwrap());
        let binding = dir.join("aaaa-x.0123456789abcdef");
        drop(std::os::unix::net::UnixListener::bind(&binding).unwrap());

        assert_eq!(probe_blocking(dir, "aaaa-"), Found::Replaced);
        assert!(!dead.exists() && other.exists() && binding.exists());
        assert_eq!(probe_blocking(dir, "bbbb-"), Found::Replaced);
        assert!(!silent.exists());
        assert_eq!(probe_blocking(dir, "cccc-"), Found::Live);
        assert!(live.exists());
        hello.join().unwrap();
        assert_eq!(probe_blocking(dir, "dddd-"), Found::Nothing);
        // a young silent socket may be a master starting: left alone
        let young = dir.join("eeee-young");
        let _y = std::os::unix::net::UnixListener::bind(&young).unwrap();
        assert_eq!(probe_blocking(dir, "eeee-"), Found::Nothing);
        assert!(young.exists());
    }

    /// Ten seconds old (a socket cannot be opened to set its times).
    fn made_old(p: &Path) {
        let t = SystemTime::now() - Duration::from_secs(10);
        let secs = t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
        let ok = std::process::Command::new("touch")
            .arg("-d")
            .arg(format!("@{secs}"))
            .arg(p)
            .status()
            .unwrap()
            .success();
        assert!(ok, "touch -d {p:?}");
    }
}
