//! Each schedule's first 20 learning rates against its closed-form formula (written here
//! independently), plus values from PyTorch's documentation, composition, the scheduler
//! driving an optimiser's groups, ReduceLrOnPlateau and EarlyStopping.

use std::f64::consts::PI;

use tapegrad::{DType, Tensor};
use tapegrad_nn::Param;
use tapegrad_optim::schedule::*;
use tapegrad_optim::*;

const BASE: f64 = 0.2;

fn check(s: &dyn Schedule, formula: impl Fn(usize) -> f64, what: &str) {
    for t in 0..20 {
        let (got, want) = (s.lr(BASE, t), formula(t));
        assert!(
            (got - want).abs() < 1e-12,
            "{what}: step {t}: {got} vs {want}"
        );
    }
}

#[test]
fn closed_forms_first_20() {
    check(
        &ConstantLr::new(0.25, 7),
        |t| if t < 7 { BASE * 0.25 } else { BASE },
        "constant",
    );
    check(&ConstantLr::fixed(), |_| BASE, "fixed");
    check(
        &StepLr::new(3, 0.5),
        |t| BASE * 0.5f64.powi((t / 3) as i32),
        "step",
    );
    check(
        &MultiStepLr::new(vec![12, 4, 9], 0.3),
        |t| BASE * 0.3f64.powi([4, 9, 12].iter().filter(|&&m| m <= t).count() as i32),
        "multistep",
    );
    check(
        &ExponentialLr::new(0.9),
        |t| BASE * 0.9f64.powi(t as i32),
        "exponential",
    );
    check(
        &LinearWarmup::new(0.1, 8),
        |t| BASE * (0.1 + 0.9 * (t.min(8) as f64 / 8.0)),
        "linear warmup",
    );
    check(
        &PolynomialLr::new(15, 2.0),
        |t| BASE * (1.0 - t.min(15) as f64 / 15.0).powi(2),
        "polynomial",
    );
    check(
        &CosineAnnealingLr::new(10, 0.01),
        |t| 0.01 + (BASE - 0.01) * (1.0 + (PI * t as f64 / 10.0).cos()) / 2.0,
        "cosine",
    );
    // warm restarts with T_0 = 3, T_mult = 2: periods [0,3), [3,9), [9,21)
    check(
        &CosineAnnealingWarmRestarts::new(3, 2, 0.0),
        |t| {
            let (t_cur, t_i) = if t < 3 {
                (t, 3)
            } else if t < 9 {
                (t - 3, 6)
            } else {
                (t - 9, 12)
            };
            BASE * (1.0 + (PI * t_cur as f64 / t_i as f64).cos()) / 2.0
        },
        "warm restarts",
    );
    check(
        &CosineAnnealingWarmRestarts::new(4, 1, 0.05),
        |t| 0.05 + (BASE - 0.05) * (1.0 + (PI * (t % 4) as f64 / 4.0).cos()) / 2.0,
        "warm restarts t_mult 1",
    );
}

#[test]
fn one_cycle_first_20() {
    // N = 20: phase 1 ends at 0.3·20 − 1 = 5, phase 2 at 19
    let (init, min) = (BASE / 25.0, BASE / 25.0 / 1e4);
    let cos = |a: f64, b: f64, p: f64| b + (a - b) / 2.0 * ((PI * p).cos() + 1.0);
    check(
        &OneCycleLr::new(20),
        |t| {
            let t = t as f64;
            if t <= 5.0 {
                cos(init, BASE, t / 5.0)
            } else {
                cos(BASE, min, (t - 5.0) / 14.0)
            }
        },
        "one cycle",
    );
    // three phases: ends at 5, 2·6 − 2 = 10, 19
    let three = OneCycleLr {
        three_phase: true,
        ..OneCycleLr::new(20)
    };
    check(
        &three,
        |t| {
            let t = t as f64;
            if t <= 5.0 {
                cos(init, BASE, t / 5.0)
            } else if t <= 10.0 {
                cos(BASE, init, (t - 5.0) / 5.0)
            } else {
                cos(init, min, (t - 10.0) / 9.0)
            }
        },
        "one cycle three phase",
    );
    let linear = OneCycleLr {
        anneal: Anneal::Linear,
        ..OneCycleLr::new(20)
    };
    check(
        &linear,
        |t| {
            let t = t as f64;
            if t <= 5.0 {
                init + (BASE - init) * t / 5.0
            } else {
                BASE + (min - BASE) * (t - 5.0) / 14.0
            }
        },
        "one cycle linear",
    );
    assert_eq!(
        OneCycleLr::new(20).lr(BASE, 500),
        OneCycleLr::new(20).lr(BASE, 19)
    );
}

#[test]
fn pytorch_documented_values() {
    // From the examples in torch.optim.lr_scheduler's docstrings.
    let lin = LinearWarmup {
        start_factor: 0.5,
        end_factor: 1.0,
        total_iters: 4,
    };
    let want = [0.025, 0.03125, 0.0375, 0.04375, 0.05, 0.05, 0.05];
    for (t, w) in want.iter().enumerate() {
        assert!((lin.lr(0.05, t) - w).abs() < 1e-15, "LinearLR step {t}");
    }
    let poly = PolynomialLr::new(4, 1.0);
    for (t, w) in [0.001, 0.00075, 0.0005, 0.00025, 0.0, 0.0]
        .iter()
        .enumerate()
    {
        assert!(
            (poly.lr(0.001, t) - w).abs() < 1e-15,
            "PolynomialLR step {t}"
        );
    }
    let step = StepLr::new(30, 0.1);
    for (t, w) in [
        (0, 0.05),
        (29, 0.05),
        (30, 0.005),
        (59, 0.005),
        (60, 0.0005),
        (89, 0.0005),
    ] {
        assert!((step.lr(0.05, t) - w).abs() < 1e-15, "StepLR step {t}");
    }
    let multi = MultiStepLr::new(vec![30, 80], 0.1);
    for (t, w) in [
        (0, 0.05),
        (29, 0.05),
        (30, 0.005),
        (79, 0.005),
        (80, 0.0005),
    ] {
        assert!(
            (multi.lr(0.05, t) - w).abs() < 1e-15,
            "MultiStepLR step {t}"
        );
    }
}

#[test]
fn warmup_then_cosine_and_sequential() {
    let s = LinearWarmup::new(0.0, 5).then(CosineAnnealingLr::new(10, 0.0));
    for t in 0..20 {
        let want = if t < 5 {
            BASE * t as f64 / 5.0
        } else {
            BASE * (1.0 + (PI * (t - 5) as f64 / 10.0).cos()) / 2.0
        };
        assert!((s.lr(BASE, t) - want).abs() < 1e-12, "step {t}");
    }
    let s = SequentialLr::new(
        vec![
            Box::new(ConstantLr::new(0.5, 100)),
            Box::new(StepLr::new(2, 0.1)),
        ],
        vec![3],
    )
    .then_at(7, ExponentialLr::new(0.5));
    let want = [0.5, 0.5, 0.5, 1.0, 1.0, 0.1, 0.1, 1.0, 0.5, 0.25];
    for (t, w) in want.iter().enumerate() {
        assert!(
            (s.lr(1.0, t) - w).abs() < 1e-12,
            "step {t}: {}",
            s.lr(1.0, t)
        );
    }
}

fn sgd_two_groups() -> (Sgd, Vec<Param>) {
    let a = Param::new(Tensor::zeros(&[2], DType::F32));
    let b = Param::new(Tensor::zeros(&[1], DType::F32));
    let opt = Sgd::with_groups(vec![
        ParamGroup::new(
            [a.clone()],
            SgdConfig {
                lr: 1.0,
                ..SgdConfig::default()
            },
        ),
        ParamGroup::new(
            [b.clone()],
            SgdConfig {
                lr: 0.1,
                ..SgdConfig::default()
            },
        ),
    ]);
    (opt, vec![a, b])
}

#[test]
fn scheduler_drives_each_group_from_its_base() {
    let (mut opt, _) = sgd_two_groups();
    let mut sched = LrScheduler::new(ExponentialLr::new(0.5), &mut opt);
    assert_eq!((opt.group_lr(0), opt.group_lr(1)), (1.0, 0.1));
    for _ in 0..3 {
        sched.step(&mut opt);
    }
    assert!((opt.group_lr(0) - 0.125).abs() < 1e-15);
    assert!((opt.group_lr(1) - 0.0125).abs() < 1e-15);
    // resume: a new scheduler from the saved state continues the schedule
    let saved = sched.state().clone();
    let json = serde_json::to_string(&saved).unwrap();
    let (mut opt2, _) = sgd_two_groups();
    let mut sched2 = LrScheduler::new(ExponentialLr::new(0.5), &mut opt2);
    sched2.load_state(serde_json::from_str(&json).unwrap(), &mut opt2);
    sched.step(&mut opt);
    sched2.step(&mut opt2);
    assert_eq!(opt.group_lr(0), opt2.group_lr(0));
    assert_eq!(opt.group_lr(1), opt2.group_lr(1));
    assert_eq!(sched2.last_step(), 4);
}

#[test]
fn plateau_follows_pytorch_rules() {
    let (mut opt, _) = sgd_two_groups();
    let mut p = ReduceLrOnPlateau::new(&opt);
    p.patience = 1;
    p.cooldown = 1;
    p.min_lrs = vec![0.05, 0.05];
    // rel threshold 1e-4: 1.0 -> 0.99995 is not an improvement (needs < 0.9999)
    let metrics = [1.0, 0.99995, 0.99995, 0.5, 0.6, 0.6, 0.6, 0.6];
    let mut reduced = vec![];
    for m in metrics {
        reduced.push(p.step(m, &mut opt));
    }
    // step 3 (third metric): 2 bad > patience 1 -> reduce; cooldown 1 swallows step 4's count
    // (0.5 improves anyway); 0.6 x3: bad 1, 2 -> reduce at step 6; cooldown at step 7; step 8 bad 1
    assert_eq!(
        reduced,
        vec![false, false, true, false, false, true, false, false]
    );
    // group 0: 1 -> 0.1 -> 0.05 (min_lr); group 1: 0.1 -> max(0.01, 0.05) = 0.05 -> unchanged
    assert!((opt.group_lr(0) - 0.05).abs() < 1e-15);
    assert!((opt.group_lr(1) - 0.05).abs() < 1e-15);
    assert_eq!(p.best(), Some(0.5));

    // max mode, abs threshold
    let (mut opt, _) = sgd_two_groups();
    let mut p = ReduceLrOnPlateau::new(&opt);
    p.mode = Mode::Max;
    p.threshold_mode = ThresholdMode::Abs;
    p.threshold = 0.1;
    p.patience = 0;
    assert!(!p.step(0.5, &mut opt));
    assert!(p.step(0.55, &mut opt)); // not > 0.5 + 0.1
    assert!((opt.group_lr(0) - 0.1).abs() < 1e-15);
    assert!(!p.step(0.7, &mut opt));
}

#[test]
fn early_stopping_patience_delta_and_best_state() {
    let w = Param::new(Tensor::zeros(&[1], DType::F64));
    let mut es = EarlyStopping::new(3, 0.1, Mode::Min);
    let losses = [1.0, 0.95, 0.85, 0.8, 0.84, 0.79];
    let mut outcomes = vec![];
    for (step, &l) in losses.iter().enumerate() {
        w.set(&Tensor::full(&[1], step as f64, DType::F64));
        outcomes.push(es.observe(step, l, || {
            EarlyStopping::snapshot_params(std::slice::from_ref(&w))
        }));
    }
    use Observation::*;
    // 0.95 is not below 1.0 - 0.1; 0.85 is; then 0.8, 0.84, 0.79 are not below 0.75
    assert_eq!(
        outcomes,
        vec![Improved, Waiting, Improved, Waiting, Waiting, Stop]
    );
    let (best, step, snap) = es.best().unwrap();
    assert_eq!((best, step), (0.85, 2));
    // the snapshot is a copy: later updates did not change it
    assert_eq!(snap[0].to_vec::<f64>(), vec![2.0]);
    EarlyStopping::restore_params(std::slice::from_ref(&w), snap);
    assert_eq!(w.to_vec::<f64>(), vec![2.0]);
    assert!(es.should_stop());

    let mut es: EarlyStopping<()> = EarlyStopping::new(1, 0.0, Mode::Max);
    assert_eq!(es.observe(0, f64::NAN, || ()), Stop);
    assert_eq!(es.observe(1, 0.5, || ()), Improved);
    assert_eq!(es.observe(2, 0.4, || ()), Stop);
}
