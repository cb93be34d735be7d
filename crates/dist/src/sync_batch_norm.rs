//! `SyncBatchNorm`: batch normalisation whose statistics come from the global batch, the
//! union of every rank's shard.

use tapegrad::{no_grad, DType, Tensor};
use tapegrad_nn::{Module, Param};

use crate::collective::all_reduce_sum;
use crate::comm::Comm;

/// Batch normalisation over the global batch (PyTorch's `SyncBatchNorm`): in training
/// mode the per-channel mean and biased variance are taken over every rank's samples,
/// by two all-reduces (the sums of `x`, then of `(x - mean)^2`, with the sample counts),
/// and the gradient flows through those sums, so it is the gradient of the global
/// batch's normalisation. Inputs `[N, C]`, `[N, C, L]` or `[N, C, H, W]`; parameters
/// `weight` (gamma), `bias` (beta); buffers `running_mean`, `running_var` (updated with
/// the unbiased global variance, as PyTorch); evaluation mode uses the running statistics
/// and communicates nothing. `eps = 1e-5`, `momentum = 0.1`.
///
/// Every rank must call `forward` in training mode together, with at least one sample
/// (a rank with an empty shard still has to take part).
///
/// ```no_run
/// use tapegrad::{DType, Tensor};
/// use tapegrad_dist::{Dist, SyncBatchNorm};
/// use tapegrad_nn::Module;
/// let dist = Dist::init().unwrap();
/// let bn = SyncBatchNorm::new(3, DType::F64, dist.world());
/// let x = Tensor::randn(&[4, 3], DType::F64, dist.world().rank() as u64);
/// let y = bn.forward(&x); // normalised with the statistics of all ranks' rows
/// assert_eq!(y.shape(), &[4, 3]);
/// ```
#[derive(Clone)]
pub struct SyncBatchNorm {
    comm: Comm,
    eps: f64,
    momentum: f64,
    weight: Param,
    bias: Param,
    running_mean: Tensor,
    running_var: Tensor,
    training: bool,
}

impl SyncBatchNorm {
    /// A layer over `features` channels of `dtype`, ranks `comm`, in training mode.
    pub fn new(features: usize, dtype: DType, comm: &Comm) -> SyncBatchNorm {
        SyncBatchNorm {
            comm: comm.clone(),
            eps: 1e-5,
            momentum: 0.1,
            weight: Param::new(Tensor::ones(&[features], dtype)),
            bias: Param::new(Tensor::zeros(&[features], dtype)),
            running_mean: Tensor::zeros(&[features], dtype),
            running_var: Tensor::ones(&[features], dtype),
            training: true,
        }
    }

    /// The running mean.
    pub fn running_mean(&self) -> &Tensor {
        &self.running_mean
    }

    /// The running (unbiased) variance.
    pub fn running_var(&self) -> &Tensor {
        &self.running_var
    }

    /// The scale `gamma`.
    pub fn weight(&self) -> &Param {
        &self.weight
    }

    /// The shift `beta`.
    pub fn bias(&self) -> &Param {
        &self.bias
    }
}

impl Module for SyncBatchNorm {
    /// # Panics
    /// If the input has the wrong rank or channel count, if the global batch has one
    /// value per channel or fewer, or if communication fails.
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        let c = self.running_mean.shape()[0];
        if !(2..=4).contains(&x.rank()) || x.shape()[1] != c {
            panic!(
                "SyncBatchNorm({c}): expects an input [N, {c}, ...] of rank 2 to 4, got shape {:?}",
                x.shape()
            );
        }
        let mut bshape = vec![1usize; x.rank()];
        bshape[1] = c;
        let axes: Vec<isize> = (0..x.rank() as isize).filter(|&a| a != 1).collect();
        let xhat = if self.training {
            let mut count = [(x.numel() / c.max(1)) as f64];
            if let Err(e) = self
                .comm
                .all_reduce_sum(&mut count, "SyncBatchNorm: sample count")
            {
                panic!("{e}");
            }
            let count = count[0];
            if count <= 1.0 {
                panic!(
                    "SyncBatchNorm({c}): the global batch has {count} value(s) per channel; training needs more than 1"
                );
            }
            let mean = all_reduce_sum(&x.sum_dim(&axes, true), &self.comm).div_scalar(count);
            let centred = x.sub(&mean);
            let var = all_reduce_sum(&centred.square().sum_dim(&axes, true), &self.comm)
                .div_scalar(count);
            no_grad(|| {
                let m = self.momentum;
                let unbiased = var.mul_scalar(count / (count - 1.0)).reshape_to(&[c]);
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
        xhat.mul(&self.weight.reshape_to(&bshape))
            .add(&self.bias.reshape_to(&bshape))
    }

    fn named_params(&self) -> Vec<(String, Param)> {
        vec![
            ("weight".to_string(), self.weight.clone()),
            ("bias".to_string(), self.bias.clone()),
        ]
    }

    fn named_buffers(&self) -> Vec<(String, Tensor)> {
        vec![
            ("running_mean".to_string(), self.running_mean.clone()),
            ("running_var".to_string(), self.running_var.clone()),
        ]
    }

    fn set_training(&mut self, training: bool) {
        self.training = training;
    }
}
