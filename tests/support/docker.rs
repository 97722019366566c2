//! A Docker engine and what runs on it: [`Engine`] is either a test host's
//! own engine (its socket under the host's directory) or the machine's
//! engine (local mode, images built here to push); [`Container`] is one of
//! its containers as `docker inspect` sees it; [`DockerGuard`] removes what a
//! test left on the MACHINE's engine (a host's engine goes with the host).

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use super::sh;

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

/// One Docker engine, reached with the `docker` CLI.
#[derive(Debug, Clone)]
pub struct Engine {
    /// `unix://...` of a host's engine; `None`: the machine's engine.
    socket: Option<String>,
    /// For messages: `h1`, or `local`.
    pub label: String,
}

impl Engine {
    /// The machine's own engine (local mode; images built to be pushed).
    pub fn local() -> Engine {
        Engine {
            socket: None,
            label: "local".into(),
        }
    }

    /// The engine listening on the unix socket `path` (a test host's).
    pub fn at(path: &Path, label: &str) -> Engine {
        Engine {
            socket: Some(format!("unix://{}", path.display())),
            label: label.into(),
        }
    }

    /// `docker [-H SOCKET]`, not yet given its arguments.
    pub fn command(&self) -> Command {
        let mut c = Command::new("docker");
        c.env_remove("DOCKER_HOST").env_remove("DOCKER_CONTEXT");
        if let Some(s) = &self.socket {
            c.arg("-H").arg(s);
        }
        c.stdin(Stdio::null());
        c
    }

    /// `docker ARGS` on this engine, its stdout; panics if it fails.
    pub fn docker(&self, args: &[&str]) -> String {
        sh(self.command().args(args))
    }

    /// `docker ARGS` on this engine, whatever its outcome.
    pub fn try_docker(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("docker runs")
    }

    /// Every container of compose project `project`, sorted by service.
    ///
    /// Safe to poll while compose works on the project: a container removed
    /// between the listing and the inspection makes it look again.
    pub fn containers(&self, project: &str) -> Vec<Container> {
        self.list(Some(&format!("label=com.docker.compose.project={project}")))
    }

    /// Every container of the engine, of any project or none, sorted by ID.
    pub fn all_containers(&self) -> Vec<Container> {
        let mut v = self.list(None);
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// The containers `docker ps -a --filter FILTER` lists, sorted by service.
    fn list(&self, filter: Option<&str>) -> Vec<Container> {
        let mut attempt = 0;
        loop {
            let mut ps = vec!["ps", "-aq", "--no-trunc"];
            if let Some(f) = filter {
                ps.extend(["--filter", f]);
            }
            let ids = self.docker(&ps);
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if ids.is_empty() {
                return vec![];
            }
            let mut args = vec![
                "inspect",
                "--format",
                "{{.ID}} {{or (index .Config.Labels \"com.docker.compose.service\") \"-\"}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}} {{.Image}}",
            ];
            args.extend(ids);
            let out = self.try_docker(&args);
            if !out.status.success() {
                attempt += 1;
                let err = String::from_utf8_lossy(&out.stderr);
                assert!(
                    attempt < 50 && err.contains("No such"),
                    "{}: docker inspect failed: {err}",
                    self.label
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
    pub fn the_container(&self, project: &str) -> Container {
        let c = self.containers(project);
        assert_eq!(
            c.len(),
            1,
            "{}: project {project}: want one container, have {c:?}",
            self.label
        );
        c.into_iter().next().unwrap()
    }

    /// Assert the project runs exactly one container, running (and healthy
    /// if it has a healthcheck); returns it.
    pub fn assert_running(&self, project: &str) -> Container {
        let c = self.the_container(project);
        let l = &self.label;
        assert!(c.running(), "{l}: project {project}: not running: {c:?}");
        assert!(
            c.health == "none" || c.health == "healthy",
            "{l}: project {project}: not healthy: {c:?}"
        );
        c
    }

    /// Read a file from inside a container.
    pub fn container_file(&self, id: &str, path: &str) -> String {
        self.docker(&["exec", id, "cat", path])
    }

    /// The ID (`sha256:...`) of an image.
    pub fn image_id(&self, reference: &str) -> String {
        self.docker(&["image", "inspect", "--format", "{{.Id}}", reference])
            .trim()
            .to_owned()
    }

    /// Whether the engine has image `reference` (an ID or a name).
    pub fn has_image(&self, reference: &str) -> bool {
        self.try_docker(&["image", "inspect", reference])
            .status
            .success()
    }

    /// The IDs of every image the engine holds, sorted.
    pub fn images(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .docker(&["images", "-aq", "--no-trunc"])
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

/// Removes from the MACHINE's engine, on drop (panics included), every
/// container, image and network of the local-mode compose projects it was
/// given, and the images a test built here. Image IDs named in state files
/// it was given are removed too, never forced.
#[derive(Default)]
pub struct DockerGuard {
    projects: RefCell<Vec<String>>,
    /// State files whose `images=`/`prev_images=` lines name images to remove.
    state_files: RefCell<Vec<PathBuf>>,
    /// Image references (`repo:tag`) the test made, untagged after the projects.
    refs: RefCell<Vec<String>>,
    /// Image IDs the test made, removed (never forced) once untagged.
    ids: RefCell<Vec<String>>,
}

impl DockerGuard {
    /// Remove compose project `name` of the machine's engine.
    pub fn project(&self, name: &str) {
        self.projects.borrow_mut().push(name.to_owned());
    }

    /// Remove the images state file `p` names.
    pub fn state_file(&self, p: PathBuf) {
        self.state_files.borrow_mut().push(p);
    }

    /// Remove the local image reference `r` (`repo:tag`).
    pub fn image_ref(&self, r: &str) {
        self.refs.borrow_mut().push(r.to_owned());
    }

    /// Remove image `id` once no tag names it (never forced).
    pub fn image(&self, id: &str) {
        self.ids.borrow_mut().push(id.to_owned());
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

/// `sh -c SCRIPT NAME ARGS`, quietly, for clean-up: failures are ignored.
fn quietly(script: &str, name: &str, args: &[String]) {
    let _ = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(name)
        .args(args)
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_CONTEXT")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

impl Drop for DockerGuard {
    fn drop(&mut self) {
        let mut extra: Vec<String> = Vec::new();
        for f in self.state_files.borrow().iter() {
            if let Ok(text) = std::fs::read_to_string(f) {
                for line in text.lines() {
                    if let Some(v) = line
                        .strip_prefix("images=")
                        .or_else(|| line.strip_prefix("prev_images="))
                        .or_else(|| {
                            // generation=GEN BUILT_AT HASH IMAGES NAMES
                            line.strip_prefix("generation=")
                                .and_then(|g| g.split_whitespace().nth(3))
                        })
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
            let mut args = vec![p.clone()];
            args.extend(extra.iter().cloned());
            quietly(CLEANUP_SH, "cleanup", &args);
        }
        let refs = self.refs.borrow();
        let ids = self.ids.borrow();
        if !refs.is_empty() || !ids.is_empty() {
            let mut args = vec![refs.len().to_string()];
            args.extend(refs.iter().cloned());
            args.extend(ids.iter().cloned());
            quietly(IMAGES_SH, "images", &args);
        }
    }
}
