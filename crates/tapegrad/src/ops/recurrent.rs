//! Recurrent layers as single ops: `lstm_layer`, one LSTM layer and direction over a
//! whole sequence.
//!
//! Written with tensor ops, an LSTM records about fifteen nodes and one small product per
//! step, and its backward runs them one by one. Here the whole sequence is one recorded
//! op whose kernels (`kernels/lstm.rs`) do what oneDNN and cuDNN do: the input projection
//! of every step in one product, one product and one fused pass per step, and the weight
//! gradients as one product each over all steps. Its rule has two forms:
//!
//! - when no graph of the backward pass is built (`ctx.create_graph()` false, the usual
//!   `backward()`), the backward kernel, reading the gates and cell states the forward
//!   kept;
//! - otherwise (`backward_with_graph`, `grad` with `create_graph`), the same maths in
//!   tensor ops: the forward recomputed from the saved inputs, then backpropagation through
//!   time step by step, so the gradients are on the tape and differentiate again.
//!
//! The two agree to rounding (`crates/nn/tests/lstm_fused.rs` holds them to 1e-12 in
//! `f64`). This is not a `fused` row of the op table: that column is for one-kernel
//! elementwise rules that match their tensor-op form bit for bit, and products summed in
//! another order do not.

use ndarray::{ArcArray, Ix1, Ix2, Ix3, IxDyn};
use rand::Rng;
use smallvec::SmallVec;

use super::check_float;
use super::table::{random_tensor, Domain, Inputs, OpSpec};
use crate::autograd::mode::is_grad_enabled;
use crate::autograd::node::{BackwardCtx, GradList, Op};
use crate::dtype::{DType, Scalar};
use crate::kernels::lstm::{self, CellMath, Needs, Saved, Weights};
use crate::tensor::Tensor;

impl Tensor {
    /// One LSTM layer and direction over a whole sequence (PyTorch's `torch.nn.LSTM`
    /// with one layer, seen as a single op). `self` is the input `x: [S, B, I]`
    /// (sequence first), `h0`, `c0: [B, H]` the initial state, `weight_ih: [4H, I]`,
    /// `weight_hh: [4H, H]` and `bias = (b_ih, b_hh)`, each `[4H]`, with the gate blocks
    /// in PyTorch's order `i, f, g, o`. At each step
    ///
    /// `(i, f, g, o) = x_t W_ihᵀ + b_ih + h W_hhᵀ + b_hh` split in four, then
    /// `c' = σ(f) c + σ(i) tanh(g)`, `h' = σ(o) tanh(c')`.
    ///
    /// With `reverse` the steps run from the last position to the first (the backward
    /// direction of a bidirectional layer); outputs stay in sequence order. Returns
    /// `(output [S, B, H], h_n [B, H], c_n [B, H])`: every `h_t`, then the state after
    /// the last step processed.
    ///
    /// Gradient: backpropagation through time; the rule is the fused kernel of
    /// `kernels/lstm.rs` for a plain backward pass and the same maths in tensor ops when
    /// a graph of the gradient is built, so every order differentiates.
    ///
    /// # Panics
    /// If `x` is not `[S, B, I]` with `S > 0`, the weights are not `[4H, I]` and
    /// `[4H, H]`, a bias is not `[4H]`, a state is not `[B, H]`, or the dtypes differ or
    /// are not float.
    ///
    /// ```
    /// use tapegrad::{DType, Tensor};
    /// // Zero weights: every gate is σ(0) = 1/2 and g = tanh(0) = 0, so c halves each step.
    /// let x = Tensor::ones(&[3, 1, 2], DType::F64);
    /// let (w_ih, w_hh) = (Tensor::zeros(&[4, 2], DType::F64), Tensor::zeros(&[4, 1], DType::F64));
    /// let (h0, c0) = (Tensor::zeros(&[1, 1], DType::F64), Tensor::full(&[1, 1], 8.0, DType::F64));
    /// let (out, h_n, c_n) = x.lstm_layer(&h0, &c0, &w_ih, &w_hh, None, false);
    /// assert_eq!(c_n.to_vec::<f64>(), vec![1.0]);
    /// assert_eq!(out.shape(), &[3, 1, 1]);
    /// assert!((h_n.item() - 0.5 * 1f64.tanh()).abs() < 1e-15);
    /// ```
    #[track_caller]
    pub fn lstm_layer(
        &self,
        h0: &Tensor,
        c0: &Tensor,
        weight_ih: &Tensor,
        weight_hh: &Tensor,
        bias: Option<(&Tensor, &Tensor)>,
        reverse: bool,
    ) -> (Tensor, Tensor, Tensor) {
        check_lstm(self, h0, c0, weight_ih, weight_hh, bias);
        let (steps, batch, hidden) = (self.shape()[0], self.shape()[1], weight_hh.shape()[1]);
        let mut inputs: SmallVec<[&Tensor; 7]> =
            SmallVec::from_slice(&[self, h0, c0, weight_ih, weight_hh]);
        if let Some((b_ih, b_hh)) = bias {
            inputs.extend([b_ih, b_hh]);
        }
        let keep = is_grad_enabled() && inputs.iter().any(|t| t.tracks_grad());
        let (out, saved) = match self.dtype() {
            DType::F32 => run_forward::<f32>(&inputs, reverse, keep),
            _ => run_forward::<f64>(&inputs, reverse, keep),
        };
        let mut op = Op::new("lstm_layer", &inputs, out)
            .save(&inputs)
            .save_output();
        if let Some((gates, cells)) = &saved {
            op = op.save(&[gates, cells]);
        }
        let has_bias = bias.is_some();
        let packed = op.rule(move |ctx, g| {
            if ctx.create_graph() {
                return composed_grads(ctx, g, has_bias, reverse);
            }
            match g.dtype() {
                DType::F32 => kernel_grads::<f32>(ctx, g, has_bias, reverse),
                _ => kernel_grads::<f64>(ctx, g, has_bias, reverse),
            }
        });
        let last = if reverse { 0 } else { steps - 1 };
        (
            packed.narrow(0, 0, steps),
            packed.narrow(0, last, 1).reshape_to(&[batch, hidden]),
            packed.narrow(0, steps, 1).reshape_to(&[batch, hidden]),
        )
    }
}

/// The shape and dtype checks of `lstm_layer`, each naming the rule broken.
#[track_caller]
fn check_lstm(
    x: &Tensor,
    h0: &Tensor,
    c0: &Tensor,
    w_ih: &Tensor,
    w_hh: &Tensor,
    bias: Option<(&Tensor, &Tensor)>,
) {
    check_float("lstm_layer", x);
    if x.rank() != 3 || x.shape()[0] == 0 {
        panic!(
            "lstm_layer: the input must be [seq, batch, input] with seq > 0, got {:?}",
            x.shape()
        );
    }
    let (batch, input) = (x.shape()[1], x.shape()[2]);
    if w_hh.rank() != 2 || w_hh.shape()[0] != 4 * w_hh.shape()[1] {
        panic!(
            "lstm_layer: weight_hh must be [4 hidden, hidden], got {:?}",
            w_hh.shape()
        );
    }
    let hidden = w_hh.shape()[1];
    let mut expected: Vec<(&str, &Tensor, Vec<usize>)> = vec![
        ("h0", h0, vec![batch, hidden]),
        ("c0", c0, vec![batch, hidden]),
        ("weight_ih", w_ih, vec![4 * hidden, input]),
    ];
    if let Some((b_ih, b_hh)) = bias {
        expected.push(("bias_ih", b_ih, vec![4 * hidden]));
        expected.push(("bias_hh", b_hh, vec![4 * hidden]));
    }
    for (name, t, shape) in
        expected
            .into_iter()
            .chain([("weight_hh", w_hh, vec![4 * hidden, hidden])])
    {
        if t.shape() != shape.as_slice() {
            panic!(
                "lstm_layer: {name} must be {shape:?} (input {:?}, hidden {hidden}), got {:?}",
                x.shape(),
                t.shape()
            );
        }
        if t.dtype() != x.dtype() {
            panic!(
                "lstm_layer: {name} is {} but the input is {}",
                t.dtype(),
                x.dtype()
            );
        }
    }
}

/// The computed values of `t` as an array of `T` (the dtype is checked by the op).
fn array<T: Scalar>(t: &Tensor) -> ArcArray<T, IxDyn> {
    t.force()
        .array::<T>()
        .expect("lstm_layer: dtypes checked")
        .clone()
}

/// The forward kernel on the op's inputs `[x, h0, c0, w_ih, w_hh, (b_ih, b_hh)]`: the
/// packed output `[S + 1, B, H]` and, with `keep`, the gates and cell states.
fn run_forward<T: CellMath>(
    inputs: &[&Tensor],
    reverse: bool,
    keep: bool,
) -> (Tensor, Option<(Tensor, Tensor)>) {
    let a: Vec<ArcArray<T, IxDyn>> = inputs.iter().map(|t| array::<T>(t)).collect();
    let bias = (a.len() == 7).then(|| &a[5] + &a[6]);
    let fwd = lstm::forward(
        view3(&a[0]),
        view2(&a[1]),
        view2(&a[2]),
        &Weights {
            w_ih: view2(&a[3]),
            w_hh: view2(&a[4]),
            bias: bias
                .as_ref()
                .map(|b| b.view().into_dimensionality::<Ix1>().expect("[4H]")),
        },
        reverse,
        keep,
    );
    let tensor = |a: ndarray::Array3<T>| Tensor::from_arc(a.into_dyn().into_shared());
    (
        tensor(fwd.out),
        fwd.saved.map(|(g, c)| (tensor(g), tensor(c))),
    )
}

fn view2<T>(a: &ArcArray<T, IxDyn>) -> ndarray::ArrayView2<'_, T> {
    a.view()
        .into_dimensionality::<Ix2>()
        .expect("rank 2, checked")
}

fn view3<T>(a: &ArcArray<T, IxDyn>) -> ndarray::ArrayView3<'_, T> {
    a.view()
        .into_dimensionality::<Ix3>()
        .expect("rank 3, checked")
}

/// The rule's kernel form. Saved: the inputs (`x, h0, c0, w_ih, w_hh`, biases), then the
/// gates and the cell states.
fn kernel_grads<T: CellMath>(
    ctx: &BackwardCtx<'_>,
    g: &Tensor,
    has_bias: bool,
    reverse: bool,
) -> GradList {
    let n_inputs = if has_bias { 7 } else { 5 };
    let a: Vec<ArcArray<T, IxDyn>> = [0, 1, 2, 3, 4, n_inputs, n_inputs + 1]
        .iter()
        .map(|&i| array::<T>(ctx.saved(i)))
        .collect();
    let out = ctx
        .output_data()
        .force()
        .array::<T>()
        .expect("lstm_layer: dtypes checked")
        .clone();
    let dy = array::<T>(g);
    let needs = Needs {
        x: ctx.needs_grad(0),
        h0: ctx.needs_grad(1),
        c0: ctx.needs_grad(2),
        w_ih: ctx.needs_grad(3),
        w_hh: ctx.needs_grad(4),
        bias: has_bias && (ctx.needs_grad(5) || ctx.needs_grad(6)),
    };
    let grads = lstm::backward(
        view3(&dy),
        &Saved {
            x: view3(&a[0]),
            h0: view2(&a[1]),
            c0: view2(&a[2]),
            out: view3(&out),
            gates: view3(&a[5]),
            cells: view3(&a[6]),
        },
        &Weights {
            w_ih: view2(&a[3]),
            w_hh: view2(&a[4]),
            bias: None,
        },
        reverse,
        needs,
    );
    let wrap = |a: Option<ArcArray<T, IxDyn>>| a.map(Tensor::from_arc);
    let mut list: GradList = [
        wrap(grads.x.map(|a| a.into_dyn().into_shared())),
        wrap(grads.h0.map(|a| a.into_dyn().into_shared())),
        wrap(grads.c0.map(|a| a.into_dyn().into_shared())),
        wrap(grads.w_ih.map(|a| a.into_dyn().into_shared())),
        wrap(grads.w_hh.map(|a| a.into_dyn().into_shared())),
    ]
    .into_iter()
    .collect();
    if has_bias {
        let db = wrap(grads.bias.map(|a| a.into_dyn().into_shared()));
        list.push(db.clone().filter(|_| ctx.needs_grad(5)));
        list.push(db.filter(|_| ctx.needs_grad(6)));
    }
    list
}

/// Splits `x: [n, ...]` into its `n` slices `[1, ...]` by halving: the gradient of a
/// slice is a zero tensor of the sliced tensor's size, so slicing each step straight from
/// `x` would cost `n` full-size gradients when this is differentiated again; halving
/// costs `O(n log n)`.
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

/// The rule's tensor-op form (used when a graph of the gradient is built): the forward
/// recomputed from the saved inputs with recorded ops, then backpropagation through time
/// with the same formulas as the kernel (`rows_backward` in `kernels/lstm.rs`).
fn composed_grads(ctx: &BackwardCtx<'_>, g: &Tensor, has_bias: bool, reverse: bool) -> GradList {
    let (x, h0, c0, w_ih, w_hh) = (
        ctx.saved(0),
        ctx.saved(1),
        ctx.saved(2),
        ctx.saved(3),
        ctx.saved(4),
    );
    let (steps, batch, input) = (x.shape()[0], x.shape()[1], x.shape()[2]);
    let hidden = w_hh.shape()[1];
    let pos = |s: usize| if reverse { steps - 1 - s } else { s };

    // Forward, recorded.
    let x2 = x.reshape_to(&[steps * batch, input]);
    let mut gx = x2.matmul(&w_ih.t());
    if has_bias {
        gx = gx.add(&ctx.saved(5).add(ctx.saved(6)));
    }
    let mut gx_steps = Vec::with_capacity(steps);
    split_steps(&gx.reshape_to(&[steps, batch, 4 * hidden]), &mut gx_steps);
    let w_hh_t = w_hh.t();
    // Per position: (i, f, g, o, c_prev, tanh c, h_prev).
    let mut at: Vec<Option<[Tensor; 7]>> = vec![None; steps];
    let (mut h, mut c) = (h0.clone(), c0.clone());
    for s in 0..steps {
        let t = pos(s);
        let pre = gx_steps[t]
            .reshape_to(&[batch, 4 * hidden])
            .add(&h.matmul(&w_hh_t));
        let block = |k: usize| pre.narrow(-1, k * hidden, hidden);
        let (i, f, gg, o) = (
            block(0).sigmoid(),
            block(1).sigmoid(),
            block(2).tanh(),
            block(3).sigmoid(),
        );
        let c_next = f.mul(&c).add(&i.mul(&gg));
        let tc = c_next.tanh();
        let h_next = o.mul(&tc);
        at[t] = Some([i, f, gg, o, c, tc, h]);
        (h, c) = (h_next, c_next);
    }

    // Backward through time, recorded.
    let mut g_steps = Vec::with_capacity(steps + 1);
    split_steps(g, &mut g_steps);
    let flat = |t: &Tensor| t.reshape_to(&[batch, hidden]);
    let mut dc = flat(&g_steps[steps]);
    let mut dh_next: Option<Tensor> = None;
    let mut dgates: Vec<Option<Tensor>> = vec![None; steps];
    for s in (0..steps).rev() {
        let t = pos(s);
        let [i, f, gg, o, c_prev, tc, _] = at[t].as_ref().expect("every position ran");
        let dh = match &dh_next {
            Some(d) => flat(&g_steps[t]).add(d),
            None => flat(&g_steps[t]),
        };
        let dcj = dc.add(&dh.mul(o).mul(&tc.square().rsub_scalar(1.0)));
        let dg_t = Tensor::cat(
            &[
                dcj.mul(gg).mul(&i.mul(&i.rsub_scalar(1.0))),
                dcj.mul(c_prev).mul(&f.mul(&f.rsub_scalar(1.0))),
                dcj.mul(i).mul(&gg.square().rsub_scalar(1.0)),
                dh.mul(tc).mul(&o.mul(&o.rsub_scalar(1.0))),
            ],
            -1,
        );
        dc = dcj.mul(f);
        dh_next = Some(dg_t.matmul(w_hh));
        dgates[t] = Some(dg_t);
    }
    let dgates: Vec<Tensor> = dgates.into_iter().map(|d| d.expect("every step")).collect();
    let dg2 = Tensor::stack(&dgates, 0).reshape_to(&[steps * batch, 4 * hidden]);
    let h_prev: Vec<Tensor> = at
        .iter()
        .map(|a| a.as_ref().expect("every position ran")[6].clone())
        .collect();
    let h_prev2 = Tensor::stack(&h_prev, 0).reshape_to(&[steps * batch, hidden]);
    let mut list: GradList = [
        ctx.needs_grad(0)
            .then(|| dg2.matmul(w_ih).reshape_to(&[steps, batch, input])),
        ctx.needs_grad(1)
            .then(|| dh_next.clone().expect("one step at least")),
        ctx.needs_grad(2).then(|| dc.clone()),
        ctx.needs_grad(3).then(|| dg2.t().matmul(&x2)),
        ctx.needs_grad(4).then(|| dg2.t().matmul(&h_prev2)),
    ]
    .into_iter()
    .collect();
    if has_bias {
        let db = (ctx.needs_grad(5) || ctx.needs_grad(6)).then(|| dg2.sum_dim(&[0], false));
        list.push(db.clone().filter(|_| ctx.needs_grad(5)));
        list.push(db.filter(|_| ctx.needs_grad(6)));
    }
    list
}

/// `lstm_layer`'s inputs: `x [S, B, I]`, `h0`, `c0 [B, H]`, the weights and both biases,
/// small and with values in `[-0.9, 0.9]` (gates away from saturation).
fn lstm_inputs(rng: &mut rand::rngs::StdRng, dtype: DType) -> Vec<Tensor> {
    let (steps, batch, input, hidden) = (
        rng.gen_range(1..=3),
        rng.gen_range(1..=2),
        rng.gen_range(1..=2),
        rng.gen_range(1..=2),
    );
    let shapes: [&[usize]; 7] = [
        &[steps, batch, input],
        &[batch, hidden],
        &[batch, hidden],
        &[4 * hidden, input],
        &[4 * hidden, hidden],
        &[4 * hidden],
        &[4 * hidden],
    ];
    shapes
        .iter()
        .map(|s| random_tensor(rng, s, Domain::Unit, dtype))
        .collect()
}

/// The three results of `lstm_layer` flattened into one tensor, for the checker.
fn apply_lstm(x: &[Tensor]) -> Tensor {
    let (out, h_n, c_n) = x[0].lstm_layer(&x[1], &x[2], &x[3], &x[4], Some((&x[5], &x[6])), false);
    Tensor::cat(
        &[out.reshape(&[-1]), h_n.reshape(&[-1]), c_n.reshape(&[-1])],
        0,
    )
}

/// The rows of the op table for this family.
pub(crate) const ROWS: &[OpSpec] = &[OpSpec::new(
    "lstm_layer",
    Inputs::Custom(lstm_inputs),
    apply_lstm,
    "backpropagation through time: dG_t from (dh_t, dc_t) and the saved gates, dh_{t-1} = dG_t W_hh, dc_{t-1} = dc_t σ(f); dW_ih = Σ dG_tᵀ x_t, dW_hh = Σ dG_tᵀ h_{t-1}, db = Σ dG_t, dx_t = dG_t W_ih",
)
.note("output, h_n and c_n checked together (flattened and concatenated); a kernel for backward() and the same maths in tensor ops under create_graph")];
