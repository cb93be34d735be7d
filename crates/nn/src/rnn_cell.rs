//! `RnnCell`: one step of an Elman recurrent network (tanh or ReLU), and its
//! functional form [`rnn_cell`].

use tapegrad::{DType, Tensor};

use crate::recurrent::{check_cell_input, CellParams, CellWeights};
use crate::{Module, Param};

/// The nonlinearity of an Elman RNN (PyTorch's `nonlinearity='tanh'` or `'relu'`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RnnNonlinearity {
    /// `tanh` (the default).
    #[default]
    Tanh,
    /// `relu`.
    Relu,
}

/// One step from the input projection `gx = x W_ih^T (+ biases)`: `act(gx + h W_hh^T (+ b_hh))`.
pub(crate) fn rnn_step(
    gx: &Tensor,
    h: &Tensor,
    w_hh_t: &Tensor,
    b_hh: Option<&Tensor>,
    nonlinearity: RnnNonlinearity,
) -> Tensor {
    let mut pre = gx.add(&h.matmul(w_hh_t));
    if let Some(b) = b_hh {
        pre = pre.add(b);
    }
    match nonlinearity {
        RnnNonlinearity::Tanh => pre.tanh(),
        RnnNonlinearity::Relu => pre.relu(),
    }
}

/// One Elman RNN step, `h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh)`, with the weights
/// of [`CellWeights`] (`weight_ih: [hidden, input]`, `weight_hh: [hidden, hidden]`).
/// `x` is `[batch, input]` or `[input]`, `h` (zeros if `None`) and the result
/// `[batch, hidden]` or `[hidden]`. PyTorch: `torch.rnn_tanh_cell` / `torch.rnn_relu_cell`.
///
/// # Panics
/// If the shapes or dtypes do not fit together.
///
/// ```
/// use tapegrad::Tensor;
/// use tapegrad_nn::{functional::rnn_cell, CellWeights, RnnNonlinearity};
/// let (w_ih, w_hh) = (Tensor::ones(&[1, 2], tapegrad::DType::F64), Tensor::ones(&[1, 1], tapegrad::DType::F64));
/// let w = CellWeights { weight_ih: &w_ih, weight_hh: &w_hh, bias_ih: None, bias_hh: None };
/// let x = Tensor::from_vec(vec![-1.0f64, -2.0], &[1, 2]);
/// let h = Tensor::from_vec(vec![0.5f64], &[1, 1]);
/// let relu = rnn_cell(&x, Some(&h), w, RnnNonlinearity::Relu);
/// assert_eq!(relu.to_vec::<f64>(), vec![0.0]); // relu(-3 + 0.5)
/// let tanh = rnn_cell(&x, Some(&h), w, RnnNonlinearity::Tanh);
/// assert!((tanh.item() - (-2.5f64).tanh()).abs() < 1e-15);
/// ```
#[track_caller]
pub fn rnn_cell(
    x: &Tensor,
    h: Option<&Tensor>,
    weights: CellWeights,
    nonlinearity: RnnNonlinearity,
) -> Tensor {
    let hidden = weights.hidden_size("rnn_cell", 1);
    let state: Vec<(&str, &Tensor)> = h.map(|h| ("h", h)).into_iter().collect();
    check_cell_input("rnn_cell", x, &weights, &state, hidden);
    let zeros;
    let h = match h {
        Some(h) => h,
        None => {
            let mut shape = x.shape()[..x.rank() - 1].to_vec();
            shape.push(hidden);
            zeros = Tensor::zeros(&shape, x.dtype());
            &zeros
        }
    };
    let gx = weights.input_gates(x, false);
    rnn_step(
        &gx,
        h,
        &weights.weight_hh.t(),
        weights.bias_hh,
        nonlinearity,
    )
}

/// An Elman RNN cell: `h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh)` with `act` tanh or
/// ReLU.
///
/// Shapes: `x: [batch, input]` (or `[input]`), `h, h': [batch, hidden]` (or `[hidden]`);
/// [`forward_with_state`](Self::forward_with_state) takes the state (zeros if `None`),
/// [`Module::forward`] starts from zeros. Initialised as PyTorch's: every weight and bias
/// uniform in `[-1/sqrt(hidden), 1/sqrt(hidden))`. Parameters: `weight_ih [hidden,
/// input]`, `weight_hh [hidden, hidden]`, `bias_ih [hidden]`, `bias_hh [hidden]`.
/// PyTorch: `torch.nn.RNNCell`.
///
/// ```
/// use tapegrad::{DType, Tensor};
/// use tapegrad_nn::{Module, RnnCell, RnnNonlinearity};
/// let cell = RnnCell::with_options(3, 4, true, RnnNonlinearity::Tanh, DType::F64, 0);
/// let names: Vec<String> = cell.named_params().into_iter().map(|(n, _)| n).collect();
/// assert_eq!(names, ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]);
/// let x = Tensor::randn(&[2, 3], DType::F64, 1);
/// let h1 = cell.forward(&x);
/// let h2 = cell.forward_with_state(&x, Some(&h1));
/// assert_eq!(h2.shape(), &[2, 4]);
/// assert!(h2.to_vec::<f64>().iter().all(|v| v.abs() < 1.0)); // tanh
/// ```
#[derive(Clone, Debug)]
pub struct RnnCell {
    /// `weight_ih`, `weight_hh`, `bias_ih`, `bias_hh`.
    pub weights: CellParams,
    /// tanh or ReLU.
    pub nonlinearity: RnnNonlinearity,
}

impl RnnCell {
    /// An `f32` tanh cell with biases, initialised as PyTorch's from `seed`.
    pub fn new(input_size: usize, hidden_size: usize, seed: u64) -> RnnCell {
        RnnCell::with_options(
            input_size,
            hidden_size,
            true,
            RnnNonlinearity::Tanh,
            DType::F32,
            seed,
        )
    }

    /// A cell with or without biases, with the given nonlinearity and dtype.
    pub fn with_options(
        input_size: usize,
        hidden_size: usize,
        bias: bool,
        nonlinearity: RnnNonlinearity,
        dtype: DType,
        seed: u64,
    ) -> RnnCell {
        RnnCell {
            weights: CellParams::init(input_size, hidden_size, 1, bias, dtype, seed),
            nonlinearity,
        }
    }

    /// The next state from `x` and the state `h` (zeros if `None`).
    ///
    /// # Panics
    /// If `x` is not `[batch, input]` or `[input]`, or `h` not `[batch, hidden]` or
    /// `[hidden]`, or the dtypes differ.
    #[track_caller]
    pub fn forward_with_state(&self, x: &Tensor, h: Option<&Tensor>) -> Tensor {
        rnn_cell(x, h, self.weights.weights(), self.nonlinearity)
    }
}

impl Module for RnnCell {
    /// The next state from a zero state.
    ///
    /// # Panics
    /// As [`RnnCell::forward_with_state`].
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        self.forward_with_state(x, None)
    }

    fn named_params(&self) -> Vec<(String, Param)> {
        self.weights.named("")
    }
}
