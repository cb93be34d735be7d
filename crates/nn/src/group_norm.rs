//! `GroupNorm`: normalisation over groups of channels of each sample, and its functional
//! form [`group_norm`].

use tapegrad::{DType, Tensor};

use crate::{Module, Param};

/// Group normalisation of `x: [N, C, *]` with `num_groups` groups of channels and an
/// optional per-channel affine map: [`Tensor::group_norm`] (see it for the formula).
/// PyTorch: `torch.nn.functional.group_norm(x, num_groups, weight, bias, eps)`.
///
/// # Panics
/// As [`Tensor::group_norm`].
///
/// ```
/// use tapegrad::Tensor;
/// use tapegrad_nn::functional::group_norm;
/// // One sample, 4 channels in 2 groups: each group of two is normalised on its own.
/// let x = Tensor::from_vec(vec![1.0f64, 3.0, 10.0, 20.0], &[1, 4]);
/// let y = group_norm(&x, 2, None, None, 0.0).to_vec::<f64>();
/// assert_eq!(y, vec![-1.0, 1.0, -1.0, 1.0]);
/// ```
#[track_caller]
pub fn group_norm(
    x: &Tensor,
    num_groups: usize,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f64,
) -> Tensor {
    x.group_norm(num_groups, weight, bias, eps)
}

/// Group normalisation of `[N, C, *]` inputs (see [`group_norm`]): statistics per
/// sample and group of `C / num_groups` channels, then a per-channel affine map. The
/// same in training and evaluation (no running statistics). PyTorch's defaults:
/// `eps = 1e-5`, affine with `weight = 1`, `bias = 0`. Parameters: `weight [C]`,
/// `bias [C]`. PyTorch: `torch.nn.GroupNorm`.
///
/// ```
/// use tapegrad::{DType, Tensor};
/// use tapegrad_nn::{GroupNorm, Module};
/// let gn = GroupNorm::with_options(2, 4, 1e-5, true, DType::F64);
/// let y = gn.forward(&Tensor::randn(&[3, 4, 5], DType::F64, 0));
/// // Each sample's group has mean 0 (weight 1, bias 0 at initialisation).
/// let m = y.reshape(&[3, 2, -1]).mean_dim(&[-1], false).to_vec::<f64>();
/// assert!(m.iter().all(|v| v.abs() < 1e-12));
/// ```
#[derive(Clone, Debug)]
pub struct GroupNorm {
    /// Number of channel groups.
    pub num_groups: usize,
    /// Number of channels `C`.
    pub num_channels: usize,
    /// Added to the variance before the square root.
    pub eps: f64,
    /// `[C]`, if affine.
    pub weight: Option<Param>,
    /// `[C]`, if affine.
    pub bias: Option<Param>,
}

impl GroupNorm {
    /// An affine `f32` layer with `eps = 1e-5`.
    ///
    /// # Panics
    /// If `num_groups` is 0 or does not divide `num_channels`.
    #[track_caller]
    pub fn new(num_groups: usize, num_channels: usize) -> GroupNorm {
        GroupNorm::with_options(num_groups, num_channels, 1e-5, true, DType::F32)
    }

    /// A layer with the given `eps`, affine or not, of `dtype`.
    ///
    /// # Panics
    /// If `num_groups` is 0 or does not divide `num_channels`.
    #[track_caller]
    pub fn with_options(
        num_groups: usize,
        num_channels: usize,
        eps: f64,
        affine: bool,
        dtype: DType,
    ) -> GroupNorm {
        if num_groups == 0 || !num_channels.is_multiple_of(num_groups) {
            panic!(
                "GroupNorm: num_groups = {num_groups} must be positive and divide num_channels = {num_channels}"
            );
        }
        GroupNorm {
            num_groups,
            num_channels,
            eps,
            weight: affine.then(|| Param::new(Tensor::ones(&[num_channels], dtype))),
            bias: affine.then(|| Param::new(Tensor::zeros(&[num_channels], dtype))),
        }
    }
}

impl Module for GroupNorm {
    /// # Panics
    /// If the input is not `[N, C, *]` with `C = num_channels`, or dtypes differ.
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        if x.rank() < 2 || x.shape()[1] != self.num_channels {
            panic!(
                "GroupNorm({}, {}): the input must be [N, {}, *], got {:?}",
                self.num_groups,
                self.num_channels,
                self.num_channels,
                x.shape()
            );
        }
        group_norm(
            x,
            self.num_groups,
            self.weight.as_deref(),
            self.bias.as_deref(),
            self.eps,
        )
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
