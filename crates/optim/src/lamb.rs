//! `Lamb`: layer-wise adaptive moments for batch training (You et al., 2019), Adam whose
//! step for each parameter tensor is rescaled by a trust ratio.

use serde::{Deserialize, Serialize};
use tapegrad::{Element, Grads, Tensor};
use tapegrad_nn::Param;

use crate::adam::{check_adam, step_count};
use crate::error::OptimError;
use crate::group::{
    delegate_to_core, hyper_accessors, optimizer_inherent, Core, Hyper, ParamState,
};
use crate::kernel::{with_dtype, zip4};
use crate::optimizer::Optimizer;
use crate::state::{Buf, ParamRecord};

/// Hyper-parameters of [`Lamb`] (per parameter group). PyTorch has no LAMB; the defaults
/// are the paper's and NVIDIA apex's `FusedLAMB`'s.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LambConfig {
    /// Learning rate γ (default 1e-3).
    pub lr: f64,
    /// (β1, β2) (default (0.9, 0.999)).
    pub betas: (f64, f64),
    /// ε (default 1e-6).
    pub eps: f64,
    /// Weight decay λ, added to the Adam direction before the trust ratio (default 0.01).
    pub weight_decay: f64,
    /// Skip the layer-wise adaptation for this group (trust ratio 1: AdamW-like steps),
    /// e.g. for biases and normalisation parameters (default false).
    pub exclude: bool,
}

impl Default for LambConfig {
    fn default() -> Self {
        LambConfig {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-6,
            weight_decay: 0.01,
            exclude: false,
        }
    }
}

impl Hyper for LambConfig {
    hyper_accessors!();
    #[track_caller]
    fn check(&self) -> Result<(), String> {
        check_adam("Lamb", self.lr, self.betas, self.eps, self.weight_decay)
    }
}

/// LAMB (You et al., 2019, Algorithm 2, with bias correction), for very large batches.
///
/// For each parameter tensor `w` with gradient `g`, `m_0 = v_0 = 0`:
///
/// ```text
/// m_t = β1 m_{t-1} + (1 − β1) g
/// v_t = β2 v_{t-1} + (1 − β2) g²
/// m̂_t = m_t / (1 − β1^t),   v̂_t = v_t / (1 − β2^t)
/// r_t = m̂_t / (√v̂_t + ε) + λ w_{t-1}
/// ρ = ‖w_{t-1}‖ / ‖r_t‖      (ρ = 1 when either norm is 0, or the group is excluded)
/// w_t = w_{t-1} − γ ρ r_t
/// ```
///
/// Norms are accumulated in `f64`; `r` is computed twice (once for its norm, once for the
/// update) rather than stored, so the state is just the two moments.
///
/// ```
/// use tapegrad::Tensor;
/// use tapegrad_nn::Param;
/// use tapegrad_optim::{Lamb, LambConfig, Optimizer};
/// let w = Param::new(Tensor::from_vec(vec![3.0f64, 4.0], &[2])); // ‖w‖ = 5
/// let mut opt = Lamb::new([w.clone()], LambConfig { lr: 0.1, weight_decay: 0.0, ..LambConfig::default() });
/// opt.step(&(&*w * &*w).sum().backward());
/// // first step: r ≈ sign(g) = (1, 1), ‖r‖ = √2, so w moves by 0.1 · 5/√2 in each coordinate
/// let step = 0.1 * 5.0 / 2f64.sqrt();
/// let w1 = w.to_vec::<f64>();
/// assert!((w1[0] - (3.0 - step)).abs() < 1e-5 && (w1[1] - (4.0 - step)).abs() < 1e-5);
/// ```
#[derive(Debug)]
pub struct Lamb {
    core: Core<LambConfig, LambState>,
}

optimizer_inherent!(Lamb, LambConfig, "Lamb");

/// Per-parameter state.
#[derive(Debug)]
pub(crate) struct LambState {
    step: u64,
    exp_avg: Buf,
    exp_avg_sq: Buf,
}

impl ParamState for LambState {
    fn save(&self, rec: &mut ParamRecord) {
        rec.scalars.insert("step".into(), self.step as f64);
        rec.tensors
            .insert("exp_avg".into(), self.exp_avg.to_tensor());
        rec.tensors
            .insert("exp_avg_sq".into(), self.exp_avg_sq.to_tensor());
    }
    fn load(rec: &ParamRecord, param: &Tensor, what: &str) -> Result<Self, OptimError> {
        Ok(LambState {
            step: step_count(rec, what)?,
            exp_avg: rec.buf("exp_avg", param, what)?,
            exp_avg_sq: rec.buf("exp_avg_sq", param, what)?,
        })
    }
}

impl Optimizer for Lamb {
    fn step(&mut self, grads: &Grads) {
        self.core.for_each(
            grads,
            |h, p, g, state| with_dtype!(p.dtype(), T => lamb_update::<T>(h, p, g, state)),
        );
    }

    delegate_to_core!();
}

fn lamb_update<T: Element>(h: &LambConfig, p: &Param, g: &Tensor, state: &mut Option<LambState>) {
    let state = state.get_or_insert_with(|| LambState {
        step: 0,
        exp_avg: Buf::full(p.shape(), p.dtype(), 0.0),
        exp_avg_sq: Buf::full(p.shape(), p.dtype(), 0.0),
    });
    state.step += 1;
    let t = state.step as f64;
    let (b1, b2) = h.betas;
    let (beta1, beta2, one_b1, one_b2) = (T::of(b1), T::of(b2), T::of(1.0 - b1), T::of(1.0 - b2));
    let (inv_bias1, inv_bias2) = (
        T::of(1.0 / (1.0 - b1.powf(t))),
        T::of(1.0 / (1.0 - b2.powf(t))),
    );
    let (eps, wd) = (T::of(h.eps), T::of(h.weight_decay));
    let r = move |p: T, m: T, v: T| m * inv_bias1 / ((v * inv_bias2).sqrt() + eps) + wd * p;
    let LambState {
        exp_avg,
        exp_avg_sq,
        ..
    } = state;
    let (m, v) = (exp_avg.get_mut::<T>(), exp_avg_sq.get_mut::<T>());
    g.with_view::<T, _>(|g| {
        p.update_::<T, _>(|mut pv| {
            // pass 1: moments, and the norms of w and r
            let (mut w_sq, mut r_sq) = (0.0f64, 0.0f64);
            zip4(pv.view_mut(), g.view(), m, v, |p, g, m, v| {
                *m = beta1 * *m + one_b1 * g;
                *v = beta2 * *v + one_b2 * g * g;
                let ri = r(*p, *m, *v).as_f64();
                w_sq += p.as_f64() * p.as_f64();
                r_sq += ri * ri;
            });
            let (w_norm, r_norm) = (w_sq.sqrt(), r_sq.sqrt());
            let trust = if h.exclude || w_norm == 0.0 || r_norm == 0.0 {
                1.0
            } else {
                w_norm / r_norm
            };
            let step = T::of(h.lr * trust);
            // pass 2: the update, with r recomputed from the new moments
            zip4(pv, g, m, v, |p, _, m, v| *p -= step * r(*p, *m, *v));
        })
    });
}
