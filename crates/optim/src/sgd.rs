//! `Sgd`: stochastic gradient descent with momentum, dampening, Nesterov momentum and
//! weight decay, as `torch.optim.SGD`.

use serde::{Deserialize, Serialize};
use tapegrad::{Element, Grads, Tensor};
use tapegrad_nn::Param;

use crate::error::OptimError;
use crate::group::ensure;
use crate::group::{
    delegate_to_core, hyper_accessors, optimizer_inherent, Core, Hyper, ParamState,
};
use crate::kernel::{with_dtype, zip2, zip3};
use crate::optimizer::Optimizer;
use crate::state::{Buf, ParamRecord};

/// Hyper-parameters of [`Sgd`] (per parameter group). Defaults are PyTorch's, except
/// that PyTorch has no default learning rate (it defaults to 1e-3 since 2.2; so do we).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SgdConfig {
    /// Learning rate γ (default 1e-3).
    pub lr: f64,
    /// Momentum factor μ (default 0).
    pub momentum: f64,
    /// Dampening τ for momentum (default 0).
    pub dampening: f64,
    /// L2 penalty λ, added to the gradient (default 0).
    pub weight_decay: f64,
    /// Nesterov momentum (default false; needs `momentum > 0` and `dampening == 0`).
    pub nesterov: bool,
    /// Maximise the objective instead of minimising it (default false).
    pub maximize: bool,
}

impl Default for SgdConfig {
    fn default() -> Self {
        SgdConfig {
            lr: 1e-3,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
            maximize: false,
        }
    }
}

impl Hyper for SgdConfig {
    hyper_accessors!();
    #[track_caller]
    fn check(&self) -> Result<(), String> {
        ensure!(self.lr >= 0.0, "Sgd: invalid learning rate {}", self.lr);
        ensure!(
            self.momentum >= 0.0,
            "Sgd: invalid momentum {}",
            self.momentum
        );
        ensure!(
            self.weight_decay >= 0.0,
            "Sgd: invalid weight_decay {}",
            self.weight_decay
        );
        ensure!(
            !self.nesterov || (self.momentum > 0.0 && self.dampening == 0.0),
            "Sgd: Nesterov momentum requires a momentum and zero dampening (momentum {}, dampening {})",
            self.momentum,
            self.dampening
        );
        Ok(())
    }
}

/// Stochastic gradient descent, as `torch.optim.SGD`.
///
/// With gradient `g_t = ∇f(θ_{t-1})` (negated first when `maximize`):
///
/// ```text
/// if λ ≠ 0:  g_t ← g_t + λ θ_{t-1}
/// if μ ≠ 0:  b_t ← g_t                          at the first step
///            b_t ← μ b_{t-1} + (1 − τ) g_t      afterwards
///            g_t ← g_t + μ b_t   if nesterov,   else  g_t ← b_t
/// θ_t = θ_{t-1} − γ g_t
/// ```
///
/// (PyTorch's documentation writes `maximize` as `θ_t = θ_{t-1} + γ g_t` after weight decay;
/// its implementation, which we follow, negates the gradient before weight decay.)
///
/// ```
/// use tapegrad::Tensor;
/// use tapegrad_nn::Param;
/// use tapegrad_optim::{Optimizer, Sgd, SgdConfig};
/// let w = Param::new(Tensor::from_vec(vec![1.0f64], &[1]));
/// let mut opt = Sgd::new([w.clone()], SgdConfig { lr: 0.1, momentum: 0.9, ..SgdConfig::default() });
/// let grad = || (&*w * &*w).sum().backward(); // g = 2w
/// opt.step(&grad()); // b = 2, w = 1 - 0.2 = 0.8
/// opt.step(&grad()); // b = 0.9 * 2 + 1.6 = 3.4, w = 0.8 - 0.34 = 0.46
/// assert!((w.item() - 0.46).abs() < 1e-12);
/// ```
#[derive(Debug)]
pub struct Sgd {
    core: Core<SgdConfig, SgdState>,
}

optimizer_inherent!(Sgd, SgdConfig, "Sgd");

/// Per-parameter state: the momentum buffer, created at the first step with momentum.
#[derive(Debug)]
pub(crate) struct SgdState {
    momentum_buffer: Option<Buf>,
}

impl ParamState for SgdState {
    fn save(&self, rec: &mut ParamRecord) {
        if let Some(b) = &self.momentum_buffer {
            rec.tensors.insert("momentum_buffer".into(), b.to_tensor());
        }
    }
    fn load(rec: &ParamRecord, param: &Tensor, what: &str) -> Result<Self, OptimError> {
        Ok(SgdState {
            momentum_buffer: rec.opt_buf("momentum_buffer", param, what)?,
        })
    }
}

impl Optimizer for Sgd {
    fn step(&mut self, grads: &Grads) {
        self.core.for_each(
            grads,
            |h, p, g, state| with_dtype!(p.dtype(), T => sgd_update::<T>(h, p, g, state)),
        );
    }

    delegate_to_core!();
}

fn sgd_update<T: Element>(h: &SgdConfig, p: &Param, g: &Tensor, state: &mut Option<SgdState>) {
    let sign = T::of(if h.maximize { -1.0 } else { 1.0 });
    let (lr, wd, mu, damp) = (
        T::of(h.lr),
        T::of(h.weight_decay),
        T::of(h.momentum),
        T::of(1.0 - h.dampening),
    );
    let decay = h.weight_decay != 0.0;
    let nesterov = h.nesterov;
    // d = sign * g + λ θ, before momentum
    let direction = move |p: T, g: T| if decay { sign * g + wd * p } else { sign * g };
    let state = state.get_or_insert(SgdState {
        momentum_buffer: None,
    });
    g.with_view::<T, _>(|g| {
        p.update_::<T, _>(|pv| {
            if h.momentum == 0.0 {
                zip2(pv, g, |p, g| *p -= lr * direction(*p, g));
                return;
            }
            let first = state.momentum_buffer.is_none();
            let buf = state
                .momentum_buffer
                .get_or_insert_with(|| Buf::full(g.shape(), T::DTYPE, 0.0))
                .get_mut::<T>();
            zip3(pv, g, buf, |p, g, b| {
                let d = direction(*p, g);
                *b = if first { d } else { mu * *b + damp * d };
                let step = if nesterov { d + mu * *b } else { *b };
                *p -= lr * step;
            });
        })
    });
}
