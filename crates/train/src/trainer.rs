//! [`Trainer`]: epochs of updates, evaluation, metrics, early stopping and checkpoints,
//! for a classifier trained with cross-entropy.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Instant;

use tapegrad::{no_grad, DType, Tensor};
use tapegrad_data::{Batch, DataLoader, Dataset};
use tapegrad_nn::loss::{cross_entropy, CrossEntropyOptions, Reduction};
use tapegrad_nn::{Module, Param};
use tapegrad_optim::{EarlyStopping, Mode, Observation, Optimizer};

use crate::{EpochMetrics, Event, Stop, TrainConfig, TrainError, TrainState, Update};

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
    /// Where the last checkpoint written or resumed from was taken (see [`Kept`](crate::Kept)).
    pub(crate) last_checkpoint: Option<String>,
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
        // The optimiser's rates are the base rates; the trainer only ever scales them.
        let base_lrs = (0..optimizer.num_groups())
            .map(|g| optimizer.group_lr(g))
            .collect();
        Trainer {
            model,
            optimizer,
            config,
            state: TrainState {
                base_lrs,
                ..TrainState::default()
            },
            last_checkpoint: None,
        }
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
        let train = Arc::new(train.clone());
        while self.state.epoch < self.config.epochs {
            let run = match self.train_epoch(&train, started, &mut on_event)? {
                ControlFlow::Break(stop) => return Ok(stop),
                ControlFlow::Continue(run) => run,
            };
            if let Some(stop) = self.end_epoch(run, val, test, started, &mut on_event)? {
                return Ok(stop);
            }
        }
        Ok(Stop::Completed)
    }

    /// Trains the rest of the current epoch, one [`step`](Self::step) per `accumulate`
    /// micro-batches; stops early (checkpointed) when the budget runs out.
    fn train_epoch<D: Dataset + 'static>(
        &mut self,
        train: &Arc<D>,
        started: Instant,
        on_event: &mut impl FnMut(&Event),
    ) -> Result<ControlFlow<Stop, EpochRun>, TrainError> {
        let epoch = self.state.epoch;
        let micro = self.config.batch_size.batch_size(epoch);
        let loader = DataLoader::from_arc(train.clone(), micro).shuffle(self.config.seed);
        let batches = loader.batches_per_epoch();
        let lr_factor = self.config.batch_size.lr_factor(epoch);
        let params = self.model.params();
        let dtype = params.first().map_or(DType::F32, |p| p.dtype());
        let epoch_start = Instant::now();
        let start_samples = self.state.epoch_samples;
        self.model.set_training(true);
        let mut iter = loader
            .epoch_from(epoch, self.state.batch_in_epoch)
            .peekable();
        while iter.peek().is_some() {
            let mut update = Update::new();
            for _ in 0..self.config.accumulate {
                let Some(batch) = iter.next() else { break };
                let index = self.state.batch_in_epoch + update.micro_batches();
                let loss = self.batch_loss(&batch, dtype);
                let value =
                    update
                        .add(&loss, batch.len())
                        .map_err(|value| TrainError::NonFiniteLoss {
                            epoch: epoch + 1,
                            iteration: self.state.iteration,
                            batch: index + 1,
                            value,
                            kept: self.kept(),
                        })?;
                self.state.epoch_loss_sum += value * batch.len() as f64;
                self.state.epoch_samples += batch.len();
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
            let consumed = update.micro_batches();
            self.step(update, &params, lr_factor)?;
            self.state.batch_in_epoch += consumed;
            if self.over_budget(started) && iter.peek().is_some() {
                drop(iter);
                self.checkpoint_if_configured()?;
                return Ok(ControlFlow::Break(Stop::Budget));
            }
        }
        Ok(ControlFlow::Continue(EpochRun {
            batch_size: micro,
            seconds: epoch_start.elapsed().as_secs_f64(),
            samples: self.state.epoch_samples - start_samples,
        }))
    }

    /// The mean cross-entropy of the model on `batch` (converted to `dtype`).
    fn batch_loss(&self, batch: &Batch, dtype: DType) -> Tensor {
        let ce = CrossEntropyOptions {
            reduction: Reduction::Mean,
            ..Default::default()
        };
        cross_entropy(&self.model.forward(&batch.x.to_dtype(dtype)), &batch.y, &ce)
    }

    /// One parameter update from the gathered micro-batches: each group's learning rate
    /// for this iteration (its base rate, scaled by `lr_factor` for the epoch's batch size,
    /// then by the schedule, so ratios between groups survive), clipping, the optimiser
    /// step.
    pub fn step(
        &mut self,
        update: Update,
        params: &[Param],
        lr_factor: f64,
    ) -> Result<(), TrainError> {
        for (group, &base) in self.state.base_lrs.iter().enumerate() {
            let base = base * lr_factor;
            let lr = match &self.config.schedule {
                Some(s) => s.lr(base, self.state.iteration),
                None => base,
            };
            self.optimizer.set_group_lr(group, lr);
        }
        update
            .apply(params, self.optimizer.as_mut(), self.config.clip_grad_norm)
            .map_err(|norm| TrainError::NonFiniteGradient {
                epoch: self.state.epoch + 1,
                iteration: self.state.iteration,
                norm,
                kept: self.kept(),
            })?;
        self.state.iteration += 1;
        Ok(())
    }

    /// Evaluates the finished epoch, reports and records its metrics (refusing
    /// non-finite ones), applies early stopping and writes the checkpoint. Returns why
    /// training stops here, if it does.
    fn end_epoch<D: Dataset + Clone + 'static>(
        &mut self,
        run: EpochRun,
        val: Option<&D>,
        test: Option<&D>,
        started: Instant,
        on_event: &mut impl FnMut(&Event),
    ) -> Result<Option<Stop>, TrainError> {
        let epoch = self.state.epoch;
        let (val_loss, val_accuracy) = match val {
            Some(v) => {
                let (l, a) = self.evaluate(v);
                (Some(l), Some(a))
            }
            None => (None, None),
        };
        let last = epoch + 1 == self.config.epochs;
        let test_accuracy = match (test, last) {
            (Some(t), true) => Some(self.evaluate(t).1),
            _ => None,
        };
        let metrics = EpochMetrics {
            epoch: epoch + 1,
            iteration: self.state.iteration,
            train_loss: self.state.epoch_loss_sum / self.state.epoch_samples.max(1) as f64,
            val_loss,
            val_accuracy,
            test_accuracy,
            samples_per_s: run.samples as f64 / run.seconds.max(1e-9),
            lr: self.optimizer.lr(),
            batch_size: run.batch_size,
            seconds: run.seconds,
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
        let mut stop = self.early_stop(val_loss);
        self.checkpoint_if_configured()?;
        if stop.is_none() && self.over_budget(started) && self.state.epoch < self.config.epochs {
            stop = Some(Stop::Budget);
        }
        Ok(stop)
    }

    /// Records `val_loss` for early stopping; `Some(EarlyStopped)` once it has not
    /// improved for the patience.
    fn early_stop(&mut self, val_loss: Option<f64>) -> Option<Stop> {
        let (Some(patience), Some(v)) = (self.config.early_stopping_patience, val_loss) else {
            return None;
        };
        // The stopper's progress lives in the checkpointed state.
        let s = &mut self.state;
        let best = s.best_val_loss.map(|b| (b, s.best_epoch, ()));
        let mut stopper =
            EarlyStopping::new(patience, 0.0, Mode::Min).with_progress(best, s.epochs_since_best);
        let seen = stopper.observe(s.epoch, v, || ());
        (s.best_val_loss, s.best_epoch) =
            stopper.best().map_or((None, 0), |(b, e, _)| (Some(b), e));
        s.epochs_since_best = stopper.since_best();
        (seen == Observation::Stop).then_some(Stop::EarlyStopped)
    }

    /// Writes a checkpoint to the configured folder, if any, after checking that every
    /// weight is finite.
    fn checkpoint_if_configured(&mut self) -> Result<(), TrainError> {
        if let Some(dir) = self.config.checkpoint_dir.clone() {
            self.check_weights_finite()?;
            self.checkpoint(&dir)?;
        }
        Ok(())
    }
}

/// What an epoch's training did, for its metrics.
struct EpochRun {
    batch_size: usize,
    seconds: f64,
    samples: usize,
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
