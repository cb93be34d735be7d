//! The LSTM layer kernels: one layer and direction over a whole sequence, forward and
//! backward, as oneDNN and cuDNN lay it out (the op that records them is
//! `Tensor::lstm_layer`, in `ops/recurrent.rs`).
//!
//! Forward: the input projection of every step is one product `[S·B, I] @ [I, 4H]`; then
//! each step is one product `h_{t-1} @ W_hhᵀ` and one pass over the batch that takes the
//! gate pre-activations to `i, f, g, o`, `c_t` and `h_t`, keeping the activated gates and
//! `c_t` for backward. Backward runs the steps in reverse: one pass for the gate gradients
//! `dG_t` from `(dh, dc)`, and `dh_{t-1} = dG_t @ W_hh`; then the weight gradients are one
//! product each over all steps (`dW_hh = dGᵀ @ H_prev`, `dW_ih = dGᵀ @ X`, `db` the column
//! sums of `dG`), and `dx = dG @ W_ih`. All products go through `matmul_2d`.
//!
//! The per-element maths is written once, generically ([`rows_forward`],
//! [`rows_backward`]), over the activation functions of [`CellMath`]: `f64` uses the
//! standard library's `exp` and `tanh` (so it agrees with the composed ops to rounding),
//! `f32` the branch-free `exp` of `simd.rs` (and a tanh built on it), so the loops
//! vectorise; they are compiled for AVX-512 and AVX2 and picked at run time.

use ndarray::{s, Array1, Array2, Array3, ArrayView1, ArrayView2, ArrayView3, Axis};

use super::matmul::matmul_2d;
use super::simd::{exp_f32, isa, Isa};
use crate::dtype::Element;

/// The weights of one layer and direction (PyTorch's layout: gate blocks `i, f, g, o`).
pub(crate) struct Weights<'a, T> {
    /// `[4H, I]`.
    pub(crate) w_ih: ArrayView2<'a, T>,
    /// `[4H, H]`.
    pub(crate) w_hh: ArrayView2<'a, T>,
    /// `b_ih + b_hh`, `[4H]`, if the layer has biases.
    pub(crate) bias: Option<ArrayView1<'a, T>>,
}

/// What the forward pass returns.
pub(crate) struct Forward<T> {
    /// `[S + 1, B, H]`: `h_t` at every position `t` (in sequence order), then `c_n`.
    pub(crate) out: Array3<T>,
    /// The activated gates `[S, B, 4H]` and the cell states `[S, B, H]` at every position,
    /// when asked to keep them (for backward).
    pub(crate) saved: Option<(Array3<T>, Array3<T>)>,
}

/// Which gradients backward computes.
#[derive(Clone, Copy)]
pub(crate) struct Needs {
    pub(crate) x: bool,
    pub(crate) h0: bool,
    pub(crate) c0: bool,
    pub(crate) w_ih: bool,
    pub(crate) w_hh: bool,
    pub(crate) bias: bool,
}

/// What the backward pass returns (`None` where not asked for).
pub(crate) struct Backward<T> {
    pub(crate) x: Option<Array3<T>>,
    pub(crate) h0: Option<Array2<T>>,
    pub(crate) c0: Option<Array2<T>>,
    pub(crate) w_ih: Option<Array2<T>>,
    pub(crate) w_hh: Option<Array2<T>>,
    pub(crate) bias: Option<Array1<T>>,
}

/// The element types the LSTM kernels run on, with their gate activations.
pub(crate) trait CellMath: Element {
    /// [`rows_forward`] with this type's activations (and the best ISA for `f32`).
    fn forward_rows(rows: ForwardRows<'_, Self>);
    /// [`rows_backward`] with this type's activations.
    fn backward_rows(rows: BackwardRows<'_, Self>);
}

/// The activations the per-element loops are written over.
trait Act<T> {
    fn sigmoid(x: T) -> T;
    fn tanh(x: T) -> T;
}

/// The standard library's functions; the sigmoid branches on the sign so `exp` never
/// overflows (as `Tensor::sigmoid`).
struct Precise;

impl<T: Element> Act<T> for Precise {
    #[inline(always)]
    fn sigmoid(x: T) -> T {
        if x >= T::zero() {
            T::one() / (T::one() + (-x).exp())
        } else {
            let e = x.exp();
            e / (T::one() + e)
        }
    }
    #[inline(always)]
    fn tanh(x: T) -> T {
        x.tanh()
    }
}

/// Branch-free `f32` activations on the vectorisable `exp` of `simd.rs` (1-2 ulp):
/// `sigmoid(x) = 1 / (1 + e^-x)` (an infinite `e^-x` gives 0); `tanh` as Cephes' `tanhf`,
/// an odd polynomial below `|x| = 0.625` (where `1 - 2 / (e^2x + 1)` would cancel) and
/// that formula above. Both within a few ulp of the exact values.
struct FastF32<const FMA: bool>;

impl<const FMA: bool> Act<f32> for FastF32<FMA> {
    #[inline(always)]
    fn sigmoid(x: f32) -> f32 {
        1.0 / (1.0 + exp_f32::<FMA>(-x))
    }
    #[inline(always)]
    fn tanh(x: f32) -> f32 {
        let z = x.abs();
        let s = x * x;
        let poly = ((((-5.704_988_7e-3 * s + 2.063_909e-2) * s - 5.373_971_6e-2) * s
            + 1.333_144_2e-1)
            * s
            - 3.333_328e-1)
            * s
            * x
            + x;
        // e^(2z) overflows to infinity above z = 44: 1 - 2 / inf = 1, as it should.
        let big = 1.0 - 2.0 / (exp_f32::<FMA>(2.0 * z) + 1.0);
        let big = if x < 0.0 { -big } else { big };
        if z < 0.625 {
            poly
        } else {
            big
        }
    }
}

/// One step of the forward pass over a batch, as slices (rows of `4H` or `H`).
pub(crate) struct ForwardRows<'a, T> {
    hidden: usize,
    /// `x_t W_ihᵀ`, `[B, 4H]`.
    gx: &'a [T],
    /// `h_{t-1} W_hhᵀ`, `[B, 4H]`.
    hh: &'a [T],
    /// `b_ih + b_hh` (zeros without biases), `[4H]`.
    bias: &'a [T],
    /// `c_{t-1}`, `[B, H]`.
    c_prev: &'a [T],
    /// Out: the activated gates, `[B, 4H]`.
    gates: &'a mut [T],
    /// Out: `c_t`, `[B, H]`.
    c: &'a mut [T],
    /// Out: `h_t`, `[B, H]`.
    h: &'a mut [T],
}

/// The gates, cell and hidden state of one step:
/// `i, f, o = σ(pre)`, `g = tanh(pre)`, `c = f c_prev + i g`, `h = o tanh(c)`.
#[inline(always)]
fn rows_forward<T: Element, A: Act<T>>(r: ForwardRows<'_, T>) {
    let hd = r.hidden;
    let w = 4 * hd;
    let rows = r.c_prev.len() / hd.max(1);
    let [bi, bf, bg, bo] = quarters(r.bias, hd);
    for b in 0..rows {
        let [xi, xf, xg, xo] = quarters(&r.gx[b * w..(b + 1) * w], hd);
        let [hi, hf, hg, ho] = quarters(&r.hh[b * w..(b + 1) * w], hd);
        let (gi, rest) = r.gates[b * w..(b + 1) * w].split_at_mut(hd);
        let (gf, rest) = rest.split_at_mut(hd);
        let (gg, go) = rest.split_at_mut(hd);
        let c_prev = &r.c_prev[b * hd..(b + 1) * hd];
        let c = &mut r.c[b * hd..(b + 1) * hd];
        let h = &mut r.h[b * hd..(b + 1) * hd];
        // Blocks of `LANES` computed into local arrays (no aliasing, no bounds checks:
        // the loops vectorise), then stored; the tail one by one.
        let mut j0 = 0;
        while j0 + LANES <= hd {
            let range = j0..j0 + LANES;
            let mut pre = [[T::zero(); LANES]; 4];
            for (q, (x, hh, bias)) in [(xi, hi, bi), (xf, hf, bf), (xg, hg, bg), (xo, ho, bo)]
                .into_iter()
                .enumerate()
            {
                let (x, hh, bias) = (&x[range.clone()], &hh[range.clone()], &bias[range.clone()]);
                for k in 0..LANES {
                    pre[q][k] = x[k] + hh[k] + bias[k];
                }
            }
            let mut cp = [T::zero(); LANES];
            cp.copy_from_slice(&c_prev[range.clone()]);
            let mut out = [[T::zero(); LANES]; 6];
            for k in 0..LANES {
                let p = [pre[0][k], pre[1][k], pre[2][k], pre[3][k]];
                let ([i, f, g, o], cj, hj) = cell_forward::<T, A>(p, cp[k]);
                (out[0][k], out[1][k], out[2][k], out[3][k]) = (i, f, g, o);
                (out[4][k], out[5][k]) = (cj, hj);
            }
            for (dst, src) in [
                &mut gi[range.clone()],
                &mut gf[range.clone()],
                &mut gg[range.clone()],
                &mut go[range.clone()],
                &mut c[range.clone()],
                &mut h[range],
            ]
            .into_iter()
            .zip(&out)
            {
                dst.copy_from_slice(src);
            }
            j0 += LANES;
        }
        for j in j0..hd {
            let p = [
                xi[j] + hi[j] + bi[j],
                xf[j] + hf[j] + bf[j],
                xg[j] + hg[j] + bg[j],
                xo[j] + ho[j] + bo[j],
            ];
            let ([i, f, g, o], cj, hj) = cell_forward::<T, A>(p, c_prev[j]);
            (gi[j], gf[j], gg[j], go[j]) = (i, f, g, o);
            (c[j], h[j]) = (cj, hj);
        }
    }
}

/// Elements per block of the per-element loops (one AVX-512 vector of `f32`).
const LANES: usize = 16;

/// One element of one step: the activated gates `[i, f, g, o]` from their
/// pre-activations, `c = f c_prev + i g` and `h = o tanh(c)`.
#[inline(always)]
fn cell_forward<T: Element, A: Act<T>>(pre: [T; 4], c_prev: T) -> ([T; 4], T, T) {
    let i = A::sigmoid(pre[0]);
    let f = A::sigmoid(pre[1]);
    let g = A::tanh(pre[2]);
    let o = A::sigmoid(pre[3]);
    let c = f * c_prev + i * g;
    ([i, f, g, o], c, o * A::tanh(c))
}

/// The four gate blocks of a row of `4 hidden` values.
#[inline(always)]
fn quarters<T>(row: &[T], hidden: usize) -> [&[T]; 4] {
    let (a, rest) = row.split_at(hidden);
    let (b, rest) = rest.split_at(hidden);
    let (c, d) = rest.split_at(hidden);
    [a, b, c, &d[..hidden]]
}

/// One step of the backward pass over a batch, as slices.
pub(crate) struct BackwardRows<'a, T> {
    hidden: usize,
    /// The gradient reaching `h_t` from outside (the output at `t`), `[B, H]`.
    dy: &'a [T],
    /// The gradient reaching `h_t` from step `t + 1`, `[B, H]`.
    dh_next: &'a [T],
    /// The activated gates of step `t`, `[B, 4H]`.
    gates: &'a [T],
    /// `c_{t-1}` and `c_t`, `[B, H]`.
    c_prev: &'a [T],
    c: &'a [T],
    /// In: the gradient reaching `c_t` from step `t + 1`; out: the one reaching `c_{t-1}`.
    dc: &'a mut [T],
    /// Out: the gradient of the gate pre-activations, `[B, 4H]`.
    dgates: &'a mut [T],
}

/// `dh = dy + dh_next`, `dc += dh o (1 - tanh²c)`, then the pre-activation gradients
/// `di σ' , df σ', dg tanh', do σ'` (with `di = dc g`, `df = dc c_prev`, `dg = dc i`,
/// `do = dh tanh c`) and `dc_prev = dc f`.
#[inline(always)]
fn rows_backward<T: Element, A: Act<T>>(r: BackwardRows<'_, T>) {
    let hd = r.hidden;
    let w = 4 * hd;
    let rows = r.c.len() / hd.max(1);
    for b in 0..rows {
        let [gi, gf, gg, go] = quarters(&r.gates[b * w..(b + 1) * w], hd);
        let dgates = &mut r.dgates[b * w..(b + 1) * w];
        let (di, rest) = dgates.split_at_mut(hd);
        let (df, rest) = rest.split_at_mut(hd);
        let (dg, d_o) = rest.split_at_mut(hd);
        let dy = &r.dy[b * hd..(b + 1) * hd];
        let dh_next = &r.dh_next[b * hd..(b + 1) * hd];
        let c_prev = &r.c_prev[b * hd..(b + 1) * hd];
        let c = &r.c[b * hd..(b + 1) * hd];
        let dc = &mut r.dc[b * hd..(b + 1) * hd];
        // As in `rows_forward`: blocks into local arrays, then the tail.
        let mut j0 = 0;
        while j0 + LANES <= hd {
            let range = j0..j0 + LANES;
            let mut v = [[T::zero(); LANES]; 8];
            for (dst, src) in v
                .iter_mut()
                .zip([gi, gf, gg, go, c_prev, c, dy, dc as &[T]])
            {
                dst.copy_from_slice(&src[range.clone()]);
            }
            let dh_next = &dh_next[range.clone()];
            let mut out = [[T::zero(); LANES]; 5];
            for k in 0..LANES {
                let gates = [v[0][k], v[1][k], v[2][k], v[3][k]];
                let dh = v[6][k] + dh_next[k];
                let (d, dcp) = cell_backward::<T, A>(gates, v[4][k], v[5][k], dh, v[7][k]);
                (out[0][k], out[1][k], out[2][k], out[3][k]) = (d[0], d[1], d[2], d[3]);
                out[4][k] = dcp;
            }
            for (dst, src) in [
                &mut di[range.clone()],
                &mut df[range.clone()],
                &mut dg[range.clone()],
                &mut d_o[range.clone()],
                &mut dc[range],
            ]
            .into_iter()
            .zip(&out)
            {
                dst.copy_from_slice(src);
            }
            j0 += LANES;
        }
        for j in j0..hd {
            let gates = [gi[j], gf[j], gg[j], go[j]];
            let dh = dy[j] + dh_next[j];
            let (d, dcp) = cell_backward::<T, A>(gates, c_prev[j], c[j], dh, dc[j]);
            (di[j], df[j], dg[j], d_o[j]) = (d[0], d[1], d[2], d[3]);
            dc[j] = dcp;
        }
    }
}

/// One element of one step backward, from the gates `[i, f, g, o]`, `c_{t-1}`, `c_t`,
/// the gradient `dh` reaching `h_t` and `dc` reaching `c_t` (from step `t + 1`): the
/// pre-activation gradients and the gradient reaching `c_{t-1}`.
#[inline(always)]
fn cell_backward<T: Element, A: Act<T>>(
    [i, f, g, o]: [T; 4],
    c_prev: T,
    c: T,
    dh: T,
    dc: T,
) -> ([T; 4], T) {
    let one = T::one();
    let tc = A::tanh(c);
    let dc = dc + dh * o * (one - tc * tc);
    let d = [
        dc * g * (i * (one - i)),
        dc * c_prev * (f * (one - f)),
        dc * i * (one - g * g),
        dh * tc * (o * (one - o)),
    ];
    (d, dc * f)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
fn forward_avx512(r: ForwardRows<'_, f32>) {
    rows_forward::<f32, FastF32<true>>(r)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn forward_avx2(r: ForwardRows<'_, f32>) {
    rows_forward::<f32, FastF32<true>>(r)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
fn backward_avx512(r: BackwardRows<'_, f32>) {
    rows_backward::<f32, FastF32<true>>(r)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn backward_avx2(r: BackwardRows<'_, f32>) {
    rows_backward::<f32, FastF32<true>>(r)
}

impl CellMath for f32 {
    fn forward_rows(rows: ForwardRows<'_, f32>) {
        match isa() {
            // SAFETY: `isa` reports only features this CPU has.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { forward_avx512(rows) },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => unsafe { forward_avx2(rows) },
            _ => rows_forward::<f32, FastF32<false>>(rows),
        }
    }
    fn backward_rows(rows: BackwardRows<'_, f32>) {
        match isa() {
            // SAFETY: `isa` reports only features this CPU has.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { backward_avx512(rows) },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => unsafe { backward_avx2(rows) },
            _ => rows_backward::<f32, FastF32<false>>(rows),
        }
    }
}

impl CellMath for f64 {
    fn forward_rows(rows: ForwardRows<'_, f64>) {
        rows_forward::<f64, Precise>(rows)
    }
    fn backward_rows(rows: BackwardRows<'_, f64>) {
        rows_backward::<f64, Precise>(rows)
    }
}

/// The position of the `s`-th step processed (the sequence is read backwards in reverse).
fn position(s: usize, steps: usize, reverse: bool) -> usize {
    if reverse {
        steps - 1 - s
    } else {
        s
    }
}

/// A row-major copy of a matrix (or the matrix itself when it already is one).
fn slice_of<'a, T: Element>(a: &'a ArrayView2<'_, T>, buf: &'a mut Vec<T>) -> &'a [T] {
    match a.as_slice() {
        Some(s) => s,
        None => {
            buf.clear();
            buf.extend(a.iter().copied());
            buf
        }
    }
}

/// `(x [S, B, I], h0 [B, H], c0 [B, H])` through one LSTM layer and direction. `keep`:
/// also return what backward needs (the activated gates and the cell states).
pub(crate) fn forward<T: CellMath>(
    x: ArrayView3<'_, T>,
    h0: ArrayView2<'_, T>,
    c0: ArrayView2<'_, T>,
    w: &Weights<'_, T>,
    reverse: bool,
    keep: bool,
) -> Forward<T> {
    let (steps, batch, input) = x.dim();
    let hidden = w.w_hh.ncols();
    let width = 4 * hidden;
    let x2 = x.as_standard_layout();
    let x2 = x2
        .view()
        .into_shape_with_order((steps * batch, input))
        .expect("a standard-layout array reshapes");
    let gx = matmul_2d(&x2, &w.w_ih.t());
    // W_hhᵀ copied row-major once: every step's product then packs it by contiguous rows.
    let w_hh_t = w.w_hh.t().as_standard_layout().into_owned();
    let gx = gx.as_slice().expect("a fresh product is row-major");
    let bias: Vec<T> = match &w.bias {
        Some(b) => b.iter().copied().collect(),
        None => vec![T::zero(); width],
    };
    let (mut h0_buf, mut c0_buf) = (Vec::new(), Vec::new());
    let h0 = slice_of(&h0, &mut h0_buf);
    let c0 = slice_of(&c0, &mut c0_buf);
    let step = batch * hidden;
    let mut out = Array3::<T>::zeros((steps + 1, batch, hidden));
    // Without `keep`, one step's gates and two cells (previous and current) suffice.
    let (mut gates, mut cells) = if keep {
        (
            Array3::<T>::zeros((steps, batch, width)),
            Array3::<T>::zeros((steps, batch, hidden)),
        )
    } else {
        (
            Array3::<T>::zeros((1, batch, width)),
            Array3::<T>::zeros((2, batch, hidden)),
        )
    };
    {
        let out_s = out.as_slice_mut().expect("fresh");
        let gates_s = gates.as_slice_mut().expect("fresh");
        let cells_s = cells.as_slice_mut().expect("fresh");
        for s in 0..steps {
            let t = position(s, steps, reverse);
            let (gate_slot, cell_slot, prev_slot) = if keep {
                (t, t, (s > 0).then(|| position(s - 1, steps, reverse)))
            } else {
                (0, s % 2, (s > 0).then_some((s + 1) % 2))
            };
            let hh = {
                let h_prev = match s {
                    0 => h0,
                    _ => {
                        let p = position(s - 1, steps, reverse);
                        &out_s[p * step..(p + 1) * step]
                    }
                };
                let h_prev = ArrayView2::from_shape((batch, hidden), h_prev).expect("[B, H]");
                matmul_2d(&h_prev, &w_hh_t.view())
            };
            let (c_prev, c) = match prev_slot {
                None => (c0, &mut cells_s[cell_slot * step..(cell_slot + 1) * step]),
                Some(p) => two_rows(cells_s, step, p, cell_slot),
            };
            T::forward_rows(ForwardRows {
                hidden,
                gx: &gx[t * batch * width..(t + 1) * batch * width],
                hh: hh.as_slice().expect("a fresh product is row-major"),
                bias: &bias,
                c_prev,
                gates: &mut gates_s[gate_slot * batch * width..(gate_slot + 1) * batch * width],
                c,
                h: &mut out_s[t * step..(t + 1) * step],
            });
        }
    }
    let last = if keep {
        position(steps - 1, steps, reverse)
    } else {
        (steps - 1) % 2
    };
    let c_n = cells.index_axis(Axis(0), last).to_owned();
    out.index_axis_mut(Axis(0), steps).assign(&c_n);
    Forward {
        out,
        saved: keep.then_some((gates, cells)),
    }
}

/// Row `read` (shared) and row `write` (mutable) of a buffer of rows of `len`.
fn two_rows<T>(buf: &mut [T], len: usize, read: usize, write: usize) -> (&[T], &mut [T]) {
    assert_ne!(read, write, "lstm: a step reads and writes the same row");
    if read < write {
        let (lo, hi) = buf.split_at_mut(write * len);
        (&lo[read * len..(read + 1) * len], &mut hi[..len])
    } else {
        let (lo, hi) = buf.split_at_mut(read * len);
        (&hi[..len], &mut lo[write * len..(write + 1) * len])
    }
}

/// The inputs of [`backward`] beyond the weights: the forward's inputs, its output and
/// what it kept.
pub(crate) struct Saved<'a, T> {
    pub(crate) x: ArrayView3<'a, T>,
    pub(crate) h0: ArrayView2<'a, T>,
    pub(crate) c0: ArrayView2<'a, T>,
    /// The forward output `[S + 1, B, H]`.
    pub(crate) out: ArrayView3<'a, T>,
    /// `[S, B, 4H]` and `[S, B, H]`.
    pub(crate) gates: ArrayView3<'a, T>,
    pub(crate) cells: ArrayView3<'a, T>,
}

/// The gradients of one LSTM layer and direction from the gradient `dy [S + 1, B, H]` of
/// its packed output (every `h_t`, then `c_n`).
pub(crate) fn backward<T: CellMath>(
    dy: ArrayView3<'_, T>,
    saved: &Saved<'_, T>,
    w: &Weights<'_, T>,
    reverse: bool,
    needs: Needs,
) -> Backward<T> {
    let (steps, batch, input) = saved.x.dim();
    let hidden = w.w_hh.ncols();
    let width = 4 * hidden;
    let step = batch * hidden;
    let dy = dy.as_standard_layout();
    let dy = dy.as_slice().expect("standard layout");
    let (mut h0_buf, mut c0_buf) = (Vec::new(), Vec::new());
    let h0 = slice_of(&saved.h0, &mut h0_buf);
    let c0 = slice_of(&saved.c0, &mut c0_buf);
    let out = saved.out.as_standard_layout();
    let out = out.as_slice().expect("standard layout");
    let gates = saved.gates.as_standard_layout();
    let gates = gates.as_slice().expect("standard layout");
    let cells = saved.cells.as_standard_layout();
    let cells = cells.as_slice().expect("standard layout");

    let mut dgates = Array2::<T>::zeros((steps * batch, width));
    let dg = dgates.as_slice_mut().expect("fresh");
    let mut dc: Vec<T> = dy[steps * step..(steps + 1) * step].to_vec();
    let mut dh_next: Array2<T> = Array2::zeros((batch, hidden));
    for s in (0..steps).rev() {
        let t = position(s, steps, reverse);
        let c_prev = match s {
            0 => c0,
            _ => {
                let p = position(s - 1, steps, reverse);
                &cells[p * step..(p + 1) * step]
            }
        };
        T::backward_rows(BackwardRows {
            hidden,
            dy: &dy[t * step..(t + 1) * step],
            dh_next: dh_next.as_slice().expect("row-major"),
            gates: &gates[t * batch * width..(t + 1) * batch * width],
            c_prev,
            c: &cells[t * step..(t + 1) * step],
            dc: &mut dc,
            dgates: &mut dg[t * batch * width..(t + 1) * batch * width],
        });
        if s > 0 || needs.h0 {
            let dg_t = ArrayView2::from_shape(
                (batch, width),
                &dg[t * batch * width..(t + 1) * batch * width],
            )
            .expect("[B, 4H]");
            dh_next = matmul_2d(&dg_t, &w.w_hh);
        }
    }

    let w_hh = needs.w_hh.then(|| {
        // dW_hh = sum_t dG_tᵀ h_{t-1}: the steps whose previous state is an output are one
        // product over contiguous rows of dG and of the output; the first step reads h0.
        let out2 = ArrayView2::from_shape(((steps + 1) * batch, hidden), out).expect("[S+1, B, H]");
        let first = position(0, steps, reverse);
        let dg_first = dgates.slice(s![first * batch..(first + 1) * batch, ..]);
        let h0v = ArrayView2::from_shape((batch, hidden), h0).expect("[B, H]");
        let mut total = matmul_2d(&dg_first.t(), &h0v);
        if steps > 1 {
            let rows = (steps - 1) * batch;
            let (g_rows, h_rows) = if reverse {
                (0..rows, batch..batch + rows)
            } else {
                (batch..batch + rows, 0..rows)
            };
            let rest = matmul_2d(
                &dgates.slice(s![g_rows, ..]).t(),
                &out2.slice(s![h_rows, ..]),
            );
            total += &rest;
        }
        total
    });
    let x2 = saved.x.as_standard_layout();
    let x2 = x2
        .view()
        .into_shape_with_order((steps * batch, input))
        .expect("a standard-layout array reshapes");
    let w_ih = needs.w_ih.then(|| matmul_2d(&dgates.t(), &x2));
    let bias = needs.bias.then(|| dgates.sum_axis(Axis(0)));
    let x = needs.x.then(|| {
        matmul_2d(&dgates.view(), &w.w_ih)
            .into_shape_with_order((steps, batch, input))
            .expect("[S, B, I]")
    });
    Backward {
        x,
        h0: needs.h0.then_some(dh_next),
        c0: needs
            .c0
            .then(|| Array2::from_shape_vec((batch, hidden), dc).expect("[B, H]")),
        w_ih,
        w_hh,
        bias,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_f32_activations_are_within_a_few_ulp_of_std() {
        let ulps = |a: f32, b: f32| (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs();
        let mut worst = (0, 0);
        for k in -200_000..=200_000 {
            let x = k as f32 * 1e-4; // [-20, 20]
            let sig = 1.0 / (1.0 + (-(x as f64)).exp());
            let (fs, ft) = (FastF32::<false>::sigmoid(x), FastF32::<false>::tanh(x));
            worst.0 = worst.0.max(ulps(fs, sig as f32));
            worst.1 = worst.1.max(ulps(ft, (x as f64).tanh() as f32));
        }
        assert!(
            worst.0 <= 4 && worst.1 <= 4,
            "worst ulps (sigmoid, tanh): {worst:?}"
        );
        for big in [50.0f32, 1e10, f32::INFINITY] {
            assert_eq!(FastF32::<false>::tanh(big), 1.0);
            assert_eq!(FastF32::<false>::tanh(-big), -1.0);
            assert_eq!(FastF32::<false>::sigmoid(big), 1.0);
        }
        // Far out, e^-x overflows to infinity and the sigmoid is 0, not NaN.
        assert_eq!(FastF32::<false>::sigmoid(-1e10), 0.0);
        assert_eq!(FastF32::<false>::sigmoid(f32::NEG_INFINITY), 0.0);
        assert_eq!(FastF32::<false>::tanh(0.0), 0.0);
    }
}
