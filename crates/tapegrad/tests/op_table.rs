//! The op table against the code: every public differentiable `Tensor` method has a row
//! (or is on the short exempt list below, with its reason), and the table's `fused`
//! column is exactly the set of ops whose rule has a fused fast path, whose values match
//! the rule's tensor-op form bit for bit.

use std::collections::BTreeSet;
use std::path::Path;

use tapegrad::{all_ops, ops::fused_rules_taken, with_fusion, BackwardOptions, DType, Tensor};

/// Public `Tensor` methods that return tensors but need no row, and why.
const EXEMPT: &[(&str, &str)] = &[
    ("detach", "cuts the tape; no gradient by definition"),
    ("zeros_like", "creation: the values do not depend on the input"),
    ("ones_like", "creation: the values do not depend on the input"),
    ("full_like", "creation: the values do not depend on the input"),
    (
        "to_dtype",
        "an f32 round trip is below the checker's f64 tolerance; its gradient (the cast back) is tested in tests/autograd.rs",
    ),
    ("logical_and", "returns a Bool tensor: not differentiable"),
    ("logical_or", "returns a Bool tensor: not differentiable"),
    ("logical_xor", "returns a Bool tensor: not differentiable"),
    ("logical_not", "returns a Bool tensor: not differentiable"),
    ("any", "returns a Bool tensor: not differentiable"),
    ("all", "returns a Bool tensor: not differentiable"),
    ("any_dim", "returns a Bool tensor: not differentiable"),
    ("all_dim", "returns a Bool tensor: not differentiable"),
    ("count_nonzero", "returns an I64 tensor: not differentiable"),
    ("argmax", "returns an I64 tensor: not differentiable"),
    ("argmin", "returns an I64 tensor: not differentiable"),
    ("argsort", "returns an I64 tensor: not differentiable"),
    ("nonzero", "returns an I64 tensor: not differentiable"),
    ("one_hot", "returns an I64 tensor: not differentiable"),
];

/// `(name, signature)` of each `pub fn` inside the `impl Tensor` blocks of `src`.
fn tensor_methods(src: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut in_impl = false;
    let mut lines = src.lines().peekable();
    while let Some(line) = lines.next() {
        if line.starts_with("impl Tensor {") {
            in_impl = true;
            continue;
        }
        if in_impl && line.starts_with('}') {
            in_impl = false;
            continue;
        }
        let trimmed = line.trim_start();
        if !in_impl || !trimmed.starts_with("pub fn ") {
            continue;
        }
        let mut signature = trimmed.to_string();
        while !signature.contains('{') {
            match lines.next() {
                Some(next) => signature.push_str(next.trim()),
                None => break,
            }
        }
        let name = signature["pub fn ".len()..]
            .split(['(', '<'])
            .next()
            .unwrap_or_default()
            .to_string();
        out.push((name, signature));
    }
    out
}

/// Whether a method signature is that of a differentiable op: it takes tensors (`&self`
/// or `&Tensor` / `&[Tensor]` arguments) and returns one or more tensors.
fn is_differentiable(signature: &str) -> bool {
    let (args, ret) = match signature.split_once(") ->") {
        Some(parts) => parts,
        None => return false,
    };
    let takes_tensor =
        args.contains("&self") || args.contains("&Tensor") || args.contains("&[Tensor]");
    let ret = ret.split('{').next().unwrap_or_default().trim();
    let returns_tensor = ret == "Tensor"
        || ret.starts_with("Tensor ")
        || ret.starts_with("(Tensor,")
        || ret.starts_with("Vec<Tensor>");
    takes_tensor && returns_tensor
}

fn sources(dir: &Path, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("crates/tapegrad/src is readable")
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).expect("source is readable");
            out.push((path.display().to_string(), text));
        }
    }
}

#[test]
fn every_public_differentiable_method_has_a_table_row() {
    let mut files = Vec::new();
    sources(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    let rows: BTreeSet<&str> = all_ops().iter().map(|s| s.name).collect();
    let exempt: BTreeSet<&str> = EXEMPT.iter().map(|(name, _)| *name).collect();
    let mut seen = BTreeSet::new();
    let mut missing = Vec::new();
    for (file, text) in &files {
        for (name, signature) in tensor_methods(text) {
            if !is_differentiable(&signature) {
                continue;
            }
            seen.insert(name.clone());
            if !rows.contains(name.as_str()) && !exempt.contains(name.as_str()) {
                missing.push(format!("{name} ({file})"));
            }
        }
    }
    assert!(
        seen.len() > 60,
        "the scan found only {} differentiable methods: is it still reading the sources?",
        seen.len()
    );
    assert!(
        missing.is_empty(),
        "public differentiable Tensor methods without a row in the op table (add a row next to the op, \
         or an entry with its reason to EXEMPT):\n  {}",
        missing.join("\n  ")
    );
    let stale: Vec<&str> = exempt
        .iter()
        .filter(|n| !seen.contains(**n))
        .copied()
        .collect();
    assert!(
        stale.is_empty(),
        "EXEMPT names methods that no longer exist: {stale:?}"
    );
}

#[test]
fn the_scan_recognises_differentiable_signatures() {
    let src = "impl Tensor {\n    pub fn exp(&self) -> Tensor {\n    }\n    pub fn where_(cond: &Tensor, a: &Tensor,\n        b: &Tensor) -> Tensor {\n    }\n    pub fn numel(&self) -> usize {\n    }\n    pub fn id(&self) -> TensorId {\n    }\n    pub fn zeros(shape: &[usize], dtype: DType) -> Tensor {\n    }\n}\npub fn outside(x: &Tensor) -> Tensor {\n}\n";
    let found: Vec<(String, bool)> = tensor_methods(src)
        .into_iter()
        .map(|(n, s)| {
            let d = is_differentiable(&s);
            (n, d)
        })
        .collect();
    let expected: Vec<(String, bool)> = [
        ("exp", true),
        ("where_", true),
        ("numel", false),
        ("id", false),
        ("zeros", false),
    ]
    .iter()
    .map(|(n, d)| (n.to_string(), *d))
    .collect();
    assert_eq!(found, expected);
}

/// The gradient of `spec`'s op at `inputs` seeded with `seed`, by the rules' tensor-op
/// form (a graph of the backward pass is built) and by their fast path (none is), and
/// how many fast paths the second pass took.
fn both_forms(
    apply: fn(&[Tensor]) -> Tensor,
    inputs: &[Tensor],
    seed: &Tensor,
) -> (Vec<Vec<f64>>, Vec<Vec<f64>>, u64) {
    let y = apply(inputs);
    let graph = y
        .backward_opts(
            Some(seed),
            BackwardOptions {
                create_graph: true,
                retain_graph: true,
            },
        )
        .expect("backward with a graph");
    let before = fused_rules_taken();
    let fast = y.backward_with(seed);
    let taken = fused_rules_taken() - before;
    let read = |g: &tapegrad::Grads| -> Vec<Vec<f64>> {
        inputs
            .iter()
            .map(|x| g.get(x).map(|t| t.to_vec::<f64>()).unwrap_or_default())
            .collect()
    };
    (read(&graph), read(&fast), taken)
}

#[test]
fn fused_rules_match_their_tensor_op_form_on_every_fused_row() {
    // For each row marked `fused`, and each dtype: small tensors (computed at once) with
    // edge values (relu at 0 and below, saturated tanh / sigmoid, exp of large values),
    // and large ones (deferred and fused), fused on and off.
    let fused: Vec<_> = all_ops().into_iter().filter(|s| s.fused).collect();
    let names: Vec<&str> = fused.iter().map(|s| s.name).collect();
    assert!(names.len() >= 4, "fused rows: {names:?}");
    let xs = [-30.0, -2.5, -0.7, -0.0, 0.0, 1e-3, 0.3, 1.7, 4.0, 30.0];
    let gs = [0.3, -1.1, 2.5, -0.0, 1.0, 7.0, -3.3, 0.01, -0.2, 1.5];
    let big = 40_000;
    for spec in &fused {
        for dtype in [DType::F32, DType::F64] {
            let small = Tensor::from_vec(xs.to_vec(), &[xs.len()]).to_dtype(dtype);
            let small_seed = Tensor::from_vec(gs.to_vec(), &[gs.len()]).to_dtype(dtype);
            let large = Tensor::randn(&[big], dtype, 3).mul_scalar(3.0);
            let large_seed = Tensor::randn(&[big], dtype, 4);
            for (x, seed) in [(small, small_seed), (large, large_seed)] {
                for fusion in [true, false] {
                    let inputs = vec![x.clone().requires_grad()];
                    let (graph, fast, taken) =
                        with_fusion(fusion, || both_forms(spec.apply, &inputs, &seed));
                    assert!(
                        taken > 0,
                        "{}: marked fused, but backward took no fast path",
                        spec.name
                    );
                    let same = graph[0].len() == fast[0].len()
                        && graph[0]
                            .iter()
                            .zip(&fast[0])
                            .all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(
                        same,
                        "{} {dtype} (n = {}, fusion {fusion}): the fast path and the tensor-op rule differ",
                        spec.name,
                        x.numel()
                    );
                }
            }
        }
    }
}

#[test]
fn only_rows_marked_fused_take_a_fast_path() {
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(11);
    let mut wrong = Vec::new();
    for spec in all_ops() {
        let inputs: Vec<Tensor> = spec
            .sample_inputs(&mut rng, DType::F64)
            .into_iter()
            .map(|t| t.requires_grad())
            .collect();
        let y = (spec.apply)(&inputs);
        let seed = Tensor::ones(y.shape(), y.dtype());
        let before = fused_rules_taken();
        let _ = y.backward_with(&seed);
        let took = fused_rules_taken() > before;
        // A composed op may reach a fused primitive (silu reaches sigmoid); only a row
        // whose own op is recorded under its name must agree with the column.
        if y.op_name() == Some(spec.name) && took != spec.fused {
            wrong.push(format!(
                "{}: fused column {}, fast path taken {took}",
                spec.name, spec.fused
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "the op table's `fused` column is wrong:\n  {}",
        wrong.join("\n  ")
    );
}
