//! `DataError`: everything that can be wrong with a data file, naming the file.

use std::path::PathBuf;

/// A dataset could not be read. Every variant names the file and what was wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file does not start with the expected magic number.
    #[error("{path}: bad magic number 0x{found:08x} (expected 0x{expected:08x}: {what})")]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// What was read.
        found: u32,
        /// What an IDX file of that kind starts with.
        expected: u32,
        /// The kind of file expected.
        what: &'static str,
    },
    /// The file ends before the data its header announces.
    #[error(
        "{path}: truncated: the header announces {expected} bytes of data, the file has {actual}"
    )]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Bytes announced.
        expected: usize,
        /// Bytes present.
        actual: usize,
    },
    /// An images file and its labels file disagree on the number of samples.
    #[error("{images} has {n_images} images but {labels} has {n_labels} labels")]
    CountMismatch {
        /// Images file.
        images: PathBuf,
        /// Labels file.
        labels: PathBuf,
        /// Number of images.
        n_images: usize,
        /// Number of labels.
        n_labels: usize,
    },
    /// A malformed record in a text file.
    #[error("{path}:{line}: {message}")]
    Record {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A structurally valid file with unusable contents (e.g. no rows, a label out of range).
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> DataError {
    let path = path.into();
    move |source| DataError::Io { path, source }
}

/// The bytes of `path`, decompressed if the file is gzip (detected from its first bytes).
pub(crate) fn read_maybe_gzip(path: &std::path::Path) -> Result<Vec<u8>, DataError> {
    use std::io::Read;
    let raw = std::fs::read(path).map_err(io_err(path))?;
    if !raw.starts_with(&[0x1f, 0x8b]) {
        return Ok(raw);
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&raw[..])
        .read_to_end(&mut out)
        .map_err(io_err(path))?;
    Ok(out)
}
