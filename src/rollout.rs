//! Rollouts across hosts: how many hosts rebuild a stack at once (`serial`),
//! whether one canary host must pass first (`canary`), and how many failures
//! stop the rollout (`max_failures`). Only rebuilds are held back; checks
//! never wait.
//!
//! The coordinator keeps one state per stack name. A host asks to start the
//! rebuild of all its due stacks at once and either gets all of them or
//! waits holding none, so two hosts can never wait on each other.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// A count of hosts, or a percentage of the hosts that run the stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Count(usize),
    Percent(u8),
}

impl Limit {
    /// The count this limit allows out of `total` hosts; a percentage rounds
    /// up, so `10%` of 5 hosts is 1.
    pub fn of(self, total: usize) -> usize {
        match self {
            Limit::Count(n) => n,
            Limit::Percent(p) => (total * p as usize).div_ceil(100),
        }
    }
}

impl std::str::FromStr for Limit {
    type Err = String;
    fn from_str(s: &str) -> Result<Limit, String> {
        let s = s.trim();
        if let Some(p) = s.strip_suffix('%') {
            let p: u8 = p
                .trim()
                .parse()
                .map_err(|_| format!("`{s}` is not a percentage from 0% to 100%"))?;
            if p > 100 {
                return Err(format!("`{s}` is more than 100%"));
            }
            Ok(Limit::Percent(p))
        } else {
            s.parse()
                .map(Limit::Count)
                .map_err(|_| format!("`{s}` is not a number of hosts or a percentage like `25%`"))
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limit::Count(n) => write!(f, "{n}"),
            Limit::Percent(p) => write!(f, "{p}%"),
        }
    }
}

impl<'de> Deserialize<'de> for Limit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Limit;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number of hosts or a percentage such as \"25%\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Limit, E> {
                Ok(Limit::Count(v as usize))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Limit, E> {
                usize::try_from(v)
                    .map(Limit::Count)
                    .map_err(|_| E::custom("a count cannot be negative"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Limit, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// The rollout settings of one stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Policy {
    /// Hosts rebuilding the stack at once; `None`: no limit.
    pub serial: Option<Limit>,
    /// One host first; the rest start only when it passed.
    pub canary: bool,
    /// Failed rebuilds tolerated; one more halts the rollout. `None`: no limit.
    pub max_failures: Option<Limit>,
}

/// Per stack name: its policy resolved against its number of hosts, and how
/// the rollout goes.
#[derive(Debug)]
struct StackRollout {
    serial: usize,
    max_failures: Option<usize>,
    canary: Canary,
    in_flight: usize,
    failures: usize,
    /// Why the rollout stopped, once it has.
    halted: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Canary {
    Off,
    /// Nobody has started yet: the first host to start is the canary.
    Pending,
    /// The canary is rebuilding: everyone else waits.
    Running,
    Passed,
}

/// What a host may do with its due stacks now.
#[derive(Debug, PartialEq, Eq)]
pub enum Clearance {
    /// Start these; the rest of the due stacks were halted.
    Go {
        start: Vec<String>,
        halted: Vec<String>,
    },
    /// Wait: some stack's canary is running or its batch is full.
    Wait,
}

/// The coordinator all host tasks share.
pub struct Coordinator {
    stacks: Mutex<HashMap<String, StackRollout>>,
    changed: tokio::sync::watch::Sender<u64>,
}

impl Coordinator {
    /// `stacks`: each stack name with its policy and the number of selected
    /// hosts that run it.
    pub fn new(stacks: impl IntoIterator<Item = (String, Policy, usize)>) -> Coordinator {
        let map = stacks
            .into_iter()
            .map(|(name, p, total)| {
                let r = StackRollout {
                    serial: p.serial.map_or(usize::MAX, |l| l.of(total).max(1)),
                    max_failures: p.max_failures.map(|l| l.of(total)),
                    canary: if p.canary {
                        Canary::Pending
                    } else {
                        Canary::Off
                    },
                    in_flight: 0,
                    failures: 0,
                    halted: None,
                };
                (name, r)
            })
            .collect();
        Coordinator {
            stacks: Mutex::new(map),
            changed: tokio::sync::watch::channel(0).0,
        }
    }

    /// Ask to start rebuilding `due` (stack names) on one host, without
    /// waiting. On `Go`, the host must call [`Coordinator::finish`] with the
    /// results of the started stacks.
    pub fn try_start(&self, due: &[String]) -> Clearance {
        let mut map = self.stacks.lock().expect("not poisoned");
        let (halted, live): (Vec<&String>, Vec<&String>) = due
            .iter()
            .partition(|s| map.get(*s).is_some_and(|r| r.halted.is_some()));
        let ready = live.iter().all(|s| match map.get(*s) {
            None => true,
            Some(r) => match r.canary {
                Canary::Pending => r.in_flight == 0,
                Canary::Running => false,
                Canary::Off | Canary::Passed => r.in_flight < r.serial,
            },
        });
        if !ready {
            return Clearance::Wait;
        }
        for s in &live {
            if let Some(r) = map.get_mut(*s) {
                r.in_flight += 1;
                if r.canary == Canary::Pending {
                    r.canary = Canary::Running;
                }
            }
        }
        Clearance::Go {
            start: live.into_iter().cloned().collect(),
            halted: halted.into_iter().cloned().collect(),
        }
    }

    /// Wait until `due` may start (or is halted).
    pub async fn start(&self, due: &[String]) -> (Vec<String>, Vec<String>) {
        let mut rx = self.changed.subscribe();
        loop {
            rx.borrow_and_update();
            if let Clearance::Go { start, halted } = self.try_start(due) {
                return (start, halted);
            }
            if rx.changed().await.is_err() {
                // the sender lives in self; cannot happen while we hold &self
                continue;
            }
        }
    }

    /// Report how the stacks started with `try_start`/`start` went.
    pub fn finish(&self, results: &[(String, Outcome)]) {
        let mut map = self.stacks.lock().expect("not poisoned");
        for (s, outcome) in results {
            let Some(r) = map.get_mut(s) else { continue };
            r.in_flight = r.in_flight.saturating_sub(1);
            match outcome {
                Outcome::Passed => {
                    if r.canary == Canary::Running {
                        r.canary = Canary::Passed;
                    }
                }
                Outcome::Neutral => {
                    if r.canary == Canary::Running {
                        r.canary = Canary::Pending; // the next host is the canary
                    }
                }
                Outcome::Failed => {
                    r.failures += 1;
                    if r.canary == Canary::Running {
                        r.halted = Some("its canary failed".into());
                    } else if let Some(m) = r.max_failures
                        && r.failures > m
                    {
                        r.halted = Some(format!(
                            "{} of its rebuilds failed, more than max_failures ({m})",
                            r.failures
                        ));
                    }
                }
            }
        }
        drop(map);
        self.changed.send_modify(|v| *v += 1);
    }

    /// Why a stack's rollout halted, if it did.
    pub fn halt_reason(&self, stack: &str) -> Option<String> {
        let map = self.stacks.lock().expect("not poisoned");
        map.get(stack).and_then(|r| r.halted.clone())
    }
}

/// How a started rebuild went, for the rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Rebuilt and healthy.
    Passed,
    /// Failed or rolled back: counts against the budget.
    Failed,
    /// Says nothing about the new version (the host was unreachable, the
    /// stack was locked by another run): frees the slot, counts nothing.
    Neutral,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn go(start: &[&str], halted: &[&str]) -> Clearance {
        Clearance::Go {
            start: names(start),
            halted: names(halted),
        }
    }

    #[test]
    fn limits_parse_and_resolve() {
        assert_eq!("3".parse::<Limit>(), Ok(Limit::Count(3)));
        assert_eq!("25%".parse::<Limit>(), Ok(Limit::Percent(25)));
        assert!("101%".parse::<Limit>().is_err());
        assert!("x".parse::<Limit>().is_err());
        assert_eq!(Limit::Percent(10).of(5), 1);
        assert_eq!(Limit::Percent(25).of(10), 3);
        assert_eq!(Limit::Percent(0).of(10), 0);
        assert_eq!(Limit::Count(2).of(10), 2);
    }

    #[test]
    fn no_policy_never_waits() {
        let c = Coordinator::new([("web".into(), Policy::default(), 3)]);
        for _ in 0..3 {
            assert_eq!(c.try_start(&names(&["web"])), go(&["web"], &[]));
        }
        c.finish(&[("web".into(), Outcome::Failed)]);
        assert_eq!(c.try_start(&names(&["web"])), go(&["web"], &[]));
    }

    #[test]
    fn serial_bounds_hosts_in_flight() {
        let p = Policy {
            serial: Some(Limit::Count(2)),
            ..Policy::default()
        };
        let c = Coordinator::new([("web".into(), p, 6)]);
        assert_eq!(c.try_start(&names(&["web"])), go(&["web"], &[]));
        assert_eq!(c.try_start(&names(&["web"])), go(&["web"], &[]));
        assert_eq!(c.try_start(&names(&["web"])), Clearance::Wait);
        c.finish(&[("web".into(), Outcome::Passed)]);
        assert_eq!(c.try_start(&names(&["web"])), go(&["web"], &[]));
    }

    #[test]
    fn canary_first_then_the_rest() {
        let p = Policy {
            canary: true,
            serial: Some(Limit::Percent(50)),
            ..Policy::default()
        };
        let c = Coordinator::new([("web".into(), p, 4)]);
        assert_eq!(c.try_start(&names(&["web"])), go(&["web"], &[]));
        assert_eq!(
            c.try_start(&names(&["web"])),
            Clearance::Wait,
            "canary runs"
        );
        c.finish(&[("web".into(), Outcome::Passed)]);
        assert_eq!(c.try_start(&names(&["web"])), go(&["web"], &[]));
        assert_eq!(c.try_start(&names(&["web"])), go(&["web"], &[]));
        assert_eq!(c.try_start(&names(&["web"])), Clearance::Wait, "batch of 2");
    }

    #[test]
    fn failed_canary_halts_everyone_else() {
        let p = Policy {
            canary: true,
            ..Policy::default()
        };
        let c = Coordinator::new([("web".into(), p, 6), ("db".into(), Policy::default(), 6)]);
        assert_eq!(c.try_start(&names(&["web"])), go(&["web"], &[]));
        c.finish(&[("web".into(), Outcome::Failed)]);
        assert_eq!(c.try_start(&names(&["web", "db"])), go(&["db"], &["web"]));
        assert_eq!(c.halt_reason("web").as_deref(), Some("its canary failed"));
        assert_eq!(c.halt_reason("db"), None);
    }

    #[test]
    fn an_unreachable_canary_hands_the_role_on() {
        let p = Policy {
            canary: true,
            ..Policy::default()
        };
        let c = Coordinator::new([("web".into(), p, 3)]);
        assert_eq!(c.try_start(&names(&["web"])), go(&["web"], &[]));
        c.finish(&[("web".into(), Outcome::Neutral)]);
        assert_eq!(
            c.try_start(&names(&["web"])),
            go(&["web"], &[]),
            "new canary"
        );
        assert_eq!(c.try_start(&names(&["web"])), Clearance::Wait);
    }

    #[test]
    fn failure_budget() {
        let p = Policy {
            max_failures: Some(Limit::Count(1)),
            ..Policy::default()
        };
        let c = Coordinator::new([("web".into(), p, 6)]);
        c.finish(&[("web".into(), Outcome::Failed)]);
        assert_eq!(
            c.try_start(&names(&["web"])),
            go(&["web"], &[]),
            "1 failure is within budget"
        );
        c.finish(&[("web".into(), Outcome::Failed)]);
        assert_eq!(
            c.try_start(&names(&["web"])),
            go(&[], &["web"]),
            "2 exceed it"
        );
    }

    #[test]
    fn a_host_takes_all_its_stacks_or_none() {
        let p = Policy {
            serial: Some(Limit::Count(1)),
            ..Policy::default()
        };
        let c = Coordinator::new([("a".into(), p, 2), ("b".into(), p, 2)]);
        assert_eq!(c.try_start(&names(&["a"])), go(&["a"], &[]));
        // b is free but a is full: take nothing, so b stays free for others
        assert_eq!(c.try_start(&names(&["a", "b"])), Clearance::Wait);
        assert_eq!(c.try_start(&names(&["b"])), go(&["b"], &[]));
    }

    #[tokio::test]
    async fn waiters_wake_when_a_slot_frees() {
        let p = Policy {
            serial: Some(Limit::Count(1)),
            ..Policy::default()
        };
        let c = std::sync::Arc::new(Coordinator::new([("web".into(), p, 2)]));
        assert_eq!(c.try_start(&names(&["web"])), go(&["web"], &[]));
        let c2 = c.clone();
        let waiter = tokio::spawn(async move { c2.start(&names(&["web"])).await });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        c.finish(&[("web".into(), Outcome::Passed)]);
        assert_eq!(waiter.await.unwrap(), (names(&["web"]), vec![]));
    }
}
