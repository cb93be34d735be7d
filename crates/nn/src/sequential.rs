//! `Sequential`: a chain of modules applied in order.

use std::sync::atomic::AtomicU64;

use tapegrad::Tensor;

use crate::module::prefixed;
use crate::{Module, Param};

/// Applies its modules in order: `y = m_k(... m_1(m_0(x)))`. Parameters are named by
/// position, `"0.weight"`, `"2.bias"`, as PyTorch's `torch.nn.Sequential`; training
/// mode is passed to every child.
///
/// ```
/// use tapegrad::{DType, Tensor};
/// use tapegrad_nn::{Linear, Module, Relu, Sequential};
/// let mlp = Sequential::new().add(Linear::new(4, 8, 0)).add(Relu).add(Linear::new(8, 2, 1));
/// let names: Vec<String> = mlp.named_params().into_iter().map(|(n, _)| n).collect();
/// assert_eq!(names, ["0.weight", "0.bias", "2.weight", "2.bias"]);
/// assert_eq!(mlp.forward(&Tensor::zeros(&[5, 4], DType::F32)).shape(), &[5, 2]);
/// ```
#[derive(Default)]
pub struct Sequential {
    layers: Vec<Box<dyn Module>>,
}

impl Sequential {
    /// An empty chain (the identity).
    pub fn new() -> Sequential {
        Sequential { layers: Vec::new() }
    }

    /// Appends a module (builder style, as candle's `seq().add(..)`).
    #[allow(clippy::should_implement_trait)]
    pub fn add(mut self, layer: impl Module + 'static) -> Sequential {
        self.layers.push(Box::new(layer));
        self
    }

    /// Appends a module.
    pub fn push(&mut self, layer: impl Module + 'static) {
        self.layers.push(Box::new(layer));
    }

    /// Number of modules.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// Whether the chain is empty.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// The `i`-th module, if any.
    pub fn get(&self, i: usize) -> Option<&dyn Module> {
        self.layers.get(i).map(|m| &**m)
    }
}

impl Module for Sequential {
    fn forward(&self, x: &Tensor) -> Tensor {
        let mut y = x.clone();
        for layer in &self.layers {
            y = layer.forward(&y);
        }
        y
    }

    fn named_params(&self) -> Vec<(String, Param)> {
        self.layers
            .iter()
            .enumerate()
            .flat_map(|(i, m)| prefixed(&i.to_string(), m.named_params()))
            .collect()
    }

    fn named_buffers(&self) -> Vec<(String, Tensor)> {
        self.layers
            .iter()
            .enumerate()
            .flat_map(|(i, m)| prefixed(&i.to_string(), m.named_buffers()))
            .collect()
    }

    fn named_counters(&self) -> Vec<(String, &AtomicU64)> {
        self.layers
            .iter()
            .enumerate()
            .flat_map(|(i, m)| prefixed(&i.to_string(), m.named_counters()))
            .collect()
    }

    fn set_training(&mut self, training: bool) {
        for layer in &mut self.layers {
            layer.set_training(training);
        }
    }
}
