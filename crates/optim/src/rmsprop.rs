//! `RmsProp`: root-mean-square propagation, centered or not, with momentum, as
//! `torch.optim.RMSprop`.

use serde::{Deserialize, Serialize};
use tapegrad::{Element, Grads, Tensor};
use tapegrad_nn::Param;

use crate::adam::step_count;
use crate::error::OptimError;
use crate::group::ensure;
use crate::group::{
    delegate_to_core, hyper_accessors, optimizer_inherent, Core, Hyper, ParamState,
};
use crate::kernel::{with_dtype, zip3, zip4, zip5};
use crate::optimizer::Optimizer;
use crate::state::{Buf, ParamRecord};

/// Hyper-parameters of [`RmsProp`] (per parameter group), with PyTorch's defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RmsPropConfig {
    /// Learning rate γ (default 1e-2).
    pub lr: f64,
    /// Smoothing constant α (default 0.99).
    pub alpha: f64,
    /// ε added to the denominator (default 1e-8).
    pub eps: f64,
    /// L2 penalty λ (default 0).
    pub weight_decay: f64,
    /// Momentum μ (default 0).
    pub momentum: f64,
    /// Normalise by an estimate of the gradient's variance instead of its second moment
    /// (default false).
    pub centered: bool,
    /// Maximise the objective (default false).
    pub maximize: bool,
}

impl Default for RmsPropConfig {
    fn default() -> Self {
        RmsPropConfig {
            lr: 1e-2,
            alpha: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
            momentum: 0.0,
            centered: false,
            maximize: false,
        }
    }
}

impl Hyper for RmsPropConfig {
    hyper_accessors!();
    #[track_caller]
    fn check(&self) -> Result<(), String> {
        ensure!(self.lr >= 0.0, "RmsProp: invalid learning rate {}", self.lr);
        ensure!(self.eps >= 0.0, "RmsProp: invalid epsilon {}", self.eps);
        ensure!(
            self.momentum >= 0.0,
            "RmsProp: invalid momentum {}",
            self.momentum
        );
        ensure!(
            self.weight_decay >= 0.0,
            "RmsProp: invalid weight_decay {}",
            self.weight_decay
        );
        ensure!(self.alpha >= 0.0, "RmsProp: invalid alpha {}", self.alpha);
        Ok(())
    }
}

/// RMSprop, as `torch.optim.RMSprop` (Hinton's lecture 6e; centered from Graves, 2013).
///
/// With gradient `g_t` (negated when `maximize`), `v_0 = 0`, `b_0 = 0`, `ḡ_0 = 0`:
///
/// ```text
/// if λ ≠ 0:  g_t ← g_t + λ θ_{t-1}
/// v_t = α v_{t-1} + (1 − α) g_t²
/// ṽ_t = v_t
/// if centered:  ḡ_t = α ḡ_{t-1} + (1 − α) g_t;   ṽ_t ← ṽ_t − ḡ_t²
/// if μ > 0:  b_t = μ b_{t-1} + g_t / (√ṽ_t + ε);   θ_t = θ_{t-1} − γ b_t
/// else:      θ_t = θ_{t-1} − γ g_t / (√ṽ_t + ε)
/// ```
///
/// ```
/// use tapegrad::Tensor;
/// use tapegrad_nn::Param;
/// use tapegrad_optim::{Optimizer, RmsProp, RmsPropConfig};
/// let w = Param::new(Tensor::from_vec(vec![1.0f64], &[1]));
/// let mut opt = RmsProp::new([w.clone()], RmsPropConfig::default());
/// opt.step(&(&*w * &*w).sum().backward()); // g = 2, v = 0.01 * 4
/// let expected = 1.0 - 0.01 * 2.0 / ((0.04f64).sqrt() + 1e-8);
/// assert!((w.item() - expected).abs() < 1e-12);
/// ```
#[derive(Debug)]
pub struct RmsProp {
    core: Core<RmsPropConfig, RmsPropState>,
}

optimizer_inherent!(RmsProp, RmsPropConfig, "RmsProp");

/// Per-parameter state.
#[derive(Debug)]
pub(crate) struct RmsPropState {
    step: u64,
    square_avg: Buf,
    momentum_buffer: Option<Buf>,
    grad_avg: Option<Buf>,
}

impl ParamState for RmsPropState {
    fn save(&self, rec: &mut ParamRecord) {
        rec.scalars.insert("step".into(), self.step as f64);
        rec.tensors
            .insert("square_avg".into(), self.square_avg.to_tensor());
        if let Some(b) = &self.momentum_buffer {
            rec.tensors.insert("momentum_buffer".into(), b.to_tensor());
        }
        if let Some(b) = &self.grad_avg {
            rec.tensors.insert("grad_avg".into(), b.to_tensor());
        }
    }
    fn load(rec: &ParamRecord, param: &Tensor, what: &str) -> Result<Self, OptimError> {
        Ok(RmsPropState {
            step: step_count(rec, what)?,
            square_avg: rec.buf("square_avg", param, what)?,
            momentum_buffer: rec.opt_buf("momentum_buffer", param, what)?,
            grad_avg: rec.opt_buf("grad_avg", param, what)?,
        })
    }
}

impl Optimizer for RmsProp {
    fn step(&mut self, grads: &Grads) {
        self.core.for_each(
            grads,
            |h, p, g, state| with_dtype!(p.dtype(), T => rmsprop_update::<T>(h, p, g, state)),
        );
    }

    delegate_to_core!();
}

fn rmsprop_update<T: Element>(
    h: &RmsPropConfig,
    p: &Param,
    g: &Tensor,
    state: &mut Option<RmsPropState>,
) {
    let state = state.get_or_insert_with(|| RmsPropState {
        step: 0,
        square_avg: Buf::full(p.shape(), p.dtype(), 0.0),
        momentum_buffer: None,
        grad_avg: None,
    });
    if h.momentum > 0.0 && state.momentum_buffer.is_none() {
        state.momentum_buffer = Some(Buf::full(p.shape(), p.dtype(), 0.0));
    }
    if h.centered && state.grad_avg.is_none() {
        state.grad_avg = Some(Buf::full(p.shape(), p.dtype(), 0.0));
    }
    state.step += 1;
    let (lr, alpha, one_alpha, eps, mu) = (
        T::of(h.lr),
        T::of(h.alpha),
        T::of(1.0 - h.alpha),
        T::of(h.eps),
        T::of(h.momentum),
    );
    let sign = T::of(if h.maximize { -1.0 } else { 1.0 });
    let (wd, decay) = (T::of(h.weight_decay), h.weight_decay != 0.0);
    let grad = move |p: T, g: T| if decay { sign * g + wd * p } else { sign * g };
    let RmsPropState {
        square_avg,
        momentum_buffer,
        grad_avg,
        ..
    } = state;
    let (use_momentum, centered) = (h.momentum > 0.0, h.centered);
    g.with_view::<T, _>(|g| {
        p.update_::<T, _>(|pv| {
            let v = square_avg.get_mut::<T>();
            match (use_momentum, centered) {
                (false, false) => zip3(pv, g, v, |p, g, v| {
                    let g = grad(*p, g);
                    *v = alpha * *v + one_alpha * g * g;
                    *p -= lr * g / (v.sqrt() + eps);
                }),
                (false, true) => {
                    let ga = grad_avg.as_mut().expect("created above").get_mut::<T>();
                    zip4(pv, g, v, ga, |p, g, v, ga| {
                        let g = grad(*p, g);
                        *v = alpha * *v + one_alpha * g * g;
                        *ga = alpha * *ga + one_alpha * g;
                        *p -= lr * g / ((*v - *ga * *ga).sqrt() + eps);
                    })
                }
                (true, false) => {
                    let b = momentum_buffer
                        .as_mut()
                        .expect("created above")
                        .get_mut::<T>();
                    zip4(pv, g, v, b, |p, g, v, b| {
                        let g = grad(*p, g);
                        *v = alpha * *v + one_alpha * g * g;
                        *b = mu * *b + g / (v.sqrt() + eps);
                        *p -= lr * *b;
                    })
                }
                (true, true) => {
                    let ga = grad_avg.as_mut().expect("created above").get_mut::<T>();
                    let b = momentum_buffer
                        .as_mut()
                        .expect("created above")
                        .get_mut::<T>();
                    zip5(pv, g, v, ga, b, |p, g, v, ga, b| {
                        let g = grad(*p, g);
                        *v = alpha * *v + one_alpha * g * g;
                        *ga = alpha * *ga + one_alpha * g;
                        *b = mu * *b + g / ((*v - *ga * *ga).sqrt() + eps);
                        *p -= lr * *b;
                    })
                }
            }
        })
    });
}
