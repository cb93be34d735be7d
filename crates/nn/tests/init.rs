//! Initialisers: bounds, moments and structure against their definitions; determinism
//! by seed; layer defaults matching PyTorch's.

use tapegrad::{DType, Tensor};
use tapegrad_nn::init::*;
use tapegrad_nn::*;

fn stats(t: &Tensor) -> (f64, f64, f64) {
    let v = t.to_vec::<f64>();
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    let max = v.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    (mean, var.sqrt(), max)
}

#[test]
fn gains_and_fans() {
    assert_eq!(calculate_gain(Nonlinearity::Linear), 1.0);
    assert_eq!(calculate_gain(Nonlinearity::Sigmoid), 1.0);
    assert_eq!(calculate_gain(Nonlinearity::Tanh), 5.0 / 3.0);
    assert_eq!(calculate_gain(Nonlinearity::Relu), 2f64.sqrt());
    assert!(
        (calculate_gain(Nonlinearity::LeakyRelu(0.01)) - (2.0 / 1.0001f64).sqrt()).abs() < 1e-15
    );
    assert_eq!(fans(&[10, 20]), (20, 10));
    assert_eq!(fans(&[8, 4, 3, 3]), (36, 72));
}

#[test]
fn uniform_family_bounds_and_spread() {
    let shape = [200, 300];
    let (fi, fo) = (300.0f64, 200.0f64);
    let b = (6.0 / (fi + fo)).sqrt();
    let (m, s, mx) = stats(&xavier_uniform(&shape, 1.0, DType::F64, 0));
    assert!(
        mx <= b && mx > 0.99 * b && m.abs() < 0.01 && (s - b / 3f64.sqrt()).abs() < 0.01 * b,
        "{m} {s} {mx}"
    );
    let b = 2f64.sqrt() * (3.0 / fi).sqrt();
    let (_, s, mx) = stats(&kaiming_uniform(
        &shape,
        FanMode::FanIn,
        Nonlinearity::Relu,
        DType::F64,
        1,
    ));
    assert!(mx <= b && (s - b / 3f64.sqrt()).abs() < 0.01 * b);
    let b = 2f64.sqrt() * (3.0 / fo).sqrt();
    let (_, _, mx) = stats(&kaiming_uniform(
        &shape,
        FanMode::FanOut,
        Nonlinearity::Relu,
        DType::F64,
        2,
    ));
    assert!(mx <= b && mx > 0.99 * b);
    let (m, s, mx) = stats(&uniform(&shape, -3.0, 1.0, DType::F64, 3));
    assert!(mx <= 3.0 && (m + 1.0).abs() < 0.02 && (s - 4.0 / 12f64.sqrt()).abs() < 0.02);
}

#[test]
fn normal_family_moments() {
    let shape = [250, 400];
    let (fi, fo) = (400.0f64, 250.0f64);
    let (m, s, _) = stats(&xavier_normal(&shape, 2.0, DType::F64, 0));
    let want = 2.0 * (2.0 / (fi + fo)).sqrt();
    assert!(
        m.abs() < 0.01 * want * 10.0 && (s - want).abs() < 0.01 * want,
        "{s} vs {want}"
    );
    let (_, s, _) = stats(&kaiming_normal(
        &shape,
        FanMode::FanIn,
        Nonlinearity::Tanh,
        DType::F64,
        1,
    ));
    let want = 5.0 / 3.0 / fi.sqrt();
    assert!((s - want).abs() < 0.01 * want, "{s} vs {want}");
    let (m, s, _) = stats(&normal(&shape, 3.0, 0.5, DType::F64, 2));
    assert!((m - 3.0).abs() < 0.01 && (s - 0.5).abs() < 0.01);
    assert_eq!(
        constant(&[2, 2], 0.25, DType::F32).to_vec::<f32>(),
        vec![0.25; 4]
    );
    assert_eq!(zeros(&[3], DType::F64).to_vec::<f64>(), vec![0.0; 3]);
    assert_eq!(ones(&[3], DType::F64).to_vec::<f64>(), vec![1.0; 3]);
}

#[test]
fn orthogonal_is_orthonormal_for_tall_wide_and_conv_shapes() {
    for (shape, gain) in [
        (vec![6usize, 4usize], 1.0),
        (vec![3, 7], 2.0),
        (vec![4, 2, 2, 2], 1.0),
    ] {
        let q = orthogonal(&shape, gain, DType::F64, 5);
        let rows = shape[0];
        let m = q.reshape(&[rows as isize, -1]);
        let cols = m.shape()[1];
        // The smaller side is orthonormal (times gain^2).
        let prod = if rows >= cols {
            m.t().matmul(&m)
        } else {
            m.matmul(&m.t())
        };
        let k = rows.min(cols);
        let p = prod.to_vec::<f64>();
        for i in 0..k {
            for j in 0..k {
                let want = if i == j { gain * gain } else { 0.0 };
                assert!(
                    (p[i * k + j] - want).abs() < 1e-10,
                    "{shape:?}: [{i},{j}] = {}",
                    p[i * k + j]
                );
            }
        }
    }
}

#[test]
fn seeded_and_deterministic() {
    let a = xavier_uniform(&[5, 5], 1.0, DType::F32, 7).to_vec::<f32>();
    assert_eq!(
        a,
        xavier_uniform(&[5, 5], 1.0, DType::F32, 7).to_vec::<f32>()
    );
    assert_ne!(
        a,
        xavier_uniform(&[5, 5], 1.0, DType::F32, 8).to_vec::<f32>()
    );
    assert_eq!(
        orthogonal(&[4, 4], 1.0, DType::F64, 1).to_vec::<f64>(),
        orthogonal(&[4, 4], 1.0, DType::F64, 1).to_vec::<f64>()
    );
}

#[test]
fn layer_defaults_match_pytorch() {
    // Linear: weight and bias in [-1/sqrt(in), 1/sqrt(in)), spread like a uniform.
    let lin = Linear::new(400, 300, 0);
    let b = 1.0 / 400f64.sqrt();
    let (m, s, mx) = stats(&lin.weight.to_dtype(DType::F64));
    assert!(
        mx <= b
            && mx > 0.99 * b
            && m.abs() < 0.01 * b * 10.0
            && (s - b / 3f64.sqrt()).abs() < 0.01 * b
    );
    let (_, _, mx) = stats(&lin.bias.as_ref().unwrap().to_dtype(DType::F64));
    assert!(mx <= b && mx > 0.9 * b);
    // Conv2d: fan_in = in / groups * kh * kw.
    let conv = Conv2d::with_options(
        8,
        16,
        [3, 5],
        Conv2dOptions {
            groups: 2,
            ..Default::default()
        },
        0,
    );
    assert_eq!(conv.weight.shape(), &[16, 4, 3, 5]);
    let b = 1.0 / (4.0f64 * 15.0).sqrt();
    let (_, _, mx) = stats(&conv.weight.to_dtype(DType::F64));
    assert!(mx <= b && mx > 0.98 * b, "{mx} vs {b}");
    let (_, _, mx) = stats(&conv.bias.as_ref().unwrap().to_dtype(DType::F64));
    assert!(mx <= b);
    // Embedding N(0, 1); norms: ones and zeros.
    let (m, s, _) = stats(&Embedding::new(200, 100, 0).weight.to_dtype(DType::F64));
    assert!(m.abs() < 0.02 && (s - 1.0).abs() < 0.02);
    let ln = LayerNorm::new(&[4]);
    assert_eq!(ln.weight.as_ref().unwrap().to_vec::<f32>(), vec![1.0; 4]);
    assert_eq!(ln.eps, 1e-5);
    let bn = BatchNorm2d::new(2);
    assert_eq!(bn.running_var().to_vec::<f32>(), vec![1.0; 2]);
    assert_eq!(Linear::new(3, 2, 0).named_params().len(), 2);
    assert_eq!(
        Linear::with_options(3, 2, false, DType::F32, 0).num_params(),
        6
    );
}
