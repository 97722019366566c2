//! The documented exit statuses (a bottom module: it imports nothing of
//! the crate), and how several merge into one ([`Exit::merge`]). What a
//! result counts as lives with the results ([`crate::report::exit_of`],
//! [`crate::status::exit_of`]); `docs/reference/exit-codes.md` is the
//! reference, with a CI recipe for each.
//!
//! Precedence when several happen: 130/143 > 1 > 3 > 4 > 0 (and 2, bad
//! usage, stands before anything is touched).

/// The documented exit statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Every stack is fine (rebuilt, started, up to date, or would be
    /// rebuilt).
    Success = 0,
    /// A change of this run failed or was rolled back: a failed build, up,
    /// gate or hook, a rollback, a locked or unreadable stack, a rollout
    /// halted by a failure.
    Failure = 1,
    /// Bad usage or an invalid inventory: nothing was touched.
    Usage = 2,
    /// Hosts could not be reached (or their check failed), and no change
    /// failed: retry later.
    Unreachable = 3,
    /// Stacks were held back by an earlier failure (`previous_failure`):
    /// nothing was tried, and nothing else is wrong.
    HeldBack = 4,
    /// Interrupted (Ctrl-C): no new host was started.
    Interrupted = 130,
    /// Terminated (SIGTERM): the run stopped at once.
    Terminated = 143,
}

impl Exit {
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The status of a code a document carries (`exit_code`), if it is one.
    pub fn of_code(code: u64) -> Option<Exit> {
        Some(match code {
            0 => Exit::Success,
            1 => Exit::Failure,
            2 => Exit::Usage,
            3 => Exit::Unreachable,
            4 => Exit::HeldBack,
            130 => Exit::Interrupted,
            143 => Exit::Terminated,
            _ => return None,
        })
    }

    /// How much a status weighs when several merge: the one that weighs
    /// most is the run's.
    fn weight(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::HeldBack => 1,
            Exit::Unreachable => 2,
            Exit::Failure => 3,
            Exit::Usage => 4,
            Exit::Interrupted => 5,
            Exit::Terminated => 6,
        }
    }

    /// The one status of two results: 130/143 > 2 > 1 > 3 > 4 > 0.
    pub fn merge(self, other: Exit) -> Exit {
        if other.weight() > self.weight() {
            other
        } else {
            self
        }
    }

    /// The one status of many results (0 for none).
    pub fn merge_all(all: impl IntoIterator<Item = Exit>) -> Exit {
        all.into_iter().fold(Exit::Success, Exit::merge)
    }
}

#[cfg(test)]
mod tests {
    use super::Exit::{self, *};

    #[test]
    fn the_codes_are_the_documented_ones() {
        for (e, code) in [
            (Success, 0),
            (Failure, 1),
            (Usage, 2),
            (Unreachable, 3),
            (HeldBack, 4),
            (Interrupted, 130),
            (Terminated, 143),
        ] {
            assert_eq!(e.code(), code);
            assert_eq!(Exit::of_code(code.into()), Some(e));
        }
        assert_eq!(Exit::of_code(5), None);
    }

    #[test]
    fn merging_keeps_the_status_that_weighs_most() {
        for (all, merged) in [
            (&[][..], Success),
            (&[Success, Success][..], Success),
            (&[Success, HeldBack][..], HeldBack),
            (&[HeldBack, Unreachable][..], Unreachable),
            (&[Unreachable, HeldBack, Success][..], Unreachable),
            (&[Unreachable, Failure][..], Failure),
            (&[Failure, HeldBack, Unreachable][..], Failure),
            (&[Failure, Interrupted][..], Interrupted),
            (&[Interrupted, Unreachable][..], Interrupted),
            (&[Terminated, Failure][..], Terminated),
            (&[Interrupted, Terminated][..], Terminated),
            (&[Usage, Failure][..], Usage),
        ] {
            assert_eq!(Exit::merge_all(all.iter().copied()), merged, "{all:?}");
            // the order does not matter
            assert_eq!(
                Exit::merge_all(all.iter().rev().copied()),
                merged,
                "{all:?}"
            );
        }
    }
}
