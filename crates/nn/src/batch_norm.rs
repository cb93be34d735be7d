//! `BatchNorm1d` and `BatchNorm2d`: batch normalisation with running statistics.

use tapegrad::{no_grad, DType, Tensor};

use crate::{Module, Param};

/// The shared implementation: normalises over every axis but the channel axis 1.
#[derive(Clone, Debug)]
struct BatchNorm {
    name: &'static str,
    ranks: &'static [usize],
    eps: f64,
    momentum: f64,
    weight: Option<Param>,
    bias: Option<Param>,
    running_mean: Tensor,
    running_var: Tensor,
    training: bool,
}

impl BatchNorm {
    fn new(
        name: &'static str,
        ranks: &'static [usize],
        features: usize,
        dtype: DType,
    ) -> BatchNorm {
        BatchNorm {
            name,
            ranks,
            eps: 1e-5,
            momentum: 0.1,
            weight: Some(Param::new(Tensor::ones(&[features], dtype))),
            bias: Some(Param::new(Tensor::zeros(&[features], dtype))),
            running_mean: Tensor::zeros(&[features], dtype),
            running_var: Tensor::ones(&[features], dtype),
            training: true,
        }
    }

    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        let c = self.running_mean.shape()[0];
        if !self.ranks.contains(&x.rank()) || x.shape()[1] != c {
            panic!(
                "{}({c}): expects an input of rank {:?} with {c} channels on axis 1, got shape {:?}",
                self.name,
                self.ranks,
                x.shape()
            );
        }
        // Per-channel statistics broadcast as [1, C, 1, ...].
        let mut bshape = vec![1usize; x.rank()];
        bshape[1] = c;
        let axes: Vec<isize> = (0..x.rank() as isize).filter(|&a| a != 1).collect();
        let xhat = if self.training {
            let count = x.numel() / c.max(1);
            if count <= 1 {
                panic!(
                    "{}({c}): expected more than 1 value per channel when training, got input shape {:?}; \
                     a batch of one cannot be normalised by its own statistics (use eval mode, or a larger batch)",
                    self.name,
                    x.shape()
                );
            }
            let mean = x.mean_dim(&axes, true);
            let centred = x.sub(&mean);
            let var = centred.square().mean_dim(&axes, true);
            no_grad(|| {
                // Running variance uses the unbiased estimate, as PyTorch.
                let m = self.momentum;
                let unbiased = var
                    .mul_scalar(count as f64 / (count - 1) as f64)
                    .reshape_to(&[c]);
                let new_mean = self
                    .running_mean
                    .mul_scalar(1.0 - m)
                    .add(&mean.reshape_to(&[c]).mul_scalar(m));
                let new_var = self
                    .running_var
                    .mul_scalar(1.0 - m)
                    .add(&unbiased.mul_scalar(m));
                self.running_mean.assign_(&new_mean.detach());
                self.running_var.assign_(&new_var.detach());
            });
            centred.mul(&var.add_scalar(self.eps).rsqrt())
        } else {
            let mean = self.running_mean.detach().reshape_to(&bshape);
            let inv = self
                .running_var
                .detach()
                .add_scalar(self.eps)
                .rsqrt()
                .reshape_to(&bshape);
            x.sub(&mean).mul(&inv)
        };
        match (&self.weight, &self.bias) {
            (Some(w), Some(b)) => xhat.mul(&w.reshape_to(&bshape)).add(&b.reshape_to(&bshape)),
            _ => xhat,
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

    fn named_buffers(&self) -> Vec<(String, Tensor)> {
        vec![
            ("running_mean".to_string(), self.running_mean.clone()),
            ("running_var".to_string(), self.running_var.clone()),
        ]
    }
}

macro_rules! batch_norm_layer {
    ($(#[$doc:meta])* $name:ident, $ranks:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug)]
        pub struct $name(BatchNorm);

        impl $name {
            /// A layer over `features` channels, `f32`, with PyTorch's defaults: `eps =
            /// 1e-5`, `momentum = 0.1`, learnable scale (ones) and shift (zeros),
            /// running mean 0 and variance 1, in training mode.
            pub fn new(features: usize) -> $name {
                $name::with_dtype(features, DType::F32)
            }

            /// Like [`new`](Self::new) with parameters and buffers of `dtype`.
            pub fn with_dtype(features: usize, dtype: DType) -> $name {
                $name(BatchNorm::new(stringify!($name), $ranks, features, dtype))
            }

            /// Sets `eps`, added to the variance before the square root.
            pub fn eps(mut self, eps: f64) -> $name {
                self.0.eps = eps;
                self
            }

            /// Sets the momentum of the running statistics:
            /// `running = (1 - momentum) * running + momentum * batch`.
            pub fn momentum(mut self, momentum: f64) -> $name {
                self.0.momentum = momentum;
                self
            }

            /// Drops the learnable scale and shift (PyTorch's `affine=False`).
            pub fn without_affine(mut self) -> $name {
                self.0.weight = None;
                self.0.bias = None;
                self
            }

            /// The running mean (updated in place by training-mode forwards).
            pub fn running_mean(&self) -> &Tensor {
                &self.0.running_mean
            }

            /// The running (unbiased) variance.
            pub fn running_var(&self) -> &Tensor {
                &self.0.running_var
            }

            /// The scale `gamma`, if affine.
            pub fn weight(&self) -> Option<&Param> {
                self.0.weight.as_ref()
            }

            /// The shift `beta`, if affine.
            pub fn bias(&self) -> Option<&Param> {
                self.0.bias.as_ref()
            }

            /// Whether the layer is in training mode.
            pub fn is_training(&self) -> bool {
                self.0.training
            }
        }

        impl Module for $name {
            /// # Panics
            /// If the input has the wrong rank or channel count, or in training mode if
            /// there is only one value per channel (a batch of one).
            #[track_caller]
            fn forward(&self, x: &Tensor) -> Tensor {
                self.0.forward(x)
            }
            fn named_params(&self) -> Vec<(String, Param)> {
                self.0.named_params()
            }
            fn named_buffers(&self) -> Vec<(String, Tensor)> {
                self.0.named_buffers()
            }
            fn set_training(&mut self, training: bool) {
                self.0.training = training;
            }
        }
    };
}

batch_norm_layer!(
    /// Batch normalisation over `[N, C]` or `[N, C, L]` inputs (statistics over every axis
    /// but `C`):
    ///
    /// `y = (x - mean) / sqrt(var + eps) * gamma + beta`
    ///
    /// In training mode `mean` and the biased `var` come from the batch, and the running
    /// statistics are updated with `momentum` (the running variance with the unbiased
    /// batch variance, as PyTorch); in evaluation mode the running statistics are used.
    /// Parameters `weight` (gamma), `bias` (beta); buffers `running_mean`, `running_var`.
    /// PyTorch: `torch.nn.BatchNorm1d`.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// use tapegrad_nn::{BatchNorm1d, Module};
    /// let bn = BatchNorm1d::new(1);
    /// let x = Tensor::from_vec(vec![1.0f32, 3.0], &[2, 1]);
    /// let y = bn.forward(&x).to_vec::<f32>();
    /// assert!((y[0] + 1.0).abs() < 1e-4 && (y[1] - 1.0).abs() < 1e-4);
    /// // running mean 0.9 * 0 + 0.1 * 2; running var 0.9 * 1 + 0.1 * 2 (unbiased).
    /// assert!((bn.running_mean().item() - 0.2).abs() < 1e-6);
    /// assert!((bn.running_var().item() - 1.1).abs() < 1e-6);
    /// ```
    BatchNorm1d,
    &[2, 3]
);

batch_norm_layer!(
    /// Batch normalisation over `[N, C, H, W]` inputs (statistics per channel over
    /// `N, H, W`): `y = (x - mean) / sqrt(var + eps) * gamma + beta`, training and
    /// evaluation behaviour as [`BatchNorm1d`]. PyTorch: `torch.nn.BatchNorm2d`.
    ///
    /// ```
    /// use tapegrad::{DType, Tensor};
    /// use tapegrad_nn::{BatchNorm2d, Module};
    /// let mut bn = BatchNorm2d::new(3);
    /// let x = Tensor::randn(&[4, 3, 5, 5], DType::F32, 0);
    /// let y = bn.forward(&x);
    /// let m = y.mean_dim(&[0, 2, 3], false).to_vec::<f32>();
    /// assert!(m.iter().all(|v| v.abs() < 1e-5));
    /// bn.eval();
    /// // Fresh running statistics are mean 0.9 * 0 + 0.1 * batch mean, so eval differs.
    /// assert_eq!(bn.forward(&x).shape(), &[4, 3, 5, 5]);
    /// ```
    BatchNorm2d,
    &[4]
);
