//! The counting allocator measures real allocations (installed as this test binary's
//! global allocator).

use tapegrad::{DType, Tensor};
use tapegrad_data::{counting_enabled, largest_batch_that_fits, measure_peak, CountingAllocator};

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator;

/// The counts are process-wide: tests that measure must not overlap.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn peak_of_a_known_allocation() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (_, peak) = measure_peak(|| {
        let v = vec![0u8; 10 << 20];
        std::hint::black_box(&v);
    });
    assert!(counting_enabled());
    assert!((10 << 20..(10 << 20) + (1 << 20)).contains(&peak), "peak {peak}");
}

#[test]
fn training_step_memory_grows_with_batch_and_search_uses_it() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let w = Tensor::randn(&[256, 256], DType::F32, 0).requires_grad();
    let step = |b: usize| {
        measure_peak(|| {
            let x = Tensor::randn(&[b, 256], DType::F32, 1);
            let loss = x.matmul(&w).relu().matmul(&w).square().mean();
            std::hint::black_box(loss.backward());
        })
        .1
    };
    step(64); // warm-up: lazily created thread pools allocate once
    let (p8, p64) = (step(8), step(64));
    assert!(p64 > p8, "{p8} vs {p64}");
    // Each sample costs at least its activations: a few [256] f32 rows.
    assert!(p64 - p8 >= 56 * 256 * 4 * 3, "{p8} vs {p64}");
    let limit = step(40);
    let best = largest_batch_that_fits(limit, 256, step).unwrap();
    assert!((32..=48).contains(&best), "largest batch under the peak of 40 is {best}");
}
