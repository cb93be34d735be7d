//! `Embedding`: a lookup table of learned vectors.

use tapegrad::{DType, Tensor};

use crate::init::normal;
use crate::{Module, Param};

/// A table of `num` vectors of size `dim`: index `i` maps to row `i` of the weight.
///
/// Shapes: indices of any shape `S` to `S + [dim]`. [`lookup`](Self::lookup) takes
/// `usize` indices; [`Module::forward`] takes a float tensor holding whole numbers (the
/// way indices travel through a `Sequential`). Initialised `N(0, 1)` as PyTorch.
/// Gradient: each looked-up row gets the sum of its output gradients, except the row
/// `padding_idx` (if set), which gets none (it still reads its value, zeros unless
/// loaded otherwise). Parameter: `weight`. PyTorch: `torch.nn.Embedding` (without
/// `max_norm`).
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
///
/// // A padding row is zero and gets no gradient.
/// let padded = Embedding::new(10, 3, 0).with_padding_idx(0);
/// let y = padded.lookup(&[0, 5, 0], &[3]);
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

/// The rows of `weight: [num, dim]` at `indices`, arranged in `shape` plus a trailing
/// `dim` axis; the row `padding_idx` (if given) reads its value but passes no gradient
/// back to `weight`. PyTorch: `torch.nn.functional.embedding(indices, weight,
/// padding_idx)`.
///
/// # Panics
/// If `weight` is not rank 2, an index is not below `num`, or `shape` does not hold
/// `indices.len()` elements.
///
/// ```
/// use tapegrad::Tensor;
/// use tapegrad_nn::functional::embedding;
/// let w = Tensor::from_vec(vec![0.0f64, 1.0, 2.0, 3.0, 4.0, 5.0], &[3, 2]).requires_grad();
/// let y = embedding(&w, &[2, 1, 2], &[3], Some(1));
/// assert_eq!(y.to_vec::<f64>(), vec![4.0, 5.0, 2.0, 3.0, 4.0, 5.0]);
/// let g = y.sum().backward()[&w].to_vec::<f64>();
/// assert_eq!(g, vec![0.0, 0.0, 0.0, 0.0, 2.0, 2.0]);
/// ```
#[track_caller]
pub fn embedding(
    weight: &Tensor,
    indices: &[usize],
    shape: &[usize],
    padding_idx: Option<usize>,
) -> Tensor {
    if weight.rank() != 2 {
        panic!(
            "embedding: the weight must be [num, dim], got {:?}",
            weight.shape()
        );
    }
    let (num, dim) = (weight.shape()[0], weight.shape()[1]);
    if let Some(bad) = indices.iter().find(|&&i| i >= num) {
        panic!("Embedding({num}, {dim}): index {bad} is out of range (the table has {num} rows)");
    }
    assert!(
        shape.iter().product::<usize>() == indices.len(),
        "Embedding: shape {shape:?} does not hold {} indices",
        indices.len()
    );
    let mut out = shape.to_vec();
    out.push(dim);
    let index: Vec<i64> = indices.iter().map(|&i| i as i64).collect();
    let rows = weight.index_select(0, &Tensor::from_vec(index, &[indices.len()]));
    let rows = match padding_idx {
        Some(pad) if indices.contains(&pad) => {
            // The padding rows come from a detached copy: same values, no gradient.
            // `a * 1 + a * 0` is `a` exactly, so the values are untouched.
            let keep: Vec<f64> = indices
                .iter()
                .map(|&i| if i == pad { 0.0 } else { 1.0 })
                .collect();
            let keep = Tensor::from_vec(keep, &[indices.len(), 1]).to_dtype(weight.dtype());
            let drop = keep.rsub_scalar(1.0);
            rows.mul(&keep).add(&rows.detach().mul(&drop))
        }
        _ => rows,
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

    /// The rows at `indices`, arranged in `shape` (plus a trailing `dim` axis).
    ///
    /// # Panics
    /// If an index is not below `num` or `shape` does not hold `indices.len()` elements.
    #[track_caller]
    pub fn lookup(&self, indices: &[usize], shape: &[usize]) -> Tensor {
        embedding(&self.weight, indices, shape, self.padding_idx)
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
