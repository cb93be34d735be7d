//! Adaptive batch size: grow the batch when the measured gradient noise scale exceeds it,
//! or when the loss stops improving, within a largest micro-batch (a memory budget).
//!
//! The gradient noise scale (McCandlish et al. 2018, "An Empirical Model of Large-Batch
//! Training") is `B_simple = tr(Σ) / |G|²`: the per-sample gradient covariance over the
//! squared true gradient. Below it a larger batch cuts the gradient's noise almost for
//! free (fewer updates for the same progress); far above it, samples are wasted. Its
//! estimate needs only the squared norms of gradients at two batch sizes, which an update
//! of several micro-batches already has: each micro-batch's gradient (size `b`) and their
//! mean (size `k b`). Appendix A.1 of the paper gives unbiased estimates of both parts:
//!
//! ```text
//! |G|²  ≈ (B_big |G_big|² - B_small |G_small|²) / (B_big - B_small)
//! tr(Σ) ≈ (|G_small|² - |G_big|²) / (1 / B_small - 1 / B_big)
//! ```
//!
//! Each is noisy, so both are smoothed (exponential moving averages) before their ratio
//! is taken, as the paper does.

use serde::{Deserialize, Serialize};

/// How the learning rate follows the batch: `lr = base x (B / B0)` (linear) or
/// `base x sqrt(B / B0)`.
///
/// Linear keeps SGD's expected step per sample the same (Goyal et al. 2017); for Adam-like
/// optimisers, whose step is normalised by the gradient's own scale, the square root keeps
/// the noise of the update the same (Malladi et al. 2022, the SDE scaling rule for Adam).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LrRule {
    /// `lr x B / B0`.
    Linear,
    /// `lr x sqrt(B / B0)`.
    Sqrt,
}

impl LrRule {
    /// The factor on the base rate at batch `batch` for a base rate set at `initial`.
    pub fn factor(self, batch: usize, initial: usize) -> f64 {
        let ratio = batch as f64 / initial.max(1) as f64;
        match self {
            LrRule::Linear => ratio,
            LrRule::Sqrt => ratio.sqrt(),
        }
    }
}

/// How the batch grows (see the module docs).
#[derive(Clone, Debug, PartialEq)]
pub struct AdaptiveBatch {
    /// The first batch (samples per update), at which the optimiser's rates apply.
    pub initial: usize,
    /// The largest batch it may grow to.
    pub max_batch: usize,
    /// The largest micro-batch (samples per forward/backward) that fits the memory
    /// budget; larger batches accumulate micro-batches.
    pub max_micro: usize,
    /// How the learning rate follows the batch.
    pub lr_rule: LrRule,
    /// Measure the noise scale every this many updates (an update of one micro-batch is
    /// split into two halves for it: the same gradient, at a little more cost).
    pub measure_every: usize,
    /// Weight of the past in the moving averages of the two estimates (0.95 = about 20
    /// measurements).
    pub smoothing: f64,
    /// Measurements after a growth before the noise scale may grow the batch again.
    pub cooldown: usize,
    /// Grow when the smoothed loss has not improved by `plateau_tolerance` (relative)
    /// for this many updates.
    pub plateau_patience: usize,
    /// Relative improvement of the smoothed loss that counts as progress.
    pub plateau_tolerance: f64,
}

impl AdaptiveBatch {
    /// Growth from `initial` up to `max_batch`, micro-batches of at most `max_micro`,
    /// with the defaults: measure every 4 updates, smoothing 0.95, cooldown 20
    /// measurements, plateau after 300 updates without a 1% improvement.
    pub fn new(initial: usize, max_batch: usize, max_micro: usize, lr_rule: LrRule) -> Self {
        AdaptiveBatch {
            initial: initial.max(1),
            max_batch: max_batch.max(initial.max(1)),
            max_micro: max_micro.max(1),
            lr_rule,
            measure_every: 4,
            smoothing: 0.95,
            cooldown: 20,
            plateau_patience: 300,
            plateau_tolerance: 0.01,
        }
    }
}

/// Where the controller is: saved in the checkpoint, so a resumed run grows exactly as an
/// uninterrupted one.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AdaptiveState {
    /// The batch now (samples per update).
    pub batch: usize,
    /// Smoothed estimate of `|G|²`.
    pub g2: Option<f64>,
    /// Smoothed estimate of `tr(Σ)`.
    pub trace: Option<f64>,
    /// Measurements since the last growth.
    pub since_growth: usize,
    /// Updates counted by the controller (for `measure_every`).
    pub updates: usize,
    /// Smoothed training loss, its best value, and updates since that best.
    pub loss: Option<f64>,
    /// Best smoothed loss since the last growth.
    pub best_loss: Option<f64>,
    /// Updates without a `plateau_tolerance` improvement.
    pub since_best: usize,
    /// Each growth: (updates done, new batch, why: "noise" or "plateau").
    pub growths: Vec<(usize, usize, String)>,
}

/// The two unbiased estimates `(|G|², tr(Σ))` from squared gradient norms at batch sizes
/// `b_small < b_big` (McCandlish et al. 2018, appendix A.1).
///
/// ```
/// use tapegrad_train::adaptive::noise_scale_parts;
/// // |G|² = 1, tr(Σ) = 100: E|G_B|² = |G|² + tr(Σ) / B.
/// let (g2, trace) = noise_scale_parts(1.0 + 100.0 / 10.0, 10.0, 1.0 + 100.0 / 40.0, 40.0);
/// assert!((g2 - 1.0).abs() < 1e-12 && (trace - 100.0).abs() < 1e-9);
/// ```
pub fn noise_scale_parts(small_sq: f64, b_small: f64, big_sq: f64, b_big: f64) -> (f64, f64) {
    let g2 = (b_big * big_sq - b_small * small_sq) / (b_big - b_small);
    let trace = (small_sq - big_sq) / (1.0 / b_small - 1.0 / b_big);
    (g2, trace)
}

impl AdaptiveState {
    /// The controller at the start of training.
    pub fn new(config: &AdaptiveBatch) -> Self {
        AdaptiveState {
            batch: config.initial,
            ..AdaptiveState::default()
        }
    }

    /// The simple noise scale `tr(Σ) / |G|²` from the smoothed estimates, once both are
    /// positive.
    pub fn noise_scale(&self) -> Option<f64> {
        match (self.trace, self.g2) {
            (Some(t), Some(g)) if t > 0.0 && g > 0.0 => Some(t / g),
            _ => None,
        }
    }

    /// The micro-batch size and micro-batches per update for the next update: the batch
    /// in as few micro-batches as fit, or in two halves when this update measures noise.
    pub fn plan(&self, config: &AdaptiveBatch) -> (usize, usize) {
        let measure = self.updates.is_multiple_of(config.measure_every.max(1));
        let mut parts = self.batch.div_ceil(config.max_micro);
        if measure && parts == 1 && self.batch >= 2 {
            parts = 2;
        }
        (self.batch.div_ceil(parts), parts)
    }

    /// Takes in one update: its mean loss, its samples, the squared norm of its gradient
    /// and, when it had several micro-batches of `micro` samples each, their squared
    /// gradient norms. Returns the new batch if it grew.
    pub fn observe(
        &mut self,
        config: &AdaptiveBatch,
        loss: f64,
        samples: usize,
        big_sq: f64,
        micro: usize,
        micro_sq: &[f64],
    ) -> Option<usize> {
        self.updates += 1;
        let beta = config.smoothing;
        let smooth =
            |old: Option<f64>, new: f64| Some(old.map_or(new, |o| beta * o + (1.0 - beta) * new));
        if micro_sq.len() >= 2 && micro * micro_sq.len() == samples {
            let small_sq = micro_sq.iter().sum::<f64>() / micro_sq.len() as f64;
            let (g2, trace) = noise_scale_parts(small_sq, micro as f64, big_sq, samples as f64);
            if g2.is_finite() && trace.is_finite() {
                self.g2 = smooth(self.g2, g2);
                self.trace = smooth(self.trace, trace);
                self.since_growth += 1;
            }
        }
        self.loss = smooth(self.loss, loss);
        let now = self.loss.expect("just set");
        match self.best_loss {
            Some(best) if now > best * (1.0 - config.plateau_tolerance) => self.since_best += 1,
            _ => {
                self.best_loss = Some(now);
                self.since_best = 0;
            }
        }
        if self.batch >= config.max_batch {
            return None;
        }
        let noisy = self.since_growth >= config.cooldown
            && self.noise_scale().is_some_and(|b| b > self.batch as f64);
        let plateau = self.since_best >= config.plateau_patience;
        if !(noisy || plateau) {
            return None;
        }
        self.batch = (self.batch * 2).min(config.max_batch);
        let why = if noisy { "noise" } else { "plateau" };
        self.growths
            .push((self.updates, self.batch, why.to_string()));
        self.since_growth = 0;
        self.best_loss = None;
        self.since_best = 0;
        Some(self.batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tapegrad::{DType, Tensor};

    /// Squared norm of the mean of `rows` rows of `d` values.
    fn mean_sq(values: &[f64], rows: std::ops::Range<usize>, d: usize) -> f64 {
        let n = rows.len() as f64;
        let mut mean = vec![0.0; d];
        for r in rows {
            for (m, v) in mean.iter_mut().zip(&values[r * d..(r + 1) * d]) {
                *m += v / n;
            }
        }
        mean.iter().map(|m| m * m).sum()
    }

    #[test]
    fn the_estimator_recovers_a_known_noise_scale_from_synthetic_gradients() {
        // Per-sample gradients g_i = G + e_i, e_i ~ N(0, s² I) in d dimensions:
        // tr(Σ) = d s², so B_noise = d s² / |G|² = 50 * 4 / 2 = 100.
        let (d, s, b) = (50usize, 2.0, 32usize);
        let g = vec![0.2f64; d]; // |G|² = 50 * 0.04 = 2
        let truth = d as f64 * s * s / 2.0;
        let config = AdaptiveBatch {
            smoothing: 0.99,
            cooldown: usize::MAX,
            plateau_patience: usize::MAX,
            ..AdaptiveBatch::new(2 * b, 4096, b, LrRule::Sqrt)
        };
        let mut state = AdaptiveState::new(&config);
        for step in 0..2000u64 {
            let noise = Tensor::randn(&[2 * b, d], DType::F64, step).to_vec::<f64>();
            let grads: Vec<f64> = noise
                .iter()
                .enumerate()
                .map(|(i, e)| g[i % d] + s * e)
                .collect();
            let micro = [mean_sq(&grads, 0..b, d), mean_sq(&grads, b..2 * b, d)];
            let big = mean_sq(&grads, 0..2 * b, d);
            assert_eq!(state.observe(&config, 1.0, 2 * b, big, b, &micro), None);
        }
        let estimate = state.noise_scale().unwrap();
        assert!(
            (estimate - truth).abs() < 0.15 * truth,
            "estimated noise scale {estimate}, true {truth}"
        );
        // Smaller noise, smaller scale: the estimate follows the truth, not a constant.
        let mut quiet = AdaptiveState::new(&config);
        for step in 0..2000u64 {
            let noise = Tensor::randn(&[2 * b, d], DType::F64, 10_000 + step).to_vec::<f64>();
            let grads: Vec<f64> = noise
                .iter()
                .enumerate()
                .map(|(i, e)| g[i % d] + 0.5 * e)
                .collect();
            let micro = [mean_sq(&grads, 0..b, d), mean_sq(&grads, b..2 * b, d)];
            quiet.observe(&config, 1.0, 2 * b, mean_sq(&grads, 0..2 * b, d), b, &micro);
        }
        let small = quiet.noise_scale().unwrap();
        assert!(
            (small - truth / 16.0).abs() < 0.15 * truth / 16.0,
            "{small}"
        );
    }

    #[test]
    fn the_batch_grows_when_the_noise_scale_exceeds_it_and_on_a_plateau() {
        let config = AdaptiveBatch {
            cooldown: 3,
            plateau_patience: 5,
            ..AdaptiveBatch::new(16, 64, 32, LrRule::Linear)
        };
        // A noise scale of 1000 (|G|² = 1, tr(Σ) = 1000) against a batch of 16.
        let mut state = AdaptiveState::new(&config);
        let at = |b: f64| 1.0 + 1000.0 / b;
        let mut grown = Vec::new();
        for i in 0..3 {
            // Falling loss: no plateau.
            let loss = 1.0 / (i + 1) as f64;
            grown.extend(state.observe(&config, loss, 16, at(16.0), 8, &[at(8.0), at(8.0)]));
        }
        assert_eq!(grown, [32]);
        assert_eq!(state.growths[0].2, "noise");
        assert_eq!(config.lr_rule.factor(state.batch, config.initial), 2.0);
        // No noise measurement (a single micro-batch) and a flat loss: a plateau.
        let mut flat = AdaptiveState::new(&config);
        let mut grown = Vec::new();
        for _ in 0..6 {
            grown.extend(flat.observe(&config, 0.5, 16, 1.0, 16, &[]));
        }
        assert_eq!(grown, [32]);
        assert_eq!(flat.growths[0].2, "plateau");
        // Never beyond max_batch.
        flat.batch = 64;
        for _ in 0..20 {
            assert_eq!(flat.observe(&config, 0.5, 64, 1.0, 64, &[]), None);
        }
        // Plans: two halves on a measuring update, accumulation above max_micro.
        assert_eq!(
            AdaptiveState {
                batch: 16,
                updates: 0,
                ..flat.clone()
            }
            .plan(&config),
            (8, 2)
        );
        assert_eq!(
            AdaptiveState {
                batch: 16,
                updates: 1,
                ..flat.clone()
            }
            .plan(&config),
            (16, 1)
        );
        assert_eq!(
            AdaptiveState {
                batch: 64,
                updates: 1,
                ..flat
            }
            .plan(&config),
            (32, 2)
        );
        assert_eq!(LrRule::Sqrt.factor(64, 16), 2.0);
    }
}
