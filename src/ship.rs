//! What the controller ships: every distinct stack directory is read and
//! hashed once, before any host is touched, and a payload (one tar stream
//! of some stacks) is built once per distinct set of stacks, however many
//! hosts it goes to.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::host::Payload;
use crate::inventory::{Host, Stack};
use crate::stack::{self, Contents, StackError};

/// The hashed stacks of a run and the payloads built from them.
#[derive(Debug, Default)]
pub struct Shipments {
    by_dir: HashMap<PathBuf, Arc<Contents>>,
    /// Payloads already built, by the (name, directory) of the stacks they
    /// carry.
    payloads: Mutex<HashMap<Vec<(String, PathBuf)>, Payload>>,
}

impl Shipments {
    /// Read and hash the directory of every stack of `hosts`, once each.
    pub fn hash(hosts: &[Host]) -> Result<Shipments, StackError> {
        let mut by_dir = HashMap::new();
        for s in hosts.iter().flat_map(|h| &h.stacks) {
            if let std::collections::hash_map::Entry::Vacant(e) = by_dir.entry(s.dir()) {
                let c = stack::read(e.key())?;
                e.insert(Arc::new(c));
            }
        }
        Ok(Shipments {
            by_dir,
            payloads: Default::default(),
        })
    }

    fn contents(&self, s: &Stack) -> &Contents {
        self.by_dir
            .get(&s.dir())
            .expect("every stack of the run was hashed")
    }

    /// The stack's hash: what a rebuild of it now would record.
    pub fn hash_of(&self, s: &Stack) -> &str {
        &self.contents(s).hash
    }

    /// The payload carrying these stacks, each under its name.
    pub fn payload(&self, stacks: &[&Stack]) -> Result<Payload, StackError> {
        let key: Vec<(String, PathBuf)> =
            stacks.iter().map(|s| (s.name.clone(), s.dir())).collect();
        if let Some(p) = self.payloads.lock().expect("not poisoned").get(&key) {
            return Ok(p.clone());
        }
        let parts: Vec<(&str, &Contents)> = stacks
            .iter()
            .map(|s| (s.name.as_str(), self.contents(s)))
            .collect();
        let p = Arc::new(stack::payload(&parts)?);
        self.payloads
            .lock()
            .expect("not poisoned")
            .insert(key, p.clone());
        Ok(p)
    }
}
