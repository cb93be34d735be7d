//! W2 `op_overhead`: the fixed cost of one recorded op, forward and backward
//! (`y = tanh(y * 1.01 + 0.1)` 1000 times on 16 elements, then sum and backward), plus the
//! same chain under `no_grad` to separate recording from computing.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tapegrad::{no_grad, DType, Tensor};
use tapegrad_benches::OpOverhead;

fn op_overhead(c: &mut Criterion) {
    let mut group = c.benchmark_group("op_overhead");
    group.sample_size(30);
    let w = OpOverhead::new(1000);
    // Throughput in "elements" = ops, so criterion reports ops/s.
    group.throughput(Throughput::Elements(w.ops() as u64));
    group.bench_function("chain_3000_ops_fwd_bwd", |b| b.iter(|| w.run()));
    let x = Tensor::randn(&[16], DType::F32, 0);
    group.bench_function("chain_3000_ops_no_grad", |b| {
        b.iter(|| {
            no_grad(|| {
                let mut y = x.clone();
                for _ in 0..1000 {
                    y = y.mul_scalar(1.01).add_scalar(0.1).tanh();
                }
                y
            })
        })
    });
    group.finish();
}

criterion_group!(benches, op_overhead);
criterion_main!(benches);
