//! Loading the CLI's datasets: train / validation / test splits, normalised with the
//! training set's statistics.

use std::path::PathBuf;

use tapegrad_data::{digits, fashion_mnist, DataError, Dataset, InMemoryDataset};

/// Which dataset to use.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetName {
    /// The 1,797 8x8 digits embedded in the binary (no set-up).
    Digits,
    /// Fashion-MNIST (60,000 + 10,000 28x28 images) from `--data-dir` or
    /// /usr/share/datasets/fashion-mnist (`apt-get install dataset-fashion-mnist`).
    FashionMnist,
}

/// Train, validation and test sets.
pub struct Splits {
    pub train: InMemoryDataset,
    pub val: InMemoryDataset,
    pub test: InMemoryDataset,
}

/// Loads `name`: digits is split 80/20 into train/test (fixed seed), Fashion-MNIST uses
/// its own test set; 10% of the training data (at most 5,000 samples) is held out for
/// validation. All three are normalised with the training set's mean and deviation.
///
/// # Errors
/// A file that cannot be read, `--data-dir` with the embedded digits, or a set too small
/// to train, validate and test on (each split needs at least one sample).
pub fn load(name: DatasetName, data_dir: Option<&PathBuf>) -> Result<Splits, String> {
    let (train_full, test) = match (name, data_dir) {
        (DatasetName::Digits, Some(dir)) => {
            return Err(format!(
                "--data-dir {}: the digits are embedded in the binary; --data-dir is for --dataset fashion-mnist",
                dir.display()
            ))
        }
        (DatasetName::Digits, None) => digits().map_err(text)?.split(0.2, 0),
        (DatasetName::FashionMnist, dir) => {
            fashion_mnist(dir.map(|p| p.as_path())).map_err(text)?
        }
    };

    let frac = (5000.0 / train_full.len() as f64).min(0.1);
    let (mut train, mut val) = train_full.split(frac, 1);
    if train.is_empty() || val.is_empty() || test.is_empty() {
        return Err(format!(
            "{}: {} training samples ({} after holding out {} for validation) and {} test samples; each set needs at least one (at least 5 training samples in all)",
            train_full.name(),
            train_full.len(),
            train.len(),
            val.len(),
            test.len()
        ));
    }
    let mut test = test;
    let (mean, std) = global_stats(&train);
    let d: usize = train.sample_shape().iter().product();
    for set in [&mut train, &mut val, &mut test] {
        set.normalize(&vec![mean; d], &vec![std; d]);
    }
    Ok(Splits { train, val, test })
}

fn text(e: DataError) -> String {
    e.to_string()
}

/// Mean and standard deviation over every feature of every sample.
fn global_stats(data: &InMemoryDataset) -> (f32, f32) {
    let f = data.features();
    let n = f.len().max(1) as f64;
    let mean = f.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = f.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    (mean as f32, var.sqrt().max(1e-6) as f32)
}
