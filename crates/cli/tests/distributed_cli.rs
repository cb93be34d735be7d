//! `tapegrad train --distributed` without mpirun: the errors that come before MPI. (The
//! runs under mpirun are checked by tools/check_distributed_train.sh.)

use std::process::Command;

fn train(args: &[&str], out: &std::path::Path) -> (bool, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_tapegrad"))
        .arg("train")
        .args(args)
        .arg("--out")
        .arg(out)
        .output()
        .expect("run tapegrad");
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[cfg(not(feature = "mpi"))]
#[test]
fn without_the_mpi_feature_distributed_says_how_to_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let (ok, stderr) = train(&["--distributed", "--epochs", "1"], &out);
    assert!(!ok);
    assert!(
        stderr.contains("built without MPI support: rebuild with --features mpi"),
        "{stderr}"
    );
    assert!(!out.exists(), "nothing is written");
}

#[test]
fn an_adaptive_batch_is_refused_with_distributed() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let (ok, stderr) = train(
        &["--distributed", "--grow-batch", "adaptive", "--epochs", "1"],
        &out,
    );
    assert!(!ok);
    assert!(
        stderr.contains("--grow-batch adaptive cannot be combined with --distributed"),
        "{stderr}"
    );
    assert!(!out.exists(), "nothing is written");
    // Without --distributed the same options train.
    let (ok, stderr) = train(
        &["--grow-batch", "adaptive", "--epochs", "1", "--quiet"],
        &out,
    );
    assert!(ok, "{stderr}");
}
