//! `Conv2d`: a 2-D convolution layer over NCHW tensors.

use tapegrad::{DType, Tensor};

use crate::init::{kaiming_uniform, uniform, FanMode, Nonlinearity};
use crate::{Module, Param};

/// Options of a [`Conv2d`] layer beyond the channel counts and kernel size (PyTorch's
/// defaults: stride 1, no padding, dilation 1, one group, with bias, `f32`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dOptions {
    /// Step of the window (rows, columns).
    pub stride: [usize; 2],
    /// Zero padding on each side (rows, columns).
    pub padding: [usize; 2],
    /// Spacing between kernel taps (rows, columns).
    pub dilation: [usize; 2],
    /// Channel groups: input and output channels are split into `groups` independent
    /// convolutions (`groups = in_channels` is a depthwise convolution).
    pub groups: usize,
    /// Whether the layer adds a bias per output channel.
    pub bias: bool,
    /// Element type of the parameters.
    pub dtype: DType,
}

impl Default for Conv2dOptions {
    fn default() -> Self {
        Conv2dOptions {
            stride: [1, 1],
            padding: [0, 0],
            dilation: [1, 1],
            groups: 1,
            bias: true,
            dtype: DType::F32,
        }
    }
}

/// A 2-D convolution: `y[n, o] = b[o] + sum_c W[o, c] (*) x[n, c]` (cross-correlation,
/// per channel group), see [`Tensor::conv2d`].
///
/// Shapes: input `[N, C_in, H, W]`, weight `[C_out, C_in / groups, kH, kW]`, output
/// `[N, C_out, Ho, Wo]` with `Ho = floor((H + 2 pad - dil (kH - 1) - 1) / stride) + 1`.
/// Initialised as PyTorch's `nn.Conv2d`: weight and bias uniform in
/// `[-1/sqrt(fan_in), 1/sqrt(fan_in))` with `fan_in = C_in / groups * kH * kW`.
/// Parameters: `weight`, `bias`. PyTorch: `torch.nn.Conv2d`.
///
/// ```
/// use tapegrad::{DType, Tensor};
/// use tapegrad_nn::{Conv2d, Conv2dOptions, Module};
/// let conv = Conv2d::with_options(3, 8, [3, 3], Conv2dOptions { padding: [1, 1], ..Default::default() }, 0);
/// let y = conv.forward(&Tensor::zeros(&[2, 3, 10, 12], DType::F32));
/// assert_eq!(y.shape(), &[2, 8, 10, 12]);
/// assert_eq!(conv.num_params(), 8 * 3 * 3 * 3 + 8);
/// // A zero input gives the bias everywhere.
/// let b = conv.bias.as_ref().unwrap().to_vec::<f32>();
/// assert_eq!(y.to_vec::<f32>()[0], b[0]);
/// ```
#[derive(Clone, Debug)]
pub struct Conv2d {
    /// `[C_out, C_in / groups, kH, kW]`.
    pub weight: Param,
    /// `[C_out]`, if the layer has a bias.
    pub bias: Option<Param>,
    /// Stride, padding, dilation and groups.
    pub options: Conv2dOptions,
}

impl Conv2d {
    /// An `f32` layer with a square `kernel`, stride 1, no padding, with bias.
    pub fn new(in_channels: usize, out_channels: usize, kernel: usize, seed: u64) -> Conv2d {
        Conv2d::with_options(
            in_channels,
            out_channels,
            [kernel, kernel],
            Conv2dOptions::default(),
            seed,
        )
    }

    /// A layer with the given kernel size and options, initialised as PyTorch's.
    ///
    /// # Panics
    /// If `groups` is 0 or does not divide both channel counts.
    #[track_caller]
    pub fn with_options(
        in_channels: usize,
        out_channels: usize,
        kernel: [usize; 2],
        options: Conv2dOptions,
        seed: u64,
    ) -> Conv2d {
        let g = options.groups;
        if g == 0 || !in_channels.is_multiple_of(g) || !out_channels.is_multiple_of(g) {
            panic!("Conv2d: groups = {g} must be positive and divide in_channels = {in_channels} and out_channels = {out_channels}");
        }
        let shape = [out_channels, in_channels / g, kernel[0], kernel[1]];
        let weight = kaiming_uniform(
            &shape,
            FanMode::FanIn,
            Nonlinearity::LeakyRelu(5f64.sqrt()),
            options.dtype,
            seed,
        );
        let fan_in = in_channels / g * kernel[0] * kernel[1];
        let bias = options.bias.then(|| {
            if fan_in > 0 {
                let bound = 1.0 / (fan_in as f64).sqrt();
                uniform(
                    &[out_channels],
                    -bound,
                    bound,
                    options.dtype,
                    seed.wrapping_add(0x9E37_79B9),
                )
            } else {
                Tensor::zeros(&[out_channels], options.dtype)
            }
        });
        Conv2d {
            weight: Param::new(weight),
            bias: bias.map(Param::new),
            options,
        }
    }
}

impl Module for Conv2d {
    /// # Panics
    /// As [`Tensor::conv2d`]: the input must be `[N, C_in, H, W]` and large enough.
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        let o = self.options;
        x.conv2d(
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
