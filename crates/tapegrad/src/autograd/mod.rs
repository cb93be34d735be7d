//! Reverse-mode autodiff: tape nodes, the backward engine, `Grads` and grad mode.
//!
//! See `docs/architecture.md` for how the tape is built and walked.

pub(crate) mod anomaly;
pub(crate) mod engine;
pub(crate) mod grad;
pub(crate) mod grads;
pub(crate) mod hooks;
pub(crate) mod mode;
pub(crate) mod node;

pub use anomaly::{detect_anomaly, is_anomaly_enabled};
pub use engine::{BackwardError, BackwardOptions};
pub use grad::{grad, GradOptions};
pub use grads::Grads;
pub use hooks::{HookHandle, HookResult};
pub use mode::{enable_grad, is_grad_enabled, no_grad};
pub use node::{custom_op, BackwardCtx, GradList, IntoGrads, Op};
