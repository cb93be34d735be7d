//! `Conv1d`: a 1-D convolution layer over `[N, C, L]` tensors, and its functional form
//! [`conv1d`], both computed by the 2-D convolution on `[N, C, 1, L]`.

use tapegrad::{DType, Tensor};

use crate::init::{kaiming_uniform, uniform, FanMode, Nonlinearity};
use crate::recurrent::mix;
use crate::{Module, Param};

/// 1-D convolution of `x: [N, C, L]` (or unbatched `[C, L]`) with `weight: [O, C /
/// groups, K]` and an optional `bias: [O]`: [`Tensor::conv1d`] (see it for the formula,
/// output length and gradients) with PyTorch's argument order. PyTorch:
/// `torch.nn.functional.conv1d(x, w, b, stride, padding, dilation, groups)`.
///
/// # Panics
/// As [`Tensor::conv1d`].
///
/// ```
/// use tapegrad::Tensor;
/// use tapegrad_nn::functional::conv1d;
/// // A [1, 1] difference filter.
/// let x = Tensor::from_vec(vec![1.0f64, 4.0, 9.0, 16.0], &[1, 1, 4]);
/// let w = Tensor::from_vec(vec![-1.0f64, 1.0], &[1, 1, 2]);
/// assert_eq!(conv1d(&x, &w, None, 1, 0, 1, 1).to_vec::<f64>(), vec![3.0, 5.0, 7.0]);
/// ```
#[track_caller]
pub fn conv1d(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
    dilation: usize,
    groups: usize,
) -> Tensor {
    x.conv1d(weight, bias, stride, padding, dilation, groups)
}

/// Options of a [`Conv1d`] layer beyond the channel counts and kernel size (PyTorch's
/// defaults: stride 1, no padding, dilation 1, one group, with bias, `f32`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv1dOptions {
    /// Step of the window.
    pub stride: usize,
    /// Zero padding on each side.
    pub padding: usize,
    /// Spacing between kernel taps.
    pub dilation: usize,
    /// Channel groups (`groups = in_channels` is a depthwise convolution).
    pub groups: usize,
    /// Whether the layer adds a bias per output channel.
    pub bias: bool,
    /// Element type of the parameters.
    pub dtype: DType,
}

impl Default for Conv1dOptions {
    fn default() -> Self {
        Conv1dOptions {
            stride: 1,
            padding: 0,
            dilation: 1,
            groups: 1,
            bias: true,
            dtype: DType::F32,
        }
    }
}

/// A 1-D convolution layer (see [`conv1d`] for the formula and output length).
///
/// Shapes: input `[N, C_in, L]` (or `[C_in, L]`), weight `[C_out, C_in / groups, K]`,
/// output `[N, C_out, Lo]`. Initialised as PyTorch's `nn.Conv1d`: weight and bias
/// uniform in `[-1/sqrt(fan_in), 1/sqrt(fan_in))` with `fan_in = C_in / groups * K`.
/// Parameters: `weight`, `bias`. PyTorch: `torch.nn.Conv1d` (zero padding mode).
///
/// ```
/// use tapegrad::{DType, Tensor};
/// use tapegrad_nn::{Conv1d, Conv1dOptions, Module};
/// let conv = Conv1d::with_options(4, 6, 3, Conv1dOptions { padding: 1, groups: 2, ..Default::default() }, 0);
/// assert_eq!(conv.weight.shape(), &[6, 2, 3]);
/// let y = conv.forward(&Tensor::zeros(&[2, 4, 10], DType::F32));
/// assert_eq!(y.shape(), &[2, 6, 10]);
/// let bound = 1.0 / 6f32.sqrt();
/// assert!(conv.weight.to_vec::<f32>().iter().all(|w| w.abs() <= bound));
/// ```
#[derive(Clone, Debug)]
pub struct Conv1d {
    /// `[C_out, C_in / groups, K]`.
    pub weight: Param,
    /// `[C_out]`, if the layer has a bias.
    pub bias: Option<Param>,
    /// Stride, padding, dilation and groups.
    pub options: Conv1dOptions,
}

impl Conv1d {
    /// An `f32` layer with stride 1, no padding, with bias.
    pub fn new(in_channels: usize, out_channels: usize, kernel: usize, seed: u64) -> Conv1d {
        Conv1d::with_options(
            in_channels,
            out_channels,
            kernel,
            Conv1dOptions::default(),
            seed,
        )
    }

    /// A layer with the given options, initialised as PyTorch's.
    ///
    /// # Panics
    /// If `groups` is 0 or does not divide both channel counts.
    #[track_caller]
    pub fn with_options(
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        options: Conv1dOptions,
        seed: u64,
    ) -> Conv1d {
        let g = options.groups;
        if g == 0 || !in_channels.is_multiple_of(g) || !out_channels.is_multiple_of(g) {
            panic!("Conv1d: groups = {g} must be positive and divide in_channels = {in_channels} and out_channels = {out_channels}");
        }
        let shape = [out_channels, in_channels / g, kernel];
        let weight = kaiming_uniform(
            &shape,
            FanMode::FanIn,
            Nonlinearity::LeakyRelu(5f64.sqrt()),
            options.dtype,
            seed,
        );
        let fan_in = in_channels / g * kernel;
        let bias = options.bias.then(|| {
            if fan_in > 0 {
                let bound = 1.0 / (fan_in as f64).sqrt();
                uniform(&[out_channels], -bound, bound, options.dtype, mix(seed))
            } else {
                Tensor::zeros(&[out_channels], options.dtype)
            }
        });
        Conv1d {
            weight: Param::new(weight),
            bias: bias.map(Param::new),
            options,
        }
    }
}

impl Module for Conv1d {
    /// # Panics
    /// As [`conv1d`]: the input must be `[N, C_in, L]` or `[C_in, L]` and long enough.
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        let o = self.options;
        conv1d(
            x,
            &self.weight,
            self.bias.as_deref(),
            o.stride,
            o.padding,
            o.dilation,
            o.groups,
        )
    }

    fn named_params(&self) -> Vec<(String, Param)> {
        let mut v = vec![("weight".to_string(), self.weight.clone())];
        v.extend(self.bias.iter().map(|b| ("bias".to_string(), b.clone())));
        v
    }
}
