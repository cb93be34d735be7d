//! Runtime CPU-feature dispatch and the vectorisable kernels that use it.
//!
//! The kernels are plain, branch-free Rust loops that LLVM vectorises. Each is compiled
//! three times: for AVX-512F, for AVX2 + FMA (both through `#[target_feature]`), and for
//! the baseline target; [`isa`] picks one at run time with `is_x86_feature_detected!`,
//! once per process. Nothing is built with `-C target-cpu=native`, so one binary runs on
//! any x86-64 (and on other architectures, where only the baseline version exists).

use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicU8, Ordering};

/// The instruction-set level a kernel runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Isa {
    /// The compilation target's baseline (SSE2 on x86-64).
    Baseline = 1,
    /// AVX2 with fused multiply-add.
    Avx2Fma = 2,
    /// AVX-512 Foundation (with AVX2 and FMA).
    Avx512 = 3,
}

static DETECTED: AtomicU8 = AtomicU8::new(0);

/// The best instruction set this CPU supports (detected once, then cached).
///
/// The environment variable `TAPEGRAD_ISA` (`baseline`, `avx2`, `avx512`) caps it, to
/// compare code paths or to rule one out when debugging.
pub(crate) fn isa() -> Isa {
    match DETECTED.load(Ordering::Relaxed) {
        1 => Isa::Baseline,
        2 => Isa::Avx2Fma,
        3 => Isa::Avx512,
        _ => {
            let found = detect().min(cap_from_env());
            DETECTED.store(found as u8, Ordering::Relaxed);
            found
        }
    }
}

fn cap_from_env() -> Isa {
    match std::env::var("TAPEGRAD_ISA").as_deref() {
        Ok("baseline") | Ok("scalar") => Isa::Baseline,
        Ok("avx2") => Isa::Avx2Fma,
        _ => Isa::Avx512,
    }
}

#[cfg(target_arch = "x86_64")]
fn detect() -> Isa {
    if is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
    {
        Isa::Avx512
    } else if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        Isa::Avx2Fma
    } else {
        Isa::Baseline
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn detect() -> Isa {
    Isa::Baseline
}

/// Every instruction set this CPU can run, lowest first (for tests that compare them).
#[cfg(test)]
pub(crate) fn available() -> Vec<Isa> {
    [Isa::Baseline, Isa::Avx2Fma, Isa::Avx512]
        .into_iter()
        .filter(|&i| i <= detect())
        .collect()
}

// ------------------------------------------------------------------------------- exp

/// `x` at or above which `e^x` rounds to infinity in `f32` (the first float above
/// `ln(f32::MAX)`).
const EXP_OVERFLOW: f32 = 88.722_84;
/// `x` below which `e^x` rounds to zero in `f32` (below `ln(2^-150)`: less than half the
/// smallest subnormal).
const EXP_UNDERFLOW: f32 = -103.972_08;

/// `e^x` for one `f32`, written so that a loop over it vectorises: no branches (the
/// conditionals become blends), no table look-ups, no calls. `FMA` selects fused
/// multiply-adds, which only the FMA-enabled copies can afford.
///
/// Method (Cephes `expf`): `x = n ln2 + r` with `n = round(x / ln2)` and `|r| <= ln2/2`,
/// `ln2` split in a high part exact in a few bits and a low part (Cody-Waite), so `r` is
/// exact; `e^r` by a degree-7 polynomial (max relative error 1.6e-7); `2^n` built from
/// exponent bits in two halves, so results in the subnormal range are rounded once and
/// an overflow becomes infinity on its own. NaN propagates; `+inf -> inf`, `-inf -> 0`.
#[inline(always)]
pub(crate) fn exp_f32<const FMA: bool>(x: f32) -> f32 {
    #[inline(always)]
    fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
        if FMA {
            a.mul_add(b, c)
        } else {
            a * b + c
        }
    }
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4; // 0.693359375: 9 significant bits, n * LN2_HI is exact
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 * 2^23: adding it rounds to an integer (ties to even) held in the low mantissa bits.
    const SHIFTER: f32 = 12_582_912.0;

    // Clamp so the integer arithmetic stays in range; NaN passes through (compares false).
    let xc = x.clamp(-104.0, 89.0);
    let t = madd::<FMA>(xc, LOG2E, SHIFTER);
    let n = t - SHIFTER;
    let r = madd::<FMA>(n, -LN2_HI, xc);
    let r = madd::<FMA>(n, -LN2_LO, r);
    let mut p = 1.987_569_2e-4;
    p = madd::<FMA>(p, r, 1.398_199_9e-3);
    p = madd::<FMA>(p, r, 8.333_452e-3);
    p = madd::<FMA>(p, r, 4.166_579_6e-2);
    p = madd::<FMA>(p, r, 1.666_666_5e-1);
    p = madd::<FMA>(p, r, 0.5); // Cephes' 5.0000001201e-1 rounds to 0.5 in f32
    let p = madd::<FMA>(p, r * r, r) + 1.0;
    // n in [-150, 129] sits in the low bits of t; 2^n = 2^(n/2) * 2^(n - n/2), each a normal float.
    let ni = (t.to_bits() as i32).wrapping_sub(SHIFTER.to_bits() as i32);
    let n1 = ni >> 1;
    let n2 = ni - n1;
    let s1 = f32::from_bits(((n1 + 127) as u32) << 23);
    let s2 = f32::from_bits(((n2 + 127) as u32) << 23);
    let y = p * s1 * s2;
    if x >= EXP_OVERFLOW {
        f32::INFINITY
    } else if x < EXP_UNDERFLOW {
        0.0
    } else {
        y
    }
}

#[inline(always)]
fn exp_loop<const FMA: bool>(src: &[f32], dst: &mut [MaybeUninit<f32>]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        d.write(exp_f32::<FMA>(s));
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn exp_avx2(src: &[f32], dst: &mut [MaybeUninit<f32>]) {
    exp_loop::<true>(src, dst)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
fn exp_avx512(src: &[f32], dst: &mut [MaybeUninit<f32>]) {
    exp_loop::<true>(src, dst)
}

/// `dst[i] = e^src[i]` with the kernel for `isa` (which the CPU must support).
pub(crate) fn exp_f32_slice_with(isa: Isa, src: &[f32], dst: &mut [MaybeUninit<f32>]) {
    assert_eq!(src.len(), dst.len(), "exp kernel: slice lengths differ");
    match isa {
        // SAFETY: `isa` is at most what `detect` found, so the CPU has these features.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { exp_avx512(src, dst) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma => unsafe { exp_avx2(src, dst) },
        _ => exp_loop::<false>(src, dst),
    }
}

/// `dst[i] = e^src[i]`, with the best kernel for this CPU.
pub(crate) fn exp_f32_slice(src: &[f32], dst: &mut [MaybeUninit<f32>]) {
    exp_f32_slice_with(isa(), src, dst)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distance in units in the last place, counting across zero (both finite).
    fn ulps(a: f32, b: f32) -> u32 {
        let key = |v: f32| {
            let i = v.to_bits() as i32;
            if i < 0 {
                i32::MIN.wrapping_sub(i) as i64
            } else {
                i as i64
            }
        };
        (key(a) - key(b)).unsigned_abs() as u32
    }

    fn exp_with(isa: Isa, xs: &[f32]) -> Vec<f32> {
        let mut out = Vec::with_capacity(xs.len());
        exp_f32_slice_with(isa, xs, &mut out.spare_capacity_mut()[..xs.len()]);
        // SAFETY: the kernel wrote every element.
        unsafe { out.set_len(xs.len()) };
        out
    }

    /// Checks every input against std, with at most `max_ulps` difference, and exactly
    /// the same infinities, zeros and NaNs.
    fn check(isa: Isa, xs: &[f32], max_ulps: u32) {
        let got = exp_with(isa, xs);
        for (&x, &y) in xs.iter().zip(&got) {
            let want = x.exp();
            if want.is_nan() {
                assert!(y.is_nan(), "{isa:?}: exp({x:e}) = {y:e}, want NaN");
            } else if want.is_infinite() || want == 0.0 || y.is_infinite() || y == 0.0 {
                assert_eq!(
                    y,
                    want,
                    "{isa:?}: exp({x:e} = {:#x}) = {y:e}, want {want:e}",
                    x.to_bits()
                );
            } else {
                let d = ulps(y, want);
                assert!(
                    d <= max_ulps,
                    "{isa:?}: exp({x:e} = {:#x}) = {y:e}, want {want:e} ({d} ulps)",
                    x.to_bits()
                );
            }
        }
    }

    #[test]
    fn exp_matches_std_on_a_sweep_of_all_floats() {
        // Every 613th bit pattern covers each binade of both signs; plus dense sweeps of
        // the range where exp is neither 0, 1 nor inf.
        let mut xs: Vec<f32> = (0..=u32::MAX / 613)
            .map(|i| f32::from_bits(i * 613))
            .collect();
        xs.extend((0..200_000).map(|i| -104.0 + 193.0 * i as f32 / 200_000.0));
        for isa in available() {
            check(isa, &xs, 2);
        }
    }

    #[test]
    fn exp_thresholds_and_specials_match_std() {
        let mut xs = vec![
            0.0,
            -0.0,
            1.0,
            -1.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            -f32::NAN,
            f32::MAX,
            f32::MIN,
            f32::MIN_POSITIVE,
            f32::EPSILON,
            1e-30,
            -1e-30,
            88.0,
            -87.0,
            -88.0,
            -100.0,
        ];
        // Every float within 4096 ulps of the overflow and underflow thresholds, and of
        // the point where results turn subnormal (x = ln 2^-126).
        for centre in [EXP_OVERFLOW, EXP_UNDERFLOW, -87.336_55] {
            let c = centre.to_bits();
            xs.extend((c - 4096..c + 4096).map(f32::from_bits));
        }
        for isa in available() {
            check(isa, &xs, 2);
            let got = exp_with(
                isa,
                &[f32::NAN, 0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY],
            );
            assert!(got[0].is_nan());
            assert_eq!(&got[1..], &[1.0, 1.0, f32::INFINITY, 0.0]);
        }
    }

    #[test]
    fn all_code_paths_agree_closely() {
        let xs: Vec<f32> = (0..10_000).map(|i| (i as f32 - 5000.0) * 0.0173).collect();
        let base = exp_with(Isa::Baseline, &xs);
        for isa in available() {
            for (a, b) in exp_with(isa, &xs).iter().zip(&base) {
                assert!(ulps(*a, *b) <= 2, "{isa:?} vs baseline: {a:e} vs {b:e}");
            }
        }
    }
}
