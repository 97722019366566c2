//! What a stack's compose files reference on disk: build contexts and
//! Dockerfiles, `env_file`, `extends: file:`, `include:`, file-based
//! secrets and configs, and relative bind-mount sources. rbuild hashes and
//! ships one directory, the stack's root; a reference that leaves it would
//! be neither hashed (a change there is never noticed) nor shipped (the
//! host builds from stale files or fails), so it is refused, naming the
//! compose file, the line and the path. Files reached through `extends` and
//! `include` are read in turn, their paths relative to their own directory.
//!
//! Paths written with a variable (`${X}`), URLs (a git build context) and
//! absolute or `~` bind-mount sources (host paths such as the engine's
//! socket) are not the stack's files and are left alone.

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

/// Why a service cannot be replaced beside its old container
/// (`zero_downtime`): two copies of it could not run at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotBeside {
    /// It publishes a fixed host port (or one written with a variable).
    FixedPort,
    /// It sets `container_name`.
    ContainerName,
    /// `network_mode: host`: its ports are the host's.
    HostNetwork,
    /// It `extends` another service, whose keys are not read here.
    Extends,
}

impl NotBeside {
    pub fn as_str(self) -> &'static str {
        match self {
            NotBeside::FixedPort => "publishes a fixed host port",
            NotBeside::ContainerName => "sets `container_name`",
            NotBeside::HostNetwork => "uses `network_mode: host`",
            NotBeside::Extends => "extends another service",
        }
    }
}

/// Each service with a plain name (letters, digits, `.`, `_`, `-`) of each
/// of the stack's compose files (relative to `root`), in file order, with
/// its keys; a file that cannot be read or parsed gives none.
fn each_service(root: &Path, files: &[String], mut f: impl FnMut(&str, &serde_json::Value)) {
    #[derive(Deserialize)]
    struct Services {
        #[serde(default)]
        services: indexmap::IndexMap<String, serde_json::Value>,
    }
    for file in files {
        let Ok(text) = std::fs::read_to_string(root.join(file)) else {
            continue;
        };
        let Ok(doc) = serde_saphyr::from_str::<Services>(&text) else {
            continue;
        };
        for (name, svc) in &doc.services {
            let plain = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
            if plain {
                f(name, svc);
            }
        }
    }
}

/// The services of a stack's compose files (relative to `root`, merged
/// in order: a service any of them gives a fixed host port or a
/// `container_name` is not safe) for `zero_downtime`: those a second
/// container can run beside (in the order first seen), and the others with
/// why not. A service whose name is not plain (letters, digits, `.`, `_`,
/// `-`) is not listed at all, nor are the services of `include:`d files: they
/// get the normal `up`. A file that cannot be read or parsed gives nothing.
pub fn beside(root: &Path, files: &[String]) -> (Vec<String>, Vec<(String, NotBeside)>) {
    use serde_json::Value;
    let mut order: Vec<String> = Vec::new();
    let mut why: BTreeMap<String, NotBeside> = BTreeMap::new();
    each_service(root, files, |name, svc| {
        if !order.iter().any(|o| o == name) {
            order.push(name.to_owned());
        }
        let reason = if svc.get("container_name").is_some_and(|v| !v.is_null()) {
            Some(NotBeside::ContainerName)
        } else if svc.get("network_mode").and_then(Value::as_str) == Some("host") {
            Some(NotBeside::HostNetwork)
        } else if svc.get("extends").is_some_and(|v| !v.is_null()) {
            Some(NotBeside::Extends)
        } else if svc
            .get("ports")
            .and_then(Value::as_array)
            .is_some_and(|ps| ps.iter().any(fixed_port))
        {
            Some(NotBeside::FixedPort)
        } else {
            None
        };
        if let Some(r) = reason {
            why.entry(name.to_owned()).or_insert(r);
        }
    });
    let mut safe = Vec::new();
    let mut not = Vec::new();
    for name in order {
        match why.get(&name) {
            Some(r) => not.push((name, *r)),
            None => safe.push(name),
        }
    }
    (safe, not)
}

/// The services of a stack's compose files that another service waits for
/// to complete (`depends_on: {NAME: {condition:
/// service_completed_successfully}}`): jobs, in the order first seen. The
/// health gate waits for each to exit, and it must exit 0. A service with
/// `restart: "no"` or `on-failure` that nothing waits for is not one: such
/// a service that keeps running is a service (compose's meaning is "do not
/// restart" and "restart after a crash"), and one that exits is judged by
/// its exit code. Plain names only; unreadable files give nothing.
pub fn one_shots(root: &Path, files: &[String]) -> Vec<String> {
    use serde_json::Value;
    let mut jobs: indexmap::IndexSet<String> = indexmap::IndexSet::new();
    each_service(root, files, |_, svc| {
        if let Some(Value::Object(deps)) = svc.get("depends_on") {
            for (dep, how) in deps {
                let completes = how.get("condition").and_then(Value::as_str)
                    == Some("service_completed_successfully");
                if completes {
                    jobs.insert(dep.clone());
                }
            }
        }
    });
    jobs.into_iter().collect()
}

/// What the services mount of the stack's directory, as (service, path)
/// pairs, the path relative to the stack's root without `./` (`.` for the
/// whole): a relative bind-mount source (`./site:/www:ro`, `.:/code`, the
/// long form with `type: bind`), or a file secret or config (compose mounts
/// those from the file). A ship puts a new copy of the directory in place:
/// on the host, a mounted path whose content did not change keeps its
/// inode (the container is left alone), and a service a changed path of
/// which it mounts is recreated after an `up` that left it. A path that is
/// not plain (letters, digits, `._-/`) is given as `.`: its service is
/// recreated whenever the stack ships. Plain service names, first seen
/// first.
pub fn mounting(root: &Path, files: &[String]) -> Vec<(String, String)> {
    use serde_json::Value;
    #[derive(Deserialize)]
    struct Top {
        #[serde(default)]
        secrets: indexmap::IndexMap<String, Value>,
        #[serde(default)]
        configs: indexmap::IndexMap<String, Value>,
    }
    // the file-backed secrets and configs of every file
    let mut from_files: BTreeMap<String, String> = BTreeMap::new();
    for file in files {
        let Ok(text) = std::fs::read_to_string(root.join(file)) else {
            continue;
        };
        let Ok(top) = serde_saphyr::from_str::<Top>(&text) else {
            continue;
        };
        for (name, v) in top.secrets.iter().chain(top.configs.iter()) {
            if let Some(f) = v.get("file").and_then(Value::as_str) {
                from_files.insert(name.clone(), f.to_owned());
            }
        }
    }
    let relative = |s: &str| s == "." || s.starts_with("./") || s.starts_with("../");
    // the path as the host script takes it: plain, inside the root
    let plain = |s: &str| {
        let p = s.trim_start_matches("./").trim_end_matches('/');
        let ok = !p.is_empty()
            && !p.starts_with("..")
            && !p.split('/').any(|c| c.is_empty() || c == "." || c == "..")
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c));
        if ok { p.to_owned() } else { ".".to_owned() }
    };
    let mut out: indexmap::IndexSet<(String, String)> = indexmap::IndexSet::new();
    each_service(root, files, |name, svc| {
        for v in svc
            .get("volumes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let source = match v {
                Value::String(s) => Some(s.split(':').next().unwrap_or("")),
                Value::Object(o) if o.get("type").and_then(Value::as_str) == Some("bind") => {
                    o.get("source").and_then(Value::as_str)
                }
                _ => None,
            };
            if let Some(s) = source.filter(|s| relative(s)) {
                out.insert((name.to_owned(), plain(s)));
            }
        }
        for k in ["secrets", "configs"] {
            for x in svc.get(k).and_then(Value::as_array).into_iter().flatten() {
                let n = x
                    .as_str()
                    .or_else(|| x.get("source").and_then(Value::as_str));
                if let Some(f) = n.and_then(|n| from_files.get(n)) {
                    out.insert((name.to_owned(), plain(f)));
                }
            }
        }
    });
    out.into_iter().collect()
}

/// The names of the variables a stack's compose files interpolate from the
/// environment (`${TAG}`, `${TAG:-x}`, `$TAG`; not `$$`, which is a
/// literal `$`), sorted, each once. Unreadable files give nothing.
pub fn variables(root: &Path, files: &[String]) -> Vec<String> {
    let mut out = std::collections::BTreeSet::new();
    for f in files {
        let Ok(text) = std::fs::read_to_string(root.join(f)) else {
            continue;
        };
        let b = text.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] != b'$' {
                i += 1;
                continue;
            }
            if b.get(i + 1) == Some(&b'$') {
                i += 2;
                continue;
            }
            let start = if b.get(i + 1) == Some(&b'{') {
                i + 2
            } else {
                i + 1
            };
            let mut end = start;
            while end < b.len() && (b[end].is_ascii_alphanumeric() || b[end] == b'_') {
                end += 1;
            }
            if end > start && !b[start].is_ascii_digit() {
                out.insert(text[start..end].to_owned());
            }
            i = end.max(i + 1);
        }
    }
    out.into_iter().collect()
}

/// Whether a `ports:` entry publishes a fixed host port: `"8080:80"`,
/// `"127.0.0.1:8080:80"`, `published: 8080`; not `"80"`, `80`,
/// `"127.0.0.1::80"` or a long form without `published` (the engine picks
/// a free port). One written with a variable cannot be told: fixed.
fn fixed_port(p: &serde_json::Value) -> bool {
    use serde_json::Value;
    match p {
        Value::Number(_) => false,
        Value::String(s) => {
            if s.contains('$') {
                return true;
            }
            let s = s.split('/').next().unwrap_or("");
            // an IPv6 host address in brackets holds colons of its own
            let s = match s.rfind(']') {
                Some(i) => &s[i + 1..],
                None => s,
            };
            let parts: Vec<&str> = s.split(':').collect();
            match parts.as_slice() {
                [_] | [] => false,
                [.., host, _] => !host.is_empty(),
            }
        }
        Value::Object(m) => match m.get("published") {
            None | Some(Value::Null) => false,
            Some(Value::String(s)) => !s.is_empty(),
            Some(_) => true,
        },
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (p, text) in files {
            let p = d.path().join(p);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, text).unwrap();
        }
        d
    }

    const DEPLOY: &str = "services:\n  web:\n    build: ..\n    env_file:\n      - ./local.env\n      - ../common.env\n    extends:\n      file: ../base.yml\n      service: base\n    volumes:\n      - ../data:/data\n      - /var/run/docker.sock:/s\n      - named:/n\ninclude:\n  - ../db/compose.yml\n";

    fn project() -> tempfile::TempDir {
        tree(&[
            ("deploy/compose.yml", DEPLOY),
            ("deploy/local.env", ""),
            ("common.env", "A=1\n"),
            ("base.yml", "services:\n  base:\n    env_file: common.env\n"),
            (
                "db/compose.yml",
                "services:\n  db:\n    build:\n      context: .\n      dockerfile: ../Dockerfile.db\n",
            ),
        ])
    }

    #[test]
    fn references_inside_the_root_pass() {
        let d = project();
        assert_eq!(check(d.path(), &["deploy/compose.yml".into()]), Ok(()));
    }

    #[test]
    fn a_reference_leaving_the_root_names_file_line_and_path() {
        let d = project();
        let e = check(&d.path().join("deploy"), &["compose.yml".into()]).unwrap_err();
        assert_eq!(e.file, d.path().join("deploy/compose.yml"));
        assert_eq!(
            (e.line, e.what, e.path.as_str()),
            (3, "build context", "..")
        );
    }

    #[test]
    fn each_kind_of_reference_is_found_on_its_line() {
        let cases: &[(&str, u64, &str, &str)] = &[
            (
                "services:\n  a:\n    image: x\n    env_file:\n      - a.env\n      - ../b.env\n",
                6,
                "env_file",
                "../b.env",
            ),
            (
                "services:\n  a:\n    env_file: ../b.env\n",
                3,
                "env_file",
                "../b.env",
            ),
            (
                "services:\n  a:\n    env_file:\n      - path: ../b.env\n        required: false\n",
                4,
                "env_file",
                "../b.env",
            ),
            (
                "services:\n  a:\n    build:\n      context: .\n      dockerfile: ../Dockerfile\n",
                5,
                "dockerfile",
                "../Dockerfile",
            ),
            (
                "services:\n  a:\n    extends:\n      file: ../base.yml\n      service: b\n",
                4,
                "extends file",
                "../base.yml",
            ),
            (
                "services:\n  a:\n    volumes:\n      - ./ok:/ok\n      - ../conf:/conf:ro\n",
                5,
                "bind-mount source",
                "../conf",
            ),
            (
                "services:\n  a:\n    volumes:\n      - type: bind\n        source: ../x\n        target: /x\n",
                5,
                "bind-mount source",
                "../x",
            ),
            (
                "include:\n  - path: ../other/compose.yml\n",
                2,
                "include",
                "../other/compose.yml",
            ),
            (
                "secrets:\n  s:\n    file: ../secret.txt\n",
                3,
                "secret file",
                "../secret.txt",
            ),
            (
                "services:\n  a:\n    build: /abs/elsewhere\n",
                3,
                "build context",
                "/abs/elsewhere",
            ),
        ];
        for (text, line, what, path) in cases {
            let d = tree(&[("s/compose.yml", text)]);
            let e = check(&d.path().join("s"), &["compose.yml".into()]).unwrap_err();
            assert_eq!(
                (e.line, e.what, e.path.as_str()),
                (*line, *what, *path),
                "{text}"
            );
        }
    }

    #[test]
    fn what_is_not_a_file_of_the_stack_is_left_alone() {
        let d = tree(&[(
            "s/compose.yml",
            "services:\n  a:\n    build: https://github.com/x/y.git\n    env_file: ${ENV_FILE:-../x.env}\n    volumes:\n      - /srv/data:/data\n      - ~/cache:/cache\n      - data:/d\n  b:\n    extends: a\n  c:\nvolumes:\n  data: {}\n",
        )]);
        assert_eq!(check(&d.path().join("s"), &["compose.yml".into()]), Ok(()));
    }

    #[test]
    fn included_and_extended_files_are_read_in_turn() {
        let d = tree(&[
            ("r/s/compose.yml", "include:\n  - ../inc/compose.yml\n"),
            (
                "r/inc/compose.yml",
                "services:\n  a:\n    env_file: ../../outside.env\n",
            ),
        ]);
        let e = check(&d.path().join("r"), &["s/compose.yml".into()]).unwrap_err();
        assert_eq!(e.file, d.path().join("r/inc/compose.yml"));
        assert_eq!((e.line, e.path.as_str()), (3, "../../outside.env"));
    }

    #[test]
    fn services_with_a_fixed_host_port_or_a_name_are_not_replaced_beside() {
        let d = tree(&[
            (
                "compose.yml",
                "services:\n  web:\n    build: .\n    ports:\n      - \"80\"\n      - 8081\n      - \"127.0.0.1::82\"\n      - target: 83\n  api:\n    image: x\n    ports:\n      - \"8080:80\"\n  db:\n    image: y\n    container_name: the-db\n  six:\n    image: z\n    ports:\n      - \"[::1]:9000:90/tcp\"\n  var:\n    image: z\n    ports:\n      - \"${PORT}\"\n  long:\n    image: z\n    ports:\n      - target: 80\n        published: \"8443\"\n  hostnet:\n    image: z\n    network_mode: host\n  ext:\n    extends:\n      file: base.yml\n      service: b\n  worker:\n    image: w\n",
            ),
            (
                "compose.override.yml",
                "services:\n  worker:\n    ports:\n      - 9090:90\n  extra:\n    image: e\n",
            ),
        ]);
        let (safe, not) = beside(
            d.path(),
            &["compose.yml".into(), "compose.override.yml".into()],
        );
        assert_eq!(safe, ["web", "extra"]);
        assert_eq!(
            not,
            [
                ("api".to_owned(), NotBeside::FixedPort),
                ("db".to_owned(), NotBeside::ContainerName),
                ("six".to_owned(), NotBeside::FixedPort),
                ("var".to_owned(), NotBeside::FixedPort),
                ("long".to_owned(), NotBeside::FixedPort),
                ("hostnet".to_owned(), NotBeside::HostNetwork),
                ("ext".to_owned(), NotBeside::Extends),
                ("worker".to_owned(), NotBeside::FixedPort),
            ]
        );
    }

    #[test]
    fn jobs_are_the_services_others_wait_to_complete() {
        let d = tree(&[
            (
                "compose.yml",
                "services:\n  app:\n    image: x\n    depends_on:\n      migrate: {condition: service_completed_successfully}\n      db: {condition: service_healthy}\n  migrate: {image: x, restart: \"no\"}\n  web: {image: x, restart: \"no\"}\n  api: {image: x, restart: on-failure}\n  db: {image: x}\n",
            ),
            (
                "compose.prod.yml",
                "services:\n  worker:\n    depends_on: {seed: {condition: service_completed_successfully}}\n  seed: {image: x}\n",
            ),
        ]);
        let files = ["compose.yml".to_owned(), "compose.prod.yml".to_owned()];
        // a server with restart "no" or on-failure that nothing waits for is
        // no job
        assert_eq!(one_shots(d.path(), &files), ["migrate", "seed"]);
        assert_eq!(one_shots(d.path(), &files[..1]), ["migrate"]);
    }

    #[test]
    fn the_variables_compose_interpolates() {
        let d = tree(&[(
            "compose.yml",
            "services:\n  app:\n    image: \"reg/app:${TAG}\"\n    environment: [\"A=${B:-x}\", \"P=$$HOME\", \"Q=$PORT\"]\n    command: [\"sh\", \"-c\", \"echo $$1 ${TAG}\"]\n",
        )]);
        assert_eq!(
            variables(d.path(), &["compose.yml".into()]),
            ["B", "PORT", "TAG"]
        );
    }

    #[test]
    fn services_that_mount_the_stack_directory() {
        let d = tree(&[(
            "compose.yml",
            "services:\n  proxy:\n    image: x\n    volumes: [\"./site:/www:ro\", \"./conf/app.conf:/etc/app.conf:ro\"]\n  code:\n    build: .\n    volumes: [\".:/code\"]\n  long:\n    image: x\n    volumes:\n      - {type: bind, source: ./data, target: /data}\n  db:\n    image: x\n    volumes: [\"dbdata:/var/lib/db\", \"/etc/localtime:/etc/localtime:ro\"]\n    secrets: [db_pw]\n  app:\n    image: x\n    secrets: [token]\n  plain: {image: x}\nsecrets:\n  db_pw: {file: ./secrets/db_pw.txt}\n  token: {external: true}\nvolumes:\n  dbdata: {}\n",
        )]);
        let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        assert_eq!(
            mounting(d.path(), &["compose.yml".into()]),
            pairs(&[
                ("proxy", "site"),
                ("proxy", "conf/app.conf"),
                ("code", "."),
                ("long", "data"),
                ("db", "secrets/db_pw.txt"),
            ])
        );
    }

    #[test]
    fn a_file_that_does_not_parse_names_no_service() {
        let d = tree(&[("compose.yml", "services: [\n")]);
        assert_eq!(beside(d.path(), &["compose.yml".into()]), (vec![], vec![]));
    }
}
