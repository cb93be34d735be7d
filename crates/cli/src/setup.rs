//! The options `train` and `batch-sweep` share ([`CommonArgs`]: data, model, optimiser,
//! schedule), building optimisers and learning-rate schedules from them, and the parsers
//! that check every numeric flag when the command line is read.

use std::path::PathBuf;
use std::sync::Arc;

use tapegrad_nn::{Param, Sequential};
use tapegrad_train::{classification_loss, Batch, Loss};

use crate::datasets::DatasetName;
use crate::lm::{self, LmArgs};
use crate::models::Arch;
use tapegrad_optim::schedule::{
    CosineAnnealingLr, LinearWarmup, MultiStepLr, OneCycleLr, Schedule,
};
use tapegrad_optim::{
    AdaGrad, AdaGradConfig, Adam, AdamConfig, AdamW, AdamWConfig, Lamb, LambConfig, Lars,
    LarsConfig, Optimizer, RmsProp, RmsPropConfig, Sgd, SgdConfig,
};

/// The data, model, optimiser and schedule options of `tapegrad train` and `tapegrad
/// batch-sweep` (flattened into each command's arguments, and into `train`'s saved
/// `args.json`).
#[derive(clap::Args, Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct CommonArgs {
    /// Dataset to train on.
    #[arg(long, value_enum, default_value = "digits")]
    pub dataset: DatasetName,
    /// Folder with the Fashion-MNIST IDX files (default /usr/share/datasets/fashion-mnist),
    /// or with UTF-8 text files for --dataset text (default: the embedded text).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Model architecture.
    #[arg(long, value_enum, default_value = "mlp")]
    pub model: Arch,
    /// Optimiser.
    #[arg(long, value_enum, default_value = "adam")]
    pub optimizer: OptimizerName,
    /// Learning rate [default: 0.05 for sgd, 0.5 for lars, 0.01 for adagrad, 1e-3
    /// otherwise]; with a batch size that changes, the rate at the first (train) or at
    /// --base-batch (batch-sweep).
    #[arg(long, value_parser = positive_f64)]
    pub lr: Option<f64>,
    /// Weight decay.
    #[arg(long, default_value_t = 0.0, value_parser = non_negative_f64)]
    pub weight_decay: f64,
    /// Dropout probability after each hidden layer (0 = none); a checkpoint keeps the
    /// layers' random streams, so a resumed run stays exact.
    #[arg(long, default_value_t = 0.0, value_parser = probability)]
    #[serde(default)]
    pub dropout: f64,
    /// Learning-rate schedule over the run's updates (over each batch size's run in
    /// batch-sweep).
    #[arg(long, value_enum, default_value = "constant")]
    pub schedule: ScheduleName,
    /// Clip the global gradient L2 norm to this value.
    #[arg(long, value_parser = positive_f64)]
    pub clip_grad_norm: Option<f64>,
    /// Seed for initialisation and shuffling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Language-model options (--dataset text).
    #[command(flatten)]
    #[serde(flatten)]
    pub lm: LmArgs,
}

/// A step closure of the CLI's models: the loss of a model on a batch.
pub type LossFn = fn(&Sequential, &Batch) -> Loss;

impl CommonArgs {
    /// The learning rate: --lr or the optimiser's default.
    pub fn lr(&self) -> f64 {
        self.lr.unwrap_or_else(|| self.optimizer.default_lr())
    }

    /// The model for samples of `sample_shape` and `classes` outputs (a language model
    /// for --dataset text).
    ///
    /// # Errors
    /// If the model does not fit the dataset: language models need text, and text needs
    /// a language model.
    pub fn build_model(
        &self,
        sample_shape: &[usize],
        classes: usize,
    ) -> Result<Sequential, String> {
        let text = self.dataset == DatasetName::Text;
        match (self.model.language_model(), text) {
            (Some(kind), true) => self.lm.build(kind, self.dropout, self.seed),
            (_, false) => {
                crate::models::build(self.model, sample_shape, classes, self.dropout, self.seed)
            }
            (None, true) => Err(format!(
                "--dataset text: --model {} is not a language model; use --model transformer or lstm",
                crate::train::name(self.model)
            )),
        }
    }

    /// Writes the model's default sizes into the unset size flags (--d-model and --layers
    /// of a language model), so `args.json` says what was built and `--resume` accepts
    /// them given explicitly.
    pub fn fill_model_defaults(&mut self) {
        if let Some(kind) = self.model.language_model() {
            self.lm.d_model = Some(self.lm.d_model(kind));
            self.lm.layers = Some(self.lm.layers(kind));
        }
    }

    /// The step closure: next-character cross-entropy for text
    /// ([`lm_loss`](crate::lm::lm_loss)), classification otherwise.
    pub fn loss(&self) -> LossFn {
        match self.dataset {
            DatasetName::Text => lm::lm_loss::<Sequential>,
            _ => classification_loss::<Sequential>,
        }
    }

    /// The optimiser over `params` at learning rate `lr`, with the weight decay.
    pub fn build_optimizer(&self, params: Vec<Param>, lr: f64) -> Box<dyn Optimizer> {
        self.optimizer.build(params, lr, self.weight_decay)
    }
}

/// Which optimiser to use.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum OptimizerName {
    /// SGD with momentum 0.9.
    Sgd,
    /// Adam.
    Adam,
    /// AdamW (decoupled weight decay).
    Adamw,
    /// RMSprop.
    Rmsprop,
    /// AdaGrad.
    Adagrad,
    /// LARS (layer-wise trust ratio, momentum 0.9), for large batches.
    Lars,
    /// LAMB (Adam with a layer-wise trust ratio), for large batches.
    Lamb,
}

impl OptimizerName {
    /// A learning rate that works for this optimiser on our datasets.
    pub fn default_lr(self) -> f64 {
        match self {
            OptimizerName::Sgd => 0.05,
            OptimizerName::Adam
            | OptimizerName::Adamw
            | OptimizerName::Rmsprop
            | OptimizerName::Lamb => 1e-3,
            OptimizerName::Adagrad => 0.01,
            OptimizerName::Lars => 0.5,
        }
    }

    /// Builds the optimiser over `params`.
    pub fn build(self, params: Vec<Param>, lr: f64, weight_decay: f64) -> Box<dyn Optimizer> {
        match self {
            OptimizerName::Sgd => Box::new(Sgd::new(
                params,
                SgdConfig {
                    lr,
                    momentum: 0.9,
                    weight_decay,
                    ..SgdConfig::default()
                },
            )),
            OptimizerName::Adam => Box::new(Adam::new(
                params,
                AdamConfig {
                    lr,
                    weight_decay,
                    ..AdamConfig::default()
                },
            )),
            OptimizerName::Adamw => Box::new(AdamW::new(
                params,
                AdamWConfig {
                    lr,
                    weight_decay,
                    ..AdamWConfig::default()
                },
            )),
            OptimizerName::Rmsprop => Box::new(RmsProp::new(
                params,
                RmsPropConfig {
                    lr,
                    weight_decay,
                    ..RmsPropConfig::default()
                },
            )),
            OptimizerName::Adagrad => Box::new(AdaGrad::new(
                params,
                AdaGradConfig {
                    lr,
                    weight_decay,
                    ..AdaGradConfig::default()
                },
            )),
            OptimizerName::Lars => Box::new(Lars::new(
                params,
                LarsConfig {
                    lr,
                    weight_decay,
                    ..LarsConfig::default()
                },
            )),
            OptimizerName::Lamb => Box::new(Lamb::new(
                params,
                LambConfig {
                    lr,
                    weight_decay,
                    ..LambConfig::default()
                },
            )),
        }
    }
}

/// Which learning-rate schedule to use (over parameter updates).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum ScheduleName {
    /// The base rate throughout.
    Constant,
    /// Cosine annealing from the base rate to 0 over the run.
    Cosine,
    /// 5% linear warm-up from 10% of the base rate, then cosine to 0.
    WarmupCosine,
    /// Divide by 10 at 50% and again at 75% of the run.
    Step,
    /// One-cycle: up to the base rate over 30% of the run, then down to base/25e4.
    OneCycle,
}

impl ScheduleName {
    /// The schedule for a run of `total` updates (`None` for constant).
    pub fn build(self, total: usize) -> Option<Arc<dyn Schedule>> {
        let total = total.max(1);
        match self {
            ScheduleName::Constant => None,
            ScheduleName::Cosine => Some(Arc::new(CosineAnnealingLr::new(total, 0.0))),
            ScheduleName::WarmupCosine => {
                let warm = (total / 20).max(1);
                Some(Arc::new(LinearWarmup::new(0.1, warm).then(
                    CosineAnnealingLr::new(total.saturating_sub(warm).max(1), 0.0),
                )))
            }
            ScheduleName::Step => Some(Arc::new(MultiStepLr::new(
                vec![(total / 2).max(1), (total * 3 / 4).max(2)],
                0.1,
            ))),
            ScheduleName::OneCycle => Some(Arc::new(OneCycleLr::new(total))),
        }
    }
}

/// A number that must be finite and above 0 (a learning rate, a clipping norm, seconds).
pub fn positive_f64(s: &str) -> Result<f64, String> {
    let v = finite_f64(s)?;
    if v > 0.0 {
        Ok(v)
    } else {
        Err(format!("{v} is not above 0"))
    }
}

/// A number that must be finite and at least 0 (weight decay).
pub fn non_negative_f64(s: &str) -> Result<f64, String> {
    let v = finite_f64(s)?;
    if v >= 0.0 {
        Ok(v)
    } else {
        Err(format!("{v} is negative"))
    }
}

fn finite_f64(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number"))?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(format!("{s:?} is not a finite number"))
    }
}

/// A probability in `[0, 1)` (dropout: 1 would drop everything).
pub fn probability(s: &str) -> Result<f64, String> {
    let v = finite_f64(s)?;
    if (0.0..1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is not in [0, 1)"))
    }
}

/// A count that must be at least 1 (a batch size, micro-batches, patience).
pub fn positive_usize(s: &str) -> Result<usize, String> {
    let v: usize = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a whole number"))?;
    if v >= 1 {
        Ok(v)
    } else {
        Err("must be at least 1".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_flags_reject_non_finite_and_out_of_range_values() {
        assert_eq!(positive_f64("0.001"), Ok(0.001));
        for bad in ["0", "-0.001", "NaN", "inf", "-inf", "1e400", "x", ""] {
            assert!(positive_f64(bad).is_err(), "{bad}");
        }
        assert_eq!(non_negative_f64("0"), Ok(0.0));
        for bad in ["-1e-9", "NaN", "inf"] {
            assert!(non_negative_f64(bad).is_err(), "{bad}");
        }
        assert_eq!(probability("0.2"), Ok(0.2));
        for bad in ["1", "-0.1", "NaN"] {
            assert!(probability(bad).is_err(), "{bad}");
        }
        assert_eq!(positive_usize("3"), Ok(3));
        for bad in ["0", "-1", "1.5", "NaN"] {
            assert!(positive_usize(bad).is_err(), "{bad}");
        }
    }
}
