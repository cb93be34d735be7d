//! Tensor hooks: functions that see, and may replace, the gradient flowing through a
//! tensor during backward (PyTorch's `Tensor.register_hook`).
//!
//! Hooks live in one registry keyed by tensor id. A hook stays until its handle's
//! [`HookHandle::remove`] is called or its tensor's gradient slot is gone: the leaf
//! dropped, or, for an op output, the graph node dropped (so a hook on an activation
//! keeps working after the user's handle on the activation is dropped, as long as the
//! graph that uses it lives). Dropping the `HookHandle` does not remove the hook, as in
//! PyTorch. The engine reads one counter per backward pass and does no hook work at all
//! when no hook is registered.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use smallvec::SmallVec;

use super::node::Node;
use crate::tensor::{Inner, Tensor, TensorId};

type HookFn = dyn Fn(&Tensor) -> Option<Tensor> + Send + Sync;

/// What keeps a hook alive: the leaf tensor, or the node that produced the tensor.
enum Owner {
    Leaf(Weak<Inner>),
    Node(Weak<Node>),
}

impl Owner {
    fn alive(&self) -> bool {
        match self {
            Owner::Leaf(w) => w.strong_count() > 0,
            Owner::Node(w) => w.strong_count() > 0,
        }
    }
}

struct Entry {
    handle: u64,
    owner: Owner,
    hook: Arc<HookFn>,
}

static REGISTRY: Mutex<BTreeMap<TensorId, Vec<Entry>>> = Mutex::new(BTreeMap::new());
/// Number of hooks in the registry; backward skips hook work when it is zero.
static LIVE: AtomicUsize = AtomicUsize::new(0);
static NEXT_HANDLE: AtomicU64 = AtomicU64::new(1);

fn registry() -> std::sync::MutexGuard<'static, BTreeMap<TensorId, Vec<Entry>>> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether any hook is registered (read once per backward pass).
pub(crate) fn any() -> bool {
    LIVE.load(Ordering::Relaxed) > 0
}

/// What a hook may return: a replacement gradient ([`Tensor`]), `Option<Tensor>`
/// (`None` keeps the gradient as it is) or `()` (a hook that only looks).
pub trait HookResult {
    /// The replacement gradient, if any.
    fn into_grad(self) -> Option<Tensor>;
}

impl HookResult for Tensor {
    fn into_grad(self) -> Option<Tensor> {
        Some(self)
    }
}

impl HookResult for Option<Tensor> {
    fn into_grad(self) -> Option<Tensor> {
        self
    }
}

impl HookResult for () {
    fn into_grad(self) -> Option<Tensor> {
        None
    }
}

/// Removes a hook registered with [`Tensor::register_hook`]. Dropping the handle keeps
/// the hook (PyTorch's policy): it then lives as long as the tensor's gradient slot.
#[derive(Debug)]
pub struct HookHandle {
    id: TensorId,
    handle: u64,
}

impl HookHandle {
    /// Removes the hook; returns whether it was still registered (false if its tensor's
    /// slot was already gone).
    pub fn remove(self) -> bool {
        let mut reg = registry();
        let Some(entries) = reg.get_mut(&self.id) else {
            return false;
        };
        let before = entries.len();
        entries.retain(|e| e.handle != self.handle);
        let removed = entries.len() < before;
        if entries.is_empty() {
            reg.remove(&self.id);
        }
        if removed {
            LIVE.fetch_sub(1, Ordering::Relaxed);
        }
        removed
    }
}

impl Tensor {
    /// Registers `hook`, called with the gradient flowing into this tensor once it is
    /// complete (every use of the tensor has contributed), in every later backward pass;
    /// what it returns replaces that gradient (`Tensor`), or keeps it (`None`, `()`).
    /// Works on leaves (it sees the leaf's total gradient before it goes into
    /// [`Grads`](crate::Grads)) and on op outputs (what it returns flows on to the
    /// inputs of the op). Several hooks run in the order they were registered. In a
    /// backward that builds a graph ([`backward_with_graph`](Self::backward_with_graph),
    /// `create_graph`), the hook's ops are recorded too, so its effect is differentiated.
    ///
    /// The returned handle removes it ([`HookHandle::remove`]); dropping the handle does
    /// not (PyTorch's policy): the hook then lives as long as the leaf, or as long as the
    /// graph node of an op output.
    ///
    /// # Panics
    /// If the tensor does not track grad (no gradient will flow through it). A hook that
    /// returns a gradient of another shape or dtype makes backward panic naming it.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let x = Tensor::from_vec(vec![1.0f64, 2.0], &[2]).requires_grad();
    /// let h = x.square();
    /// let handle = h.register_hook(|g| g.mul_scalar(10.0));
    /// let y = h.sum();
    /// assert_eq!(y.backward_retain_graph()[&x].to_vec::<f64>(), vec![20.0, 40.0]);
    /// handle.remove();
    /// assert_eq!(y.backward()[&x].to_vec::<f64>(), vec![2.0, 4.0]);
    /// ```
    #[track_caller]
    pub fn register_hook<F, R>(&self, hook: F) -> HookHandle
    where
        F: Fn(&Tensor) -> R + Send + Sync + 'static,
        R: HookResult,
    {
        assert!(
            self.tracks_grad(),
            "register_hook: the tensor (shape {:?}) does not require grad, so no gradient flows through it",
            self.shape()
        );
        let owner = match self.node() {
            Some(node) => Owner::Node(Arc::downgrade(node)),
            None => Owner::Leaf(Arc::downgrade(&self.0)),
        };
        let handle = NEXT_HANDLE.fetch_add(1, Ordering::Relaxed);
        let mut reg = registry();
        sweep(&mut reg);
        reg.entry(self.id()).or_default().push(Entry {
            handle,
            owner,
            hook: Arc::new(move |g: &Tensor| hook(g).into_grad()),
        });
        LIVE.fetch_add(1, Ordering::Relaxed);
        HookHandle {
            id: self.id(),
            handle,
        }
    }
}

/// Drops the hooks whose tensor slot is gone.
fn sweep(reg: &mut BTreeMap<TensorId, Vec<Entry>>) {
    let mut dropped = 0;
    reg.retain(|_, entries| {
        let before = entries.len();
        entries.retain(|e| e.owner.alive());
        dropped += before - entries.len();
        !entries.is_empty()
    });
    LIVE.fetch_sub(dropped, Ordering::Relaxed);
}

/// Runs the hooks registered on tensor `id` on its complete gradient `g`, in order,
/// each on the previous one's result. The registry is not locked while a hook runs (a
/// hook may register or remove hooks).
///
/// # Panics
/// If a hook returns a gradient of another shape or dtype.
#[track_caller]
pub(crate) fn apply(id: TensorId, g: Tensor) -> Tensor {
    let hooks: SmallVec<[Arc<HookFn>; 2]> = {
        let reg = registry();
        match reg.get(&id) {
            None => return g,
            Some(entries) => entries
                .iter()
                .filter(|e| e.owner.alive())
                .map(|e| e.hook.clone())
                .collect(),
        }
    };
    let mut g = g;
    for hook in hooks {
        if let Some(new) = hook(&g) {
            check_hook_grad(id, &g, &new);
            g = new;
        }
    }
    g
}

#[track_caller]
fn check_hook_grad(id: TensorId, g: &Tensor, new: &Tensor) {
    assert!(
        new.shape() == g.shape() && new.dtype() == g.dtype(),
        "backward: a hook registered on tensor {} returned a {} gradient of shape {:?} for a {} gradient of shape {:?}",
        id.as_u64(),
        new.dtype(),
        new.shape(),
        g.dtype(),
        g.shape()
    );
}
