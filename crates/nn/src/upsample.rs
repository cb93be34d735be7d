//! `Upsample`: nearest-neighbour resizing of the spatial axes of `[N, C, *]` tensors.

use tapegrad::Tensor;

use crate::{Module, Param};

/// The output size of an [`Upsample`]: fixed, or a factor of the input size.
#[derive(Clone, Debug, PartialEq)]
pub enum UpsampleTarget {
    /// The output's spatial sizes (one per spatial axis, or one for all).
    Size(Vec<usize>),
    /// Factors of the input's spatial sizes (one per spatial axis, or one for all); the
    /// output size is `floor(input * factor)`.
    ScaleFactor(Vec<f64>),
}

/// Nearest-neighbour up- (or down-) sampling of the spatial axes of `[N, C, L]`,
/// `[N, C, H, W]` or `[N, C, D, H, W]` inputs, as PyTorch's `mode = "nearest"`: output
/// position `i` of an axis reads input position `min(floor(i * scale), in - 1)` with
/// `scale = 1 / scale_factor` (or `in / out` for a fixed size), computed in `f32` as
/// PyTorch does. Gradient: each input position gets the sum of the output gradients that
/// read it (an `index_select` per axis). No parameters. PyTorch: `torch.nn.Upsample`
/// (nearest mode only).
///
/// ```
/// use tapegrad::Tensor;
/// use tapegrad_nn::{Module, Upsample};
/// let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[1, 1, 2, 2]);
/// let y = Upsample::scale_factor(2.0).forward(&x);
/// assert_eq!(y.shape(), &[1, 1, 4, 4]);
/// assert_eq!(&y.to_vec::<f32>()[..8], &[1.0, 1.0, 2.0, 2.0, 1.0, 1.0, 2.0, 2.0]);
/// let z = Upsample::size(&[3]).forward(&Tensor::from_vec(vec![5.0f32, 6.0], &[1, 1, 2]));
/// assert_eq!(z.to_vec::<f32>(), vec![5.0, 5.0, 6.0]);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Upsample {
    /// The output size or scale factor.
    pub target: UpsampleTarget,
}

impl Upsample {
    /// Scales every spatial axis by `factor`.
    pub fn scale_factor(factor: f64) -> Upsample {
        Upsample {
            target: UpsampleTarget::ScaleFactor(vec![factor]),
        }
    }

    /// Resizes the spatial axes to `size` (one size for all axes, or one per axis).
    pub fn size(size: &[usize]) -> Upsample {
        Upsample {
            target: UpsampleTarget::Size(size.to_vec()),
        }
    }
}

/// The source index of output position `dst` (PyTorch's `nearest_idx`, in `f32`).
fn nearest_source(dst: usize, input: usize, output: usize, scale_factor: Option<f64>) -> usize {
    if output == input {
        dst
    } else if output == 2 * input {
        dst / 2
    } else {
        let scale = match scale_factor {
            Some(f) if f > 0.0 => (1.0 / f) as f32,
            _ => input as f32 / output as f32,
        };
        ((dst as f32 * scale).floor() as usize).min(input - 1)
    }
}

impl Module for Upsample {
    /// # Panics
    /// If the input is not rank 3 to 5, an axis is empty, the target does not give one
    /// value or one per spatial axis, a factor is not positive and finite, or an output
    /// size would be 0.
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        let rank = x.rank();
        if !(3..=5).contains(&rank) || x.shape().contains(&0) {
            panic!(
                "Upsample: the input must be [N, C, L], [N, C, H, W] or [N, C, D, H, W] and non-empty, got {:?}",
                x.shape()
            );
        }
        let spatial = rank - 2;
        let count = match &self.target {
            UpsampleTarget::Size(s) => s.len(),
            UpsampleTarget::ScaleFactor(f) => f.len(),
        };
        if count != 1 && count != spatial {
            panic!(
                "Upsample: {:?} must give one value or one per spatial axis ({spatial} for input {:?})",
                self.target,
                x.shape()
            );
        }
        let pick = |i: usize| if count == 1 { 0 } else { i };
        let mut y = x.clone();
        for axis in 0..spatial {
            let input = x.shape()[axis + 2];
            let (output, factor) = match &self.target {
                UpsampleTarget::Size(s) => (s[pick(axis)], None),
                UpsampleTarget::ScaleFactor(f) => {
                    let f = f[pick(axis)];
                    if !(f > 0.0 && f.is_finite()) {
                        panic!("Upsample: the scale factor must be positive and finite, got {f}");
                    }
                    ((input as f64 * f).floor() as usize, Some(f))
                }
            };
            if output == 0 {
                panic!(
                    "Upsample: {:?} gives an empty axis {} for input {:?}",
                    self.target,
                    axis + 2,
                    x.shape()
                );
            }
            if output == input {
                continue;
            }
            let index: Vec<i64> = (0..output)
                .map(|i| nearest_source(i, input, output, factor) as i64)
                .collect();
            y = y.index_select((axis + 2) as isize, &Tensor::from_vec(index, &[output]));
        }
        y
    }

    fn named_params(&self) -> Vec<(String, Param)> {
        Vec::new()
    }
}
