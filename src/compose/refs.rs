//! What a stack's compose files reference on disk: build contexts and
//! Dockerfiles, `env_file`, `extends: file:`, `include:`, file-based
//! secrets and configs, and relative bind-mount sources, each at its line;
//! one that leaves the stack's root is refused.

use std::collections::{BTreeMap, HashSet};
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;
use serde_saphyr::Spanned;

/// A reference that leaves the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outside {
    /// The compose file that holds it.
    pub file: PathBuf,
    /// 1-based line in `file`.
    pub line: u64,
    /// What it is (`build context`, `env_file`, ...).
    pub what: &'static str,
    /// The path as written.
    pub path: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Doc {
    services: BTreeMap<String, Option<Service>>,
    include: Vec<Spanned<Include>>,
    secrets: BTreeMap<String, Option<Spanned<FileDef>>>,
    configs: BTreeMap<String, Option<Spanned<FileDef>>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Service {
    build: Option<Spanned<Build>>,
    env_file: Option<Spanned<OneOrMany<EnvFile>>>,
    extends: Option<Spanned<Extends>>,
    volumes: Vec<Spanned<Volume>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    fn items(&self) -> Vec<&T> {
        match self {
            OneOrMany::One(t) => vec![t],
            OneOrMany::Many(v) => v.iter().collect(),
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Build {
    Context(String),
    Full {
        context: Option<String>,
        dockerfile: Option<String>,
    },
}

#[derive(Deserialize)]
#[serde(untagged)]
enum EnvFile {
    Path(String),
    Full { path: String },
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Extends {
    /// A service of the same file.
    Service(#[allow(dead_code)] String),
    Full {
        file: Option<String>,
    },
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Include {
    Path(String),
    Full {
        path: OneOrMany<String>,
        project_directory: Option<String>,
        env_file: Option<OneOrMany<String>>,
    },
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Volume {
    Short(String),
    Long {
        #[serde(rename = "type")]
        kind: Option<String>,
        source: Option<String>,
    },
}

#[derive(Deserialize)]
struct FileDef {
    file: Option<String>,
}

/// `path` made absolute against `base` and cleaned of `.` and `..`
/// without touching the disk.
fn resolve(base: &Path, path: &str) -> PathBuf {
    let mut out = PathBuf::new();
    for c in base.join(path).components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

/// A path that names none of the stack's files: a variable, a URL.
fn not_a_file(p: &str) -> bool {
    p.is_empty() || p.contains('$') || p.contains("://") || p.starts_with("git@")
}

/// The line of `path` in `text`: the first at or after `from` that holds it
/// (a value's location is where the value starts; a list's items follow).
fn line_of(text: &str, from: u64, path: &str) -> u64 {
    text.lines()
        .enumerate()
        .skip(from.saturating_sub(1) as usize)
        .find(|(_, l)| l.contains(path))
        .map_or(from, |(i, _)| i as u64 + 1)
}

/// Check the compose files `files` (relative to `root`; the first one's
/// directory is the project's, against which their relative paths are
/// taken) and what they include or extend: every file they reference must
/// be inside `root`. A file that cannot be read or parsed is left to
/// compose to report.
pub fn check(root: &Path, files: &[String]) -> Result<(), Outside> {
    scan(root, files, &mut Vec::new())
}

/// A file or directory a stack's compose files need inside its root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Needed {
    /// What it is (`build context`, `dockerfile`, `env_file`, ...).
    pub what: &'static str,
    /// The compose file that names it, as the root was given.
    pub file: PathBuf,
    /// 1-based line in `file`.
    pub line: u64,
    /// The path as written.
    pub path: String,
    /// Relative to the root (`` for the root itself).
    pub rel: String,
}

/// What the compose files (and the files they `include` or `extend`) need
/// inside the root: build contexts and Dockerfiles, env files, secret and
/// config files, included and extended files, bind-mount sources. A
/// reference that leaves the root ends the list (`check` refuses it).
pub fn needed(root: &Path, files: &[String]) -> Vec<Needed> {
    let mut out = Vec::new();
    let _ = scan(root, files, &mut out);
    out
}

fn scan(root: &Path, files: &[String], needed: &mut Vec<Needed>) -> Result<(), Outside> {
    let given = root;
    let root = resolve(
        &std::path::absolute(root).unwrap_or_else(|_| root.to_owned()),
        "",
    );
    // a file is named as the root was (every file read is inside it)
    let shown = |f: &Path| match f.strip_prefix(&root) {
        Ok(rel) => given.join(rel),
        Err(_) => f.to_owned(),
    };
    let project = files
        .first()
        .map(|f| resolve(&root, f))
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| root.clone());
    let mut queue: Vec<(PathBuf, PathBuf)> = files
        .iter()
        .map(|f| (resolve(&root, f), project.clone()))
        .collect();
    let mut seen = HashSet::new();
    while let Some((file, base)) = queue.pop() {
        if !seen.insert(file.clone()) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let doc = match serde_saphyr::from_str::<Doc>(&text) {
            Ok(d) => d,
            Err(e) => {
                tracing::debug!("`{}`: not read for its references: {e}", file.display());
                continue;
            }
        };
        let mut refs: Vec<(&'static str, String, u64, PathBuf)> = Vec::new();
        let mut follow: Vec<(String, u64, Option<String>)> = Vec::new();
        for svc in doc.services.values().flatten() {
            if let Some(b) = &svc.build {
                let line = b.referenced.line();
                match &b.value {
                    Build::Context(c) => {
                        refs.push(("build context", c.clone(), line, base.clone()))
                    }
                    Build::Full {
                        context,
                        dockerfile,
                    } => {
                        let ctx = context.clone().unwrap_or_else(|| ".".to_owned());
                        if let Some(d) = dockerfile
                            && !not_a_file(&ctx)
                        {
                            refs.push(("dockerfile", d.clone(), line, resolve(&base, &ctx)));
                        }
                        refs.push(("build context", ctx, line, base.clone()));
                    }
                }
            }
            if let Some(e) = &svc.env_file {
                for item in e.value.items() {
                    let p = match item {
                        EnvFile::Path(p) | EnvFile::Full { path: p } => p,
                    };
                    refs.push(("env_file", p.clone(), e.referenced.line(), base.clone()));
                }
            }
            if let Some(x) = &svc.extends
                && let Extends::Full { file: Some(f) } = &x.value
            {
                refs.push(("extends file", f.clone(), x.referenced.line(), base.clone()));
                follow.push((f.clone(), x.referenced.line(), None));
            }
            for v in &svc.volumes {
                let source = match &v.value {
                    Volume::Short(s) => s.split(':').next().unwrap_or(""),
                    Volume::Long {
                        kind: Some(k),
                        source: Some(s),
                    } if k == "bind" => s.as_str(),
                    _ => continue,
                };
                // relative bind-mount sources only: a named volume has no
                // `/`; an absolute or `~` one is a path of the host
                if source.starts_with('.') {
                    refs.push((
                        "bind-mount source",
                        source.to_owned(),
                        v.referenced.line(),
                        base.clone(),
                    ));
                }
            }
        }
        for inc in &doc.include {
            let line = inc.referenced.line();
            match &inc.value {
                Include::Path(p) => {
                    refs.push(("include", p.clone(), line, base.clone()));
                    follow.push((p.clone(), line, None));
                }
                Include::Full {
                    path,
                    project_directory,
                    env_file,
                } => {
                    if let Some(d) = project_directory {
                        refs.push(("include project_directory", d.clone(), line, base.clone()));
                    }
                    for p in path.items() {
                        refs.push(("include", p.clone(), line, base.clone()));
                        follow.push((p.clone(), line, project_directory.clone()));
                    }
                    for e in env_file.iter().flat_map(OneOrMany::items) {
                        refs.push(("include env_file", e.clone(), line, base.clone()));
                    }
                }
            }
        }
        for (what, defs) in [("secret file", &doc.secrets), ("config file", &doc.configs)] {
            for d in defs.values().flatten() {
                if let Some(f) = &d.value.file {
                    refs.push((what, f.clone(), d.referenced.line(), base.clone()));
                }
            }
        }
        for (what, path, line, from) in refs {
            if not_a_file(&path) {
                continue;
            }
            let resolved = resolve(&from, &path);
            let Ok(rel) = resolved.strip_prefix(&root) else {
                return Err(Outside {
                    line: line_of(&text, line, &path),
                    file: shown(&file),
                    what,
                    path,
                });
            };
            needed.push(Needed {
                what,
                file: shown(&file),
                line: line_of(&text, line, &path),
                rel: rel.to_string_lossy().into_owned(),
                path,
            });
        }
        for (path, _, project_dir) in follow {
            if not_a_file(&path) {
                continue;
            }
            let f = resolve(&base, &path);
            let b = match project_dir {
                Some(d) if !not_a_file(&d) => resolve(&base, &d),
                _ => f.parent().map(Path::to_path_buf).unwrap_or_default(),
            };
            queue.push((f, b));
        }
    }
    Ok(())
}

/// A reference that leaves a stack's root, in words: what a user is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The compose file that holds it.
    pub file: PathBuf,
    /// 1-based line in `file`.
    pub line: u64,
    pub message: String,
    pub hint: String,
}

/// A reference of the compose files `files` (relative to `root`) that
/// leaves `root`, refused at the compose file's line. `set`: the root
/// was set with `root:` (else it is the compose file's directory).
/// `key`: how a root is set (`root:` in the inventory, `--root` in local
/// mode), for the hint.
pub fn outside_root(root: &Path, files: &[String], set: bool, key: &str) -> Result<(), Refused> {
    let o = match check(root, files) {
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
    Err(Refused {
        message: format!(
            "{} `{}` is outside the stack's {} `{}`",
            o.what,
            o.path,
            if set { "root" } else { "directory" },
            root.display()
        ),
        file: o.file,
        line: o.line,
        hint,
    })
}
