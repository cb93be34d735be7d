//! Five-step trajectories of every optimiser on a small f64 quadratic, against
//! references written here from the documented equations with plain f64 arithmetic
//! (not by calling the optimisers).
//!
//! f(w) = Σ_i ½ a_i w_i² − b_i w_i over two parameter tensors w_A (2 elements) and
//! w_B (1 element), so ∇f_i = a_i w_i − b_i; the layer-wise optimisers see two layers.

use tapegrad::{Grads, Tensor};
use tapegrad_nn::Param;
use tapegrad_optim::*;

const A: [f64; 3] = [1.0, 3.0, 0.5];
const B: [f64; 3] = [1.0, -2.0, 0.5];
const W0: [f64; 3] = [0.5, -1.0, 2.0];
/// Which elements form each parameter tensor.
const LAYERS: [std::ops::Range<usize>; 2] = [0..2, 2..3];
const STEPS: usize = 5;
const TOL: f64 = 1e-10;

fn params() -> Vec<Param> {
    LAYERS
        .iter()
        .map(|r| Param::new(Tensor::from_vec(W0[r.clone()].to_vec(), &[r.len()])))
        .collect()
}

/// Gradients by autograd of the loss built from tensor ops.
fn grads(ps: &[Param]) -> Grads {
    let mut loss = Tensor::scalar(0.0f64);
    for (p, r) in ps.iter().zip(LAYERS) {
        let a = Tensor::from_vec(A[r.clone()].to_vec(), &[r.len()]);
        let b = Tensor::from_vec(B[r.clone()].to_vec(), &[r.len()]);
        loss = &loss + &((&(&a * &p.square()) * 0.5).sum() - (&b * &**p).sum());
    }
    loss.backward()
}

fn values(ps: &[Param]) -> Vec<f64> {
    ps.iter().flat_map(|p| p.to_vec::<f64>()).collect()
}

/// Runs `opt` for STEPS steps, returning the parameters after each.
fn run(mut make: impl FnMut(Vec<Param>) -> Box<dyn Optimizer>) -> Vec<Vec<f64>> {
    let ps = params();
    let mut opt = make(ps.clone());
    (0..STEPS)
        .map(|_| {
            opt.step(&grads(&ps));
            values(&ps)
        })
        .collect()
}

fn grad_ref(w: &[f64]) -> Vec<f64> {
    (0..3).map(|i| A[i] * w[i] - B[i]).collect()
}

fn assert_close(got: &[Vec<f64>], want: &[Vec<f64>], what: &str) {
    for (t, (g, w)) in got.iter().zip(want).enumerate() {
        for i in 0..3 {
            assert!(
                (g[i] - w[i]).abs() < TOL,
                "{what}: step {} element {i}: optimiser {} vs reference {}",
                t + 1,
                g[i],
                w[i]
            );
        }
    }
}

fn assert_differs(a: &[Vec<f64>], b: &[Vec<f64>], what: &str) {
    let diff: f64 = a
        .iter()
        .flatten()
        .zip(b.iter().flatten())
        .map(|(x, y)| (x - y).abs())
        .sum();
    assert!(
        diff > 1e-6,
        "{what}: the variant has no effect on the trajectory (so the test would not see it)"
    );
}

// ------------------------------------------------------------------- SGD

#[derive(Clone, Copy)]
struct SgdRef {
    lr: f64,
    mu: f64,
    damp: f64,
    wd: f64,
    nesterov: bool,
    maximize: bool,
}

fn sgd_ref(h: SgdRef) -> Vec<Vec<f64>> {
    let mut w = W0.to_vec();
    let mut buf: Option<Vec<f64>> = None;
    let mut out = vec![];
    for _ in 0..STEPS {
        let mut g = grad_ref(&w);
        for i in 0..3 {
            if h.maximize {
                g[i] = -g[i];
            }
            g[i] += h.wd * w[i];
        }
        if h.mu != 0.0 {
            let b = match buf.take() {
                None => g.clone(),
                Some(b) => (0..3)
                    .map(|i| h.mu * b[i] + (1.0 - h.damp) * g[i])
                    .collect(),
            };
            for i in 0..3 {
                g[i] = if h.nesterov { g[i] + h.mu * b[i] } else { b[i] };
            }
            buf = Some(b);
        }
        for i in 0..3 {
            w[i] -= h.lr * g[i];
        }
        out.push(w.clone());
    }
    out
}

fn sgd_run(h: SgdRef) -> Vec<Vec<f64>> {
    run(|ps| {
        Box::new(Sgd::new(
            ps,
            SgdConfig {
                lr: h.lr,
                momentum: h.mu,
                dampening: h.damp,
                weight_decay: h.wd,
                nesterov: h.nesterov,
                maximize: h.maximize,
            },
        ))
    })
}

#[test]
fn sgd_first_step_by_hand() {
    // g = a w - b = (0.5 - 1, -3 + 2, 1 - 0.5) = (-0.5, -1, 0.5); w - 0.1 g
    let got = sgd_run(SgdRef {
        lr: 0.1,
        mu: 0.0,
        damp: 0.0,
        wd: 0.0,
        nesterov: false,
        maximize: false,
    });
    assert_close(&got[..1], &[vec![0.55, -0.9, 1.95]], "sgd step 1");
}

#[test]
fn sgd_variants() {
    let base = SgdRef {
        lr: 0.1,
        mu: 0.0,
        damp: 0.0,
        wd: 0.0,
        nesterov: false,
        maximize: false,
    };
    let plain = sgd_ref(base);
    let variants = [
        ("momentum", SgdRef { mu: 0.9, ..base }),
        (
            "momentum+dampening",
            SgdRef {
                mu: 0.9,
                damp: 0.3,
                ..base
            },
        ),
        (
            "nesterov",
            SgdRef {
                mu: 0.9,
                nesterov: true,
                ..base
            },
        ),
        ("weight decay", SgdRef { wd: 0.1, ..base }),
        (
            "momentum+weight decay",
            SgdRef {
                mu: 0.5,
                wd: 0.2,
                ..base
            },
        ),
        (
            "maximize",
            SgdRef {
                maximize: true,
                ..base
            },
        ),
    ];
    assert_close(&sgd_run(base), &plain, "sgd");
    for (name, h) in variants {
        let want = sgd_ref(h);
        assert_differs(&want, &plain, name);
        assert_close(&sgd_run(h), &want, name);
    }
}

// ------------------------------------------------------------------- Adam / AdamW

#[derive(Clone, Copy)]
struct AdamRef {
    lr: f64,
    b1: f64,
    b2: f64,
    eps: f64,
    wd: f64,
    decoupled: bool,
    amsgrad: bool,
}

fn adam_ref(h: AdamRef) -> Vec<Vec<f64>> {
    let mut w = W0.to_vec();
    let (mut m, mut v, mut vmax) = (vec![0.0; 3], vec![0.0; 3], vec![0.0f64; 3]);
    let mut out = vec![];
    for t in 1..=STEPS as i32 {
        let mut g = grad_ref(&w);
        for i in 0..3 {
            if h.decoupled {
                w[i] *= 1.0 - h.lr * h.wd;
            } else {
                g[i] += h.wd * w[i];
            }
            m[i] = h.b1 * m[i] + (1.0 - h.b1) * g[i];
            v[i] = h.b2 * v[i] + (1.0 - h.b2) * g[i] * g[i];
            let m_hat = m[i] / (1.0 - h.b1.powi(t));
            let v_hat = if h.amsgrad {
                vmax[i] = vmax[i].max(v[i]);
                vmax[i] / (1.0 - h.b2.powi(t))
            } else {
                v[i] / (1.0 - h.b2.powi(t))
            };
            w[i] -= h.lr * m_hat / (v_hat.sqrt() + h.eps);
        }
        out.push(w.clone());
    }
    out
}

fn adam_run(h: AdamRef) -> Vec<Vec<f64>> {
    run(|ps| {
        if h.decoupled {
            Box::new(AdamW::new(
                ps,
                AdamWConfig {
                    lr: h.lr,
                    betas: (h.b1, h.b2),
                    eps: h.eps,
                    weight_decay: h.wd,
                    amsgrad: h.amsgrad,
                    maximize: false,
                },
            ))
        } else {
            Box::new(Adam::new(
                ps,
                AdamConfig {
                    lr: h.lr,
                    betas: (h.b1, h.b2),
                    eps: h.eps,
                    weight_decay: h.wd,
                    amsgrad: h.amsgrad,
                    maximize: false,
                },
            ))
        }
    })
}

#[test]
fn adam_first_step_by_hand() {
    // t = 1: m̂ = g, v̂ = g², so w -= lr g / (|g| + eps) ≈ lr sign(g); g = (-0.5, -1, 0.5)
    let h = AdamRef {
        lr: 0.1,
        b1: 0.9,
        b2: 0.999,
        eps: 1e-8,
        wd: 0.0,
        decoupled: false,
        amsgrad: false,
    };
    let got = adam_run(h);
    let step = |g: f64| 0.1 * g / (g.abs() + 1e-8);
    assert_close(
        &got[..1],
        &[vec![0.5 - step(-0.5), -1.0 - step(-1.0), 2.0 - step(0.5)]],
        "adam step 1",
    );
}

#[test]
fn adam_variants() {
    let base = AdamRef {
        lr: 0.1,
        b1: 0.9,
        b2: 0.999,
        eps: 1e-8,
        wd: 0.0,
        decoupled: false,
        amsgrad: false,
    };
    let plain = adam_ref(base);
    assert_close(&adam_run(base), &plain, "adam");
    // β2 = 0.5 lets v shrink within five steps, where AMSGrad's max differs from v
    let fast = AdamRef { b2: 0.5, ..base };
    let variants = [
        ("adam l2 weight decay", AdamRef { wd: 0.1, ..base }),
        (
            "adam amsgrad",
            AdamRef {
                amsgrad: true,
                ..fast
            },
        ),
        (
            "adamw",
            AdamRef {
                wd: 0.1,
                decoupled: true,
                ..base
            },
        ),
        (
            "adamw amsgrad",
            AdamRef {
                wd: 0.1,
                decoupled: true,
                amsgrad: true,
                ..fast
            },
        ),
        ("adam large eps", AdamRef { eps: 0.1, ..base }),
    ];
    for (name, h) in variants {
        let want = adam_ref(h);
        assert_differs(&want, &plain, name);
        assert_close(&adam_run(h), &want, name);
    }
    assert_differs(
        &adam_ref(AdamRef {
            amsgrad: true,
            ..fast
        }),
        &adam_ref(fast),
        "amsgrad vs not",
    );
    assert_differs(
        &adam_ref(AdamRef {
            wd: 0.1,
            decoupled: true,
            ..base
        }),
        &adam_ref(AdamRef { wd: 0.1, ..base }),
        "decoupled vs l2",
    );
}

#[test]
fn adamw_default_weight_decay_is_pytorchs() {
    assert_eq!(AdamWConfig::default().weight_decay, 1e-2);
    assert_eq!(AdamConfig::default().weight_decay, 0.0);
    assert_eq!(AdamConfig::default().betas, (0.9, 0.999));
    assert_eq!(AdamConfig::default().eps, 1e-8);
}

// ------------------------------------------------------------------- RMSprop

#[derive(Clone, Copy)]
struct RmsRef {
    lr: f64,
    alpha: f64,
    eps: f64,
    wd: f64,
    mu: f64,
    centered: bool,
}

fn rms_ref(h: RmsRef) -> Vec<Vec<f64>> {
    let mut w = W0.to_vec();
    let (mut v, mut gavg, mut b) = (vec![0.0; 3], vec![0.0; 3], vec![0.0; 3]);
    let mut out = vec![];
    for _ in 0..STEPS {
        let mut g = grad_ref(&w);
        for i in 0..3 {
            g[i] += h.wd * w[i];
            v[i] = h.alpha * v[i] + (1.0 - h.alpha) * g[i] * g[i];
            let mut v_tilde = v[i];
            if h.centered {
                gavg[i] = h.alpha * gavg[i] + (1.0 - h.alpha) * g[i];
                v_tilde -= gavg[i] * gavg[i];
            }
            if h.mu > 0.0 {
                b[i] = h.mu * b[i] + g[i] / (v_tilde.sqrt() + h.eps);
                w[i] -= h.lr * b[i];
            } else {
                w[i] -= h.lr * g[i] / (v_tilde.sqrt() + h.eps);
            }
        }
        out.push(w.clone());
    }
    out
}

fn rms_run(h: RmsRef) -> Vec<Vec<f64>> {
    run(|ps| {
        Box::new(RmsProp::new(
            ps,
            RmsPropConfig {
                lr: h.lr,
                alpha: h.alpha,
                eps: h.eps,
                weight_decay: h.wd,
                momentum: h.mu,
                centered: h.centered,
                maximize: false,
            },
        ))
    })
}

#[test]
fn rmsprop_variants() {
    let base = RmsRef {
        lr: 0.01,
        alpha: 0.99,
        eps: 1e-8,
        wd: 0.0,
        mu: 0.0,
        centered: false,
    };
    let plain = rms_ref(base);
    assert_close(&rms_run(base), &plain, "rmsprop");
    let variants = [
        ("rmsprop alpha", RmsRef { alpha: 0.9, ..base }),
        (
            "rmsprop centered",
            RmsRef {
                centered: true,
                ..base
            },
        ),
        ("rmsprop momentum", RmsRef { mu: 0.9, ..base }),
        (
            "rmsprop centered+momentum",
            RmsRef {
                mu: 0.9,
                centered: true,
                ..base
            },
        ),
        ("rmsprop weight decay", RmsRef { wd: 0.5, ..base }),
    ];
    for (name, h) in variants {
        let want = rms_ref(h);
        assert_differs(&want, &plain, name);
        assert_close(&rms_run(h), &want, name);
    }
}

// ------------------------------------------------------------------- AdaGrad

#[derive(Clone, Copy)]
struct AdaRef {
    lr: f64,
    lr_decay: f64,
    wd: f64,
    init: f64,
    eps: f64,
}

fn ada_ref(h: AdaRef) -> Vec<Vec<f64>> {
    let mut w = W0.to_vec();
    let mut sum = [h.init; 3];
    let mut out = vec![];
    for t in 1..=STEPS {
        let clr = h.lr / (1.0 + (t as f64 - 1.0) * h.lr_decay);
        let mut g = grad_ref(&w);
        for i in 0..3 {
            g[i] += h.wd * w[i];
            sum[i] += g[i] * g[i];
            w[i] -= clr * g[i] / (sum[i].sqrt() + h.eps);
        }
        out.push(w.clone());
    }
    out
}

fn ada_run(h: AdaRef) -> Vec<Vec<f64>> {
    run(|ps| {
        Box::new(AdaGrad::new(
            ps,
            AdaGradConfig {
                lr: h.lr,
                lr_decay: h.lr_decay,
                weight_decay: h.wd,
                initial_accumulator_value: h.init,
                eps: h.eps,
                maximize: false,
            },
        ))
    })
}

#[test]
fn adagrad_variants() {
    let base = AdaRef {
        lr: 0.1,
        lr_decay: 0.0,
        wd: 0.0,
        init: 0.0,
        eps: 1e-10,
    };
    let plain = ada_ref(base);
    assert_close(&ada_run(base), &plain, "adagrad");
    let variants = [
        (
            "adagrad lr_decay",
            AdaRef {
                lr_decay: 0.5,
                ..base
            },
        ),
        ("adagrad initial accumulator", AdaRef { init: 0.7, ..base }),
        ("adagrad weight decay", AdaRef { wd: 0.3, ..base }),
    ];
    for (name, h) in variants {
        let want = ada_ref(h);
        assert_differs(&want, &plain, name);
        assert_close(&ada_run(h), &want, name);
    }
}

// ------------------------------------------------------------------- LARS

#[derive(Clone, Copy)]
struct LarsRef {
    lr: f64,
    mu: f64,
    wd: f64,
    eta: f64,
    exclude: bool,
}

fn norm(x: &[f64]) -> f64 {
    x.iter().map(|v| v * v).sum::<f64>().sqrt()
}

fn lars_ref(h: LarsRef) -> Vec<Vec<f64>> {
    let mut w = W0.to_vec();
    let mut v = [0.0; 3];
    let mut out = vec![];
    for _ in 0..STEPS {
        let g = grad_ref(&w);
        for r in LAYERS {
            let (wn, gn) = (norm(&w[r.clone()]), norm(&g[r.clone()]));
            let local = if h.exclude || wn == 0.0 || gn == 0.0 {
                1.0
            } else {
                h.eta * wn / (gn + h.wd * wn)
            };
            for i in r {
                v[i] = h.mu * v[i] + h.lr * local * (g[i] + h.wd * w[i]);
                w[i] -= v[i];
            }
        }
        out.push(w.clone());
    }
    out
}

fn lars_run(h: LarsRef) -> Vec<Vec<f64>> {
    run(|ps| {
        Box::new(Lars::new(
            ps,
            LarsConfig {
                lr: h.lr,
                momentum: h.mu,
                weight_decay: h.wd,
                trust_coefficient: h.eta,
                exclude: h.exclude,
            },
        ))
    })
}

#[test]
fn lars_variants() {
    let base = LarsRef {
        lr: 1.0,
        mu: 0.0,
        wd: 0.0,
        eta: 0.1,
        exclude: false,
    };
    let plain = lars_ref(base);
    assert_close(&lars_run(base), &plain, "lars");
    let variants = [
        ("lars momentum", LarsRef { mu: 0.9, ..base }),
        ("lars weight decay", LarsRef { wd: 0.05, ..base }),
        (
            "lars momentum+weight decay",
            LarsRef {
                mu: 0.9,
                wd: 0.05,
                ..base
            },
        ),
        (
            "lars excluded",
            LarsRef {
                exclude: true,
                lr: 0.1,
                ..base
            },
        ),
    ];
    for (name, h) in variants {
        let want = lars_ref(h);
        assert_differs(&want, &plain, name);
        assert_close(&lars_run(h), &want, name);
    }
}

// ------------------------------------------------------------------- LAMB

#[derive(Clone, Copy)]
struct LambRef {
    lr: f64,
    b1: f64,
    b2: f64,
    eps: f64,
    wd: f64,
    exclude: bool,
}

fn lamb_ref(h: LambRef) -> Vec<Vec<f64>> {
    let mut w = W0.to_vec();
    let (mut m, mut v) = (vec![0.0; 3], vec![0.0; 3]);
    let mut out = vec![];
    for t in 1..=STEPS as i32 {
        let g = grad_ref(&w);
        for layer in LAYERS {
            let mut r = vec![];
            for i in layer.clone() {
                m[i] = h.b1 * m[i] + (1.0 - h.b1) * g[i];
                v[i] = h.b2 * v[i] + (1.0 - h.b2) * g[i] * g[i];
                let m_hat = m[i] / (1.0 - h.b1.powi(t));
                let v_hat = v[i] / (1.0 - h.b2.powi(t));
                r.push(m_hat / (v_hat.sqrt() + h.eps) + h.wd * w[i]);
            }
            let (wn, rn) = (norm(&w[layer.clone()]), norm(&r));
            let ratio = if h.exclude || wn == 0.0 || rn == 0.0 {
                1.0
            } else {
                wn / rn
            };
            for (k, i) in layer.enumerate() {
                w[i] -= h.lr * ratio * r[k];
            }
        }
        out.push(w.clone());
    }
    out
}

fn lamb_run(h: LambRef) -> Vec<Vec<f64>> {
    run(|ps| {
        Box::new(Lamb::new(
            ps,
            LambConfig {
                lr: h.lr,
                betas: (h.b1, h.b2),
                eps: h.eps,
                weight_decay: h.wd,
                exclude: h.exclude,
            },
        ))
    })
}

#[test]
fn lamb_variants() {
    let base = LambRef {
        lr: 0.05,
        b1: 0.9,
        b2: 0.999,
        eps: 1e-6,
        wd: 0.0,
        exclude: false,
    };
    let plain = lamb_ref(base);
    assert_close(&lamb_run(base), &plain, "lamb");
    let variants = [
        ("lamb weight decay", LambRef { wd: 0.1, ..base }),
        (
            "lamb excluded",
            LambRef {
                exclude: true,
                ..base
            },
        ),
        (
            "lamb betas",
            LambRef {
                b1: 0.5,
                b2: 0.9,
                ..base
            },
        ),
    ];
    for (name, h) in variants {
        let want = lamb_ref(h);
        assert_differs(&want, &plain, name);
        assert_close(&lamb_run(h), &want, name);
    }
}

#[test]
fn parameters_without_gradient_are_skipped() {
    let ps = params();
    let mut opt = Adam::new(
        ps.clone(),
        AdamConfig {
            lr: 0.1,
            ..AdamConfig::default()
        },
    );
    // a loss of the first parameter only
    let g = (&*ps[0] * &*ps[0]).sum().backward();
    opt.step(&g);
    assert_eq!(ps[1].to_vec::<f64>(), vec![W0[2]]);
    assert_ne!(ps[0].to_vec::<f64>(), W0[..2].to_vec());
    // and it has no state: the saved state lists parameter 0 only
    assert_eq!(
        opt.state_dict().state.keys().copied().collect::<Vec<_>>(),
        vec![0]
    );
}

#[test]
fn strided_parameters_and_gradients_take_the_same_steps() {
    // a transposed parameter and a transposed gradient are strided views: the kernels
    // then go through ndarray::Zip instead of flat slices, and must agree
    let wv: Vec<f64> = (0..6).map(|i| 0.3 * i as f64 - 0.7).collect();
    let gv: Vec<f64> = (0..6).map(|i| 0.2 * (i as f64).sin() + 0.1).collect();
    let run = |w: Tensor, g: Tensor| {
        let p = Param::new(w);
        let mut opt = RmsProp::new(
            [p.clone()],
            RmsPropConfig {
                momentum: 0.5,
                centered: true,
                ..Default::default()
            },
        );
        let mut grads = Grads::new();
        grads.insert(&p, g);
        for _ in 0..3 {
            opt.step(&grads);
        }
        p.to_vec::<f64>()
    };
    // the transpose of a row-major [3, 2] array, written out row-major
    let transposed = |v: &[f64]| {
        Tensor::from_vec(
            (0..6).map(|k| v[(k % 3) * 2 + k / 3]).collect::<Vec<_>>(),
            &[2, 3],
        )
    };
    let strided = |v: &[f64]| Tensor::from_vec(v.to_vec(), &[3, 2]).t();
    assert_eq!(
        strided(&wv).to_vec::<f64>(),
        transposed(&wv).to_vec::<f64>()
    );
    let contiguous = run(transposed(&wv), transposed(&gv));
    let strided_param = run(strided(&wv), transposed(&gv));
    let strided_grad = run(transposed(&wv), strided(&gv));
    assert_eq!(contiguous, strided_param);
    assert_eq!(contiguous, strided_grad);
    // and the values are those of the element-wise rule (first element, by hand)
    let (w, g) = (wv[0], gv[0]); // element (0, 0) is the same in both layouts
    let mut want = w;
    let (mut v, mut ga, mut b) = (0.0, 0.0, 0.0);
    for _ in 0..3 {
        v = 0.99 * v + 0.01 * g * g;
        ga = 0.99 * ga + 0.01 * g;
        b = 0.5 * b + g / ((v - ga * ga).sqrt() + 1e-8);
        want -= 0.01 * b;
    }
    assert!((contiguous[0] - want).abs() < 1e-12);
}

#[test]
#[should_panic(expected = "optimiser")]
fn the_comparison_catches_a_slightly_wrong_rule() {
    // momentum with dampening 0.05 against a reference without: the comparison must fail
    let h = SgdRef {
        lr: 0.1,
        mu: 0.9,
        damp: 0.0,
        wd: 0.0,
        nesterov: false,
        maximize: false,
    };
    assert_close(
        &sgd_run(SgdRef { damp: 0.05, ..h }),
        &sgd_ref(h),
        "deliberately wrong",
    );
}
