//! Time per data-parallel step of the W1 MLP (784-512-256-10, f32, SGD) and where it
//! goes, for `docs/distributed.md`:
//!
//! ```text
//! cargo build --release -p tapegrad-dist --features mpi --example dist_bench
//! RAYON_NUM_THREADS=1 mpirun --allow-run-as-root -np 2 target/release/examples/dist_bench 128
//! RAYON_NUM_THREADS=2 mpirun --allow-run-as-root -np 1 target/release/examples/dist_bench 128
//! ```
//!
//! The argument is the global batch (split over the ranks). Rank 0 prints the time of a
//! bare all-reduce of W1's 2.1 MB of gradients, then for each bucket size, with the
//! overlap off and on, the step time (median and fastest), the median time backward
//! took (with the overlap on, including the buckets it started), and the median time
//! spent waiting for all-reduces after backward.

use std::time::{Duration, Instant};

use tapegrad::{DType, Tensor};
use tapegrad_dist::{DdpOptions, Dist, DistributedDataParallel};
use tapegrad_nn::loss::{cross_entropy, CrossEntropyOptions};
use tapegrad_nn::{Linear, Module, Relu, Sequential};
use tapegrad_optim::{Optimizer, Sgd, SgdConfig};

fn w1() -> Sequential {
    Sequential::new()
        .add(Linear::new(784, 512, 0))
        .add(Relu)
        .add(Linear::new(512, 256, 1))
        .add(Relu)
        .add(Linear::new(256, 10, 2))
}

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e3
}

fn fastest(v: &[Duration]) -> f64 {
    v.iter().min().map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

fn main() {
    let dist = Dist::init().expect("run under mpirun");
    let comm = dist.world();
    let global: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(128);
    let local = global / comm.size();
    let x = Tensor::randn(&[local, 784], DType::F32, comm.rank() as u64);
    let y: Vec<i64> = (0..local).map(|i| (i % 10) as i64).collect();
    let y = Tensor::from_vec(y, &[local]);
    let ce = CrossEntropyOptions::default();
    if comm.rank() == 0 {
        println!(
            "W1 MLP, global batch {global}, {} rank(s) x {local} samples, {} thread(s) per rank",
            comm.size(),
            rayon_threads()
        );
    }
    let mut bare = Vec::new();
    let mut grads = vec![0f32; w1().num_params()];
    for _ in 0..50 {
        let start = Instant::now();
        comm.all_reduce_sum(&mut grads, "bare all-reduce")
            .expect("all-reduce");
        bare.push(start.elapsed());
    }
    if comm.rank() == 0 {
        println!(
            "bare all-reduce of {} f32: median {:.3} ms, fastest {:.3} ms",
            grads.len(),
            median(bare.clone()),
            fastest(&bare)
        );
        println!("bucket      overlap  step ms (median, fastest)  backward ms  all-reduce wait ms  buckets");
    }
    for (bucket_bytes, label) in [
        (25 << 20, "25 MiB"),
        (1 << 20, "1 MiB"),
        (256 << 10, "256 KiB"),
    ] {
        for overlap in [false, true] {
            let options = DdpOptions {
                bucket_bytes,
                overlap,
            };
            let mut ddp = DistributedDataParallel::with_options(w1(), comm, options).expect("wrap");
            let mut opt = Sgd::new(
                ddp.params(),
                SgdConfig {
                    lr: 0.01,
                    ..Default::default()
                },
            );
            let (mut steps, mut backward, mut exposed) = (Vec::new(), Vec::new(), Vec::new());
            for i in 0..110 {
                let start = Instant::now();
                let loss = cross_entropy(&ddp.forward(&x), &y, &ce);
                let grads = ddp.backward(&loss).expect("backward");
                opt.step(&grads);
                if i >= 10 {
                    steps.push(start.elapsed());
                    backward.push(ddp.last_sync().backward);
                    exposed.push(ddp.last_sync().exposed);
                }
            }
            if comm.rank() == 0 {
                println!(
                    "{label:<10}  {:<7}  {:>8.3}, {:>8.3}         {:>11.3}  {:>18.3}  {:>7}",
                    if overlap { "on" } else { "off" },
                    median(steps.clone()),
                    fastest(&steps),
                    median(backward),
                    median(exposed),
                    ddp.num_buckets()
                );
            }
        }
    }
}

fn rayon_threads() -> String {
    std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "all".into())
}
