//! What a command returns for the terminal, and its rendering: the one
//! place that decides which document a command prints. Commands build an
//! [`Output`]; [`render`] turns it into bytes for stdout and stderr; the
//! one writer ([`crate::app`]) prints them.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use super::{Rendered, Row, check, color_stdout, history, json, plan, status, table};
use crate::registry::Lookups;
use crate::remote::{Attempt, FailedAttempt, Generation};
use crate::status::StackStatus;

/// How output is drawn: read once from the flags and the terminal, so that
/// rendering stays pure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct View {
    /// `--json`: the command's one document.
    pub json: bool,
    /// `-q`: an uneventful run prints nothing.
    pub quiet: bool,
    /// Stdout is a terminal: box drawing (plain ASCII for mail and logs).
    pub terminal: bool,
    /// The width tables wrap to (see [`table::width`]).
    pub width: Option<u16>,
    /// Colour on stdout.
    pub color: bool,
    /// `--wide`: `rbuild status` draws every column, unwrapped.
    pub wide: bool,
}

impl View {
    /// The view of this process's stdout.
    pub fn of_stdout(json: bool, quiet: bool) -> View {
        let terminal = std::io::stdout().is_terminal();
        View {
            json,
            quiet,
            terminal,
            width: table::stdout_width(terminal),
            color: color_stdout(),
            wide: false,
        }
    }
}

/// A command's result, before it is drawn.
#[derive(Debug, Clone)]
pub enum Output {
    /// A fleet run: a row per stack per host; how long it took.
    Run {
        rows: Vec<Row>,
        elapsed: Duration,
        /// What the registries were asked, when any was.
        registry: Option<Arc<Lookups>>,
    },
    /// A fleet run under `-q` (for cron's mail): its rows, which of them
    /// to show (those that changed or failed, a persisting failure when
    /// new, changed or a day old: see [`crate::reported`]), and warnings
    /// for stderr. `--json` still prints every row.
    Mail {
        rows: Vec<Row>,
        shown: Vec<bool>,
        elapsed: Duration,
        warnings: Vec<String>,
        registry: Option<Arc<Lookups>>,
    },
    /// `rbuild rollback`: its one row.
    Rollback { row: Row, elapsed: Duration },
    /// `rbuild status`: every stack of the selected hosts, assessed.
    Status(Vec<StackStatus>),
    /// `rbuild history`: a stack's attempts and its kept generations.
    History {
        host: String,
        stack: String,
        attempts: Vec<Attempt>,
        generations: Vec<Generation>,
    },
    /// `rbuild logs`: a stack's kept failed attempt, if there is one.
    Logs {
        host: String,
        stack: String,
        kept: Option<FailedAttempt>,
    },
    /// `rbuild merge`: the rows of many shards' runs as one run; how long
    /// they took together; a `warning:` line for each shard that stopped
    /// before any host.
    Merge {
        rows: Vec<Row>,
        elapsed: Duration,
        notes: Vec<String>,
    },
    /// `rbuild check`: what it found.
    Check(check::Checked),
    /// Text made whole elsewhere (completions, the man page), as it is.
    Text(String),
    /// `rbuild version`: the version, as `--version` prints it, or
    /// `{"version": ...}` under `--json`.
    Version(String),
}

/// The bytes of `output` for stdout and stderr, as `view` asks; `exit_code`
/// is what the documents carry.
pub fn render(output: &Output, exit_code: u8, view: &View) -> Rendered {
    match output {
        Output::Merge {
            rows,
            elapsed,
            notes,
        } => {
            let run = Output::Run {
                rows: rows.clone(),
                elapsed: *elapsed,
                registry: None,
            };
            let mut r = render(&run, exit_code, view);
            for n in notes {
                r.stderr.push_str(n);
                r.stderr.push('\n');
            }
            r
        }
        Output::Run {
            rows,
            elapsed,
            registry,
        } => {
            if view.json {
                Rendered::out(json::render_run(rows, exit_code, registry.as_deref()))
            } else if view.quiet && !super::eventful(rows) {
                Rendered::default()
            } else {
                let mut out = table::render(rows, *elapsed, view.terminal, view.width, view.color);
                out.push_str(&plan::render(rows));
                Rendered::out(out)
            }
        }
        Output::Mail {
            rows,
            shown,
            elapsed,
            warnings,
            registry,
        } => {
            let stderr: String = warnings.iter().map(|w| format!("warning: {w}\n")).collect();
            let stdout = if view.json {
                json::render_run(rows, exit_code, registry.as_deref())
            } else {
                table::render_mail(rows, shown, *elapsed, view.terminal, view.width, view.color)
            };
            Rendered { stdout, stderr }
        }
        Output::Rollback { row, elapsed } => {
            let rows = std::slice::from_ref(row);
            Rendered::out(if view.json {
                json::render(rows, exit_code)
            } else {
                table::render(rows, *elapsed, view.terminal, view.width, view.color)
            })
        }
        Output::Status(all) => Rendered::out(if view.json {
            status::render_json(all, exit_code)
        } else {
            status::render_table(all, view.terminal, view.width, view.color, view.wide)
        }),
        Output::History {
            host,
            stack,
            attempts,
            generations,
        } => history::history(host, stack, attempts, generations, view.json, view.terminal),
        Output::Logs { host, stack, kept } => history::logs(host, stack, kept.as_ref(), view.json),
        Output::Check(c) => check::render(c, view.json, exit_code),
        Output::Text(t) => Rendered::out(t.clone()),
        Output::Version(v) if view.json => {
            Rendered::out(format!("{}\n", serde_json::json!({ "version": v })))
        }
        Output::Version(v) => Rendered::out(format!("rbuild {v}\n")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::Reason;
    use crate::report::Action;

    fn view(json: bool, quiet: bool) -> View {
        View {
            json,
            quiet,
            ..View::default()
        }
    }

    #[test]
    fn a_quiet_run_that_changed_nothing_prints_nothing_but_its_document() {
        let run = Output::Run {
            rows: vec![Row::new("h1", "web", Action::Skipped, Reason::UpToDate)],
            elapsed: Duration::from_millis(300),
            registry: None,
        };
        assert_eq!(render(&run, 0, &view(false, true)), Rendered::default());
        assert!(
            render(&run, 0, &view(false, false))
                .stdout
                .contains("1 skipped")
        );
        let doc: serde_json::Value =
            serde_json::from_str(&render(&run, 0, &view(true, true)).stdout).unwrap();
        assert_eq!(doc["results"][0]["action"], "skipped");
    }

    #[test]
    fn no_history_yet_is_a_note_on_stderr_and_an_empty_document() {
        let h = Output::History {
            host: "h1".into(),
            stack: "web".into(),
            attempts: vec![],
            generations: vec![],
        };
        let r = render(&h, 0, &view(false, false));
        assert_eq!(r.stdout, "");
        insta::assert_snapshot!(r.stderr, @"h1 web: no rebuild recorded yet");
        let doc = render(&h, 0, &view(true, false)).stdout;
        json::assert_valid("history", &doc);
        insta::assert_snapshot!(doc);
    }

    #[test]
    fn no_kept_failure_is_a_note_on_stderr_and_a_null_attempt() {
        let l = Output::Logs {
            host: "h1".into(),
            stack: "web".into(),
            kept: None,
        };
        let r = render(&l, 0, &view(false, false));
        assert_eq!(r.stdout, "");
        insta::assert_snapshot!(r.stderr, @"h1 web: no failed attempt is kept (none since rbuild began keeping them)");
        let doc = render(&l, 0, &view(true, false)).stdout;
        json::assert_valid("logs", &doc);
        insta::assert_snapshot!(doc);
    }
}
