//! The code of the "Your first gradient check" and "Build your own model" chapters of
//! docs/guide.md, compiled and run so the chapters cannot rot: a custom op checked with
//! tapegrad-gradcheck (and a wrong rule caught), a custom module, a custom loss (binary
//! focal loss), checking both, one training step, and saving / loading the weights.

use ndarray::{ArrayViewD, ArrayViewMutD};
use tapegrad::{DType, Tensor};
use tapegrad_gradcheck::{gradcheck, gradgradcheck, Options};
use tapegrad_nn::{io, prefixed, BatchNorm1d, Dropout, Linear, Module, Param};

/// One hidden layer with batch norm and dropout, plus a linear skip from input to output.
struct SkipMlp {
    fc1: Linear,
    bn: BatchNorm1d,
    drop: Dropout,
    fc2: Linear,
    skip: Linear,
}

impl SkipMlp {
    fn new(inputs: usize, hidden: usize, outputs: usize, dtype: DType, seed: u64) -> SkipMlp {
        SkipMlp {
            fc1: Linear::with_options(inputs, hidden, true, dtype, seed),
            bn: BatchNorm1d::with_dtype(hidden, dtype),
            drop: Dropout::new(0.2, seed + 1),
            fc2: Linear::with_options(hidden, outputs, true, dtype, seed + 2),
            skip: Linear::with_options(inputs, outputs, false, dtype, seed + 3),
        }
    }
}

impl Module for SkipMlp {
    fn forward(&self, x: &Tensor) -> Tensor {
        let h = self.bn.forward(&self.fc1.forward(x)).relu();
        let h = self.drop.forward(&h);
        self.fc2.forward(&h).add(&self.skip.forward(x))
    }

    fn named_params(&self) -> Vec<(String, Param)> {
        let mut v = prefixed("fc1", self.fc1.named_params());
        v.extend(prefixed("bn", self.bn.named_params()));
        v.extend(prefixed("fc2", self.fc2.named_params()));
        v.extend(prefixed("skip", self.skip.named_params()));
        v
    }

    fn named_buffers(&self) -> Vec<(String, Tensor)> {
        prefixed("bn", self.bn.named_buffers())
    }

    fn set_training(&mut self, training: bool) {
        self.bn.set_training(training);
        self.drop.set_training(training);
    }
}

/// Binary focal loss (Lin et al. 2017): `-(1 - p_t)^gamma * ln p_t`, averaged, with
/// `p_t = sigmoid(x)` for positives and `1 - sigmoid(x)` for negatives. The logs are
/// taken as `-softplus(-x)` and `-softplus(x)`, finite for any logit.
fn focal_loss(logits: &Tensor, targets: &Tensor, gamma: f64) -> Tensor {
    let log_p = logits.neg().softplus().neg(); // ln sigmoid(x)
    let log_q = logits.softplus().neg(); // ln (1 - sigmoid(x))
    let log_pt = targets
        .mul(&log_p)
        .add(&targets.rsub_scalar(1.0).mul(&log_q));
    let pt = log_pt.exp();
    pt.rsub_scalar(1.0).powf(gamma).mul(&log_pt).neg().mean()
}

#[test]
fn custom_module_names_modes_and_gradients() {
    let mut model = SkipMlp::new(4, 8, 1, DType::F64, 0);
    let names: Vec<String> = model.named_params().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "fc1.weight",
            "fc1.bias",
            "bn.weight",
            "bn.bias",
            "fc2.weight",
            "fc2.bias",
            "skip.weight"
        ]
    );
    assert_eq!(model.num_params(), 4 * 8 + 8 + 8 + 8 + 8 + 1 + 4);

    // The input gradient of the whole model, in eval mode (deterministic), against
    // finite differences.
    model.eval();
    let x = Tensor::randn(&[5, 4], DType::F64, 1);
    let report = gradcheck(|t| model.forward(&t[0]), &[x], &Options::default()).unwrap();
    assert!(report.passed());
}

#[test]
fn custom_loss_is_right_to_second_order() {
    let logits = Tensor::randn(&[6], DType::F64, 2).mul_scalar(2.0);
    let targets = Tensor::from_vec(vec![1.0f64, 0.0, 1.0, 1.0, 0.0, 0.0], &[6]);
    let f = |t: &[Tensor]| focal_loss(&t[0], &targets, 2.0);
    gradcheck(f, std::slice::from_ref(&logits), &Options::default()).unwrap();
    gradgradcheck(f, std::slice::from_ref(&logits), &Options::default()).unwrap();
    // gamma = 0 is the binary cross-entropy with logits.
    let bce = tapegrad_nn::loss::binary_cross_entropy_with_logits(
        &logits,
        &targets,
        None,
        None,
        Default::default(),
    );
    assert!((focal_loss(&logits, &targets, 0.0).item() - bce.item()).abs() < 1e-12);
    // And it is finite at extreme logits.
    let extreme = Tensor::from_vec(vec![1000.0f64, -1000.0], &[2]);
    let y = Tensor::from_vec(vec![0.0f64, 1.0], &[2]);
    assert!((focal_loss(&extreme, &y, 2.0).item() - 1000.0).abs() < 1e-9);
}

#[test]
fn train_step_and_weights_on_disk() {
    let model = SkipMlp::new(4, 8, 1, DType::F32, 0);
    let x = Tensor::randn(&[16, 4], DType::F32, 3);
    let y = x.narrow(1, 0, 1).gt_scalar(0.0).to_dtype(DType::F32); // label: is the first feature positive?
    let before = focal_loss(&model.forward(&x), &y, 2.0).item();
    for _ in 0..50 {
        let loss = focal_loss(&model.forward(&x), &y, 2.0);
        let grads = loss.backward();
        for p in model.params() {
            grads[&p].with_view(|g: ArrayViewD<f32>| {
                p.update_(|mut w: ArrayViewMutD<f32>| w.scaled_add(-0.5, &g))
            });
        }
    }
    let after = focal_loss(&model.forward(&x), &y, 2.0).item();
    assert!(after < before / 2.0, "{before} -> {after}");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("skip_mlp.safetensors");
    io::save(&model, &path).unwrap();
    let mut restored = SkipMlp::new(4, 8, 1, DType::F32, 99);
    io::load(&restored, &path).unwrap();
    let mut model = model;
    model.eval();
    restored.eval();
    assert_eq!(
        model.forward(&x).to_vec::<f32>(),
        restored.forward(&x).to_vec::<f32>()
    );
}

// ---- "Your first gradient check" ----

/// softsign(x) = x / (1 + |x|) as a custom op whose backward rule is written by hand:
/// d/dx = 1 / (1 + |x|)^2.
fn softsign(x: &Tensor) -> Tensor {
    let value = tapegrad::no_grad(|| x.div(&x.abs().add_scalar(1.0)));
    tapegrad::custom_op("softsign", &[x], value, &[x], false, |ctx, g| {
        let x = ctx.saved(0);
        vec![Some(g.div(&x.abs().add_scalar(1.0).square()))]
    })
}

/// The same op with a bug: the square is forgotten.
fn softsign_wrong(x: &Tensor) -> Tensor {
    let value = tapegrad::no_grad(|| x.div(&x.abs().add_scalar(1.0)));
    tapegrad::custom_op("softsign_wrong", &[x], value, &[x], false, |ctx, g| {
        let x = ctx.saved(0);
        vec![Some(g.div(&x.abs().add_scalar(1.0)))]
    })
}

#[test]
fn first_gradient_check_passes_and_catches_a_wrong_rule() {
    let x = Tensor::from_vec(vec![-1.5f64, -0.3, 0.4, 2.0], &[2, 2]);
    let report = gradcheck(
        |t: &[Tensor]| softsign(&t[0]),
        std::slice::from_ref(&x),
        &Options::default(),
    )
    .expect("the right rule passes");
    println!("{report}");
    assert!(report.passed());
    gradgradcheck(
        |t: &[Tensor]| softsign(&t[0]),
        std::slice::from_ref(&x),
        &Options::default(),
    )
    .expect("the rule differentiates again");

    let err = gradcheck(
        |t: &[Tensor]| softsign_wrong(&t[0]),
        &[x],
        &Options::default(),
    )
    .expect_err("a rule without the square must fail");
    println!("{err}");
    let report = err.report().expect("a mismatch carries its report");
    assert!(!report.passed());
    // The worst entry is the one furthest out of tolerance (error / (atol + rtol |num|)):
    // x = 2.0, where the wrong rule gives 1/3 against the true 1/9. (The largest absolute
    // error, 0.24, is at x = -1.5, where the true value is larger.)
    let input = &report.inputs[0];
    let worst = input.worst.as_ref().expect("a worst entry");
    assert!((worst.analytical - 1.0 / 3.0).abs() < 1e-12, "{worst:?}");
    assert!((worst.numerical - 1.0 / 9.0).abs() < 1e-6, "{worst:?}");
    assert!(
        (input.max_abs_error - 0.24).abs() < 1e-6,
        "{}",
        input.max_abs_error
    );
}
