//! `xgate`: parses the command line and runs the subcommand
//! ([`dataplane::cli::commands`]); an error is printed with its context by anyhow.

use std::process::ExitCode;

use clap::Parser;

use dataplane::cli::{commands, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match commands::execute(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xgate: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
