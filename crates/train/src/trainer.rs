//! [`Trainer`]: epochs of [`step`](Trainer::step)s, evaluation, metrics, early stopping
//! and checkpoints, for any model and any loss: the user's step closure turns a model and
//! a [`Batch`] into a [`Loss`].

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::time::Instant;

use tapegrad::{no_grad, DType, Grads, Tensor};
use tapegrad_nn::loss::{cross_entropy, CrossEntropyOptions};
use tapegrad_nn::{Module, Param};
use tapegrad_optim::{EarlyStopping, Mode, Observation, Optimizer};

use crate::adaptive::AdaptiveState;
use crate::checkpoint::position;
use crate::{
    shard_of, Applied, Batch, DataParallel, EpochMetrics, Event, GradsRef, Samples, Stop,
    TrainConfig, TrainError, TrainState, Update, UpdateMetrics,
};

/// What a step closure returns: the loss to minimise (a scalar: the mean over the batch's
/// samples) and, optionally, metrics of the batch (means over its samples, such as
/// accuracy), which evaluation averages over a whole set.
///
/// A closure may return a bare loss tensor: `Loss` is `From<Tensor>`.
pub struct Loss {
    /// The mean loss over the batch.
    pub value: Tensor,
    /// Named per-batch metrics (means over the batch's samples).
    pub metrics: Vec<(&'static str, f64)>,
}

impl From<Tensor> for Loss {
    fn from(value: Tensor) -> Self {
        Loss {
            value,
            metrics: Vec::new(),
        }
    }
}

impl Loss {
    /// Adds a metric of the batch (a mean over its samples).
    pub fn with_metric(mut self, name: &'static str, value: f64) -> Self {
        self.metrics.push((name, value));
        self
    }
}

/// A step closure: the loss of `model` on a batch.
pub type LossFn<M> = dyn Fn(&M, &Batch) -> Loss + Send + Sync;

/// Cross-entropy of a classifier on batches whose field 0 is the input (converted to the
/// dtype of the model's first parameter) and field 1 the classes, with the batch's
/// accuracy as metric `accuracy`: the loss of [`Trainer::new`].
pub fn classification_loss<M: Module>(model: &M, batch: &Batch) -> Loss {
    let dtype = model.params().first().map_or(DType::F32, |p| p.dtype());
    let logits = model.forward(&batch.tensor(0).to_dtype(dtype));
    let classes = batch.classes(1);
    let loss = cross_entropy(&logits, &classes, &CrossEntropyOptions::default());
    let correct = accuracy_count(&logits, &classes);
    Loss::from(loss).with_metric("accuracy", correct as f64 / batch.len().max(1) as f64)
}

/// Trains `model` by minimising the loss its step closure computes on batches of a
/// [`Samples`] set.
///
/// A classifier on a `tapegrad-data` dataset is one line, [`Trainer::new`] (cross-entropy,
/// accuracy as metric); any other loss or data goes through [`Trainer::with_loss`]:
///
/// ```
/// use tapegrad::DType;
/// use tapegrad_data::{digits, BatchSizeSchedule};
/// use tapegrad_nn::{loss::{mse_loss, Reduction}, Linear, Module};
/// use tapegrad_optim::{Adam, AdamConfig};
/// use tapegrad_train::{Field, TensorDataset, TrainConfig, Trainer};
///
/// // Classification on the digits: one line.
/// let (train, test) = digits().unwrap().split(0.2, 0);
/// let model = Linear::new(64, 10, 0);
/// let adam = Box::new(Adam::new(model.params(), AdamConfig { lr: 0.01, ..AdamConfig::default() }));
/// let config = TrainConfig { epochs: 2, ..TrainConfig::default() };
/// let mut trainer = Trainer::new(model, adam, config);
/// trainer.fit(&train, None, Some(&test), |_| {}).unwrap();
/// assert!(trainer.state.history[1].test_accuracy.unwrap() > 0.8);
///
/// // Regression with your own loss: y = 2 x0 - x1 from a TensorDataset.
/// let x = tapegrad::Tensor::randn(&[256, 2], DType::F32, 1);
/// let y = x.matmul(&tapegrad::Tensor::from_vec(vec![2.0f32, -1.0], &[2, 1]));
/// let data = TensorDataset::new(vec![Field::Tensor(x), Field::Tensor(y)]);
/// let model = Linear::new(2, 1, 0);
/// let adam = Box::new(Adam::new(model.params(), AdamConfig { lr: 0.05, ..AdamConfig::default() }));
/// let config = TrainConfig { epochs: 20, batch_size: BatchSizeSchedule::new(32), ..TrainConfig::default() };
/// let mut trainer = Trainer::with_loss(model, adam, config, |m: &Linear, b| {
///     mse_loss(&m.forward(b.tensor(0)), b.tensor(1), Reduction::Mean)
/// });
/// trainer.fit(&data, None, None, |_| {}).unwrap();
/// assert!(trainer.state.history[19].train_loss < 1e-3);
/// ```
pub struct Trainer<M: Module> {
    /// The model.
    pub model: M,
    /// The optimiser.
    pub optimizer: Box<dyn Optimizer>,
    /// The configuration.
    pub config: TrainConfig,
    /// Progress so far.
    pub state: TrainState,
    /// The step closure.
    loss: Box<LossFn<M>>,
    /// Where the last checkpoint written or resumed from was taken (see [`Kept`](crate::Kept)).
    pub(crate) last_checkpoint: Option<String>,
}

/// What one [`Trainer::step`] did.
pub struct Stepped {
    /// Each micro-batch's loss.
    pub losses: Vec<f64>,
    /// The mean loss over all the update's samples.
    pub loss: f64,
    /// Samples in the update.
    pub samples: usize,
    /// The gradients and their norm.
    pub applied: Applied,
}

impl<M: Module> Trainer<M> {
    /// A trainer of a classifier (cross-entropy, [`classification_loss`]) at epoch 0.
    ///
    /// # Panics
    /// If `config.accumulate` is 0.
    #[track_caller]
    pub fn new(model: M, optimizer: Box<dyn Optimizer>, config: TrainConfig) -> Self
    where
        M: 'static,
    {
        Self::with_loss(model, optimizer, config, classification_loss::<M>)
    }

    /// A trainer that minimises what `loss` computes for the model on each batch (a
    /// [`Loss`], or a bare loss tensor), at epoch 0.
    ///
    /// # Panics
    /// If `config.accumulate` is 0.
    #[track_caller]
    pub fn with_loss<L: Into<Loss>>(
        model: M,
        optimizer: Box<dyn Optimizer>,
        config: TrainConfig,
        loss: impl Fn(&M, &Batch) -> L + Send + Sync + 'static,
    ) -> Self
    where
        M: 'static,
    {
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
            loss: Box::new(move |m, b| loss(m, b).into()),
            last_checkpoint: None,
        }
    }

    /// Whether `max_iterations` or `time_budget` (counted from `started`) is reached. In
    /// data-parallel training the ranks' clocks are combined: all stop when one is over.
    fn over_budget(&self, started: Instant) -> Result<bool, TrainError> {
        let over = self
            .config
            .max_iterations
            .is_some_and(|m| self.state.iteration >= m)
            || self
                .config
                .time_budget
                .is_some_and(|t| started.elapsed() >= t);
        match &self.config.data_parallel {
            Some(dp) if self.config.time_budget.is_some() => {
                let mut any = [f64::from(u8::from(over))];
                self.reduce(&**dp, &mut any, "the time budget check")?;
                Ok(any[0] > 0.0)
            }
            _ => Ok(over),
        }
    }

    /// Mean loss and metrics of the model on `data`, in evaluation mode. In data-parallel
    /// training each rank evaluates its share of `data` and the results are combined, so
    /// every rank must call it.
    ///
    /// # Panics
    /// In data-parallel training, if communication with the other ranks fails.
    pub fn evaluate<S: Samples + ?Sized>(&mut self, data: &S) -> Evaluation {
        self.evaluation(data)
            .unwrap_or_else(|e| panic!("Trainer::evaluate: {e}"))
    }

    /// [`evaluate`](Self::evaluate), with a communication failure as an error.
    fn evaluation<S: Samples + ?Sized>(&mut self, data: &S) -> Result<Evaluation, TrainError> {
        let batch_size = self.config.eval_batch_size;
        let Some(dp) = self.config.data_parallel.clone() else {
            return Ok(evaluate(&mut self.model, &*self.loss, data, batch_size));
        };
        let (rank, np, n) = (dp.rank(), dp.world_size(), data.num_samples());
        if n < np {
            // Too few samples to give every rank one: each evaluates them all.
            return Ok(evaluate(&mut self.model, &*self.loss, data, batch_size));
        }
        let mine: Vec<usize> = (rank * n / np..(rank + 1) * n / np).collect();
        let sums = evaluate_indices(&mut self.model, &*self.loss, data, &mine, batch_size);
        // [loss sum, samples, number of metrics, each metric's sum by name]
        let mut all = vec![sums.loss, sums.samples as f64, sums.metrics.len() as f64];
        all.extend(sums.metrics.values());
        self.reduce(&*dp, &mut all, "the evaluation")?;
        if all[2] != (np * sums.metrics.len()) as f64 {
            return Err(self.distributed_error(format!(
                "the ranks' losses report different metrics (this rank: {:?})",
                sums.metrics.keys().collect::<Vec<_>>()
            )));
        }
        let samples = all[1].max(1.0);
        Ok(Evaluation {
            loss: all[0] / samples,
            metrics: sums
                .metrics
                .keys()
                .zip(&all[3..])
                .map(|(k, v)| (k.clone(), v / samples))
                .collect(),
        })
    }

    /// Sums `values` over the ranks; a failure as [`TrainError::Distributed`].
    fn reduce(
        &self,
        dp: &dyn DataParallel,
        values: &mut [f64],
        what: &str,
    ) -> Result<(), TrainError> {
        dp.all_reduce_sum(values, what)
            .map_err(|m| self.distributed_error(m))
    }

    /// A [`TrainError::Distributed`] at the current point of training.
    fn distributed_error(&self, message: String) -> TrainError {
        TrainError::Distributed {
            epoch: self.state.epoch + 1,
            iteration: self.state.iteration,
            message,
            kept: self.kept(),
        }
    }

    /// The start of data-parallel training: rank 0's weights everywhere, and every rank
    /// at the same point of training.
    fn start_parallel(&mut self, dp: &dyn DataParallel) -> Result<(), TrainError> {
        assert!(
            self.config.adaptive_batch.is_none(),
            "Trainer::fit: an adaptive batch (TrainConfig::adaptive_batch) cannot be combined with data_parallel"
        );
        let mut tensors: Vec<Tensor> = self
            .model
            .params()
            .iter()
            .map(|p| p.tensor().clone())
            .collect();
        tensors.extend(self.model.named_buffers().into_iter().map(|(_, b)| b));
        dp.broadcast(&tensors)
            .map_err(|m| self.distributed_error(m))?;
        let s = &self.state;
        let mine = [s.epoch, s.batch_in_epoch, s.epoch_samples, s.iteration].map(|v| v as f64);
        let mut sum = mine;
        self.reduce(
            dp,
            &mut sum,
            "the check that every rank is at the same point",
        )?;
        let np = dp.world_size() as f64;
        if sum.iter().zip(&mine).any(|(s, m)| *s != m * np) {
            return Err(self.distributed_error(format!(
                "the ranks are at different points of training (rank {} is at epoch {}, iteration {}): resume every rank from the same checkpoint",
                dp.rank(),
                s.epoch,
                s.iteration
            )));
        }
        Ok(())
    }

    /// Trains until `config.epochs` epochs are done (continuing from `state`), evaluating
    /// on `val` after each epoch and on `test` after the last, reporting progress to
    /// `on_event`.
    pub fn fit<S: Samples + ?Sized>(
        &mut self,
        train: &S,
        val: Option<&S>,
        test: Option<&S>,
        mut on_event: impl FnMut(&Event<'_>),
    ) -> Result<Stop, TrainError> {
        let started = Instant::now();
        if let Some(dp) = self.config.data_parallel.clone() {
            self.start_parallel(&*dp)?;
        }
        while self.state.epoch < self.config.epochs {
            let run = match self.train_epoch(train, started, &mut on_event)? {
                ControlFlow::Break(stop) => return Ok(stop),
                ControlFlow::Continue(run) => run,
            };
            if let Some(stop) = self.end_epoch(run, val, test, started, &mut on_event)? {
                return Ok(stop);
            }
        }
        Ok(Stop::Completed)
    }

    /// The micro-batch size and the micro-batches per update now.
    fn batch_plan(&mut self) -> (usize, usize) {
        match &self.config.adaptive_batch {
            Some(adaptive) => self
                .state
                .adaptive
                .get_or_insert_with(|| AdaptiveState::new(adaptive))
                .plan(adaptive),
            None => (
                self.config.batch_size.batch_size(self.state.epoch),
                self.config.accumulate,
            ),
        }
    }

    /// The factor on every group's base learning rate for the current batch size.
    fn lr_factor(&self) -> f64 {
        match (&self.config.adaptive_batch, &self.state.adaptive) {
            (Some(config), Some(state)) => config.lr_rule.factor(state.batch, config.initial),
            _ => self.config.batch_size.lr_factor(self.state.epoch),
        }
    }

    /// Trains the rest of the current epoch, one [`step`](Self::step) per `accumulate`
    /// micro-batches drawn in the epoch's seeded order; stops early (checkpointed) when
    /// the budget runs out.
    fn train_epoch<S: Samples + ?Sized>(
        &mut self,
        train: &S,
        started: Instant,
        on_event: &mut impl FnMut(&Event<'_>),
    ) -> Result<ControlFlow<Stop, EpochRun>, TrainError> {
        let epoch = self.state.epoch;
        let order = tapegrad_data::epoch_order(train.num_samples(), Some(self.config.seed), epoch);
        let epoch_start = Instant::now();
        let start_samples = self.state.epoch_samples;
        let mut batch_size = self.batch_plan().0;
        self.model.set_training(true);
        // The epoch's position is the samples it has drawn, so a resumed run (or a batch
        // that grows mid-epoch) continues from the next sample of the same order.
        while self.state.epoch_samples < order.len() {
            let (micro, accumulate) = self.batch_plan();
            batch_size = self.state.adaptive.as_ref().map_or(micro, |a| a.batch);
            let batches = self.state.batch_in_epoch
                + (order.len() - self.state.epoch_samples).div_ceil(micro);
            let mut at = self.state.epoch_samples;
            let micro_batches: Vec<&[usize]> = (0..accumulate)
                .map_while(|_| {
                    let end = (at + micro).min(order.len());
                    let batch = (at < end).then(|| &order[at..end]);
                    at = end;
                    batch
                })
                .collect();
            let stepped = match self.config.data_parallel.clone() {
                Some(dp) => self.step_parallel(&*dp, train, &micro_batches)?,
                None => {
                    let batches: Vec<Batch> =
                        micro_batches.iter().map(|b| train.batch(b)).collect();
                    self.step(&batches)?
                }
            };
            for (i, (batch, loss)) in micro_batches.iter().zip(&stepped.losses).enumerate() {
                self.state.epoch_loss_sum += loss * batch.len() as f64;
                self.state.epoch_samples += batch.len();
                let seen = self.state.epoch_samples - start_samples;
                on_event(&Event::Batch {
                    epoch,
                    batch: self.state.batch_in_epoch + i,
                    batches,
                    loss: *loss,
                    samples: self.state.epoch_samples,
                    samples_per_s: seen as f64 / epoch_start.elapsed().as_secs_f64().max(1e-9),
                });
            }
            self.state.batch_in_epoch += micro_batches.len();
            let seen = self.state.epoch_samples - start_samples;
            let metrics = UpdateMetrics {
                iteration: self.state.iteration,
                epoch,
                loss: stepped.loss,
                lr: self.optimizer.lr(),
                grad_norm: stepped.applied.grad_norm,
                batch_size: stepped.samples,
                samples_per_s: seen as f64 / epoch_start.elapsed().as_secs_f64().max(1e-9),
            };
            on_event(&Event::Update {
                metrics,
                grads: GradsRef(&stepped.applied.grads),
            });
            drop(stepped);
            if self.over_budget(started)? && self.state.epoch_samples < order.len() {
                self.checkpoint_if_configured()?;
                return Ok(ControlFlow::Break(Stop::Budget));
            }
        }
        Ok(ControlFlow::Continue(EpochRun {
            batch_size,
            seconds: epoch_start.elapsed().as_secs_f64(),
            samples: self.state.epoch_samples - start_samples,
        }))
    }

    /// One parameter update: the step closure's loss on each of `micro_batches`, their
    /// gradients combined as one batch's (weighted by size), each group's learning rate
    /// for this iteration (its base rate, scaled for the batch size, then by the
    /// schedule, so ratios between groups survive), clipping, the optimiser step.
    ///
    /// The one training step: [`fit`](Self::fit), `tapegrad batch-sweep` and the
    /// benchmark workloads all call it. It is local to this process: with
    /// [`TrainConfig::data_parallel`] set, `fit` takes each rank's share of the batches
    /// and sums the gradients over the ranks instead.
    ///
    /// # Panics
    /// If `micro_batches` is empty.
    #[track_caller]
    pub fn step(&mut self, micro_batches: &[Batch]) -> Result<Stepped, TrainError> {
        assert!(!micro_batches.is_empty(), "Trainer::step: no micro-batch");
        let params = self.model.params();
        let adaptive = self.config.adaptive_batch.is_some();
        let mut update = Update::new();
        if adaptive {
            update = update.with_micro_norms();
        }
        let mut losses = Vec::with_capacity(micro_batches.len());
        for (i, batch) in micro_batches.iter().enumerate() {
            let loss = (self.loss)(&self.model, batch);
            let value = update.add(&loss.value, batch.len()).map_err(|value| {
                TrainError::NonFiniteLoss {
                    epoch: self.state.epoch + 1,
                    iteration: self.state.iteration,
                    batch: self.state.batch_in_epoch + i + 1,
                    value,
                    kept: self.kept(),
                }
            })?;
            losses.push(value);
        }
        let samples = update.samples();
        let loss = losses
            .iter()
            .zip(micro_batches)
            .map(|(l, b)| l * b.len() as f64)
            .sum::<f64>()
            / samples.max(1) as f64;
        let applied = self.apply(update, &params)?;
        if let (Some(config), Some(state)) =
            (&self.config.adaptive_batch, self.state.adaptive.as_mut())
        {
            state.observe(
                config,
                loss,
                samples,
                applied.grad_norm.powi(2),
                micro_batches[0].len(),
                &applied.micro_grad_sq_norms,
            );
        }
        Ok(Stepped {
            losses,
            loss,
            samples,
            applied,
        })
    }

    /// One update as one rank of data-parallel training: `micro_batches` are the global
    /// micro-batches (indices into `train`); this rank computes the loss of its share of
    /// each ([`shard_of`]), weighs its gradient by the share's part of the update's
    /// samples, and the sum over ranks is exactly the gradient one process computes on
    /// the whole update. Losses are summed over the ranks too, so they are the global
    /// ones, and a non-finite loss anywhere stops every rank.
    fn step_parallel<S: Samples + ?Sized>(
        &mut self,
        dp: &dyn DataParallel,
        train: &S,
        micro_batches: &[&[usize]],
    ) -> Result<Stepped, TrainError> {
        let params = self.model.params();
        let (rank, np) = (dp.rank(), dp.world_size());
        let samples: usize = micro_batches.iter().map(|b| b.len()).sum();
        let mut grads = Grads::new();
        let mut losses = Vec::with_capacity(micro_batches.len());
        for (i, global) in micro_batches.iter().enumerate() {
            let mine: Vec<usize> = shard_of(global.len(), rank, np)
                .map(|j| global[j])
                .collect();
            let loss =
                (!mine.is_empty()).then(|| (self.loss)(&self.model, &train.batch(&mine)).value);
            let value = loss.as_ref().map_or(0.0, |l| l.item());
            // [this rank's share of the global loss sum, a non-finite loss]
            let mut sums = if value.is_finite() {
                [value * mine.len() as f64, 0.0]
            } else {
                [0.0, value]
            };
            self.reduce(dp, &mut sums, "the loss of a micro-batch")?;
            if sums[1] != 0.0 {
                return Err(TrainError::NonFiniteLoss {
                    epoch: self.state.epoch + 1,
                    iteration: self.state.iteration,
                    batch: self.state.batch_in_epoch + i + 1,
                    value: sums[1],
                    kept: self.kept(),
                });
            }
            losses.push(sums[0] / global.len() as f64);
            if let Some(loss) = loss {
                let mut g = loss.backward();
                if mine.len() != samples {
                    g.scale(mine.len() as f64 / samples as f64);
                }
                grads.add(&g);
            }
        }
        dp.all_reduce_grads(&mut grads, &params)
            .map_err(|m| self.distributed_error(m))?;
        let loss = losses
            .iter()
            .zip(micro_batches)
            .map(|(l, b)| l * b.len() as f64)
            .sum::<f64>()
            / samples.max(1) as f64;
        let mut update = Update::new();
        update.add_grads(grads, samples);
        let applied = self.apply(update, &params)?;
        Ok(Stepped {
            losses,
            loss,
            samples,
            applied,
        })
    }

    /// Sets each group's learning rate for this iteration and applies `update`.
    fn apply(&mut self, update: Update, params: &[Param]) -> Result<Applied, TrainError> {
        let factor = self.lr_factor();
        for (group, &base) in self.state.base_lrs.iter().enumerate() {
            let base = base * factor;
            let lr = match &self.config.schedule {
                Some(s) => s.lr(base, self.state.iteration),
                None => base,
            };
            self.optimizer.set_group_lr(group, lr);
        }
        let applied = update
            .apply(params, self.optimizer.as_mut(), self.config.clip_grad_norm)
            .map_err(|norm| TrainError::NonFiniteGradient {
                epoch: self.state.epoch + 1,
                iteration: self.state.iteration,
                norm,
                kept: self.kept(),
            })?;
        self.state.iteration += 1;
        Ok(applied)
    }

    /// Evaluates the finished epoch, reports and records its metrics (refusing
    /// non-finite ones), applies early stopping and writes the checkpoint. Returns why
    /// training stops here, if it does.
    fn end_epoch<S: Samples + ?Sized>(
        &mut self,
        run: EpochRun,
        val: Option<&S>,
        test: Option<&S>,
        started: Instant,
        on_event: &mut impl FnMut(&Event<'_>),
    ) -> Result<Option<Stop>, TrainError> {
        let epoch = self.state.epoch;
        let val = val.map(|v| self.evaluation(v)).transpose()?;
        let last = epoch + 1 == self.config.epochs;
        let test_accuracy = match (test, last) {
            (Some(t), true) => self.evaluation(t)?.metric("accuracy"),
            _ => None,
        };
        let val_loss = val.as_ref().map(|v| v.loss);
        let metrics = EpochMetrics {
            epoch: epoch + 1,
            iteration: self.state.iteration,
            train_loss: self.state.epoch_loss_sum / self.state.epoch_samples.max(1) as f64,
            val_loss,
            val_accuracy: val.as_ref().and_then(|v| v.metric("accuracy")),
            val_metrics: val.map(|v| v.metrics).unwrap_or_default(),
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
        if stop.is_none() && self.over_budget(started)? && self.state.epoch < self.config.epochs {
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
    /// weight is finite. In data-parallel training rank 0 writes it (the ranks hold the
    /// same state), and every rank learns whether it could.
    fn checkpoint_if_configured(&mut self) -> Result<(), TrainError> {
        let Some(dir) = self.config.checkpoint_dir.clone() else {
            return Ok(());
        };
        self.check_weights_finite()?;
        let Some(dp) = self.config.data_parallel.clone() else {
            return self.checkpoint(&dir);
        };
        let written = if dp.rank() == 0 {
            self.checkpoint(&dir)
        } else {
            Ok(())
        };
        let mut failed = [f64::from(u8::from(written.is_err()))];
        self.reduce(&*dp, &mut failed, "the checkpoint")?;
        written?;
        if failed[0] > 0.0 {
            return Err(TrainError::Checkpoint {
                path: dir,
                message: "rank 0 could not write the checkpoint (its error says why)".into(),
            });
        }
        self.last_checkpoint = Some(position(&self.state));
        Ok(())
    }
}

/// What an epoch's training did, for its metrics.
struct EpochRun {
    batch_size: usize,
    seconds: f64,
    samples: usize,
}

/// The mean loss and metrics of a model over a set (see [`evaluate`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    /// Mean loss per sample.
    pub loss: f64,
    /// Each metric's mean per sample, by name.
    pub metrics: BTreeMap<String, f64>,
}

impl Evaluation {
    /// The metric called `name`, if the loss reported one.
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.metrics.get(name).copied()
    }
}

/// Mean loss and metrics of `model` on `data` with the step closure `loss` (evaluation
/// mode, no tape), in batches of `batch_size`; each batch weighs by its samples.
pub fn evaluate<M: Module, S: Samples + ?Sized>(
    model: &mut M,
    loss: &LossFn<M>,
    data: &S,
    batch_size: usize,
) -> Evaluation {
    let order: Vec<usize> = (0..data.num_samples()).collect();
    let sums = evaluate_indices(model, loss, data, &order, batch_size);
    let n = sums.samples.max(1) as f64;
    Evaluation {
        loss: sums.loss / n,
        metrics: sums.metrics.into_iter().map(|(k, v)| (k, v / n)).collect(),
    }
}

/// Sums over samples of the loss and of each metric.
struct EvalSums {
    loss: f64,
    samples: usize,
    metrics: BTreeMap<String, f64>,
}

/// The sums over the samples at `indices` (evaluation mode, no tape).
fn evaluate_indices<M: Module, S: Samples + ?Sized>(
    model: &mut M,
    loss: &LossFn<M>,
    data: &S,
    indices: &[usize],
    batch_size: usize,
) -> EvalSums {
    model.set_training(false);
    let (mut total, mut n) = (0.0, 0usize);
    let mut sums: BTreeMap<String, f64> = BTreeMap::new();
    no_grad(|| {
        for indices in indices.chunks(batch_size.max(1)) {
            let batch = data.batch(indices);
            let out = loss(model, &batch);
            let w = batch.len() as f64;
            total += out.value.item() * w;
            for (name, v) in out.metrics {
                *sums.entry(name.to_string()).or_default() += v * w;
            }
            n += batch.len();
        }
    });
    model.set_training(true);
    EvalSums {
        loss: total,
        samples: n,
        metrics: sums,
    }
}

/// How many rows of `logits` `[N, C]` have their largest entry at the target class
/// (`targets`: `I64` `[N]`).
///
/// # Panics
/// If `targets` is not an `I64` tensor of the rows' shape.
#[track_caller]
pub fn accuracy_count(logits: &Tensor, targets: &Tensor) -> usize {
    let pred = logits.argmax(-1, false);
    if targets.dtype() != DType::I64 || targets.shape() != pred.shape() {
        panic!(
            "accuracy_count: the targets must be an i64 tensor {:?}, got {} {:?}",
            pred.shape(),
            targets.dtype(),
            targets.shape()
        );
    }
    let pred = pred.to_vec::<i64>();
    pred.iter()
        .zip(targets.to_vec::<i64>())
        .filter(|&(&p, t)| p == t)
        .count()
}
