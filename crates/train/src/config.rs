//! How to train ([`TrainConfig`]) and what training reports ([`EpochMetrics`],
//! [`Event`], [`Stop`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tapegrad::Grads;
use tapegrad_data::BatchSizeSchedule;
use tapegrad_optim::schedule::Schedule;

use crate::adaptive::AdaptiveBatch;
use crate::DataParallel;

/// How to train. `batch_size` is the micro-batch (what one forward/backward holds in
/// memory); each parameter update averages `accumulate` micro-batches, so the effective
/// batch is `batch_size x accumulate`.
pub struct TrainConfig {
    /// Number of epochs (full passes over the training set) to reach.
    pub epochs: usize,
    /// Micro-batch size per epoch (constant, or growing at milestones).
    pub batch_size: BatchSizeSchedule,
    /// Micro-batches per update (gradient accumulation); 1 = none.
    pub accumulate: usize,
    /// Learning-rate schedule over updates (iterations); `None` = constant. It scales each
    /// parameter group's own rate as the optimiser was configured (after the batch-size
    /// schedule's factor): the optimiser's configuration is the one source of base rates.
    pub schedule: Option<Arc<dyn Schedule>>,
    /// Clip the global L2 gradient norm to this value.
    pub clip_grad_norm: Option<f64>,
    /// Seed of the per-epoch shuffle.
    pub seed: u64,
    /// Stop when the validation loss has not improved for this many epochs.
    pub early_stopping_patience: Option<usize>,
    /// Write a checkpoint here at every epoch end and when stopping.
    pub checkpoint_dir: Option<PathBuf>,
    /// Stop (and checkpoint) after this many updates in total.
    pub max_iterations: Option<usize>,
    /// Stop (and checkpoint) at the first update boundary after this much training time.
    pub time_budget: Option<Duration>,
    /// Batch size used for evaluation.
    pub eval_batch_size: usize,
    /// Grow the batch adaptively (gradient noise scale, loss plateau) instead of by
    /// `batch_size` and `accumulate`, which are then not used.
    pub adaptive_batch: Option<AdaptiveBatch>,
    /// Train as one of several data-parallel processes (see [`DataParallel`]): the batch
    /// size is then the global batch, and only rank 0 writes checkpoints. `None` = one
    /// process.
    pub data_parallel: Option<Arc<dyn DataParallel>>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 10,
            batch_size: BatchSizeSchedule::new(64),
            accumulate: 1,
            schedule: None,
            clip_grad_norm: None,
            seed: 0,
            early_stopping_patience: None,
            checkpoint_dir: None,
            max_iterations: None,
            time_budget: None,
            eval_batch_size: 512,
            adaptive_batch: None,
            data_parallel: None,
        }
    }
}

/// What one epoch achieved (one line of `metrics.jsonl`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// 1-based number of epochs completed.
    pub epoch: usize,
    /// Parameter updates so far.
    pub iteration: usize,
    /// Mean training loss over the epoch's samples.
    pub train_loss: f64,
    /// Loss on the validation set.
    pub val_loss: Option<f64>,
    /// Accuracy on the validation set (the metric `accuracy`, if the loss reports it).
    pub val_accuracy: Option<f64>,
    /// Every metric the loss reports, on the validation set.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub val_metrics: BTreeMap<String, f64>,
    /// Accuracy on the test set, when one was evaluated.
    pub test_accuracy: Option<f64>,
    /// Training samples per second (forward, backward and update).
    pub samples_per_s: f64,
    /// Learning rate at the end of the epoch.
    pub lr: f64,
    /// Micro-batch size of the epoch (with an adaptive batch: samples per update at the
    /// epoch's end).
    pub batch_size: usize,
    /// Wall-clock seconds of the epoch's training.
    pub seconds: f64,
}

/// Progress events, for progress bars and logs.
#[derive(Clone, Debug)]
pub enum Event<'a> {
    /// A micro-batch was processed.
    Batch {
        /// 0-based epoch.
        epoch: usize,
        /// 0-based micro-batch index in the epoch.
        batch: usize,
        /// Micro-batches in the epoch.
        batches: usize,
        /// Its loss.
        loss: f64,
        /// Samples processed in the epoch so far.
        samples: usize,
        /// Training samples per second in the epoch so far.
        samples_per_s: f64,
    },
    /// A parameter update was taken.
    Update {
        /// What it was.
        metrics: UpdateMetrics,
        /// The gradients it stepped with (after clipping), keyed by parameter.
        grads: GradsRef<'a>,
    },
    /// An epoch finished and was evaluated.
    Epoch(EpochMetrics),
}

/// What one parameter update was (one step of TensorBoard's per-step scalars).
#[derive(Clone, Debug, PartialEq)]
pub struct UpdateMetrics {
    /// Updates done, this one included (the step it is logged at).
    pub iteration: usize,
    /// 0-based epoch.
    pub epoch: usize,
    /// Mean loss over the update's samples.
    pub loss: f64,
    /// The first parameter group's learning rate for this update.
    pub lr: f64,
    /// Global L2 norm of the gradient, before clipping.
    pub grad_norm: f64,
    /// Samples in the update (micro-batch x accumulated micro-batches).
    pub batch_size: usize,
    /// Training samples per second in the epoch so far.
    pub samples_per_s: f64,
}

/// The gradients of an [`Event::Update`], borrowed for the time of the callback.
#[derive(Clone, Copy)]
pub struct GradsRef<'a>(pub &'a Grads);

impl std::fmt::Debug for GradsRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Grads({} tensors)", self.0.len())
    }
}

/// Why [`Trainer::fit`](crate::Trainer::fit) returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// All epochs done.
    Completed,
    /// Early stopping: no validation improvement for the patience.
    EarlyStopped,
    /// `max_iterations` or `time_budget` reached.
    Budget,
}
