//! `Embedding`: a lookup table of learned vectors.

use tapegrad::{DType, Tensor};

use crate::init::normal;
use crate::{Module, Param};

/// A table of `num` vectors of size `dim`: index `i` maps to row `i` of the weight.
///
/// Shapes: indices of any shape `S` to `S + [dim]`. [`lookup`](Self::lookup) takes
/// `usize` indices; [`Module::forward`] takes a float tensor holding whole numbers (the
/// way indices travel through a `Sequential`). Initialised `N(0, 1)` as PyTorch.
/// Gradient: each looked-up row gets the sum of its output gradients. Parameter:
/// `weight`. PyTorch: `torch.nn.Embedding` (without `padding_idx` / `max_norm`).
///
/// ```
/// use tapegrad::Tensor;
/// use tapegrad_nn::{Embedding, Module};
/// let emb = Embedding::new(10, 3, 0);
/// let y = emb.lookup(&[4, 4, 7], &[3]);
/// assert_eq!(y.shape(), &[3, 3]);
/// let w = emb.weight.to_vec::<f32>();
/// assert_eq!(&y.to_vec::<f32>()[..3], &w[12..15]);
/// let z = emb.forward(&Tensor::from_vec(vec![4.0f32, 7.0], &[1, 2]));
/// assert_eq!(z.shape(), &[1, 2, 3]);
/// ```
#[derive(Clone, Debug)]
pub struct Embedding {
    /// `[num, dim]`.
    pub weight: Param,
}

impl Embedding {
    /// An `f32` table of `num` vectors of size `dim`, `N(0, 1)` from `seed`.
    pub fn new(num: usize, dim: usize, seed: u64) -> Embedding {
        Embedding::with_dtype(num, dim, DType::F32, seed)
    }

    /// Like [`new`](Self::new) with a weight of `dtype`.
    pub fn with_dtype(num: usize, dim: usize, dtype: DType, seed: u64) -> Embedding {
        Embedding {
            weight: Param::new(normal(&[num, dim], 0.0, 1.0, dtype, seed)),
        }
    }

    /// A table holding `weight` (`[num, dim]`).
    ///
    /// # Panics
    /// If `weight` is not rank 2.
    #[track_caller]
    pub fn from_weight(weight: Tensor) -> Embedding {
        assert!(
            weight.rank() == 2,
            "Embedding: the weight must be [num, dim], got {:?}",
            weight.shape()
        );
        Embedding {
            weight: Param::new(weight),
        }
    }

    /// The rows at `indices`, arranged in `shape` (plus a trailing `dim` axis).
    ///
    /// # Panics
    /// If an index is not below `num` or `shape` does not hold `indices.len()` elements.
    #[track_caller]
    pub fn lookup(&self, indices: &[usize], shape: &[usize]) -> Tensor {
        let (num, dim) = (self.weight.shape()[0], self.weight.shape()[1]);
        if let Some(bad) = indices.iter().find(|&&i| i >= num) {
            panic!(
                "Embedding({num}, {dim}): index {bad} is out of range (the table has {num} rows)"
            );
        }
        assert!(
            shape.iter().product::<usize>() == indices.len(),
            "Embedding: shape {shape:?} does not hold {} indices",
            indices.len()
        );
        let mut out = shape.to_vec();
        out.push(dim);
        self.weight.index_select(0, indices).reshape_to(&out)
    }
}

impl Module for Embedding {
    /// # Panics
    /// If an element is not a whole number in `0..num`.
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        let idx: Vec<usize> = x
            .to_vec::<f64>()
            .into_iter()
            .map(|v| {
                if v < 0.0 || v.fract() != 0.0 || !v.is_finite() {
                    panic!("Embedding: index {v} is not a non-negative whole number");
                }
                v as usize
            })
            .collect();
        self.lookup(&idx, x.shape())
    }

    fn named_params(&self) -> Vec<(String, Param)> {
        vec![("weight".to_string(), self.weight.clone())]
    }
}
