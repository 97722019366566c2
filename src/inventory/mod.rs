//! The YAML inventory: which hosts run which compose stacks, and how to reach
//! them. Parsing is strict (unknown keys are errors) and every error names the
//! file, the line and the key at fault. Nothing here touches a host.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use serde_saphyr::Spanned;

use crate::rollout::{Limit, Policy};

/// An inventory error: where it is and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error(
    "{}{}{}: {message}{}",
    file.display(),
    if *line > 0 { format!(":{line}") } else { String::new() },
    if *line > 0 && *column > 0 { format!(":{column}") } else { String::new() },
    hint.as_ref().map(|h| format!("\nhint: {h}")).unwrap_or_default()
)]
pub struct InventoryError {
    pub file: PathBuf,
    /// 1-based line, 0 when the error is about the whole file.
    pub line: u64,
    /// 1-based column where the YAML itself is at fault, else 0.
    pub column: u64,
    pub message: String,
    pub hint: Option<String>,
}

/// The longest build period: ten years (longer is surely a mistake).
pub const MAX_PERIOD: u64 = 10 * 365 * 86400;
/// The longest up timeout: a day.
pub const MAX_UP_TIMEOUT: u64 = 86400;
/// The longest connect timeout: an hour.
pub const MAX_CONNECT_TIMEOUT: u64 = 3600;

/// A duration in whole seconds from `MIN` to `MAX`, written as a number of
/// seconds or as a human duration (`90`, `"30m"`, `"1d"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seconds<const MIN: u64, const MAX: u64>(pub u64);

/// `build_period`: 0 (always due) to ten years.
pub type Period = Seconds<0, MAX_PERIOD>;
/// `up_timeout`: 1 s to a day (0 would mean no bound at all).
pub type UpTimeout = Seconds<1, MAX_UP_TIMEOUT>;
/// `connect_timeout`: 1 s to an hour.
pub type ConnectTimeout = Seconds<1, MAX_CONNECT_TIMEOUT>;
/// `build_timeout`: 1 s to a day.
pub type BuildTimeout = Seconds<1, MAX_UP_TIMEOUT>;
/// `settle`: 0 (no window) to a day.
pub type Settle = Seconds<0, MAX_UP_TIMEOUT>;
/// `watch`: 0 (no watcher) to a day.
pub type Watch = Seconds<0, MAX_UP_TIMEOUT>;
/// The watch window after a passed gate when none is given (see the
/// README's "A crash after the gate").
pub const DEFAULT_WATCH: u64 = 60;

/// Seconds from a number or a human duration, within `min..=max`: the one
/// parser of durations, for the inventory and the command line alike.
pub fn parse_seconds(v: &str, min: u64, max: u64) -> Result<u64, String> {
    let t = v.trim();
    let n = match t.parse::<u64>() {
        Ok(n) => n,
        Err(_) => humantime::parse_duration(t)
            .map_err(|_| {
                format!("`{v}` is not a duration: write seconds (`90`) or a duration such as `30m` or `1d`")
            })?
            .as_secs(),
    };
    in_range(n, min, max)
}

fn in_range(n: u64, min: u64, max: u64) -> Result<u64, String> {
    let human = |s: u64| humantime::format_duration(std::time::Duration::from_secs(s)).to_string();
    if n < min || n > max {
        return Err(format!(
            "{n} seconds is out of range: from {} to {} ({max} seconds)",
            human(min),
            human(max)
        ));
    }
    Ok(n)
}

impl<'de, const MIN: u64, const MAX: u64> Deserialize<'de> for Seconds<MIN, MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<const MIN: u64, const MAX: u64>;
        impl<const MIN: u64, const MAX: u64> Visitor<'_> for V<MIN, MAX> {
            type Value = Seconds<MIN, MAX>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number of seconds or a duration such as \"30m\" or \"1d\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                in_range(v, MIN, MAX).map(Seconds).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                let v = u64::try_from(v).map_err(|_| E::custom("a duration cannot be negative"))?;
                self.visit_u64(v)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                parse_seconds(v, MIN, MAX).map(Seconds).map_err(E::custom)
            }
        }
        d.deserialize_any(V::<MIN, MAX>)
    }
}

/// An ssh port, 1 to 65535.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Port(pub u16);

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Port;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a port number from 1 to 65535")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Port, E> {
                u16::try_from(v)
                    .ok()
                    .filter(|p| *p > 0)
                    .map(Port)
                    .ok_or_else(|| E::custom(format!("port {v} is not a port number (1 to 65535)")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Port, E> {
                Err(E::custom(format!(
                    "port {v} is not a port number (1 to 65535)"
                )))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Port, E> {
                match v.trim().parse::<u64>() {
                    Ok(n) => self.visit_u64(n),
                    Err(_) => Err(E::custom(format!(
                        "port `{v}` is not a port number (1 to 65535)"
                    ))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// How many generations of a stack keep their images when none is set.
pub const DEFAULT_KEEP_GENERATIONS: u32 = 2;
/// The most generations a stack may keep.
pub const MAX_KEEP_GENERATIONS: u32 = 100;

/// `keep_generations:` how many generations of a stack keep their images
/// on its host, the running one included: 1 (no rollback target) to 100.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepGenerations(pub u32);

impl<'de> Deserialize<'de> for KeepGenerations {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        fn bad(v: impl fmt::Display) -> String {
            format!(
                "keep_generations `{v}` is not a count of generations from 1 to {MAX_KEEP_GENERATIONS}"
            )
        }
        impl Visitor<'_> for V {
            type Value = KeepGenerations;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "a count of generations from 1 to {MAX_KEEP_GENERATIONS}")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<KeepGenerations, E> {
                u32::try_from(v)
                    .ok()
                    .filter(|k| (1..=MAX_KEEP_GENERATIONS).contains(k))
                    .map(KeepGenerations)
                    .ok_or_else(|| E::custom(bad(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<KeepGenerations, E> {
                match u64::try_from(v) {
                    Ok(v) => self.visit_u64(v),
                    Err(_) => Err(E::custom(bad(v))),
                }
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<KeepGenerations, E> {
                Err(E::custom(bad(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<KeepGenerations, E> {
                match v.trim().parse::<u64>() {
                    Ok(n) => self.visit_u64(n),
                    Err(_) => Err(E::custom(bad(v))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// `dir_mode:` of a stack: the mode of its directory on the host, octal
/// (`"0750"`), with the owner's `rwx`, never writable by others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirMode(pub u32);

impl DirMode {
    fn parse(text: &str) -> Result<DirMode, String> {
        let bad = |why: &str| {
            format!(
                "dir_mode `{text}` {why}; write it quoted in octal, e.g. `dir_mode: \"0750\"` (its group may read) or `\"0755\"`"
            )
        };
        let digits = text.strip_prefix("0o").unwrap_or(text);
        if digits.is_empty()
            || digits.len() > 4
            || !digits.chars().all(|c| ('0'..='7').contains(&c))
        {
            return Err(bad("is not an octal mode"));
        }
        let m = u32::from_str_radix(digits, 8).map_err(|_| bad("is not an octal mode"))?;
        if m > 0o777 {
            return Err(bad("sets more than the permission bits"));
        }
        if m & 0o700 != 0o700 {
            return Err(bad("does not give its owner (the deploying user) `rwx`"));
        }
        if m & 0o002 != 0 {
            return Err(bad("lets anyone write the stack's directory"));
        }
        Ok(DirMode(m))
    }
}

impl<'de> Deserialize<'de> for DirMode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = DirMode;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an octal mode such as \"0750\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<DirMode, E> {
                DirMode::parse(v.trim()).map_err(E::custom)
            }
            // unquoted `0750` is read as the number 750: its digits are
            // taken as octal (the checks refuse what `0o750` became)
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<DirMode, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<DirMode, E> {
                if v.fract() == 0.0 && (0.0..10000.0).contains(&v) {
                    self.visit_u64(v as u64)
                } else {
                    self.visit_str(&v.to_string())
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// `dir_group:` of a stack: a group name or a gid, given to its directory
/// on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirGroup(pub String);

impl<'de> Deserialize<'de> for DirGroup {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = DirGroup;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a group name or a gid")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<DirGroup, E> {
                let name = v
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && v.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
                let gid = !v.is_empty() && v.chars().all(|c| c.is_ascii_digit());
                if (name || gid) && v.len() <= 32 {
                    Ok(DirGroup(v.to_owned()))
                } else {
                    Err(E::custom(format!(
                        "dir_group `{v}` is not a group name (letters, digits, `_`, `.`, `-`, starting with a letter or `_`) or a gid"
                    )))
                }
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<DirGroup, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<DirGroup, E> {
                self.visit_str(&v.to_string())
            }
        }
        d.deserialize_any(V)
    }
}

/// Settings a host or stack inherits unless it sets its own.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    pub user: Option<Spanned<String>>,
    pub port: Option<Port>,
    pub identity_file: Option<Spanned<String>>,
    #[serde(default)]
    pub ssh_options: BTreeMap<String, Spanned<String>>,
    pub state_dir: Option<Spanned<String>>,
    pub remote_root: Option<Spanned<String>>,
    pub compose: Option<Spanned<String>>,
    pub build_period: Option<Period>,
    pub up_timeout: Option<UpTimeout>,
    pub build_timeout: Option<BuildTimeout>,
    pub settle: Option<Settle>,
    pub connect_timeout: Option<ConnectTimeout>,
    pub rollout: Option<RawRollout>,
    pub keep_generations: Option<KeepGenerations>,
    pub watch: Option<Watch>,
}

/// `rollout:` settings, in `defaults` or a shared stack.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRollout {
    pub serial: Option<Limit>,
    pub canary: Option<bool>,
    pub max_failures: Option<Limit>,
}

impl RawRollout {
    fn over(&self, base: &Policy) -> Policy {
        Policy {
            serial: self.serial.or(base.serial),
            canary: self.canary.unwrap_or(base.canary),
            max_failures: self.max_failures.or(base.max_failures),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInventory {
    #[serde(default)]
    defaults: Defaults,
    /// Stacks defined once and placed on hosts by name or group.
    #[serde(default)]
    stacks: BTreeMap<String, Spanned<RawSharedStack>>,
    /// In the order the file lists them: hosts start in that order, and the
    /// summary lists them so.
    hosts: Spanned<IndexMap<String, Spanned<RawHost>>>,
    /// A webhook told of runs where something happened.
    #[serde(default)]
    notify: Option<Spanned<RawNotify>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotify {
    url: Spanned<String>,
    /// Actions that call for a notification.
    #[serde(default)]
    on: Option<Vec<Spanned<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSharedStack {
    compose_file: Spanned<ComposeFiles>,
    #[serde(default)]
    profiles: Vec<Spanned<String>>,
    /// The directory that is the stack (hashed, shipped), relative to the
    /// inventory; default: the first compose file's.
    root: Option<Spanned<String>>,
    remote_dir: Option<Spanned<String>>,
    build_period: Option<Period>,
    up_timeout: Option<UpTimeout>,
    build_timeout: Option<BuildTimeout>,
    settle: Option<Settle>,
    keep_generations: Option<KeepGenerations>,
    watch: Option<Watch>,
    #[serde(default)]
    hosts: Vec<Spanned<String>>,
    #[serde(default)]
    groups: Vec<Spanned<String>>,
    rollout: Option<RawRollout>,
    #[serde(default)]
    adopt: bool,
    dir_mode: Option<DirMode>,
    dir_group: Option<DirGroup>,
    /// Replace services beside their old containers (see the README).
    zero_downtime: Option<Spanned<bool>>,
    /// Commands run on the host around the `up` (see the README).
    hooks: Option<Spanned<RawHooks>>,
    probe: Option<Spanned<RawProbe>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHost {
    address: Option<Spanned<String>>,
    user: Option<Spanned<String>>,
    port: Option<Port>,
    identity_file: Option<Spanned<String>>,
    #[serde(default)]
    ssh_options: BTreeMap<String, Spanned<String>>,
    state_dir: Option<Spanned<String>>,
    remote_root: Option<Spanned<String>>,
    compose: Option<Spanned<String>>,
    build_period: Option<Period>,
    up_timeout: Option<UpTimeout>,
    build_timeout: Option<BuildTimeout>,
    settle: Option<Settle>,
    connect_timeout: Option<ConnectTimeout>,
    #[serde(default)]
    groups: Vec<Spanned<String>>,
    /// Labels `--limit @TAG` and `--exclude @TAG` select by.
    #[serde(default)]
    tags: Vec<Spanned<String>>,
    #[serde(default)]
    stacks: Vec<Spanned<RawStack>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStack {
    name: Spanned<String>,
    compose_file: Spanned<ComposeFiles>,
    #[serde(default)]
    profiles: Vec<Spanned<String>>,
    /// The directory that is the stack (hashed, shipped), relative to the
    /// inventory; default: the first compose file's.
    root: Option<Spanned<String>>,
    remote_dir: Option<Spanned<String>>,
    build_period: Option<Period>,
    up_timeout: Option<UpTimeout>,
    build_timeout: Option<BuildTimeout>,
    settle: Option<Settle>,
    keep_generations: Option<KeepGenerations>,
    watch: Option<Watch>,
    #[serde(default)]
    adopt: bool,
    dir_mode: Option<DirMode>,
    dir_group: Option<DirGroup>,
    /// Replace services beside their old containers (see the README).
    zero_downtime: Option<Spanned<bool>>,
    /// Commands run on the host around the `up` (see the README).
    hooks: Option<Spanned<RawHooks>>,
    probe: Option<Spanned<RawProbe>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHooks {
    before: Option<Spanned<String>>,
    after: Option<Spanned<String>>,
}

/// `probe:` of a stack: an HTTP request made on the host (`url`, and a text
/// its answer must hold, `expect`), or a command run there (`command`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProbe {
    url: Option<Spanned<String>>,
    expect: Option<Spanned<String>>,
    command: Option<Spanned<String>>,
}

/// `compose_file`: one file, or a list of them (as `-f A -f B`: later ones
/// override earlier ones), relative to the inventory.
#[derive(Debug, Clone)]
pub struct ComposeFiles(pub Vec<String>);

impl<'de> Deserialize<'de> for ComposeFiles {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ComposeFiles;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a compose file, or a list of compose files")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ComposeFiles, E> {
                Ok(ComposeFiles(vec![v.to_owned()]))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<ComposeFiles, A::Error> {
                let mut files = Vec::new();
                while let Some(f) = seq.next_element::<String>()? {
                    files.push(f);
                }
                if files.is_empty() {
                    return Err(de::Error::custom("`compose_file` lists no file"));
                }
                Ok(ComposeFiles(files))
            }
        }
        d.deserialize_any(V)
    }
}

/// Which compose CLI the remote side uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ComposePref {
    /// `docker compose` where it works, else `docker-compose`.
    #[default]
    Auto,
    V1,
    V2,
}

impl ComposePref {
    pub fn as_arg(self) -> &'static str {
        match self {
            ComposePref::Auto => "auto",
            ComposePref::V1 => "v1",
            ComposePref::V2 => "v2",
        }
    }
}

/// One validated inventory.
#[derive(Debug, Clone)]
pub struct Inventory {
    pub path: PathBuf,
    pub hosts: Vec<Host>,
    /// `notify:`, validated.
    pub notify: Option<crate::notify::Notify>,
}

/// A validated host: how to reach it and what it runs.
#[derive(Debug, Clone)]
pub struct Host {
    /// The name used in output and `--limit`.
    pub name: String,
    /// What ssh connects to; the name itself when not set, so ssh config's
    /// `Host` blocks apply.
    pub address: String,
    pub user: Option<String>,
    pub port: Option<u16>,
    pub identity_file: Option<PathBuf>,
    /// Extra `ssh -o` options, in a generated config that includes the user's.
    pub ssh_options: BTreeMap<String, String>,
    /// Remote state directory; `None`: the remote side's default.
    pub state_dir: Option<String>,
    pub compose: ComposePref,
    pub connect_timeout: Option<u64>,
    /// Groups the host belongs to (`--limit` and shared stacks match them).
    pub groups: Vec<String>,
    /// Tags of the host (`--limit @TAG`); unlike groups, they place no stack.
    pub tags: Vec<String>,
    pub stacks: Vec<Stack>,
}

/// A validated stack on one host.
#[derive(Debug, Clone)]
pub struct Stack {
    /// Compose project name, remote directory name and state file name.
    pub name: String,
    /// The local compose file (absolute or relative to the working
    /// directory): the first of its compose files, whose directory is the
    /// stack.
    pub compose_file: PathBuf,
    /// The local directory that is the stack, hashed and shipped whole
    /// (less `.rbuildignore`): `root:`, or the first compose file's
    /// directory. Every file its compose files reference is inside it.
    pub root: PathBuf,
    /// Every compose file, relative to the stack's root, in the order
    /// compose takes them (the first one, the others, and the standard
    /// override file where compose itself would pick it up).
    pub compose_files: Vec<String>,
    /// Compose profiles to enable (`COMPOSE_PROFILES`).
    pub profiles: Vec<String>,
    /// Bind-mount sources in the stack's directory that its containers may
    /// write (see [`writable_binds`]).
    pub data_dirs: Vec<String>,
    /// Where it lives on the host; `None`: under the host's remote root or
    /// the remote side's default (`/srv/rbuild/NAME` as root).
    pub remote_dir: Option<String>,
    pub build_period: Option<u64>,
    pub up_timeout: Option<u64>,
    pub build_timeout: Option<u64>,
    pub settle: Option<u64>,
    /// How many of its generations keep their images on the host, the
    /// running one included (`keep_generations`, default 2).
    pub keep_generations: u32,
    /// Local mode: the variables its compose files interpolate (`${TAG}`)
    /// with their values in this environment (`None`: unset), hashed with
    /// the stack, so that a changed value rebuilds it as the original
    /// script did. Empty in fleet mode (compose on a host reads the host's
    /// environment and the shipped `.env`).
    pub env: Vec<(String, Option<String>)>,
    /// Seconds the host watches it after a passed gate, rolling a crash
    /// back by itself (`watch`, default [`DEFAULT_WATCH`]; 0: not watched).
    pub watch: u64,
    /// How a rebuild of this stack rolls out across hosts.
    pub rollout: Policy,
    /// Ship into its directory even when that holds files rbuild did not
    /// put there (they stay).
    pub adopt: bool,
    /// The mode of its directory on the host (default 0700).
    pub dir_mode: Option<u32>,
    /// The group of its directory on the host (default: the user's).
    pub dir_group: Option<String>,
    /// `zero_downtime: true`: the services a rebuild starts beside their
    /// old containers, gates, and only then removes the old ones (no fixed
    /// host port, no `container_name`); empty: the normal `up`.
    pub zero_downtime: Vec<String>,
    /// `hooks:`: its `before` and `after` commands.
    pub hooks: crate::remote::call::Hooks,
    /// Its jobs: the services another one waits for to complete
    /// (`service_completed_successfully`): the gate waits for them to exit 0.
    pub one_shots: Vec<String>,
    /// Its services that mount something of the stack's directory (see
    /// [`crate::compose::mounting`]): recreated after an `up` that left them
    /// on the old copy.
    pub mounts: Vec<(String, String)>,
}

impl Stack {
    /// The local directory that is the stack: what is hashed and shipped.
    pub fn dir(&self) -> PathBuf {
        self.root.clone()
    }

    /// What the stack is given on the host besides its files (`dir_mode`,
    /// `dir_group`, its hooks), or `None` for the default: a change of it
    /// is a change of the stack (it is hashed with the files).
    pub fn perms(&self) -> Option<String> {
        let hooks = &self.hooks;
        if self.dir_mode.is_none()
            && self.dir_group.is_none()
            && hooks.before.is_none()
            && hooks.after.is_none()
            && self.env.is_empty()
        {
            return None;
        }
        let mut p = format!(
            "dir_mode={:o},dir_group={}",
            self.dir_mode.unwrap_or(0o700),
            self.dir_group.as_deref().unwrap_or("")
        );
        // the hooks are part of what is deployed: a changed one is a change
        if hooks.before.is_some() || hooks.after.is_some() {
            p.push_str(&format!(
                "\0hooks\0{}\0{}",
                hooks.before.as_deref().unwrap_or(""),
                hooks.after.as_deref().unwrap_or("")
            ));
        }
        // so are the values compose interpolates from the environment
        for (k, v) in &self.env {
            p.push_str(&format!(
                "\0env\0{k}\0{}",
                v.as_deref().unwrap_or("\u{1}unset")
            ));
        }
        Some(p)
    }
}

/// The standard override file compose itself picks up beside `file` when it
/// is given no `-f`: `compose.override.yaml` beside `compose.yaml`, and so on.
pub fn override_of(dir: &Path, file: &str) -> Option<String> {
    let stem = match file {
        "compose.yaml" | "compose.yml" => "compose",
        "docker-compose.yaml" | "docker-compose.yml" => "docker-compose",
        _ => return None,
    };
    ["yaml", "yml"]
        .into_iter()
        .map(|ext| format!("{stem}.override.{ext}"))
        .find(|o| dir.join(o).is_file())
}

/// The last component of a `/`-separated path.
fn file_name(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

/// `name` in the directory of the `/`-separated path `beside`.
fn sibling(beside: &str, name: &str) -> String {
    match beside.rsplit_once('/') {
        Some((dir, _)) => format!("{dir}/{name}"),
        None => name.to_owned(),
    }
}

/// A reference of the compose files `files` (relative to `root`) that
/// leaves `root`, as an error at the compose file's line. `set`: the root
/// was set with `root:` (else it is the compose file's directory).
/// `key`: how a root is set (`root:` in the inventory, `--root` in local
/// mode), for the hint.
pub fn outside_root(
    root: &Path,
    files: &[String],
    set: bool,
    key: &str,
) -> Result<(), InventoryError> {
    let o = match crate::compose::check(root, files) {
        Ok(()) => return Ok(()),
        Err(o) => o,
    };
    let hint = if set {
        format!(
            "rbuild hashes and ships only the stack's root `{}`: move `{}` inside it, or widen {key}",
            root.display(),
            o.path
        )
    } else {
        format!(
            "rbuild hashes and ships only the compose file's directory: set {key} to a directory that holds both"
        )
    };
    Err(InventoryError {
        file: o.file,
        line: o.line,
        column: 0,
        message: format!(
            "{} `{}` is outside the stack's {} `{}`",
            o.what,
            o.path,
            if set { "root" } else { "directory" },
            root.display()
        ),
        hint: Some(hint),
    })
}

impl InventoryError {
    /// The same error, its message led by `what`.
    fn context(mut self, what: &str) -> InventoryError {
        self.message = format!("{what}{}", self.message);
        self
    }
}

/// The bind-mount sources of a stack's compose files (relative to `dir`,
/// its root; the first one's directory is the project's) that are inside
/// `dir` and that a container may write (not `:ro`), as paths relative to
/// `dir`: data, not configuration. A source written with a variable is left
/// out (it cannot be told here).
pub fn writable_binds(dir: &Path, compose_files: &[String]) -> Vec<String> {
    use serde_json::Value;
    let project = compose_files
        .first()
        .and_then(|f| f.rsplit_once('/'))
        .map_or("", |(d, _)| d);
    let mut out = Vec::new();
    for f in compose_files {
        let Ok(text) = std::fs::read_to_string(dir.join(f)) else {
            continue;
        };
        let Ok(doc) = serde_saphyr::from_str::<Value>(&text) else {
            continue;
        };
        let services = doc.get("services").and_then(Value::as_object);
        for svc in services.into_iter().flat_map(|s| s.values()) {
            let volumes = svc.get("volumes").and_then(Value::as_array);
            for v in volumes.into_iter().flatten() {
                let (source, read_only) = match v {
                    Value::String(s) => {
                        let mut parts = s.splitn(3, ':');
                        let src = parts.next().unwrap_or("");
                        let opts = parts.nth(1).unwrap_or("");
                        (src.to_owned(), opts.split(',').any(|o| o == "ro"))
                    }
                    Value::Object(m) if m.get("type").and_then(Value::as_str) == Some("bind") => (
                        m.get("source")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_owned(),
                        m.get("read_only").and_then(Value::as_bool).unwrap_or(false),
                    ),
                    _ => continue,
                };
                // a bind mount: a path, relative ones starting with `.`
                if read_only || source.contains('$') || !source.starts_with('.') {
                    continue;
                }
                // relative to the root, `..` taken; one that leaves it is
                // not the stack's (and is refused elsewhere)
                let mut rel: Vec<&str> = normal(project);
                let mut left = false;
                for c in normal(&source) {
                    if c == ".." {
                        left |= rel.pop().is_none();
                    } else {
                        rel.push(c);
                    }
                }
                let mut rel = rel.join("/");
                if rel.is_empty() {
                    // the whole directory (`.:/code`)
                    rel = ".".to_owned();
                }
                if !left && !out.contains(&rel) {
                    out.push(rel);
                }
            }
        }
    }
    out
}

/// The project name a compose file sets (`name:` at its top), if any.
pub fn compose_name(file: &Path) -> Option<String> {
    #[derive(Deserialize)]
    struct Top {
        name: Option<String>,
    }
    let text = std::fs::read_to_string(file).ok()?;
    serde_saphyr::from_str::<Top>(&text).ok()?.name
}

/// Is `name` usable as a compose project name, a directory and a file name?
/// Lowercase letters, digits, `-` and `_`, starting with a letter or digit.
pub fn valid_stack_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.len() <= 63
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// Host names: letters, digits, `.`, `-`, `_`; not starting with `-`.
pub fn valid_host_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('-')
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// A value passed to ssh as an argument: nothing ssh could take as an option,
/// no white space or control characters.
fn valid_ssh_word(v: &str) -> bool {
    !v.is_empty() && !v.starts_with('-') && !v.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// An absolute remote path without control characters or `..` components,
/// and not `/` however it is spelled (`//`, `/./`).
fn valid_remote_path(v: &str) -> bool {
    v.starts_with('/')
        && !v.chars().any(|c| c.is_control())
        && !v.split('/').any(|c| c == "..")
        && !normal(v).is_empty()
}

/// A path's components, without empty ones and `.`.
fn normal(v: &str) -> Vec<&str> {
    v.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect()
}

/// Whether one of two absolute paths is the other or holds it.
fn overlap(a: &str, b: &str) -> bool {
    let (a, b) = (normal(a), normal(b));
    let n = a.len().min(b.len());
    a[..n] == b[..n]
}

impl Inventory {
    /// Read and validate an inventory file.
    pub fn load(path: &Path) -> Result<Inventory, InventoryError> {
        let text = std::fs::read_to_string(path).map_err(|e| InventoryError {
            file: path.to_owned(),
            line: 0,
            column: 0,
            message: format!("cannot read the inventory: {e}"),
            hint: None,
        })?;
        Inventory::parse(path, &text)
    }

    /// Parse and validate inventory text; `path` names it in errors and
    /// anchors relative compose file paths.
    pub fn parse(path: &Path, text: &str) -> Result<Inventory, InventoryError> {
        let err = |line: u64, message: String, hint: Option<&str>| InventoryError {
            file: path.to_owned(),
            line,
            column: 0,
            message,
            hint: hint.map(str::to_owned),
        };
        let raw: RawInventory = serde_saphyr::from_str(text).map_err(|e| {
            let line = e.location().map(|l| l.line()).unwrap_or(0);
            let column = e.location().map(|l| l.column()).unwrap_or(0);
            let (message, hint) = explain_yaml(&strip_location(&first_line(&e.to_string())));
            InventoryError {
                file: path.to_owned(),
                line,
                column,
                message,
                hint,
            }
        })?;
        let base = path.parent().unwrap_or(Path::new("")).to_path_buf();
        let d = &raw.defaults;
        if let Some(c) = &d.compose {
            parse_compose(c).map_err(|m| err(c.referenced.line(), m, None))?;
        }
        for (key, p) in [("state_dir", &d.state_dir), ("remote_root", &d.remote_root)] {
            if let Some(p) = p
                && !valid_remote_path(&p.value)
            {
                return Err(err(
                    p.referenced.line(),
                    format!("`defaults.{key}`: `{}` is not an absolute path", p.value),
                    None,
                ));
            }
        }
        if raw.hosts.value.is_empty() {
            return Err(err(
                raw.hosts.referenced.line(),
                "`hosts` is empty: nothing to do".into(),
                None,
            ));
        }
        let default_policy = d
            .rollout
            .as_ref()
            .map_or(Policy::default(), |r| r.over(&Policy::default()));
        let all_groups: HashSet<&str> = raw
            .hosts
            .value
            .values()
            .flat_map(|h| h.value.groups.iter().map(|g| g.value.as_str()))
            .collect();
        for (sname, shared) in &raw.stacks {
            let sh = &shared.value;
            if sh.hosts.is_empty() && sh.groups.is_empty() {
                return Err(err(
                    shared.referenced.line(),
                    format!("stack `{sname}` runs on no host"),
                    Some("give it `hosts: [NAME, ...]` or `groups: [GROUP, ...]`"),
                ));
            }
            for h in &sh.hosts {
                if !raw.hosts.value.contains_key(&h.value) {
                    return Err(err(
                        h.referenced.line(),
                        format!("stack `{sname}`: host `{}` is not in `hosts`", h.value),
                        None,
                    ));
                }
            }
            for g in &sh.groups {
                if !all_groups.contains(g.value.as_str()) {
                    return Err(err(
                        g.referenced.line(),
                        format!("stack `{sname}`: no host is in group `{}`", g.value),
                        Some("hosts join groups with `groups: [NAME, ...]`"),
                    ));
                }
            }
        }
        let mut hosts = Vec::new();
        for (name, h) in &raw.hosts.value {
            let line = h.referenced.line();
            let h = &h.value;
            if !valid_host_name(name) {
                return Err(err(
                    line,
                    format!("host name `{name}` is not valid"),
                    Some("host names take letters, digits, `.`, `-` and `_`"),
                ));
            }
            let address = match &h.address {
                Some(a) if !valid_ssh_word(&a.value) => {
                    return Err(err(
                        a.referenced.line(),
                        format!("host `{name}`: address `{}` is not valid", a.value),
                        Some(
                            "an address is a host name or IP, without spaces, not starting with `-`",
                        ),
                    ));
                }
                Some(a) => a.value.clone(),
                None => name.clone(),
            };
            let user = h.user.as_ref().or(d.user.as_ref());
            if let Some(u) = user
                && (!valid_ssh_word(&u.value) || u.value.contains('@'))
            {
                return Err(err(
                    u.referenced.line(),
                    format!("host `{name}`: user `{}` is not valid", u.value),
                    None,
                ));
            }
            let mut ssh_options = BTreeMap::new();
            for (k, v) in d.ssh_options.iter().chain(h.ssh_options.iter()) {
                if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric()) {
                    return Err(err(
                        v.referenced.line(),
                        format!("host `{name}`: ssh option name `{k}` is not valid"),
                        Some("ssh options are written as in ssh_config, e.g. `ProxyJump: bastion`"),
                    ));
                }
                if ["host", "match", "include"].contains(&k.to_ascii_lowercase().as_str()) {
                    // they would change which lines apply to the host,
                    // the user's own config included
                    return Err(err(
                        v.referenced.line(),
                        format!("host `{name}`: `{k}` is not an ssh option but a config block"),
                        Some(
                            "put `Host`/`Match` blocks and `Include` in your ssh config; `ssh_options` takes options",
                        ),
                    ));
                }
                if v.value.chars().any(|c| c.is_control()) {
                    return Err(err(
                        v.referenced.line(),
                        format!("host `{name}`: ssh option `{k}` has a control character"),
                        None,
                    ));
                }
                ssh_options.insert(k.clone(), v.value.clone());
            }
            let state_dir = h.state_dir.as_ref().or(d.state_dir.as_ref());
            if let Some(s) = state_dir
                && !valid_remote_path(&s.value)
            {
                return Err(err(
                    s.referenced.line(),
                    format!(
                        "host `{name}`: state_dir `{}` is not an absolute path",
                        s.value
                    ),
                    None,
                ));
            }
            let remote_root = h.remote_root.as_ref().or(d.remote_root.as_ref());
            if let Some(s) = remote_root
                && !valid_remote_path(&s.value)
            {
                return Err(err(
                    s.referenced.line(),
                    format!(
                        "host `{name}`: remote_root `{}` is not an absolute path",
                        s.value
                    ),
                    None,
                ));
            }
            let compose = match h.compose.as_ref().or(d.compose.as_ref()) {
                Some(c) => parse_compose(c).map_err(|m| err(c.referenced.line(), m, None))?,
                None => ComposePref::Auto,
            };
            let hctx = HostCtx {
                name,
                remote_root: remote_root.map(|r| r.value.as_str()),
                build_period: h.build_period.or(d.build_period),
                up_timeout: h.up_timeout.or(d.up_timeout),
                build_timeout: h.build_timeout.or(d.build_timeout),
                settle: h.settle.or(d.settle),
                keep_generations: d.keep_generations,
                watch: d.watch,
            };
            let mut groups = Vec::new();
            for g in &h.groups {
                if !valid_host_name(&g.value) {
                    return Err(err(
                        g.referenced.line(),
                        format!("host `{name}`: group name `{}` is not valid", g.value),
                        Some("group names take letters, digits, `.`, `-` and `_`"),
                    ));
                }
                groups.push(g.value.clone());
            }
            let mut tags = Vec::new();
            for t in &h.tags {
                if !valid_host_name(&t.value) {
                    return Err(err(
                        t.referenced.line(),
                        format!("host `{name}`: tag `{}` is not valid", t.value),
                        Some("tags take letters, digits, `.`, `-` and `_`"),
                    ));
                }
                tags.push(t.value.clone());
            }
            let mut stacks = Vec::new();
            let mut lines = Vec::new(); // where each stack is named, for errors
            for s in &h.stacks {
                let s = &s.value;
                lines.push(s.name.referenced.line());
                let def = StackDef {
                    compose_file: &s.compose_file,
                    profiles: &s.profiles,
                    root: s.root.as_ref(),
                    remote_dir: s.remote_dir.as_ref(),
                    build_period: s.build_period,
                    up_timeout: s.up_timeout,
                    build_timeout: s.build_timeout,
                    settle: s.settle,
                    keep_generations: s.keep_generations,
                    watch: s.watch,
                    rollout: default_policy,
                    adopt: s.adopt,
                    dir_mode: s.dir_mode,
                    dir_group: s.dir_group.as_ref(),
                    zero_downtime: s.zero_downtime.clone(),
                    hooks: s.hooks.as_ref(),
                    probe: s.probe.as_ref(),
                };
                stacks.push(build_stack(&s.name, &def, &hctx, &base, &err)?);
            }
            for (sname, shared) in &raw.stacks {
                let sh = &shared.value;
                let placed = sh.hosts.iter().any(|x| x.value == *name)
                    || sh.groups.iter().any(|g| groups.contains(&g.value));
                if placed {
                    let def = StackDef {
                        compose_file: &sh.compose_file,
                        profiles: &sh.profiles,
                        root: sh.root.as_ref(),
                        remote_dir: sh.remote_dir.as_ref(),
                        build_period: sh.build_period,
                        up_timeout: sh.up_timeout,
                        build_timeout: sh.build_timeout,
                        settle: sh.settle,
                        keep_generations: sh.keep_generations,
                        watch: sh.watch,
                        rollout: sh
                            .rollout
                            .as_ref()
                            .map_or(default_policy, |r| r.over(&default_policy)),
                        adopt: sh.adopt,
                        dir_mode: sh.dir_mode,
                        dir_group: sh.dir_group.as_ref(),
                        zero_downtime: sh.zero_downtime.clone(),
                        hooks: sh.hooks.as_ref(),
                        probe: sh.probe.as_ref(),
                    };
                    let spanned_name = Spanned {
                        value: sname.clone(),
                        referenced: shared.referenced,
                        defined: shared.defined,
                    };
                    stacks.push(build_stack(&spanned_name, &def, &hctx, &base, &err)?);
                    lines.push(shared.referenced.line());
                }
            }
            if stacks.is_empty() {
                return Err(err(
                    line,
                    format!("host `{name}` has no stacks"),
                    Some(
                        "give it a `stacks:` list or a group a shared stack names, or remove the host",
                    ),
                ));
            }
            let mut seen = HashSet::new();
            for (st, l) in stacks.iter().zip(&lines) {
                if !seen.insert(st.name.as_str()) {
                    return Err(err(
                        *l,
                        format!("host `{name}`: stack `{}` is listed twice", st.name),
                        Some("stack names must be unique on a host"),
                    ));
                }
            }
            // one stack's directory inside another's (or the state
            // directory's) would have its files swapped away by the other
            let root_user = user.is_some_and(|u| u.value == "root");
            let dir_of = |st: &Stack| {
                st.remote_dir
                    .clone()
                    .or_else(|| root_user.then(|| format!("/srv/rbuild/{}", st.name)))
            };
            for (i, (a, la)) in stacks.iter().zip(&lines).enumerate() {
                for (b, lb) in stacks[i + 1..].iter().zip(&lines[i + 1..]) {
                    if let (Some(da), Some(db)) = (dir_of(a), dir_of(b))
                        && overlap(&da, &db)
                    {
                        return Err(err(
                            *la.max(lb),
                            format!(
                                "host `{name}`: the directories of stacks `{}` (`{da}`) and `{}` (`{db}`) overlap",
                                a.name, b.name
                            ),
                            Some(
                                "every stack needs a directory of its own, neither inside the other",
                            ),
                        ));
                    }
                }
                if let (Some(da), Some(sd)) = (dir_of(a), state_dir)
                    && overlap(&da, &sd.value)
                {
                    return Err(err(
                        *la,
                        format!(
                            "host `{name}`: the directory of stack `{}` (`{da}`) and the state directory (`{}`) overlap",
                            a.name, sd.value
                        ),
                        Some("keep the state directory apart from the stacks"),
                    ));
                }
            }
            hosts.push(Host {
                name: name.clone(),
                address,
                user: user.map(|u| u.value.clone()),
                port: h.port.or(d.port).map(|p| p.0),
                identity_file: h
                    .identity_file
                    .as_ref()
                    .or(d.identity_file.as_ref())
                    .map(|p| expand_home(&base, &p.value)),
                ssh_options,
                state_dir: state_dir.map(|s| s.value.clone()),
                compose,
                connect_timeout: h.connect_timeout.or(d.connect_timeout).map(|s| s.0),
                groups,
                tags,
                stacks,
            });
        }
        let notify = match &raw.notify {
            None => None,
            Some(n) => {
                let url = &n.value.url;
                if !crate::notify::valid_url(&url.value) {
                    return Err(err(
                        url.referenced.line(),
                        format!(
                            "notify: url `{}` is not an http:// or https:// URL",
                            crate::notify::shown_url(&url.value)
                        ),
                        Some("e.g. `url: https://hooks.example.com/rbuild`"),
                    ));
                }
                let on = match &n.value.on {
                    None => crate::notify::DEFAULT_ON.to_vec(),
                    Some(list) => {
                        let mut on = Vec::new();
                        for a in list {
                            let action = crate::report::ACTIONS
                                .into_iter()
                                .find(|x| x.as_str() == a.value)
                                .ok_or_else(|| {
                                    err(
                                        a.referenced.line(),
                                        format!("notify: `{}` is not an action", a.value),
                                        Some(
                                            "`on` lists actions of the summary: rebuilt, started, rolled_back, failed, skipped",
                                        ),
                                    )
                                })?;
                            on.push(action);
                        }
                        on
                    }
                };
                Some(crate::notify::Notify {
                    url: url.value.clone(),
                    on,
                })
            }
        };
        Ok(Inventory {
            path: path.to_owned(),
            hosts,
            notify,
        })
    }
}

/// What a host lends its stacks.
struct HostCtx<'a> {
    name: &'a str,
    remote_root: Option<&'a str>,
    build_period: Option<Period>,
    up_timeout: Option<UpTimeout>,
    build_timeout: Option<BuildTimeout>,
    settle: Option<Settle>,
    /// `defaults:`'s (hosts have none of their own).
    keep_generations: Option<KeepGenerations>,
    watch: Option<Watch>,
}

/// A stack's keys, from a host's list or a shared definition.
struct StackDef<'a> {
    compose_file: &'a Spanned<ComposeFiles>,
    profiles: &'a [Spanned<String>],
    root: Option<&'a Spanned<String>>,
    remote_dir: Option<&'a Spanned<String>>,
    build_period: Option<Period>,
    up_timeout: Option<UpTimeout>,
    build_timeout: Option<BuildTimeout>,
    settle: Option<Settle>,
    keep_generations: Option<KeepGenerations>,
    watch: Option<Watch>,
    rollout: Policy,
    adopt: bool,
    dir_mode: Option<DirMode>,
    dir_group: Option<&'a DirGroup>,
    zero_downtime: Option<Spanned<bool>>,
    hooks: Option<&'a Spanned<RawHooks>>,
    probe: Option<&'a Spanned<RawProbe>>,
}

fn build_stack(
    name: &Spanned<String>,
    s: &StackDef,
    h: &HostCtx,
    base: &Path,
    err: &dyn Fn(u64, String, Option<&str>) -> InventoryError,
) -> Result<Stack, InventoryError> {
    let (host, sname) = (h.name, &name.value);
    if !valid_stack_name(sname) {
        return Err(err(
            name.referenced.line(),
            format!("host `{host}`: stack name `{sname}` is not valid"),
            Some(
                "a stack name becomes a compose project name, a directory and a file name: \
                 use lowercase letters, digits, `-` and `_`, starting with a letter or digit",
            ),
        ));
    }
    let line = s.compose_file.referenced.line();
    let files = &s.compose_file.value.0;
    let compose_file = base.join(&files[0]);
    let project_dir = compose_file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let dir = match s.root {
        None => project_dir.clone(),
        Some(r) => {
            let root = base.join(&r.value);
            if !root.is_dir() {
                return Err(err(
                    r.referenced.line(),
                    format!(
                        "host `{host}`, stack `{sname}`: root `{}` is not a directory",
                        root.display()
                    ),
                    Some("`root` is relative to the inventory file's directory"),
                ));
            }
            root
        }
    };
    let mut compose_files = Vec::new();
    for f in files {
        let path = base.join(f);
        if !path.is_file() {
            return Err(err(
                line,
                format!(
                    "host `{host}`, stack `{sname}`: compose file `{}` does not exist",
                    path.display()
                ),
                Some("`compose_file` is relative to the inventory file's directory"),
            ));
        }
        // as the host will have it: relative to the stack's root
        let rel = match path.strip_prefix(&dir) {
            Ok(r) if !r.components().any(|c| c == std::path::Component::ParentDir) => r,
            _ if s.root.is_some() => {
                return Err(err(
                    line,
                    format!(
                        "host `{host}`, stack `{sname}`: compose file `{f}` is not inside the stack's root `{}`",
                        dir.display()
                    ),
                    Some("`root:` is the directory rbuild ships: it must hold every compose file"),
                ));
            }
            _ => {
                return Err(err(
                    line,
                    format!(
                        "host `{host}`, stack `{sname}`: compose file `{f}` is not in the stack's directory `{}`",
                        dir.display()
                    ),
                    Some(
                        "the stack is the directory of its first compose file: keep the others in it, or set `root:` to a directory that holds them all",
                    ),
                ));
            }
        };
        let rel = rel.to_string_lossy().into_owned();
        if rel.chars().any(|c| c.is_control()) {
            return Err(err(
                line,
                format!(
                    "host `{host}`, stack `{sname}`: compose file `{f}` has a control character in its name"
                ),
                None,
            ));
        }
        compose_files.push(rel);
    }
    if let [only] = compose_files.as_slice()
        && let Some(o) = override_of(&project_dir, file_name(only))
    {
        compose_files.push(sibling(only, &o));
    }
    outside_root(
        &dir,
        &compose_files,
        s.root.is_some(),
        "`root:` on the stack (relative to the inventory file)",
    )
    .map_err(|e| e.context(&format!("host `{host}`, stack `{sname}`: ")))?;
    let mut profiles = Vec::new();
    for p in s.profiles {
        if p.value.is_empty()
            || !p
                .value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        {
            return Err(err(
                p.referenced.line(),
                format!(
                    "host `{host}`, stack `{sname}`: profile `{}` is not valid",
                    p.value
                ),
                Some("profile names take letters, digits, `_`, `.` and `-`"),
            ));
        }
        profiles.push(p.value.clone());
    }
    // the inventory's name is the project's; a `name:` of the compose file
    // that says otherwise is not silently overridden
    if let Some(cn) = compose_name(&compose_file)
        && cn != *sname
    {
        tracing::warn!(
            "host `{host}`, stack `{sname}`: its compose file says `name: {cn}`; rbuild runs it as project `{sname}`, the inventory's name"
        );
    }
    let remote_dir = match (s.remote_dir, h.remote_root) {
        (Some(r), _) => {
            if !valid_remote_path(&r.value) {
                return Err(err(
                    r.referenced.line(),
                    format!(
                        "host `{host}`, stack `{sname}`: remote_dir `{}` is not an absolute path",
                        r.value
                    ),
                    None,
                ));
            }
            Some(r.value.trim_end_matches('/').to_owned())
        }
        (None, Some(root)) => Some(format!("{}/{sname}", root.trim_end_matches('/'))),
        (None, None) => None,
    };
    let data_dirs = writable_binds(&dir, &compose_files);
    let one_shots = crate::compose::one_shots(&dir, &compose_files);
    let mounts = crate::compose::mounting(&dir, &compose_files);
    let zero_downtime = match &s.zero_downtime {
        Some(z) if z.value => beside_services(host, sname, &dir, &compose_files)
            .map_err(|(m, hint)| err(z.referenced.line(), m, Some(&hint)))?,
        _ => vec![],
    };
    let mut hooks = crate::remote::call::Hooks::default();
    if let Some(hs) = s.hooks {
        for (which, h, slot) in [
            ("before", &hs.value.before, &mut hooks.before),
            ("after", &hs.value.after, &mut hooks.after),
        ] {
            if let Some(h) = h {
                if h.value.trim().is_empty() || h.value.contains('\0') {
                    return Err(err(
                        h.referenced.line(),
                        format!("host `{host}`, stack `{sname}`: the {which} hook is empty"),
                        Some(
                            "a hook is a shell command line, e.g. `before: docker compose run --rm app migrate`",
                        ),
                    ));
                }
                *slot = Some(h.value.clone());
            }
        }
    }
    if let Some(p) = s.probe {
        let line = p.referenced.line();
        let bad = |m: &str| {
            err(
                line,
                format!("host `{host}`, stack `{sname}`: {m}"),
                Some(
                    "e.g. `probe: {url: \"http://127.0.0.1:8000/health\", expect: ok}` or `probe: {command: ./ready.sh}`",
                ),
            )
        };
        let text = |v: &Spanned<String>| !v.value.trim().is_empty() && !v.value.contains('\0');
        hooks.probe = Some(match (&p.value.url, &p.value.command) {
            (Some(u), None) if text(u) => {
                let mut words = vec!["probe_url".to_owned(), u.value.clone()];
                if let Some(e) = &p.value.expect {
                    words.push(e.value.clone());
                }
                shlex::try_join(words.iter().map(String::as_str))
                    .map_err(|_| bad("the probe's url or expect cannot be quoted"))?
            }
            (None, Some(c)) if text(c) && p.value.expect.is_none() => c.value.clone(),
            (None, Some(_)) if p.value.expect.is_some() => {
                return Err(bad(
                    "`expect` goes with `url`: a command's probe is its exit status",
                ));
            }
            (Some(_), Some(_)) => return Err(bad("the probe is a `url` or a `command`, not both")),
            _ => return Err(bad("the probe needs a `url` or a `command`")),
        });
    }
    Ok(Stack {
        name: sname.clone(),
        compose_file,
        root: dir,
        compose_files,
        profiles,
        data_dirs,
        remote_dir,
        build_period: s.build_period.or(h.build_period).map(|s| s.0),
        up_timeout: s.up_timeout.or(h.up_timeout).map(|s| s.0),
        build_timeout: s.build_timeout.or(h.build_timeout).map(|s| s.0),
        settle: s.settle.or(h.settle).map(|s| s.0),
        keep_generations: s
            .keep_generations
            .or(h.keep_generations)
            .map_or(DEFAULT_KEEP_GENERATIONS, |k| k.0),
        watch: s.watch.or(h.watch).map_or(DEFAULT_WATCH, |w| w.0),
        rollout: s.rollout,
        adopt: s.adopt,
        dir_mode: s.dir_mode.map(|m| m.0),
        dir_group: s.dir_group.map(|g| g.0.clone()),
        zero_downtime,
        hooks,
        one_shots,
        mounts,
        env: vec![],
    })
}

/// `zero_downtime: true` on a stack: the services that can be started
/// beside their old containers. A stack with none is refused (the key
/// would do nothing); the others get the normal `up`, with a warning.
fn beside_services(
    host: &str,
    sname: &str,
    dir: &Path,
    compose_files: &[String],
) -> Result<Vec<String>, (String, String)> {
    let (safe, not) = crate::compose::beside(dir, compose_files);
    let why = || {
        not.iter()
            .map(|(svc, w)| format!("`{svc}` {}", w.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if safe.is_empty() {
        let found = if !not.is_empty() {
            format!(": {}", why())
        } else {
            " in its compose files".to_owned()
        };
        return Err((
            format!(
                "host `{host}`, stack `{sname}`: `zero_downtime: true`, but no service can run a second container beside its old one{found}"
            ),
            "a service replaced beside its old container must not publish a fixed host port (`\"80\"`, not `\"8080:80\"`: put a reverse proxy in front) nor set `container_name`; or remove `zero_downtime`".to_owned(),
        ));
    }
    if !not.is_empty() {
        tracing::warn!(
            "host `{host}`, stack `{sname}`: zero_downtime replaces {} beside the old containers; these get the normal `up` (stopped, then started): {}",
            safe.iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", "),
            why()
        );
    }
    Ok(safe)
}

fn parse_compose(c: &Spanned<String>) -> Result<ComposePref, String> {
    match c.value.as_str() {
        "auto" => Ok(ComposePref::Auto),
        "v1" => Ok(ComposePref::V1),
        "v2" => Ok(ComposePref::V2),
        other => Err(format!(
            "`compose: {other}` is not one of `auto`, `v1`, `v2`"
        )),
    }
}

/// `~/x` is under the home directory; a relative path is relative to the
/// inventory's directory.
fn expand_home(base: &Path, p: &str) -> PathBuf {
    if let Some(rest) = p.strip_prefix("~/")
        && let Some(home) = std::env::var_os("HOME")
    {
        return PathBuf::from(home).join(rest);
    }
    base.join(p)
}

/// serde-saphyr says `error: line 3 column 5: ...`; the line is ours to print.
fn strip_location(msg: &str) -> String {
    let m = msg.strip_prefix("error: ").unwrap_or(msg);
    if let Some(rest) = m.strip_prefix("line ")
        && let Some((_, after)) = rest.split_once(": ")
        && rest.split(':').next().is_some_and(|p| p.contains("column"))
    {
        return after.to_owned();
    }
    m.to_owned()
}

/// The YAML parser's message in the words of an inventory, with a hint
/// where the fix is likely: a key named twice, a block indented where YAML
/// expects none, a key misspelt (the closest real key).
fn explain_yaml(msg: &str) -> (String, Option<String>) {
    if let Some(rest) = msg.strip_prefix("duplicate mapping key: ") {
        let key = rest
            .split(", set DuplicateKeyPolicy")
            .next()
            .unwrap_or(rest);
        return (
            format!("`{key}` is given twice in the same block"),
            Some(
                "each host, stack and key may appear once in its block: remove or rename one"
                    .into(),
            ),
        );
    }
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        let (key, rest) = rest.split_once('`').unwrap_or((rest, ""));
        let known: Vec<&str> = rest
            .split_once("expected one of ")
            .map(|(_, l)| l.split(", ").map(|k| k.trim_matches('`')).collect())
            .or_else(|| {
                rest.split_once("expected `")
                    .map(|(_, k)| vec![k.trim_end_matches('`')])
            })
            .unwrap_or_default();
        let closest = known
            .iter()
            .map(|k| (strsim::jaro_winkler(key, k), *k))
            .filter(|(score, _)| *score > 0.8)
            .max_by(|a, b| a.0.total_cmp(&b.0));
        let hint = match closest {
            Some((_, k)) => format!("did you mean `{k}`?"),
            None if !known.is_empty() => format!(
                "the keys here are {}; see inventory.example.yaml for every key",
                known.join(", ")
            ),
            None => "see inventory.example.yaml for every key the inventory takes".into(),
        };
        return (format!("unknown key `{key}`"), Some(hint));
    }
    let indentation = [
        "expected mapping start",
        "did not find expected key",
        "mapping values are not allowed",
        "block mapping",
        "bad indentation",
    ];
    if indentation.iter().any(|p| msg.contains(p)) {
        return (
            format!("the indentation does not fit the block it is in ({msg})"),
            Some(
                "indent every key of a block by the same number of spaces: a host's keys under its name, its stacks' items under `stacks:`"
                    .into(),
            ),
        );
    }
    (msg.to_owned(), None)
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn dir_with_compose() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("web")).unwrap();
        std::fs::write(d.path().join("web/compose.yml"), "services: {}\n").unwrap();
        d
    }

    fn parse(d: &tempfile::TempDir, text: &str) -> Result<Inventory, InventoryError> {
        Inventory::parse(&d.path().join("inventory.yaml"), text)
    }

    #[test]
    fn minimal_inventory_inherits_defaults() {
        let d = dir_with_compose();
        let inv = parse(
            &d,
            "defaults:\n  user: deploy\n  build_period: 1h\n  remote_root: /opt/stacks\nhosts:\n  web1:\n    stacks:\n      - name: web\n        compose_file: web/compose.yml\n        up_timeout: 90\n",
        )
        .unwrap();
        let h = &inv.hosts[0];
        assert_eq!(h.name, "web1");
        assert_eq!(h.address, "web1");
        assert_eq!(h.user.as_deref(), Some("deploy"));
        assert_eq!(h.stacks[0].build_period, Some(3600));
        assert_eq!(h.stacks[0].up_timeout, Some(90));
        assert_eq!(h.stacks[0].remote_dir.as_deref(), Some("/opt/stacks/web"));
        assert!(h.stacks[0].compose_file.ends_with("web/compose.yml"));
    }

    #[test]
    fn keep_generations_per_stack_over_the_defaults() {
        let d = dir_with_compose();
        let text = |defaults: &str, stack: &str| {
            format!(
                "{defaults}hosts:\n  web1:\n    stacks:\n      - name: web\n        compose_file: web/compose.yml\n{stack}stacks:\n  shared:\n    compose_file: web/compose.yml\n    hosts: [web1]\n    keep_generations: 7\n"
            )
        };
        let keep = |defaults: &str, stack: &str| {
            let inv = parse(&d, &text(defaults, stack)).unwrap();
            let s = &inv.hosts[0].stacks;
            (s[0].keep_generations, s[1].keep_generations)
        };
        assert_eq!(keep("", ""), (DEFAULT_KEEP_GENERATIONS, 7));
        assert_eq!(keep("defaults:\n  keep_generations: 4\n", ""), (4, 7));
        assert_eq!(
            keep(
                "defaults:\n  keep_generations: 4\n",
                "        keep_generations: 1\n"
            ),
            (1, 7)
        );
        assert_eq!(keep("", "        keep_generations: \"100\"\n"), (100, 7));
        for bad in ["0", "101", "-1", "two", "2.5", "99999999999"] {
            let e =
                parse(&d, &text("", &format!("        keep_generations: {bad}\n"))).unwrap_err();
            assert_eq!(e.line, 6, "{bad}: {e}");
            assert!(
                e.message.contains("keep_generations") && e.message.contains("1 to 100"),
                "{bad}: {e}"
            );
        }
        let e = parse(&d, &text("defaults:\n  keep_generations: 0\n", "")).unwrap_err();
        assert_eq!(e.line, 2, "{e}");
    }

    #[test]
    fn ssh_config_blocks_are_not_ssh_options() {
        let d = dir_with_compose();
        for key in ["Match", "Host", "include"] {
            let e = parse(
                &d,
                &format!("hosts:\n  web1:\n    ssh_options:\n      {key}: all\n    stacks:\n      - name: web\n        compose_file: web/compose.yml\n"),
            )
            .unwrap_err();
            assert_eq!(e.line, 4, "{e}");
            assert!(e.message.contains("config block"), "{e}");
        }
    }

    #[test]
    fn hosts_keep_the_order_of_the_file() {
        let d = dir_with_compose();
        let host = |n: &str| {
            format!(
                "  {n}:\n    stacks:\n      - name: web\n        compose_file: web/compose.yml\n"
            )
        };
        let text = format!(
            "hosts:\n{}{}{}{}",
            host("web10"),
            host("web2"),
            host("db"),
            host("web1")
        );
        let inv = parse(&d, &text).unwrap();
        let names: Vec<&str> = inv.hosts.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["web10", "web2", "db", "web1"]);
        // a host listed twice is refused, not merged
        let e = parse(&d, &format!("{text}{}", host("db"))).unwrap_err();
        assert!(e.to_string().contains("`db` is given twice"), "{e}");
    }

    #[test]
    fn unknown_key_names_line_and_key() {
        let d = dir_with_compose();
        let e = parse(
            &d,
            "hosts:\n  web1:\n    adress: 10.0.0.1\n    stacks:\n      - name: web\n        compose_file: web/compose.yml\n",
        )
        .unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        assert!(e.message.contains("adress"), "{e}");
        assert!(e.to_string().contains("inventory.yaml:3:"), "{e}");
        assert!(e.hint.is_some());
    }

    #[test]
    fn missing_compose_file_names_line() {
        let d = dir_with_compose();
        let e = parse(
            &d,
            "hosts:\n  web1:\n    stacks:\n      - name: web\n        compose_file: nope/compose.yml\n",
        )
        .unwrap_err();
        assert_eq!(e.line, 5, "{e}");
        assert!(e.message.contains("does not exist"), "{e}");
    }

    #[test]
    fn duplicate_stack_on_a_host() {
        let d = dir_with_compose();
        let e = parse(
            &d,
            "hosts:\n  web1:\n    stacks:\n      - name: web\n        compose_file: web/compose.yml\n      - name: web\n        compose_file: web/compose.yml\n",
        )
        .unwrap_err();
        assert_eq!(e.line, 6, "{e}");
        assert!(e.message.contains("listed twice"), "{e}");
    }

    #[test]
    fn stack_names_are_validated() {
        for bad in [
            "Web",
            "-web",
            "web;rm -rf /",
            "we b",
            "",
            "web$(id)",
            "../x",
        ] {
            assert!(!valid_stack_name(bad), "{bad:?}");
        }
        for good in ["web", "web-1", "a_b", "0day"] {
            assert!(valid_stack_name(good), "{good:?}");
        }
        let d = dir_with_compose();
        let e = parse(
            &d,
            "hosts:\n  web1:\n    stacks:\n      - name: \"x; touch /tmp/pwned\"\n        compose_file: web/compose.yml\n",
        )
        .unwrap_err();
        assert_eq!(e.line, 4);
    }

    #[test]
    fn option_injection_in_address_or_user_is_refused() {
        let d = dir_with_compose();
        for (key, v) in [
            ("address", "-oProxyCommand=touch /tmp/x"),
            ("user", "-oProxyCommand=x"),
            ("address", "a b"),
        ] {
            let e = parse(
                &d,
                &format!(
                    "hosts:\n  web1:\n    {key}: \"{v}\"\n    stacks:\n      - name: web\n        compose_file: web/compose.yml\n"
                ),
            )
            .unwrap_err();
            assert_eq!(e.line, 3, "{key}={v}: {e}");
        }
        assert!(!valid_host_name("-x"));
    }

    #[test]
    fn remote_paths_must_be_absolute() {
        let d = dir_with_compose();
        let e = parse(
            &d,
            "hosts:\n  web1:\n    state_dir: relative/dir\n    stacks:\n      - name: web\n        compose_file: web/compose.yml\n",
        )
        .unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        assert!(!valid_remote_path("/srv/../etc"));
    }

    #[test]
    fn durations_take_seconds_or_human_units() {
        let d = dir_with_compose();
        let inv = parse(
            &d,
            "defaults:\n  build_period: 2d\nhosts:\n  a:\n    build_period: 600\n    stacks:\n      - name: web\n        compose_file: web/compose.yml\n  b:\n    stacks:\n      - name: web\n        compose_file: web/compose.yml\n",
        )
        .unwrap();
        assert_eq!(inv.hosts[0].stacks[0].build_period, Some(600));
        assert_eq!(inv.hosts[1].stacks[0].build_period, Some(2 * 86400));
        let e = parse(
            &d,
            "defaults:\n  build_period: soon\nhosts:\n  a:\n    stacks:\n      - name: web\n        compose_file: web/compose.yml\n",
        )
        .unwrap_err();
        assert_eq!(e.line, 2, "{e}");
    }

    #[test]
    fn the_example_inventory_is_valid() {
        let d = tempfile::tempdir().unwrap();
        for s in ["blog", "shop", "status"] {
            std::fs::create_dir_all(d.path().join("stacks").join(s)).unwrap();
            std::fs::write(
                d.path().join(format!("stacks/{s}/compose.yml")),
                "services: {}\n",
            )
            .unwrap();
        }
        std::fs::write(
            d.path().join("stacks/shop/compose.prod.yml"),
            "services: {}\n",
        )
        .unwrap();
        let text = include_str!("../../inventory.example.yaml");
        let inv = parse(&d, text).unwrap();
        assert_eq!(inv.hosts.len(), 2);
        let web2 = &inv.hosts[1];
        assert_eq!(web2.user.as_deref(), Some("admin"));
        assert_eq!(web2.compose, ComposePref::V1);
        assert_eq!(web2.ssh_options["ProxyJump"], "bastion.example.com");
        assert_eq!(web2.ssh_options["ServerAliveCountMax"], "3");
        assert_eq!(inv.hosts[0].stacks[0].build_period, Some(12 * 3600));
        assert!(inv.hosts[0].stacks[0].adopt);
        assert_eq!(inv.hosts[0].stacks[1].build_period, Some(86400));
        assert_eq!(inv.hosts[0].stacks[1].settle, Some(10));
        assert_eq!(inv.hosts[0].stacks[1].build_timeout, Some(1800));
        // the shared stack, on both hosts of its group, canary first
        for h in &inv.hosts {
            let st = h.stacks.iter().find(|s| s.name == "status").unwrap();
            assert!(st.rollout.canary, "{}", h.name);
            assert_eq!(st.rollout.serial, Some(Limit::Percent(25)));
            assert_eq!(st.rollout.max_failures, Some(Limit::Count(1)));
        }
    }

    #[test]
    fn shared_stacks_land_on_hosts_by_group_or_name() {
        let d = dir_with_compose();
        let inv = parse(
            &d,
            "defaults:\n  rollout:\n    max_failures: 1\nstacks:\n  web:\n    compose_file: web/compose.yml\n    groups: [front]\n    hosts: [c]\n    rollout:\n      serial: 25%\n      canary: true\nhosts:\n  a:\n    groups: [front]\n  b:\n    stacks:\n      - name: other\n        compose_file: web/compose.yml\n  c: {}\n",
        )
        .unwrap();
        let names = |i: usize| -> Vec<&str> {
            inv.hosts[i]
                .stacks
                .iter()
                .map(|s| s.name.as_str())
                .collect()
        };
        assert_eq!(names(0), ["web"]);
        assert_eq!(names(1), ["other"]);
        assert_eq!(names(2), ["web"]);
        assert_eq!(inv.hosts[0].groups, ["front"]);
        let web = &inv.hosts[0].stacks[0].rollout;
        assert_eq!(web.serial, Some(Limit::Percent(25)));
        assert!(web.canary);
        assert_eq!(web.max_failures, Some(Limit::Count(1)), "inherits defaults");
        assert_eq!(
            inv.hosts[1].stacks[0].rollout.max_failures,
            Some(Limit::Count(1))
        );
        assert!(!inv.hosts[1].stacks[0].rollout.canary);
    }

    #[test]
    fn shared_stack_errors() {
        let d = dir_with_compose();
        let e = parse(
            &d,
            "stacks:\n  web:\n    compose_file: web/compose.yml\n    groups: [frnt]\nhosts:\n  a:\n    groups: [front]\n",
        )
        .unwrap_err();
        assert_eq!(e.line, 4, "{e}");
        assert!(e.message.contains("frnt"), "{e}");
        let e = parse(
            &d,
            "stacks:\n  web:\n    compose_file: web/compose.yml\n    hosts: [a]\nhosts:\n  a:\n    stacks:\n      - name: web\n        compose_file: web/compose.yml\n",
        )
        .unwrap_err();
        assert!(e.message.contains("listed twice"), "{e}");
        let e = parse(
            &d,
            "defaults:\n  rollout:\n    serial: lots\nhosts:\n  a:\n    stacks:\n      - name: web\n        compose_file: web/compose.yml\n",
        )
        .unwrap_err();
        assert_eq!(e.line, 3, "{e}");
    }

    #[test]
    fn zero_downtime_names_the_services_that_can_run_beside_and_refuses_none() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("web")).unwrap();
        std::fs::write(
            d.path().join("web/compose.yml"),
            "services:\n  app:\n    build: .\n    ports:\n      - \"80\"\n  proxy:\n    image: p\n    ports:\n      - \"443:443\"\n",
        )
        .unwrap();
        let text = |zd: &str| {
            format!(
                "stacks:\n  shared:\n    compose_file: web/compose.yml\n    hosts: [h]\n    zero_downtime: {zd}\nhosts:\n  h:\n    stacks:\n      - name: web\n        compose_file: web/compose.yml\n        zero_downtime: {zd}\n"
            )
        };
        let inv = parse(&d, &text("true")).unwrap();
        for s in &inv.hosts[0].stacks {
            assert_eq!(s.zero_downtime, ["app"], "{}", s.name);
        }
        let inv = parse(&d, &text("false")).unwrap();
        assert!(
            inv.hosts[0]
                .stacks
                .iter()
                .all(|s| s.zero_downtime.is_empty())
        );

        std::fs::write(
            d.path().join("web/compose.yml"),
            "services:\n  app:\n    build: .\n    ports:\n      - \"8080:80\"\n",
        )
        .unwrap();
        let e = parse(&d, &text("true")).unwrap_err();
        assert_eq!(e.line, 11, "{e}");
        assert!(
            e.message
                .contains("no service can run a second container beside its old one: `app` publishes a fixed host port"),
            "{e}"
        );
        assert!(e.hint.as_deref().unwrap().contains("container_name"), "{e}");
    }

    #[test]
    fn a_root_above_the_compose_file_is_the_stack() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("proj/deploy")).unwrap();
        std::fs::write(
            d.path().join("proj/deploy/compose.yml"),
            "services:\n  app:\n    build: ..\n    volumes:\n      - ../data:/data\n      - ./logs:/logs\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("proj/deploy/compose.override.yml"),
            "services: {}\n",
        )
        .unwrap();
        let inv = parse(
            &d,
            "hosts:\n  h:\n    stacks:\n      - name: web\n        compose_file: proj/deploy/compose.yml\n        root: proj\n",
        )
        .unwrap();
        let s = &inv.hosts[0].stacks[0];
        assert_eq!(s.dir(), d.path().join("proj"));
        assert_eq!(
            s.compose_files,
            ["deploy/compose.yml", "deploy/compose.override.yml"]
        );
        assert_eq!(s.data_dirs, ["data", "deploy/logs"]);

        let e = parse(
            &d,
            "hosts:\n  h:\n    stacks:\n      - name: web\n        compose_file: proj/deploy/compose.yml\n        root: proj/deploy/nope\n",
        )
        .unwrap_err();
        assert_eq!(e.line, 6, "{e}");
        assert!(e.message.contains("is not a directory"), "{e}");
        std::fs::create_dir_all(d.path().join("other")).unwrap();
        let e = parse(
            &d,
            "hosts:\n  h:\n    stacks:\n      - name: web\n        compose_file: proj/deploy/compose.yml\n        root: other\n",
        )
        .unwrap_err();
        assert!(e.message.contains("is not inside the stack's root"), "{e}");
    }

    #[test]
    fn dir_mode_quoted_or_not_is_octal() {
        let d = dir_with_compose();
        for (v, want) in [("\"0750\"", 0o750), ("0755", 0o755), ("\"0o700\"", 0o700)] {
            let inv = parse(
                &d,
                &format!("hosts:\n  h:\n    stacks:\n      - name: web\n        compose_file: web/compose.yml\n        dir_mode: {v}\n        dir_group: 1000\n"),
            )
            .unwrap();
            let s = &inv.hosts[0].stacks[0];
            assert_eq!(
                (s.dir_mode, s.dir_group.as_deref()),
                (Some(want), Some("1000")),
                "{v}"
            );
        }
        // YAML 1.2's 0o750 is the number 488: refused, not taken as 0488
        assert!(parse(&d, "hosts:\n  h:\n    stacks:\n      - name: web\n        compose_file: web/compose.yml\n        dir_mode: 0o750\n").is_err());
    }

    #[test]
    fn several_compose_files_the_override_and_profiles() {
        let d = dir_with_compose();
        std::fs::write(d.path().join("web/compose.prod.yml"), "services: {}\n").unwrap();
        let inv = parse(
            &d,
            "hosts:\n  a:\n    stacks:\n      - name: web\n        compose_file: [web/compose.yml, web/compose.prod.yml]\n        profiles: [debug, jobs]\n",
        )
        .unwrap();
        let s = &inv.hosts[0].stacks[0];
        assert_eq!(s.compose_files, ["compose.yml", "compose.prod.yml"]);
        assert_eq!(s.profiles, ["debug", "jobs"]);
        // one standard file: its override comes along, as compose does it
        std::fs::write(d.path().join("web/compose.override.yaml"), "services: {}\n").unwrap();
        let inv = parse(
            &d,
            "hosts:\n  a:\n    stacks:\n      - name: web\n        compose_file: web/compose.yml\n",
        )
        .unwrap();
        assert_eq!(
            inv.hosts[0].stacks[0].compose_files,
            ["compose.yml", "compose.override.yaml"]
        );
        // a file outside the stack's directory, a missing one, a bad profile
        std::fs::write(d.path().join("base.yml"), "services: {}\n").unwrap();
        for (files, want) in [
            (
                "[web/compose.yml, base.yml]",
                "is not in the stack's directory",
            ),
            ("[web/compose.yml, web/nope.yml]", "does not exist"),
        ] {
            let e = parse(
                &d,
                &format!(
                    "hosts:\n  a:\n    stacks:\n      - name: web\n        compose_file: {files}\n"
                ),
            )
            .unwrap_err();
            assert_eq!(e.line, 5, "{e}");
            assert!(e.message.contains(want), "{e}");
        }
        let e = parse(
            &d,
            "hosts:\n  a:\n    stacks:\n      - name: web\n        compose_file: web/compose.yml\n        profiles: [\"a b\"]\n",
        )
        .unwrap_err();
        assert_eq!(e.line, 6, "{e}");
    }

    #[test]
    fn the_name_a_compose_file_sets() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("compose.yml");
        std::fs::write(&f, "name: shop\nservices:\n  app:\n    image: x\n").unwrap();
        assert_eq!(compose_name(&f).as_deref(), Some("shop"));
        std::fs::write(&f, "services: {}\n").unwrap();
        assert_eq!(compose_name(&f), None);
        assert_eq!(override_of(d.path(), "compose.yml"), None);
        std::fs::write(d.path().join("compose.override.yml"), "").unwrap();
        assert_eq!(
            override_of(d.path(), "compose.yml").as_deref(),
            Some("compose.override.yml")
        );
        assert_eq!(override_of(d.path(), "prod.yml"), None);
    }

    #[test]
    fn syntax_error_has_a_line() {
        let d = dir_with_compose();
        let e = parse(&d, "hosts:\n  web1:\n    stacks: [\n").unwrap_err();
        assert!(e.line > 0, "{e}");
    }
}

#[cfg(test)]
mod fuzz {
    //! The parser on arbitrary text and on inventories made of real keys
    //! with odd values: it never panics, and every error names its line.

    use proptest::prelude::*;

    use super::tests::dir_with_compose as dir;
    use super::*;

    /// Every error of a document with something in it has a line.
    fn check(d: &tempfile::TempDir, text: &str) {
        if let Err(e) = Inventory::parse(&d.path().join("inventory.yaml"), text) {
            let shown = e.to_string();
            assert!(!e.message.is_empty(), "{text:?}");
            if !text.trim().is_empty() {
                assert!(e.line > 0, "no line for {shown:?} in\n{text}");
            }
        }
    }

    const KEYS: &[&str] = &[
        "address",
        "user",
        "port",
        "identity_file",
        "ssh_options",
        "state_dir",
        "remote_root",
        "compose",
        "build_period",
        "up_timeout",
        "build_timeout",
        "connect_timeout",
        "groups",
        "tags",
        "stacks",
        "adopt",
        "zero_downtime",
        "rollout",
        "adress",
        "remote_dir",
        "hosts",
        "defaults",
        "name",
        "compose_file",
        "serial",
        "canary",
        "max_failures",
    ];

    const VALUES: &[&str] = &[
        "",
        "x",
        "-oProxyCommand=id",
        "/",
        "//",
        "/./",
        "/srv/../etc",
        "relative",
        "0",
        "1",
        "22",
        "22x",
        "65536",
        "-1",
        "18446744073709551615",
        "99999999999999999999",
        "1d",
        "sixty",
        "25%",
        "200%",
        "true",
        "no",
        "null",
        "~",
        "[]",
        "{}",
        "[a, b]",
        "{a: 1}",
        "\"a\\nb\"",
        "web/compose.yml",
        "'x; touch /tmp/pwned'",
        "\"\\t\"",
        "!!binary aGk=",
        "&a x",
        "*a",
        "|\n  block",
        "web",
        "v1",
        "auto",
    ];

    fn value() -> impl Strategy<Value = String> {
        prop::sample::select(VALUES).prop_map(str::to_owned)
    }

    fn key() -> impl Strategy<Value = String> {
        prop::sample::select(KEYS).prop_map(str::to_owned)
    }

    /// A host entry: a few `key: value` lines and maybe a stack.
    fn host() -> impl Strategy<Value = String> {
        (
            "[a-z][a-z0-9.-]{0,8}",
            prop::collection::vec((key(), value()), 0..4),
            any::<bool>(),
            prop::collection::vec((key(), value()), 0..3),
        )
            .prop_map(|(name, keys, stack, skeys)| {
                let mut t = format!("  {name}:\n");
                for (k, v) in keys {
                    t.push_str(&format!("    {k}: {v}\n"));
                }
                if stack {
                    t.push_str(
                        "    stacks:\n      - name: web\n        compose_file: web/compose.yml\n",
                    );
                    for (k, v) in skeys {
                        t.push_str(&format!("        {k}: {v}\n"));
                    }
                }
                t
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
            let d = dir();
            let _ = Inventory::parse(&d.path().join("inventory.yaml"), &text);
        }

        #[test]
        fn inventories_of_real_keys_and_odd_values_name_their_line(
            defaults in prop::collection::vec((key(), value()), 0..3),
            hosts in prop::collection::vec(host(), 0..3),
            indent_slip in any::<bool>(),
        ) {
            let d = dir();
            let mut text = String::new();
            if !defaults.is_empty() {
                text.push_str("defaults:\n");
                for (k, v) in &defaults {
                    text.push_str(&format!("  {k}: {v}\n"));
                }
            }
            text.push_str("hosts:\n");
            for h in &hosts {
                text.push_str(h);
            }
            if indent_slip {
                // a mis-indented line somewhere
                text = text.replacen("\n    ", "\n   ", 1);
            }
            check(&d, &text);
        }
    }
}

/// `inventory.example.yaml` says it shows every key: each key each block
/// of the inventory takes (as the parser lists them for an unknown one) is
/// in it, set or commented out.
#[cfg(test)]
mod example {
    use super::*;

    /// The keys the block reached by `text` (with `zzz_unknown` in it)
    /// takes, from the parser's hint.
    fn keys_of(text: &str) -> Vec<String> {
        let d = tempfile::tempdir().unwrap();
        let e = Inventory::parse(&d.path().join("inventory.yaml"), text).unwrap_err();
        let hint = e.hint.clone().unwrap_or_default();
        let list = hint
            .strip_prefix("the keys here are ")
            .and_then(|h| h.split_once(';'))
            .map(|(l, _)| l)
            .unwrap_or_else(|| panic!("no key list for {text:?}: {e}"));
        list.split(", ").map(str::to_owned).collect()
    }

    #[test]
    fn the_example_inventory_shows_every_key() {
        let example = include_str!("../../inventory.example.yaml");
        let stack = "{name: a, compose_file: a.yml";
        let blocks = [
            ("top level", "zzz_unknown: 1\nhosts: {}\n".to_owned()),
            (
                "defaults",
                "defaults: {zzz_unknown: 1}\nhosts: {}\n".to_owned(),
            ),
            (
                "rollout",
                "defaults: {rollout: {zzz_unknown: 1}}\nhosts: {}\n".to_owned(),
            ),
            ("host", "hosts: {h: {zzz_unknown: 1}}\n".to_owned()),
            (
                "host's stack",
                format!("hosts: {{h: {{stacks: [{stack}, zzz_unknown: 1}}]}}}}\n"),
            ),
            (
                "hooks",
                format!("hosts: {{h: {{stacks: [{stack}, hooks: {{zzz_unknown: x}}}}]}}}}\n"),
            ),
            (
                "notify",
                "notify: {url: http://x, zzz_unknown: 1}\nhosts: {}\n".to_owned(),
            ),
            (
                "shared stack",
                "stacks: {s: {compose_file: a.yml, zzz_unknown: 1}}\nhosts: {}\n".to_owned(),
            ),
        ];
        let mut missing = Vec::new();
        for (block, text) in &blocks {
            for k in keys_of(text) {
                let shown = example.lines().any(|l| {
                    let l = l.trim_start().trim_start_matches('#').trim_start();
                    l.strip_prefix(k.as_str())
                        .is_some_and(|rest| rest.starts_with(':'))
                        || l.strip_prefix("- ")
                            .and_then(|l| l.strip_prefix(k.as_str()))
                            .is_some_and(|rest| rest.starts_with(':'))
                });
                if !shown {
                    missing.push(format!("{block}: {k}"));
                }
            }
        }
        assert!(
            missing.is_empty(),
            "not in inventory.example.yaml: {missing:?}"
        );
    }
}
