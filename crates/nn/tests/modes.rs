//! Training vs evaluation behaviour: batch norm statistics (running mean and unbiased
//! variance with momentum, eval using them, the batch-of-one error) and dropout
//! (statistics, determinism by seed, identity in eval), and mode propagation through
//! containers.

use tapegrad::{DType, Tensor};
use tapegrad_nn::*;

#[test]
fn batch_norm_train_uses_batch_stats_and_updates_running_stats() {
    let x = Tensor::from_vec(vec![1.0f64, 10.0, 3.0, 20.0, 8.0, 60.0], &[3, 2]);
    let bn = BatchNorm1d::with_dtype(2, DType::F64);
    let y = bn.forward(&x).to_vec::<f64>();
    // Channel 0: [1, 3, 8], mean 4, biased var 26/3; channel 1: [10, 20, 60], mean 30, var 1400/3.
    let (m0, v0, m1, v1) = (4.0, 26.0 / 3.0, 30.0, 1400.0 / 3.0);
    let want = [
        (1.0 - m0) / (v0 + 1e-5f64).sqrt(),
        (10.0 - m1) / (v1 + 1e-5f64).sqrt(),
        (3.0 - m0) / (v0 + 1e-5f64).sqrt(),
        (20.0 - m1) / (v1 + 1e-5f64).sqrt(),
        (8.0 - m0) / (v0 + 1e-5f64).sqrt(),
        (60.0 - m1) / (v1 + 1e-5f64).sqrt(),
    ];
    for (a, b) in y.iter().zip(want) {
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }
    // Running: 0.9 * init + 0.1 * batch, variance unbiased (n / (n - 1)).
    let rm = bn.running_mean().to_vec::<f64>();
    let rv = bn.running_var().to_vec::<f64>();
    assert!(
        (rm[0] - 0.4).abs() < 1e-12 && (rm[1] - 3.0).abs() < 1e-12,
        "{rm:?}"
    );
    assert!(
        (rv[0] - (0.9 + 0.1 * 13.0)).abs() < 1e-12 && (rv[1] - (0.9 + 0.1 * 700.0)).abs() < 1e-12,
        "{rv:?}"
    );
    // A second step compounds with momentum.
    bn.forward(&x);
    assert!((bn.running_mean().to_vec::<f64>()[0] - (0.9 * 0.4 + 0.4)).abs() < 1e-12);
}

#[test]
fn batch_norm_eval_uses_running_stats() {
    let x = Tensor::randn(&[8, 3, 4, 4], DType::F64, 0)
        .mul_scalar(3.0)
        .add_scalar(5.0);
    let mut bn = BatchNorm2d::with_dtype(3, DType::F64).momentum(1.0);
    bn.forward(&x); // momentum 1: running stats = this batch's (unbiased var).
    bn.eval();
    assert!(!bn.is_training());
    let y = bn.forward(&x);
    // Eval normalises with the unbiased variance, so the output variance is (n-1)/n, not 1.
    let n = 8.0 * 16.0;
    let var = y.var(&[0, 2, 3], false, false).to_vec::<f64>();
    for v in var {
        assert!((v - (n - 1.0) / n).abs() < 1e-5, "{v}"); // eps = 1e-5 shifts it by ~1e-6
    }
    // Eval does not touch the running statistics, and is per-sample (batch of one is fine).
    let before = bn.running_mean().to_vec::<f64>();
    let one = bn.forward(&x.narrow(0, 0, 1));
    assert_eq!(one.to_vec::<f64>(), y.narrow(0, 0, 1).to_vec::<f64>());
    assert_eq!(bn.running_mean().to_vec::<f64>(), before);
    // Train mode differs from eval on a shifted batch.
    bn.train();
    let shifted = x.add_scalar(1.0);
    assert_ne!(bn.forward(&shifted).to_vec::<f64>(), {
        let mut e = bn.clone();
        e.eval();
        e.forward(&shifted).to_vec::<f64>()
    });
}

#[test]
#[should_panic(
    expected = "BatchNorm1d(4): expected more than 1 value per channel when training, got input shape [1, 4]"
)]
fn batch_norm_rejects_a_training_batch_of_one() {
    BatchNorm1d::new(4).forward(&Tensor::zeros(&[1, 4], DType::F32));
}

#[test]
#[should_panic(
    expected = "BatchNorm2d(3): expects an input of rank [4] with 3 channels on axis 1, got shape [2, 4, 5, 5]"
)]
fn batch_norm_rejects_wrong_channels() {
    BatchNorm2d::new(3).forward(&Tensor::zeros(&[2, 4, 5, 5], DType::F32));
}

#[test]
fn dropout_statistics() {
    let x = Tensor::ones(&[200_000], DType::F64);
    for p in [0.1, 0.5, 0.8] {
        let y = Dropout::new(p, 3).forward(&x).to_vec::<f64>();
        let n = y.len() as f64;
        let zeros = y.iter().filter(|&&v| v == 0.0).count() as f64 / n;
        // Binomial standard error sqrt(p(1-p)/n) < 0.0012: 5 sigma.
        assert!(
            (zeros - p).abs() < 0.006,
            "p = {p}: dropped fraction {zeros}"
        );
        let mean = y.iter().sum::<f64>() / n;
        assert!(
            (mean - 1.0).abs() < 0.03,
            "p = {p}: mean {mean} (inverted dropout keeps the expectation)"
        );
        assert!(y
            .iter()
            .all(|&v| v == 0.0 || (v - 1.0 / (1.0 - p)).abs() < 1e-12));
    }
    assert!(Dropout::new(1.0, 0)
        .forward(&x)
        .to_vec::<f64>()
        .iter()
        .all(|&v| v == 0.0));
    assert_eq!(
        Dropout::new(0.0, 0).forward(&x).to_vec::<f64>(),
        x.to_vec::<f64>()
    );
}

#[test]
fn dropout_is_deterministic_by_seed() {
    let x = Tensor::ones(&[64], DType::F32);
    let (a, b, c) = (
        Dropout::new(0.5, 11),
        Dropout::new(0.5, 11),
        Dropout::new(0.5, 12),
    );
    let (a1, a2) = (a.forward(&x).to_vec::<f32>(), a.forward(&x).to_vec::<f32>());
    let (b1, b2) = (b.forward(&x).to_vec::<f32>(), b.forward(&x).to_vec::<f32>());
    assert_eq!(a1, b1, "same seed, same first mask");
    assert_eq!(a2, b2, "same seed, same second mask");
    assert_ne!(a1, a2, "successive calls draw new masks");
    assert_ne!(
        a1,
        c.forward(&x).to_vec::<f32>(),
        "another seed, another mask"
    );
    // The op itself: same seed, same mask.
    assert_eq!(
        x.dropout(0.5, 5).to_vec::<f32>(),
        x.dropout(0.5, 5).to_vec::<f32>()
    );
}

#[test]
fn dropout_is_identity_in_eval_and_modes_propagate() {
    let mut model = Sequential::new()
        .add(Linear::new(4, 4, 0))
        .add(Dropout::new(0.9, 1))
        .add(Residual::new(Dropout::new(0.9, 2)));
    let x = Tensor::randn(&[3, 4], DType::F32, 0);
    let train = model.forward(&x).to_vec::<f32>();
    model.eval();
    let e1 = model.forward(&x).to_vec::<f32>();
    let e2 = model.forward(&x).to_vec::<f32>();
    assert_eq!(e1, e2, "eval is deterministic");
    let lin = Linear::from_params(
        model.named_params()[0].1.tensor().clone(),
        Some(model.named_params()[1].1.tensor().clone()),
    );
    let plain = lin.forward(&x).mul_scalar(2.0).to_vec::<f32>(); // residual of identity doubles
    assert_eq!(e1, plain);
    assert_ne!(train, e1);
    let y = x.dropout(0.5, 1);
    assert!(y.to_vec::<f32>().contains(&0.0));
}

#[test]
#[should_panic(expected = "Dropout: probability p = 1.5 must be in [0, 1]")]
fn dropout_rejects_bad_probability() {
    Dropout::new(1.5, 0);
}
