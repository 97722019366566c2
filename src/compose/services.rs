//! The services of a stack's compose files: which can run a second
//! container beside the old one (`zero_downtime`), which are jobs, which
//! mount the stack's directory, which bind mounts are data, which
//! variables compose interpolates.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

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
pub(super) fn each_service(
    root: &Path,
    files: &[String],
    mut f: impl FnMut(&str, &serde_json::Value),
) {
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

/// `zero_downtime: true` on a stack: the services that can be started
/// beside their old containers. A stack with none is refused (the key
/// would do nothing); the others get the normal `up`, with a warning.
pub fn beside_services(
    host: &str,
    sname: &str,
    dir: &Path,
    compose_files: &[String],
) -> Result<Vec<String>, (String, String)> {
    let (safe, not) = beside(dir, compose_files);
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

/// A path's components, without empty ones and `.`.
fn normal(v: &str) -> Vec<&str> {
    v.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect()
}
