//! `Linear`: a fully connected layer `y = x W^T + b`.

use tapegrad::{DType, Tensor};

use crate::init::{kaiming_uniform, uniform, FanMode, Nonlinearity};
use crate::{Module, Param};

/// A fully connected layer: `y = x @ W^T + b` with `W: [out, in]` and `b: [out]`.
///
/// Shapes: input `[..., in]`, output `[..., out]`. Initialised as PyTorch's
/// `nn.Linear`: `W` and `b` uniform in `[-1/sqrt(in), 1/sqrt(in))` (Kaiming uniform with
/// `a = sqrt(5)`). Parameters: `weight`, `bias`. PyTorch: `torch.nn.Linear`.
///
/// ```
/// use tapegrad::Tensor;
/// use tapegrad_nn::{Linear, Module};
/// let layer = Linear::new(3, 2, 0);
/// assert_eq!(layer.num_params(), 3 * 2 + 2);
/// let bound = 1.0 / 3f32.sqrt();
/// assert!(layer.weight.to_vec::<f32>().iter().all(|w| w.abs() <= bound));
///
/// let fixed = Linear::from_params(
///     Tensor::from_vec(vec![1.0f32, 0.0, 0.0, 0.0, 2.0, 0.0], &[2, 3]),
///     Some(Tensor::from_vec(vec![0.5f32, -0.5], &[2])),
/// );
/// let y = fixed.forward(&Tensor::from_vec(vec![1.0f32, 2.0, 3.0], &[1, 3]));
/// assert_eq!(y.shape(), &[1, 2]);
/// assert_eq!(y.to_vec::<f32>(), vec![1.5, 3.5]);
/// ```
#[derive(Clone, Debug)]
pub struct Linear {
    /// `[out, in]`.
    pub weight: Param,
    /// `[out]`, if the layer has a bias.
    pub bias: Option<Param>,
}

impl Linear {
    /// An `f32` layer with bias, initialised as PyTorch's from `seed`.
    pub fn new(in_features: usize, out_features: usize, seed: u64) -> Linear {
        Linear::with_options(in_features, out_features, true, DType::F32, seed)
    }

    /// A layer with or without bias, of the given dtype, initialised as PyTorch's.
    pub fn with_options(
        in_features: usize,
        out_features: usize,
        bias: bool,
        dtype: DType,
        seed: u64,
    ) -> Linear {
        let shape = [out_features, in_features];
        let weight = kaiming_uniform(
            &shape,
            FanMode::FanIn,
            Nonlinearity::LeakyRelu(5f64.sqrt()),
            dtype,
            seed,
        );
        let bias = bias.then(|| {
            let bound = if in_features > 0 {
                1.0 / (in_features as f64).sqrt()
            } else {
                0.0
            };
            if bound > 0.0 {
                uniform(
                    &[out_features],
                    -bound,
                    bound,
                    dtype,
                    seed.wrapping_add(0x9E37_79B9),
                )
            } else {
                Tensor::zeros(&[out_features], dtype)
            }
        });
        Linear {
            weight: Param::new(weight),
            bias: bias.map(Param::new),
        }
    }

    /// A layer with the given weight `[out, in]` and optional bias `[out]`.
    ///
    /// # Panics
    /// If the weight is not rank 2 or the bias is not `[out]` of the same dtype.
    #[track_caller]
    pub fn from_params(weight: Tensor, bias: Option<Tensor>) -> Linear {
        assert!(
            weight.rank() == 2,
            "Linear: the weight must be [out, in], got {:?}",
            weight.shape()
        );
        if let Some(b) = &bias {
            assert!(
                b.shape() == [weight.shape()[0]] && b.dtype() == weight.dtype(),
                "Linear: the bias must be [{}] {}, got {:?} {}",
                weight.shape()[0],
                weight.dtype(),
                b.shape(),
                b.dtype()
            );
        }
        Linear {
            weight: Param::new(weight),
            bias: bias.map(Param::new),
        }
    }
}

impl Module for Linear {
    /// # Panics
    /// If the last dimension of `x` is not `in` or the dtype differs.
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        let (out, inp) = (self.weight.shape()[0], self.weight.shape()[1]);
        if x.rank() == 0 || x.shape()[x.rank() - 1] != inp {
            panic!(
                "Linear({inp} -> {out}): the input's last dimension must be {inp}, got shape {:?}",
                x.shape()
            );
        }
        let y = x.matmul(&self.weight.t());
        match &self.bias {
            Some(b) => y.add(b),
            None => y,
        }
    }

    fn named_params(&self) -> Vec<(String, Param)> {
        let mut v = vec![("weight".to_string(), self.weight.clone())];
        v.extend(self.bias.iter().map(|b| ("bias".to_string(), b.clone())));
        v
    }
}
