//! Fused scaled dot-product attention, `softmax(q k^T * scale + mask) v`, in the manner
//! of flash attention: the scores of one block of query rows at a time, never the whole
//! `[L, S]` matrix of a head, and for backward only the output and each query's
//! log-sum-exp (`lse`), from which a block's weights are recomputed.
//!
//! Per matrix of the (broadcast) batch and per block of [`BQ`] query rows, the forward
//! pass takes the scores of the block's keys (`q_blk @ k^T`, our GEMM), scales them, adds
//! the mask (or masks the future), and turns each row into weights (max, exp, sum,
//! divide); then `out_blk = p @ v`. Key blocks of [`BK`] columns that the mask removes
//! entirely for every row of the query block (the future under a causal mask) are not
//! computed. The backward pass recomputes `p = exp(s - lse)` per block, and with
//! `D = rowsum(dO * O)`: `dV += p^T dO`, `dP = dO V^T`, `dS = p * (dP - D)`,
//! `dQ = dS K * scale`, `dK += dS^T Q * scale`.
//!
//! A query whose every key is masked (`-inf`) gets zero weights, a zero output and
//! zero gradients, its `lse` being `-inf`.

use std::mem::MaybeUninit;

use ndarray::{s, ArrayD, ArrayView2, ArrayViewD, ArrayViewMut2, Axis, Ix2, IxDyn};
use rayon::prelude::*;

use super::matmul::{gemm_into, Threads};
use crate::dtype::Element;

/// Query rows per block: the scores held at once are `BQ x S` per thread.
pub(crate) const BQ: usize = 64;
/// Key columns per block: the unit in which keys masked for a whole query block are
/// skipped.
pub(crate) const BK: usize = 32;

/// The inputs of one attention, every operand a view broadcast to the batch shape:
/// `q [batch.., L, E]`, `k [batch.., S, E]`, `v [batch.., S, Ev]`, `mask [batch.., L, S]`
/// (additive), or a causal mask (query `i` sees keys `0..=i`).
pub(crate) struct AttnInputs<'a, T: Element> {
    q: ArrayViewD<'a, T>,
    k: ArrayViewD<'a, T>,
    v: ArrayViewD<'a, T>,
    mask: Option<ArrayViewD<'a, T>>,
    causal: bool,
    scale: T,
    batch: Vec<usize>,
    l: usize,
    s: usize,
    e: usize,
    ev: usize,
}

/// The 2-D matrix at flat batch index `flat` of a view whose leading axes are `batch`.
fn matrix<'a, T>(v: ArrayViewD<'a, T>, batch: &[usize], flat: usize) -> ArrayView2<'a, T> {
    let mut sub = v;
    let mut rem = flat;
    let mut stride: usize = batch.iter().product();
    for &size in batch {
        stride /= size;
        sub = sub.index_axis_move(Axis(0), rem / stride);
        rem %= stride;
    }
    sub.into_dimensionality::<Ix2>().expect("rank 2")
}

/// The 2-D matrix `[rows, cols]` at flat batch index `flat` of `a` broadcast to
/// `batch + [rows, cols]`.
fn matrix_of<'b, T>(
    a: &'b ArrayViewD<'_, T>,
    batch: &[usize],
    rows: usize,
    cols: usize,
    flat: usize,
) -> ArrayView2<'b, T> {
    let mut shape = batch.to_vec();
    shape.extend([rows, cols]);
    let full = a
        .broadcast(IxDyn(&shape))
        .expect("attention: the operands broadcast to the batch (checked by the op)");
    matrix(full, batch, flat)
}

impl<'a, T: Element> AttnInputs<'a, T> {
    /// The attention of `q` over `k`, `v` whose batch axes broadcast to `batch` (and the
    /// mask's to `batch` too); shapes are checked by the op.
    pub(crate) fn new(
        q: ArrayViewD<'a, T>,
        k: ArrayViewD<'a, T>,
        v: ArrayViewD<'a, T>,
        mask: Option<ArrayViewD<'a, T>>,
        causal: bool,
        scale: f64,
        batch: &[usize],
    ) -> Self {
        let (l, e) = (q.shape()[q.ndim() - 2], q.shape()[q.ndim() - 1]);
        let (s, ev) = (v.shape()[v.ndim() - 2], v.shape()[v.ndim() - 1]);
        AttnInputs {
            q,
            k,
            v,
            mask,
            causal,
            scale: T::of(scale),
            batch: batch.to_vec(),
            l,
            s,
            e,
            ev,
        }
    }

    fn count(&self) -> usize {
        self.batch.iter().product()
    }

    /// The shape `batch + [rows, cols]`.
    fn shape(&self, rows: usize, cols: usize) -> IxDyn {
        let mut shape = self.batch.clone();
        shape.extend([rows, cols]);
        IxDyn(&shape)
    }

    /// The matrices of batch element `b`: q, k, v and the mask.
    #[allow(clippy::type_complexity)]
    fn matrices(
        &self,
        b: usize,
    ) -> (
        ArrayView2<'_, T>,
        ArrayView2<'_, T>,
        ArrayView2<'_, T>,
        Option<ArrayView2<'_, T>>,
    ) {
        let (l, s, e, ev, batch) = (self.l, self.s, self.e, self.ev, &self.batch);
        (
            matrix_of(&self.q, batch, l, e, b),
            matrix_of(&self.k, batch, s, e, b),
            matrix_of(&self.v, batch, s, ev, b),
            self.mask.as_ref().map(|m| matrix_of(m, batch, l, s, b)),
        )
    }

    /// The keys `lo..hi` that query rows `i0..i0 + rows` must visit: all, less the key
    /// blocks the mask removes for every one of those rows (`(0, 0)`: none is left).
    fn key_range(
        &self,
        mask: Option<&ArrayView2<'_, T>>,
        i0: usize,
        rows: usize,
    ) -> (usize, usize) {
        if self.causal {
            return (0, self.s.min(i0 + rows));
        }
        let Some(mask) = mask else {
            return (0, self.s);
        };
        let rows_mask = mask.slice(s![i0..i0 + rows, ..]);
        let live = |j0: usize| {
            let j1 = (j0 + BK).min(self.s);
            rows_mask
                .slice(s![.., j0..j1])
                .iter()
                .any(|&x| x != T::neg_infinity())
        };
        let starts: Vec<usize> = (0..self.s).step_by(BK).collect();
        match starts.iter().position(|&j0| live(j0)) {
            None => (0, 0),
            Some(first) => {
                let last = starts
                    .iter()
                    .rposition(|&j0| live(j0))
                    .expect("one is live");
                (starts[first], (starts[last] + BK).min(self.s))
            }
        }
    }

    /// `x = sc * scale + mask` in place for query rows `i0..` over keys `lo..lo + nk`
    /// (`-inf` for a future key under the causal mask).
    fn logits(
        &self,
        sc: &mut [T],
        mask: Option<&ArrayView2<'_, T>>,
        i0: usize,
        lo: usize,
        nk: usize,
    ) {
        for (r, row) in sc.chunks_mut(nk).enumerate() {
            let i = i0 + r;
            match mask {
                Some(m) => {
                    let mrow = m.row(i);
                    let mrow = mrow.slice(s![lo..lo + nk]);
                    for (x, &mv) in row.iter_mut().zip(mrow.iter()) {
                        *x = *x * self.scale + mv;
                    }
                }
                None => row.iter_mut().for_each(|x| *x *= self.scale),
            }
            if self.causal && i + 1 < lo + nk {
                // Keys j > i are the future: `i + 1 - lo` columns are visible.
                let visible = (i + 1).saturating_sub(lo);
                row[visible..].fill(T::neg_infinity());
            }
        }
    }

    /// The threads each GEMM may use: its own when the batch is too small to occupy the
    /// pool with one product per task.
    fn threads(&self, tasks: usize) -> Threads {
        if tasks >= rayon::current_num_threads() {
            Threads::One
        } else {
            Threads::Pool
        }
    }
}

/// `dst[i] = exp(src[i])` (the vectorised kernel for `f32`, the one `Tensor::exp` uses).
fn exp_into<T: Element>(src: &[T], dst: &mut [T]) {
    if let (Some(src), Some(dst)) = (as_f32(src), as_f32_mut(dst)) {
        // SAFETY: `MaybeUninit<f32>` has the layout of `f32`; writing initialised values
        // over initialised ones is fine.
        let dst = unsafe { &mut *(dst as *mut [f32] as *mut [MaybeUninit<f32>]) };
        super::simd::exp_f32_slice(src, dst);
        return;
    }
    for (d, &x) in dst.iter_mut().zip(src) {
        *d = x.exp();
    }
}

fn as_f32<T: Element>(x: &[T]) -> Option<&[f32]> {
    (std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>())
        // SAFETY: `T` is `f32` (checked).
        .then(|| unsafe { &*(x as *const [T] as *const [f32]) })
}

fn as_f32_mut<T: Element>(x: &mut [T]) -> Option<&mut [f32]> {
    (std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>())
        // SAFETY: `T` is `f32` (checked).
        .then(|| unsafe { &mut *(x as *mut [T] as *mut [f32]) })
}

fn view_mut<T>(buf: &mut [T], rows: usize, cols: usize) -> ArrayViewMut2<'_, T> {
    ArrayViewMut2::from_shape((rows, cols), &mut buf[..rows * cols]).expect("buffer fits")
}

fn view<T>(buf: &[T], rows: usize, cols: usize) -> ArrayView2<'_, T> {
    ArrayView2::from_shape((rows, cols), &buf[..rows * cols]).expect("buffer fits")
}

/// The forward pass: the output `[batch.., L, Ev]` and each query's log-sum-exp of its
/// logits `[batch.., L]` (`-inf` for a query whose every key is masked).
pub(crate) fn attention_forward<T: Element>(x: &AttnInputs<'_, T>) -> (ArrayD<T>, ArrayD<T>) {
    let (l, s, ev) = (x.l, x.s, x.ev);
    let nb = x.count();
    let mut out = vec![T::zero(); nb * l * ev];
    let mut lse = vec![T::neg_infinity(); nb * l];
    if nb * l * ev > 0 && s > 0 {
        let threads = x.threads(nb * l.div_ceil(BQ));
        out.par_chunks_mut(l * ev)
            .zip(lse.par_chunks_mut(l))
            .enumerate()
            .for_each(|(b, (out_b, lse_b))| {
                let (q, k, v, mask) = x.matrices(b);
                out_b
                    .par_chunks_mut(BQ * ev)
                    .zip(lse_b.par_chunks_mut(BQ))
                    .enumerate()
                    .for_each(|(blk, (o, lse))| {
                        let (i0, rows) = (blk * BQ, lse.len());
                        let (lo, hi) = x.key_range(mask.as_ref(), i0, rows);
                        if lo >= hi {
                            return; // every key masked: zero output, lse -inf
                        }
                        let nk = hi - lo;
                        let mut sc = vec![T::zero(); rows * nk];
                        gemm_into(
                            &q.slice(s![i0..i0 + rows, ..]),
                            &k.slice(s![lo..hi, ..]).t(),
                            &mut view_mut(&mut sc, rows, nk),
                            threads,
                        );
                        x.logits(&mut sc, mask.as_ref(), i0, lo, nk);
                        let mut p = vec![T::zero(); rows * nk];
                        for (r, (row, prow)) in sc.chunks_mut(nk).zip(p.chunks_mut(nk)).enumerate()
                        {
                            let m = row.iter().fold(T::neg_infinity(), |a, &b| a.max(b));
                            if m == T::neg_infinity() {
                                prow.fill(T::zero());
                                continue;
                            }
                            row.iter_mut().for_each(|v| *v -= m);
                            exp_into(row, prow);
                            let sum: T = prow.iter().copied().sum();
                            prow.iter_mut().for_each(|v| *v = *v / sum);
                            lse[r] = m + sum.ln();
                        }
                        gemm_into(
                            &view(&p, rows, nk),
                            &v.slice(s![lo..hi, ..]),
                            &mut view_mut(o, rows, ev),
                            threads,
                        );
                    });
            });
    }
    let out = ArrayD::from_shape_vec(x.shape(l, ev), out).expect("one per position");
    let mut lse_shape = x.batch.clone();
    lse_shape.push(l);
    let lse = ArrayD::from_shape_vec(IxDyn(&lse_shape), lse).expect("one per query");
    (out, lse)
}

/// The backward pass: the gradients of `q`, `k` and `v` in the broadcast batch shape
/// (`[batch.., L, E]`, `[batch.., S, E]`, `[batch.., S, Ev]`; the op sums them to the
/// inputs' shapes), given the output, the log-sum-exps and the output's gradient `dout`.
pub(crate) fn attention_backward<T: Element>(
    x: &AttnInputs<'_, T>,
    out: &ArrayViewD<'_, T>,
    lse: &ArrayViewD<'_, T>,
    dout: &ArrayViewD<'_, T>,
) -> (ArrayD<T>, ArrayD<T>, ArrayD<T>) {
    let (l, s, e, ev) = (x.l, x.s, x.e, x.ev);
    let nb = x.count();
    let mut dq = vec![T::zero(); nb * l * e];
    let mut dk = vec![T::zero(); nb * s * e];
    let mut dv = vec![T::zero(); nb * s * ev];
    if nb * l * s * e * ev > 0 {
        let threads = x.threads(nb);
        dq.par_chunks_mut(l * e)
            .zip(dk.par_chunks_mut(s * e))
            .zip(dv.par_chunks_mut(s * ev))
            .enumerate()
            .for_each(|(b, ((dq_b, dk_b), dv_b))| {
                let (q, k, v, mask) = x.matrices(b);
                let o = matrix_of(out, &x.batch, l, ev, b);
                let g = matrix_of(dout, &x.batch, l, ev, b);
                let lse_b = lse
                    .to_shape((nb, l))
                    .expect("lse is [batch.., L]")
                    .index_axis(Axis(0), b)
                    .to_vec();
                // D_i = rowsum(dO * O) = rowsum(dP * P).
                let d: Vec<T> = g
                    .rows()
                    .into_iter()
                    .zip(o.rows())
                    .map(|(g, o)| g.iter().zip(o.iter()).map(|(&a, &b)| a * b).sum())
                    .collect();
                let mut p = vec![T::zero(); BQ.min(l) * s];
                let mut dp = vec![T::zero(); BQ.min(l) * s];
                let mut tmp = vec![T::zero(); s * e.max(ev)];
                for i0 in (0..l).step_by(BQ) {
                    let rows = BQ.min(l - i0);
                    let (lo, hi) = x.key_range(mask.as_ref(), i0, rows);
                    if lo >= hi {
                        continue; // every key masked: zero gradients
                    }
                    let nk = hi - lo;
                    let (q_blk, g_blk) = (
                        q.slice(s![i0..i0 + rows, ..]),
                        g.slice(s![i0..i0 + rows, ..]),
                    );
                    let (k_blk, v_blk) = (k.slice(s![lo..hi, ..]), v.slice(s![lo..hi, ..]));
                    // p = exp(q k^T * scale + mask - lse)
                    gemm_into(
                        &q_blk,
                        &k_blk.t(),
                        &mut view_mut(&mut dp, rows, nk),
                        threads,
                    );
                    x.logits(&mut dp[..rows * nk], mask.as_ref(), i0, lo, nk);
                    for (r, row) in dp[..rows * nk].chunks_mut(nk).enumerate() {
                        let m = lse_b[i0 + r];
                        if m == T::neg_infinity() {
                            row.fill(T::neg_infinity());
                        } else {
                            row.iter_mut().for_each(|v| *v -= m);
                        }
                    }
                    exp_into(&dp[..rows * nk], &mut p[..rows * nk]);
                    // dV[lo..hi] += p^T dO
                    gemm_into(
                        &view(&p, rows, nk).t(),
                        &g_blk,
                        &mut view_mut(&mut tmp, nk, ev),
                        threads,
                    );
                    add_rows(&mut dv_b[lo * ev..hi * ev], &tmp[..nk * ev]);
                    // dP = dO V^T; dS = p * (dP - D) * scale
                    gemm_into(
                        &g_blk,
                        &v_blk.t(),
                        &mut view_mut(&mut dp, rows, nk),
                        threads,
                    );
                    for (r, (ds, p)) in dp[..rows * nk].chunks_mut(nk).zip(p.chunks(nk)).enumerate()
                    {
                        let di = d[i0 + r];
                        for (ds, &p) in ds.iter_mut().zip(p) {
                            *ds = p * (*ds - di) * x.scale;
                        }
                    }
                    let ds = view(&dp, rows, nk);
                    // dQ = dS K (each query block visits all its keys at once: no sum)
                    gemm_into(
                        &ds,
                        &k_blk,
                        &mut view_mut(&mut dq_b[i0 * e..], rows, e),
                        threads,
                    );
                    // dK[lo..hi] += dS^T Q
                    gemm_into(&ds.t(), &q_blk, &mut view_mut(&mut tmp, nk, e), threads);
                    add_rows(&mut dk_b[lo * e..hi * e], &tmp[..nk * e]);
                }
            });
    }
    let shape =
        |rows, cols, v| ArrayD::from_shape_vec(x.shape(rows, cols), v).expect("one per position");
    (shape(l, e, dq), shape(s, e, dk), shape(s, ev, dv))
}

fn add_rows<T: Element>(acc: &mut [T], add: &[T]) {
    for (a, &b) in acc.iter_mut().zip(add) {
        *a += b;
    }
}
