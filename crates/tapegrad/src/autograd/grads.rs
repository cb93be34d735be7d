//! `Grads`: the result of backward, gradients keyed by tensor id.

use std::collections::HashMap;
use std::ops::Index;

use crate::tensor::{Tensor, TensorId};

/// Gradients of a backward pass, keyed by the id of each leaf that requires grad.
///
/// ```
/// use tapegrad::Tensor;
/// let w = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], &[3]).requires_grad();
/// let grads = (&w * &w).sum().backward();
/// assert_eq!(grads[&w].to_vec::<f32>(), vec![2.0, 4.0, 6.0]);
/// assert!(grads.get(&Tensor::zeros(&[1], tapegrad::DType::F32)).is_none());
/// ```
#[derive(Clone, Default)]
pub struct Grads {
    map: HashMap<TensorId, Tensor>,
}

impl Grads {
    /// An empty set of gradients.
    pub fn new() -> Self {
        Self::default()
    }

    /// The gradient of `t`, if backward reached it.
    pub fn get(&self, t: &Tensor) -> Option<&Tensor> {
        self.map.get(&t.id())
    }

    /// The gradient stored under `id`.
    pub fn get_id(&self, id: TensorId) -> Option<&Tensor> {
        self.map.get(&id)
    }

    /// Stores `grad` as the gradient of `t`, replacing any previous one.
    ///
    /// # Panics
    /// If the shapes differ.
    #[track_caller]
    pub fn insert(&mut self, t: &Tensor, grad: Tensor) {
        assert_eq!(
            t.shape(),
            grad.shape(),
            "Grads::insert: gradient shape {:?} differs from tensor shape {:?}",
            grad.shape(),
            t.shape()
        );
        self.map.insert(t.id(), grad);
    }

    /// Removes and returns the gradient of `t`.
    pub fn remove(&mut self, t: &Tensor) -> Option<Tensor> {
        self.map.remove(&t.id())
    }

    /// Adds `grad` to the gradient stored under `id` (or stores it).
    pub(crate) fn accumulate(&mut self, id: TensorId, grad: Tensor) {
        match self.map.entry(id) {
            std::collections::hash_map::Entry::Occupied(mut e) => e.get_mut().accumulate(&grad),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(grad);
            }
        }
    }

    /// Runs the hooks registered on leaf `id` on its gradient, if it has one.
    #[track_caller]
    pub(crate) fn run_leaf_hooks(&mut self, id: TensorId) {
        if let Some(g) = self.map.remove(&id) {
            self.map.insert(id, super::hooks::apply(id, g));
        }
    }

    /// Runs the hooks of every leaf held (each leaf's gradient is final).
    #[track_caller]
    pub(crate) fn run_all_leaf_hooks(&mut self) {
        let ids: Vec<TensorId> = self.map.keys().copied().collect();
        for id in ids {
            self.run_leaf_hooks(id);
        }
    }

    /// Computes every deferred gradient (fused elementwise chains) now.
    pub(crate) fn force_all(&self) {
        for g in self.map.values() {
            g.force();
        }
    }

    /// Number of gradients held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no gradient is held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Iterates over `(id, gradient)` pairs in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (TensorId, &Tensor)> {
        self.map.iter().map(|(id, g)| (*id, g))
    }

    /// Adds every gradient of `other` into `self` (gradient accumulation over micro-batches).
    pub fn add(&mut self, other: &Grads) {
        for (id, g) in other.iter() {
            self.accumulate(id, g.clone());
        }
    }

    /// Multiplies every gradient by `factor` (e.g. `1 / steps` after accumulation).
    pub fn scale(&mut self, factor: f64) {
        for g in self.map.values_mut() {
            *g = g.mul_scalar(factor);
        }
    }
}

impl Index<&Tensor> for Grads {
    type Output = Tensor;

    #[track_caller]
    fn index(&self, t: &Tensor) -> &Tensor {
        match self.map.get(&t.id()) {
            Some(g) => g,
            None => panic!(
                "Grads: no gradient for tensor {:?} (shape {:?}); it does not require grad or the output does not depend on it",
                t.id(),
                t.shape()
            ),
        }
    }
}

impl std::fmt::Debug for Grads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.map.iter().map(|(k, v)| (k, v.shape().to_vec())))
            .finish()
    }
}
