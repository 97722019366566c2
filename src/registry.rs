//! The registries, asked once a run: every distinct image reference of the
//! run's stacks gets one manifest `HEAD` (its `Docker-Content-Digest`),
//! all of them in parallel with the hosts' checks. Anonymous or bearer
//! token auth (`oci-client`), with the credentials of this machine's docker
//! config and credential helpers (`docker_credential`). A registry that
//! cannot be asked is a note, never a failure: its stacks keep the build
//! period. Also the memory of when each digest was first seen, for
//! `min_age`: `$XDG_STATE_HOME/rbuild/digests.json`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::compose::{self, ImageInputs};
use crate::fresh::{self, Digests, Freshness, Lookup};
use crate::inventory::{Host, Stack};
use crate::remote::Base;

/// How many manifest requests run at once.
const PARALLEL: usize = 8;
/// A registry that does not answer within this is unavailable this run.
const TIMEOUT: Duration = Duration::from_secs(10);

/// What the registries said this run, and what it cost.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Lookups {
    pub digests: Digests,
    /// Manifest requests made (at most one per distinct reference).
    pub requests: usize,
}

/// The run's upstream: each stack's images (read once per stack) and the
/// registries' answers, which arrive while the hosts are checked.
pub struct Upstream {
    inputs: HashMap<(PathBuf, Vec<String>), Arc<ImageInputs>>,
    answers: Option<watch::Receiver<Option<Arc<Lookups>>>>,
}

impl Upstream {
    /// No registry is asked (digest checks are off): every stack keeps
    /// the build period alone.
    pub fn off() -> Upstream {
        Upstream {
            inputs: HashMap::new(),
            answers: None,
        }
    }

    /// Read the images of every stack of `hosts` and start asking the
    /// registries about them (`remember`: keep when each digest was first
    /// seen, for `min_age`; a dry run remembers nothing).
    pub fn start(hosts: &[Host], remember: bool) -> Upstream {
        let mut inputs = HashMap::new();
        for s in hosts.iter().flat_map(|h| &h.stacks) {
            inputs
                .entry((s.root.clone(), s.compose_files.clone()))
                .or_insert_with(|| Arc::new(compose::image_inputs(&s.root, &s.compose_files)));
        }
        let wanted: BTreeSet<String> = inputs
            .values()
            .flat_map(|i| Freshness::wanted(i).collect::<Vec<_>>())
            .collect();
        let (tx, rx) = watch::channel(None);
        tokio::spawn(async move {
            let mut found = lookup(&wanted).await;
            if let Some(path) = memory_path() {
                first_seen(&path, &mut found.digests, remember);
            }
            let _ = tx.send(Some(Arc::new(found)));
        });
        Upstream {
            inputs,
            answers: Some(rx),
        }
    }

    /// A stack's images, as its files name them.
    pub fn inputs_of(&self, root: &Path, files: &[String]) -> Option<Arc<ImageInputs>> {
        self.inputs
            .get(&(root.to_path_buf(), files.to_vec()))
            .cloned()
    }

    /// A stack's images against the registries' answers, given the bases
    /// its host recorded for what runs (`None`: its images are not known
    /// here).
    pub fn freshness(
        &self,
        s: &Stack,
        bases: Option<&[Base]>,
        lookups: &Lookups,
        min_age: u64,
    ) -> Option<Freshness> {
        let inputs = self.inputs_of(&s.root, &s.compose_files)?;
        Some(fresh::assess(
            &inputs,
            bases,
            &lookups.digests,
            unix_now(),
            min_age,
        ))
    }

    /// The registries' answers, once they are in (`None`: digest checks
    /// are off).
    pub async fn lookups(&self) -> Option<Arc<Lookups>> {
        let mut rx = self.answers.clone()?;
        rx.wait_for(|v| v.is_some()).await.ok()?.clone()
    }
}

/// Ask for each reference's digest, a manifest `HEAD` each.
pub async fn lookup(refs: &BTreeSet<String>) -> Lookups {
    let mut out = Lookups::default();
    if refs.is_empty() {
        return out;
    }
    // rustls' crypto: ring (already another of rbuild's dependencies'); an
    // error only says one is installed already
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = Arc::new(Client::new(ClientConfig {
        protocol: ClientProtocol::HttpsExcept(insecure(refs)),
        connect_timeout: Some(Duration::from_secs(5)),
        read_timeout: Some(TIMEOUT),
        user_agent: concat!("rbuild/", env!("CARGO_PKG_VERSION")),
        ..Default::default()
    }));
    let slots = Arc::new(tokio::sync::Semaphore::new(PARALLEL));
    let mut creds: HashMap<String, RegistryAuth> = HashMap::new();
    let mut tasks = tokio::task::JoinSet::new();
    for r in refs {
        let Ok(reference) = Reference::from_str(r) else {
            out.digests.insert(
                r.clone(),
                Lookup::Unavailable {
                    error: "not an image reference".into(),
                },
            );
            continue;
        };
        let registry = reference.resolve_registry().to_owned();
        let auth = creds
            .entry(registry.clone())
            .or_insert_with(|| credential(&reference))
            .clone();
        let (client, slots, key) = (client.clone(), slots.clone(), r.clone());
        out.requests += 1;
        tasks.spawn(async move {
            let _slot = slots.acquire_owned().await;
            let asked = async {
                client
                    .auth(&reference, &auth, RegistryOperation::Pull)
                    .await?;
                client.fetch_manifest_digest(&reference, &auth).await
            };
            let got = match tokio::time::timeout(TIMEOUT, asked).await {
                Ok(Ok(digest)) => Lookup::Digest {
                    digest,
                    first_seen: 0,
                },
                Ok(Err(e)) => Lookup::Unavailable {
                    error: format!("{registry}: {}", describe(&e)),
                },
                Err(_) => Lookup::Unavailable {
                    error: format!("{registry}: no answer within {}s", TIMEOUT.as_secs()),
                },
            };
            (key, got)
        });
    }
    while let Some(done) = tasks.join_next().await {
        if let Ok((key, got)) = done {
            if let Lookup::Unavailable { error } = &got {
                tracing::debug!("registry: {key}: {error}");
            }
            out.digests.insert(key, got);
        }
    }
    out
}

/// A lookup's error in a line: rate limits and auth said as such.
fn describe(e: &OciDistributionError) -> String {
    let text = e.to_string();
    let lower = text.to_lowercase();
    if lower.contains("429")
        || lower.contains("too many requests")
        || lower.contains("toomanyrequests")
    {
        "rate limited (429): this run does not ask again; the build period applies".to_owned()
    } else if matches!(e, OciDistributionError::AuthenticationFailure(_))
        || lower.contains("401")
        || lower.contains("unauthorized")
    {
        format!(
            "not authorized ({}); log in with `docker login` on this machine",
            first_line(&text)
        )
    } else {
        first_line(&text).to_owned()
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

/// Registries spoken to over plain HTTP: loopback ones (as the docker
/// engine does), and those in `RBUILD_INSECURE_REGISTRIES` (comma-separated
/// `HOST[:PORT]`).
fn insecure(refs: &BTreeSet<String>) -> Vec<String> {
    let mut out: Vec<String> = std::env::var("RBUILD_INSECURE_REGISTRIES")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    for r in refs {
        let Ok(reference) = Reference::from_str(r) else {
            continue;
        };
        let host = reference.registry();
        let name = host.rsplit_once(':').map_or(host, |(h, _)| h);
        if name == "localhost" || name.starts_with("127.") || name == "[::1]" {
            out.push(host.to_owned());
        }
    }
    out.sort();
    out.dedup();
    out
}

/// This machine's docker credentials for the reference's registry:
/// anonymous when there are none (a public image, or a token the registry
/// hands out for the asking).
fn credential(reference: &Reference) -> RegistryAuth {
    let server = match reference.resolve_registry() {
        "index.docker.io" | "registry-1.docker.io" => "https://index.docker.io/v1/",
        other => other,
    };
    match docker_credential::get_credential(server) {
        Ok(docker_credential::DockerCredential::UsernamePassword(u, p)) => {
            RegistryAuth::Basic(u, p)
        }
        Ok(docker_credential::DockerCredential::IdentityToken(_)) => {
            tracing::debug!("registry {server}: an identity token is not used; asking anonymously");
            RegistryAuth::Anonymous
        }
        Err(_) => RegistryAuth::Anonymous,
    }
}

/// When each digest was first seen: `reference -> {digest, first_seen}`.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Memory {
    #[serde(default)]
    digests: BTreeMap<String, Seen>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Seen {
    digest: String,
    first_seen: u64,
}

/// This controller's clock, in unix seconds.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn memory_path() -> Option<PathBuf> {
    Some(crate::local_files::xdg("XDG_STATE_HOME", ".local/state")?.join("rbuild/digests.json"))
}

/// Fill in when each found digest was first seen (now, for a new one),
/// and, with `remember`, keep that for the next run. A memory that cannot
/// be read or written only makes every new digest new again (a warning).
fn first_seen(path: &Path, digests: &mut Digests, remember: bool) {
    let now = unix_now();
    let mut memory: Memory = std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let mut changed = false;
    for (r, l) in digests.iter_mut() {
        let Lookup::Digest { digest, first_seen } = l else {
            continue;
        };
        match memory.digests.get(r) {
            Some(seen) if seen.digest == *digest => *first_seen = seen.first_seen,
            _ => {
                *first_seen = now;
                memory.digests.insert(
                    r.clone(),
                    Seen {
                        digest: digest.clone(),
                        first_seen: now,
                    },
                );
                changed = true;
            }
        }
    }
    if changed && remember {
        let text = serde_json::to_string_pretty(&memory).expect("serializable");
        let saved = crate::local_files::write_atomically(path, format!("{text}\n").as_bytes());
        if let Err(e) = saved {
            tracing::warn!(
                "cannot write {}: {e}: a new digest's age is counted from each run that sees it (min_age waits longer)",
                path.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_registries_are_spoken_to_over_http() {
        let refs: BTreeSet<String> = [
            "127.0.0.1:5000/base:1",
            "localhost:5001/x:1",
            "docker.io/library/busybox:latest",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect();
        assert_eq!(insecure(&refs), ["127.0.0.1:5000", "localhost:5001"]);
    }

    #[tokio::test]
    async fn a_registry_that_cannot_be_reached_is_a_note_not_a_failure() {
        // nothing listens on the discard port of loopback
        let refs: BTreeSet<String> = ["127.0.0.1:9/nothing/here:1".to_owned()].into();
        let got = lookup(&refs).await;
        assert_eq!(got.requests, 1);
        match &got.digests["127.0.0.1:9/nothing/here:1"] {
            Lookup::Unavailable { error } => assert!(error.starts_with("127.0.0.1:9: "), "{error}"),
            other => panic!("{other:?}"),
        }
        // nothing to ask: no request
        assert_eq!(lookup(&BTreeSet::new()).await.requests, 0);
    }

    #[test]
    fn a_digest_is_first_seen_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rbuild/digests.json");
        let found = |d: &str| -> Digests {
            [(
                "r:1".to_owned(),
                Lookup::Digest {
                    digest: d.into(),
                    first_seen: 0,
                },
            )]
            .into_iter()
            .collect()
        };
        let seen = |d: &Digests| match &d["r:1"] {
            Lookup::Digest { first_seen, .. } => *first_seen,
            _ => unreachable!(),
        };
        let mut a = found("sha256:a");
        first_seen(&path, &mut a, true);
        let t = seen(&a);
        assert!(t > 0);
        // kept: the same digest later is as old as when first seen
        std::fs::write(
            &path,
            std::fs::read_to_string(&path)
                .unwrap()
                .replace(&t.to_string(), "100"),
        )
        .unwrap();
        let mut again = found("sha256:a");
        first_seen(&path, &mut again, true);
        assert_eq!(seen(&again), 100);
        // a new digest is new
        let mut b = found("sha256:b");
        first_seen(&path, &mut b, false);
        assert!(seen(&b) > 100);
        // not remembered when told not to
        let mut b2 = found("sha256:b");
        first_seen(&path, &mut b2, true);
        let mut b3 = found("sha256:b");
        first_seen(&path, &mut b3, true);
        assert_eq!(seen(&b2), seen(&b3));
    }
}
