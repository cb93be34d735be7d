//! `SinusoidalPositionalEmbedding`: the fixed sine/cosine position code of the original
//! transformer, added to a sequence of embeddings.

use tapegrad::{DType, Tensor};

use crate::{Module, Param};

/// Adds the fixed sinusoidal position code of "Attention Is All You Need" to `x`:
///
/// `pe[p, 2i] = sin(p / 10000^(2i / dim))`, `pe[p, 2i + 1] = cos(p / 10000^(2i / dim))`,
/// `y[..., p, :] = x[..., p, :] + pe[p, :]`.
///
/// Shapes: `x: [..., seq, dim]` with `seq <= max_len` (batch-first, or unbatched), output
/// the same. No parameters and nothing saved (the table is a function of `max_len` and
/// `dim`). PyTorch has no such module; this is the `PositionalEncoding` of PyTorch's
/// transformer tutorial without its dropout, in batch-first layout.
///
/// ```
/// use tapegrad::{DType, Tensor};
/// use tapegrad_nn::{Module, SinusoidalPositionalEmbedding};
/// let pe = SinusoidalPositionalEmbedding::new(16, 4, DType::F64);
/// let y = pe.forward(&Tensor::zeros(&[2, 3, 4], DType::F64));
/// let v = y.to_vec::<f64>();
/// assert_eq!(&v[..4], &[0.0, 1.0, 0.0, 1.0]); // position 0: sin 0, cos 0
/// assert!((v[4] - 1f64.sin()).abs() < 1e-15 && (v[6] - 0.01f64.sin()).abs() < 1e-15);
/// ```
#[derive(Clone, Debug)]
pub struct SinusoidalPositionalEmbedding {
    /// `[max_len, dim]`.
    table: Tensor,
}

impl SinusoidalPositionalEmbedding {
    /// The code for positions `0..max_len` of width `dim`, in `dtype` (computed in f64).
    pub fn new(max_len: usize, dim: usize, dtype: DType) -> SinusoidalPositionalEmbedding {
        let values: Vec<f64> = (0..max_len)
            .flat_map(|p| {
                (0..dim).map(move |j| {
                    let pair = (j / 2 * 2) as f64;
                    let angle = p as f64 * (-(10000f64.ln()) * pair / dim as f64).exp();
                    if j % 2 == 0 {
                        angle.sin()
                    } else {
                        angle.cos()
                    }
                })
            })
            .collect();
        SinusoidalPositionalEmbedding {
            table: Tensor::from_vec(values, &[max_len, dim]).to_dtype(dtype),
        }
    }

    /// The code table `[max_len, dim]`.
    pub fn table(&self) -> &Tensor {
        &self.table
    }
}

impl Module for SinusoidalPositionalEmbedding {
    /// # Panics
    /// If `x` is not `[..., seq, dim]` with `seq <= max_len`, or its dtype differs.
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        let (max_len, dim) = (self.table.shape()[0], self.table.shape()[1]);
        let r = x.rank();
        if r < 2 || x.shape()[r - 1] != dim || x.shape()[r - 2] > max_len {
            panic!(
                "SinusoidalPositionalEmbedding({max_len}, {dim}): the input must be [..., seq <= {max_len}, {dim}], got {:?}",
                x.shape()
            );
        }
        if x.dtype() != self.table.dtype() {
            panic!(
                "SinusoidalPositionalEmbedding: the input is {} but the table is {}",
                x.dtype(),
                self.table.dtype()
            );
        }
        x.add(&self.table.narrow(0, 0, x.shape()[r - 2]))
    }

    fn named_params(&self) -> Vec<(String, Param)> {
        Vec::new()
    }
}
