//! The controller's memory of what it shipped, for `--dry-run`'s plan: for
//! each stack hash it shipped, the stack's files with a digest and a size
//! each, kept in the user's cache directory (`$XDG_CACHE_HOME/rbuild/trees`,
//! one small JSON file per hash, written once, atomically). A dry run reads
//! the tree of the hash a host runs and compares it with the files of now,
//! so it can say which files a rebuild would change. A hash this controller
//! never shipped (another admin box, a wiped cache) is "unknown", never a
//! guess. Nothing here is needed for a run to be right: a cache that cannot
//! be written or read only makes the plan say less.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::stack::{Contents, EntryKind, StackError};

/// Trees not read or written for this long are removed when one is written.
const KEEP: Duration = Duration::from_secs(90 * 24 * 3600);

/// A stack's entries by path.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree(BTreeMap<String, Item>);

/// One entry of a [`Tree`]: a digest of what it is (a file's mode and
/// contents, a directory's mode, a link's target), and a file's size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    digest: String,
    /// `None`: not a regular file.
    size: Option<u64>,
}

impl Tree {
    /// Read the stack's files (as listed when it was hashed) and digest them.
    pub fn of(c: &Contents) -> Result<Tree, StackError> {
        let mut t = BTreeMap::new();
        for e in &c.entries {
            let mut h = Sha256::new();
            h.update(format!("{:o}\0", e.mode).as_bytes());
            let size = match &e.kind {
                EntryKind::Dir => {
                    h.update(b"dir");
                    None
                }
                EntryKind::Symlink(target) => {
                    h.update(b"link\0");
                    h.update(target.as_bytes());
                    None
                }
                EntryKind::File => {
                    let p = c.dir.join(&e.path);
                    let io = |source| StackError::Io {
                        path: p.clone(),
                        source,
                    };
                    let mut f = std::fs::File::open(&p).map_err(io)?;
                    let mut buf = vec![0u8; 64 * 1024];
                    let mut size = 0u64;
                    h.update(b"file\0");
                    loop {
                        let n = f.read(&mut buf).map_err(io)?;
                        if n == 0 {
                            break;
                        }
                        size += n as u64;
                        h.update(&buf[..n]);
                    }
                    Some(size)
                }
            };
            let digest = crate::stack::hex(&h.finalize());
            t.insert(e.path.clone(), Item { digest, size });
        }
        Ok(Tree(t))
    }

    /// How many files (not directories) and how many bytes it holds.
    pub fn size(&self) -> (usize, u64) {
        let sizes = self.0.values().filter_map(|i| i.size);
        (sizes.clone().count(), sizes.sum())
    }

    /// What changed from `old` to `self`, by path, in path order.
    pub fn changes_from(&self, old: &Tree) -> Vec<Change> {
        let mut out = Vec::new();
        for (p, i) in &self.0 {
            match old.0.get(p) {
                None => out.push(Change::new(p, "added")),
                Some(o) if o.digest != i.digest => out.push(Change::new(p, "modified")),
                Some(_) => {}
            }
        }
        for p in old.0.keys() {
            if !self.0.contains_key(p) {
                out.push(Change::new(p, "removed"));
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out
    }
}

/// One path that a rebuild would change on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub path: String,
    /// `added`, `modified` or `removed`.
    pub change: &'static str,
}

impl Change {
    fn new(path: &str, change: &'static str) -> Change {
        Change {
            path: path.to_owned(),
            change,
        }
    }
}

/// Where trees are kept: `RBUILD_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/rbuild/trees`, else `~/.cache/rbuild/trees`.
pub fn dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("RBUILD_CACHE_DIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d).join("trees"));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("rbuild").join("trees"))
}

fn is_hash(hash: &str) -> bool {
    hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Remember the tree of `hash` (once: a tree of a hash never changes).
/// Failures are logged at debug level and otherwise ignored.
pub fn remember(dir: &Path, hash: &str, c: &Contents) {
    if !is_hash(hash) {
        return;
    }
    let path = dir.join(hash);
    if path.exists() {
        return;
    }
    let write = || -> Result<(), Box<dyn std::error::Error>> {
        let tree = Tree::of(c)?;
        crate::local_files::write_atomically(&path, &serde_json::to_vec(&tree)?)?;
        prune(dir);
        Ok(())
    };
    if let Err(e) = write() {
        tracing::debug!(
            "could not remember the files of {hash} in {}: {e}",
            dir.display()
        );
    }
}

/// The tree of `hash`, if this controller shipped it.
pub fn recall(dir: &Path, hash: &str) -> Option<Tree> {
    if !is_hash(hash) {
        return None;
    }
    let text = std::fs::read(dir.join(hash)).ok()?;
    serde_json::from_slice(&text).ok()
}

/// Remove trees older than [`KEEP`].
fn prune(dir: &Path) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let now = SystemTime::now();
    for e in rd.flatten() {
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age > KEEP);
        if old {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_says_what_changed_and_is_remembered_by_hash() {
        let d = tempfile::tempdir().unwrap();
        let stack = d.path().join("s");
        std::fs::create_dir_all(stack.join("conf")).unwrap();
        std::fs::write(stack.join("compose.yml"), "services: {}\n").unwrap();
        std::fs::write(stack.join("conf/a.conf"), "a=1\n").unwrap();
        std::fs::write(stack.join("gone.txt"), "x").unwrap();
        let before = crate::stack::read(&stack).unwrap();
        let cache = d.path().join("cache");
        remember(&cache, &before.hash, &before);
        assert_eq!(
            recall(&cache, &before.hash),
            Some(Tree::of(&before).unwrap())
        );
        assert_eq!(recall(&cache, &"0".repeat(64)), None);
        assert_eq!(Tree::of(&before).unwrap().size(), (3, 18));

        std::fs::write(stack.join("conf/a.conf"), "a=2\n").unwrap();
        std::fs::remove_file(stack.join("gone.txt")).unwrap();
        std::fs::write(stack.join("new.txt"), "n").unwrap();
        let now = Tree::of(&crate::stack::read(&stack).unwrap()).unwrap();
        let old = recall(&cache, &before.hash).unwrap();
        let ch: Vec<(String, &str)> = now
            .changes_from(&old)
            .into_iter()
            .map(|c| (c.path, c.change))
            .collect();
        assert_eq!(
            ch,
            [
                ("conf/a.conf".to_owned(), "modified"),
                ("gone.txt".to_owned(), "removed"),
                ("new.txt".to_owned(), "added"),
            ]
        );
        // a mode is a change too
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            stack.join("new.txt"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        let again = Tree::of(&crate::stack::read(&stack).unwrap()).unwrap();
        assert_eq!(again.changes_from(&now)[0].path, "new.txt");
        // not a hash: never a path outside the cache
        remember(&cache, "../x", &before);
        assert!(!d.path().join("x").exists());
    }
}
