//! # tapegrad-data
//!
//! Datasets and mini-batch loading for tapegrad: the [`Dataset`] trait, an in-memory
//! dataset, the embedded digits data (works with no set-up), readers for IDX
//! (MNIST / Fashion-MNIST) and CSV files, text for language models ([`ByteTokenizer`],
//! [`TextDataset`], an embedded public-domain text, [`NgramModel`] baselines), a
//! [`DataLoader`] with seeded shuffling and background prefetch, batch-size schedules
//! and memory measurement. The training loop that uses them lives in `tapegrad-train`.
//!
//! ```
//! use tapegrad_data::{digits, DataLoader, Dataset};
//! let data = digits().unwrap();
//! assert_eq!(data.len(), 1797);
//! let loader = DataLoader::new(data, 128).shuffle(7);
//! let batches: Vec<_> = loader.epoch(0).collect();
//! assert_eq!(batches.len(), 15); // 14 full batches and a partial one of 5
//! assert_eq!(batches[14].x.shape(), &[5, 64]);
//! ```
#![warn(missing_docs)]

mod csv;
mod dataset;
mod digits;
mod error;
mod idx;
mod loader;
mod memory;
mod ngram;
mod schedule;
mod text;

pub use csv::{read_csv, MAX_CLASSES};
pub use dataset::{Dataset, InMemoryDataset};
pub use digits::digits;
pub use error::DataError;
pub use idx::{fashion_mnist, read_idx, read_idx_pair, IdxArray, FASHION_MNIST_DIR};
pub use loader::{epoch_order, Batch, DataLoader, EpochIter};
pub use memory::{
    counting_enabled, current_bytes, format_bytes, largest_batch_that_fits, measure_peak,
    parse_bytes, peak_bytes, reset_peak, stop_counting, CountingAllocator,
};
pub use ngram::NgramModel;
pub use schedule::BatchSizeSchedule;
pub use text::{embedded_text, read_text_dir, split_held_out, ByteTokenizer, TextDataset};
