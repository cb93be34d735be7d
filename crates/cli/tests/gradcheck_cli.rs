//! Smoke tests of `tapegrad gradcheck`: it runs the checker on table ops, prints the
//! table, exits 0 when everything passes and 2 on a usage error; `--help` documents it.

use std::process::{Command, Output};

fn tapegrad(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tapegrad"))
        .args(args)
        .output()
        .expect("the tapegrad binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn checks_selected_ops_and_prints_a_table() {
    let out = tapegrad(&[
        "gradcheck",
        "--op",
        "tanh",
        "--op",
        "matmul",
        "--op",
        "relu",
        "--cases",
        "2",
        "--seed",
        "3",
    ]);
    let text = stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("gradcheck of 3 ops, 2 case(s) each, seed 3, full Jacobian"),
        "{text}"
    );
    for column in [
        "op",
        "shapes",
        "1st abs err",
        "1st rel err",
        "2nd abs err",
        "2nd",
    ] {
        assert!(text.contains(column), "column {column:?} in\n{text}");
    }
    let row = |op: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{op} ")))
            .unwrap_or_else(|| panic!("row {op} in\n{text}"))
    };
    // Every one of these is checked to second order (relu's rule is linear in g, so its
    // gradgradcheck checks that dependence).
    let tanh: Vec<&str> = row("tanh").split_whitespace().collect();
    assert_eq!(tanh.iter().filter(|c| **c == "pass").count(), 2, "{text}");
    let errors: Vec<f64> = tanh.iter().filter_map(|c| c.parse().ok()).collect();
    assert_eq!(errors.len(), 4, "four error columns: {tanh:?}");
    assert!(errors.iter().all(|&e| (0.0..1e-5).contains(&e)), "{tanh:?}");
    let relu: Vec<&str> = row("relu").split_whitespace().collect();
    assert_eq!(relu.iter().filter(|c| **c == "pass").count(), 2, "{text}");
    assert!(row("matmul").contains(" pass "), "{text}");
    assert!(text.contains("all 3 ops passed"), "{text}");
    assert!(!text.contains("FAIL"), "{text}");
}

#[test]
fn fast_mode_runs() {
    let out = tapegrad(&["gradcheck", "--op", "softmax", "--fast"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("fast mode (v·J·u)"));
}

#[test]
fn an_unknown_op_is_a_usage_error() {
    let out = tapegrad(&["gradcheck", "--op", "no_such_op"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no op named `no_such_op`") && err.contains("--list"),
        "{err}"
    );
}

#[test]
fn list_and_markdown_come_from_the_table() {
    let out = tapegrad(&["gradcheck", "--list"]);
    let names: Vec<String> = stdout(&out).lines().map(String::from).collect();
    let table: Vec<String> = tapegrad::all_ops()
        .iter()
        .map(|s| s.name.to_string())
        .collect();
    assert_eq!(names, table);
    let out = tapegrad(&["gradcheck", "--markdown"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout(&out), tapegrad_gradcheck::ops_markdown());
}

#[test]
fn help_documents_the_subcommands_and_options() {
    let out = tapegrad(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("gradcheck"), "{}", stdout(&out));
    let out = tapegrad(&["gradcheck", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    for flag in [
        "--seed",
        "--cases",
        "--op <NAME>",
        "--fast",
        "--markdown",
        "--list",
    ] {
        assert!(text.contains(flag), "{flag} in\n{text}");
    }
    // A bad value is rejected by the parser.
    assert_eq!(
        tapegrad(&["gradcheck", "--cases", "0"]).status.code(),
        Some(2)
    );
}
