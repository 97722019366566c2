//! The `rbuild` binary: parse, run, print an error once, exit with the
//! merged status (see the README's exit code table).

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    match rbuild::run::main() {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(e) => {
            let text = format!("error: {e}\n");
            let color = rbuild::report::color_stderr();
            // a closed stderr (`2>&1 | head`) is no reason to panic
            let _ = std::io::stderr()
                .write_all(rbuild::report::paint_prefixes(&text, color).as_bytes());
            ExitCode::from(e.exit().code())
        }
    }
}
