//! `Lars`: layer-wise adaptive rate scaling (You, Gitman & Ginsburg, 2017), SGD with
//! momentum whose step for each parameter tensor is scaled by a trust ratio.

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

/// Hyper-parameters of [`Lars`] (per parameter group). PyTorch has no LARS; the defaults
/// follow the paper's ImageNet recipe except the weight decay, which is opt-in as in
/// every optimiser here.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LarsConfig {
    /// Global learning rate γ (default 0.1; the paper scales it with the batch size).
    pub lr: f64,
    /// Momentum μ (default 0.9).
    pub momentum: f64,
    /// Weight decay β (default 0).
    pub weight_decay: f64,
    /// Trust coefficient η (default 1e-3).
    pub trust_coefficient: f64,
    /// Skip the layer-wise adaptation for this group (trust ratio 1: plain momentum SGD),
    /// the usual treatment of biases and normalisation parameters (default false). Set
    /// the group's `weight_decay` to 0 as well to also exclude them from decay.
    pub exclude: bool,
}

impl Default for LarsConfig {
    fn default() -> Self {
        LarsConfig {
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 0.0,
            trust_coefficient: 1e-3,
            exclude: false,
        }
    }
}

impl Hyper for LarsConfig {
    hyper_accessors!();
    #[track_caller]
    fn check(&self) -> Result<(), String> {
        ensure!(self.lr >= 0.0, "Lars: invalid learning rate {}", self.lr);
        ensure!(
            self.momentum >= 0.0,
            "Lars: invalid momentum {}",
            self.momentum
        );
        ensure!(
            self.weight_decay >= 0.0,
            "Lars: invalid weight_decay {}",
            self.weight_decay
        );
        ensure!(
            self.trust_coefficient > 0.0,
            "Lars: invalid trust_coefficient {}",
            self.trust_coefficient
        );
        Ok(())
    }
}

/// LARS (You, Gitman & Ginsburg, 2017, Algorithm 1), for very large batches: each
/// parameter tensor (a layer's weight) gets a local learning rate proportional to
/// `‖w‖ / ‖∇L(w)‖`, so no layer's step is large relative to its weights.
///
/// For each parameter tensor `w` with gradient `g`, `v_0 = 0`:
///
/// ```text
/// λ = η ‖w‖ / (‖g‖ + β ‖w‖)     (λ = 1 when ‖w‖ = 0 or ‖g‖ = 0, or the group is excluded)
/// v_t = μ v_{t-1} + γ λ (g + β w)
/// w_t = w_{t-1} − v_t
/// ```
///
/// Norms are accumulated in `f64`.
///
/// ```
/// use tapegrad::Tensor;
/// use tapegrad_nn::Param;
/// use tapegrad_optim::{Lars, LarsConfig, Optimizer};
/// let w = Param::new(Tensor::from_vec(vec![3.0f64, 4.0], &[2])); // ‖w‖ = 5
/// let mut opt = Lars::new([w.clone()], LarsConfig { lr: 1.0, momentum: 0.0, trust_coefficient: 0.1, ..LarsConfig::default() });
/// // g = w, so ‖g‖ = 5 and λ = 0.1: the step is 0.1 w
/// opt.step(&((&*w * &*w).sum() * 0.5).backward());
/// let w1 = w.to_vec::<f64>();
/// assert!((w1[0] - 2.7).abs() < 1e-12 && (w1[1] - 3.6).abs() < 1e-12);
/// ```
#[derive(Debug)]
pub struct Lars {
    core: Core<LarsConfig, LarsState>,
}

optimizer_inherent!(Lars, LarsConfig, "Lars");

/// Per-parameter state: the momentum buffer (when momentum is used).
#[derive(Debug)]
pub(crate) struct LarsState {
    momentum_buffer: Option<Buf>,
}

impl ParamState for LarsState {
    fn save(&self, rec: &mut ParamRecord) {
        if let Some(b) = &self.momentum_buffer {
            rec.tensors.insert("momentum_buffer".into(), b.to_tensor());
        }
    }
    fn load(rec: &ParamRecord, param: &Tensor, what: &str) -> Result<Self, OptimError> {
        Ok(LarsState {
            momentum_buffer: rec.opt_buf("momentum_buffer", param, what)?,
        })
    }
}

impl Optimizer for Lars {
    fn step(&mut self, grads: &Grads) {
        self.core.for_each(
            grads,
            |h, p, g, state| with_dtype!(p.dtype(), T => lars_update::<T>(h, p, g, state)),
        );
    }

    delegate_to_core!();
}

/// The Euclidean norm, accumulated in f64.
pub(crate) fn norm<T: Element>(a: &ndarray::ArrayViewD<'_, T>) -> f64 {
    a.iter()
        .map(|x| x.as_f64() * x.as_f64())
        .sum::<f64>()
        .sqrt()
}

fn lars_update<T: Element>(h: &LarsConfig, p: &Param, g: &Tensor, state: &mut Option<LarsState>) {
    let state = state.get_or_insert(LarsState {
        momentum_buffer: None,
    });
    if h.momentum != 0.0 && state.momentum_buffer.is_none() {
        state.momentum_buffer = Some(Buf::full(p.shape(), p.dtype(), 0.0));
    }
    let (mu, wd, decay) = (
        T::of(h.momentum),
        T::of(h.weight_decay),
        h.weight_decay != 0.0,
    );
    g.with_view::<T, _>(|g| {
        p.update_::<T, _>(|pv| {
            let trust = if h.exclude {
                1.0
            } else {
                let (w_norm, g_norm) = (norm(&pv.view()), norm(&g));
                if w_norm > 0.0 && g_norm > 0.0 {
                    h.trust_coefficient * w_norm / (g_norm + h.weight_decay * w_norm)
                } else {
                    1.0
                }
            };
            let scaled_lr = T::of(h.lr * trust);
            let direction = move |p: T, g: T| if decay { g + wd * p } else { g };
            match &mut state.momentum_buffer {
                Some(b) => zip3(pv, g, b.get_mut::<T>(), |p, g, v| {
                    *v = mu * *v + scaled_lr * direction(*p, g);
                    *p -= *v;
                }),
                None => zip2(pv, g, |p, g| *p -= scaled_lr * direction(*p, g)),
            }
        })
    });
}
