//! `Adam`: adaptive moment estimation with bias correction, AMSGrad and L2 weight decay,
//! as `torch.optim.Adam`; also the update kernel `AdamW` shares.

use serde::{Deserialize, Serialize};
use tapegrad::{Element, Grads, Tensor};
use tapegrad_nn::Param;

use crate::error::OptimError;
use crate::group::ensure;
use crate::group::{
    delegate_to_core, hyper_accessors, optimizer_inherent, Core, Hyper, ParamState,
};
use crate::kernel::{with_dtype, zip4, zip5};
use crate::optimizer::Optimizer;
use crate::state::{Buf, ParamRecord};

/// Hyper-parameters of [`Adam`] (per parameter group), with PyTorch's defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdamConfig {
    /// Learning rate γ (default 1e-3).
    pub lr: f64,
    /// Coefficients (β1, β2) of the running averages of the gradient and its square
    /// (default (0.9, 0.999)).
    pub betas: (f64, f64),
    /// Term ε added to the denominator (default 1e-8).
    pub eps: f64,
    /// L2 penalty λ added to the gradient (default 0). For decoupled decay use [`AdamW`](crate::AdamW).
    pub weight_decay: f64,
    /// Use the AMSGrad variant (default false).
    pub amsgrad: bool,
    /// Maximise the objective (default false).
    pub maximize: bool,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            amsgrad: false,
            maximize: false,
        }
    }
}

impl Hyper for AdamConfig {
    hyper_accessors!();
    #[track_caller]
    fn check(&self) -> Result<(), String> {
        check_adam("Adam", self.lr, self.betas, self.eps, self.weight_decay)
    }
}

pub(crate) fn check_adam(
    name: &str,
    lr: f64,
    betas: (f64, f64),
    eps: f64,
    weight_decay: f64,
) -> Result<(), String> {
    ensure!(lr >= 0.0, "{name}: invalid learning rate {lr}");
    ensure!(eps >= 0.0, "{name}: invalid epsilon {eps}");
    ensure!(
        (0.0..1.0).contains(&betas.0),
        "{name}: invalid beta1 {} (must be in [0, 1))",
        betas.0
    );
    ensure!(
        (0.0..1.0).contains(&betas.1),
        "{name}: invalid beta2 {} (must be in [0, 1))",
        betas.1
    );
    ensure!(
        weight_decay >= 0.0,
        "{name}: invalid weight_decay {weight_decay}"
    );
    Ok(())
}

/// Adam, as `torch.optim.Adam` (Kingma & Ba, 2014; AMSGrad from Reddi et al., 2018).
///
/// With gradient `g_t = ∇f(θ_{t-1})` (negated when `maximize`), `m_0 = v_0 = v̂max_0 = 0`:
///
/// ```text
/// if λ ≠ 0:  g_t ← g_t + λ θ_{t-1}
/// m_t = β1 m_{t-1} + (1 − β1) g_t
/// v_t = β2 v_{t-1} + (1 − β2) g_t²
/// m̂_t = m_t / (1 − β1^t)
/// if amsgrad:  vmax_t = max(vmax_{t-1}, v_t);  v̂_t = vmax_t / (1 − β2^t)
/// else:        v̂_t = v_t / (1 − β2^t)
/// θ_t = θ_{t-1} − γ m̂_t / (√v̂_t + ε)
/// ```
///
/// (The step count `t` is per parameter, from 1.)
///
/// ```
/// use tapegrad::Tensor;
/// use tapegrad_nn::Param;
/// use tapegrad_optim::{Adam, AdamConfig, Optimizer};
/// let w = Param::new(Tensor::from_vec(vec![3.0f64], &[1]));
/// let mut opt = Adam::new([w.clone()], AdamConfig { lr: 0.1, ..AdamConfig::default() });
/// for _ in 0..300 {
///     let loss = (&*w * &*w).sum();
///     opt.step(&loss.backward());
/// }
/// assert!(w.item().abs() < 0.05);
/// ```
#[derive(Debug)]
pub struct Adam {
    core: Core<AdamConfig, AdamState>,
}

optimizer_inherent!(Adam, AdamConfig, "Adam");

impl Optimizer for Adam {
    fn step(&mut self, grads: &Grads) {
        self.core.for_each(grads, |h, p, g, state| {
            let c = AdamCoeffs {
                lr: h.lr,
                betas: h.betas,
                eps: h.eps,
                l2: h.weight_decay,
                decoupled: 0.0,
                amsgrad: h.amsgrad,
                maximize: h.maximize,
            };
            with_dtype!(p.dtype(), T => adam_update::<T>(&c, p, g, state))
        });
    }

    delegate_to_core!();
}

/// Per-parameter state of Adam and AdamW.
#[derive(Debug)]
pub(crate) struct AdamState {
    step: u64,
    exp_avg: Buf,
    exp_avg_sq: Buf,
    max_exp_avg_sq: Option<Buf>,
}

impl ParamState for AdamState {
    fn save(&self, rec: &mut ParamRecord) {
        rec.scalars.insert("step".into(), self.step as f64);
        rec.tensors
            .insert("exp_avg".into(), self.exp_avg.to_tensor());
        rec.tensors
            .insert("exp_avg_sq".into(), self.exp_avg_sq.to_tensor());
        if let Some(b) = &self.max_exp_avg_sq {
            rec.tensors.insert("max_exp_avg_sq".into(), b.to_tensor());
        }
    }
    fn load(rec: &ParamRecord, param: &Tensor, what: &str) -> Result<Self, OptimError> {
        Ok(AdamState {
            step: step_count(rec, what)?,
            exp_avg: rec.buf("exp_avg", param, what)?,
            exp_avg_sq: rec.buf("exp_avg_sq", param, what)?,
            max_exp_avg_sq: rec.opt_buf("max_exp_avg_sq", param, what)?,
        })
    }
}

/// Reads a non-negative integer `"step"`.
pub(crate) fn step_count(rec: &ParamRecord, what: &str) -> Result<u64, OptimError> {
    let s = rec.scalar("step", what)?;
    if s >= 0.0 && s.fract() == 0.0 && s < 2f64.powi(53) {
        Ok(s as u64)
    } else {
        Err(OptimError::mismatch(format!(
            "{what}: step count {s} is not a non-negative integer"
        )))
    }
}

/// Everything one Adam/AdamW update needs.
pub(crate) struct AdamCoeffs {
    pub(crate) lr: f64,
    pub(crate) betas: (f64, f64),
    pub(crate) eps: f64,
    /// L2 penalty added to the gradient (Adam's weight decay).
    pub(crate) l2: f64,
    /// Decoupled weight decay: θ ← θ (1 − γλ) before the Adam step (AdamW).
    pub(crate) decoupled: f64,
    pub(crate) amsgrad: bool,
    pub(crate) maximize: bool,
}

pub(crate) fn adam_update<T: Element>(
    c: &AdamCoeffs,
    p: &Param,
    g: &Tensor,
    state: &mut Option<AdamState>,
) {
    let state = state.get_or_insert_with(|| AdamState {
        step: 0,
        exp_avg: Buf::full(p.shape(), p.dtype(), 0.0),
        exp_avg_sq: Buf::full(p.shape(), p.dtype(), 0.0),
        max_exp_avg_sq: None,
    });
    if c.amsgrad && state.max_exp_avg_sq.is_none() {
        state.max_exp_avg_sq = Some(Buf::full(p.shape(), p.dtype(), 0.0));
    }
    state.step += 1;
    let t = state.step as f64;
    let (b1, b2) = c.betas;
    let bias1 = 1.0 - b1.powf(t);
    let bias2_sqrt = (1.0 - b2.powf(t)).sqrt();
    // θ -= (γ / (1 − β1^t)) m / (√v / √(1 − β2^t) + ε), PyTorch's arrangement of the same formula
    let step_size = T::of(c.lr / bias1);
    let bias2_sqrt = T::of(bias2_sqrt);
    let (beta1, beta2, one_b1, one_b2) = (T::of(b1), T::of(b2), T::of(1.0 - b1), T::of(1.0 - b2));
    let eps = T::of(c.eps);
    let sign = T::of(if c.maximize { -1.0 } else { 1.0 });
    let (l2, has_l2) = (T::of(c.l2), c.l2 != 0.0);
    let (keep, has_decoupled) = (T::of(1.0 - c.lr * c.decoupled), c.decoupled != 0.0);
    let AdamState {
        exp_avg,
        exp_avg_sq,
        max_exp_avg_sq,
        ..
    } = state;
    g.with_view::<T, _>(|g| {
        p.update_::<T, _>(|pv| {
            let m = exp_avg.get_mut::<T>();
            let v = exp_avg_sq.get_mut::<T>();
            // the shared first half: decay, moments; returns (m, v)
            let moments = move |p: &mut T, g: T, m: &mut T, v: &mut T| {
                if has_decoupled {
                    *p *= keep;
                }
                let g = if has_l2 { sign * g + l2 * *p } else { sign * g };
                *m = beta1 * *m + one_b1 * g;
                *v = beta2 * *v + one_b2 * g * g;
            };
            match max_exp_avg_sq {
                Some(vmax) => zip5(pv, g, m, v, vmax.get_mut::<T>(), |p, g, m, v, vmax| {
                    moments(p, g, m, v);
                    if *v > *vmax {
                        *vmax = *v;
                    }
                    *p -= step_size * *m / (vmax.sqrt() / bias2_sqrt + eps);
                }),
                None => zip4(pv, g, m, v, |p, g, m, v| {
                    moments(p, g, m, v);
                    *p -= step_size * *m / (v.sqrt() / bias2_sqrt + eps);
                }),
            }
        })
    });
}
