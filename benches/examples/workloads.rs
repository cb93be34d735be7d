//! Prints one JSON line per workload (W2, W3, W4 and the W1 matmul shapes) with medians,
//! for side-by-side runs with the peers' scripts:
//!
//! ```text
//! cargo run --release -p tapegrad-benches --example workloads -- [reps] [filter]
//! ```

use tapegrad_benches::{json_line, measure, ElementwiseBig, MatmulFb, OpOverhead};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let reps: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(30);
    let filter = args.get(2).cloned().unwrap_or_default();
    let wants = |name: &str| filter.is_empty() || name.contains(&filter);
    if wants("op_overhead") {
        let w = OpOverhead::new(1000);
        let s = measure(5, reps, || w.run());
        let us = |ms: f64| ms * 1e3 / w.ops() as f64;
        println!(
            "{}",
            json_line(
                "op_overhead",
                &[("len", 16), ("ops", w.ops())],
                s.median_ms,
                "us_per_op",
                us(s.median_ms)
            )
        );
        eprintln!(
            "  spread: {:.3} .. {:.3} us/op (p25 {:.3}, p75 {:.3})",
            us(s.min_ms),
            us(s.max_ms),
            us(s.p25_ms),
            us(s.p75_ms)
        );
    }
    if wants("op_parts") {
        // Where W2's time goes: the forward chain without recording, with recording, and
        // the whole workload (forward + backward).
        let x = tapegrad::Tensor::randn(&[16], tapegrad::DType::F32, 0);
        let chain = |x: &tapegrad::Tensor| {
            let mut y = x.clone();
            for _ in 0..1000 {
                y = y.mul_scalar(1.01).add_scalar(0.1).tanh();
            }
            y
        };
        let s = measure(5, reps, || tapegrad::no_grad(|| chain(&x)));
        eprintln!(
            "  forward, no_grad:   {:.3} us/op",
            s.median_ms * 1e3 / 3000.0
        );
        let xr = x.clone().requires_grad();
        let s = measure(5, reps, || chain(&xr));
        eprintln!(
            "  forward, recorded:  {:.3} us/op (incl. freeing the graph)",
            s.median_ms * 1e3 / 3000.0
        );
    }
    if wants("matmul_fb") {
        let w = MatmulFb::new(1024);
        let s = measure(5, reps, || w.run());
        let gf = |ms: f64| w.flops() / (ms * 1e-3) / 1e9;
        println!(
            "{}",
            json_line(
                "matmul_fb",
                &[("n", 1024)],
                s.median_ms,
                "gflops",
                gf(s.median_ms)
            )
        );
        eprintln!(
            "  spread: {:.2} .. {:.2} ms (p25 {:.2}, p75 {:.2})",
            s.min_ms, s.max_ms, s.p25_ms, s.p75_ms
        );
    }
    if wants("elementwise_big") {
        let w = ElementwiseBig::new(4_000_000);
        let s = measure(5, reps, || w.run());
        println!(
            "{}",
            json_line(
                "elementwise_big",
                &[("n", 4_000_000)],
                s.median_ms,
                "gb_per_s",
                w.bytes() / (s.median_ms * 1e-3) / 1e9
            )
        );
        eprintln!(
            "  spread: {:.3} .. {:.3} ms (p25 {:.3}, p75 {:.3})",
            s.min_ms, s.max_ms, s.p25_ms, s.p75_ms
        );
    }
    if wants("linear_fb") {
        for batch in [1usize, 8, 32, 128, 512, 1024] {
            for (k, n) in [(784usize, 512usize), (512, 256), (256, 10)] {
                let w = MatmulFb::rect(batch, k, n);
                let s = measure(10, reps.max(50), || w.run());
                println!(
                    "{}",
                    json_line(
                        "linear_fb",
                        &[("batch", batch), ("k", k), ("n", n)],
                        s.median_ms,
                        "gflops",
                        w.flops() / (s.median_ms * 1e-3) / 1e9
                    )
                );
            }
        }
    }
}
