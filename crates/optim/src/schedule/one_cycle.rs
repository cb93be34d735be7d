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
/// (PyTorch also cycles the momentum; this schedule covers the learning rate only.)
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
        }
    }
}

impl Schedule for OneCycleLr {
    fn lr(&self, base_lr: f64, step: usize) -> f64 {
        let n = self.total_steps as f64;
        let initial = base_lr / self.div_factor;
        let min = initial / self.final_div_factor;
        // (end step, start rate, end rate)
        let phases: [(f64, f64, f64); 3];
        let phases: &[(f64, f64, f64)] = if self.three_phase {
            phases = [
                (self.pct_start * n - 1.0, initial, base_lr),
                (2.0 * self.pct_start * n - 2.0, base_lr, initial),
                (n - 1.0, initial, min),
            ];
            &phases
        } else {
            phases = [
                (self.pct_start * n - 1.0, initial, base_lr),
                (n - 1.0, base_lr, min),
                (0.0, 0.0, 0.0),
            ];
            &phases[..2]
        };
        let t = step.min(self.total_steps - 1) as f64;
        let mut start = 0.0;
        for (i, &(end, from, to)) in phases.iter().enumerate() {
            if t <= end || i == phases.len() - 1 {
                // a zero-length phase (tiny N) would divide by zero; it has reached its end
                let pct = if end > start {
                    (t - start) / (end - start)
                } else {
                    1.0
                };
                return self.anneal.at(from, to, pct);
            }
            start = end;
        }
        unreachable!("the last phase always matches")
    }
}
