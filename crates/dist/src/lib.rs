//! # tapegrad-dist
//!
//! Training on several processes, as on the nodes of a cluster, over MPI:
//!
//! - **data parallel**: [`DistributedDataParallel`] (every rank the whole model and a
//!   shard of each batch, gradients averaged in buckets that overlap backward),
//!   [`DistributedSampler`] (the shards, so `np` ranks see exactly the samples one
//!   process sees), [`SyncBatchNorm`] (statistics over the global batch),
//!   [`TrainerComm`] (the `tapegrad_train::Trainer`'s data-parallel hook, what
//!   `tapegrad train --distributed` uses);
//! - **tensor parallel**: [`ColumnParallelLinear`] and [`RowParallelLinear`] (one layer's
//!   output features and the next one's input features split over the ranks);
//! - [`Comm`]: the collectives, each with a timeout, so a dead or stuck rank stops the
//!   others with an error instead of a hang;
//! - [`cost`]: a ring all-reduce model of the scaling on a cluster.
//!
//! The MPI parts need the cargo feature `mpi` (and an MPI library: on Debian
//! `apt-get install libopenmpi-dev openmpi-bin libclang-dev`); without it the crate holds
//! the sampler and the cost model. Programs run under `mpirun -np N`. See
//! `docs/distributed.md`.
#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]

pub mod cost;
mod sampler;

pub use sampler::{DistributedSampler, Shard};

#[cfg(feature = "mpi")]
pub mod collective;
#[cfg(feature = "mpi")]
mod comm;
#[cfg(feature = "mpi")]
mod ddp;
#[cfg(feature = "mpi")]
mod step;
#[cfg(feature = "mpi")]
mod sync_batch_norm;
#[cfg(feature = "mpi")]
mod tensor_parallel;
#[cfg(feature = "mpi")]
mod trainer_hook;

#[cfg(feature = "mpi")]
pub use comm::{default_timeout, Comm, Dist, DistError, Pending, Reducible};
#[cfg(feature = "mpi")]
pub use ddp::{DdpOptions, DistributedDataParallel, SyncTimes};
#[cfg(feature = "mpi")]
pub use step::{train_step, StepOutcome};
#[cfg(feature = "mpi")]
pub use sync_batch_norm::SyncBatchNorm;
#[cfg(feature = "mpi")]
pub use tensor_parallel::{ColumnParallelLinear, RowParallelLinear};
#[cfg(feature = "mpi")]
pub use trainer_hook::TrainerComm;
