//! Losses against values computed by hand (independent f64 formulas written out here),
//! including extreme logits (±1000), every reduction, and gradients: hand-derived where
//! they are simple, finite differences otherwise.

mod common;

use common::{gradcheck, leaf};
use tapegrad::{DType, Tensor};
use tapegrad_nn::loss::*;

fn t(v: &[f64], shape: &[usize]) -> Tensor {
    Tensor::from_vec(v.to_vec(), shape)
}

/// Class targets `[N]` (an `I64` tensor, as PyTorch's).
fn cls(v: &[i64]) -> Tensor {
    Tensor::from_vec(v.to_vec(), &[v.len()])
}

fn assert_close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * (1.0 + w.abs()),
            "{what}[{i}]: got {g}, want {w}"
        );
    }
}

#[test]
fn regression_losses_by_hand() {
    let x = t(&[0.5, -2.0, 3.0, 0.1], &[2, 2]);
    let y = t(&[0.0, 0.0, 1.0, 1.1], &[2, 2]);
    // d = [0.5, -2, 2, -1]
    assert_close(
        &[mse_loss(&x, &y, Reduction::Mean).item()],
        &[(0.25 + 4.0 + 4.0 + 1.0) / 4.0],
        1e-15,
        "mse mean",
    );
    assert_close(
        &[mse_loss(&x, &y, Reduction::Sum).item()],
        &[9.25],
        1e-15,
        "mse sum",
    );
    assert_close(
        &mse_loss(&x, &y, Reduction::None).to_vec(),
        &[0.25, 4.0, 4.0, 1.0],
        1e-15,
        "mse none",
    );
    assert_close(
        &[mse_loss(&x, &y, Reduction::BatchMean).item()],
        &[9.25 / 2.0],
        1e-15,
        "mse batchmean",
    );
    assert_close(
        &[l1_loss(&x, &y, Reduction::Mean).item()],
        &[5.5 / 4.0],
        1e-15,
        "l1 mean",
    );
    // huber delta 1: |d|<1 -> 0.5 d^2; else |d| - 0.5. d = 0.5 -> 0.125; 2 -> 1.5; |d| = 1 -> 0.5 (linear branch).
    assert_close(
        &huber_loss(&x, &y, 1.0, Reduction::None).to_vec(),
        &[0.125, 1.5, 1.5, 0.5],
        1e-12,
        "huber",
    );
    // delta 3: all quadratic.
    assert_close(
        &huber_loss(&x, &y, 3.0, Reduction::None).to_vec(),
        &[0.125, 2.0, 2.0, 0.5],
        1e-12,
        "huber d3",
    );
    // smooth l1 beta 1 equals huber delta 1; beta 4: 0.5 d^2 / 4.
    assert_close(
        &smooth_l1_loss(&x, &y, 1.0, Reduction::None).to_vec(),
        &[0.125, 1.5, 1.5, 0.5],
        1e-12,
        "sl1",
    );
    assert_close(
        &smooth_l1_loss(&x, &y, 4.0, Reduction::None).to_vec(),
        &[0.03125, 0.5, 0.5, 0.125],
        1e-12,
        "sl1 b4",
    );
    assert_close(
        &smooth_l1_loss(&x, &y, 0.0, Reduction::None).to_vec(),
        &[0.5, 2.0, 2.0, 1.0],
        1e-12,
        "sl1 b0 = l1",
    );

    // Gradients: mse mean 2d/n; huber clipped to ±delta.
    let xl = leaf(&x);
    let g = mse_loss(&xl, &y, Reduction::Mean).backward();
    assert_close(
        &g[&xl].to_vec(),
        &[0.25, -1.0, 1.0, -0.5],
        1e-12,
        "mse grad",
    );
    let g = huber_loss(&xl, &y, 1.0, Reduction::Sum).backward();
    assert_close(
        &g[&xl].to_vec(),
        &[0.5, -1.0, 1.0, -1.0],
        1e-12,
        "huber grad",
    );
}

/// Reference cross-entropy in plain f64 (PyTorch's definition, written out).
fn ce_reference(
    x: &[f64],
    c: usize,
    targets: &[i64],
    w: Option<&[f64]>,
    ignore: Option<i64>,
    eps: f64,
) -> (Vec<f64>, f64) {
    let n = targets.len();
    let mut per = vec![0.0; n];
    let (mut num, mut den) = (0.0, 0.0);
    for i in 0..n {
        let row = &x[i * c..(i + 1) * c];
        let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
        let logp: Vec<f64> = row.iter().map(|v| v - lse).collect();
        if Some(targets[i]) == ignore {
            continue;
        }
        let wt = |k: usize| w.map_or(1.0, |w| w[k]);
        let y = targets[i] as usize;
        let nll = -wt(y) * logp[y];
        let smooth: f64 = -(0..c).map(|k| wt(k) * logp[k]).sum::<f64>();
        per[i] = (1.0 - eps) * nll + eps / c as f64 * smooth;
        num += per[i];
        den += wt(y);
    }
    (per, num / den)
}

#[test]
fn cross_entropy_by_hand() {
    let x = [1.0, 2.0, 0.5, -1.0, 0.0, 3.0, 2.0, 2.0, -2.0, 0.3, 0.1, 0.2];
    let logits = t(&x, &[4, 3]);
    let targets = [1, 2, 0, 2];
    let (per, mean) = ce_reference(&x, 3, &targets, None, None, 0.0);
    let y = cls(&targets);
    let o = CrossEntropyOptions::default();
    assert_close(
        &[cross_entropy(&logits, &y, &o).item()],
        &[mean],
        1e-14,
        "ce mean",
    );
    let none = CrossEntropyOptions {
        reduction: Reduction::None,
        ..Default::default()
    };
    assert_close(
        &cross_entropy(&logits, &y, &none).to_vec(),
        &per,
        1e-14,
        "ce none",
    );

    // Class weights, ignore_index and label smoothing together.
    let w = [0.2, 1.0, 3.0];
    let (per, mean) = ce_reference(&x, 3, &[1, 2, 0, 1], Some(&w), Some(0), 0.1);
    let full = CrossEntropyOptions {
        weight: Some(t(&w, &[3])),
        ignore_index: Some(0),
        label_smoothing: 0.1,
        reduction: Reduction::Mean,
    };
    assert_close(
        &[cross_entropy(&logits, &cls(&[1, 2, 0, 1]), &full).item()],
        &[mean],
        1e-14,
        "ce weighted smoothed",
    );
    let full_none = CrossEntropyOptions {
        reduction: Reduction::None,
        ..full.clone()
    };
    assert_close(
        &cross_entropy(&logits, &cls(&[1, 2, 0, 1]), &full_none).to_vec(),
        &per,
        1e-14,
        "ce per sample",
    );
    let full_sum = CrossEntropyOptions {
        reduction: Reduction::Sum,
        ..full.clone()
    };
    assert_close(
        &[cross_entropy(&logits, &cls(&[1, 2, 0, 1]), &full_sum).item()],
        &[per.iter().sum()],
        1e-14,
        "ce sum",
    );

    // An ignore_index outside the class range is fine (PyTorch's -100 style).
    let ig = CrossEntropyOptions {
        ignore_index: Some(255),
        ..Default::default()
    };
    let (_, mean) = ce_reference(&x, 3, &[1, 255, 0, 2], None, Some(255), 0.0);
    assert_close(
        &[cross_entropy(&logits, &cls(&[1, 255, 0, 2]), &ig).item()],
        &[mean],
        1e-14,
        "ce ignore 255",
    );
    // PyTorch's default ignore_index, -100, is negative.
    let ig = CrossEntropyOptions {
        ignore_index: Some(-100),
        ..Default::default()
    };
    let (_, mean) = ce_reference(&x, 3, &[-100, 2, -100, 2], None, Some(-100), 0.0);
    assert_close(
        &[cross_entropy(&logits, &cls(&[-100, 2, -100, 2]), &ig).item()],
        &[mean],
        1e-14,
        "ce ignore -100",
    );

    // Gradient of the mean: (softmax - onehot) / n.
    let xl = leaf(&logits);
    let g = cross_entropy(&xl, &y, &o).backward()[&xl].to_vec::<f64>();
    for i in 0..4 {
        let row = &x[i * 3..(i + 1) * 3];
        let z: f64 = row.iter().map(|v| v.exp()).sum();
        for k in 0..3 {
            let want = (row[k].exp() / z - if k as i64 == targets[i] { 1.0 } else { 0.0 }) / 4.0;
            assert!((g[i * 3 + k] - want).abs() < 1e-14, "ce grad [{i}, {k}]");
        }
    }
    // And with every option on, against finite differences.
    gradcheck(
        "cross_entropy all options",
        &|| cross_entropy(&xl, &cls(&[1, 2, 0, 1]), &full),
        &[("logits", &xl)],
    );
}

#[test]
fn cross_entropy_extreme_logits() {
    for dtype in [DType::F32, DType::F64] {
        let logits = t(&[1000.0, -1000.0, 0.0, -1000.0, 1000.0, 0.0], &[2, 3])
            .to_dtype(dtype)
            .requires_grad();
        // Sample 0 is right with certainty (loss 0); sample 1 is wrong by 2000 (loss 2000).
        let none = CrossEntropyOptions {
            reduction: Reduction::None,
            ..Default::default()
        };
        let per = cross_entropy(&logits, &cls(&[0, 0]), &none).to_vec::<f64>();
        assert_eq!(per, vec![0.0, 2000.0], "{dtype}");
        let g = cross_entropy(&logits, &cls(&[0, 0]), &CrossEntropyOptions::default()).backward()
            [&logits]
            .to_vec::<f64>();
        assert_eq!(g, vec![0.0, 0.0, 0.0, -0.5, 0.5, 0.0], "{dtype}");
    }
}

#[test]
fn cross_entropy_spatial_and_unbatched() {
    // [N, C, d] logits with [N, d] targets equal the [N*d, C] case with classes moved last.
    let x = Tensor::randn(&[2, 3, 2], DType::F64, 0);
    let targets = Tensor::from_vec(vec![0i64, 2, 1, 1], &[2, 2]);
    let flat = x.permute(&[0, 2, 1]).reshape(&[4, 3]);
    let none = CrossEntropyOptions {
        reduction: Reduction::None,
        ..Default::default()
    };
    let a = cross_entropy(&x, &targets, &none);
    assert_eq!(a.shape(), &[2, 2]);
    assert_close(
        &a.to_vec(),
        &cross_entropy(&flat, &targets.reshape(&[4]), &none).to_vec(),
        1e-15,
        "spatial",
    );
    // One sample: logits [C], a scalar target.
    let one = t(&[0.0, 0.0], &[2]);
    assert_close(
        &[cross_entropy(&one, &Tensor::scalar(1i64), &CrossEntropyOptions::default()).item()],
        &[2f64.ln()],
        1e-15,
        "unbatched",
    );
}

#[test]
#[should_panic(expected = "cross_entropy: target 3 (sample 1) is out of range for 3 classes")]
fn cross_entropy_bad_target_panics() {
    let _ = cross_entropy(
        &Tensor::zeros(&[2, 3], DType::F32),
        &cls(&[0, 3]),
        &CrossEntropyOptions::default(),
    );
}

#[test]
#[should_panic(expected = "cross_entropy: target -1 (sample 0) is out of range for 3 classes")]
fn cross_entropy_negative_target_panics() {
    let _ = cross_entropy(
        &Tensor::zeros(&[2, 3], DType::F32),
        &cls(&[-1, 0]),
        &CrossEntropyOptions::default(),
    );
}

#[test]
#[should_panic(
    expected = "cross_entropy: the targets must be an i64 tensor of class indices, got f32 [2]"
)]
fn cross_entropy_float_targets_panic() {
    let _ = cross_entropy(
        &Tensor::zeros(&[2, 3], DType::F32),
        &Tensor::from_vec(vec![0.0f32, 1.0], &[2]),
        &CrossEntropyOptions::default(),
    );
}

#[test]
#[should_panic(
    expected = "nll_loss: the targets [3] must have the input's shape [2, 3] without the class axis 1, i.e. [2]"
)]
fn nll_loss_target_shape_panics() {
    let _ = nll_loss(
        &Tensor::zeros(&[2, 3], DType::F64),
        &cls(&[0, 1, 2]),
        None,
        None,
        Reduction::Mean,
    );
}

#[test]
#[should_panic(expected = "nll_loss: target 2 (sample 1) is out of range for 2 classes")]
fn nll_loss_bad_target_panics() {
    let _ = nll_loss(
        &Tensor::zeros(&[2, 2], DType::F64),
        &cls(&[0, 2]),
        None,
        Some(-100),
        Reduction::Mean,
    );
}

#[test]
fn nll_loss_by_hand() {
    let logp = t(&[-0.1, -2.5, -3.0, -1.2, -0.4, -2.0], &[2, 3]);
    let w = t(&[1.0, 2.0, 0.5], &[3]);
    // mean with weights: (2 * 2.5 + 0.5 * 2.0) / (2 + 0.5)
    assert_close(
        &[nll_loss(&logp, &cls(&[1, 2]), Some(&w), None, Reduction::Mean).item()],
        &[6.0 / 2.5],
        1e-15,
        "nll",
    );
    assert_close(
        &[nll_loss(&logp, &cls(&[1, 2]), None, Some(1), Reduction::Mean).item()],
        &[2.0],
        1e-15,
        "nll ignore",
    );
    // Per sample, an ignored one gives 0.
    assert_close(
        &nll_loss(&logp, &cls(&[1, 2]), None, Some(1), Reduction::None).to_vec(),
        &[0.0, 2.0],
        1e-15,
        "nll none ignore",
    );
    // Gradient: -w[y] at the target (and 0 at the ignored sample), over the weight sum.
    let xl = leaf(&logp);
    let g = nll_loss(&xl, &cls(&[1, 2]), Some(&w), Some(2), Reduction::Mean).backward()[&xl]
        .to_vec::<f64>();
    assert_close(&g, &[0.0, -1.0, 0.0, 0.0, 0.0, 0.0], 1e-15, "nll grad");
}

#[test]
fn binary_cross_entropy_by_hand() {
    let p = t(&[0.9, 0.2, 0.5], &[3]);
    let y = t(&[1.0, 0.0, 0.3], &[3]);
    let want: Vec<f64> = [(0.9f64, 1.0f64), (0.2, 0.0), (0.5, 0.3)]
        .iter()
        .map(|&(p, y)| -(y * p.ln() + (1.0 - y) * (1.0 - p).ln()))
        .collect();
    assert_close(
        &binary_cross_entropy(&p, &y, None, Reduction::None).to_vec(),
        &want,
        1e-15,
        "bce",
    );
    let w = t(&[2.0, 1.0, 0.0], &[3]);
    let wm = (2.0 * want[0] + want[1]) / 3.0;
    assert_close(
        &[binary_cross_entropy(&p, &y, Some(&w), Reduction::Mean).item()],
        &[wm],
        1e-15,
        "bce weighted",
    );
    // Log clamped at -100: p = 0 with y = 1 costs exactly 100.
    let p0 = t(&[0.0, 1.0], &[2]);
    let y0 = t(&[1.0, 0.0], &[2]);
    assert_eq!(
        binary_cross_entropy(&p0, &y0, None, Reduction::None).to_vec::<f64>(),
        vec![100.0, 100.0]
    );
}

#[test]
fn bce_with_logits_stable_and_by_hand() {
    let xs: [f64; 7] = [-1000.0, -3.0, -0.5, 0.0, 0.7, 4.0, 1000.0];
    let ys = [1.0, 0.0, 0.25, 1.0, 0.0, 1.0, 0.0];
    let want: Vec<f64> = xs
        .iter()
        .zip(&ys)
        .map(|(&x, &y)| x.max(0.0) - x * y + (-x.abs()).exp().ln_1p())
        .collect();
    let x = t(&xs, &[7]);
    let y = t(&ys, &[7]);
    let got = binary_cross_entropy_with_logits(&x, &y, None, None, Reduction::None).to_vec::<f64>();
    assert_close(&got, &want, 1e-15, "bce logits");
    assert_eq!(got[0], 1000.0);
    assert_eq!(got[6], 1000.0);
    // Gradient sigmoid(x) - y, finite at ±1000.
    let xl = leaf(&x);
    let g = binary_cross_entropy_with_logits(&xl, &y, None, None, Reduction::Sum).backward()[&xl]
        .to_vec::<f64>();
    let gw: Vec<f64> = xs
        .iter()
        .zip(&ys)
        .map(|(&x, &y)| 1.0 / (1.0 + (-x).exp()) - y)
        .collect();
    assert_close(&g, &gw, 1e-14, "bce logits grad");

    // pos_weight per class on [N, C]: -[pw y log s(x) + (1 - y) log(1 - s(x))].
    let x2 = t(&[0.3, -1.2, 2.0, -0.4], &[2, 2]);
    let y2 = t(&[1.0, 0.0, 0.5, 1.0], &[2, 2]);
    let pw = [3.0, 0.5];
    let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
    let want: Vec<f64> = (0..4)
        .map(|i| {
            let (xv, yv, p) = (
                [0.3, -1.2, 2.0, -0.4][i],
                [1.0, 0.0, 0.5, 1.0][i],
                pw[i % 2],
            );
            -(p * yv * sig(xv).ln() + (1.0 - yv) * (1.0 - sig(xv)).ln())
        })
        .collect();
    let got =
        binary_cross_entropy_with_logits(&x2, &y2, None, Some(&t(&pw, &[2])), Reduction::None);
    assert_close(&got.to_vec(), &want, 1e-14, "pos_weight");
    // In f32 at ±1000 with pos_weight: finite.
    let xf = t(&[1000.0, -1000.0], &[2]).to_dtype(DType::F32);
    let yf = t(&[0.0, 1.0], &[2]).to_dtype(DType::F32);
    let pwf = t(&[2.0, 2.0], &[2]).to_dtype(DType::F32);
    let l = binary_cross_entropy_with_logits(&xf, &yf, None, Some(&pwf), Reduction::None)
        .to_vec::<f32>();
    assert_eq!(l, vec![1000.0, 2000.0]);
}

#[test]
fn kl_div_by_hand() {
    let p = [0.1, 0.6, 0.3, 0.0, 0.5, 0.5];
    let q = [0.3, 0.3, 0.4, 0.2, 0.2, 0.6];
    let input = t(&q, &[2, 3]).log();
    let target = t(&p, &[2, 3]);
    let pointwise: Vec<f64> = p
        .iter()
        .zip(&q)
        .map(|(&p, &q)| if p > 0.0 { p * (p / q).ln() } else { 0.0 })
        .collect();
    assert_close(
        &kl_div(&input, &target, false, Reduction::None).to_vec(),
        &pointwise,
        1e-15,
        "kl none",
    );
    let total: f64 = pointwise.iter().sum();
    assert_close(
        &[kl_div(&input, &target, false, Reduction::BatchMean).item()],
        &[total / 2.0],
        1e-15,
        "kl batchmean",
    );
    assert_close(
        &[kl_div(&input, &target, false, Reduction::Mean).item()],
        &[total / 6.0],
        1e-15,
        "kl mean",
    );
    // log_target: the same divergence from log p.
    let p2 = [0.2, 0.5, 0.3];
    let lt2 = kl_div(
        &t(&q[..3], &[1, 3]).log(),
        &t(&p2, &[1, 3]).log(),
        true,
        Reduction::Sum,
    )
    .item();
    let want2: f64 = p2
        .iter()
        .zip(&q[..3])
        .map(|(&p, &q)| p * (p / q).ln())
        .sum();
    assert!((lt2 - want2).abs() < 1e-15, "{lt2} vs {want2}");
    // Finite gradient w.r.t. both arguments where the target is 0.
    let tl = leaf(&target);
    let il = leaf(&input);
    let grads = kl_div(&il, &tl, false, Reduction::Sum).backward();
    assert!(grads[&tl].to_vec::<f64>().iter().all(|v| v.is_finite()));
    assert_close(
        &grads[&il].to_vec(),
        &p.iter().map(|v| -v).collect::<Vec<_>>(),
        1e-15,
        "kl grad input",
    );
}

#[test]
fn losses_gradcheck() {
    let x = leaf(&Tensor::randn(&[3, 4], DType::F64, 0));
    let y = Tensor::randn(&[3, 4], DType::F64, 1).mul_scalar(2.0);
    let prob = leaf(&Tensor::rand_uniform(&[3, 4], 0.1, 0.9, DType::F64, 2));
    let yb = Tensor::rand_uniform(&[3, 4], 0.0, 1.0, DType::F64, 3);
    let logq = leaf(&Tensor::randn(&[3, 4], DType::F64, 4).log_softmax(1));
    let p = Tensor::randn(&[3, 4], DType::F64, 5).softmax(1);
    let pw = Tensor::rand_uniform(&[4], 0.5, 3.0, DType::F64, 6);
    gradcheck("mse", &|| mse_loss(&x, &y, Reduction::Mean), &[("x", &x)]);
    gradcheck("l1", &|| l1_loss(&x, &y, Reduction::Sum), &[("x", &x)]);
    gradcheck(
        "huber",
        &|| huber_loss(&x, &y, 0.7, Reduction::Mean),
        &[("x", &x)],
    );
    gradcheck(
        "smooth_l1",
        &|| smooth_l1_loss(&x, &y, 0.7, Reduction::None),
        &[("x", &x)],
    );
    gradcheck(
        "bce",
        &|| binary_cross_entropy(&prob, &yb, None, Reduction::Mean),
        &[("p", &prob)],
    );
    gradcheck(
        "bce logits",
        &|| binary_cross_entropy_with_logits(&x, &yb, None, Some(&pw), Reduction::Mean),
        &[("x", &x)],
    );
    gradcheck(
        "kl",
        &|| kl_div(&logq, &p, false, Reduction::BatchMean),
        &[("input", &logq)],
    );
}
