//! Hostile input to the `tapegrad` command: every case ends within seconds with a clear
//! error and a non-zero exit (or, for `--epochs 0`, a clean no-op), never a panic or a
//! hang. Each run has a time limit here, in the harness, so a hang fails the test.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How a run ended.
struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Outcome {
    /// Exited non-zero with an error message and no panic.
    #[track_caller]
    fn failed_with(&self, message: &str) {
        assert!(
            self.code.is_some_and(|c| c != 0),
            "expected a failure, got {:?}\n{}\n{}",
            self.code,
            self.stdout,
            self.stderr
        );
        self.no_panic();
        assert!(
            self.stderr.contains(message),
            "stderr lacks {message:?}:\n{}",
            self.stderr
        );
    }

    #[track_caller]
    fn no_panic(&self) {
        assert!(!self.stderr.contains("panicked"), "{}", self.stderr);
    }
}

/// Runs `tapegrad ARGS`, killing it and failing the test after `limit`.
fn tapegrad(args: &[&str], limit: Duration) -> Outcome {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tapegrad"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tapegrad");
    let read = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            r.read_to_string(&mut s).ok();
            s
        })
    };
    let out = read(Box::new(child.stdout.take().unwrap()));
    let err = read(Box::new(child.stderr.take().unwrap()));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            child.kill().ok();
            child.wait().ok();
            panic!("tapegrad {args:?} hung: killed after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Outcome {
        code: status.code(),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

const SHORT: Duration = Duration::from_secs(20);
/// A run that trains a little (test builds are not fully optimised).
const TRAINING: Duration = Duration::from_secs(180);

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn numeric_flags_are_checked_when_the_command_line_is_read() {
    for (args, message) in [
        (
            &["train", "--lr=-0.001"][..],
            "invalid value '-0.001' for '--lr <LR>'",
        ),
        (
            &["train", "--lr", "NaN"],
            "invalid value 'NaN' for '--lr <LR>'",
        ),
        (
            &["train", "--lr", "inf"],
            "invalid value 'inf' for '--lr <LR>'",
        ),
        (
            &["train", "--weight-decay", "NaN"],
            "'--weight-decay <WEIGHT_DECAY>'",
        ),
        (
            &["train", "--clip-grad-norm", "NaN"],
            "'--clip-grad-norm <CLIP_GRAD_NORM>'",
        ),
        (&["train", "--clip-grad-norm", "0"], "0 is not above 0"),
        (
            &["train", "--accumulate", "0"],
            "'--accumulate <ACCUMULATE>'",
        ),
        (&["train", "--grow-batch", "0:64"], "epochs count from 1"),
        (
            &["batch-sweep", "--seconds=-1"],
            "invalid value '-1' for '--seconds <SECONDS>'",
        ),
        (
            &["batch-sweep", "--seconds", "NaN"],
            "'--seconds <SECONDS>'",
        ),
        (
            &["batch-sweep", "--batch-sizes", "8,0"],
            "'--batch-sizes <BATCH_SIZES>'",
        ),
    ] {
        let o = tapegrad(args, SHORT);
        o.failed_with(message);
    }
}

#[test]
fn zero_epochs_is_a_clean_no_op() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let o = tapegrad(
        &["train", "--epochs", "0", "--quiet", "--out", path(&out)],
        SHORT,
    );
    assert_eq!(o.code, Some(0), "{}\n{}", o.stdout, o.stderr);
    assert!(
        o.stdout.contains("--epochs 0: nothing to train"),
        "{}",
        o.stdout
    );
    assert!(!out.exists(), "a no-op run writes nothing");
}

#[test]
fn a_diverging_run_stops_with_the_epoch_as_shown_and_a_finite_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    // From epoch 2 the batch is the whole set and the rate is scaled by 10^7: one update
    // throws the weights far out (the validation loss is still finite), the next makes
    // it NaN in epoch 3.
    let o = tapegrad(
        &[
            "train",
            "--optimizer",
            "sgd",
            "--lr",
            "0.05",
            "--grow-batch",
            "2:320000000",
            "--lr-scaling",
            "--epochs",
            "3",
            "--quiet",
            "--out",
            path(&out),
        ],
        TRAINING,
    );
    o.failed_with("the validation loss (NaN) is not finite after epoch 3, iteration 43; the last good checkpoint, from the end of epoch 2 (iteration 42), is kept in");
    assert!(o.stdout.contains("epoch   3/3"), "{}", o.stdout);
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("checkpoint.json")).unwrap())
            .unwrap();
    assert_eq!(index["state"]["epoch"], 2);
    let history = index["state"]["history"].as_array().unwrap();
    assert!(history
        .iter()
        .all(|m| m["val_loss"].as_f64().is_some_and(f64::is_finite)));
    // The plot was drawn (a non-finite epoch must not hang it) and the run resumes.
    assert!(out.join("metrics.svg").exists());
    let o = tapegrad(
        &["train", "--resume", path(&out), "--epochs", "2", "--quiet"],
        SHORT,
    );
    assert_eq!(o.code, Some(0), "{}\n{}", o.stdout, o.stderr);
    assert!(
        o.stdout.contains("has done 2 epochs: nothing to train"),
        "{}",
        o.stdout
    );
}

#[test]
fn a_huge_learning_rate_stops_instead_of_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let o = tapegrad(
        &[
            "train",
            "--optimizer",
            "sgd",
            "--lr",
            "1e6",
            "--epochs",
            "1",
            "--quiet",
            "--out",
            path(&out),
        ],
        TRAINING,
    );
    o.failed_with("non-finite loss");
    assert!(
        o.stderr.contains("no checkpoint had been written to"),
        "{}",
        o.stderr
    );
    let sweep = dir.path().join("sweep");
    let o = tapegrad(
        &[
            "batch-sweep",
            "--batch-sizes",
            "8",
            "--lr",
            "1e6",
            "--epochs",
            "1",
            "--out",
            path(&sweep),
        ],
        TRAINING,
    );
    o.failed_with("every batch size stopped");
    assert!(o.stdout.contains("non-finite loss"), "{}", o.stdout);
    assert!(
        !o.stdout.contains("checkpoint"),
        "the sweep writes none: {}",
        o.stdout
    );
}

/// Writes the four Fashion-MNIST IDX files (raw, not gzip) into `dir`: `train` and
/// `test` images of `side x side` pixels, the images' header dimensions given by `dims`
/// when set.
fn write_idx_set(dir: &Path, train: u32, test: u32, side: u32, dims: Option<[u32; 3]>) {
    let images = |n: u32| {
        let d = dims.unwrap_or([n, side, side]);
        let mut b = vec![0, 0, 8, 3];
        for x in d {
            b.extend_from_slice(&x.to_be_bytes());
        }
        b.extend((0..n * side * side).map(|i| (i % 251) as u8));
        b
    };
    let labels = |n: u32| {
        let mut b = vec![0, 0, 8, 1];
        b.extend_from_slice(&n.to_be_bytes());
        b.extend((0..n).map(|i| (i % 10) as u8));
        b
    };
    std::fs::write(dir.join("train-images-idx3-ubyte"), images(train)).unwrap();
    std::fs::write(dir.join("train-labels-idx1-ubyte"), labels(train)).unwrap();
    std::fs::write(dir.join("t10k-images-idx3-ubyte"), images(test)).unwrap();
    std::fs::write(dir.join("t10k-labels-idx1-ubyte"), labels(test)).unwrap();
}

fn train_on(dir: &Path, extra: &[&str]) -> Outcome {
    let out = dir.join("run");
    let mut args = vec![
        "train",
        "--dataset",
        "fashion-mnist",
        "--data-dir",
        path(dir),
        "--epochs",
        "1",
        "--quiet",
        "--out",
        path(&out),
    ];
    args.extend_from_slice(extra);
    let o = tapegrad(&args, TRAINING);
    if o.code != Some(0) {
        assert!(!out.exists(), "a failed load leaves no run folder behind");
    }
    o
}

#[test]
fn hostile_idx_files_are_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_idx_set(d, 4, 2, 28, Some([4, 0, 28]));
    train_on(d, &[]).failed_with("train-images-idx3-ubyte: the header's dimension 1 is 0");
    write_idx_set(d, 4, 2, 28, Some([1024, 1 << 31, 1 << 23]));
    train_on(d, &[]).failed_with("describe more bytes than any file can hold");
    write_idx_set(d, 0, 2, 8, None);
    train_on(d, &[]).failed_with("train-images-idx3-ubyte: the header's dimension 0 is 0");
    write_idx_set(d, 40, 0, 8, None);
    train_on(d, &[]).failed_with("t10k-images-idx3-ubyte: the header's dimension 0 is 0");
    write_idx_set(d, 3, 2, 8, None);
    train_on(d, &[]).failed_with("each set needs at least one");
    write_idx_set(d, 40, 10, 2, None);
    train_on(d, &["--model", "cnn"]).failed_with("2x2 images are too small");
    // The same small set trains with the MLP.
    let o = train_on(d, &[]);
    assert_eq!(o.code, Some(0), "{}\n{}", o.stdout, o.stderr);
}

#[test]
fn data_dir_with_the_embedded_digits_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    tapegrad(&["train", "--data-dir", path(dir.path()), "--quiet"], SHORT)
        .failed_with("--data-dir is for --dataset fashion-mnist");
}

#[test]
fn resume_refuses_contradicting_flags_and_keeps_the_run_intact_on_a_corrupt_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let o = tapegrad(
        &["train", "--epochs", "1", "--quiet", "--out", path(&out)],
        TRAINING,
    );
    assert_eq!(o.code, Some(0), "{}\n{}", o.stdout, o.stderr);
    let settings = std::fs::read_to_string(out.join("args.json")).unwrap();
    // Settings are written with the command line's spelling of each choice.
    assert!(settings.contains("\"dataset\": \"digits\""), "{settings}");
    assert!(settings.contains("\"optimizer\": \"adam\""), "{settings}");

    let o = tapegrad(
        &[
            "train",
            "--resume",
            path(&out),
            "--model",
            "cnn",
            "--optimizer",
            "sgd",
            "--lr",
            "0.1",
        ],
        SHORT,
    );
    o.failed_with("--model cnn (the run has mlp), --optimizer sgd (the run has adam), --lr 0.1 (the run has null) contradict the run; only --epochs, --quiet and --data-dir may change when resuming");
    // A flag given with the run's own value is no contradiction.
    let o = tapegrad(
        &[
            "train",
            "--resume",
            path(&out),
            "--model",
            "mlp",
            "--epochs",
            "1",
            "--quiet",
        ],
        SHORT,
    );
    assert_eq!(o.code, Some(0), "{}\n{}", o.stdout, o.stderr);

    // Corrupt the weights: resuming fails naming the file and leaves args.json as it was.
    let weights = std::fs::read_dir(&out)
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
    std::fs::write(&weights, b"not safetensors").unwrap();
    let o = tapegrad(
        &["train", "--resume", path(&out), "--epochs", "4", "--quiet"],
        SHORT,
    );
    o.failed_with(weights.file_name().unwrap().to_str().unwrap());
    assert_eq!(
        std::fs::read_to_string(out.join("args.json")).unwrap(),
        settings
    );
}

#[test]
fn a_closed_pipe_ends_the_command_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tapegrad"))
        .args(["train", "--epochs", "3", "--quiet", "--out", path(&out)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    // The reader is gone (as with `| head -1`); the next line written hits a closed pipe.
    assert!(first.starts_with("training mlp on digits"), "{first}");
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(
            started.elapsed() < TRAINING,
            "tapegrad did not stop after its pipe closed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
}
