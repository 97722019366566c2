//! What the controller ships: every distinct stack directory is read and
//! hashed once, before any host is touched, and a payload (one tar stream
//! of some stacks) is built once per distinct set of stacks, however many
//! hosts it goes to. A stack that cannot be read is that stack's failure,
//! not the run's: its rows say why, the other stacks go on.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::host::Payload;
use crate::inventory::{Host, Stack};
use crate::stack::{self, Contents, StackError};

/// The hashed stacks of a run and the payloads built from them.
#[derive(Debug, Default)]
pub struct Shipments {
    by_dir: HashMap<PathBuf, Result<Arc<Contents>, Arc<StackError>>>,
    /// Payloads already built, by the (name, directory) of the stacks they
    /// carry.
    payloads: Mutex<HashMap<Vec<(String, PathBuf)>, Payload>>,
}

impl Shipments {
    /// Read and hash the directory of every stack of `hosts`, once each.
    pub fn hash(hosts: &[Host]) -> Shipments {
        let mut by_dir = HashMap::new();
        for s in hosts.iter().flat_map(|h| &h.stacks) {
            by_dir
                .entry(s.dir())
                .or_insert_with_key(|dir| stack::read(dir).map(Arc::new).map_err(Arc::new));
        }
        Shipments {
            by_dir,
            payloads: Default::default(),
        }
    }

    fn contents(&self, s: &Stack) -> Result<&Contents, &StackError> {
        match self
            .by_dir
            .get(&s.dir())
            .expect("every stack of the run was read")
        {
            Ok(c) => Ok(c),
            Err(e) => Err(e),
        }
    }

    /// The stack's hash (what a rebuild of it now would record), or why its
    /// files cannot be read.
    pub fn hash_of(&self, s: &Stack) -> Result<&str, &StackError> {
        self.contents(s).map(|c| c.hash.as_str())
    }

    /// The payload carrying these stacks (readable ones), each under its
    /// name.
    pub fn payload(&self, stacks: &[&Stack]) -> Result<Payload, StackError> {
        let key: Vec<(String, PathBuf)> =
            stacks.iter().map(|s| (s.name.clone(), s.dir())).collect();
        if let Some(p) = self.payloads.lock().expect("not poisoned").get(&key) {
            return Ok(p.clone());
        }
        let mut parts: Vec<(&str, &Contents)> = Vec::with_capacity(stacks.len());
        for s in stacks {
            let c = self.contents(s).map_err(|e| StackError::Unreadable {
                message: e.to_string(),
            })?;
            parts.push((s.name.as_str(), c));
        }
        let p = Arc::new(stack::payload(&parts)?);
        self.payloads
            .lock()
            .expect("not poisoned")
            .insert(key, p.clone());
        Ok(p)
    }
}
