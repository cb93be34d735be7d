//! `EarlyStopping`: stop training when a validation metric has stopped improving, keeping
//! the best metric, its step and a snapshot (typically of the parameters).

use serde::{Deserialize, Serialize};
use tapegrad::{DType, Tensor};
use tapegrad_nn::Param;

/// Whether a lower or a higher metric is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    /// Lower is better (a loss).
    Min,
    /// Higher is better (an accuracy).
    Max,
}

/// What [`EarlyStopping::observe`] concluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Observation {
    /// The metric improved by more than `min_delta`; the snapshot was taken.
    Improved,
    /// No improvement, but still within the patience.
    Waiting,
    /// No improvement for `patience` observations: stop.
    Stop,
}

/// Stops training after `patience` observations without an improvement larger than
/// `min_delta`, and keeps the best observation: its metric, its step and a snapshot the
/// caller provides (taken only when the metric improves, so copying the weights costs
/// nothing on the other steps).
///
/// ```text
/// improved(a) = a < best − min_delta   (Min)      a > best + min_delta   (Max)
/// stop when   the number of observations since the last improvement reaches patience
/// ```
///
/// ```
/// use tapegrad::{DType, Tensor};
/// use tapegrad_nn::Param;
/// use tapegrad_optim::{EarlyStopping, Mode, Observation};
/// let w = Param::new(Tensor::zeros(&[2], DType::F64));
/// let mut stop = EarlyStopping::new(2, 0.0, Mode::Min);
/// let mut outcome = Observation::Waiting;
/// for (step, loss) in [3.0, 2.0, 2.5, 2.1].into_iter().enumerate() {
///     w.set(&Tensor::full(&[2], step as f64, DType::F64)); // "training"
///     outcome = stop.observe(step, loss, || EarlyStopping::snapshot_params(std::slice::from_ref(&w)));
/// }
/// assert_eq!(outcome, Observation::Stop);
/// let (best, step, snapshot) = stop.best().unwrap();
/// assert_eq!((best, step), (2.0, 1));
/// EarlyStopping::restore_params(std::slice::from_ref(&w), snapshot);
/// assert_eq!(w.to_vec::<f64>(), vec![1.0, 1.0]);
/// ```
#[derive(Clone, Debug)]
pub struct EarlyStopping<S = Vec<Tensor>> {
    /// Observations without improvement before stopping.
    pub patience: usize,
    /// Minimum change that counts as an improvement.
    pub min_delta: f64,
    /// Whether lower or higher is better.
    pub mode: Mode,
    best: Option<(f64, usize, S)>,
    since_best: usize,
}

impl<S> EarlyStopping<S> {
    /// Stops after `patience` observations without an improvement of more than `min_delta`.
    ///
    /// # Panics
    /// If `patience` is 0 or `min_delta` is negative.
    #[track_caller]
    pub fn new(patience: usize, min_delta: f64, mode: Mode) -> Self {
        assert!(patience > 0, "EarlyStopping: patience must be positive");
        assert!(
            min_delta >= 0.0,
            "EarlyStopping: min_delta {min_delta} must be non-negative"
        );
        EarlyStopping {
            patience,
            min_delta,
            mode,
            best: None,
            since_best: 0,
        }
    }

    /// Records `metric` at `step`; calls `snapshot` (and keeps its result) when the metric
    /// is the best so far. A NaN metric never counts as an improvement.
    pub fn observe(
        &mut self,
        step: usize,
        metric: f64,
        snapshot: impl FnOnce() -> S,
    ) -> Observation {
        let improved = match &self.best {
            None => !metric.is_nan(),
            Some((best, _, _)) => match self.mode {
                Mode::Min => metric < best - self.min_delta,
                Mode::Max => metric > best + self.min_delta,
            },
        };
        if improved {
            self.best = Some((metric, step, snapshot()));
            self.since_best = 0;
            Observation::Improved
        } else {
            self.since_best += 1;
            if self.since_best >= self.patience {
                Observation::Stop
            } else {
                Observation::Waiting
            }
        }
    }

    /// Whether the last observation said stop.
    pub fn should_stop(&self) -> bool {
        self.since_best >= self.patience
    }

    /// The best metric, its step and its snapshot.
    pub fn best(&self) -> Option<(f64, usize, &S)> {
        self.best.as_ref().map(|(m, s, snap)| (*m, *s, snap))
    }

    /// Observations since the best one.
    pub fn since_best(&self) -> usize {
        self.since_best
    }

    /// The same stopper with its progress restored (from a checkpoint): the best
    /// observation so far and the observations since it.
    ///
    /// ```
    /// use tapegrad_optim::{EarlyStopping, Mode, Observation};
    /// let mut stop = EarlyStopping::<()>::new(2, 0.0, Mode::Min).with_progress(Some((1.0, 4, ())), 1);
    /// assert_eq!(stop.observe(6, 1.5, || ()), Observation::Stop);
    /// ```
    pub fn with_progress(mut self, best: Option<(f64, usize, S)>, since_best: usize) -> Self {
        self.best = best;
        self.since_best = since_best;
        self
    }
}

impl EarlyStopping<Vec<Tensor>> {
    /// Deep copies of the parameters' values (later in-place updates do not reach them).
    pub fn snapshot_params(params: &[Param]) -> Vec<Tensor> {
        params
            .iter()
            .map(|p| match p.dtype() {
                DType::F32 => Tensor::from_array(p.to_array::<f32>()),
                DType::F64 => Tensor::from_array(p.to_array::<f64>()),
                DType::I64 => Tensor::from_array(p.to_array::<i64>()),
                DType::Bool => Tensor::from_array(p.to_array::<bool>()),
            })
            .collect()
    }

    /// Writes a snapshot back into the parameters, in place.
    ///
    /// # Panics
    /// If the lengths, shapes or dtypes differ.
    #[track_caller]
    pub fn restore_params(params: &[Param], snapshot: &[Tensor]) {
        assert_eq!(
            params.len(),
            snapshot.len(),
            "EarlyStopping::restore_params: {} parameters, {} tensors in the snapshot",
            params.len(),
            snapshot.len()
        );
        for (p, s) in params.iter().zip(snapshot) {
            p.set(s);
        }
    }
}
