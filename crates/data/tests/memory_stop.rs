//! `stop_counting` turns the counting allocator into a plain forwarder for the rest of the
//! process (its own test binary: the switch is process-wide and one way).

#[global_allocator]
static ALLOC: tapegrad_data::CountingAllocator = tapegrad_data::CountingAllocator;

#[test]
fn after_stop_counting_nothing_is_counted() {
    let (_, peak) = tapegrad_data::measure_peak(|| std::hint::black_box(vec![1u8; 1 << 20]));
    assert!(peak >= 1 << 20, "counted while on: {peak}");
    assert!(tapegrad_data::counting_enabled());
    tapegrad_data::stop_counting();
    assert!(!tapegrad_data::counting_enabled());
    let before = tapegrad_data::current_bytes();
    let (v, peak) = tapegrad_data::measure_peak(|| std::hint::black_box(vec![1u8; 1 << 20]));
    assert_eq!(peak, 0, "nothing is counted once stopped");
    drop(v);
    assert_eq!(tapegrad_data::current_bytes(), before);
}
