//! `Param`: a trainable leaf tensor with a stable id whose value optimisers update in place.

use std::ops::Deref;

use tapegrad::{DType, Tensor, TensorId};

/// A trainable parameter: a leaf tensor that requires grad, with a stable id (gradients
/// from [`Tensor::backward`] are keyed by it) and a value that optimisers update in
/// place (which bumps its version, so a stale graph cannot silently be reused).
///
/// ```
/// use tapegrad::Tensor;
/// use tapegrad_nn::Param;
/// let w = Param::new(Tensor::from_vec(vec![1.0f32, 2.0], &[2]));
/// let grads = (&*w * &*w).sum().backward();
/// assert_eq!(grads[&w].to_vec::<f32>(), vec![2.0, 4.0]);
/// w.set(&Tensor::zeros(&[2], tapegrad::DType::F32));
/// assert_eq!(w.to_vec::<f32>(), vec![0.0, 0.0]);
/// ```
#[derive(Clone)]
pub struct Param {
    tensor: Tensor,
}

impl Param {
    /// A parameter holding (a copy-on-write share of) `value`, cut off from any graph.
    pub fn new(value: Tensor) -> Param {
        Param {
            tensor: value.detach().requires_grad(),
        }
    }

    /// The parameter as a tensor (the same leaf: same id, same storage).
    pub fn tensor(&self) -> &Tensor {
        &self.tensor
    }

    /// The stable id gradients are keyed by.
    pub fn id(&self) -> TensorId {
        self.tensor.id()
    }

    /// Element type.
    pub fn dtype(&self) -> DType {
        self.tensor.dtype()
    }

    /// Replaces the value in place (same id).
    ///
    /// # Panics
    /// If shape or dtype differ.
    #[track_caller]
    pub fn set(&self, value: &Tensor) {
        self.tensor.assign_(value);
    }
}

impl Deref for Param {
    type Target = Tensor;

    fn deref(&self) -> &Tensor {
        &self.tensor
    }
}

impl AsRef<Tensor> for Param {
    fn as_ref(&self) -> &Tensor {
        &self.tensor
    }
}

impl std::fmt::Debug for Param {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Param({:?})", self.tensor)
    }
}
