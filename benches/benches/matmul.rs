//! W3 `matmul_fb` (1024^3, forward + backward: three GEMMs, two with transposed operands)
//! and the products of W1's MLP at small batches, where call overhead matters more than
//! peak GFLOP/s; plus a batched product of many small matrices.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tapegrad::{DType, Tensor};
use tapegrad_benches::MatmulFb;

fn matmul_fb(c: &mut Criterion) {
    let mut group = c.benchmark_group("matmul_fb");
    group.sample_size(15);
    let w = MatmulFb::new(1024);
    group.throughput(Throughput::Elements(w.flops() as u64)); // "elements" = flops
    group.bench_function("n1024", |b| b.iter(|| w.run()));
    group.finish();
}

fn linear_fb(c: &mut Criterion) {
    let mut group = c.benchmark_group("linear_fb");
    group.sample_size(30);
    for batch in [1usize, 8, 32, 128] {
        for (k, n) in [(784usize, 512usize), (512, 256), (256, 10)] {
            let w = MatmulFb::rect(batch, k, n);
            group.throughput(Throughput::Elements(w.flops() as u64));
            group.bench_with_input(BenchmarkId::new(format!("{k}x{n}"), batch), &w, |b, w| {
                b.iter(|| w.run())
            });
        }
    }
    group.finish();
}

fn batched(c: &mut Criterion) {
    let mut group = c.benchmark_group("matmul_batched");
    group.sample_size(30);
    let a = Tensor::randn(&[256, 16, 32], DType::F32, 1);
    let b = Tensor::randn(&[256, 32, 16], DType::F32, 2);
    group.bench_function("256x16x32x16", |bch| bch.iter(|| a.matmul(&b)));
    let bt = b.transpose(-1, -2);
    let bt = bt.transpose(-1, -2); // a transposed view of a transposed copy: strided operand
    group.bench_function("256x16x32x16_transposed_rhs", |bch| {
        bch.iter(|| a.matmul(&bt))
    });
    group.finish();
}

criterion_group!(benches, matmul_fb, linear_fb, batched);
criterion_main!(benches);
