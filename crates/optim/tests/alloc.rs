//! Zero heap allocations per step after the first, measured with a counting global
//! allocator (this file is its own test binary, with a single test, so nothing else
//! allocates while it counts).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use tapegrad::{DType, Grads, Tensor};
use tapegrad_nn::Param;
use tapegrad_optim::*;

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_of(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    f();
    ALLOCATIONS.load(Ordering::SeqCst) - before
}

#[test]
fn steps_after_the_first_do_not_allocate() {
    type Make = fn(Vec<Param>) -> Box<dyn Optimizer>;
    let cases: Vec<(&str, Make)> = vec![
        ("sgd momentum", |p| {
            Box::new(Sgd::new(
                p,
                SgdConfig {
                    momentum: 0.9,
                    weight_decay: 1e-4,
                    ..Default::default()
                },
            ))
        }),
        ("sgd nesterov", |p| {
            Box::new(Sgd::new(
                p,
                SgdConfig {
                    momentum: 0.9,
                    nesterov: true,
                    ..Default::default()
                },
            ))
        }),
        ("adam", |p| Box::new(Adam::new(p, AdamConfig::default()))),
        ("adam amsgrad", |p| {
            Box::new(Adam::new(
                p,
                AdamConfig {
                    amsgrad: true,
                    weight_decay: 0.1,
                    ..Default::default()
                },
            ))
        }),
        ("adamw", |p| Box::new(AdamW::new(p, AdamWConfig::default()))),
        ("rmsprop", |p| {
            Box::new(RmsProp::new(
                p,
                RmsPropConfig {
                    momentum: 0.9,
                    centered: true,
                    ..Default::default()
                },
            ))
        }),
        ("adagrad", |p| {
            Box::new(AdaGrad::new(p, AdaGradConfig::default()))
        }),
        ("lars", |p| {
            Box::new(Lars::new(
                p,
                LarsConfig {
                    weight_decay: 1e-4,
                    ..Default::default()
                },
            ))
        }),
        ("lamb", |p| Box::new(Lamb::new(p, LambConfig::default()))),
    ];
    for dtype in [DType::F32, DType::F64] {
        for (name, make) in &cases {
            let params = vec![
                Param::new(Tensor::randn(&[64, 32], dtype, 1)),
                Param::new(Tensor::randn(&[32], dtype, 2)),
                Param::new(Tensor::randn(&[4, 3, 3, 3], dtype, 3)),
            ];
            let mut grads = Grads::new();
            for (i, p) in params.iter().enumerate() {
                grads.insert(p, Tensor::randn(p.shape(), dtype, 10 + i as u64));
            }
            let mut opt = make(params.clone());
            let first = allocations_of(|| opt.step(&grads));
            assert!(
                first > 0,
                "{name}: the first step should create the state (or the counter is broken)"
            );
            let later = allocations_of(|| {
                for _ in 0..5 {
                    opt.step(&grads);
                }
            });
            assert_eq!(
                later, 0,
                "{name} {dtype}: {later} allocations in 5 steps after the first"
            );
        }
    }
    // clipping in place does not allocate either, once the parameter list is built
    let p = Param::new(Tensor::randn(&[100], DType::F32, 5));
    let mut grads = Grads::new();
    grads.insert(&p, Tensor::randn(&[100], DType::F32, 6));
    let ps = [p];
    let n = allocations_of(|| {
        clip_grad_norm(&mut grads, &ps, 0.1, 2.0, true).unwrap();
    });
    // one Vec for the collected parameter list
    assert!(n <= 1, "clip_grad_norm allocated {n} times");
}
