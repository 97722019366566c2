//! Everything rbuild reads of a stack's compose files, and nothing of the
//! rest of rbuild (these take paths and give values).
//!
//! What a stack's compose files reference on disk: build contexts and
//! Dockerfiles, `env_file`, `extends: file:`, `include:`, file-based
//! secrets and configs, and relative bind-mount sources. rbuild hashes and
//! ships one directory, the stack's root; a reference that leaves it would
//! be neither hashed (a change there is never noticed) nor shipped (the
//! host builds from stale files or fails), so it is refused, naming the
//! compose file, the line and the path. Files reached through `extends` and
//! `include` are read in turn, their paths relative to their own directory.
//!
//! Paths written with a variable (`${X}`), URLs (a git build context) and
//! absolute or `~` bind-mount sources (host paths such as the engine's
//! socket) are not the stack's files and are left alone.
//!
//! Its parts: `refs` (the files a stack's compose files reference, kept
//! inside its root), `services` (what its services allow and need), `files`
//! (a compose file as a whole), `images` (the images a stack is made from).

mod files;
mod images;
mod refs;
mod services;

pub use images::{Input as ImageInput, Inputs as ImageInputs, inputs as image_inputs};

pub use files::{Unreadable, compose_name, dotenv_project_name, override_of, unreadable};
pub use refs::{Needed, Outside, Refused, check, needed, outside_root};
pub use services::{
    NotBeside, beside, beside_services, mounting, one_shots, variables, writable_binds,
};

/// Which compose CLI the remote side uses (`compose:` of a host, an
/// argument of the remote script).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ComposePref {
    /// `docker compose` where it works, else `docker-compose`.
    #[default]
    Auto,
    V1,
    V2,
}

impl ComposePref {
    pub fn as_arg(self) -> &'static str {
        match self {
            ComposePref::Auto => "auto",
            ComposePref::V1 => "v1",
            ComposePref::V2 => "v2",
        }
    }
}

#[cfg(test)]
mod tests;
