//! `LstmCell`: one step of a long short-term memory network, and its functional form
//! [`lstm_cell`].

use tapegrad::{DType, Tensor};

use crate::recurrent::{check_cell_input, CellParams, CellWeights};
use crate::{Module, Param};

/// One LSTM step from the input projection `gx = x W_ih^T (+ biases)`; gates in
/// PyTorch's order `i, f, g, o`. Returns `(h', c')`.
pub(crate) fn lstm_step(
    gx: &Tensor,
    h: &Tensor,
    c: &Tensor,
    w_hh_t: &Tensor,
    b_hh: Option<&Tensor>,
) -> (Tensor, Tensor) {
    let hidden = w_hh_t.shape()[0];
    let mut gates = gx.add(&h.matmul(w_hh_t));
    if let Some(b) = b_hh {
        gates = gates.add(b);
    }
    // One sigmoid over all four blocks (the g block's is unused) is one op instead of three.
    let s = gates.sigmoid();
    let i = s.narrow(-1, 0, hidden);
    let f = s.narrow(-1, hidden, hidden);
    let g = gates.narrow(-1, 2 * hidden, hidden).tanh();
    let o = s.narrow(-1, 3 * hidden, hidden);
    let c_next = f.mul(c).add(&i.mul(&g));
    let h_next = o.mul(&c_next.tanh());
    (h_next, c_next)
}

/// One LSTM step with the weights of [`CellWeights`] (`weight_ih: [4 hidden, input]`,
/// `weight_hh: [4 hidden, hidden]`, gate blocks in the order `i, f, g, o`):
///
/// `i = σ(x W_ii^T + b_ii + h W_hi^T + b_hi)`, `f = σ(..f..)`, `g = tanh(..g..)`,
/// `o = σ(..o..)`, `c' = f c + i g`, `h' = o tanh(c')`.
///
/// `x` is `[batch, input]` or `[input]`; `state = (h, c)` (zeros if `None`) and the
/// result `(h', c')` are `[batch, hidden]` or `[hidden]`. PyTorch: `torch.lstm_cell`.
///
/// # Panics
/// If the shapes or dtypes do not fit together.
///
/// ```
/// use tapegrad::{DType, Tensor};
/// use tapegrad_nn::{functional::lstm_cell, CellWeights};
/// // Zero weights: every gate is sigmoid(0) = 1/2 and g = tanh(0) = 0, so c' = c / 2.
/// let (w_ih, w_hh) = (Tensor::zeros(&[4, 2], DType::F64), Tensor::zeros(&[4, 1], DType::F64));
/// let w = CellWeights { weight_ih: &w_ih, weight_hh: &w_hh, bias_ih: None, bias_hh: None };
/// let (h, c) = (Tensor::zeros(&[1], DType::F64), Tensor::full(&[1], 2.0, DType::F64));
/// let (h1, c1) = lstm_cell(&Tensor::ones(&[2], DType::F64), Some((&h, &c)), w);
/// assert_eq!(c1.to_vec::<f64>(), vec![1.0]);
/// assert!((h1.item() - 0.5 * 1f64.tanh()).abs() < 1e-15);
/// ```
#[track_caller]
pub fn lstm_cell(
    x: &Tensor,
    state: Option<(&Tensor, &Tensor)>,
    weights: CellWeights,
) -> (Tensor, Tensor) {
    let hidden = weights.hidden_size("lstm_cell", 4);
    let given: Vec<(&str, &Tensor)> = state
        .map(|(h, c)| vec![("h", h), ("c", c)])
        .unwrap_or_default();
    check_cell_input("lstm_cell", x, &weights, &given, hidden);
    let (h, c) = match state {
        Some((h, c)) => (h.clone(), c.clone()),
        None => {
            let mut shape = x.shape()[..x.rank() - 1].to_vec();
            shape.push(hidden);
            let z = Tensor::zeros(&shape, x.dtype());
            (z.clone(), z)
        }
    };
    let gx = weights.input_gates(x, false);
    lstm_step(&gx, &h, &c, &weights.weight_hh.t(), weights.bias_hh)
}

/// An LSTM cell (see [`lstm_cell`] for the equations; gate blocks `i, f, g, o` as in
/// PyTorch).
///
/// Shapes: `x: [batch, input]` (or `[input]`), states `h, c: [batch, hidden]` (or
/// `[hidden]`). [`forward_with_state`](Self::forward_with_state) takes `(h, c)` (zeros
/// if `None`) and returns `(h', c')`; [`Module::forward`] starts from zeros and returns
/// `h'`. Initialised as PyTorch's: every weight and bias uniform in
/// `[-1/sqrt(hidden), 1/sqrt(hidden))`. Parameters: `weight_ih [4 hidden, input]`,
/// `weight_hh [4 hidden, hidden]`, `bias_ih`, `bias_hh [4 hidden]`. PyTorch:
/// `torch.nn.LSTMCell`.
///
/// ```
/// use tapegrad::{DType, Tensor};
/// use tapegrad_nn::{LstmCell, Module};
/// let cell = LstmCell::with_options(3, 5, true, DType::F64, 0);
/// assert_eq!(cell.weights.weight_hh.shape(), &[20, 5]);
/// let x = Tensor::randn(&[2, 3], DType::F64, 1);
/// let (h, c) = cell.forward_with_state(&x, None);
/// let (h2, _) = cell.forward_with_state(&x, Some((&h, &c)));
/// assert_eq!(h2.shape(), &[2, 5]);
/// assert_eq!(cell.forward(&x).to_vec::<f64>(), h.to_vec::<f64>());
/// ```
#[derive(Clone, Debug)]
pub struct LstmCell {
    /// `weight_ih`, `weight_hh`, `bias_ih`, `bias_hh`.
    pub weights: CellParams,
}

impl LstmCell {
    /// An `f32` cell with biases, initialised as PyTorch's from `seed`.
    pub fn new(input_size: usize, hidden_size: usize, seed: u64) -> LstmCell {
        LstmCell::with_options(input_size, hidden_size, true, DType::F32, seed)
    }

    /// A cell with or without biases, of `dtype`.
    pub fn with_options(
        input_size: usize,
        hidden_size: usize,
        bias: bool,
        dtype: DType,
        seed: u64,
    ) -> LstmCell {
        LstmCell {
            weights: CellParams::init(input_size, hidden_size, 4, bias, dtype, seed),
        }
    }

    /// `(h', c')` from `x` and the state `(h, c)` (zeros if `None`).
    ///
    /// # Panics
    /// If `x` is not `[batch, input]` or `[input]`, a state not `[batch, hidden]` or
    /// `[hidden]`, or the dtypes differ.
    #[track_caller]
    pub fn forward_with_state(
        &self,
        x: &Tensor,
        state: Option<(&Tensor, &Tensor)>,
    ) -> (Tensor, Tensor) {
        lstm_cell(x, state, self.weights.weights())
    }
}

impl Module for LstmCell {
    /// `h'` from a zero state.
    ///
    /// # Panics
    /// As [`LstmCell::forward_with_state`].
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        self.forward_with_state(x, None).0
    }

    fn named_params(&self) -> Vec<(String, Param)> {
        self.weights.named("")
    }
}
