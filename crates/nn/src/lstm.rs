//! `Lstm`: a multi-layer, optionally bidirectional LSTM over whole sequences.

use std::sync::atomic::AtomicU64;

use tapegrad::Tensor;

use crate::module::prefixed;
use crate::recurrent::{mix, CellKind, CellParams, RecurrentOptions, SequenceSpec};
use crate::{Dropout, Module, Param};

/// A multi-layer LSTM: each layer runs the cell of [`lstm_cell`](crate::functional::lstm_cell)
/// (gate blocks `i, f, g, o` as in PyTorch) over the sequence; layer `l > 0` reads the
/// outputs `h_t` of layer `l - 1` (after dropout in training mode). With `bidirectional`,
/// a second cell per layer reads the sequence backwards and the two outputs are
/// concatenated on the feature axis.
///
/// Shapes (`D` = 2 if bidirectional, else 1; `L` = `num_layers`): input
/// `[seq, batch, input]` (`[batch, seq, input]` with `batch_first`) or unbatched
/// `[seq, input]`; output `[seq, batch, D * hidden]` (same layout as the input); initial
/// and final states `h, c: [D * L, batch, hidden]` (`[D * L, hidden]` unbatched), zeros
/// if not given. The input projections of all steps are one matmul per layer and
/// direction; each step adds one `hh` matmul. Backward is iterative, so long sequences
/// are fine. (PyTorch's `proj_size` is not supported.)
///
/// Initialised as PyTorch's: every weight and bias uniform in
/// `[-1/sqrt(hidden), 1/sqrt(hidden))`. Parameters, per layer `k` (and `_reverse` for the
/// backward direction): `weight_ih_lk [4 hidden, input or D * hidden]`,
/// `weight_hh_lk [4 hidden, hidden]`, `bias_ih_lk`, `bias_hh_lk [4 hidden]`. PyTorch:
/// `torch.nn.LSTM`.
///
/// ```
/// use tapegrad::{DType, Tensor};
/// use tapegrad_nn::{Lstm, Module, RecurrentOptions};
/// let options = RecurrentOptions { num_layers: 2, dtype: DType::F64, ..Default::default() };
/// let lstm = Lstm::with_options(3, 4, options, 0);
/// assert_eq!(lstm.named_params().len(), 8);
/// let x = Tensor::randn(&[6, 2, 3], DType::F64, 1); // [seq, batch, input]
/// let (out, (h_n, c_n)) = lstm.forward_with_state(&x, None);
/// assert_eq!(out.shape(), &[6, 2, 4]);
/// assert_eq!((h_n.shape(), c_n.shape()), (&[2, 2, 4][..], &[2, 2, 4][..]));
/// // Continuing from the final state is the same as running the longer sequence.
/// let (tail, _) = lstm.forward_with_state(&x.narrow(0, 3, 3), Some((
///     &lstm.forward_with_state(&x.narrow(0, 0, 3), None).1 .0,
///     &lstm.forward_with_state(&x.narrow(0, 0, 3), None).1 .1,
/// )));
/// let want = out.narrow(0, 3, 3).to_vec::<f64>();
/// assert!(tail.to_vec::<f64>().iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-12));
/// ```
#[derive(Clone, Debug)]
pub struct Lstm {
    /// One cell per layer and direction: `weights[layer * D + direction]`.
    pub weights: Vec<CellParams>,
    spec: SequenceSpec,
    dropout: Dropout,
}

impl Lstm {
    /// A one-layer `f32` LSTM, initialised as PyTorch's from `seed`.
    pub fn new(input_size: usize, hidden_size: usize, seed: u64) -> Lstm {
        Lstm::with_options(input_size, hidden_size, RecurrentOptions::default(), seed)
    }

    /// An LSTM with the given options.
    ///
    /// # Panics
    /// If `num_layers` is 0 or `dropout` is not in `[0, 1]`.
    #[track_caller]
    pub fn with_options(
        input_size: usize,
        hidden_size: usize,
        options: RecurrentOptions,
        seed: u64,
    ) -> Lstm {
        let spec = SequenceSpec {
            kind: CellKind::Lstm,
            input_size,
            hidden_size,
            options,
        };
        Lstm {
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

    /// `(output, (h_n, c_n))` from `x` and the initial state `(h0, c0)` (zeros if `None`).
    ///
    /// # Panics
    /// If `x` is not `[seq, batch, input]` (`[batch, seq, input]` with `batch_first`) or
    /// `[seq, input]` with `seq > 0`, a state not `[D * L, batch, hidden]`
    /// (`[D * L, hidden]` unbatched), or the dtypes differ.
    #[track_caller]
    pub fn forward_with_state(
        &self,
        x: &Tensor,
        state: Option<(&Tensor, &Tensor)>,
    ) -> (Tensor, (Tensor, Tensor)) {
        let cells: Vec<_> = self.weights.iter().map(CellParams::weights).collect();
        self.run(x, state, &cells)
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
        state: Option<(&Tensor, &Tensor)>,
        weights: &[Tensor],
    ) -> (Tensor, (Tensor, Tensor)) {
        let cells = self.spec.cell_weights(weights);
        self.run(x, state, &cells)
    }

    #[track_caller]
    fn run(
        &self,
        x: &Tensor,
        state: Option<(&Tensor, &Tensor)>,
        cells: &[crate::CellWeights],
    ) -> (Tensor, (Tensor, Tensor)) {
        let (h0, c0) = state.unzip();
        let (out, finals) = self.spec.run(x, h0, c0, cells, &self.dropout);
        let c = finals.c.expect("an LSTM has a cell state");
        (out, (finals.h, c))
    }
}

impl Module for Lstm {
    /// The output from a zero initial state.
    ///
    /// # Panics
    /// As [`Lstm::forward_with_state`].
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
