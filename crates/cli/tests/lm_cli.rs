//! `tapegrad train --dataset text` and `tapegrad sample` on a tiny corpus: the first 6,000
//! characters of the embedded text in a `--data-dir`, windows of 16, width 16.

use std::path::{Path, PathBuf};
use std::process::Command;

fn tapegrad() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tapegrad"))
}

fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd.output().expect("run tapegrad");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A folder holding one small text file.
fn corpus(root: &Path) -> PathBuf {
    let dir = root.join("corpus");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(
        dir.join("austen.txt"),
        &tapegrad_data::embedded_text()[..6000],
    )
    .unwrap();
    dir
}

/// Trains `model` for one epoch on the tiny corpus into `out`; returns stdout.
fn train(model: &str, data: &Path, out: &Path, extra: &[&str]) -> String {
    let (ok, stdout, stderr) = run(tapegrad()
        .args(["train", "--dataset", "text", "--model", model])
        .args(["--seq-len", "16", "--d-model", "16", "--heads", "2"])
        .args([
            "--batch-size",
            "64",
            "--lr",
            "0.01",
            "--epochs",
            "1",
            "--quiet",
        ])
        .args(extra)
        .arg("--data-dir")
        .arg(data)
        .arg("--out")
        .arg(out));
    assert!(ok, "{stdout}\n{stderr}");
    stdout
}

/// The number after `key ` on the epoch line of `stdout`.
fn value_after(stdout: &str, key: &str) -> f64 {
    let line = stdout.lines().find(|l| l.starts_with("epoch")).unwrap();
    let rest = &line[line.find(key).unwrap_or_else(|| panic!("{line}")) + key.len()..];
    rest.split_whitespace().next().unwrap().parse().unwrap()
}

fn sample(run_dir: &Path, extra: &[&str]) -> (bool, String, String) {
    run(tapegrad()
        .arg("sample")
        .arg("--run")
        .arg(run_dir)
        .args(extra))
}

#[test]
fn transformer_reports_bits_per_char_resumes_and_samples() {
    let dir = tempfile::tempdir().unwrap();
    let data = corpus(dir.path());
    let out = dir.path().join("run");
    let stdout = train("transformer", &data, &out, &["--layers", "1"]);
    assert!(stdout.contains("training transformer on text"), "{stdout}");
    assert!(
        stdout.contains("order-3 character n-gram baseline"),
        "{stdout}"
    );
    assert!(
        stdout.contains("held-out test bits per character"),
        "{stdout}"
    );
    let bits = value_after(&stdout, "val_bits_per_char ");
    let loss = value_after(&stdout, "val_loss ");
    // Bits per character are the loss in nats over ln 2, below the uniform 8 bits.
    assert!(bits.is_finite() && bits > 0.0 && bits < 8.0, "{stdout}");
    assert!(
        (bits - loss / std::f64::consts::LN_2).abs() < 1e-3,
        "{stdout}"
    );

    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let line: serde_json::Value = serde_json::from_str(metrics.lines().next().unwrap()).unwrap();
    let logged = line["val_bits_per_char"].as_f64().unwrap();
    assert!((logged - bits).abs() < 1e-4, "{metrics}");
    let events: Vec<u8> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("tfevents"))
        .flat_map(|p| std::fs::read(p).unwrap())
        .collect();
    let tag = b"bits_per_char/val";
    assert!(events.windows(tag.len()).any(|w| w == tag));

    let (ok, stdout, stderr) = run(tapegrad()
        .args(["train", "--epochs", "2", "--quiet", "--resume"])
        .arg(&out));
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("resumed at epoch 1"), "{stdout}");
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 2, "{metrics}");

    // Greedy: the prompt and then exactly --length characters.
    let (ok, text, stderr) = sample(
        &out,
        &[
            "--prompt",
            "It is a ",
            "--length",
            "25",
            "--temperature",
            "0",
        ],
    );
    assert!(ok, "{stderr}");
    let text = text.strip_suffix('\n').unwrap();
    assert!(text.starts_with("It is a "), "{text:?}");
    assert_eq!(text.len(), "It is a ".len() + 25, "{text:?}");
    // Sampling is reproducible by seed.
    let args = [
        "--length",
        "40",
        "--top-k",
        "5",
        "--temperature",
        "0.8",
        "--seed",
        "7",
    ];
    let (a, b) = (sample(&out, &args), sample(&out, &args));
    assert!(a.0 && a.1 == b.1, "{a:?} {b:?}");
    assert!(a.1.starts_with("The "), "{a:?}");
}

#[test]
fn lstm_with_a_tied_head_trains_and_samples() {
    let dir = tempfile::tempdir().unwrap();
    let data = corpus(dir.path());
    let out = dir.path().join("run");
    let stdout = train("lstm", &data, &out, &["--tied"]);
    let bits = value_after(&stdout, "val_bits_per_char ");
    assert!(bits.is_finite() && bits > 0.0 && bits < 8.0, "{stdout}");
    // The default depth is saved, so giving it when resuming is no contradiction.
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("args.json")).unwrap()).unwrap();
    assert_eq!(
        (saved["layers"].as_u64(), saved["d_model"].as_u64()),
        (Some(1), Some(16))
    );
    let (ok, stdout, stderr) = run(tapegrad()
        .args([
            "train", "--epochs", "2", "--layers", "1", "--quiet", "--resume",
        ])
        .arg(&out));
    assert!(
        ok && stdout.contains("resumed at epoch 1"),
        "{stdout}\n{stderr}"
    );
    let (ok, text, stderr) = sample(
        &out,
        &["--prompt", "Mr. ", "--length", "10", "--top-k", "1"],
    );
    assert!(ok, "{stderr}");
    assert!(text.starts_with("Mr. "), "{text:?}");
}

#[test]
fn missing_or_corrupt_runs_and_unfit_settings_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-run");
    let (ok, _, stderr) = sample(&missing, &[]);
    assert!(
        !ok && stderr.contains("no-such-run") && stderr.contains("no such folder"),
        "{stderr}"
    );

    // A run folder whose training never reached a checkpoint.
    let data = corpus(dir.path());
    let out = dir.path().join("run");
    train("transformer", &data, &out, &["--layers", "1"]);
    let partial = dir.path().join("partial");
    std::fs::create_dir(&partial).unwrap();
    let (ok, _, stderr) = sample(&partial, &[]);
    assert!(!ok && stderr.contains("args.json"), "{stderr}");
    std::fs::copy(out.join("args.json"), partial.join("args.json")).unwrap();
    let (ok, _, stderr) = sample(&partial, &[]);
    assert!(!ok && stderr.contains("checkpoint.json"), "{stderr}");

    // A corrupt weights file is named.
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("checkpoint.json")).unwrap())
            .unwrap();
    let weights = index["weights"].as_str().unwrap();
    std::fs::write(out.join(weights), b"not safetensors").unwrap();
    let (ok, _, stderr) = sample(&out, &[]);
    assert!(!ok && stderr.contains(weights), "{stderr}");
    let (ok, _, stderr) = sample(&out, &["--prompt", ""]);
    assert!(!ok && stderr.contains("--prompt"), "{stderr}");

    // Text needs a language model, a language model needs text, windows need text.
    let (ok, _, stderr) = run(tapegrad().args(["train", "--dataset", "text", "--quiet"]));
    assert!(
        !ok && stderr.contains("--model mlp is not a language model"),
        "{stderr}"
    );
    let (ok, _, stderr) = run(tapegrad().args(["train", "--model", "lstm", "--quiet"]));
    assert!(
        !ok && stderr.contains("trains on --dataset text"),
        "{stderr}"
    );
    let (ok, _, stderr) = run(tapegrad()
        .args([
            "train",
            "--dataset",
            "text",
            "--model",
            "lstm",
            "--seq-len",
            "5000",
            "--quiet",
        ])
        .arg("--data-dir")
        .arg(&data));
    assert!(!ok && stderr.contains("too short"), "{stderr}");
    let (ok, _, stderr) = run(tapegrad().args([
        "train",
        "--dataset",
        "text",
        "--model",
        "transformer",
        "--d-model",
        "10",
        "--heads",
        "4",
    ]));
    assert!(
        !ok && stderr.contains("--heads 4 does not divide --d-model 10"),
        "{stderr}"
    );
}

#[test]
fn help_lists_the_language_model_flags() {
    let (ok, stdout, _) = run(tapegrad().args(["train", "--help"]));
    assert!(ok);
    for flag in [
        "--seq-len",
        "--d-model",
        "--layers",
        "--heads",
        "--positions",
        "--tied",
        "transformer",
        "lstm",
        "text",
    ] {
        assert!(stdout.contains(flag), "train --help lacks {flag}");
    }
    let (ok, stdout, _) = run(tapegrad().args(["sample", "--help"]));
    assert!(ok);
    for flag in [
        "--run",
        "--prompt",
        "--temperature",
        "--top-k",
        "--length",
        "--seed",
    ] {
        assert!(stdout.contains(flag), "sample --help lacks {flag}");
    }
}
