//! Anomaly mode: find the op that first produced a NaN or an infinity, in the forward
//! pass or in backward, and the line of the user's code that called it.
//!
//! A thread-local switch, like grad mode. When it is off, an op pays one thread-local
//! read in [`Op::new`](crate::Op::new); when it is on, every op records where it was
//! called (its public methods are `#[track_caller]`, so the location is the user's line)
//! and checks its output, and backward checks every gradient a rule returns.

use std::cell::Cell;
use std::panic::Location;

use crate::dtype::Scalar;
use crate::storage::dispatch;
use crate::tensor::Tensor;

/// Off, on, or on with the forward checks paused (while backward runs rules: their
/// intermediate values are checked as the gradients the rules return).
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Off,
    On,
    InBackward,
}

thread_local! {
    static STATE: Cell<State> = const { Cell::new(State::Off) };
}

/// Whether anomaly mode is on on this thread (see [`detect_anomaly`]).
pub fn is_anomaly_enabled() -> bool {
    STATE.with(|s| s.get()) != State::Off
}

/// Restores the previous state when dropped (also when a check panics).
struct StateGuard(State);

impl StateGuard {
    fn set(state: State) -> StateGuard {
        StateGuard(STATE.with(|s| s.replace(state)))
    }
}

impl Drop for StateGuard {
    fn drop(&mut self) {
        STATE.with(|s| s.set(self.0));
    }
}

/// Runs `f` in anomaly mode on this thread (PyTorch's `torch.autograd.detect_anomaly`):
///
/// - every op checks its output and **panics** at the first NaN or infinity, naming the
///   op, the line of the caller's code that called it, and whether its inputs were
///   already non-finite;
/// - every op records that line, and a backward pass (run inside `f`) checks each
///   gradient a rule returns: the first NaN or infinity stops it with
///   [`BackwardError::Anomaly`](crate::BackwardError::Anomaly) (a panic from
///   [`backward`](crate::Tensor::backward), an `Err` from `try_backward` and
///   [`grad`](crate::grad)), naming the op whose rule produced it and the line where
///   that op was called in the forward pass.
///
/// Ops are checked whether or not they record (under `no_grad` too). Infinities are
/// anomalies as NaN is, so a mask filled with `-inf` (causal attention) trips the forward
/// check: build such masks outside `detect_anomaly`. Anomaly mode is slow (it reads
/// every value, and elementwise chains are computed op by op instead of fused); use it
/// to find a bug, not to train. Outside it an op pays one thread-local read.
///
/// ```
/// use tapegrad::{detect_anomaly, Tensor};
/// let x = Tensor::from_vec(vec![4.0f64, 0.0], &[2]).requires_grad();
/// let y = detect_anomaly(|| x.sqrt().sum()); // sqrt(0) = 0 is fine in forward
/// let err = detect_anomaly(|| y.try_backward()).unwrap_err();
/// // ... but its gradient 1 / (2 sqrt(0)) is not.
/// assert!(err.to_string().starts_with("anomaly in backward: the rule of `sqrt`"));
/// ```
pub fn detect_anomaly<R>(f: impl FnOnce() -> R) -> R {
    let _guard = StateGuard::set(State::On);
    f()
}

/// Whether ops must record their call site (anomaly mode is on, in forward or backward).
#[inline]
pub(crate) fn recording_sites() -> bool {
    STATE.with(|s| s.get()) != State::Off
}

/// In anomaly mode, for an op being recorded: checks its value (unless backward is
/// running) and returns its call site.
///
/// # Panics
/// If the value holds a NaN or an infinity (forward checks on).
#[cold]
#[track_caller]
pub(crate) fn forward_site(
    op: &'static str,
    inputs: &[&Tensor],
    value: &Tensor,
) -> &'static Location<'static> {
    let site = Location::caller();
    if STATE.with(|s| s.get()) == State::On {
        if let Some(kind) = non_finite(value) {
            let inputs_were = match inputs
                .iter()
                .enumerate()
                .find_map(|(i, t)| non_finite(t).map(|k| (i, k)))
            {
                Some((i, k)) => format!("its input {i} already held {k}"),
                None => "its inputs were finite".to_string(),
            };
            panic!(
                "anomaly in forward: `{op}` called at {site} produced {kind} (output shape {:?}); {inputs_were}",
                value.shape()
            );
        }
    }
    site
}

/// Pauses the forward checks while backward runs (the values a rule computes are checked
/// as the gradients it returns); returns `None` when anomaly mode is off.
pub(crate) fn enter_backward() -> Option<impl Drop> {
    is_anomaly_enabled().then(|| StateGuard::set(State::InBackward))
}

/// `Some("NaN")` or `Some("inf")` if `t` holds such a value (NaN first).
pub(crate) fn non_finite(t: &Tensor) -> Option<&'static str> {
    if !t.dtype().is_float() {
        return None;
    }
    let (nan, inf) = dispatch!(t.force(), |a| a.force().iter().fold(
        (false, false),
        |(nan, inf), x| {
            let x = x.as_f64();
            (nan || x.is_nan(), inf || x.is_infinite())
        }
    ));
    if nan {
        Some("NaN")
    } else if inf {
        Some("inf")
    } else {
        None
    }
}

/// Where an op was called, as recorded in anomaly mode, for an error message.
pub(crate) fn describe_site(site: Option<&'static Location<'static>>) -> String {
    match site {
        Some(l) => format!("called at {l}"),
        None => "recorded outside anomaly mode, so its call site is unknown".to_string(),
    }
}
