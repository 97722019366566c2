//! The embedded remote script as it is shipped: its parts joined, stripped
//! of comments, cut to its head for a check, and quoted into the command
//! line sshd hands to the remote user's login shell.

/// The parts of the POSIX sh script that does all work on a host
/// (`src/remote/sh/`), in the order they are joined: each one concern.
/// The check ships the first three (up to the cut); the operator's
/// read-only commands add what they read; apply, rollback and a dry run's
/// check ship them all.
pub const PARTS: &[(&str, &str)] = &[
    ("head.sh", include_str!("sh/head.sh")),
    ("state.sh", include_str!("sh/state.sh")),
    ("check.sh", include_str!("sh/check.sh")),
    ("write.sh", include_str!("sh/write.sh")),
    ("bound.sh", include_str!("sh/bound.sh")),
    ("lock.sh", include_str!("sh/lock.sh")),
    ("engine.sh", include_str!("sh/engine.sh")),
    ("gate.sh", include_str!("sh/gate.sh")),
    ("files.sh", include_str!("sh/files.sh")),
    ("generations.sh", include_str!("sh/generations.sh")),
    ("hooks.sh", include_str!("sh/hooks.sh")),
    ("beside.sh", include_str!("sh/beside.sh")),
    ("apply.sh", include_str!("sh/apply.sh")),
    ("rollback.sh", include_str!("sh/rollback.sh")),
    ("status.sh", include_str!("sh/status.sh")),
    ("ops.sh", include_str!("sh/ops.sh")),
    ("main.sh", include_str!("sh/main.sh")),
];

/// The parts `status`, `logs` and `history` ship: what they read, no more.
const OPERATOR_PARTS: &[&str] = &[
    "head.sh",
    "state.sh",
    "check.sh",
    "bound.sh",
    "status.sh",
    "main.sh",
];

fn join(filter: impl Fn(&str) -> bool) -> String {
    PARTS
        .iter()
        .filter(|(name, _)| filter(name))
        .map(|(_, text)| text.strip_prefix(PART_HEADER).unwrap_or(text))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first line of every part: what `shellcheck` needs to check one part
/// alone (a fragment, whose variables cross parts). The joined script
/// leaves it out, so that it is checked whole.
const PART_HEADER: &str = "# shellcheck shell=sh disable=SC2034,SC2154 # a part of the host script: its variables are set and read across parts (src/remote/script.rs joins them, and the joined script is checked whole)\n";

/// A line of the script that stays when it is stripped: a `shellcheck`
/// directive (a comment to sh) keeps the shipped script as clean as the
/// source, each one saying why.
const DIRECTIVE: &str = "# shellcheck disable=";

/// The whole script as written, its parts joined.
pub fn source() -> &'static str {
    static SOURCE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SOURCE.get_or_init(|| join(|_| true))
}

/// The line of [`source`] after which only the commands that change things
/// follow: a check ships the script up to it.
const CUT: &str = "\n#@rbuild-cut\n";

/// The source without its comment lines (but its `shellcheck` directives)
/// and indentation, so that every host parses (and the network carries)
/// about half the bytes. The script has no here-document whose lines could
/// start with `#` or need their indentation.
fn strip(source: &str) -> String {
    source
        .lines()
        .map(str::trim_start)
        .filter(|l| !l.is_empty() && (!l.starts_with('#') || l.starts_with(DIRECTIVE)))
        .fold(String::with_capacity(source.len()), |mut s, l| {
            s.push_str(l);
            s.push('\n');
            s
        })
}

/// The whole script as shipped: for the commands that change things.
pub fn script() -> &'static str {
    static SCRIPT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SCRIPT.get_or_init(|| strip(source()))
}

/// The script as shipped for `status`, `logs` and `history`.
pub fn operator_script() -> &'static str {
    static SCRIPT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SCRIPT.get_or_init(|| strip(&join(|name| OPERATOR_PARTS.contains(&name))))
}

/// The script as shipped for a check: the part before the cut, about a
/// quarter of the whole. The check runs on every host on every run, and
/// each host parses what it is sent.
pub fn check_script() -> &'static str {
    static SCRIPT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SCRIPT.get_or_init(|| {
        let source = source();
        let cut = source.find(CUT).expect("check.sh has its cut line");
        strip(&source[..cut])
    })
}

/// The whole remote command line, every word quoted for the remote user's
/// login shell (which sshd hands it to). A check runs in that shell itself:
/// `set -- ARGS`, then the check script. The check is the hot path (every
/// host, every run), and not exec'ing `sh` for it saves about a third of
/// its cost on the host. Everything else is `sh -c SCRIPT ARGS`, as is a
/// check whose login shell could not run it (see [`sh_command_line`]).
pub fn command_line(check: bool, script: &str, args: &[String]) -> String {
    if check {
        let set = shlex::try_join(
            ["set", "--"]
                .into_iter()
                .chain(args.iter().skip(1).map(String::as_str)),
        )
        .expect("no NUL in a validated value");
        format!("{IN_LOGIN_SHELL}{set}\n{script}")
    } else {
        sh_command_line(script, args)
    }
}

/// The first lines of a check run in the login shell, which has read the
/// user's rc files (`~/.bashrc` under sshd, `~/.zshenv`): no aliases (bash
/// expands them line by line, so this holds for the rest), zsh emulates sh
/// (word splitting, globbing, options), and `IFS` is the default again, so
/// that `read` splits as the script expects. zsh parses the whole line
/// before running any of it, so the check's part of the script must also
/// parse as zsh (tested) and an alias defined in `~/.zshenv` still applies.
/// sh, dash, bash, mksh and busybox run it as it is. A shell that cannot
/// parse this (fish) prints no `@rbuild` line, and the controller runs the
/// check again as `sh -c`.
const IN_LOGIN_SHELL: &str =
    "\\unalias -a\n[ -z \"${ZSH_VERSION-}\" ] || emulate -R sh\nIFS=' \t\n'\n";

/// `sh -c SCRIPT ARGS...` (`$0` being the first of `args`), every word
/// quoted: runs under any login shell that splits words as POSIX sh does.
pub fn sh_command_line(script: &str, args: &[String]) -> String {
    let words = ["sh", "-c", script]
        .into_iter()
        .chain(args.iter().map(String::as_str));
    shlex::try_join(words).expect("no NUL in a validated value")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::{Call, Check, CheckStack, Event, History, PROTOCOL, Token, parse_line};

    fn tok() -> Token {
        Token::fixed("t0k")
    }

    fn parse(line: &str) -> Option<Event> {
        parse_line(line, &tok())
    }

    fn sh(script: &str, args: &[&str]) -> std::process::Output {
        std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    }

    #[test]
    fn the_shipped_scripts_are_valid_sh_and_small() {
        let (full, check) = (script(), check_script());
        assert!(
            full.len() < source().len() * 3 / 4,
            "{} vs {}",
            full.len(),
            source().len()
        );
        assert!(
            check.len() < full.len() / 3,
            "{} vs {}",
            check.len(),
            full.len()
        );
        assert!(
            full.starts_with(check),
            "the check part is the script's head"
        );
        for s in [full, check] {
            let out = std::process::Command::new("sh")
                .args(["-n", "-c", s])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            // a protocol mismatch is refused, by the stripped scripts too
            let out = sh(s, &["rbuild", "999", "t0k", "check", "/nonexistent"]);
            assert_eq!(out.status.code(), Some(3));
            assert!(
                String::from_utf8_lossy(&out.stdout).contains("@rbuild:t0k fatal protocol 999")
            );
        }
        // the check ships alone; everything else ships the whole script
        let web = CheckStack {
            name: "web".into(),
            hash: "h".into(),
            period: 60,
        };
        let check_call = Call::Check(Check {
            state_dir: None,
            hold: true,
            plan: false,
            stacks: vec![web],
        });
        assert_eq!(check_call.script(), check);
        let history = Call::History(History {
            state_dir: None,
            name: "web".into(),
        });
        assert_eq!(history.script(), operator_script());
        assert!(operator_script().len() < full.len() / 2);
    }

    /// `shellcheck -s sh` on TEXT: its findings, or `None` when it is not
    /// installed (CI installs it: scripts/setup-deps.sh).
    fn shellcheck(text: &str) -> Option<Result<(), String>> {
        use std::io::Write;
        let mut child = std::process::Command::new("shellcheck")
            .args(["-s", "sh", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .ok()?;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        Some(if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stdout).into_owned())
        })
    }

    /// Clean under `shellcheck -s sh` (every warning, info and style note):
    /// the joined source, every script as shipped (stripped, its
    /// directives kept), and every part alone (its header says why the
    /// variables that cross parts are not findings there).
    #[test]
    fn the_script_is_shellcheck_clean() {
        let mut texts: Vec<(String, &str)> = vec![
            ("the joined source".into(), source()),
            ("the script as shipped".into(), script()),
            ("the check as shipped".into(), check_script()),
            ("the operator script as shipped".into(), operator_script()),
        ];
        for (name, text) in PARTS {
            assert!(
                text.starts_with(PART_HEADER),
                "{name} starts with its header"
            );
            texts.push((format!("the part {name}"), text));
        }
        for (what, text) in texts {
            match shellcheck(text) {
                None => {
                    assert!(
                        std::env::var_os("CI").is_none(),
                        "shellcheck is not installed (scripts/setup-deps.sh installs it)"
                    );
                    eprintln!("shellcheck is not installed: skipped");
                    return;
                }
                Some(Err(findings)) => panic!("shellcheck -s sh on {what}:\n{findings}"),
                Some(Ok(())) => {}
            }
        }
    }

    #[test]
    fn the_command_line_quotes_every_word_for_the_remote_shell() {
        let nasty = [
            "",
            "a b",
            "it's",
            "$(touch /tmp/rbuild-pwned)",
            "`id`",
            "x;y|z&",
            "\"q\"",
            "new\nline",
            "back\\slash",
            "*",
            "~",
            "!bang",
        ];
        let mut args: Vec<String> = ["rbuild", "3", "history", "/nonexistent-rbuild-state"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(nasty.iter().map(|s| s.to_string()));
        let line = command_line(false, script(), &args);
        assert!(line.starts_with("sh -c "), "{line}");
        // the remote user's shell splits it back into exactly these words
        let words = shlex::split(&line).expect("splits");
        assert_eq!(words[..3], ["sh", "-c", script()]);
        assert_eq!(words[3..], args[..]);
        // and so do real shells: print the words back instead of running
        // the script
        let printed = line.replacen(
            &shlex::try_quote(script()).unwrap().into_owned(),
            "'for a; do printf \"<%s>\" \"$a\"; done'",
            1,
        );
        let want: String = args[1..].iter().map(|a| format!("<{a}>")).collect();
        for shell in ["sh", "bash"] {
            let out = std::process::Command::new(shell)
                .arg("-c")
                .arg(&printed)
                .output()
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout), want, "{shell}");
        }
    }

    /// `shell -c LINE`, the way sshd runs a command in a login shell.
    /// `rc`: the user's rc files, `.zshenv` for zsh and `bashrc`, which
    /// bash reads as its `BASH_ENV` (as it reads `~/.bashrc` under sshd).
    fn login_shell(shell: &[&str], line: &str, rc: &std::path::Path) -> std::process::Output {
        let mut c = std::process::Command::new(shell[0]);
        c.args(&shell[1..])
            .arg("-c")
            .arg(line)
            .env("ZDOTDIR", rc)
            .env_remove("ENV")
            .env_remove("BASH_ENV")
            .stdin(std::process::Stdio::null());
        if rc.join("bashrc").exists() {
            c.env("BASH_ENV", rc.join("bashrc"));
        }
        c.output().unwrap()
    }

    fn installed(shell: &[&str]) -> bool {
        std::process::Command::new(shell[0])
            .args(&shell[1..])
            .args(["-c", "true"])
            .output()
            .is_ok_and(|o| o.status.success())
    }

    #[test]
    fn the_check_runs_in_any_posix_login_shell_as_under_sh() {
        // a state directory whose path needs quoting; one stack up to date,
        // one never built, one whose lock a live process holds
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("it's a $dir");
        std::fs::create_dir(&dir).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        std::fs::write(
            dir.join("web.state"),
            format!("version=1\nhash=h1\nbuilt_at={now}\nlast_result=ok\n"),
        )
        .unwrap();
        std::fs::create_dir(dir.join("db.lock")).unwrap();
        std::fs::write(
            dir.join("db.lock/owner"),
            format!("{} -\n", std::process::id()),
        )
        .unwrap();
        let stacks = [("web", "h1"), ("new", "h2"), ("db", "h3")].map(|(name, hash)| CheckStack {
            name: name.into(),
            hash: hash.into(),
            period: 3600,
        });
        let call = Call::Check(Check {
            state_dir: dir.to_str().map(str::to_owned),
            hold: false,
            plan: false,
            stacks: stacks.to_vec(),
        });
        let line = call.command_line(&tok());
        assert!(
            line.contains(&format!("\nset -- {PROTOCOL} t0k check ")),
            "{line}"
        );
        assert!(line.ends_with(check_script()));
        // the reference: the script under `sh -c`, as before, as on this
        // machine (`now` aside, which may tick between runs)
        let events = |out: &std::process::Output| -> Vec<Event> {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(parse)
                .map(|e| match e {
                    Event::Hello { proto, .. } => Event::Hello { proto, now: 0 },
                    e => e,
                })
                .collect()
        };
        let clean = tempfile::tempdir().unwrap();
        let want = events(&login_shell(
            &["sh"],
            &call.sh_command_line(&tok()),
            clean.path(),
        ));
        assert_eq!(want.len(), 5, "{want:?}");
        assert!(
            matches!(&want[3], Event::State { stack, recorded } if stack == "db"
            && recorded.locked_by.as_deref() == Some(std::process::id().to_string().as_str()))
        );
        assert_eq!(want[4], Event::End { hold: false });
        // `-e`: as if the user's rc files had set errexit
        let mut shells: Vec<&[&str]> = vec![&["sh"], &["bash"], &["bash", "-e"]];
        // installed by scripts/setup-deps.sh (CI); a developer may lack them
        for extra in [&["zsh"][..], &["zsh", "-e"], &["mksh"], &["busybox", "sh"]] {
            if installed(extra) {
                shells.push(extra);
            } else {
                eprintln!("{} not installed: not tried", extra[0]);
            }
        }
        for shell in shells {
            let out = login_shell(shell, &line, clean.path());
            assert!(
                out.status.success() && out.stderr.is_empty(),
                "{shell:?}: {out:?}"
            );
            assert_eq!(events(&out), want, "{shell:?}");
        }
        // rc files that set IFS (which breaks `read`) and aliases (bash),
        // print a greeting with no final newline and a byte that is not
        // UTF-8, and a line that looks like an answer: the check resets what
        // it relies on, and only its marked lines count
        let hostile = tempfile::tempdir().unwrap();
        let ifs = "IFS=$(printf '\\n\\t')\n";
        std::fs::write(
            hostile.path().join("bashrc"),
            format!(
                "{ifs}shopt -s expand_aliases\nalias read=false printf=false\nTMOUT=1\n\
                 echo '@rbuild state web exists=1 version=1 hash=forged built_at=1'\n\
                 command printf 'Welcome, \\377 no newline'\n"
            ),
        )
        .unwrap();
        std::fs::write(hostile.path().join(".zshenv"), ifs).unwrap();
        for shell in [&["bash"][..], &["zsh"]] {
            if installed(shell) {
                let out = login_shell(shell, &line, hostile.path());
                assert_eq!(events(&out), want, "{shell:?} with rc files: {out:?}");
                if shell[0] == "bash" {
                    let text = String::from_utf8_lossy(&out.stdout);
                    assert!(
                        text.contains("\nWelcome, \u{fffd} no newline@rbuild:t0k hello"),
                        "{text}"
                    );
                    assert!(text.contains("hash=forged"), "{text}");
                }
            }
        }
        // fish cannot run the direct line: it prints no event (and exits
        // 0 all the same), which is what makes the controller run the check
        // again as `sh -c`, which fish runs
        if installed(&["fish"]) {
            let out = login_shell(&["fish"], &line, clean.path());
            assert!(events(&out).is_empty(), "{out:?}");
            let out = login_shell(&["fish"], &call.sh_command_line(&tok()), clean.path());
            assert_eq!(events(&out), want, "{out:?}");
        }
    }

    /// Run the check script on a state directory; its stdout.
    fn check_in(dir: &std::path::Path) -> String {
        let out = sh(
            check_script(),
            &[
                "rbuild",
                &PROTOCOL.to_string(),
                "t0k",
                "check",
                dir.to_str().unwrap(),
                "hold",
                "web",
                "h",
                "60",
            ],
        );
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    }

    fn now_of(out: &str) -> u64 {
        match out.lines().find_map(parse) {
            Some(Event::Hello { now, .. }) => now,
            other => panic!("{other:?} in {out}"),
        }
    }

    #[test]
    fn the_check_reads_the_time_from_the_clock_an_apply_left() {
        if !std::path::Path::new("/proc/uptime").exists() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
        let uptime = std::fs::read_to_string("/proc/uptime").unwrap();
        let up: u64 = uptime.split('.').next().unwrap().parse().unwrap();
        // an apply (up to) 1000 s of uptime ago, when the clock said 5000
        let then = up.saturating_sub(1000);
        let clock = dir.path().join(".clock");
        std::fs::write(&clock, format!("{} 5000 {then}\n", boot.trim())).unwrap();
        let now = now_of(&check_in(dir.path()));
        let want = 5000 + up - then;
        assert!((want..want + 60).contains(&now), "{now}, want {want}");
        // after a reboot (another boot id) the clock is not used
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        for stale in [
            format!("00000000-0000-0000-0000-000000000000 5000 {then}\n"),
            format!("{} 05000 {then}\n", boot.trim()),
            format!("{} 99999999999999999999 {then}\n", boot.trim()),
            format!("{} 5000\n", boot.trim()),
            "garbage\n".to_owned(),
            String::new(),
        ] {
            std::fs::write(&clock, stale).unwrap();
            let now = now_of(&check_in(dir.path()));
            assert!(now.abs_diff(wall) < 60, "{now} vs {wall}");
        }
        std::fs::remove_file(&clock).unwrap();
        let now = now_of(&check_in(dir.path()));
        assert!(now.abs_diff(wall) < 60, "{now} vs {wall}");
    }

    /// Start the check script on a state directory with stdin open; its
    /// events up to `end`, and the process.
    fn start_check(
        dir: &std::path::Path,
        mode: &str,
        hash: &str,
        period: &str,
    ) -> (Vec<Event>, bool, std::process::Child) {
        use std::io::{BufRead, BufReader};
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(check_script())
            .args([
                "rbuild",
                &PROTOCOL.to_string(),
                "t0k",
                "check",
                dir.to_str().unwrap(),
                mode,
            ])
            .args(["web", hash, period])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut events = vec![];
        for line in BufReader::new(child.stdout.take().unwrap()).lines() {
            match parse(&line.unwrap()).expect("only events") {
                Event::End { hold } => return (events, hold, child),
                ev => events.push(ev),
            }
        }
        panic!("no end: {events:?}");
    }

    #[test]
    fn a_check_that_may_be_due_ends_its_output_then_waits_for_its_stdin() {
        let dir = tempfile::tempdir().unwrap();
        // never built: due
        let (events, hold, mut child) = start_check(dir.path(), "hold", "h1", "60");
        assert!(matches!(events[0], Event::Hello { .. }), "{events:?}");
        assert!(
            matches!(&events[1], Event::State { stack, recorded } if stack == "web" && recorded.state == Ok(None)),
            "{events:?}"
        );
        assert!(hold);
        // still there, holding: the controller decides meanwhile
        assert_eq!(child.try_wait().unwrap(), None);
        drop(child.stdin.take());
        assert!(child.wait().unwrap().success());
    }

    #[test]
    fn a_check_with_nothing_due_does_not_wait() {
        let dir = tempfile::tempdir().unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        std::fs::write(
            dir.path().join("web.state"),
            format!("version=1\nhash=h1\nbuilt_at={now}\nlast_result=ok\n"),
        )
        .unwrap();
        // same hash, built within the period: it exits with stdin open
        let (_, hold, mut child) = start_check(dir.path(), "hold", "h1", "3600");
        assert!(!hold);
        assert!(child.wait().unwrap().success());
        // another hash, an expired build, a forced rebuild (period 0), or a
        // broken state file: it may be due, so it waits
        for (hash, period) in [("h2", "3600"), ("h1", "0")] {
            let (_, hold, mut child) = start_check(dir.path(), "hold", hash, period);
            assert!(hold, "{hash} {period}");
            drop(child.stdin.take());
            assert!(child.wait().unwrap().success());
        }
        // numbers the shell's arithmetic would choke on (octal, overflow)
        for bad in ["x", "08", "-5", "99999999999999999999", ""] {
            std::fs::write(
                dir.path().join("web.state"),
                format!("version=1\nhash=h1\nbuilt_at={bad}\n"),
            )
            .unwrap();
            let (_, hold, mut child) = start_check(dir.path(), "hold", "h1", "3600");
            assert!(hold, "built_at={bad}");
            drop(child.stdin.take());
            assert!(child.wait().unwrap().success(), "built_at={bad}");
        }
        // `nohold` (a dry run, this machine) never waits
        let (_, hold, mut child) = start_check(dir.path(), "nohold", "h2", "3600");
        assert!(!hold);
        assert!(child.wait().unwrap().success());
    }

    #[test]
    fn a_state_file_that_is_not_a_file_is_reported_not_taken_for_none() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("web.state")).unwrap();
        let out = check_in(dir.path());
        let recorded = out
            .lines()
            .find_map(|l| match parse(l) {
                Some(Event::State { recorded, .. }) => Some(recorded),
                _ => None,
            })
            .unwrap();
        assert_eq!(
            recorded.state,
            Err(crate::remote::BadState::NotAFile),
            "{out}"
        );
    }
}
