//! W4 `elementwise_big` (`sum(exp(x) * x)` and backward on 4M floats), and the single
//! kernels it is made of at sizes around the parallel threshold, which is tuned from them.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tapegrad::{DType, Tensor};
use tapegrad_benches::ElementwiseBig;

fn elementwise_big(c: &mut Criterion) {
    let mut group = c.benchmark_group("elementwise_big");
    group.sample_size(20);
    let w = ElementwiseBig::new(4_000_000);
    group.throughput(Throughput::Bytes(w.bytes() as u64));
    group.bench_function("n4M_fwd_bwd", |b| b.iter(|| w.run()));
    group.finish();
}

fn kernels(c: &mut Criterion) {
    let mut group = c.benchmark_group("kernels");
    group.sample_size(20);
    for n in [4_096usize, 16_384, 65_536, 262_144, 4_000_000] {
        let x = Tensor::randn(&[n], DType::F32, 7);
        let y = Tensor::randn(&[n], DType::F32, 8);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("exp", n), &x, |b, x| b.iter(|| x.exp()));
        group.bench_with_input(BenchmarkId::new("mul", n), &(&x, &y), |b, (x, y)| {
            b.iter(|| x.mul(y))
        });
        group.bench_with_input(BenchmarkId::new("tanh", n), &x, |b, x| b.iter(|| x.tanh()));
        group.bench_with_input(BenchmarkId::new("sum", n), &x, |b, x| b.iter(|| x.sum()));
    }
    group.finish();
}

criterion_group!(benches, elementwise_big, kernels);
criterion_main!(benches);
