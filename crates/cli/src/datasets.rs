//! Loading the CLI's datasets: train / validation / test splits, normalised with the
//! training set's statistics.

use std::path::PathBuf;

use tapegrad_data::{digits, fashion_mnist, DataError, Dataset, InMemoryDataset};

/// Which dataset to use.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
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
pub fn load(name: DatasetName, data_dir: Option<&PathBuf>) -> Result<Splits, DataError> {
    let (train_full, test) = match name {
        DatasetName::Digits => digits()?.split(0.2, 0),
        DatasetName::FashionMnist => fashion_mnist(data_dir.map(|p| p.as_path()))?,
    };
    let frac = (5000.0 / train_full.len() as f64).min(0.1);
    let (mut train, mut val) = train_full.split(frac, 1);
    let mut test = test;
    let (mean, std) = global_stats(&train);
    let d: usize = train.sample_shape().iter().product();
    for set in [&mut train, &mut val, &mut test] {
        set.normalize(&vec![mean; d], &vec![std; d]);
    }
    Ok(Splits { train, val, test })
}

/// Mean and standard deviation over every feature of every sample.
fn global_stats(data: &InMemoryDataset) -> (f32, f32) {
    let f = data.features();
    let n = f.len().max(1) as f64;
    let mean = f.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = f.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    (mean as f32, var.sqrt().max(1e-6) as f32)
}
