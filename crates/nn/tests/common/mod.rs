//! A small central-difference gradient checker in f64, shared by the nn tests.
//!
//! `gradcheck` compares the gradient of `sum(f() * r)` (a fixed random cotangent `r`)
//! from backward against central differences, perturbing each element of each tensor in
//! `wrt` in place (inputs and parameters alike). `gradgradcheck` does the same for the
//! scalar `sum_i sum(grad_i * v_i)` built with `backward_with_graph`, which checks every
//! second derivative the rules record.
#![allow(dead_code)]

use ndarray::ArrayViewMutD;
use tapegrad::{no_grad, DType, Tensor};

const H: f64 = 1e-6;

fn set(t: &Tensor, k: usize, v: f64) {
    t.update_(|mut a: ArrayViewMutD<f64>| *a.iter_mut().nth(k).expect("index in range") = v);
}

fn get(t: &Tensor, k: usize) -> f64 {
    t.to_vec::<f64>()[k]
}

fn close(a: f64, n: f64, atol: f64, rtol: f64) -> bool {
    (a - n).abs() <= atol + rtol * n.abs()
}

/// Checks d/dt sum(f() * r) for every `t` in `wrt` (f64 leaves that require grad).
#[track_caller]
pub fn gradcheck(label: &str, f: &dyn Fn() -> Tensor, wrt: &[(&str, &Tensor)]) {
    let y = f();
    assert_eq!(y.dtype(), DType::F64, "{label}: gradcheck needs f64");
    let r = Tensor::randn(y.shape(), DType::F64, 12345);
    let scalar = |y: &Tensor| y.mul(&r).sum();
    let grads = scalar(&y).backward();
    for (name, t) in wrt {
        let analytic = grads
            .get(t)
            .map(|g| g.to_vec::<f64>())
            .unwrap_or_else(|| vec![0.0; t.numel()]);
        for (k, &a) in analytic.iter().enumerate() {
            let orig = get(t, k);
            set(t, k, orig + H);
            let lp = no_grad(|| scalar(&f()).item());
            set(t, k, orig - H);
            let lm = no_grad(|| scalar(&f()).item());
            set(t, k, orig);
            let numeric = (lp - lm) / (2.0 * H);
            assert!(
                close(a, numeric, 1e-5, 1e-4),
                "{label}: d/d{name}[{k}]: backward {a} vs finite difference {numeric}"
            );
        }
    }
}

/// Checks the second derivatives: the gradient of `sum_i sum(dL/dt_i * v_i)` (with
/// `L = sum(f() * r)`) with respect to every `t` in `wrt`.
#[track_caller]
pub fn gradgradcheck(label: &str, f: &dyn Fn() -> Tensor, wrt: &[(&str, &Tensor)]) {
    let y0 = f();
    let r = Tensor::randn(y0.shape(), DType::F64, 777);
    let vs: Vec<Tensor> = wrt
        .iter()
        .enumerate()
        .map(|(i, (_, t))| Tensor::randn(t.shape(), DType::F64, 900 + i as u64))
        .collect();
    // G = sum_i <dL/dt_i, v_i>; with graph so G can be differentiated.
    let g_of = |graph: bool| -> Tensor {
        let l = f().mul(&r).sum();
        let grads = if graph {
            l.backward_with_graph()
        } else {
            l.backward()
        };
        let mut total = Tensor::zeros(&[], DType::F64);
        for ((_, t), v) in wrt.iter().zip(&vs) {
            if let Some(g) = grads.get(t) {
                total = total.add(&g.mul(v).sum());
            }
        }
        total
    };
    let g = g_of(true);
    let second = if g.tracks_grad() {
        Some(g.backward())
    } else {
        None
    };
    for (name, t) in wrt {
        let analytic = second
            .as_ref()
            .and_then(|s| s.get(t))
            .map(|g| g.to_vec::<f64>())
            .unwrap_or_else(|| vec![0.0; t.numel()]);
        for (k, &a) in analytic.iter().enumerate() {
            let orig = get(t, k);
            set(t, k, orig + H);
            let gp = g_of(false).item();
            set(t, k, orig - H);
            let gm = g_of(false).item();
            set(t, k, orig);
            let numeric = (gp - gm) / (2.0 * H);
            assert!(
                close(a, numeric, 1e-4, 1e-3),
                "{label}: second order d/d{name}[{k}]: backward {a} vs finite difference {numeric}"
            );
        }
    }
}

/// A leaf copy of `t` that requires grad (f64).
pub fn leaf(t: &Tensor) -> Tensor {
    t.to_dtype(DType::F64).detach().requires_grad()
}
