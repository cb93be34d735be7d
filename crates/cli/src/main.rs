//! The `tapegrad` command. Each subcommand lives in its own module and exposes an
//! `Args` struct (clap) and a `run(args) -> ExitCode`; `main` only parses and dispatches.
//!
//! - `tapegrad train`: trains an MLP or a CNN on the embedded digits or Fashion-MNIST, or
//!   a language model (transformer, LSTM) on text.
//! - `tapegrad sample`: generates text with a trained language model.
//! - `tapegrad batch-sweep`: compares batch sizes (throughput, memory, accuracy).
//! - `tapegrad gradcheck`: checks every op of the op table against finite differences.
//! - `tapegrad bench`: runs the benchmark workloads W1-W5 and prints JSON lines.

use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};

mod bench;
mod datasets;
mod distributed;
mod gradcheck;
mod lm;
mod models;
mod plot;
mod sample;
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
    /// Generate text with a language model trained by `train --dataset text`.
    Sample(sample::Args),
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

/// The ids of the arguments of `matches` that were given on the command line (not
/// defaults).
fn explicit_args(matches: &ArgMatches) -> Vec<String> {
    matches
        .ids()
        .filter(|id| matches.value_source(id.as_str()) == Some(ValueSource::CommandLine))
        .map(|id| id.to_string())
        .collect()
}

/// Lets a closed pipe end the process quietly (`tapegrad train | head -1`), as other
/// command-line tools do, instead of `println!` panicking on the write error. Rust
/// ignores SIGPIPE by default; this restores the default action.
#[cfg(unix)]
fn die_quietly_on_closed_pipe() {
    // SAFETY: resetting the disposition of SIGPIPE to its default touches no memory; it
    // runs once, before any other thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> ExitCode {
    #[cfg(unix)]
    die_quietly_on_closed_pipe();
    // `train` and `batch-sweep` share their options; batch-sweep's optimiser defaults to
    // SGD, whose learning rate --lr-scaling scales linearly with the batch.
    let matches = Cli::command()
        .mut_subcommand("batch-sweep", |c| {
            c.mut_arg("optimizer", |a| a.default_value("sgd"))
        })
        .get_matches();
    let command = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli.command,
        Err(e) => e.exit(),
    };
    // Counting costs two atomic operations per allocation: only the commands that measure
    // memory keep it (train stops it once it has measured).
    let measures = match &command {
        Command::BatchSweep(_) => true,
        Command::Train(a) => a.memory_limit.is_some() && a.resume.is_none(),
        _ => false,
    };
    if !measures {
        tapegrad_data::stop_counting();
    }
    match command {
        Command::Train(args) => {
            let explicit = matches
                .subcommand_matches("train")
                .map(explicit_args)
                .unwrap_or_default();
            train::run(&args, &explicit)
        }
        Command::Sample(args) => sample::run(&args),
        Command::BatchSweep(args) => sweep::run(&args),
        Command::Gradcheck(args) => gradcheck::run(&args),
        Command::Bench(args) => bench::run(&args),
    }
}
