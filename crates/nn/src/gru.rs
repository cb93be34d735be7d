//! `Gru`: a multi-layer, optionally bidirectional GRU over whole sequences.

use std::sync::atomic::AtomicU64;

use tapegrad::Tensor;

use crate::module::prefixed;
use crate::recurrent::{mix, CellKind, CellParams, RecurrentOptions, SequenceSpec};
use crate::{Dropout, Module, Param};

/// A multi-layer GRU: each layer runs the cell of [`gru_cell`](crate::functional::gru_cell)
/// (gate blocks `r, z, n` as in PyTorch, `r` applied to `h W_hn^T + b_hn`) over the
/// sequence; layer `l > 0` reads the outputs of layer `l - 1` (after dropout in training
/// mode). With `bidirectional`, a second cell per layer reads the sequence backwards and
/// the two outputs are concatenated on the feature axis.
///
/// Shapes (`D` = 2 if bidirectional, else 1; `L` = `num_layers`): input
/// `[seq, batch, input]` (`[batch, seq, input]` with `batch_first`) or unbatched
/// `[seq, input]`; output `[seq, batch, D * hidden]` (same layout as the input); initial
/// and final states `[D * L, batch, hidden]` (`[D * L, hidden]` unbatched), zeros if not
/// given. The input projections of all steps are one matmul per layer and direction;
/// each step adds one `hh` matmul. Backward is iterative, so long sequences are fine.
///
/// Initialised as PyTorch's: every weight and bias uniform in
/// `[-1/sqrt(hidden), 1/sqrt(hidden))`. Parameters, per layer `k` (and `_reverse` for the
/// backward direction): `weight_ih_lk [3 hidden, input or D * hidden]`,
/// `weight_hh_lk [3 hidden, hidden]`, `bias_ih_lk`, `bias_hh_lk [3 hidden]`. PyTorch:
/// `torch.nn.GRU`.
///
/// ```
/// use tapegrad::{DType, Tensor};
/// use tapegrad_nn::{Gru, GruCell, Module, RecurrentOptions};
/// let gru = Gru::with_options(3, 4, RecurrentOptions { dtype: DType::F64, ..Default::default() }, 0);
/// let x = Tensor::randn(&[5, 3], DType::F64, 1); // unbatched [seq, input]
/// let (out, h_n) = gru.forward_with_state(&x, None);
/// assert_eq!((out.shape(), h_n.shape()), (&[5, 4][..], &[1, 4][..]));
/// // The same as stepping a cell with the same weights.
/// let cell = GruCell { weights: gru.weights[0].clone() };
/// let mut h = cell.forward(&x.narrow(0, 0, 1).reshape_to(&[3]));
/// for t in 1..5 {
///     h = cell.forward_with_state(&x.narrow(0, t, 1).reshape_to(&[3]), Some(&h));
/// }
/// let (a, b) = (h.to_vec::<f64>(), h_n.to_vec::<f64>());
/// assert!(a.iter().zip(&b).all(|(a, b)| (a - b).abs() < 1e-12));
/// ```
#[derive(Clone, Debug)]
pub struct Gru {
    /// One cell per layer and direction: `weights[layer * D + direction]`.
    pub weights: Vec<CellParams>,
    spec: SequenceSpec,
    dropout: Dropout,
}

impl Gru {
    /// A one-layer `f32` GRU, initialised as PyTorch's from `seed`.
    pub fn new(input_size: usize, hidden_size: usize, seed: u64) -> Gru {
        Gru::with_options(input_size, hidden_size, RecurrentOptions::default(), seed)
    }

    /// A GRU with the given options.
    ///
    /// # Panics
    /// If `num_layers` is 0 or `dropout` is not in `[0, 1]`.
    #[track_caller]
    pub fn with_options(
        input_size: usize,
        hidden_size: usize,
        options: RecurrentOptions,
        seed: u64,
    ) -> Gru {
        let spec = SequenceSpec {
            kind: CellKind::Gru,
            input_size,
            hidden_size,
            options,
        };
        Gru {
            weights: spec.init(seed),
            dropout: Dropout::new(options.dropout, mix(!seed)),
            spec,
        }
    }

    /// The options the layer was built with.
    pub fn options(&self) -> RecurrentOptions {
        self.spec.options
    }

    /// `(input_size, hidden_size)`.
    pub fn sizes(&self) -> (usize, usize) {
        (self.spec.input_size, self.spec.hidden_size)
    }

    /// `(output, h_n)` from `x` and the initial state `h0` (zeros if `None`).
    ///
    /// # Panics
    /// If `x` is not `[seq, batch, input]` (`[batch, seq, input]` with `batch_first`) or
    /// `[seq, input]` with `seq > 0`, `h0` not `[D * L, batch, hidden]` (`[D * L, hidden]`
    /// unbatched), or the dtypes differ.
    #[track_caller]
    pub fn forward_with_state(&self, x: &Tensor, h0: Option<&Tensor>) -> (Tensor, Tensor) {
        let cells: Vec<_> = self.weights.iter().map(CellParams::weights).collect();
        let (out, finals) = self.spec.run(x, h0, None, &cells, &self.dropout);
        (out, finals.h)
    }

    /// [`forward_with_state`](Self::forward_with_state) with other weights: `weights`
    /// holds one tensor per parameter, in [`Module::named_params`] order (the functional
    /// form, for gradient checks and weight sharing).
    ///
    /// # Panics
    /// As `forward_with_state`, and if `weights` does not match the parameter list.
    #[track_caller]
    pub fn forward_with_weights(
        &self,
        x: &Tensor,
        h0: Option<&Tensor>,
        weights: &[Tensor],
    ) -> (Tensor, Tensor) {
        let cells = self.spec.cell_weights(weights);
        let (out, finals) = self.spec.run(x, h0, None, &cells, &self.dropout);
        (out, finals.h)
    }
}

impl Module for Gru {
    /// The output from a zero initial state.
    ///
    /// # Panics
    /// As [`Gru::forward_with_state`].
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        self.forward_with_state(x, None).0
    }

    fn named_params(&self) -> Vec<(String, Param)> {
        self.spec.named_params(&self.weights)
    }

    fn named_counters(&self) -> Vec<(String, &AtomicU64)> {
        prefixed("dropout", self.dropout.named_counters())
    }

    fn set_training(&mut self, training: bool) {
        self.dropout.set_training(training);
    }
}
