//! The inventory as written: the serde shapes of its blocks, strict
//! (an unknown key is an error naming the keys the block takes), every
//! value with its line. The inherited keys come from the table in
//! [`super::keys`].

use std::collections::BTreeMap;

use indexmap::IndexMap;
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::rollout::{Limit, Policy};

use super::keys::{Inheritable, raw_shape, with_keys};
use super::values::{
    BuildTimeout, ComposeFiles, ConnectTimeout, DirGroup, DirMode, KeepGenerations, MinAge, Period,
    Port, Settle, UpTimeout, Watch,
};

with_keys!(raw_shape! {
    /// Settings a host or stack inherits unless it sets its own.
    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct Defaults {
        pub(super) user: Option<Spanned<String>>,
        pub(super) port: Option<Port>,
        pub(super) identity_file: Option<Spanned<String>>,
        #[serde(default)]
        pub(super) ssh_options: BTreeMap<String, Spanned<String>>,
        pub(super) state_dir: Option<Spanned<String>>,
        pub(super) remote_root: Option<Spanned<String>>,
        pub(super) compose: Option<Spanned<String>>,
    } {
        pub(super) connect_timeout: Option<ConnectTimeout>,
        pub(super) rollout: Option<RawRollout>,
    } {}
});

/// `rollout:` settings, in `defaults` or a shared stack.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRollout {
    serial: Option<Limit>,
    canary: Option<bool>,
    max_failures: Option<Limit>,
}

impl RawRollout {
    /// `base`, with what this sets instead.
    pub(super) fn over(&self, base: &Policy) -> Policy {
        Policy {
            serial: self.serial.or(base.serial),
            canary: self.canary.unwrap_or(base.canary),
            max_failures: self.max_failures.or(base.max_failures),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawInventory {
    #[serde(default)]
    pub(super) defaults: Defaults,
    /// Stacks defined once and placed on hosts by name or group.
    #[serde(default)]
    pub(super) stacks: BTreeMap<String, Spanned<RawSharedStack>>,
    /// In the order the file lists them: hosts start in that order, and the
    /// summary lists them so.
    pub(super) hosts: Spanned<IndexMap<String, Spanned<RawHost>>>,
    /// A webhook told of runs where something happened.
    #[serde(default)]
    pub(super) notify: Option<Spanned<RawNotify>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNotify {
    pub(super) url: Spanned<String>,
    /// Actions that call for a notification.
    #[serde(default)]
    pub(super) on: Option<Vec<Spanned<String>>>,
}

with_keys!(raw_shape! {
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct RawSharedStack {
        pub(super) compose_file: Spanned<ComposeFiles>,
        #[serde(default)]
        pub(super) profiles: Vec<Spanned<String>>,
        /// The directory that is the stack (hashed, shipped), relative to the
        /// inventory; default: the first compose file's.
        pub(super) root: Option<Spanned<String>>,
        pub(super) remote_dir: Option<Spanned<String>>,
    } {} {
        #[serde(default)]
        pub(super) hosts: Vec<Spanned<String>>,
        #[serde(default)]
        pub(super) groups: Vec<Spanned<String>>,
        pub(super) rollout: Option<RawRollout>,
        #[serde(default)]
        pub(super) adopt: bool,
        pub(super) dir_mode: Option<DirMode>,
        pub(super) dir_group: Option<DirGroup>,
        /// Replace services beside their old containers (docs/concepts/gate.md).
        pub(super) zero_downtime: Option<Spanned<bool>>,
        /// Commands run on the host around the `up` (docs/concepts/hooks.md).
        pub(super) hooks: Option<Spanned<RawHooks>>,
        pub(super) probe: Option<Spanned<RawProbe>>,
    }
});

with_keys!(raw_shape! {
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct RawHost {
        pub(super) address: Option<Spanned<String>>,
        pub(super) user: Option<Spanned<String>>,
        pub(super) port: Option<Port>,
        pub(super) identity_file: Option<Spanned<String>>,
        #[serde(default)]
        pub(super) ssh_options: BTreeMap<String, Spanned<String>>,
        pub(super) state_dir: Option<Spanned<String>>,
        pub(super) remote_root: Option<Spanned<String>>,
        pub(super) compose: Option<Spanned<String>>,
    } {
        pub(super) connect_timeout: Option<ConnectTimeout>,
        #[serde(default)]
        pub(super) groups: Vec<Spanned<String>>,
        /// Labels `--limit @TAG` and `--exclude @TAG` select by.
        #[serde(default)]
        pub(super) tags: Vec<Spanned<String>>,
        #[serde(default)]
        pub(super) stacks: Vec<Spanned<RawStack>>,
    }
});

with_keys!(raw_shape! {
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct RawStack {
        pub(super) name: Spanned<String>,
        pub(super) compose_file: Spanned<ComposeFiles>,
        #[serde(default)]
        pub(super) profiles: Vec<Spanned<String>>,
        /// The directory that is the stack (hashed, shipped), relative to the
        /// inventory; default: the first compose file's.
        pub(super) root: Option<Spanned<String>>,
        pub(super) remote_dir: Option<Spanned<String>>,
    } {} {
        #[serde(default)]
        pub(super) adopt: bool,
        pub(super) dir_mode: Option<DirMode>,
        pub(super) dir_group: Option<DirGroup>,
        /// Replace services beside their old containers (docs/concepts/gate.md).
        pub(super) zero_downtime: Option<Spanned<bool>>,
        /// Commands run on the host around the `up` (docs/concepts/hooks.md).
        pub(super) hooks: Option<Spanned<RawHooks>>,
        pub(super) probe: Option<Spanned<RawProbe>>,
    }
});

/// `hooks:` of a stack: shell command lines run around its `up`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHooks {
    pub(super) before: Option<Spanned<String>>,
    pub(super) after: Option<Spanned<String>>,
}

/// `probe:` of a stack: an HTTP request made on the host (`url`, and a text
/// its answer must hold, `expect`), or a command run there (`command`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProbe {
    pub(super) url: Option<Spanned<String>>,
    pub(super) expect: Option<Spanned<String>>,
    pub(super) command: Option<Spanned<String>>,
}
