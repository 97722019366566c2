//! The Docker engine and what runs on it: [`Container`] is one container as
//! `docker inspect` sees it; [`DockerGuard`] removes what a test left there.

use std::cell::RefCell;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::registry::REGISTRY;
use super::sh;

pub(super) fn docker(args: &[&str]) -> String {
    sh(Command::new("docker").args(args))
}

/// A container of a compose project, as `docker inspect` sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    pub id: String,
    pub service: String,
    /// created, running, restarting, exited, ...
    pub status: String,
    /// `none` without a healthcheck, else starting, healthy, unhealthy.
    pub health: String,
    /// The image ID (`sha256:...`).
    pub image: String,
}

impl Container {
    pub fn running(&self) -> bool {
        self.status == "running"
    }
}

/// Every container of compose project `project`, sorted by service.
///
/// Safe to poll while compose works on the project: a container removed
/// between the listing and the inspection makes it look again.
pub fn containers(project: &str) -> Vec<Container> {
    let mut attempt = 0;
    loop {
        let ids = docker(&[
            "ps",
            "-aq",
            "--no-trunc",
            "--filter",
            &format!("label=com.docker.compose.project={project}"),
        ]);
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if ids.is_empty() {
            return vec![];
        }
        let mut args = vec![
            "inspect",
            "--format",
            "{{.ID}} {{index .Config.Labels \"com.docker.compose.service\"}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}} {{.Image}}",
        ];
        args.extend(ids);
        let out = Command::new("docker")
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .expect("docker runs");
        if !out.status.success() {
            attempt += 1;
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                attempt < 50 && err.contains("No such"),
                "docker inspect failed: {err}"
            );
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        let mut v: Vec<Container> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                Container {
                    id: f[0].into(),
                    service: f[1].into(),
                    status: f[2].into(),
                    health: f[3].into(),
                    image: f[4].into(),
                }
            })
            .collect();
        v.sort_by(|a, b| a.service.cmp(&b.service));
        return v;
    }
}

/// The one container of a one-service project; panics unless exactly one.
pub fn the_container(project: &str) -> Container {
    let c = containers(project);
    assert_eq!(
        c.len(),
        1,
        "project {project}: want one container, have {c:?}"
    );
    c.into_iter().next().unwrap()
}

/// Assert the project runs exactly one container, running (and healthy if it
/// has a healthcheck); returns it.
pub fn assert_running(project: &str) -> Container {
    let c = the_container(project);
    assert!(c.running(), "project {project}: not running: {c:?}");
    assert!(
        c.health == "none" || c.health == "healthy",
        "project {project}: not healthy: {c:?}"
    );
    c
}

/// Read a file from inside a container.
pub fn container_file(id: &str, path: &str) -> String {
    docker(&["exec", id, "cat", path])
}

/// Removes every container, image and network of its compose projects on
/// drop (panics included). Image IDs named in `extra_images` (from state
/// files) are removed too, never forced.
#[derive(Default)]
pub struct DockerGuard {
    projects: RefCell<Vec<String>>,
    /// State files whose `images=`/`prev_images=` lines name images to remove.
    state_files: RefCell<Vec<PathBuf>>,
    /// Image references (`repo:tag`) the test made, untagged after the projects.
    refs: RefCell<Vec<String>>,
    /// Image IDs the test made, removed (never forced) once untagged.
    ids: RefCell<Vec<String>>,
    /// Manifests the test pushed to the local registry: (repository, digest).
    manifests: RefCell<Vec<(String, String)>>,
}

impl DockerGuard {
    pub fn project(&self, name: &str) {
        self.projects.borrow_mut().push(name.to_owned());
    }

    pub fn state_file(&self, p: PathBuf) {
        self.state_files.borrow_mut().push(p);
    }

    /// Remove the image reference `r` (`repo:tag`).
    pub fn image_ref(&self, r: &str) {
        self.refs.borrow_mut().push(r.to_owned());
    }

    /// Remove image `id` once no tag names it (never forced).
    pub fn image(&self, id: &str) {
        self.ids.borrow_mut().push(id.to_owned());
    }

    /// Delete the manifest `digest` of `repo` from the local registry.
    pub fn manifest(&self, repo: &str, digest: &str) {
        self.manifests
            .borrow_mut()
            .push((repo.to_owned(), digest.to_owned()));
    }
}

/// Untag `refs`, then remove `ids` that no tag names any more (never forced).
const IMAGES_SH: &str = r#"
n=$1; shift
i=0
for x in "$@"; do
  i=$((i + 1))
  if [ "$i" -le "$n" ]; then
    docker image rm "$x" >/dev/null 2>&1
  elif [ "$(docker image inspect --format '{{len .RepoTags}}' "$x" 2>/dev/null)" = 0 ]; then
    docker image rm "$x" >/dev/null 2>&1
  fi
done
true
"#;

const CLEANUP_SH: &str = r#"
p=$1; shift
imgs=$(for id in $(docker ps -aq --filter "label=com.docker.compose.project=$p"); do
  docker inspect --format '{{.Image}}' "$id"; done)
imgs="$imgs $(docker images -aq --no-trunc --filter "label=com.docker.compose.project=$p")"
refs=$(docker images --format '{{.Repository}}:{{.Tag}}' --filter "reference=$p-*" --filter "reference=${p}_*")
docker ps -aq --filter "label=com.docker.compose.project=$p" | xargs -r docker rm -f >/dev/null 2>&1
for r in $refs; do docker image rm "$r" >/dev/null 2>&1; done
# by ID only once untagged: an ID never removes another project's tag
for i in $imgs "$@"; do
  [ "$(docker image inspect --format '{{len .RepoTags}}' "$i" 2>/dev/null)" = 0 ] &&
    docker image rm "$i" >/dev/null 2>&1
done
docker network rm "${p}_default" >/dev/null 2>&1
true
"#;

impl Drop for DockerGuard {
    fn drop(&mut self) {
        let mut extra: Vec<String> = Vec::new();
        for f in self.state_files.borrow().iter() {
            if let Ok(text) = std::fs::read_to_string(f) {
                for line in text.lines() {
                    if let Some(v) = line
                        .strip_prefix("images=")
                        .or_else(|| line.strip_prefix("prev_images="))
                    {
                        for pair in v.split(',') {
                            if let Some((_, id)) = pair.split_once('=') {
                                extra.push(id.to_owned());
                            }
                        }
                    }
                }
            }
        }
        for p in self.projects.borrow().iter() {
            let _ = Command::new("sh")
                .arg("-c")
                .arg(CLEANUP_SH)
                .arg("cleanup")
                .arg(p)
                .args(&extra)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let refs = self.refs.borrow();
        let ids = self.ids.borrow();
        if !refs.is_empty() || !ids.is_empty() {
            let _ = Command::new("sh")
                .arg("-c")
                .arg(IMAGES_SH)
                .arg("images")
                .arg(refs.len().to_string())
                .args(refs.iter())
                .args(ids.iter())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
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
