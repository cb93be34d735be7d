//! One Adam step over 1M f32 parameters (a 1000 x 1000 weight), in place; also counts the
//! heap allocations of the steps after the first (there must be none).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use criterion::{criterion_group, criterion_main, Criterion};
use tapegrad::{DType, Grads, Tensor};
use tapegrad_nn::Param;
use tapegrad_optim::{Adam, AdamConfig, Optimizer};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn adam_step(c: &mut Criterion) {
    let w = Param::new(Tensor::randn(&[1000, 1000], DType::F32, 0));
    let mut grads = Grads::new();
    grads.insert(&w, Tensor::randn(&[1000, 1000], DType::F32, 1));
    let mut opt = Adam::new([w.clone()], AdamConfig::default());
    opt.step(&grads); // allocates the moment buffers
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..10 {
        opt.step(&grads);
    }
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
    println!("adam_step: {allocations} heap allocations in 10 steps after the first");
    assert_eq!(allocations, 0, "Adam::step allocated after its first step");
    c.bench_function("adam_step_1M_f32", |b| b.iter(|| opt.step(&grads)));
}

criterion_group!(benches, adam_step);
criterion_main!(benches);
