//! `Upsample`: resizing of the spatial axes of `[N, C, *]` tensors (nearest, linear or
//! bilinear), a layer around [`Tensor::interpolate`].

use tapegrad::{InterpolateMode, Tensor};

use crate::{Module, Param};

/// The output size of an [`Upsample`]: fixed, or a factor of the input size.
pub use tapegrad::ResizeTarget as UpsampleTarget;

/// Up- (or down-) sampling of the spatial axes of `[N, C, L]`, `[N, C, H, W]` or
/// `[N, C, D, H, W]` inputs: [`Tensor::interpolate`] with the layer's target, mode and
/// `align_corners`. In the default `Nearest` mode output position `i` of an axis reads
/// input position `min(floor(i * scale), in - 1)` with `scale = 1 / scale_factor` (or
/// `in / out` for a fixed size), computed in `f32` as PyTorch does; `Linear` and
/// `Bilinear` interpolate. Gradient: each input position gets the output gradients that
/// read it, with the same weights. No parameters. PyTorch: `torch.nn.Upsample(size,
/// scale_factor, mode, align_corners)`.
///
/// ```
/// use tapegrad::{InterpolateMode, Tensor};
/// use tapegrad_nn::{Module, Upsample};
/// let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[1, 1, 2, 2]);
/// let y = Upsample::scale_factor(2.0).forward(&x);
/// assert_eq!(y.shape(), &[1, 1, 4, 4]);
/// assert_eq!(&y.to_vec::<f32>()[..8], &[1.0, 1.0, 2.0, 2.0, 1.0, 1.0, 2.0, 2.0]);
/// let z = Upsample::size(&[3]).forward(&Tensor::from_vec(vec![5.0f32, 6.0], &[1, 1, 2]));
/// assert_eq!(z.to_vec::<f32>(), vec![5.0, 5.0, 6.0]);
/// let b = Upsample::size(&[3, 3]).with_mode(InterpolateMode::Bilinear, true).forward(&x);
/// assert_eq!(b.to_vec::<f32>()[..3], [1.0, 1.5, 2.0]);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Upsample {
    /// The output size or scale factor.
    pub target: UpsampleTarget,
    /// Nearest (the default), linear (`[N, C, L]`) or bilinear (`[N, C, H, W]`).
    pub mode: InterpolateMode,
    /// For the linear modes: whether the corner pixels of input and output are aligned.
    pub align_corners: bool,
}

impl Upsample {
    /// Scales every spatial axis by `factor`.
    pub fn scale_factor(factor: f64) -> Upsample {
        Upsample {
            target: UpsampleTarget::ScaleFactor(vec![factor]),
            mode: InterpolateMode::Nearest,
            align_corners: false,
        }
    }

    /// Resizes the spatial axes to `size` (one size for all axes, or one per axis).
    pub fn size(size: &[usize]) -> Upsample {
        Upsample {
            target: UpsampleTarget::Size(size.to_vec()),
            mode: InterpolateMode::Nearest,
            align_corners: false,
        }
    }

    /// The same target in `mode`, with `align_corners` (only for the linear modes).
    pub fn with_mode(self, mode: InterpolateMode, align_corners: bool) -> Upsample {
        Upsample {
            mode,
            align_corners,
            ..self
        }
    }
}

impl Module for Upsample {
    /// # Panics
    /// As [`Tensor::interpolate`]: if the input's rank does not suit the mode, an axis is
    /// empty, the target does not give one value or one per spatial axis, a factor is not
    /// positive and finite, or an output size would be 0.
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        x.interpolate(&self.target, self.mode, self.align_corners)
    }

    fn named_params(&self) -> Vec<(String, Param)> {
        Vec::new()
    }
}
