//! The remote side's protocol (version 2): the arguments the embedded
//! `remote.sh` takes and the `@rbuild` lines it prints. Pure: building
//! argument lists and parsing lines, no I/O.

/// The POSIX sh script that does all work on a host, as written.
pub const SOURCE: &str = include_str!("remote.sh");

/// The line of [`SOURCE`] after which only the commands that change things
/// follow: a check ships the script up to it.
const CUT: &str = "\n#@rbuild-cut\n";

/// The source without its comment lines and indentation, so that every host
/// parses (and the network carries) about half the bytes. The script has no
/// here-document whose lines could start with `#` or need their indentation.
fn strip(source: &str) -> String {
    source
        .lines()
        .map(str::trim_start)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .fold(String::with_capacity(source.len()), |mut s, l| {
            s.push_str(l);
            s.push('\n');
            s
        })
}

/// The whole script as shipped: for the commands that change things.
pub fn script() -> &'static str {
    static SCRIPT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SCRIPT.get_or_init(|| strip(SOURCE))
}

/// The script as shipped for a check: the part before the cut, about a
/// quarter of the whole. The check runs on every host on every run, and
/// each host parses what it is sent.
pub fn check_script() -> &'static str {
    static SCRIPT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SCRIPT.get_or_init(|| {
        let cut = SOURCE.find(CUT).expect("remote.sh has its cut line");
        strip(&SOURCE[..cut])
    })
}

/// Whether these arguments (`$0` first, as built here) are a check's.
pub fn is_check(args: &[String]) -> bool {
    args.get(2).is_some_and(|c| c == "check")
}

/// The script to ship with these arguments.
pub fn script_for(args: &[String]) -> &'static str {
    if is_check(args) {
        check_script()
    } else {
        script()
    }
}

/// Whether the command may end its output with `@rbuild end hold` and then
/// wait for its stdin to close: a check asked to hold, so that an ssh master
/// running it as its own session stays up for an apply over the same
/// connection.
pub fn holds(args: &[String]) -> bool {
    is_check(args) && args.get(4).is_some_and(|m| m == "hold")
}

/// The whole remote command line, every word quoted for the remote user's
/// login shell (which sshd hands it to). A check runs in that shell itself:
/// `set -- ARGS`, then the check script. The check is the hot path (every
/// host, every run), and not exec'ing `sh` for it saves about a third of
/// its cost on the host. Everything else is `sh -c SCRIPT ARGS`, as is a
/// check whose login shell could not run it (see [`sh_command_line`]).
pub fn command_line(args: &[String]) -> String {
    if is_check(args) {
        let set = shlex::try_join(
            ["set", "--"]
                .into_iter()
                .chain(args.iter().skip(1).map(String::as_str)),
        )
        .expect("no NUL in a validated value");
        format!("{IN_LOGIN_SHELL}{set}\n{}", check_script())
    } else {
        sh_command_line(args)
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
pub fn sh_command_line(args: &[String]) -> String {
    let words = ["sh", "-c", script_for(args)]
        .into_iter()
        .chain(args.iter().map(String::as_str));
    shlex::try_join(words).expect("no NUL in a validated value")
}

/// The protocol version this controller speaks; the script refuses others.
pub const PROTOCOL: &str = "2";

/// What a host recorded about one stack.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StackState {
    /// Hash of the last successful build (`None`: never built).
    pub hash: Option<String>,
    /// Host time of the last successful build.
    pub built_at: u64,
    pub last_result: Option<String>,
    /// Hash whose rebuild failed its gate and was rolled back.
    pub failed_hash: Option<String>,
    pub failed_at: u64,
    /// Pid of a live run holding the stack's lock.
    pub locked_by: Option<String>,
}

/// One stack of an `apply` call.
#[derive(Debug, Clone)]
pub struct ApplyStack {
    pub name: String,
    /// Remote directory; empty: the script's default.
    pub dir: String,
    /// File name of the compose file inside `dir`.
    pub compose_file: String,
    /// Whether the payload carries this stack's files.
    pub shipped: bool,
    pub up_timeout: u64,
    pub hash: String,
}

/// One stack of a check: its name, the hash it would have if rebuilt now,
/// and its build period in seconds.
#[derive(Debug, Clone, Copy)]
pub struct CheckStack<'a> {
    pub name: &'a str,
    pub hash: &'a str,
    pub period: u64,
}

/// Arguments after `sh -c SCRIPT`: `$0` then the script's own. With `hold`,
/// a host where some stack may be due keeps the check's session open for
/// an apply to follow (see [`holds`]); one whose every stack has its hash
/// and a build younger than its period lets it go at once.
pub fn check_args(state_dir: Option<&str>, hold: bool, stacks: &[CheckStack]) -> Vec<String> {
    let mut a = vec![
        "rbuild".to_owned(),
        PROTOCOL.to_owned(),
        "check".to_owned(),
        state_dir.unwrap_or("").to_owned(),
        if hold { "hold" } else { "nohold" }.to_owned(),
    ];
    for s in stacks {
        a.extend([s.name.to_owned(), s.hash.to_owned(), s.period.to_string()]);
    }
    a
}

pub fn apply_args(
    state_dir: Option<&str>,
    compose: &str,
    remove_images: bool,
    has_payload: bool,
    stacks: &[ApplyStack],
) -> Vec<String> {
    let flag = |b: bool| if b { "1" } else { "0" }.to_owned();
    let mut a = vec![
        "rbuild".to_owned(),
        PROTOCOL.to_owned(),
        "apply".to_owned(),
        state_dir.unwrap_or("").to_owned(),
        compose.to_owned(),
        flag(remove_images),
        flag(has_payload),
    ];
    for s in stacks {
        a.extend([
            s.name.clone(),
            s.dir.clone(),
            s.compose_file.clone(),
            flag(s.shipped),
            s.up_timeout.to_string(),
            s.hash.clone(),
        ]);
    }
    a
}

/// `rollback`: put the previous generation of one stack back, by hand.
pub fn rollback_args(
    state_dir: Option<&str>,
    compose: &str,
    name: &str,
    dir: &str,
    compose_file: &str,
    up_timeout: u64,
) -> Vec<String> {
    [
        "rbuild",
        PROTOCOL,
        "rollback",
        state_dir.unwrap_or(""),
        compose,
        name,
        dir,
        compose_file,
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([up_timeout.to_string()])
    .collect()
}

/// `history`: the recorded attempts of one stack.
pub fn history_args(state_dir: Option<&str>, name: &str) -> Vec<String> {
    ["rbuild", PROTOCOL, "history", state_dir.unwrap_or(""), name]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// One recorded attempt (a line of `NAME.history` on the host).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// Host time of the attempt.
    pub at: u64,
    pub hash: String,
    pub result: String,
    /// `service=image-id,...` running after the attempt.
    pub images: String,
    pub detail: String,
}

/// One `@rbuild` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Hello {
        now: u64,
    },
    State {
        stack: String,
        state: Option<StackState>,
    },
    Step {
        stack: String,
        step: String,
    },
    Note {
        stack: String,
        text: String,
    },
    Log {
        stack: String,
        text: String,
    },
    Done {
        stack: String,
        result: String,
        detail: String,
    },
    History {
        stack: String,
        attempt: Attempt,
    },
    Fatal {
        text: String,
    },
    /// The check's output is complete; with `hold`, it then waits for its
    /// stdin to close.
    End {
        hold: bool,
    },
}

/// Parse one output line; `None` for lines that are not events.
pub fn parse_line(line: &str) -> Option<Event> {
    let rest = line.strip_prefix("@rbuild ")?;
    let (kind, rest) = split_word(rest);
    let ev = match kind {
        "end" => Event::End {
            hold: rest.trim() == "hold",
        },
        "hello" => Event::Hello {
            now: fields(rest).find(|(k, _)| *k == "now")?.1.parse().ok()?,
        },
        "state" => {
            let (stack, rest) = split_word(rest);
            let mut exists = false;
            let mut s = StackState::default();
            let opt = |v: &str| (v != "-" && !v.is_empty()).then(|| v.to_owned());
            for (k, v) in fields(rest) {
                match k {
                    "exists" => exists = v == "1",
                    "hash" => s.hash = opt(v),
                    "built_at" => s.built_at = v.parse().unwrap_or(0),
                    "last_result" => s.last_result = opt(v),
                    "failed_hash" => s.failed_hash = opt(v),
                    "failed_at" => s.failed_at = v.parse().unwrap_or(0),
                    "locked" => s.locked_by = opt(v),
                    _ => {}
                }
            }
            if !exists {
                // no state file, but a live lock still matters
                let locked_by = s.locked_by.take();
                if locked_by.is_some() {
                    return Some(Event::State {
                        stack: stack.to_owned(),
                        state: Some(StackState {
                            locked_by,
                            ..StackState::default()
                        }),
                    });
                }
            }
            Event::State {
                stack: stack.to_owned(),
                state: exists.then_some(s),
            }
        }
        "step" => {
            let (stack, step) = split_word(rest);
            Event::Step {
                stack: stack.to_owned(),
                step: step.trim().to_owned(),
            }
        }
        "note" | "log" => {
            let (stack, text) = split_word(rest);
            let (stack, text) = (stack.to_owned(), text.to_owned());
            if kind == "note" {
                Event::Note { stack, text }
            } else {
                Event::Log { stack, text }
            }
        }
        "done" => {
            let (stack, rest) = split_word(rest);
            let (result, detail) = split_word(rest);
            Event::Done {
                stack: stack.to_owned(),
                result: result.to_owned(),
                detail: detail.trim().to_owned(),
            }
        }
        "history" => {
            let (stack, rest) = split_word(rest);
            let (at, rest) = split_word(rest);
            let (hash, rest) = split_word(rest);
            let (result, rest) = split_word(rest);
            let (images, detail) = split_word(rest);
            Event::History {
                stack: stack.to_owned(),
                attempt: Attempt {
                    at: at.parse().ok()?,
                    hash: hash.to_owned(),
                    result: result.to_owned(),
                    images: images.to_owned(),
                    detail: detail.trim().to_owned(),
                },
            }
        }
        "fatal" => Event::Fatal {
            text: rest.trim().to_owned(),
        },
        _ => return None,
    };
    Some(ev)
}

fn split_word(s: &str) -> (&str, &str) {
    match s.split_once(' ') {
        Some((a, b)) => (a, b),
        None => (s, ""),
    }
}

fn fields(s: &str) -> impl Iterator<Item = (&str, &str)> {
    s.split_whitespace().filter_map(|w| w.split_once('='))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_state_lines() {
        let e = parse_line(
            "@rbuild state web exists=1 hash=abc built_at=100 last_result=ok failed_hash=- failed_at=0 locked=-",
        )
        .unwrap();
        assert_eq!(
            e,
            Event::State {
                stack: "web".into(),
                state: Some(StackState {
                    hash: Some("abc".into()),
                    built_at: 100,
                    last_result: Some("ok".into()),
                    ..StackState::default()
                })
            }
        );
        let e = parse_line("@rbuild state web exists=0 hash=- built_at=0 last_result=- failed_hash=- failed_at=0 locked=-").unwrap();
        assert_eq!(
            e,
            Event::State {
                stack: "web".into(),
                state: None
            }
        );
        let e = parse_line("@rbuild state web exists=0 hash=- built_at=0 last_result=- failed_hash=- failed_at=0 locked=42").unwrap();
        let Event::State { state: Some(s), .. } = e else {
            panic!()
        };
        assert_eq!(s.locked_by.as_deref(), Some("42"));
        assert_eq!(s.hash, None);
    }

    #[test]
    fn parses_other_events_and_ignores_noise() {
        assert_eq!(
            parse_line("@rbuild hello proto=2 now=1700000000"),
            Some(Event::Hello { now: 1700000000 })
        );
        assert_eq!(
            parse_line("@rbuild done web failed build failed; the running containers were left"),
            Some(Event::Done {
                stack: "web".into(),
                result: "failed".into(),
                detail: "build failed; the running containers were left".into()
            })
        );
        assert_eq!(
            parse_line("@rbuild log web Step 1/3 : FROM x"),
            Some(Event::Log {
                stack: "web".into(),
                text: "Step 1/3 : FROM x".into()
            })
        );
        assert_eq!(
            parse_line(
                "@rbuild history web 1700000000 abc rolled_back app=sha256:1 not healthy: app(unhealthy)"
            ),
            Some(Event::History {
                stack: "web".into(),
                attempt: Attempt {
                    at: 1700000000,
                    hash: "abc".into(),
                    result: "rolled_back".into(),
                    images: "app=sha256:1".into(),
                    detail: "not healthy: app(unhealthy)".into()
                }
            })
        );
        assert_eq!(parse_line("Building web"), None);
        assert_eq!(parse_line("@rbuild bogus x"), None);
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
            full.len() < SOURCE.len() * 3 / 4,
            "{} vs {}",
            full.len(),
            SOURCE.len()
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
            let out = sh(s, &["rbuild", "999", "check", "/nonexistent"]);
            assert_eq!(out.status.code(), Some(3));
            assert!(String::from_utf8_lossy(&out.stdout).contains("@rbuild fatal protocol 999"));
        }
        // the check ships alone; everything else ships the whole script
        let web = CheckStack {
            name: "web",
            hash: "h",
            period: 60,
        };
        let check_args = check_args(None, true, &[web]);
        assert_eq!(script_for(&check_args), check);
        assert!(holds(&check_args));
        assert!(!holds(&self::check_args(None, false, &[web])));
        let history = history_args(None, "web");
        assert_eq!(script_for(&history), full);
        assert!(!holds(&history));
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
        let mut args: Vec<String> = ["rbuild", "2", "history", "/nonexistent-rbuild-state"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(nasty.iter().map(|s| s.to_string()));
        let line = command_line(&args);
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
            name,
            hash,
            period: 3600,
        });
        let args = check_args(dir.to_str(), false, &stacks);
        let line = command_line(&args);
        assert!(line.contains("\nset -- 2 check "), "{line}");
        assert!(line.ends_with(check_script()));
        // the reference: the script under `sh -c`, as before, as on this
        // machine (`now` aside, which may tick between runs)
        let events = |out: &std::process::Output| -> Vec<Event> {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(parse_line)
                .map(|e| match e {
                    Event::Hello { .. } => Event::Hello { now: 0 },
                    e => e,
                })
                .collect()
        };
        let clean = tempfile::tempdir().unwrap();
        let want = events(&login_shell(&["sh"], &sh_command_line(&args), clean.path()));
        assert_eq!(want.len(), 5, "{want:?}");
        assert!(
            matches!(&want[3], Event::State { stack, state: Some(s) } if stack == "db"
            && s.locked_by.as_deref() == Some(std::process::id().to_string().as_str()))
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
        // rc files that set IFS (which breaks `read`) and aliases (bash):
        // the check resets what it relies on
        let hostile = tempfile::tempdir().unwrap();
        let ifs = "IFS=$(printf '\\n\\t')\n";
        std::fs::write(
            hostile.path().join("bashrc"),
            format!("{ifs}shopt -s expand_aliases\nalias read=false printf=false\nTMOUT=1\n"),
        )
        .unwrap();
        std::fs::write(hostile.path().join(".zshenv"), ifs).unwrap();
        for shell in [&["bash"][..], &["zsh"]] {
            if installed(shell) {
                let out = login_shell(shell, &line, hostile.path());
                assert_eq!(events(&out), want, "{shell:?} with rc files: {out:?}");
            }
        }
        // fish cannot run the direct line: it prints no event (and exits
        // 0 all the same), which is what makes the controller run the check
        // again as `sh -c`, which fish runs
        if installed(&["fish"]) {
            let out = login_shell(&["fish"], &line, clean.path());
            assert!(events(&out).is_empty(), "{out:?}");
            let out = login_shell(&["fish"], &sh_command_line(&args), clean.path());
            assert_eq!(events(&out), want, "{out:?}");
        }
    }

    /// Run the check script on a state directory; its stdout.
    fn check_in(dir: &std::path::Path) -> String {
        let out = sh(
            check_script(),
            &[
                "rbuild",
                PROTOCOL,
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
        match out.lines().find_map(parse_line) {
            Some(Event::Hello { now }) => now,
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
            .args(["rbuild", PROTOCOL, "check", dir.to_str().unwrap(), mode])
            .args(["web", hash, period])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut events = vec![];
        for line in BufReader::new(child.stdout.take().unwrap()).lines() {
            match parse_line(&line.unwrap()).expect("only events") {
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
            matches!(&events[1], Event::State { stack, state: None } if stack == "web"),
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
    fn args_are_positional_and_complete() {
        let a = apply_args(
            None,
            "auto",
            true,
            true,
            &[ApplyStack {
                name: "web".into(),
                dir: "/srv/x y".into(),
                compose_file: "compose.yml".into(),
                shipped: true,
                up_timeout: 60,
                hash: "h".into(),
            }],
        );
        assert_eq!(
            a,
            [
                "rbuild",
                "2",
                "apply",
                "",
                "auto",
                "1",
                "1",
                "web",
                "/srv/x y",
                "compose.yml",
                "1",
                "60",
                "h"
            ]
        );
        assert_eq!(
            check_args(
                Some("/st"),
                true,
                &[
                    CheckStack {
                        name: "a",
                        hash: "ha",
                        period: 1
                    },
                    CheckStack {
                        name: "b",
                        hash: "hb",
                        period: 2
                    }
                ]
            ),
            [
                "rbuild", "2", "check", "/st", "hold", "a", "ha", "1", "b", "hb", "2"
            ]
        );
    }
}
