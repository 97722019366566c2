//! The one place that draws progress. Workers never print; they send
//! [`Progress`] here.
//!
//! On a terminal (indicatif's `MultiProgress` on stderr): an overall bar
//! (hosts done of all), and under it one line per host in flight with its
//! current step and its elapsed time; a host's line goes away when it is
//! done, and each result is printed above the bars as a line of its own.
//! Otherwise plain lines, each with its time (RFC 3339, UTC), for a log or
//! cron's mail.

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
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

impl Style {
    /// The style for this process's stderr.
    pub fn of_stderr(quiet: bool, verbose: u8) -> Style {
        Style {
            terminal: std::io::IsTerminal::is_terminal(&std::io::stderr()),
            quiet,
            verbose,
        }
    }
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

/// The overall bar's template.
const OVERALL: &str = "{spinner} [{bar:30}] {pos}/{len} hosts done, {elapsed}";
/// A host's line: its name, its current step, how long it has been at it.
const HOST: &str = "  {spinner} {prefix} {wide_msg} {elapsed:>4}";

/// What a host's line says while it is in flight.
pub fn host_message(stack: &str, what: &str) -> String {
    if stack.is_empty() || stack == "-" {
        what.to_owned()
    } else {
        format!("{stack}: {what}")
    }
}

/// The live display on a terminal: the overall bar and one line per host
/// in flight.
struct Live {
    multi: MultiProgress,
    overall: ProgressBar,
    hosts: HashMap<String, ProgressBar>,
}

impl Live {
    fn new() -> Live {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let overall = multi.add(ProgressBar::new(0));
        overall.set_style(
            ProgressStyle::with_template(OVERALL)
                .expect("valid template")
                .progress_chars("=> "),
        );
        Live {
            multi,
            overall,
            hosts: HashMap::new(),
        }
    }

    /// The line of `host`, added under the others when it is new.
    fn host(&mut self, host: &str) -> &ProgressBar {
        let multi = &self.multi;
        self.hosts.entry(host.to_owned()).or_insert_with(|| {
            let b = multi.add(ProgressBar::new_spinner());
            b.set_style(ProgressStyle::with_template(HOST).expect("valid template"));
            b.set_prefix(host.to_owned());
            b
        })
    }

    fn done(&mut self, host: &str) {
        if let Some(b) = self.hosts.remove(host) {
            b.finish_and_clear();
            self.multi.remove(&b);
        }
        self.overall.inc(1);
    }

    fn tick(&self) {
        self.overall.tick();
        self.hosts.values().for_each(ProgressBar::tick);
    }

    fn println(&self, line: String) {
        // a closed stderr is no reason to stop
        let _ = self.multi.println(line);
    }

    fn finish(self) {
        for b in self.hosts.values() {
            b.finish_and_clear();
        }
        self.overall.finish_and_clear();
        let _ = self.multi.clear();
    }
}

/// Consume events until every sender is gone.
pub async fn run(mut rx: UnboundedReceiver<Progress>, style: Style) {
    let mut live = (style.terminal && !style.quiet).then(Live::new);
    // plain lines (a log, cron's mail) say when; a terminal shows it live
    let out = |live: &Option<Live>, line: String| match live {
        Some(l) => l.println(line),
        None => {
            let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
            // a closed stderr is no reason to stop
            let _ = writeln!(std::io::stderr(), "{now} {line}");
        }
    };
    let say = |live: &Option<Live>, line: String| {
        if !style.quiet {
            out(live, line);
        }
    };
    let mut ticks = tokio::time::interval(Duration::from_millis(150));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        let ev = tokio::select! {
            ev = rx.recv() => match ev {
                Some(ev) => ev,
                None => break,
            },
            _ = ticks.tick(), if live.is_some() => {
                if let Some(l) = &live {
                    l.tick();
                }
                continue;
            }
        };
        match ev {
            Progress::Start { hosts } => {
                if let Some(l) = &live {
                    l.overall.set_length(hosts as u64);
                }
            }
            Progress::HostStart { host } => {
                if let Some(l) = &mut live {
                    l.host(&host).set_message("connecting and checking");
                }
            }
            Progress::Step { host, stack, step } => match &mut live {
                Some(l) => l.host(&host).set_message(host_message(&stack, &step)),
                None => say(&live, format!("{host} {stack}: {step}")),
            },
            Progress::Note { host, stack, text } => match stack.as_str() {
                // of the host, not of one stack
                "-" | "" => say(&live, format!("{host}: {text}")),
                _ => say(&live, format!("{host} {stack}: {text}")),
            },
            Progress::Result { row, log } => {
                if let Some(l) = &mut live
                    && l.hosts.contains_key(&row.host)
                {
                    l.host(&row.host)
                        .set_message(host_message(&row.stack, row.action.as_str()));
                }
                // -q keeps what explains a failure: its line, the docker
                // output's tail and the hint
                let failed = matches!(row.action, Action::Failed | Action::RolledBack);
                if failed && style.quiet {
                    for line in result_lines(&row, &log) {
                        out(&live, line);
                    }
                } else if row.action != Action::Skipped || row.error.is_some() || style.verbose > 0
                {
                    for line in result_lines(&row, &log) {
                        say(&live, line);
                    }
                }
            }
            Progress::HostDone { host } => {
                if let Some(l) = &mut live {
                    l.done(&host);
                }
            }
        }
    }
    if let Some(l) = live {
        l.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_are_valid() {
        ProgressStyle::with_template(OVERALL).unwrap();
        ProgressStyle::with_template(HOST).unwrap();
    }

    #[test]
    fn a_host_line_names_the_stack_and_its_step() {
        assert_eq!(host_message("web", "build"), "web: build");
        assert_eq!(host_message("-", "connecting"), "connecting");
    }

    #[test]
    fn a_failed_result_keeps_its_output_tail_and_hint() {
        let row = Row {
            host: "h1".into(),
            stack: "web".into(),
            action: Action::Failed,
            reason: crate::decide::Reason::Expired,
            duration: Duration::from_secs(2),
            error: Some("build failed".into()),
            hint: Some("fix it".into()),
            detail: Default::default(),
        };
        assert_eq!(
            result_lines(&row, &["ERROR: no such file".into()]),
            [
                "h1 web: failed (expired): build failed",
                "    | ERROR: no such file",
                "  hint: fix it",
            ]
        );
    }
}
