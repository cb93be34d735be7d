//! `LayerNorm`: normalisation over the trailing axes of each sample.

use tapegrad::{DType, Tensor};

use crate::{Module, Param};

/// Layer normalisation over the last `normalized_shape.len()` axes:
///
/// `y = (x - mean) / sqrt(var + eps) * gamma + beta`
///
/// with the (biased) mean and variance of each sample over those axes, and `gamma`,
/// `beta` of shape `normalized_shape`. The same in training and evaluation. PyTorch's
/// defaults: `eps = 1e-5`, `gamma = 1`, `beta = 0`. Parameters: `weight`, `bias`.
/// PyTorch: `torch.nn.LayerNorm`.
///
/// ```
/// use tapegrad::{DType, Tensor};
/// use tapegrad_nn::{LayerNorm, Module};
/// let ln = LayerNorm::with_options(&[4], 1e-5, true, DType::F64);
/// let y = ln.forward(&Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0], &[1, 4]));
/// let v = y.to_vec::<f64>();
/// let s = (1.25f64 + 1e-5).sqrt();
/// assert!((v[0] + 1.5 / s).abs() < 1e-12 && (v[3] - 1.5 / s).abs() < 1e-12);
/// ```
#[derive(Clone, Debug)]
pub struct LayerNorm {
    /// The trailing shape normalised over.
    pub normalized_shape: Vec<usize>,
    /// Added to the variance before the square root.
    pub eps: f64,
    /// `gamma`, if affine.
    pub weight: Option<Param>,
    /// `beta`, if affine.
    pub bias: Option<Param>,
}

impl LayerNorm {
    /// An affine `f32` layer over `normalized_shape` with `eps = 1e-5`.
    pub fn new(normalized_shape: &[usize]) -> LayerNorm {
        LayerNorm::with_options(normalized_shape, 1e-5, true, DType::F32)
    }

    /// A layer with the given `eps`, affine or not, of `dtype`.
    pub fn with_options(
        normalized_shape: &[usize],
        eps: f64,
        affine: bool,
        dtype: DType,
    ) -> LayerNorm {
        LayerNorm {
            normalized_shape: normalized_shape.to_vec(),
            eps,
            weight: affine.then(|| Param::new(Tensor::ones(normalized_shape, dtype))),
            bias: affine.then(|| Param::new(Tensor::zeros(normalized_shape, dtype))),
        }
    }

    /// The layer with a weight but no bias (PyTorch's `LayerNorm(..., bias=False)`).
    ///
    /// ```
    /// use tapegrad_nn::{LayerNorm, Module};
    /// let ln = LayerNorm::new(&[4]).without_bias();
    /// assert_eq!(ln.named_params().len(), 1);
    /// ```
    pub fn without_bias(mut self) -> LayerNorm {
        self.bias = None;
        self
    }
}

impl Module for LayerNorm {
    /// # Panics
    /// If the input's trailing shape is not `normalized_shape`.
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        let k = self.normalized_shape.len();
        if x.rank() < k || x.shape()[x.rank() - k..] != self.normalized_shape[..] {
            panic!(
                "LayerNorm({:?}): the input's trailing shape must be {:?}, got shape {:?}",
                self.normalized_shape,
                self.normalized_shape,
                x.shape()
            );
        }
        let axes: Vec<isize> = (1..=k as isize).map(|i| -i).collect();
        let mean = x.mean_dim(&axes, true);
        let centred = x.sub(&mean);
        let var = centred.square().mean_dim(&axes, true);
        let xhat = centred.mul(&var.add_scalar(self.eps).rsqrt());
        match (&self.weight, &self.bias) {
            (Some(w), Some(b)) => xhat.mul(w).add(b),
            (Some(w), None) => xhat.mul(w),
            (None, Some(b)) => xhat.add(b),
            (None, None) => xhat,
        }
    }

    fn named_params(&self) -> Vec<(String, Param)> {
        let mut v = Vec::new();
        v.extend(
            self.weight
                .iter()
                .map(|w| ("weight".to_string(), w.clone())),
        );
        v.extend(self.bias.iter().map(|b| ("bias".to_string(), b.clone())));
        v
    }
}
