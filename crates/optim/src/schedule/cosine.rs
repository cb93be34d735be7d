//! Cosine annealing, once (`CosineAnnealingLr`) or with warm restarts
//! (`CosineAnnealingWarmRestarts`, SGDR).

use super::Schedule;

/// PyTorch's `CosineAnnealingLR`, in its closed form (Loshchilov & Hutter, 2017):
///
/// ```text
/// lr(t) = η_min + (base − η_min) · (1 + cos(π t / T_max)) / 2
/// ```
///
/// Past `T_max` the cosine carries on (back up to `base` at `2 T_max`), as PyTorch's does.
///
/// ```
/// use tapegrad_optim::schedule::{CosineAnnealingLr, Schedule};
/// let s = CosineAnnealingLr::new(10, 0.0);
/// assert_eq!(s.lr(0.1, 0), 0.1);
/// assert!((s.lr(0.1, 5) - 0.05).abs() < 1e-15);
/// assert!(s.lr(0.1, 10).abs() < 1e-15);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct CosineAnnealingLr {
    /// Half-period in steps.
    pub t_max: usize,
    /// Minimum rate (PyTorch default 0).
    pub eta_min: f64,
}

impl CosineAnnealingLr {
    /// Anneal from the base rate to `eta_min` over `t_max` steps.
    ///
    /// # Panics
    /// If `t_max` is 0.
    #[track_caller]
    pub fn new(t_max: usize, eta_min: f64) -> Self {
        assert!(t_max > 0, "CosineAnnealingLr: t_max must be positive");
        CosineAnnealingLr { t_max, eta_min }
    }
}

impl Schedule for CosineAnnealingLr {
    fn lr(&self, base_lr: f64, step: usize) -> f64 {
        let c = (std::f64::consts::PI * step as f64 / self.t_max as f64).cos();
        self.eta_min + (base_lr - self.eta_min) * (1.0 + c) / 2.0
    }
}

/// PyTorch's `CosineAnnealingWarmRestarts` (SGDR, Loshchilov & Hutter, 2017): cosine
/// annealing restarted every period, the `i`-th period lasting `T_i = T_0 · T_mult^i`.
///
/// ```text
/// lr(t) = η_min + (base − η_min) · (1 + cos(π T_cur / T_i)) / 2
/// ```
///
/// where `T_cur` is the number of steps since the last restart.
///
/// ```
/// use tapegrad_optim::schedule::{CosineAnnealingWarmRestarts, Schedule};
/// let s = CosineAnnealingWarmRestarts::new(2, 2, 0.0); // periods of 2, 4, 8, ...
/// assert_eq!(s.lr(1.0, 0), 1.0);
/// assert!((s.lr(1.0, 1) - 0.5).abs() < 1e-15);
/// assert_eq!(s.lr(1.0, 2), 1.0); // restart
/// assert!((s.lr(1.0, 4) - 0.5).abs() < 1e-15);
/// assert_eq!(s.lr(1.0, 6), 1.0); // restart
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct CosineAnnealingWarmRestarts {
    /// Length of the first period.
    pub t_0: usize,
    /// Growth factor of the periods (PyTorch default 1).
    pub t_mult: usize,
    /// Minimum rate (PyTorch default 0).
    pub eta_min: f64,
}

impl CosineAnnealingWarmRestarts {
    /// Periods `t_0, t_0 t_mult, t_0 t_mult², ...`.
    ///
    /// # Panics
    /// If `t_0` or `t_mult` is 0.
    #[track_caller]
    pub fn new(t_0: usize, t_mult: usize, eta_min: f64) -> Self {
        assert!(t_0 > 0, "CosineAnnealingWarmRestarts: t_0 must be positive");
        assert!(
            t_mult >= 1,
            "CosineAnnealingWarmRestarts: t_mult must be at least 1"
        );
        CosineAnnealingWarmRestarts {
            t_0,
            t_mult,
            eta_min,
        }
    }

    /// `(T_cur, T_i)` at `step`, in integers (PyTorch's logarithm formula, without its
    /// rounding).
    pub fn position(&self, step: usize) -> (usize, usize) {
        if self.t_mult == 1 {
            return (step % self.t_0, self.t_0);
        }
        let (mut t_cur, mut t_i) = (step, self.t_0);
        while t_cur >= t_i {
            t_cur -= t_i;
            t_i *= self.t_mult;
        }
        (t_cur, t_i)
    }
}

impl Schedule for CosineAnnealingWarmRestarts {
    fn lr(&self, base_lr: f64, step: usize) -> f64 {
        let (t_cur, t_i) = self.position(step);
        let c = (std::f64::consts::PI * t_cur as f64 / t_i as f64).cos();
        self.eta_min + (base_lr - self.eta_min) * (1.0 + c) / 2.0
    }
}
