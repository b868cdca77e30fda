//! The `latchkey` binary: parse the command line and hand over to [`latchkey::cli`].

use std::process::ExitCode;

fn main() -> ExitCode {
    latchkey::cli::run()
}
