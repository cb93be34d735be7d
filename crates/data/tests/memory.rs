//! The counting allocator measures a real training step (installed as this test
//! binary's global allocator; one test per binary, since the counts are process-wide).

use tapegrad::{DType, Tensor};
use tapegrad_data::{largest_batch_that_fits, measure_peak, CountingAllocator};

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator;

#[test]
fn training_step_memory_grows_with_batch_and_search_uses_it() {
    // On one thread: with two, whether two parallel tasks' scratch buffers are alive at
    // the same moment depends on scheduling, which moved the measured peak of one batch
    // size by about 600 KB from run to run and the search's answer with it.
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("a one-thread pool")
        .install(measure_steps);
}

fn measure_steps() {
    let w = Tensor::randn(&[256, 256], DType::F32, 0).requires_grad();
    let step = |b: usize| {
        measure_peak(|| {
            let x = Tensor::randn(&[b, 256], DType::F32, 1);
            let loss = x.matmul(&w).relu().matmul(&w).square().mean();
            std::hint::black_box(loss.backward());
        })
        .1
    };
    step(256); // warm-up: lazily created thread pools and kernel buffers allocate once
               // Batches large enough that activations, not fixed kernel buffers, dominate.
    let (p256, p1024) = (step(256), step(1024));
    // Each extra sample costs at least its activations: a few [256] f32 rows.
    assert!(p1024 > p256 + 768 * 256 * 4 * 3, "{p256} vs {p1024}");
    let limit = step(640);
    let best = largest_batch_that_fits(limit, 4096, step).unwrap();
    assert!(
        (560..=720).contains(&best),
        "largest batch under the peak of 640 is {best}"
    );
}
