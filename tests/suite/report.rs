//! What a run reports: the live display on a real terminal (tmux), plain
//! progress lines. (`--metrics-file`: tests/suite/notify.rs, beside the
//! webhook.)

use std::path::Path;
use std::process::Command;

use crate::support::*;

/// `'text'` for sh.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A tmux server of the test's own (its own socket), running one command
/// in a pane of a known size; killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    /// Run `c` (its program, arguments, environment and directory) in a
    /// 200x60 pane; after it ends the pane says `rbuild exited CODE`.
    fn run(socket: &str, c: &Command, script: &Path) -> Tmux {
        let mut text = String::new();
        if let Some(d) = c.get_current_dir() {
            text += &format!("cd {}\n", quote(&d.to_string_lossy()));
        }
        for (k, v) in c.get_envs() {
            let k = k.to_string_lossy();
            match v {
                Some(v) => text += &format!("export {k}={}\n", quote(&v.to_string_lossy())),
                None => text += &format!("unset {k}\n"),
            }
        }
        text += &quote(&c.get_program().to_string_lossy());
        for a in c.get_args() {
            text += " ";
            text += &quote(&a.to_string_lossy());
        }
        text += "\necho \"rbuild exited $?\"\nsleep 600\n";
        std::fs::write(script, text).unwrap();
        let t = Tmux {
            socket: socket.to_owned(),
        };
        sh(Command::new("tmux")
            .args(["-L", socket, "-f", "/dev/null", "new-session", "-d"])
            .args(["-x", "200", "-y", "60", "sh"])
            .arg(script));
        t
    }

    /// The pane as it is on the screen now.
    fn screen(&self) -> String {
        sh(Command::new("tmux").args(["-L", &self.socket, "capture-pane", "-p"]))
    }

    /// The pane with its colours, as escape sequences.
    fn screen_escapes(&self) -> String {
        sh(Command::new("tmux").args(["-L", &self.socket, "capture-pane", "-p", "-e"]))
    }

    /// Wait until the screen shows what `f` wants; the last screen.
    fn wait(&self, what: &str, mut f: impl FnMut(&str) -> bool) -> String {
        let start = std::time::Instant::now();
        loop {
            let last = self.screen();
            if f(&last) {
                return last;
            }
            if start.elapsed() > PATIENCE {
                panic!("gave up waiting for {what}; the screen:\n{last}");
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}

/// The line of the screen that shows `host` at `what`, if any.
fn line_of<'a>(screen: &'a str, host: &str, what: &str) -> Option<&'a str> {
    screen.lines().find(|l| {
        l.split_whitespace().any(|w| w == host) && l.contains(what) && !l.contains(" in ")
    })
}

#[test]
fn a_terminal_shows_a_line_per_host_in_flight_then_the_table() {
    let f = Fleet::new("pty", 2);
    let gate = f.root.path().join("gate");
    std::fs::create_dir(&gate).unwrap();
    let name = f.add_shared_stack(
        "web",
        &StackDef::behind_gate("v1", &gate, 100000),
        &["h1", "h2"],
        &[],
        None,
    );
    let socket = format!("rbuild-test-{}-pty", token());

    // the gate is closed: both hosts wait in their health gate, each with
    // its line under the overall bar
    let c = f.command(&["--up-timeout-period", "600"]);
    let t = Tmux::run(&socket, &c, &f.root.path().join("run.sh"));
    let wait = format!("{name}: wait");
    let screen = t.wait("a line per host in its health gate", |s| {
        s.contains("rbuild exited")
            || (line_of(s, "h1", &wait).is_some() && line_of(s, "h2", &wait).is_some())
    });
    assert!(!screen.contains("rbuild exited"), "{screen}");
    let overall = screen
        .lines()
        .position(|l| l.contains("0/2 hosts done"))
        .unwrap_or_else(|| panic!("an overall bar:\n{screen}"));
    for h in ["h1", "h2"] {
        let at = screen
            .lines()
            .position(|l| line_of(l, h, &wait).is_some())
            .unwrap();
        assert!(
            at > overall,
            "{h}'s line is under the overall bar:\n{screen}"
        );
        // its elapsed time: `12s`, `1m`
        let line = line_of(&screen, h, &wait).unwrap();
        let last = line.split_whitespace().last().unwrap();
        assert!(
            last.ends_with('s') || last.ends_with('m'),
            "{h}'s line ends with its elapsed time: {line}"
        );
    }

    std::fs::write(gate.join("open"), "").unwrap();
    let screen = t.wait("the run to end", |s| s.contains("rbuild exited"));
    assert!(screen.contains("rbuild exited 0"), "{screen}");
    // the bars are gone; each result is a line; the table is drawn
    assert!(!screen.contains("hosts done"), "{screen}");
    for h in ["h1", "h2"] {
        assert!(
            screen.contains(&format!("{h} {name}: rebuilt (first_build) in ")),
            "{screen}"
        );
        assert!(line_of(&screen, h, &wait).is_none(), "{screen}");
        let row = screen
            .lines()
            .find(|l| l.starts_with('│') && l.contains(&format!("│ {h} ")))
            .unwrap_or_else(|| panic!("a table row for {h}:\n{screen}"));
        assert!(
            row.contains("rebuilt") && row.contains("first_build"),
            "{row}"
        );
    }
    assert!(screen.contains("2 rebuilt on 2 hosts in "), "{screen}");
    drop(t);
    for h in ["h1", "h2"] {
        assert_eq!(f.assert_running(h, &name).health, "healthy");
    }

    // without a terminal: plain lines, each with its time
    f.write(&name, "Dockerfile", &sleeper_dockerfile("v2"));
    let run = f.run_plain(&["--limit", "h1", "--up-timeout-period", "120"]);
    run.assert_code(0);
    let progress: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains(&format!("h1 {name}: ")))
        .collect();
    assert!(
        progress.iter().any(|l| l.contains(": build")),
        "{}",
        run.dump()
    );
    for l in &progress {
        let (at, _) = l.split_once(' ').unwrap();
        assert!(
            humantime::parse_rfc3339(at).is_ok(),
            "a plain line starts with its time: {l}"
        );
    }

    // a rollback by hand shows its steps live too
    std::fs::remove_file(gate.join("open")).unwrap();
    let c = f.command(&["--up-timeout-period", "600", "rollback", "h1", &name]);
    let t = Tmux::run(
        &format!("{socket}-rollback"),
        &c,
        &f.root.path().join("rollback.sh"),
    );
    let step = format!("{name}: rollback");
    let screen = t.wait("the rollback's line in its health gate", |s| {
        s.contains("rbuild exited") || line_of(s, "h1", &step).is_some()
    });
    assert!(!screen.contains("rbuild exited"), "{screen}");
    assert!(screen.contains("0/1 hosts done"), "{screen}");
    std::fs::write(gate.join("open"), "").unwrap();
    let screen = t.wait("the rollback to end", |s| s.contains("rbuild exited"));
    assert!(screen.contains("rbuild exited 0"), "{screen}");
    assert!(!screen.contains("hosts done"), "{screen}");
    let row = screen
        .lines()
        .find(|l| l.starts_with('│') && l.contains("│ h1 "))
        .unwrap_or_else(|| panic!("a table row:\n{screen}"));
    assert!(
        row.contains("rolled_back") && row.contains("manual"),
        "{row}"
    );
    drop(t);

    // colour on a terminal: the action painted; NO_COLOR: none
    let action_row = |t: &Tmux| {
        let screen = t.wait("the forced run to end", |s| s.contains("rbuild exited"));
        assert!(screen.contains("rbuild exited 0"), "{screen}");
        t.screen_escapes()
            .lines()
            .find(|l| l.contains("│ h1 "))
            .unwrap_or_else(|| panic!("a table row:\n{screen}"))
            .to_owned()
    };
    for (no_color, painted) in [(None, true), (Some("1"), false)] {
        let mut c = f.command(&["--force-rebuild", "--limit", "h1"]);
        match no_color {
            None => c.env_remove("NO_COLOR"),
            Some(v) => c.env("NO_COLOR", v),
        };
        let t = Tmux::run(
            &format!("{socket}-colour-{painted}"),
            &c,
            &f.root.path().join(format!("colour-{painted}.sh")),
        );
        let row = action_row(&t);
        assert!(row.contains("rebuilt"), "{row:?}");
        assert_eq!(row.contains("\x1b[3"), painted, "colour {painted}: {row:?}");
    }
}
