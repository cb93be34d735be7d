//! Checkpoints: where training is ([`TrainState`]), the files that hold it (weights,
//! optimiser state, `checkpoint.json`), written atomically and read back with every
//! field checked, and what is on disk when training stops on a non-finite value.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};
use tapegrad_nn::Module;

use crate::adaptive::AdaptiveState;
use crate::{EpochMetrics, Kept, TrainError, Trainer};

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
    /// The epoch (counted from 1) of the best validation loss.
    #[serde(default)]
    pub best_epoch: usize,
    /// Each parameter group's base learning rate (the optimiser's when the trainer was
    /// built): the batch-size factor and the schedule scale these.
    #[serde(default)]
    pub base_lrs: Vec<f64>,
    /// The adaptive batch-size controller, when the batch grows adaptively.
    #[serde(default)]
    pub adaptive: Option<AdaptiveState>,
}

impl TrainState {
    /// An error naming the first count no run could reach (over 2^53, where JSON numbers
    /// stop being exact): such a state was edited or corrupted, and training from it would
    /// overflow.
    pub(crate) fn check_counts(&self) -> Result<(), String> {
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
    /// The model's counters (dropout layers' random-stream positions), by name.
    #[serde(default)]
    counters: BTreeMap<String, u64>,
}

/// Where `state` is, counted as progress is shown (epochs from 1).
pub(crate) fn position(state: &TrainState) -> String {
    if state.batch_in_epoch == 0 {
        format!(
            "the end of epoch {} (iteration {})",
            state.epoch, state.iteration
        )
    } else {
        format!("epoch {}, iteration {}", state.epoch + 1, state.iteration)
    }
}

pub(crate) fn ckpt_err(path: &Path, e: impl std::fmt::Display) -> TrainError {
    TrainError::Checkpoint {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename
/// ([`tapegrad_nn::io::write_atomic`]), so readers see the old file or the new one, never
/// half of one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    tapegrad_nn::io::write_atomic(path, bytes).map_err(|e| ckpt_err(path, e))
}

impl<M: Module> Trainer<M> {
    /// Restores weights, optimiser state, the model's counters (dropout streams) and
    /// progress from the checkpoint in `dir`.
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
        // Everything that can be checked without the weights is checked before the model
        // or the optimiser is changed.
        index
            .state
            .check_counts()
            .map_err(|e| ckpt_err(&index_path, e))?;
        let counters = self.model.named_counters();
        let names: BTreeSet<&str> = counters.iter().map(|(n, _)| n.as_str()).collect();
        let saved: BTreeSet<&str> = index.counters.keys().map(String::as_str).collect();
        if names != saved {
            return Err(ckpt_err(
                &index_path,
                format!("the checkpoint has the counters {saved:?}, the model {names:?}"),
            ));
        }
        let groups = self.optimizer.num_groups();
        let mut state = index.state;
        if state.base_lrs.is_empty() {
            // A checkpoint from before base rates were saved: keep the optimiser's.
            state.base_lrs = self.state.base_lrs.clone();
        } else if state.base_lrs.len() != groups {
            return Err(ckpt_err(
                &index_path,
                format!(
                    "{} base learning rates for an optimiser with {groups} parameter groups",
                    state.base_lrs.len()
                ),
            ));
        }
        let weights = dir.join(&index.weights);
        tapegrad_nn::io::load(&self.model, &weights).map_err(|e| ckpt_err(&weights, e))?;
        let opt = dir.join(&index.optimizer);
        self.optimizer.load(&opt).map_err(|e| ckpt_err(&opt, e))?;
        for (name, counter) in counters {
            counter.store(index.counters[&name], Ordering::Relaxed);
        }
        self.state = state;
        self.last_checkpoint = Some(position(&self.state));
        Ok(())
    }

    /// What is on disk, for an error that stops training.
    pub(crate) fn kept(&self) -> Kept {
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
    pub(crate) fn check_weights_finite(&self) -> Result<(), TrainError> {
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
        let counters = self.model.named_counters();
        let index = CheckpointIndex {
            state: self.state.clone(),
            weights: weights.clone(),
            optimizer: optimizer.clone(),
            counters: counters
                .iter()
                .map(|(n, c)| (n.clone(), c.load(Ordering::Relaxed)))
                .collect(),
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
}
