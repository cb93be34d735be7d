//! # tapegrad-optim
//!
//! Optimisers, gradient clipping and learning-rate schedules for tapegrad, with the update
//! rules and defaults of PyTorch's `torch.optim` (each optimiser writes its equations in
//! its docs), plus the large-batch optimisers LARS and LAMB.
//!
//! - [`Optimizer`]: `step(&grads)`, learning rate per [`ParamGroup`], state save/load
//!   ([`StateDict`], safetensors files written atomically).
//! - Optimisers: [`Sgd`], [`Adam`], [`AdamW`], [`RmsProp`], [`AdaGrad`], [`Lars`], [`Lamb`].
//!   Each updates the parameter buffers in place and allocates nothing per step after the
//!   first (its state buffers are created at the first step and reused).
//! - Clipping: [`clip_grad_norm`], [`clip_grad_value`], [`grad_norm`].
//! - Schedules ([`schedule`]): pure functions of the step, composable, driven by an
//!   [`LrScheduler`]; [`ReduceLrOnPlateau`] and [`EarlyStopping`] observe a metric.
//!
//! ```
//! use tapegrad::Tensor;
//! use tapegrad_nn::Param;
//! use tapegrad_optim::{Optimizer, Sgd, SgdConfig};
//!
//! // minimise (w - 3)^2
//! let w = Param::new(Tensor::from_vec(vec![0.0f64], &[1]));
//! let mut opt = Sgd::new([w.clone()], SgdConfig { lr: 0.1, ..SgdConfig::default() });
//! for _ in 0..100 {
//!     let loss = (&*w - 3.0).square().sum();
//!     opt.step(&loss.backward());
//! }
//! assert!((w.item() - 3.0).abs() < 1e-6);
//! ```
#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]

mod adagrad;
mod adam;
mod adamw;
mod clip;
mod early_stopping;
mod error;
mod group;
mod kernel;
mod lamb;
mod lars;
mod optimizer;
mod plateau;
mod rmsprop;
pub mod schedule;
mod sgd;
mod state;

pub use adagrad::{AdaGrad, AdaGradConfig};
pub use adam::{Adam, AdamConfig};
pub use adamw::{AdamW, AdamWConfig};
pub use clip::{clip_grad_norm, clip_grad_value, grad_norm, ClipError, TensorRef};
pub use early_stopping::{EarlyStopping, Mode, Observation};
pub use error::OptimError;
pub use group::{Hyper, ParamGroup};
pub use lamb::{Lamb, LambConfig};
pub use lars::{Lars, LarsConfig};
pub use optimizer::Optimizer;
pub use plateau::{PlateauState, ReduceLrOnPlateau, ThresholdMode};
pub use rmsprop::{RmsProp, RmsPropConfig};
pub use schedule::{LrScheduler, Schedule};
pub use sgd::{Sgd, SgdConfig};
pub use state::{GroupRecord, ParamRecord, StateDict};
