//! One parameter update: the training step shared by [`Trainer`](crate::Trainer), the
//! `tapegrad batch-sweep` command and the benchmark workloads.

use tapegrad::{Grads, Tensor};
use tapegrad_nn::Param;
use tapegrad_optim::{clip_grad_norm, grad_norm, Optimizer};

/// The gradients of one parameter update, gathered over one or more micro-batches.
///
/// The mean loss over all `N` samples of the update is `sum_i (n_i / N) mean_i`, so each
/// micro-batch's gradient is weighted by its share of the samples: accumulating micro-
/// batches of any sizes gives exactly the gradient of the large batch.
///
/// ```
/// use tapegrad::{DType, Tensor};
/// use tapegrad_nn::Param;
/// use tapegrad_optim::{Sgd, SgdConfig};
/// use tapegrad_train::Update;
///
/// let w = Param::new(Tensor::ones(&[2], DType::F64));
/// let mut sgd = Sgd::new([w.clone()], SgdConfig { lr: 0.5, ..SgdConfig::default() });
/// let mut update = Update::new();
/// // Two micro-batches of 1 and 3 samples, each loss the mean over its samples.
/// for (x, n) in [(1.0, 1), (3.0, 3)] {
///     let loss = (&*w * x).sum();
///     assert!(update.add(&loss, n).unwrap().is_finite());
/// }
/// update.apply(&[w.clone()], &mut sgd, None).unwrap();
/// // gradient (1/4) * 1 + (3/4) * 3 = 2.5 per weight; 1 - 0.5 * 2.5 = -0.25
/// assert_eq!(w.to_vec::<f64>(), vec![-0.25, -0.25]);
/// ```
#[derive(Default)]
pub struct Update {
    parts: Vec<(Grads, usize)>,
    samples: usize,
    micro_norms: bool,
}

impl Update {
    /// An update with no micro-batch yet.
    pub fn new() -> Self {
        Update::default()
    }

    /// Backpropagates `loss` (a scalar: the mean loss over `samples` samples) and keeps its
    /// gradients. Returns the loss value, or `Err(value)` if it is NaN or infinite, in
    /// which case nothing is kept.
    pub fn add(&mut self, loss: &Tensor, samples: usize) -> Result<f64, f64> {
        let value = loss.item();
        if !value.is_finite() {
            return Err(value);
        }
        self.parts.push((loss.backward(), samples));
        self.samples += samples;
        Ok(value)
    }

    /// Keeps gradients combined elsewhere: the gradient of the mean loss over `samples`
    /// samples (data-parallel training sums the ranks' shares before applying).
    pub(crate) fn add_grads(&mut self, grads: Grads, samples: usize) {
        self.parts.push((grads, samples));
        self.samples += samples;
    }

    /// Also measure each micro-batch's gradient norm when applying
    /// ([`Applied::micro_grad_sq_norms`]), for the gradient noise scale.
    pub fn with_micro_norms(mut self) -> Self {
        self.micro_norms = true;
        self
    }

    /// Micro-batches gathered so far.
    pub fn micro_batches(&self) -> usize {
        self.parts.len()
    }

    /// Samples gathered so far.
    pub fn samples(&self) -> usize {
        self.samples
    }

    /// Combines the micro-batches' gradients, clips their global L2 norm to `clip` if
    /// given, and takes one optimiser step at the optimiser's current learning rate.
    /// Returns the combined gradients and their global L2 norm before clipping, or
    /// `Err(norm)` if that norm is NaN or infinite, in which case the parameters are not
    /// changed.
    ///
    /// # Panics
    /// If no micro-batch was added.
    #[track_caller]
    pub fn apply(
        self,
        params: &[Param],
        optimizer: &mut dyn Optimizer,
        clip: Option<f64>,
    ) -> Result<Applied, f64> {
        assert!(
            !self.parts.is_empty(),
            "Update::apply: no micro-batch was added"
        );
        let samples = self.samples;
        let mut total: Option<Grads> = None;
        let mut micro_grad_sq_norms = Vec::new();
        for (mut g, n) in self.parts {
            if self.micro_norms {
                micro_grad_sq_norms
                    .push(grad_norm(&g, params.iter().map(|p| p.tensor()), 2.0).powi(2));
            }
            if samples != n {
                g.scale(n as f64 / samples as f64);
            }
            match total.as_mut() {
                None => total = Some(g),
                Some(t) => t.add(&g),
            }
        }
        let mut grads = total.expect("at least one micro-batch");
        let tensors = params.iter().map(|p| p.tensor());
        let norm = match clip {
            Some(max_norm) => clip_grad_norm(&mut grads, tensors, max_norm, 2.0, false)
                .expect("no error without error_if_nonfinite"),
            None => grad_norm(&grads, tensors, 2.0),
        };
        if !norm.is_finite() {
            return Err(norm);
        }
        optimizer.step(&grads);
        Ok(Applied {
            grad_norm: norm,
            grads,
            micro_grad_sq_norms,
        })
    }
}

/// What [`Update::apply`] did: the gradients it stepped with (after clipping) and their
/// global L2 norm before clipping.
pub struct Applied {
    /// The global L2 norm of the combined gradients, before clipping.
    pub grad_norm: f64,
    /// The combined gradients (clipped, if clipping was asked for).
    pub grads: Grads,
    /// Each micro-batch's squared gradient norm, if [`Update::with_micro_norms`] asked.
    pub micro_grad_sq_norms: Vec<f64>,
}
