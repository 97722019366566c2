//! What the controller ships: every distinct stack directory is read and
//! hashed once, before any host is touched, and a payload (one tar stream
//! of some stacks) is built once per distinct set of stacks, however many
//! hosts it goes to. A stack that cannot be read is that stack's failure,
//! not the run's: its rows say why, the other stacks go on.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use std::io::Write;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::inventory::{Host, Stack};
use crate::stack::{self, Contents, StackError};

/// The hashed stacks of a run and the payloads built from them.
#[derive(Debug, Default)]
pub struct Shipments {
    by_dir: HashMap<PathBuf, Result<Arc<Contents>, Arc<StackError>>>,
    /// The hashes of stacks whose directory is given a mode or group of its
    /// own (see [`Stack::perms`]): the files' hash and those, hashed.
    with_perms: HashMap<(PathBuf, String), String>,
    /// Payloads already built, by the (name, directory) of the stacks they
    /// carry.
    payloads: Mutex<HashMap<Vec<(String, PathBuf)>, Payload>>,
    /// A dry run's trees of the stacks' files (see [`crate::trees`]), read
    /// once per directory when first asked for.
    trees: Mutex<HashMap<PathBuf, Option<Arc<crate::trees::Tree>>>>,
    /// The trees this controller remembered shipping, by hash, read from
    /// its cache once each when first asked for (a dry run's plan: many
    /// hosts run the same build).
    shipped: Mutex<HashMap<String, Option<Arc<crate::trees::Tree>>>>,
}

/// Warn of the stack's writable bind mounts whose local copy ships: what
/// the containers write there is replaced by each ship. A data directory
/// can be left out (`.rbuildignore`); code (a build context, or the whole
/// directory) cannot: it is to be mounted read-only, the data kept apart.
fn warn_writable(s: &crate::inventory::Stack, dir: &std::path::Path, c: &stack::Contents) {
    let contexts: Vec<String> = crate::compose::needed(&s.root, &s.compose_files)
        .into_iter()
        .filter(|n| n.what == "build context" || n.what == "dockerfile")
        .map(|n| n.rel)
        .collect();
    for d in &s.data_dirs {
        if d == "." {
            tracing::warn!(
                "stack `{}`: its whole directory is bind-mounted into a container that may write it (`.:...`): each ship replaces the files rbuild ships there, so what the containers write into them is lost; mount it `:ro` and keep the data in a directory of its own, listed in {}/.rbuildignore",
                s.name,
                dir.display()
            );
            continue;
        }
        let shipped = c.entries.iter().any(|e| stack::under(&e.path, d));
        if !shipped {
            continue;
        }
        // code: the mount is a build context, or holds one
        if contexts.iter().any(|ctx| stack::under(ctx, d)) {
            tracing::warn!(
                "stack `{}`: `{d}` is a build context and is bind-mounted into a container that may write it: each ship replaces its files, and leaving it out of the ship would fail the build; mount it `:ro`, and write data to a directory of its own, listed in {}/.rbuildignore",
                s.name,
                dir.display()
            );
        } else {
            tracing::warn!(
                "stack `{}`: `{d}` is bind-mounted into a container that may write it, and its local copy ships: a file shipped there replaces the host's; list `{d}/` in {}/.rbuildignore to keep what the containers write on the host alone",
                s.name,
                dir.display()
            );
        }
    }
}

impl Shipments {
    /// Read and hash the directory of every stack of `hosts`, once each.
    ///
    /// `in_place` (local mode: stacks are built where they are, nothing is
    /// shipped): what the containers may write into the stack's directory
    /// (its writable bind mounts) is not part of its hash, or every run
    /// would rebuild it. Shipped stacks keep it in (it would ship), and a
    /// warning says so.
    pub fn hash(hosts: &[Host], in_place: bool) -> Shipments {
        let mut by_dir = HashMap::new();
        for s in hosts.iter().flat_map(|h| &h.stacks) {
            by_dir.entry(s.dir()).or_insert_with_key(|dir| {
                // (a writable mount of the whole directory is no data
                // directory to leave out of the hash)
                let data: Vec<String> = s.data_dirs.iter().filter(|d| *d != ".").cloned().collect();
                let skip: &[String] = if in_place { &data } else { &[] };
                let c = stack::read_without(dir, skip);
                if let Ok(c) = &c
                    && !in_place
                {
                    warn_writable(s, dir, c);
                }
                c.map(Arc::new).map_err(Arc::new)
            });
        }
        let mut with_perms = HashMap::new();
        for s in hosts.iter().flat_map(|h| &h.stacks) {
            if let (Some(p), Some(Ok(c))) = (s.perms(), by_dir.get(&s.dir())) {
                let mut h = Sha256::new();
                h.update(b"rbuild-perms-v1\0");
                h.update(c.hash.as_bytes());
                h.update(b"\0");
                h.update(p.as_bytes());
                with_perms.insert((s.dir(), p), stack::hex(&h.finalize()));
            }
        }
        Shipments {
            by_dir,
            with_perms,
            payloads: Default::default(),
            trees: Default::default(),
            shipped: Default::default(),
        }
    }

    fn contents(&self, s: &Stack) -> &Result<Arc<Contents>, Arc<StackError>> {
        self.by_dir
            .get(&s.dir())
            .expect("every stack of the run was read")
    }

    /// The stack's hash (what a rebuild of it now would record), or why its
    /// files cannot be read.
    pub fn hash_of(&self, s: &Stack) -> Result<&str, &StackError> {
        match self.contents(s) {
            Ok(c) => Ok(s
                .perms()
                .and_then(|p| self.with_perms.get(&(s.dir(), p)))
                .unwrap_or(&c.hash)),
            Err(e) => Err(e),
        }
    }

    /// The tree of the stack's files (each digested), read on first use:
    /// for a dry run's plan. `None` if they cannot be read.
    pub fn tree_of(&self, s: &Stack) -> Option<Arc<crate::trees::Tree>> {
        let mut trees = self.trees.lock().expect("not poisoned");
        trees
            .entry(s.dir())
            .or_insert_with(|| {
                let c = self.contents(s).as_ref().ok()?;
                crate::trees::Tree::of(c).ok().map(Arc::new)
            })
            .clone()
    }

    /// The tree of the build `hash`, if this controller shipped it (see
    /// [`crate::trees::recall`]).
    pub fn shipped_tree(&self, hash: &str) -> Option<Arc<crate::trees::Tree>> {
        let mut shipped = self.shipped.lock().expect("not poisoned");
        shipped
            .entry(hash.to_owned())
            .or_insert_with(|| {
                let dir = crate::trees::dir()?;
                crate::trees::recall(&dir, hash).map(Arc::new)
            })
            .clone()
    }

    /// The payload carrying these stacks (readable ones), each under its
    /// name: measured once per distinct set.
    pub async fn payload(&self, stacks: &[&Stack]) -> Result<Payload, StackError> {
        let key: Vec<(String, PathBuf)> =
            stacks.iter().map(|s| (s.name.clone(), s.dir())).collect();
        if let Some(p) = self.payloads.lock().expect("not poisoned").get(&key) {
            return Ok(p.clone());
        }
        let mut parts = Vec::with_capacity(stacks.len());
        for s in stacks {
            let c = self
                .contents(s)
                .clone()
                .map_err(|e| StackError::Unreadable {
                    message: e.to_string(),
                })?;
            parts.push((s.name.clone(), c));
        }
        // what is shipped is remembered by hash, for a later dry run's plan
        let remember: Vec<(String, Arc<Contents>)> = stacks
            .iter()
            .zip(&parts)
            .filter_map(|(s, (_, c))| Some((self.hash_of(s).ok()?.to_owned(), c.clone())))
            .collect();
        let p = tokio::task::spawn_blocking(move || {
            if let Some(dir) = crate::trees::dir() {
                for (hash, c) in &remember {
                    crate::trees::remember(&dir, hash, c);
                }
            }
            Payload::measure(parts)
        })
        .await
        .map_err(|e| StackError::Unreadable {
            message: format!("packing failed: {e}"),
        })??;
        self.payloads
            .lock()
            .expect("not poisoned")
            .insert(key, p.clone());
        Ok(p)
    }
}

/// The shipped stacks of an apply: one tar stream. It is measured once (its
/// size and sha256 go ahead of it, so that the host verifies it before
/// unpacking anything), then written to each host straight from the files:
/// it is never held in memory, however large.
#[derive(Debug, Clone)]
pub struct Payload {
    pub size: u64,
    /// Hex sha256 of the stream.
    pub sha256: String,
    parts: Arc<Vec<(String, Arc<Contents>)>>,
}

/// Bytes written to a stream are counted and hashed, then dropped.
struct Measure(u64, Sha256);

impl Write for Measure {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        self.1.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Bytes written go to an async writer through a bounded channel, in
/// chunks.
struct Chunks {
    tx: tokio::sync::mpsc::Sender<Vec<u8>>,
    buf: Vec<u8>,
}

const CHUNK: usize = 64 * 1024;

impl Chunks {
    fn send(&mut self) -> std::io::Result<()> {
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .blocking_send(chunk)
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    }
}

impl Write for Chunks {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(buf);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            self.send()?;
        }
        Ok(())
    }
}

impl Payload {
    fn refs(parts: &[(String, Arc<Contents>)]) -> Vec<(&str, &Contents)> {
        parts
            .iter()
            .map(|(n, c)| (n.as_str(), c.as_ref()))
            .collect()
    }

    /// Pack the stacks once, keeping only the stream's size and hash
    /// (blocking: it reads every file).
    pub fn measure(parts: Vec<(String, Arc<Contents>)>) -> Result<Payload, StackError> {
        let m = stack::write_payload(&Payload::refs(&parts), Measure(0, Sha256::new()))?;
        Ok(Payload {
            size: m.0,
            sha256: stack::hex(&m.1.finalize()),
            parts: Arc::new(parts),
        })
    }

    /// Write the stream to `w`, packing it again from the files as it goes.
    /// Should a file have changed since it was measured, this fails and the
    /// host, finding another size or hash than announced, unpacks nothing.
    pub async fn write_to(&self, w: &mut (impl AsyncWrite + Unpin)) -> std::io::Result<()> {
        let (tx, mut rx) = tokio::sync::mpsc::channel(4);
        let parts = self.parts.clone();
        let producer = tokio::task::spawn_blocking(move || {
            let w = Chunks {
                tx,
                buf: Vec::with_capacity(CHUNK),
            };
            let mut w = stack::write_payload(&Payload::refs(&parts), w)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            w.flush()
        });
        while let Some(chunk) = rx.recv().await {
            w.write_all(&chunk).await?;
        }
        producer.await.map_err(std::io::Error::other)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::Inventory;

    #[test]
    fn what_containers_write_in_place_is_no_change_and_is_warned_of_when_shipped() {
        let d = tempfile::tempdir().unwrap();
        let web = d.path().join("web");
        std::fs::create_dir_all(web.join("appdata")).unwrap();
        std::fs::write(
            web.join("compose.yml"),
            "services:\n  db:\n    image: x\n    volumes:\n      - ./appdata:/var/lib/db\n      - ./conf/my.cnf:/etc/my.cnf:ro\n      - data:/elsewhere\n      - type: bind\n        source: ./uploads\n        target: /up\n      - ${LOGS:-./logs}:/logs\nvolumes:\n  data: {}\n",
        )
        .unwrap();
        let inv = Inventory::parse(
            &d.path().join("inventory.yaml"),
            "hosts:\n  h:\n    stacks:\n      - name: web\n        compose_file: web/compose.yml\n",
        )
        .unwrap();
        let s = &inv.hosts[0].stacks[0];
        assert_eq!(s.data_dirs, ["appdata", "uploads"]);
        let hash = |in_place| {
            Shipments::hash(&inv.hosts, in_place)
                .hash_of(s)
                .unwrap()
                .to_owned()
        };
        let (local, shipped) = (hash(true), hash(false));
        std::fs::write(web.join("appdata/db.sqlite"), "rows").unwrap();
        assert_eq!(hash(true), local, "built in place: data is no change");
        assert_ne!(hash(false), shipped, "shipped: it would ship");
    }
}
