//! The resolved settings everything else reads: command line, environment
//! and inventory merged and validated once.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::{Cli, Command, Commands};
use crate::compose::{self, ComposePref};
use crate::inventory::{self, Host, Inventory, Stack};
use crate::rollout::Policy;

/// Default seconds between rebuilds (the original script's `BUILD_PERIOD`).
pub const DEFAULT_BUILD_PERIOD: u64 = 86400;
/// Default seconds for `up` and the health gate (`UP_TIMEOUT_PERIOD`).
pub const DEFAULT_UP_TIMEOUT: u64 = 60;
/// Default seconds the build may take, and the pull.
pub const DEFAULT_BUILD_TIMEOUT: u64 = 30 * 60;
/// Default seconds a stack must stay up once it came up.
pub const DEFAULT_SETTLE: u64 = 10;

/// A usage error: bad flags or an invalid inventory. Nothing was touched.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error(transparent)]
    Inventory(#[from] inventory::InventoryError),
    #[error("{message}{}", hint.as_ref().map(|h| format!("\nhint: {h}")).unwrap_or_default())]
    Other {
        message: String,
        hint: Option<String>,
    },
}

impl UsageError {
    fn new(message: impl Into<String>, hint: Option<&str>) -> Self {
        UsageError::Other {
            message: message.into(),
            hint: hint.map(str::to_owned),
        }
    }
}

/// Local mode or fleet mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// This machine, no SSH; stacks are built where their files are.
    Local,
    /// Hosts of an inventory, over SSH.
    Fleet,
}

/// Everything a run needs to know.
#[derive(Debug, Clone)]
pub struct Settings {
    pub mode: Mode,
    /// The selected hosts (after `--limit`); in local mode one host, `local`.
    pub hosts: Vec<Host>,
    pub force: bool,
    pub dry_run: bool,
    /// Ask the registries whether the images stacks are made from moved
    /// (`--no-digests` turns it off).
    pub digests: bool,
    pub remove_images: bool,
    /// `--prune-image-cache`: prune all unused build cache after a rebuild.
    pub prune_image_cache: bool,
    /// CLI or env override of every stack's build period.
    pub build_period: Option<u64>,
    /// CLI or env override of every stack's up timeout.
    pub up_timeout: Option<u64>,
    /// CLI or env override of every stack's build timeout.
    pub build_timeout: Option<u64>,
    /// CLI or env override of every stack's settle window.
    pub settle: Option<u64>,
    /// CLI or env override of every stack's watch window.
    pub watch: Option<u64>,
    pub concurrency: usize,
    pub json: bool,
    /// `--metrics-file`: where to write the run's metrics.
    pub metrics_file: Option<PathBuf>,
    /// `--shard K/N`: which part of the hosts this run is (its metrics
    /// carry it as a label).
    pub shard: Option<crate::select::Shard>,
    /// `--lock-wait`: seconds to wait for a held stack lock (0: none).
    pub lock_wait: u64,
    /// The inventory's webhook, unless `--no-notify` (fleet mode only).
    pub notify: Option<crate::notify::Notify>,
    pub quiet: bool,
    pub verbose: u8,
    pub connect_timeout: Duration,
    pub ssh_config: Option<PathBuf>,
    pub accept_new_host_keys: bool,
    /// `--persist`: seconds the ssh masters stay after the run (0: off).
    pub persist: u64,
}

impl Settings {
    /// The effective build period of a stack.
    pub fn build_period(&self, s: &Stack) -> u64 {
        self.build_period
            .or(s.keys.build_period.map(|p| p.0))
            .unwrap_or(DEFAULT_BUILD_PERIOD)
    }

    /// The effective `min_age` of a stack, in seconds (`0`: a new digest
    /// is deployed at once).
    pub fn min_age(&self, s: &Stack) -> u64 {
        s.keys.min_age.map_or(0, |m| m.0)
    }

    /// The effective up timeout of a stack.
    pub fn up_timeout(&self, s: &Stack) -> u64 {
        self.up_timeout
            .or(s.keys.up_timeout.map(|t| t.0))
            .unwrap_or(DEFAULT_UP_TIMEOUT)
    }

    /// The effective watch window of a stack.
    pub fn watch(&self, s: &Stack) -> u64 {
        self.watch.unwrap_or_else(|| s.watch())
    }

    /// The effective settle window of a stack.
    pub fn settle(&self, s: &Stack) -> u64 {
        self.settle
            .or(s.keys.settle.map(|t| t.0))
            .unwrap_or(DEFAULT_SETTLE)
    }

    /// The effective build timeout of a stack.
    pub fn build_timeout(&self, s: &Stack) -> u64 {
        self.build_timeout
            .or(s.keys.build_timeout.map(|t| t.0))
            .unwrap_or(DEFAULT_BUILD_TIMEOUT)
    }

    /// `command`: a `history` or `rollback` subcommand follows: on HOST
    /// STACK of the inventory, or (local mode) on a COMPOSE_FILE.
    pub fn from_cli(
        mut cli: Cli,
        inventory_from_env: bool,
        command: Option<&Command>,
    ) -> Result<Settings, UsageError> {
        if let Some(cmd) = command {
            let name = cmd.name();
            match (cmd.target(), &cli.inventory) {
                ((target, None), Some(inv)) => return Err(stack_missing(name, target, inv)),
                ((file, None), None) if !Path::new(file).exists() && looks_like_host(file) => {
                    return Err(UsageError::new(
                        format!(
                            "`{name} {file}`: no compose file `{file}`, and no inventory to find a host `{file}` in"
                        ),
                        Some(&format!(
                            "on an inventory host, `{name}` takes HOST and STACK: `rbuild -i inventory.yaml {name} {file} STACK`; here, one COMPOSE_FILE"
                        )),
                    ));
                }
                ((file, None), None) => cli.compose_files = vec![PathBuf::from(file)],
                ((_, Some(_)), None) => {
                    return Err(UsageError::new(
                        format!(
                            "without an inventory, `{name}` takes one COMPOSE_FILE (local mode)"
                        ),
                        Some(&format!(
                            "e.g. `rbuild {name} /srv/blog/compose.yml`, or `rbuild -i inventory.yaml {name} web1 blog`"
                        )),
                    ));
                }
                ((_, Some(_)), Some(_)) => {}
            }
        }
        let mut notify = None;
        let (mode, hosts) = match (&cli.inventory, cli.compose_files.is_empty()) {
            (Some(_), false) if !inventory_from_env => {
                return Err(UsageError::new(
                    "give either COMPOSE_FILE arguments (local mode) or `--inventory` (fleet mode), not both",
                    None,
                ));
            }
            (_, false) => (Mode::Local, vec![local_host(&cli)?]),
            (Some(path), true) => {
                let inv = Inventory::load(path)?;
                notify = notify_of(&inv)?.filter(|_| !cli.no_notify);
                let mut hosts = select(inv, &cli)?;
                // rollout flags win over the inventory
                for s in hosts.iter_mut().flat_map(|h| h.stacks.iter_mut()) {
                    s.rollout = Policy {
                        serial: cli.serial.or(s.rollout.serial),
                        canary: cli.canary || s.rollout.canary,
                        max_failures: cli.max_failures.or(s.rollout.max_failures),
                    };
                }
                (Mode::Fleet, hosts)
            }
            (None, true) => {
                return Err(UsageError::new(
                    "nothing to do: give COMPOSE_FILE arguments or `--inventory FILE`",
                    Some(
                        "`rbuild compose.yml` rebuilds a stack here; `rbuild -i inventory.yaml` a fleet",
                    ),
                ));
            }
        };
        if mode == Mode::Local {
            for (flag, given) in [
                ("--limit", !cli.limit.is_empty()),
                ("--exclude", !cli.exclude.is_empty()),
                ("--shard", cli.shard.is_some()),
            ] {
                if given {
                    return Err(UsageError::new(
                        format!("`{flag}` selects inventory hosts: it needs `--inventory`"),
                        None,
                    ));
                }
            }
        }
        Ok(Settings {
            mode,
            hosts,
            force: cli.force_rebuild,
            dry_run: cli.dry_run,
            digests: !cli.no_digests,
            remove_images: cli.remove_images,
            prune_image_cache: cli.prune_image_cache,
            build_period: match cli.build_period {
                Some(p) => Some(p),
                None => build_ttl()?,
            },
            up_timeout: cli.up_timeout_period,
            build_timeout: cli.build_timeout,
            settle: cli.settle,
            watch: cli.watch,
            concurrency: cli.concurrency as usize,
            json: cli.json(),
            metrics_file: cli.metrics_file,
            shard: cli.shard,
            lock_wait: cli.lock_wait.unwrap_or(0),
            notify,
            quiet: cli.quiet,
            verbose: cli.verbose,
            connect_timeout: Duration::from_secs(cli.connect_timeout.max(1)),
            ssh_config: cli.ssh_config,
            accept_new_host_keys: cli.accept_new_host_keys,
            persist: cli.persist.unwrap_or(0),
        })
    }
}

/// The webhook of the inventory's `notify:`, its URL and actions checked:
/// an error names the inventory's line.
fn notify_of(inv: &Inventory) -> Result<Option<crate::notify::Notify>, UsageError> {
    let Some(n) = &inv.notify else {
        return Ok(None);
    };
    let err = |line: u64, message: String, hint: &str| inventory::InventoryError {
        file: inv.path.clone(),
        line,
        column: 0,
        message,
        hint: Some(hint.to_owned()),
    };
    if !crate::notify::valid_url(&n.url) {
        return Err(err(
            n.url_line,
            format!(
                "notify: url `{}` is not an http:// or https:// URL",
                crate::notify::shown_url(&n.url)
            ),
            "e.g. `url: https://hooks.example.com/rbuild`",
        )
        .into());
    }
    let on = match &n.on {
        None => crate::notify::DEFAULT_ON.to_vec(),
        Some(words) => {
            let mut on = Vec::new();
            for (word, line) in words {
                let action = crate::notify::action(word).ok_or_else(|| {
                        err(
                            *line,
                            format!("notify: `{word}` is not an action"),
                            "`on` lists actions of the summary: rebuilt, started, rolled_back, failed, skipped",
                        )
                    })?;
                on.push(action);
            }
            on
        }
    };
    Ok(Some(crate::notify::Notify {
        url: n.url.clone(),
        on,
    }))
}

/// `history`, `logs` or `rollback` given HOST without STACK: what is
/// missing, the right form, and the stacks it could be (read from the
/// inventory when it reads).
fn stack_missing(name: &str, target: &str, inv: &Path) -> UsageError {
    let shown = inv.display();
    let message = format!(
        "`{name} {target}`: STACK is missing: with an inventory, `{name}` takes HOST and STACK"
    );
    let loaded = Inventory::load(inv).ok();
    let hosts = loaded.as_ref().map(|i| i.hosts.as_slice()).unwrap_or(&[]);
    let hint = if let Some(h) = hosts.iter().find(|h| h.name == target) {
        let stacks: Vec<&str> = h.stacks.iter().map(|s| s.name.as_str()).collect();
        match stacks.first() {
            Some(first) => format!(
                "e.g. `rbuild -i {shown} {name} {target} {first}`; the stacks of `{target}`: {}",
                stacks.join(", ")
            ),
            None => format!("host `{target}` runs no stack"),
        }
    } else if let Some(h) = hosts
        .iter()
        .find(|h| h.stacks.iter().any(|s| s.name == target))
    {
        format!(
            "`{target}` is a stack: name its host first, e.g. `rbuild -i {shown} {name} {} {target}`",
            h.name
        )
    } else {
        format!("e.g. `rbuild -i {shown} {name} web1 blog`")
    };
    UsageError::new(message, Some(&hint))
}

/// A word that may be a host's name rather than a compose file's: no `/`,
/// no `.yml` or `.yaml`.
fn looks_like_host(word: &str) -> bool {
    !word.contains('/') && !word.ends_with(".yml") && !word.ends_with(".yaml")
}

/// Where rbuild looks for an inventory when neither `-i` nor
/// `RBUILD_INVENTORY` names one, in order: `./rbuild.yaml`,
/// `$XDG_CONFIG_HOME/rbuild/inventory.yaml` (default `~/.config`),
/// `/etc/rbuild/inventory.yaml`.
pub fn inventory_places() -> Vec<PathBuf> {
    let config = crate::local_files::xdg("XDG_CONFIG_HOME", ".config");
    let mut places = vec![PathBuf::from("./rbuild.yaml")];
    places.extend(config.map(|c| c.join("rbuild/inventory.yaml")));
    places.push(PathBuf::from("/etc/rbuild/inventory.yaml"));
    places
}

/// The first of `places` that exists; else an error naming every place,
/// its hint for `command`.
pub fn default_inventory(
    places: &[PathBuf],
    command: Option<&Commands>,
) -> Result<PathBuf, UsageError> {
    if let Some(found) = places.iter().find(|p| p.exists()) {
        return Ok(found.clone());
    }
    let looked: Vec<String> = places
        .iter()
        .map(|p| format!("`{}`", p.display()))
        .collect();
    let hint = match command {
        Some(Commands::Stack(c)) => format!(
            "`rbuild -i inventory.yaml {0} HOST STACK` (or put the inventory at `./rbuild.yaml`); without one, `rbuild {0} compose.yml`",
            c.name()
        ),
        Some(Commands::Fleet(_)) => {
            "give `-i inventory.yaml`, or put the inventory at `./rbuild.yaml`".to_owned()
        }
        _ => "`rbuild -i inventory.yaml` runs a fleet (or put it at `./rbuild.yaml`); `rbuild compose.yml` rebuilds a stack here".to_owned(),
    };
    Err(UsageError::new(
        format!(
            "no inventory: none given (`-i`, `RBUILD_INVENTORY`) and none at {}",
            looked.join(", ")
        ),
        Some(&hint),
    ))
}

/// Whether the command reads an inventory's hosts when no COMPOSE_FILE is
/// given: a run, `deploy`, `status`, `check`, and `history`, `logs`,
/// `rollback` given HOST and STACK, or one word like a host's name (one
/// word that names a file is a COMPOSE_FILE).
pub fn wants_inventory(command: Option<&Commands>) -> bool {
    match command {
        None | Some(Commands::Deploy) => true,
        Some(Commands::Fleet(_)) => true,
        Some(Commands::Stack(c)) => match c.target() {
            (_, Some(_)) => true,
            // a word like a host's name, not a file's
            (word, None) => !word.contains(['/', '.']) && !Path::new(word).exists(),
        },
        Some(_) => false,
    }
}

/// `BUILD_TTL`, the variable the original `rbuild.py` read (its README
/// said `BUILD_PERIOD`, which wins when both are set).
fn build_ttl() -> Result<Option<u64>, UsageError> {
    match std::env::var("BUILD_TTL") {
        Ok(v) => crate::cli::period(&v)
            .map(Some)
            .map_err(|e| UsageError::new(format!("`BUILD_TTL={v}`: {e}"), None)),
        Err(_) => Ok(None),
    }
}

/// Keep the hosts that `--limit`, `--exclude` and `--shard` select (see
/// [`crate::select`]).
fn select(inv: Inventory, cli: &Cli) -> Result<Vec<Host>, UsageError> {
    let labels: Vec<crate::select::Labels> = inv
        .hosts
        .iter()
        .map(|h| crate::select::Labels {
            name: &h.name,
            groups: &h.groups,
            tags: &h.tags,
        })
        .collect();
    let source = inv.path.display().to_string();
    let picked = crate::select::select(&labels, &cli.limit, &cli.exclude, cli.shard, &source)
        .map_err(|e| UsageError::Other {
            message: e.message,
            hint: e.hint,
        })?;
    let mut hosts: Vec<Option<Host>> = inv.hosts.into_iter().map(Some).collect();
    Ok(picked.into_iter().filter_map(|i| hosts[i].take()).collect())
}

/// The compose project name compose itself would derive from a directory:
/// its name, lowercased, keeping letters, digits, `-` and `_`.
pub fn project_name_for_dir(dir: &Path) -> Option<String> {
    let base = dir.file_name()?.to_string_lossy().to_lowercase();
    let name: String = base
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-' || *c == '_')
        .collect();
    let name = name.trim_start_matches(['-', '_']).to_owned();
    inventory::valid_stack_name(&name).then_some(name)
}

/// The project name compose itself gives a local stack, so that an existing
/// deployment is taken over, not started again beside itself:
/// `COMPOSE_PROJECT_NAME` from the environment, else from the project's
/// `.env`, else the compose file's `name:`, else its directory's name.
fn local_project_name(file: &Path, dir: &Path) -> Result<String, UsageError> {
    let from_env = std::env::var("COMPOSE_PROJECT_NAME")
        .ok()
        .filter(|v| !v.is_empty())
        .map(|v| (v, "COMPOSE_PROJECT_NAME"));
    let from_dotenv =
        || compose::dotenv_project_name(dir).map(|n| (n, "COMPOSE_PROJECT_NAME in .env"));
    let from_file = || compose::compose_name(file).map(|n| (n, "`name:` of the compose file"));
    if let Some((name, source)) = from_env.or_else(from_dotenv).or_else(from_file) {
        if !inventory::valid_stack_name(&name) {
            return Err(UsageError::new(
                format!(
                    "`{}`: the project name `{name}` ({source}) is not one compose takes",
                    file.display()
                ),
                Some(
                    "project names take lowercase letters, digits, `-` and `_`, starting with a letter or digit",
                ),
            ));
        }
        return Ok(name);
    }
    project_name_for_dir(dir).ok_or_else(|| {
        UsageError::new(
            format!("cannot derive a compose project name from `{}`", dir.display()),
            Some("name the directory with letters, digits, `-` or `_`, or set `name:` in the compose file"),
        )
    })
}

/// Local mode: one host, this machine, whose stacks are the given compose
/// files, each built in place under the project name compose would use.
fn local_host(cli: &Cli) -> Result<Host, UsageError> {
    let mut stacks: Vec<Stack> = Vec::new();
    for f in &cli.compose_files {
        let abs = std::path::absolute(f)
            .map_err(|e| UsageError::new(format!("`{}`: {e}", f.display()), None))?;
        if !abs.is_file() {
            return Err(UsageError::new(
                format!("compose file `{}` does not exist", f.display()),
                None,
            ));
        }
        let dir = abs.parent().expect("a file has a parent").to_owned();
        let name = local_project_name(&abs, &dir)?;
        if stacks.iter().any(|s| s.name == name) {
            return Err(UsageError::new(
                format!("two compose files would share the project name `{name}`"),
                Some("each stack needs a directory of its own"),
            ));
        }
        let file_name = abs
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        // the root: `--root`, or the compose file's directory; the compose
        // file is named relative to it
        let (root, real_dir) = match &cli.root {
            Some(r) => {
                let real = |p: &Path| {
                    p.canonicalize()
                        .map_err(|e| UsageError::new(format!("`{}`: {e}", p.display()), None))
                };
                (real(r)?, real(&dir)?)
            }
            None => (dir.clone(), dir.clone()),
        };
        let in_root = real_dir
            .strip_prefix(&root)
            .ok()
            .filter(|r| !r.components().any(|c| c == std::path::Component::ParentDir))
            .ok_or_else(|| {
                UsageError::new(
                    format!(
                        "compose file `{}` is not inside the root `{}`",
                        f.display(),
                        root.display()
                    ),
                    Some("`--root` must hold the compose file"),
                )
            })?
            .to_string_lossy()
            .into_owned();
        let prefix = |name: &str| {
            if in_root.is_empty() {
                name.to_owned()
            } else {
                format!("{in_root}/{name}")
            }
        };
        let mut compose_files = vec![prefix(&file_name)];
        compose_files.extend(compose::override_of(&dir, &file_name).map(|o| prefix(&o)));
        compose::outside_root(&root, &compose_files, cli.root.is_some(), "`--root DIR`")
            .map_err(inventory::InventoryError::from)?;
        let data_dirs = compose::writable_binds(&root, &compose_files);
        let one_shots = compose::one_shots(&root, &compose_files);
        let mounts = compose::mounting(&root, &compose_files);
        // compose here interpolates from this environment: its values are
        // part of the stack
        let env = compose::variables(&root, &compose_files)
            .into_iter()
            .map(|k| {
                let v = std::env::var(&k).ok();
                (k, v)
            })
            .collect();
        let dir_str = root
            .to_str()
            .ok_or_else(|| {
                UsageError::new(format!("`{}` is not valid UTF-8", root.display()), None)
            })?
            .to_owned();
        stacks.push(Stack {
            name,
            compose_file: abs.clone(),
            root,
            compose_files,
            profiles: vec![],
            data_dirs,
            remote_dir: Some(dir_str),
            keys: Default::default(),
            rollout: Default::default(),
            adopt: false,
            dir_mode: None,
            dir_group: None,
            zero_downtime: vec![],
            hooks: Default::default(),
            one_shots,
            mounts,
            env,
        });
    }
    let state_dir = match &cli.state_dir {
        Some(p) => Some(
            std::path::absolute(p)
                .map_err(|e| UsageError::new(format!("`{}`: {e}", p.display()), None))?
                .to_string_lossy()
                .into_owned(),
        ),
        None => None,
    };
    Ok(Host {
        name: "local".into(),
        address: String::new(),
        user: None,
        port: None,
        identity_file: None,
        ssh_options: Default::default(),
        state_dir,
        compose: ComposePref::Auto,
        connect_timeout: None,
        groups: vec![],
        tags: vec![],
        stacks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_names_follow_compose() {
        assert_eq!(
            project_name_for_dir(Path::new("/srv/My.App")).as_deref(),
            Some("myapp")
        );
        assert_eq!(
            project_name_for_dir(Path::new("/srv/web-1")).as_deref(),
            Some("web-1")
        );
        assert_eq!(
            project_name_for_dir(Path::new("/srv/_x")).as_deref(),
            Some("x")
        );
        assert_eq!(project_name_for_dir(Path::new("/srv/...")), None);
    }

    #[test]
    fn the_default_inventory_is_the_first_place_that_exists_else_every_place_is_named() {
        let d = tempfile::tempdir().unwrap();
        let places: Vec<PathBuf> = ["a.yaml", "b/inventory.yaml", "c.yaml"]
            .iter()
            .map(|p| d.path().join(p))
            .collect();
        let err = default_inventory(&places, None).unwrap_err().to_string();
        for p in &places {
            assert!(err.contains(&format!("`{}`", p.display())), "{err}");
        }
        assert!(err.contains("\nhint: "), "{err}");
        std::fs::create_dir_all(d.path().join("b")).unwrap();
        std::fs::write(&places[2], "").unwrap();
        assert_eq!(default_inventory(&places, None).unwrap(), places[2]);
        std::fs::write(&places[1], "").unwrap();
        assert_eq!(default_inventory(&places, None).unwrap(), places[1]);
    }
}
