//! `tapegrad bench`: runs the workloads W1-W5 defined in `docs/benchmarks.md` and prints a
//! table and one JSON line per result, in the schema the peer scripts in `benches/peers/`
//! print, so ratios can be taken from runs made back to back.

use std::process::ExitCode;

use tapegrad_benches::{
    json_line, measure, ElementwiseBig, LstmTrain, MatmulFb, OpOverhead, Stats, TrainStep,
    TransformerTrain,
};

/// Run the benchmark workloads.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Only these workloads (mlp_train, op_overhead, matmul_fb, elementwise_big,
    /// conv_train, transformer_train, lstm_train), comma separated [default: all].
    #[arg(long, value_delimiter = ',')]
    pub workload: Vec<String>,
    /// Timed repetitions per result (after 5 warm-ups); the median is reported
    /// [default: 30, and 20 for transformer_train, whose steps are long; mlp_train at
    /// batch 1-128 runs 4 x as many].
    #[arg(long)]
    pub reps: Option<usize>,
    /// Print only the JSON lines.
    #[arg(long)]
    pub json: bool,
}

struct Result {
    workload: &'static str,
    params: Vec<(&'static str, usize)>,
    stats: Stats,
    metric: &'static str,
    value: f64,
}

/// Runs `tapegrad bench`.
pub fn run(args: &Args) -> ExitCode {
    const ALL: [&str; 7] = [
        "mlp_train",
        "op_overhead",
        "matmul_fb",
        "elementwise_big",
        "conv_train",
        "transformer_train",
        "lstm_train",
    ];
    if let Some(bad) = args.workload.iter().find(|w| !ALL.contains(&w.as_str())) {
        eprintln!(
            "error: unknown workload {bad:?} (known: {})",
            ALL.join(", ")
        );
        return ExitCode::from(2);
    }
    if args.reps == Some(0) {
        eprintln!("error: --reps must be positive");
        return ExitCode::from(2);
    }
    let wanted = |w: &str| args.workload.is_empty() || args.workload.iter().any(|x| x == w);
    let reps = args.reps.unwrap_or(30);
    let mut results = Vec::new();
    let mut report = |r: Result| {
        println!(
            "{}",
            json_line(r.workload, &r.params, r.stats.median_ms, r.metric, r.value)
        );
        results.push(r);
    };
    if wanted("mlp_train") {
        for batch in [1, 8, 32, 128, 512, 1024] {
            let mut w = TrainStep::mlp(batch);
            let stats = measure(5, if batch <= 128 { reps.max(1) * 4 } else { reps }, || {
                w.run()
            });
            let value = batch as f64 / (stats.median_ms * 1e-3);
            report(Result {
                workload: "mlp_train",
                params: vec![("batch", batch)],
                stats,
                metric: "samples_per_s",
                value,
            });
        }
    }
    if wanted("op_overhead") {
        let w = OpOverhead::new(1000);
        let stats = measure(5, reps, || w.run());
        let value = stats.median_ms * 1e3 / w.ops() as f64;
        report(Result {
            workload: "op_overhead",
            params: vec![("len", 16), ("ops", w.ops())],
            stats,
            metric: "us_per_op",
            value,
        });
    }
    if wanted("matmul_fb") {
        let w = MatmulFb::new(1024);
        let stats = measure(5, reps, || w.run());
        let value = w.flops() / (stats.median_ms * 1e-3) / 1e9;
        report(Result {
            workload: "matmul_fb",
            params: vec![("n", 1024)],
            stats,
            metric: "gflops",
            value,
        });
    }
    if wanted("elementwise_big") {
        let w = ElementwiseBig::new(4_000_000);
        let stats = measure(5, reps, || w.run());
        let value = w.bytes() / (stats.median_ms * 1e-3) / 1e9;
        report(Result {
            workload: "elementwise_big",
            params: vec![("n", 4_000_000)],
            stats,
            metric: "gb_per_s",
            value,
        });
    }
    if wanted("conv_train") {
        let mut w = TrainStep::conv(64);
        let stats = measure(5, reps, || w.run());
        let value = stats.median_ms;
        report(Result {
            workload: "conv_train",
            params: vec![("batch", 64)],
            stats,
            metric: "ms_per_step",
            value,
        });
    }
    if wanted("transformer_train") {
        let mut w = TransformerTrain::new();
        let stats = measure(5, args.reps.unwrap_or(20), || w.run());
        let value = w.tokens() as f64 / (stats.median_ms * 1e-3);
        report(Result {
            workload: "transformer_train",
            params: vec![("batch", 16), ("seq", 128), ("d_model", 256), ("layers", 2)],
            stats,
            metric: "tokens_per_s",
            value,
        });
    }
    if wanted("lstm_train") {
        let mut w = LstmTrain::new();
        let stats = measure(5, reps, || w.run());
        let value = w.batch() as f64 / (stats.median_ms * 1e-3);
        report(Result {
            workload: "lstm_train",
            params: vec![("batch", 32), ("seq", 64), ("hidden", 256)],
            stats,
            metric: "samples_per_s",
            value,
        });
    }
    if !args.json {
        println!();
        println!("| workload | params | median ms | p25-p75 ms | metric | value |");
        println!("|---|---|---:|---:|---|---:|");
        for r in &results {
            let params: Vec<String> = r.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
            println!(
                "| {} | {} | {:.4} | {:.4}-{:.4} | {} | {:.3} |",
                r.workload,
                params.join(" "),
                r.stats.median_ms,
                r.stats.p25_ms,
                r.stats.p75_ms,
                r.metric,
                r.value
            );
        }
    }
    ExitCode::SUCCESS
}
