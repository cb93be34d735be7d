//! Data-parallel training: the collectives a [`Trainer`](crate::Trainer) needs to be one
//! of several processes that each take a shard of every batch ([`DataParallel`]), and the
//! rule that deals a batch to the processes ([`shard_of`]).
//!
//! The trainer does not talk to a network itself: `tapegrad-dist` (over MPI) or a test
//! (over threads) implements [`DataParallel`], and [`TrainConfig::data_parallel`] hands it
//! to the trainer.
//!
//! [`TrainConfig::data_parallel`]: crate::TrainConfig::data_parallel

use tapegrad::{Grads, Tensor};
use tapegrad_nn::Param;

/// The collectives of data-parallel training, as one process of `world_size` sees them.
///
/// With [`TrainConfig::data_parallel`](crate::TrainConfig::data_parallel) set, every
/// process runs the same [`Trainer::fit`](crate::Trainer::fit) on the same data with the
/// same configuration, and the trainer:
///
/// - copies rank 0's parameters and buffers to every rank at the start of `fit`
///   ([`broadcast`](Self::broadcast)) and checks that all ranks are at the same point of
///   training (a resumed run);
/// - treats the batch size as the *global* batch: each micro-batch of the epoch's seeded
///   order is dealt to the ranks by [`shard_of`], so `np` ranks together see exactly the
///   samples one process sees;
/// - sums each rank's gradients, weighted by its share of the update's samples, over the
///   ranks ([`all_reduce_grads`](Self::all_reduce_grads)) before clipping (so clipping
///   uses the global norm) and the optimiser step: every rank takes the same step;
/// - sums the loss values and evaluation results over the ranks
///   ([`all_reduce_sum`](Self::all_reduce_sum)), so every rank reports, stops early and
///   refuses non-finite values identically; evaluation is sharded over the ranks;
/// - writes checkpoints on rank 0 only.
///
/// Every method is a collective: all ranks call it, in the same order. An `Err` (a peer
/// died or timed out) stops training with
/// [`TrainError::Distributed`](crate::TrainError::Distributed); the job must then be
/// stopped, since the other ranks cannot go on without this one.
pub trait DataParallel: Send + Sync {
    /// This process's rank, in `0..world_size`.
    fn rank(&self) -> usize;

    /// Number of processes.
    fn world_size(&self) -> usize;

    /// Sums `values` over all ranks, in place, on every rank; `what` names the operation
    /// for error messages. Every rank must get bitwise the same result.
    ///
    /// # Errors
    /// A message if communication fails.
    fn all_reduce_sum(&self, values: &mut [f64], what: &str) -> Result<(), String>;

    /// Replaces the gradient of every parameter in `params` by its sum over all ranks (a
    /// parameter without a gradient on a rank counts as zeros there); afterwards `grads`
    /// holds a gradient for every parameter, the same on every rank.
    ///
    /// # Errors
    /// A message if communication fails.
    fn all_reduce_grads(&self, grads: &mut Grads, params: &[Param]) -> Result<(), String>;

    /// Overwrites each of `tensors` with rank 0's values.
    ///
    /// # Errors
    /// A message if communication fails.
    fn broadcast(&self, tensors: &[Tensor]) -> Result<(), String>;
}

/// The positions of `rank`'s share of a global batch of `len` samples among `world_size`
/// ranks: `rank, rank + world_size, ...` (as `tapegrad-dist`'s `DistributedSampler` deals
/// them). Shares differ in size by at most one; a rank gets none when `len <
/// world_size` and `rank >= len`.
///
/// ```
/// use tapegrad_train::shard_of;
/// assert_eq!(shard_of(7, 1, 3).collect::<Vec<_>>(), vec![1, 4]);
/// assert_eq!(shard_of(2, 2, 3).count(), 0);
/// ```
///
/// # Panics
/// If `rank >= world_size`.
#[track_caller]
pub fn shard_of(len: usize, rank: usize, world_size: usize) -> impl Iterator<Item = usize> {
    assert!(
        rank < world_size,
        "shard_of: rank {rank} is not below world size {world_size}"
    );
    (rank..len).step_by(world_size)
}
