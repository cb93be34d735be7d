//! `ConvTranspose2d`: a 2-D transposed convolution layer over NCHW tensors (the
//! up-sampling convolution of decoders and GAN generators).

use tapegrad::{DType, Tensor};

use crate::init::{kaiming_uniform, uniform, FanMode, Nonlinearity};
use crate::{Module, Param};

/// Options of a [`ConvTranspose2d`] layer beyond the channel counts and kernel size
/// (PyTorch's defaults: stride 1, no padding, no output padding, one group, with bias,
/// dilation 1, `f32`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvTranspose2dOptions {
    /// Step of the input pixels over the output (rows, columns).
    pub stride: [usize; 2],
    /// Removes `dilation * (kernel - 1) - padding` zeros of implicit padding on each side:
    /// the output shrinks by `2 * padding` (rows, columns).
    pub padding: [usize; 2],
    /// Extra rows and columns added on one side of the output, to pick among the output
    /// sizes that a strided convolution maps to the same input size; smaller than the
    /// stride or the dilation.
    pub output_padding: [usize; 2],
    /// Channel groups (input and output channels split into `groups` independent parts).
    pub groups: usize,
    /// Whether the layer adds a bias per output channel.
    pub bias: bool,
    /// Spacing between kernel taps (rows, columns).
    pub dilation: [usize; 2],
    /// Element type of the parameters.
    pub dtype: DType,
}

impl Default for ConvTranspose2dOptions {
    fn default() -> Self {
        ConvTranspose2dOptions {
            stride: [1, 1],
            padding: [0, 0],
            output_padding: [0, 0],
            groups: 1,
            bias: true,
            dilation: [1, 1],
            dtype: DType::F32,
        }
    }
}

/// A 2-D transposed convolution, the adjoint of a [`Conv2d`](crate::Conv2d) with the same
/// geometry (see [`Tensor::conv_transpose2d`] for the formula).
///
/// Shapes: input `[N, C_in, H, W]`, weight `[C_in, C_out / groups, kH, kW]`, output
/// `[N, C_out, Ho, Wo]` with `Ho = (H - 1) stride - 2 padding + dilation (kH - 1) +
/// output_padding + 1`. Initialised as PyTorch's `nn.ConvTranspose2d`: weight and bias
/// uniform in `[-1/sqrt(fan_in), 1/sqrt(fan_in))` with PyTorch's fan-in, the weight's
/// second axis times the kernel: `C_out / groups * kH * kW`. Parameters: `weight`, `bias`.
/// PyTorch: `torch.nn.ConvTranspose2d(in_channels, out_channels, kernel_size, stride,
/// padding, output_padding, groups, bias, dilation)` (zero padding mode).
///
/// ```
/// use tapegrad::{DType, Tensor};
/// use tapegrad_nn::{ConvTranspose2d, ConvTranspose2dOptions, Module};
/// let opts = ConvTranspose2dOptions { stride: [2, 2], padding: [1, 1], output_padding: [1, 1], ..Default::default() };
/// let up = ConvTranspose2d::with_options(8, 4, [3, 3], opts, 0);
/// assert_eq!(up.weight.shape(), &[8, 4, 3, 3]);
/// // Stride 2 with padding 1 and output padding 1 doubles the size exactly.
/// let y = up.forward(&Tensor::zeros(&[2, 8, 5, 7], DType::F32));
/// assert_eq!(y.shape(), &[2, 4, 10, 14]);
/// let bound = 1.0 / 36f32.sqrt();
/// assert!(up.weight.to_vec::<f32>().iter().all(|w| w.abs() <= bound));
/// ```
#[derive(Clone, Debug)]
pub struct ConvTranspose2d {
    /// `[C_in, C_out / groups, kH, kW]`.
    pub weight: Param,
    /// `[C_out]`, if the layer has a bias.
    pub bias: Option<Param>,
    /// Stride, padding, output padding, groups and dilation.
    pub options: ConvTranspose2dOptions,
}

impl ConvTranspose2d {
    /// An `f32` layer with a square `kernel` and PyTorch's default options.
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        seed: u64,
    ) -> ConvTranspose2d {
        ConvTranspose2d::with_options(
            in_channels,
            out_channels,
            [kernel, kernel],
            ConvTranspose2dOptions::default(),
            seed,
        )
    }

    /// A layer with the given kernel size and options, initialised as PyTorch's.
    ///
    /// # Panics
    /// If `groups` is 0 or does not divide both channel counts, or an output padding is
    /// not smaller than its stride or its dilation.
    #[track_caller]
    pub fn with_options(
        in_channels: usize,
        out_channels: usize,
        kernel: [usize; 2],
        options: ConvTranspose2dOptions,
        seed: u64,
    ) -> ConvTranspose2d {
        let g = options.groups;
        if g == 0 || !in_channels.is_multiple_of(g) || !out_channels.is_multiple_of(g) {
            panic!("ConvTranspose2d: groups = {g} must be positive and divide in_channels = {in_channels} and out_channels = {out_channels}");
        }
        let (s, d, op) = (options.stride, options.dilation, options.output_padding);
        if op[0] >= s[0].max(d[0]) || op[1] >= s[1].max(d[1]) {
            panic!("ConvTranspose2d: output_padding {op:?} must be smaller than either the stride {s:?} or the dilation {d:?}");
        }
        let shape = [in_channels, out_channels / g, kernel[0], kernel[1]];
        let weight = kaiming_uniform(
            &shape,
            FanMode::FanIn,
            Nonlinearity::LeakyRelu(5f64.sqrt()),
            options.dtype,
            seed,
        );
        let fan_in = out_channels / g * kernel[0] * kernel[1];
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
        ConvTranspose2d {
            weight: Param::new(weight),
            bias: bias.map(Param::new),
            options,
        }
    }
}

impl Module for ConvTranspose2d {
    /// # Panics
    /// As [`Tensor::conv_transpose2d`]: the input must be `[N, C_in, H, W]`.
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        let o = self.options;
        x.conv_transpose2d(
            &self.weight,
            self.bias.as_deref(),
            o.stride,
            o.padding,
            o.output_padding,
            o.groups,
            o.dilation,
        )
    }

    fn named_params(&self) -> Vec<(String, Param)> {
        let mut v = vec![("weight".to_string(), self.weight.clone())];
        v.extend(self.bias.iter().map(|b| ("bias".to_string(), b.clone())));
        v
    }
}
