//! State save → load → identical next steps, for every optimiser (f32 and f64), and
//! loads that must fail: another optimiser, other shapes, other groups, corrupt files.

use std::path::Path;

use tapegrad::{DType, Grads, Tensor};
use tapegrad_nn::Param;
use tapegrad_optim::*;

type Make = fn(Vec<Param>) -> Box<dyn Optimizer>;

fn makers() -> Vec<(&'static str, Make)> {
    vec![
        ("sgd", |ps| {
            Box::new(Sgd::new(
                ps,
                SgdConfig {
                    lr: 0.05,
                    momentum: 0.9,
                    nesterov: true,
                    weight_decay: 0.01,
                    ..Default::default()
                },
            ))
        }),
        ("adam", |ps| {
            Box::new(Adam::new(
                ps,
                AdamConfig {
                    lr: 0.05,
                    amsgrad: true,
                    ..Default::default()
                },
            ))
        }),
        ("adamw", |ps| {
            Box::new(AdamW::new(
                ps,
                AdamWConfig {
                    lr: 0.05,
                    ..Default::default()
                },
            ))
        }),
        ("rmsprop", |ps| {
            Box::new(RmsProp::new(
                ps,
                RmsPropConfig {
                    momentum: 0.5,
                    centered: true,
                    ..Default::default()
                },
            ))
        }),
        ("adagrad", |ps| {
            Box::new(AdaGrad::new(
                ps,
                AdaGradConfig {
                    lr_decay: 0.1,
                    ..Default::default()
                },
            ))
        }),
        ("lars", |ps| {
            Box::new(Lars::new(
                ps,
                LarsConfig {
                    weight_decay: 1e-3,
                    ..Default::default()
                },
            ))
        }),
        ("lamb", |ps| Box::new(Lamb::new(ps, LambConfig::default()))),
    ]
}

fn params(dtype: DType) -> Vec<Param> {
    vec![
        Param::new(Tensor::randn(&[3, 2], dtype, 7)),
        Param::new(Tensor::randn(&[4], dtype, 8)),
    ]
}

/// A non-quadratic loss so that every step's gradient differs.
fn grads(ps: &[Param]) -> Grads {
    let l = (&*ps[0] * &*ps[0]).tanh().sum() + (&*ps[1] * 3.0).sin().sum() + ps[1].square().sum();
    l.backward()
}

fn bits(ps: &[Param]) -> Vec<u64> {
    ps.iter()
        .flat_map(|p| p.to_vec::<f64>())
        .map(f64::to_bits)
        .collect()
}

fn copy(ps: &[Param]) -> Vec<Param> {
    ps.iter()
        .map(|p| Param::new(Tensor::from_array(p.to_array::<f64>()).to_dtype(p.dtype())))
        .collect()
}

#[test]
fn save_load_continues_exactly() {
    let dir = tempfile::tempdir().unwrap();
    for dtype in [DType::F32, DType::F64] {
        for (name, make) in makers() {
            let ps = params(dtype);
            let mut opt = make(ps.clone());
            for _ in 0..3 {
                opt.step(&grads(&ps));
            }
            opt.set_group_lr(0, 0.0123); // hyper-parameters travel with the state
            let path = dir.path().join(format!("{name}-{dtype}.safetensors"));
            opt.save(&path).unwrap();

            let ps2 = copy(&ps);
            let mut opt2 = make(ps2.clone());
            opt2.load(&path).unwrap();
            assert_eq!(opt2.lr(), 0.0123, "{name}");
            for step in 0..3 {
                opt.step(&grads(&ps));
                opt2.step(&grads(&ps2));
                assert_eq!(
                    bits(&ps),
                    bits(&ps2),
                    "{name} {dtype}: step {step} after loading differs"
                );
            }
            // and a fresh optimiser (no state loaded) would have differed
            let ps3 = copy(&ps);
            let mut fresh = make(ps3.clone());
            fresh.set_lr(opt.lr());
            opt.step(&grads(&ps));
            fresh.step(&grads(&ps3));
            assert_ne!(
                bits(&ps),
                bits(&ps3),
                "{name} {dtype}: the state made no difference"
            );
        }
    }
}

#[test]
fn in_memory_state_dict_round_trips() {
    let ps = params(DType::F64);
    let mut opt = Adam::new(ps.clone(), AdamConfig::default());
    opt.step(&grads(&ps));
    let sd = opt.state_dict();
    assert_eq!(sd.optimizer, "Adam");
    assert_eq!(sd.groups[0].params, vec![0, 1]);
    assert_eq!(sd.state[&1].scalars["step"], 1.0);
    assert_eq!(sd.state[&1].tensors["exp_avg"].shape(), &[4]);
    let mut opt2 = Adam::new(
        copy(&ps),
        AdamConfig {
            lr: 0.5,
            ..Default::default()
        },
    );
    opt2.load_state_dict(&sd).unwrap();
    assert_eq!(opt2.lr(), 1e-3);
}

fn adam_state_file(dir: &Path, shape: &[usize]) -> std::path::PathBuf {
    let w = Param::new(Tensor::ones(shape, DType::F32));
    let mut opt = Adam::with_groups(vec![ParamGroup::named(
        [("layer.weight".to_string(), w.clone())],
        AdamConfig::default(),
    )]);
    opt.step(&(&*w * &*w).sum().backward());
    let path = dir.join("adam.safetensors");
    opt.save(&path).unwrap();
    path
}

#[test]
fn mismatches_are_errors_naming_what_and_nothing_loads() {
    let dir = tempfile::tempdir().unwrap();
    let path = adam_state_file(dir.path(), &[3]);

    // another optimiser
    let w = Param::new(Tensor::ones(&[3], DType::F32));
    let mut sgd = Sgd::new([w.clone()], SgdConfig::default());
    let e = sgd.load(&path).unwrap_err().to_string();
    assert!(
        e.contains("Adam") && e.contains("Sgd") && e.contains("adam.safetensors"),
        "{e}"
    );

    // another shape: the error names the parameter, the buffer and both shapes
    let w = Param::new(Tensor::ones(&[4], DType::F32));
    let mut adam = Adam::with_groups(vec![ParamGroup::named(
        [("layer.weight".to_string(), w.clone())],
        AdamConfig::default(),
    )]);
    adam.step(&(&*w * &*w).sum().backward());
    let before = adam.state_dict();
    let e = adam.load(&path).unwrap_err();
    assert!(matches!(e, OptimError::Mismatch { .. }));
    let e = e.to_string();
    assert!(
        e.contains("layer.weight")
            && e.contains("[3]")
            && e.contains("[4]")
            && e.contains("exp_avg"),
        "{e}"
    );
    // nothing was loaded
    assert_eq!(
        adam.state_dict().state[&0].tensors["exp_avg"].to_vec::<f32>(),
        before.state[&0].tensors["exp_avg"].to_vec::<f32>()
    );

    // another dtype
    let w = Param::new(Tensor::ones(&[3], DType::F64));
    let e = Adam::new([w], AdamConfig::default())
        .load(&path)
        .unwrap_err()
        .to_string();
    assert!(e.contains("f32") && e.contains("f64"), "{e}");

    // other group structure
    let a = Param::new(Tensor::ones(&[3], DType::F32));
    let b = Param::new(Tensor::ones(&[3], DType::F32));
    let e = Adam::new([a.clone(), b.clone()], AdamConfig::default())
        .load(&path)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("group 0 has 1 parameters in the state, 2"),
        "{e}"
    );
    let e = Adam::with_groups(vec![
        ParamGroup::new([a], AdamConfig::default()),
        ParamGroup::new([b], AdamConfig::default()),
    ])
    .load(&path)
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("1 parameter groups") && e.contains("has 2"),
        "{e}"
    );

    // another name
    let w = Param::new(Tensor::ones(&[3], DType::F32));
    let e = Adam::with_groups(vec![ParamGroup::named(
        [("other".to_string(), w)],
        AdamConfig::default(),
    )])
    .load(&path)
    .unwrap_err()
    .to_string();
    assert!(e.contains("layer.weight") && e.contains("other"), "{e}");
}

#[test]
fn corrupt_truncated_and_missing_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = adam_state_file(dir.path(), &[3]);
    let bytes = std::fs::read(&path).unwrap();
    let w = Param::new(Tensor::ones(&[3], DType::F32));
    let mut opt = Adam::new([w], AdamConfig::default());

    let truncated = dir.path().join("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() - 5]).unwrap();
    let e = opt.load(&truncated).unwrap_err();
    assert!(matches!(e, OptimError::Format { .. }), "{e}");
    assert!(e.to_string().contains("truncated.safetensors"), "{e}");

    let garbage = dir.path().join("garbage.safetensors");
    std::fs::write(&garbage, b"not a state file at all").unwrap();
    assert!(matches!(
        opt.load(&garbage).unwrap_err(),
        OptimError::Format { .. }
    ));

    // a valid safetensors file that is not an optimiser state
    let other = dir.path().join("weights.safetensors");
    let data = [0u8; 8];
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![2], &data).unwrap();
    std::fs::write(
        &other,
        safetensors::serialize([("weight", view)], &None).unwrap(),
    )
    .unwrap();
    let e = opt.load(&other).unwrap_err().to_string();
    assert!(
        e.contains("weights.safetensors") && e.contains("tapegrad.optim"),
        "{e}"
    );

    let missing = dir.path().join("missing.safetensors");
    let e = opt.load(&missing).unwrap_err();
    assert!(
        matches!(e, OptimError::Io { .. }) && e.to_string().contains("missing.safetensors"),
        "{e}"
    );

    // saving leaves no temporary files behind
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 4, "{names:?}");
}

#[test]
fn f32_and_f64_take_the_same_steps() {
    // the kernels are one generic function per optimiser, instantiated for both dtypes
    for (name, make) in makers() {
        let run = |dtype: DType| {
            // the same starting values in both dtypes
            let ps: Vec<Param> = params(DType::F64)
                .iter()
                .map(|p| Param::new(p.to_dtype(dtype)))
                .collect();
            let mut opt = make(ps.clone());
            for _ in 0..5 {
                opt.step(&grads(&ps));
            }
            ps.iter()
                .flat_map(|p| p.to_vec::<f64>())
                .collect::<Vec<f64>>()
        };
        let (a, b) = (run(DType::F32), run(DType::F64));
        for (x, y) in a.iter().zip(&b) {
            assert!(
                (x - y).abs() < 1e-4 * (1.0 + y.abs()),
                "{name}: f32 {x} vs f64 {y}"
            );
        }
    }
}

#[cfg(unix)]
#[test]
fn state_and_weights_files_get_the_mode_of_a_plain_new_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let plain = dir.path().join("plain");
    std::fs::File::create(&plain).unwrap();
    let state = adam_state_file(dir.path(), &[3]);
    let weights = dir.path().join("w.safetensors");
    tapegrad_nn::io::save(&tapegrad_nn::Linear::new(2, 2, 0), &weights).unwrap();
    assert_eq!(mode(&state), mode(&plain), "optimiser state");
    assert_eq!(mode(&weights), mode(&plain), "weights");
}

#[test]
fn out_of_range_hyper_parameters_in_a_state_are_refused_like_the_constructors_refuse_them() {
    for (key, value, message) in [
        (
            "lr",
            serde_json::json!(-1.0),
            "Adam: invalid learning rate -1",
        ),
        (
            "betas",
            serde_json::json!([1.5, 0.999]),
            "Adam: invalid beta1 1.5",
        ),
        ("eps", serde_json::json!(-1e308), "Adam: invalid epsilon"),
        (
            "weight_decay",
            serde_json::json!(-0.5),
            "Adam: invalid weight_decay -0.5",
        ),
    ] {
        let w = Param::new(Tensor::ones(&[3], DType::F64));
        let mut adam = Adam::new([w.clone()], AdamConfig::default());
        adam.step(&(&*w * &*w).sum().backward());
        let mut sd = adam.state_dict();
        sd.groups[0].hyper[key] = value;
        let before = adam.groups()[0].hyper.clone();
        let e = adam.load_state_dict(&sd).unwrap_err().to_string();
        assert!(e.contains(&format!("group 0: {message}")), "{key}: {e}");
        assert_eq!(adam.groups()[0].hyper.lr, before.lr, "nothing was loaded");
    }
}
