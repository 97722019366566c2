//! The `rbuild` binary: everything is in [`rbuild::app`].

fn main() -> std::process::ExitCode {
    rbuild::app::main()
}
