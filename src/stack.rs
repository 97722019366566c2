//! What a stack ships: the directory that holds its compose file, less `.git`
//! and what `.rbuildignore` lists (gitignore syntax). Its hash is a sha256
//! over exactly what is shipped: sorted paths, modes and contents.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The name of the ignore file in a stack's directory.
pub const IGNORE_FILE: &str = ".rbuildignore";

#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error("`{path}`: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("walking `{dir}`: {source}")]
    Walk {
        dir: PathBuf,
        #[source]
        source: ignore::Error,
    },
    #[error("`{}`: the name is not UTF-8, which rbuild cannot ship", path.display())]
    NotUtf8 { path: PathBuf },
    /// Read before, and could not be then.
    #[error("{message}")]
    Unreadable { message: String },
    #[error("`{}`: its files changed while rbuild ran; run it again", dir.display())]
    Changed { dir: PathBuf },
}

/// One file or directory of a stack, relative to the stack's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Relative path with `/` separators.
    pub path: String,
    pub kind: EntryKind,
    /// Permission bits (`0o777` mask).
    pub mode: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    Dir,
    File,
    Symlink(String),
}

/// A stack's directory, its file list and its content hash.
#[derive(Debug, Clone)]
pub struct Contents {
    pub dir: PathBuf,
    pub entries: Vec<Entry>,
    /// Hex sha256 over the entries and file contents.
    pub hash: String,
}

/// List what would be shipped from `dir`, sorted by path.
pub fn list(dir: &Path) -> Result<Vec<Entry>, StackError> {
    list_without(dir, &[])
}

/// Whether `path` is `skip` or inside it.
pub fn under(path: &str, skip: &str) -> bool {
    path == skip || path.strip_prefix(skip).is_some_and(|r| r.starts_with('/'))
}

/// [`list`], leaving out the paths (relative to `dir`) of `skip` and what
/// is below them.
pub fn list_without(dir: &Path, skip: &[String]) -> Result<Vec<Entry>, StackError> {
    let mut walker = ignore::WalkBuilder::new(dir);
    let (root, skip) = (dir.to_owned(), skip.to_vec());
    // a skipped directory is not even walked (a database's files can be many)
    let skipped = move |p: &Path| {
        p.strip_prefix(&root)
            .ok()
            .and_then(Path::to_str)
            .is_some_and(|rel| skip.iter().any(|s| under(rel, s)))
    };
    walker
        .standard_filters(false)
        .add_custom_ignore_filename(IGNORE_FILE)
        .follow_links(false)
        .filter_entry(move |e| e.file_name() != ".git" && !skipped(e.path()));
    let mut entries = Vec::new();
    for item in walker.build() {
        let item = item.map_err(|source| StackError::Walk {
            dir: dir.to_owned(),
            source,
        })?;
        let rel = item.path().strip_prefix(dir).unwrap_or(item.path());
        if rel.as_os_str().is_empty() {
            continue;
        }
        let path = rel
            .to_str()
            .ok_or_else(|| StackError::NotUtf8 {
                path: item.path().to_owned(),
            })?
            .to_owned();
        let meta = std::fs::symlink_metadata(item.path()).map_err(|source| StackError::Io {
            path: item.path().to_owned(),
            source,
        })?;
        let mode = meta.permissions().mode() & 0o777;
        let kind = if meta.file_type().is_symlink() {
            let target = std::fs::read_link(item.path()).map_err(|source| StackError::Io {
                path: item.path().to_owned(),
                source,
            })?;
            EntryKind::Symlink(
                target
                    .to_str()
                    .ok_or_else(|| StackError::NotUtf8 {
                        path: item.path().to_owned(),
                    })?
                    .to_owned(),
            )
        } else if meta.is_dir() {
            EntryKind::Dir
        } else if meta.is_file() {
            EntryKind::File
        } else {
            continue; // sockets, fifos, devices: never shipped
        };

        entries.push(Entry { path, kind, mode });
    }
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(entries)
}

/// The canonical hash of a stack, fed entry by entry. [`read`] and
/// [`write_payload`] feed it alike, so that packing proves the files shipped
/// are the ones that were hashed.
struct Canon(Sha256);

impl Canon {
    fn new() -> Canon {
        let mut h = Sha256::new();
        h.update(b"rbuild-stack-v1\0");
        Canon(h)
    }

    /// An entry's path, mode and kind; a file's length and content follow.
    fn entry(&mut self, e: &Entry, len: Option<u64>) {
        let h = &mut self.0;
        h.update(e.path.as_bytes());
        h.update(b"\0");
        h.update(format!("{:o}\0", e.mode).as_bytes());
        match &e.kind {
            EntryKind::Dir => h.update(b"d\0"),
            EntryKind::Symlink(t) => {
                h.update(b"l\0");
                h.update(t.as_bytes());
                h.update(b"\0");
            }
            EntryKind::File => h.update(format!("f{}\0", len.unwrap_or(0)).as_bytes()),
        }
    }

    fn hex(self) -> String {
        hex(&self.0.finalize())
    }
}

/// Bytes (a digest) as lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A file being read into the canonical hash.
struct Hashing<'a, R> {
    inner: R,
    canon: &'a mut Canon,
}

impl<R: Read> Read for Hashing<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.canon.0.update(&buf[..n]);
        Ok(n)
    }
}

/// Open a stack's file: the file and its length.
fn open(path: &Path) -> Result<(std::fs::File, u64), StackError> {
    let io = |source| StackError::Io {
        path: path.to_owned(),
        source,
    };
    let f = std::fs::File::open(path).map_err(io)?;
    let len = f.metadata().map_err(io)?.len();
    Ok((f, len))
}

/// List and hash a stack directory.
pub fn read(dir: &Path) -> Result<Contents, StackError> {
    read_without(dir, &[])
}

/// [`read`], leaving out `skip` (see [`list_without`]).
pub fn read_without(dir: &Path, skip: &[String]) -> Result<Contents, StackError> {
    let entries = list_without(dir, skip)?;
    let mut canon = Canon::new();
    for e in &entries {
        if e.kind == EntryKind::File {
            let p = dir.join(&e.path);
            let (f, len) = open(&p)?;
            canon.entry(e, Some(len));
            std::io::copy(
                &mut Hashing {
                    inner: f.take(len),
                    canon: &mut canon,
                },
                &mut std::io::sink(),
            )
            .map_err(|source| StackError::Io { path: p, source })?;
        } else {
            canon.entry(e, None);
        }
    }
    Ok(Contents {
        dir: dir.to_owned(),
        entries,
        hash: canon.hex(),
    })
}

impl Contents {
    /// Append this stack's entries to `tar` under the top-level directory
    /// `name/`, with owner 0 and the files' own modes (env files stay 0600),
    /// and time 0 (the host gives files the time they land, and the same
    /// files make the same bytes). Fails if a file is not what was hashed.
    fn append_to<W: std::io::Write>(
        &self,
        tar: &mut tar::Builder<W>,
        name: &str,
    ) -> Result<(), StackError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| StackError::Io { path, source }
        };
        let header = |kind, mode, size| {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(kind);
            h.set_mode(mode);
            h.set_size(size);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            h
        };
        let mut top = header(tar::EntryType::Directory, 0o700, 0);
        tar.append_data(&mut top, format!("{name}/"), std::io::empty())
            .map_err(io(&self.dir))?;
        let mut canon = Canon::new();
        for e in &self.entries {
            let src = self.dir.join(&e.path);
            let dest = format!("{name}/{}", e.path);
            match &e.kind {
                EntryKind::Dir => {
                    canon.entry(e, None);
                    let mut h = header(tar::EntryType::Directory, e.mode, 0);
                    tar.append_data(&mut h, dest, std::io::empty())
                        .map_err(io(&src))?;
                }
                EntryKind::Symlink(target) => {
                    canon.entry(e, None);
                    let mut h = header(tar::EntryType::Symlink, e.mode, 0);
                    tar.append_link(&mut h, dest, target).map_err(io(&src))?;
                }
                EntryKind::File => {
                    let (f, len) = open(&src)?;
                    canon.entry(e, Some(len));
                    let mut h = header(tar::EntryType::Regular, e.mode, len);
                    let data = Hashing {
                        inner: f.take(len),
                        canon: &mut canon,
                    };
                    tar.append_data(&mut h, dest, data).map_err(io(&src))?;
                }
            }
        }
        if canon.hex() != self.hash {
            return Err(StackError::Changed {
                dir: self.dir.clone(),
            });
        }
        Ok(())
    }
}

/// Write one tar stream holding each `(name, contents)` under `name/` to
/// `w`, and give `w` back. Fails if a stack's files changed since they
/// were hashed, so that what a host records is what it was sent.
pub fn write_payload<W: std::io::Write>(
    stacks: &[(&str, &Contents)],
    w: W,
) -> Result<W, StackError> {
    let mut tar = tar::Builder::new(w);
    for (name, c) in stacks {
        c.append_to(&mut tar, name)?;
    }
    tar.into_inner().map_err(|source| StackError::Io {
        path: PathBuf::from("<payload>"),
        source,
    })
}

/// The payload in memory (for tests).
pub fn payload(stacks: &[(&str, &Contents)]) -> Result<Vec<u8>, StackError> {
    write_payload(stacks, Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn stack() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("compose.yml"), "services: {}\n").unwrap();
        fs::create_dir(d.path().join("app")).unwrap();
        fs::write(d.path().join("app/Dockerfile"), "FROM scratch\n").unwrap();
        fs::write(d.path().join(".env"), "SECRET=1\n").unwrap();
        fs::set_permissions(d.path().join(".env"), fs::Permissions::from_mode(0o600)).unwrap();
        d
    }

    #[test]
    fn lists_hidden_files_but_not_git() {
        let d = stack();
        fs::create_dir(d.path().join(".git")).unwrap();
        fs::write(d.path().join(".git/HEAD"), "x").unwrap();
        let paths: Vec<_> = list(d.path())
            .unwrap()
            .into_iter()
            .map(|e| e.path)
            .collect();
        assert_eq!(paths, [".env", "app", "app/Dockerfile", "compose.yml"]);
    }

    #[test]
    fn rbuildignore_excludes() {
        let d = stack();
        fs::write(d.path().join(IGNORE_FILE), "*.log\nnode_modules/\n").unwrap();
        fs::write(d.path().join("debug.log"), "x").unwrap();
        fs::create_dir(d.path().join("node_modules")).unwrap();
        fs::write(d.path().join("node_modules/a.js"), "x").unwrap();
        let paths: Vec<_> = list(d.path())
            .unwrap()
            .into_iter()
            .map(|e| e.path)
            .collect();
        assert!(
            !paths.iter().any(|p| p.contains("log") && p != IGNORE_FILE),
            "{paths:?}"
        );
        assert!(
            !paths.iter().any(|p| p.contains("node_modules")),
            "{paths:?}"
        );
        assert!(paths.contains(&IGNORE_FILE.to_string()));
    }

    #[test]
    fn hash_tracks_content_mode_and_names_not_ignored_files() {
        let d = stack();
        let h0 = read(d.path()).unwrap().hash;
        assert_eq!(h0.len(), 64);
        assert_eq!(read(d.path()).unwrap().hash, h0, "stable");

        fs::write(d.path().join(IGNORE_FILE), "*.log\n").unwrap();
        let h1 = read(d.path()).unwrap().hash;
        assert_ne!(h1, h0, "the ignore file itself ships");
        fs::write(d.path().join("x.log"), "noise").unwrap();
        assert_eq!(
            read(d.path()).unwrap().hash,
            h1,
            "ignored file changes nothing"
        );

        fs::write(d.path().join("app/Dockerfile"), "FROM scratch\nCMD x\n").unwrap();
        let h2 = read(d.path()).unwrap().hash;
        assert_ne!(h2, h1);

        fs::set_permissions(
            d.path().join("app/Dockerfile"),
            fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        assert_ne!(read(d.path()).unwrap().hash, h2, "mode is part of the hash");
    }

    #[test]
    fn a_skipped_directory_is_left_out_and_not_walked() {
        use std::os::unix::ffi::OsStrExt;
        let d = stack();
        let all = read(d.path()).unwrap();
        fs::create_dir_all(d.path().join("appdata/db")).unwrap();
        fs::write(d.path().join("appdata/db/x"), "data").unwrap();
        // a name that would fail the stack if it were walked
        fs::write(
            d.path()
                .join("appdata")
                .join(std::ffi::OsStr::from_bytes(b"caf\xe9")),
            "x",
        )
        .unwrap();
        fs::write(d.path().join("appdata2"), "shipped").unwrap();
        let c = read_without(d.path(), &["appdata".to_owned()]).unwrap();
        let paths: Vec<&str> = c.entries.iter().map(|e| e.path.as_str()).collect();
        assert!(paths.contains(&"appdata2"), "{paths:?}");
        assert!(!paths.iter().any(|p| under(p, "appdata")), "{paths:?}");
        assert_eq!(c.entries.len(), all.entries.len() + 1, "{paths:?}");
    }

    #[test]
    fn an_unreadable_stack_names_the_path_at_fault() {
        use std::os::unix::ffi::OsStrExt;
        let d = stack();
        let odd = d.path().join(std::ffi::OsStr::from_bytes(b"caf\xe9.txt"));
        fs::write(&odd, "x").unwrap();
        let e = read(d.path()).unwrap_err();
        assert!(matches!(e, StackError::NotUtf8 { .. }), "{e}");
        assert!(e.to_string().contains("caf\u{fffd}.txt"), "{e}");
        fs::remove_file(&odd).unwrap();
        // a file that cannot be read (a directory where a file would be is
        // readable; a dangling path in between is not)
        let gone = d.path().join("app");
        fs::remove_dir_all(&gone).unwrap();
        assert!(read(d.path()).is_ok());
    }

    #[test]
    fn content_moved_between_files_changes_hash() {
        let a = tempfile::tempdir().unwrap();
        fs::write(a.path().join("a"), "xy").unwrap();
        fs::write(a.path().join("b"), "").unwrap();
        let b = tempfile::tempdir().unwrap();
        fs::write(b.path().join("a"), "x").unwrap();
        fs::write(b.path().join("b"), "y").unwrap();
        assert_ne!(read(a.path()).unwrap().hash, read(b.path()).unwrap().hash);
    }

    #[test]
    fn a_stack_that_changed_since_it_was_hashed_is_not_packed() {
        let d = stack();
        let c = read(d.path()).unwrap();
        let before = payload(&[("web", &c)]).unwrap();
        assert_eq!(
            payload(&[("web", &c)]).unwrap(),
            before,
            "the same files, the same bytes"
        );
        fs::write(d.path().join("app/Dockerfile"), "FROM scratch\nRUN evil\n").unwrap();
        let e = payload(&[("web", &c)]).unwrap_err();
        assert!(matches!(e, StackError::Changed { .. }), "{e}");
        // the same length, other bytes: caught too
        fs::write(d.path().join("app/Dockerfile"), "FROM scratcH\n").unwrap();
        assert!(payload(&[("web", &c)]).is_err());
    }

    #[test]
    fn payload_keeps_modes_under_the_stack_name() {
        let d = stack();
        let c = read(d.path()).unwrap();
        let bytes = payload(&[("web", &c)]).unwrap();
        let mut ar = tar::Archive::new(&bytes[..]);
        let mut seen = Vec::new();
        for e in ar.entries().unwrap() {
            let e = e.unwrap();
            let p = e.path().unwrap().to_string_lossy().into_owned();
            seen.push((p, e.header().mode().unwrap()));
        }
        assert!(seen.contains(&("web/.env".into(), 0o600)), "{seen:?}");
        assert!(seen.iter().any(|(p, _)| p == "web/app/Dockerfile"));
        assert_eq!(seen[0].0, "web/");
    }
}
