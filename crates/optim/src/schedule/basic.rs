//! The simple closed-form schedules: constant (with an optional initial factor), step,
//! multi-step, exponential, linear warm-up and polynomial decay.

use super::{HasLength, Schedule};

/// PyTorch's `ConstantLR`: `base · factor` for the first `total_iters` steps, then `base`.
/// [`ConstantLr::fixed`] is the constant schedule.
///
/// ```text
/// lr(t) = base · factor   if t < total_iters
///         base            otherwise
/// ```
///
/// ```
/// use tapegrad_optim::schedule::{ConstantLr, Schedule};
/// // PyTorch's documented example: lr 0.05, factor 0.5, total_iters 4
/// let s = ConstantLr::new(0.5, 4);
/// let lrs: Vec<f64> = (0..6).map(|t| s.lr(0.05, t)).collect();
/// assert_eq!(lrs, vec![0.025, 0.025, 0.025, 0.025, 0.05, 0.05]);
/// assert_eq!(ConstantLr::fixed().lr(0.3, 1000), 0.3);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct ConstantLr {
    /// The factor of the first steps (PyTorch default 1/3).
    pub factor: f64,
    /// How many steps it applies (PyTorch default 5).
    pub total_iters: usize,
}

impl ConstantLr {
    /// `factor` for `total_iters` steps.
    ///
    /// # Panics
    /// If `factor` is outside `[0, 1]` (as PyTorch).
    #[track_caller]
    pub fn new(factor: f64, total_iters: usize) -> Self {
        assert!(
            (0.0..=1.0).contains(&factor),
            "ConstantLr: factor {factor} must be in [0, 1]"
        );
        ConstantLr {
            factor,
            total_iters,
        }
    }

    /// The base rate at every step.
    pub fn fixed() -> Self {
        ConstantLr {
            factor: 1.0,
            total_iters: 0,
        }
    }
}

impl Default for ConstantLr {
    /// PyTorch's defaults: factor 1/3 for 5 steps.
    fn default() -> Self {
        ConstantLr {
            factor: 1.0 / 3.0,
            total_iters: 5,
        }
    }
}

impl Schedule for ConstantLr {
    fn lr(&self, base_lr: f64, step: usize) -> f64 {
        if step < self.total_iters {
            base_lr * self.factor
        } else {
            base_lr
        }
    }
}

impl HasLength for ConstantLr {
    fn length(&self) -> usize {
        self.total_iters
    }
}

/// PyTorch's `StepLR`: decays by `gamma` every `step_size` steps.
///
/// ```text
/// lr(t) = base · gamma^⌊t / step_size⌋
/// ```
///
/// ```
/// use tapegrad_optim::schedule::{Schedule, StepLr};
/// // PyTorch's documented example: lr 0.05, step_size 30, gamma 0.1
/// let s = StepLr::new(30, 0.1);
/// assert_eq!(s.lr(0.05, 29), 0.05);
/// assert!((s.lr(0.05, 30) - 0.005).abs() < 1e-15);
/// assert!((s.lr(0.05, 60) - 0.0005).abs() < 1e-15);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct StepLr {
    /// Period of the decay.
    pub step_size: usize,
    /// Factor per period (PyTorch default 0.1).
    pub gamma: f64,
}

impl StepLr {
    /// Decay by `gamma` every `step_size` steps.
    ///
    /// # Panics
    /// If `step_size` is 0.
    #[track_caller]
    pub fn new(step_size: usize, gamma: f64) -> Self {
        assert!(step_size > 0, "StepLr: step_size must be positive");
        StepLr { step_size, gamma }
    }
}

impl Schedule for StepLr {
    fn lr(&self, base_lr: f64, step: usize) -> f64 {
        base_lr * self.gamma.powi((step / self.step_size) as i32)
    }
}

/// PyTorch's `MultiStepLR`: decays by `gamma` at each milestone.
///
/// ```text
/// lr(t) = base · gamma^(number of milestones ≤ t)
/// ```
///
/// ```
/// use tapegrad_optim::schedule::{MultiStepLr, Schedule};
/// // PyTorch's documented example: lr 0.05, milestones [30, 80], gamma 0.1
/// let s = MultiStepLr::new(vec![30, 80], 0.1);
/// assert_eq!(s.lr(0.05, 29), 0.05);
/// assert!((s.lr(0.05, 30) - 0.005).abs() < 1e-15);
/// assert!((s.lr(0.05, 80) - 0.0005).abs() < 1e-15);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct MultiStepLr {
    /// Steps at which to decay (sorted; a repeated milestone decays twice, as in PyTorch).
    pub milestones: Vec<usize>,
    /// Factor per milestone (PyTorch default 0.1).
    pub gamma: f64,
}

impl MultiStepLr {
    /// Decay by `gamma` at each of `milestones` (sorted here).
    pub fn new(mut milestones: Vec<usize>, gamma: f64) -> Self {
        milestones.sort_unstable();
        MultiStepLr { milestones, gamma }
    }
}

impl Schedule for MultiStepLr {
    fn lr(&self, base_lr: f64, step: usize) -> f64 {
        let passed = self.milestones.partition_point(|&m| m <= step);
        base_lr * self.gamma.powi(passed as i32)
    }
}

/// PyTorch's `ExponentialLR`: decays by `gamma` every step.
///
/// ```text
/// lr(t) = base · gamma^t
/// ```
///
/// ```
/// use tapegrad_optim::schedule::{ExponentialLr, Schedule};
/// assert!((ExponentialLr::new(0.5).lr(1.0, 3) - 0.125).abs() < 1e-15);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct ExponentialLr {
    /// Factor per step.
    pub gamma: f64,
}

impl ExponentialLr {
    /// Decay by `gamma` every step.
    pub fn new(gamma: f64) -> Self {
        ExponentialLr { gamma }
    }
}

impl Schedule for ExponentialLr {
    fn lr(&self, base_lr: f64, step: usize) -> f64 {
        base_lr * self.gamma.powf(step as f64)
    }
}

/// Linear warm-up, PyTorch's `LinearLR`: the factor goes linearly from `start_factor` to
/// `end_factor` over `total_iters` steps, then stays.
///
/// ```text
/// lr(t) = base · (start + (end − start) · min(t, total_iters) / total_iters)
/// ```
///
/// Chain it with [`Schedule::then`] to decay after the warm-up.
///
/// ```
/// use tapegrad_optim::schedule::{LinearWarmup, Schedule};
/// // PyTorch's documented example: lr 0.05, start_factor 0.5, total_iters 4
/// let s = LinearWarmup { start_factor: 0.5, end_factor: 1.0, total_iters: 4 };
/// let lrs: Vec<f64> = (0..6).map(|t| s.lr(0.05, t)).collect();
/// let expected = [0.025, 0.03125, 0.0375, 0.04375, 0.05, 0.05];
/// assert!(lrs.iter().zip(expected).all(|(a, b)| (a - b).abs() < 1e-15));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct LinearWarmup {
    /// Factor at step 0 (PyTorch default 1/3; 0 is allowed here: the closed form needs
    /// no division by it).
    pub start_factor: f64,
    /// Factor from `total_iters` on (default 1).
    pub end_factor: f64,
    /// Length of the ramp (PyTorch default 5).
    pub total_iters: usize,
}

impl LinearWarmup {
    /// A ramp from `start_factor · base` to `base` over `total_iters` steps.
    ///
    /// # Panics
    /// If `start_factor` is outside `[0, 1]`.
    #[track_caller]
    pub fn new(start_factor: f64, total_iters: usize) -> Self {
        assert!(
            (0.0..=1.0).contains(&start_factor),
            "LinearWarmup: start_factor {start_factor} must be in [0, 1]"
        );
        LinearWarmup {
            start_factor,
            end_factor: 1.0,
            total_iters,
        }
    }
}

impl Default for LinearWarmup {
    /// PyTorch's defaults: 1/3 to 1 over 5 steps.
    fn default() -> Self {
        LinearWarmup {
            start_factor: 1.0 / 3.0,
            end_factor: 1.0,
            total_iters: 5,
        }
    }
}

impl Schedule for LinearWarmup {
    fn lr(&self, base_lr: f64, step: usize) -> f64 {
        if self.total_iters == 0 {
            return base_lr * self.end_factor;
        }
        let frac = step.min(self.total_iters) as f64 / self.total_iters as f64;
        base_lr * (self.start_factor + (self.end_factor - self.start_factor) * frac)
    }
}

impl HasLength for LinearWarmup {
    fn length(&self) -> usize {
        self.total_iters
    }
}

/// PyTorch's `PolynomialLR`: polynomial decay to 0 over `total_iters` steps.
///
/// ```text
/// lr(t) = base · (1 − min(t, total_iters) / total_iters)^power
/// ```
///
/// ```
/// use tapegrad_optim::schedule::{PolynomialLr, Schedule};
/// // PyTorch's documented example: lr 0.001, total_iters 4, power 1
/// let s = PolynomialLr::new(4, 1.0);
/// let lrs: Vec<f64> = (0..6).map(|t| s.lr(0.001, t)).collect();
/// let expected = [0.001, 0.00075, 0.0005, 0.00025, 0.0, 0.0];
/// assert!(lrs.iter().zip(expected).all(|(a, b)| (a - b).abs() < 1e-15));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct PolynomialLr {
    /// Steps to reach 0 (PyTorch default 5).
    pub total_iters: usize,
    /// Power of the polynomial (PyTorch default 1).
    pub power: f64,
}

impl PolynomialLr {
    /// Decay to 0 over `total_iters` steps.
    ///
    /// # Panics
    /// If `total_iters` is 0.
    #[track_caller]
    pub fn new(total_iters: usize, power: f64) -> Self {
        assert!(
            total_iters > 0,
            "PolynomialLr: total_iters must be positive"
        );
        PolynomialLr { total_iters, power }
    }
}

impl Schedule for PolynomialLr {
    fn lr(&self, base_lr: f64, step: usize) -> f64 {
        let frac = step.min(self.total_iters) as f64 / self.total_iters as f64;
        base_lr * (1.0 - frac).powf(self.power)
    }
}
