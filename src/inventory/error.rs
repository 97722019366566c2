//! An inventory error (file, line, message, hint) and the YAML parser's
//! messages put in the words of an inventory.

use std::path::{Path, PathBuf};

/// An inventory error: where it is and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error(
    "{}{}{}: {message}{}",
    file.display(),
    if *line > 0 { format!(":{line}") } else { String::new() },
    if *line > 0 && *column > 0 { format!(":{column}") } else { String::new() },
    hint.as_ref().map(|h| format!("\nhint: {h}")).unwrap_or_default()
)]
pub struct InventoryError {
    pub file: PathBuf,
    /// 1-based line, 0 when the error is about the whole file.
    pub line: u64,
    /// 1-based column where the YAML itself is at fault, else 0.
    pub column: u64,
    pub message: String,
    pub hint: Option<String>,
}

impl InventoryError {
    /// The same error, its message led by `what`.
    pub(super) fn context(mut self, what: &str) -> InventoryError {
        self.message = format!("{what}{}", self.message);
        self
    }
}

impl From<crate::compose::Refused> for InventoryError {
    /// A compose file's reference that leaves its stack's root, at its line
    /// in that compose file.
    fn from(r: crate::compose::Refused) -> InventoryError {
        InventoryError {
            file: r.file,
            line: r.line,
            column: 0,
            message: r.message,
            hint: Some(r.hint),
        }
    }
}

/// The parser's error for the inventory `text` at `path`, at its line and
/// column, in the words of an inventory: a shape the text shows (a list
/// where a map goes, a tab, the key out of line) named at its own line.
pub(super) fn yaml(path: &Path, text: &str, e: &serde_saphyr::Error) -> InventoryError {
    let line = e.location().map(|l| l.line()).unwrap_or(0);
    let column = e.location().map(|l| l.column()).unwrap_or(0);
    let said = strip_location(&first_line(&e.to_string()));
    if let Some(s) = super::shape::explain(text, line, &said) {
        return InventoryError {
            file: path.to_owned(),
            line: s.line,
            column: s.column,
            message: s.message,
            hint: Some(s.hint),
        };
    }
    let (message, hint) = explain_yaml(&said);
    InventoryError {
        file: path.to_owned(),
        line,
        column,
        message,
        hint,
    }
}

/// serde-saphyr says `error: line 3 column 5: ...`; the line is ours to print.
fn strip_location(msg: &str) -> String {
    let m = msg.strip_prefix("error: ").unwrap_or(msg);
    if let Some(rest) = m.strip_prefix("line ")
        && let Some((_, after)) = rest.split_once(": ")
        && rest.split(':').next().is_some_and(|p| p.contains("column"))
    {
        return after.to_owned();
    }
    m.to_owned()
}

/// The YAML parser's message in the words of an inventory, with a hint
/// where the fix is likely: a key named twice, a block indented where YAML
/// expects none, a key misspelt (the closest real key).
fn explain_yaml(msg: &str) -> (String, Option<String>) {
    if let Some(rest) = msg.strip_prefix("duplicate mapping key: ") {
        let key = rest
            .split(", set DuplicateKeyPolicy")
            .next()
            .unwrap_or(rest);
        return (
            format!("`{key}` is given twice in the same block"),
            Some(
                "each host, stack and key may appear once in its block: remove or rename one"
                    .into(),
            ),
        );
    }
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        let (key, rest) = rest.split_once('`').unwrap_or((rest, ""));
        let known: Vec<&str> = rest
            .split_once("expected one of ")
            .map(|(_, l)| l.split(", ").map(|k| k.trim_matches('`')).collect())
            .or_else(|| {
                rest.split_once("expected `")
                    .map(|(_, k)| vec![k.trim_end_matches('`')])
            })
            .unwrap_or_default();
        let closest = known
            .iter()
            .map(|k| (strsim::jaro_winkler(key, k), *k))
            .filter(|(score, _)| *score > 0.8)
            .max_by(|a, b| a.0.total_cmp(&b.0));
        let hint = match closest {
            Some((_, k)) => format!("did you mean `{k}`?"),
            None if !known.is_empty() => format!(
                "the keys here are {}; see inventory.example.yaml for every key",
                known.join(", ")
            ),
            None => "see inventory.example.yaml for every key the inventory takes".into(),
        };
        return (format!("unknown key `{key}`"), Some(hint));
    }
    let indentation = [
        "expected mapping start",
        "did not find expected key",
        "mapping values are not allowed",
        "block mapping",
        "bad indentation",
    ];
    if indentation.iter().any(|p| msg.contains(p)) {
        return (
            format!("the indentation does not fit the block it is in ({msg})"),
            Some(
                "indent every key of a block by the same number of spaces: a host's keys under its name, its stacks' items under `stacks:`"
                    .into(),
            ),
        );
    }
    (msg.to_owned(), None)
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").trim().to_owned()
}
