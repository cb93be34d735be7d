//! `Residual`: a skip connection around a module.

use std::sync::atomic::AtomicU64;

use tapegrad::Tensor;

use crate::module::prefixed;
use crate::{Module, Param};

/// A residual block: `y = body(x) + x`, or `y = body(x) + shortcut(x)` with a projection
/// shortcut (for when `body` changes the shape). Parameters are named `"body.*"` and
/// `"shortcut.*"`. PyTorch has no such module; it is the `out += identity` of ResNet's
/// `BasicBlock`.
///
/// ```
/// use tapegrad::{DType, Tensor};
/// use tapegrad_nn::{Linear, Module, Residual};
/// let zero = Linear::from_params(Tensor::zeros(&[3, 3], DType::F32), None);
/// let block = Residual::new(zero);
/// let x = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], &[1, 3]);
/// assert_eq!(block.forward(&x).to_vec::<f32>(), x.to_vec::<f32>());
/// assert_eq!(block.named_params()[0].0, "body.weight");
/// ```
pub struct Residual {
    body: Box<dyn Module>,
    shortcut: Option<Box<dyn Module>>,
}

impl Residual {
    /// `y = body(x) + x`.
    pub fn new(body: impl Module + 'static) -> Residual {
        Residual {
            body: Box::new(body),
            shortcut: None,
        }
    }

    /// `y = body(x) + shortcut(x)`.
    pub fn with_shortcut(body: impl Module + 'static, shortcut: impl Module + 'static) -> Residual {
        Residual {
            body: Box::new(body),
            shortcut: Some(Box::new(shortcut)),
        }
    }
}

impl Module for Residual {
    /// # Panics
    /// If the body's output does not have the shape of the input (or of the shortcut's
    /// output).
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        let y = self.body.forward(x);
        let skip = match &self.shortcut {
            Some(s) => s.forward(x),
            None => x.clone(),
        };
        if y.shape() != skip.shape() {
            panic!(
                "Residual: the body's output {:?} differs from the skip path's {:?}; add a projection shortcut",
                y.shape(),
                skip.shape()
            );
        }
        y.add(&skip)
    }

    fn named_params(&self) -> Vec<(String, Param)> {
        let mut v = prefixed("body", self.body.named_params());
        if let Some(s) = &self.shortcut {
            v.extend(prefixed("shortcut", s.named_params()));
        }
        v
    }

    fn named_buffers(&self) -> Vec<(String, Tensor)> {
        let mut v = prefixed("body", self.body.named_buffers());
        if let Some(s) = &self.shortcut {
            v.extend(prefixed("shortcut", s.named_buffers()));
        }
        v
    }

    fn named_counters(&self) -> Vec<(String, &AtomicU64)> {
        let mut v = prefixed("body", self.body.named_counters());
        if let Some(s) = &self.shortcut {
            v.extend(prefixed("shortcut", s.named_counters()));
        }
        v
    }

    fn set_training(&mut self, training: bool) {
        self.body.set_training(training);
        if let Some(s) = &mut self.shortcut {
            s.set_training(training);
        }
    }
}
