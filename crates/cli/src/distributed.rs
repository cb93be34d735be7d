//! `tapegrad train --distributed`: data-parallel training over MPI (`mpirun -np N
//! tapegrad train --distributed ...`), in a build with the cargo feature `mpi`.
//!
//! Every rank runs the same `train` with the same options and data. The Trainer gets the
//! ranks' collectives as its [`DataParallel`] hook (`TrainConfig::data_parallel`): the
//! batch size is the global batch, each rank trains on its shard of every batch, the
//! gradients are summed over the ranks (`tapegrad_dist::TrainerComm`, whose collectives
//! time out), evaluation is sharded and summed, and rank 0 alone writes checkpoints. Here, rank 0 alone prints
//! (the others' standard output goes to /dev/null) and writes the run folder's other
//! files (`args.json`, `metrics.jsonl`, the plot, TensorBoard events).
//!
//! When a collective fails (a rank died, or stalled past `TAPEGRAD_DIST_TIMEOUT`
//! seconds), the rank that sees it prints the error and stops the whole job
//! (`MPI_Abort`); checkpoints are written atomically, so the last one stays loadable.

use std::process::ExitCode;
use std::sync::Arc;

use tapegrad_train::DataParallel;

use crate::train::Args;

/// Refuses the options a `--distributed` run cannot honour.
///
/// # Errors
/// `--grow-batch adaptive` (its gradient noise scale is measured on one process's
/// micro-batches).
pub fn check(args: &Args) -> Result<(), String> {
    if args.distributed && args.adaptive() {
        return Err("--grow-batch adaptive cannot be combined with --distributed: it measures the gradient noise scale on one process's micro-batches; grow the batch at fixed epochs (--grow-batch EPOCH:SIZE) or accumulate (--accumulate) instead".into());
    }
    Ok(())
}

/// The ranks of a `--distributed` run, or the one process of an ordinary one.
pub struct Distributed {
    #[cfg(feature = "mpi")]
    mpi: Option<mpi_ranks::Ranks>,
}

impl Distributed {
    /// Joins the MPI job if `distributed` (every rank but 0 then stops printing to
    /// standard output); otherwise one process.
    ///
    /// # Errors
    /// Without the `mpi` feature, or if MPI cannot be initialised.
    pub fn start(distributed: bool) -> Result<Distributed, String> {
        if !distributed {
            return Ok(Distributed {
                #[cfg(feature = "mpi")]
                mpi: None,
            });
        }
        #[cfg(feature = "mpi")]
        {
            Ok(Distributed {
                mpi: Some(mpi_ranks::Ranks::start()?),
            })
        }
        #[cfg(not(feature = "mpi"))]
        Err("--distributed: this tapegrad was built without MPI support: rebuild with --features mpi (cargo build --release -p tapegrad-cli --features mpi, which needs libopenmpi-dev openmpi-bin libclang-dev) and run it under mpirun -np N".into())
    }

    /// Whether this process prints and writes the run's files (rank 0, or the only one).
    pub fn is_main(&self) -> bool {
        self.rank() == 0
    }

    fn rank(&self) -> usize {
        #[cfg(feature = "mpi")]
        if let Some(m) = &self.mpi {
            return m.hook.rank();
        }
        0
    }

    /// The Trainer's hook (`TrainConfig::data_parallel`), in a `--distributed` run.
    pub fn data_parallel(&self) -> Option<Arc<dyn DataParallel>> {
        #[cfg(feature = "mpi")]
        if let Some(m) = &self.mpi {
            return Some(m.hook.clone() as Arc<dyn DataParallel>);
        }
        None
    }

    /// The exit code for `result`, after reporting an error: every rank prints its error
    /// (ranks other than 0 name themselves), and a rank whose communication failed stops
    /// the whole job, since the others cannot go on without it.
    pub fn finish(self, result: Result<(), String>) -> ExitCode {
        let Err(e) = result else {
            return ExitCode::SUCCESS;
        };
        match self.rank() {
            0 => eprintln!("error: {e}"),
            r => eprintln!("error: rank {r}: {e}"),
        }
        #[cfg(feature = "mpi")]
        if let Some(m) = &self.mpi {
            if m.hook.failed() {
                m.hook
                    .comm()
                    .abort(1, "a collective failed (the error above says which)");
            }
        }
        ExitCode::FAILURE
    }
}

#[cfg(feature = "mpi")]
mod mpi_ranks {
    use std::sync::Arc;

    use tapegrad_dist::{Dist, TrainerComm};

    /// MPI, and the Trainer's hook over its world communicator.
    pub struct Ranks {
        pub hook: Arc<TrainerComm>,
        /// Finalises MPI when dropped, at the end of `train`.
        _dist: Dist,
    }

    impl Ranks {
        pub fn start() -> Result<Ranks, String> {
            let dist = Dist::init().map_err(|e| format!("--distributed: {e}"))?;
            let comm = dist.world();
            if comm.rank() != 0 {
                silence_stdout();
            }
            println!(
                "data-parallel over {} rank{} (MPI), collective timeout {:.0} s",
                comm.size(),
                if comm.size() == 1 { "" } else { "s" },
                comm.timeout().as_secs_f64()
            );
            // 1 MiB buckets: on one node OpenMPI's all-reduce of messages above 1 MB
            // was 6-8x slower (docs/distributed.md, "Measurements on this machine"),
            // and on a network the extra buckets cost a few microseconds each.
            Ok(Ranks {
                hook: Arc::new(TrainerComm::new(comm).with_bucket_bytes(1 << 20)),
                _dist: dist,
            })
        }
    }

    /// Rank 0 alone prints: the others' standard output goes to /dev/null.
    fn silence_stdout() {
        // SAFETY: opening /dev/null and duplicating it onto descriptor 1 touches no Rust
        // memory; it runs before this process prints anything.
        unsafe {
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY);
            if null >= 0 {
                libc::dup2(null, 1);
                libc::close(null);
            }
        }
    }
}
