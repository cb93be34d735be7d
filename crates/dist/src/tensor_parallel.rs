//! Tensor (model) parallelism, Megatron style: `ColumnParallelLinear` splits a layer's
//! output features over the ranks, `RowParallelLinear` the next layer's input features,
//! so the pair costs one all-reduce in forward and one in backward.

use tapegrad::Tensor;
use tapegrad_nn::{Linear, Module, Param};

use crate::collective::{copy_to_parallel, reduce_from_parallel};
use crate::comm::Comm;

/// Rows `[rank x n / size, (rank + 1) x n / size)` of dimension `dim` of `t`.
#[track_caller]
fn shard_of(t: &Tensor, dim: usize, comm: &Comm, layer: &str) -> Tensor {
    let n = t.shape()[dim];
    let size = comm.size();
    if !n.is_multiple_of(size) {
        panic!(
            "{layer}: {n} features cannot be split evenly over {size} ranks (shape {:?}, dimension {dim})",
            t.shape()
        );
    }
    let part = n / size;
    // A copy, not a view: the shard is a parameter of its own.
    let s = t.narrow(dim as isize, comm.rank() * part, part);
    let values = s.to_dtype(tapegrad::DType::F64).to_vec::<f64>();
    Tensor::from_vec(values, s.shape()).to_dtype(t.dtype())
}

/// A linear layer `y = x W^T + b` whose `out` features are split over the ranks: rank
/// `r` holds rows `r x out / np ..` of `W` (`[out / np, in]`) and of `b`, takes the whole
/// input `x [..., in]` (the same on every rank) and returns its slice of `y`,
/// `[..., out / np]`. The input passes through [`copy_to_parallel`], so in backward the
/// input's gradient is summed over the ranks' slices. Follow it by an elementwise
/// activation and a [`RowParallelLinear`] (the Megatron MLP).
#[derive(Clone)]
pub struct ColumnParallelLinear {
    /// This rank's rows of the weight, `[out / np, in]`.
    pub weight: Param,
    /// This rank's part of the bias, `[out / np]`.
    pub bias: Option<Param>,
    comm: Comm,
}

impl ColumnParallelLinear {
    /// This rank's share of `full` (the whole layer, built the same way on every rank).
    ///
    /// # Panics
    /// If `out` does not divide by the number of ranks.
    #[track_caller]
    pub fn from_linear(full: &Linear, comm: &Comm) -> Self {
        let name = "ColumnParallelLinear";
        ColumnParallelLinear {
            weight: Param::new(shard_of(&full.weight, 0, comm, name)),
            bias: full
                .bias
                .as_ref()
                .map(|b| Param::new(shard_of(b, 0, comm, name))),
            comm: comm.clone(),
        }
    }
}

impl Module for ColumnParallelLinear {
    /// # Panics
    /// If the input's last dimension is not `in`; in backward, if communication fails.
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        let inp = self.weight.shape()[1];
        if x.rank() == 0 || x.shape()[x.rank() - 1] != inp {
            panic!(
                "ColumnParallelLinear({inp} -> {} per rank): the input's last dimension must be {inp}, got shape {:?}",
                self.weight.shape()[0],
                x.shape()
            );
        }
        let y = copy_to_parallel(x, &self.comm).matmul(&self.weight.t());
        match &self.bias {
            Some(b) => y.add(b),
            None => y,
        }
    }

    fn named_params(&self) -> Vec<(String, Param)> {
        let mut v = vec![("weight".to_string(), self.weight.clone())];
        v.extend(self.bias.iter().map(|b| ("bias".to_string(), b.clone())));
        v
    }
}

/// A linear layer `y = x W^T + b` whose `in` features are split over the ranks: rank
/// `r` holds columns `r x in / np ..` of `W` (`[out, in / np]`), takes its slice of the
/// input `[..., in / np]` (what a [`ColumnParallelLinear`] returns) and the partial
/// products are summed over the ranks ([`reduce_from_parallel`]) before the bias, which
/// every rank holds whole. Every rank returns the whole `y [..., out]`.
#[derive(Clone)]
pub struct RowParallelLinear {
    /// This rank's columns of the weight, `[out, in / np]`.
    pub weight: Param,
    /// The bias `[out]`, the same on every rank.
    pub bias: Option<Param>,
    comm: Comm,
}

impl RowParallelLinear {
    /// This rank's share of `full` (the whole layer, built the same way on every rank).
    ///
    /// # Panics
    /// If `in` does not divide by the number of ranks.
    #[track_caller]
    pub fn from_linear(full: &Linear, comm: &Comm) -> Self {
        RowParallelLinear {
            weight: Param::new(shard_of(&full.weight, 1, comm, "RowParallelLinear")),
            bias: full.bias.as_ref().map(|b| Param::new(b.detach())),
            comm: comm.clone(),
        }
    }
}

impl Module for RowParallelLinear {
    /// # Panics
    /// If the input's last dimension is not `in / np`, or if communication fails.
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        let part = self.weight.shape()[1];
        if x.rank() == 0 || x.shape()[x.rank() - 1] != part {
            panic!(
                "RowParallelLinear({part} per rank -> {}): the input's last dimension must be {part}, got shape {:?}",
                self.weight.shape()[0],
                x.shape()
            );
        }
        let y = reduce_from_parallel(&x.matmul(&self.weight.t()), &self.comm);
        match &self.bias {
            Some(b) => y.add(b),
            None => y,
        }
    }

    fn named_params(&self) -> Vec<(String, Param)> {
        let mut v = vec![("weight".to_string(), self.weight.clone())];
        v.extend(self.bias.iter().map(|b| ("bias".to_string(), b.clone())));
        v
    }
}
