//! `AdamW`: Adam with decoupled weight decay, as `torch.optim.AdamW`.

use serde::{Deserialize, Serialize};
use tapegrad::Grads;

use crate::adam::{adam_update, check_adam, AdamCoeffs, AdamState};
use crate::group::{delegate_to_core, hyper_accessors, optimizer_inherent, Core, Hyper};
use crate::kernel::with_dtype;
use crate::optimizer::Optimizer;

/// Hyper-parameters of [`AdamW`] (per parameter group), with PyTorch's defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdamWConfig {
    /// Learning rate γ (default 1e-3).
    pub lr: f64,
    /// (β1, β2) (default (0.9, 0.999)).
    pub betas: (f64, f64),
    /// ε (default 1e-8).
    pub eps: f64,
    /// Decoupled weight decay λ (default 1e-2).
    pub weight_decay: f64,
    /// Use the AMSGrad variant (default false).
    pub amsgrad: bool,
    /// Maximise the objective (default false).
    pub maximize: bool,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 1e-2,
            amsgrad: false,
            maximize: false,
        }
    }
}

impl Hyper for AdamWConfig {
    hyper_accessors!();
    #[track_caller]
    fn check(&self) -> Result<(), String> {
        check_adam("AdamW", self.lr, self.betas, self.eps, self.weight_decay)
    }
}

/// AdamW, as `torch.optim.AdamW` (Loshchilov & Hutter, 2019): the decay shrinks the
/// weights directly instead of entering the moment estimates.
///
/// With gradient `g_t` (negated when `maximize`), `m_0 = v_0 = 0`:
///
/// ```text
/// θ_{t-1} ← θ_{t-1} (1 − γ λ)
/// m_t = β1 m_{t-1} + (1 − β1) g_t
/// v_t = β2 v_{t-1} + (1 − β2) g_t²
/// m̂_t = m_t / (1 − β1^t)
/// if amsgrad:  vmax_t = max(vmax_{t-1}, v_t);  v̂_t = vmax_t / (1 − β2^t)
/// else:        v̂_t = v_t / (1 − β2^t)
/// θ_t = θ_{t-1} − γ m̂_t / (√v̂_t + ε)
/// ```
///
/// ```
/// use tapegrad::{DType, Tensor};
/// use tapegrad_nn::Param;
/// use tapegrad_optim::{AdamW, AdamWConfig, Optimizer};
/// let w = Param::new(Tensor::full(&[1], 2.0, DType::F64));
/// let mut opt = AdamW::new([w.clone()], AdamWConfig { lr: 0.1, weight_decay: 0.5, ..AdamWConfig::default() });
/// // a zero gradient: the Adam part does nothing, the decay shrinks w by 1 - 0.1 * 0.5
/// let grads = (&*w * 0.0).sum().backward();
/// opt.step(&grads);
/// assert!((w.item() - 2.0 * 0.95).abs() < 1e-12);
/// ```
#[derive(Debug)]
pub struct AdamW {
    core: Core<AdamWConfig, AdamState>,
}

optimizer_inherent!(AdamW, AdamWConfig, "AdamW");

impl Optimizer for AdamW {
    fn step(&mut self, grads: &Grads) {
        self.core.for_each(grads, |h, p, g, state| {
            let c = AdamCoeffs {
                lr: h.lr,
                betas: h.betas,
                eps: h.eps,
                l2: 0.0,
                decoupled: h.weight_decay,
                amsgrad: h.amsgrad,
                maximize: h.maximize,
            };
            with_dtype!(p.dtype(), T => adam_update::<T>(&c, p, g, state))
        });
    }

    delegate_to_core!();
}
