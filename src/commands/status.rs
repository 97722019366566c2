//! `rbuild status -i INVENTORY`: every stack of every selected host as its
//! host sees it, one remote command a host, nothing changed. The executor
//! asks the hosts ([`crate::fleet::status`]); [`crate::status`] assesses
//! what they say.

use std::sync::Arc;

use super::Outcome;
use crate::config::Settings;
use crate::host::World;
use crate::registry::Upstream;
use crate::report::output::Output;
use crate::ship::Shipments;

/// `outdated`: only the stacks that run on an image that moved since.
pub async fn run(
    settings: Settings,
    world: World,
    outdated: bool,
) -> Result<Outcome, crate::error::Error> {
    let shipments = Arc::new(Shipments::hash(&settings.hosts, false));
    // `status` remembers no digest: a run's `min_age` counts from the runs
    let upstream = Arc::new(if settings.digests {
        Upstream::start(&settings.hosts, false)
    } else {
        Upstream::off()
    });
    let mut all =
        crate::fleet::status(Arc::new(settings), shipments, upstream, Arc::new(world)).await;
    if outdated {
        all.retain(|s| s.outdated());
    }
    let exit = crate::status::exit_of(&all);
    Ok(Outcome {
        output: Output::Status(all),
        exit,
    })
}
