//! The one seam to the world: a connection to a host that runs a typed
//! [`Call`] of the remote script, with an optional payload on its stdin,
//! and streams back its events. Over SSH ([`ssh`]) or on this machine
//! ([`local`]), so the fleet and local modes are one pipeline; a scripted
//! host stands in for both in the executor's unit tests.
//!
//! [`Conn::run`] is the one primitive; the typed calls ([`Conn::check`],
//! [`Conn::apply`], [`Conn::rollback`], [`Conn::history`]) are built on it
//! and hand back typed answers, so nothing above this seam reads a line.

pub mod conn;
pub mod lines;
pub mod local;
pub mod persist;
pub mod ssh;

pub use crate::ship::Payload;
pub use conn::{Conn, Connect, HostError};

use crate::config::Mode;
use crate::inventory::Host;
use crate::remote::{Call, Event, Transcript};

/// The real world: this machine in local mode, SSH in fleet mode.
#[derive(Debug, Clone)]
pub struct World {
    pub mode: Mode,
    pub ssh: ssh::SshSettings,
}

/// A connection of the real world.
pub enum AnyConn {
    Local,
    Ssh(Box<ssh::SshConn>),
}

impl Connect for World {
    type Conn = AnyConn;

    async fn connect(&self, host: &Host) -> Result<AnyConn, HostError> {
        match self.mode {
            Mode::Local => Ok(AnyConn::Local),
            Mode::Fleet => ssh::connect(host, &self.ssh).map(|c| AnyConn::Ssh(Box::new(c))),
        }
    }
}

impl Conn for AnyConn {
    async fn run(
        &mut self,
        call: &Call,
        payload: Option<Payload>,
        on_event: &mut (dyn FnMut(&Event) + Send),
    ) -> Result<Transcript, HostError> {
        let who = match self {
            AnyConn::Local => "local",
            AnyConn::Ssh(c) => c.name(),
        };
        log_call(who, call, payload.as_ref());
        match self {
            AnyConn::Local => local::run(call, payload, on_event).await,
            AnyConn::Ssh(c) => c.run(call, payload, on_event).await,
        }
    }

    async fn close(self) {
        if let AnyConn::Ssh(c) = self {
            c.close().await;
        }
    }
}

/// `-v`: which call a host runs; `-vv`: its arguments as the script gets
/// them (the run's token left out; the script itself is not shown).
fn log_call(who: &str, call: &Call, payload: Option<&Payload>) {
    tracing::info!("{who}: {}", call.name());
    if tracing::enabled!(tracing::Level::DEBUG) {
        let mut args = call.args(&crate::remote::Token::fixed("[token]"));
        args.remove(0);
        let line = shlex::try_join(args.iter().map(String::as_str)).unwrap_or_default();
        let payload = payload.map_or(String::new(), |p| {
            format!(", payload {} bytes sha256 {}", p.size, p.sha256)
        });
        tracing::debug!(
            "{who}: remote command: the {} script ({} bytes) with {line}{payload}",
            call.name(),
            call.script().len()
        );
    }
}
