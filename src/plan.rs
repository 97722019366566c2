//! The plan, pure: from what a host's check found for a stack, the stack's
//! hash now and the run's options, what happens to the stack and why. The
//! executor acts on the verdicts; [`crate::report::rows`] words them.

use crate::decide::{self, Reason};
use crate::remote::{BadState, Recorded};

/// The run's options that planning reads.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// `--force-rebuild`.
    pub force: bool,
    /// `--dry-run`: nothing is rebuilt.
    pub dry_run: bool,
    /// Fleet mode: a stack's files are shipped to its host when the hash
    /// recorded there is not theirs (local mode builds them in place).
    pub ships: bool,
    /// `--lock-wait`: a stack whose lock another run holds is applied
    /// anyway, and its host waits for the lock (a dry run still says
    /// `locked`).
    pub lock_wait: bool,
}

/// One stack, as the controller sees it and its host recorded it.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// sha256 of the stack as it would be shipped now.
    pub hash: &'a str,
    pub build_period: u64,
    pub recorded: &'a Recorded,
}

/// What happens to one stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing is due.
    Skip(Reason),
    /// These very files failed their rebuild within the build period: not
    /// tried again until they change, the run is forced or the period ends.
    PreviousFailure {
        /// Seconds since the failed attempt (host clock).
        failed_ago: u64,
        /// An earlier build still runs (else the stack never built).
        earlier_runs: bool,
        /// The generation the host's state names as running.
        generation: Option<u64>,
        /// Whether its containers were there at the check (`None`: not
        /// told).
        running: Option<bool>,
    },
    /// Due, but another run holds the stack's lock on the host.
    Locked { pid: String, due: Reason },
    /// Due; the run is a dry run.
    WouldRebuild(Reason),
    /// Not running as recorded (or an earlier run was cut off); the run is
    /// a dry run.
    WouldStart { cut_off: Option<String> },
    /// The state file is one this rbuild does not read: nothing is decided
    /// from it, nothing overwrites it.
    Unreadable(BadState),
    /// Rebuild, shipping the files first when `ship`.
    Rebuild { reason: Reason, ship: bool },
    /// Not due, but a container of what runs restarted since its gate: look,
    /// and roll a crash loop back (`Reason::Restarted`).
    Verify,
    /// The same; the run is a dry run.
    WouldVerify,
    /// Not due, but not running as recorded: start it (no build).
    /// `cut_off`: the phase an earlier run was killed in on the host, which
    /// the start recovers.
    Start { cut_off: Option<String> },
}

/// Why a stack that is not due is started: an earlier run was cut off
/// (`cut_off`: its phase), or it just does not run.
pub fn start_reason(cut_off: Option<&str>) -> Reason {
    match cut_off {
        Some(_) => Reason::CutOff,
        None => Reason::NotRunning,
    }
}

/// The verdict for one stack. `now` is the host's clock.
pub fn plan(o: &Options, now: u64, i: &Input) -> Verdict {
    let state = match &i.recorded.state {
        Err(bad) => return Verdict::Unreadable(bad.clone()),
        Ok(s) => s.as_ref(),
    };
    let d = decide::decide(&decide::Input {
        force: o.force,
        hash: i.hash,
        state,
        now,
        build_period: i.build_period,
    });
    // what runs is kept running: a stack down (by hand, a reboot) that is
    // not due for a rebuild is started, held back or not; so is one whose
    // earlier run was cut off on the host (the host says it is down then,
    // and the start recovers what that run left)
    let cut_off = i.recorded.phase.clone();
    let down = i.recorded.running == Some(false) || cut_off.is_some();
    let wait = o.lock_wait && !o.dry_run;
    if !d.rebuild && down {
        return match (&i.recorded.locked_by, o.dry_run) {
            (Some(_), false) if wait => Verdict::Start { cut_off },
            (Some(pid), _) => Verdict::Locked {
                pid: pid.clone(),
                due: start_reason(cut_off.as_deref()),
            },
            (None, true) => Verdict::WouldStart { cut_off },
            (None, false) => Verdict::Start { cut_off },
        };
    }
    // what runs was restarted since its gate (a crash, or the engine):
    // looked at, a crash loop rolled back
    if !d.rebuild && i.recorded.restarted {
        return match (&i.recorded.locked_by, o.dry_run) {
            (Some(_), false) if wait => Verdict::Verify,
            (Some(pid), _) => Verdict::Locked {
                pid: pid.clone(),
                due: Reason::Restarted,
            },
            (None, true) => Verdict::WouldVerify,
            (None, false) => Verdict::Verify,
        };
    }
    if d.reason == Reason::PreviousFailure {
        return Verdict::PreviousFailure {
            failed_ago: now.saturating_sub(state.map_or(0, |s| s.failed_at)),
            earlier_runs: state.is_some_and(|s| s.hash.is_some()),
            generation: state.and_then(|s| s.generation),
            running: i.recorded.running,
        };
    }
    if !d.rebuild {
        return Verdict::Skip(d.reason);
    }
    // a live lock beats a due rebuild: the other run is at it
    if let Some(pid) = i.recorded.locked_by.as_ref().filter(|_| !wait) {
        return Verdict::Locked {
            pid: pid.clone(),
            due: d.reason,
        };
    }
    if o.dry_run {
        return Verdict::WouldRebuild(d.reason);
    }
    Verdict::Rebuild {
        reason: d.reason,
        // the host has these files already when it recorded their hash
        ship: o.ships && state.and_then(|s| s.hash.as_deref()) != Some(i.hash),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::StackState;

    #[test]
    fn plan_table() {
        let day = 86400;
        let now = 10 * day;
        let rec = |state: Option<StackState>, lock: Option<&str>| Recorded {
            state: Ok(state),
            locked_by: lock.map(str::to_owned),
            running: None,
            phase: None,
            restarted: false,
        };
        let built = StackState {
            hash: Some("h1".into()),
            built_at: now - 100,
            last_result: Some("ok".into()),
            ..StackState::default()
        };
        let old = StackState {
            built_at: now - 2 * day,
            ..built.clone()
        };
        let failed = StackState {
            failed_hash: Some("h2".into()),
            failed_at: now - 60,
            ..built.clone()
        };
        let failed_first = StackState {
            hash: None,
            ..failed.clone()
        };
        let never = rec(None, None);
        let up = rec(Some(built.clone()), None);
        let up_locked = rec(Some(built.clone()), Some("42"));
        let expired = rec(Some(old.clone()), None);
        let failed_rec = rec(Some(failed), Some("42"));
        let failed_first = rec(Some(failed_first), None);
        let never_locked = rec(None, Some("7"));
        let down = |mut r: Recorded| {
            r.running = Some(false);
            r
        };
        let up_down = down(up.clone());
        let failed_down = down(failed_rec.clone());
        let failed_down = Recorded {
            locked_by: None,
            ..failed_down
        };
        let down_locked = Recorded {
            locked_by: Some("5".into()),
            ..up_down.clone()
        };
        let foreign = Recorded {
            state: Err(BadState::Newer("3".into())),
            locked_by: Some("9".into()),
            running: None,
            phase: None,
            restarted: false,
        };
        // an earlier run was cut off on the host: it says the stack is down
        let cut = |r: &Recorded, phase: &str| Recorded {
            running: Some(false),
            phase: Some(phase.into()),
            restarted: false,
            ..r.clone()
        };
        let up_cut = cut(&up, "gate");
        let up_cut_locked = cut(&up_locked, "build");
        let failed_cut = Recorded {
            locked_by: None,
            ..cut(&failed_rec, "undo")
        };
        let never_cut = cut(&never, "build");
        // a phase with no `running=0` (never so from the script): down all the same
        let up_cut_running = Recorded {
            running: Some(true),
            ..up_cut.clone()
        };
        let start = |phase: Option<&str>| Verdict::Start {
            cut_off: phase.map(str::to_owned),
        };
        let would_start = |phase: Option<&str>| Verdict::WouldStart {
            cut_off: phase.map(str::to_owned),
        };
        let fleet = Options {
            ships: true,
            ..Options::default()
        };
        let local = Options::default();
        let dry = Options {
            dry_run: true,
            ..fleet
        };
        let wait = Options {
            lock_wait: true,
            ..fleet
        };
        let dry_wait = Options {
            dry_run: true,
            ..wait
        };
        let force = Options {
            force: true,
            ..fleet
        };
        let rebuild = |reason, ship| Verdict::Rebuild { reason, ship };
        let locked = |pid: &str, due| Verdict::Locked {
            pid: pid.into(),
            due,
        };
        use Reason::*;
        #[rustfmt::skip]
        let table: Vec<(&Options, &str, &Recorded, Verdict)> = vec![
            // options  hash   recorded       verdict
            (&fleet, "h1", &never,         rebuild(FirstBuild, true)),
            (&local, "h1", &never,         rebuild(FirstBuild, false)),
            (&fleet, "h1", &up,            Verdict::Skip(UpToDate)),
            (&fleet, "h2", &up,            rebuild(ConfigChanged, true)),
            // expired, same files: rebuilt without shipping them again
            (&fleet, "h1", &expired,       rebuild(Expired, false)),
            (&force, "h1", &up,            rebuild(Forced, false)),
            (&force, "h2", &up,            rebuild(Forced, true)),
            // a lock matters only to a stack that is due
            (&fleet, "h1", &up_locked,     Verdict::Skip(UpToDate)),
            (&fleet, "h2", &up_locked,     locked("42", ConfigChanged)),
            (&fleet, "h1", &never_locked,  locked("7", FirstBuild)),
            // a dry run changes nothing, and says so
            (&dry,   "h2", &up,            Verdict::WouldRebuild(ConfigChanged)),
            (&dry,   "h1", &up,            Verdict::Skip(UpToDate)),
            (&dry,   "h2", &up_locked,     locked("42", ConfigChanged)),
            // a failed input is held back, locked or not; other files go
            (&fleet, "h2", &failed_rec,    Verdict::PreviousFailure { failed_ago: 60, earlier_runs: true, generation: None, running: None }),
            (&fleet, "h2", &failed_first,  Verdict::PreviousFailure { failed_ago: 60, earlier_runs: false, generation: None, running: None }),
            (&fleet, "h3", &failed_first,  rebuild(FirstBuild, true)),
            (&force, "h2", &failed_first,  rebuild(Forced, true)),
            // what does not run as recorded is started, even when held back;
            // when due anyway, it is rebuilt
            (&fleet, "h1", &up_down,       start(None)),
            (&dry,   "h1", &up_down,       would_start(None)),
            (&fleet, "h2", &up_down,       rebuild(ConfigChanged, true)),
            (&fleet, "h2", &failed_down,   start(None)),
            // an earlier run cut off: recovered by a start when nothing else
            // is due, by the rebuild that is due otherwise
            (&fleet, "h1", &up_cut,        start(Some("gate"))),
            (&local, "h1", &up_cut,        start(Some("gate"))),
            (&dry,   "h1", &up_cut,        would_start(Some("gate"))),
            (&fleet, "h1", &up_cut_running, start(Some("gate"))),
            (&fleet, "h2", &up_cut,        rebuild(ConfigChanged, true)),
            (&force, "h1", &up_cut,        rebuild(Forced, false)),
            (&fleet, "h2", &failed_cut,    start(Some("undo"))),
            (&fleet, "h1", &never_cut,     rebuild(FirstBuild, true)),
            (&fleet, "h1", &up_cut_locked, locked("42", CutOff)),
            (&wait,  "h1", &up_cut_locked, start(Some("build"))),
            (&dry_wait, "h1", &up_cut_locked, locked("42", CutOff)),
            (&fleet, "h1", &down_locked,   locked("5", NotRunning)),
            // --lock-wait: applied anyway, the host waits for the lock; a
            // stack with nothing to do is still skipped; a dry run says locked
            (&wait,  "h2", &up_locked,     rebuild(ConfigChanged, true)),
            (&wait,  "h1", &up_locked,     Verdict::Skip(UpToDate)),
            (&wait,  "h1", &down_locked,   start(None)),
            (&dry_wait, "h2", &up_locked,  locked("42", ConfigChanged)),
            // a state file of another version decides nothing
            (&fleet, "h1", &foreign,       Verdict::Unreadable(BadState::Newer("3".into()))),
            (&force, "h1", &foreign,       Verdict::Unreadable(BadState::Newer("3".into()))),
        ];
        for (n, (o, hash, recorded, want)) in table.into_iter().enumerate() {
            let got = plan(
                o,
                now,
                &Input {
                    hash,
                    build_period: day,
                    recorded,
                },
            );
            assert_eq!(got, want, "row {n}");
        }
    }

    /// A previous failure tells what the host has (the report words it,
    /// "still runs" or "no version runs"): an earlier build that runs, one
    /// that does not, or none ever built. Held back, a stack is never
    /// rebuilt, locked or not, and never started when it runs; forced or
    /// with other files, it is rebuilt. (Was shown on real hosts by a
    /// failed first build's and a failed rebuild's next runs.)
    #[test]
    fn a_previous_failure_says_what_runs_and_holds_the_stack_back() {
        let day = 86400;
        let now = 10 * day;
        let failed =
            |hash: Option<&str>, running: Option<bool>, generation: Option<u64>| Recorded {
                state: Ok(Some(StackState {
                    hash: hash.map(str::to_owned),
                    built_at: now - 100,
                    last_result: Some("failed".into()),
                    failed_hash: Some("bad".into()),
                    failed_at: now - 30,
                    generation,
                    bases: None,
                })),
                locked_by: None,
                running,
                phase: None,
                restarted: false,
            };
        let fleet = Options {
            ships: true,
            ..Options::default()
        };
        let at = |o: &Options, hash: &str, r: &Recorded| {
            plan(
                o,
                now,
                &Input {
                    hash,
                    build_period: day,
                    recorded: r,
                },
            )
        };
        let runs = failed(Some("good"), Some(true), Some(2));
        assert_eq!(
            at(&fleet, "bad", &runs),
            Verdict::PreviousFailure {
                failed_ago: 30,
                earlier_runs: true,
                generation: Some(2),
                running: Some(true),
            }
        );
        let never = failed(None, Some(true), None);
        assert_eq!(
            at(&fleet, "bad", &never),
            Verdict::PreviousFailure {
                failed_ago: 30,
                earlier_runs: false,
                generation: None,
                running: Some(true),
            }
        );
        // a held-back stack whose build is down is started, not rebuilt
        let down = failed(Some("good"), Some(false), Some(2));
        assert_eq!(at(&fleet, "bad", &down), Verdict::Start { cut_off: None });
        // other files, or forced: rebuilt and shipped
        assert_eq!(
            at(&fleet, "new", &runs),
            Verdict::Rebuild {
                reason: Reason::ConfigChanged,
                ship: true
            }
        );
        let force = Options {
            force: true,
            ..fleet
        };
        assert_eq!(
            at(&force, "bad", &runs),
            Verdict::Rebuild {
                reason: Reason::Forced,
                ship: true
            }
        );
        // a dry run of a held-back stack says so too, and touches nothing
        let dry = Options {
            dry_run: true,
            ..fleet
        };
        assert!(matches!(
            at(&dry, "bad", &runs),
            Verdict::PreviousFailure { .. }
        ));
    }
}

#[cfg(test)]
mod fuzz {
    //! The planner on anything a host could record: it never panics, and
    //! what it says holds.

    use proptest::prelude::*;

    use super::*;
    use crate::decide::in_future;
    use crate::remote::{LastResult, StackState};

    fn hash() -> impl Strategy<Value = String> {
        prop::sample::select(&["h1", "h2", ""][..]).prop_map(str::to_owned)
    }

    fn time() -> impl Strategy<Value = u64> {
        prop_oneof![
            Just(0u64),
            Just(u64::MAX),
            999_000u64..1_001_000,
            any::<u64>(),
        ]
    }

    prop_compose! {
        fn recorded()(
            exists in 0..3u8,
            h in prop::option::of(hash()),
            built_at in time(),
            failed_hash in prop::option::of(hash()),
            failed_at in time(),
            lock in prop::option::of("[0-9]{1,5}|unknown"),
            running in prop::option::of(any::<bool>()),
            phase in prop::option::of(prop::sample::select(&["ship", "build", "gate", "undo"][..])),
            restarted in any::<bool>(),
            generation in prop::option::of(any::<u64>()),
            last in prop::option::of(prop::sample::select(&["ok", "failed", "rolled_back", "broken"][..])),
        ) -> Recorded {
            let state = match exists {
                0 => Ok(None),
                1 => Ok(Some(StackState {
                    hash: h,
                    built_at,
                    last_result: last.map(LastResult::parse),
                    failed_hash,
                    failed_at,
                    generation,
                    bases: None,
                })),
                _ => Err(BadState::Newer("3".into())),
            };
            Recorded { state, locked_by: lock, running, phase: phase.map(str::to_owned), restarted }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn verdicts_say_what_holds(
            r in recorded(),
            h in hash(),
            now in time(),
            period in prop_oneof![Just(0u64), Just(86400u64), any::<u64>()],
            force in any::<bool>(),
            dry_run in any::<bool>(),
            ships in any::<bool>(),
        ) {
            let o = Options { force, dry_run, ships, lock_wait: false };
            let v = plan(&o, now, &Input { hash: &h, build_period: period, recorded: &r });
            let state = match &r.state {
                Err(_) => {
                    prop_assert!(matches!(v, Verdict::Unreadable(_)), "{v:?}");
                    return Ok(());
                }
                Ok(s) => s.as_ref(),
            };
            match &v {
                Verdict::Skip(Reason::UpToDate) => {
                    prop_assert_ne!(r.running, Some(false), "a stack down is not up to date");
                    prop_assert!(r.phase.is_none(), "a run cut off is recovered");
                    let s = state.expect("up to date: built");
                    prop_assert!(!force);
                    prop_assert_eq!(s.hash.as_deref(), Some(h.as_str()));
                    prop_assert!(!in_future(s.built_at, now));
                    prop_assert!(now.saturating_sub(s.built_at) < period);
                }
                Verdict::PreviousFailure { .. } => {
                    prop_assert_ne!(r.running, Some(false), "a stack down is started");
                    prop_assert!(r.phase.is_none(), "a run cut off is recovered");
                    let s = state.expect("a failure is recorded");
                    prop_assert!(!force);
                    prop_assert_eq!(s.failed_hash.as_deref(), Some(h.as_str()));
                    prop_assert!(!in_future(s.failed_at, now));
                }
                Verdict::Rebuild { reason, ship } => {
                    prop_assert!(!dry_run && r.locked_by.is_none());
                    prop_assert!(!force || *reason == Reason::Forced);
                    // files already there are not shipped again
                    if *ship {
                        prop_assert!(ships);
                        prop_assert_ne!(state.and_then(|s| s.hash.as_deref()), Some(h.as_str()));
                    }
                }
                Verdict::WouldRebuild(_) => prop_assert!(dry_run),
                Verdict::WouldStart { cut_off } => {
                    prop_assert!(dry_run && (r.running == Some(false) || r.phase.is_some()));
                    prop_assert_eq!(cut_off, &r.phase);
                }
                Verdict::Start { cut_off } => {
                    prop_assert!(!dry_run && r.locked_by.is_none());
                    prop_assert!(r.running == Some(false) || r.phase.is_some());
                    prop_assert_eq!(cut_off, &r.phase);
                }
                Verdict::Verify => prop_assert!(!dry_run && r.restarted && r.locked_by.is_none()),
                Verdict::WouldVerify => prop_assert!(dry_run && r.restarted),
                Verdict::Locked { .. } => prop_assert!(r.locked_by.is_some()),
                Verdict::Skip(Reason::Held) => {
                    prop_assert!(r.phase.is_none(), "a run cut off is recovered");
                    let s = state.expect("rolled back by hand");
                    prop_assert!(!force);
                    prop_assert_eq!(s.last_result.as_ref(), Some(&LastResult::RolledBack));
                    prop_assert_eq!(s.failed_hash.as_deref(), Some(h.as_str()));
                }
                Verdict::Skip(other) => prop_assert!(false, "skip for {other:?}"),
                Verdict::Unreadable(_) => prop_assert!(false, "readable state"),
            }
        }
    }
}
