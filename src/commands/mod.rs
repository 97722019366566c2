//! The commands: one file each. A command takes its resolved settings and
//! the world, and returns an [`Outcome`]: what to show (drawn in
//! [`crate::report`]) and the exit status. No command prints.

pub mod check;
pub mod merge;
pub mod meta;
pub mod run;
pub mod stack;
pub mod status;

use crate::exit::Exit;
use crate::report::output::Output;

/// What a command returns.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub output: Output,
    pub exit: Exit,
}
