//! The one place that draws progress: a bar on a terminal (indicatif), plain
//! lines otherwise. Workers never print; they send [`Progress`] here.

use std::io::Write;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::mpsc::UnboundedReceiver;

use super::{Action, Progress, Row, human_duration};

/// How the monitor draws.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    /// stderr is a terminal: draw a bar.
    pub terminal: bool,
    /// `--quiet`: draw nothing.
    pub quiet: bool,
    /// `-v`: also report skipped stacks.
    pub verbose: u8,
}

/// The plain line for a result, and the indented log and hint lines after it.
pub fn result_lines(row: &Row, log: &[String]) -> Vec<String> {
    let mut out = vec![match &row.error {
        None => format!(
            "{} {}: {} ({}) in {}",
            row.host,
            row.stack,
            row.action.as_str(),
            row.reason.as_str(),
            human_duration(row.duration)
        ),
        Some(e) => format!(
            "{} {}: {} ({}): {e}",
            row.host,
            row.stack,
            row.action.as_str(),
            row.reason.as_str()
        ),
    }];
    out.extend(log.iter().map(|l| format!("    | {l}")));
    if let Some(h) = &row.hint {
        out.push(format!("  hint: {h}"));
    }
    out
}

/// Consume events until every sender is gone.
pub async fn run(mut rx: UnboundedReceiver<Progress>, style: Style) {
    let bar = if style.terminal && !style.quiet {
        let b = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        b.set_style(
            ProgressStyle::with_template("{spinner} [{pos}/{len} hosts] {elapsed} {wide_msg}")
                .expect("valid template"),
        );
        b.enable_steady_tick(Duration::from_millis(120));
        Some(b)
    } else {
        None
    };
    // plain lines (a log, cron's mail) say when; a terminal shows it live
    let out = |line: String| match &bar {
        Some(b) => b.println(line),
        None => {
            let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
            // a closed stderr is no reason to stop
            let _ = writeln!(std::io::stderr(), "{now} {line}");
        }
    };
    let say = |line: String| {
        if !style.quiet {
            out(line);
        }
    };
    while let Some(ev) = rx.recv().await {
        match ev {
            Progress::Start { hosts } => {
                if let Some(b) = &bar {
                    b.set_length(hosts as u64);
                }
            }
            Progress::Step { host, stack, step } => match &bar {
                Some(b) => b.set_message(format!("{host} {stack}: {step}")),
                None => say(format!("{host} {stack}: {step}")),
            },
            Progress::Note { host, stack, text } => match stack.as_str() {
                // of the host, not of one stack
                "-" | "" => say(format!("{host}: {text}")),
                _ => say(format!("{host} {stack}: {text}")),
            },
            Progress::Result { row, log } => {
                // -q keeps what explains a failure: its line, the docker
                // output's tail and the hint
                let failed = matches!(row.action, Action::Failed | Action::RolledBack);
                if failed && style.quiet {
                    result_lines(&row, &log).into_iter().for_each(out);
                } else if row.action != Action::Skipped || row.error.is_some() || style.verbose > 0
                {
                    result_lines(&row, &log).into_iter().for_each(say);
                }
            }
            Progress::HostDone { .. } => {
                if let Some(b) = &bar {
                    b.inc(1);
                }
            }
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
}
