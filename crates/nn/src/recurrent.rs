//! What the recurrent layers share: one cell's weights ([`CellParams`], and the borrowed
//! [`CellWeights`] the functional forms take), their PyTorch initialisation, the options
//! of the sequence layers ([`RecurrentOptions`]) and the loop that runs a cell over a
//! sequence, layer by layer and in both directions. The cells' own maths lives in
//! `rnn_cell.rs`, `lstm_cell.rs` and `gru_cell.rs`.

use tapegrad::{DType, Tensor};

use crate::gru_cell::gru_step;
use crate::init::uniform;
use crate::lstm_cell::lstm_step;
use crate::rnn_cell::{rnn_step, RnnNonlinearity};
use crate::{Dropout, Module, Param};

/// The weights of one recurrent cell (a cell layer, or one layer and direction of a
/// sequence layer), stored as PyTorch stores them, with `G` gates (1 for an RNN, 4 for an
/// LSTM, 3 for a GRU) stacked in PyTorch's gate order:
///
/// - `weight_ih: [G * hidden, input]`, `weight_hh: [G * hidden, hidden]`;
/// - `bias_ih`, `bias_hh: [G * hidden]`, if the layer has biases.
///
/// Initialised as PyTorch's: every tensor uniform in `[-1/sqrt(hidden), 1/sqrt(hidden))`.
#[derive(Clone, Debug)]
pub struct CellParams {
    /// Input-to-hidden weights, `[G * hidden, input]`.
    pub weight_ih: Param,
    /// Hidden-to-hidden weights, `[G * hidden, hidden]`.
    pub weight_hh: Param,
    /// Input-to-hidden bias, `[G * hidden]`.
    pub bias_ih: Option<Param>,
    /// Hidden-to-hidden bias, `[G * hidden]`.
    pub bias_hh: Option<Param>,
}

/// SplitMix64: decorrelates the seeds derived from one layer seed.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl CellParams {
    /// A cell with `gates` gates, initialised as PyTorch's from `seed`.
    pub(crate) fn init(
        input_size: usize,
        hidden_size: usize,
        gates: usize,
        bias: bool,
        dtype: DType,
        seed: u64,
    ) -> CellParams {
        let k = if hidden_size > 0 {
            1.0 / (hidden_size as f64).sqrt()
        } else {
            0.0
        };
        let rows = gates * hidden_size;
        let draw = |shape: &[usize], i: u64| {
            if k > 0.0 {
                Param::new(uniform(shape, -k, k, dtype, mix(seed ^ mix(i))))
            } else {
                Param::new(Tensor::zeros(shape, dtype))
            }
        };
        CellParams {
            weight_ih: draw(&[rows, input_size], 0),
            weight_hh: draw(&[rows, hidden_size], 1),
            bias_ih: bias.then(|| draw(&[rows], 2)),
            bias_hh: bias.then(|| draw(&[rows], 3)),
        }
    }

    /// The weights as borrowed tensors, for the functional forms.
    pub fn weights(&self) -> CellWeights<'_> {
        CellWeights {
            weight_ih: self.weight_ih.tensor(),
            weight_hh: self.weight_hh.tensor(),
            bias_ih: self.bias_ih.as_deref(),
            bias_hh: self.bias_hh.as_deref(),
        }
    }

    /// `("weight_ih{suffix}", ..)`, ... in PyTorch's order.
    pub(crate) fn named(&self, suffix: &str) -> Vec<(String, Param)> {
        let mut v = vec![
            (format!("weight_ih{suffix}"), self.weight_ih.clone()),
            (format!("weight_hh{suffix}"), self.weight_hh.clone()),
        ];
        v.extend(
            self.bias_ih
                .iter()
                .map(|b| (format!("bias_ih{suffix}"), b.clone())),
        );
        v.extend(
            self.bias_hh
                .iter()
                .map(|b| (format!("bias_hh{suffix}"), b.clone())),
        );
        v
    }
}

/// One cell's weights as borrowed tensors (the layout of [`CellParams`]): what the
/// functional forms ([`rnn_cell`](crate::functional::rnn_cell),
/// [`lstm_cell`](crate::functional::lstm_cell), [`gru_cell`](crate::functional::gru_cell),
/// the sequence layers' `forward_with_weights`) compute with, so any tensors (not only
/// parameters) can be the weights: gradient checks, weight sharing, meta-learning.
#[derive(Clone, Copy, Debug)]
pub struct CellWeights<'a> {
    /// `[G * hidden, input]`.
    pub weight_ih: &'a Tensor,
    /// `[G * hidden, hidden]`.
    pub weight_hh: &'a Tensor,
    /// `[G * hidden]`, optional.
    pub bias_ih: Option<&'a Tensor>,
    /// `[G * hidden]`, optional.
    pub bias_hh: Option<&'a Tensor>,
}

impl<'a> CellWeights<'a> {
    /// Weights from a list in parameter order: `[weight_ih, weight_hh]`, or
    /// `[weight_ih, weight_hh, bias_ih, bias_hh]`.
    ///
    /// # Panics
    /// If the list does not hold 2 or 4 tensors.
    #[track_caller]
    pub fn from_slice(tensors: &'a [Tensor]) -> CellWeights<'a> {
        match tensors {
            [w_ih, w_hh] => CellWeights {
                weight_ih: w_ih,
                weight_hh: w_hh,
                bias_ih: None,
                bias_hh: None,
            },
            [w_ih, w_hh, b_ih, b_hh] => CellWeights {
                weight_ih: w_ih,
                weight_hh: w_hh,
                bias_ih: Some(b_ih),
                bias_hh: Some(b_hh),
            },
            _ => panic!(
                "CellWeights::from_slice: expected [weight_ih, weight_hh] or [weight_ih, weight_hh, bias_ih, bias_hh], got {} tensors",
                tensors.len()
            ),
        }
    }

    /// The hidden size, checking that the weights fit a cell with `gates` gates.
    ///
    /// # Panics
    /// If a weight has the wrong rank or shape, or the biases are not both present or
    /// both absent.
    #[track_caller]
    pub(crate) fn hidden_size(&self, op: &str, gates: usize) -> usize {
        let (wi, wh) = (self.weight_ih.shape(), self.weight_hh.shape());
        let ok = wh.len() == 2 && wi.len() == 2 && wh[0] == gates * wh[1] && wi[0] == wh[0];
        if !ok {
            panic!(
                "{op}: weight_ih must be [{gates} * hidden, input] and weight_hh [{gates} * hidden, hidden], got {wi:?} and {wh:?}"
            );
        }
        match (self.bias_ih, self.bias_hh) {
            (None, None) => {}
            (Some(bi), Some(bh)) if bi.shape() == [wh[0]] && bh.shape() == [wh[0]] => {}
            (bi, bh) => panic!(
                "{op}: bias_ih and bias_hh must both be [{}] or both absent, got {:?} and {:?}",
                wh[0],
                bi.map(Tensor::shape),
                bh.map(Tensor::shape)
            ),
        }
        for (name, t) in [("weight_hh", self.weight_hh)]
            .into_iter()
            .chain(self.bias_ih.map(|b| ("bias_ih", b)))
            .chain(self.bias_hh.map(|b| ("bias_hh", b)))
        {
            if t.dtype() != self.weight_ih.dtype() {
                panic!(
                    "{op}: {name} is {} but weight_ih is {}",
                    t.dtype(),
                    self.weight_ih.dtype()
                );
            }
        }
        wh[1]
    }

    /// The input projection `x W_ih^T + b_ih`, plus `b_hh` when `with_hh_bias` (the
    /// cells whose hidden bias is simply added can fold it in here, once per sequence).
    pub(crate) fn input_gates(&self, x: &Tensor, with_hh_bias: bool) -> Tensor {
        let mut gx = x.matmul(&self.weight_ih.t());
        let bias = match (self.bias_ih, self.bias_hh) {
            (Some(bi), Some(bh)) if with_hh_bias => Some(bi.add(bh)),
            (bi, _) => bi.cloned(),
        };
        if let Some(b) = bias {
            gx = gx.add(&b);
        }
        gx
    }
}

/// Checks an input `[batch, input]` (or `[input]`) and a state `[batch, hidden]` (or
/// `[hidden]`) of a cell.
#[track_caller]
pub(crate) fn check_cell_input(
    op: &str,
    x: &Tensor,
    w: &CellWeights,
    state: &[(&str, &Tensor)],
    hidden: usize,
) {
    let input = w.weight_ih.shape()[1];
    if !(x.rank() == 1 || x.rank() == 2) || x.shape()[x.rank() - 1] != input {
        panic!(
            "{op}: the input must be [batch, {input}] or [{input}], got {:?}",
            x.shape()
        );
    }
    if x.dtype() != w.weight_ih.dtype() {
        panic!(
            "{op}: the input is {} but the weights are {}",
            x.dtype(),
            w.weight_ih.dtype()
        );
    }
    let mut expected = x.shape()[..x.rank() - 1].to_vec();
    expected.push(hidden);
    for (name, s) in state {
        if s.shape() != expected.as_slice() || s.dtype() != x.dtype() {
            panic!(
                "{op}: {name} must be {expected:?} {}, got {:?} {}",
                x.dtype(),
                s.shape(),
                s.dtype()
            );
        }
    }
}

/// Options of [`Rnn`](crate::Rnn), [`Lstm`](crate::Lstm) and [`Gru`](crate::Gru)
/// beyond the sizes, with PyTorch's defaults: one layer, with biases, input
/// `[seq, batch, feature]`, no dropout, one direction, `f32`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RecurrentOptions {
    /// Stacked layers: layer `l > 0` reads the outputs of layer `l - 1`.
    pub num_layers: usize,
    /// Whether the cells have `bias_ih` and `bias_hh`.
    pub bias: bool,
    /// Input and output are `[batch, seq, feature]` instead of `[seq, batch, feature]`
    /// (the states stay `[layers * directions, batch, hidden]`, as in PyTorch).
    pub batch_first: bool,
    /// Dropout probability on the outputs of every layer but the last, in training mode.
    pub dropout: f64,
    /// A second set of cells reads the sequence backwards; outputs are concatenated
    /// (forward first) on the feature axis.
    pub bidirectional: bool,
    /// Element type of the parameters.
    pub dtype: DType,
}

impl Default for RecurrentOptions {
    fn default() -> Self {
        RecurrentOptions {
            num_layers: 1,
            bias: true,
            batch_first: false,
            dropout: 0.0,
            bidirectional: false,
            dtype: DType::F32,
        }
    }
}

/// Which cell a sequence layer runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CellKind {
    Rnn(RnnNonlinearity),
    Lstm,
    Gru,
}

impl CellKind {
    pub(crate) fn gates(self) -> usize {
        match self {
            CellKind::Rnn(_) => 1,
            CellKind::Lstm => 4,
            CellKind::Gru => 3,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            CellKind::Rnn(_) => "Rnn",
            CellKind::Lstm => "Lstm",
            CellKind::Gru => "Gru",
        }
    }

    /// RNN and LSTM add `b_hh` straight to the gates, so it folds into the input
    /// projection; a GRU multiplies its `n` part by the reset gate, so it cannot.
    fn folds_hh_bias(self) -> bool {
        !matches!(self, CellKind::Gru)
    }

    /// One step from the input gates `gx` (`[batch, G * hidden]`).
    fn step(self, gx: &Tensor, state: &State, w_hh_t: &Tensor, b_hh: Option<&Tensor>) -> State {
        match self {
            CellKind::Rnn(nl) => State {
                h: rnn_step(gx, &state.h, w_hh_t, b_hh, nl),
                c: None,
            },
            CellKind::Lstm => {
                let c = state.c.as_ref().expect("an LSTM state has a cell state");
                let (h, c) = lstm_step(gx, &state.h, c, w_hh_t, b_hh);
                State { h, c: Some(c) }
            }
            CellKind::Gru => State {
                h: gru_step(gx, &state.h, w_hh_t, b_hh),
                c: None,
            },
        }
    }
}

/// A cell's state: `h`, and `c` for an LSTM.
struct State {
    h: Tensor,
    c: Option<Tensor>,
}

/// What a sequence layer is: its cell, sizes and options (the parameters live beside it).
#[derive(Clone, Debug)]
pub(crate) struct SequenceSpec {
    pub(crate) kind: CellKind,
    pub(crate) input_size: usize,
    pub(crate) hidden_size: usize,
    pub(crate) options: RecurrentOptions,
}

/// The final states of a sequence layer: `h_n`, and `c_n` for an LSTM.
pub(crate) struct Finals {
    pub(crate) h: Tensor,
    pub(crate) c: Option<Tensor>,
}

impl SequenceSpec {
    pub(crate) fn directions(&self) -> usize {
        if self.options.bidirectional {
            2
        } else {
            1
        }
    }

    /// The cells' parameters, layer by layer, forward direction first.
    ///
    /// # Panics
    /// If `num_layers` is 0 or `dropout` is not in `[0, 1]`.
    #[track_caller]
    pub(crate) fn init(&self, seed: u64) -> Vec<CellParams> {
        let o = &self.options;
        if o.num_layers == 0 || !(0.0..=1.0).contains(&o.dropout) {
            panic!(
                "{}: num_layers must be positive and dropout in [0, 1], got {} and {}",
                self.kind.name(),
                o.num_layers,
                o.dropout
            );
        }
        let dirs = self.directions();
        (0..o.num_layers * dirs)
            .map(|i| {
                let input = if i < dirs {
                    self.input_size
                } else {
                    self.hidden_size * dirs
                };
                CellParams::init(
                    input,
                    self.hidden_size,
                    self.kind.gates(),
                    o.bias,
                    o.dtype,
                    mix(seed.wrapping_add(i as u64)),
                )
            })
            .collect()
    }

    /// PyTorch's names: `weight_ih_l0`, ..., `bias_hh_l1_reverse`.
    pub(crate) fn named_params(&self, cells: &[CellParams]) -> Vec<(String, Param)> {
        let dirs = self.directions();
        cells
            .iter()
            .enumerate()
            .flat_map(|(i, c)| {
                let reverse = if i % dirs == 1 { "_reverse" } else { "" };
                c.named(&format!("_l{}{reverse}", i / dirs))
            })
            .collect()
    }

    /// Groups a flat list of weights (in parameter order) by cell.
    ///
    /// # Panics
    /// If the list is not as long as the layer's parameter list.
    #[track_caller]
    pub(crate) fn cell_weights<'a>(&self, weights: &'a [Tensor]) -> Vec<CellWeights<'a>> {
        let per_cell = if self.options.bias { 4 } else { 2 };
        let cells = self.options.num_layers * self.directions();
        if weights.len() != per_cell * cells {
            panic!(
                "{}: forward_with_weights needs {} tensors ({cells} cells of {per_cell}, in parameter order), got {}",
                self.kind.name(),
                per_cell * cells,
                weights.len()
            );
        }
        weights
            .chunks(per_cell)
            .map(CellWeights::from_slice)
            .collect()
    }

    /// Runs the layers over `x`; returns the output and the final states.
    ///
    /// # Panics
    /// If `x` is not `[seq, batch, input]` (`[batch, seq, input]` with `batch_first`) or
    /// `[seq, input]`, is empty along `seq`, has another dtype than the weights, or an
    /// initial state is not `[layers * directions, batch, hidden]` (`[.., hidden]`
    /// unbatched).
    #[track_caller]
    pub(crate) fn run(
        &self,
        x: &Tensor,
        h0: Option<&Tensor>,
        c0: Option<&Tensor>,
        cells: &[CellWeights],
        dropout: &Dropout,
    ) -> (Tensor, Finals) {
        let (name, hidden, o) = (self.kind.name(), self.hidden_size, &self.options);
        let dirs = self.directions();
        for (i, w) in cells.iter().enumerate() {
            let input = if i < dirs {
                self.input_size
            } else {
                hidden * dirs
            };
            let found_hidden = w.hidden_size(name, self.kind.gates());
            let found_input = w.weight_ih.shape()[1];
            if (found_input, found_hidden) != (input, hidden) {
                panic!(
                    "{name}: cell {i} must have input size {input} and hidden size {hidden}, its weights have {found_input} and {found_hidden}"
                );
            }
        }
        let layout = if o.batch_first {
            "[batch, seq, input]"
        } else {
            "[seq, batch, input]"
        };
        if !(x.rank() == 2 || x.rank() == 3)
            || x.shape()[x.rank() - 1] != self.input_size
            || x.shape()[usize::from(x.rank() == 3 && o.batch_first)] == 0
        {
            panic!(
                "{name}: the input must be {layout} or [seq, input] with input = {} and seq > 0, got {:?}",
                self.input_size,
                x.shape()
            );
        }
        if x.dtype() != cells[0].weight_ih.dtype() {
            panic!(
                "{name}: the input is {} but the weights are {}",
                x.dtype(),
                cells[0].weight_ih.dtype()
            );
        }
        let unbatched = x.rank() == 2;
        let seq_major = if unbatched {
            x.unsqueeze(1)
        } else if o.batch_first {
            x.transpose(0, 1)
        } else {
            x.clone()
        };
        let batch = seq_major.shape()[1];
        let n = o.num_layers * dirs;
        let initial = |label: &str, s: Option<&Tensor>| -> Option<Tensor> {
            let s = s?;
            let expected: Vec<usize> = if unbatched {
                vec![n, hidden]
            } else {
                vec![n, batch, hidden]
            };
            if s.shape() != expected.as_slice() || s.dtype() != x.dtype() {
                panic!(
                    "{name}: {label} must be {expected:?} {} (layers * directions, batch, hidden), got {:?} {}",
                    x.dtype(),
                    s.shape(),
                    s.dtype()
                );
            }
            Some(s.reshape_to(&[n, batch, hidden]))
        };
        let (h0, c0) = (initial("h0", h0), initial("c0", c0));
        let zeros = Tensor::zeros(&[batch, hidden], x.dtype());
        let start = |s: &Option<Tensor>, i: usize| {
            s.as_ref().map_or_else(
                || zeros.clone(),
                |s| s.narrow(0, i, 1).reshape_to(&[batch, hidden]),
            )
        };

        let mut layer_input = seq_major;
        let (mut h_n, mut c_n) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for layer in 0..o.num_layers {
            let mut outputs = Vec::with_capacity(dirs);
            for d in 0..dirs {
                let i = layer * dirs + d;
                let state = State {
                    h: start(&h0, i),
                    c: (self.kind == CellKind::Lstm).then(|| start(&c0, i)),
                };
                let (out, last) = self.run_direction(&layer_input, &cells[i], state, d == 1);
                outputs.push(out);
                h_n.push(last.h);
                c_n.extend(last.c);
            }
            let out = if dirs == 1 {
                outputs.pop().expect("one direction")
            } else {
                Tensor::cat(&outputs, -1)
            };
            layer_input = if layer + 1 < o.num_layers {
                dropout.forward(&out)
            } else {
                out
            };
        }
        let finals = |states: Vec<Tensor>| {
            let s = Tensor::stack(&states, 0);
            if unbatched {
                s.reshape_to(&[n, hidden])
            } else {
                s
            }
        };
        let output = if unbatched {
            layer_input.squeeze(1)
        } else if o.batch_first {
            layer_input.transpose(0, 1)
        } else {
            layer_input
        };
        let c = (!c_n.is_empty()).then(|| finals(c_n));
        (output, Finals { h: finals(h_n), c })
    }

    /// One layer, one direction over `x: [seq, batch, input]`. Returns the outputs
    /// `[seq, batch, hidden]` (in sequence order) and the last state. An LSTM is one
    /// recorded op, [`Tensor::lstm_layer`] (fused kernels forward and backward); the
    /// other cells record their steps: the input projection of every step in one matmul,
    /// then one `hh` matmul per step.
    fn run_direction(
        &self,
        x: &Tensor,
        w: &CellWeights,
        mut state: State,
        reverse: bool,
    ) -> (Tensor, State) {
        if self.kind == CellKind::Lstm {
            let c0 = state.c.as_ref().expect("an LSTM state has a cell state");
            let bias = w.bias_ih.zip(w.bias_hh);
            let (out, h, c) = x.lstm_layer(&state.h, c0, w.weight_ih, w.weight_hh, bias, reverse);
            return (out, State { h, c: Some(c) });
        }
        let (seq, batch) = (x.shape()[0], x.shape()[1]);
        let width = self.kind.gates() * self.hidden_size;
        let folds = self.kind.folds_hh_bias();
        let gx = w.input_gates(x, folds);
        let b_hh = if folds { None } else { w.bias_hh };
        let w_hh_t = w.weight_hh.t();
        let mut steps = Vec::with_capacity(seq);
        split_steps(&gx, &mut steps);
        let mut hs = Vec::with_capacity(seq);
        for i in 0..seq {
            let t = if reverse { seq - 1 - i } else { i };
            let gx_t = steps[t].reshape_to(&[batch, width]);
            state = self.kind.step(&gx_t, &state, &w_hh_t, b_hh);
            hs.push(state.h.clone());
        }
        if reverse {
            hs.reverse();
        }
        (Tensor::stack(&hs, 0), state)
    }
}

/// Splits `x: [seq, ...]` into its `seq` steps `[1, ...]` by halving. The gradient of a
/// slice is a zero tensor of the sliced tensor's size, so taking each step straight from
/// `x` would cost `seq` full-size gradients (quadratic in the sequence length); halving
/// costs two full sizes per level, `O(seq log seq)` in all.
fn split_steps(x: &Tensor, out: &mut Vec<Tensor>) {
    let len = x.shape()[0];
    if len <= 1 {
        out.push(x.clone());
        return;
    }
    let half = len / 2;
    split_steps(&x.narrow(0, 0, half), out);
    split_steps(&x.narrow(0, half, len - half), out);
}
