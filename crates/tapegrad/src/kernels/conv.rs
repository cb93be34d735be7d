//! Convolution, pooling and dropout kernels over NCHW arrays: im2col / col2im + GEMM for
//! `conv2d` and its two gradients, max pooling with saved arg-max indices (and the
//! gather / scatter pair that uses them), separable window averages (average and
//! adaptive average pooling, and their transpose), and seeded dropout masks.
//!
//! Every kernel runs in parallel over the batch (or over the `N * C` planes) with rayon.
//! Pure arrays: no knowledge of the tape.

use ndarray::linalg::general_mat_mul;
use ndarray::{ArcArray, ArrayD, ArrayView2, ArrayViewD, ArrayViewMut2, IxDyn};
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

use crate::dtype::Element;

/// The geometry of one `conv2d`: input `[n, c, h, w]`, weight `[o, c / groups, kh, kw]`,
/// output `[n, o, ho, wo]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ConvGeom {
    pub(crate) n: usize,
    pub(crate) c: usize,
    pub(crate) h: usize,
    pub(crate) w: usize,
    pub(crate) o: usize,
    pub(crate) kh: usize,
    pub(crate) kw: usize,
    pub(crate) stride: [usize; 2],
    pub(crate) padding: [usize; 2],
    pub(crate) dilation: [usize; 2],
    pub(crate) groups: usize,
    pub(crate) ho: usize,
    pub(crate) wo: usize,
}

impl ConvGeom {
    /// Input channels per group.
    fn cg(&self) -> usize {
        self.c / self.groups
    }
    /// Output channels per group.
    fn og(&self) -> usize {
        self.o / self.groups
    }
    /// Rows of the column matrix: one per (input channel of the group, kernel tap).
    fn k(&self) -> usize {
        self.cg() * self.kh * self.kw
    }
    /// Columns of the column matrix: one per output pixel.
    fn l(&self) -> usize {
        self.ho * self.wo
    }
    /// A 1x1 kernel with unit stride and no padding: the input plane *is* the column
    /// matrix, so im2col is skipped.
    fn pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.stride == [1, 1] && self.padding == [0, 0]
    }
    pub(crate) fn input_shape(&self) -> [usize; 4] {
        [self.n, self.c, self.h, self.w]
    }
    pub(crate) fn weight_shape(&self) -> [usize; 4] {
        [self.o, self.cg(), self.kh, self.kw]
    }
    pub(crate) fn output_shape(&self) -> [usize; 4] {
        [self.n, self.o, self.ho, self.wo]
    }
}

/// Output length along one axis: `floor((size + 2p - d(k-1) - 1) / s) + 1`, or `None`
/// when the dilated kernel does not fit in the padded input.
pub(crate) fn out_size(size: usize, k: usize, s: usize, p: usize, d: usize) -> Option<usize> {
    let span = d * (k - 1) + 1;
    let padded = size + 2 * p;
    (padded >= span).then(|| (padded - span) / s + 1)
}

/// The output positions `lo..hi` along one axis whose input position
/// `pos * s + koff - p` lies inside `0..size`.
fn valid_range(size: usize, out: usize, koff: usize, s: usize, p: usize) -> (usize, usize) {
    let lo = if p > koff { (p - koff).div_ceil(s) } else { 0 };
    let hi = if size + p > koff {
        ((size - 1 + p - koff) / s + 1).min(out)
    } else {
        0
    };
    (lo.min(hi), hi)
}

/// Unfolds one group of one image (`cg` planes of `h x w`) into the column matrix
/// `col[k, l]`: row `(c, ki, kj)` holds, for each output pixel, the input value under
/// that kernel tap (zero in the padding).
fn im2col<T: Element>(x: &[T], g: &ConvGeom, col: &mut [T]) {
    let (h, w, ho, wo, l) = (g.h, g.w, g.ho, g.wo, g.l());
    let ([sh, sw], [ph, pw], [dh, dw]) = (g.stride, g.padding, g.dilation);
    let mut row = 0;
    for plane in x.chunks_exact(h * w) {
        for ki in 0..g.kh {
            let (y0, y1) = valid_range(h, ho, ki * dh, sh, ph);
            for kj in 0..g.kw {
                let dst = &mut col[row * l..(row + 1) * l];
                let (x0, x1) = valid_range(w, wo, kj * dw, sw, pw);
                dst[..y0 * wo].fill(T::zero());
                dst[y1 * wo..].fill(T::zero());
                for oy in y0..y1 {
                    let iy = oy * sh + ki * dh - ph;
                    let src = &plane[iy * w..(iy + 1) * w];
                    let d = &mut dst[oy * wo..(oy + 1) * wo];
                    d[..x0].fill(T::zero());
                    d[x1..].fill(T::zero());
                    if x0 < x1 {
                        let first = x0 * sw + kj * dw - pw;
                        if sw == 1 {
                            d[x0..x1].copy_from_slice(&src[first..first + (x1 - x0)]);
                        } else {
                            for (k, v) in d[x0..x1].iter_mut().enumerate() {
                                *v = src[first + k * sw];
                            }
                        }
                    }
                }
                row += 1;
            }
        }
    }
}

/// The transpose of [`im2col`]: adds every entry of `col[k, l]` back onto the input
/// position it was read from (`dx` must start zeroed, or hold what to add to).
fn col2im<T: Element>(col: &[T], g: &ConvGeom, dx: &mut [T]) {
    let (h, w, ho, wo, l) = (g.h, g.w, g.ho, g.wo, g.l());
    let ([sh, sw], [ph, pw], [dh, dw]) = (g.stride, g.padding, g.dilation);
    let mut row = 0;
    for plane in dx.chunks_exact_mut(h * w) {
        for ki in 0..g.kh {
            let (y0, y1) = valid_range(h, ho, ki * dh, sh, ph);
            for kj in 0..g.kw {
                let src = &col[row * l..(row + 1) * l];
                let (x0, x1) = valid_range(w, wo, kj * dw, sw, pw);
                if x0 < x1 {
                    for oy in y0..y1 {
                        let iy = oy * sh + ki * dh - ph;
                        let d = &mut plane[iy * w..(iy + 1) * w];
                        let s = &src[oy * wo + x0..oy * wo + x1];
                        let first = x0 * sw + kj * dw - pw;
                        for (k, &v) in s.iter().enumerate() {
                            d[first + k * sw] += v;
                        }
                    }
                }
                row += 1;
            }
        }
    }
}

fn contiguous<'a, T: Element>(a: &'a ArrayViewD<'_, T>) -> std::borrow::Cow<'a, [T]> {
    match a.as_slice() {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(a.iter().copied().collect()),
    }
}

fn mat<T>(data: &[T], rows: usize, cols: usize) -> ArrayView2<'_, T> {
    ArrayView2::from_shape((rows, cols), data).expect("sizes computed from the geometry")
}

fn mat_mut<T>(data: &mut [T], rows: usize, cols: usize) -> ArrayViewMut2<'_, T> {
    ArrayViewMut2::from_shape((rows, cols), data).expect("sizes computed from the geometry")
}

/// `y[n, o] = b[o] + sum_c w[o, c] (*) x[n, c]` per group: im2col, then one GEMM
/// `w_g [og, k] @ col [k, l]` per image and group, images in parallel.
pub(crate) fn conv2d_forward<T: Element>(
    x: &ArrayViewD<'_, T>,
    wt: &ArrayViewD<'_, T>,
    bias: Option<&ArrayViewD<'_, T>>,
    g: &ConvGeom,
) -> ArcArray<T, IxDyn> {
    let (xs, ws) = (contiguous(x), contiguous(wt));
    let bs = bias.map(contiguous);
    let (cg, og, k, l, hw) = (g.cg(), g.og(), g.k(), g.l(), g.h * g.w);
    let mut out = vec![T::zero(); g.n * g.o * l];
    out.par_chunks_mut(g.o * l).enumerate().for_each_init(
        || vec![T::zero(); if g.pointwise() { 0 } else { k * l }],
        |col, (i, y)| {
            for grp in 0..g.groups {
                let xg = &xs[(i * g.c + grp * cg) * hw..][..cg * hw];
                let cols = if g.pointwise() {
                    xg
                } else {
                    im2col(xg, g, col);
                    &col[..]
                };
                let a = mat(&ws[grp * og * k..][..og * k], og, k);
                let yg = &mut y[grp * og * l..][..og * l];
                // The bias is written first and the GEMM accumulates onto it (beta = 1).
                let beta = match &bs {
                    Some(b) => {
                        for (row, &bv) in yg.chunks_exact_mut(l).zip(&b[grp * og..(grp + 1) * og]) {
                            row.fill(bv);
                        }
                        T::one()
                    }
                    None => T::zero(),
                };
                general_mat_mul(
                    T::one(),
                    &a,
                    &mat(cols, k, l),
                    beta,
                    &mut mat_mut(yg, og, l),
                );
            }
        },
    );
    ArrayD::from_shape_vec(IxDyn(&g.output_shape()), out)
        .expect("output size")
        .into_shared()
}

/// The input gradient (a transposed convolution): `col = w_g^T [k, og] @ gy_g [og, l]`,
/// folded back with col2im, images in parallel.
pub(crate) fn conv2d_input_grad<T: Element>(
    gy: &ArrayViewD<'_, T>,
    wt: &ArrayViewD<'_, T>,
    g: &ConvGeom,
) -> ArcArray<T, IxDyn> {
    let (gs, ws) = (contiguous(gy), contiguous(wt));
    let (cg, og, k, l, hw) = (g.cg(), g.og(), g.k(), g.l(), g.h * g.w);
    let mut dx = vec![T::zero(); g.n * g.c * hw];
    dx.par_chunks_mut(g.c * hw).enumerate().for_each_init(
        || vec![T::zero(); k * l],
        |col, (i, dxi)| {
            for grp in 0..g.groups {
                let a = mat(&ws[grp * og * k..][..og * k], og, k);
                let b = mat(&gs[(i * g.o + grp * og) * l..][..og * l], og, l);
                let dst = &mut dxi[grp * cg * hw..][..cg * hw];
                if g.pointwise() {
                    // The column matrix is the input plane itself.
                    general_mat_mul(T::one(), &a.t(), &b, T::one(), &mut mat_mut(dst, k, l));
                } else {
                    general_mat_mul(T::one(), &a.t(), &b, T::zero(), &mut mat_mut(col, k, l));
                    col2im(col, g, dst);
                }
            }
        },
    );
    ArrayD::from_shape_vec(IxDyn(&g.input_shape()), dx)
        .expect("input size")
        .into_shared()
}

/// The weight gradient: `dw_g += gy_g [og, l] @ col^T [l, k]` summed over images. The
/// batch is cut into at most 8 fixed slices summed in parallel, then the partial sums
/// are added in order, so the result does not depend on thread scheduling.
pub(crate) fn conv2d_weight_grad<T: Element>(
    x: &ArrayViewD<'_, T>,
    gy: &ArrayViewD<'_, T>,
    g: &ConvGeom,
) -> ArcArray<T, IxDyn> {
    let (xs, gs) = (contiguous(x), contiguous(gy));
    let (cg, og, k, l, hw) = (g.cg(), g.og(), g.k(), g.l(), g.h * g.w);
    let per = g.n.div_ceil(g.n.clamp(1, 8)).max(1);
    let starts: Vec<usize> = (0..g.n).step_by(per).collect();
    let partials: Vec<Vec<T>> = starts
        .par_iter()
        .map(|&start| {
            let mut acc = vec![T::zero(); g.o * k];
            let mut col = vec![T::zero(); if g.pointwise() { 0 } else { k * l }];
            for i in start..(start + per).min(g.n) {
                for grp in 0..g.groups {
                    let xg = &xs[(i * g.c + grp * cg) * hw..][..cg * hw];
                    let cols = if g.pointwise() {
                        xg
                    } else {
                        im2col(xg, g, &mut col);
                        &col[..]
                    };
                    let b = mat(&gs[(i * g.o + grp * og) * l..][..og * l], og, l);
                    let mut dst = mat_mut(&mut acc[grp * og * k..][..og * k], og, k);
                    general_mat_mul(T::one(), &b, &mat(cols, k, l).t(), T::one(), &mut dst);
                }
            }
            acc
        })
        .collect();
    let mut total = vec![T::zero(); g.o * k];
    for p in &partials {
        for (t, &v) in total.iter_mut().zip(p) {
            *t += v;
        }
    }
    ArrayD::from_shape_vec(IxDyn(&g.weight_shape()), total)
        .expect("weight size")
        .into_shared()
}

/// `out[c] = sum over n and the spatial positions of g[n, c, ...]`: the bias gradient.
pub(crate) fn channel_sum<T: Element>(g: &ArrayViewD<'_, T>) -> ArcArray<T, IxDyn> {
    let gs = contiguous(g);
    let (n, c) = (g.shape()[0], g.shape()[1]);
    let l = gs.len().checked_div(n * c).unwrap_or(0);
    let mut out = vec![T::zero(); c];
    for (o, ch) in out.iter_mut().enumerate() {
        for i in 0..n {
            *ch += gs[(i * c + o) * l..][..l].iter().copied().sum::<T>();
        }
    }
    ArrayD::from_shape_vec(IxDyn(&[c]), out)
        .expect("channel count")
        .into_shared()
}

/// The geometry of a max pooling window over `[n, c, h, w]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PoolGeom {
    pub(crate) planes: usize,
    pub(crate) h: usize,
    pub(crate) w: usize,
    pub(crate) kernel: [usize; 2],
    pub(crate) stride: [usize; 2],
    pub(crate) padding: [usize; 2],
    pub(crate) dilation: [usize; 2],
    pub(crate) ho: usize,
    pub(crate) wo: usize,
}

/// Max pooling: the value and the flat in-plane index (`iy * w + ix`) of the maximum of
/// every window. Padding never wins (it is `-inf`); on ties the first position in
/// row-major window order wins; a NaN wins (the last one, as PyTorch).
pub(crate) fn max_pool2d<T: Element>(x: &ArrayViewD<'_, T>, p: &PoolGeom) -> (Vec<T>, Vec<u32>) {
    let xs = contiguous(x);
    let (hw, lo) = (p.h * p.w, p.ho * p.wo);
    // The in-bounds input positions of each window, per axis, computed once.
    let taps = |size: usize, out: usize, a: usize| -> Vec<Vec<usize>> {
        (0..out)
            .map(|o| {
                (0..p.kernel[a])
                    .filter_map(|k| (o * p.stride[a] + k * p.dilation[a]).checked_sub(p.padding[a]))
                    .filter(|&i| i < size)
                    .collect()
            })
            .collect()
    };
    let (rows, cols) = (taps(p.h, p.ho, 0), taps(p.w, p.wo, 1));
    let mut out = vec![T::zero(); p.planes * lo];
    let mut idx = vec![0u32; p.planes * lo];
    out.par_chunks_mut(lo)
        .zip(idx.par_chunks_mut(lo))
        .enumerate()
        .for_each(|(pl, (o, ix))| {
            let plane = &xs[pl * hw..(pl + 1) * hw];
            if p.padding == [0, 0] {
                max_pool_unpadded(plane, p, o, ix);
                return;
            }
            for (oy, ry) in rows.iter().enumerate() {
                for (ox, cx) in cols.iter().enumerate() {
                    // Padding <= kernel / 2, so every window has an in-bounds position.
                    let mut at = ry[0] * p.w + cx[0];
                    let mut best = plane[at];
                    for &iy in ry {
                        let row = &plane[iy * p.w..(iy + 1) * p.w];
                        for &jx in cx {
                            // Branch-free select (random data mispredicts a branch half
                            // the time); a NaN always takes over, as in PyTorch.
                            let v = row[jx];
                            let take = (v > best) | v.is_nan();
                            best = if take { v } else { best };
                            at = if take { iy * p.w + jx } else { at };
                        }
                    }
                    o[oy * p.wo + ox] = best;
                    ix[oy * p.wo + ox] = at as u32;
                }
            }
        });
    (out, idx)
}

/// Max pooling of one plane without padding: every tap is in bounds, so the loop runs
/// tap by tap over a whole output row, with no dependency between neighbouring outputs
/// (the CPU overlaps them; a per-window loop is one long compare-select chain).
fn max_pool_unpadded<T: Element>(plane: &[T], p: &PoolGeom, o: &mut [T], ix: &mut [u32]) {
    let ([sh, sw], [dh, dw]) = (p.stride, p.dilation);
    for oy in 0..p.ho {
        let (best, at) = (
            &mut o[oy * p.wo..(oy + 1) * p.wo],
            &mut ix[oy * p.wo..(oy + 1) * p.wo],
        );
        for ky in 0..p.kernel[0] {
            let iy = oy * sh + ky * dh;
            let row = &plane[iy * p.w..(iy + 1) * p.w];
            for kx in 0..p.kernel[1] {
                let first = ky == 0 && kx == 0;
                for (ox, (b, a)) in best.iter_mut().zip(at.iter_mut()).enumerate() {
                    let jx = ox * sw + kx * dw;
                    let v = row[jx];
                    // A NaN always takes over, as in PyTorch; ties keep the first.
                    let take = first | (v > *b) | v.is_nan();
                    *b = if take { v } else { *b };
                    *a = if take { (iy * p.w + jx) as u32 } else { *a };
                }
            }
        }
    }
}

/// `out[plane, j] = x[plane, idx[plane, j]]`: the values at saved pooling indices
/// (`x` has `planes` planes of `in_len` elements, `idx` has `planes * out_len`).
pub(crate) fn plane_gather<T: Element>(
    x: &ArrayViewD<'_, T>,
    idx: &[u32],
    in_len: usize,
    out_len: usize,
) -> Vec<T> {
    let xs = contiguous(x);
    let mut out = vec![T::zero(); idx.len()];
    if out_len == 0 || in_len == 0 {
        return out;
    }
    out.par_chunks_mut(out_len)
        .zip(idx.par_chunks(out_len))
        .zip(xs.par_chunks(in_len))
        .for_each(|((o, ix), plane)| {
            for (v, &i) in o.iter_mut().zip(ix) {
                *v = plane[i as usize];
            }
        });
    out
}

/// `out = 0; out[plane, idx[plane, j]] += g[plane, j]`: the transpose of [`plane_gather`].
pub(crate) fn plane_scatter<T: Element>(
    g: &ArrayViewD<'_, T>,
    idx: &[u32],
    in_len: usize,
    out_len: usize,
) -> Vec<T> {
    let gs = contiguous(g);
    let planes = idx.len().checked_div(out_len).unwrap_or(0);
    let mut out = vec![T::zero(); planes * in_len];
    if out_len == 0 || in_len == 0 {
        return out;
    }
    out.par_chunks_mut(in_len)
        .zip(gs.par_chunks(out_len))
        .zip(idx.par_chunks(out_len))
        .for_each(|((o, gv), ix)| {
            for (&v, &i) in gv.iter().zip(ix) {
                o[i as usize] += v;
            }
        });
    out
}

/// One output window along an axis: input positions `start..end`, each weighted `scale`.
pub(crate) type Window = (usize, usize, f64);

/// Separable window averages over the last two axes: `out[i, j] = rows[i].scale *
/// cols[j].scale * sum of x over rows[i] x cols[j]` (average pooling and adaptive
/// average pooling are both of this form).
pub(crate) fn window_avg<T: Element>(
    x: &ArrayViewD<'_, T>,
    h: usize,
    w: usize,
    rows: &[Window],
    cols: &[Window],
) -> Vec<T> {
    let xs = contiguous(x);
    let (ho, wo) = (rows.len(), cols.len());
    let planes = xs.len() / (h * w).max(1);
    let mut out = vec![T::zero(); planes * ho * wo];
    out.par_chunks_mut((ho * wo).max(1))
        .enumerate()
        .for_each_init(
            || vec![T::zero(); h * wo],
            |tmp, (pl, o)| {
                let plane = &xs[pl * h * w..(pl + 1) * h * w];
                // tmp[r, j] = scale_j * sum_{c in cols[j]} x[r, c]
                for r in 0..h {
                    let src = &plane[r * w..(r + 1) * w];
                    for (j, &(c0, c1, s)) in cols.iter().enumerate() {
                        let sum: T = src[c0..c1].iter().copied().sum();
                        tmp[r * wo + j] = sum * T::of(s);
                    }
                }
                for (i, &(r0, r1, s)) in rows.iter().enumerate() {
                    let dst = &mut o[i * wo..(i + 1) * wo];
                    dst.fill(T::zero());
                    for r in r0..r1 {
                        for (d, &t) in dst.iter_mut().zip(&tmp[r * wo..(r + 1) * wo]) {
                            *d += t;
                        }
                    }
                    let s = T::of(s);
                    dst.iter_mut().for_each(|d| *d *= s);
                }
            },
        );
    out
}

/// The transpose of [`window_avg`]: spreads each `g[i, j]` (times both scales) over its
/// window.
pub(crate) fn window_avg_transpose<T: Element>(
    g: &ArrayViewD<'_, T>,
    h: usize,
    w: usize,
    rows: &[Window],
    cols: &[Window],
) -> Vec<T> {
    let gs = contiguous(g);
    let (ho, wo) = (rows.len(), cols.len());
    let planes = gs.len() / (ho * wo).max(1);
    let mut out = vec![T::zero(); planes * h * w];
    out.par_chunks_mut((h * w).max(1))
        .enumerate()
        .for_each_init(
            || vec![T::zero(); h * wo],
            |tmp, (pl, o)| {
                let gp = &gs[pl * ho * wo..(pl + 1) * ho * wo];
                // tmp[r, j] = sum_{i: r in rows[i]} scale_i * g[i, j]
                tmp.fill(T::zero());
                for (i, &(r0, r1, s)) in rows.iter().enumerate() {
                    let s = T::of(s);
                    for r in r0..r1 {
                        for (t, &v) in tmp[r * wo..(r + 1) * wo]
                            .iter_mut()
                            .zip(&gp[i * wo..(i + 1) * wo])
                        {
                            *t += v * s;
                        }
                    }
                }
                for r in 0..h {
                    let dst = &mut o[r * w..(r + 1) * w];
                    for (j, &(c0, c1, s)) in cols.iter().enumerate() {
                        let v = tmp[r * wo + j] * T::of(s);
                        for d in &mut dst[c0..c1] {
                            *d += v;
                        }
                    }
                }
            },
        );
    out
}

/// A dropout mask of `shape`: each element is `1 / (1 - p)` with probability `1 - p`
/// and 0 otherwise, drawn from a generator seeded with `seed` (same seed, same mask).
/// `p = 1` gives all zeros.
pub(crate) fn dropout_mask<T: Element>(shape: &[usize], p: f64, seed: u64) -> ArcArray<T, IxDyn> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let keep = if p < 1.0 {
        T::of(1.0 / (1.0 - p))
    } else {
        T::zero()
    };
    let n: usize = shape.iter().product();
    let v: Vec<T> = (0..n)
        .map(|_| {
            if rng.gen::<f64>() >= p {
                keep
            } else {
                T::zero()
            }
        })
        .collect();
    ArrayD::from_shape_vec(IxDyn(shape), v)
        .expect("mask size")
        .into_shared()
}
