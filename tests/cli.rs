//! Everything that ends before a host is contacted: usage errors, inventory
//! errors, `--help`. No sshd, no docker: each test runs the built `rbuild`
//! in a temp directory of its own and asserts its exact stderr, stdout and
//! exit status (a builder in the manner of just's tests). Every run is given
//! an ssh config whose `ProxyCommand` leaves a mark: each test also proves
//! that no host was contacted.

use std::path::Path;
use std::process::Command;

/// One run of `rbuild`, as a spec: files in a temp directory (the working
/// directory), arguments, and what must come out.
#[must_use]
struct Test {
    dir: tempfile::TempDir,
    args: Vec<String>,
    env: Vec<(String, String)>,
    status: i32,
    stdout: Option<String>,
    stderr: Option<String>,
}

impl Test {
    fn new() -> Test {
        Test {
            dir: tempfile::tempdir().unwrap(),
            args: vec![],
            env: vec![],
            status: 0,
            stdout: Some(String::new()),
            stderr: Some(String::new()),
        }
    }

    /// A file of the test's directory (parents made).
    fn file(self, path: &str, contents: &str) -> Test {
        let p = self.dir.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, contents).unwrap();
        self
    }

    /// A stack directory `name/` with a compose file.
    fn stack(self, name: &str) -> Test {
        self.file(&format!("{name}/compose.yml"), "services: {}\n")
    }

    fn args(mut self, args: &[&str]) -> Test {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    fn env(mut self, k: &str, v: &str) -> Test {
        self.env.push((k.into(), v.into()));
        self
    }

    fn status(mut self, s: i32) -> Test {
        self.status = s;
        self
    }

    /// The exact stdout (default: empty).
    fn stdout(mut self, s: &str) -> Test {
        self.stdout = Some(s.into());
        self
    }

    /// The exact stderr (default: empty); `[TMP]` stands for the test's
    /// directory.
    fn stderr(mut self, s: &str) -> Test {
        self.stderr = Some(s.into());
        self
    }

    /// Do not compare stderr.
    fn any_stderr(mut self) -> Test {
        self.stderr = None;
        self
    }

    /// Do not compare stdout (it is checked by the caller).
    fn any_stdout(mut self) -> Test {
        self.stdout = None;
        self
    }

    /// Run it; returns stdout for further checks.
    fn run(self) -> String {
        self.run_both().0
    }

    /// Run it; returns stdout and stderr (normalized) for further checks.
    fn run_both(self) -> (String, String) {
        let mut c = Command::new(env!("CARGO_BIN_EXE_rbuild"));
        for v in [
            "BUILD_PERIOD",
            "BUILD_TTL",
            "COMPOSE_PROJECT_NAME",
            "RBUILD_BUILD_TIMEOUT",
            "RBUILD_SETTLE",
            "UP_TIMEOUT_PERIOD",
            "RBUILD_INVENTORY",
            "RBUILD_CONCURRENCY",
            "RBUILD_CONNECT_TIMEOUT",
            "RBUILD_SSH_CONFIG",
            "RBUILD_STATE_DIR",
            "RBUILD_LOG",
            "COMPLETE",
        ] {
            c.env_remove(v);
        }
        // where a default inventory is looked for: the test's own
        c.env("XDG_CONFIG_HOME", self.dir.path().join(".config"));
        let contacted = self.dir.path().join("CONTACTED");
        let trap = self.dir.path().join(".trap_ssh_config");
        std::fs::write(
            &trap,
            format!(
                "Host *\n  ProxyCommand sh -c 'touch {}; exit 1'\n",
                contacted.display()
            ),
        )
        .unwrap();
        c.env("NO_COLOR", "1")
            .env("COLUMNS", "100")
            .env("RBUILD_SSH_CONFIG", &trap)
            .current_dir(self.dir.path())
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        let out = c.output().expect("rbuild runs");
        let tmp = self.dir.path().to_str().unwrap();
        let norm = |b: &[u8]| String::from_utf8_lossy(b).replace(tmp, "[TMP]");
        let (stdout, stderr) = (norm(&out.stdout), times(&norm(&out.stderr)));
        let dump = format!(
            "args {:?}\n--- stdout\n{stdout}--- stderr\n{stderr}",
            self.args
        );
        assert_eq!(out.status.code(), Some(self.status), "exit status\n{dump}");
        if let Some(want) = &self.stderr {
            assert_eq!(&stderr, want, "stderr\n{dump}");
        }
        if let Some(want) = &self.stdout {
            assert_eq!(&stdout, want, "stdout\n{dump}");
        }
        assert!(!contacted.exists(), "a host was contacted\n{dump}");
        (stdout, stderr)
    }
}

/// Durations (`in 2ms`, `in 1.2s`) as `in [TIME]`, and the time a
/// progress line starts with as `[NOW]`.
fn times(s: &str) -> String {
    let s: String = s
        .lines()
        .map(|l| {
            let stamped = l.len() > 21
                && l.as_bytes()[4] == b'-'
                && l.as_bytes()[10] == b'T'
                && l[..21].ends_with("Z ");
            if stamped {
                format!("[NOW] {}\n", &l[21..])
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    let mut out = String::new();
    let mut rest = s.as_str();
    while let Some(i) = rest.find(" in ") {
        out.push_str(&rest[..i + 4]);
        rest = &rest[i + 4..];
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == 'm' || c == 's'))
            .unwrap_or(rest.len());
        if n > 0 && rest[..n].ends_with('s') {
            out.push_str("[TIME]");
            rest = &rest[n..];
        }
    }
    out.push_str(rest);
    out
}

/// An inventory with one host `web1` running `web/compose.yml`.
const ONE_HOST: &str =
    "hosts:\n  web1:\n    stacks:\n      - name: web\n        compose_file: web/compose.yml\n";

/// `doc` parsed, after checking it against `schemas/NAME.schema.json`
/// (JSON Schema draft 2020-12): the test fails naming every error.
fn valid(name: &str, doc: &str) -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("schemas/{name}.schema.json"));
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let validator = jsonschema::draft202012::new(&schema).expect("a valid schema");
    let v: serde_json::Value = serde_json::from_str(doc).unwrap_or_else(|e| panic!("{e}: {doc}"));
    let errors: Vec<String> = validator
        .iter_errors(&v)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{}: {errors:#?}\n{doc}", path.display());
    v
}

#[test]
fn nothing_to_do_is_a_usage_error_with_a_hint() {
    // no `-i`, no `RBUILD_INVENTORY`, no COMPOSE_FILE, and no inventory
    // where rbuild looks: the error names every place
    Test::new()
        .status(2)
        .stderr(
            "error: no inventory: none given (`-i`, `RBUILD_INVENTORY`) and none at `./rbuild.yaml`, `[TMP]/.config/rbuild/inventory.yaml`, `/etc/rbuild/inventory.yaml`\n\
             hint: `rbuild -i inventory.yaml` runs a fleet (or put it at `./rbuild.yaml`); `rbuild compose.yml` rebuilds a stack here\n",
        )
        .run();
}

#[test]
fn an_inventory_is_found_where_rbuild_looks_and_said_at_v() {
    let one = "hosts:\n  web1:\n    stacks:\n      - name: web\n        compose_file: ../../web/compose.yml\n";
    // $XDG_CONFIG_HOME/rbuild/inventory.yaml, then ./rbuild.yaml before it
    Test::new()
        .stack("web")
        .file(".config/rbuild/inventory.yaml", one)
        .args(&["check"])
        .stdout("ok: 1 host, 1 stack\n")
        .run();
    let (_, err) = Test::new()
        .stack("web")
        .file(".config/rbuild/inventory.yaml", "hosts: {}\n")
        .file("rbuild.yaml", ONE_HOST)
        .args(&["check", "-v"])
        .any_stderr()
        .stdout("ok: 1 host, 1 stack\n")
        .run_both();
    assert!(
        err.contains("inventory: `./rbuild.yaml`, the first that exists of `./rbuild.yaml`, `[TMP]/.config/rbuild/inventory.yaml`, `/etc/rbuild/inventory.yaml`"),
        "{err}"
    );
    // local mode is unchanged: a COMPOSE_FILE never reads the inventory
    Test::new()
        .file("rbuild.yaml", "hosts: [\n")
        .args(&["nope/compose.yml"])
        .status(2)
        .stderr("error: compose file `nope/compose.yml` does not exist\n")
        .run();
    Test::new()
        .args(&["status"])
        .status(2)
        .stderr(
            "error: no inventory: none given (`-i`, `RBUILD_INVENTORY`) and none at `./rbuild.yaml`, `[TMP]/.config/rbuild/inventory.yaml`, `/etc/rbuild/inventory.yaml`\n\
             hint: give `-i inventory.yaml`, or put the inventory at `./rbuild.yaml`\n",
        )
        .run();
}

#[test]
fn words_people_bring_from_other_tools() {
    let t = || Test::new().stack("web").file("inventory.yaml", ONE_HOST);
    // `deploy` is the run itself, its flags after it or before it; `-o
    // json` is `--json` (a run's usage error, as its document)
    for args in [
        &[
            "deploy",
            "-i",
            "inventory.yaml",
            "--dry-run",
            "--limit",
            "db*",
            "--json",
        ][..],
        &[
            "-i",
            "inventory.yaml",
            "-n",
            "deploy",
            "--limit",
            "db*",
            "-o",
            "json",
        ],
        &["-i", "inventory.yaml", "--limit=db*", "--output=json"],
    ] {
        let out = t().args(args).status(2).any_stderr().any_stdout().run();
        let doc: serde_json::Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"));
        assert_eq!(
            doc["error"], "`--limit db*` matches no host of `inventory.yaml`",
            "{args:?}: {out}"
        );
    }
    Test::new()
        .args(&["version"])
        .stdout(&format!("rbuild {}\n", env!("CARGO_PKG_VERSION")))
        .run();
    Test::new()
        .args(&["version", "-o", "json"])
        .stdout(&format!(
            "{{\"version\":\"{}\"}}\n",
            env!("CARGO_PKG_VERSION")
        ))
        .run();
    // Ansible's `--check`
    t().args(&["-i", "inventory.yaml", "--check"])
        .status(2)
        .stderr(
            "error: `--check` is not an rbuild flag: the dry run is `--dry-run` (`-n`)\n\
             hint: `rbuild -n` shows what would be rebuilt and why, changing nothing; `rbuild check` validates the inventory and every stack without connecting\n",
        )
        .run();
    // a mistyped subcommand after `-i`, or a word like none
    t().args(&["-i", "inventory.yaml", "stauts"])
        .status(2)
        .stderr("error: no subcommand or compose file named `stauts`\nhint: did you mean `rbuild status`?\n")
        .run();
    t().args(&["-i", "inventory.yaml", "deplyo"])
        .status(2)
        .stderr("error: no subcommand or compose file named `deplyo`\nhint: did you mean `rbuild deploy`?\n")
        .run();
    t().args(&["-i", "inventory.yaml", "frobnicate"])
        .status(2)
        .stderr("error: no subcommand or compose file named `frobnicate`\nhint: the subcommands: `deploy`, `history`, `logs`, `rollback`, `status`, `check`, `merge`, `completions`, `man`, `version`\n")
        .run();
    // `logs web1` with no inventory given: the default one is read for
    // the host, and without one the right forms are named
    Test::new()
        .stack("web")
        .file("rbuild.yaml", ONE_HOST)
        .args(&["logs", "web1"])
        .status(2)
        .stderr(
            "error: `logs web1`: STACK is missing: with an inventory, `logs` takes HOST and STACK\n\
             hint: e.g. `rbuild -i ./rbuild.yaml logs web1 web`; the stacks of `web1`: web\n",
        )
        .run();
    Test::new()
        .args(&["logs", "web1"])
        .status(2)
        .stderr(
            "error: no inventory: none given (`-i`, `RBUILD_INVENTORY`) and none at `./rbuild.yaml`, `[TMP]/.config/rbuild/inventory.yaml`, `/etc/rbuild/inventory.yaml`\n\
             hint: `rbuild -i inventory.yaml logs HOST STACK` (or put the inventory at `./rbuild.yaml`); without one, `rbuild logs compose.yml`\n",
        )
        .run();
    Test::new()
        .args(&["logs", "web1.example.com"])
        .status(2)
        .stderr(
            "error: `logs web1.example.com`: no compose file `web1.example.com`, and no inventory to find a host `web1.example.com` in\n\
             hint: on an inventory host, `logs` takes HOST and STACK: `rbuild -i inventory.yaml logs web1.example.com STACK`; here, one COMPOSE_FILE\n",
        )
        .run();
    // HOST without STACK, and a STACK given for HOST
    t().args(&["-i", "inventory.yaml", "logs", "web1"])
        .status(2)
        .stderr(
            "error: `logs web1`: STACK is missing: with an inventory, `logs` takes HOST and STACK\n\
             hint: e.g. `rbuild -i inventory.yaml logs web1 web`; the stacks of `web1`: web\n",
        )
        .run();
    t().args(&["-i", "inventory.yaml", "logs", "web"])
        .status(2)
        .stderr(
            "error: `logs web`: STACK is missing: with an inventory, `logs` takes HOST and STACK\n\
             hint: `web` is a stack: name its host first, e.g. `rbuild -i inventory.yaml logs web1 web`\n",
        )
        .run();
}

#[test]
fn short_help_is_a_summary_and_long_help_has_everything() {
    let short = Test::new().args(&["-h"]).any_stdout().run();
    insta::assert_snapshot!(short);
    assert!(
        short.lines().count() <= 40,
        "{} lines",
        short.lines().count()
    );
    let long = Test::new().args(&["--help"]).any_stdout().run();
    for flag in [
        "--prune-image-cache",
        "--state-dir",
        "--shard",
        "--metrics-file",
    ] {
        assert!(!short.contains(flag) && long.contains(flag), "{flag}");
    }
    assert!(!long.contains("      --check"), "a hidden flag");
}

#[test]
fn help_and_version() {
    let help = Test::new().args(&["--help"]).any_stdout().run();
    assert!(
        help.starts_with("Keep Docker Compose stacks rebuilt"),
        "{help}"
    );
    for flag in [
        "--inventory",
        "--build-period",
        "--up-timeout-period",
        "--force-rebuild",
        "--remove-images",
        "--dry-run",
        "--json",
        "--canary",
        "history",
        "rollback",
    ] {
        assert!(help.contains(flag), "{flag} in --help:\n{help}");
    }
    Test::new()
        .args(&["--version"])
        .stdout(&format!("rbuild {}\n", env!("CARGO_PKG_VERSION")))
        .run();
}

#[test]
fn flags_are_checked_by_clap() {
    Test::new()
        .args(&["--bogus"])
        .status(2)
        .stderr(
            "error: unexpected argument '--bogus' found\n\n  tip: to pass '--bogus' as a value, use '-- --bogus'\n\n\
             Usage: rbuild [OPTIONS] [COMPOSE_FILE]... [COMMAND]\n\nFor more information, try '--help'.\n",
        )
        .run();
    Test::new()
        .stack("web")
        .file("inventory.yaml", ONE_HOST)
        .args(&["-i", "inventory.yaml", "-j", "0"])
        .status(2)
        .stderr(
            "error: invalid value '0' for '--concurrency <N>': 0 is not in 1..=4096\n\nFor more information, try '--help'.\n",
        )
        .run();
    Test::new()
        .args(&["-i", "inventory.yaml", "--serial", "200%"])
        .status(2)
        .stderr(
            "error: invalid value '200%' for '--serial <N|P%>': `200%` is more than 100%\n\nFor more information, try '--help'.\n",
        )
        .run();
}

#[test]
fn local_and_fleet_mode_do_not_mix() {
    Test::new()
        .stack("web")
        .file("inventory.yaml", ONE_HOST)
        .args(&["web/compose.yml", "-i", "inventory.yaml"])
        .status(2)
        .stderr("error: give either COMPOSE_FILE arguments (local mode) or `--inventory` (fleet mode), not both\n")
        .run();
    // an inventory from the environment does not count: local mode wins
    // (checked up to the missing compose file)
    Test::new()
        .env("RBUILD_INVENTORY", "inventory.yaml")
        .args(&["nope/compose.yml"])
        .status(2)
        .stderr("error: compose file `nope/compose.yml` does not exist\n")
        .run();
    Test::new()
        .stack("web")
        .args(&["--limit", "web*", "web/compose.yml"])
        .status(2)
        .stderr("error: `--limit` selects inventory hosts: it needs `--inventory`\n")
        .run();
    Test::new()
        .args(&["history", "web1", "web"])
        .status(2)
        .stderr(
            "error: no inventory: none given (`-i`, `RBUILD_INVENTORY`) and none at `./rbuild.yaml`, `[TMP]/.config/rbuild/inventory.yaml`, `/etc/rbuild/inventory.yaml`\n\
             hint: `rbuild -i inventory.yaml history HOST STACK` (or put the inventory at `./rbuild.yaml`); without one, `rbuild history compose.yml`\n",
        )
        .run();
    Test::new()
        .stack("web")
        .file("inventory.yaml", ONE_HOST)
        .args(&["-i", "inventory.yaml", "rollback", "web1"])
        .status(2)
        .stderr(
            "error: `rollback web1`: STACK is missing: with an inventory, `rollback` takes HOST and STACK\n\
             hint: e.g. `rbuild -i inventory.yaml rollback web1 web`; the stacks of `web1`: web\n",
        )
        .run();
}

#[test]
fn rollback_to_takes_a_generation_number() {
    for bad in ["x", "2.5", "last", ""] {
        Test::new()
            .stack("web")
            .file("inventory.yaml", ONE_HOST)
            .args(&["-i", "inventory.yaml", "rollback", "web1", "web", "--to", bad])
            .status(2)
            .stderr(&format!(
                "error: invalid value '{bad}' for '--to <GEN>': `{bad}` is not a generation: give its number, as `rbuild history` shows it\n\nFor more information, try '--help'.\n"
            ))
            .run();
    }
    // a good one goes as far as the inventory: a stack it does not name is
    // still a usage error, no host contacted
    Test::new()
        .stack("web")
        .file("inventory.yaml", ONE_HOST)
        .args(&[
            "-i",
            "inventory.yaml",
            "rollback",
            "web1",
            "db",
            "--to",
            "3",
        ])
        .status(2)
        .stderr("error: host `web1` runs no stack `db`\nhint: its stacks: web\n")
        .run();
}

#[test]
fn history_and_rollback_work_in_local_mode() {
    Test::new()
        .stack("web")
        .args(&["--state-dir", "state", "history", "web/compose.yml"])
        .stderr("local web: no rebuild recorded yet\n")
        .run();
    let out = Test::new()
        .stack("web")
        .args(&[
            "--json",
            "--state-dir",
            "state",
            "rollback",
            "web/compose.yml",
        ])
        .status(1)
        .any_stdout()
        .run();
    // rollback prints the run's document
    let doc = valid("run", &out);
    assert_eq!(doc["results"][0]["host"], "local", "{out}");
    assert_eq!(doc["results"][0]["ok"], false, "{out}");
    let err = doc["results"][0]["error"].as_str().unwrap();
    assert!(
        err.starts_with("no rebuild is recorded here (no state directory "),
        "{out}"
    );
}

#[test]
fn inventory_errors_name_the_file_and_line() {
    let bad = |text: &str, stderr: &str| {
        Test::new()
            .stack("web")
            .file("inventory.yaml", text)
            .args(&["-i", "inventory.yaml"])
            .status(2)
            .stderr(stderr)
            .run();
    };
    bad(
        "hosts:\n  web1:\n    adress: 10.0.0.1\n    stacks:\n      - name: web\n        compose_file: web/compose.yml\n",
        "error: inventory.yaml:3:5: unknown key `adress`\nhint: did you mean `address`?\n",
    );
    bad(
        "hosts:\n  web1:\n    stacks:\n      - name: web\n        compose_file: nope/compose.yml\n",
        "error: inventory.yaml:5: host `web1`, stack `web`: compose file `nope/compose.yml` does not exist\n\
         hint: `compose_file` is relative to the inventory file's directory\n",
    );
    bad(
        "hosts:\n  web1:\n    stacks:\n      - name: web\n        compose_file: web/compose.yml\n      - name: web\n        compose_file: web/compose.yml\n",
        "error: inventory.yaml:6: host `web1`: stack `web` is listed twice\nhint: stack names must be unique on a host\n",
    );
    bad(
        "hosts:\n  web1:\n    stacks:\n      - name: web\n        compose_file: web/compose.yml\n        remote_dri: /srv/x\n",
        "error: inventory.yaml:6:9: unknown key `remote_dri`\nhint: did you mean `remote_dir`?\n",
    );
    // a host named twice, a block indented where YAML expects none
    bad(
        "hosts:\n  web1:\n    stacks:\n      - name: web\n        compose_file: web/compose.yml\n  web1:\n    stacks: []\n",
        "error: inventory.yaml:6:3: `web1` is given twice in the same block\n\
         hint: each host, stack and key may appear once in its block: remove or rename one\n",
    );
    bad(
        "hosts:\n  web1:\n     address: 10.0.0.1\n    stacks:\n      - name: web\n        compose_file: web/compose.yml\n",
        "error: inventory.yaml:3:6: `address:` is indented 5 spaces, the next key of its block (`stacks:`) 4\n\
         hint: indent every key of a block by the same number of spaces: a host's keys under its name, its stacks' items under `stacks:`\n",
    );
    // shapes: `hosts:` as a list, `stacks:` as paths, a tab
    bad(
        "hosts:\n  - web1\n",
        "error: inventory.yaml:2:3: `hosts:` is written as a list: it is a map from each host's name to its keys\n\
         hint: write `web1:` under `hosts:`, not `- web1`, and its keys (`address:`, `stacks:`) indented below it\n",
    );
    bad(
        "hosts:\n  web1:\n    stacks:\n      - web/compose.yml\n",
        "error: inventory.yaml:4:7: a host's `stacks:` lists `web/compose.yml` as a path: each item is a stack with `name:` and `compose_file:`\n\
         hint: write `- name: web` and, in line with `name:`, `compose_file: web/compose.yml`\n",
    );
    bad(
        "hosts:\n  web1:\n\tstacks:\n      - name: web\n",
        "error: inventory.yaml:3:1: a tab in the indentation: YAML indents with spaces only\n\
         hint: replace the tab by spaces, as many as the keys in line with it have\n",
    );
    bad(
        "hosts:\n  web1:\n    stacks:\n      - name: web\n        compose_file: web/compose.yml\n        zero_downtime: true\n",
        "error: inventory.yaml:6: host `web1`, stack `web`: `zero_downtime: true`, but no service can run a second container beside its old one in its compose files\n\
         hint: a service replaced beside its old container must not publish a fixed host port (`\"80\"`, not `\"8080:80\"`: put a reverse proxy in front) nor set `container_name`; or remove `zero_downtime`\n",
    );
    bad(
        "hosts: {}\n",
        "error: inventory.yaml:1: `hosts` is empty: nothing to do\n",
    );
    bad(
        "hosts:\n  web1:\n    state_dir: relative/dir\n    stacks:\n      - name: web\n        compose_file: web/compose.yml\n",
        "error: inventory.yaml:3: host `web1`: state_dir `relative/dir` is not an absolute path\n",
    );
    // numbers in range, written as in the rest of the inventory
    bad(
        "defaults:\n  connect_timeout: 18446744073709551615\nhosts:\n  web1:\n    stacks:\n      - name: web\n        compose_file: web/compose.yml\n",
        "error: inventory.yaml:2:20: 18446744073709551615 seconds is out of range: from 1s to 1h (3600 seconds)\n",
    );
    bad(
        "defaults:\n  up_timeout: sixty\nhosts:\n  web1:\n    stacks:\n      - name: web\n        compose_file: web/compose.yml\n",
        "error: inventory.yaml:2:15: `sixty` is not a duration: write seconds (`90`) or a duration such as `30m` or `1d`\n",
    );
    bad(
        "hosts:\n  web1:\n    port: 0\n    stacks:\n      - name: web\n        compose_file: web/compose.yml\n",
        "error: inventory.yaml:3:11: port 0 is not a port number (1 to 65535)\n",
    );
    bad(
        "hosts:\n  web1:\n    port: \"22x\"\n    stacks:\n      - name: web\n        compose_file: web/compose.yml\n",
        "error: inventory.yaml:3:11: port `22x` is not a port number (1 to 65535)\n",
    );
    Test::new()
        .args(&["-i", "missing.yaml"])
        .status(2)
        .stderr("error: missing.yaml: cannot read the inventory: No such file or directory (os error 2)\n")
        .run();
}

#[test]
fn limit_history_and_rollback_name_what_is_not_there() {
    let t = || Test::new().stack("web").file("inventory.yaml", ONE_HOST);
    t().args(&["-i", "inventory.yaml", "--limit", "db*"])
        .status(2)
        .stderr(
            "error: `--limit db*` matches no host of `inventory.yaml`\n\
             hint: patterns are globs over host and group names, e.g. `web*`; `@TAG` selects by tag, `!PATTERN` leaves hosts out\n",
        )
        .run();
    // exclusions, `--exclude`, tags and shards
    let three = "hosts:\n  web1:\n    tags: [eu]\n    stacks:\n      - name: web\n        compose_file: web/compose.yml\n  web2:\n    stacks:\n      - name: web\n        compose_file: web/compose.yml\n";
    let t3 = || Test::new().stack("web").file("inventory.yaml", three);
    t3().args(&[
        "-i",
        "inventory.yaml",
        "--limit",
        "web*,!db*",
        "--exclude",
        "@eu",
        "--limit",
        "@us",
    ])
    .status(2)
    .stderr(
        "error: `--limit @us` matches no host of `inventory.yaml`\n\
             hint: the inventory's tags: eu\n",
    )
    .run();
    t3().args(&["-i", "inventory.yaml", "--limit", "!web*"])
        .status(2)
        .stderr(
            "error: no host of `inventory.yaml` is left after `--limit !web*`\n\
             hint: an exclusion leaves out every host its pattern matches\n",
        )
        .run();
    t3().args(&["-i", "inventory.yaml", "--exclude", "web[", "status"])
        .status(2)
        .stderr(
            "error: `--exclude web[`: unclosed character class; missing ']'\n\
             hint: patterns are globs over host and group names, e.g. `web*`; `@TAG` selects by tag, `!PATTERN` leaves hosts out\n",
        )
        .run();
    for bad in ["0/2", "3/2", "x"] {
        t3().args(&["-i", "inventory.yaml", "--shard", bad])
            .status(2)
            .stderr(&format!(
                "error: invalid value '{bad}' for '--shard <K/N>': `{bad}` is not a shard: write K/N with 1 <= K <= N, e.g. `1/4`\n\nFor more information, try '--help'.\n"
            ))
            .run();
    }
    // web1 is in shard 1 of 2: shard 2 is empty, nothing is contacted
    let out = t()
        .args(&["-i", "inventory.yaml", "--shard", "2/2", "--json"])
        .any_stdout()
        .run();
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["hosts"], 0, "{out}");
    Test::new()
        .stack("web")
        .args(&["--shard", "1/2", "web/compose.yml"])
        .status(2)
        .stderr("error: `--shard` selects inventory hosts: it needs `--inventory`\n")
        .run();
    t().args(&["-i", "inventory.yaml", "history", "nope", "web"])
        .status(2)
        .stderr("error: host `nope` is not in the inventory\n")
        .run();
    t().args(&["-i", "inventory.yaml", "rollback", "web1", "db"])
        .status(2)
        .stderr("error: host `web1` runs no stack `db`\nhint: its stacks: web\n")
        .run();
}

#[test]
fn the_example_inventory_parses_up_to_its_missing_stacks() {
    // the example names stacks/blog, stacks/shop and stacks/status, which a
    // user has to write: the first host's first one is named with its line
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("inventory.example.yaml");
    let text = std::fs::read_to_string(example).unwrap();
    let line = text
        .lines()
        .position(|l| l.contains("compose_file: stacks/blog/"))
        .unwrap()
        + 1;
    Test::new()
        .file("inventory.yaml", &text)
        .args(&["-i", "inventory.yaml", "--dry-run"])
        .status(2)
        .stderr(&format!(
            "error: inventory.yaml:{line}: host `web1.example.com`, stack `blog`: compose file `stacks/blog/compose.yml` does not exist\n\
             hint: `compose_file` is relative to the inventory file's directory\n"
        ))
        .run();
}

#[test]
fn shell_metacharacters_in_names_and_addresses_are_refused_never_run() {
    // the marker is where the command would write: the test's directory
    let t = |text: &str, stderr: &str| {
        let t = Test::new().stack("web").file("inventory.yaml", text);
        let marker = t.dir.path().join("PWNED");
        let out = t
            .args(&["-i", "inventory.yaml", "--json"])
            .status(2)
            .stderr(stderr)
            .any_stdout()
            .run();
        assert!(!marker.exists(), "executed");
        // under --json, the error is a document on stdout too
        let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(doc["exit_code"], 2, "{out}");
        let first = stderr.lines().next().unwrap();
        assert_eq!(
            doc["error"],
            first.strip_prefix("error: ").unwrap(),
            "{out}"
        );
    };
    t(
        "hosts:\n  web1:\n    stacks:\n      - name: \"x;touch PWNED\"\n        compose_file: web/compose.yml\n",
        "error: inventory.yaml:4: host `web1`: stack name `x;touch PWNED` is not valid\n\
         hint: a stack name becomes a compose project name, a directory and a file name: use lowercase letters, digits, `-` and `_`, starting with a letter or digit\n",
    );
    // ssh would take it as an option (and run the command)
    t(
        "hosts:\n  web1:\n    address: \"-oProxyCommand=touch PWNED\"\n    stacks:\n      - name: web\n        compose_file: web/compose.yml\n",
        "error: inventory.yaml:3: host `web1`: address `-oProxyCommand=touch PWNED` is not valid\n\
         hint: an address is a host name or IP, without spaces, not starting with `-`\n",
    );
    t(
        "hosts:\n  web1:\n    user: \"-oProxyCommand=touch PWNED\"\n    stacks:\n      - name: web\n        compose_file: web/compose.yml\n",
        "error: inventory.yaml:3: host `web1`: user `-oProxyCommand=touch PWNED` is not valid\n",
    );
}

#[test]
fn the_trap_would_see_a_contact() {
    // the proof above is only as good as the trap: a valid inventory does
    // reach for its host, and the trap sees it
    let t = Test::new().stack("web").file("inventory.yaml", ONE_HOST);
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // (a host not reached: exit status 3)
        t.args(&["-i", "inventory.yaml", "--json"])
            .status(3)
            .any_stdout()
            .any_stderr()
            .run()
    }));
    let msg = match out {
        Ok(_) => panic!("the trap did not fire"),
        Err(e) => e.downcast_ref::<String>().cloned().unwrap_or_default(),
    };
    assert!(msg.contains("a host was contacted"), "{msg}");
}

/// A run stopped by a signal while it waits for a host: where its private
/// directory went, and how it exited.
fn signalled(signals: &[&str]) -> (Option<i32>, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("web")).unwrap();
    std::fs::write(d.join("web/compose.yml"), "services: {}\n").unwrap();
    std::fs::write(d.join("inventory.yaml"), ONE_HOST).unwrap();
    // a host that never answers: ssh waits on its proxy
    std::fs::write(
        d.join("slow_ssh_config"),
        format!(
            "Host *\n  ProxyCommand sh -c 'echo $$ > {}; exec sleep 600'\n",
            d.join("WAITING").display()
        ),
    )
    .unwrap();
    let tmp = d.join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rbuild"))
        .current_dir(d)
        .env("TMPDIR", &tmp)
        .env_remove("RBUILD_SSH_CONFIG")
        .args(["-q", "-F", "slow_ssh_config", "-i", "inventory.yaml"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while std::fs::read_to_string(d.join("WAITING")).map_or(true, |p| p.trim().is_empty()) {
        assert!(start.elapsed().as_secs() < 120, "rbuild never reached ssh");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        1,
        "its private directory"
    );
    for s in signals {
        let pid = child.id().to_string();
        assert!(
            Command::new("kill")
                .args([*s, pid.as_str()])
                .status()
                .unwrap()
                .success()
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    let status = child.wait().unwrap();
    // the proxy stands in for a host; the ssh waiting on it ends with it
    let proxy = std::fs::read_to_string(d.join("WAITING")).unwrap();
    let _ = Command::new("kill").arg(proxy.trim()).status();
    let left = std::fs::read_dir(&tmp)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    (status.code(), left)
}

#[test]
fn a_run_stopped_by_sigterm_or_two_ctrl_c_leaves_no_private_directory() {
    assert_eq!(signalled(&["-TERM"]), (Some(143), vec![]));
    assert_eq!(signalled(&["-INT", "-INT"]), (Some(130), vec![]));
}

#[test]
fn build_ttl_of_the_original_script_is_read_and_build_period_wins() {
    Test::new()
        .stack("web")
        .env("BUILD_TTL", "soon")
        .args(&["web/compose.yml"])
        .status(2)
        .stderr("error: `BUILD_TTL=soon`: `soon` is not a duration: write seconds (`90`) or a duration such as `30m` or `1d`\n")
        .run();
    // BUILD_PERIOD wins, so BUILD_TTL is not even read; a dry run in local
    // mode reads a state directory, nothing else
    let out = Test::new()
        .stack("web")
        .env("BUILD_TTL", "soon")
        .env("BUILD_PERIOD", "1d")
        .args(&[
            "--dry-run",
            "--json",
            "--state-dir",
            "state",
            "web/compose.yml",
        ])
        .stderr("[NOW] local web: would_rebuild (first_build) in [TIME]\n")
        .any_stdout()
        .run();
    // the real binary's dry run is a run document
    let doc = valid("run", &out);
    assert_eq!(doc["results"][0]["action"], "would_rebuild", "{out}");
    assert_eq!(doc["results"][0]["ok"], true, "{out}");
}

#[test]
fn local_mode_takes_the_project_name_compose_would_use() {
    let name_of = |t: Test| -> String {
        let out = t
            .args(&[
                "--dry-run",
                "--json",
                "--state-dir",
                "state",
                "web/compose.yml",
            ])
            .any_stderr()
            .any_stdout()
            .run();
        let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
        doc["results"][0]["stack"].as_str().unwrap().to_owned()
    };
    // the directory's name, as compose gives it
    assert_eq!(name_of(Test::new().stack("web")), "web");
    // the file's `name:`
    assert_eq!(
        name_of(Test::new().file("web/compose.yml", "name: shop\nservices: {}\n")),
        "shop"
    );
    // the project's .env beats `name:`, and the environment beats both
    let t = || {
        Test::new()
            .file("web/compose.yml", "name: shop\nservices: {}\n")
            .file("web/.env", "COMPOSE_PROJECT_NAME=fromenvfile\n")
    };
    assert_eq!(name_of(t()), "fromenvfile");
    assert_eq!(
        name_of(t().env("COMPOSE_PROJECT_NAME", "fromenv")),
        "fromenv"
    );
    Test::new()
        .file("web/compose.yml", "name: Bad Name\nservices: {}\n")
        .args(&["web/compose.yml"])
        .status(2)
        .stderr("error: `[TMP]/web/compose.yml`: the project name `Bad Name` (`name:` of the compose file) is not one compose takes\nhint: project names take lowercase letters, digits, `-` and `_`, starting with a letter or digit\n")
        .run();
}

#[test]
fn completions_and_the_manual_page() {
    for shell in ["bash", "zsh", "fish"] {
        let out = Test::new().args(&["completions", shell]).any_stdout().run();
        assert!(
            out.contains("rbuild") && out.contains("COMPLETE"),
            "{shell}: {out}"
        );
    }
    let man = Test::new().args(&["man"]).any_stdout().run();
    assert!(
        man.starts_with(".ie") || man.contains(".TH rbuild"),
        "{man}"
    );
    assert!(man.contains("inventory"), "{man}");
    // the script asks rbuild for candidates: the inventory's hosts
    let out = Test::new()
        .stack("web")
        .file("inventory.yaml", ONE_HOST)
        .env("COMPLETE", "bash")
        .env("_CLAP_COMPLETE_INDEX", "4")
        .env("_CLAP_IFS", "\n")
        .args(&["--", "rbuild", "-i", "inventory.yaml", "--limit", ""])
        .any_stdout()
        .run();
    assert!(out.lines().any(|l| l == "web1"), "{out}");
    let out = Test::new()
        .stack("web")
        .file("inventory.yaml", ONE_HOST)
        .env("COMPLETE", "bash")
        .env("_CLAP_COMPLETE_INDEX", "5")
        .env("_CLAP_IFS", "\n")
        .args(&["--", "rbuild", "-i", "inventory.yaml", "logs", "web1", ""])
        .any_stdout()
        .run();
    assert_eq!(out.lines().next(), Some("web"), "{out}");
    assert!(!out.lines().any(|l| l == "web1"), "{out}");
    // every page: rbuild.1 and one per subcommand
    let out = Test::new()
        .args(&["man", "--dir", "man1"])
        .any_stdout()
        .run();
    for page in [
        "man1/rbuild.1",
        "man1/rbuild-deploy.1",
        "man1/rbuild-status.1",
        "man1/rbuild-version.1",
    ] {
        assert!(out.contains(page), "{out}");
    }
    Test::new()
        .args(&["completions", "tcsh"])
        .status(2)
        .any_stderr()
        .run();
}

#[test]
fn a_file_outside_the_stack_is_refused_naming_the_compose_file_line_and_path() {
    let project = |t: Test| {
        t.file(
            "proj/deploy/compose.yml",
            "services:\n  app:\n    image: x\n    env_file:\n      - ./local.env\n      - ../common.env\n",
        )
        .file("proj/common.env", "A=1\n")
    };
    // local mode: the root is the compose file's directory, or `--root`
    project(Test::new())
        .args(&["proj/deploy/compose.yml"])
        .status(2)
        .stderr("error: [TMP]/proj/deploy/compose.yml:6: env_file `../common.env` is outside the stack's directory `[TMP]/proj/deploy`\nhint: rbuild hashes and ships only the compose file's directory: set `--root DIR` to a directory that holds both\n")
        .run();
    project(Test::new())
        .args(&[
            "--root",
            "proj/deploy/..",
            "--dry-run",
            "proj/deploy/compose.yml",
        ])
        .any_stdout()
        .any_stderr()
        .run();
    // fleet mode: `root:` in the inventory
    let inv = "hosts:\n  web1:\n    stacks:\n      - name: web\n        compose_file: proj/deploy/compose.yml\n";
    project(Test::new())
        .file("inventory.yaml", inv)
        .args(&["-i", "inventory.yaml"])
        .status(2)
        .stderr("error: proj/deploy/compose.yml:6: host `web1`, stack `web`: env_file `../common.env` is outside the stack's directory `proj/deploy`\nhint: rbuild hashes and ships only the compose file's directory: set `root:` on the stack (relative to the inventory file) to a directory that holds both\n")
        .run();
    project(Test::new())
        .file(
            "inventory.yaml",
            &format!("{inv}        root: proj/deploy/../..\n"),
        )
        .args(&["-i", "inventory.yaml"])
        .status(2)
        .any_stderr()
        .run();
}

#[test]
fn dir_mode_and_dir_group_are_validated() {
    let bad = |key: &str, stderr: &str| {
        Test::new()
            .stack("web")
            .file(
                "inventory.yaml",
                &format!("hosts:\n  web1:\n    stacks:\n      - name: web\n        compose_file: web/compose.yml\n        {key}\n"),
            )
            .args(&["-i", "inventory.yaml"])
            .status(2)
            .stderr(stderr)
            .run();
    };
    bad(
        "dir_mode: \"0777\"",
        "error: inventory.yaml:6:19: dir_mode `0777` lets anyone write the stack's directory; write it quoted in octal, e.g. `dir_mode: \"0750\"` (its group may read) or `\"0755\"`\n",
    );
    bad(
        "dir_mode: \"0550\"",
        "error: inventory.yaml:6:19: dir_mode `0550` does not give its owner (the deploying user) `rwx`; write it quoted in octal, e.g. `dir_mode: \"0750\"` (its group may read) or `\"0755\"`\n",
    );
    bad(
        "dir_mode: rwxr-x---",
        "error: inventory.yaml:6:19: dir_mode `rwxr-x---` is not an octal mode; write it quoted in octal, e.g. `dir_mode: \"0750\"` (its group may read) or `\"0755\"`\n",
    );
    bad(
        "dir_group: \"www data\"",
        "error: inventory.yaml:6:20: dir_group `www data` is not a group name (letters, digits, `_`, `.`, `-`, starting with a letter or `_`) or a gid\n",
    );
}

#[test]
fn status_and_logs_name_what_they_need() {
    Test::new()
        .args(&["status"])
        .status(2)
        .stderr(
            "error: no inventory: none given (`-i`, `RBUILD_INVENTORY`) and none at `./rbuild.yaml`, `[TMP]/.config/rbuild/inventory.yaml`, `/etc/rbuild/inventory.yaml`\n\
             hint: give `-i inventory.yaml`, or put the inventory at `./rbuild.yaml`\n",
        )
        .run();
    let t = || Test::new().stack("web").file("inventory.yaml", ONE_HOST);
    t().args(&["status", "-i", "inventory.yaml", "--limit", "db*"])
        .status(2)
        .stderr(
            "error: `--limit db*` matches no host of `inventory.yaml`\n\
             hint: patterns are globs over host and group names, e.g. `web*`; `@TAG` selects by tag, `!PATTERN` leaves hosts out\n",
        )
        .run();
    t().args(&["-i", "inventory.yaml", "logs", "web1", "db"])
        .status(2)
        .stderr("error: host `web1` runs no stack `db`\nhint: its stacks: web\n")
        .run();
}

#[test]
fn check_validates_the_inventory_and_every_stack_without_connecting() {
    let two = "stacks:\n  shared:\n    compose_file: shared/compose.yml\n    groups: [front]\nhosts:\n  web1:\n    groups: [front]\n    stacks:\n      - name: web\n        compose_file: web/compose.yml\n  web2:\n    groups: [front]\n    stacks:\n      - name: db\n        compose_file: db/compose.yml\n";
    let t = || {
        Test::new()
            .stack("web")
            .stack("shared")
            .file(
                "db/compose.yml",
                "x-base: &base\n  image: db\nservices:\n  db:\n    <<: *base\n",
            )
            .file("inventory.yaml", two)
    };
    t().args(&["check", "-i", "inventory.yaml"])
        .stdout("ok: 2 hosts, 4 stacks\n")
        .run();
    t().args(&["-i", "inventory.yaml", "check", "--limit", "web2"])
        .stdout("ok: 1 host, 2 stacks\n")
        .run();
    let out = t()
        .args(&["-i", "inventory.yaml", "check", "--json"])
        .any_stdout()
        .run();
    let doc = valid("check", &out);
    assert_eq!(
        (&doc["ok"], &doc["hosts"], &doc["stacks"]),
        (&true.into(), &2.into(), &4.into()),
        "{out}"
    );
    // every problem, each with its file and line: a compose file that is
    // not YAML, a stack directory with a file that cannot ship
    let bad = t().file("web/compose.yml", "services:\n  app:\n    image: [x\n");
    std::fs::write(
        bad.dir
            .path()
            .join(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b"db/\xff")),
        "",
    )
    .unwrap();
    // (the exact wording of the YAML error is the parser's; the rest is ours)
    let (_, stderr) = bad
        .args(&["check", "-i", "inventory.yaml"])
        .status(2)
        .any_stderr()
        .run_both();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 4, "{stderr}");
    assert!(
        lines[0].starts_with("error: web/compose.yml:3: host `web1`, stack `web`: the compose file is not valid YAML: "),
        "{stderr}"
    );
    assert_eq!(
        lines[1],
        "hint: compose would refuse it too: `docker compose config` shows the same"
    );
    assert_eq!(
        lines[2],
        "error: host `web2`, stack `db`: cannot read the stack: `db/\u{FFFD}`: the name is not UTF-8, which rbuild cannot ship"
    );
    assert!(
        lines[3].starts_with("hint: fix the file's permissions"),
        "{stderr}"
    );
    // an invalid inventory: its first error, as a run prints it
    t().file("inventory.yaml", "hosts:\n  web1:\n    tags: [\"a b\"]\n    stacks:\n      - name: web\n        compose_file: web/compose.yml\n")
        .args(&["check", "-i", "inventory.yaml"])
        .status(2)
        .stderr("error: inventory.yaml:3: host `web1`: tag `a b` is not valid\nhint: tags take letters, digits, `.`, `-` and `_`\n")
        .run();
    Test::new()
        .args(&["check"])
        .status(2)
        .stderr(
            "error: no inventory: none given (`-i`, `RBUILD_INVENTORY`) and none at `./rbuild.yaml`, `[TMP]/.config/rbuild/inventory.yaml`, `/etc/rbuild/inventory.yaml`\n\
             hint: give `-i inventory.yaml`, or put the inventory at `./rbuild.yaml`\n",
        )
        .run();
}

/// An `.rbuildignore` that leaves out what the compose file needs (the
/// build context `app/`, mounted writable too) is caught by `check`, with
/// its file and line, before any build fails on a host; a data directory
/// left out is fine.
#[test]
fn check_catches_an_ignore_rule_that_leaves_out_a_build_context() {
    let inv =
        "hosts:\n  web1:\n    stacks:\n      - name: php\n        compose_file: php/compose.yml\n";
    let t = |ignore: &str| {
        Test::new()
            .file(
                "php/compose.yml",
                "services:\n  web:\n    build: ./app\n    volumes:\n      - ./app:/var/www/html\n      - ./uploads:/uploads\n",
            )
            .file("php/app/Dockerfile", "FROM scratch\n")
            .file("php/app/index.php", "<?php echo 1;\n")
            .file("php/uploads/a.png", "png")
            .file("php/.rbuildignore", ignore)
            .file("inventory.yaml", inv)
    };
    // (the writable mount of the code is said: it is not data to leave out)
    t("uploads/\n")
        .args(&["check", "-i", "inventory.yaml"])
        .stdout("ok: 1 host, 1 stack\n")
        .stderr("warning: stack `php`: `app` is a build context and is bind-mounted into a container that may write it: each ship replaces its files, and leaving it out of the ship would fail the build; mount it `:ro`, and write data to a directory of its own, listed in php/.rbuildignore\n")
        .run();
    t("app/\nuploads/\n")
        .args(&["check", "-i", "inventory.yaml"])
        .status(2)
        .stderr(
            "error: php/compose.yml:3: host `web1`, stack `php`: the build context `./app` is left out by the stack's `.rbuildignore`, so it is not shipped: the host could not build or start the stack\n\
             hint: take it out of `.rbuildignore`; to keep what a container writes on the host, mount that directory alone (or the code `:ro`) and list only the data directory\n",
        )
        .run();
}

#[test]
fn a_mistyped_subcommand_is_not_taken_for_a_compose_file() {
    Test::new()
        .args(&["statsu", "-i", "inventory.yaml"])
        .status(2)
        .stderr(
            "error: no subcommand or compose file named `statsu`\n\
             hint: did you mean `rbuild status`?\n",
        )
        .run();
    Test::new()
        .args(&["histroy"])
        .status(2)
        .stderr(
            "error: no subcommand or compose file named `histroy`\n\
             hint: did you mean `rbuild history`?\n",
        )
        .run();
    // a file that looks like one, or is not like any subcommand, is a file
    Test::new()
        .args(&["status.yml"])
        .status(2)
        .stderr("error: compose file `status.yml` does not exist\n")
        .run();
    Test::new()
        .args(&["deploy.yml"])
        .status(2)
        .stderr("error: compose file `deploy.yml` does not exist\n")
        .run();
}

#[test]
fn a_usage_error_under_json_is_a_json_document_on_stdout() {
    let doc = |t: Test| -> serde_json::Value {
        let out = t.status(2).any_stderr().any_stdout().run();
        valid("run", &out)
    };
    // clap's own errors: an unknown flag, a bad value
    let d = doc(Test::new().args(&["--json", "--bogus"]));
    assert_eq!(d["version"], 2);
    assert_eq!(d["exit_code"], 2);
    assert_eq!(d["results"], serde_json::json!([]));
    assert_eq!(d["error"], "unexpected argument '--bogus' found");
    assert_eq!(d["hint"], "to pass '--bogus' as a value, use '-- --bogus'");
    let d = doc(Test::new().args(&["-i", "inv.yaml", "-j", "0", "--json"]));
    assert_eq!(
        d["error"],
        "invalid value '0' for '--concurrency <N>': 0 is not in 1..=4096"
    );
    assert!(d["hint"].is_null());
    // and rbuild's: the message and its hint
    let d = doc(Test::new()
        .stack("web")
        .file("inventory.yaml", ONE_HOST)
        .args(&["-i", "inventory.yaml", "--json", "--limit", "db*"]));
    assert_eq!(
        d["error"],
        "`--limit db*` matches no host of `inventory.yaml`"
    );
    assert!(
        d["hint"]
            .as_str()
            .unwrap()
            .starts_with("patterns are globs")
    );
    // the message stays on stderr as without --json
    Test::new()
        .args(&["--json", "--bogus"])
        .status(2)
        .any_stdout()
        .stderr(
            "error: unexpected argument '--bogus' found\n\n  tip: to pass '--bogus' as a value, use '-- --bogus'\n\n\
             Usage: rbuild --json [COMPOSE_FILE]...\n\nFor more information, try '--help'.\n",
        )
        .run();
    // `--json` after `--` is a compose file's name, not the flag
    Test::new()
        .args(&["--bogus", "--", "--json"])
        .status(2)
        .any_stderr()
        .run();
}

#[test]
fn color_always_paints_and_never_or_no_color_do_not() {
    // a stack that cannot ship fails before anything runs: a red row
    let t = |args: &[&str]| {
        let t = Test::new().stack("web");
        std::fs::write(
            t.dir
                .path()
                .join(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b"web/\xff")),
            "",
        )
        .unwrap();
        t.args(args)
            .args(&["--state-dir", "state", "web/compose.yml"])
            .status(1)
            .any_stdout()
            .any_stderr()
            .run_both()
    };
    let ansi = |s: &str| s.contains('\x1b');
    // NO_COLOR=1 is set for every test: `always` wins over it
    let (out, _) = t(&["--color", "always"]);
    assert!(ansi(&out), "{out}");
    assert!(out.contains("\x1b[38;5;9m failed \x1b[39m"), "{out:?}");
    for args in [&["--color", "never"][..], &["--color=auto"], &[]] {
        let (out, err) = t(args);
        assert!(!ansi(&out) && !ansi(&err), "{args:?}: {out}{err}");
    }
    // the `error:` and `hint:` of a usage error
    let (_, err) = Test::new()
        .args(&["--color", "always"])
        .status(2)
        .any_stderr()
        .run_both();
    assert!(
        err.starts_with("\x1b[1;31merror:\x1b[0m no inventory")
            && err.contains("\x1b[1;36mhint:\x1b[0m "),
        "{err:?}"
    );
    let (_, err) = Test::new()
        .env("NO_COLOR", "")
        .args(&["--color", "never"])
        .status(2)
        .any_stderr()
        .run_both();
    assert!(!ansi(&err), "{err:?}");
    // clap's own errors follow the flag too
    let (_, err) = Test::new()
        .args(&["--color", "always", "--bogus"])
        .status(2)
        .any_stderr()
        .run_both();
    assert!(ansi(&err), "{err:?}");
    Test::new()
        .args(&["--color", "sometimes"])
        .status(2)
        .any_stderr()
        .run();
}

#[test]
fn the_summary_fits_columns_long_errors_wrap_in_their_column() {
    // a stack that cannot ship, its error long: the file's name
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("web")).unwrap();
    std::fs::write(d.join("web/compose.yml"), "services: {}\n").unwrap();
    let mut name = b"web/".to_vec();
    name.extend(b"a-file-whose-name-is-long-".repeat(5));
    name.push(0xff);
    std::fs::write(
        d.join(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&name)),
        "",
    )
    .unwrap();
    let run = |columns: Option<&str>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_rbuild"));
        c.current_dir(d)
            .env("NO_COLOR", "1")
            .env_remove("COLUMNS")
            .args(["--state-dir", "state", "web/compose.yml"]);
        if let Some(cols) = columns {
            c.env("COLUMNS", cols);
        }
        let out = c.output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let out = run(Some("80"));
    assert!(out.lines().count() > 6, "the error wrapped:\n{out}");
    for l in out.lines() {
        assert!(
            l.chars().count() <= 80,
            "{} chars: {l}\n{out}",
            l.chars().count()
        );
    }
    assert!(out.contains("| failed |"), "{out}");
    // piped without COLUMNS: no wrapping, each row one line
    let out = run(None);
    assert_eq!(out.lines().count(), 6, "{out}");
    assert!(out.lines().nth(3).unwrap().chars().count() > 150, "{out}");
}

#[test]
fn a_closed_pipe_is_not_a_panic() {
    // the reading end is closed before rbuild writes: every write fails
    let closed = |args: &[&str], close_stderr: bool| {
        let t = Test::new().stack("web");
        let mut c = Command::new(env!("CARGO_BIN_EXE_rbuild"));
        c.current_dir(t.dir.path())
            .env("NO_COLOR", "1")
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap();
        drop(child.stdout.take());
        let stderr = if close_stderr {
            drop(child.stderr.take());
            String::new()
        } else {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut s).unwrap();
            s
        };
        let status = child.wait().unwrap();
        assert_ne!(status.code(), Some(101), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        status.code()
    };
    assert_eq!(closed(&["completions", "bash"], false), Some(0));
    assert_eq!(closed(&["man"], false), Some(0));
    assert_eq!(closed(&["--help"], false), Some(0));
    assert_eq!(
        closed(
            &[
                "--json",
                "--state-dir",
                "state",
                "history",
                "web/compose.yml"
            ],
            false
        ),
        Some(0)
    );
    assert_eq!(
        closed(
            &["--dry-run", "--state-dir", "state", "web/compose.yml"],
            true
        ),
        Some(0)
    );
    // an error, with stderr closed too
    assert_eq!(closed(&["nothing/compose.yml"], true), Some(2));
    assert_eq!(closed(&["--json", "--bogus"], true), Some(2));
}

#[test]
fn each_v_adds_something() {
    let logs = |v: &[&str]| {
        let (_, err) = Test::new()
            .stack("web")
            .args(v)
            .args(&["--dry-run", "--state-dir", "state", "web/compose.yml"])
            .any_stderr()
            .any_stdout()
            .run_both();
        err
    };
    let (none, v, vv, vvv) = (logs(&[]), logs(&["-v"]), logs(&["-vv"]), logs(&["-vvv"]));
    assert!(!none.contains("info:"), "{none}");
    assert!(v.contains("info: 1 host selected: local"), "{v}");
    assert!(v.contains("info: local: check"), "{v}");
    assert!(!v.contains(" INFO ") && !v.contains("rbuild::"), "{v}");
    assert!(!v.contains("debug:"), "{v}");
    assert!(
        vv.contains("debug: rbuild::host: local: remote command: the check script"),
        "{vv}"
    );
    assert!(vv.contains(" hashed: "), "{vv}");
    assert!(
        vv.contains("'[token]' check"),
        "the token is left out: {vv}"
    );
    assert!(!vv.contains("trace:"), "{vv}");
    assert!(vvv.contains("trace: rbuild::protocol: @rbuild:"), "{vvv}");
    assert!(vvv.contains(" hello proto="), "{vvv}");
    let n = |s: &str| s.lines().count();
    assert!(n(&none) < n(&v) && n(&v) < n(&vv) && n(&vv) < n(&vvv));
}

#[test]
fn check_json_is_always_the_check_document() {
    // (stdout, stderr) of `check --json` with these arguments, exit 2
    let refused = |t: Test, args: &[&str]| -> (serde_json::Value, String) {
        let (out, err) = t.args(args).status(2).any_stdout().any_stderr().run_both();
        let doc = valid("check", &out);
        assert_eq!(
            (&doc["ok"], &doc["exit_code"]),
            (&false.into(), &2.into()),
            "{out}"
        );
        (doc, err)
    };
    // an inventory that does not parse
    let (doc, err) = refused(
        Test::new()
            .stack("web")
            .file("inventory.yaml", "hosts:\n  web1:\n    stacks:\n      - name: web\n        compose_fil: web/compose.yml\n"),
        &["-i", "inventory.yaml", "check", "--json"],
    );
    let first = doc["errors"][0]["error"].as_str().unwrap();
    assert!(first.starts_with("inventory.yaml:5:"), "{doc}");
    // the lines stay on stderr, as without --json
    assert!(err.starts_with(&format!("error: {first}\n")), "{err}");
    // a compose file the inventory names that does not exist
    let (doc, _) = refused(
        Test::new().file("inventory.yaml", ONE_HOST),
        &["-i", "inventory.yaml", "check", "--json"],
    );
    assert_eq!(
        doc["errors"][0]["error"],
        "inventory.yaml:5: host `web1`, stack `web`: compose file `web/compose.yml` does not exist"
    );
    assert_eq!(
        doc["errors"][0]["hint"],
        "`compose_file` is relative to the inventory file's directory"
    );
    // a compose file that is not YAML: found by the check itself
    let (doc, _) = refused(
        Test::new()
            .file("web/compose.yml", "services:\n  app:\n    image: [x\n")
            .file("inventory.yaml", ONE_HOST),
        &["check", "-i", "inventory.yaml", "--json"],
    );
    assert!(
        doc["errors"][0]["error"]
            .as_str()
            .unwrap()
            .contains("the compose file is not valid YAML"),
        "{doc}"
    );
    // no inventory at all, a selection that matches nothing, a bad flag
    refused(Test::new(), &["check", "--json"]);
    let (doc, _) = refused(
        Test::new().stack("web").file("inventory.yaml", ONE_HOST),
        &["-i", "inventory.yaml", "--limit", "db*", "check", "--json"],
    );
    assert_eq!(
        doc["errors"][0]["error"],
        "`--limit db*` matches no host of `inventory.yaml`"
    );
    let (doc, _) = refused(
        Test::new(),
        &["-i", "inventory.yaml", "check", "--json", "--bogus"],
    );
    assert_eq!(
        doc["errors"][0]["error"],
        "unexpected argument '--bogus' found"
    );
}

#[test]
fn merge_fans_in_the_documents_of_shards() {
    // two local-mode runs (no host), as two shards' documents
    let shard = |name: &str| -> String {
        Test::new()
            .stack(name)
            .args(&[
                "--dry-run",
                "--json",
                "--state-dir",
                "state",
                &format!("{name}/compose.yml"),
            ])
            .any_stderr()
            .any_stdout()
            .run()
    };
    let (web, db) = (shard("web"), shard("db"));
    valid("run", &web);
    let t = || {
        Test::new()
            .file("shard-1.json", &web)
            .file("shard-2.json", &db)
    };
    let out = t()
        .args(&["merge", "--json", "shard-1.json", "shard-2.json"])
        .any_stdout()
        .run();
    let doc = valid("run", &out);
    let stacks: Vec<&str> = doc["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["stack"].as_str().unwrap())
        .collect();
    assert_eq!(stacks, ["web", "db"], "{out}");
    assert_eq!(
        (&doc["counts"]["would_rebuild"], &doc["exit_code"]),
        (&2.into(), &0.into()),
        "{out}"
    );
    // the table, one row a stack
    let table = t()
        .args(&["merge", "shard-1.json", "shard-2.json"])
        .any_stdout()
        .run();
    assert!(table.contains("2 would rebuild"), "{table}");
    // one status, the most severe: a shard whose host was not reached (3)
    // and one held back (4) make 3
    let mut down: serde_json::Value = serde_json::from_str(&web).unwrap();
    down["results"][0]["action"] = "failed".into();
    down["results"][0]["reason"] = "host_failed".into();
    down["results"][0]["ok"] = false.into();
    down["exit_code"] = 3.into();
    let mut held: serde_json::Value = serde_json::from_str(&db).unwrap();
    held["results"][0]["action"] = "skipped".into();
    held["results"][0]["reason"] = "previous_failure".into();
    held["results"][0]["ok"] = false.into();
    held["exit_code"] = 4.into();
    let out = Test::new()
        .file("down.json", &down.to_string())
        .file("held.json", &held.to_string())
        .args(&["merge", "--json", "held.json", "down.json"])
        .status(3)
        .any_stdout()
        .run();
    let doc = valid("run", &out);
    assert_eq!(
        (&doc["counts"]["unreachable"], &doc["counts"]["held_back"]),
        (&1.into(), &1.into()),
        "{out}"
    );
    Test::new()
        .file("held.json", &held.to_string())
        .args(&["merge", "held.json"])
        .status(4)
        .any_stdout()
        .run();
    // a file missing, or not a document of this version: a usage error
    // naming it
    t().args(&["merge", "shard-1.json", "nope.json"])
        .status(2)
        .stderr("error: cannot read `nope.json`: No such file or directory (os error 2)\n")
        .run();
    t().file("old.json", "{\"version\": 1, \"results\": []}")
        .args(&["merge", "old.json"])
        .status(2)
        .stderr(
            "error: `old.json`: a document of version 1; this rbuild reads version 2\n\
             hint: give the documents that `rbuild --shard K/N --json` printed, one a shard\n",
        )
        .run();
    t().args(&["merge", "shard-1.json", "shard-1.json"])
        .status(2)
        .any_stderr()
        .run();
}

#[test]
fn a_metrics_file_not_written_is_an_error_even_under_quiet() {
    // a stack that cannot ship fails before anything runs (exit 1); the
    // metrics file's directory does not exist
    let t = Test::new().stack("web");
    std::fs::write(
        t.dir
            .path()
            .join(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b"web/\xff")),
        "",
    )
    .unwrap();
    let (_, err) = t
        .args(&[
            "-q",
            "--metrics-file",
            "no/such/dir/rbuild.prom",
            "--state-dir",
            "state",
            "web/compose.yml",
        ])
        .status(1)
        .any_stdout()
        .any_stderr()
        .run_both();
    assert!(
        err.contains("error: could not write the metrics file no/such/dir/rbuild.prom: ")
            && err.contains("(the run's result is unchanged)\nhint: "),
        "{err}"
    );
    assert!(!err.contains("WARN") && !err.contains("ERROR"), "{err}");
}

/// A tmux server of the test's own, running `script` in a pane of a known
/// size; killed on drop.
struct Pane {
    socket: String,
}

impl Pane {
    fn run(socket: &str, script: &Path, columns: u16) -> Pane {
        let ok = Command::new("tmux")
            .args(["-L", socket, "-f", "/dev/null", "new-session", "-d"])
            .args(["-x", &columns.to_string(), "-y", "30", "sh"])
            .arg(script)
            .status()
            .unwrap()
            .success();
        assert!(ok, "tmux starts");
        Pane {
            socket: socket.to_owned(),
        }
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn keys(&self, keys: &str) {
        Command::new("tmux")
            .args(["-L", &self.socket, "send-keys", keys])
            .status()
            .unwrap();
    }

    /// Wait until the screen shows what `f` wants; the last screen.
    fn wait(&self, what: &str, f: impl Fn(&str) -> bool) -> String {
        let start = std::time::Instant::now();
        loop {
            let last = self.screen();
            if f(&last) {
                return last;
            }
            assert!(
                start.elapsed().as_secs() < 60,
                "gave up waiting for {what}; the screen:\n{last}"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

impl Drop for Pane {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}

#[test]
fn ctrl_c_on_a_terminal_is_said_above_the_bars_and_again_names_the_hosts_in_flight() {
    if Command::new("tmux").arg("-V").output().is_err() {
        eprintln!("no tmux: skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("web")).unwrap();
    std::fs::write(d.join("web/compose.yml"), "services: {}\n").unwrap();
    let hosts: String = ["web1", "web2", "web3"]
        .iter()
        .map(|h| {
            format!(
                "  {h}:\n    stacks:\n      - name: web\n        compose_file: web/compose.yml\n"
            )
        })
        .collect();
    std::fs::write(d.join("inventory.yaml"), format!("hosts:\n{hosts}")).unwrap();
    // hosts that never answer: ssh waits on its proxy, which leaves its pid
    std::fs::write(
        d.join("slow_ssh_config"),
        format!(
            "Host *\n  ProxyCommand sh -c 'echo $$ >> {}; exec sleep 600'\n",
            d.join("WAITING").display()
        ),
    )
    .unwrap();
    std::fs::write(
        d.join("run.sh"),
        format!(
            "trap : INT\ncd '{}'\nunset RBUILD_SSH_CONFIG RBUILD_INVENTORY RBUILD_CONCURRENCY\nexport NO_COLOR=1\n'{}' -j 2 -F slow_ssh_config -i inventory.yaml\necho \"rbuild exited $?\"\nsleep 600\n",
            d.display(),
            env!("CARGO_BIN_EXE_rbuild")
        ),
    )
    .unwrap();
    let socket = format!("rbuild-cli-{}", std::process::id());
    let pane = Pane::run(&socket, &d.join("run.sh"), 120);
    let in_flight = |s: &str, h: &str| {
        s.lines()
            .any(|l| l.contains(h) && l.contains("connecting and checking"))
    };
    pane.wait("two hosts in flight", |s| {
        s.contains("0/3 hosts done") && in_flight(s, "web1") && in_flight(s, "web2")
    });
    pane.keys("C-c");
    let screen = pane.wait("the interrupted line", |s| {
        s.contains("interrupted: starting no new host")
    });
    assert!(
        screen.contains(
            "interrupted: starting no new host; waiting for the 2 hosts in flight: web1, web2 (Ctrl-C again to abort)"
        ),
        "{screen}"
    );
    // web3 never starts, and is not counted as done
    let screen = pane.wait("the count after Ctrl-C", |s| s.contains("not started"));
    assert!(
        screen.contains("0/3 hosts done, 2 in flight, 1 not started (interrupted)"),
        "{screen}"
    );
    // the bars are drawn under it, once: no stale frame above it
    let lines: Vec<&str> = screen.lines().collect();
    assert!(
        lines[0].starts_with("interrupted: ") && lines[1].contains("hosts done"),
        "{screen}"
    );
    assert_eq!(screen.matches("hosts done").count(), 1, "{screen}");
    // the line stays: it is not drawn over by the bars
    std::thread::sleep(std::time::Duration::from_millis(500));
    let screen = pane.screen();
    assert_eq!(
        screen.matches("interrupted: starting no new host").count(),
        1,
        "{screen}"
    );
    pane.keys("C-c");
    let screen = pane.wait("the run to end", |s| s.contains("rbuild exited"));
    assert!(screen.contains("rbuild exited 130"), "{screen}");
    assert!(
        screen.contains("aborted: the 2 hosts in flight may still be rebuilding on their own (the host script runs to its end there): web1, web2"),
        "{screen}"
    );
    assert!(
        screen.contains("hint: `rbuild status --limit web1,web2` shows what runs there"),
        "{screen}"
    );
    // the bars are cleared, not left as a stale frame
    assert!(
        screen
            .lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("aborted: ")),
        "{screen}"
    );
    assert!(!screen.contains("hosts done"), "{screen}");
    assert!(!screen.contains("connecting and checking"), "{screen}");
    drop(pane);
    for pid in std::fs::read_to_string(d.join("WAITING"))
        .unwrap_or_default()
        .lines()
    {
        let _ = Command::new("kill").arg(pid.trim()).status();
    }
}

#[test]
fn quiet_mails_a_persisting_failure_once_then_not_until_it_changes() {
    // local mode: a state file that says these very files failed a minute
    // ago holds the stack back (`previous_failure`) without docker
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_owned();
    let out = Test::new()
        .stack("web")
        .args(&[
            "--dry-run",
            "--json",
            "--state-dir",
            "state",
            "web/compose.yml",
        ])
        .any_stderr()
        .any_stdout()
        .run();
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    let hash = doc["results"][0]["hash"].as_str().unwrap().to_owned();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let failed = |d: &Path| {
        std::fs::create_dir_all(d.join("state")).unwrap();
        std::fs::write(
            d.join("state/web.state"),
            format!(
                "version=2\nhash=aaaa\nbuilt_at={}\nlast_result=failed\nfailed_hash={hash}\nfailed_at={}\n",
                now - 100,
                now - 60
            ),
        )
        .unwrap();
    };
    let run = |d: &Path, xdg: &Path| {
        let out = Command::new(env!("CARGO_BIN_EXE_rbuild"))
            .current_dir(d)
            .env("NO_COLOR", "1")
            .env("COLUMNS", "200")
            .env("XDG_STATE_HOME", xdg)
            .env_remove("RBUILD_STATE_DIR")
            .args(["-q", "--state-dir", "state", "web/compose.yml"])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    std::fs::create_dir_all(d.join("web")).unwrap();
    std::fs::write(d.join("web/compose.yml"), "services: {}\n").unwrap();
    failed(&d);
    let xdg = d.join("xdg");
    // the first time: the row, its error and its hint
    let (code, out, err) = run(&d, &xdg);
    assert_eq!(err, "");
    assert!(
        out.contains("local web: skipped (previous_failure): these files failed their rebuild")
            && out.contains("  hint: fix the stack"),
        "{out}"
    );
    let memory = std::fs::read_to_string(xdg.join("rbuild/reported.json")).unwrap();
    assert!(memory.contains(&hash), "{memory}");
    // the next run (cron, 30 minutes later): nothing, same exit status
    let (again, out, err) = run(&d, &xdg);
    assert_eq!((again, out.as_str(), err.as_str()), (code, "", ""));
    assert_ne!(code, Some(0));
    // a memory that cannot be written: a warning, and the row as news
    let blocked = d.join("blocked");
    std::fs::write(&blocked, "").unwrap();
    let (same, out, err) = run(&d, &blocked);
    assert_eq!(same, code);
    assert!(out.contains("previous_failure"), "{out}");
    assert!(
        err.starts_with("warning: cannot write ") && err.contains("reported.json"),
        "{err}"
    );
}
