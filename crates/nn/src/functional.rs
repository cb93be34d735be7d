//! Layers as functions of their inputs and weights, as `torch.nn.functional`: the same
//! code the layers run, with any tensors as the weights (gradient checks, weight sharing,
//! meta-learning). Each function is documented where its layer lives.

pub use crate::attention::{attention_with_weights, scaled_dot_product_attention};
pub use crate::conv1d::conv1d;
pub use crate::embedding::embedding;
pub use crate::group_norm::group_norm;
pub use crate::gru_cell::gru_cell;
pub use crate::lstm_cell::lstm_cell;
pub use crate::multihead_attention::{multi_head_attention, MhaWeights};
pub use crate::rms_norm::rms_norm;
pub use crate::rnn_cell::rnn_cell;

use tapegrad::Tensor;

/// Extracts sliding blocks, PyTorch's `F.unfold(x, kernel_size, dilation, padding,
/// stride)`: `[N, C, H, W]` to `[N, C * kH * kW, L]`. The same as [`Tensor::im2col`]
/// (named so because `Tensor.unfold` is another op in PyTorch).
///
/// # Panics
/// As [`Tensor::im2col`].
///
/// ```
/// use tapegrad::{DType, Tensor};
/// use tapegrad_nn::functional::unfold;
/// let x = Tensor::zeros(&[2, 3, 5, 5], DType::F32);
/// assert_eq!(unfold(&x, [3, 3], [1, 1], [1, 1], [1, 1]).shape(), &[2, 27, 25]);
/// ```
#[track_caller]
pub fn unfold(
    x: &Tensor,
    kernel_size: [usize; 2],
    dilation: [usize; 2],
    padding: [usize; 2],
    stride: [usize; 2],
) -> Tensor {
    x.im2col(kernel_size, dilation, padding, stride)
}

/// Sums sliding blocks back into an image, PyTorch's `F.fold(x, output_size,
/// kernel_size, dilation, padding, stride)`: `[N, C * kH * kW, L]` to `[N, C, H, W]`,
/// the transpose of [`unfold`]. The same as [`Tensor::col2im`].
///
/// # Panics
/// As [`Tensor::col2im`].
///
/// ```
/// use tapegrad::{DType, Tensor};
/// use tapegrad_nn::functional::{fold, unfold};
/// let x = Tensor::ones(&[1, 1, 3, 3], DType::F64);
/// let y = fold(&unfold(&x, [2, 2], [1, 1], [0, 0], [1, 1]), [3, 3], [2, 2], [1, 1], [0, 0], [1, 1]);
/// // Each pixel comes back once per 2x2 window that covers it.
/// assert_eq!(y.to_vec::<f64>(), vec![1.0, 2.0, 1.0, 2.0, 4.0, 2.0, 1.0, 2.0, 1.0]);
/// ```
#[track_caller]
pub fn fold(
    x: &Tensor,
    output_size: [usize; 2],
    kernel_size: [usize; 2],
    dilation: [usize; 2],
    padding: [usize; 2],
    stride: [usize; 2],
) -> Tensor {
    x.col2im(output_size, kernel_size, dilation, padding, stride)
}
