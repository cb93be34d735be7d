//! Why training stopped with an error, and what it left on disk.

use std::path::PathBuf;

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
    /// Communication with the other processes of data-parallel training failed (a peer
    /// died, hangs, or disagrees): this process cannot go on, and the job must be stopped.
    #[error("data-parallel training at epoch {epoch}, iteration {iteration}: {message}{kept}")]
    Distributed {
        /// 1-based epoch.
        epoch: usize,
        /// Updates done.
        iteration: usize,
        /// What failed.
        message: String,
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
