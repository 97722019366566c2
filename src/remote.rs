//! The remote side's protocol (version 1): the arguments the embedded
//! `remote.sh` takes and the `@rbuild` lines it prints. Pure: building
//! argument lists and parsing lines, no I/O.

/// The POSIX sh script that does all work on a host, as written.
pub const SOURCE: &str = include_str!("remote.sh");

/// The script as shipped on every call: the source without its comment
/// lines and indentation, so that every host parses (and the network
/// carries) about half the bytes. The script has no here-document whose
/// lines could start with `#` or need their indentation.
pub fn script() -> &'static str {
    static SCRIPT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SCRIPT.get_or_init(|| {
        SOURCE
            .lines()
            .map(str::trim_start)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .fold(String::with_capacity(SOURCE.len()), |mut s, l| {
                s.push_str(l);
                s.push('\n');
                s
            })
    })
}

/// The protocol version this controller speaks; the script refuses others.
pub const PROTOCOL: &str = "1";

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

/// Arguments after `sh -c SCRIPT`: `$0` then the script's own.
pub fn check_args(state_dir: Option<&str>, stacks: &[&str]) -> Vec<String> {
    let mut a = vec![
        "rbuild".to_owned(),
        PROTOCOL.to_owned(),
        "check".to_owned(),
        state_dir.unwrap_or("").to_owned(),
    ];
    a.extend(stacks.iter().map(|s| s.to_string()));
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
}

/// Parse one output line; `None` for lines that are not events.
pub fn parse_line(line: &str) -> Option<Event> {
    let rest = line.strip_prefix("@rbuild ")?;
    let (kind, rest) = split_word(rest);
    let ev = match kind {
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
            parse_line("@rbuild hello proto=1 now=1700000000 uid=0"),
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

    #[test]
    fn the_shipped_script_is_valid_sh_and_smaller() {
        let s = script();
        assert!(
            s.len() < SOURCE.len() * 3 / 4,
            "{} vs {}",
            s.len(),
            SOURCE.len()
        );
        let out = std::process::Command::new("sh")
            .args(["-n", "-c", s])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // a protocol mismatch is refused, by the stripped script too
        let out = std::process::Command::new("sh")
            .args(["-c", s, "rbuild", "999", "check", "/nonexistent"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert!(String::from_utf8_lossy(&out.stdout).contains("@rbuild fatal protocol 999"));
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
                "1",
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
            check_args(Some("/st"), &["a", "b"]),
            ["rbuild", "1", "check", "/st", "a", "b"]
        );
    }
}
