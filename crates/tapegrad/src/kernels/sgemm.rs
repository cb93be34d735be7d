//! `f32` matrix product with an AVX-512 micro-kernel (selected at run time).
//!
//! The `gemm` crate's AVX-512 kernels need a nightly compiler, and the Debian OpenBLAS
//! uses AVX2 kernels on this CPU, so both stop at half of what AVX-512 hardware can do.
//! AVX-512 intrinsics are stable since Rust 1.89, so this is the classic Goto/BLIS
//! layout, written out: `B` is packed in panels of `KC x NR` (`NR` = 32 columns, two
//! vectors), `A` in slivers of `MR x KC` (`MR` = 12 rows); the micro-kernel keeps a
//! 12 x 32 tile of `C` in 24 vector registers and does 24 FMAs per step of `k`, each
//! with an `A` value broadcast from memory. Edge tiles go through a small buffer.
//! Threads split the columns (or the rows, when there are few columns) of `C`.

#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;
use std::cell::RefCell;

/// Rows of a micro-tile.
const MR: usize = 12;
/// Columns of a micro-tile (two 16-lane vectors).
const NR: usize = 32;
/// Depth of a packed block (a 12 x 256 sliver of `A` is 12 KiB: it stays in L1).
const KC: usize = 256;
/// Rows of `A` packed at once (a multiple of `MR`; 96 x 256 floats = 96 KiB, in L2).
const MC: usize = 96;
/// Columns of `B` packed at once (256 x 512 floats = 512 KiB, in L2).
const NC: usize = 512;

/// A strided matrix operand: element `(i, j)` is at `ptr + i * rs + j * cs`.
#[derive(Clone, Copy)]
pub(crate) struct Mat {
    pub(crate) ptr: *const f32,
    pub(crate) rs: isize,
    pub(crate) cs: isize,
}

/// The output matrix, written through a raw pointer.
#[derive(Clone, Copy)]
pub(crate) struct MatMut {
    pub(crate) ptr: *mut f32,
    pub(crate) rs: isize,
    pub(crate) cs: isize,
}

// SAFETY: the pointers are only dereferenced inside `sgemm`, whose caller guarantees they
// are valid; threads write disjoint parts of the output.
unsafe impl Send for Mat {}
unsafe impl Sync for Mat {}
unsafe impl Send for MatMut {}
unsafe impl Sync for MatMut {}

impl Mat {
    fn at(self, i: usize, j: usize) -> Mat {
        // SAFETY (of later reads): offsets stay inside the matrix the caller described.
        Mat {
            ptr: self
                .ptr
                .wrapping_offset(i as isize * self.rs + j as isize * self.cs),
            ..self
        }
    }
}

impl MatMut {
    fn at(self, i: usize, j: usize) -> MatMut {
        MatMut {
            ptr: self
                .ptr
                .wrapping_offset(i as isize * self.rs + j as isize * self.cs),
            ..self
        }
    }
}

/// `c = a @ b` for `a: m x k`, `b: k x n`, `c: m x n`, using up to `threads` threads of
/// the rayon pool.
///
/// # Safety
/// The CPU must support AVX-512F; the three descriptions must be valid for their shapes
/// (every element in bounds); `c` must not overlap `a` or `b`, and no element of `c` may
/// be reachable from two index pairs.
pub(crate) unsafe fn sgemm(
    m: usize,
    n: usize,
    k: usize,
    a: Mat,
    b: Mat,
    c: MatMut,
    threads: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    let threads = threads.max(1).min(if n >= m {
        n.div_ceil(NR)
    } else {
        m.div_ceil(MR)
    });
    if threads == 1 || (m * n * k) < 64 * 64 * 64 {
        // SAFETY: forwarded from the caller.
        unsafe { sgemm_serial(m, n, k, a, b, c) };
        return;
    }
    // Split the longer side of C into `threads` parts aligned to the micro-tile.
    let (split_cols, len, unit) = if n >= m {
        (true, n, NR)
    } else {
        (false, m, MR)
    };
    let per = len.div_ceil(threads).div_ceil(unit) * unit;
    rayon::scope(|s| {
        for start in (0..len).step_by(per) {
            let size = per.min(len - start);
            s.spawn(move |_| {
                // SAFETY: each part is a disjoint block of C over the same valid operands.
                unsafe {
                    if split_cols {
                        sgemm_serial(m, size, k, a, b.at(0, start), c.at(0, start));
                    } else {
                        sgemm_serial(size, n, k, a.at(start, 0), b, c.at(start, 0));
                    }
                }
            });
        }
    });
}

/// Single-threaded [`sgemm`].
///
/// # Safety
/// As for [`sgemm`].
unsafe fn sgemm_serial(m: usize, n: usize, k: usize, a: Mat, b: Mat, c: MatMut) {
    if k == 0 {
        for i in 0..m {
            for j in 0..n {
                // SAFETY: (i, j) is inside C.
                unsafe { *c.at(i, j).ptr = 0.0 };
            }
        }
        return;
    }
    PACKS.with(|packs| match packs.try_borrow_mut() {
        Ok(mut packs) => {
            let (bp, ap) = &mut *packs;
            // SAFETY: forwarded from the caller.
            unsafe { sgemm_blocks(m, n, k, a, b, c, bp, ap) }
        }
        // Not reachable today (nothing inside calls back into sgemm on this thread);
        // fresh buffers keep it correct if that changes.
        // SAFETY: forwarded from the caller.
        Err(_) => unsafe { sgemm_blocks(m, n, k, a, b, c, &mut Vec::new(), &mut Vec::new()) },
    });
}

thread_local! {
    /// Each thread's packing buffers for `B` panels and `A` slivers, reused from call to
    /// call: allocating (and zeroing) 600 KiB per product cost more than the small
    /// products of attention themselves.
    static PACKS: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Grows `buf` to at least `len` floats. Old contents are kept and new ones zeroed, but
/// the packing routines overwrite every float they hand to the kernel anyway.
fn at_least(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    &mut buf[..len]
}

/// The blocked loops of [`sgemm_serial`] over packing buffers `bp` and `ap`.
///
/// # Safety
/// As for [`sgemm`]; `k > 0`.
#[allow(clippy::too_many_arguments)]
unsafe fn sgemm_blocks(
    m: usize,
    n: usize,
    k: usize,
    a: Mat,
    b: Mat,
    c: MatMut,
    bp: &mut Vec<f32>,
    ap: &mut Vec<f32>,
) {
    let bp = at_least(bp, KC.min(k) * NC.min(n).next_multiple_of(NR));
    let ap = at_least(ap, MC.min(m).next_multiple_of(MR) * KC.min(k));
    for jc in (0..n).step_by(NC) {
        let nc = NC.min(n - jc);
        for pc in (0..k).step_by(KC) {
            let kc = KC.min(k - pc);
            pack_b(kc, nc, b.at(pc, jc), bp);
            for ic in (0..m).step_by(MC) {
                let mc = MC.min(m - ic);
                pack_a(mc, kc, a.at(ic, pc), ap);
                for jr in (0..nc).step_by(NR) {
                    for ir in (0..mc).step_by(MR) {
                        let tile = c.at(ic + ir, jc + jr);
                        let (mr, nr) = (MR.min(mc - ir), NR.min(nc - jr));
                        // SAFETY: the packed slivers hold kc * MR and kc * NR floats; the
                        // tile's mr x nr elements are inside C; AVX-512F by contract.
                        unsafe {
                            kernel(
                                kc,
                                ap[ir * kc..].as_ptr(),
                                bp[jr * kc..].as_ptr(),
                                tile,
                                mr,
                                nr,
                                pc > 0,
                            );
                        }
                    }
                }
            }
        }
    }
}

/// Packs `b[0..kc, 0..nc]` as slivers of `NR` columns, each `kc` rows of `NR` floats,
/// zero-padded on the right. Row-major `B` is copied row by row; column-major `B` (a
/// transposed view, like `w.t()`) is transposed 16 x 16 floats at a time.
fn pack_b(kc: usize, nc: usize, b: Mat, out: &mut [f32]) {
    for (s, jr) in (0..nc).step_by(NR).enumerate() {
        let nr = NR.min(nc - jr);
        let sliver = &mut out[s * kc * NR..(s + 1) * kc * NR];
        if nr < NR {
            sliver.fill(0.0);
        }
        let src = b.at(0, jr);
        if b.cs == 1 {
            for p in 0..kc {
                // SAFETY: row p of the sliver's columns is nr contiguous floats inside B.
                let row =
                    unsafe { std::slice::from_raw_parts(src.ptr.offset(p as isize * src.rs), nr) };
                sliver[p * NR..p * NR + nr].copy_from_slice(row);
            }
        } else if b.rs == 1 {
            // Column j of the sliver is kc contiguous floats: transpose blocks of 16 x 16.
            let full = kc / 16 * 16;
            for jb in (0..nr).step_by(16) {
                let rows = 16.min(nr - jb);
                let dst = sliver.as_mut_ptr();
                for p0 in (0..full).step_by(16) {
                    // SAFETY: columns jr + jb .. + rows and rows p0 .. p0 + 16 are inside
                    // B; the sliver holds rows p0 .. p0 + 16 of NR floats; AVX-512F is
                    // required by every caller of the packing routines.
                    unsafe {
                        transpose16(
                            |j| src.ptr.offset((jb + j) as isize * src.cs + p0 as isize),
                            rows,
                            |q| dst.add((p0 + q) * NR + jb),
                            0xFFFF,
                        )
                    };
                }
                for p in full..kc {
                    for j in 0..rows {
                        // SAFETY: (p, jr + jb + j) is inside B.
                        sliver[p * NR + jb + j] =
                            unsafe { *src.ptr.offset(p as isize + (jb + j) as isize * src.cs) };
                    }
                }
            }
        } else {
            for p in 0..kc {
                for j in 0..nr {
                    // SAFETY: (p, jr + j) is inside B.
                    sliver[p * NR + j] =
                        unsafe { *src.ptr.offset(p as isize * src.rs + j as isize * src.cs) };
                }
            }
        }
    }
}

/// Packs `a[0..mc, 0..kc]` as slivers of `MR` rows, each `kc` columns of `MR` floats,
/// zero-padded at the bottom. Row-major `A` is transposed 16 columns at a time;
/// column-major `A` is copied column by column.
fn pack_a(mc: usize, kc: usize, a: Mat, out: &mut [f32]) {
    for (s, ir) in (0..mc).step_by(MR).enumerate() {
        let mr = MR.min(mc - ir);
        let sliver = &mut out[s * kc * MR..(s + 1) * kc * MR];
        if mr < MR {
            sliver.fill(0.0);
        }
        let src = a.at(ir, 0);
        if a.rs == 1 {
            for p in 0..kc {
                // SAFETY: column p of the sliver's rows is mr contiguous floats inside A.
                let col =
                    unsafe { std::slice::from_raw_parts(src.ptr.offset(p as isize * src.cs), mr) };
                sliver[p * MR..p * MR + mr].copy_from_slice(col);
            }
        } else if a.cs == 1 {
            let full = kc / 16 * 16;
            let dst = sliver.as_mut_ptr();
            for p0 in (0..full).step_by(16) {
                // SAFETY: rows ir .. ir + mr and columns p0 .. p0 + 16 are inside A; the
                // sliver holds columns p0 .. p0 + 16 of MR floats (MR <= 16, so the
                // masked stores write MR floats each); AVX-512F as for pack_b.
                unsafe {
                    transpose16(
                        |i| src.ptr.offset(i as isize * src.rs + p0 as isize),
                        mr,
                        |q| dst.add((p0 + q) * MR),
                        (1u16 << MR) - 1,
                    )
                };
            }
            for p in full..kc {
                for i in 0..mr {
                    // SAFETY: (ir + i, p) is inside A.
                    sliver[p * MR + i] =
                        unsafe { *src.ptr.offset(i as isize * src.rs + p as isize) };
                }
            }
        } else {
            for p in 0..kc {
                for i in 0..mr {
                    // SAFETY: (ir + i, p) is inside A.
                    sliver[p * MR + i] =
                        unsafe { *src.ptr.offset(i as isize * src.rs + p as isize * src.cs) };
                }
            }
        }
    }
}

/// Transposes a 16 x 16 block: row `r < rows` is the 16 floats at `row(r)` (rows from
/// `rows` on are taken as zeros); column `q` of the block is written to `col(q)`, the
/// lanes of `store_mask` only.
///
/// # Safety
/// AVX-512F; `row(r)` readable for 16 floats for `r < rows`, `col(q)` writable for the
/// masked lanes for every `q < 16`.
#[target_feature(enable = "avx512f")]
unsafe fn transpose16(
    row: impl Fn(usize) -> *const f32,
    rows: usize,
    col: impl Fn(usize) -> *mut f32,
    store_mask: u16,
) {
    let mut r = [_mm512_setzero_ps(); 16];
    for (i, v) in r.iter_mut().enumerate().take(rows) {
        // SAFETY: row i is readable for 16 floats.
        *v = unsafe { _mm512_loadu_ps(row(i)) };
    }
    // Pairs of rows interleaved, then pairs of pairs: u[4g + c], 128-bit lane q, holds
    // rows 4g .. 4g + 4 of column 4q + c.
    let mut t = [_mm512_setzero_ps(); 16];
    for k in 0..8 {
        t[2 * k] = _mm512_unpacklo_ps(r[2 * k], r[2 * k + 1]);
        t[2 * k + 1] = _mm512_unpackhi_ps(r[2 * k], r[2 * k + 1]);
    }
    let mut u = [_mm512_setzero_ps(); 16];
    for g in 0..4 {
        let (a0, a1, a2, a3) = (
            _mm512_castps_pd(t[4 * g]),
            _mm512_castps_pd(t[4 * g + 1]),
            _mm512_castps_pd(t[4 * g + 2]),
            _mm512_castps_pd(t[4 * g + 3]),
        );
        u[4 * g] = _mm512_castpd_ps(_mm512_unpacklo_pd(a0, a2));
        u[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a0, a2));
        u[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(a1, a3));
        u[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(a1, a3));
    }
    // Gather lane q of u[c], u[4 + c], u[8 + c], u[12 + c]: column 4q + c.
    for c in 0..4 {
        let v0 = _mm512_shuffle_f32x4::<0x44>(u[c], u[4 + c]);
        let v1 = _mm512_shuffle_f32x4::<0xEE>(u[c], u[4 + c]);
        let w0 = _mm512_shuffle_f32x4::<0x44>(u[8 + c], u[12 + c]);
        let w1 = _mm512_shuffle_f32x4::<0xEE>(u[8 + c], u[12 + c]);
        let cols = [
            _mm512_shuffle_f32x4::<0x88>(v0, w0),
            _mm512_shuffle_f32x4::<0xDD>(v0, w0),
            _mm512_shuffle_f32x4::<0x88>(v1, w1),
            _mm512_shuffle_f32x4::<0xDD>(v1, w1),
        ];
        for (q, v) in cols.into_iter().enumerate() {
            // SAFETY: col(4q + c) is writable for the masked lanes.
            unsafe { _mm512_mask_storeu_ps(col(4 * q + c), store_mask, v) };
        }
    }
}

/// `C[0..mr, 0..nr] (+)= Ap @ Bp` for packed slivers of depth `kc`; adds to `C` when
/// `accumulate`, else overwrites it.
///
/// # Safety
/// AVX-512F; `ap` and `bp` readable for `kc * MR` and `kc * NR` floats; the tile inside C.
#[target_feature(enable = "avx512f")]
unsafe fn kernel(
    kc: usize,
    ap: *const f32,
    bp: *const f32,
    c: MatMut,
    mr: usize,
    nr: usize,
    accumulate: bool,
) {
    let mut c0 = [_mm512_setzero_ps(); MR];
    let mut c1 = [_mm512_setzero_ps(); MR];
    for p in 0..kc {
        // SAFETY: p < kc, within the packed slivers.
        unsafe {
            let b0 = _mm512_loadu_ps(bp.add(p * NR));
            let b1 = _mm512_loadu_ps(bp.add(p * NR + 16));
            let a = ap.add(p * MR);
            for i in 0..MR {
                let ai = _mm512_set1_ps(*a.add(i));
                c0[i] = _mm512_fmadd_ps(ai, b0, c0[i]);
                c1[i] = _mm512_fmadd_ps(ai, b1, c1[i]);
            }
        }
    }
    if mr == MR && nr == NR && c.cs == 1 {
        for i in 0..MR {
            // SAFETY: row i of the full tile is 32 contiguous floats inside C.
            unsafe {
                let row = c.ptr.offset(i as isize * c.rs);
                let (mut v0, mut v1) = (c0[i], c1[i]);
                if accumulate {
                    v0 = _mm512_add_ps(v0, _mm512_loadu_ps(row));
                    v1 = _mm512_add_ps(v1, _mm512_loadu_ps(row.add(16)));
                }
                _mm512_storeu_ps(row, v0);
                _mm512_storeu_ps(row.add(16), v1);
            }
        }
    } else {
        let mut tmp = [0.0f32; MR * NR];
        for i in 0..MR {
            // SAFETY: tmp holds MR rows of NR floats.
            unsafe {
                _mm512_storeu_ps(tmp.as_mut_ptr().add(i * NR), c0[i]);
                _mm512_storeu_ps(tmp.as_mut_ptr().add(i * NR + 16), c1[i]);
            }
        }
        for i in 0..mr {
            for j in 0..nr {
                // SAFETY: (i, j) is inside the tile.
                unsafe {
                    let dst = c.at(i, j).ptr;
                    *dst = if accumulate {
                        *dst + tmp[i * NR + j]
                    } else {
                        tmp[i * NR + j]
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::simd::{isa, Isa};
    use ndarray::{s, Array2, ArrayView2, ArrayViewMut2};

    fn run(a: &ArrayView2<f32>, b: &ArrayView2<f32>, c: &mut ArrayViewMut2<f32>, threads: usize) {
        let (m, k) = a.dim();
        let n = b.ncols();
        let mat = |v: &ArrayView2<f32>| Mat {
            ptr: v.as_ptr(),
            rs: v.strides()[0],
            cs: v.strides()[1],
        };
        let out = MatMut {
            ptr: c.as_mut_ptr(),
            rs: c.strides()[0],
            cs: c.strides()[1],
        };
        // SAFETY: AVX-512F checked by the caller; views describe valid, disjoint memory.
        unsafe { sgemm(m, n, k, mat(a), mat(b), out, threads) };
    }

    fn filled(r: usize, c: usize, seed: usize) -> Array2<f32> {
        Array2::from_shape_fn((r, c), |(i, j)| {
            ((i * 31 + j * 17 + seed * 7) % 23) as f32 - 11.0
        })
    }

    fn naive(a: &ArrayView2<f32>, b: &ArrayView2<f32>) -> Array2<f32> {
        Array2::from_shape_fn((a.nrows(), b.ncols()), |(i, j)| {
            (0..a.ncols()).map(|p| a[[i, p]] * b[[p, j]]).sum()
        })
    }

    #[test]
    fn matches_the_naive_product_on_edges_blocks_and_strides() {
        if isa() < Isa::Avx512 {
            return; // nothing to test on this CPU: the kernel is never selected
        }
        // Small integers: every partial sum is exact, so results must be equal.
        let shapes = [
            (1, 1, 1),
            (12, 7, 32),
            (13, 300, 33),
            (97, 513, 65),
            (200, 40, 1030),
            (5, 3, 700),
        ];
        for &(m, k, n) in &shapes {
            let a = filled(m, k, 1);
            let b = filled(k, n, 2);
            let want = naive(&a.view(), &b.view());
            for threads in [1, 2, 3] {
                let mut c = Array2::<f32>::from_elem((m, n), f32::NAN);
                run(&a.view(), &b.view(), &mut c.view_mut(), threads);
                assert_eq!(c, want, "{m}x{k}x{n}, {threads} threads");
            }
            // Transposed operands and a column-major output.
            let at = a.t().as_standard_layout().into_owned();
            let bt = b.t().as_standard_layout().into_owned();
            let mut ct = Array2::<f32>::from_elem((n, m), f32::NAN);
            run(&at.t(), &bt.t(), &mut ct.view_mut().reversed_axes(), 2);
            assert_eq!(ct.t(), want);
            // One operand transposed (each packing path: copy, 16 x 16 transposes, tails).
            let mut c = Array2::<f32>::from_elem((m, n), f32::NAN);
            run(&at.t(), &b.view(), &mut c.view_mut(), 1);
            assert_eq!(c, want, "{m}x{k}x{n}, a transposed");
            run(&a.view(), &bt.t(), &mut c.view_mut(), 2);
            assert_eq!(c, want, "{m}x{k}x{n}, b transposed");
            // Operands with no unit stride (the general packing loops).
            let mut aw = Array2::<f32>::zeros((m, 2 * k));
            aw.slice_mut(s![.., ..;2]).assign(&a);
            let mut bw = Array2::<f32>::zeros((2 * k, n));
            bw.slice_mut(s![..;2, ..]).assign(&b);
            let bw_t = bw.t().as_standard_layout().into_owned();
            run(
                &aw.slice(s![.., ..;2]),
                &bw_t.t().slice(s![..;2, ..]),
                &mut c.view_mut(),
                1,
            );
            assert_eq!(c, want, "{m}x{k}x{n}, strided operands");
            // Every other column of a wider output.
            let mut wide = Array2::<f32>::from_elem((m, 2 * n), -7.0);
            run(&a.view(), &b.view(), &mut wide.slice_mut(s![.., ..;2]), 2);
            assert_eq!(wide.slice(s![.., ..;2]), want);
            assert!(wide.slice(s![.., 1..;2]).iter().all(|&v| v == -7.0));
        }
    }

    #[test]
    fn empty_depth_gives_zeros() {
        if isa() < Isa::Avx512 {
            return;
        }
        let a = Array2::<f32>::zeros((3, 0));
        let b = Array2::<f32>::zeros((0, 5));
        let mut c = Array2::<f32>::from_elem((3, 5), f32::NAN);
        run(&a.view(), &b.view(), &mut c.view_mut(), 2);
        assert!(c.iter().all(|&v| v == 0.0));
    }
}
