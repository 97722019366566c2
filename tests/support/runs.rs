//! Running `rbuild`: [`Run`] is one finished run (exit status, output, the
//! `--json` document and its rows), [`Background`] one still running.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::rbuild_bin;

/// One finished rbuild run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// The `--json` document, when the run printed one.
    pub json: Option<Value>,
}

impl Run {
    /// Run a prepared command to its end.
    pub fn from_command(mut c: Command) -> Run {
        Run::from_output(c.output().expect("run rbuild"))
    }

    fn from_output(out: std::process::Output) -> Run {
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let json = serde_json::from_str(&stdout).ok();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout,
            stderr,
            json,
        }
    }

    /// Everything, for assertion messages.
    pub fn dump(&self) -> String {
        format!(
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    /// The JSON document on stdout; panics (with everything) if there is none.
    pub fn doc(&self) -> &Value {
        self.json
            .as_ref()
            .unwrap_or_else(|| panic!("no JSON document:\n{}", self.dump()))
    }

    pub fn rows(&self) -> &Vec<Value> {
        let doc = self.doc();
        assert_eq!(doc["version"], 2, "{}", self.dump());
        assert_eq!(
            doc["exit_code"].as_i64(),
            Some(self.code as i64),
            "the document's exit_code is the process's:\n{}",
            self.dump()
        );
        let results = doc["results"].as_array().expect("results");
        // `ok: false` names exactly what made the status non-zero (but for
        // usage errors and signals, which no row says)
        if !matches!(self.code, 2 | 130 | 143) {
            let not_ok = results.iter().filter(|r| r["ok"] == false).count();
            assert_eq!(
                not_ok == 0,
                self.code == 0,
                "rows with `ok: false` and the exit status:\n{}",
                self.dump()
            );
        }
        // every row counted once
        let counted: u64 = doc["counts"]
            .as_object()
            .expect("counts")
            .values()
            .filter_map(Value::as_u64)
            .sum();
        assert_eq!(counted, results.len() as u64, "{}", self.dump());
        results
    }

    /// The row of `stack` on `host`; panics if there is not exactly one.
    pub fn row(&self, host: &str, stack: &str) -> &Value {
        let rows: Vec<&Value> = self
            .rows()
            .iter()
            .filter(|r| r["host"] == host && r["stack"] == stack)
            .collect();
        assert_eq!(
            rows.len(),
            1,
            "want one row for {host}/{stack}:\n{}",
            self.dump()
        );
        rows[0]
    }

    /// Assert the row's action and reason (and, for successes, no error).
    pub fn expect(&self, host: &str, stack: &str, action: &str, reason: &str) -> &Value {
        let r = self.row(host, stack);
        assert_eq!(
            (r["action"].as_str(), r["reason"].as_str()),
            (Some(action), Some(reason)),
            "{host}/{stack}:\n{}",
            self.dump()
        );
        // a skip that still needs attention carries its error
        // (and one whose image moved names what moved)
        let attention = matches!(
            reason,
            "previous_failure" | "rollout_halted" | "base_moved" | "image_moved" | "cooling"
        );
        if matches!(action, "rebuilt" | "skipped" | "would_rebuild") && !attention {
            assert!(r["error"].is_null(), "{host}/{stack}:\n{}", self.dump());
        }
        r
    }

    pub fn error_of(&self, host: &str, stack: &str) -> String {
        self.row(host, stack)["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{host}/{stack} has no error:\n{}", self.dump()))
            .to_owned()
    }

    /// The row's hint, or "" when it has none.
    pub fn hint_of(&self, host: &str, stack: &str) -> String {
        self.row(host, stack)["hint"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    /// The hosts whose row for STACK has ACTION, in row order.
    pub fn hosts_with(&self, stack: &str, action: &str) -> Vec<String> {
        self.rows()
            .iter()
            .filter(|r| r["stack"] == stack && r["action"] == action)
            .map(|r| r["host"].as_str().unwrap().to_owned())
            .collect()
    }

    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "exit status:\n{}", self.dump());
        self
    }
}

/// An `rbuild` command with a clean environment (no variable of the
/// developer's shell changes a test's meaning).
pub fn rbuild_command() -> Command {
    let mut c = Command::new(rbuild_bin());
    for v in [
        "BUILD_PERIOD",
        "BUILD_TTL",
        "UP_TIMEOUT_PERIOD",
        "COMPOSE_PROJECT_NAME",
        "RBUILD_INVENTORY",
        "RBUILD_CONCURRENCY",
        "RBUILD_CONNECT_TIMEOUT",
        "RBUILD_BUILD_TIMEOUT",
        "RBUILD_SSH_CONFIG",
        "RBUILD_STATE_DIR",
        "RBUILD_LOG",
        "RBUILD_CACHE_DIR",
        "RBUILD_PERSIST",
        "RBUILD_NO_DIGESTS",
        "RBUILD_INSECURE_REGISTRIES",
    ] {
        c.env_remove(v);
    }
    // The health gate's settle window is 10 s by default; 3 s still sees a
    // service that crashes a second after it starts, and keeps the suite's
    // hundred rebuilds from waiting out 10 s each. Tests of the window set
    // their own (`--settle`).
    c.env("RBUILD_SETTLE", "3");
    c.env("NO_COLOR", "1").stdin(Stdio::null());
    c
}

/// Run to completion through assert_cmd.
pub fn run_command(c: Command) -> Run {
    let out = assert_cmd::Command::from_std(c)
        .timeout(Duration::from_secs(600))
        .output()
        .expect("rbuild runs");
    Run::from_output(out)
}

/// A child process killed (by its pid) if still running when dropped.
pub struct Background(pub Option<std::process::Child>);

impl Background {
    pub fn spawn(mut c: Command) -> Background {
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        Background(Some(c.spawn().expect("spawn")))
    }

    /// Like [`Background::spawn`], with stderr written to `path` (so a test
    /// can read the progress lines while it runs); [`Background::finish`]
    /// then has an empty `stderr`.
    pub fn spawn_stderr_to(mut c: Command, path: &Path) -> Background {
        let f = std::fs::File::create(path).unwrap();
        c.stdout(Stdio::piped()).stderr(f);
        Background(Some(c.spawn().expect("spawn")))
    }

    /// SIGKILL it (no chance to clean up) and reap it.
    pub fn kill9(mut self) {
        let mut c = self.0.take().unwrap();
        c.kill().expect("SIGKILL");
        c.wait().unwrap();
    }

    /// Send a signal by name (`TERM`, `INT`, ...).
    pub fn signal(&self, sig: &str) {
        let pid = self.0.as_ref().unwrap().id().to_string();
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &pid])
            .status()
            .unwrap();
        assert!(ok.success(), "kill -{sig} {pid}");
    }

    /// Send SIGINT, as Ctrl-C would.
    pub fn interrupt(&self) {
        let pid = self.0.as_ref().unwrap().id().to_string();
        let ok = Command::new("kill").args(["-INT", &pid]).status().unwrap();
        assert!(ok.success(), "kill -INT {pid}");
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        let c = self.0.as_mut().unwrap();
        matches!(c.try_wait(), Ok(None))
    }

    /// Wait for it to finish.
    pub fn finish(mut self) -> Run {
        let child = self.0.take().unwrap();
        Run::from_output(child.wait_with_output().unwrap())
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Run a prepared rbuild command under `/usr/bin/time -v`; the run and the
/// peak resident set size of rbuild (its ssh children included), in KiB.
/// A memory bound, not a time: nothing here depends on how fast it runs.
pub fn peak_rss_kib(c: Command) -> (Run, u64) {
    let mut t = Command::new("/usr/bin/time");
    t.arg("-v").arg(c.get_program()).args(c.get_args());
    for (k, v) in c.get_envs() {
        match v {
            Some(v) => t.env(k, v),
            None => t.env_remove(k),
        };
    }
    if let Some(d) = c.get_current_dir() {
        t.current_dir(d);
    }
    let mut run = run_command(t);
    let line = run
        .stderr
        .lines()
        .find(|l| l.contains("Maximum resident set size (kbytes):"))
        .unwrap_or_else(|| panic!("no peak RSS from /usr/bin/time:\n{}", run.dump()))
        .to_owned();
    let kib = line.rsplit(' ').next().unwrap().trim().parse().unwrap();
    // time's report is not rbuild's; neither is its exit status line
    let cut = run
        .stderr
        .find("\tCommand being timed:")
        .unwrap_or(run.stderr.len());
    run.stderr.truncate(cut);
    (run, kib)
}
