//! The checks of names and paths: stack, host and group names, words
//! handed to ssh, remote paths and whether two of them overlap.

use serde_saphyr::Spanned;

use crate::compose::ComposePref;

/// Is `name` usable as a compose project name, a directory and a file name?
/// Lowercase letters, digits, `-` and `_`, starting with a letter or digit.
pub fn valid_stack_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.len() <= 63
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// Host names: letters, digits, `.`, `-`, `_`; not starting with `-`.
pub fn valid_host_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('-')
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// A value passed to ssh as an argument: nothing ssh could take as an option,
/// no white space or control characters.
pub(super) fn valid_ssh_word(v: &str) -> bool {
    !v.is_empty() && !v.starts_with('-') && !v.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// An absolute remote path without control characters or `..` components,
/// and not `/` however it is spelled (`//`, `/./`).
pub(super) fn valid_remote_path(v: &str) -> bool {
    v.starts_with('/')
        && !v.chars().any(|c| c.is_control())
        && !v.split('/').any(|c| c == "..")
        && !normal(v).is_empty()
}

/// A path's components, without empty ones and `.`.
pub(super) fn normal(v: &str) -> Vec<&str> {
    v.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect()
}

/// Whether one of two absolute paths is the other or holds it.
pub(super) fn overlap(a: &str, b: &str) -> bool {
    let (a, b) = (normal(a), normal(b));
    let n = a.len().min(b.len());
    a[..n] == b[..n]
}

pub(super) fn parse_compose(c: &Spanned<String>) -> Result<ComposePref, String> {
    match c.value.as_str() {
        "auto" => Ok(ComposePref::Auto),
        "v1" => Ok(ComposePref::V1),
        "v2" => Ok(ComposePref::V2),
        other => Err(format!(
            "`compose: {other}` is not one of `auto`, `v1`, `v2`"
        )),
    }
}
