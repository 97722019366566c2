//! The YAML inventory: which hosts run which compose stacks, and how to reach
//! them. Parsing is strict (unknown keys are errors) and every error names the
//! file, the line and the key at fault. Nothing here touches a host, and
//! nothing here knows how a host is told: the remote script's arguments
//! are made of the model elsewhere (`fleet.rs`), and `notify:`'s URL and
//! actions are checked where the webhook is built (`config.rs`).
//!
//! Its parts: `model` (what the rest of rbuild reads), `keys` (the keys a
//! stack inherits, declared once), `values` (values with rules of their
//! own), `raw` (the file as written), `resolve` (from the one to the
//! other), `validate` (names and paths), `error` (errors at their line), `shape`
//! (the text's shape where the parser only says it does not fit).

mod error;
mod keys;
mod model;
mod raw;
mod resolve;
mod shape;
mod validate;
mod values;

use std::path::Path;

pub use crate::compose::ComposePref;
pub use error::InventoryError;
pub use keys::Inheritable;
pub use model::{Hooks, Host, Inventory, Notify, Probe, Stack};
pub use validate::valid_stack_name;
pub use values::{MAX_CONNECT_TIMEOUT, MAX_PERIOD, MAX_UP_TIMEOUT, Seconds, parse_seconds};

impl Inventory {
    /// Read and validate an inventory file.
    pub fn load(path: &Path) -> Result<Inventory, InventoryError> {
        let text = std::fs::read_to_string(path).map_err(|e| InventoryError {
            file: path.to_owned(),
            line: 0,
            column: 0,
            message: format!("cannot read the inventory: {e}"),
            hint: None,
        })?;
        Inventory::parse(path, &text)
    }

    /// Parse and validate inventory text; `path` names it in errors and
    /// anchors relative compose file paths.
    pub fn parse(path: &Path, text: &str) -> Result<Inventory, InventoryError> {
        let raw: raw::RawInventory =
            serde_saphyr::from_str(text).map_err(|e| error::yaml(path, text, &e))?;
        resolve::inventory(path, &raw)
    }
}

#[cfg(test)]
mod tests;
