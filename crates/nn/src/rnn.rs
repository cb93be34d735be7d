//! `Rnn`: a multi-layer, optionally bidirectional Elman RNN over whole sequences.

use std::sync::atomic::AtomicU64;

use tapegrad::Tensor;

use crate::module::prefixed;
use crate::recurrent::{mix, CellKind, CellParams, RecurrentOptions, SequenceSpec};
use crate::rnn_cell::RnnNonlinearity;
use crate::{Dropout, Module, Param};

/// A multi-layer Elman RNN: for each layer and time step,
/// `h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)` with `act` tanh or ReLU; layer
/// `l > 0` reads the outputs of layer `l - 1` (after dropout in training mode). With
/// `bidirectional`, a second cell per layer reads the sequence backwards and the two
/// outputs are concatenated on the feature axis.
///
/// Shapes (`D` = 2 if bidirectional, else 1; `L` = `num_layers`): input
/// `[seq, batch, input]` (`[batch, seq, input]` with `batch_first`) or unbatched
/// `[seq, input]`; output `[seq, batch, D * hidden]` (same layout as the input); initial
/// and final states `[D * L, batch, hidden]` (`[D * L, hidden]` unbatched), zeros if not
/// given. The input projections of all steps are one matmul per layer and direction; each
/// step adds one `hh` matmul. Backward is iterative, so long sequences are fine.
///
/// Initialised as PyTorch's: every weight and bias uniform in
/// `[-1/sqrt(hidden), 1/sqrt(hidden))`. Parameters, per layer `k` (and `_reverse` for the
/// backward direction): `weight_ih_lk [hidden, input or D * hidden]`,
/// `weight_hh_lk [hidden, hidden]`, `bias_ih_lk`, `bias_hh_lk [hidden]`. PyTorch:
/// `torch.nn.RNN`.
///
/// ```
/// use tapegrad::{DType, Tensor};
/// use tapegrad_nn::{Module, RecurrentOptions, Rnn, RnnNonlinearity};
/// let options = RecurrentOptions { num_layers: 2, bidirectional: true, batch_first: true, dtype: DType::F64, ..Default::default() };
/// let rnn = Rnn::with_options(3, 4, RnnNonlinearity::Tanh, options, 0);
/// assert_eq!(rnn.named_params()[4].0, "weight_ih_l0_reverse");
/// let x = Tensor::randn(&[2, 5, 3], DType::F64, 1); // [batch, seq, input]
/// let (out, h_n) = rnn.forward_with_state(&x, None);
/// assert_eq!(out.shape(), &[2, 5, 8]);
/// assert_eq!(h_n.shape(), &[4, 2, 4]);
/// // The last layer's forward state is its output at the last step.
/// let last = out.narrow(1, 4, 1).narrow(2, 0, 4).reshape_to(&[2, 4]);
/// assert_eq!(last.to_vec::<f64>(), h_n.narrow(0, 2, 1).reshape_to(&[2, 4]).to_vec::<f64>());
/// ```
#[derive(Clone, Debug)]
pub struct Rnn {
    /// One cell per layer and direction: `weights[layer * D + direction]`.
    pub weights: Vec<CellParams>,
    spec: SequenceSpec,
    dropout: Dropout,
}

impl Rnn {
    /// A one-layer `f32` tanh RNN, initialised as PyTorch's from `seed`.
    pub fn new(input_size: usize, hidden_size: usize, seed: u64) -> Rnn {
        Rnn::with_options(
            input_size,
            hidden_size,
            RnnNonlinearity::Tanh,
            RecurrentOptions::default(),
            seed,
        )
    }

    /// An RNN with the given nonlinearity and options.
    ///
    /// # Panics
    /// If `num_layers` is 0 or `dropout` is not in `[0, 1]`.
    #[track_caller]
    pub fn with_options(
        input_size: usize,
        hidden_size: usize,
        nonlinearity: RnnNonlinearity,
        options: RecurrentOptions,
        seed: u64,
    ) -> Rnn {
        let spec = SequenceSpec {
            kind: CellKind::Rnn(nonlinearity),
            input_size,
            hidden_size,
            options,
        };
        Rnn {
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

impl Module for Rnn {
    /// The output from a zero initial state.
    ///
    /// # Panics
    /// As [`Rnn::forward_with_state`].
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
