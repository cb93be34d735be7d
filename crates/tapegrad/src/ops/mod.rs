//! Every differentiable op, by family. Each op is one function: it checks its inputs,
//! computes the value with a kernel and records its backward rule, written in tensor ops,
//! right beside it. Each family file ends with its rows of the op table (`table.rs`). The
//! hottest rules also have a fused one-kernel fast path for backward passes that build no
//! graph (`fused_grad!`), marked in their table row. `unary!` makes the op of an
//! elementwise function of one input.

pub(crate) mod activation;
pub(crate) mod arith;
pub(crate) mod attention;
pub(crate) mod functional;
pub(crate) mod index;
pub(crate) mod layout;
pub(crate) mod linalg;
pub(crate) mod logic;
pub(crate) mod math;
pub(crate) mod nn;
pub(crate) mod products;
pub(crate) mod recurrent;
pub(crate) mod reduce;
pub(crate) mod scan;
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

/// Panics unless `t` is a float tensor (`f32` or `f64`), naming the op and the dtype.
#[track_caller]
pub(crate) fn check_float(op: &str, t: &Tensor) {
    if !t.dtype().is_float() {
        panic!(
            "{op}: needs a float tensor (f32 or f64), got {} {:?}; convert with to_dtype",
            t.dtype(),
            t.shape()
        );
    }
}

/// Panics unless `a` and `b` share a float dtype and broadcast; returns the broadcast
/// shape.
#[track_caller]
pub(crate) fn check_binary(op: &str, a: &Tensor, b: &Tensor) -> Shape {
    check_same_dtype(op, a, b);
    check_float(op, a);
    check_broadcast(op, a, b)
}

/// Panics unless `a` and `b` broadcast (any dtypes); returns the broadcast shape.
#[track_caller]
pub(crate) fn check_broadcast(op: &str, a: &Tensor, b: &Tensor) -> Shape {
    match broadcast_shapes(a.shape(), b.shape()) {
        Some(s) => s,
        None => panic!(
            "{op}: shapes {:?} and {:?} cannot be broadcast together (sizes must match or be 1, aligned at the last axis)",
            a.shape(),
            b.shape()
        ),
    }
}

/// `unary!(x, "name", Cost::Cheap | Cost::Costly, |v| kernel)`: the [`Op`] of an
/// elementwise op of one input, its value computed by `kernel` on each element `v` (of
/// element type `E`), deferred and fused on large tensors like every elementwise op. The
/// cost class says whether a fused chain holding it is recomputed in backward or stored
/// (see `kernels::fused`). Finish it with what the rule reads and the rule:
///
/// ```ignore
/// unary!(self, "tanh", Cost::Costly, |x| x.tanh())
///     .save_output()
///     .rule(|ctx, g| g.mul(&ctx.output().square().rsub_scalar(1.0)))
/// ```
///
/// [`Op`]: crate::Op
macro_rules! unary {
    ($x:expr, $name:expr, $cost:expr, |$v:ident| $kernel:expr) => {{
        let x: &$crate::tensor::Tensor = $x;
        $crate::ops::check_float($name, x);
        let value = $crate::storage::dispatch!(x.data(), |a| {
            $crate::storage::Data::from($crate::kernels::elementwise::map_cost(
                a,
                $cost,
                move |$v: E| -> E { $kernel },
            ))
        });
        $crate::autograd::node::Op::new($name, &[x], value)
    }};
}
pub(crate) use unary;

thread_local! {
    static FUSED_RULES_TAKEN: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How many backward rules took their fused fast path on this thread so far. The op
/// table's `fused` column says which ops have one; a test compares the two.
pub fn fused_rules_taken() -> u64 {
    FUSED_RULES_TAKEN.with(|c| c.get())
}

pub(crate) fn note_fused_rule() {
    FUSED_RULES_TAKEN.with(|c| c.set(c.get() + 1));
}

/// `fused_grad!(ctx, g, |g, y| expr)`, first line of a rule that reads its output: when
/// no graph of the backward pass is built, returns at once the gradient `expr` computed
/// in one elementwise kernel over the output gradient `g` and the op's saved output `y`
/// (element type `E`), instead of the tensor-op form that follows it. `expr` must do the
/// same float operations in the same order as that form, so both give identical values;
/// the op's table row says `.fused()`, and a test checks both forms agree on every such
/// row (and that no other op takes a fast path). On large tensors it defers and fuses
/// like any elementwise op.
macro_rules! fused_grad {
    ($ctx:expr, $g:expr, |$a:ident, $b:ident| $body:expr) => {
        if !$ctx.create_graph() {
            use $crate::storage::{dispatch, Data};
            $crate::ops::note_fused_rule();
            let value = dispatch!(($g.data(), $ctx.output_data().clone()), |x, y| {
                Data::from($crate::kernels::elementwise::zip(
                    x,
                    y,
                    |$a: E, $b: E| -> E { $body },
                ))
            });
            return $crate::tensor::Tensor::from_data(value);
        }
    };
}
pub(crate) use fused_grad;
