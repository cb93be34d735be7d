//! Building optimisers and learning-rate schedules from command-line choices.

use std::sync::Arc;

use tapegrad_nn::Param;
use tapegrad_optim::schedule::{
    CosineAnnealingLr, LinearWarmup, MultiStepLr, OneCycleLr, Schedule,
};
use tapegrad_optim::{
    AdaGrad, AdaGradConfig, Adam, AdamConfig, AdamW, AdamWConfig, Lamb, LambConfig, Lars,
    LarsConfig, Optimizer, RmsProp, RmsPropConfig, Sgd, SgdConfig,
};

/// Which optimiser to use.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
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
