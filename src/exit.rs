//! Exit statuses, and the merge of many results into one.

use crate::report::{Action, Row};

/// The documented exit statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Exit {
    /// Every stack is fine (rebuilt, skipped, or would be rebuilt).
    Success = 0,
    /// At least one stack failed, was rolled back, still runs an older
    /// version after a failed rebuild (`previous_failure`), or was not
    /// rebuilt because its rollout halted.
    Failure = 1,
    /// Bad usage or an invalid inventory: nothing was touched.
    Usage = 2,
    /// Interrupted (Ctrl-C): no new host was started.
    Interrupted = 130,
    /// Terminated (SIGTERM): the run stopped at once.
    Terminated = 143,
}

impl Exit {
    pub fn code(self) -> u8 {
        self as u8
    }

    /// One status for a whole run.
    pub fn merge(rows: &[Row], interrupted: bool) -> Exit {
        if interrupted {
            Exit::Interrupted
        } else if rows.iter().any(|r| {
            matches!(r.action, Action::Failed | Action::RolledBack) || r.reason.holds_back()
        }) {
            Exit::Failure
        } else {
            Exit::Success
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::Reason;

    fn row(action: Action) -> Row {
        Row::new("h", "s", action, Reason::UpToDate)
    }

    #[test]
    fn merge() {
        assert_eq!(Exit::merge(&[], false), Exit::Success);
        assert_eq!(
            Exit::merge(
                &[
                    row(Action::Skipped),
                    row(Action::Rebuilt),
                    row(Action::WouldRebuild)
                ],
                false
            ),
            Exit::Success
        );
        assert_eq!(
            Exit::merge(&[row(Action::Rebuilt), row(Action::Failed)], false),
            Exit::Failure
        );
        assert_eq!(
            Exit::merge(&[row(Action::RolledBack)], false),
            Exit::Failure
        );
        assert_eq!(Exit::merge(&[row(Action::Failed)], true), Exit::Interrupted);
        assert_eq!(Exit::Usage.code(), 2);
    }
}
