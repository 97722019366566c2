//! The `rbuild` binary: parse, run, print an error once, exit with the
//! merged status (see the README's exit code table).

use std::process::ExitCode;

fn main() -> ExitCode {
    match rbuild::run::main() {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit().code())
        }
    }
}
