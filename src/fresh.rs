//! Freshness by digest, pure: the images a stack is made from (its files),
//! what its host recorded the running generation was built from, and what
//! the registries say now; which of them moved, which wait for `min_age`,
//! and which cannot be told (the build period alone applies to those).

use std::collections::BTreeMap;
use std::str::FromStr;

use oci_client::Reference;
use serde::{Deserialize, Serialize};

use crate::compose::ImageInputs;
use crate::decide::Reason;
use crate::remote::Base;

/// A reference in the one form both sides are compared in
/// (`docker.io/library/busybox:latest`), and whether it is pinned by
/// digest (then its files say what it is, and no registry is asked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normal {
    pub key: String,
    pub pinned: bool,
}

/// `busybox` → `docker.io/library/busybox:latest`; `None` when it is no
/// image reference.
pub fn normalize(reference: &str) -> Option<Normal> {
    let r = Reference::from_str(reference).ok()?;
    let pinned = r.digest().is_some();
    let key = format!(
        "{}/{}:{}",
        r.registry(),
        r.repository(),
        r.tag().unwrap_or("latest")
    );
    Some(Normal { key, pinned })
}

/// What a registry said of one reference this run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum Lookup {
    /// Its manifest's digest, and when this controller first saw it (unix
    /// seconds).
    Digest { digest: String, first_seen: u64 },
    /// It could not be asked: why.
    Unavailable { error: String },
}

/// Each distinct reference's lookup, by its normal key.
pub type Digests = BTreeMap<String, Lookup>;

/// One image that moved: what the running generation was made from, and
/// what the registry serves now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Moved {
    pub reference: String,
    pub service: String,
    /// A base of a built service (else an image-only service's image).
    pub built: bool,
    pub recorded: String,
    pub current: String,
    /// Seconds since this controller first saw `current`.
    pub age: u64,
}

/// A stack's images against the registries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Freshness {
    /// Moved, and out for `min_age`: deployed by this run.
    pub moved: Vec<Moved>,
    /// Moved, but younger than `min_age`: not deployed yet.
    pub cooling: Vec<Moved>,
    /// Images whose freshness cannot be told, with why: only the build
    /// period applies to them.
    pub unknown: Vec<Unknown>,
}

/// An image whose freshness this run cannot tell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unknown {
    /// The reference (or the service, when its image has no name here).
    pub image: String,
    pub why: String,
}

impl Freshness {
    /// What a stack that is otherwise up to date does about it: rebuilt when
    /// a base moved, pulled when only an image-only service's image did,
    /// or left with a note while a new digest cools down.
    pub fn due(&self) -> Option<Reason> {
        if self.moved.iter().any(|m| m.built) {
            Some(Reason::BaseMoved)
        } else if !self.moved.is_empty() {
            Some(Reason::ImageMoved)
        } else if !self.cooling.is_empty() {
            Some(Reason::Cooling)
        } else {
            None
        }
    }

    /// The distinct references of `inputs` a registry is asked about (none
    /// pinned by digest).
    pub fn wanted(inputs: &ImageInputs) -> impl Iterator<Item = String> + '_ {
        inputs
            .images
            .iter()
            .filter_map(|i| normalize(&i.reference))
            .filter(|n| !n.pinned)
            .map(|n| n.key)
    }
}

/// A stack's images against what its host recorded and the registries
/// said; `now` is this controller's clock, `min_age` in seconds.
pub fn assess(
    inputs: &ImageInputs,
    recorded: Option<&[Base]>,
    digests: &Digests,
    now: u64,
    min_age: u64,
) -> Freshness {
    let mut f = Freshness::default();
    for (service, why) in &inputs.unknown {
        f.unknown.push(Unknown {
            image: service.clone(),
            why: why.clone(),
        });
    }
    let recorded: Option<BTreeMap<String, &str>> = recorded.map(|bases| {
        bases
            .iter()
            .filter_map(|b| Some((normalize(&b.reference)?.key, b.digest.as_str())))
            .collect()
    });
    let mut seen = Vec::new();
    for input in &inputs.images {
        let Some(n) = normalize(&input.reference) else {
            f.unknown.push(Unknown {
                image: input.reference.clone(),
                why: "it is no image reference rbuild reads".to_owned(),
            });
            continue;
        };
        if n.pinned || seen.contains(&n.key) {
            continue;
        }
        seen.push(n.key.clone());
        let unknown = |why: &str| Unknown {
            image: n.key.clone(),
            why: why.to_owned(),
        };
        let current = match digests.get(&n.key) {
            Some(Lookup::Digest { digest, first_seen }) => (digest, *first_seen),
            Some(Lookup::Unavailable { error }) => {
                f.unknown.push(unknown(error));
                continue;
            }
            None => {
                f.unknown.push(unknown("its registry was not asked"));
                continue;
            }
        };
        let Some(recorded) = &recorded else {
            f.unknown.push(unknown(
                "its host recorded no digests for what runs (built by an older rbuild): the next rebuild records them",
            ));
            continue;
        };
        let Some(was) = recorded.get(&n.key) else {
            f.unknown.push(unknown(
                "the build that runs did not record it (the files changed since, or its host could not read it)",
            ));
            continue;
        };
        if *was == current.0 {
            continue;
        }
        let m = Moved {
            reference: n.key.clone(),
            service: input.service.clone(),
            built: input.built,
            recorded: (*was).to_owned(),
            current: current.0.clone(),
            age: now.saturating_sub(current.1),
        };
        if m.age < min_age {
            f.cooling.push(m);
        } else {
            f.moved.push(m);
        }
    }
    f
}

/// A digest as people read it: `sha256:` and its first 12 hex digits.
pub fn short(digest: &str) -> &str {
    let end = digest.find(':').map_or(12, |c| c + 13).min(digest.len());
    &digest[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::ImageInput;

    fn input(service: &str, reference: &str, built: bool) -> ImageInput {
        ImageInput {
            service: service.into(),
            reference: reference.into(),
            built,
        }
    }

    fn base(r: &str, d: &str) -> Base {
        Base {
            reference: r.into(),
            digest: d.into(),
        }
    }

    #[test]
    fn references_are_compared_in_one_form() {
        let n = |r| normalize(r).map(|n| (n.key, n.pinned));
        assert_eq!(
            n("busybox"),
            Some(("docker.io/library/busybox:latest".into(), false))
        );
        assert_eq!(
            n("docker.io/library/busybox:latest"),
            Some(("docker.io/library/busybox:latest".into(), false))
        );
        assert_eq!(
            n("127.0.0.1:5000/base:1"),
            Some(("127.0.0.1:5000/base:1".into(), false))
        );
        assert_eq!(
            n("ghcr.io/o/app"),
            Some(("ghcr.io/o/app:latest".into(), false))
        );
        let pinned = format!("alpine@sha256:{}", "a".repeat(64));
        assert_eq!(n(&pinned).map(|x| x.1), Some(true));
        assert_eq!(n("Not A Ref"), None);
        assert_eq!(short("sha256:0123456789abcdef0000"), "sha256:0123456789ab");
    }

    #[test]
    fn a_moved_base_rebuilds_a_moved_image_pulls_a_young_one_cools() {
        let inputs = ImageInputs {
            images: vec![
                input("app", "127.0.0.1:5000/base:1", true),
                input("proxy", "127.0.0.1:5000/proxy:stable", false),
            ],
            unknown: vec![],
        };
        let recorded = vec![
            base("127.0.0.1:5000/base:1", "sha256:old"),
            base("127.0.0.1:5000/proxy:stable", "sha256:p1"),
        ];
        let digests = |b: &str, p: &str, seen: u64| -> Digests {
            [
                ("127.0.0.1:5000/base:1", b),
                ("127.0.0.1:5000/proxy:stable", p),
            ]
            .into_iter()
            .map(|(k, d)| {
                (
                    k.to_owned(),
                    Lookup::Digest {
                        digest: d.into(),
                        first_seen: seen,
                    },
                )
            })
            .collect()
        };
        let now = 10_000;
        let same = assess(
            &inputs,
            Some(&recorded),
            &digests("sha256:old", "sha256:p1", 0),
            now,
            0,
        );
        assert_eq!(same, Freshness::default());
        assert_eq!(same.due(), None);

        let base_moved = assess(
            &inputs,
            Some(&recorded),
            &digests("sha256:new", "sha256:p1", now - 5),
            now,
            0,
        );
        assert_eq!(base_moved.due(), Some(Reason::BaseMoved));
        assert_eq!(base_moved.moved[0].recorded, "sha256:old");
        assert_eq!(base_moved.moved[0].current, "sha256:new");
        assert_eq!(base_moved.moved[0].age, 5);

        let image_moved = assess(
            &inputs,
            Some(&recorded),
            &digests("sha256:old", "sha256:p2", 0),
            now,
            0,
        );
        assert_eq!(image_moved.due(), Some(Reason::ImageMoved));

        // younger than min_age: reported, not deployed
        let young = assess(
            &inputs,
            Some(&recorded),
            &digests("sha256:new", "sha256:p1", now - 60),
            now,
            3600,
        );
        assert_eq!(young.due(), Some(Reason::Cooling));
        assert!(young.moved.is_empty());
        let old_enough = assess(
            &inputs,
            Some(&recorded),
            &digests("sha256:new", "sha256:p1", now - 3600),
            now,
            3600,
        );
        assert_eq!(old_enough.due(), Some(Reason::BaseMoved));
    }

    #[test]
    fn what_cannot_be_told_falls_back_to_the_build_period() {
        let inputs = ImageInputs {
            images: vec![
                input("app", "busybox", true),
                input("pinned", &format!("alpine@sha256:{}", "b".repeat(64)), true),
            ],
            unknown: vec![("web".into(), "its image names ${TAG}, unset here".into())],
        };
        let unavailable: Digests = [(
            "docker.io/library/busybox:latest".to_owned(),
            Lookup::Unavailable {
                error: "registry-1.docker.io: connection refused".into(),
            },
        )]
        .into_iter()
        .collect();
        let f = assess(&inputs, Some(&[]), &unavailable, 0, 0);
        assert_eq!(f.due(), None);
        let whys: Vec<&str> = f.unknown.iter().map(|u| u.why.as_str()).collect();
        assert_eq!(
            whys,
            [
                "its image names ${TAG}, unset here",
                "registry-1.docker.io: connection refused"
            ]
        );
        // nothing recorded on the host (an older rbuild built it)
        let found: Digests = [(
            "docker.io/library/busybox:latest".to_owned(),
            Lookup::Digest {
                digest: "sha256:x".into(),
                first_seen: 0,
            },
        )]
        .into_iter()
        .collect();
        let f = assess(&inputs, None, &found, 0, 0);
        assert_eq!(f.due(), None);
        assert!(f.unknown[1].why.contains("older rbuild"));
        // pinned references are never asked about
        let wanted: Vec<String> = Freshness::wanted(&inputs).collect();
        assert_eq!(wanted, ["docker.io/library/busybox:latest"]);
    }
}
