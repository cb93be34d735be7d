//! # tapegrad
//!
//! Reverse-mode automatic differentiation on n-d tensors (`f32`/`f64`, broadcasting),
//! with a tape built on demand, gradients of gradients, `no_grad` and `detach`.
//!
//! ```
//! use tapegrad::Tensor;
//!
//! let x = Tensor::from_vec(vec![1.0f64, 2.0, 3.0], &[3]).requires_grad();
//! let w = Tensor::from_vec(vec![0.5f64, -1.0, 2.0], &[3]).requires_grad();
//! let loss = (&x * &w).tanh().sum();
//! let grads = loss.backward();
//! // d/dw tanh(x*w) = x * (1 - tanh(x*w)^2)
//! let expected: Vec<f64> = [1.0f64, 2.0, 3.0].iter().zip([0.5, -1.0, 2.0])
//!     .map(|(x, w)| x * (1.0 - (x * w).tanh().powi(2))).collect();
//! for (g, e) in grads[&w].to_vec::<f64>().iter().zip(expected) {
//!     assert!((g - e).abs() < 1e-12);
//! }
//! ```
//!
//! See `docs/architecture.md` for how the tape works and `docs/ops.md` for every op and
//! its gradient.
#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]

pub mod autograd;
mod display;
pub mod dtype;
pub mod func;
mod kernels;
pub mod ops;
pub mod shape;
mod storage;
mod tensor;

pub use autograd::{
    custom_op, detect_anomaly, enable_grad, grad, is_anomaly_enabled, is_grad_enabled, no_grad,
    BackwardCtx, BackwardError, BackwardOptions, GradOptions, Grads, HookHandle, HookResult,
    IntoGrads, Op,
};
pub use dtype::{DType, Element};
pub use kernels::fused::{is_fusion_enabled, with_fusion};
pub use ops::functional::{InterpolateMode, ResizeTarget};
pub use ops::table::{all_ops, find_op, Domain, Inputs, OpSpec};
pub use shape::Shape;

/// Frees the buffers tapegrad keeps for reuse (large kernel outputs freed recently; at
/// most 64 MiB, `TAPEGRAD_POOL_MB` sets the cap, 0 disables the pool). Call it before
/// measuring memory, or to hand the memory back to the system.
pub fn clear_buffer_pool() {
    kernels::buffers::clear();
}
pub use tensor::{Tensor, TensorId};

/// The README's example, compiled and run as a doctest so it stays true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
