//! The weights readers under hostile input: `io::load` and `io::load_tensors`, given
//! arbitrary bytes or a valid file damaged (truncated, bits flipped, header length
//! replaced, header JSON edited), return an error naming the file or a valid value, never
//! panic, leave the model untouched on error, and use heap bounded by the file's size.

mod hostile;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

use proptest::prelude::*;
use serde_json::json;
use tapegrad::{DType, Tensor};
use tapegrad_nn::io::{self, WeightsError};
use tapegrad_nn::*;

use hostile::{heap_bound, join, peak_heap_of, split};

#[global_allocator]
static HEAP: hostile::Counting = hostile::Counting;

/// Parameters and buffers of both dtypes.
fn model() -> Sequential {
    Sequential::new()
        .add(Linear::new(3, 4, 0))
        .add(BatchNorm1d::new(4))
        .add(Linear::with_options(4, 2, true, DType::F64, 1))
}

fn values(m: &dyn Module) -> Vec<Vec<u64>> {
    let mut all: Vec<Tensor> = m
        .named_params()
        .iter()
        .map(|(_, p)| p.tensor().clone())
        .collect();
    all.extend(m.named_buffers().into_iter().map(|(_, t)| t));
    all.iter()
        .map(|t| t.to_vec::<f64>().into_iter().map(f64::to_bits).collect())
        .collect()
}

/// A valid weights file of another instance of [`model`].
fn valid_file() -> &'static [u8] {
    static FILE: OnceLock<Vec<u8>> = OnceLock::new();
    FILE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("valid.safetensors");
        io::save(&model(), &path).unwrap();
        std::fs::read(&path).unwrap()
    })
}

const FILE_NAME: &str = "hostile.safetensors";

/// Writes `bytes` to a file and reads it with both readers, checking the contract.
fn check_readers(bytes: &[u8]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    std::fs::write(&path, bytes).unwrap();

    let target = model();
    let before = values(&target);
    let (result, heap) = peak_heap_of(|| io::load(&target, &path));
    prop_assert!(
        heap <= heap_bound(bytes.len()),
        "load used {heap} bytes of heap for a {}-byte file",
        bytes.len()
    );
    if let Err(e) = result {
        prop_assert!(e.to_string().contains(FILE_NAME), "{e}");
        prop_assert!(
            values(&target) == before,
            "a failed load changed the model: {e}"
        );
    }

    let (result, heap) = peak_heap_of(|| io::load_tensors(&path));
    prop_assert!(
        heap <= heap_bound(bytes.len()),
        "load_tensors used {heap} bytes of heap for a {}-byte file",
        bytes.len()
    );
    match result {
        Ok(tensors) => {
            let held: usize = tensors
                .values()
                .map(|t| t.numel() * t.dtype().size_in_bytes())
                .sum();
            prop_assert!(
                held <= bytes.len(),
                "{held} bytes of tensors from {} bytes",
                bytes.len()
            );
        }
        Err(e) => {
            let message = e.to_string();
            prop_assert!(message.contains(FILE_NAME), "{message}");
            if let WeightsError::UnsupportedDType { name, .. }
            | WeightsError::ShapeOverflow { name, .. } = &e
            {
                prop_assert!(message.contains(&format!("`{name}`")), "{message}");
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_bytes_are_an_error_or_a_value(bytes in hostile::arbitrary_file()) {
        check_readers(&bytes)?;
    }

    #[test]
    fn damaged_weights_files_are_an_error_or_a_value(damage in hostile::damage()) {
        check_readers(&damage.apply(valid_file()))?;
    }
}

/// The counter sees what a reader trusting a header's shape would allocate, and the bound
/// rejects it.
#[test]
fn the_heap_counter_sees_a_large_allocation() {
    let (v, heap) = peak_heap_of(|| Vec::<f32>::with_capacity(1 << 20));
    assert!(heap >= 4 << 20, "{heap}");
    assert!(heap > heap_bound(valid_file().len()));
    drop(v);
}

fn write(dir: &Path, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(FILE_NAME);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn load_error(bytes: &[u8]) -> (WeightsError, WeightsError) {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), bytes);
    let target = model();
    let before = values(&target);
    let module = io::load(&target, &path).unwrap_err();
    assert_eq!(values(&target), before);
    let tensors = io::load_tensors(&path).unwrap_err();
    for e in [&module, &tensors] {
        assert!(e.to_string().contains(FILE_NAME), "{e}");
    }
    (module, tensors)
}

#[test]
fn header_lengths_past_the_file_are_corrupt() {
    let valid = valid_file();
    let true_len = u64::from_le_bytes(valid[..8].try_into().unwrap());
    for n in [0, 1, true_len + 1, valid.len() as u64, 1 << 40, u64::MAX] {
        let mut bytes = valid.to_vec();
        bytes[..8].copy_from_slice(&n.to_le_bytes());
        let (module, tensors) = load_error(&bytes);
        for e in [module, tensors] {
            assert!(matches!(e, WeightsError::Corrupt { .. }), "{n}: {e}");
            assert!(e.to_string().contains("header"), "{n}: {e}");
        }
    }
}

#[test]
fn an_empty_shape_whose_lengths_overflow_is_an_error_naming_the_tensor() {
    // [0, 2^62, 2^62] has zero elements, so zero bytes pass safetensors' size check, but
    // no array of that shape can exist.
    let mut header = serde_json::Map::new();
    header.insert(
        "empty".into(),
        json!({"dtype": "F32", "shape": [0u64, 1u64 << 62, 1u64 << 62], "data_offsets": [0, 0]}),
    );
    let bytes = join(&header, &[]);
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), &bytes);
    let e = io::load_tensors(&path).unwrap_err();
    assert!(
        matches!(e, WeightsError::ShapeOverflow { ref name, .. } if name == "empty"),
        "{e}"
    );
    assert!(
        e.to_string().contains(FILE_NAME) && e.to_string().contains("`empty`"),
        "{e}"
    );
    // The same tensor with a representable empty shape reads.
    header["empty"]["shape"] = json!([0, 3]);
    std::fs::write(&path, join(&header, &[])).unwrap();
    assert_eq!(io::load_tensors(&path).unwrap()["empty"].shape(), &[0, 3]);

    // When the product overflows before the zero, safetensors rejects it itself.
    header["empty"]["shape"] = json!([1u64 << 62, 1u64 << 62, 0]);
    let (_, e) = load_error(&join(&header, &[]));
    assert!(matches!(e, WeightsError::Corrupt { .. }), "{e}");
}

#[test]
fn shapes_that_disagree_with_the_bytes_and_bad_offsets_are_corrupt() {
    let parts = split(valid_file());
    let first = parts.header.keys().next().unwrap().clone();
    let mut header = parts.header.clone();
    header[&first]["shape"] = json!([1000]);
    let (module, tensors) = load_error(&join(&header, &parts.data));
    assert!(matches!(tensors, WeightsError::Corrupt { .. }), "{tensors}");
    assert!(matches!(module, WeightsError::Corrupt { .. }), "{module}");

    // Offsets that overlap the next tensor's: the error names the tensor.
    let mut header = parts.header.clone();
    header[&first]["data_offsets"] = json!([0, 1u64 << 40]);
    let (_, e) = load_error(&join(&header, &parts.data));
    assert!(matches!(e, WeightsError::Corrupt { .. }), "{e}");
    assert!(e.to_string().contains('`'), "names a tensor: {e}");
}

#[test]
fn dtypes_tapegrad_lacks_name_the_tensor_and_the_dtype() {
    let mut header = serde_json::Map::new();
    header.insert(
        "half".into(),
        json!({"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}),
    );
    let bytes = join(&header, &[0, 0x3f, 0, 0x40]);
    let (module, tensors) = load_error(&bytes);
    assert!(
        matches!(&tensors, WeightsError::UnsupportedDType { name, found, .. } if name == "half" && found == "BF16"),
        "{tensors}"
    );
    assert!(tensors.to_string().contains("`half`") && tensors.to_string().contains("BF16"));
    // The module has no tensor named "half": its first parameter is missing.
    assert!(matches!(module, WeightsError::Missing { .. }), "{module}");
}

#[test]
fn a_tensor_named_like_the_metadata_cannot_be_saved() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reserved.safetensors");
    let tensors = BTreeMap::from([("__metadata__".to_string(), Tensor::ones(&[2], DType::F32))]);
    let e = io::save_tensors(&path, &tensors).unwrap_err();
    assert!(matches!(e, WeightsError::ReservedName { .. }), "{e}");
    assert!(e.to_string().contains("reserved.safetensors"), "{e}");
    assert!(!path.exists());
}
