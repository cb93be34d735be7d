//! Learning-rate schedules: pure functions `lr(base_lr, step)` (the [`Schedule`] trait),
//! composable ([`SequentialLr`], [`Schedule::then`]), applied to an optimiser's groups by
//! an [`LrScheduler`]. Closed forms of PyTorch's `torch.optim.lr_scheduler` classes.
//!
//! The step convention is PyTorch's: `lr(base, 0)` is the rate of the first optimiser
//! step, and `lr(base, k)` the rate after `k` calls of `LrScheduler::step` (one per
//! optimiser step, or per epoch, as you choose).
//!
//! ```
//! use tapegrad_optim::schedule::{CosineAnnealingLr, LinearWarmup, Schedule};
//! // 5 warm-up steps from 0.1 * base, then cosine from base to 0 over 20 steps
//! let s = LinearWarmup::new(0.1, 5).then(CosineAnnealingLr::new(20, 0.0));
//! assert!((s.lr(1.0, 0) - 0.1).abs() < 1e-12);
//! assert_eq!(s.lr(1.0, 5), 1.0);
//! assert!((s.lr(1.0, 15) - 0.5).abs() < 1e-12);
//! assert!(s.lr(1.0, 25).abs() < 1e-12);
//! ```

mod basic;
mod cosine;
mod one_cycle;

use serde::{Deserialize, Serialize};

use crate::optimizer::Optimizer;

pub use basic::{ConstantLr, ExponentialLr, LinearWarmup, MultiStepLr, PolynomialLr, StepLr};
pub use cosine::{CosineAnnealingLr, CosineAnnealingWarmRestarts};
pub use one_cycle::{Anneal, OneCycleLr};

/// A learning-rate schedule: the rate at `step` for a parameter group whose base
/// (initial) learning rate is `base_lr`. Pure: no state, any step in any order.
pub trait Schedule: Send + Sync {
    /// The learning rate at `step` (0 = the first step).
    fn lr(&self, base_lr: f64, step: usize) -> f64;

    /// This schedule for `self_steps` steps, then `next` (which starts again from its own
    /// step 0): the usual "warm-up, then decay".
    fn then<S: Schedule + 'static>(self, next: S) -> SequentialLr
    where
        Self: Sized + 'static,
        Self: HasLength,
    {
        let n = self.length();
        SequentialLr::new(vec![Box::new(self), Box::new(next)], vec![n])
    }
}

/// A schedule with a natural length (a warm-up), after which [`Schedule::then`] switches.
pub trait HasLength {
    /// The number of steps the schedule lasts.
    fn length(&self) -> usize;
}

impl Schedule for Box<dyn Schedule> {
    fn lr(&self, base_lr: f64, step: usize) -> f64 {
        (**self).lr(base_lr, step)
    }
}

/// Runs `schedules[0]` until step `milestones[0]`, then `schedules[1]` from its own step 0,
/// and so on, as PyTorch's `SequentialLR`: at step `t`, with `i` the number of milestones
/// `≤ t`, the rate is `schedules[i].lr(base, t − milestones[i−1])`.
///
/// ```
/// use tapegrad_optim::schedule::{ConstantLr, ExponentialLr, Schedule, SequentialLr};
/// let s = SequentialLr::new(vec![Box::new(ConstantLr::new(0.1, 2)), Box::new(ExponentialLr::new(0.9))], vec![2]);
/// let lrs: Vec<f64> = (0..5).map(|t| s.lr(1.0, t)).collect();
/// let expected = [0.1, 0.1, 1.0, 0.9, 0.81];
/// assert!(lrs.iter().zip(expected).all(|(a, b)| (a - b).abs() < 1e-12));
/// ```
pub struct SequentialLr {
    schedules: Vec<Box<dyn Schedule>>,
    milestones: Vec<usize>,
}

impl SequentialLr {
    /// `schedules.len()` must be `milestones.len() + 1` and the milestones increasing.
    ///
    /// # Panics
    /// If the lengths do not fit or the milestones are not strictly increasing.
    #[track_caller]
    pub fn new(schedules: Vec<Box<dyn Schedule>>, milestones: Vec<usize>) -> Self {
        assert!(
            schedules.len() == milestones.len() + 1,
            "SequentialLr: {} schedules need {} milestones, got {}",
            schedules.len(),
            schedules.len().saturating_sub(1),
            milestones.len()
        );
        assert!(
            milestones.windows(2).all(|w| w[0] < w[1]),
            "SequentialLr: milestones {milestones:?} must be strictly increasing"
        );
        SequentialLr {
            schedules,
            milestones,
        }
    }

    /// Appends another schedule starting at step `milestone` (absolute).
    ///
    /// # Panics
    /// If `milestone` is not after the last one.
    #[track_caller]
    pub fn then_at(mut self, milestone: usize, next: impl Schedule + 'static) -> Self {
        assert!(
            self.milestones.last().is_none_or(|&m| m < milestone),
            "SequentialLr: milestone {milestone} must come after {:?}",
            self.milestones
        );
        self.milestones.push(milestone);
        self.schedules.push(Box::new(next));
        self
    }
}

impl Schedule for SequentialLr {
    fn lr(&self, base_lr: f64, step: usize) -> f64 {
        let i = self.milestones.partition_point(|&m| m <= step);
        let start = if i == 0 { 0 } else { self.milestones[i - 1] };
        self.schedules[i].lr(base_lr, step - start)
    }
}

/// Applies a [`Schedule`] to every group of an optimiser: remembers each group's base
/// learning rate at creation and, at every [`step`](Self::step), sets group `i`'s rate to
/// `schedule.lr(base_i, t)`. Its state (the step and the base rates) saves with serde, so
/// a resumed run continues the schedule.
///
/// ```
/// use tapegrad::{DType, Tensor};
/// use tapegrad_nn::Param;
/// use tapegrad_optim::{LrScheduler, Optimizer, Sgd, SgdConfig};
/// use tapegrad_optim::schedule::StepLr;
/// let w = Param::new(Tensor::zeros(&[1], DType::F32));
/// let mut opt = Sgd::new([w], SgdConfig { lr: 1.0, ..SgdConfig::default() });
/// let mut sched = LrScheduler::new(StepLr::new(2, 0.5), &mut opt);
/// let mut seen = vec![];
/// for _ in 0..5 {
///     seen.push(opt.lr()); // ... opt.step(&grads) here ...
///     sched.step(&mut opt);
/// }
/// assert_eq!(seen, vec![1.0, 1.0, 0.5, 0.5, 0.25]);
/// ```
pub struct LrScheduler<S> {
    schedule: S,
    state: SchedulerState,
}

/// The resumable state of an [`LrScheduler`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SchedulerState {
    /// Steps taken.
    pub step: usize,
    /// The base learning rate of each group.
    pub base_lrs: Vec<f64>,
}

impl<S: Schedule> LrScheduler<S> {
    /// Takes each group's current rate as its base and sets the rate of step 0.
    pub fn new<O: Optimizer + ?Sized>(schedule: S, opt: &mut O) -> Self {
        let base_lrs = (0..opt.num_groups()).map(|g| opt.group_lr(g)).collect();
        let s = LrScheduler {
            schedule,
            state: SchedulerState { step: 0, base_lrs },
        };
        s.apply(opt);
        s
    }

    /// Advances one step and sets every group's rate.
    pub fn step<O: Optimizer + ?Sized>(&mut self, opt: &mut O) {
        self.state.step += 1;
        self.apply(opt);
    }

    /// Steps taken so far.
    pub fn last_step(&self) -> usize {
        self.state.step
    }

    /// The rate of each group at the current step.
    pub fn lrs(&self) -> Vec<f64> {
        self.state
            .base_lrs
            .iter()
            .map(|&b| self.schedule.lr(b, self.state.step))
            .collect()
    }

    /// The schedule.
    pub fn schedule(&self) -> &S {
        &self.schedule
    }

    /// The state to save.
    pub fn state(&self) -> &SchedulerState {
        &self.state
    }

    /// Restores a saved state and sets the optimiser's rates from it.
    ///
    /// # Panics
    /// If the state has another number of groups than the optimiser.
    #[track_caller]
    pub fn load_state<O: Optimizer + ?Sized>(&mut self, state: SchedulerState, opt: &mut O) {
        assert_eq!(
            state.base_lrs.len(),
            opt.num_groups(),
            "LrScheduler::load_state: the state has {} groups, the optimiser {}",
            state.base_lrs.len(),
            opt.num_groups()
        );
        self.state = state;
        self.apply(opt);
    }

    #[track_caller]
    fn apply<O: Optimizer + ?Sized>(&self, opt: &mut O) {
        assert_eq!(
            self.state.base_lrs.len(),
            opt.num_groups(),
            "LrScheduler: created for {} groups, the optimiser has {}",
            self.state.base_lrs.len(),
            opt.num_groups()
        );
        for (g, &base) in self.state.base_lrs.iter().enumerate() {
            opt.set_group_lr(g, self.schedule.lr(base, self.state.step));
        }
    }
}
