//! The executor against a scripted host: rows for hosts that cannot be
//! reached, locked stacks, halted rollouts, cut connections and Ctrl-C,
//! without sshd or docker.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use super::wire::hooks;
use super::*;
use crate::config::Mode;
use crate::decide::Reason;
use crate::host::Payload;
use crate::inventory::ComposePref;
use crate::remote::{Call, Outcome as Ended, Recorded, StackState, Transcript};
use crate::remote::{Event, Place};
use crate::report::Action;
use crate::rollout::Policy;

const NOW: u64 = 1_800_000_000;

/// How one scripted host behaves.
#[derive(Clone, Default)]
struct Behaviour {
    /// Connecting fails.
    down: bool,
    /// What the check finds, by stack (default: never built).
    recorded: HashMap<String, Recorded>,
    /// How each stack's apply ends (default: rebuilt).
    ends: HashMap<String, Ended>,
    /// The connection is lost after this many stacks of an apply.
    cut_after: Option<usize>,
    /// ... or, with this, the host goes silent then, forever.
    hang: bool,
}

#[derive(Default)]
struct World {
    hosts: HashMap<String, Behaviour>,
    /// Every call made: (host, command, stacks).
    calls: Mutex<Vec<(String, &'static str, Vec<String>)>>,
}

impl World {
    fn calls(&self, host: &str, command: &str) -> Vec<Vec<String>> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(h, c, _)| h == host && *c == command)
            .map(|(_, _, s)| s.clone())
            .collect()
    }
}

struct Scripted {
    host: String,
    world: Arc<World>,
}

impl Connect for Arc<World> {
    type Conn = Scripted;

    async fn connect(&self, host: &Host) -> Result<Scripted, HostError> {
        if self.hosts.get(&host.name).is_some_and(|b| b.down) {
            return Err(HostError::Connect {
                message: "Connection refused".into(),
                hint: Some("is sshd running?"),
            });
        }
        Ok(Scripted {
            host: host.name.clone(),
            world: self.clone(),
        })
    }
}

impl Conn for Scripted {
    async fn run(
        &mut self,
        call: &Call,
        _payload: Option<Payload>,
        on_event: &mut (dyn FnMut(&Event) + Send),
    ) -> Result<Transcript, HostError> {
        let b = self
            .world
            .hosts
            .get(&self.host)
            .cloned()
            .unwrap_or_default();
        let hello = Event::Hello {
            proto: crate::remote::PROTOCOL.to_string(),
            now: NOW,
        };
        let mut events = vec![hello];
        let mut code = Some(0);
        let stacks: Vec<String> = match call {
            Call::Check(c) => {
                for s in &c.stacks {
                    let recorded = b.recorded.get(&s.name).cloned().unwrap_or(Recorded {
                        state: Ok(None),
                        locked_by: None,
                        running: None,
                        phase: None,
                        restarted: false,
                    });
                    events.push(Event::State {
                        stack: s.name.clone(),
                        recorded,
                    });
                }
                events.push(Event::End { hold: c.hold });
                c.stacks.iter().map(|s| s.name.clone()).collect()
            }
            Call::Apply(a) => {
                for (k, s) in a.stacks.iter().enumerate() {
                    if b.cut_after == Some(k) {
                        code = None;
                        if b.hang {
                            events.iter().for_each(&mut *on_event);
                            std::future::pending::<()>().await;
                        }
                        break;
                    }
                    events.push(Event::Step {
                        stack: s.place.name.clone(),
                        step: "build".into(),
                    });
                    events.push(Event::Done {
                        stack: s.place.name.clone(),
                        outcome: b.ends.get(&s.place.name).cloned().unwrap_or(Ended::Rebuilt),
                        detail: "scripted".into(),
                        cause: None,
                    });
                }
                a.stacks.iter().map(|s| s.place.name.clone()).collect()
            }
            Call::Rollback(_) | Call::History(_) | Call::Status(_) | Call::Logs(_) => {
                unreachable!("not the executor's")
            }
        };
        self.world
            .calls
            .lock()
            .unwrap()
            .push((self.host.clone(), call.name(), stacks));
        events.iter().for_each(on_event);
        Ok(Transcript {
            events,
            code,
            stderr: String::new(),
        })
    }

    async fn close(self) {}
}

/// Hosts running the named stacks (compose files in `dir`).
fn hosts(dir: &std::path::Path, spec: &[(&str, &[&str])], policy: Policy) -> Vec<Host> {
    spec.iter()
        .map(|(h, stacks)| Host {
            name: h.to_string(),
            address: h.to_string(),
            user: None,
            port: None,
            identity_file: None,
            ssh_options: Default::default(),
            state_dir: None,
            compose: ComposePref::Auto,
            connect_timeout: None,
            groups: vec![],
            tags: vec![],
            stacks: stacks
                .iter()
                .map(|s| {
                    let compose_file = dir.join(s).join("compose.yml");
                    std::fs::create_dir_all(compose_file.parent().unwrap()).unwrap();
                    std::fs::write(&compose_file, format!("# {s}\nservices: {{}}\n")).unwrap();
                    Stack {
                        name: s.to_string(),
                        root: dir.join(s),
                        compose_file,
                        compose_files: vec!["compose.yml".into()],
                        profiles: vec![],
                        data_dirs: vec![],
                        remote_dir: None,
                        keys: crate::inventory::Inheritable {
                            watch: Some(crate::inventory::Seconds(0)),
                            ..Default::default()
                        },
                        rollout: policy,
                        adopt: false,
                        dir_mode: None,
                        dir_group: None,
                        zero_downtime: vec![],
                        hooks: Default::default(),
                        one_shots: vec![],
                        mounts: vec![],
                        env: vec![],
                    }
                })
                .collect(),
        })
        .collect()
}

fn settings(hosts: Vec<Host>) -> Settings {
    Settings {
        mode: Mode::Fleet,
        hosts,
        force: false,
        dry_run: false,
        digests: false,
        remove_images: false,
        prune_image_cache: false,
        build_period: None,
        up_timeout: None,
        build_timeout: None,
        settle: None,
        watch: None,
        concurrency: 4,
        json: false,
        metrics_file: None,
        shard: None,
        lock_wait: 0,
        notify: None,
        quiet: true,
        verbose: 0,
        connect_timeout: Duration::from_secs(1),
        ssh_config: None,
        accept_new_host_keys: false,
        persist: 0,
    }
}

/// Run the executor; the rows, and every progress event it sent.
async fn execute(
    settings: Settings,
    world: &Arc<World>,
    cancelled: bool,
) -> (Vec<Row>, Vec<Progress>) {
    let shipments = Arc::new(Shipments::hash(&settings.hosts, false));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let (cancel_tx, cancel_rx) = watch::channel(cancelled);
    let rows = run(
        Arc::new(settings),
        shipments,
        Arc::new(crate::registry::Upstream::off()),
        Arc::new(world.clone()),
        tx,
        cancel_rx,
    )
    .await;
    drop(cancel_tx);
    let mut events = vec![];
    while let Ok(e) = rx.try_recv() {
        events.push(e);
    }
    (rows, events)
}

fn summary(rows: &[Row]) -> Vec<(String, String, &'static str, &'static str)> {
    rows.iter()
        .map(|r| {
            (
                r.host.clone(),
                r.stack.clone(),
                r.action.as_str(),
                r.reason.as_str(),
            )
        })
        .collect()
}

fn row<'a>(rows: &'a [Row], host: &str, stack: &str) -> &'a Row {
    rows.iter()
        .find(|r| r.host == host && r.stack == stack)
        .unwrap()
}

/// Every row was shown once, as it settled.
fn shown_once(rows: &[Row], events: &[Progress]) {
    let shown: Vec<&Row> = events
        .iter()
        .filter_map(|e| match e {
            Progress::Result { row, .. } => Some(&**row),
            _ => None,
        })
        .collect();
    assert_eq!(shown.len(), rows.len(), "{shown:?}");
    // the same row, up to what is stamped on it after it was shown
    // (its times and hash, for `--json`)
    let key = |r: &Row| {
        (
            r.host.clone(),
            r.stack.clone(),
            r.action,
            r.reason,
            r.error.clone(),
            r.hint.clone(),
        )
    };
    for r in rows {
        assert!(
            shown.iter().any(|s| key(s) == key(r)),
            "{r:?} not shown in {shown:?}"
        );
    }
}

fn up_to_date(dir: &std::path::Path, stack: &str) -> Recorded {
    let c = crate::stack::read(&dir.join(stack)).unwrap();
    Recorded {
        state: Ok(Some(StackState {
            hash: Some(c.hash),
            built_at: NOW - 10,
            last_result: Some("ok".into()),
            ..StackState::default()
        })),
        locked_by: None,
        running: Some(true),
        phase: None,
        restarted: false,
    }
}

#[tokio::test]
async fn an_unreachable_host_is_its_rows_and_the_others_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let hs = hosts(
        dir.path(),
        &[("h1", &["web", "db"]), ("h2", &["web"])],
        Policy::default(),
    );
    let mut w = World::default();
    w.hosts.insert(
        "h1".into(),
        Behaviour {
            down: true,
            ..Behaviour::default()
        },
    );
    let w = Arc::new(w);
    let (rows, events) = execute(settings(hs), &w, false).await;
    assert_eq!(
        summary(&rows),
        [
            ("h1".into(), "web".into(), "failed", "host_failed"),
            ("h1".into(), "db".into(), "failed", "host_failed"),
            ("h2".into(), "web".into(), "rebuilt", "first_build"),
        ]
    );
    let r = row(&rows, "h1", "db");
    assert_eq!(
        r.error.as_deref(),
        Some("cannot connect: Connection refused")
    );
    assert_eq!(r.hint.as_deref(), Some("is sshd running?"));
    shown_once(&rows, &events);
    assert_eq!(w.calls("h2", "apply"), [vec!["web".to_string()]]);
}

#[tokio::test]
async fn a_locked_stack_is_not_applied_and_up_to_date_ones_stay_alone() {
    let dir = tempfile::tempdir().unwrap();
    let hs = hosts(
        dir.path(),
        &[("h1", &["web", "db", "cache"])],
        Policy::default(),
    );
    let mut b = Behaviour::default();
    b.recorded.insert(
        "web".into(),
        Recorded {
            state: Ok(None),
            locked_by: Some("4242".into()),
            running: None,
            phase: None,
            restarted: false,
        },
    );
    b.recorded
        .insert("cache".into(), up_to_date(dir.path(), "cache"));
    let mut w = World::default();
    w.hosts.insert("h1".into(), b);
    let w = Arc::new(w);
    let (rows, events) = execute(settings(hs), &w, false).await;
    assert_eq!(
        summary(&rows),
        [
            ("h1".into(), "web".into(), "failed", "locked"),
            ("h1".into(), "db".into(), "rebuilt", "first_build"),
            ("h1".into(), "cache".into(), "skipped", "up_to_date"),
        ]
    );
    assert!(
        row(&rows, "h1", "web")
            .error
            .as_deref()
            .unwrap()
            .contains("pid 4242"),
        "{rows:?}"
    );
    assert_eq!(w.calls("h1", "apply"), [vec!["db".to_string()]]);
    shown_once(&rows, &events);
}

#[tokio::test]
async fn a_failed_canary_halts_the_rollout_on_hosts_not_started() {
    let dir = tempfile::tempdir().unwrap();
    let policy = Policy {
        canary: true,
        ..Policy::default()
    };
    let hs = hosts(
        dir.path(),
        &[("h1", &["web"]), ("h2", &["web"]), ("h3", &["web"])],
        policy,
    );
    let mut w = World::default();
    for h in ["h1", "h2", "h3"] {
        let mut b = Behaviour::default();
        b.ends.insert("web".into(), Ended::RolledBack);
        w.hosts.insert(h.into(), b);
    }
    let w = Arc::new(w);
    let (rows, events) = execute(settings(hs), &w, false).await;
    let canary: Vec<&Row> = rows
        .iter()
        .filter(|r| r.action == Action::RolledBack)
        .collect();
    assert_eq!(canary.len(), 1, "{rows:?}");
    for r in rows.iter().filter(|r| r.host != canary[0].host) {
        assert_eq!(
            (r.action, r.reason),
            (Action::Skipped, Reason::RolloutHalted)
        );
        assert_eq!(
            r.error.as_deref(),
            Some("not rebuilt (first_build): the rollout of `web` halted, its canary failed")
        );
        assert!(
            w.calls(&r.host, "apply").is_empty(),
            "{} was applied",
            r.host
        );
        assert_eq!(w.calls(&r.host, "check").len(), 1, "checked all the same");
    }
    shown_once(&rows, &events);
}

#[tokio::test]
async fn a_connection_cut_mid_apply_leaves_the_rest_without_a_result() {
    let dir = tempfile::tempdir().unwrap();
    let hs = hosts(dir.path(), &[("h1", &["web", "db"])], Policy::default());
    let mut w = World::default();
    w.hosts.insert(
        "h1".into(),
        Behaviour {
            cut_after: Some(1),
            ..Behaviour::default()
        },
    );
    let w = Arc::new(w);
    let (rows, _) = execute(settings(hs), &w, false).await;
    assert_eq!(row(&rows, "h1", "web").action, Action::Rebuilt);
    let db = row(&rows, "h1", "db");
    assert_eq!((db.action, db.reason), (Action::Failed, Reason::FirstBuild));
    assert_eq!(
        db.error.as_deref(),
        Some(
            "no result: the connection was lost while the remote script ran; a rebuild may still be running on the host (it holds the stack's lock)"
        )
    );
}

#[tokio::test(start_paused = true)]
async fn a_host_that_goes_silent_is_given_up_on_and_what_it_said_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let hs = hosts(
        dir.path(),
        &[("h1", &["web", "db"]), ("h2", &["web"])],
        Policy::default(),
    );
    let mut w = World::default();
    w.hosts.insert(
        "h1".into(),
        Behaviour {
            cut_after: Some(1),
            hang: true,
            ..Behaviour::default()
        },
    );
    let w = Arc::new(w);
    let (rows, events) = execute(settings(hs), &w, false).await;
    assert_eq!(row(&rows, "h1", "web").action, Action::Rebuilt, "{rows:?}");
    assert_eq!(row(&rows, "h2", "web").action, Action::Rebuilt, "{rows:?}");
    let db = row(&rows, "h1", "db");
    assert_eq!((db.action, db.reason), (Action::Failed, Reason::FirstBuild));
    // 2 stacks of 30 min builds and 60 s ups, and the slack
    let secs = 2 * (2 * 1800 + 3 * 60 + 4 * 120) + 120;
    assert_eq!(
        db.error.as_deref(),
        Some(
            format!(
                "no result: the host gave no result within {secs}s; a rebuild may still be running on the host (it holds the stack's lock)"
            )
            .as_str()
        )
    );
    shown_once(&rows, &events);
}

#[tokio::test]
async fn after_ctrl_c_no_host_starts() {
    let dir = tempfile::tempdir().unwrap();
    let hs = hosts(
        dir.path(),
        &[("h1", &["web"]), ("h2", &["web", "db"])],
        Policy::default(),
    );
    let w = Arc::new(World::default());
    let (rows, events) = execute(settings(hs), &w, true).await;
    assert!(
        rows.iter()
            .all(|r| (r.action, r.reason) == (Action::Skipped, Reason::Interrupted)),
        "{rows:?}"
    );
    assert_eq!(rows.len(), 3);
    assert!(w.calls.lock().unwrap().is_empty(), "nothing was contacted");
    shown_once(&rows, &events);
}

#[tokio::test]
async fn a_dry_run_checks_and_applies_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let hs = hosts(dir.path(), &[("h1", &["web", "db"])], Policy::default());
    let mut b = Behaviour::default();
    b.recorded.insert("db".into(), up_to_date(dir.path(), "db"));
    let mut w = World::default();
    w.hosts.insert("h1".into(), b);
    let w = Arc::new(w);
    let mut s = settings(hs);
    s.dry_run = true;
    let (rows, _) = execute(s, &w, false).await;
    assert_eq!(
        summary(&rows),
        [
            ("h1".into(), "web".into(), "would_rebuild", "first_build"),
            ("h1".into(), "db".into(), "skipped", "up_to_date"),
        ]
    );
    assert!(w.calls("h1", "apply").is_empty());
}

#[tokio::test]
async fn an_unreadable_stack_fails_alone() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let hs = hosts(
        dir.path(),
        &[("h1", &["web", "odd"]), ("h2", &["odd"])],
        Policy::default(),
    );
    std::fs::write(
        dir.path()
            .join("odd")
            .join(std::ffi::OsStr::from_bytes(b"caf\xe9")),
        "x",
    )
    .unwrap();
    let w = Arc::new(World::default());
    let (rows, events) = execute(settings(hs), &w, false).await;
    assert_eq!(
        summary(&rows),
        [
            ("h1".into(), "web".into(), "rebuilt", "first_build"),
            ("h1".into(), "odd".into(), "failed", "unreadable"),
            ("h2".into(), "odd".into(), "failed", "unreadable"),
        ]
    );
    assert!(
        row(&rows, "h2", "odd")
            .error
            .as_deref()
            .unwrap()
            .contains("not UTF-8"),
        "{rows:?}"
    );
    // h1 checked and rebuilt only what it could read; h2 was not contacted
    assert_eq!(w.calls("h1", "check"), [vec!["web".to_string()]]);
    assert!(w.calls("h2", "check").is_empty());
    shown_once(&rows, &events);
}

#[test]
fn a_stack_s_place_and_hooks_are_the_script_s_words() {
    use crate::inventory::{Hooks, Probe};
    let dir = tempfile::tempdir().unwrap();
    let mut s = hosts(dir.path(), &[("h1", &["web"])], Policy::default())
        .remove(0)
        .stacks
        .remove(0);
    s.remote_dir = Some("/srv/web".into());
    s.profiles = vec!["jobs".into()];
    assert_eq!(
        place(&s),
        Place {
            name: "web".into(),
            dir: Some("/srv/web".into()),
            compose_files: vec!["compose.yml".into()],
            profiles: vec!["jobs".into()],
        }
    );
    let mut probe = |p: Probe| {
        s.hooks = Hooks {
            before: Some("./migrate".into()),
            after: None,
            probe: Some(p),
        };
        let h = hooks(&s);
        assert_eq!(h.before.as_deref(), Some("./migrate"));
        h.probe.unwrap()
    };
    assert_eq!(
        probe(Probe::Http {
            url: "http://127.0.0.1:8000/health".into(),
            expect: Some("it's ok".into()),
        }),
        r#"probe_url http://127.0.0.1:8000/health "it's ok""#
    );
    assert_eq!(
        probe(Probe::Http {
            url: "http://x/".into(),
            expect: None,
        }),
        "probe_url http://x/"
    );
    assert_eq!(
        probe(Probe::Command("./ready.sh --x".into())),
        "./ready.sh --x"
    );
}
