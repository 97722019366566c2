//! The calls the controller makes of the remote script, typed, and the
//! argument lists and command lines they become (see `PROTOCOL.md`).

use crate::compose::ComposePref;

use super::{PROTOCOL, Token, script};

/// One run of the remote script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Check(Check),
    Apply(Apply),
    Rollback(Rollback),
    History(History),
    Status(Status),
    Logs(Logs),
}

/// `check`: read every stack's state file, no docker CLI, nothing written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Remote state directory; `None`: the script's default.
    pub state_dir: Option<String>,
    /// Where some stack may be due, end the output with `end hold` and wait
    /// for stdin to close, so that an ssh master running the check as its
    /// own session stays up while the controller decides whether an apply
    /// follows over it. A host whose every stack has its hash and a build
    /// younger than its period lets go at once.
    pub hold: bool,
    /// A dry run's check: also ask whether the host could rebuild at all
    /// (docker in the PATH, a compose, the engine's socket usable), answered
    /// by a `caps` line. Never holds.
    pub plan: bool,
    pub stacks: Vec<CheckStack>,
}

/// One stack of a check: its name, the hash it would have if rebuilt now,
/// and its build period in seconds (0: due whatever its age).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckStack {
    pub name: String,
    pub hash: String,
    pub period: u64,
}

/// `apply`: ship (the payload on stdin) and rebuild stacks, each under its
/// lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Apply {
    pub state_dir: Option<String>,
    pub compose: ComposePref,
    /// Also remove the generation of images just replaced.
    pub remove_images: bool,
    /// After a rebuild, prune the engine's build cache: what is older than
    /// this many seconds (`Some(0)`: all of it); `None`: leave it.
    pub prune_cache: Option<u64>,
    /// The payload's size and sha256, sent ahead of it so that the host
    /// verifies it before unpacking; `None`: nothing is shipped.
    pub payload: Option<Announced>,
    pub stacks: Vec<ApplyStack>,
}

/// What an apply does with one stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StackMode {
    /// Its files come in the payload: ship, then rebuild.
    Ship,
    /// Its files are on the host already: rebuild.
    Build,
    /// An image-only service's image moved: its files are on the host
    /// already; pull, then up, gated and committed as a rebuild, but no
    /// build (the built services keep their images).
    Pull,
    /// It does not run as recorded: up what is there, no build.
    Start,
    /// A container of what runs restarted since its gate: look; a crash
    /// loop is rolled back to the generation before, a restart by the
    /// engine recorded.
    Verify,
}

impl StackMode {
    fn as_arg(self) -> &'static str {
        match self {
            StackMode::Ship => "ship",
            StackMode::Build => "build",
            StackMode::Pull => "pull",
            StackMode::Start => "start",
            StackMode::Verify => "verify",
        }
    }
}

/// What the controller says of the payload before sending it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announced {
    pub size: u64,
    /// Hex sha256.
    pub sha256: String,
}

/// Where a stack is on its host and how compose finds it there: what an
/// apply and a rollback both name (`NAME DIR COMPOSE_FILE PROFILES`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// The compose project, directory and state file name.
    pub name: String,
    /// Remote directory; `None`: the script's default.
    pub dir: Option<String>,
    /// The compose files, by their names inside `dir`, in order.
    pub compose_files: Vec<String>,
    /// Compose profiles to enable.
    pub profiles: Vec<String>,
}

impl Place {
    /// Its four arguments.
    fn args(&self) -> [String; 4] {
        [
            self.name.clone(),
            opt(&self.dir),
            files(&self.compose_files),
            profiles(&self.profiles),
        ]
    }
}

/// One stack of an apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyStack {
    pub place: Place,
    /// What to do with it.
    pub mode: StackMode,
    /// Ship into `dir` even when it holds files rbuild did not put there
    /// (they stay; see `PROTOCOL.md`).
    pub adopt: bool,
    pub up_timeout: u64,
    /// Seconds the stack must stay up after it came up, within the up
    /// timeout.
    pub settle: u64,
    /// Seconds the build, and the pull, may take each.
    pub build_timeout: u64,
    pub hash: String,
    /// How its directory is kept and how it is brought up.
    pub options: StackOptions,
    /// Its `before` and `after` hooks (shell commands run on the host).
    pub hooks: Hooks,
}

/// A stack's hooks: shell command lines run by `sh -c` in the stack's
/// directory on the host, `before` after the build and pull and before
/// `up`, `after` once the new generation passed its gate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hooks {
    pub before: Option<String>,
    pub after: Option<String>,
    /// The stack's probe (`probe:`): a command line run in the stack's
    /// directory once its containers passed the gate, until it succeeds
    /// within the up timeout; an HTTP probe is `probe_url URL [TEXT]`, a
    /// function of the script.
    pub probe: Option<String>,
}

/// A stack's options on the host, one argument (`OPTIONS`: `-`, or
/// `KEY=VALUE` words joined by `,`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StackOptions {
    /// The mode of the stack's directory (and its shipped directories);
    /// `None`: 0700.
    pub dir_mode: Option<u32>,
    /// The group given to the shipped files (a name or a gid, validated).
    pub dir_group: Option<String>,
    /// The services replaced beside their old containers (`zero_downtime`:
    /// plain names, chosen by the inventory); empty: none.
    pub zero_downtime: Vec<String>,
    /// Seconds to wait for the stack's lock when a live run holds it
    /// (`--lock-wait`); 0: report `locked` at once.
    pub lock_wait: u64,
    /// Services the gate waits for to exit 0 (jobs).
    pub one_shots: Vec<String>,
    /// What services mount of the stack's directory, (service, path)
    /// pairs (see [`crate::compose::mounting`]).
    pub mounts: Vec<(String, String)>,
    /// Seconds the host watches the stack after a passed gate (0: not).
    pub watch: u64,
    /// How many generations keep their images, the running one included
    /// (`keep_generations`, 1 or more); `None`: the script's default (2).
    /// `--remove-images` still goes as the apply's `REMOVE` flag.
    pub keep: Option<u32>,
}

impl StackOptions {
    /// The `OPTIONS` argument.
    pub fn as_arg(&self) -> String {
        let mut w = Vec::new();
        if let Some(m) = self.dir_mode {
            w.push(format!("dir_mode={m:o}"));
        }
        if let Some(g) = &self.dir_group {
            w.push(format!("dir_group={g}"));
        }
        if !self.zero_downtime.is_empty() {
            w.push(format!("zero_downtime={}", self.zero_downtime.join(":")));
        }
        if self.lock_wait > 0 {
            w.push(format!("lock_wait={}", self.lock_wait));
        }
        if !self.one_shots.is_empty() {
            w.push(format!("oneshot={}", self.one_shots.join(":")));
        }
        if !self.mounts.is_empty() {
            let m: Vec<String> = self
                .mounts
                .iter()
                .map(|(s, p)| format!("{s}@{p}"))
                .collect();
            w.push(format!("mounts={}", m.join("+")));
        }
        if let Some(k) = self.keep {
            w.push(format!("keep={k}"));
        }
        if self.watch > 0 {
            w.push(format!("watch={}", self.watch));
        }
        if w.is_empty() {
            "-".to_owned()
        } else {
            w.join(",")
        }
    }
}

/// `rollback`: put an older generation of one stack back, by hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollback {
    pub state_dir: Option<String>,
    pub compose: ComposePref,
    pub place: Place,
    pub up_timeout: u64,
    pub settle: u64,
    /// The kept generation to put back (`--to GEN`); `None`: the newest
    /// kept one older than the one running (never forward).
    pub to: Option<u64>,
}

/// `history`: the recorded attempts of one stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History {
    pub state_dir: Option<String>,
    pub name: String,
}

/// `status`: what the check reads, and each stack's service containers
/// (one `docker ps` for the host) and last failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub state_dir: Option<String>,
    pub stacks: Vec<CheckStack>,
}

/// `logs`: the output of one stack's last failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logs {
    pub state_dir: Option<String>,
    pub name: String,
}

fn flag(b: bool) -> String {
    if b { "1" } else { "0" }.to_owned()
}

fn opt(s: &Option<String>) -> String {
    s.clone().unwrap_or_default()
}

/// Compose files as one argument: a name a line (validated: no control
/// characters in them).
fn files(f: &[String]) -> String {
    f.join("\n")
}

/// Profiles as one argument: comma-separated, `-` for none.
fn profiles(p: &[String]) -> String {
    if p.is_empty() {
        "-".to_owned()
    } else {
        p.join(",")
    }
}

impl Call {
    /// The command's name, as the script takes it.
    pub fn name(&self) -> &'static str {
        match self {
            Call::Check(_) => "check",
            Call::Apply(_) => "apply",
            Call::Rollback(_) => "rollback",
            Call::History(_) => "history",
            Call::Status(_) => "status",
            Call::Logs(_) => "logs",
        }
    }

    pub fn is_check(&self) -> bool {
        matches!(self, Call::Check(_))
    }

    /// Whether the call runs in the remote user's login shell with only the
    /// check's cut of the script: every run's check, the hot path. A dry
    /// run's check ([`Check::plan`]) needs the whole script, under `sh -c`.
    pub fn in_login_shell(&self) -> bool {
        matches!(self, Call::Check(c) if !c.plan)
    }

    /// Whether the run may end its output with `@rbuild end hold` and then
    /// wait for its stdin to close (see [`Check::hold`]).
    pub fn holds(&self) -> bool {
        matches!(self, Call::Check(c) if c.hold && !c.plan)
    }

    /// Whether the call reads a payload (the shipped stacks) on stdin.
    pub fn has_payload(&self) -> bool {
        matches!(self, Call::Apply(a) if a.payload.is_some())
    }

    /// The script's arguments, `$0` first: `rbuild PROTO TOKEN COMMAND
    /// STATE_DIR ARGS...`.
    pub fn args(&self, token: &Token) -> Vec<String> {
        let state_dir = match self {
            Call::Check(c) => &c.state_dir,
            Call::Apply(a) => &a.state_dir,
            Call::Rollback(r) => &r.state_dir,
            Call::History(h) => &h.state_dir,
            Call::Status(s) => &s.state_dir,
            Call::Logs(l) => &l.state_dir,
        };
        let mut a = vec![
            "rbuild".to_owned(),
            PROTOCOL.to_string(),
            token.as_str().to_owned(),
            self.name().to_owned(),
            opt(state_dir),
        ];
        match self {
            Call::Check(c) => {
                a.push(
                    match (c.plan, c.hold) {
                        (true, _) => "plan",
                        (false, true) => "hold",
                        (false, false) => "nohold",
                    }
                    .to_owned(),
                );
                for s in &c.stacks {
                    a.extend([s.name.clone(), s.hash.clone(), s.period.to_string()]);
                }
            }
            Call::Apply(ap) => {
                let (size, sha256) = match &ap.payload {
                    Some(p) => (p.size.to_string(), p.sha256.clone()),
                    None => ("0".to_owned(), "-".to_owned()),
                };
                a.extend([
                    ap.compose.as_arg().to_owned(),
                    flag(ap.remove_images),
                    ap.prune_cache.map_or("-".to_owned(), |s| s.to_string()),
                    size,
                    sha256,
                ]);
                for s in &ap.stacks {
                    a.extend(s.place.args());
                    a.extend([
                        s.mode.as_arg().to_owned(),
                        flag(s.adopt),
                        s.up_timeout.to_string(),
                        s.settle.to_string(),
                        s.build_timeout.to_string(),
                        s.hash.clone(),
                        s.options.as_arg(),
                        s.hooks.before.clone().unwrap_or_default(),
                        s.hooks.after.clone().unwrap_or_default(),
                        s.hooks.probe.clone().unwrap_or_default(),
                    ]);
                }
            }
            Call::Rollback(r) => {
                a.push(r.compose.as_arg().to_owned());
                a.extend(r.place.args());
                a.extend([
                    r.up_timeout.to_string(),
                    r.settle.to_string(),
                    r.to.map_or("-".to_owned(), |g| g.to_string()),
                ]);
            }
            Call::History(h) => a.push(h.name.clone()),
            Call::Status(st) => {
                for s in &st.stacks {
                    a.extend([s.name.clone(), s.hash.clone(), s.period.to_string()]);
                }
            }
            Call::Logs(l) => a.push(l.name.clone()),
        }
        a
    }

    /// The script as shipped for this call: the check ships only its part.
    pub fn script(&self) -> &'static str {
        match self {
            _ if self.in_login_shell() => script::check_script(),
            Call::Status(_) | Call::Logs(_) | Call::History(_) => script::operator_script(),
            _ => script::script(),
        }
    }

    /// The whole remote command line, every word quoted for the remote
    /// user's login shell (see [`script::command_line`]).
    pub fn command_line(&self, token: &Token) -> String {
        script::command_line(self.in_login_shell(), self.script(), &self.args(token))
    }

    /// The command line as `sh -c SCRIPT ARGS...`, for any login shell that
    /// splits words as POSIX sh does.
    pub fn sh_command_line(&self, token: &Token) -> String {
        script::sh_command_line(self.script(), &self.args(token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_mode_is_a_word_the_script_knows() {
        let source = script::source();
        for (mode, word) in [
            (StackMode::Ship, "ship"),
            (StackMode::Build, "build"),
            (StackMode::Pull, "pull"),
            (StackMode::Start, "start"),
            (StackMode::Verify, "verify"),
        ] {
            assert_eq!(mode.as_arg(), word);
            if mode != StackMode::Build {
                assert!(
                    source.contains(&format!("\"$mode\" = {word} ]"))
                        || source.contains(&format!("\"$mode\" != {word} ]")),
                    "the script tests for mode {word}"
                );
            }
        }
    }

    #[test]
    fn args_are_positional_and_complete() {
        let tok = Token::fixed("t0k");
        let a = Call::Apply(Apply {
            state_dir: None,
            compose: ComposePref::Auto,
            remove_images: true,
            prune_cache: Some(86400),
            payload: Some(Announced {
                size: 10240,
                sha256: "ab12".into(),
            }),
            stacks: vec![ApplyStack {
                place: Place {
                    name: "web".into(),
                    dir: Some("/srv/x y".into()),
                    compose_files: vec!["compose.yml".into(), "compose.prod.yml".into()],
                    profiles: vec![],
                },
                mode: StackMode::Ship,
                adopt: false,
                up_timeout: 60,
                settle: 10,
                build_timeout: 1800,
                hash: "h".into(),
                options: StackOptions {
                    dir_mode: Some(0o750),
                    dir_group: Some("www-data".into()),
                    zero_downtime: vec!["web".into(), "api".into()],
                    lock_wait: 30,
                    one_shots: vec!["migrate".into()],
                    mounts: vec![("proxy".into(), "site".into()), ("db".into(), ".".into())],
                    watch: 60,
                    keep: Some(3),
                },
                hooks: Hooks {
                    before: Some("./migrate --yes 'a b'".into()),
                    after: None,
                    probe: Some("probe_url http://127.0.0.1:8000/ ok".into()),
                },
            }],
        });
        assert!(a.has_payload());
        assert_eq!(
            a.args(&tok),
            [
                "rbuild",
                "4",
                "t0k",
                "apply",
                "",
                "auto",
                "1",
                "86400",
                "10240",
                "ab12",
                "web",
                "/srv/x y",
                "compose.yml\ncompose.prod.yml",
                "-",
                "ship",
                "0",
                "60",
                "10",
                "1800",
                "h",
                "dir_mode=750,dir_group=www-data,zero_downtime=web:api,lock_wait=30,oneshot=migrate,mounts=proxy@site+db@.,keep=3,watch=60",
                "./migrate --yes 'a b'",
                "",
                "probe_url http://127.0.0.1:8000/ ok",
            ]
        );
        let stack = |name: &str, hash: &str, period| CheckStack {
            name: name.into(),
            hash: hash.into(),
            period,
        };
        let c = Call::Check(Check {
            state_dir: Some("/st".into()),
            hold: true,
            plan: false,
            stacks: vec![stack("a", "ha", 1), stack("b", "hb", 2)],
        });
        assert_eq!(
            c.args(&tok),
            [
                "rbuild", "4", "t0k", "check", "/st", "hold", "a", "ha", "1", "b", "hb", "2"
            ]
        );
        assert!(c.holds() && c.is_check() && !c.has_payload());
        let r = Call::Rollback(Rollback {
            state_dir: None,
            compose: ComposePref::V1,
            place: Place {
                name: "web".into(),
                dir: None,
                compose_files: vec!["c.yml".into()],
                profiles: vec!["debug".into(), "jobs".into()],
            },
            up_timeout: 30,
            settle: 5,
            to: None,
        });
        assert_eq!(
            r.args(&tok),
            [
                "rbuild",
                "4",
                "t0k",
                "rollback",
                "",
                "v1",
                "web",
                "",
                "c.yml",
                "debug,jobs",
                "30",
                "5",
                "-"
            ]
        );
        let to = |to| {
            let Call::Rollback(r) = &r else {
                unreachable!()
            };
            Call::Rollback(Rollback { to, ..r.clone() }).args(&tok)
        };
        assert_eq!(to(Some(2)).last().map(String::as_str), Some("2"));
        assert_eq!(to(None).last().map(String::as_str), Some("-"));
        assert_eq!(
            StackOptions::default().as_arg(),
            "-",
            "no option: the script's defaults"
        );
        assert_eq!(
            StackOptions {
                keep: Some(1),
                ..StackOptions::default()
            }
            .as_arg(),
            "keep=1"
        );
        let h = Call::History(History {
            state_dir: Some("/st".into()),
            name: "web".into(),
        });
        assert_eq!(
            h.args(&tok),
            ["rbuild", "4", "t0k", "history", "/st", "web"]
        );
        assert!(!h.holds() && !r.holds());
    }
}
