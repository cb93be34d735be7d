//! `ReduceLrOnPlateau`: cuts the learning rate when a monitored metric stops improving,
//! as PyTorch's `ReduceLROnPlateau`.

use serde::{Deserialize, Serialize};

use crate::early_stopping::Mode;
use crate::optimizer::Optimizer;

/// How [`ReduceLrOnPlateau`] compares a metric to the best so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ThresholdMode {
    /// Better means better than `best · (1 ∓ threshold)` (PyTorch's default).
    Rel,
    /// Better means better than `best ∓ threshold`.
    Abs,
}

/// The resumable state of a [`ReduceLrOnPlateau`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlateauState {
    /// Best metric so far (`None` before the first observation).
    pub best: Option<f64>,
    /// Observations since the last improvement.
    pub num_bad_epochs: usize,
    /// Observations left in the cool-down.
    pub cooldown_counter: usize,
    /// Observations made.
    pub last_epoch: usize,
}

/// Reduces every group's learning rate by `factor` once the metric has not improved for
/// more than `patience` observations, as PyTorch's `ReduceLROnPlateau` (defaults: mode
/// min, factor 0.1, patience 10, threshold 1e-4 relative, cooldown 0, min_lr 0, eps 1e-8).
///
/// At each [`step`](Self::step) with metric `a`:
///
/// ```text
/// better(a) = a < best · (1 − threshold)   (min, rel)     a < best − threshold   (min, abs)
///             a > best · (1 + threshold)   (max, rel)     a > best + threshold   (max, abs)
/// if better(a): best = a, bad = 0  else bad += 1
/// if in cool-down: cooldown_counter −= 1, bad = 0
/// if bad > patience: every group: new = max(lr · factor, min_lr_g); set it if lr − new > eps;
///                    cooldown_counter = cooldown, bad = 0
/// ```
///
/// ```
/// use tapegrad::{DType, Tensor};
/// use tapegrad_nn::Param;
/// use tapegrad_optim::{Optimizer, ReduceLrOnPlateau, Sgd, SgdConfig};
/// let w = Param::new(Tensor::zeros(&[1], DType::F32));
/// let mut opt = Sgd::new([w], SgdConfig { lr: 1.0, ..SgdConfig::default() });
/// let mut plateau = ReduceLrOnPlateau::new(&opt);
/// plateau.patience = 2;
/// for loss in [5.0, 4.0, 4.0, 4.0] {
///     plateau.step(loss, &mut opt);
/// }
/// assert_eq!(opt.lr(), 1.0); // two bad epochs: still patient
/// plateau.step(4.0, &mut opt); // a third: reduce
/// assert!((opt.lr() - 0.1).abs() < 1e-15);
/// ```
#[derive(Clone, Debug)]
pub struct ReduceLrOnPlateau {
    /// Whether lower (`Min`) or higher (`Max`) is better.
    pub mode: Mode,
    /// Multiplier of the rate at each reduction (must be < 1).
    pub factor: f64,
    /// Observations without improvement tolerated before reducing.
    pub patience: usize,
    /// Minimum significant change.
    pub threshold: f64,
    /// Relative or absolute threshold.
    pub threshold_mode: ThresholdMode,
    /// Observations to wait after a reduction before counting bad ones again.
    pub cooldown: usize,
    /// Lower bound of each group's rate.
    pub min_lrs: Vec<f64>,
    /// A reduction smaller than this is skipped.
    pub eps: f64,
    state: PlateauState,
}

impl ReduceLrOnPlateau {
    /// PyTorch's defaults, for an optimiser with `opt.num_groups()` groups.
    pub fn new<O: Optimizer + ?Sized>(opt: &O) -> Self {
        ReduceLrOnPlateau {
            mode: Mode::Min,
            factor: 0.1,
            patience: 10,
            threshold: 1e-4,
            threshold_mode: ThresholdMode::Rel,
            cooldown: 0,
            min_lrs: vec![0.0; opt.num_groups()],
            eps: 1e-8,
            state: PlateauState {
                best: None,
                num_bad_epochs: 0,
                cooldown_counter: 0,
                last_epoch: 0,
            },
        }
    }

    /// Sets the same minimum rate for every group.
    pub fn with_min_lr(mut self, min_lr: f64) -> Self {
        self.min_lrs.iter_mut().for_each(|m| *m = min_lr);
        self
    }

    fn is_better(&self, a: f64, best: f64) -> bool {
        match (self.mode, self.threshold_mode) {
            (Mode::Min, ThresholdMode::Rel) => a < best * (1.0 - self.threshold),
            (Mode::Min, ThresholdMode::Abs) => a < best - self.threshold,
            (Mode::Max, ThresholdMode::Rel) => a > best * (self.threshold + 1.0),
            (Mode::Max, ThresholdMode::Abs) => a > best + self.threshold,
        }
    }

    /// Observes `metric` and reduces the rates if it has plateaued. Returns whether some
    /// group's rate changed (a plateau with every group already at its `min_lr` returns
    /// false).
    ///
    /// # Panics
    /// If `factor` is not below 1, or `min_lrs` has another length than the optimiser's
    /// groups.
    #[track_caller]
    pub fn step<O: Optimizer + ?Sized>(&mut self, metric: f64, opt: &mut O) -> bool {
        assert!(
            self.factor < 1.0,
            "ReduceLrOnPlateau: factor {} must be below 1",
            self.factor
        );
        assert_eq!(
            self.min_lrs.len(),
            opt.num_groups(),
            "ReduceLrOnPlateau: {} min_lrs for {} groups",
            self.min_lrs.len(),
            opt.num_groups()
        );
        self.state.last_epoch += 1;
        // PyTorch starts from best = ±inf, which every finite metric beats
        let improved = match self.state.best {
            None => true,
            Some(best) => self.is_better(metric, best),
        };
        if improved {
            self.state.best = Some(metric);
            self.state.num_bad_epochs = 0;
        } else {
            self.state.num_bad_epochs += 1;
        }
        if self.state.cooldown_counter > 0 {
            self.state.cooldown_counter -= 1;
            self.state.num_bad_epochs = 0;
        }
        if self.state.num_bad_epochs > self.patience {
            let mut changed = false;
            for g in 0..opt.num_groups() {
                let old = opt.group_lr(g);
                let new = (old * self.factor).max(self.min_lrs[g]);
                if old - new > self.eps {
                    opt.set_group_lr(g, new);
                    changed = true;
                }
            }
            self.state.cooldown_counter = self.cooldown;
            self.state.num_bad_epochs = 0;
            return changed;
        }
        false
    }

    /// The best metric so far.
    pub fn best(&self) -> Option<f64> {
        self.state.best
    }

    /// The state to save.
    pub fn state(&self) -> &PlateauState {
        &self.state
    }

    /// Restores a saved state.
    pub fn load_state(&mut self, state: PlateauState) {
        self.state = state;
    }
}
