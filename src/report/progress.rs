//! The one place that draws progress. Workers never print; they send
//! [`Progress`] here.
//!
//! On a terminal (indicatif's `MultiProgress` on stderr): an overall bar
//! (hosts done of all), and under it one line per host in flight with its
//! current step and its elapsed time; a host's line goes away when it is
//! done, and each result is printed above the bars as a line of its own.
//! Otherwise plain lines, each with its time (RFC 3339, UTC), for a log or
//! cron's mail.
//!
//! Ctrl-C reaches the display as an [`Interrupt`]: its line is printed
//! above the bars (never drawn over), naming the hosts in flight; the
//! count of hosts done never counts one that did not finish; a second
//! Ctrl-C names the hosts that may still be rebuilding on their own and
//! clears the bars before the process exits.

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

/// The overall bar's template (its message: [`Board::overall`]).
const OVERALL: &str = "{spinner} [{bar:24}] {wide_msg} {elapsed:>4}";

/// What the signal watcher tells the display.
#[derive(Debug)]
pub enum Interrupt {
    /// The first Ctrl-C: no new host starts; those in flight finish.
    Stop,
    /// The second Ctrl-C (or SIGTERM after the first): the process exits
    /// once the display has said what it leaves behind and sent on `ack`.
    Abort {
        ack: tokio::sync::mpsc::UnboundedSender<()>,
    },
}

/// The hosts of a run as the display counts them (pure): how many there
/// are, which are in flight (in the order they started), how many are
/// done, and how many never started because of Ctrl-C.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Board {
    pub total: usize,
    pub in_flight: Vec<String>,
    pub done: usize,
    pub not_started: usize,
    pub interrupted: bool,
}

impl Board {
    pub fn start(&mut self, hosts: usize) {
        self.total = hosts;
    }

    /// A host starts; the hosts in flight are kept in name order (their
    /// tasks start at once, so the order they say so in is a race).
    pub fn host_start(&mut self, host: &str) {
        if let Err(i) = self.in_flight.binary_search_by(|h| h.as_str().cmp(host)) {
            self.in_flight.insert(i, host.to_owned());
        }
    }

    /// A host is finished: done when it had started, else it never will
    /// (Ctrl-C): not counted as done.
    pub fn host_done(&mut self, host: &str) {
        match self.in_flight.iter().position(|h| h == host) {
            Some(i) => {
                self.in_flight.remove(i);
                self.done += 1;
            }
            None => self.not_started += 1,
        }
    }

    /// The overall bar's words: `2/5 hosts done`, and after Ctrl-C what
    /// is in flight and what will not start.
    pub fn overall(&self) -> String {
        let mut s = format!("{}/{} hosts done", self.done, self.total);
        if self.interrupted {
            let waiting = self.total.saturating_sub(self.done + self.in_flight.len());
            s += &format!(
                ", {} in flight, {} not started (interrupted)",
                self.in_flight.len(),
                waiting
            );
        }
        s
    }

    /// The line the first Ctrl-C prints.
    pub fn interrupted_line(&self) -> String {
        match self.in_flight.len() {
            0 => "interrupted: starting no new host; no host is in flight".to_owned(),
            n => format!(
                "interrupted: starting no new host; waiting for the {} in flight: {} (Ctrl-C again to abort)",
                hosts(n),
                self.in_flight.join(", ")
            ),
        }
    }

    /// The lines the second Ctrl-C prints: what may still run on its own.
    pub fn abort_lines(&self) -> Vec<String> {
        match self.in_flight.len() {
            0 => vec!["aborted: no host was in flight".to_owned()],
            n => vec![
                format!(
                    "aborted: the {} in flight may still be rebuilding on {} own (the host script runs to its end there): {}",
                    hosts(n),
                    if n == 1 { "its" } else { "their" },
                    self.in_flight.join(", ")
                ),
                format!(
                    "hint: `rbuild status --limit {}` shows what runs there once the script is done",
                    self.in_flight.join(",")
                ),
            ],
        }
    }
}

/// `1 host`, `3 hosts`.
fn hosts(n: usize) -> String {
    format!("{n} host{}", if n == 1 { "" } else { "s" })
}
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

/// stderr as indicatif's terminal, with the cursor kept off the end of
/// the last bar. indicatif pads every line to the width and leaves the
/// cursor waiting to wrap at the end of the last one: the terminal's echo
/// of Ctrl-C (`^C`) would then start a line of its own, and every frame
/// after it would be drawn one line low under a stale one. So each frame
/// ends with a newline (the cursor on the line below the bars, where `^C`
/// is echoed harmlessly), and the next write first erases that line and
/// goes back up to where indicatif believes the cursor is.
#[derive(Debug, Default)]
struct Margin {
    state: std::sync::Mutex<MarginState>,
}

#[derive(Debug, Default)]
struct MarginState {
    buf: Vec<u8>,
    /// The last write was a line's filler: the cursor waits to wrap.
    at_end: bool,
    /// A newline was written after the last frame.
    below: bool,
}

impl Margin {
    fn put(&self, s: &str, filler: bool) -> std::io::Result<()> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if std::mem::take(&mut st.below) {
            st.buf.extend_from_slice(b"\r\x1b[2K\x1b[1A");
        }
        st.buf.extend_from_slice(s.as_bytes());
        st.at_end = filler;
        Ok(())
    }

    fn moved(&self, n: usize, code: char) -> std::io::Result<()> {
        match n {
            0 => self.put("", false),
            n => self.put(&format!("\x1b[{n}{code}"), false),
        }
    }
}

impl indicatif::TermLike for Margin {
    fn width(&self) -> u16 {
        crossterm::terminal::size().map_or(80, |(w, _)| w)
    }

    fn height(&self) -> u16 {
        crossterm::terminal::size().map_or(24, |(_, h)| h)
    }

    fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
        self.moved(n, 'A')
    }

    fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
        self.moved(n, 'B')
    }

    fn move_cursor_right(&self, n: usize) -> std::io::Result<()> {
        self.moved(n, 'C')
    }

    fn move_cursor_left(&self, n: usize) -> std::io::Result<()> {
        self.moved(n, 'D')
    }

    fn write_line(&self, s: &str) -> std::io::Result<()> {
        self.put(&format!("{s}\n"), false)
    }

    fn write_str(&self, s: &str) -> std::io::Result<()> {
        // a line's filler (its last write) is spaces, or nothing when the
        // line fills the width
        self.put(s, s.bytes().all(|b| b == b' '))
    }

    fn clear_line(&self) -> std::io::Result<()> {
        self.put("\r\x1b[2K", false)
    }

    fn flush(&self) -> std::io::Result<()> {
        let bytes = {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if std::mem::take(&mut st.at_end) {
                st.buf.extend_from_slice(b"\r\n");
                st.below = true;
            }
            std::mem::take(&mut st.buf)
        };
        let mut err = std::io::stderr().lock();
        err.write_all(&bytes)?;
        err.flush()
    }
}

/// The live display's bars while there is one, for the log's lines.
static SHOWN: std::sync::Mutex<Option<MultiProgress>> = std::sync::Mutex::new(None);

/// Write a log line on stderr: above the bars while they are drawn (they
/// are hidden, the line written, the bars drawn again), so that a log line
/// is never drawn over nor leaves a stale frame.
pub fn write_log(bytes: &[u8]) -> std::io::Result<()> {
    let write = || {
        let mut err = std::io::stderr().lock();
        err.write_all(bytes).and_then(|_| err.flush())
    };
    let shown = SHOWN.lock().unwrap_or_else(|e| e.into_inner()).clone();
    match shown {
        Some(m) => m.suspend(write),
        None => write(),
    }
}

/// A writer for the log (see [`write_log`]): one `write` an event.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        write_log(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The live display on a terminal: the overall bar and one line per host
/// in flight.
struct Live {
    multi: MultiProgress,
    overall: ProgressBar,
    hosts: HashMap<String, ProgressBar>,
    /// stderr's colour, for the `hint:` of the lines printed above.
    color: bool,
}

impl Live {
    fn new() -> Live {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::term_like_with_hz(
            Box::new(Margin::default()),
            20,
        ));
        let overall = multi.add(ProgressBar::new(0));
        overall.set_style(
            ProgressStyle::with_template(OVERALL)
                .expect("valid template")
                .progress_chars("=> "),
        );
        *SHOWN.lock().unwrap_or_else(|e| e.into_inner()) = Some(multi.clone());
        Live {
            multi,
            overall,
            hosts: HashMap::new(),
            color: super::color_stderr(),
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
    }

    /// The overall bar as `board` counts.
    fn count(&self, board: &Board) {
        self.overall.set_length(board.total as u64);
        self.overall.set_position(board.done as u64);
        self.overall.set_message(board.overall());
    }

    fn tick(&self) {
        self.overall.tick();
        self.hosts.values().for_each(ProgressBar::tick);
    }

    fn println(&self, line: String) {
        // a closed stderr is no reason to stop
        let _ = self
            .multi
            .println(super::paint_prefixes(&line, self.color).trim_end());
    }

    fn finish(self) {
        *SHOWN.lock().unwrap_or_else(|e| e.into_inner()) = None;
        for b in self.hosts.values() {
            b.finish_and_clear();
        }
        self.overall.finish_and_clear();
        let _ = self.multi.clear();
    }
}

/// Consume events until every sender is gone.
pub async fn run(rx: UnboundedReceiver<Progress>, style: Style) {
    watch(rx, style, None).await
}

/// Consume events until every sender is gone, and the signal watcher's
/// [`Interrupt`]s (see the module's doc).
pub async fn watch(
    mut rx: UnboundedReceiver<Progress>,
    style: Style,
    mut interrupts: Option<UnboundedReceiver<Interrupt>>,
) {
    let mut live = (style.terminal && !style.quiet).then(Live::new);
    let mut board = Board::default();
    // plain lines (a log, cron's mail) say when; a terminal shows it live
    let out = |live: &Option<Live>, line: String| match live {
        Some(l) => l.println(line),
        None => {
            let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
            let text = super::paint_prefixes(&format!("{now} {line}\n"), super::color_stderr());
            // a closed stderr is no reason to stop
            let _ = std::io::stderr().write_all(text.as_bytes());
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
            i = async { interrupts.as_mut()?.recv().await }, if interrupts.is_some() => {
                match i {
                    None => interrupts = None,
                    Some(Interrupt::Stop) => {
                        board.interrupted = true;
                        say(&live, board.interrupted_line());
                        if let Some(l) = &live {
                            l.count(&board);
                        }
                    }
                    Some(Interrupt::Abort { ack }) => {
                        // said even under -q: the operator pressed it
                        for line in board.abort_lines() {
                            out(&live, line);
                        }
                        if let Some(l) = live.take() {
                            l.finish();
                        }
                        let _ = ack.send(());
                        return;
                    }
                }
                continue;
            }
        };
        match ev {
            Progress::Start { hosts } => {
                board.start(hosts);
                if let Some(l) = &live {
                    l.count(&board);
                }
            }
            Progress::HostStart { host } => {
                board.host_start(&host);
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
                // -q says nothing here: its mail (stdout) has each row that
                // changed or failed with its output's tail and hint
                if row.action != Action::Skipped || row.error.is_some() || style.verbose > 0 {
                    for line in result_lines(&row, &log) {
                        say(&live, line);
                    }
                }
            }
            Progress::HostDone { host } => {
                board.host_done(&host);
                if let Some(l) = &mut live {
                    l.done(&host);
                    l.count(&board);
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
    fn a_host_that_never_started_is_not_counted_done() {
        let mut b = Board::default();
        b.start(4);
        b.host_start("h1");
        b.host_start("h2");
        assert_eq!(b.overall(), "0/4 hosts done");
        b.host_done("h1");
        // Ctrl-C: h2 is in flight, h3 and h4 never start
        b.interrupted = true;
        assert_eq!(
            b.interrupted_line(),
            "interrupted: starting no new host; waiting for the 1 host in flight: h2 (Ctrl-C again to abort)"
        );
        assert_eq!(
            b.overall(),
            "1/4 hosts done, 1 in flight, 2 not started (interrupted)"
        );
        b.host_done("h3");
        b.host_done("h4");
        assert_eq!((b.done, b.not_started), (1, 2));
        assert_eq!(
            b.overall(),
            "1/4 hosts done, 1 in flight, 2 not started (interrupted)"
        );
        b.host_done("h2");
        assert_eq!(
            b.overall(),
            "2/4 hosts done, 0 in flight, 2 not started (interrupted)"
        );
        assert_eq!(
            b.interrupted_line(),
            "interrupted: starting no new host; no host is in flight"
        );
    }

    #[test]
    fn a_second_ctrl_c_names_the_hosts_that_may_still_rebuild() {
        let mut b = Board::default();
        b.start(3);
        for h in ["h1", "h2", "h3"] {
            b.host_start(h);
        }
        b.host_done("h2");
        b.interrupted = true;
        assert_eq!(
            b.interrupted_line(),
            "interrupted: starting no new host; waiting for the 2 hosts in flight: h1, h3 (Ctrl-C again to abort)"
        );
        assert_eq!(
            b.abort_lines(),
            [
                "aborted: the 2 hosts in flight may still be rebuilding on their own (the host script runs to its end there): h1, h3",
                "hint: `rbuild status --limit h1,h3` shows what runs there once the script is done",
            ]
        );
        b.host_done("h1");
        b.host_done("h3");
        assert_eq!(b.abort_lines(), ["aborted: no host was in flight"]);
    }

    #[tokio::test]
    async fn the_display_answers_an_abort_and_ends() {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let (itx, irx) = tokio::sync::mpsc::unbounded_channel();
        let style = Style {
            terminal: false,
            quiet: true,
            verbose: 0,
        };
        let monitor = tokio::spawn(watch(rx, style, Some(irx)));
        tx.send(Progress::Start { hosts: 1 }).unwrap();
        tx.send(Progress::HostStart { host: "h1".into() }).unwrap();
        itx.send(Interrupt::Stop).unwrap();
        let (ack, mut acked) = tokio::sync::mpsc::unbounded_channel();
        itx.send(Interrupt::Abort { ack }).unwrap();
        acked.recv().await.expect("the display acknowledges");
        // it ends though a sender is left
        monitor.await.unwrap();
        drop(tx);
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
