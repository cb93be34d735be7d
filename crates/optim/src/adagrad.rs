//! `AdaGrad`: per-coordinate learning rates from the sum of squared gradients, as
//! `torch.optim.Adagrad`.

use serde::{Deserialize, Serialize};
use tapegrad::{Element, Grads, Tensor};
use tapegrad_nn::Param;

use crate::adam::step_count;
use crate::error::OptimError;
use crate::group::ensure;
use crate::group::{
    delegate_to_core, hyper_accessors, optimizer_inherent, Core, Hyper, ParamState,
};
use crate::kernel::{with_dtype, zip3};
use crate::optimizer::Optimizer;
use crate::state::{Buf, ParamRecord};

/// Hyper-parameters of [`AdaGrad`] (per parameter group), with PyTorch's defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdaGradConfig {
    /// Learning rate γ (default 1e-2).
    pub lr: f64,
    /// Learning-rate decay η (default 0).
    pub lr_decay: f64,
    /// L2 penalty λ (default 0).
    pub weight_decay: f64,
    /// Initial value τ of the sum of squares (default 0).
    pub initial_accumulator_value: f64,
    /// ε added to the denominator (default 1e-10).
    pub eps: f64,
    /// Maximise the objective (default false).
    pub maximize: bool,
}

impl Default for AdaGradConfig {
    fn default() -> Self {
        AdaGradConfig {
            lr: 1e-2,
            lr_decay: 0.0,
            weight_decay: 0.0,
            initial_accumulator_value: 0.0,
            eps: 1e-10,
            maximize: false,
        }
    }
}

impl Hyper for AdaGradConfig {
    hyper_accessors!();
    #[track_caller]
    fn check(&self) -> Result<(), String> {
        ensure!(self.lr >= 0.0, "AdaGrad: invalid learning rate {}", self.lr);
        ensure!(
            self.lr_decay >= 0.0,
            "AdaGrad: invalid lr_decay {}",
            self.lr_decay
        );
        ensure!(
            self.weight_decay >= 0.0,
            "AdaGrad: invalid weight_decay {}",
            self.weight_decay
        );
        ensure!(
            self.initial_accumulator_value >= 0.0,
            "AdaGrad: invalid initial_accumulator_value {}",
            self.initial_accumulator_value
        );
        ensure!(self.eps >= 0.0, "AdaGrad: invalid epsilon {}", self.eps);
        Ok(())
    }
}

/// AdaGrad, as `torch.optim.Adagrad` (Duchi et al., 2011).
///
/// With gradient `g_t` (negated when `maximize`), `state_sum_0 = τ`:
///
/// ```text
/// γ̃ = γ / (1 + (t − 1) η)
/// if λ ≠ 0:  g_t ← g_t + λ θ_{t-1}
/// state_sum_t = state_sum_{t-1} + g_t²
/// θ_t = θ_{t-1} − γ̃ g_t / (√state_sum_t + ε)
/// ```
///
/// ```
/// use tapegrad::Tensor;
/// use tapegrad_nn::Param;
/// use tapegrad_optim::{AdaGrad, AdaGradConfig, Optimizer};
/// let w = Param::new(Tensor::from_vec(vec![1.0f64], &[1]));
/// let mut opt = AdaGrad::new([w.clone()], AdaGradConfig { lr: 0.5, ..AdaGradConfig::default() });
/// opt.step(&(&*w * &*w).sum().backward()); // g = 2, sum = 4: w = 1 - 0.5 * 2 / 2
/// assert!((w.item() - 0.5).abs() < 1e-9);
/// ```
#[derive(Debug)]
pub struct AdaGrad {
    core: Core<AdaGradConfig, AdaGradState>,
}

optimizer_inherent!(AdaGrad, AdaGradConfig, "AdaGrad");

/// Per-parameter state.
#[derive(Debug)]
pub(crate) struct AdaGradState {
    step: u64,
    sum: Buf,
}

impl ParamState for AdaGradState {
    fn save(&self, rec: &mut ParamRecord) {
        rec.scalars.insert("step".into(), self.step as f64);
        rec.tensors.insert("sum".into(), self.sum.to_tensor());
    }
    fn load(rec: &ParamRecord, param: &Tensor, what: &str) -> Result<Self, OptimError> {
        Ok(AdaGradState {
            step: step_count(rec, what)?,
            sum: rec.buf("sum", param, what)?,
        })
    }
}

impl Optimizer for AdaGrad {
    fn step(&mut self, grads: &Grads) {
        self.core.for_each(
            grads,
            |h, p, g, state| with_dtype!(p.dtype(), T => adagrad_update::<T>(h, p, g, state)),
        );
    }

    delegate_to_core!();
}

fn adagrad_update<T: Element>(
    h: &AdaGradConfig,
    p: &Param,
    g: &Tensor,
    state: &mut Option<AdaGradState>,
) {
    let state = state.get_or_insert_with(|| AdaGradState {
        step: 0,
        sum: Buf::full(p.shape(), p.dtype(), h.initial_accumulator_value),
    });
    state.step += 1;
    let clr = T::of(h.lr / (1.0 + (state.step - 1) as f64 * h.lr_decay));
    let eps = T::of(h.eps);
    let sign = T::of(if h.maximize { -1.0 } else { 1.0 });
    let (wd, decay) = (T::of(h.weight_decay), h.weight_decay != 0.0);
    g.with_view::<T, _>(|g| {
        p.update_::<T, _>(|pv| {
            zip3(pv, g, state.sum.get_mut::<T>(), |p, g, s| {
                let g = if decay { sign * g + wd * *p } else { sign * g };
                *s += g * g;
                *p -= clr * g / (s.sqrt() + eps);
            })
        })
    });
}
