//! The training loop: accumulation equals the large batch, a stopped and resumed run
//! ends where an uninterrupted one does, a diverging run stops at the right step with its
//! last good checkpoint intact.

use tapegrad::DType;
use tapegrad_data::{digits, BatchSizeSchedule, InMemoryDataset};
use tapegrad_nn::{Linear, Module, Relu, Sequential};
use tapegrad_optim::{Adam, AdamConfig, Optimizer, Sgd, SgdConfig};
use tapegrad_train::{Kept, Stop, TrainConfig, TrainError, Trainer};

fn model(seed: u64) -> Sequential {
    Sequential::new()
        .add(Linear::with_options(64, 32, true, DType::F64, seed))
        .add(Relu)
        .add(Linear::with_options(32, 10, true, DType::F64, seed + 1))
}

fn small_digits() -> (InMemoryDataset, InMemoryDataset) {
    let d = digits().unwrap();
    let (rest, val) = d.split(0.1, 1);
    (rest.subset(&(0..600).collect::<Vec<_>>()), val)
}

fn weights(m: &Sequential) -> Vec<f64> {
    m.params().iter().flat_map(|p| p.to_vec::<f64>()).collect()
}

fn sgd(m: &Sequential, lr: f64) -> Box<dyn Optimizer> {
    Box::new(Sgd::new(
        m.params(),
        SgdConfig {
            lr,
            momentum: 0.9,
            ..SgdConfig::default()
        },
    ))
}

#[test]
fn accumulated_micro_batches_equal_one_large_batch() {
    let (train, _) = small_digits();
    let run = |batch: usize, accumulate: usize| {
        let m = model(3);
        let opt = sgd(&m, 0.05);
        let config = TrainConfig {
            epochs: 1,
            batch_size: BatchSizeSchedule::new(batch),
            accumulate,
            max_iterations: Some(3),
            ..TrainConfig::default()
        };
        let mut t = Trainer::new(m, opt, config);
        assert_eq!(t.fit(&train, None, None, |_| {}).unwrap(), Stop::Budget);
        assert_eq!(t.state.iteration, 3);
        weights(&t.model)
    };
    let big = run(60, 1);
    for (b, a) in [(15, 4), (20, 3), (60, 1)] {
        let acc = run(b, a);
        let worst = big
            .iter()
            .zip(&acc)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max);
        assert!(
            worst < 1e-12,
            "micro-batch {b} x {a}: max difference {worst}"
        );
    }
    // And the comparison can fail: a different effective batch gives different weights.
    let other = run(30, 1);
    assert!(big.iter().zip(&other).any(|(x, y)| (x - y).abs() > 1e-6));
}

#[test]
fn unequal_micro_batches_are_weighted_by_size() {
    // 50 samples in micro-batches of 20 + 20 + 10 must equal one batch of 50.
    let (train, _) = small_digits();
    let train = train.subset(&(0..50).collect::<Vec<_>>());
    let run = |batch: usize, accumulate: usize| {
        let m = model(5);
        let opt = sgd(&m, 0.1);
        let config = TrainConfig {
            epochs: 1,
            batch_size: BatchSizeSchedule::new(batch),
            accumulate,
            ..TrainConfig::default()
        };
        let mut t = Trainer::new(m, opt, config);
        t.fit(&train, None, None, |_| {}).unwrap();
        assert_eq!(t.state.iteration, 1);
        weights(&t.model)
    };
    let (a, b) = (run(50, 1), run(20, 3));
    let worst = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    assert!(worst < 1e-12, "{worst}");
}

fn config(dir: Option<std::path::PathBuf>, max_iterations: Option<usize>) -> TrainConfig {
    TrainConfig {
        epochs: 3,
        batch_size: BatchSizeSchedule::new(32).grow_at(2, 64),
        seed: 11,
        checkpoint_dir: dir,
        max_iterations,
        ..TrainConfig::default()
    }
}

fn adam(m: &Sequential) -> Box<dyn Optimizer> {
    Box::new(Adam::new(
        m.params(),
        AdamConfig {
            lr: 0.01,
            ..AdamConfig::default()
        },
    ))
}

#[test]
fn stopped_and_resumed_run_matches_an_uninterrupted_one() {
    let (train, val) = small_digits();
    let m = model(7);
    let o = adam(&m);
    let mut whole = Trainer::new(m, o, config(None, None));
    assert_eq!(
        whole.fit(&train, Some(&val), None, |_| {}).unwrap(),
        Stop::Completed
    );

    let dir = tempfile::tempdir().unwrap();
    // Stop mid-epoch 1 (600 / 32 = 19 updates per epoch at first).
    let m = model(7);
    let o = adam(&m);
    let mut first = Trainer::new(m, o, config(Some(dir.path().into()), Some(25)));
    assert_eq!(
        first.fit(&train, Some(&val), None, |_| {}).unwrap(),
        Stop::Budget
    );
    assert_eq!((first.state.epoch, first.state.batch_in_epoch), (1, 6));
    drop(first);

    // A fresh process would rebuild the model with any seed and load the checkpoint.
    let m = model(99);
    let o = adam(&m);
    let mut resumed = Trainer::new(m, o, config(Some(dir.path().into()), None));
    resumed.resume(dir.path()).unwrap();
    assert_eq!(resumed.state.iteration, 25);
    assert_eq!(
        resumed.fit(&train, Some(&val), None, |_| {}).unwrap(),
        Stop::Completed
    );

    assert_eq!(resumed.state.iteration, whole.state.iteration);
    assert_eq!(
        weights(&resumed.model),
        weights(&whole.model),
        "resumed weights differ"
    );
    assert_eq!(resumed.state.history, {
        // Timing fields differ between runs; compare everything else.
        let mut h = whole.state.history.clone();
        for (a, b) in h.iter_mut().zip(&resumed.state.history) {
            a.samples_per_s = b.samples_per_s;
            a.seconds = b.seconds;
        }
        h
    });
}

#[test]
fn non_finite_loss_stops_with_its_step_and_keeps_the_last_checkpoint() {
    let (train, _) = small_digits();
    let dir = tempfile::tempdir().unwrap();
    let config = |epochs| TrainConfig {
        epochs,
        batch_size: BatchSizeSchedule::new(100),
        seed: 4,
        checkpoint_dir: Some(dir.path().into()),
        ..TrainConfig::default()
    };
    // One clean epoch, checkpointed.
    let m = model(1);
    let o = adam(&m);
    let mut t = Trainer::new(m, o, config(1));
    t.fit(&train, None, None, |_| {}).unwrap();
    // Then a sample turns NaN: epoch 1 must stop at the batch that holds it.
    let poisoned_sample = 123;
    let mut features = train.features().to_vec();
    features[poisoned_sample * 64 + 10] = f32::NAN;
    let poisoned = InMemoryDataset::new("poisoned", features, train.labels().to_vec(), &[64], 10);
    let position = tapegrad_data::DataLoader::new(poisoned.clone(), 100)
        .shuffle(4)
        .order(1)
        .iter()
        .position(|&i| i == poisoned_sample)
        .unwrap();
    t.config = config(2);
    let before = weights(&t.model);
    let err = t.fit(&poisoned, None, None, |_| {}).unwrap_err();
    let text = err.to_string();
    let TrainError::NonFiniteLoss {
        epoch,
        iteration,
        batch,
        value,
        kept,
    } = err
    else {
        panic!("{err}")
    };
    assert!(value.is_nan());
    // Counted as the progress display counts: epochs and batches from 1.
    assert_eq!(
        (epoch, batch, iteration),
        (2, position / 100 + 1, 6 + position / 100)
    );
    assert_eq!(
        kept,
        Kept::Checkpoint {
            dir: dir.path().into(),
            at: "the end of epoch 1 (iteration 6)".into()
        }
    );
    assert!(
        text.contains(&format!(
            "at epoch 2, iteration {iteration} (batch {batch} of the epoch); the last good checkpoint, from the end of epoch 1 (iteration 6), is kept in"
        )),
        "{text}"
    );
    // No update used the NaN: weights are finite.
    assert!(weights(&t.model).iter().all(|w| w.is_finite()));
    // The checkpoint on disk is the end of epoch 0, and it loads.
    let m = model(2);
    let o = adam(&m);
    let mut again = Trainer::new(m, o, config(2));
    again.resume(dir.path()).unwrap();
    assert_eq!((again.state.epoch, again.state.iteration), (1, 6));
    assert_eq!(weights(&again.model), before);
}

#[test]
fn corrupt_checkpoint_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("checkpoint.json"), b"{ not json").unwrap();
    let m = model(1);
    let o = adam(&m);
    let mut t = Trainer::new(m, o, TrainConfig::default());
    let e = t.resume(dir.path()).unwrap_err().to_string();
    assert!(e.contains("checkpoint.json"), "{e}");
}

#[test]
fn trains_digits_to_high_accuracy() {
    let d = digits().unwrap();
    let (train, test) = d.split(0.2, 0);
    let m = model(0);
    let o = adam(&m);
    let config = TrainConfig {
        epochs: 15,
        batch_size: BatchSizeSchedule::new(32),
        ..TrainConfig::default()
    };
    let mut t = Trainer::new(m, o, config);
    let mut epochs = 0;
    t.fit(&train, None, Some(&test), |e| {
        if let tapegrad_train::Event::Epoch(_) = e {
            epochs += 1
        }
    })
    .unwrap();
    assert_eq!(epochs, 15);
    let acc = t.state.history.last().unwrap().test_accuracy.unwrap();
    assert!(acc >= 0.95, "test accuracy {acc}");
}

#[test]
fn a_non_finite_validation_loss_stops_without_checkpointing_that_epoch() {
    let (train, val) = small_digits();
    let dir = tempfile::tempdir().unwrap();
    let config = |epochs| TrainConfig {
        epochs,
        batch_size: BatchSizeSchedule::new(100),
        checkpoint_dir: Some(dir.path().into()),
        ..TrainConfig::default()
    };
    let m = model(5);
    let o = adam(&m);
    let mut t = Trainer::new(m, o, config(1));
    t.fit(&train, Some(&val), None, |_| {}).unwrap();
    let good = weights(&t.model);
    // The validation set turns NaN: epoch 2 trains, then its validation loss is NaN.
    let mut features = val.features().to_vec();
    features[3] = f32::NAN;
    let bad_val = InMemoryDataset::new("bad", features, val.labels().to_vec(), &[64], 10);
    t.config = config(3);
    let mut shown = Vec::new();
    let err = t
        .fit(&train, Some(&bad_val), None, |e| {
            if let tapegrad_train::Event::Epoch(m) = e {
                shown.push(m.epoch)
            }
        })
        .unwrap_err();
    assert_eq!(shown, [2], "the epoch is shown before it is refused");
    let text = err.to_string();
    assert!(
        text.starts_with("the validation loss (NaN) is not finite after epoch 2, iteration 12; the last good checkpoint, from the end of epoch 1 (iteration 6), is kept in"),
        "{text}"
    );
    // Resuming gives the epoch-1 weights, not the epoch-2 ones.
    let m = model(6);
    let o = adam(&m);
    let mut again = Trainer::new(m, o, config(3));
    again.resume(dir.path()).unwrap();
    assert_eq!(again.state.epoch, 1);
    assert_eq!(weights(&again.model), good);
}

/// A model with a parameter that holds an infinity but takes no part in the loss.
struct WithBadWeight {
    net: Sequential,
    unused: tapegrad_nn::Param,
}

impl Module for WithBadWeight {
    fn forward(&self, x: &tapegrad::Tensor) -> tapegrad::Tensor {
        self.net.forward(x)
    }
    fn named_params(&self) -> Vec<(String, tapegrad_nn::Param)> {
        let mut p = self.net.named_params();
        p.push(("unused".into(), self.unused.clone()));
        p
    }
}

#[test]
fn non_finite_weights_are_never_checkpointed_and_the_error_says_so() {
    let (train, _) = small_digits();
    let net = model(7);
    let unused = tapegrad_nn::Param::new(tapegrad::Tensor::from_vec(
        vec![1.0f64, f64::INFINITY],
        &[2],
    ));
    let m = WithBadWeight { net, unused };
    let o = adam(&m.net);
    let dir = tempfile::tempdir().unwrap();
    let config = TrainConfig {
        epochs: 1,
        batch_size: BatchSizeSchedule::new(100),
        checkpoint_dir: Some(dir.path().join("ckpt")),
        ..TrainConfig::default()
    };
    let mut t = Trainer::new(m, o, config);
    let err = t.fit(&train, None, None, |_| {}).unwrap_err().to_string();
    assert!(
        err.starts_with("weight `unused` is not finite after epoch 1, iteration 6; no checkpoint had been written to"),
        "{err}"
    );
    assert!(!dir.path().join("ckpt").join("checkpoint.json").exists());
    // Without a checkpoint directory the message promises nothing.
    let mut features = train.features().to_vec();
    features[0] = f32::INFINITY;
    let train = InMemoryDataset::new("inf", features, train.labels().to_vec(), &[64], 10);
    let m = model(8);
    let o = sgd(&m, 0.01);
    let config = TrainConfig {
        epochs: 1,
        batch_size: BatchSizeSchedule::new(100),
        ..TrainConfig::default()
    };
    let err = Trainer::new(m, o, config)
        .fit(&train, None, None, |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("non-finite loss"), "{err}");
    assert!(!err.contains("checkpoint"), "{err}");
}

mod fuzz {
    //! `resume` on hostile `checkpoint.json` files: arbitrary bytes, and a valid index with
    //! one field replaced. Each is `Err` naming the file, or a state that then trains
    //! without panicking.

    use super::*;
    use proptest::prelude::*;

    fn hostile_value() -> impl Strategy<Value = serde_json::Value> {
        use serde_json::json;
        prop_oneof![
            Just(json!(null)),
            Just(json!(-1)),
            Just(json!(u64::MAX)),
            Just(json!(1e308)),
            Just(json!("../../etc/passwd")),
            Just(json!("/etc/passwd")),
            Just(json!([])),
            Just(json!({})),
            (0u64..40).prop_map(|v| json!(v)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn resume_never_panics_on_a_hostile_index(
            field in prop_oneof![
                Just("/weights"), Just("/optimizer"), Just("/state/epoch"),
                Just("/state/batch_in_epoch"), Just("/state/iteration"),
                Just("/state/epoch_samples"), Just("/state/epoch_loss_sum"),
                Just("/state/history"), Just("/state/best_val_loss"), Just("/state"),
            ],
            value in hostile_value(),
            garbage in prop::collection::vec(any::<u8>(), 0..40),
            use_garbage in any::<bool>(),
        ) {
            let (train, _) = small_digits();
            let train = train.subset(&(0..50).collect::<Vec<_>>());
            let dir = tempfile::tempdir().unwrap();
            let config = || TrainConfig {
                epochs: 1,
                batch_size: BatchSizeSchedule::new(20),
                checkpoint_dir: Some(dir.path().into()),
                ..TrainConfig::default()
            };
            let m = model(1);
            let o = adam(&m);
            let mut t = Trainer::new(m, o, config());
            t.fit(&train, None, None, |_| {}).unwrap();
            let index_path = dir.path().join("checkpoint.json");
            let bytes = if use_garbage {
                garbage
            } else {
                let mut index: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
                *index.pointer_mut(field).unwrap() = value;
                serde_json::to_vec(&index).unwrap()
            };
            std::fs::write(&index_path, bytes).unwrap();
            let m = model(2);
            let o = adam(&m);
            let mut again = Trainer::new(m, o, TrainConfig { epochs: 2, ..config() });
            match again.resume(dir.path()) {
                Err(e) => {
                    let e = e.to_string();
                    prop_assert!(e.contains(dir.path().to_str().unwrap()), "{}", e);
                }
                Ok(()) => {
                    // Whatever state was accepted, training from it ends without a panic.
                    let _ = again.fit(&train, None, None, |_| {});
                }
            }
        }
    }
}

/// A model whose forward draws random masks (Dropout) and keeps running statistics
/// (BatchNorm): its exact resume needs the dropout streams and the buffers.
fn noisy_model(seed: u64) -> Sequential {
    Sequential::new()
        .add(Linear::with_options(64, 32, true, DType::F64, seed))
        .add(tapegrad_nn::BatchNorm1d::with_dtype(32, DType::F64))
        .add(Relu)
        .add(tapegrad_nn::Dropout::new(0.3, 5))
        .add(Linear::with_options(32, 10, true, DType::F64, seed + 1))
}

fn weights_and_buffers(m: &Sequential) -> Vec<f64> {
    let mut v = weights(m);
    v.extend(
        m.named_buffers()
            .iter()
            .flat_map(|(_, t)| t.to_vec::<f64>()),
    );
    v
}

#[test]
fn a_resumed_run_with_dropout_and_batch_norm_is_bitwise_the_uninterrupted_one() {
    let (train, val) = small_digits();
    let m = noisy_model(7);
    let o = adam(&m);
    let mut whole = Trainer::new(m, o, config(None, None));
    whole.fit(&train, Some(&val), None, |_| {}).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let m = noisy_model(7);
    let o = adam(&m);
    let mut first = Trainer::new(m, o, config(Some(dir.path().into()), Some(25)));
    assert_eq!(
        first.fit(&train, Some(&val), None, |_| {}).unwrap(),
        Stop::Budget
    );
    drop(first);

    let m = noisy_model(99);
    let o = adam(&m);
    let mut resumed = Trainer::new(m, o, config(Some(dir.path().into()), None));
    resumed.resume(dir.path()).unwrap();
    let calls = resumed.model.named_counters();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].0, "3.calls");
    assert_eq!(calls[0].1.load(std::sync::atomic::Ordering::Relaxed), 25);
    resumed.fit(&train, Some(&val), None, |_| {}).unwrap();
    assert_eq!(resumed.state.iteration, whole.state.iteration);
    assert_eq!(
        weights_and_buffers(&resumed.model),
        weights_and_buffers(&whole.model),
        "resumed weights or running statistics differ"
    );
}

#[test]
fn resume_refuses_a_checkpoint_whose_counters_do_not_match_the_model() {
    let (train, _) = small_digits();
    let dir = tempfile::tempdir().unwrap();
    let m = model(1);
    let o = adam(&m);
    let mut t = Trainer::new(m, o, config(Some(dir.path().into()), Some(2)));
    t.fit(&train, None, None, |_| {}).unwrap();
    // The same weights' names but a dropout layer the checkpoint knows nothing of.
    let m = Sequential::new()
        .add(Linear::with_options(64, 32, true, DType::F64, 1))
        .add(tapegrad_nn::Dropout::new(0.3, 5))
        .add(Linear::with_options(32, 10, true, DType::F64, 2));
    let o = adam(&m);
    let mut again = Trainer::new(m, o, config(Some(dir.path().into()), None));
    let e = again.resume(dir.path()).unwrap_err().to_string();
    assert!(
        e.contains("checkpoint.json") && e.contains("counters"),
        "{e}"
    );
}

#[test]
fn a_schedule_scales_each_parameter_group_keeping_their_ratio() {
    use tapegrad_optim::schedule::{CosineAnnealingLr, Schedule};
    use tapegrad_optim::ParamGroup;
    let (train, _) = small_digits();
    let m = model(3);
    let params = m.params();
    let (weights, biases): (Vec<_>, Vec<_>) =
        params.into_iter().partition(|p| p.shape().len() == 2);
    let sgd = |lr| SgdConfig {
        lr,
        ..SgdConfig::default()
    };
    let opt = Sgd::with_groups(vec![
        ParamGroup::new(weights, sgd(0.1)),
        ParamGroup::new(biases, sgd(0.01)),
    ]);
    let schedule = std::sync::Arc::new(CosineAnnealingLr::new(10, 0.0));
    let config = TrainConfig {
        epochs: 1,
        batch_size: BatchSizeSchedule::new(100),
        schedule: Some(schedule.clone()),
        max_iterations: Some(4),
        ..TrainConfig::default()
    };
    let mut t = Trainer::new(m, Box::new(opt), config);
    t.fit(&train, None, None, |_| {}).unwrap();
    // The 4th update (iteration 3) ran at each group's own rate, scheduled.
    assert_eq!(t.optimizer.group_lr(0), schedule.lr(0.1, 3));
    assert_eq!(t.optimizer.group_lr(1), schedule.lr(0.01, 3));
    assert!(t.optimizer.group_lr(0) < 0.1);
}

mod any_model {
    //! The trainer with a user's step closure: regression with MSE on float targets, and
    //! a model of two inputs of different shapes, both from a `TensorDataset`.

    use super::*;
    use tapegrad::Tensor;
    use tapegrad_nn::loss::{mse_loss, Reduction};
    use tapegrad_nn::Param;
    use tapegrad_train::{Batch, Field, TensorDataset};

    #[test]
    fn a_linear_regression_with_mse_recovers_its_weights() {
        // y = x . [1.5, -2, 0.5] + 0.25 exactly, so the loss can fall to 0.
        let x = Tensor::randn(&[200, 3], DType::F64, 3);
        let w = Tensor::from_vec(vec![1.5f64, -2.0, 0.5], &[3, 1]);
        let y = x.matmul(&w).add_scalar(0.25);
        let data = TensorDataset::new(vec![Field::Tensor(x), Field::Tensor(y)]);
        let model = Linear::with_options(3, 1, true, DType::F64, 0);
        let opt = Box::new(Sgd::new(
            model.params(),
            SgdConfig {
                lr: 0.1,
                ..SgdConfig::default()
            },
        ));
        let config = TrainConfig {
            epochs: 30,
            batch_size: BatchSizeSchedule::new(20),
            ..TrainConfig::default()
        };
        let mut t = Trainer::with_loss(model, opt, config, |m: &Linear, b: &Batch| {
            mse_loss(&m.forward(b.tensor(0)), b.tensor(1), Reduction::Mean)
        });
        t.fit(&data, Some(&data), None, |_| {}).unwrap();
        let first = t.state.history[0].train_loss;
        let last = t.state.history.last().unwrap();
        assert!(first > 0.01, "{first}");
        assert!(last.val_loss.unwrap() < 1e-10, "{last:?}");
        assert_eq!(last.val_accuracy, None, "no accuracy without classes");
        let learnt: Vec<f64> = t
            .model
            .params()
            .iter()
            .flat_map(|p| p.to_vec::<f64>())
            .collect();
        for (got, want) in learnt.iter().zip([1.5, -2.0, 0.5, 0.25]) {
            assert!((got - want).abs() < 1e-5, "{learnt:?}");
        }
    }

    /// `out = a(x1) * b(flatten(x2))`: two inputs, `[N, 3]` and `[N, 2, 2]`.
    struct TwoInputs {
        a: Linear,
        b: Linear,
    }

    impl TwoInputs {
        fn forward2(&self, x1: &Tensor, x2: &Tensor) -> Tensor {
            let n = x2.shape()[0] as isize;
            self.a
                .forward(x1)
                .mul(&self.b.forward(&x2.reshape(&[n, 4])))
        }
    }

    impl Module for TwoInputs {
        /// Both inputs side by side, `[N, 3 + 4]`.
        fn forward(&self, x: &Tensor) -> Tensor {
            let n = x.shape()[0] as isize;
            self.forward2(&x.narrow(1, 0, 3), &x.narrow(1, 3, 4).reshape(&[n, 2, 2]))
        }
        fn named_params(&self) -> Vec<(String, Param)> {
            let mut p = self.a.named_params();
            p.extend(self.b.named_params());
            p
        }
    }

    #[test]
    fn a_model_of_two_inputs_learns_their_product() {
        // y = (x1 . u) (x2 . v): exactly what the model can represent.
        let x1 = Tensor::randn(&[256, 3], DType::F64, 1);
        let x2 = Tensor::randn(&[256, 2, 2], DType::F64, 2);
        let u = Tensor::from_vec(vec![1.0f64, -1.0, 0.5], &[3, 1]);
        let v = Tensor::from_vec(vec![0.5f64, 2.0, -1.0, 1.0], &[4, 1]);
        let y = x1.matmul(&u).mul(&x2.reshape(&[256, 4]).matmul(&v));
        let data = TensorDataset::new(vec![Field::Tensor(x1), Field::Tensor(x2), Field::Tensor(y)]);
        let model = TwoInputs {
            a: Linear::with_options(3, 1, false, DType::F64, 5),
            b: Linear::with_options(4, 1, false, DType::F64, 6),
        };
        let opt = Box::new(Adam::new(
            model.params(),
            AdamConfig {
                lr: 0.02,
                ..AdamConfig::default()
            },
        ));
        let config = TrainConfig {
            epochs: 60,
            batch_size: BatchSizeSchedule::new(32),
            ..TrainConfig::default()
        };
        let mut t = Trainer::with_loss(model, opt, config, |m: &TwoInputs, b: &Batch| {
            let out = m.forward2(b.tensor(0), b.tensor(1));
            mse_loss(&out, b.tensor(2), Reduction::Mean)
        });
        t.fit(&data, Some(&data), None, |_| {}).unwrap();
        let first = t.state.history[0].train_loss;
        let last = t.state.history.last().unwrap().val_loss.unwrap();
        // The targets' variance is about |u|^2 |v|^2 = 2.25 * 6.25; the product is learnt.
        assert!(first > 1.0, "{first}");
        assert!(last < 1e-3, "first epoch {first}, last {last}");
    }
}

fn adaptive_config(dir: Option<std::path::PathBuf>, max_iterations: Option<usize>) -> TrainConfig {
    use tapegrad_train::adaptive::{AdaptiveBatch, LrRule};
    TrainConfig {
        adaptive_batch: Some(AdaptiveBatch {
            measure_every: 1,
            cooldown: 3,
            ..AdaptiveBatch::new(8, 128, 32, LrRule::Sqrt)
        }),
        ..config(dir, max_iterations)
    }
}

#[test]
fn a_resumed_run_with_an_adaptive_batch_is_bitwise_the_uninterrupted_one() {
    let (train, val) = small_digits();
    let m = noisy_model(7);
    let o = adam(&m);
    let mut whole = Trainer::new(m, o, adaptive_config(None, None));
    whole.fit(&train, Some(&val), None, |_| {}).unwrap();
    let grown = whole.state.adaptive.clone().unwrap();
    assert!(
        !grown.growths.is_empty() && grown.batch > 8,
        "the batch never grew: {grown:?}"
    );
    // The learning rate followed the batch (square-root rule from 0.01 at batch 8).
    let factor = (grown.batch as f64 / 8.0).sqrt();
    assert!((whole.optimizer.lr() - 0.01 * factor).abs() < 1e-12);

    let dir = tempfile::tempdir().unwrap();
    let m = noisy_model(7);
    let o = adam(&m);
    let mut first = Trainer::new(m, o, adaptive_config(Some(dir.path().into()), Some(25)));
    assert_eq!(
        first.fit(&train, Some(&val), None, |_| {}).unwrap(),
        Stop::Budget
    );
    drop(first);
    let m = noisy_model(99);
    let o = adam(&m);
    let mut resumed = Trainer::new(m, o, adaptive_config(Some(dir.path().into()), None));
    resumed.resume(dir.path()).unwrap();
    assert!(resumed.state.adaptive.is_some());
    resumed.fit(&train, Some(&val), None, |_| {}).unwrap();
    assert_eq!(resumed.state.adaptive, whole.state.adaptive);
    assert_eq!(resumed.state.iteration, whole.state.iteration);
    assert_eq!(
        weights_and_buffers(&resumed.model),
        weights_and_buffers(&whole.model),
        "resumed weights or running statistics differ"
    );
}
