//! Every differentiable op, by family. Each op is one function: it checks its inputs,
//! computes the value with a kernel and records its backward rule, written in tensor ops,
//! right beside it. Each family file ends with its rows of the op table (`table.rs`).

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
