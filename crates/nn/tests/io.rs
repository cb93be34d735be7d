//! Weights on disk: save -> load round trips give identical outputs (parameters and
//! batch-norm buffers); truncated, corrupt and mismatched files are rejected with the
//! right error and leave the model untouched; saving leaves no temporary file.

use std::fs;
use std::path::Path;

use tapegrad::{DType, Tensor};
use tapegrad_nn::io::{load, save, WeightsError};
use tapegrad_nn::*;

fn model(seed: u64) -> Sequential {
    let opts = Conv2dOptions {
        padding: [1, 1],
        ..Default::default()
    };
    Sequential::new()
        .add(Conv2d::with_options(1, 4, [3, 3], opts, seed))
        .add(BatchNorm2d::new(4))
        .add(Relu)
        .add(MaxPool2d::new(2))
        .add(Flatten::new())
        .add(Linear::new(4 * 4 * 4, 3, seed + 1))
}

fn values(m: &dyn Module) -> Vec<Vec<f32>> {
    let mut v: Vec<Vec<f32>> = m
        .named_params()
        .iter()
        .map(|(_, p)| p.to_vec::<f32>())
        .collect();
    v.extend(m.named_buffers().iter().map(|(_, t)| t.to_vec::<f32>()));
    v
}

#[test]
fn round_trip_gives_identical_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let mut a = model(0);
    let x = Tensor::randn(&[5, 1, 8, 8], DType::F32, 9);
    a.forward(&x); // training step: the batch-norm running statistics move off their init
    a.eval();
    save(&a, &path).unwrap();
    let mut b = model(100);
    b.eval();
    assert_ne!(a.forward(&x).to_vec::<f32>(), b.forward(&x).to_vec::<f32>());
    let ids: Vec<_> = b.params().iter().map(|p| p.id()).collect();
    load(&b, &path).unwrap();
    assert_eq!(a.forward(&x).to_vec::<f32>(), b.forward(&x).to_vec::<f32>());
    assert_eq!(values(&a), values(&b));
    assert_eq!(
        ids,
        b.params().iter().map(|p| p.id()).collect::<Vec<_>>(),
        "loading keeps parameter ids"
    );
    let names: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        names,
        ["model.safetensors"],
        "no temporary file is left behind"
    );
    // Overwriting an existing file works too (rename over it).
    save(&b, &path).unwrap();
    load(&a, &path).unwrap();
}

#[test]
fn f64_round_trip_is_bit_exact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.safetensors");
    let a = Linear::with_options(7, 5, true, DType::F64, 0);
    save(&a, &path).unwrap();
    let b = Linear::with_options(7, 5, true, DType::F64, 1);
    load(&b, &path).unwrap();
    assert_eq!(a.weight.to_vec::<f64>(), b.weight.to_vec::<f64>());
}

fn expect_untouched(m: &dyn Module, before: &[Vec<f32>]) {
    assert_eq!(values(m), before, "a failed load must not change the model");
}

#[test]
fn truncated_and_corrupt_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    save(&model(0), &path).unwrap();
    let bytes = fs::read(&path).unwrap();
    let target = model(1);
    let before = values(&target);

    let cut = dir.path().join("cut.safetensors");
    for len in [0, 4, 8, 20, bytes.len() / 2, bytes.len() - 1] {
        fs::write(&cut, &bytes[..len]).unwrap();
        let err = load(&target, &cut).unwrap_err();
        assert!(
            matches!(err, WeightsError::Corrupt { ref path, .. } if path == &cut),
            "len {len}: {err}"
        );
        assert!(
            err.to_string().contains("cut.safetensors"),
            "the error names the file: {err}"
        );
        expect_untouched(&target, &before);
    }
    let garbage = dir.path().join("garbage.safetensors");
    let mut g = bytes.clone();
    for b in &mut g[8..40] {
        *b = b'#';
    }
    fs::write(&garbage, &g).unwrap();
    assert!(matches!(
        load(&target, &garbage),
        Err(WeightsError::Corrupt { .. })
    ));
    expect_untouched(&target, &before);

    let missing = dir.path().join("nope.safetensors");
    let err = load(&target, &missing).unwrap_err();
    assert!(matches!(err, WeightsError::Io { .. }), "{err}");
    assert!(err.to_string().contains("nope.safetensors"));
}

#[test]
fn mismatched_files_name_the_first_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);

    // Shape: a model with 6 output classes reading a 3-class file.
    save(&model(0), p("m.safetensors")).unwrap();
    let opts = Conv2dOptions {
        padding: [1, 1],
        ..Default::default()
    };
    let wider = Sequential::new()
        .add(Conv2d::with_options(1, 4, [3, 3], opts, 0))
        .add(BatchNorm2d::new(4))
        .add(Relu)
        .add(MaxPool2d::new(2))
        .add(Flatten::new())
        .add(Linear::new(64, 6, 1));
    let before = values(&wider);
    match load(&wider, p("m.safetensors")).unwrap_err() {
        WeightsError::Shape {
            name,
            expected,
            found,
            ..
        } => {
            assert_eq!(name, "5.weight");
            assert_eq!((expected, found), (vec![6, 64], vec![3, 64]));
        }
        e => panic!("expected a shape error, got {e}"),
    }
    expect_untouched(&wider, &before);

    // Missing: the model has batch-norm buffers the file lacks.
    let no_bn = Sequential::new().add(Conv2d::with_options(1, 4, [3, 3], opts, 0));
    save(&no_bn, p("conv.safetensors")).unwrap();
    let with_bn = Sequential::new()
        .add(Conv2d::with_options(1, 4, [3, 3], opts, 0))
        .add(BatchNorm2d::new(4));
    let err = load(&with_bn, p("conv.safetensors")).unwrap_err();
    assert!(
        matches!(err, WeightsError::Missing { ref name, .. } if name == "1.weight"),
        "{err}"
    );

    // Unexpected: the file has more than the model.
    let err = load(&no_bn, p("m.safetensors")).unwrap_err();
    assert!(
        matches!(err, WeightsError::Unexpected { ref name, .. } if name == "1.bias"),
        "{err}"
    );

    // DType: an f64 file for an f32 model.
    save(
        &Linear::with_options(3, 2, true, DType::F64, 0),
        p("f64.safetensors"),
    )
    .unwrap();
    let err = load(&Linear::new(3, 2, 0), p("f64.safetensors")).unwrap_err();
    assert!(
        matches!(err, WeightsError::DType { ref name, expected: DType::F32, .. } if name == "weight"),
        "{err}"
    );
    assert!(
        err.to_string().contains("f64.safetensors") && err.to_string().contains("`weight`"),
        "{err}"
    );
}

#[test]
fn duplicate_names_are_rejected() {
    struct Twice(Linear);
    impl Module for Twice {
        fn forward(&self, x: &Tensor) -> Tensor {
            self.0.forward(x)
        }
        fn named_params(&self) -> Vec<(String, Param)> {
            let mut v = self.0.named_params();
            v.extend(self.0.named_params());
            v
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.safetensors");
    let err = save(&Twice(Linear::new(2, 2, 0)), &path).unwrap_err();
    assert!(
        matches!(err, WeightsError::DuplicateName { ref name, .. } if name == "weight"),
        "{err}"
    );
    assert!(!Path::new(&path).exists(), "nothing is written on error");
}

#[test]
fn named_tensors_round_trip_bit_exactly() {
    use std::collections::BTreeMap;
    use tapegrad_nn::io::{load_tensors, save_tensors};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tensors.safetensors");
    let tensors = BTreeMap::from([
        ("a".to_string(), Tensor::randn(&[3, 4], DType::F32, 1)),
        (
            "b.f64".to_string(),
            Tensor::randn(&[2, 1, 5], DType::F64, 2),
        ),
        ("scalar".to_string(), Tensor::scalar(-0.0f64)),
        ("empty".to_string(), Tensor::zeros(&[0, 3], DType::F32)),
        (
            "special".to_string(),
            Tensor::from_vec(vec![f32::NAN, f32::INFINITY, -f32::MIN_POSITIVE], &[3]),
        ),
    ]);
    save_tensors(&path, &tensors).unwrap();
    let back = load_tensors(&path).unwrap();
    assert_eq!(
        back.keys().collect::<Vec<_>>(),
        tensors.keys().collect::<Vec<_>>()
    );
    for (name, t) in &tensors {
        let b = &back[name];
        assert_eq!((b.shape(), b.dtype()), (t.shape(), t.dtype()), "{name}");
        let bits =
            |t: &Tensor| -> Vec<u64> { t.to_vec::<f64>().iter().map(|v| v.to_bits()).collect() };
        assert_eq!(bits(b), bits(t), "{name}");
    }
    // A module's weights file is a tensors file too.
    let m = model(0);
    save(&m, dir.path().join("m.safetensors")).unwrap();
    let weights = load_tensors(dir.path().join("m.safetensors")).unwrap();
    assert_eq!(
        weights["5.bias"].to_vec::<f32>(),
        m.named_params()[5].1.to_vec::<f32>()
    );
}

#[test]
fn write_atomic_replaces_and_cleans_up() {
    use tapegrad_nn::io::write_atomic;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.bin");
    write_atomic(&path, b"one").unwrap();
    write_atomic(&path, b"two").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"two");
    // Renaming over a directory fails: the error says so and no temporary file is left.
    let sub = dir.path().join("sub");
    fs::create_dir(&sub).unwrap();
    fs::write(sub.join("x"), b"x").unwrap();
    let e = write_atomic(&sub, b"three").unwrap_err();
    assert!(e.to_string().contains("renaming"), "{e}");
    // A directory that does not exist: the error names the temporary file it could not create.
    let e = write_atomic(dir.path().join("missing/f.bin"), b"x").unwrap_err();
    assert!(e.to_string().contains("missing"), "{e}");
    let mut names: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["f.bin", "sub"]);
    // Through the weights API the error names the file and the step.
    let err = save(&Linear::new(2, 2, 0), &sub).unwrap_err();
    assert!(matches!(err, WeightsError::Io { .. }), "{err}");
    assert!(
        err.to_string().contains("sub") && err.to_string().contains("renaming"),
        "{err}"
    );
}

#[cfg(unix)]
#[test]
fn weights_files_get_the_mode_of_a_plain_new_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let plain = dir.path().join("plain");
    fs::File::create(&plain).unwrap();
    let weights = dir.path().join("w.safetensors");
    save(&Linear::new(2, 2, 0), &weights).unwrap();
    assert_eq!(mode(&weights), mode(&plain));
}

#[test]
fn i64_and_bool_tensors_round_trip_and_a_bad_bool_byte_is_an_error() {
    use std::collections::BTreeMap;
    use tapegrad_nn::io::{load_tensors, save_tensors};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("batch.safetensors");
    let targets = Tensor::from_vec(vec![i64::MIN, -1, 0, 7, i64::MAX, 3], &[2, 3]);
    let mask = Tensor::from_vec(vec![true, false, false, true], &[4]);
    let tensors = BTreeMap::from([
        ("targets".to_string(), targets.clone()),
        ("mask".to_string(), mask.clone()),
    ]);
    save_tensors(&path, &tensors).unwrap();
    let back = load_tensors(&path).unwrap();
    assert_eq!(back["targets"].dtype(), DType::I64);
    assert_eq!(back["targets"].shape(), &[2, 3]);
    assert_eq!(back["targets"].to_vec::<i64>(), targets.to_vec::<i64>());
    assert_eq!(back["mask"].dtype(), DType::Bool);
    assert_eq!(back["mask"].to_vec::<bool>(), mask.to_vec::<bool>());

    // A file holding the mask alone ends with its data: make its last byte 2.
    let only_mask = dir.path().join("mask.safetensors");
    save_tensors(&only_mask, &BTreeMap::from([("m".to_string(), mask)])).unwrap();
    let mut bytes = std::fs::read(&only_mask).unwrap();
    let last = bytes.len() - 1;
    bytes[last] = 2;
    std::fs::write(&only_mask, &bytes).unwrap();
    let err = load_tensors(&only_mask).unwrap_err().to_string();
    assert!(err.contains("BOOL") && err.contains("byte 2"), "{err}");
    assert!(err.contains("mask.safetensors"), "{err}");
}
