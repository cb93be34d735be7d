//! `LearnedPositionalEmbedding`: a learned vector per position, added to a sequence of
//! embeddings (GPT-2's `wpe`).

use tapegrad::{DType, Tensor};

use crate::init::normal;
use crate::{Module, Param};

/// Adds a learned vector per position: `y[..., p, :] = x[..., p, :] + weight[p, :]`.
///
/// Shapes: `x: [..., seq, dim]` with `seq <= max_len` (batch-first, or unbatched),
/// output the same; `weight: [max_len, dim]`, initialised `N(0, 1)` as `nn.Embedding`.
/// Gradient: `weight[p]` gets the output gradients at position `p` summed over the
/// leading axes. Parameter: `weight`, so a PyTorch `nn.Embedding(max_len, dim)` used as
/// `x + wpe(torch.arange(seq))` loads unchanged.
///
/// ```
/// use tapegrad::{DType, Tensor};
/// use tapegrad_nn::{LearnedPositionalEmbedding, Module};
/// let pos = LearnedPositionalEmbedding::with_dtype(8, 2, DType::F64, 0);
/// let y = pos.forward(&Tensor::zeros(&[3, 2], DType::F64));
/// assert_eq!(y.to_vec::<f64>(), pos.weight.to_vec::<f64>()[..6].to_vec());
/// ```
#[derive(Clone, Debug)]
pub struct LearnedPositionalEmbedding {
    /// `[max_len, dim]`.
    pub weight: Param,
}

impl LearnedPositionalEmbedding {
    /// An `f32` table for positions `0..max_len`, `N(0, 1)` from `seed`.
    pub fn new(max_len: usize, dim: usize, seed: u64) -> LearnedPositionalEmbedding {
        LearnedPositionalEmbedding::with_dtype(max_len, dim, DType::F32, seed)
    }

    /// Like [`new`](Self::new) with a table of `dtype`.
    pub fn with_dtype(
        max_len: usize,
        dim: usize,
        dtype: DType,
        seed: u64,
    ) -> LearnedPositionalEmbedding {
        LearnedPositionalEmbedding {
            weight: Param::new(normal(&[max_len, dim], 0.0, 1.0, dtype, seed)),
        }
    }

    /// `x + weight[..seq]` for any table `weight: [max_len, dim]` (the functional form).
    ///
    /// # Panics
    /// If `x` is not `[..., seq, dim]` with `seq <= max_len`, or dtypes differ.
    #[track_caller]
    pub fn add_positions(x: &Tensor, weight: &Tensor) -> Tensor {
        let (max_len, dim) = (weight.shape()[0], weight.shape()[1]);
        let r = x.rank();
        if r < 2 || x.shape()[r - 1] != dim || x.shape()[r - 2] > max_len {
            panic!(
                "LearnedPositionalEmbedding({max_len}, {dim}): the input must be [..., seq <= {max_len}, {dim}], got {:?}",
                x.shape()
            );
        }
        x.add(&weight.narrow(0, 0, x.shape()[r - 2]))
    }
}

impl Module for LearnedPositionalEmbedding {
    /// # Panics
    /// As [`LearnedPositionalEmbedding::add_positions`].
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        LearnedPositionalEmbedding::add_positions(x, &self.weight)
    }

    fn named_params(&self) -> Vec<(String, Param)> {
        vec![("weight".to_string(), self.weight.clone())]
    }
}
