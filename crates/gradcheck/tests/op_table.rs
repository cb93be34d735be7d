//! Property tests generated from the op table: every row of `tapegrad::all_ops()` is
//! gradchecked in f64 at random shapes and values from its domain, and rows marked
//! `second_order` are gradgradchecked. Each test runs every op and then fails once,
//! naming every op that failed with its (shrunk) inputs and the checker's report.
//!
//! `PROPTEST_CASES` overrides the number of cases per op (default 16); `GRADCHECK_SEED`
//! picks another deterministic stream of inputs.

use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use tapegrad::{all_ops, DType, OpSpec, Tensor};
use tapegrad_gradcheck::ops::{check_op, OpCheck};
use tapegrad_gradcheck::{gradcheck, gradgradcheck, strategies, Options};

const DEFAULT_CASES: u32 = 16;

fn runner() -> TestRunner {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    let seed: u64 = std::env::var("GRADCHECK_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let config = Config {
        cases,
        max_shrink_iters: 64,
        failure_persistence: None,
        ..Config::default()
    };
    TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes))
}

fn describe(inputs: &[Tensor]) -> String {
    inputs
        .iter()
        .enumerate()
        .map(|(i, t)| format!("  input {i}: shape {:?} = {t}\n", t.shape()))
        .collect()
}

/// Runs `property` on random inputs of every op in `ops`; panics naming every op that
/// failed.
fn for_every_op(
    ops: &[&'static OpSpec],
    property: impl Fn(&OpSpec, &[Tensor]) -> Result<(), String>,
) {
    let mut failures = Vec::new();
    for &spec in ops {
        let result = runner().run(&strategies::op_inputs(spec, DType::F64), |inputs| {
            property(spec, &inputs)
                .map_err(|msg| TestCaseError::fail(format!("{msg}\n{}", describe(&inputs))))
        });
        match result {
            Ok(()) => {}
            Err(TestError::Fail(reason, _)) => {
                failures.push(format!("op `{}` failed:\n{reason}", spec.name))
            }
            Err(TestError::Abort(reason)) => {
                failures.push(format!("op `{}` aborted: {reason}", spec.name))
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} ops failed:\n\n{}",
        failures.len(),
        ops.len(),
        failures.join("\n\n")
    );
}

fn first_order(check: &OpCheck) -> Result<(), String> {
    check
        .first
        .as_ref()
        .map(|_| ())
        .map_err(|e| format!("first order: {e}"))
}

#[test]
fn every_op_passes_gradcheck() {
    let ops = all_ops();
    assert!(ops.len() >= 50, "the op table lists {} ops", ops.len());
    for_every_op(&ops, |spec, inputs| {
        let check = tapegrad_gradcheck::ops::check_op(
            &OpSpec {
                second_order: false,
                ..*spec
            },
            inputs,
            &Options::default(),
        );
        first_order(&check)
    });
}

#[test]
fn every_second_order_op_passes_gradgradcheck() {
    let ops: Vec<_> = all_ops().into_iter().filter(|s| s.second_order).collect();
    assert!(!ops.is_empty());
    for_every_op(&ops, |spec, inputs| {
        let check = check_op(spec, inputs, &Options::default());
        match check.second {
            Some(Err(e)) => Err(format!("second order: {e}")),
            Some(Ok(_)) => Ok(()),
            None => unreachable!("filtered on second_order"),
        }
    });
}

#[test]
fn every_op_passes_fast_mode() {
    // Fast mode is what users reach for on big inputs; it must agree with full mode on
    // every correct op.
    let ops = all_ops();
    for_every_op(&ops, |spec, inputs| {
        let options = Options::default().fast().with_seed(inputs.len() as u64);
        gradcheck(spec.apply, inputs, &options)
            .map(|_| ())
            .map_err(|e| format!("fast mode: {e}"))?;
        if spec.second_order {
            gradgradcheck(spec.apply, inputs, &options)
                .map(|_| ())
                .map_err(|e| format!("fast mode, second order: {e}"))?;
        }
        Ok(())
    });
}
