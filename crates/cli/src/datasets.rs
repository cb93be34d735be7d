//! Loading the CLI's datasets: train / validation / test splits, images normalised with
//! the training set's statistics, text cut into windows (see `lm.rs`).

use tapegrad_data::{digits, fashion_mnist, DataError, Dataset, InMemoryDataset};
use tapegrad_train::{Batch, Samples};

use crate::lm::{self, Windows};
use crate::setup::CommonArgs;

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
    /// Text for language models (`--model transformer` or `lstm`): the embedded
    /// chapters 1-20 of *Pride and Prejudice* (200 KB), or every UTF-8 file of
    /// `--data-dir`; byte tokens, the last 10% held out.
    Text,
}

/// One split: images with a class each, or windows of text.
pub enum Split {
    /// Classification samples.
    Images(InMemoryDataset),
    /// Text windows with next-character targets.
    Text(Windows),
}

impl Split {
    /// Number of samples (images or windows).
    pub fn len(&self) -> usize {
        match self {
            Split::Images(d) => d.len(),
            Split::Text(w) => w.len(),
        }
    }

    /// The shape of one sample (`[seq_len]` for text).
    pub fn sample_shape(&self) -> &[usize] {
        match self {
            Split::Images(d) => d.sample_shape(),
            Split::Text(w) => w.sample_shape(),
        }
    }

    /// Classes (the vocabulary for text).
    pub fn num_classes(&self) -> usize {
        match self {
            Split::Images(d) => d.num_classes(),
            Split::Text(_) => lm::VOCAB,
        }
    }
}

impl Samples for Split {
    fn num_samples(&self) -> usize {
        self.len()
    }

    fn batch(&self, indices: &[usize]) -> Batch {
        match self {
            Split::Images(d) => Samples::batch(d, indices),
            Split::Text(w) => w.batch(indices),
        }
    }
}

/// Train, validation and test sets.
pub struct Splits {
    pub train: Split,
    pub val: Split,
    pub test: Split,
}

/// Loads the dataset of `common` (--dataset, --data-dir, and --seq-len for text).
///
/// Digits are split 80/20 into train/test (fixed seed), Fashion-MNIST uses its own test
/// set; 10% of the training images (at most 5,000) are held out for validation. All
/// three are normalised with the training set's mean and deviation. Text: see
/// [`lm::load`].
///
/// # Errors
/// A file that cannot be read, `--data-dir` with the embedded digits, or a set too small
/// to train, validate and test on (each split needs at least one sample).
pub fn load(common: &CommonArgs) -> Result<Splits, String> {
    let (train_full, test) = match (common.dataset, common.data_dir.as_ref()) {
        (DatasetName::Digits, Some(dir)) => {
            return Err(format!(
                "--data-dir {}: the digits are embedded in the binary; --data-dir is for --dataset fashion-mnist or text",
                dir.display()
            ))
        }
        (DatasetName::Digits, None) => digits().map_err(text)?.split(0.2, 0),
        (DatasetName::FashionMnist, dir) => {
            fashion_mnist(dir.map(|p| p.as_path())).map_err(text)?
        }
        (DatasetName::Text, dir) => {
            let (train, val, test) = lm::load(dir, common.lm.seq_len)?;
            return Ok(Splits {
                train: Split::Text(train),
                val: Split::Text(val),
                test: Split::Text(test),
            });
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
    Ok(Splits {
        train: Split::Images(train),
        val: Split::Images(val),
        test: Split::Images(test),
    })
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
