//! The `tapegrad` command. Each subcommand lives in its own module and exposes an
//! `Args` struct (clap) and a `run(args) -> ExitCode`; `main` only parses and dispatches.
//!
//! - `tapegrad gradcheck`: checks every op of the op table against finite differences.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod gradcheck;

/// tapegrad: reverse-mode autodiff on n-d tensors.
#[derive(Parser, Debug)]
#[command(name = "tapegrad", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check every op's gradients (and second derivatives) against finite differences.
    Gradcheck(gradcheck::Args),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Gradcheck(args) => gradcheck::run(&args),
    }
}
