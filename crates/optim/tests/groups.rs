//! Parameter groups: weight decay is applied only to groups that enable it, each group
//! steps with its own learning rate, and group validation.

use tapegrad::{DType, Tensor};
use tapegrad_nn::Param;
use tapegrad_optim::*;

/// Builds an optimiser over a decayed group and a group with weight decay 0.
type Make = fn(Param, Param) -> Box<dyn Optimizer>;

fn makers() -> Vec<(&'static str, Make)> {
    vec![
        ("sgd", |a, b| {
            let on = SgdConfig {
                lr: 0.1,
                weight_decay: 0.5,
                momentum: 0.9,
                ..Default::default()
            };
            Box::new(Sgd::with_groups(vec![
                ParamGroup::new([a], on.clone()),
                ParamGroup::new(
                    [b],
                    SgdConfig {
                        weight_decay: 0.0,
                        ..on
                    },
                ),
            ]))
        }),
        ("adam", |a, b| {
            let on = AdamConfig {
                lr: 0.1,
                weight_decay: 0.5,
                ..Default::default()
            };
            Box::new(Adam::with_groups(vec![
                ParamGroup::new([a], on.clone()),
                ParamGroup::new(
                    [b],
                    AdamConfig {
                        weight_decay: 0.0,
                        ..on
                    },
                ),
            ]))
        }),
        ("adamw", |a, b| {
            let on = AdamWConfig {
                lr: 0.1,
                weight_decay: 0.5,
                ..Default::default()
            };
            Box::new(AdamW::with_groups(vec![
                ParamGroup::new([a], on.clone()),
                ParamGroup::new(
                    [b],
                    AdamWConfig {
                        weight_decay: 0.0,
                        ..on
                    },
                ),
            ]))
        }),
        ("rmsprop", |a, b| {
            let on = RmsPropConfig {
                weight_decay: 0.5,
                centered: true,
                momentum: 0.5,
                ..Default::default()
            };
            Box::new(RmsProp::with_groups(vec![
                ParamGroup::new([a], on.clone()),
                ParamGroup::new(
                    [b],
                    RmsPropConfig {
                        weight_decay: 0.0,
                        ..on
                    },
                ),
            ]))
        }),
        ("adagrad", |a, b| {
            let on = AdaGradConfig {
                weight_decay: 0.5,
                ..Default::default()
            };
            Box::new(AdaGrad::with_groups(vec![
                ParamGroup::new([a], on.clone()),
                ParamGroup::new(
                    [b],
                    AdaGradConfig {
                        weight_decay: 0.0,
                        ..on
                    },
                ),
            ]))
        }),
        ("lars", |a, b| {
            let on = LarsConfig {
                weight_decay: 0.5,
                ..Default::default()
            };
            Box::new(Lars::with_groups(vec![
                ParamGroup::new([a], on.clone()),
                ParamGroup::new(
                    [b],
                    LarsConfig {
                        weight_decay: 0.0,
                        exclude: true,
                        ..on
                    },
                ),
            ]))
        }),
        ("lamb", |a, b| {
            let on = LambConfig {
                weight_decay: 0.5,
                ..Default::default()
            };
            Box::new(Lamb::with_groups(vec![
                ParamGroup::new([a], on.clone()),
                ParamGroup::new(
                    [b],
                    LambConfig {
                        weight_decay: 0.0,
                        exclude: true,
                        ..on
                    },
                ),
            ]))
        }),
    ]
}

#[test]
fn weight_decay_only_where_enabled() {
    for (name, make) in makers() {
        let a = Param::new(Tensor::from_vec(vec![1.0f64, -2.0], &[2]));
        let b = Param::new(Tensor::from_vec(vec![1.0f64, -2.0], &[2]));
        let mut opt = make(a.clone(), b.clone());
        assert_eq!(opt.group_weight_decay(0), 0.5, "{name}");
        assert_eq!(opt.group_weight_decay(1), 0.0, "{name}");
        for _ in 0..3 {
            // a zero gradient: only weight decay can move the weights
            let loss = (&*a * 0.0).sum() + (&*b * 0.0).sum();
            opt.step(&loss.backward());
        }
        let (va, vb) = (a.to_vec::<f64>(), b.to_vec::<f64>());
        assert_eq!(
            vb,
            vec![1.0, -2.0],
            "{name}: the group without weight decay moved"
        );
        assert!(
            va[0].abs() < 1.0 && va[1].abs() < 2.0,
            "{name}: decay did not shrink the weights: {va:?}"
        );
        assert!(va[0] > 0.0 && va[1] < 0.0, "{name}: decay overshot: {va:?}");
    }
}

#[test]
fn each_group_has_its_own_learning_rate() {
    let a = Param::new(Tensor::from_vec(vec![1.0f64], &[1]));
    let b = Param::new(Tensor::from_vec(vec![1.0f64], &[1]));
    let mut opt = Sgd::with_groups(vec![
        ParamGroup::new(
            [a.clone()],
            SgdConfig {
                lr: 0.1,
                ..Default::default()
            },
        ),
        ParamGroup::new(
            [b.clone()],
            SgdConfig {
                lr: 0.01,
                ..Default::default()
            },
        ),
    ]);
    let loss = a.sum() + b.sum(); // gradient 1 for both
    opt.step(&loss.backward());
    assert!((a.item() - 0.9).abs() < 1e-15 && (b.item() - 0.99).abs() < 1e-15);
    opt.set_group_lr(1, 0.5);
    assert_eq!((opt.group_lr(0), opt.group_lr(1)), (0.1, 0.5));
    opt.set_lr(0.2);
    assert_eq!((opt.group_lr(0), opt.group_lr(1)), (0.2, 0.2));
    opt.hyper_mut(0).momentum = 0.9;
    assert_eq!(opt.groups()[0].hyper.momentum, 0.9);
    // add a group later (e.g. unfreezing a layer)
    let c = Param::new(Tensor::zeros(&[2], DType::F64));
    opt.add_param_group(ParamGroup::new(
        [c.clone()],
        SgdConfig {
            lr: 1.0,
            ..Default::default()
        },
    ));
    assert_eq!(opt.num_groups(), 3);
    opt.step(&c.sum().backward());
    assert_eq!(c.to_vec::<f64>(), vec![-1.0, -1.0]);
}

#[test]
#[should_panic(expected = "appears more than once")]
fn a_parameter_in_two_groups_panics() {
    let a = Param::new(Tensor::zeros(&[1], DType::F32));
    Adam::with_groups(vec![
        ParamGroup::new([a.clone()], AdamConfig::default()),
        ParamGroup::new([a], AdamConfig::default()),
    ]);
}

#[test]
#[should_panic(expected = "Sgd: Nesterov momentum requires")]
fn invalid_hyper_parameters_panic_like_pytorch() {
    Sgd::new(
        [],
        SgdConfig {
            nesterov: true,
            ..Default::default()
        },
    );
}

#[test]
#[should_panic(expected = "invalid beta2")]
fn invalid_beta_panics() {
    Adam::new(
        [],
        AdamConfig {
            betas: (0.9, 1.0),
            ..Default::default()
        },
    );
}

#[test]
#[should_panic(
    expected = "gradient of parameter 0 (unnamed) is [2] f64 but the parameter is [2] f32"
)]
fn gradient_of_the_wrong_dtype_panics() {
    // (Grads::insert already rejects a gradient of another shape)
    let a = Param::new(Tensor::zeros(&[2], DType::F32));
    let mut opt = Sgd::new([a.clone()], SgdConfig::default());
    let mut wrong = tapegrad::Grads::new();
    wrong.insert(&a, Tensor::zeros(&[2], DType::F64));
    opt.step(&wrong);
}
