//! The `Module` trait: forward, named parameter traversal, train/eval mode; the
//! naming helper containers use.

use std::sync::atomic::AtomicU64;

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

    /// Counters that an exact resume needs besides parameters and buffers, by dotted
    /// name: the positions of dropout layers in their random streams (`"2.calls"`). They
    /// go into training checkpoints, not weights files (PyTorch's state dicts have no
    /// such entries), and are read and set through the atomics. Default: none.
    fn named_counters(&self) -> Vec<(String, &AtomicU64)> {
        Vec::new()
    }

    /// Switches training mode (dropout active, batch norm uses batch statistics) on or
    /// off (evaluation mode). Default: no effect.
    fn set_training(&mut self, _training: bool) {}

    /// Training mode (PyTorch's `module.train()`): `set_training(true)`.
    fn train(&mut self) {
        self.set_training(true);
    }

    /// Evaluation mode (PyTorch's `module.eval()`): `set_training(false)`.
    fn eval(&mut self) {
        self.set_training(false);
    }
}

/// A boxed module is a module, so containers can hold `Box<dyn Module>`.
impl<M: Module + ?Sized> Module for Box<M> {
    fn forward(&self, x: &Tensor) -> Tensor {
        (**self).forward(x)
    }
    fn named_params(&self) -> Vec<(String, Param)> {
        (**self).named_params()
    }
    fn named_buffers(&self) -> Vec<(String, Tensor)> {
        (**self).named_buffers()
    }
    fn named_counters(&self) -> Vec<(String, &AtomicU64)> {
        (**self).named_counters()
    }
    fn set_training(&mut self, training: bool) {
        (**self).set_training(training)
    }
}

/// Prefixes every name of `items` with `prefix` and a dot (`"0"` + `"weight"` ->
/// `"0.weight"`): how containers name their children's parameters.
pub fn prefixed<T>(prefix: &str, items: Vec<(String, T)>) -> Vec<(String, T)> {
    items
        .into_iter()
        .map(|(n, t)| (format!("{prefix}.{n}"), t))
        .collect()
}
