//! The inventory as a value: a small `Serialize` model of the keys the tests
//! use, written out with `serde_saphyr::to_string`. A test sets fields on
//! the value (`f.edit_inventory(|inv| ...)`) rather than splicing YAML text;
//! only tests of invalid inventories write text of their own.
//!
//! Unset fields are left out of the YAML, so an inventory says only what a
//! test chose.

use std::collections::BTreeMap;

use serde::Serialize;

/// The whole file: `defaults:`, top-level shared `stacks:`, `hosts:`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Inventory {
    #[serde(skip_serializing_if = "Defaults::is_empty")]
    pub defaults: Defaults,
    /// Shared stacks, placed on hosts by name or group.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub stacks: BTreeMap<String, SharedStack>,
    pub hosts: BTreeMap<String, Host>,
}

/// `defaults:`, what a host or stack inherits.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Defaults {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub ssh_options: BTreeMap<String, String>,
    /// Seconds (`"90"`) or a duration (`"1d"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build_period: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub up_timeout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
    /// The watch window after a passed gate: the fixture sets `"0"` (a
    /// watcher holds the stack's lock; the tests of it set their own).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watch: Option<String>,
    /// How old a new digest must be before a run deploys it (issue 22).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_age: Option<String>,
}

impl Defaults {
    pub fn is_empty(&self) -> bool {
        self.user.is_none()
            && self.ssh_options.is_empty()
            && self.build_period.is_none()
            && self.up_timeout.is_none()
            && self.rollout.is_none()
            && self.watch.is_none()
            && self.min_age.is_none()
    }
}

/// `rollout:` of a shared stack (or of `defaults`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Rollout {
    /// A count (`"1"`) or a percentage (`"25%"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canary: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_failures: Option<String>,
}

impl Rollout {
    /// `{canary: true}`
    pub fn canary() -> Rollout {
        Rollout {
            canary: Some(true),
            ..Rollout::default()
        }
    }
}

/// One host under `hosts:`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Host {
    /// What ssh connects to; unset: the host's name (ssh_config's `Host`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub ssh_options: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// `tags:`, for `--limit @TAG`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stacks: Vec<Stack>,
}

/// One stack in a host's `stacks:` list.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stack {
    pub name: String,
    /// Relative to the test's root directory (rbuild's working directory).
    pub compose_file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_dir: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build_period: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub up_timeout: Option<String>,
    /// Seconds (`"10"`) or a duration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build_timeout: Option<String>,
    /// Take over a non-empty `remote_dir` rbuild did not create.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adopt: Option<bool>,
    /// The stack's root, relative to the test's root directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dir_mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dir_group: Option<String>,
    /// Replace services beside their old containers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zero_downtime: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hooks: Option<Hooks>,
    /// How many generations keep their images (issue 18).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_generations: Option<u32>,
    /// The watch window after a passed gate (issue 19).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watch: Option<String>,
    /// `probe:` (`url` and `expect`, or `command`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub probe: BTreeMap<String, String>,
}

/// A stack's `hooks:`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Hooks {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

/// One top-level shared stack (its name is its key under `stacks:`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct SharedStack {
    pub compose_file: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_dir: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build_period: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub up_timeout: Option<String>,
}

impl Inventory {
    /// Host `name`, added (as `name: {}`) if it is not there yet.
    pub fn host(&mut self, name: &str) -> &mut Host {
        self.hosts.entry(name.to_owned()).or_default()
    }

    /// Stack `name` of host `host`; panics if there is none.
    pub fn stack(&mut self, host: &str, name: &str) -> &mut Stack {
        self.hosts
            .get_mut(host)
            .and_then(|h| h.stacks.iter_mut().find(|s| s.name == name))
            .unwrap_or_else(|| panic!("no stack {name} on {host} in the inventory"))
    }

    /// Shared stack `name`; panics if there is none.
    pub fn shared(&mut self, name: &str) -> &mut SharedStack {
        self.stacks
            .get_mut(name)
            .unwrap_or_else(|| panic!("no shared stack {name} in the inventory"))
    }

    /// The YAML text rbuild reads.
    pub fn to_yaml(&self) -> String {
        serde_saphyr::to_string(self).expect("the inventory serializes")
    }
}
