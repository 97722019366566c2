//! Host selection, pure: `--limit` and `--exclude` patterns (globs over a
//! host's name and groups, `@TAG` over its tags, `!PATTERN` to leave hosts
//! out, as Ansible's `--limit` reads them) and `--shard K/N`, a stable
//! split of the selected hosts. The fleet run and `rbuild status` both
//! select through [`select`].

use std::fmt;

use sha2::{Digest, Sha256};

/// What a host is matched on.
#[derive(Debug, Clone, Copy)]
pub struct Labels<'a> {
    pub name: &'a str,
    pub groups: &'a [String],
    pub tags: &'a [String],
}

/// `--shard K/N`: the K-th (1-based) of N disjoint parts of the selected
/// hosts. A host's part is its name's sha256 modulo N, so adding or
/// removing a host never moves another one to a different part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub k: u32,
    pub n: u32,
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Shard, String> {
        let bad = || format!("`{s}` is not a shard: write K/N with 1 <= K <= N, e.g. `1/4`");
        let (k, n) = s.trim().split_once('/').ok_or_else(bad)?;
        let (k, n): (u32, u32) = (
            k.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if k == 0 || n == 0 || k > n {
            return Err(bad());
        }
        Ok(Shard { k, n })
    }
}

impl Shard {
    /// Whether the host named `name` is in this shard.
    pub fn holds(&self, name: &str) -> bool {
        let digest = Sha256::digest(name.as_bytes());
        let first = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
        first % u64::from(self.n) == u64::from(self.k - 1)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.k, self.n)
    }
}

/// A selection error: a pattern that is not one, or that matches no host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectError {
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for SelectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(h) = &self.hint {
            write!(f, "\nhint: {h}")?;
        }
        Ok(())
    }
}

const HINT: &str = "patterns are globs over host and group names, e.g. `web*`; `@TAG` selects by tag, `!PATTERN` leaves hosts out";

/// One pattern, compiled.
enum Matcher {
    /// A glob over the name and the groups.
    Name(globset::GlobMatcher),
    /// `@GLOB`: a glob over the tags.
    Tag(globset::GlobMatcher),
}

impl Matcher {
    /// `pattern` as `shown` on the command line (with its `!`, if any).
    fn new(flag: &str, shown: &str, pattern: &str) -> Result<Matcher, SelectError> {
        let (tag, glob) = match pattern.strip_prefix('@') {
            Some(t) => (true, t),
            None => (false, pattern),
        };
        if glob.is_empty() {
            return Err(SelectError {
                message: format!("`{flag} {shown}`: an empty pattern"),
                hint: Some(HINT.into()),
            });
        }
        let m = globset::Glob::new(glob)
            .map_err(|e| SelectError {
                message: format!("`{flag} {shown}`: {}", e.kind()),
                hint: Some(HINT.into()),
            })?
            .compile_matcher();
        Ok(if tag {
            Matcher::Tag(m)
        } else {
            Matcher::Name(m)
        })
    }

    fn is_match(&self, h: &Labels) -> bool {
        match self {
            Matcher::Name(m) => m.is_match(h.name) || h.groups.iter().any(|g| m.is_match(g)),
            Matcher::Tag(m) => h.tags.iter().any(|t| m.is_match(t)),
        }
    }
}

/// The indices (in inventory order) of the hosts that `limit` (patterns,
/// `!` ones excluding), `exclude` and `shard` select. No `limit` pattern
/// that includes: every host, less the exclusions. A pattern that includes
/// and matches no host is an error; an exclusion that matches none is not.
/// `source` names the inventory in errors. A shard may be empty.
pub fn select(
    hosts: &[Labels],
    limit: &[String],
    exclude: &[String],
    shard: Option<Shard>,
    source: &str,
) -> Result<Vec<usize>, SelectError> {
    let mut include = Vec::new();
    let mut leave_out = Vec::new();
    let patterns = limit
        .iter()
        .map(|p| ("--limit", p.trim()))
        .chain(exclude.iter().map(|p| ("--exclude", p.trim())));
    for (flag, text) in patterns {
        if text.is_empty() {
            continue; // `--limit 'a,'`
        }
        match (flag, text.strip_prefix('!')) {
            (_, Some(rest)) => leave_out.push((flag, text, Matcher::new(flag, text, rest.trim())?)),
            ("--exclude", None) => leave_out.push((flag, text, Matcher::new(flag, text, text)?)),
            (_, None) => include.push((text, Matcher::new(flag, text, text)?)),
        }
    }
    for (text, m) in &include {
        if !hosts.iter().any(|h| m.is_match(h)) {
            let hint = if text.starts_with('@') {
                let mut tags: Vec<&str> = hosts
                    .iter()
                    .flat_map(|h| h.tags.iter().map(String::as_str))
                    .collect();
                tags.sort_unstable();
                tags.dedup();
                if tags.is_empty() {
                    "no host has `tags:` in the inventory".to_owned()
                } else {
                    format!("the inventory's tags: {}", tags.join(", "))
                }
            } else {
                HINT.to_owned()
            };
            return Err(SelectError {
                message: format!("`--limit {text}` matches no host of `{source}`"),
                hint: Some(hint),
            });
        }
    }
    let picked: Vec<usize> = hosts
        .iter()
        .enumerate()
        .filter(|(_, h)| include.is_empty() || include.iter().any(|(_, m)| m.is_match(h)))
        .filter(|(_, h)| !leave_out.iter().any(|(_, _, m)| m.is_match(h)))
        .map(|(i, _)| i)
        .collect();
    if picked.is_empty() {
        let all: Vec<String> = leave_out
            .iter()
            .map(|(flag, text, _)| format!("`{flag} {text}`"))
            .collect();
        return Err(SelectError {
            message: format!("no host of `{source}` is left after {}", all.join(", ")),
            hint: Some("an exclusion leaves out every host its pattern matches".into()),
        });
    }
    Ok(match shard {
        Some(s) => picked
            .into_iter()
            .filter(|&i| s.holds(hosts[i].name))
            .collect(),
        None => picked,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct H(&'static str, Vec<String>, Vec<String>);

    fn fleet() -> Vec<H> {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        vec![
            H("a1", v(&["front"]), v(&["eu"])),
            H("a2", v(&["front"]), v(&["us", "canary"])),
            H("a3", v(&[]), v(&["eu"])),
            H("b1", v(&["back"]), v(&[])),
        ]
    }

    fn pick(
        limit: &[&str],
        exclude: &[&str],
        shard: Option<Shard>,
    ) -> Result<Vec<&'static str>, String> {
        let f = fleet();
        let labels: Vec<Labels> = f
            .iter()
            .map(|h| Labels {
                name: h.0,
                groups: &h.1,
                tags: &h.2,
            })
            .collect();
        let s = |x: &[&str]| x.iter().map(|p| p.to_string()).collect::<Vec<_>>();
        select(&labels, &s(limit), &s(exclude), shard, "inv.yaml")
            .map(|ix| ix.into_iter().map(|i| f[i].0).collect())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn globs_over_names_and_groups_in_inventory_order() {
        assert_eq!(pick(&[], &[], None).unwrap(), ["a1", "a2", "a3", "b1"]);
        assert_eq!(
            pick(&["b1", "a*"], &[], None).unwrap(),
            ["a1", "a2", "a3", "b1"]
        );
        assert_eq!(pick(&["front"], &[], None).unwrap(), ["a1", "a2"]);
        assert_eq!(pick(&[" a3 ", ""], &[], None).unwrap(), ["a3"]);
    }

    #[test]
    fn exclusions_as_ansible_reads_them() {
        assert_eq!(pick(&["a*", "!a1"], &[], None).unwrap(), ["a2", "a3"]);
        // the order does not matter
        assert_eq!(pick(&["!a1", "a*"], &[], None).unwrap(), ["a2", "a3"]);
        // only exclusions: every host less those
        assert_eq!(pick(&["!front"], &[], None).unwrap(), ["a3", "b1"]);
        assert_eq!(pick(&[], &["a*"], None).unwrap(), ["b1"]);
        assert_eq!(pick(&["front", "!a2"], &["@us"], None).unwrap(), ["a1"]);
    }

    #[test]
    fn tags() {
        assert_eq!(pick(&["@eu"], &[], None).unwrap(), ["a1", "a3"]);
        assert_eq!(pick(&["@can*"], &[], None).unwrap(), ["a2"]);
        assert_eq!(pick(&["a*", "!@eu"], &[], None).unwrap(), ["a2"]);
        assert_eq!(pick(&[], &["@eu", "@us"], None).unwrap(), ["b1"]);
    }

    #[test]
    fn a_pattern_that_matches_nothing_is_named() {
        assert_eq!(
            pick(&["a*", "db*"], &[], None).unwrap_err(),
            format!("`--limit db*` matches no host of `inv.yaml`\nhint: {HINT}")
        );
        assert_eq!(
            pick(&["@asia"], &[], None).unwrap_err(),
            "`--limit @asia` matches no host of `inv.yaml`\nhint: the inventory's tags: canary, eu, us"
        );
        // an exclusion that matches nothing is fine
        assert_eq!(pick(&["!db*"], &["zz"], None).unwrap().len(), 4);
        assert_eq!(
            pick(&["a1"], &["@eu"], None).unwrap_err(),
            "no host of `inv.yaml` is left after `--exclude @eu`\nhint: an exclusion leaves out every host its pattern matches"
        );
        assert!(
            pick(&["a[1"], &[], None)
                .unwrap_err()
                .starts_with("`--limit a[1`: ")
        );
        assert!(
            pick(&["@"], &[], None)
                .unwrap_err()
                .starts_with("`--limit @`: an empty pattern")
        );
        assert!(
            pick(&["a1", "!"], &[], None)
                .unwrap_err()
                .starts_with("`--limit !`: an empty pattern")
        );
    }

    #[test]
    fn shards_are_disjoint_cover_all_and_stable() {
        let s = |k, n| Some(Shard { k, n });
        for n in 1..=5 {
            let mut all: Vec<&str> = (1..=n)
                .flat_map(|k| pick(&[], &[], s(k, n)).unwrap())
                .collect();
            all.sort_unstable();
            assert_eq!(all, ["a1", "a2", "a3", "b1"], "n={n}");
        }
        // a shard splits the selected hosts only
        let front: Vec<&str> = (1..=2)
            .flat_map(|k| pick(&["front"], &[], s(k, 2)).unwrap())
            .collect();
        assert_eq!(front.len(), 2);
        // stable: a host's shard is its name's alone (these values are
        // part of the interface: a new version must not move hosts)
        let part = |name: &str| (1..=3).find(|&k| Shard { k, n: 3 }.holds(name)).unwrap();
        let parts: Vec<u32> = ["a1", "a2", "a3", "b1", "web-17.example.com"]
            .iter()
            .map(|n| part(n))
            .collect();
        assert_eq!(parts, [1, 2, 2, 2, 1]);
    }

    #[test]
    fn shard_syntax() {
        assert_eq!("2/3".parse(), Ok(Shard { k: 2, n: 3 }));
        assert_eq!(" 1 / 1 ".parse(), Ok(Shard { k: 1, n: 1 }));
        for bad in ["0/2", "3/2", "1/0", "1", "a/b", "-1/2", ""] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }
}
