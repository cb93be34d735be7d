//! `tapegrad train --distributed`: data-parallel training over MPI (`mpirun -np N
//! tapegrad train --distributed ...`), in a build with the cargo feature `mpi`.
//!
//! Every rank runs the same `train` with the same options and data. The Trainer gets the
//! ranks' collectives as its [`DataParallel`] hook (`TrainConfig::data_parallel`): the
//! batch size is the global batch, each rank trains on its shard of every batch, the
//! gradients are summed over the ranks (in buckets of `DdpOptions`'s default size, on a
//! `tapegrad-dist` [`Comm`](tapegrad_dist::Comm) whose collectives time out), evaluation
//! is sharded and summed, and rank 0 alone writes checkpoints. Here, rank 0 alone prints
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
                    .comm
                    .abort(1, "a collective failed (the error above says which)");
            }
        }
        ExitCode::FAILURE
    }
}

#[cfg(feature = "mpi")]
mod mpi_ranks {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use tapegrad::{DType, Grads, Tensor};
    use tapegrad_dist::{Comm, DdpOptions, Dist, DistError, Pending, Reducible};
    use tapegrad_nn::Param;
    use tapegrad_train::DataParallel;

    /// MPI, and the hook over its world communicator.
    pub struct Ranks {
        pub hook: Arc<MpiHook>,
        /// Finalises MPI when dropped, at the end of `train`.
        _dist: Dist,
    }

    impl Ranks {
        pub fn start() -> Result<Ranks, String> {
            let dist = Dist::init().map_err(|e| format!("--distributed: {e}"))?;
            let comm = dist.world().clone();
            if comm.rank() != 0 {
                silence_stdout();
            }
            println!(
                "data-parallel over {} rank{} (MPI), collective timeout {:.0} s",
                comm.size(),
                if comm.size() == 1 { "" } else { "s" },
                comm.timeout().as_secs_f64()
            );
            Ok(Ranks {
                hook: Arc::new(MpiHook {
                    comm,
                    failed: AtomicBool::new(false),
                    bucket_bytes: DdpOptions::default().bucket_bytes,
                }),
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

    /// [`DataParallel`] over a `tapegrad-dist` communicator.
    pub struct MpiHook {
        pub comm: Comm,
        failed: AtomicBool,
        bucket_bytes: usize,
    }

    impl MpiHook {
        /// Whether a collective failed (the job must then be aborted).
        pub fn failed(&self) -> bool {
            self.failed.load(Ordering::SeqCst)
        }

        fn note<T>(&self, r: Result<T, DistError>) -> Result<T, String> {
            r.map_err(|e| {
                self.failed.store(true, Ordering::SeqCst);
                e.to_string()
            })
        }

        /// Sums `flat` over the ranks in buckets of at most `bucket_bytes`, all started
        /// before the first is waited for.
        fn reduce_flat<T: Reducible>(&self, flat: Vec<T>) -> Result<Vec<T>, DistError> {
            let per = (self.bucket_bytes / std::mem::size_of::<T>()).max(1);
            let pending: Vec<Pending<T>> = flat
                .chunks(per)
                .enumerate()
                .map(|(i, c)| {
                    self.comm.start_all_reduce_sum(
                        c.to_vec(),
                        &format!("all-reduce of gradient bucket {i}"),
                    )
                })
                .collect::<Result<_, _>>()?;
            let mut out = Vec::with_capacity(flat.len());
            for p in pending {
                out.extend(p.wait()?);
            }
            Ok(out)
        }

        /// Sums the gradients of `params` (f32 ones in f32, others in f64) over the ranks.
        fn reduce_grads<T: Reducible>(
            &self,
            grads: &mut Grads,
            params: &[&Param],
        ) -> Result<(), DistError> {
            if params.is_empty() {
                return Ok(());
            }
            let mut flat: Vec<T> = Vec::new();
            for p in params {
                match grads.get(p) {
                    Some(g) => flat.extend(g.to_vec::<T>()),
                    None => flat.extend(std::iter::repeat_n(T::default(), p.numel())),
                }
            }
            let flat = self.reduce_flat(flat)?;
            let mut at = 0;
            for p in params {
                let g = Tensor::from_vec(flat[at..at + p.numel()].to_vec(), p.shape());
                grads.insert(p, g.to_dtype(p.dtype()));
                at += p.numel();
            }
            Ok(())
        }
    }

    impl DataParallel for MpiHook {
        fn rank(&self) -> usize {
            self.comm.rank()
        }

        fn world_size(&self) -> usize {
            self.comm.size()
        }

        fn all_reduce_sum(&self, values: &mut [f64], what: &str) -> Result<(), String> {
            self.note(self.comm.all_reduce_sum(values, what))
        }

        fn all_reduce_grads(&self, grads: &mut Grads, params: &[Param]) -> Result<(), String> {
            let (f32s, others): (Vec<&Param>, Vec<&Param>) =
                params.iter().partition(|p| p.dtype() == DType::F32);
            self.note(self.reduce_grads::<f32>(grads, &f32s))?;
            self.note(self.reduce_grads::<f64>(grads, &others))
        }

        fn broadcast(&self, tensors: &[Tensor]) -> Result<(), String> {
            for t in tensors {
                let mut v = t.to_vec::<f64>();
                self.note(
                    self.comm
                        .broadcast(&mut v, 0, "broadcast of rank 0's weights"),
                )?;
                t.assign_(&Tensor::from_vec(v, t.shape()).to_dtype(t.dtype()));
            }
            Ok(())
        }
    }
}
