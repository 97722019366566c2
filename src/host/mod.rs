//! The one seam to the world: a host that runs the remote script with some
//! arguments and an optional payload on its stdin, and streams back its
//! `@rbuild` events. Over SSH ([`ssh`]) or on this machine ([`local`]), so
//! the fleet and local modes are one pipeline.

pub mod local;
pub mod ssh;

use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

use crate::remote::{self, Event};

/// A failure to reach a host or to run the script there.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("cannot connect: {message}")]
    Connect {
        message: String,
        hint: Option<&'static str>,
    },
    #[error("connection timed out after {0}s")]
    ConnectTimeout(u64),
    #[error("the remote command failed: {message}")]
    Run { message: String },
}

impl HostError {
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            HostError::Connect { hint, .. } => *hint,
            HostError::ConnectTimeout(_) => {
                Some("the host is down or a firewall drops packets; `ssh HOST true` tells more")
            }
            HostError::Run { .. } => None,
        }
    }
}

/// What one run of the script produced.
#[derive(Debug, Default)]
pub struct Output {
    pub events: Vec<Event>,
    /// The script's exit code (`None`: killed, or the connection was lost).
    pub code: Option<i32>,
    /// The tail of what it wrote to stderr, for error messages.
    pub stderr: String,
}

/// An open connection to a host.
pub enum Conn {
    Local,
    Ssh(Box<ssh::SshConn>),
}

impl Conn {
    /// Run the remote script with `args` (`$0` first), feeding `payload` on
    /// its stdin, calling `on_event` for each event as it arrives.
    pub async fn run(
        &mut self,
        args: &[String],
        payload: Option<Arc<Vec<u8>>>,
        on_event: &mut (dyn FnMut(&Event) + Send),
    ) -> Result<Output, HostError> {
        match self {
            Conn::Local => local::run(args, payload, on_event).await,
            Conn::Ssh(c) => c.run(args, payload, on_event).await,
        }
    }

    /// Close the connection (the ssh master, for SSH).
    pub async fn close(self) {
        if let Conn::Ssh(c) = self {
            c.close().await;
        }
    }
}

/// Drive a spawned script: write the payload, read events from stdout and
/// keep stderr's tail. Shared by both implementations.
pub(crate) async fn drive(
    stdin: Option<impl AsyncWrite + Unpin>,
    stdout: impl AsyncRead + Unpin,
    stderr: impl AsyncRead + Unpin,
    payload: Option<Arc<Vec<u8>>>,
    on_event: &mut (dyn FnMut(&Event) + Send),
) -> (Vec<Event>, String, std::io::Result<()>) {
    let write = async move {
        if let Some(mut w) = stdin {
            if let Some(p) = payload {
                w.write_all(&p).await?;
            }
            w.shutdown().await?;
        }
        Ok::<(), std::io::Error>(())
    };
    let read_out = async {
        let mut events = Vec::new();
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            record(&line, &mut events, on_event);
        }
        events
    };
    let (w, events, err) = tokio::join!(write, read_out, stderr_tail(stderr));
    (events, err, w)
}

/// One line of the script's stdout: an event is handed to `on_event` and
/// kept, anything else is logged at debug level.
pub(crate) fn record(
    line: &str,
    events: &mut Vec<Event>,
    on_event: &mut (dyn FnMut(&Event) + Send),
) {
    if let Some(ev) = remote::parse_line(line) {
        on_event(&ev);
        events.push(ev);
    } else {
        tracing::debug!(target: "rbuild::remote", "{line}");
    }
}

/// The last lines the script wrote to stderr, once it closes, for error
/// messages.
pub(crate) async fn stderr_tail(mut stderr: impl AsyncRead + Unpin) -> String {
    let mut buf = Vec::new();
    let _ = stderr.read_to_end(&mut buf).await;
    let s = String::from_utf8_lossy(&buf);
    let tail: Vec<&str> = s.lines().rev().take(10).collect();
    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
}
