//! The local image registry (see scripts/setup-deps.sh).

use std::process::Command;

use super::docker::docker;
use super::sh;

/// The local registry (see scripts/setup-deps.sh); deleting is enabled.
pub const REGISTRY: &str = "127.0.0.1:5000";

/// The ID (`sha256:...`) of a local image.
pub fn image_id(reference: &str) -> String {
    docker(&["image", "inspect", "--format", "{{.Id}}", reference])
        .trim()
        .to_owned()
}

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
