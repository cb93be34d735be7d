//! `GruCell`: one step of a gated recurrent unit, and its functional form [`gru_cell`].

use tapegrad::{DType, Tensor};

use crate::recurrent::{check_cell_input, CellParams, CellWeights};
use crate::{Module, Param};

/// One GRU step from the input projection `gx = x W_ih^T + b_ih`; gates in PyTorch's
/// order `r, z, n`, the reset gate applied to `h W_hn^T + b_hn`.
pub(crate) fn gru_step(gx: &Tensor, h: &Tensor, w_hh_t: &Tensor, b_hh: Option<&Tensor>) -> Tensor {
    let hidden = w_hh_t.shape()[0];
    let mut gh = h.matmul(w_hh_t);
    if let Some(b) = b_hh {
        gh = gh.add(b);
    }
    let rz = gx
        .narrow(-1, 0, 2 * hidden)
        .add(&gh.narrow(-1, 0, 2 * hidden))
        .sigmoid();
    let r = rz.narrow(-1, 0, hidden);
    let z = rz.narrow(-1, hidden, hidden);
    let n = gx
        .narrow(-1, 2 * hidden, hidden)
        .add(&r.mul(&gh.narrow(-1, 2 * hidden, hidden)))
        .tanh();
    // (1 - z) n + z h, with one multiplication.
    n.add(&z.mul(&h.sub(&n)))
}

/// One GRU step with the weights of [`CellWeights`] (`weight_ih: [3 hidden, input]`,
/// `weight_hh: [3 hidden, hidden]`, gate blocks in the order `r, z, n`):
///
/// `r = σ(x W_ir^T + b_ir + h W_hr^T + b_hr)`, `z = σ(..z..)`,
/// `n = tanh(x W_in^T + b_in + r (h W_hn^T + b_hn))`, `h' = (1 - z) n + z h`.
///
/// `x` is `[batch, input]` or `[input]`, `h` (zeros if `None`) and the result
/// `[batch, hidden]` or `[hidden]`. PyTorch: `torch.gru_cell`.
///
/// # Panics
/// If the shapes or dtypes do not fit together.
///
/// ```
/// use tapegrad::{DType, Tensor};
/// use tapegrad_nn::{functional::gru_cell, CellWeights};
/// // Zero weights: z = 1/2 and n = 0, so h' = h / 2.
/// let (w_ih, w_hh) = (Tensor::zeros(&[3, 2], DType::F64), Tensor::zeros(&[3, 1], DType::F64));
/// let w = CellWeights { weight_ih: &w_ih, weight_hh: &w_hh, bias_ih: None, bias_hh: None };
/// let h = Tensor::full(&[1, 1], 3.0, DType::F64);
/// let h1 = gru_cell(&Tensor::ones(&[1, 2], DType::F64), Some(&h), w);
/// assert_eq!(h1.to_vec::<f64>(), vec![1.5]);
/// ```
#[track_caller]
pub fn gru_cell(x: &Tensor, h: Option<&Tensor>, weights: CellWeights) -> Tensor {
    let hidden = weights.hidden_size("gru_cell", 3);
    let state: Vec<(&str, &Tensor)> = h.map(|h| ("h", h)).into_iter().collect();
    check_cell_input("gru_cell", x, &weights, &state, hidden);
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
    gru_step(&gx, h, &weights.weight_hh.t(), weights.bias_hh)
}

/// A GRU cell (see [`gru_cell`] for the equations; gate blocks `r, z, n` as in PyTorch,
/// the reset gate applied after the hidden projection of `n`).
///
/// Shapes: `x: [batch, input]` (or `[input]`), `h, h': [batch, hidden]` (or `[hidden]`);
/// [`forward_with_state`](Self::forward_with_state) takes the state (zeros if `None`),
/// [`Module::forward`] starts from zeros. Initialised as PyTorch's: every weight and bias
/// uniform in `[-1/sqrt(hidden), 1/sqrt(hidden))`. Parameters: `weight_ih [3 hidden,
/// input]`, `weight_hh [3 hidden, hidden]`, `bias_ih`, `bias_hh [3 hidden]`. PyTorch:
/// `torch.nn.GRUCell`.
///
/// ```
/// use tapegrad::{DType, Tensor};
/// use tapegrad_nn::{GruCell, Module};
/// let cell = GruCell::with_options(3, 4, false, DType::F64, 0);
/// assert_eq!(cell.num_params(), 12 * 3 + 12 * 4);
/// let x = Tensor::randn(&[3], DType::F64, 1); // unbatched
/// let h = cell.forward(&x);
/// assert_eq!(cell.forward_with_state(&x, Some(&h)).shape(), &[4]);
/// ```
#[derive(Clone, Debug)]
pub struct GruCell {
    /// `weight_ih`, `weight_hh`, `bias_ih`, `bias_hh`.
    pub weights: CellParams,
}

impl GruCell {
    /// An `f32` cell with biases, initialised as PyTorch's from `seed`.
    pub fn new(input_size: usize, hidden_size: usize, seed: u64) -> GruCell {
        GruCell::with_options(input_size, hidden_size, true, DType::F32, seed)
    }

    /// A cell with or without biases, of `dtype`.
    pub fn with_options(
        input_size: usize,
        hidden_size: usize,
        bias: bool,
        dtype: DType,
        seed: u64,
    ) -> GruCell {
        GruCell {
            weights: CellParams::init(input_size, hidden_size, 3, bias, dtype, seed),
        }
    }

    /// The next state from `x` and the state `h` (zeros if `None`).
    ///
    /// # Panics
    /// If `x` is not `[batch, input]` or `[input]`, or `h` not `[batch, hidden]` or
    /// `[hidden]`, or the dtypes differ.
    #[track_caller]
    pub fn forward_with_state(&self, x: &Tensor, h: Option<&Tensor>) -> Tensor {
        gru_cell(x, h, self.weights.weights())
    }
}

impl Module for GruCell {
    /// The next state from a zero state.
    ///
    /// # Panics
    /// As [`GruCell::forward_with_state`].
    #[track_caller]
    fn forward(&self, x: &Tensor) -> Tensor {
        self.forward_with_state(x, None)
    }

    fn named_params(&self) -> Vec<(String, Param)> {
        self.weights.named("")
    }
}
