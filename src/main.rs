//! The `rbuild` binary: parse, run, print an error once, exit with the
//! merged status (see the README's exit code table).

use std::process::ExitCode;

fn main() -> ExitCode {
    match rbuild::run::main() {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(e) => {
            let text = format!("error: {e}\n");
            let color = rbuild::report::color_stderr();
            eprint!("{}", rbuild::report::paint_prefixes(&text, color));
            ExitCode::from(e.exit().code())
        }
    }
}
