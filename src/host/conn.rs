//! The seam itself: [`Conn`], a connection that runs a typed call, and
//! [`Connect`], what opens them; [`HostError`]; and [`drive`], which both
//! implementations use to feed a script its payload and read its events.

use std::future::Future;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

use super::lines::{self, Lines};
use crate::inventory::Host;
use crate::remote::{
    self, Apply, ApplyAnswer, Call, Check, CheckAnswer, Event, FailedAttempt, History,
    HistoryAnswer, Logs, RemoteError, Rollback, StackResult, Status, StatusAnswer, Token,
    Transcript,
};
use crate::ship::Payload;

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
    /// Connected, the host said something, then nothing more.
    #[error("the host's answer stopped short: nothing more came within {0}s")]
    Stalled(u64),
    /// Connected, but the login shell printed this many bytes of its own
    /// (rc files) and rbuild's answer did not come within the bound.
    #[error(
        "the login shell printed {} before rbuild's answer, which did not come within {secs}s",
        human_bytes(*bytes)
    )]
    Noisy { bytes: u64, secs: u64 },
    #[error("the remote command failed: {message}")]
    Run { message: String },
    /// The script ran but its output is not a whole answer.
    #[error(transparent)]
    Remote(#[from] RemoteError),
}

impl HostError {
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            HostError::Connect { hint, .. } => *hint,
            HostError::ConnectTimeout(_) => {
                Some("the host is down or a firewall drops packets; `ssh HOST true` tells more")
            }
            HostError::Noisy { .. } => Some(
                "the user's rc files print to every ssh command: print only in interactive shells (`case $- in *i*) ... esac`, or `[ -t 1 ]`)",
            ),
            HostError::Stalled(_) => Some(
                "the connection works but the login shell waits: look at the user's rc files on the host (`ssh HOST true` must return at once)",
            ),
            HostError::Run { .. } | HostError::Remote(_) => None,
        }
    }

    /// The host was never reached: nothing ran there.
    pub fn unreached(&self) -> bool {
        matches!(
            self,
            HostError::Connect { .. } | HostError::ConnectTimeout(_)
        )
    }
}

/// An open connection to a host.
pub trait Conn: Send + Sized {
    /// Run `call`, feeding `payload` on its stdin, handing each event to
    /// `on_event` as it arrives.
    fn run(
        &mut self,
        call: &Call,
        payload: Option<Payload>,
        on_event: &mut (dyn FnMut(&Event) + Send),
    ) -> impl Future<Output = Result<Transcript, HostError>> + Send;

    /// Close the connection.
    fn close(self) -> impl Future<Output = ()> + Send;

    /// Check every stack of `call` with one command.
    fn check(
        &mut self,
        call: Check,
    ) -> impl Future<Output = Result<CheckAnswer, HostError>> + Send {
        async move {
            let call = Call::Check(call);
            let t = self.run(&call, None, &mut |_| {}).await?;
            let Call::Check(check) = &call else {
                unreachable!("built above")
            };
            Ok(remote::check_answer(&t, check)?)
        }
    }

    /// Ship and rebuild. `Err` only when the host could not be reached
    /// (nothing started); any later failure is the answer's `cut`.
    fn apply(
        &mut self,
        call: Apply,
        payload: Option<Payload>,
        on_event: &mut (dyn FnMut(&Event) + Send),
    ) -> impl Future<Output = Result<ApplyAnswer, HostError>> + Send {
        async move {
            let call = Call::Apply(call);
            let out = self.run(&call, payload, on_event).await;
            let Call::Apply(apply) = &call else {
                unreachable!("built above")
            };
            match out {
                Ok(t) => Ok(remote::apply_answer(&t, apply)),
                Err(e) if e.unreached() => Err(e),
                Err(e) => Ok(ApplyAnswer {
                    results: Default::default(),
                    cut: Some(RemoteError::Transport(e.to_string())),
                }),
            }
        }
    }

    /// Put one stack's previous generation back, by hand.
    fn rollback(
        &mut self,
        call: Rollback,
        on_event: &mut (dyn FnMut(&Event) + Send),
    ) -> impl Future<Output = Result<StackResult, HostError>> + Send {
        async move {
            let name = call.place.name.clone();
            let t = self.run(&Call::Rollback(call), None, on_event).await?;
            Ok(remote::rollback_answer(&t, &name)?)
        }
    }

    /// Every stack's state, services and last failure, with one command.
    fn status(
        &mut self,
        call: Status,
    ) -> impl Future<Output = Result<StatusAnswer, HostError>> + Send {
        async move {
            let names: Vec<String> = call.stacks.iter().map(|s| s.name.clone()).collect();
            let t = self.run(&Call::Status(call), None, &mut |_| {}).await?;
            Ok(remote::status_answer(&t, &names)?)
        }
    }

    /// One stack's last failed attempt and its output, if one is kept.
    fn logs(
        &mut self,
        call: Logs,
    ) -> impl Future<Output = Result<Option<FailedAttempt>, HostError>> + Send {
        async move {
            let t = self.run(&Call::Logs(call), None, &mut |_| {}).await?;
            Ok(remote::logs_answer(&t)?)
        }
    }

    /// One stack's recorded attempts, oldest first, and its kept
    /// generations.
    fn history(
        &mut self,
        call: History,
    ) -> impl Future<Output = Result<HistoryAnswer, HostError>> + Send {
        async move {
            let t = self.run(&Call::History(call), None, &mut |_| {}).await?;
            Ok(remote::history_answer(&t)?)
        }
    }
}

/// What opens connections to hosts, for the executor and the manual
/// commands alike.
pub trait Connect: Send + Sync + 'static {
    type Conn: Conn + 'static;

    fn connect(&self, host: &Host) -> impl Future<Output = Result<Self::Conn, HostError>> + Send;
}

/// Drive a spawned script: write the payload, read the events of the run
/// marked with `token` from stdout, keep stderr's tail. Shared by both
/// implementations.
pub(crate) async fn drive(
    stdin: Option<impl AsyncWrite + Unpin>,
    stdout: impl AsyncRead + Unpin,
    stderr: impl AsyncRead + Unpin,
    payload: Option<Payload>,
    token: &Token,
    on_event: &mut (dyn FnMut(&Event) + Send),
) -> (Vec<Event>, String, std::io::Result<()>) {
    let write = async move {
        if let Some(mut w) = stdin {
            if let Some(p) = payload {
                p.write_to(&mut w).await?;
            }
            w.shutdown().await?;
        }
        Ok::<(), std::io::Error>(())
    };
    let read_out = async {
        let mut events = Vec::new();
        let mut lines = Lines::new(BufReader::new(stdout));
        while let Ok(Some(line)) = lines.next_line().await {
            record(&line, token, &mut events, on_event);
        }
        events
    };
    let (w, events, err) = tokio::join!(write, read_out, lines::tail(stderr));
    (events, err, w)
}

/// One line of the script's stdout: an event of this run is handed to
/// `on_event` and kept, anything else is logged at debug level.
pub(crate) fn record(
    line: &str,
    token: &Token,
    events: &mut Vec<Event>,
    on_event: &mut (dyn FnMut(&Event) + Send),
) {
    if let Some(ev) = remote::parse_line(line, token) {
        // -vvv: the protocol's own lines, raw
        tracing::trace!(target: "rbuild::protocol", "{line}");
        on_event(&ev);
        events.push(ev);
    } else {
        tracing::debug!(target: "rbuild::remote", "{line}");
    }
}

/// A byte count as people read it (`312.5 MiB`).
fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / f64::from(1 << 20)),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / f64::from(1 << 10)),
        n => format!("{n} bytes"),
    }
}
