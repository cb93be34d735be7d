//! The optimiser state reader under hostile input: `StateDict::load` and
//! `Optimizer::load`, given arbitrary bytes or a valid state file damaged (truncated, bits
//! flipped, header length replaced, header JSON edited, the `tapegrad.optim` metadata
//! edited: wrong types, huge parameter indices, out-of-range scalars, missing fields),
//! return an error naming the file or a valid state, never panic, leave the optimiser
//! untouched on error, and use heap bounded by the file's size.

#[path = "../../nn/tests/hostile/mod.rs"]
mod hostile;

use std::sync::OnceLock;

use proptest::prelude::*;
use serde_json::{json, Value};
use tapegrad::{DType, Grads, Tensor};
use tapegrad_nn::Param;
use tapegrad_optim::*;

use hostile::{heap_bound, join, peak_heap_of, split};

#[global_allocator]
static HEAP: hostile::Counting = hostile::Counting;

const META_KEY: &str = "tapegrad.optim";
const FILE_NAME: &str = "hostile.safetensors";

fn params() -> Vec<Param> {
    vec![
        Param::new(Tensor::randn(&[3, 2], DType::F32, 7)),
        Param::new(Tensor::randn(&[4], DType::F64, 8)),
    ]
}

fn grads(ps: &[Param]) -> Grads {
    ((&*ps[0] * &*ps[0]).sum() + ps[1].square().sum().to_dtype(DType::F32)).backward()
}

/// An AMSGrad Adam over named parameters of both dtypes, stepped `steps` times.
fn optimiser(ps: &[Param], steps: usize) -> Adam {
    let mut opt = Adam::with_groups(vec![ParamGroup::named(
        [
            ("w".to_string(), ps[0].clone()),
            ("b".to_string(), ps[1].clone()),
        ],
        AdamConfig {
            amsgrad: true,
            ..AdamConfig::default()
        },
    )]);
    for _ in 0..steps {
        opt.step(&grads(ps));
    }
    opt
}

fn valid_file() -> &'static [u8] {
    static FILE: OnceLock<Vec<u8>> = OnceLock::new();
    FILE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("valid.safetensors");
        optimiser(&params(), 2).save(&path).unwrap();
        std::fs::read(&path).unwrap()
    })
}

/// Everything an optimiser's state holds, exactly (NaN-safe), to see that nothing changed.
fn fingerprint(opt: &dyn Optimizer) -> String {
    let sd = opt.state_dict();
    let mut out = format!("{:?}", sd.groups);
    for (i, rec) in &sd.state {
        out += &format!("{i}: {:?}", rec.scalars);
        for (k, t) in &rec.tensors {
            let bits: Vec<u64> = t.to_vec::<f64>().iter().map(|v| v.to_bits()).collect();
            out += &format!("{k} {:?} {bits:?}", t.shape());
        }
    }
    out
}

fn check_readers(bytes: &[u8]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    std::fs::write(&path, bytes).unwrap();

    let (result, heap) = peak_heap_of(|| StateDict::load(&path));
    prop_assert!(
        heap <= heap_bound(bytes.len()),
        "StateDict::load used {heap} bytes of heap for a {}-byte file",
        bytes.len()
    );
    match result {
        Ok(sd) => {
            let held: usize = (sd.state.values())
                .flat_map(|r| r.tensors.values())
                .map(|t| t.numel() * t.dtype().size_in_bytes())
                .sum();
            prop_assert!(held <= bytes.len());
        }
        Err(e) => prop_assert!(e.to_string().contains(FILE_NAME), "{e}"),
    }

    let ps = params();
    let mut opt = optimiser(&ps, 1);
    let before = fingerprint(&opt);
    let (result, heap) = peak_heap_of(|| opt.load(&path));
    prop_assert!(
        heap <= heap_bound(bytes.len()),
        "Optimizer::load used {heap} bytes of heap for a {}-byte file",
        bytes.len()
    );
    match result {
        // A state that loads is one the optimiser can step with.
        Ok(()) => opt.step(&grads(&ps)),
        Err(e) => {
            prop_assert!(e.to_string().contains(FILE_NAME), "{e}");
            prop_assert!(
                fingerprint(&opt) == before,
                "a failed load changed the optimiser: {e}"
            );
        }
    }
    Ok(())
}

/// One edit of the `tapegrad.optim` JSON, at a JSON pointer.
#[derive(Clone, Debug)]
enum MetaEdit {
    Set(&'static str, Value),
    Remove(&'static str),
    /// Replace the whole metadata string.
    Text(String),
}

fn pointer() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "/format_version",
        "/optimizer",
        "/groups",
        "/groups/0",
        "/groups/0/params",
        "/groups/0/params/0",
        "/groups/0/params/1",
        "/groups/0/names",
        "/groups/0/names/0",
        "/groups/0/hyper",
        "/groups/0/hyper/lr",
        "/groups/0/hyper/betas",
        "/groups/0/hyper/eps",
        "/groups/0/hyper/amsgrad",
        "/scalars",
        "/scalars/0",
        "/scalars/0/step",
        "/scalars/1/step",
        "/scalars/18446744073709551615",
        "/scalars/99999999999999999999999",
        "/scalars/-1",
        "/scalars/x",
    ])
}

fn meta_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => hostile::json_value(),
        1 => Just(json!(usize::MAX)),
        1 => Just(json!(-0.0)),
        1 => Just(json!(1e308)),
        1 => Just(json!(-1e308)),
        1 => Just(json!(9007199254740993u64)),
        1 => Just(json!("NaN")),
        1 => Just(json!("inf")),
        1 => Just(json!([0, 0])),
        1 => Just(json!([usize::MAX])),
        1 => Just(json!({"step": 1.0})),
        1 => Just(json!({"step": -1.0})),
        1 => Just(json!({"step": 1e300})),
        1 => Just(json!({"18446744073709551615": {"step": 1.0}})),
        1 => Just(json!({"99999999999999999999": {}})),
        1 => Just(json!("Sgd")),
    ]
}

fn meta_edit() -> impl Strategy<Value = MetaEdit> {
    prop_oneof![
        4 => (pointer(), meta_value()).prop_map(|(p, v)| MetaEdit::Set(p, v)),
        2 => pointer().prop_map(MetaEdit::Remove),
        1 => prop_oneof![
            Just(String::new()),
            Just("{".to_string()),
            Just("null".to_string()),
            Just("[]".to_string()),
            Just(r#"{"format_version": 1e400}"#.to_string()),
            Just(r#"{"format_version":1,"optimizer":"Adam","groups":[],"scalars":{"0":{"step":1e400}}}"#.to_string()),
            "[{}\\[\\]\":,a-z0-9 ]{0,80}",
        ]
        .prop_map(MetaEdit::Text),
    ]
}

impl MetaEdit {
    /// Applies the edit to `meta`, or returns the text that replaces it all.
    fn apply(&self, meta: &mut Value) -> Option<String> {
        let pointer = match self {
            MetaEdit::Set(p, _) | MetaEdit::Remove(p) => p,
            MetaEdit::Text(t) => return Some(t.clone()),
        };
        let (parent, last) = pointer.rsplit_once('/').expect("pointers start with '/'");
        let last = last.to_string();
        let target = meta.pointer_mut(parent)?;
        match (self, target) {
            (MetaEdit::Set(_, v), Value::Object(m)) => {
                m.insert(last, v.clone());
            }
            (MetaEdit::Set(_, v), Value::Array(a)) => {
                if let Some(slot) = last.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                    *slot = v.clone();
                }
            }
            (MetaEdit::Remove(_), Value::Object(m)) => {
                m.remove(&last);
            }
            (MetaEdit::Remove(_), Value::Array(a)) => {
                if let Some(i) = last.parse::<usize>().ok().filter(|&i| i < a.len()) {
                    a.remove(i);
                }
            }
            _ => {}
        }
        None
    }
}

/// The valid file with its `tapegrad.optim` metadata edited.
fn with_meta_edits(edits: &[MetaEdit]) -> Vec<u8> {
    let mut parts = split(valid_file());
    let text = parts.header["__metadata__"][META_KEY].as_str().unwrap();
    let mut meta: Value = serde_json::from_str(text).unwrap();
    let mut replaced = None;
    for e in edits {
        replaced = e.apply(&mut meta).or(replaced);
    }
    let text = replaced.unwrap_or_else(|| meta.to_string());
    parts.header["__metadata__"][META_KEY] = Value::String(text);
    join(&parts.header, &parts.data)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 192,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_bytes_are_an_error_or_a_state(bytes in hostile::arbitrary_file()) {
        check_readers(&bytes)?;
    }

    #[test]
    fn damaged_state_files_are_an_error_or_a_state(damage in hostile::damage()) {
        check_readers(&damage.apply(valid_file()))?;
    }

    #[test]
    fn edited_state_metadata_is_an_error_or_a_state(
        edits in prop::collection::vec(meta_edit(), 1..4)
    ) {
        check_readers(&with_meta_edits(&edits))?;
    }
}

fn load_error(edits: &[MetaEdit]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    std::fs::write(&path, with_meta_edits(edits)).unwrap();
    let ps = params();
    let e = optimiser(&ps, 1).load(&path).unwrap_err().to_string();
    assert!(e.contains(FILE_NAME), "{e}");
    e
}

#[test]
fn out_of_range_scalars_and_indices_are_errors_naming_them() {
    for step in [json!(-1.0), json!(1.5), json!(1e300)] {
        let e = load_error(&[MetaEdit::Set("/scalars/0/step", step.clone())]);
        assert!(e.contains("step count"), "{step}: {e}");
    }
    // JSON has no NaN or infinity: a number that overflows to infinity is not read.
    let e = load_error(&[MetaEdit::Text(
        r#"{"format_version":1,"optimizer":"Adam","groups":[],"scalars":{"0":{"step":1e400}}}"#
            .to_string(),
    )]);
    assert!(e.contains(META_KEY), "{e}");

    let e = load_error(&[MetaEdit::Set(
        "/scalars/18446744073709551615",
        json!({"step": 1.0}),
    )]);
    assert!(e.contains("18446744073709551615"), "{e}");
    let e = load_error(&[MetaEdit::Set(
        "/scalars/99999999999999999999999",
        json!({"step": 1.0}),
    )]);
    assert!(e.contains(META_KEY), "{e}");
    let e = load_error(&[MetaEdit::Set("/groups/0/params/1", json!(usize::MAX))]);
    assert!(
        e.contains(&usize::MAX.to_string()) || e.contains("no group"),
        "{e}"
    );
}

#[test]
fn a_tensor_index_spelled_two_ways_is_an_error() {
    let mut parts = split(valid_file());
    let v = parts.header["state.0.exp_avg"].clone();
    parts.header.remove("state.0.exp_avg");
    parts.header.insert("state.00.exp_avg".into(), v);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    std::fs::write(&path, join(&parts.header, &parts.data)).unwrap();
    let e = StateDict::load(&path).unwrap_err().to_string();
    assert!(
        e.contains("state.00.exp_avg") && e.contains(FILE_NAME),
        "{e}"
    );
}

#[test]
fn non_finite_scalars_are_not_saved() {
    let ps = params();
    let mut sd = optimiser(&ps, 1).state_dict();
    sd.state
        .get_mut(&1)
        .unwrap()
        .scalars
        .insert("step".into(), f64::NAN);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nan.safetensors");
    let e = sd.save(&path).unwrap_err();
    assert!(matches!(e, OptimError::Format { .. }), "{e}");
    let e = e.to_string();
    assert!(
        e.contains("nan.safetensors") && e.contains("parameter 1") && e.contains("'step'"),
        "{e}"
    );
    assert!(!path.exists());
}
