//! `Embedding`: a lookup table of learned vectors.

use tapegrad::{DType, Tensor};

use crate::init::normal;
use crate::{Module, Param};

/// A table of `num` vectors of size `dim`: index `i` maps to row `i` of the weight.
///
/// Shapes: `I64` indices of any shape `S` to `S + [dim]`, as PyTorch (a float index
/// tensor panics). Initialised `N(0, 1)` as PyTorch. Gradient: each looked-up row gets
/// the sum of its output gradients, except the row `padding_idx` (if set), which gets
/// none (it still reads its value, zeros unless loaded otherwise). Parameter: `weight`.
/// PyTorch: `torch.nn.Embedding` (without `max_norm`).
///
/// ```
/// use tapegrad::Tensor;
/// use tapegrad_nn::{Embedding, Module};
/// let emb = Embedding::new(10, 3, 0);
/// let y = emb.forward(&Tensor::from_vec(vec![4i64, 4, 7], &[3]));
/// assert_eq!(y.shape(), &[3, 3]);
/// let w = emb.weight.to_vec::<f32>();
/// assert_eq!(&y.to_vec::<f32>()[..3], &w[12..15]);
/// let z = emb.forward(&Tensor::from_vec(vec![4i64, 7], &[1, 2]));
/// assert_eq!(z.shape(), &[1, 2, 3]);
///
/// // A padding row is zero and gets no gradient.
/// let padded = Embedding::new(10, 3, 0).with_padding_idx(0);
/// let y = padded.forward(&Tensor::from_vec(vec![0i64, 5, 0], &[3]));
/// assert_eq!(&y.to_vec::<f32>()[..3], &[0.0, 0.0, 0.0]);
/// let g = y.sum().backward()[&padded.weight].to_vec::<f32>();
/// assert_eq!((&g[..3], &g[15..18]), (&[0.0f32; 3][..], &[1.0f32; 3][..]));
/// ```
#[derive(Clone, Debug)]
pub struct Embedding {
    /// `[num, dim]`.
    pub weight: Param,
    /// The row that gets no gradient (PyTorch's `padding_idx`), if any.
    pub padding_idx: Option<usize>,
}

/// The rows of `weight: [num, dim]` at `indices` (an `I64` tensor of any shape `S`),
/// shaped `S + [dim]`; the row `padding_idx` (if given) reads its value but passes no
/// gradient back to `weight`. PyTorch: `torch.nn.functional.embedding(input, weight,
/// padding_idx)`.
///
/// # Panics
/// If `indices` is not an `I64` tensor, `weight` is not rank 2, or an index is not in
/// `0..num`.
///
/// ```
/// use tapegrad::Tensor;
/// use tapegrad_nn::functional::embedding;
/// let w = Tensor::from_vec(vec![0.0f64, 1.0, 2.0, 3.0, 4.0, 5.0], &[3, 2]).requires_grad();
/// let idx = Tensor::from_vec(vec![2i64, 1, 2], &[3]);
/// let y = embedding(&idx, &w, Some(1));
/// assert_eq!(y.to_vec::<f64>(), vec![4.0, 5.0, 2.0, 3.0, 4.0, 5.0]);
/// let g = y.sum().backward()[&w].to_vec::<f64>();
/// assert_eq!(g, vec![0.0, 0.0, 0.0, 0.0, 2.0, 2.0]);
/// ```
#[track_caller]
pub fn embedding(indices: &Tensor, weight: &Tensor, padding_idx: Option<usize>) -> Tensor {
    if weight.rank() != 2 {
        panic!(
            "embedding: the weight must be [num, dim], got {:?}",
            weight.shape()
        );
    }
    let (num, dim) = (weight.shape()[0], weight.shape()[1]);
    if indices.dtype() != DType::I64 {
        panic!(
            "Embedding({num}, {dim}): the indices must be an i64 tensor, got {} {:?}; convert with to_dtype(DType::I64)",
            indices.dtype(),
            indices.shape()
        );
    }
    let index = indices.to_vec::<i64>();
    if let Some(bad) = index.iter().find(|&&i| i < 0 || i as usize >= num) {
        panic!("Embedding({num}, {dim}): index {bad} is out of range (the table has {num} rows)");
    }
    let mut out = indices.shape().to_vec();
    out.push(dim);
    let n = index.len();
    let pad = padding_idx.map(|p| p as i64);
    let keep: Option<Vec<f64>> = pad.filter(|p| index.contains(p)).map(|p| {
        index
            .iter()
            .map(|&i| if i == p { 0.0 } else { 1.0 })
            .collect()
    });
    let rows = weight.index_select(0, &Tensor::from_vec(index, &[n]));
    let rows = match keep {
        Some(keep) => {
            // The padding rows come from a detached copy: same values, no gradient.
            // `a * 1 + a * 0` is `a` exactly, so the values are untouched.
            let keep = Tensor::from_vec(keep, &[n, 1]).to_dtype(weight.dtype());
            let drop = keep.rsub_scalar(1.0);
            rows.mul(&keep).add(&rows.detach().mul(&drop))
        }
        None => rows,
    };
    rows.reshape_to(&out)
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
            padding_idx: None,
        }
    }

    /// Makes row `padding_idx` the padding row, as PyTorch's constructor does: it is set
    /// to zeros and gets no gradient. (To keep a loaded row's value, set the
    /// [`padding_idx`](Self::padding_idx) field instead.)
    ///
    /// # Panics
    /// If `padding_idx` is not below `num`.
    #[track_caller]
    pub fn with_padding_idx(mut self, padding_idx: usize) -> Embedding {
        let (num, dim) = (self.weight.shape()[0], self.weight.shape()[1]);
        if padding_idx >= num {
            panic!("Embedding({num}, {dim}): padding_idx {padding_idx} is out of range");
        }
        let mut keep = vec![1.0; num];
        keep[padding_idx] = 0.0;
        let keep = Tensor::from_vec(keep, &[num, 1]).to_dtype(self.weight.dtype());
        self.weight.set(&self.weight.detach().mul(&keep));
        self.padding_idx = Some(padding_idx);
        self
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
            padding_idx: None,
        }
    }
}

impl Module for Embedding {
    /// [`embedding`] of `x` (`I64` indices of any shape) in this table.
    ///
    /// # Panics
    /// If `x` is not an `I64` tensor or an index is not in `0..num`.
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        embedding(x, &self.weight, self.padding_idx)
    }

    fn named_params(&self) -> Vec<(String, Param)> {
        vec![("weight".to_string(), self.weight.clone())]
    }
}
