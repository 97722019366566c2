//! The files of test stacks: Dockerfiles on the test base image, compose
//! files, and [`StackDef`], a stack's files as a value.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// The base image every test stack builds from (see scripts/setup-deps.sh).
/// Every host's engine starts empty and pulls it from the local registry.
pub const BASE_IMAGE: &str = "127.0.0.1:5000/rbuild/busybox:1";

/// A Dockerfile on the test base image. `run` adds a `RUN` step (for a
/// failing or slow build); `cmd` is the shell-form `CMD`.
pub fn dockerfile(run: Option<&str>, cmd: &str) -> String {
    let mut s = format!("FROM {BASE_IMAGE}\n");
    if let Some(r) = run {
        s.push_str(&format!("RUN {r}\n"));
    }
    s.push_str(&format!("CMD {cmd}\n"));
    s
}

/// The CMD of a healthy sleeper that records its version.
pub fn sleeper_cmd(version: &str) -> String {
    format!("echo {version} >/tmp/version; touch /tmp/ok; exec sleep 1000000")
}

/// The Dockerfile of a plain sleeper image at `version` (`FROM` the test
/// base image, `CMD` the sleeper).
pub fn sleeper_dockerfile(version: &str) -> String {
    dockerfile(None, &sleeper_cmd(version))
}

/// A compose file with one service `app` built from `.`; `init: true` so
/// stops are fast. `extra` is YAML for the service, indented 4 spaces.
pub fn compose(extra: &str) -> String {
    let mut s = String::from("services:\n  app:\n    build: .\n    init: true\n");
    s.push_str(extra);
    s
}

/// A healthcheck: healthy once `/tmp/ok` exists, checked every second.
pub fn healthcheck(retries: u32) -> String {
    format!(
        "    healthcheck:\n      test: [\"CMD\", \"test\", \"-f\", \"/tmp/ok\"]\n      interval: 1s\n      timeout: 3s\n      retries: {retries}\n"
    )
}

/// The files of one stack: (relative path, contents, mode).
#[derive(Debug, Clone)]
pub struct StackDef {
    pub files: Vec<(String, String, u32)>,
}

impl StackDef {
    /// The usual test stack: a healthy sleeper, a compose file and a `.env`
    /// secret (mode 0600).
    pub fn sleeper(version: &str) -> StackDef {
        StackDef {
            files: vec![
                ("Dockerfile".into(), sleeper_dockerfile(version), 0o644),
                ("compose.yml".into(), compose(""), 0o644),
                (".env".into(), format!("SECRET={version}\n"), 0o600),
            ],
        }
    }

    /// A sleeper with a 1 s healthcheck and a restart policy, so a crashing
    /// version crash-loops instead of just exiting.
    pub fn gated(cmd: &str, retries: u32) -> StackDef {
        StackDef::sleeper("v1")
            .with("Dockerfile", &dockerfile(None, cmd))
            .with(
                "compose.yml",
                &compose(&format!(
                    "    restart: unless-stopped\n{}",
                    healthcheck(retries)
                )),
            )
    }

    /// A sleeper (`version`) that is healthy only while `GATE/open` exists on
    /// the host: `gate` is bind-mounted at /gate and checked every second;
    /// `retries` failed checks make it unhealthy.
    pub fn behind_gate(version: &str, gate: &Path, retries: u32) -> StackDef {
        StackDef::sleeper(version).with(
            "compose.yml",
            &compose(&format!(
                "    volumes:\n      - {}:/gate\n    healthcheck:\n      test: [\"CMD\", \"test\", \"-f\", \"/gate/open\"]\n      interval: 1s\n      timeout: 3s\n      retries: {retries}\n",
                gate.display()
            )),
        )
    }

    /// A web server on port 80 (busybox httpd) serving `/www`, where its
    /// `CMD` writes `index.html` saying `version`; healthy once it answers.
    pub fn httpd(version: &str) -> StackDef {
        StackDef::sleeper(version)
            .with(
                "Dockerfile",
                &httpd_dockerfile(&format!("echo {version} >/www/index.html; ")),
            )
            .with("compose.yml", &compose(&httpd_extra()))
    }

    /// Replace (or add) one file (mode 0644; `path` may name a directory
    /// of the stack, made as needed).
    pub fn with(self, path: &str, contents: &str) -> StackDef {
        self.with_mode(path, contents, 0o644)
    }

    /// Replace (or add) one file, with `mode`.
    pub fn with_mode(mut self, path: &str, contents: &str, mode: u32) -> StackDef {
        self.files.retain(|(p, _, _)| p != path);
        self.files.push((path.into(), contents.into(), mode));
        self
    }

    /// Rename the compose file.
    pub fn compose_named(mut self, name: &str) -> StackDef {
        for f in &mut self.files {
            if f.0 == "compose.yml" {
                f.0 = name.into();
            }
        }
        self
    }

    pub fn compose_file_name(&self) -> String {
        self.files
            .iter()
            .map(|f| f.0.clone())
            .find(|p| p.ends_with(".yml") || p.ends_with(".yaml"))
            .expect("a stack has a compose file")
    }

    /// Write the files into `dir` (created, and the files' directories).
    pub fn write_to(&self, dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        for (p, c, mode) in &self.files {
            let path = dir.join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, c).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode)).unwrap();
        }
    }
}

/// The Dockerfile of a busybox httpd serving `/www` on port 80; `setup` is
/// shell run first by its `CMD` (e.g. writing `/www/index.html`).
pub fn httpd_dockerfile(setup: &str) -> String {
    dockerfile(
        Some("mkdir -p /www"),
        &format!("{setup}exec httpd -f -p 80 -h /www"),
    )
}

/// Compose keys (indented 4 spaces) for an httpd service: healthy once it
/// serves `/` on port 80.
pub fn httpd_extra() -> String {
    "    healthcheck:\n      test: [\"CMD\", \"wget\", \"-q\", \"-O\", \"/dev/null\", \"http://127.0.0.1/\"]\n      interval: 1s\n      timeout: 3s\n      retries: 30\n".to_owned()
}
