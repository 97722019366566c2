//! `rbuild completions SHELL` and `rbuild man`: about rbuild itself, nothing
//! else read.

use clap::CommandFactory;

use super::Outcome;
use crate::cli::{Cli, Meta};
use crate::error::Error;
use crate::exit::Exit;
use crate::report::output::Output;

pub fn run(m: Meta) -> Result<Outcome, Error> {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    match m {
        Meta::Completions { shell } => {
            clap_complete::generate(shell, &mut cmd, "rbuild", &mut out);
        }
        Meta::Man => clap_mangen::Man::new(cmd)
            .render(&mut out)
            .map_err(|e| Error::Failed(e.into()))?,
    }
    Ok(Outcome {
        output: Output::Text(String::from_utf8_lossy(&out).into_owned()),
        exit: Exit::Success,
    })
}
