//! `docs/ops.md` is generated from the op table; this test fails when the committed file
//! is stale (an op was added or a row changed without regenerating it).

use tapegrad_gradcheck::{ops_markdown, REGENERATE};

#[test]
fn ops_md_is_up_to_date() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/ops.md");
    let committed = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {path}: {e}; create it with `{REGENERATE}`"));
    let generated = ops_markdown();
    if committed != generated {
        let line = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| committed.lines().count().min(generated.lines().count()));
        panic!(
            "docs/ops.md is stale (first difference at line {}):\n  committed: {:?}\n  generated: {:?}\nregenerate it from the repository root with\n  {REGENERATE}",
            line + 1,
            committed.lines().nth(line).unwrap_or("<end of file>"),
            generated.lines().nth(line).unwrap_or("<end of file>"),
        );
    }
}

#[test]
fn ops_md_lists_every_op_once() {
    let md = ops_markdown();
    for spec in tapegrad::all_ops() {
        let row = format!("| `{}` |", spec.name);
        assert_eq!(
            md.matches(&row).count(),
            1,
            "op `{}` appears once in the table",
            spec.name
        );
    }
}
