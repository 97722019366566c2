//! The local image registry (see scripts/setup-deps.sh), which every test
//! host's engine reaches as `127.0.0.1:5000` too, and [`ManifestGuard`],
//! which deletes what a test pushed to it.

use std::cell::RefCell;
use std::process::{Command, Stdio};

use super::sh;

/// The local registry; deleting is enabled.
pub const REGISTRY: &str = "127.0.0.1:5000";

/// The digest of the manifest the registry serves for `repo:tag`.
pub fn registry_digest(repo: &str, tag: &str) -> String {
    let out = sh(Command::new("curl")
        .args(["-fsSI"])
        .args([
            "-H",
            "Accept: application/vnd.docker.distribution.manifest.v2+json",
        ])
        .args(["-H", "Accept: application/vnd.oci.image.manifest.v1+json"])
        .args([
            "-H",
            "Accept: application/vnd.docker.distribution.manifest.list.v2+json",
        ])
        .args(["-H", "Accept: application/vnd.oci.image.index.v1+json"])
        .arg(format!("http://{REGISTRY}/v2/{repo}/manifests/{tag}")));
    out.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("docker-content-digest")
                .then(|| v.trim().to_owned())
        })
        .unwrap_or_else(|| panic!("no digest for {repo}:{tag}:\n{out}"))
}

/// Deletes the manifests it was given from the registry on drop (panics
/// included).
#[derive(Default)]
pub struct ManifestGuard {
    /// (repository, digest)
    manifests: RefCell<Vec<(String, String)>>,
}

impl ManifestGuard {
    /// Delete the manifest `digest` of `repo` on drop.
    pub fn manifest(&self, repo: &str, digest: &str) {
        self.manifests
            .borrow_mut()
            .push((repo.to_owned(), digest.to_owned()));
    }
}

impl Drop for ManifestGuard {
    fn drop(&mut self) {
        for (repo, digest) in self.manifests.borrow().iter() {
            let _ = Command::new("curl")
                .args(["-fsS", "-o", "/dev/null", "-X", "DELETE"])
                .arg(format!("http://{REGISTRY}/v2/{repo}/manifests/{digest}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}
