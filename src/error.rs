//! The error a command stops with, classified once: a usage error (exit 2,
//! nothing touched) or a failure (exit 1). A bottom module: it knows the
//! exit statuses and nothing else of the crate.

use crate::exit::Exit;

/// Why a run stopped with an error, classified once, here: printed once by
/// [`crate::app`], which exits with [`Error::exit`].
#[derive(Debug)]
pub enum Error {
    /// Bad usage, an invalid inventory, a stack that cannot be read: found
    /// before any host was contacted (exit 2, nothing touched).
    Usage(anyhow::Error),
    /// Something failed after hosts were contacted (exit 1).
    Failed(anyhow::Error),
}

impl Error {
    pub fn usage(msg: impl std::fmt::Display) -> Error {
        Error::Usage(anyhow::anyhow!("{msg}"))
    }

    pub fn failed(msg: impl std::fmt::Display) -> Error {
        Error::Failed(anyhow::anyhow!("{msg}"))
    }

    pub fn exit(&self) -> Exit {
        match self {
            Error::Usage(_) => Exit::Usage,
            Error::Failed(_) => Exit::Failure,
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Usage(e) | Error::Failed(e) => write!(f, "{e:#}"),
        }
    }
}
