//! A stack as the remote script's arguments: where it lives, its hooks and
//! probe, and how long the controller waits for an apply.

use std::time::Duration;

use crate::inventory::{Probe, Stack};
use crate::remote::Place;
use crate::remote::call::Hooks;

/// Where the inventory puts `s` on its host, as the remote script names
/// it (an apply's stack, a rollback).
pub fn place(s: &Stack) -> Place {
    Place {
        name: s.name.clone(),
        dir: s.remote_dir.clone(),
        compose_files: s.compose_files.clone(),
        profiles: s.profiles.clone(),
    }
}

/// The hooks and probe of `s`, as the remote script runs them: a probe is
/// a command line, an HTTP one `probe_url URL [TEXT]` (a function of the
/// script).
pub(super) fn hooks(s: &Stack) -> Hooks {
    Hooks {
        before: s.hooks.before.clone(),
        after: s.hooks.after.clone(),
        probe: s.hooks.probe.as_ref().map(|p| match p {
            Probe::Http { url, expect } => {
                let words = ["probe_url", url.as_str()]
                    .into_iter()
                    .chain(expect.as_deref());
                shlex::try_join(words).expect("the inventory refuses a NUL in a probe")
            }
            Probe::Command(c) => c.clone(),
        }),
    }
}

/// How long the controller waits for an apply: every bound the host keeps
/// for each stack (build and pull, up, the gate and a rollback, its looks
/// at the engine), the payload at a slow 256 KiB/s, and two minutes more.
pub(super) fn apply_bound(stacks: impl Iterator<Item = (u64, u64)>, payload: u64) -> Duration {
    let per_stack: u64 = stacks.map(|(build, up)| 2 * build + 3 * up + 4 * 120).sum();
    Duration::from_secs(per_stack + payload / (256 * 1024) + 120)
}
