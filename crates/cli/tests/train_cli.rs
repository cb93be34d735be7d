//! Smoke tests of `tapegrad train` and `tapegrad batch-sweep` on the embedded digits.

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

#[test]
fn train_one_epoch_writes_metrics_plot_and_checkpoint_then_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let (ok, stdout, stderr) = run(tapegrad()
        .args(["train", "--epochs", "1", "--quiet", "--out"])
        .arg(&out));
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("training mlp on digits"), "{stdout}");
    assert!(stdout.contains("test accuracy"), "{stdout}");
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = metrics
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    for key in [
        "epoch",
        "iteration",
        "train_loss",
        "val_loss",
        "val_accuracy",
        "test_accuracy",
        "samples_per_s",
        "lr",
        "batch_size",
    ] {
        assert!(
            lines[0].get(key).is_some(),
            "metrics.jsonl lacks {key}: {metrics}"
        );
    }
    assert_eq!(lines[0]["epoch"], 1);
    assert!(
        lines[0]["val_accuracy"].as_f64().unwrap() > 0.5,
        "{metrics}"
    );
    let svg = std::fs::read_to_string(out.join("metrics.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("accuracy"));
    assert!(out.join("checkpoint.json").exists());

    // TensorBoard: one event per update with the per-step scalars, one per epoch.
    let updates = lines[0]["iteration"].as_u64().unwrap() as usize;
    let records = event_records(&out);
    assert_eq!(count_with(&records, b"grad_norm"), updates);
    assert_eq!(count_with(&records, b"samples_per_s"), updates);
    assert_eq!(count_with(&records, b"accuracy/val"), 1);

    let (ok, stdout, stderr) = run(tapegrad()
        .args(["train", "--epochs", "2", "--quiet", "--resume"])
        .arg(&out));
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("resumed at epoch 1"), "{stdout}");
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 2, "{metrics}");
    // The resumed run writes a second event file that continues the steps.
    let records = event_records(&out);
    assert_eq!(count_with(&records, b"grad_norm"), 2 * updates);
    assert_eq!(count_with(&records, b"accuracy/val"), 2);
    let files = std::fs::read_dir(&out)
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_string_lossy().starts_with("events.out.tfevents.")
        })
        .count();
    assert_eq!(files, 2);
}

/// The payloads of the TFRecords in every event file of `dir` (the framing is checked:
/// each record's length fits the file; CRCs are checked by the train crate's tests and in
/// CI by TensorBoard's reader).
fn event_records(dir: &std::path::Path) -> Vec<Vec<u8>> {
    let mut records = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("events.out.tfevents.") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let mut at = 0;
        while at < bytes.len() {
            let len = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
            let start = at + 12;
            assert!(start + len + 4 <= bytes.len(), "{name}: truncated record");
            records.push(bytes[start..start + len].to_vec());
            at = start + len + 4;
        }
    }
    records
}

fn count_with(records: &[Vec<u8>], tag: &[u8]) -> usize {
    records
        .iter()
        .filter(|r| r.windows(tag.len()).any(|w| w == tag))
        .count()
}

#[test]
fn train_rejects_bad_arguments_and_missing_data() {
    let (ok, _, stderr) = run(tapegrad().args(["train", "--batch-size", "0", "--quiet"]));
    assert!(!ok);
    assert!(
        stderr.contains("invalid value '0' for '--batch-size <BATCH_SIZE>': must be at least 1"),
        "{stderr}"
    );
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, stderr) = run(tapegrad()
        .args([
            "train",
            "--dataset",
            "fashion-mnist",
            "--quiet",
            "--data-dir",
        ])
        .arg(dir.path())
        .arg("--out")
        .arg(dir.path().join("run")));
    assert!(!ok);
    assert!(
        stderr.contains("train-images-idx3-ubyte"),
        "the error names the missing file: {stderr}"
    );
    let (ok, _, stderr) = run(tapegrad().args(["train", "--grow-batch", "five"]));
    assert!(!ok && stderr.contains("expected EPOCH:SIZE"), "{stderr}");
}

#[test]
fn batch_sweep_on_two_tiny_batch_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, stdout, stderr) = run(tapegrad()
        .args([
            "batch-sweep",
            "--batch-sizes",
            "4,16",
            "--epochs",
            "1",
            "--memory-limit",
            "8MiB",
            "--out",
        ])
        .arg(dir.path()));
    assert!(ok, "{stdout}\n{stderr}");
    let csv = std::fs::read_to_string(dir.path().join("batch_sweep.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(
        rows[0],
        "batch_size,lr,samples_per_s,updates_per_s,peak_bytes,epochs,train_loss,val_accuracy,updates"
    );
    assert_eq!(rows.len(), 3, "{csv}");
    assert!(rows[1].starts_with("4,") && rows[2].starts_with("16,"));
    // batch 4 makes 4x the updates of batch 16 per epoch (counted, not timed: rates
    // depend on the machine's load)
    let updates = |r: &str| r.split(',').nth(8).unwrap().parse::<usize>().unwrap();
    let peak = |r: &str| r.split(',').nth(4).unwrap().parse::<usize>().unwrap();
    let (small, large) = (updates(rows[1]), updates(rows[2]));
    assert!(small + 3 >= 4 * large && small <= 4 * large, "{csv}");
    assert!(peak(rows[1]) > 0 && peak(rows[2]) > 0, "{csv}");
    assert!(dir.path().join("batch_sweep.svg").exists());
    assert!(
        stdout.contains("largest batch that fits in 8.0 MiB"),
        "{stdout}"
    );
}

#[test]
fn help_describes_every_command() {
    let (ok, stdout, _) = run(tapegrad().arg("--help"));
    assert!(ok);
    for cmd in ["train", "batch-sweep", "gradcheck"] {
        assert!(stdout.contains(cmd), "{stdout}");
    }
    let (ok, stdout, _) = run(tapegrad().args(["train", "--help"]));
    assert!(ok);
    for flag in [
        "--dataset",
        "--model",
        "--batch-size",
        "--epochs",
        "--optimizer",
        "--lr",
        "--schedule",
        "--accumulate",
        "--seed",
        "--out",
        "--resume",
    ] {
        assert!(stdout.contains(flag), "train --help lacks {flag}");
    }
    let (ok, stdout, _) = run(tapegrad().args(["batch-sweep", "--help"]));
    assert!(ok && stdout.contains("--batch-sizes") && stdout.contains("--memory-limit"));
}

#[test]
fn a_run_with_dropout_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (whole, split) = (dir.path().join("whole"), dir.path().join("split"));
    let train = |out: &std::path::Path, epochs: &str| {
        let (ok, stdout, stderr) = run(tapegrad()
            .args([
                "train",
                "--dropout",
                "0.2",
                "--quiet",
                "--epochs",
                epochs,
                "--out",
            ])
            .arg(out));
        assert!(ok, "{stdout}\n{stderr}");
    };
    train(&whole, "2");
    train(&split, "1");
    let (ok, stdout, stderr) = run(tapegrad()
        .args(["train", "--quiet", "--epochs", "2", "--resume"])
        .arg(&split));
    assert!(ok, "{stdout}\n{stderr}");
    let weights = |d: &std::path::Path| {
        let f = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .starts_with("weights-")
            })
            .unwrap();
        std::fs::read(f).unwrap()
    };
    assert!(weights(&whole) == weights(&split), "resumed weights differ");
    let settings = std::fs::read_to_string(split.join("args.json")).unwrap();
    assert!(settings.contains("\"dropout\": 0.2"), "{settings}");
}

#[test]
fn train_grows_the_batch_adaptively_within_a_memory_limit() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let (ok, stdout, stderr) = run(tapegrad()
        .args([
            "train",
            "--grow-batch",
            "adaptive",
            "--batch-size",
            "8",
            "--max-batch",
            "64",
            "--memory-limit",
            "8MiB",
            "--epochs",
            "1",
            "--quiet",
            "--out",
        ])
        .arg(&out));
    assert!(ok, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("largest micro-batch that fits in 8.0 MiB"),
        "{stdout}"
    );
    assert!(stdout.contains("adaptive batch: "), "{stdout}");
    // The measured micro-batch is saved with the run, for an exact resume.
    let args = std::fs::read_to_string(out.join("args.json")).unwrap();
    assert!(args.contains("\"max_micro_batch\": "), "{args}");
    assert!(args.contains("\"adaptive\""), "{args}");
    let checkpoint = std::fs::read_to_string(out.join("checkpoint.json")).unwrap();
    assert!(checkpoint.contains("\"adaptive\": {"), "{checkpoint}");

    let (ok, _, stderr) = run(tapegrad().args([
        "train",
        "--grow-batch",
        "adaptive",
        "--accumulate",
        "2",
        "--quiet",
    ]));
    assert!(
        !ok && stderr.contains("--grow-batch adaptive sets the batch"),
        "{stderr}"
    );
}
