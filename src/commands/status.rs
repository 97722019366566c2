//! `rbuild status -i INVENTORY`: every stack of every selected host as its
//! host sees it, one remote command a host, nothing changed. The executor
//! asks the hosts ([`crate::fleet::status`]); [`crate::status`] assesses
//! what they say.

use std::sync::Arc;

use super::Outcome;
use crate::config::Settings;
use crate::host::World;
use crate::report::output::Output;
use crate::ship::Shipments;

pub async fn run(settings: Settings, world: World) -> Result<Outcome, crate::error::Error> {
    let shipments = Arc::new(Shipments::hash(&settings.hosts, false));
    let all = crate::fleet::status(Arc::new(settings), shipments, Arc::new(world)).await;
    let exit = crate::status::exit_of(&all);
    Ok(Outcome {
        output: Output::Status(all),
        exit,
    })
}
