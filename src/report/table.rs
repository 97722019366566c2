//! The summary table and its closing line.

use std::time::Duration;

use comfy_table::{Cell, Color, Table, presets};

use super::{Action, Row, counts, human_duration};
use crate::decide::Reason;

/// A table in rbuild's style: box drawing on a terminal (`unicode`), plain
/// ASCII for mail; wrapped to `width` columns when one is known.
pub fn new_table(unicode: bool, width: Option<u16>) -> Table {
    let mut t = Table::new();
    t.load_style(if unicode {
        presets::UTF8_FULL_CONDENSED
    } else {
        presets::ASCII_FULL_CONDENSED
    });
    if let Some(w) = width {
        t.set_width(w)
            .set_content_arrangement(comfy_table::ContentArrangement::Dynamic);
    }
    t
}

/// Whether the cells' colours are drawn: with `color`, even when stdout is
/// not a terminal (`--color always`) or `NO_COLOR` is set; without it,
/// never.
pub fn style(t: &mut Table, color: bool) {
    if color {
        // `--color always` wins over NO_COLOR, which crossterm checks itself
        crossterm::style::force_color_output(true);
        t.enforce_styling();
    } else {
        t.force_no_tty();
    }
}

/// The width for a table on stdout (see [`width`]): `terminal` says
/// whether stdout is one.
pub fn stdout_width(terminal: bool) -> Option<u16> {
    let columns = std::env::var("COLUMNS").ok();
    let term_width = terminal
        .then(|| crossterm::terminal::size().ok().map(|(w, _)| w))
        .flatten();
    width(columns.as_deref(), term_width)
}

/// The width the summary is wrapped to (long errors wrap inside their
/// column): `COLUMNS` when it is set to a number, else the terminal's width
/// when stdout is one, else none: piped output (cron's mail, a log) keeps
/// each row on one line, whole, for grep.
pub fn width(columns: Option<&str>, terminal_width: Option<u16>) -> Option<u16> {
    columns
        .and_then(|c| c.trim().parse::<u16>().ok())
        .filter(|w| *w > 0)
        .or(terminal_width.filter(|w| *w > 0))
}

/// The colour of a row's action and of its reason: green for what was
/// done, red for what failed (or fails the run), yellow for what is held
/// back (`held`, `locked`); none for the rest.
fn colours(r: &Row) -> (Option<Color>, Option<Color>) {
    let failing = r.reason.holds_back();
    let held = matches!(r.reason, Reason::Held | Reason::Locked);
    let action = match r.action {
        Action::Rebuilt | Action::Started => Some(Color::Green),
        Action::Failed | Action::RolledBack => Some(Color::Red),
        _ if failing => Some(Color::Red),
        _ if held => Some(Color::Yellow),
        _ => None,
    };
    let reason = if failing {
        Some(Color::Red)
    } else if held {
        Some(Color::Yellow)
    } else {
        None
    };
    (action, reason)
}

/// Render the rows as a table followed by a one-line summary. `unicode`
/// picks box-drawing borders (a terminal); otherwise plain ASCII for mail.
/// `color`: actions and reasons in colour (ANSI), whatever stdout is.
pub fn render(
    rows: &[Row],
    total: Duration,
    unicode: bool,
    width: Option<u16>,
    color: bool,
) -> String {
    let mut t = new_table(unicode, width);
    style(&mut t, color);
    t.set_header(["HOST", "STACK", "ACTION", "REASON", "DURATION", "ERROR"]);
    for r in rows {
        let paint = |text: &str, c: Option<Color>| match c {
            Some(c) if color => Cell::new(text).fg(c),
            _ => Cell::new(text),
        };
        let (action, reason) = colours(r);
        t.add_row([
            Cell::new(&r.host),
            Cell::new(&r.stack),
            paint(r.action.as_str(), action),
            paint(r.reason.as_str(), reason),
            Cell::new(human_duration(r.duration)),
            paint(
                r.error.as_deref().unwrap_or(""),
                action.filter(|c| *c == Color::Red),
            ),
        ]);
    }
    format!("{t}\n{}", summary_line(rows, total))
}

/// A `-q` run for cron's mail (pure): nothing when no row is `shown`;
/// else the shown rows as a table, the whole run's summary line, and each
/// shown row that has something to explain with its error, the tail of
/// its output and its hint.
pub fn render_mail(
    rows: &[Row],
    shown: &[bool],
    total: Duration,
    unicode: bool,
    width: Option<u16>,
    color: bool,
) -> String {
    let picked: Vec<Row> = rows
        .iter()
        .zip(shown)
        .filter(|(_, s)| **s)
        .map(|(r, _)| r.clone())
        .collect();
    if picked.is_empty() {
        return String::new();
    }
    let table = render(&picked, total, unicode, width, color);
    let (table, _) = table
        .trim_end()
        .rsplit_once('\n')
        .unwrap_or((table.as_str(), ""));
    let mut out = format!("{table}\n{}", summary_line(rows, total));
    for r in picked
        .iter()
        .filter(|r| r.error.is_some() || r.hint.is_some() || !r.detail.output.is_empty())
    {
        out.push('\n');
        for l in super::progress::result_lines(r, &r.detail.output) {
            out.push_str(&l);
            out.push('\n');
        }
    }
    out.push_str(&super::plan::render(&picked));
    out
}

/// `2 rebuilt, 1 held back on 3 hosts in 4.2s`.
fn summary_line(rows: &[Row], total: Duration) -> String {
    let hosts = {
        let mut h: Vec<&str> = rows.iter().map(|r| r.host.as_str()).collect();
        h.sort_unstable();
        h.dedup();
        h.len()
    };
    let parts = summary_parts(rows);
    format!(
        "{} on {hosts} host{} in {}\n",
        if parts.is_empty() {
            "nothing".to_owned()
        } else {
            parts.join(", ")
        },
        if hosts == 1 { "" } else { "s" },
        human_duration(total)
    )
}

/// Whether a skipped row counts as a failure for the exit status: a stack
/// held back by its failed files or by a halted rollout (see `exit`).
fn held_back(r: &Row) -> bool {
    r.action == Action::Skipped && r.reason.holds_back()
}

/// The summary line's counts, by action, with the skipped rows that the
/// exit status counts as failures apart ("1 held back"), so that the line
/// says why a run whose rows all look skipped exits 1.
fn summary_parts(rows: &[Row]) -> Vec<String> {
    let back = rows.iter().filter(|r| held_back(r)).count();
    let mut parts: Vec<String> = counts(rows)
        .into_iter()
        .filter_map(|(a, n)| {
            let n = if a == Action::Skipped { n - back } else { n };
            (n > 0).then(|| format!("{n} {}", a.as_str().replace('_', " ")))
        })
        .collect();
    if back > 0 {
        parts.push(format!("{back} held back"));
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::Reason;
    use crate::report::Action;

    #[test]
    fn table_snapshot() {
        let rows = vec![
            Row {
                host: "web1".into(),
                stack: "blog".into(),
                action: Action::Rebuilt,
                reason: Reason::Expired,
                duration: Duration::from_millis(12_340),
                error: None,
                hint: None,
                detail: Default::default(),
            },
            Row {
                host: "web2".into(),
                stack: "blog".into(),
                action: Action::Failed,
                reason: Reason::HostFailed,
                duration: Duration::from_millis(10_002),
                error: Some("cannot connect: Connection refused".into()),
                hint: None,
                detail: Default::default(),
            },
            Row {
                host: "web3".into(),
                stack: "blog".into(),
                action: Action::Skipped,
                reason: Reason::UpToDate,
                duration: Duration::from_millis(180),
                error: None,
                hint: None,
                detail: Default::default(),
            },
        ];
        insta::assert_snapshot!(render(
            &rows,
            Duration::from_millis(10_500),
            false,
            None,
            false
        ));
        // in colour: the same table with ANSI codes around the actions
        let coloured = render(&rows, Duration::from_millis(10_500), false, None, true);
        assert!(coloured.contains("\x1b["), "{coloured}");
        let strip = |s: &str| {
            let mut out = String::new();
            let mut rest = s;
            while let Some(i) = rest.find("\x1b[") {
                out.push_str(&rest[..i]);
                rest = &rest[i..];
                rest = &rest[rest.find('m').unwrap() + 1..];
            }
            out + rest
        };
        assert_eq!(
            strip(&coloured),
            render(&rows, Duration::from_millis(10_500), false, None, false)
        );
    }

    #[test]
    fn long_errors_wrap_to_the_width() {
        assert_eq!(width(Some("80"), Some(120)), Some(80), "COLUMNS wins");
        assert_eq!(width(None, Some(120)), Some(120));
        assert_eq!(width(Some("wide"), None), None);
        assert_eq!(width(Some("0"), None), None);
        assert_eq!(width(None, None), None, "piped: no wrapping");
        let row = Row {
            host: "web1.example.com".into(),
            stack: "blog".into(),
            action: Action::Failed,
            reason: Reason::HostFailed,
            duration: Duration::from_millis(10_002),
            error: Some(format!(
                "cannot connect: {} /very/long/path/{}",
                "ssh: connect to host web1.example.com port 22: Connection refused; ".repeat(3),
                "x".repeat(120)
            )),
            hint: None,
            detail: Default::default(),
        };
        for (w, unicode) in [
            (60, false),
            (80, false),
            (80, true),
            (100, false),
            (120, true),
        ] {
            let text = render(
                std::slice::from_ref(&row),
                Duration::ZERO,
                unicode,
                Some(w),
                false,
            );
            for l in text.lines() {
                assert!(l.chars().count() <= w as usize, "{w}: {l}\n{text}");
            }
            // nothing was cut: every word of the error is there
            // from 80 columns on, only the error wraps: every word of it
            // is there
            assert!(w < 80 || text.contains("Connection"), "{text}");
        }
    }

    #[test]
    fn actions_are_green_red_or_yellow() {
        let row = |action, reason| Row::new("h", "s", action, reason);
        let g = Some(Color::Green);
        let r = Some(Color::Red);
        let y = Some(Color::Yellow);
        for (action, reason, want) in [
            (Action::Rebuilt, Reason::Expired, (g, None)),
            (Action::Started, Reason::NotRunning, (g, None)),
            (Action::Failed, Reason::HostFailed, (r, None)),
            (Action::RolledBack, Reason::ConfigChanged, (r, None)),
            (Action::Skipped, Reason::Held, (y, y)),
            (Action::Skipped, Reason::Locked, (y, y)),
            (Action::Skipped, Reason::PreviousFailure, (r, r)),
            (Action::Skipped, Reason::UpToDate, (None, None)),
            (Action::WouldRebuild, Reason::FirstBuild, (None, None)),
        ] {
            assert_eq!(colours(&row(action, reason)), want, "{action:?} {reason:?}");
        }
    }
}

#[cfg(test)]
mod mail_tests {
    use super::*;

    #[test]
    fn a_quiet_mail_shows_what_changed_or_failed_with_its_tail_and_hint() {
        let mut failed = Row::new("web2", "shop", Action::Failed, Reason::ConfigChanged);
        failed.error = Some("build failed (exit 1)".into());
        failed.hint = Some("`rbuild logs web2 shop` shows the whole output".into());
        failed.detail.output = vec![
            "Step 3/5 : RUN make".into(),
            "make: *** No rule to make target 'all'.  Stop.".into(),
        ];
        let mut held = Row::new("web3", "blog", Action::Skipped, Reason::PreviousFailure);
        held.error =
            Some("these files failed their rebuild 2h ago; generation 3 still runs".into());
        let rows = [
            Row::new("web1", "blog", Action::Skipped, Reason::UpToDate),
            Row::new("web1", "shop", Action::Rebuilt, Reason::Expired),
            failed,
            held,
        ];
        let mail =
            |shown: &[bool]| render_mail(&rows, shown, Duration::from_secs(42), false, None, false);
        assert_eq!(mail(&[false, false, false, false]), "");
        insta::assert_snapshot!(mail(&[false, true, true, false]));
        let again = mail(&[false, false, false, true]);
        assert!(
            again.contains("web3 blog: skipped (previous_failure): these files failed"),
            "{again}"
        );
        assert!(!again.contains("web1"), "{again}");
    }
}

#[cfg(test)]
mod summary_tests {
    use super::*;

    fn row(action: Action, reason: Reason) -> Row {
        Row::new("h", "s", action, reason)
    }

    #[test]
    fn the_summary_counts_what_the_exit_status_counts() {
        let rows = [
            row(Action::Rebuilt, Reason::Expired),
            row(Action::Skipped, Reason::UpToDate),
            row(Action::Skipped, Reason::PreviousFailure),
            row(Action::Skipped, Reason::RolloutHalted),
        ];
        assert_eq!(
            summary_parts(&rows),
            ["1 rebuilt", "1 skipped", "2 held back"]
        );
        assert_eq!(
            summary_parts(&rows[2..3]),
            ["1 held back"],
            "no `0 skipped`"
        );
    }
}
