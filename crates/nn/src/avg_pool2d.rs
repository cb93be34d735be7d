//! `AvgPool2d`: average pooling over NCHW tensors.

use tapegrad::Tensor;

use crate::{Module, Param};

/// Average pooling: each output is the mean of a `kernel` window of the input, see
/// [`Tensor::avg_pool2d`]. No parameters.
///
/// Shapes: `[N, C, H, W]` to `[N, C, Ho, Wo]`, `Ho = floor((H + 2 pad - k) / stride) + 1`.
/// Defaults as PyTorch's `torch.nn.AvgPool2d(kernel_size)`: stride = kernel, no
/// padding, padding counted in the divisor.
///
/// ```
/// use tapegrad::Tensor;
/// use tapegrad_nn::{AvgPool2d, Module};
/// let x = Tensor::arange(0.0, 16.0, 1.0, tapegrad::DType::F32).reshape(&[1, 1, 4, 4]);
/// let y = AvgPool2d::new(2).forward(&x);
/// assert_eq!(y.to_vec::<f32>(), vec![2.5, 4.5, 10.5, 12.5]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AvgPool2d {
    /// Window size (rows, columns).
    pub kernel: [usize; 2],
    /// Step (rows, columns).
    pub stride: [usize; 2],
    /// Zero padding on each side (at most half the kernel).
    pub padding: [usize; 2],
    /// Whether padded positions count in the divisor (PyTorch's default: yes).
    pub count_include_pad: bool,
}

impl AvgPool2d {
    /// A square `kernel` with stride equal to the kernel, no padding.
    pub fn new(kernel: usize) -> AvgPool2d {
        AvgPool2d {
            kernel: [kernel, kernel],
            stride: [kernel, kernel],
            padding: [0, 0],
            count_include_pad: true,
        }
    }

    /// Sets the stride.
    pub fn stride(mut self, stride: usize) -> AvgPool2d {
        self.stride = [stride, stride];
        self
    }

    /// Sets the padding.
    pub fn padding(mut self, padding: usize) -> AvgPool2d {
        self.padding = [padding, padding];
        self
    }
}

impl Module for AvgPool2d {
    /// # Panics
    /// As [`Tensor::avg_pool2d`].
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        x.avg_pool2d(
            self.kernel,
            self.stride,
            self.padding,
            self.count_include_pad,
        )
    }

    fn named_params(&self) -> Vec<(String, Param)> {
        Vec::new()
    }
}
