//! Every layer gradchecked in f64 with respect to its input and each of its parameters
//! (central differences, `common::gradcheck`), in training and, where it differs,
//! evaluation mode.

mod common;

use common::{gradcheck, leaf};
use tapegrad::{DType, Tensor};
use tapegrad_nn::*;

/// Checks `layer.forward(x)` w.r.t. `x` (unless `input_grad` is false) and every parameter.
fn check(label: &str, layer: &dyn Module, x: &Tensor, input_grad: bool) {
    // An input that gets no gradient may be of a dtype that cannot (I64 indices).
    let x = if input_grad { leaf(x) } else { x.clone() };
    let params = layer.named_params();
    let mut wrt: Vec<(&str, &Tensor)> = params
        .iter()
        .map(|(n, p)| (n.as_str(), p.tensor()))
        .collect();
    if input_grad {
        wrt.push(("input", &x));
    }
    assert!(!wrt.is_empty(), "{label}: nothing to check");
    gradcheck(label, &|| layer.forward(&x), &wrt);
}

/// Values with `0.2 <= |v| <= 2`, away from the kinks of relu-like functions.
fn away_from_zero(shape: &[usize], seed: u64) -> Tensor {
    let u = Tensor::rand_uniform(shape, 0.2, 2.0, DType::F64, seed);
    let s = Tensor::rand_uniform(shape, -1.0, 1.0, DType::F64, seed + 1)
        .gt_scalar(0.0)
        .to_dtype(DType::F64)
        .mul_scalar(2.0)
        .sub_scalar(1.0);
    u.mul(&s)
}

#[test]
fn linear() {
    let x = Tensor::randn(&[3, 4], DType::F64, 0);
    check(
        "Linear",
        &Linear::with_options(4, 3, true, DType::F64, 1),
        &x,
        true,
    );
    check(
        "Linear without bias",
        &Linear::with_options(4, 2, false, DType::F64, 2),
        &x,
        true,
    );
    let x3 = Tensor::randn(&[2, 2, 4], DType::F64, 3);
    check(
        "Linear on rank 3",
        &Linear::with_options(4, 3, true, DType::F64, 4),
        &x3,
        true,
    );
}

#[test]
fn conv2d() {
    let f64opts = Conv2dOptions {
        dtype: DType::F64,
        ..Default::default()
    };
    let x = Tensor::randn(&[2, 2, 5, 5], DType::F64, 0);
    check(
        "Conv2d",
        &Conv2d::with_options(2, 3, [3, 3], f64opts, 1),
        &x,
        true,
    );
    let strided = Conv2dOptions {
        stride: [2, 1],
        padding: [1, 2],
        dilation: [1, 2],
        groups: 2,
        ..f64opts
    };
    check(
        "Conv2d strided, dilated, grouped",
        &Conv2d::with_options(2, 4, [2, 3], strided, 2),
        &x,
        true,
    );
    let no_bias = Conv2dOptions {
        bias: false,
        ..f64opts
    };
    check(
        "Conv2d without bias",
        &Conv2d::with_options(2, 2, [1, 1], no_bias, 3),
        &x,
        true,
    );
}

#[test]
fn pools_and_flatten() {
    // Distinct values 0.05 apart so no max pooling window has a near tie.
    let n = 2 * 2 * 4 * 5;
    let mut v: Vec<f64> = (0..n).map(|i| ((i * 37) % n) as f64 * 0.05 - 2.0).collect();
    v.rotate_left(7);
    let x = Tensor::from_vec(v, &[2, 2, 4, 5]);
    check("MaxPool2d", &MaxPool2d::new(2), &x, true);
    check(
        "MaxPool2d overlapping, padded",
        &MaxPool2d::new(3).stride(1).padding(1),
        &x,
        true,
    );
    check("AvgPool2d", &AvgPool2d::new(2), &x, true);
    let excl = AvgPool2d {
        count_include_pad: false,
        ..AvgPool2d::new(3).stride(2).padding(1)
    };
    check("AvgPool2d padded, excluding padding", &excl, &x, true);
    check(
        "AdaptiveAvgPool2d [3, 2]",
        &AdaptiveAvgPool2d::new([3, 2]),
        &x,
        true,
    );
    check(
        "AdaptiveAvgPool2d global",
        &AdaptiveAvgPool2d::global(),
        &x,
        true,
    );
    check("Flatten", &Flatten::new(), &x, true);
}

#[test]
fn dropout() {
    // A fresh layer per evaluation: the first mask of a seed is fixed.
    let x = leaf(&Tensor::randn(&[4, 6], DType::F64, 0));
    gradcheck(
        "Dropout (train)",
        &|| Dropout::new(0.3, 9).forward(&x),
        &[("input", &x)],
    );
    let mut eval = Dropout::new(0.3, 9);
    eval.eval();
    check("Dropout (eval)", &eval, &x, true);
}

#[test]
fn batch_norm() {
    let x1 = Tensor::randn(&[5, 3], DType::F64, 0);
    let mut bn1 = BatchNorm1d::with_dtype(3, DType::F64);
    // Non-trivial affine parameters.
    bn1.weight()
        .unwrap()
        .set(&Tensor::from_vec(vec![0.5, -1.5, 2.0], &[3]));
    bn1.bias()
        .unwrap()
        .set(&Tensor::from_vec(vec![0.1, 0.2, -0.3], &[3]));
    check("BatchNorm1d (train)", &bn1, &x1, true);
    let x13 = Tensor::randn(&[3, 3, 4], DType::F64, 1);
    check("BatchNorm1d [N, C, L] (train)", &bn1, &x13, true);
    bn1.eval();
    check("BatchNorm1d (eval)", &bn1, &x1, true);

    let x2 = Tensor::randn(&[2, 2, 3, 3], DType::F64, 2);
    let mut bn2 = BatchNorm2d::with_dtype(2, DType::F64);
    bn2.weight()
        .unwrap()
        .set(&Tensor::from_vec(vec![1.5, -0.5], &[2]));
    check("BatchNorm2d (train)", &bn2, &x2, true);
    bn2.eval();
    check("BatchNorm2d (eval)", &bn2, &x2, true);
    check(
        "BatchNorm2d no affine",
        &BatchNorm2d::with_dtype(2, DType::F64).without_affine(),
        &x2,
        true,
    );
}

#[test]
fn layer_norm() {
    let ln = LayerNorm::with_options(&[2, 3], 1e-5, true, DType::F64);
    ln.weight
        .as_ref()
        .unwrap()
        .set(&Tensor::randn(&[2, 3], DType::F64, 5));
    ln.bias
        .as_ref()
        .unwrap()
        .set(&Tensor::randn(&[2, 3], DType::F64, 6));
    check(
        "LayerNorm",
        &ln,
        &Tensor::randn(&[4, 2, 3], DType::F64, 0),
        true,
    );
    let plain = LayerNorm::with_options(&[5], 1e-5, false, DType::F64);
    check(
        "LayerNorm no affine",
        &plain,
        &Tensor::randn(&[3, 5], DType::F64, 1),
        true,
    );
}

#[test]
fn embedding() {
    // The input holds indices (no gradient); the weight gets one, with repeats summed.
    let emb = Embedding::with_dtype(5, 3, DType::F64, 0);
    let idx = Tensor::from_vec(vec![1i64, 4, 1, 0], &[2, 2]);
    check("Embedding", &emb, &idx, false);
}

#[test]
fn activations() {
    let x = away_from_zero(&[3, 4], 0);
    let layers: Vec<(&str, Box<dyn Module>)> = vec![
        ("Relu", Box::new(Relu)),
        ("LeakyRelu", Box::new(LeakyRelu::default())),
        ("Elu", Box::new(Elu::default())),
        ("Gelu", Box::new(Gelu::default())),
        (
            "Gelu tanh",
            Box::new(Gelu {
                tanh_approximation: true,
            }),
        ),
        ("Silu", Box::new(Silu)),
        ("Softsign", Box::new(Softsign)),
        ("Sigmoid", Box::new(Sigmoid)),
        ("Tanh", Box::new(Tanh)),
        ("Softplus", Box::new(Softplus)),
        ("Softmax", Box::new(Softmax { dim: 1 })),
        ("LogSoftmax", Box::new(LogSoftmax { dim: 0 })),
        ("Selu", Box::new(Selu)),
        ("Celu", Box::new(Celu { alpha: 0.7 })),
        ("Mish", Box::new(Mish)),
        ("Hardtanh", Box::new(Hardtanh::default())),
        ("Relu6", Box::new(Relu6)),
        ("Hardsigmoid", Box::new(Hardsigmoid)),
        ("Hardswish", Box::new(Hardswish)),
        ("LogSigmoid", Box::new(LogSigmoid)),
        ("Glu", Box::new(Glu { dim: 1 })),
        ("Softmin", Box::new(Softmin { dim: 1 })),
        ("Prelu shared", Box::new(Prelu::new(1, DType::F64))),
        (
            "Prelu per channel",
            Box::new(Prelu::with_init(4, -0.3, DType::F64)),
        ),
    ];
    for (name, layer) in &layers {
        check(name, layer.as_ref(), &x, true);
    }
}

#[test]
fn sequential_and_residual() {
    let model = Sequential::new()
        .add(Linear::with_options(4, 5, true, DType::F64, 0))
        .add(Tanh)
        .add(Residual::new(Linear::with_options(
            5,
            5,
            true,
            DType::F64,
            1,
        )))
        .add(LayerNorm::with_options(&[5], 1e-5, true, DType::F64))
        .add(Linear::with_options(5, 2, false, DType::F64, 2));
    let names: Vec<String> = model.named_params().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "0.weight",
            "0.bias",
            "2.body.weight",
            "2.body.bias",
            "3.weight",
            "3.bias",
            "4.weight"
        ]
    );
    check(
        "Sequential",
        &model,
        &Tensor::randn(&[3, 4], DType::F64, 3),
        true,
    );

    let projected = Residual::with_shortcut(
        Linear::with_options(3, 2, true, DType::F64, 4),
        Linear::with_options(3, 2, false, DType::F64, 5),
    );
    check(
        "Residual with shortcut",
        &projected,
        &Tensor::randn(&[2, 3], DType::F64, 6),
        true,
    );
}
