//! A host over OpenSSH, so the user's ssh config, agent and jump hosts apply.
//!
//! The connection is one `ssh` process per host, started by the first
//! command: it is the ControlMaster of the connection and runs that command
//! as its own session, in the foreground. An up-to-date host therefore costs
//! what one `ssh host true` costs: one handshake, one process, no fork into
//! the background. The check holds its session open (it waits for its stdin
//! to close) until the controller has decided; a rebuild then runs as a
//! second session over the same connection through the `openssh` crate's
//! native multiplexing, with no second handshake.
//!
//! With `--persist SECS` the master is ssh's own `ControlMaster=auto` with
//! `ControlPersist=SECS`, its socket in a private per-user directory (see
//! [`super::persist`]): the first command of a host starts it (it goes to
//! the background once connected), every command runs as a client of it,
//! and it stays for SECS after its last use, for the next run. A socket
//! whose master is dead or silent is removed before the first command; a
//! command that cannot reach its host through a master that answered is
//! tried once more through a new one.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use openssh::{Session, Stdio};
use tokio::io::BufReader;
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::task::JoinHandle;

use super::conn::{HostError, drive, record};
use super::lines::{self, Lines};
use super::persist::{self, Found};
use crate::inventory::Host;
use crate::remote::{Call, Event, Token, Transcript};
use crate::ship::Payload;

/// How rbuild connects, for every host.
#[derive(Debug, Clone)]
pub struct SshSettings {
    pub connect_timeout: Duration,
    /// `-F FILE` in place of `~/.ssh/config`.
    pub config_file: Option<PathBuf>,
    /// Accept the key of a host never seen before (`accept-new`); a changed
    /// key is refused either way.
    pub accept_new_host_keys: bool,
    /// Where the control sockets (and generated configs) live: a private
    /// directory of this run.
    pub control_dir: PathBuf,
    /// `--persist`: masters kept after the run; `None`: one master per
    /// host for the run, in `control_dir`.
    pub persist: Option<Persist>,
}

/// `--persist`: how long masters stay, and where.
#[derive(Debug, Clone)]
pub struct Persist {
    pub secs: u64,
    /// The private per-user directory of their sockets
    /// ([`persist::control_dir`]).
    pub dir: PathBuf,
}

/// A host's connection: the ssh command line, and once the first command
/// has started it, the master.
pub struct SshConn {
    /// The host's inventory name, for logs.
    name: String,
    /// `ssh` arguments up to and including the destination.
    argv: Vec<OsString>,
    /// The master's control socket.
    ctl: PathBuf,
    /// How long the handshake may take before the first line arrives.
    bound: Duration,
    master: Option<Master>,
    /// `--persist`: the directory and this host's socket prefix.
    kept: Option<Kept>,
}

/// A host's place among the persisted masters.
struct Kept {
    dir: PathBuf,
    /// `HASH`: the host's sockets are `DIR/HASH-%C`.
    prefix: String,
    /// Whether its sockets were looked at (before the first command).
    probed: bool,
    /// A master answered then: the first command went through it.
    reused: bool,
}

/// A running master whose own session (a check) waits for its stdin to
/// close.
struct Master {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    stderr: JoinHandle<String>,
}

/// The message and hint for an ssh failure, from its text.
fn classify(message: &str) -> Option<&'static str> {
    let lower = message.to_lowercase();
    if lower.contains("no matching host key type") {
        Some(
            "the host offers no host key type this ssh accepts: check `HostKeyAlgorithms` \
             in your ssh config against the host's keys",
        )
    } else if lower.contains("host key verification failed") || lower.contains("host key for") {
        Some(
            "the host's key is unknown or has changed; check it, then add it to known_hosts \
             (`ssh-keyscan HOST >> ~/.ssh/known_hosts` after verifying), or pass \
             `--accept-new-host-keys` to trust keys of hosts never seen before",
        )
    } else if lower.contains("permission denied") {
        Some("check the user and identity_file in the inventory, and that the key is in the agent")
    } else if lower.contains("connection refused") {
        Some("nothing listens for ssh there: is the host up and sshd running?")
    } else if lower.contains("could not resolve") {
        Some("the address does not resolve: check `address` in the inventory or your ssh config")
    } else if lower.contains("timed out") {
        Some("the host is down or a firewall drops packets")
    } else {
        None
    }
}

/// An `openssh` error with its sources, as one line.
fn mux_error(e: &openssh::Error) -> HostError {
    let mut message = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        message = format!("{message}: {s}");
        src = s.source();
    }
    HostError::Run { message }
}

/// Write a config holding the host's extra options, then the user's config:
/// ssh takes the first value it reads, so these win.
fn extra_options_config(
    host: &Host,
    settings: &SshSettings,
) -> Result<Option<(PathBuf, String)>, std::io::Error> {
    if host.ssh_options.is_empty() {
        return Ok(None);
    }
    let mut text = String::from("# generated by rbuild for this run\n");
    for (k, v) in &host.ssh_options {
        text.push_str(&format!("{k} {v}\n"));
    }
    let user_config = match &settings.config_file {
        Some(p) => std::path::absolute(p)?,
        None => std::env::var_os("HOME")
            .map(|h| Path::new(&h).join(".ssh/config"))
            .unwrap_or_else(|| PathBuf::from("/dev/null")),
    };
    text.push_str(&format!("Include \"{}\"\n", user_config.display()));
    if settings.config_file.is_none() {
        text.push_str("Include /etc/ssh/ssh_config\n");
    }
    let path = settings
        .control_dir
        .join(format!("{}.ssh_config", host.name));
    std::fs::write(&path, &text)?;
    Ok(Some((path, text)))
}

/// Prepare the connection to a host; the first command makes it.
pub fn connect(host: &Host, settings: &SshSettings) -> Result<SshConn, HostError> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let timeout = host
        .connect_timeout
        .map(Duration::from_secs)
        .unwrap_or(settings.connect_timeout);
    // short: a socket path has a length limit (108 bytes on Linux)
    let ctl = settings
        .control_dir
        .join(format!("m{}", NEXT.fetch_add(1, Ordering::Relaxed)));
    let opt = |argv: &mut Vec<OsString>, o: String| {
        argv.push("-o".into());
        argv.push(o.into());
    };
    let mut argv: Vec<OsString> = vec!["-T".into()];
    let master = match &settings.persist {
        None => [
            "ControlMaster=yes".to_owned(),
            // the master stays in the foreground and ends with its
            // sessions, whatever the user's config says
            "ControlPersist=no".to_owned(),
        ],
        Some(p) => [
            "ControlMaster=auto".to_owned(),
            format!("ControlPersist={}", p.secs),
        ],
    };
    for o in master.into_iter().chain([
        "ClearAllForwardings=yes".to_owned(),
        "BatchMode=yes".to_owned(),
        format!(
            "StrictHostKeyChecking={}",
            if settings.accept_new_host_keys {
                "accept-new"
            } else {
                "yes"
            }
        ),
        format!("ConnectTimeout={}", timeout.as_secs()),
        "ServerAliveInterval=5".to_owned(),
    ]) {
        opt(&mut argv, o);
    }
    if let Some(p) = host.port {
        argv.extend(["-p".into(), p.to_string().into()]);
    }
    if let Some(u) = &host.user {
        argv.extend(["-l".into(), u.into()]);
    }
    if let Some(k) = &host.identity_file {
        // the given key, and only it
        opt(&mut argv, "IdentitiesOnly=yes".to_owned());
        argv.extend(["-i".into(), k.into()]);
    }
    let generated = extra_options_config(host, settings).map_err(|e| HostError::Connect {
        message: format!("cannot write the ssh config for its ssh_options: {e}"),
        hint: None,
    })?;
    if let Some(c) = generated
        .as_ref()
        .map(|(p, _)| p)
        .or(settings.config_file.as_ref())
    {
        argv.extend(["-F".into(), c.into()]);
    }
    // the address is validated (no leading `-`); `--` all the same
    argv.extend(["--".into(), host.address.clone().into()]);
    let kept = settings.persist.as_ref().map(|p| Kept {
        dir: p.dir.clone(),
        prefix: kept_prefix(&argv, generated.as_ref()),
        probed: false,
        reused: false,
    });
    // ssh expands `%` in it and splits the option at blanks, unless quoted
    let escaped = |p: &Path| p.as_os_str().to_string_lossy().replace('%', "%%");
    let mut control_path = OsString::from("ControlPath=\"");
    control_path.push(match &kept {
        None => escaped(&ctl),
        // `%C`: ssh's hash of where the connection leads
        Some(k) => format!("{}/{}-%C", escaped(&k.dir), k.prefix),
    });
    control_path.push("\"");
    argv.splice(1..1, ["-o".into(), control_path]);
    tracing::debug!(
        "{}: ssh {}",
        host.name,
        argv.iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    );
    Ok(SshConn {
        name: host.name.clone(),
        argv,
        ctl,
        // ssh's own ConnectTimeout covers the TCP connect; this bounds the
        // whole handshake too, for hosts that accept and then go silent.
        bound: timeout.saturating_add(Duration::from_secs(5)),
        master: None,
        kept,
    })
}

/// The name a host's persisted sockets start with: the hash of rbuild's
/// own ssh arguments for it, but for the master's own options (`Control*`;
/// `ConnectTimeout`, which an established master does not use) and with the
/// generated config's text in place of its name (a file of this run only).
fn kept_prefix(argv: &[OsString], generated: Option<&(PathBuf, String)>) -> String {
    let mut hashed: Vec<&std::ffi::OsStr> = Vec::new();
    let mut i = 0;
    while i < argv.len() {
        let a = argv[i].as_os_str();
        let value = argv.get(i + 1).map(OsString::as_os_str);
        let skipped = a == "-o"
            && value.is_some_and(|v| {
                let v = v.to_string_lossy();
                v.starts_with("Control") || v.starts_with("ConnectTimeout=")
            });
        if skipped {
            i += 2;
            continue;
        }
        match (generated, value) {
            (Some((path, text)), Some(v)) if a == "-F" && v == path.as_os_str() => {
                hashed.extend([a, std::ffi::OsStr::new(text.as_str())]);
                i += 2;
            }
            _ => {
                hashed.push(a);
                i += 1;
            }
        }
    }
    persist::options_hash(hashed)
}

impl SshConn {
    /// The host's inventory name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Run the remote script with `args`, feeding `payload` on its stdin.
    /// The first command starts the connection; later ones share it.
    pub async fn run(
        &mut self,
        call: &Call,
        payload: Option<Payload>,
        on_event: &mut (dyn FnMut(&Event) + Send),
    ) -> Result<Transcript, HostError> {
        let token = Token::random();
        let out = self
            .run_line(
                call,
                call.command_line(&token),
                &token,
                payload.clone(),
                on_event,
            )
            .await?;
        if out.events.is_empty() && call.in_login_shell() {
            // the check ran in the login shell itself and printed nothing
            // rbuild reads (fish cannot parse it): again as `sh -c`, over a
            // connection of its own
            tracing::info!(
                "{}: the check printed no answer in the login shell; running it under sh \
                 (a POSIX login shell saves a connection per run)",
                self.name
            );
            let line = call.sh_command_line(&token);
            let mut again = self.run_line(call, line, &token, payload, on_event).await?;
            if again.events.is_empty() && !out.stderr.is_empty() {
                // both failed: what the login shell said may be the reason
                again.stderr = format!("{}\n{}", out.stderr, again.stderr);
            }
            return Ok(again);
        }
        Ok(out)
    }

    /// Run one command line: over the running master, else starting one.
    async fn run_line(
        &mut self,
        call: &Call,
        line: String,
        token: &Token,
        payload: Option<Payload>,
        on_event: &mut (dyn FnMut(&Event) + Send),
    ) -> Result<Transcript, HostError> {
        if let Some(master) = self.master.as_mut()
            && matches!(master.child.try_wait(), Ok(None))
        {
            match self.run_mux(&line, token, payload.clone(), on_event).await {
                Ok(out) => return out,
                Err(Refused(e)) => tracing::debug!(
                    "{}: a second session was refused ({e}); connecting again",
                    self.name
                ),
            }
        }
        // no master yet, or it is gone (its session ended early) or refused
        // a second session (`MaxSessions 1`): a connection of its own
        if let Some(m) = self.master.take() {
            m.close().await;
        }
        let Some(kept) = self.kept.as_mut() else {
            return self.start(call, line, token, payload, on_event).await;
        };
        if !kept.probed {
            kept.probed = true;
            kept.reused = persist::probe(&kept.dir, &kept.prefix).await == Found::Live;
        }
        let reused = std::mem::take(&mut kept.reused);
        let out = self
            .start(call, line.clone(), token, payload.clone(), on_event)
            .await;
        match out {
            Err(e) if reused && e.unreached() => {
                // the master answered, but not its host (a host restarted,
                // a connection gone silent): a new master, once
                tracing::debug!(
                    "{}: through the kept master: {e}; connecting again",
                    self.name
                );
                if let Some(k) = &self.kept {
                    persist::forget(&k.dir, &k.prefix);
                }
                self.start(call, line, token, payload, on_event).await
            }
            out => out,
        }
    }

    /// Start the master with this command as its own session.
    async fn start(
        &mut self,
        call: &Call,
        line: String,
        token: &Token,
        payload: Option<Payload>,
        on_event: &mut (dyn FnMut(&Event) + Send),
    ) -> Result<Transcript, HostError> {
        // a kept master outlives its sessions: nothing to hold it up with
        let hold = payload.is_none() && call.holds() && self.kept.is_none();
        let mut child = tokio::process::Command::new("ssh")
            .args(&self.argv)
            .arg(line)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            // its own process group: a Ctrl-C at the terminal is rbuild's
            // to handle (it lets the hosts in flight finish)
            .process_group(0)
            .spawn()
            .map_err(|e| HostError::Connect {
                message: format!("cannot start `ssh`: {e}"),
                hint: Some("rbuild needs OpenSSH's client (`ssh`) on its PATH"),
            })?;
        let mut stdin = child.stdin.take();
        let mut stdout = Lines::new(BufReader::new(child.stdout.take().expect("piped")));
        // read apart: while the check holds its session, stderr stays open
        let stderr = tokio::spawn(lines::tail(child.stderr.take().expect("piped")));

        let write = async {
            if let (Some(p), Some(w)) = (&payload, stdin.as_mut())
                && let Err(e) = p.write_to(w).await
            {
                // it shows as the script's own failure: not an error here
                tracing::debug!("writing to ssh: {e}");
            }
            if !hold {
                // closed (dropped): the end of the payload
                stdin = None;
            }
            Ok::<(), HostError>(())
        };
        let bound = self.bound;
        // the handshake must end within the bound; a check, whose answer
        // is quick to give, too
        let deadline = tokio::time::Instant::now() + bound;
        let whole = call.is_check();
        let read = async {
            let mut events = Vec::new();
            let mut spoke = false;
            // bytes of the login shell's own output before the answer
            let mut noise: u64 = 0;
            loop {
                let next = if !spoke || whole {
                    match tokio::time::timeout_at(deadline, stdout.next_line()).await {
                        Ok(l) => l,
                        Err(_) if events.is_empty() && noise > 64 * 1024 => {
                            return Err(HostError::Noisy {
                                bytes: noise,
                                secs: bound.as_secs(),
                            });
                        }
                        Err(_) if spoke => return Err(HostError::Stalled(bound.as_secs())),
                        Err(_) => return Err(HostError::ConnectTimeout(bound.as_secs())),
                    }
                } else {
                    stdout.next_line().await
                };
                spoke = true;
                match next {
                    Ok(Some(line)) => {
                        if events.is_empty() {
                            noise += line.len() as u64 + 1;
                        }
                        record(&line, token, &mut events, on_event);
                        if let Some(&Event::End { hold }) = events.last() {
                            return Ok((events, hold));
                        }
                    }
                    Ok(None) | Err(_) => return Ok((events, false)),
                }
            }
        };
        // a timed-out handshake ends the write too
        let ((), (events, held)) = tokio::try_join!(write, read)?;
        if let (true, Some(stdin)) = (held, stdin.take()) {
            self.master = Some(Master {
                child,
                stdin,
                stdout,
                stderr,
            });
            return Ok(Transcript {
                events,
                code: Some(0),
                stderr: String::new(),
            });
        }
        drop(stdin);
        let status = child.wait().await.map_err(|e| HostError::Run {
            message: e.to_string(),
        })?;
        let stderr = stderr.await.unwrap_or_default();
        finished(events, status, stderr)
    }

    /// A further command, as a session of its own over the running master;
    /// `Err` if the session could not be opened (nothing ran).
    async fn run_mux(
        &mut self,
        line: &str,
        token: &Token,
        payload: Option<Payload>,
        on_event: &mut (dyn FnMut(&Event) + Send),
    ) -> Result<Result<Transcript, HostError>, Refused> {
        let session = Session::resume_mux(self.ctl.clone().into_boxed_path(), None);
        let mut cmd = session.raw_command(line);
        cmd.stdin(if payload.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = match cmd.spawn().await {
            Ok(c) => c,
            Err(e) => return Err(Refused(mux_error(&e))),
        };
        let stdin = child.stdin().take();
        let stdout = child.stdout().take().expect("piped");
        let stderr = child.stderr().take().expect("piped");
        let (events, stderr, _) = drive(stdin, stdout, stderr, payload, token, on_event).await;
        let code = match child.wait().await {
            Ok(status) => status.code(),
            Err(openssh::Error::RemoteProcessTerminated) => None,
            Err(e) => return Ok(Err(mux_error(&e))),
        };
        Ok(Ok(Transcript {
            events,
            code,
            stderr,
        }))
    }

    /// Let the master's own session end, and the master with it.
    pub async fn close(self) {
        if let Some(m) = self.master {
            m.close().await;
        }
    }
}

/// A second session the master would not open.
struct Refused(HostError);

impl Master {
    async fn close(self) {
        let Master {
            mut child,
            stdin,
            mut stdout,
            stderr,
        } = self;
        drop(stdin);
        let ended = async {
            while let Ok(Some(line)) = stdout.next_line().await {
                tracing::debug!(target: "rbuild::remote", "{line}");
            }
            child.wait().await
        };
        // a host that went silent is given up on after ssh's own
        // keep-alives would have (3 x 5 s)
        match tokio::time::timeout(Duration::from_secs(20), ended).await {
            Ok(Ok(status)) if !status.success() => {
                let err = stderr.await.unwrap_or_default();
                tracing::debug!("ssh exited with {status}: {err}");
            }
            Ok(_) => {}
            Err(_) => {
                tracing::debug!("ssh did not exit; killing it");
                let _ = child.kill().await;
            }
        }
    }
}

/// The output of a command whose ssh process has exited. Exit status 255
/// is ssh's own failure: before the script said hello, the connection
/// failed; after, it was lost.
fn finished(
    events: Vec<Event>,
    status: ExitStatus,
    stderr: String,
) -> Result<Transcript, HostError> {
    let said_hello = events.iter().any(|e| matches!(e, Event::Hello { .. }));
    match status.code() {
        Some(255) if !said_hello => {
            let message = if stderr.trim().is_empty() {
                "ssh failed (exit status 255)".to_owned()
            } else {
                stderr.trim().replace('\n', " / ")
            };
            let hint = classify(&message);
            Err(HostError::Connect { message, hint })
        }
        Some(255) => Ok(Transcript {
            events,
            code: None,
            stderr,
        }),
        code => Ok(Transcript {
            events,
            code,
            stderr,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    fn status(code: i32) -> ExitStatus {
        ExitStatus::from_raw(code << 8)
    }

    #[test]
    fn ssh_failing_before_the_script_spoke_is_a_connection_failure_with_a_hint() {
        let e = finished(
            vec![],
            status(255),
            "ssh: connect to host 10.0.0.1 port 22: Connection refused".into(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("Connection refused"), "{e}");
        assert!(e.hint().unwrap().contains("sshd running"));
        let e = finished(vec![], status(255), "Host key verification failed.".into()).unwrap_err();
        assert!(e.hint().unwrap().contains("known_hosts"));
        let e = finished(vec![], status(255), String::new()).unwrap_err();
        assert!(e.to_string().contains("exit status 255"), "{e}");
    }

    fn host(ssh_options: &[(&str, &str)]) -> Host {
        Host {
            name: "web1".into(),
            address: "10.0.0.1".into(),
            user: Some("deploy".into()),
            port: Some(2222),
            identity_file: None,
            ssh_options: ssh_options
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            state_dir: None,
            compose: Default::default(),
            connect_timeout: None,
            groups: vec![],
            tags: vec![],
            stacks: vec![],
        }
    }

    fn settings(dir: &Path, persist: Option<u64>) -> SshSettings {
        SshSettings {
            connect_timeout: Duration::from_secs(10),
            config_file: Some("/etc/rbuild/ssh_config".into()),
            accept_new_host_keys: false,
            control_dir: dir.to_owned(),
            persist: persist.map(|secs| Persist {
                secs,
                dir: dir.join("kept"),
            }),
        }
    }

    fn words(c: &SshConn) -> Vec<String> {
        c.argv
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn without_persist_the_master_is_the_run_s_own_in_the_foreground() {
        let d = tempfile::tempdir().unwrap();
        let c = connect(&host(&[]), &settings(d.path(), None)).unwrap();
        let ctl = c.ctl.to_string_lossy().into_owned();
        assert!(c.ctl.starts_with(d.path()), "{ctl}");
        assert_eq!(
            words(&c),
            [
                "-T".to_owned(),
                "-o".into(),
                format!("ControlPath=\"{ctl}\""),
                "-o".into(),
                "ControlMaster=yes".into(),
                "-o".into(),
                "ControlPersist=no".into(),
                "-o".into(),
                "ClearAllForwardings=yes".into(),
                "-o".into(),
                "BatchMode=yes".into(),
                "-o".into(),
                "StrictHostKeyChecking=yes".into(),
                "-o".into(),
                "ConnectTimeout=10".into(),
                "-o".into(),
                "ServerAliveInterval=5".into(),
                "-p".into(),
                "2222".into(),
                "-l".into(),
                "deploy".into(),
                "-F".into(),
                "/etc/rbuild/ssh_config".into(),
                "--".into(),
                "10.0.0.1".into(),
            ]
        );
        assert!(c.kept.is_none());
    }

    #[test]
    fn with_persist_the_socket_is_named_for_the_arguments_and_where_they_lead() {
        let d = tempfile::tempdir().unwrap();
        let c = connect(&host(&[]), &settings(d.path(), Some(60))).unwrap();
        let w = words(&c);
        let k = c.kept.as_ref().unwrap();
        assert_eq!(k.prefix.len(), persist::HASH_LEN);
        let path = format!(
            "ControlPath=\"{}/{}-%C\"",
            d.path().join("kept").display(),
            k.prefix
        );
        assert_eq!(
            w[..7],
            [
                "-T",
                "-o",
                &path,
                "-o",
                "ControlMaster=auto",
                "-o",
                "ControlPersist=60"
            ]
        );
        // neither the window nor the connect timeout makes another master
        let mut s = settings(d.path(), Some(600));
        s.connect_timeout = Duration::from_secs(30);
        assert_eq!(
            connect(&host(&[]), &s).unwrap().kept.unwrap().prefix,
            k.prefix
        );
        // other options do; a generated config counts by its text, not
        // its name (a file of the run)
        let mut s = settings(d.path(), Some(60));
        s.accept_new_host_keys = true;
        assert_ne!(
            connect(&host(&[]), &s).unwrap().kept.unwrap().prefix,
            k.prefix
        );
        let opts = [("ProxyJump", "bastion")];
        let a = connect(&host(&opts), &settings(d.path(), Some(60))).unwrap();
        let other = tempfile::tempdir().unwrap();
        let mut s = settings(other.path(), Some(60));
        s.persist.as_mut().unwrap().dir = d.path().join("kept");
        let b = connect(&host(&opts), &s).unwrap();
        assert_ne!(a.argv, b.argv, "the generated files differ");
        let (a, b) = (a.kept.unwrap().prefix, b.kept.unwrap().prefix);
        assert_eq!(a, b);
        assert_ne!(a, k.prefix);
        let jumps = connect(
            &host(&[("ProxyJump", "other")]),
            &settings(d.path(), Some(60)),
        );
        assert_ne!(jumps.unwrap().kept.unwrap().prefix, a);
    }

    #[test]
    fn ssh_failing_after_the_script_spoke_is_a_lost_connection() {
        let hello = vec![Event::Hello {
            proto: "3".into(),
            now: 1,
        }];
        let out = finished(hello.clone(), status(255), "broken pipe".into()).unwrap();
        assert_eq!(out.code, None, "lost, not an exit status");
        let out = finished(hello, status(3), String::new()).unwrap();
        assert_eq!(out.code, Some(3), "the script's own status");
    }
}
