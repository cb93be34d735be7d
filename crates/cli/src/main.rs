//! The `tapegrad` command. Each subcommand lives in its own module and exposes an
//! `Args` struct (clap) and a `run(args) -> ExitCode`; `main` only parses and dispatches.
//!
//! - `tapegrad train`: trains an MLP or a CNN on the embedded digits or Fashion-MNIST.
//! - `tapegrad batch-sweep`: compares batch sizes (throughput, memory, accuracy).
//! - `tapegrad gradcheck`: checks every op of the op table against finite differences.
//! - `tapegrad bench`: runs the benchmark workloads W1-W5 and prints JSON lines.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod datasets;
mod gradcheck;
mod models;
mod plot;
mod setup;
mod sweep;
mod train;

/// Counts allocations so `batch-sweep` can report peak memory per batch size (the other
/// commands switch counting off at start: it costs two atomic operations per allocation).
#[global_allocator]
static ALLOC: tapegrad_data::CountingAllocator = tapegrad_data::CountingAllocator;

/// tapegrad: reverse-mode autodiff on n-d tensors.
#[derive(Parser, Debug)]
#[command(name = "tapegrad", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train a model (default: an MLP on the embedded digits, no set-up needed).
    Train(train::Args),
    /// Train the same model at several batch sizes and compare speed, memory and accuracy.
    BatchSweep(sweep::Args),
    /// Run the benchmark workloads W1-W5 (defined in docs/benchmarks.md): a table and JSON lines.
    ///
    /// Threads: set RAYON_NUM_THREADS (default: one per core). The same workloads for
    /// PyTorch, JAX and NumPy, printing the same JSON lines, are in benches/peers/ (its
    /// README.md says how to run them side by side).
    Bench(bench::Args),
    /// Check every op's gradients (and second derivatives) against finite differences.
    Gradcheck(gradcheck::Args),
}

fn main() -> ExitCode {
    let command = Cli::parse().command;
    if !matches!(command, Command::BatchSweep(_)) {
        tapegrad_data::stop_counting();
    }
    match command {
        Command::Train(args) => train::run(&args),
        Command::BatchSweep(args) => sweep::run(&args),
        Command::Gradcheck(args) => gradcheck::run(&args),
        Command::Bench(args) => bench::run(&args),
    }
}
