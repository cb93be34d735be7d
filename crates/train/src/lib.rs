//! # tapegrad-train
//!
//! The training loop for any model and any loss: epochs, evaluation, learning-rate
//! schedule, batch-size schedule, gradient clipping and accumulation, early stopping,
//! atomic checkpoints with exact resume, a clear stop on a non-finite loss, and logs
//! (TensorBoard event files).
//!
//! - [`Trainer`] (`trainer.rs`): `fit` runs epochs of [`Trainer::step`]s (the one training
//!   step, shared by `tapegrad batch-sweep` and the benchmark workloads), then evaluates,
//!   records metrics, stops early and checkpoints. The loss is the user's step closure
//!   (`|model, batch| -> loss`); [`Trainer::new`] is a classifier with cross-entropy.
//! - `data.rs`: [`Samples`] (what the trainer draws [`Batch`]es of tensors from; every
//!   `tapegrad-data` dataset is one) and [`TensorDataset`].
//! - [`Update`] (`step.rs`): one update's gradients gathered over micro-batches.
//! - `checkpoint.rs`: [`TrainState`], the checkpoint files, [`write_atomic`].
//! - `config.rs`: [`TrainConfig`], [`EpochMetrics`], [`Event`], [`Stop`];
//!   `error.rs`: [`TrainError`], [`Kept`]; `parallel.rs`: [`DataParallel`], the hook
//!   that makes the trainer one of several data-parallel processes; [`tensorboard`]: event files;
//!   [`adaptive`]: the batch that grows with the gradient noise scale.
#![warn(missing_docs)]

pub mod adaptive;
mod checkpoint;
mod config;
mod data;
mod error;
mod parallel;
mod step;
pub mod tensorboard;
mod trainer;

pub use checkpoint::{write_atomic, TrainState};
pub use config::{EpochMetrics, Event, GradsRef, Stop, TrainConfig, UpdateMetrics};
pub use data::{Batch, Field, Samples, TensorDataset};
pub use error::{Kept, TrainError};
pub use parallel::{shard_of, DataParallel};
pub use step::{Applied, Update};
pub use tensorboard::{EventWriter, TensorBoardError, TrainingLog};
pub use trainer::{
    accuracy_count, classification_loss, evaluate, Evaluation, Loss, LossFn, Stepped, Trainer,
};
