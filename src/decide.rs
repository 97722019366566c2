//! The decision, pure: given what the host recorded and what the controller
//! has now, is a rebuild due, and why. Every result carries its reason.

use serde::{Deserialize, Serialize};

use crate::remote::{LastResult, StackState};

/// Why a stack was (or would be, or was not) rebuilt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// `--force-rebuild`.
    Forced,
    /// No successful build was ever recorded on the host.
    FirstBuild,
    /// The stack's files differ from the ones last built.
    ConfigChanged,
    /// The last successful build is older than the build period.
    Expired,
    /// What runs did not pass its gate (a rollback that failed too): it is
    /// rebuilt.
    Broken,
    /// The last successful build's recorded time is in the host's future
    /// (its clock was stepped back, or the state was written by a clock that
    /// was wrong): its age is unknown, so it is rebuilt.
    TimeInFuture,
    /// A base image of a built service moved in its registry since the
    /// build that runs (its files did not change): rebuilt.
    BaseMoved,
    /// An image-only service's image moved in its registry: pulled, and its
    /// containers recreated (nothing is built).
    ImageMoved,
    /// An image moved, but its new digest is younger than `min_age`: not
    /// deployed yet (said, exit 0).
    Cooling,
    /// Nothing is due.
    UpToDate,
    /// Not due, but what the last rebuild left running does not run (a
    /// stack stopped by hand, a reboot, an OOM kill): it is started.
    NotRunning,
    /// Not due, but an earlier run was cut off on the host (killed in one
    /// of its phases): the host puts right what it left and starts the
    /// generation that runs (no build).
    CutOff,
    /// Not due, but a container of the generation that runs was restarted
    /// since it passed its gate: the run looks, and rolls a crash loop back
    /// to the generation before (a restart by the engine is recorded).
    Restarted,
    /// This exact input failed its health gate within the build period; it
    /// is retried when the input changes, when forced, or after the period.
    PreviousFailure,
    /// These files were rolled back by hand (`rbuild rollback`): the
    /// operator's decision holds until they change or a rebuild is forced.
    Held,
    /// Another run holds the stack's lock on the host.
    Locked,
    /// The stack's state file on the host is in a version this rbuild does
    /// not read: nothing is decided from it.
    StateUnreadable,
    /// The host could not be reached or its remote side failed.
    HostFailed,
    /// The stack's files on the controller could not be read.
    Unreadable,
    /// Ctrl-C stopped the run before this host started.
    Interrupted,
    /// The stack's rollout was halted (failed canary or failure budget
    /// spent) before this host started its rebuild.
    RolloutHalted,
    /// `rbuild rollback`: the previous generation, by hand.
    Manual,
}

impl Reason {
    /// Whether a stack skipped for this reason is "held back" (the
    /// summary's count, `held_back` in JSON's `counts`) and makes the exit
    /// status non-zero: its files failed their last rebuild (exit status
    /// 4 when nothing else is wrong), or its rollout halted before it (1).
    pub fn holds_back(self) -> bool {
        matches!(self, Reason::PreviousFailure | Reason::RolloutHalted)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Forced => "forced",
            Reason::FirstBuild => "first_build",
            Reason::ConfigChanged => "config_changed",
            Reason::Expired => "expired",
            Reason::TimeInFuture => "time_in_future",
            Reason::Broken => "broken",
            Reason::BaseMoved => "base_moved",
            Reason::ImageMoved => "image_moved",
            Reason::Cooling => "cooling",
            Reason::UpToDate => "up_to_date",
            Reason::NotRunning => "not_running",
            Reason::CutOff => "cut_off",
            Reason::Restarted => "restarted",
            Reason::PreviousFailure => "previous_failure",
            Reason::Held => "held",
            Reason::Locked => "locked",
            Reason::StateUnreadable => "state_unreadable",
            Reason::HostFailed => "host_failed",
            Reason::Unreadable => "unreadable",
            Reason::Interrupted => "interrupted",
            Reason::RolloutHalted => "rollout_halted",
            Reason::Manual => "manual",
        }
    }
}

/// What the controller knows when it decides.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    pub force: bool,
    /// sha256 of the stack as it would be shipped now.
    pub hash: &'a str,
    /// What the host recorded (`None`: never built).
    pub state: Option<&'a StackState>,
    /// The host's clock, so clock skew between controller and host is moot.
    pub now: u64,
    pub build_period: u64,
}

/// The verdict: rebuild or not, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub rebuild: bool,
    pub reason: Reason,
}

/// How far in the host's future a recorded time may be and still count as
/// now (a clock slewed back by NTP); further, the time is not believed.
pub const CLOCK_SLACK: u64 = 300;

/// Whether a recorded time is past what the host's clock says now.
pub fn in_future(t: u64, now: u64) -> bool {
    t > now.saturating_add(CLOCK_SLACK)
}

pub fn decide(i: &Input) -> Decision {
    let due = |reason| Decision {
        rebuild: true,
        reason,
    };
    let skip = |reason| Decision {
        rebuild: false,
        reason,
    };
    if i.force {
        return due(Reason::Forced);
    }
    // a time in the future is no time: never recent
    let recent = |t: u64| !in_future(t, i.now) && i.now.saturating_sub(t) < i.build_period;
    if let Some(s) = i.state
        && s.last_result == Some(LastResult::RolledBack)
        && s.failed_hash.as_deref() == Some(i.hash)
    {
        return skip(Reason::Held);
    }
    if let Some(s) = i.state
        && s.failed_hash.as_deref() == Some(i.hash)
    {
        if in_future(s.failed_at, i.now) && s.hash.as_deref() != Some(i.hash) {
            // held back by a time not believed: tried again, and said why
            return due(Reason::TimeInFuture);
        }
        if recent(s.failed_at) {
            return skip(Reason::PreviousFailure);
        }
    }
    let Some(s) = i.state.filter(|s| s.hash.is_some()) else {
        return due(Reason::FirstBuild);
    };
    if s.hash.as_deref() != Some(i.hash) {
        return due(Reason::ConfigChanged);
    }
    if s.last_result == Some(LastResult::Broken) {
        return due(Reason::Broken);
    }
    if in_future(s.built_at, i.now) {
        return due(Reason::TimeInFuture);
    }
    if !recent(s.built_at) {
        return due(Reason::Expired);
    }
    skip(Reason::UpToDate)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(hash: Option<&str>, built_at: u64) -> StackState {
        StackState {
            hash: hash.map(str::to_owned),
            built_at,
            ..StackState::default()
        }
    }

    #[test]
    fn decision_table() {
        let day = 86400;
        let now = 10 * day;
        let built = state(Some("h1"), now - 100);
        let old = state(Some("h1"), now - day - 1);
        let at_edge = state(Some("h1"), now - day);
        let never_ok = state(None, 0);
        let failed_recently = StackState {
            failed_hash: Some("h2".into()),
            failed_at: now - 60,
            ..built.clone()
        };
        let by_hand = StackState {
            last_result: Some("rolled_back".into()),
            failed_hash: Some("h2".into()),
            failed_at: now - 60,
            ..built.clone()
        };
        let by_hand_long_ago = StackState {
            failed_at: now - 9 * day,
            ..by_hand.clone()
        };
        let broken = StackState {
            last_result: Some("broken".into()),
            ..built.clone()
        };
        let failed_long_ago = StackState {
            failed_hash: Some("h2".into()),
            failed_at: now - 2 * day,
            ..built.clone()
        };
        #[rustfmt::skip]
        let table: &[(bool, &str, Option<&StackState>, bool, Reason)] = &[
            // force  hash   state                    rebuild reason
            (true,  "h1", Some(&built),           true,  Reason::Forced),
            (true,  "h1", None,                   true,  Reason::Forced),
            (false, "h1", None,                   true,  Reason::FirstBuild),
            (false, "h1", Some(&never_ok),        true,  Reason::FirstBuild),
            (false, "h2", Some(&built),           true,  Reason::ConfigChanged),
            (false, "h1", Some(&old),             true,  Reason::Expired),
            (false, "h1", Some(&at_edge),         true,  Reason::Expired),
            (false, "h1", Some(&built),           false, Reason::UpToDate),
            (false, "h2", Some(&failed_recently), false, Reason::PreviousFailure),
            (false, "h3", Some(&failed_recently), true,  Reason::ConfigChanged),
            (true,  "h2", Some(&failed_recently), true,  Reason::Forced),
            (false, "h2", Some(&failed_long_ago), true,  Reason::ConfigChanged),
            (false, "h1", Some(&failed_recently), false, Reason::UpToDate),
            (false, "h1", Some(&broken),          true,  Reason::Broken),
            (false, "h2", Some(&by_hand),         false, Reason::Held),
            (false, "h3", Some(&by_hand),         true,  Reason::ConfigChanged),
            (true,  "h2", Some(&by_hand),         true,  Reason::Forced),
            (false, "h2", Some(&by_hand_long_ago), false, Reason::Held),
            (false, "h2", Some(&broken),          true,  Reason::ConfigChanged),
        ];
        for (n, (force, hash, st, rebuild, reason)) in table.iter().enumerate() {
            let d = decide(&Input {
                force: *force,
                hash,
                state: *st,
                now,
                build_period: day,
            });
            assert_eq!((d.rebuild, d.reason), (*rebuild, *reason), "row {n}");
        }
    }

    #[test]
    fn zero_period_always_expires() {
        let s = state(Some("h"), 100);
        let d = decide(&Input {
            force: false,
            hash: "h",
            state: Some(&s),
            now: 100,
            build_period: 0,
        });
        assert_eq!(d.reason, Reason::Expired);
    }

    #[test]
    fn a_time_in_the_future_is_not_believed() {
        let at = |built_at, failed_at, now| {
            let s = StackState {
                failed_hash: Some("h".into()),
                failed_at,
                ..state(Some("h"), built_at)
            };
            decide(&Input {
                force: false,
                hash: "h",
                state: Some(&s),
                now,
                build_period: 86400,
            })
            .reason
        };
        let now = 1_800_000_000;
        // a clock slewed back a little: still now
        assert_eq!(at(now + 100, 0, now), Reason::UpToDate);
        // stepped back by a day, or a state from a wrong clock, or garbage:
        // rebuilt, never up to date (or held back) for years
        for future in [now + CLOCK_SLACK + 1, now + 86400, u64::MAX] {
            assert_eq!(
                at(future, 0, now),
                Reason::TimeInFuture,
                "built_at {future}"
            );
            assert_eq!(
                at(now - 10, future, now),
                Reason::UpToDate,
                "a failure at {future} is not recent: the same files are up to date"
            );
        }
        // the failure's time is not believed, so these files are tried
        // again, with the reason that says why
        let s = StackState {
            failed_hash: Some("h2".into()),
            failed_at: u64::MAX,
            ..state(Some("h"), now - 10)
        };
        let d = decide(&Input {
            force: false,
            hash: "h2",
            state: Some(&s),
            now,
            build_period: 86400,
        });
        assert_eq!(d.reason, Reason::TimeInFuture);
    }

    /// Of the reasons a stack is skipped, only a previous failure and a
    /// halted rollout hold the run back (exit 4 and 1): a rollback by hand that holds
    /// (`held`) is the operator's choice, not a failure. (Was shown on real
    /// hosts by the manual rollback's next run, exit 0.)
    #[test]
    fn only_a_previous_failure_and_a_halted_rollout_hold_the_run_back() {
        use Reason::*;
        for r in [
            Forced,
            FirstBuild,
            ConfigChanged,
            Expired,
            Broken,
            TimeInFuture,
            BaseMoved,
            ImageMoved,
            Cooling,
            UpToDate,
            NotRunning,
            CutOff,
            Restarted,
            PreviousFailure,
            Held,
            Locked,
            StateUnreadable,
            HostFailed,
            Unreadable,
            Interrupted,
            RolloutHalted,
            Manual,
        ] {
            assert_eq!(
                r.holds_back(),
                matches!(r, PreviousFailure | RolloutHalted),
                "{}",
                r.as_str()
            );
        }
    }

    /// A stack through the life the real-host gate tests walk, decided at
    /// each run (files `a`, `b`, ...; what the host recorded after each):
    /// a first build that failed its gate is not retried with the same
    /// files, other files are still a first build; a good build is up to
    /// date; a failed third is a previous failure, not retried until forced
    /// or changed; a rollback by hand holds the files it rolled back from
    /// until they change or a rebuild is forced.
    #[test]
    fn a_stack_through_failed_and_rolled_back_generations() {
        let now = 1_000_000;
        let at = |force: bool, hash: &str, s: Option<&StackState>| {
            let d = decide(&Input {
                force,
                hash,
                state: s,
                now,
                build_period: 86400,
            });
            (d.rebuild, d.reason)
        };
        // 1: a failed first build (no hash recorded, the failed input kept)
        let first_failed = StackState {
            hash: None,
            last_result: Some("failed".into()),
            failed_hash: Some("a".into()),
            failed_at: now - 5,
            ..StackState::default()
        };
        assert_eq!(at(false, "a", None), (true, Reason::FirstBuild));
        assert_eq!(
            at(false, "a", Some(&first_failed)),
            (false, Reason::PreviousFailure)
        );
        assert_eq!(
            at(false, "b", Some(&first_failed)),
            (true, Reason::FirstBuild),
            "no build passed yet: still a first build"
        );
        assert_eq!(at(true, "a", Some(&first_failed)), (true, Reason::Forced));
        // 2: b passed
        let good = StackState {
            hash: Some("b".into()),
            built_at: now - 4,
            last_result: Some("ok".into()),
            ..first_failed.clone()
        };
        assert_eq!(at(false, "b", Some(&good)), (false, Reason::UpToDate));
        // 3: c failed its gate, rolled back to b
        let third_failed = StackState {
            last_result: Some("failed".into()),
            failed_hash: Some("c".into()),
            failed_at: now - 3,
            ..good.clone()
        };
        assert_eq!(
            at(false, "c", Some(&third_failed)),
            (false, Reason::PreviousFailure)
        );
        assert_eq!(
            at(false, "b", Some(&third_failed)),
            (false, Reason::UpToDate),
            "the files that run are up to date"
        );
        assert_eq!(at(true, "c", Some(&third_failed)), (true, Reason::Forced));
        // 4: d passed, then was rolled back by hand to b
        let by_hand = StackState {
            hash: Some("b".into()),
            last_result: Some("rolled_back".into()),
            failed_hash: Some("d".into()),
            failed_at: now - 1,
            ..good.clone()
        };
        assert_eq!(at(false, "d", Some(&by_hand)), (false, Reason::Held));
        assert!(!Reason::Held.holds_back());
        assert_eq!(at(true, "d", Some(&by_hand)), (true, Reason::Forced));
        assert_eq!(
            at(false, "e", Some(&by_hand)),
            (true, Reason::ConfigChanged)
        );
    }
}
