//! The protocol's result and state words, typed: a state file's last
//! result, an attempt's result, a service's state and health, and the base
//! images a generation was built from. Each is read
//! from the word the host wrote and written back as that word (tables,
//! JSON), so that no part of rbuild compares strings. A word this
//! controller does not know (a newer host script) is kept as it is.

use std::fmt;

use serde::{Serialize, Serializer};

/// An enum of protocol words: each known word a variant, anything else
/// `Other`, kept.
macro_rules! words {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $word:literal,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)*
            /// A word this controller does not know, as the host wrote it.
            Other(String),
        }

        impl $name {
            /// The host's word, typed.
            pub fn parse(word: &str) -> $name {
                match word {
                    $($word => $name::$variant,)*
                    other => $name::Other(other.to_owned()),
                }
            }

            /// The word, as the host writes it.
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $word,)*
                    $name::Other(w) => w,
                }
            }
        }

        impl From<&str> for $name {
            fn from(word: &str) -> $name {
                $name::parse(word)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}

words! {
    /// A state file's `last_result`: how the stack's last attempt ended.
    LastResult {
        /// Rebuilt (or started) and through its gate.
        Ok = "ok",
        /// The last attempt failed; the recorded generation runs.
        Failed = "failed",
        /// Rolled back by hand (`rbuild rollback`): held until its files
        /// change or a rebuild is forced.
        RolledBack = "rolled_back",
        /// What runs did not pass its gate and the recorded generation could
        /// not be put back: the next run puts it back.
        Broken = "broken",
    }
}

words! {
    /// An attempt's result (a line of `NAME.history`, `NAME.failed`).
    AttemptResult {
        Rebuilt = "rebuilt",
        /// Brought up again, no build.
        Started = "started",
        Failed = "failed",
        RolledBack = "rolled_back",
    }
}

words! {
    /// A service's health as the engine reports it.
    Health {
        Healthy = "healthy",
        Unhealthy = "unhealthy",
        Starting = "starting",
        /// It has no healthcheck.
        None = "none",
        /// Not known: the engine was not asked (`-`).
        Unknown = "-",
    }
}

/// A service's state as the host reports it: the engine's word
/// (`running`, `restarting`, `created`, ...), `exited:CODE`, or `gone`
/// (its recorded cgroup is not there; the engine was not asked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceState {
    Running,
    /// It exited with this code.
    Exited(i64),
    /// Its recorded cgroup is not there (the engine was not asked).
    Gone,
    /// Any other word of the engine's (`restarting`, `created`, `paused`,
    /// `dead`, ...), as it is.
    Other(String),
}

impl ServiceState {
    pub fn parse(word: &str) -> ServiceState {
        match word {
            "running" => ServiceState::Running,
            "gone" => ServiceState::Gone,
            w => match w.strip_prefix("exited:").and_then(|c| c.parse().ok()) {
                Some(code) => ServiceState::Exited(code),
                None => ServiceState::Other(w.to_owned()),
            },
        }
    }

    /// Whether it is what a healthy stack shows: running, or a job that
    /// exited 0.
    pub fn is_fine(&self) -> bool {
        matches!(self, ServiceState::Running | ServiceState::Exited(0))
    }
}

impl From<&str> for ServiceState {
    fn from(word: &str) -> ServiceState {
        ServiceState::parse(word)
    }
}

impl fmt::Display for ServiceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceState::Running => f.write_str("running"),
            ServiceState::Exited(code) => write!(f, "exited:{code}"),
            ServiceState::Gone => f.write_str("gone"),
            ServiceState::Other(w) => f.write_str(w),
        }
    }
}

impl Serialize for ServiceState {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One input image of a generation, as its host recorded it: a base image
/// a build used (a `FROM` of a stage) or the image an image-only service
/// runs, and the registry digest the host pulled for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Base {
    /// The reference as the build (or the service) saw it:
    /// `docker.io/library/busybox:1`, `127.0.0.1:5000/app:stable`; a
    /// reference the files pin by digest is recorded as written, so that
    /// its item `x@sha256:D` reads as reference `x`, digest `sha256:D`.
    pub reference: String,
    /// `sha256:HEX`, as a registry's `Docker-Content-Digest` says it.
    pub digest: String,
}

impl Base {
    /// A `bases` word (the state line's `bases=`, a generation's BASES):
    /// `None` for `-` (not recorded: an older rbuild, or the digests could
    /// not be read) or anything that is not a list of `REF@ALG:HEX` items;
    /// `Some(vec![])` for `none` (no registry inputs).
    pub fn parse_list(word: &str) -> Option<Vec<Base>> {
        match word {
            "" | "-" => None,
            "none" => Some(vec![]),
            list => list
                .split(',')
                .map(|item| {
                    let (reference, digest) = item.rsplit_once('@')?;
                    let (alg, hex) = digest.split_once(':')?;
                    let ok = !reference.is_empty()
                        && !alg.is_empty()
                        && !hex.is_empty()
                        && hex.bytes().all(|b| b.is_ascii_hexdigit());
                    ok.then(|| Base {
                        reference: reference.to_owned(),
                        digest: digest.to_owned(),
                    })
                })
                .collect(),
        }
    }
}

impl fmt::Display for Base {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.reference, self.digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_reads_back_as_itself() {
        for w in ["ok", "failed", "rolled_back", "broken", "someday"] {
            assert_eq!(LastResult::parse(w).as_str(), w);
        }
        assert_eq!(LastResult::parse("broken"), LastResult::Broken);
        for w in ["rebuilt", "started", "failed", "rolled_back", "new"] {
            assert_eq!(AttemptResult::parse(w).to_string(), w);
        }
        for w in ["healthy", "unhealthy", "starting", "none", "-", "odd"] {
            assert_eq!(Health::parse(w).as_str(), w);
        }
        for w in [
            "running",
            "exited:0",
            "exited:137",
            "gone",
            "restarting",
            "exited:x",
        ] {
            assert_eq!(ServiceState::parse(w).to_string(), w);
        }
        assert_eq!(ServiceState::parse("exited:137"), ServiceState::Exited(137));
        assert!(ServiceState::parse("exited:0").is_fine());
        assert!(!ServiceState::parse("exited:1").is_fine());
        assert_eq!(
            serde_json::to_string(&ServiceState::Exited(2)).unwrap(),
            "\"exited:2\""
        );
    }

    #[test]
    fn a_bases_word_reads_as_its_items() {
        let d = format!("sha256:{}", "ab".repeat(32));
        let b = |r: &str| Base {
            reference: r.into(),
            digest: d.clone(),
        };
        assert_eq!(Base::parse_list("-"), None);
        assert_eq!(Base::parse_list(""), None);
        assert_eq!(Base::parse_list("none"), Some(vec![]));
        let list = format!("docker.io/library/busybox:1@{d},127.0.0.1:5000/app:stable@{d}");
        assert_eq!(
            Base::parse_list(&list),
            Some(vec![
                b("docker.io/library/busybox:1"),
                b("127.0.0.1:5000/app:stable")
            ])
        );
        // a reference pinned by digest, recorded as written
        assert_eq!(
            Base::parse_list(&format!("127.0.0.1:5000/base@{d}")),
            Some(vec![b("127.0.0.1:5000/base")])
        );
        assert_eq!(b("x:1").to_string(), format!("x:1@{d}"));
        // anything else is not read: never half a list
        for bad in [
            "busybox:1",
            "@sha256:ab",
            "x@sha256:",
            "x@sha256:zz",
            "x@ab",
            &format!("x@{d},"),
            &format!("x@{d},y"),
        ] {
            assert_eq!(Base::parse_list(bad), None, "{bad}");
        }
        assert_eq!(
            serde_json::to_value(b("x:1")).unwrap(),
            serde_json::json!({"reference": "x:1", "digest": d})
        );
    }
}
