//! `MaxPool2d`: max pooling over NCHW tensors.

use tapegrad::Tensor;

use crate::{Module, Param};

/// Max pooling: each output is the maximum of a `kernel` window of the input, see
/// [`Tensor::max_pool2d`]. No parameters.
///
/// Shapes: `[N, C, H, W]` to `[N, C, Ho, Wo]`, `Ho = floor((H + 2 pad - dil (k - 1) - 1) /
/// stride) + 1`. The stride defaults to the kernel size, as in PyTorch's
/// `torch.nn.MaxPool2d(kernel_size)`.
///
/// ```
/// use tapegrad::Tensor;
/// use tapegrad_nn::{MaxPool2d, Module};
/// let x = Tensor::arange(0.0, 16.0, 1.0, tapegrad::DType::F32).reshape(&[1, 1, 4, 4]);
/// let y = MaxPool2d::new(2).forward(&x);
/// assert_eq!(y.to_vec::<f32>(), vec![5.0, 7.0, 13.0, 15.0]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaxPool2d {
    /// Window size (rows, columns).
    pub kernel: [usize; 2],
    /// Step (rows, columns).
    pub stride: [usize; 2],
    /// Implicit `-inf` padding on each side (at most half the kernel).
    pub padding: [usize; 2],
    /// Spacing between window taps.
    pub dilation: [usize; 2],
}

impl MaxPool2d {
    /// A square `kernel` with stride equal to the kernel, no padding.
    pub fn new(kernel: usize) -> MaxPool2d {
        MaxPool2d {
            kernel: [kernel, kernel],
            stride: [kernel, kernel],
            padding: [0, 0],
            dilation: [1, 1],
        }
    }

    /// Sets the stride.
    pub fn stride(mut self, stride: usize) -> MaxPool2d {
        self.stride = [stride, stride];
        self
    }

    /// Sets the padding.
    pub fn padding(mut self, padding: usize) -> MaxPool2d {
        self.padding = [padding, padding];
        self
    }
}

impl Module for MaxPool2d {
    /// # Panics
    /// As [`Tensor::max_pool2d`].
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        x.max_pool2d(self.kernel, self.stride, self.padding, self.dilation)
    }

    fn named_params(&self) -> Vec<(String, Param)> {
        Vec::new()
    }
}
