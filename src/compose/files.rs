//! A compose file as a whole: whether it parses, the project name it (or
//! the project's `.env`) sets, the override file compose picks up beside
//! it.

use std::path::Path;

use serde::Deserialize;

/// The standard override file compose itself picks up beside `file` when it
/// is given no `-f`: `compose.override.yaml` beside `compose.yaml`, and so on.
pub fn override_of(dir: &Path, file: &str) -> Option<String> {
    let stem = match file {
        "compose.yaml" | "compose.yml" => "compose",
        "docker-compose.yaml" | "docker-compose.yml" => "docker-compose",
        _ => return None,
    };
    ["yaml", "yml"]
        .into_iter()
        .map(|ext| format!("{stem}.override.{ext}"))
        .find(|o| dir.join(o).is_file())
}

/// The project name a compose file sets (`name:` at its top), if any.
pub fn compose_name(file: &Path) -> Option<String> {
    #[derive(Deserialize)]
    struct Top {
        name: Option<String>,
    }
    let text = std::fs::read_to_string(file).ok()?;
    serde_saphyr::from_str::<Top>(&text).ok()?.name
}

/// `COMPOSE_PROJECT_NAME` as the project's `.env` (in `dir`) sets it, if
/// it does.
pub fn dotenv_project_name(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join(".env")).ok()?;
    text.lines().find_map(|l| {
        let v = l.trim().strip_prefix("COMPOSE_PROJECT_NAME=")?;
        let v = v.trim().trim_matches(|c| c == '"' || c == '\'');
        (!v.is_empty()).then(|| v.to_owned())
    })
}

/// Why compose could not read a compose file.
#[derive(Debug)]
pub enum Unreadable {
    /// The file cannot be read.
    Io(std::io::Error),
    /// It is not YAML, or not a mapping: the parser's first line of it, at
    /// its 1-based line (0: none known).
    Syntax { line: u64, message: String },
}

/// Why compose could not read the compose file at `path`, or `None` when
/// it reads (a mapping of YAML).
pub fn unreadable(path: &Path) -> Option<Unreadable> {
    type Top = std::collections::BTreeMap<String, serde::de::IgnoredAny>;
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => return Some(Unreadable::Io(e)),
    };
    let e = serde_saphyr::from_str::<Top>(&text).err()?;
    let line = e.location().map(|l| l.line()).unwrap_or(0);
    let msg = e.to_string();
    Some(Unreadable::Syntax {
        line,
        message: msg.lines().next().unwrap_or_default().to_owned(),
    })
}
