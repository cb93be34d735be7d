//! `RmsNorm`: root-mean-square normalisation over the trailing axes, and its functional
//! form [`rms_norm`].

use tapegrad::{DType, Tensor};

use crate::{Module, Param};

/// The epsilon PyTorch uses when none is given: the machine epsilon of the dtype.
fn default_eps(dtype: DType) -> f64 {
    dtype.epsilon()
}

/// RMS normalisation over the last `normalized_shape.len()` axes:
///
/// `y = x / sqrt(mean(x^2) + eps) * weight`
///
/// with the mean over those axes, `weight` (optional) of shape `normalized_shape`, and
/// `eps` the machine epsilon of `x`'s dtype when `None` (as PyTorch). PyTorch:
/// `torch.nn.functional.rms_norm(x, normalized_shape, weight, eps)`.
///
/// # Panics
/// If the trailing shape of `x` is not `normalized_shape`, or `weight` is not
/// `normalized_shape` of `x`'s dtype.
///
/// ```
/// use tapegrad::Tensor;
/// use tapegrad_nn::functional::rms_norm;
/// let x = Tensor::from_vec(vec![3.0f64, -4.0, 0.0, 0.0], &[2, 2]);
/// let y = rms_norm(&x, &[2], None, Some(0.0)).to_vec::<f64>();
/// let rms = 12.5f64.sqrt();
/// assert_eq!(y[..2], [3.0 / rms, -4.0 / rms]);
/// ```
#[track_caller]
pub fn rms_norm(
    x: &Tensor,
    normalized_shape: &[usize],
    weight: Option<&Tensor>,
    eps: Option<f64>,
) -> Tensor {
    let k = normalized_shape.len();
    if k == 0 || x.rank() < k || x.shape()[x.rank() - k..] != *normalized_shape {
        panic!(
            "rms_norm: the input's trailing shape must be {normalized_shape:?} (not empty), got {:?}",
            x.shape()
        );
    }
    if let Some(w) = weight {
        if w.shape() != normalized_shape || w.dtype() != x.dtype() {
            panic!(
                "rms_norm: weight must be {normalized_shape:?} {}, got {:?} {}",
                x.dtype(),
                w.shape(),
                w.dtype()
            );
        }
    }
    let eps = eps.unwrap_or_else(|| default_eps(x.dtype()));
    let axes: Vec<isize> = (1..=k as isize).map(|i| -i).collect();
    let y = x.mul(&x.square().mean_dim(&axes, true).add_scalar(eps).rsqrt());
    match weight {
        Some(w) => y.mul(w),
        None => y,
    }
}

/// RMS normalisation over the trailing `normalized_shape` (see [`rms_norm`]):
/// `y = x / sqrt(mean(x^2) + eps) * weight`. PyTorch's defaults: `eps = None` (the
/// machine epsilon of the input's dtype), `elementwise_affine = true` with
/// `weight = 1`. Parameter: `weight`. PyTorch: `torch.nn.RMSNorm`.
///
/// ```
/// use tapegrad::{DType, Tensor};
/// use tapegrad_nn::{Module, RmsNorm};
/// let norm = RmsNorm::with_options(&[4], None, true, DType::F64);
/// let y = norm.forward(&Tensor::randn(&[3, 4], DType::F64, 0));
/// // Every row has root mean square 1.
/// let ms = y.square().mean_dim(&[-1], false).to_vec::<f64>();
/// assert!(ms.iter().all(|m| (m - 1.0).abs() < 1e-12));
/// ```
#[derive(Clone, Debug)]
pub struct RmsNorm {
    /// The trailing shape normalised over.
    pub normalized_shape: Vec<usize>,
    /// Added to the mean square before the square root; `None` is the machine epsilon
    /// of the input's dtype.
    pub eps: Option<f64>,
    /// The scale, if `elementwise_affine`.
    pub weight: Option<Param>,
}

impl RmsNorm {
    /// An affine `f32` layer over `normalized_shape` with the default `eps`.
    pub fn new(normalized_shape: &[usize]) -> RmsNorm {
        RmsNorm::with_options(normalized_shape, None, true, DType::F32)
    }

    /// A layer with the given `eps`, with or without a scale, of `dtype`.
    pub fn with_options(
        normalized_shape: &[usize],
        eps: Option<f64>,
        elementwise_affine: bool,
        dtype: DType,
    ) -> RmsNorm {
        RmsNorm {
            normalized_shape: normalized_shape.to_vec(),
            eps,
            weight: elementwise_affine.then(|| Param::new(Tensor::ones(normalized_shape, dtype))),
        }
    }
}

impl Module for RmsNorm {
    /// # Panics
    /// As [`rms_norm`].
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        rms_norm(x, &self.normalized_shape, self.weight.as_deref(), self.eps)
    }

    fn named_params(&self) -> Vec<(String, Param)> {
        self.weight
            .iter()
            .map(|w| ("weight".to_string(), w.clone()))
            .collect()
    }
}
