//! The Layout of `lib.rs`, kept true: every path it names exists, every
//! file of the folders it maps is named, each file keeps the rule of its
//! line (or of its folder's line) about what it never imports, no two
//! files of `src/` import each other in a cycle, and no file of `src/` is
//! over [`MAX_LINES`] lines before its tests.
//!
//! An import is a `use crate::…`, `use super::…` or an inline `crate::…`
//! path in code (comments and a file's `#[cfg(test)]` module left out),
//! resolved to the file that holds it. A `mod.rs`'s `pub use` of its own
//! children is its face, not an import.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// No file of `src/` is longer than this before its tests.
const MAX_LINES: usize = 800;

/// The folders whose every file the Layout names.
const MAPPED: [&str; 6] = [
    "src",
    "tests",
    "tests/suite",
    "tests/support",
    "tests/script",
    "scripts",
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// One line of the Layout: a path (a file, or a folder ending in `/`), and
/// its rule, if it has one.
#[derive(Debug)]
struct Entry {
    path: String,
    rule: Option<Rule>,
}

/// What a file never imports (by top-level module: `host`, `report`, ...).
#[derive(Debug, Clone, PartialEq)]
enum Rule {
    /// `imports nothing` of the crate.
    Nothing,
    /// `imports only: a, b`.
    Only(Vec<String>),
    /// `never: a, b`.
    Never(Vec<String>),
}

impl Rule {
    fn parse(text: &str) -> Rule {
        let list = |s: &str| s.split(',').map(|w| w.trim().to_owned()).collect();
        let text = text.trim();
        if text == "imports nothing" {
            Rule::Nothing
        } else if let Some(l) = text.strip_prefix("imports only:") {
            Rule::Only(list(l))
        } else if let Some(l) = text.strip_prefix("never:") {
            Rule::Never(list(l))
        } else {
            panic!(
                "a rule of the Layout reads `imports nothing`, `imports only: a, b` or `never: a, b`, not `{text}`"
            )
        }
    }

    /// Whether importing `module` (a top-level module) breaks it.
    fn forbids(&self, module: &str) -> bool {
        match self {
            Rule::Nothing => true,
            Rule::Only(l) => !l.iter().any(|m| m == module),
            Rule::Never(l) => l.iter().any(|m| m == module),
        }
    }
}

/// The Layout block of `lib.rs`.
fn entries() -> Vec<Entry> {
    let doc = include_str!("lib.rs");
    let block = doc
        .split("//! ```text\n")
        .nth(1)
        .and_then(|rest| rest.split("//! ```\n").next())
        .expect("the Layout block");
    block
        .lines()
        .filter_map(|l| {
            let l = l.strip_prefix("//! ")?;
            let path = l.split_whitespace().next()?;
            if !(path.contains('/') || path.contains('.')) {
                return None;
            }
            let rule = l.split_once(" | ").map(|(_, r)| Rule::parse(r));
            Some(Entry {
                path: path.to_owned(),
                rule,
            })
        })
        .collect()
}

/// `src/remote/sh/{head,state}.sh` as its paths.
fn expand(path: &str) -> Vec<String> {
    match (path.find('{'), path.find('}')) {
        (Some(a), Some(b)) => path[a + 1..b]
            .split(',')
            .map(|w| format!("{}{w}{}", &path[..a], &path[b + 1..]))
            .collect(),
        _ => vec![path.to_owned()],
    }
}

fn named() -> BTreeSet<String> {
    entries().iter().flat_map(|e| expand(&e.path)).collect()
}

/// Every `.rs` file under `src/`, relative to the crate's root.
fn sources() -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&root().join("src"), &mut out);
    let mut out: Vec<String> = out
        .iter()
        .map(|p| {
            p.strip_prefix(root())
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    out.sort();
    out
}

/// A file's code: its `#[cfg(test)]` module and its comments left out.
fn code(text: &str) -> String {
    let text = text.split("\n#[cfg(test)]\nmod ").next().unwrap();
    let mut out = String::new();
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with("//") || t.starts_with("#[doc") {
            continue;
        }
        // a trailing comment (never inside a string here: `crate::` paths
        // are not in string literals of this crate's code)
        let line = match line.find(" // ") {
            Some(i) => &line[..i],
            None => line,
        };
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The module path of a file: `src/remote/call.rs` -> `remote::call`.
fn module_of(file: &str) -> Vec<String> {
    let p = file
        .strip_prefix("src/")
        .unwrap()
        .strip_suffix(".rs")
        .unwrap();
    let mut m: Vec<String> = p.split('/').map(str::to_owned).collect();
    if matches!(m.last().map(String::as_str), Some("mod" | "lib" | "main")) {
        m.pop();
    }
    m
}

/// `a::{b, c::{d, e}}` as `a::b`, `a::c::d`, `a::c::e`.
fn flatten(tree: &str) -> Vec<String> {
    // `x as y` is `x`: marked before the spaces go
    let tree: String = tree
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace(" as ", "#")
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    fn split_top(s: &str) -> Vec<&str> {
        let (mut depth, mut start, mut out) = (0, 0, Vec::new());
        for (i, c) in s.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    out.push(&s[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        out.push(&s[start..]);
        out.into_iter().filter(|p| !p.is_empty()).collect()
    }
    let mut out = Vec::new();
    for part in split_top(&tree) {
        match part.find("::{") {
            Some(i) if part.ends_with('}') => {
                for rest in flatten(&part[i + 3..part.len() - 1]) {
                    out.push(format!("{}::{rest}", &part[..i]));
                }
            }
            _ if part.starts_with('{') && part.ends_with('}') => {
                out.extend(flatten(&part[1..part.len() - 1]))
            }
            _ => out.push(part.split('#').next().unwrap().to_owned()),
        }
    }
    out
}

/// The files a file imports.
fn imports(file: &str, files: &BTreeMap<Vec<String>, String>) -> BTreeSet<String> {
    let text = std::fs::read_to_string(root().join(file)).unwrap();
    let code = code(&text);
    let me = module_of(file);
    // the module `super` names: the parent of this file's module
    let parent: Vec<String> = me[..me.len().saturating_sub(1)].to_vec();
    let resolve = |segs: Vec<String>| -> Option<String> {
        (1..=segs.len())
            .rev()
            .find_map(|n| files.get(&segs[..n]))
            .filter(|f| *f != file)
            .cloned()
    };
    let mut paths: Vec<Vec<String>> = Vec::new();
    let mut rest = code.as_str();
    // `use` statements (a `mod.rs`'s `pub use` of its children is its face)
    while let Some(i) = rest.find("use ") {
        let before = &rest[..i];
        let after = &rest[i + 4..];
        let end = after.find(';').unwrap_or(after.len());
        let tree = &after[..end];
        rest = &after[end..];
        let word_start = before.is_empty() || before.ends_with(|c: char| c.is_whitespace());
        if !word_start {
            continue;
        }
        let public = before.trim_end().ends_with("pub");
        for p in flatten(tree) {
            let segs: Vec<String> = p.split("::").map(str::to_owned).collect();
            match segs[0].as_str() {
                "crate" => paths.push(segs[1..].to_vec()),
                "super" => paths.push([parent.clone(), segs[1..].to_vec()].concat()),
                "self" if !public => paths.push([me.clone(), segs[1..].to_vec()].concat()),
                // a child's items, re-exported or used by its parent
                _ if !public
                    && files.contains_key(&[me.clone(), vec![segs[0].clone()]].concat()) =>
                {
                    paths.push([me.clone(), segs].concat())
                }
                _ => {}
            }
        }
    }
    // inline paths: `crate::a::b`, `super::a::b`
    for (prefix, base) in [("crate::", &[][..]), ("super::", &parent[..])] {
        for (i, _) in code.match_indices(prefix) {
            let word_start = !code[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_');
            let tail: String = code[i + prefix.len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            if word_start {
                let segs = tail
                    .split("::")
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned);
                paths.push(base.iter().cloned().chain(segs).collect());
            }
        }
    }
    // a parent's bare paths into its children: `table::width(..)`
    for (segs, _) in files
        .iter()
        .filter(|(m, _)| m.len() == me.len() + 1 && m.starts_with(&me))
    {
        let child = format!("{}::", segs[me.len()]);
        let used = code.match_indices(&child).any(|(i, _)| {
            let line_start = code[..i].rfind('\n').map_or(0, |n| n + 1);
            let line = code[line_start..].trim_start();
            !code[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':')
                && !line.starts_with("pub use ")
                && !line.starts_with("pub mod ")
        });
        if used {
            paths.push(segs.clone());
        }
    }
    paths.into_iter().filter_map(resolve).collect()
}

/// Every file of `src/` and the files it imports.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let files: BTreeMap<Vec<String>, String> =
        sources().into_iter().map(|f| (module_of(&f), f)).collect();
    files
        .values()
        .filter(|f| !test_only(f))
        .map(|f| (f.clone(), imports(f, &files)))
        .collect()
}

/// A file that is a `#[cfg(test)]` module whole (`tests.rs`, this one).
fn test_only(file: &str) -> bool {
    file.ends_with("/tests.rs") || file == "src/layout.rs"
}

/// The top-level module a file is of: `src/report/table.rs` -> `report`.
fn top(file: &str) -> String {
    module_of(file).first().cloned().unwrap_or_default()
}

#[test]
fn every_path_the_layout_names_exists() {
    for p in named() {
        assert!(
            root().join(&p).exists(),
            "Layout names {p}, which is not in the tree"
        );
    }
}

#[test]
fn every_file_is_in_the_layout() {
    let named = named();
    let mut missing = Vec::new();
    let mut dirs: Vec<String> = MAPPED.iter().map(|d| d.to_string()).collect();
    // and every folder of src/
    dirs.extend(sources().iter().filter_map(|f| {
        let d = Path::new(f).parent()?.to_string_lossy().into_owned();
        (d != "src").then_some(d)
    }));
    dirs.sort();
    dirs.dedup();
    for dir in dirs {
        if !named.contains(&format!("{dir}/")) && dir.starts_with("src/") {
            missing.push(format!("{dir}/"));
        }
        for e in std::fs::read_dir(root().join(&dir)).unwrap() {
            let path = e.unwrap().path();
            if path.is_file() {
                let rel = path
                    .strip_prefix(root())
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                if !named.contains(&rel) {
                    missing.push(rel);
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "not in the Layout of src/lib.rs: {missing:?}"
    );
}

#[test]
fn every_file_keeps_the_rule_of_its_line() {
    let rules: Vec<(String, Rule)> = entries()
        .into_iter()
        .filter_map(|e| Some((e.path, e.rule?)))
        .flat_map(|(p, r)| expand(&p).into_iter().map(move |p| (p, r.clone())))
        .collect();
    let mut broken = Vec::new();
    for (file, deps) in graph() {
        for (path, rule) in &rules {
            let applies = if path.ends_with('/') {
                file.starts_with(path.as_str())
            } else {
                file == *path
            };
            if !applies {
                continue;
            }
            for d in &deps {
                let m = top(d);
                // a folder's files import each other freely
                if path.ends_with('/') && d.starts_with(path.as_str()) {
                    continue;
                }
                if rule.forbids(&m) {
                    broken.push(format!("{file} imports {d} (`{path}`: {rule:?})"));
                }
            }
        }
    }
    assert!(
        broken.is_empty(),
        "the Layout's rules are broken:\n{}",
        broken.join("\n")
    );
}

#[test]
fn no_two_files_import_each_other_in_a_cycle() {
    let g = graph();
    // depth-first, with the path so far: a file met again on it is a cycle
    fn visit<'a>(
        f: &'a str,
        g: &'a BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
        cycles: &mut Vec<String>,
    ) {
        if let Some(i) = path.iter().position(|p| *p == f) {
            cycles.push(format!("{} -> {f}", path[i..].join(" -> ")));
            return;
        }
        if !done.insert(f) {
            return;
        }
        path.push(f);
        for d in &g[f] {
            visit(d, g, path, done, cycles);
        }
        path.pop();
    }
    let (mut done, mut cycles) = (BTreeSet::new(), Vec::new());
    for f in g.keys() {
        visit(f, &g, &mut Vec::new(), &mut done, &mut cycles);
    }
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn no_source_file_is_over_the_limit_before_its_tests() {
    let long: Vec<String> = sources()
        .into_iter()
        .filter(|f| !test_only(f))
        .filter_map(|f| {
            let text = std::fs::read_to_string(root().join(&f)).unwrap();
            let n = text
                .split("\n#[cfg(test)]\n")
                .next()
                .unwrap()
                .lines()
                .count();
            (n > MAX_LINES).then(|| format!("{f}: {n} lines"))
        })
        .collect();
    assert!(
        long.is_empty(),
        "over {MAX_LINES} lines before their tests: {long:?}"
    );
}

#[test]
fn the_import_reader_reads_use_trees() {
    assert_eq!(
        flatten("a::{b, c::{d, e as f}}, g"),
        ["a::b", "a::c::d", "a::c::e", "g"]
    );
}
