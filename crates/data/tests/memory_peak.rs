//! The counting allocator measures a known allocation exactly. Alone in its own test
//! binary: no other test's worker threads can free memory during the measurement.

use tapegrad_data::{counting_enabled, measure_peak, CountingAllocator};

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator;

#[test]
fn peak_of_a_known_allocation() {
    let (_, peak) = measure_peak(|| {
        let v = vec![0u8; 10 << 20];
        std::hint::black_box(&v);
    });
    assert!(counting_enabled());
    assert!(
        // Other threads (the test harness, idle workers) may free a few bytes meanwhile.
        ((10 << 20) - (1 << 16)..(10 << 20) + (1 << 20)).contains(&peak),
        "peak {peak}"
    );
}
