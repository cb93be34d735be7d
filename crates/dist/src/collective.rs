//! Collectives as recorded ops, so gradients flow through them: a sum over ranks whose
//! gradient is again a sum over ranks, and the two halves of it that tensor parallelism
//! pairs (Megatron's `f` and `g`). The rules are written with these same ops, so they
//! differentiate again.
//!
//! Two ways of counting the objective meet here. Data parallel: each rank has its own
//! loss and the objective is their sum (what gradient averaging computes), so a tensor
//! that [`all_reduce_sum`] makes the same on every rank gets `dL/dx_r = sum_r' dL_r'/dy`,
//! an all-reduce of the incoming gradients. Tensor parallel: the ranks compute one loss
//! redundantly, so a replicated tensor is one quantity: [`copy_to_parallel`] sums the
//! gradients of the ranks' separate uses of it, and [`reduce_from_parallel`] passes the
//! (already whole) gradient of the sum straight back.
//!
//! A communication failure inside an op panics with the [`DistError`] message (a
//! forward pass and a backward rule have no `Result` to return it in); the panic ends
//! this rank, and mpirun then stops the others.

use tapegrad::{custom_op, no_grad, Tensor};

use crate::comm::{Comm, DistError};

#[track_caller]
fn reduce_or_panic(comm: &Comm, x: &Tensor, op: &str) -> Tensor {
    match comm.all_reduce_tensor(x, op) {
        Ok(t) => t,
        Err(e) => fail(e),
    }
}

#[track_caller]
fn fail(e: DistError) -> ! {
    panic!("{e}")
}

/// The sum of `x` over every rank of `comm`, on every rank. Gradient: the sum over ranks
/// of the gradients (`dL/dx_r = sum_r' g_r'`). A collective: every rank must call it.
///
/// # Panics
/// If communication fails (a peer died or timed out).
#[track_caller]
pub fn all_reduce_sum(x: &Tensor, comm: &Comm) -> Tensor {
    let value = no_grad(|| reduce_or_panic(comm, x, "all_reduce_sum"));
    let comm = comm.clone();
    custom_op("all_reduce_sum", &[x], value, &[], false, move |_, g| {
        vec![Some(all_reduce_sum(g, &comm))]
    })
}

/// Megatron's `f`: `x` unchanged in forward, its gradient summed over ranks in backward.
/// Put it where a replicated tensor enters a region split over the ranks (the input of
/// a [`ColumnParallelLinear`](crate::ColumnParallelLinear)): each rank's part of the
/// model adds its share of the input's gradient.
///
/// # Panics
/// In backward, if communication fails.
pub fn copy_to_parallel(x: &Tensor, comm: &Comm) -> Tensor {
    let value = no_grad(|| x.detach());
    let comm = comm.clone();
    custom_op("copy_to_parallel", &[x], value, &[], false, move |_, g| {
        vec![Some(reduce_from_parallel(g, &comm))]
    })
}

/// Megatron's `g`: `x` summed over ranks in forward, the gradient passed through
/// unchanged in backward. Put it where a split region's partial results become one
/// replicated tensor (the output of a [`RowParallelLinear`](crate::RowParallelLinear)).
///
/// # Panics
/// If communication fails.
#[track_caller]
pub fn reduce_from_parallel(x: &Tensor, comm: &Comm) -> Tensor {
    let value = no_grad(|| reduce_or_panic(comm, x, "reduce_from_parallel"));
    let comm = comm.clone();
    custom_op(
        "reduce_from_parallel",
        &[x],
        value,
        &[],
        false,
        move |_, g| vec![Some(copy_to_parallel(g, &comm))],
    )
}
