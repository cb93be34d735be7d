//! `AdaptiveAvgPool2d`: average pooling to a fixed output size (global average pooling
//! with output `[1, 1]`).

use tapegrad::Tensor;

use crate::{Module, Param};

/// Adaptive average pooling to an `[oH, oW]` output whatever the input size, see
/// [`Tensor::adaptive_avg_pool2d`]. With output `[1, 1]` it is global average pooling.
/// No parameters.
///
/// Shapes: `[N, C, H, W]` to `[N, C, oH, oW]`. PyTorch: `torch.nn.AdaptiveAvgPool2d`.
///
/// ```
/// use tapegrad::Tensor;
/// use tapegrad_nn::{AdaptiveAvgPool2d, Module};
/// let x = Tensor::arange(0.0, 8.0, 1.0, tapegrad::DType::F32).reshape(&[1, 2, 2, 2]);
/// let y = AdaptiveAvgPool2d::global().forward(&x);
/// assert_eq!(y.shape(), &[1, 2, 1, 1]);
/// assert_eq!(y.to_vec::<f32>(), vec![1.5, 5.5]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdaptiveAvgPool2d {
    /// Output size (rows, columns).
    pub output: [usize; 2],
}

impl AdaptiveAvgPool2d {
    /// Pooling to `output = [oH, oW]`.
    pub fn new(output: [usize; 2]) -> AdaptiveAvgPool2d {
        AdaptiveAvgPool2d { output }
    }

    /// Global average pooling (output `[1, 1]`).
    pub fn global() -> AdaptiveAvgPool2d {
        AdaptiveAvgPool2d { output: [1, 1] }
    }
}

impl Module for AdaptiveAvgPool2d {
    /// # Panics
    /// As [`Tensor::adaptive_avg_pool2d`].
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        x.adaptive_avg_pool2d(self.output)
    }

    fn named_params(&self) -> Vec<(String, Param)> {
        Vec::new()
    }
}
