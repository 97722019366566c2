//! The `@rbuild:TOKEN` lines the remote script prints, parsed into typed
//! events (every kind is listed, with an example, in `PROTOCOL.md`). Fields
//! are separated by one space; a line's last field may be free text.

use super::STATE_VERSION;
use super::words::{AttemptResult, Base, Health, LastResult, ServiceState};

/// The oldest state file version this rbuild reads (version 1 has no
/// generations: its stack has none recorded until its next rebuild).
pub const OLDEST_STATE_VERSION: u32 = 1;

/// What a host recorded about one stack in a state file this rbuild reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StackState {
    /// Hash of the last successful build (`None`: never built).
    pub hash: Option<String>,
    /// Host time of the last successful build.
    pub built_at: u64,
    pub last_result: Option<LastResult>,
    /// Hash whose rebuild failed and was not kept.
    pub failed_hash: Option<String>,
    pub failed_at: u64,
    /// The generation that runs (`None`: none recorded, or a state file of
    /// version 1, which has no generations).
    pub generation: Option<u64>,
    /// What the running generation was built from: `None` = not recorded
    /// (older rbuild, unreadable), `Some(vec![])` = recorded, no registry
    /// inputs.
    pub bases: Option<Vec<Base>>,
}

/// A state file this rbuild does not read: nothing in it is to be trusted
/// or overwritten.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadState {
    /// It names no version: empty, or no version line (a write cut short,
    /// or a file rbuild did not write).
    NoVersion,
    /// A numeric version newer than this rbuild reads: a newer rbuild
    /// wrote it.
    Newer(String),
    /// A version no rbuild writes (`0`, garbage, a CRLF line): damaged or
    /// foreign, never blamed on a newer rbuild.
    Unknown(String),
    /// Not a regular file (a directory, a dangling link).
    NotAFile,
}

impl BadState {
    /// What a `version=` field (of a state file that exists) says: `None`
    /// when it is one this rbuild reads.
    fn of_version(v: &str) -> Option<BadState> {
        if v == "-" || v.is_empty() {
            return Some(BadState::NoVersion);
        }
        // digits only: `+2` or ` 2` are no version rbuild writes
        let n = v
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| v.parse::<u64>().ok())
            .flatten();
        match n {
            Some(n) if (OLDEST_STATE_VERSION as u64..=STATE_VERSION as u64).contains(&n) => None,
            Some(n) if n > STATE_VERSION as u64 => Some(BadState::Newer(v.to_owned())),
            _ => Some(BadState::Unknown(v.to_owned())),
        }
    }
}

/// What the check found for one stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The state file: `Ok(None)` when there is none (never built here),
    /// `Err` when it is one this rbuild does not read, so that nothing in
    /// it is misread.
    pub state: Result<Option<StackState>, BadState>,
    /// Pid of a live run holding the stack's lock (`unknown` when the lock
    /// names none).
    pub locked_by: Option<String>,
    /// Whether what the last rebuild left running still runs; `None`: the
    /// host cannot tell (nothing recorded).
    pub running: Option<bool>,
    /// The phase an earlier run was killed in (`ship`, `build`, `switch`,
    /// `gate`, `undo`, `rollback`, ...), from its journal on the host;
    /// `None`: no attempt was cut off. The host then says `running=0`, so
    /// that the next run recovers it.
    pub phase: Option<String>,
    /// A container of what runs was restarted since it passed its gate (its
    /// process is not the one recorded, its cgroup still there): by its
    /// restart policy after a crash, or by the engine. The next run looks,
    /// and rolls a crash loop back.
    pub restarted: bool,
}

/// How an apply or a rollback ended for one stack (`done` lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Rebuilt and through the health gate.
    Rebuilt,
    /// It did not run as recorded; it was started and is through the gate.
    Started,
    /// The new generation failed; the previous one runs again (or, for
    /// `rbuild rollback`, the previous generation was put back by hand).
    RolledBack,
    /// Nothing changed or the rollback failed too: the detail says which.
    Failed,
    /// Another run holds the stack's lock: nothing was done.
    Locked { pid: String },
}

/// What is at fault when a host cannot do the work, named by the script
/// (`cause=` on `done` and `fatal` lines) so the controller can say what to
/// do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The Docker engine does not answer (stopped, its socket gone).
    Engine,
    /// The engine's socket is not this user's to use.
    EngineDenied,
    /// No `docker` CLI in the session's PATH.
    NoDocker,
    /// Neither Compose flavour works.
    NoCompose,
    /// The stack's directory holds files rbuild did not put there.
    NotOurs,
    /// The host's disk is full.
    NoSpace,
    /// The payload did not arrive as it was sent (cut, or changed).
    Payload,
    /// The host has no tool to check the payload's sha256.
    NoSha256,
    /// A step took longer than its bound and was stopped.
    Timeout,
    /// A port the stack publishes is held by something else on the host.
    PortTaken,
    /// The rebuild passed, but the stack's `after` hook failed.
    AfterHook,
}

impl Cause {
    fn parse(word: &str) -> Option<Cause> {
        Some(match word {
            "engine" => Cause::Engine,
            "engine_denied" => Cause::EngineDenied,
            "no_docker" => Cause::NoDocker,
            "no_compose" => Cause::NoCompose,
            "not_ours" => Cause::NotOurs,
            "no_space" => Cause::NoSpace,
            "payload" => Cause::Payload,
            "no_sha256" => Cause::NoSha256,
            "timeout" => Cause::Timeout,
            "port_taken" => Cause::PortTaken,
            "after_hook" => Cause::AfterHook,
            _ => return None,
        })
    }
}

/// `cause=WORD TEXT` or `TEXT`: the cause (if it is one this controller
/// knows) and the text.
fn with_cause(text: &str) -> (Option<Cause>, String) {
    if let Some(rest) = text.strip_prefix("cause=") {
        let (word, text) = split_word(rest);
        return (Cause::parse(word), text.trim().to_owned());
    }
    (None, text.trim().to_owned())
}

/// One recorded attempt (a line of `NAME.history` on the host).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// Host time of the attempt.
    pub at: u64,
    pub hash: String,
    pub result: AttemptResult,
    /// `service=image-id,...` running after the attempt.
    pub images: String,
    /// The generation that runs after the attempt (`None`: none, or a line
    /// written before rbuild counted generations).
    pub generation: Option<u64>,
    pub detail: String,
}

/// One generation of a stack whose images are still on its host
/// (`generation` lines of `history` and `status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    /// Its number: every successful rebuild, start and rollback counts one.
    pub number: u64,
    /// It is the one that runs (else it is kept, to roll back to).
    pub running: bool,
    /// Host time it was built.
    pub built_at: u64,
    /// The hash of its files.
    pub hash: String,
    /// `service=image-id,...`.
    pub images: String,
    /// What it was built from (`bases=`): `None` = not recorded (older
    /// rbuild, unreadable), `Some(vec![])` = recorded, no registry inputs.
    pub bases: Option<Vec<Base>>,
}

/// One `@rbuild` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The first line of every command: the protocol it speaks and the
    /// host's clock.
    Hello {
        proto: String,
        now: u64,
    },
    State {
        stack: String,
        recorded: Recorded,
    },
    /// A step of a stack's rebuild started (`ship`, `build`, `pull`, `up`,
    /// `wait`, `prune`, `rollback`).
    Step {
        stack: String,
        step: String,
    },
    /// Something worth saying (a stale lock recovered, an image removed).
    Note {
        stack: String,
        text: String,
    },
    /// A line of the tail of a failed docker command.
    Log {
        stack: String,
        text: String,
    },
    Done {
        stack: String,
        outcome: Outcome,
        detail: String,
        cause: Option<Cause>,
    },
    History {
        stack: String,
        attempt: Attempt,
    },
    /// A kept generation of a stack (`history`, `status`).
    Generation {
        stack: String,
        generation: Generation,
    },
    /// `status`: one service container of a stack: its state (`running`,
    /// `exited:CODE`, `gone`, ...) and health (`healthy`, `unhealthy`,
    /// `starting`, `none`; `-`: not known).
    Service {
        stack: String,
        service: String,
        state: ServiceState,
        health: Health,
    },
    /// The command could not run at all on this host.
    Fatal {
        text: String,
        cause: Option<Cause>,
    },
    /// A dry run's check: whether the host could rebuild (`caps ok`), or
    /// what a rebuild would fail on (`caps cause=no_docker TEXT`).
    Caps {
        /// `None`: it could.
        problem: Option<(Option<Cause>, String)>,
    },
    /// The check's output is complete; with `hold`, it then waits for its
    /// stdin to close.
    End {
        hold: bool,
    },
}

/// A run's random word: the script marks every line for the controller
/// with `@rbuild:TOKEN `, so that no line from the user's rc files (a
/// greeting, a file they print) is ever taken for one of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// A fresh token: 16 hex digits from the system's randomness.
    pub fn random() -> Token {
        use std::io::Read;
        let mut b = [0u8; 8];
        let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
        if read.is_err() {
            // no /dev/urandom: std's per-process random keys, and the clock
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos()),
            );
            b = h.finish().to_le_bytes();
        }
        Token(crate::stack::hex(&b))
    }

    /// A given token (tests, and lines of a known run).
    pub fn fixed(word: &str) -> Token {
        Token(word.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Parse one output line of a run marked with `token`; `None` for lines
/// that are not its events (noise, another run's, or a kind this
/// controller does not know). The mark may come after noise on the same
/// line: an rc file's greeting without a final newline.
pub fn parse_line(line: &str, token: &Token) -> Option<Event> {
    let mark = format!("@rbuild:{} ", token.0);
    let rest = &line[line.find(&mark)? + mark.len()..];
    let (kind, rest) = split_word(rest);
    let ev = match kind {
        "end" => Event::End {
            hold: rest.trim() == "hold",
        },
        "caps" => Event::Caps {
            problem: match rest.trim() {
                "ok" => None,
                text => Some(with_cause(text)),
            },
        },
        "hello" => Event::Hello {
            proto: field(rest, "proto")?.to_owned(),
            now: field(rest, "now")?.parse().ok()?,
        },
        "state" => {
            let (stack, rest) = split_word(rest);
            Event::State {
                stack: stack.to_owned(),
                recorded: recorded(rest),
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
            let (cause, detail) = with_cause(detail);
            let (outcome, detail) = match result {
                "rebuilt" => (Outcome::Rebuilt, detail),
                "started" => (Outcome::Started, detail),
                "rolled_back" => (Outcome::RolledBack, detail),
                "failed" => (Outcome::Failed, detail),
                "locked" => (Outcome::Locked { pid: detail }, String::new()),
                _ => return None,
            };
            Event::Done {
                stack: stack.to_owned(),
                outcome,
                detail,
                cause,
            }
        }
        "history" => {
            let (stack, rest) = split_word(rest);
            let (at, rest) = split_word(rest);
            let (hash, rest) = split_word(rest);
            let (result, rest) = split_word(rest);
            let (images, rest) = split_word(rest);
            // `gen=N` (or `gen=-`) next, where the host knew it
            let (generation, detail) = match split_word(rest) {
                (word, detail) if word.starts_with("gen=") => (number(&word[4..]), detail),
                _ => (None, rest),
            };
            Event::History {
                stack: stack.to_owned(),
                attempt: Attempt {
                    at: at.parse().ok()?,
                    hash: hash.to_owned(),
                    result: AttemptResult::parse(result),
                    images: images.to_owned(),
                    generation,
                    detail: detail.trim().to_owned(),
                },
            }
        }
        "generation" => {
            let mut w = rest.split_whitespace();
            let stack = w.next()?;
            let number = w.next()?.parse().ok()?;
            let running = match w.next()? {
                "running" => true,
                "kept" => false,
                _ => return None,
            };
            let built_at = w.next()?.parse().ok()?;
            let hash = w.next()?;
            let images = w.next().unwrap_or("-");
            let bases = w
                .find_map(|f| f.strip_prefix("bases="))
                .and_then(Base::parse_list);
            Event::Generation {
                stack: stack.to_owned(),
                generation: Generation {
                    number,
                    running,
                    built_at,
                    hash: hash.to_owned(),
                    images: images.to_owned(),
                    bases,
                },
            }
        }
        "service" => {
            let (stack, rest) = split_word(rest);
            let (service, rest) = split_word(rest);
            let (state, health) = split_word(rest);
            Event::Service {
                stack: stack.to_owned(),
                service: service.to_owned(),
                state: ServiceState::parse(state),
                health: Health::parse(health.trim()),
            }
        }
        "fatal" => {
            let (cause, text) = with_cause(rest);
            Event::Fatal { text, cause }
        }
        _ => return None,
    };
    Some(ev)
}

/// The fields of a `state` line after the stack's name.
fn recorded(rest: &str) -> Recorded {
    let opt = |v: &str| (v != "-" && !v.is_empty()).then(|| v.to_owned());
    let mut exists = "0";
    let mut version = "-".to_owned();
    let mut s = StackState::default();
    let mut locked_by = None;
    let mut running = None;
    let mut phase = None;
    let mut restarted = false;
    for (k, v) in fields(rest) {
        match k {
            "exists" => exists = v,
            "version" => version = v.to_owned(),
            "hash" => s.hash = opt(v),
            "built_at" => s.built_at = v.parse().unwrap_or(0),
            "last_result" => s.last_result = opt(v).map(|w| LastResult::parse(&w)),
            "failed_hash" => s.failed_hash = opt(v),
            "failed_at" => s.failed_at = v.parse().unwrap_or(0),
            "gen" => s.generation = number(v),
            "bases" => s.bases = Base::parse_list(v),
            "phase" => phase = opt(v),
            "restarted" => restarted = v == "1",
            "locked" => locked_by = opt(v),
            "running" => {
                running = match v {
                    "1" => Some(true),
                    "0" => Some(false),
                    _ => None,
                }
            }
            _ => {}
        }
    }
    let state = match exists {
        "0" => Ok(None),
        "1" => match BadState::of_version(&version) {
            None => Ok(Some(s)),
            Some(bad) => Err(bad),
        },
        _ => Err(BadState::NotAFile),
    };
    Recorded {
        state,
        locked_by,
        running,
        phase,
        restarted,
    }
}

/// A number field: `None` for `-` (none) or anything that is not one.
fn number(v: &str) -> Option<u64> {
    v.parse().ok()
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

fn field<'a>(s: &'a str, key: &str) -> Option<&'a str> {
    fields(s).find(|(k, _)| *k == key).map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok() -> Token {
        Token::fixed("T")
    }

    fn parse_line_t(line: &str) -> Option<Event> {
        parse_line(line, &tok())
    }

    fn state_of(line: &str) -> Recorded {
        match parse_line(line, &tok()) {
            Some(Event::State { recorded, .. }) => recorded,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parses_state_lines() {
        let r = state_of(
            "@rbuild:T state web exists=1 version=2 hash=abc built_at=100 last_result=ok failed_hash=- failed_at=0 locked=- running=1 gen=2 phase=- restarted=1",
        );
        assert!(r.restarted && r.running == Some(true));
        let r = state_of(
            "@rbuild:T state web exists=1 version=1 hash=abc built_at=100 last_result=ok failed_hash=- failed_at=0 locked=-",
        );
        assert_eq!(
            r,
            Recorded {
                state: Ok(Some(StackState {
                    hash: Some("abc".into()),
                    built_at: 100,
                    last_result: Some(LastResult::Ok),
                    ..StackState::default()
                })),
                locked_by: None,
                running: None,
                phase: None,
                restarted: false,
            }
        );
        let r = state_of(
            "@rbuild:T state web exists=0 version=- hash=- built_at=0 last_result=- failed_hash=- failed_at=0 locked=-",
        );
        assert_eq!(r.state, Ok(None));
        // no state file, but a live lock still matters
        let r = state_of(
            "@rbuild:T state web exists=0 version=- hash=- built_at=0 last_result=- failed_hash=- failed_at=0 locked=42",
        );
        assert_eq!((r.state, r.locked_by.as_deref()), (Ok(None), Some("42")));
    }

    #[test]
    fn a_state_file_of_another_version_is_not_read() {
        let line = |v: &str| {
            format!(
                "@rbuild:T state web exists=1 version={v} hash=abc built_at=100 last_result=ok failed_hash=- failed_at=0 locked=-"
            )
        };
        for v in ["1", "2"] {
            assert!(
                matches!(state_of(&line(v)).state, Ok(Some(_))),
                "version={v} is read"
            );
        }
        for (v, want) in [
            ("3", BadState::Newer("3".into())),
            ("17", BadState::Newer("17".into())),
            // no version line: empty, or a write cut short
            ("-", BadState::NoVersion),
            // garbage is never a newer rbuild's
            ("0", BadState::Unknown("0".into())),
            ("2x", BadState::Unknown("2x".into())),
            ("x7", BadState::Unknown("x7".into())),
            ("+2", BadState::Unknown("+2".into())),
            (
                "99999999999999999999999",
                BadState::Unknown("99999999999999999999999".into()),
            ),
        ] {
            assert_eq!(state_of(&line(v)).state, Err(want), "version={v:?}");
        }
        let r = state_of(
            "@rbuild:T state web exists=bad version=- hash=- built_at=0 last_result=- failed_hash=- failed_at=0 locked=-",
        );
        assert_eq!(r.state, Err(BadState::NotAFile));
    }

    #[test]
    fn a_state_line_names_the_running_generation_and_a_cut_off_phase() {
        let r = state_of(
            "@rbuild:T state web exists=1 version=2 hash=abc built_at=100 last_result=ok failed_hash=- failed_at=0 locked=- running=1 gen=3 phase=-",
        );
        assert_eq!(
            r.state.as_ref().unwrap().as_ref().unwrap().generation,
            Some(3)
        );
        assert_eq!((r.running, r.phase), (Some(true), None));
        let r = state_of(
            "@rbuild:T state web exists=1 version=2 hash=abc built_at=100 last_result=ok failed_hash=- failed_at=0 locked=- running=0 gen=- phase=gate",
        );
        assert_eq!(r.state.as_ref().unwrap().as_ref().unwrap().generation, None);
        assert_eq!((r.running, r.phase.as_deref()), (Some(false), Some("gate")));
        // a first build cut off: no state file, but a phase
        let r = state_of(
            "@rbuild:T state web exists=0 version=- hash=- built_at=0 last_result=- failed_hash=- failed_at=0 locked=- running=0 gen=- phase=build",
        );
        assert_eq!((r.state, r.phase.as_deref()), (Ok(None), Some("build")));
        // an older script says neither: none
        let r = state_of(
            "@rbuild:T state web exists=1 version=1 hash=abc built_at=100 last_result=ok failed_hash=- failed_at=0 locked=- running=1",
        );
        assert_eq!(r.state.unwrap().unwrap().generation, None);
        assert_eq!(r.phase, None);
    }

    #[test]
    fn parses_generation_lines() {
        assert_eq!(
            parse_line_t(
                "@rbuild:T generation web 3 running 1795600000 5f0c app=sha256:1,db=sha256:2"
            ),
            Some(Event::Generation {
                stack: "web".into(),
                generation: Generation {
                    number: 3,
                    running: true,
                    built_at: 1795600000,
                    hash: "5f0c".into(),
                    images: "app=sha256:1,db=sha256:2".into(),
                    bases: None,
                }
            })
        );
        match parse_line_t("@rbuild:T generation web 2 kept 1795500000 4e0b -") {
            Some(Event::Generation { generation, .. }) => {
                assert!(!generation.running);
                assert_eq!((generation.number, generation.images.as_str()), (2, "-"));
            }
            other => panic!("{other:?}"),
        }
        // what is not one is no event
        for bad in [
            "@rbuild:T generation web x running 1 h -",
            "@rbuild:T generation web 3 live 1 h -",
            "@rbuild:T generation web 3 running soon h -",
            "@rbuild:T generation web 3 running 1",
            "@rbuild:T generation web",
        ] {
            assert_eq!(parse_line_t(bad), None, "{bad}");
        }
    }

    #[test]
    fn state_and_generation_lines_carry_what_a_generation_was_built_from() {
        let d = format!("sha256:{}", "0f".repeat(32));
        let base = |r: &str| Base {
            reference: r.into(),
            digest: d.clone(),
        };
        let state = |bases: &str| {
            state_of(&format!(
                "@rbuild:T state web exists=1 version=2 hash=abc built_at=100 last_result=ok failed_hash=- failed_at=0 locked=- running=1 gen=3 phase=- restarted=0{bases}"
            ))
            .state
            .unwrap()
            .unwrap()
            .bases
        };
        assert_eq!(
            state(&format!(
                " bases=docker.io/library/busybox:1@{d},127.0.0.1:5000/db:16@{d}"
            )),
            Some(vec![
                base("docker.io/library/busybox:1"),
                base("127.0.0.1:5000/db:16")
            ])
        );
        assert_eq!(state(" bases=none"), Some(vec![]));
        assert_eq!(state(" bases=-"), None);
        // an older script says nothing: not recorded
        assert_eq!(state(""), None);
        let gen_bases = |line: &str| match parse_line_t(line) {
            Some(Event::Generation { generation, .. }) => generation.bases,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            gen_bases(&format!(
                "@rbuild:T generation web 3 running 1795600000 5f0c app=sha256:1 bases=x:1@{d}"
            )),
            Some(vec![base("x:1")])
        );
        assert_eq!(
            gen_bases("@rbuild:T generation web 2 kept 1795500000 4e0b - bases=none"),
            Some(vec![])
        );
        assert_eq!(
            gen_bases("@rbuild:T generation web 2 kept 1795500000 4e0b - bases=-"),
            None
        );
        // an older script's line has no bases
        assert_eq!(
            gen_bases("@rbuild:T generation web 2 kept 1795500000 4e0b app=sha256:1"),
            None
        );
    }

    #[test]
    fn a_history_line_may_name_its_generation() {
        let attempt = |line: &str| match parse_line_t(line) {
            Some(Event::History { attempt, .. }) => attempt,
            other => panic!("{other:?}"),
        };
        let a = attempt(
            "@rbuild:T history web 1795600000 5f0c rebuilt app=sha256:1 gen=3 with compose v2",
        );
        assert_eq!(
            (a.generation, a.detail.as_str()),
            (Some(3), "with compose v2")
        );
        let a = attempt("@rbuild:T history web 1795600000 5f0c failed - gen=- build failed");
        assert_eq!((a.generation, a.detail.as_str()), (None, "build failed"));
        let a = attempt("@rbuild:T history web 1795600000 5f0c rebuilt app=sha256:1 gen=4");
        assert_eq!((a.generation, a.detail.as_str()), (Some(4), ""));
        // an older line has none: its detail is whole
        let a =
            attempt("@rbuild:T history web 1795600000 5f0c rebuilt app=sha256:1 with compose v2");
        assert_eq!((a.generation, a.detail.as_str()), (None, "with compose v2"));
        let a = attempt("@rbuild:T history web 1795600000 5f0c rebuilt app=sha256:1");
        assert_eq!((a.generation, a.detail.as_str()), (None, ""));
    }

    #[test]
    fn parses_other_events_and_ignores_noise() {
        assert_eq!(
            parse_line_t("@rbuild:T hello proto=3 now=1700000000"),
            Some(Event::Hello {
                proto: "3".into(),
                now: 1700000000
            })
        );
        assert_eq!(
            parse_line_t(
                "@rbuild:T done web failed build failed; the running containers were left"
            ),
            Some(Event::Done {
                stack: "web".into(),
                outcome: Outcome::Failed,
                detail: "build failed; the running containers were left".into(),
                cause: None,
            })
        );
        assert_eq!(
            parse_line_t(
                "@rbuild:T done web failed cause=engine the Docker engine does not answer"
            ),
            Some(Event::Done {
                stack: "web".into(),
                outcome: Outcome::Failed,
                detail: "the Docker engine does not answer".into(),
                cause: Some(Cause::Engine),
            })
        );
        assert_eq!(
            parse_line_t("@rbuild:T fatal cause=no_compose no compose"),
            Some(Event::Fatal {
                text: "no compose".into(),
                cause: Some(Cause::NoCompose)
            })
        );
        assert_eq!(
            parse_line_t("@rbuild:T fatal cause=later something new"),
            Some(Event::Fatal {
                text: "something new".into(),
                cause: None
            }),
            "a cause this controller does not know is no cause"
        );
        assert_eq!(
            parse_line_t("@rbuild:T done web locked 4242"),
            Some(Event::Done {
                stack: "web".into(),
                outcome: Outcome::Locked { pid: "4242".into() },
                detail: String::new(),
                cause: None,
            })
        );
        assert_eq!(
            parse_line_t("@rbuild:T log web Step 1/3 : FROM x"),
            Some(Event::Log {
                stack: "web".into(),
                text: "Step 1/3 : FROM x".into()
            })
        );
        assert_eq!(
            parse_line_t(
                "@rbuild:T history web 1700000000 abc rolled_back app=sha256:1 not healthy: app(unhealthy)"
            ),
            Some(Event::History {
                stack: "web".into(),
                attempt: Attempt {
                    at: 1700000000,
                    hash: "abc".into(),
                    result: AttemptResult::RolledBack,
                    images: "app=sha256:1".into(),
                    generation: None,
                    detail: "not healthy: app(unhealthy)".into()
                }
            })
        );
        assert_eq!(parse_line_t("Building web"), None);
        // another run's line, an unmarked one, a forged one: noise
        assert_eq!(parse_line_t("@rbuild:U hello proto=3 now=1"), None);
        assert_eq!(parse_line_t("@rbuild hello proto=3 now=1"), None);
        // a greeting with no final newline before the first line
        assert_eq!(
            parse_line_t("Welcome to web1!@rbuild:T hello proto=3 now=7"),
            Some(Event::Hello {
                proto: "3".into(),
                now: 7
            })
        );
        assert_eq!(parse_line_t("@rbuild:T bogus x"), None);
        assert_eq!(parse_line_t("@rbuild:T done web exploded"), None);
        assert_eq!(parse_line_t("@rbuild:T hello now=1"), None, "no protocol");
    }
}
