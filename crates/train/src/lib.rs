//! # tapegrad-train
//!
//! The training loop for classifiers: epochs, evaluation, learning-rate schedule,
//! batch-size schedule, gradient clipping and accumulation, early stopping, atomic
//! checkpoints with exact resume, and a clear stop on a non-finite loss.
#![warn(missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tapegrad::{no_grad, Grads, Tensor};
use tapegrad_nn::loss::{cross_entropy, CrossEntropyOptions, Reduction};
use tapegrad_nn::Module;
use tapegrad_optim::schedule::Schedule;
use tapegrad_optim::{clip_grad_norm, Optimizer};

use tapegrad_data::{BatchSizeSchedule, DataLoader, Dataset};

/// Why training stopped early with an error.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The loss of a batch was NaN or infinite. Nothing was updated with it.
    #[error("non-finite loss {value} at epoch {epoch}, iteration {iteration} (batch {batch} of the epoch){kept}")]
    NonFiniteLoss {
        /// 1-based epoch, as progress is shown.
        epoch: usize,
        /// Number of parameter updates done before this batch.
        iteration: usize,
        /// 1-based index of the (micro-)batch within the epoch.
        batch: usize,
        /// The loss value.
        value: f64,
        /// What is on disk.
        kept: Kept,
    },
    /// The gradient norm was NaN or infinite (with clipping on). Nothing was updated.
    #[error("non-finite gradient norm {norm} at epoch {epoch}, iteration {iteration}{kept}")]
    NonFiniteGradient {
        /// 1-based epoch.
        epoch: usize,
        /// Updates done before this one.
        iteration: usize,
        /// The norm.
        norm: f64,
        /// What is on disk.
        kept: Kept,
    },
    /// At the end of an epoch (or a budget stop) a metric or a weight was NaN or infinite,
    /// so no checkpoint was written for it.
    #[error("{what} is not finite after epoch {epoch}, iteration {iteration}{kept}")]
    NonFiniteState {
        /// 1-based epoch.
        epoch: usize,
        /// Updates done.
        iteration: usize,
        /// What was not finite (`validation loss NaN`, `weight 0.weight`, ...).
        what: String,
        /// What is on disk.
        kept: Kept,
    },
    /// Writing or reading a checkpoint failed.
    #[error("checkpoint {path}: {message}")]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// The last good checkpoint when training stopped on a non-finite value: only states
/// whose losses and weights were all finite are ever written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kept {
    /// No checkpoint directory was configured.
    NoCheckpoints,
    /// A directory was configured, but nothing had been written to it yet.
    NothingYet(PathBuf),
    /// The checkpoint in `dir` is from `at` (e.g. "the end of epoch 3").
    Checkpoint {
        /// The directory.
        dir: PathBuf,
        /// Where in training it was taken, counted as progress is shown.
        at: String,
    },
}

impl std::fmt::Display for Kept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Kept::NoCheckpoints => Ok(()),
            Kept::NothingYet(dir) => write!(
                f,
                "; no checkpoint had been written to {} yet",
                dir.display()
            ),
            Kept::Checkpoint { dir, at } => write!(
                f,
                "; the last good checkpoint, from {at}, is kept in {}",
                dir.display()
            ),
        }
    }
}

/// Where `state` is, counted as progress is shown (epochs from 1).
fn position(state: &TrainState) -> String {
    if state.batch_in_epoch == 0 {
        format!(
            "the end of epoch {} (iteration {})",
            state.epoch, state.iteration
        )
    } else {
        format!("epoch {}, iteration {}", state.epoch + 1, state.iteration)
    }
}

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
    /// Base learning rate (scaled by the batch-size schedule's factor, then by `schedule`).
    pub lr: f64,
    /// Learning-rate schedule over updates (iterations); `None` = constant.
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
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 10,
            batch_size: BatchSizeSchedule::new(64),
            accumulate: 1,
            lr: 0.1,
            schedule: None,
            clip_grad_norm: None,
            seed: 0,
            early_stopping_patience: None,
            checkpoint_dir: None,
            max_iterations: None,
            time_budget: None,
            eval_batch_size: 512,
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
    /// Accuracy on the validation set.
    pub val_accuracy: Option<f64>,
    /// Accuracy on the test set, when one was evaluated.
    pub test_accuracy: Option<f64>,
    /// Training samples per second (forward, backward and update).
    pub samples_per_s: f64,
    /// Learning rate at the end of the epoch.
    pub lr: f64,
    /// Micro-batch size of the epoch.
    pub batch_size: usize,
    /// Wall-clock seconds of the epoch's training.
    pub seconds: f64,
}

/// Progress events, for progress bars and logs.
#[derive(Clone, Debug)]
pub enum Event {
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
    /// An epoch finished and was evaluated.
    Epoch(EpochMetrics),
}

/// Why [`Trainer::fit`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// All epochs done.
    Completed,
    /// Early stopping: no validation improvement for the patience.
    EarlyStopped,
    /// `max_iterations` or `time_budget` reached.
    Budget,
}

/// Where training is: saved in every checkpoint, so a resumed run continues exactly.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Current epoch (0-based).
    pub epoch: usize,
    /// Next micro-batch of the current epoch.
    pub batch_in_epoch: usize,
    /// Updates done.
    pub iteration: usize,
    /// Running sums of the current epoch: loss x samples, and samples.
    pub epoch_loss_sum: f64,
    /// Samples of the current epoch so far.
    pub epoch_samples: usize,
    /// Metrics of finished epochs.
    pub history: Vec<EpochMetrics>,
    /// Best validation loss and the epochs since it (early stopping).
    pub best_val_loss: Option<f64>,
    /// Epochs without improvement.
    pub epochs_since_best: usize,
}

impl TrainState {
    /// An error naming the first count no run could reach (over 2^53, where JSON numbers
    /// stop being exact): such a state was edited or corrupted, and training from it would
    /// overflow.
    fn check_counts(&self) -> Result<(), String> {
        const LIMIT: usize = 1 << 53;
        let counts = [
            ("epoch", self.epoch),
            ("batch_in_epoch", self.batch_in_epoch),
            ("iteration", self.iteration),
            ("epoch_samples", self.epoch_samples),
            ("epochs_since_best", self.epochs_since_best),
        ];
        match counts.iter().find(|(_, v)| *v > LIMIT) {
            Some((name, v)) => Err(format!("state.{name} {v} is not a count a run can reach")),
            None => Ok(()),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct CheckpointIndex {
    state: TrainState,
    weights: String,
    optimizer: String,
}

/// Trains a classifier `model` (logits out) with cross-entropy. Batches are converted to
/// the dtype of the model's first parameter.
pub struct Trainer<M: Module> {
    /// The model.
    pub model: M,
    /// The optimiser.
    pub optimizer: Box<dyn Optimizer>,
    /// The configuration.
    pub config: TrainConfig,
    /// Progress so far.
    pub state: TrainState,
    /// Where the last checkpoint written or resumed from was taken (see [`Kept`]).
    last_checkpoint: Option<String>,
}

impl<M: Module> Trainer<M> {
    /// A trainer at epoch 0.
    ///
    /// # Panics
    /// If `config.accumulate` is 0.
    #[track_caller]
    pub fn new(model: M, optimizer: Box<dyn Optimizer>, config: TrainConfig) -> Self {
        assert!(
            config.accumulate > 0,
            "Trainer: accumulate must be at least 1"
        );
        Trainer {
            model,
            optimizer,
            config,
            state: TrainState::default(),
            last_checkpoint: None,
        }
    }

    /// Restores weights, optimiser state and progress from the checkpoint in `dir`.
    pub fn resume(&mut self, dir: &Path) -> Result<(), TrainError> {
        let index_path = dir.join("checkpoint.json");
        let text = std::fs::read_to_string(&index_path).map_err(|e| ckpt_err(&index_path, e))?;
        let index: CheckpointIndex =
            serde_json::from_str(&text).map_err(|e| ckpt_err(&index_path, e))?;
        for name in [&index.weights, &index.optimizer] {
            let plain = Path::new(name)
                .file_name()
                .is_some_and(|f| f == name.as_str());
            if !plain {
                return Err(ckpt_err(
                    &index_path,
                    format!("{name:?} is not a file name in the checkpoint's folder"),
                ));
            }
        }
        let weights = dir.join(&index.weights);
        tapegrad_nn::io::load(&self.model, &weights).map_err(|e| ckpt_err(&weights, e))?;
        let opt = dir.join(&index.optimizer);
        self.optimizer.load(&opt).map_err(|e| ckpt_err(&opt, e))?;
        index
            .state
            .check_counts()
            .map_err(|e| ckpt_err(&index_path, e))?;
        self.state = index.state;
        self.last_checkpoint = Some(position(&self.state));
        Ok(())
    }

    /// What is on disk, for an error that stops training.
    fn kept(&self) -> Kept {
        match (&self.config.checkpoint_dir, &self.last_checkpoint) {
            (None, _) => Kept::NoCheckpoints,
            (Some(dir), None) => Kept::NothingYet(dir.clone()),
            (Some(dir), Some(at)) => Kept::Checkpoint {
                dir: dir.clone(),
                at: at.clone(),
            },
        }
    }

    /// An error if a weight or buffer of the model holds a NaN or an infinity (so that
    /// state is never checkpointed as good).
    fn check_weights_finite(&self) -> Result<(), TrainError> {
        let params = self
            .model
            .named_params()
            .into_iter()
            .map(|(n, p)| (n, p.tensor().clone()));
        for (name, t) in params.chain(self.model.named_buffers()) {
            let finite = t
                .to_dtype(tapegrad::DType::F64)
                .with_view::<f64, _>(|v| v.iter().all(|x| x.is_finite()));
            if !finite {
                return Err(TrainError::NonFiniteState {
                    epoch: self.state.epoch + usize::from(self.state.batch_in_epoch > 0),
                    iteration: self.state.iteration,
                    what: format!("weight `{name}`"),
                    kept: self.kept(),
                });
            }
        }
        Ok(())
    }

    /// Writes weights, optimiser state and progress to `dir`, each file atomically, the
    /// index last: a crash at any point leaves the previous checkpoint readable.
    pub fn checkpoint(&mut self, dir: &Path) -> Result<(), TrainError> {
        std::fs::create_dir_all(dir).map_err(|e| ckpt_err(dir, e))?;
        let tag = self.state.iteration;
        let weights = format!("weights-{tag:08}.safetensors");
        let optimizer = format!("optimizer-{tag:08}.safetensors");
        tapegrad_nn::io::save(&self.model, dir.join(&weights))
            .map_err(|e| ckpt_err(&dir.join(&weights), e))?;
        self.optimizer
            .save(&dir.join(&optimizer))
            .map_err(|e| ckpt_err(&dir.join(&optimizer), e))?;
        let index = CheckpointIndex {
            state: self.state.clone(),
            weights: weights.clone(),
            optimizer: optimizer.clone(),
        };
        let json = serde_json::to_string_pretty(&index).expect("serialisable");
        write_atomic(&dir.join("checkpoint.json"), json.as_bytes())?;
        // Older files are no longer referenced.
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let ours = name.starts_with("weights-") || name.starts_with("optimizer-");
                if ours && name.ends_with(".safetensors") && name != weights && name != optimizer {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        self.last_checkpoint = Some(position(&self.state));
        Ok(())
    }

    /// Whether `max_iterations` or `time_budget` (counted from `started`) is reached.
    fn over_budget(&self, started: Instant) -> bool {
        self.config
            .max_iterations
            .is_some_and(|m| self.state.iteration >= m)
            || self
                .config
                .time_budget
                .is_some_and(|t| started.elapsed() >= t)
    }

    /// Mean cross-entropy and accuracy of the model on `data`, in evaluation mode.
    pub fn evaluate<D: Dataset + Clone + 'static>(&mut self, data: &D) -> (f64, f64) {
        evaluate(&mut self.model, data, self.config.eval_batch_size)
    }

    /// Trains until `config.epochs` epochs are done (continuing from `state`), evaluating
    /// on `val` after each epoch and on `test` after the last, reporting progress to
    /// `on_event`.
    pub fn fit<D: Dataset + Clone + 'static>(
        &mut self,
        train: &D,
        val: Option<&D>,
        test: Option<&D>,
        mut on_event: impl FnMut(&Event),
    ) -> Result<Stop, TrainError> {
        let started = Instant::now();
        let params = self.model.params();
        let dtype = params.first().map_or(tapegrad::DType::F32, |p| p.dtype());
        let ce = CrossEntropyOptions {
            reduction: Reduction::Mean,
            ..Default::default()
        };
        let train = Arc::new(train.clone());
        while self.state.epoch < self.config.epochs {
            let epoch = self.state.epoch;
            let micro = self.config.batch_size.batch_size(epoch);
            let loader = DataLoader::from_arc(train.clone(), micro).shuffle(self.config.seed);
            let batches = loader.batches_per_epoch();
            let base_lr = self.config.lr * self.config.batch_size.lr_factor(epoch);
            let epoch_start = Instant::now();
            let start_samples = self.state.epoch_samples;
            self.model.set_training(true);
            let mut iter = loader
                .epoch_from(epoch, self.state.batch_in_epoch)
                .peekable();
            while iter.peek().is_some() {
                // One update: up to `accumulate` micro-batches, weighted by their sizes.
                let mut total: Option<Grads> = None;
                let mut samples = 0usize;
                let mut group: Vec<(Grads, usize)> = Vec::with_capacity(self.config.accumulate);
                for _ in 0..self.config.accumulate {
                    let Some(batch) = iter.next() else { break };
                    let index = self.state.batch_in_epoch + group.len();
                    let loss =
                        cross_entropy(&self.model.forward(&batch.x.to_dtype(dtype)), &batch.y, &ce);
                    let value = loss.item();
                    if !value.is_finite() {
                        return Err(TrainError::NonFiniteLoss {
                            epoch: epoch + 1,
                            iteration: self.state.iteration,
                            batch: index + 1,
                            value,
                            kept: self.kept(),
                        });
                    }
                    let n = batch.len();
                    self.state.epoch_loss_sum += value * n as f64;
                    self.state.epoch_samples += n;
                    samples += n;
                    group.push((loss.backward(), n));
                    let seen = self.state.epoch_samples - start_samples;
                    on_event(&Event::Batch {
                        epoch,
                        batch: index,
                        batches,
                        loss: value,
                        samples: self.state.epoch_samples,
                        samples_per_s: seen as f64 / epoch_start.elapsed().as_secs_f64().max(1e-9),
                    });
                }
                let consumed = group.len();
                for (mut g, n) in group.drain(..) {
                    // mean over the update's samples = sum_i (n_i / N) * mean_i
                    if samples != n {
                        g.scale(n as f64 / samples as f64);
                    }
                    match total.as_mut() {
                        None => total = Some(g),
                        Some(t) => t.add(&g),
                    }
                }
                let mut grads = total.expect("at least one micro-batch");
                if let Some(max_norm) = self.config.clip_grad_norm {
                    let norm = clip_grad_norm(
                        &mut grads,
                        params.iter().map(|p| p.tensor()),
                        max_norm,
                        2.0,
                        false,
                    )
                    .expect("no error without error_if_nonfinite");
                    if !norm.is_finite() {
                        return Err(TrainError::NonFiniteGradient {
                            epoch: epoch + 1,
                            iteration: self.state.iteration,
                            norm,
                            kept: self.kept(),
                        });
                    }
                }
                let lr = match &self.config.schedule {
                    Some(s) => s.lr(base_lr, self.state.iteration),
                    None => base_lr,
                };
                self.optimizer.set_lr(lr);
                self.optimizer.step(&grads);
                self.state.iteration += 1;
                self.state.batch_in_epoch += consumed;
                let over_budget = self.over_budget(started);
                if over_budget && iter.peek().is_some() {
                    drop(iter);
                    if let Some(dir) = self.config.checkpoint_dir.clone() {
                        self.check_weights_finite()?;
                        self.checkpoint(&dir)?;
                    }
                    return Ok(Stop::Budget);
                }
            }
            let seconds = epoch_start.elapsed().as_secs_f64();
            let trained = self.state.epoch_samples - start_samples;
            let (val_loss, val_accuracy) = match val {
                Some(v) => {
                    let (l, a) = evaluate(&mut self.model, v, self.config.eval_batch_size);
                    (Some(l), Some(a))
                }
                None => (None, None),
            };
            let last = epoch + 1 == self.config.epochs;
            let test_accuracy = match (test, last) {
                (Some(t), true) => {
                    Some(evaluate(&mut self.model, t, self.config.eval_batch_size).1)
                }
                _ => None,
            };
            let metrics = EpochMetrics {
                epoch: epoch + 1,
                iteration: self.state.iteration,
                train_loss: self.state.epoch_loss_sum / self.state.epoch_samples.max(1) as f64,
                val_loss,
                val_accuracy,
                test_accuracy,
                samples_per_s: trained as f64 / seconds.max(1e-9),
                lr: self.optimizer.lr(),
                batch_size: micro,
                seconds,
            };
            on_event(&Event::Epoch(metrics.clone()));
            let bad_metric = [
                ("training loss", Some(metrics.train_loss)),
                ("validation loss", val_loss),
            ]
            .into_iter()
            .find_map(|(what, v)| {
                v.filter(|v| !v.is_finite())
                    .map(|v| format!("the {what} ({v})"))
            });
            if let Some(what) = bad_metric {
                return Err(TrainError::NonFiniteState {
                    epoch: epoch + 1,
                    iteration: self.state.iteration,
                    what,
                    kept: self.kept(),
                });
            }
            self.state.history.push(metrics);
            self.state.epoch += 1;
            self.state.batch_in_epoch = 0;
            self.state.epoch_loss_sum = 0.0;
            self.state.epoch_samples = 0;
            let mut stop = None;
            if let (Some(patience), Some(v)) = (self.config.early_stopping_patience, val_loss) {
                if self.state.best_val_loss.is_none_or(|b| v < b) {
                    self.state.best_val_loss = Some(v);
                    self.state.epochs_since_best = 0;
                } else {
                    self.state.epochs_since_best += 1;
                    if self.state.epochs_since_best >= patience {
                        stop = Some(Stop::EarlyStopped);
                    }
                }
            }
            if let Some(dir) = self.config.checkpoint_dir.clone() {
                self.check_weights_finite()?;
                self.checkpoint(&dir)?;
            }
            let over_budget = self.over_budget(started);
            if stop.is_none() && over_budget && self.state.epoch < self.config.epochs {
                stop = Some(Stop::Budget);
            }
            if let Some(s) = stop {
                return Ok(s);
            }
        }
        Ok(Stop::Completed)
    }
}

/// Mean cross-entropy and accuracy of `model` on `data` (evaluation mode, no tape).
pub fn evaluate<M: Module, D: Dataset + Clone + 'static>(
    model: &mut M,
    data: &D,
    batch_size: usize,
) -> (f64, f64) {
    model.set_training(false);
    let dtype = model
        .params()
        .first()
        .map_or(tapegrad::DType::F32, |p| p.dtype());
    let loader = DataLoader::new(data.clone(), batch_size.max(1)).prefetch(0);
    let ce = CrossEntropyOptions {
        reduction: Reduction::Sum,
        ..Default::default()
    };
    let (mut loss, mut correct, mut n) = (0.0, 0usize, 0usize);
    no_grad(|| {
        for b in loader.epoch(0) {
            let logits = model.forward(&b.x.to_dtype(dtype));
            loss += cross_entropy(&logits, &b.y, &ce).item();
            correct += accuracy_count(&logits, &b.y);
            n += b.len();
        }
    });
    model.set_training(true);
    (loss / n.max(1) as f64, correct as f64 / n.max(1) as f64)
}

/// How many rows of `logits` `[N, C]` have their largest entry at the target class.
pub fn accuracy_count(logits: &Tensor, targets: &[usize]) -> usize {
    let pred = logits.argmax(-1, false);
    pred.iter().zip(targets).filter(|(p, t)| p == t).count()
}

fn ckpt_err(path: &Path, e: impl std::fmt::Display) -> TrainError {
    TrainError::Checkpoint {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename,
/// so readers see the old file or the new one, never half of one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    };
    write().map_err(|e| ckpt_err(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| ckpt_err(path, e))
}
