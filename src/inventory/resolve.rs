//! From the inventory as written to the model: `defaults:`, then each
//! host, then each stack (a host's own, and the shared ones that land on
//! it), every key inherited, every name and path checked, each error at its
//! line.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde_saphyr::Spanned;

use crate::compose::{self, ComposePref};
use crate::rollout::Policy;

use super::error::InventoryError;
use super::keys::Inheritable;
use super::model::{Hooks, Host, Inventory, Notify, Probe, Stack};
use super::raw::{RawHooks, RawHost, RawInventory, RawProbe};
use super::validate::{
    overlap, parse_compose, valid_host_name, valid_remote_path, valid_ssh_word, valid_stack_name,
};
use super::values::{ComposeFiles, DirGroup, DirMode};

/// The model of the inventory `raw`, read from `path` (which names it in
/// errors and anchors relative paths).
pub(super) fn inventory(path: &Path, raw: &RawInventory) -> Result<Inventory, InventoryError> {
    let err = |line: u64, message: String, hint: Option<&str>| InventoryError {
        file: path.to_owned(),
        line,
        column: 0,
        message,
        hint: hint.map(str::to_owned),
    };
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
        hosts.push(host(name, h, raw, default_policy, &base, &err)?);
    }
    let notify = raw.notify.as_ref().map(|n| Notify {
        url: n.value.url.value.clone(),
        url_line: n.value.url.referenced.line(),
        on: n.value.on.as_ref().map(|on| {
            on.iter()
                .map(|a| (a.value.clone(), a.referenced.line()))
                .collect()
        }),
    });
    Ok(Inventory {
        path: path.to_owned(),
        hosts,
        notify,
    })
}

/// One host of the inventory: how to reach it and its stacks, its own and
/// the shared ones that land on it (by name or group), each resolved.
fn host(
    name: &str,
    h: &Spanned<RawHost>,
    raw: &RawInventory,
    default_policy: Policy,
    base: &Path,
    err: &dyn Fn(u64, String, Option<&str>) -> InventoryError,
) -> Result<Host, InventoryError> {
    let d = &raw.defaults;
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
                Some("an address is a host name or IP, without spaces, not starting with `-`"),
            ));
        }
        Some(a) => a.value.clone(),
        None => name.to_owned(),
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
        keys: h.keys().over(d.keys()),
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
            keys: s.keys(),
            rollout: default_policy,
            adopt: s.adopt,
            dir_mode: s.dir_mode,
            dir_group: s.dir_group.as_ref(),
            zero_downtime: s.zero_downtime.clone(),
            hooks: s.hooks.as_ref(),
            probe: s.probe.as_ref(),
        };
        stacks.push(build_stack(&s.name, &def, &hctx, base, err)?);
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
                keys: sh.keys(),
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
            stacks.push(build_stack(&spanned_name, &def, &hctx, base, err)?);
            lines.push(shared.referenced.line());
        }
    }
    if stacks.is_empty() {
        return Err(err(
            line,
            format!("host `{name}` has no stacks"),
            Some("give it a `stacks:` list or a group a shared stack names, or remove the host"),
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
    let root_user = user.is_some_and(|u| u.value == "root");
    apart(name, &stacks, &lines, root_user, state_dir, err)?;
    Ok(Host {
        name: name.to_owned(),
        address,
        user: user.map(|u| u.value.clone()),
        port: h.port.or(d.port).map(|p| p.0),
        identity_file: h
            .identity_file
            .as_ref()
            .or(d.identity_file.as_ref())
            .map(|p| expand_home(base, &p.value)),
        ssh_options,
        state_dir: state_dir.map(|s| s.value.clone()),
        compose,
        connect_timeout: h.connect_timeout.or(d.connect_timeout).map(|s| s.0),
        groups,
        tags,
        stacks,
    })
}

/// One stack's directory inside another's (or the state directory's)
/// would have its files swapped away by the other: refused, at the later
/// stack's line. `lines`: where each of `stacks` is named; `root_user`:
/// the host is reached as root (stacks default to `/srv/rbuild/NAME`).
fn apart(
    name: &str,
    stacks: &[Stack],
    lines: &[u64],
    root_user: bool,
    state_dir: Option<&Spanned<String>>,
    err: &dyn Fn(u64, String, Option<&str>) -> InventoryError,
) -> Result<(), InventoryError> {
    let dir_of = |st: &Stack| {
        st.remote_dir
            .clone()
            .or_else(|| root_user.then(|| format!("/srv/rbuild/{}", st.name)))
    };
    for (i, (a, la)) in stacks.iter().zip(lines).enumerate() {
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
                    Some("every stack needs a directory of its own, neither inside the other"),
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
    Ok(())
}

/// What a host lends its stacks.
struct HostCtx<'a> {
    name: &'a str,
    remote_root: Option<&'a str>,
    /// Its inherited keys over `defaults:`'s.
    keys: Inheritable,
}

/// A stack's keys, from a host's list or a shared definition.
struct StackDef<'a> {
    compose_file: &'a Spanned<ComposeFiles>,
    profiles: &'a [Spanned<String>],
    root: Option<&'a Spanned<String>>,
    remote_dir: Option<&'a Spanned<String>>,
    /// The inherited keys it sets itself.
    keys: Inheritable,
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
        && let Some(o) = compose::override_of(&project_dir, file_name(only))
    {
        compose_files.push(sibling(only, &o));
    }
    compose::outside_root(
        &dir,
        &compose_files,
        s.root.is_some(),
        "`root:` on the stack (relative to the inventory file)",
    )
    .map_err(|e| InventoryError::from(e).context(&format!("host `{host}`, stack `{sname}`: ")))?;
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
    if let Some(cn) = compose::compose_name(&compose_file)
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
    let data_dirs = compose::writable_binds(&dir, &compose_files);
    let one_shots = compose::one_shots(&dir, &compose_files);
    let mounts = compose::mounting(&dir, &compose_files);
    let zero_downtime = match &s.zero_downtime {
        Some(z) if z.value => compose::beside_services(host, sname, &dir, &compose_files)
            .map_err(|(m, hint)| err(z.referenced.line(), m, Some(&hint)))?,
        _ => vec![],
    };
    let mut hooks = Hooks::default();
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
                let expect = p.value.expect.as_ref().map(|e| e.value.clone());
                // it goes to the host as shell words: no NUL
                if expect.as_ref().is_some_and(|e| e.contains('\0')) {
                    return Err(bad("the probe's url or expect cannot be quoted"));
                }
                Probe::Http {
                    url: u.value.clone(),
                    expect,
                }
            }
            (None, Some(c)) if text(c) && p.value.expect.is_none() => {
                Probe::Command(c.value.clone())
            }
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
        keys: s.keys.over(h.keys),
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
