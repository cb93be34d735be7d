//! `Flatten`: merges a range of axes into one.

use tapegrad::Tensor;

use crate::{Module, Param};

/// Merges axes `start..=end` into one (defaults as PyTorch's `torch.nn.Flatten`:
/// `start = 1`, `end = -1`, keeping the batch axis). No parameters.
///
/// Shapes: `[N, C, H, W]` to `[N, C * H * W]` with the defaults.
///
/// ```
/// use tapegrad::{DType, Tensor};
/// use tapegrad_nn::{Flatten, Module};
/// let y = Flatten::new().forward(&Tensor::zeros(&[2, 3, 4, 5], DType::F32));
/// assert_eq!(y.shape(), &[2, 60]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flatten {
    /// First axis merged (negative counts from the end).
    pub start: isize,
    /// Last axis merged (negative counts from the end).
    pub end: isize,
}

impl Flatten {
    /// Flattens everything but the batch axis.
    pub fn new() -> Flatten {
        Flatten { start: 1, end: -1 }
    }
}

impl Default for Flatten {
    fn default() -> Self {
        Flatten::new()
    }
}

impl Module for Flatten {
    /// # Panics
    /// If an axis is out of range or `start` comes after `end`.
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        x.flatten(self.start, self.end)
    }

    fn named_params(&self) -> Vec<(String, Param)> {
        Vec::new()
    }
}
