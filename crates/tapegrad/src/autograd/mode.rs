//! Grad mode: a thread-local switch that turns recording off (`no_grad`).

use std::cell::Cell;

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
}

/// Whether ops on this thread currently record themselves on the tape.
pub fn is_grad_enabled() -> bool {
    GRAD_ENABLED.with(|g| g.get())
}

/// Restores the previous grad mode when dropped, so a panic inside `no_grad` cannot
/// leave recording switched off.
pub(crate) struct GradModeGuard {
    previous: bool,
}

impl GradModeGuard {
    pub(crate) fn set(enabled: bool) -> Self {
        let previous = GRAD_ENABLED.with(|g| g.replace(enabled));
        GradModeGuard { previous }
    }
}

impl Drop for GradModeGuard {
    fn drop(&mut self) {
        GRAD_ENABLED.with(|g| g.set(self.previous));
    }
}

/// Runs `f` with recording switched off on this thread (PyTorch's `torch.no_grad()`):
/// ops inside record nothing and return tensors that do not require grad.
///
/// ```
/// use tapegrad::{no_grad, Tensor};
/// let w = Tensor::from_vec(vec![1.0f32, 2.0], &[2]).requires_grad();
/// let y = no_grad(|| &w * 3.0);
/// assert!(!y.tracks_grad());
/// ```
pub fn no_grad<R>(f: impl FnOnce() -> R) -> R {
    let _guard = GradModeGuard::set(false);
    f()
}

/// Runs `f` with recording switched on, even inside [`no_grad`] (PyTorch's `enable_grad`).
pub fn enable_grad<R>(f: impl FnOnce() -> R) -> R {
    let _guard = GradModeGuard::set(true);
    f()
}
