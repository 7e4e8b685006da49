//! The `harp` command.

use std::process::ExitCode;

fn main() -> ExitCode {
    harp::cli::main()
}
