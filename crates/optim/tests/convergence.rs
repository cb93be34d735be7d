//! Convergence: every optimiser reaches the minimum of a quadratic, and the usual ones the
//! minimum (1, 1) of the Rosenbrock function, with gradients from tapegrad's autograd (f64).

use tapegrad::{DType, Tensor};
use tapegrad_nn::Param;
use tapegrad_optim::*;

type MakeOne = fn(Param) -> Box<dyn Optimizer>;
type MakeMany = fn(Vec<Param>) -> Box<dyn Optimizer>;

/// f(w) = ½ Σ a_i w_i² − b·w, minimum at w* = b / a.
#[test]
fn every_optimiser_minimises_a_quadratic() {
    let a = Tensor::from_vec(vec![1.0f64, 4.0, 0.5], &[3]);
    let b = Tensor::from_vec(vec![1.0f64, -2.0, 0.25], &[3]);
    let w_star = [1.0, -0.5, 0.5];
    let cases: Vec<(&str, usize, MakeOne)> = vec![
        ("sgd", 300, |p| {
            Box::new(Sgd::new(
                [p],
                SgdConfig {
                    lr: 0.2,
                    ..Default::default()
                },
            ))
        }),
        ("sgd nesterov", 300, |p| {
            Box::new(Sgd::new(
                [p],
                SgdConfig {
                    lr: 0.1,
                    momentum: 0.9,
                    nesterov: true,
                    ..Default::default()
                },
            ))
        }),
        ("adam", 2000, |p| {
            Box::new(Adam::new(
                [p],
                AdamConfig {
                    lr: 0.01,
                    ..Default::default()
                },
            ))
        }),
        ("adam amsgrad", 2000, |p| {
            Box::new(Adam::new(
                [p],
                AdamConfig {
                    lr: 0.01,
                    amsgrad: true,
                    ..Default::default()
                },
            ))
        }),
        ("adamw", 2000, |p| {
            Box::new(AdamW::new(
                [p],
                AdamWConfig {
                    lr: 0.01,
                    weight_decay: 0.0,
                    ..Default::default()
                },
            ))
        }),
        ("rmsprop", 3000, |p| {
            Box::new(RmsProp::new(
                [p],
                RmsPropConfig {
                    lr: 0.005,
                    ..Default::default()
                },
            ))
        }),
        ("rmsprop centered momentum", 2000, |p| {
            Box::new(RmsProp::new(
                [p],
                RmsPropConfig {
                    lr: 0.001,
                    momentum: 0.9,
                    centered: true,
                    ..Default::default()
                },
            ))
        }),
        ("adagrad", 2000, |p| {
            Box::new(AdaGrad::new(
                [p],
                AdaGradConfig {
                    lr: 0.5,
                    ..Default::default()
                },
            ))
        }),
        ("lars", 1000, |p| {
            Box::new(Lars::new(
                [p],
                LarsConfig {
                    lr: 1.0,
                    momentum: 0.9,
                    trust_coefficient: 0.02,
                    ..Default::default()
                },
            ))
        }),
        ("lamb", 3000, |p| {
            Box::new(Lamb::new(
                [p],
                LambConfig {
                    lr: 0.002,
                    weight_decay: 0.0,
                    ..Default::default()
                },
            ))
        }),
    ];
    for (name, steps, make) in cases {
        let w = Param::new(Tensor::from_vec(vec![-2.0f64, 2.0, 3.0], &[3]));
        let mut opt = make(w.clone());
        for _ in 0..steps {
            let loss = (&(&a * &w.square()) * 0.5).sum() - (&b * &*w).sum();
            opt.step(&loss.backward());
        }
        let got = w.to_vec::<f64>();
        for i in 0..3 {
            assert!(
                (got[i] - w_star[i]).abs() < 1e-2,
                "{name}: {got:?} vs {w_star:?}"
            );
        }
    }
}

/// f(x, y) = (1 − x)² + 100 (y − x²)², from (−1.2, 1): a curved valley.
#[test]
fn rosenbrock() {
    let cases: Vec<(&str, usize, MakeMany)> = vec![
        ("sgd momentum", 20000, |p| {
            Box::new(Sgd::new(
                p,
                SgdConfig {
                    lr: 5e-4,
                    momentum: 0.9,
                    ..Default::default()
                },
            ))
        }),
        ("adam", 10000, |p| {
            Box::new(Adam::new(
                p,
                AdamConfig {
                    lr: 0.01,
                    ..Default::default()
                },
            ))
        }),
        ("rmsprop", 10000, |p| {
            Box::new(RmsProp::new(
                p,
                RmsPropConfig {
                    lr: 1e-3,
                    momentum: 0.9,
                    ..Default::default()
                },
            ))
        }),
    ];
    for (name, steps, make) in cases {
        let x = Param::new(Tensor::full(&[1], -1.2, DType::F64));
        let y = Param::new(Tensor::full(&[1], 1.0, DType::F64));
        let mut opt = make(vec![x.clone(), y.clone()]);
        let f = || (x.rsub_scalar(1.0).square() + (&*y - &x.square()).square() * 100.0).sum();
        let start = f().item();
        for _ in 0..steps {
            opt.step(&f().backward());
        }
        let (xv, yv) = (x.item(), y.item());
        assert!(
            (xv - 1.0).abs() < 2e-2 && (yv - 1.0).abs() < 4e-2,
            "{name}: ended at ({xv}, {yv}), f = {} (from {start})",
            f().item()
        );
    }
}
