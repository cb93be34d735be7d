//! `OneCycleLr`: the 1cycle policy (Smith & Topin, 2017), as PyTorch's `OneCycleLR`.

use super::Schedule;

/// How [`OneCycleLr`] moves between two rates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Anneal {
    /// `end + (start − end) (1 + cos(π p)) / 2` (PyTorch's default).
    Cos,
    /// `start + (end − start) p`.
    Linear,
}

impl Anneal {
    fn at(self, start: f64, end: f64, pct: f64) -> f64 {
        match self {
            Anneal::Cos => end + (start - end) / 2.0 * ((std::f64::consts::PI * pct).cos() + 1.0),
            Anneal::Linear => (end - start) * pct + start,
        }
    }
}

/// PyTorch's `OneCycleLR`: up from `max_lr / div_factor` to `max_lr`, then down to
/// `max_lr / (div_factor · final_div_factor)`. **The group's base rate is `max_lr`.**
///
/// Phases (ends are steps, as floats, exactly as PyTorch computes them):
///
/// ```text
/// two phases:    [0, pct_start·N − 1]: initial → max;   [.., N − 1]: max → min
/// three phases:  [0, pct_start·N − 1]: initial → max;   [.., 2·pct_start·N − 2]: max → initial;
///                [.., N − 1]: initial → min
/// lr(t) = anneal(phase start rate, phase end rate, (t − phase start) / (phase end − phase start))
/// ```
///
/// with `initial = max_lr / div_factor`, `min = initial / final_div_factor`. PyTorch
/// raises an error past step `N`; here steps past `N − 1` stay at the final rate.
/// PyTorch also cycles the momentum by default; [`OneCycleLr::momentum`] gives its value.
///
/// ```
/// use tapegrad_optim::schedule::{OneCycleLr, Schedule};
/// let s = OneCycleLr::new(100);
/// assert!((s.lr(1.0, 0) - 1.0 / 25.0).abs() < 1e-15);
/// assert!((s.lr(1.0, 29) - 1.0).abs() < 1e-15); // the peak at pct_start·N − 1
/// assert!((s.lr(1.0, 99) - 1.0 / 25.0 / 1e4).abs() < 1e-15);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct OneCycleLr {
    /// Total number of steps N.
    pub total_steps: usize,
    /// Fraction of the cycle spent increasing the rate (default 0.3).
    pub pct_start: f64,
    /// Annealing shape (default cosine).
    pub anneal: Anneal,
    /// `initial = max_lr / div_factor` (default 25).
    pub div_factor: f64,
    /// `min = initial / final_div_factor` (default 1e4).
    pub final_div_factor: f64,
    /// Use three phases (default false).
    pub three_phase: bool,
    /// Lowest momentum, reached at the peak rate (default 0.85); see [`momentum`](Self::momentum).
    pub base_momentum: f64,
    /// Highest momentum, at the start and the end (default 0.95).
    pub max_momentum: f64,
}

impl OneCycleLr {
    /// PyTorch's defaults over `total_steps` steps.
    ///
    /// # Panics
    /// If `total_steps` is 0.
    #[track_caller]
    pub fn new(total_steps: usize) -> Self {
        assert!(total_steps > 0, "OneCycleLr: total_steps must be positive");
        OneCycleLr {
            total_steps,
            pct_start: 0.3,
            anneal: Anneal::Cos,
            div_factor: 25.0,
            final_div_factor: 1e4,
            three_phase: false,
            base_momentum: 0.85,
            max_momentum: 0.95,
        }
    }
}

impl OneCycleLr {
    /// The phase containing `step` and the fraction of it done: `(phase, pct)`.
    fn phase(&self, step: usize) -> (usize, f64) {
        let n = self.total_steps as f64;
        let ends: &[f64] = if self.three_phase {
            &[
                self.pct_start * n - 1.0,
                2.0 * self.pct_start * n - 2.0,
                n - 1.0,
            ]
        } else {
            &[self.pct_start * n - 1.0, n - 1.0]
        };
        let t = step.min(self.total_steps - 1) as f64;
        let mut start = 0.0;
        for (i, &end) in ends.iter().enumerate() {
            if t <= end || i == ends.len() - 1 {
                // a zero-length phase (tiny N) would divide by zero; it has reached its end
                let pct = if end > start {
                    (t - start) / (end - start)
                } else {
                    1.0
                };
                return (i, pct);
            }
            start = end;
        }
        unreachable!("the last phase always matches")
    }

    /// The momentum PyTorch's `OneCycleLR` sets at `step` (`cycle_momentum=True`): it moves
    /// opposite to the rate, `max_momentum → base_momentum` while the rate rises and back
    /// while it falls (three phases: then stays at `max_momentum`). Apply it to SGD's
    /// `momentum` or Adam's `β1` through `hyper_mut`.
    ///
    /// ```
    /// use tapegrad_optim::schedule::OneCycleLr;
    /// let s = OneCycleLr::new(100);
    /// assert!((s.momentum(0) - 0.95).abs() < 1e-15);
    /// assert!((s.momentum(29) - 0.85).abs() < 1e-15);
    /// assert!((s.momentum(99) - 0.95).abs() < 1e-15);
    /// ```
    pub fn momentum(&self, step: usize) -> f64 {
        let (lo, hi) = (self.base_momentum, self.max_momentum);
        let (phase, pct) = self.phase(step);
        let (from, to) = match phase {
            0 => (hi, lo),
            1 => (lo, hi),
            _ => (hi, hi),
        };
        self.anneal.at(from, to, pct)
    }
}

impl Schedule for OneCycleLr {
    fn lr(&self, base_lr: f64, step: usize) -> f64 {
        let initial = base_lr / self.div_factor;
        let min = initial / self.final_div_factor;
        let (phase, pct) = self.phase(step);
        let (from, to) = match (self.three_phase, phase) {
            (_, 0) => (initial, base_lr),
            (false, _) => (base_lr, min),
            (true, 1) => (base_lr, initial),
            (true, _) => (initial, min),
        };
        self.anneal.at(from, to, pct)
    }
}
