//! This controller's own files: where the XDG base directories put them,
//! and a file written atomically (a temporary file beside it, renamed), so
//! that a run killed while writing leaves the old file or the new one.

use std::path::{Path, PathBuf};

/// The XDG base directory `var` (`XDG_STATE_HOME`, `XDG_CONFIG_HOME`),
/// else `~/under_home`; a relative `var` is ignored, as the spec says.
/// `None` without either.
pub fn xdg(var: &str, under_home: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| PathBuf::from(h).join(under_home))
        })
}

/// Write `bytes` to `path` atomically, making its directory.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut tmp, bytes)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_file_is_written_whole_with_its_directory() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a/b/c.json");
        super::write_atomically(&p, b"one\n").unwrap();
        super::write_atomically(&p, b"two\n").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "two\n");
        // nothing else left beside it
        assert_eq!(std::fs::read_dir(p.parent().unwrap()).unwrap().count(), 1);
    }
}
