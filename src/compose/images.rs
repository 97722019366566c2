//! The images a stack is made from, as its files name them: each built
//! service's base images (every `FROM` of its Dockerfile and every image a
//! `COPY --from` reads, after the Dockerfile's `ARG` defaults and the
//! service's `build.args`), and each image-only service's `image:`. These
//! are what a registry is asked about (see [`crate::fresh`]).

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

/// One image a stack is made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// The service that uses it.
    pub service: String,
    /// The reference as the files give it, variables substituted
    /// (`busybox`, `127.0.0.1:5000/base:1`, `alpine@sha256:...`).
    pub reference: String,
    /// A base image of a built service (else the image of an image-only
    /// service).
    pub built: bool,
}

/// What the files say of the images a stack is made from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inputs {
    pub images: Vec<Input>,
    /// Images that cannot be named from the files alone, with why: a
    /// variable with no value here, a remote build context, a Dockerfile
    /// that cannot be read.
    pub unknown: Vec<(String, String)>,
}

/// The images of a stack's compose files (relative to `root`). A file that
/// cannot be read or parsed gives nothing (the stack's check says why).
pub fn inputs(root: &Path, files: &[String]) -> Inputs {
    let env = dotenv(root);
    let mut out = Inputs::default();
    let mut seen: BTreeMap<String, bool> = BTreeMap::new();
    super::services::each_service(root, files, |name, svc| {
        // a later file's service overrides an earlier one's keys; the
        // image inputs of the last file to say `build:` or `image:` count
        let build = svc.get("build").filter(|b| !b.is_null());
        let image = svc.get("image").and_then(Value::as_str);
        if build.is_none() && image.is_none() {
            return;
        }
        seen.insert(name.to_owned(), build.is_some());
        out.images.retain(|i| i.service != name);
        out.unknown.retain(|(s, _)| s != name);
        match build {
            Some(b) => built(root, name, b, &env, &mut out),
            None => match substitute(image.expect("checked"), &env) {
                Ok(r) => out.images.push(Input {
                    service: name.to_owned(),
                    reference: r,
                    built: false,
                }),
                Err(v) => out.unknown.push((
                    name.to_owned(),
                    format!("its image names ${{{v}}}, unset here"),
                )),
            },
        }
    });
    out
}

/// The base images of one built service.
fn built(root: &Path, service: &str, b: &Value, env: &BTreeMap<String, String>, out: &mut Inputs) {
    let (context, dockerfile, args) = match b {
        Value::String(c) => (c.clone(), None, BTreeMap::new()),
        Value::Object(m) => {
            let context = m
                .get("context")
                .and_then(Value::as_str)
                .unwrap_or(".")
                .to_owned();
            let args = match m.get("args") {
                // (compose fills in its variables first)
                Some(Value::Object(a)) => a
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), substitute(&scalar(v)?, env).ok()?)))
                    .collect(),
                Some(Value::Array(a)) => a
                    .iter()
                    .filter_map(|v| {
                        let (k, v) = v.as_str()?.split_once('=')?;
                        Some((k.to_owned(), substitute(v, env).ok()?))
                    })
                    .collect(),
                _ => BTreeMap::new(),
            };
            if let Some(inline) = m.get("dockerfile_inline").and_then(Value::as_str) {
                from_dockerfile(service, inline, &args, out);
                return;
            }
            let file = m
                .get("dockerfile")
                .and_then(Value::as_str)
                .map(str::to_owned);
            (context, file, args)
        }
        _ => return,
    };
    let unknown = |out: &mut Inputs, why: String| out.unknown.push((service.to_owned(), why));
    let context = match substitute(&context, env) {
        Ok(c) => c,
        Err(v) => return unknown(out, format!("its build context names ${{{v}}}, unset here")),
    };
    if context.contains("://") || context.starts_with("git@") {
        return unknown(out, format!("its build context `{context}` is remote"));
    }
    let path = root
        .join(&context)
        .join(dockerfile.as_deref().unwrap_or("Dockerfile"));
    match std::fs::read_to_string(&path) {
        Ok(text) => from_dockerfile(service, &text, &args, out),
        Err(e) => unknown(
            out,
            format!("its Dockerfile {} cannot be read: {e}", path.display()),
        ),
    }
}

/// A scalar build argument's value as compose passes it.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The images a Dockerfile's text reads: every `FROM` that is not an earlier
/// stage or `scratch`, and every `COPY --from=IMAGE`.
fn from_dockerfile(
    service: &str,
    text: &str,
    build_args: &BTreeMap<String, String>,
    out: &mut Inputs,
) {
    let mut args: BTreeMap<String, String> = BTreeMap::new();
    let mut stages: Vec<String> = Vec::new();
    let mut before_from = true;
    for line in instructions(text) {
        let mut words = line.split_whitespace();
        let Some(op) = words.next() else { continue };
        let rest: Vec<&str> = words.collect();
        match op.to_ascii_uppercase().as_str() {
            // only the ARGs before the first FROM are in scope of FROM
            "ARG" if before_from => {
                for a in &rest {
                    let (k, v) = a.split_once('=').unwrap_or((a, ""));
                    let v = build_args
                        .get(k)
                        .cloned()
                        .unwrap_or_else(|| v.trim_matches('"').to_owned());
                    args.insert(k.to_owned(), v);
                }
            }
            "FROM" => {
                before_from = false;
                let plain: Vec<&str> = rest
                    .iter()
                    .copied()
                    .filter(|w| !w.starts_with("--"))
                    .collect();
                let Some(image) = plain.first() else { continue };
                if let [_, as_, name] = plain.as_slice()
                    && as_.eq_ignore_ascii_case("as")
                {
                    stages.push(name.to_ascii_lowercase());
                }
                push_image(service, image, &args, &stages, out);
            }
            "COPY" => {
                if let Some(from) = rest.iter().find_map(|w| w.strip_prefix("--from=")) {
                    // a stage by name or number is no image
                    if !from.bytes().all(|b| b.is_ascii_digit()) {
                        push_image(service, from, &args, &stages, out);
                    }
                }
            }
            _ => {}
        }
    }
}

fn push_image(
    service: &str,
    image: &str,
    args: &BTreeMap<String, String>,
    stages: &[String],
    out: &mut Inputs,
) {
    let r = match substitute(image, args) {
        Ok(r) => r,
        Err(v) => {
            out.unknown.push((
                service.to_owned(),
                format!("its Dockerfile's `FROM {image}` names ${{{v}}}, with no value here"),
            ));
            return;
        }
    };
    let lower = r.to_ascii_lowercase();
    if lower == "scratch" || stages.contains(&lower) {
        return;
    }
    if !out
        .images
        .iter()
        .any(|i| i.service == service && i.reference == r)
    {
        out.images.push(Input {
            service: service.to_owned(),
            reference: r,
            built: true,
        });
    }
}

/// A Dockerfile's instructions: continuation lines joined, comments and
/// blank lines dropped.
fn instructions(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for raw in text.lines() {
        let t = raw.trim();
        if cur.is_empty() && (t.is_empty() || t.starts_with('#')) {
            continue;
        }
        if let Some(head) = t.strip_suffix('\\') {
            cur.push_str(head);
            cur.push(' ');
        } else {
            cur.push_str(t);
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// `$V`, `${V}`, `${V:-default}` and `${V-default}` replaced from `vars`;
/// `Err(name)` of the first variable with no value and no default.
pub fn substitute(s: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(body) = after.strip_prefix('{') {
            let Some(end) = body.find('}') else {
                return Err(body.to_owned());
            };
            let inner = &body[..end];
            let (name, default) = match inner.find([':', '-']) {
                Some(i) => {
                    let d = inner[i..].trim_start_matches(':');
                    (&inner[..i], d.strip_prefix('-').map(str::to_owned))
                }
                None => (inner, None),
            };
            match vars
                .get(name)
                .filter(|v| !v.is_empty())
                .cloned()
                .or(default)
            {
                Some(v) => out.push_str(&v),
                None => return Err(name.to_owned()),
            }
            rest = &body[end + 1..];
        } else if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else {
            let len = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            let name = &after[..len];
            match vars.get(name) {
                Some(v) => out.push_str(v),
                None => return Err(name.to_owned()),
            }
            rest = &after[len..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The stack's `.env` (compose's variables for `image:`), `KEY=VALUE`
/// lines; none when there is no such file.
fn dotenv(root: &Path) -> BTreeMap<String, String> {
    let Ok(text) = std::fs::read_to_string(root.join(".env")) else {
        return BTreeMap::new();
    };
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            if l.starts_with('#') {
                return None;
            }
            let (k, v) = l.strip_prefix("export ").unwrap_or(l).split_once('=')?;
            Some((
                k.trim().to_owned(),
                v.trim().trim_matches(['"', '\'']).to_owned(),
            ))
        })
        .collect()
}
