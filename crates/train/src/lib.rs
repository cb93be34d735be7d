//! # tapegrad-train
//!
//! The training loop for classifiers: epochs, evaluation, learning-rate schedule,
//! batch-size schedule, gradient clipping and accumulation, early stopping, atomic
//! checkpoints with exact resume, and a clear stop on a non-finite loss.
//!
//! - [`Trainer`] (`trainer.rs`): `fit` runs epochs of [`Trainer::step`]s, then evaluates,
//!   records metrics, stops early and checkpoints.
//! - [`Update`] (`step.rs`): one parameter update over micro-batches, shared by the
//!   trainer, `tapegrad batch-sweep` and the benchmark workloads.
//! - `checkpoint.rs`: [`TrainState`], the checkpoint files, [`write_atomic`].
//! - `config.rs`: [`TrainConfig`], [`EpochMetrics`], [`Event`], [`Stop`];
//!   `error.rs`: [`TrainError`], [`Kept`].
#![warn(missing_docs)]

mod checkpoint;
mod config;
mod error;
mod step;
pub mod tensorboard;
mod trainer;

pub use checkpoint::{write_atomic, TrainState};
pub use config::{EpochMetrics, Event, Stop, TrainConfig};
pub use error::{Kept, TrainError};
pub use step::Update;
pub use tensorboard::{EventWriter, TensorBoardError};
pub use trainer::{accuracy_count, evaluate, Trainer};
