//! One data-parallel training step, written out so that a training loop (the single
//! process Trainer's, or your own) calls it in place of its own step.

use tapegrad::Tensor;
use tapegrad_nn::Module;
use tapegrad_optim::{clip_grad_norm, Optimizer};

use crate::comm::DistError;
use crate::ddp::DistributedDataParallel;
use crate::sampler::Shard;

/// What one [`train_step`] did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepOutcome {
    /// Mean loss over the global batch (the same on every rank).
    pub loss: f64,
    /// Global L2 norm of the averaged gradients before clipping, when clipping is on.
    pub grad_norm: Option<f64>,
}

/// One update on this rank's `shard` of a global batch: forward, `loss_fn(output,
/// labels)` (labels `[B]` `I64`; a mean over the shard's samples), backward with the gradients summed over
/// the ranks, each weighted by its shard's share of the samples, optional clipping of
/// the global gradient norm to `clip`, and the optimiser step. Every rank ends with the
/// same weights, those one process would have after the same step on the whole global
/// batch. The batch is converted to the dtype of the model's first parameter. A rank
/// with an empty shard takes part with zero gradients.
///
/// # Errors
/// If backward or communication fails.
pub fn train_step<M: Module>(
    ddp: &mut DistributedDataParallel<M>,
    optimizer: &mut dyn Optimizer,
    shard: &Shard,
    loss_fn: impl Fn(&Tensor, &Tensor) -> Tensor,
    clip: Option<f64>,
) -> Result<StepOutcome, DistError> {
    let (mut grads, local_loss) = if shard.batch.is_empty() {
        (ddp.backward_empty()?, 0.0)
    } else {
        let dtype = ddp
            .params()
            .first()
            .map_or(tapegrad::DType::F32, |p| p.dtype());
        let loss = loss_fn(&ddp.forward(&shard.batch.x.to_dtype(dtype)), &shard.batch.y);
        let value = loss.item();
        (ddp.backward_scaled(&loss, shard.weight())?, value)
    };
    let grad_norm = clip.map(|max_norm| {
        // Every rank holds the same averaged gradients: this is the global norm.
        clip_grad_norm(&mut grads, ddp.params().iter(), max_norm, 2.0, false)
            .expect("no error without error_if_nonfinite")
    });
    optimizer.step(&grads);
    let mut loss = [local_loss * shard.weight()];
    ddp.comm()
        .all_reduce_sum(&mut loss, "train_step: global loss")?;
    Ok(StepOutcome {
        loss: loss[0],
        grad_norm,
    })
}
