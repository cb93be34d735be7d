//! W5 `conv_train` (defined in `docs/benchmarks.md`): Conv2d(1 -> 16, 3x3, padding 1),
//! ReLU, MaxPool 2x2 and Linear(16*14*14 -> 10) on a batch of 64 1x28x28 inputs (N(0,1),
//! labels uniform in 0..10 from a fixed seed), cross-entropy, plain SGD step with lr 0.01.
//! One iteration is forward, backward and update. Run with
//! `cargo bench -p tapegrad-nn --bench conv_train`.

use criterion::{criterion_group, criterion_main, Criterion};
use ndarray::{ArrayViewD, ArrayViewMutD};
use rand::{Rng, SeedableRng};
use tapegrad::{DType, Tensor};
use tapegrad_nn::loss::{cross_entropy, CrossEntropyOptions};
use tapegrad_nn::{Conv2d, Conv2dOptions, Flatten, Linear, MaxPool2d, Module, Relu, Sequential};

fn conv_train(c: &mut Criterion) {
    let conv = Conv2d::with_options(
        1,
        16,
        [3, 3],
        Conv2dOptions {
            padding: [1, 1],
            ..Default::default()
        },
        0,
    );
    let model = Sequential::new()
        .add(conv)
        .add(Relu)
        .add(MaxPool2d::new(2))
        .add(Flatten::new())
        .add(Linear::new(16 * 14 * 14, 10, 1));
    let x = Tensor::randn(&[64, 1, 28, 28], DType::F32, 2);
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let labels: Vec<i64> = (0..64).map(|_| rng.gen_range(0..10)).collect();
    let labels = Tensor::from_vec(labels, &[64]);
    let params = model.params();
    let options = CrossEntropyOptions::default();
    c.bench_function("conv_train", |b| {
        b.iter(|| {
            let loss = cross_entropy(&model.forward(&x), &labels, &options);
            let grads = loss.backward();
            for p in &params {
                let g = &grads[p];
                g.with_view(|g: ArrayViewD<f32>| {
                    p.update_(|mut w: ArrayViewMutD<f32>| w.scaled_add(-0.01, &g))
                });
            }
            loss
        })
    });
}

criterion_group!(benches, conv_train);
criterion_main!(benches);
