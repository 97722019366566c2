//! The validated inventory: hosts, the stacks each runs, and what a stack
//! is given on its host. What the rest of rbuild reads; nothing here parses.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::compose::ComposePref;
use crate::rollout::Policy;

use super::keys::Inheritable;
use super::values::{DEFAULT_KEEP_GENERATIONS, DEFAULT_WATCH};

/// One validated inventory.
#[derive(Debug, Clone)]
pub struct Inventory {
    pub path: PathBuf,
    pub hosts: Vec<Host>,
    /// `notify:` as written: the settings check its URL and actions (see
    /// [`Notify`]).
    pub notify: Option<Notify>,
}

/// `notify:` of an inventory: the webhook's URL and the actions that call
/// for it, as written, each with its line (checked where notifications are
/// built, so that an error still names the inventory's line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    pub url: String,
    /// The line of `url:`.
    pub url_line: u64,
    /// `on:`, each word with its line; `None`: not given.
    pub on: Option<Vec<(String, u64)>>,
}

/// A stack's hooks: shell command lines run in the stack's directory on
/// its host, `before` after the build and pull and before `up`, `after`
/// once the new generation passed its gate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hooks {
    pub before: Option<String>,
    pub after: Option<String>,
    /// `probe:`, run once its containers passed the gate, until it
    /// succeeds within the up timeout.
    pub probe: Option<Probe>,
}

/// `probe:` of a stack: what tells that it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// An HTTP request made on the host: `url` must answer (a status
    /// below 400), with `expect` in its answer when given (neither holds a
    /// NUL).
    Http { url: String, expect: Option<String> },
    /// A command line run in the stack's directory: its exit status.
    Command(String),
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
    /// write (see [`crate::compose::writable_binds`]).
    pub data_dirs: Vec<String>,
    /// Where it lives on the host; `None`: under the host's remote root or
    /// the remote side's default (`/srv/rbuild/NAME` as root).
    pub remote_dir: Option<String>,
    /// The keys it inherits (`defaults:`, then its host, then itself), as
    /// set: `build_period`, `up_timeout`, `build_timeout`, `settle`,
    /// `keep_generations`, `watch` (see [`Stack::keep_generations`],
    /// [`Stack::watch`] and the settings' accessors for their defaults).
    pub keys: Inheritable,
    /// Local mode: the variables its compose files interpolate (`${TAG}`)
    /// with their values in this environment (`None`: unset), hashed with
    /// the stack, so that a changed value rebuilds it as the original
    /// script did. Empty in fleet mode (compose on a host reads the host's
    /// environment and the shipped `.env`).
    pub env: Vec<(String, Option<String>)>,
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
    pub hooks: Hooks,
    /// Its jobs: the services another one waits for to complete
    /// (`service_completed_successfully`): the gate waits for them to exit 0.
    pub one_shots: Vec<String>,
    /// Its services that mount something of the stack's directory (see
    /// [`crate::compose::mounting`]): recreated after an `up` that left them
    /// on the old copy.
    pub mounts: Vec<(String, String)>,
}

impl Stack {
    /// How many of its generations keep their images on the host, the
    /// running one included (`keep_generations`, default 2).
    pub fn keep_generations(&self) -> u32 {
        self.keys
            .keep_generations
            .map_or(DEFAULT_KEEP_GENERATIONS, |k| k.0)
    }

    /// Seconds the host watches it after a passed gate, rolling a crash
    /// back by itself (`watch`, default [`DEFAULT_WATCH`]; 0: not watched).
    pub fn watch(&self) -> u64 {
        self.keys.watch.map_or(DEFAULT_WATCH, |w| w.0)
    }

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
