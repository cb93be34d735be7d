//! The benchmark workloads (defined in `docs/benchmarks.md`) as plain functions, shared by
//! the criterion benches in `benches/benches/` and by the `tapegrad bench` command, plus a
//! small timer that reports medians and the JSON line format that the peer scripts in
//! `benches/peers/` print too.
//!
//! Each workload is a struct that builds its inputs once (`new`) and runs one repetition
//! per call of `run`, so a timer around `run` measures exactly one repetition.
//!
//! ```
//! use tapegrad_benches::{measure, OpOverhead};
//! let w = OpOverhead::new(10); // 10 repeats = 30 ops, a quick check
//! let stats = measure(2, 5, || w.run());
//! assert!(stats.median_ms > 0.0 && stats.min_ms <= stats.median_ms);
//! ```
#![warn(missing_docs)]

mod sequence;
mod training;

pub use sequence::{LstmTrain, TransformerTrain};
pub use training::TrainStep;

use std::time::Instant;

use tapegrad::{DType, Tensor};

/// W2 `op_overhead`: `x` of shape `[16]`, `repeats` times `y = tanh(y * 1.01 + 0.1)`
/// (3 ops each), then `sum` and backward. Measures the fixed cost per op.
pub struct OpOverhead {
    x: Tensor,
    repeats: usize,
}

impl OpOverhead {
    /// The workload with `repeats` repetitions of the 3-op body (W2 uses 1000).
    pub fn new(repeats: usize) -> Self {
        OpOverhead {
            x: Tensor::randn(&[16], DType::F32, 0),
            repeats,
        }
    }

    /// Number of recorded ops per repetition, the denominator of "us per op".
    pub fn ops(&self) -> usize {
        3 * self.repeats
    }

    /// One repetition: forward chain, sum, backward. Returns the first gradient element
    /// (so the work cannot be optimised away).
    pub fn run(&self) -> f32 {
        let x = self.x.clone().requires_grad();
        let mut y = x.clone();
        for _ in 0..self.repeats {
            y = y.mul_scalar(1.01).add_scalar(0.1).tanh();
        }
        let grads = y.sum().backward();
        grads[&x].to_vec::<f32>()[0]
    }
}

/// W3 `matmul_fb`: `A`, `B` of `n x n` requiring grad, `sum(A @ B)`, backward to both
/// (one GEMM forward, two in backward).
pub struct MatmulFb {
    a: Tensor,
    b: Tensor,
    n: usize,
}

impl MatmulFb {
    /// Square `n x n` operands (W3 uses 1024).
    pub fn new(n: usize) -> Self {
        MatmulFb::rect(n, n, n)
    }

    /// `A: [m, k]`, `B: [k, n]`: the forward and backward of one linear layer's product
    /// (W1 uses `m` = batch, `k x n` = 784 x 512, 512 x 256, 256 x 10).
    pub fn rect(m: usize, k: usize, n: usize) -> Self {
        MatmulFb {
            a: Tensor::randn(&[m, k], DType::F32, 1).requires_grad(),
            b: Tensor::randn(&[k, n], DType::F32, 2).requires_grad(),
            n: m * k * n,
        }
    }

    /// Floating-point operations of one repetition: 3 GEMMs of `2 m k n` each.
    pub fn flops(&self) -> f64 {
        6.0 * self.n as f64
    }

    /// One repetition. Returns the sum of the output.
    pub fn run(&self) -> f32 {
        let y = self.a.matmul(&self.b).sum();
        let grads = y.backward();
        std::hint::black_box((&grads[&self.a], &grads[&self.b]));
        y.item() as f32
    }
}

/// W4 `elementwise_big`: `x` of `n` elements, `sum(exp(x) * x)`, backward to `x`.
pub struct ElementwiseBig {
    x: Tensor,
}

impl ElementwiseBig {
    /// `n` standard normal elements (W4 uses 4,000,000).
    pub fn new(n: usize) -> Self {
        ElementwiseBig {
            x: Tensor::randn(&[n], DType::F32, 3).requires_grad(),
        }
    }

    /// Bytes counted by the GB/s metric: 4 passes over the `f32` input.
    pub fn bytes(&self) -> f64 {
        4.0 * 4.0 * self.x.numel() as f64
    }

    /// One repetition. Returns the loss.
    pub fn run(&self) -> f32 {
        let y = self.x.exp().mul(&self.x).sum();
        let grads = y.backward();
        std::hint::black_box(&grads[&self.x]);
        y.item() as f32
    }
}

/// Timing summary of repeated runs, in milliseconds.
#[derive(Clone, Copy, Debug)]
pub struct Stats {
    /// Median.
    pub median_ms: f64,
    /// Fastest run.
    pub min_ms: f64,
    /// Slowest run.
    pub max_ms: f64,
    /// 25th percentile.
    pub p25_ms: f64,
    /// 75th percentile.
    pub p75_ms: f64,
    /// Number of timed runs.
    pub reps: usize,
}

/// Runs `f` `warmup` times untimed, then `reps` times timed (wall clock each), and
/// summarises. `reps` must be positive.
///
/// # Panics
/// If `reps` is zero.
pub fn measure<R>(warmup: usize, reps: usize, mut f: impl FnMut() -> R) -> Stats {
    assert!(reps > 0, "measure: reps must be positive");
    for _ in 0..warmup {
        std::hint::black_box(f());
    }
    let mut ts: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(f());
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ts.sort_by(f64::total_cmp);
    let q = |p: f64| ts[((ts.len() - 1) as f64 * p).round() as usize];
    Stats {
        median_ms: q(0.5),
        min_ms: ts[0],
        max_ms: ts[ts.len() - 1],
        p25_ms: q(0.25),
        p75_ms: q(0.75),
        reps,
    }
}

/// One line of benchmark output in the schema of `docs/benchmarks.md` ("Output"):
/// `{"peer":"tapegrad","workload":..,"params":{..},"median_ms":..,"metric":..,"value":..}`.
///
/// ```
/// let line = tapegrad_benches::json_line("matmul_fb", &[("n", 1024)], 12.5, "gflops", 515.4);
/// assert_eq!(
///     line,
///     r#"{"peer":"tapegrad","workload":"matmul_fb","params":{"n":1024},"median_ms":12.5,"metric":"gflops","value":515.4}"#
/// );
/// ```
pub fn json_line(
    workload: &str,
    params: &[(&str, usize)],
    median_ms: f64,
    metric: &str,
    value: f64,
) -> String {
    let params: Vec<String> = params.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
    format!(
        "{{\"peer\":\"tapegrad\",\"workload\":\"{workload}\",\"params\":{{{}}},\"median_ms\":{},\"metric\":\"{metric}\",\"value\":{}}}",
        params.join(","),
        round4(median_ms),
        round4(value)
    )
}

fn round4(v: f64) -> f64 {
    (v * 1e4).round() / 1e4
}

/// Runs W2, W3 and W4 at the sizes of `docs/benchmarks.md` and returns one JSON line each
/// (what `tapegrad bench` prints for them). `reps` timed runs per workload after 5 warm-ups.
pub fn run_core_workloads(reps: usize) -> Vec<String> {
    let mut out = Vec::new();
    let w2 = OpOverhead::new(1000);
    let s = measure(5, reps, || w2.run());
    out.push(json_line(
        "op_overhead",
        &[("len", 16), ("ops", w2.ops())],
        s.median_ms,
        "us_per_op",
        s.median_ms * 1e3 / w2.ops() as f64,
    ));
    let w3 = MatmulFb::new(1024);
    let s = measure(5, reps, || w3.run());
    out.push(json_line(
        "matmul_fb",
        &[("n", 1024)],
        s.median_ms,
        "gflops",
        w3.flops() / (s.median_ms * 1e-3) / 1e9,
    ));
    let w4 = ElementwiseBig::new(4_000_000);
    let s = measure(5, reps, || w4.run());
    out.push(json_line(
        "elementwise_big",
        &[("n", 4_000_000)],
        s.median_ms,
        "gb_per_s",
        w4.bytes() / (s.median_ms * 1e-3) / 1e9,
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workloads_compute_the_right_values() {
        // W2 with one repeat: d/dx sum(tanh(1.01 x + 0.1)) = 1.01 (1 - tanh^2).
        let w = OpOverhead::new(1);
        let x0 = w.x.to_vec::<f32>()[0] as f64;
        let expected = 1.01 * (1.0 - (1.01 * x0 + 0.1).tanh().powi(2));
        assert!((w.run() as f64 - expected).abs() < 1e-5);
        // W3: sum(A @ B) on small ones: every output element is k.
        let m = MatmulFb {
            a: Tensor::ones(&[2, 3], DType::F32).requires_grad(),
            b: Tensor::ones(&[3, 4], DType::F32).requires_grad(),
            n: 24,
        };
        assert_eq!(m.run(), 24.0);
        // W4: loss matches a direct sum.
        let e = ElementwiseBig::new(1000);
        let direct: f64 =
            e.x.to_vec::<f32>()
                .iter()
                .map(|&v| (v as f64).exp() * v as f64)
                .sum();
        assert!((e.run() as f64 - direct).abs() < 1e-3 * direct.abs().max(1.0));
    }

    #[test]
    fn stats_are_ordered() {
        let s = measure(0, 7, || std::hint::black_box((0..1000).sum::<u64>()));
        assert!(
            s.min_ms <= s.p25_ms
                && s.p25_ms <= s.median_ms
                && s.median_ms <= s.p75_ms
                && s.p75_ms <= s.max_ms
        );
        assert_eq!(s.reps, 7);
    }
}
