//! The `Module` trait: forward, named parameter traversal, train/eval mode.

use tapegrad::Tensor;

use crate::Param;

/// A model or a part of one, as `torch.nn.Module`.
pub trait Module: Send + Sync {
    /// Computes the output for input `x`.
    fn forward(&self, x: &Tensor) -> Tensor;

    /// Every parameter with its dotted path name (`"layers.0.weight"`), in a stable order.
    fn named_params(&self) -> Vec<(String, Param)>;

    /// The parameters, in the order of [`named_params`](Self::named_params).
    fn params(&self) -> Vec<Param> {
        self.named_params().into_iter().map(|(_, p)| p).collect()
    }

    /// Total number of scalar parameters.
    fn num_params(&self) -> usize {
        self.named_params().iter().map(|(_, p)| p.numel()).sum()
    }

    /// Non-trainable state saved with the weights (batch-norm running statistics), with
    /// dotted names. Default: none.
    fn named_buffers(&self) -> Vec<(String, Tensor)> {
        Vec::new()
    }

    /// Switches training mode (dropout active, batch norm uses batch statistics) on or
    /// off (evaluation mode). Default: no effect.
    fn set_training(&mut self, _training: bool) {}
}
