//! Prints the predicted scaling of data-parallel training of the W1 MLP and the
//! Fashion-MNIST CNN on a cluster (the tables in `docs/distributed.md`), from the ring
//! all-reduce model in `tapegrad_dist::cost`. Needs no MPI:
//!
//! ```text
//! cargo run --release -p tapegrad-dist --example cost_model
//! ```

use tapegrad_dist::cost::{Link, StepModel};

fn main() {
    // Compute per step on one node as fast as this project's 2-core machine (f32, two
    // threads): W1 from `tapegrad bench` (about 0.2 ms at batch 1, 8.2 ms at batch 1024),
    // the CNN from the README's Fashion-MNIST run (6 epochs of 60,000 samples, 123 s).
    // Backward is about two thirds of a step; gradients in 4 buckets.
    let models = [
        StepModel {
            name: "W1 MLP 784-512-256-10".into(),
            params: 784 * 512 + 512 + 512 * 256 + 256 + 256 * 10 + 10,
            bytes_per_param: 4,
            seconds_per_sample: 7.8e-6,
            seconds_per_step: 2.0e-4,
            backward_fraction: 2.0 / 3.0,
            buckets: 4,
        },
        StepModel {
            name: "Fashion-MNIST CNN".into(),
            params: (9 * 32 + 32) + (32 * 9 * 64 + 64) + (64 * 7 * 7 * 128 + 128) + (128 * 10 + 10),
            bytes_per_param: 4,
            seconds_per_sample: 3.3e-4,
            seconds_per_step: 5.0e-4,
            backward_fraction: 2.0 / 3.0,
            buckets: 4,
        },
    ];
    let links = [
        ("10 Gbit/s, 20 us", Link::gbit(10.0, 20.0)),
        ("100 Gbit/s, 2 us", Link::gbit(100.0, 2.0)),
    ];
    let nodes = [2usize, 4, 8, 16, 32, 64];
    for m in &models {
        println!(
            "\n### {} ({} parameters, {:.2} MB of f32 gradients)\n",
            m.name,
            m.params,
            (m.params * m.bytes_per_param) as f64 / 1e6
        );
        println!("| link | nodes | all-reduce ms | efficiency at 32 / node | at 128 / node | batch / node for 90 % | global batch |");
        println!("|---|---:|---:|---:|---:|---:|---:|");
        for (label, link) in &links {
            for &n in &nodes {
                let need = m.local_batch_for(n, link, 0.9);
                println!(
                    "| {label} | {n} | {:.3} | {:.0} % | {:.0} % | {} | {} |",
                    m.all_reduce_seconds(n, link) * 1e3,
                    100.0 * m.efficiency(n, link, 32),
                    100.0 * m.efficiency(n, link, 128),
                    need.map_or("-".into(), |b| b.to_string()),
                    need.map_or("-".into(), |b| (b * n).to_string()),
                );
            }
        }
    }
}
