//! This machine as a host: the script runs under `sh` here, no SSH.

use std::process::Stdio;
use std::sync::Arc;

use super::{HostError, Output, drive};
use crate::remote::{Event, script_for};

pub async fn run(
    args: &[String],
    payload: Option<Arc<Vec<u8>>>,
    on_event: &mut (dyn FnMut(&Event) + Send),
) -> Result<Output, HostError> {
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(script_for(args))
        .args(args)
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
    let (events, stderr, _) = drive(stdin, stdout, stderr, payload, on_event).await;
    let status = child.wait().await.map_err(|e| HostError::Run {
        message: e.to_string(),
    })?;
    Ok(Output {
        events,
        code: status.code(),
        stderr,
    })
}
