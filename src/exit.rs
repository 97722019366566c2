//! The documented exit statuses (a bottom module: it imports nothing of
//! the crate). What merges many results into one lives with the results
//! ([`crate::report::exit_of`], [`crate::status::exit_of`]).

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
}
