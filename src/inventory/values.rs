//! The inventory's values with rules of their own, each read by its own
//! `Deserialize` (so that a bad one is an error at its line): durations
//! and their limits, ports, generation counts, directory modes and groups,
//! compose file lists.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// The longest build period: ten years (longer is surely a mistake).
pub const MAX_PERIOD: u64 = 10 * 365 * 86400;
/// The longest up timeout: a day.
pub const MAX_UP_TIMEOUT: u64 = 86400;
/// The longest connect timeout: an hour.
pub const MAX_CONNECT_TIMEOUT: u64 = 3600;

/// A duration in whole seconds from `MIN` to `MAX`, written as a number of
/// seconds or as a human duration (`90`, `"30m"`, `"1d"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seconds<const MIN: u64, const MAX: u64>(pub u64);

/// `build_period`: 0 (always due) to ten years.
pub type Period = Seconds<0, MAX_PERIOD>;
/// `min_age`: 0 (a new digest is deployed at once) to ten years.
pub type MinAge = Seconds<0, MAX_PERIOD>;
/// `up_timeout`: 1 s to a day (0 would mean no bound at all).
pub type UpTimeout = Seconds<1, MAX_UP_TIMEOUT>;
/// `connect_timeout`: 1 s to an hour.
pub type ConnectTimeout = Seconds<1, MAX_CONNECT_TIMEOUT>;
/// `build_timeout`: 1 s to a day.
pub type BuildTimeout = Seconds<1, MAX_UP_TIMEOUT>;
/// `settle`: 0 (no window) to a day.
pub type Settle = Seconds<0, MAX_UP_TIMEOUT>;
/// `watch`: 0 (no watcher) to a day.
pub type Watch = Seconds<0, MAX_UP_TIMEOUT>;
/// The watch window after a passed gate when none is given (see the
/// docs/concepts/drift.md, "A crash after the gate is noticed").
pub const DEFAULT_WATCH: u64 = 60;

/// Seconds from a number or a human duration, within `min..=max`: the one
/// parser of durations, for the inventory and the command line alike.
pub fn parse_seconds(v: &str, min: u64, max: u64) -> Result<u64, String> {
    let t = v.trim();
    let n = match t.parse::<u64>() {
        Ok(n) => n,
        Err(_) => humantime::parse_duration(t)
            .map_err(|_| {
                format!("`{v}` is not a duration: write seconds (`90`) or a duration such as `30m` or `1d`")
            })?
            .as_secs(),
    };
    in_range(n, min, max)
}

fn in_range(n: u64, min: u64, max: u64) -> Result<u64, String> {
    let human = |s: u64| humantime::format_duration(std::time::Duration::from_secs(s)).to_string();
    if n < min || n > max {
        return Err(format!(
            "{n} seconds is out of range: from {} to {} ({max} seconds)",
            human(min),
            human(max)
        ));
    }
    Ok(n)
}

impl<'de, const MIN: u64, const MAX: u64> Deserialize<'de> for Seconds<MIN, MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<const MIN: u64, const MAX: u64>;
        impl<const MIN: u64, const MAX: u64> Visitor<'_> for V<MIN, MAX> {
            type Value = Seconds<MIN, MAX>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number of seconds or a duration such as \"30m\" or \"1d\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                in_range(v, MIN, MAX).map(Seconds).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                let v = u64::try_from(v).map_err(|_| E::custom("a duration cannot be negative"))?;
                self.visit_u64(v)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                parse_seconds(v, MIN, MAX).map(Seconds).map_err(E::custom)
            }
        }
        d.deserialize_any(V::<MIN, MAX>)
    }
}

/// An ssh port, 1 to 65535.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Port(pub u16);

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Port;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a port number from 1 to 65535")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Port, E> {
                u16::try_from(v)
                    .ok()
                    .filter(|p| *p > 0)
                    .map(Port)
                    .ok_or_else(|| E::custom(format!("port {v} is not a port number (1 to 65535)")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Port, E> {
                Err(E::custom(format!(
                    "port {v} is not a port number (1 to 65535)"
                )))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Port, E> {
                match v.trim().parse::<u64>() {
                    Ok(n) => self.visit_u64(n),
                    Err(_) => Err(E::custom(format!(
                        "port `{v}` is not a port number (1 to 65535)"
                    ))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// How many generations of a stack keep their images when none is set.
pub const DEFAULT_KEEP_GENERATIONS: u32 = 2;
/// The most generations a stack may keep.
pub const MAX_KEEP_GENERATIONS: u32 = 100;

/// `keep_generations:` how many generations of a stack keep their images
/// on its host, the running one included: 1 (no rollback target) to 100.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepGenerations(pub u32);

impl<'de> Deserialize<'de> for KeepGenerations {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        fn bad(v: impl fmt::Display) -> String {
            format!(
                "keep_generations `{v}` is not a count of generations from 1 to {MAX_KEEP_GENERATIONS}"
            )
        }
        impl Visitor<'_> for V {
            type Value = KeepGenerations;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "a count of generations from 1 to {MAX_KEEP_GENERATIONS}")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<KeepGenerations, E> {
                u32::try_from(v)
                    .ok()
                    .filter(|k| (1..=MAX_KEEP_GENERATIONS).contains(k))
                    .map(KeepGenerations)
                    .ok_or_else(|| E::custom(bad(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<KeepGenerations, E> {
                match u64::try_from(v) {
                    Ok(v) => self.visit_u64(v),
                    Err(_) => Err(E::custom(bad(v))),
                }
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<KeepGenerations, E> {
                Err(E::custom(bad(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<KeepGenerations, E> {
                match v.trim().parse::<u64>() {
                    Ok(n) => self.visit_u64(n),
                    Err(_) => Err(E::custom(bad(v))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// `dir_mode:` of a stack: the mode of its directory on the host, octal
/// (`"0750"`), with the owner's `rwx`, never writable by others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirMode(pub u32);

impl DirMode {
    fn parse(text: &str) -> Result<DirMode, String> {
        let bad = |why: &str| {
            format!(
                "dir_mode `{text}` {why}; write it quoted in octal, e.g. `dir_mode: \"0750\"` (its group may read) or `\"0755\"`"
            )
        };
        let digits = text.strip_prefix("0o").unwrap_or(text);
        if digits.is_empty()
            || digits.len() > 4
            || !digits.chars().all(|c| ('0'..='7').contains(&c))
        {
            return Err(bad("is not an octal mode"));
        }
        let m = u32::from_str_radix(digits, 8).map_err(|_| bad("is not an octal mode"))?;
        if m > 0o777 {
            return Err(bad("sets more than the permission bits"));
        }
        if m & 0o700 != 0o700 {
            return Err(bad("does not give its owner (the deploying user) `rwx`"));
        }
        if m & 0o002 != 0 {
            return Err(bad("lets anyone write the stack's directory"));
        }
        Ok(DirMode(m))
    }
}

impl<'de> Deserialize<'de> for DirMode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = DirMode;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an octal mode such as \"0750\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<DirMode, E> {
                DirMode::parse(v.trim()).map_err(E::custom)
            }
            // unquoted `0750` is read as the number 750: its digits are
            // taken as octal (the checks refuse what `0o750` became)
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<DirMode, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<DirMode, E> {
                if v.fract() == 0.0 && (0.0..10000.0).contains(&v) {
                    self.visit_u64(v as u64)
                } else {
                    self.visit_str(&v.to_string())
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// `dir_group:` of a stack: a group name or a gid, given to its directory
/// on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirGroup(pub String);

impl<'de> Deserialize<'de> for DirGroup {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = DirGroup;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a group name or a gid")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<DirGroup, E> {
                let name = v
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && v.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
                let gid = !v.is_empty() && v.chars().all(|c| c.is_ascii_digit());
                if (name || gid) && v.len() <= 32 {
                    Ok(DirGroup(v.to_owned()))
                } else {
                    Err(E::custom(format!(
                        "dir_group `{v}` is not a group name (letters, digits, `_`, `.`, `-`, starting with a letter or `_`) or a gid"
                    )))
                }
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<DirGroup, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<DirGroup, E> {
                self.visit_str(&v.to_string())
            }
        }
        d.deserialize_any(V)
    }
}

/// `compose_file`: one file, or a list of them (as `-f A -f B`: later ones
/// override earlier ones), relative to the inventory.
#[derive(Debug, Clone)]
pub struct ComposeFiles(pub Vec<String>);

impl<'de> Deserialize<'de> for ComposeFiles {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ComposeFiles;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a compose file, or a list of compose files")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ComposeFiles, E> {
                Ok(ComposeFiles(vec![v.to_owned()]))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<ComposeFiles, A::Error> {
                let mut files = Vec::new();
                while let Some(f) = seq.next_element::<String>()? {
                    files.push(f);
                }
                if files.is_empty() {
                    return Err(de::Error::custom("`compose_file` lists no file"));
                }
                Ok(ComposeFiles(files))
            }
        }
        d.deserialize_any(V)
    }
}
