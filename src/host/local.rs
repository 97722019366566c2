//! This machine as a host: the script runs under `sh` here, no SSH.

use std::process::Stdio;

use super::conn::{HostError, drive};
use crate::remote::{Call, Event, Token, Transcript};
use crate::ship::Payload;

pub async fn run(
    call: &Call,
    payload: Option<Payload>,
    on_event: &mut (dyn FnMut(&Event) + Send),
) -> Result<Transcript, HostError> {
    let token = Token::random();
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(call.script())
        .args(call.args(&token))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| HostError::Run {
            message: format!("cannot start `sh`: {e}"),
        })?;
    let (stdin, stdout, stderr) = (
        child.stdin.take(),
        child.stdout.take().expect("piped"),
        child.stderr.take().expect("piped"),
    );
    let (events, stderr, _) = drive(stdin, stdout, stderr, payload, &token, on_event).await;
    let status = child.wait().await.map_err(|e| HostError::Run {
        message: e.to_string(),
    })?;
    Ok(Transcript {
        events,
        code: status.code(),
        stderr,
    })
}
