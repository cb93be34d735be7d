//! Every differentiable op, by family. Each op is one function: it checks its inputs,
//! computes the value with a kernel and records its backward rule, written in tensor ops,
//! right beside it. Each family file ends with its rows of the op table (`table.rs`). The
//! hottest rules also have a fused one-kernel fast path for backward passes that build no
//! graph (`fused_grad!`).

pub(crate) mod activation;
pub(crate) mod arith;
pub(crate) mod index;
pub(crate) mod linalg;
pub(crate) mod math;
pub(crate) mod nn;
pub(crate) mod reduce;
pub(crate) mod shape;
pub mod table;

use crate::shape::{broadcast_shapes, Shape};
use crate::tensor::Tensor;

/// Panics unless `a` and `b` share a dtype.
#[track_caller]
pub(crate) fn check_same_dtype(op: &str, a: &Tensor, b: &Tensor) {
    if a.dtype() != b.dtype() {
        panic!(
            "{op}: dtype mismatch: {} {:?} vs {} {:?}; convert one with to_dtype",
            a.dtype(),
            a.shape(),
            b.dtype(),
            b.shape()
        );
    }
}

/// Panics unless `a` and `b` share a dtype and broadcast; returns the broadcast shape.
#[track_caller]
pub(crate) fn check_binary(op: &str, a: &Tensor, b: &Tensor) -> Shape {
    check_same_dtype(op, a, b);
    match broadcast_shapes(a.shape(), b.shape()) {
        Some(s) => s,
        None => panic!(
            "{op}: shapes {:?} and {:?} cannot be broadcast together (sizes must match or be 1, aligned at the last axis)",
            a.shape(),
            b.shape()
        ),
    }
}

/// `fused_grad!(g, s, |a, b| expr)`: the gradient tensor `expr` computed elementwise in
/// one kernel over the gradient `g` (a `&Tensor`) and the data `s` (a `&Data` of the same
/// dtype, e.g. the op's output); `expr` sees the element type as `E`. The fast path of a
/// rule when no graph of the backward pass is built: `expr` must do the same float
/// operations, in the same order, as the rule's tensor-op form, so both paths give
/// identical values. On large tensors it defers and fuses like any elementwise op.
macro_rules! fused_grad {
    ($g:expr, $s:expr, |$a:ident, $b:ident| $body:expr) => {{
        use $crate::storage::{dispatch, Data};
        let value = dispatch!(($g.data(), $s.clone()), |x, y| {
            Data::from($crate::kernels::elementwise::zip(
                x,
                y,
                |$a: E, $b: E| -> E { $body },
            ))
        });
        $crate::tensor::Tensor::from_data(value)
    }};
}
pub(crate) use fused_grad;
