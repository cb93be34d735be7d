//! IDX reader (the MNIST / Fashion-MNIST format, gzip-compressed or raw) and the
//! Fashion-MNIST loader.

use std::path::{Path, PathBuf};

use crate::error::read_maybe_gzip;
use crate::{DataError, InMemoryDataset};

/// Where Debian's `dataset-fashion-mnist` package installs the files.
pub const FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";

const IMAGES_MAGIC: u32 = 0x0000_0803;
const LABELS_MAGIC: u32 = 0x0000_0801;

/// An IDX file's dimensions and its `u8` data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    /// Sizes from the header (e.g. `[60000, 28, 28]`).
    pub dims: Vec<usize>,
    /// Row-major bytes.
    pub data: Vec<u8>,
}

/// Reads an IDX file of unsigned bytes (gzip-compressed or raw, detected from its first
/// bytes) whose magic number must be `expected_magic` (`0x803` images, `0x801` labels).
///
/// Errors name the file: a wrong magic number, a header or data shorter than announced,
/// trailing garbage, or an I/O or gzip failure.
pub fn read_idx(path: impl AsRef<Path>, expected_magic: u32) -> Result<IdxArray, DataError> {
    let path = path.as_ref();
    let bytes = read_maybe_gzip(path)?;
    let what = if expected_magic == IMAGES_MAGIC {
        "IDX images, u8, 3 dimensions"
    } else {
        "IDX labels, u8, 1 dimension"
    };
    let ndim = (expected_magic & 0xff) as usize;
    let header_len = 4 + 4 * ndim;
    if bytes.len() < 4 {
        return Err(DataError::Truncated {
            path: path.into(),
            expected: header_len,
            actual: bytes.len(),
        });
    }
    let magic = u32::from_be_bytes(bytes[0..4].try_into().expect("4 bytes"));
    if magic != expected_magic {
        return Err(DataError::BadMagic {
            path: path.into(),
            found: magic,
            expected: expected_magic,
            what,
        });
    }
    if bytes.len() < header_len {
        return Err(DataError::Truncated {
            path: path.into(),
            expected: header_len,
            actual: bytes.len(),
        });
    }
    let dims: Vec<usize> = (0..ndim)
        .map(|i| {
            u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().expect("4 bytes")) as usize
        })
        .collect();
    if let Some(axis) = dims.iter().position(|&d| d == 0) {
        return Err(DataError::Invalid {
            path: path.into(),
            message: format!("the header's dimension {axis} is 0 (dimensions {dims:?})"),
        });
    }
    let body = &bytes[header_len..];
    // The product is checked, so a hostile header can neither overflow it nor make us
    // allocate more than the file holds: the data is only copied once its size matches.
    let n = dims
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| DataError::Invalid {
            path: path.into(),
            message: format!(
                "the header's dimensions {dims:?} describe more bytes than any file can hold"
            ),
        })?;
    if body.len() < n {
        return Err(DataError::Truncated {
            path: path.into(),
            expected: n,
            actual: body.len(),
        });
    }
    if body.len() > n {
        return Err(DataError::Invalid {
            path: path.into(),
            message: format!(
                "{} bytes after the {n} the header announces",
                body.len() - n
            ),
        });
    }
    Ok(IdxArray {
        dims,
        data: body.to_vec(),
    })
}

/// Loads an images/labels pair as a dataset of `[1, rows, cols]` images scaled to `[0, 1]`.
pub fn read_idx_pair(
    images: &Path,
    labels: &Path,
    name: &str,
) -> Result<InMemoryDataset, DataError> {
    let img = read_idx(images, IMAGES_MAGIC)?;
    let lbl = read_idx(labels, LABELS_MAGIC)?;
    if img.dims[0] != lbl.dims[0] {
        return Err(DataError::CountMismatch {
            images: images.into(),
            labels: labels.into(),
            n_images: img.dims[0],
            n_labels: lbl.dims[0],
        });
    }
    let labels_usize: Vec<usize> = lbl.data.iter().map(|&b| b as usize).collect();
    if let Some(bad) = labels_usize.iter().find(|&&l| l >= 10) {
        return Err(DataError::Invalid {
            path: labels.into(),
            message: format!("label {bad} is not a class 0..9"),
        });
    }
    let features: Vec<f32> = img.data.iter().map(|&b| b as f32 / 255.0).collect();
    Ok(InMemoryDataset::new(
        name,
        features,
        labels_usize,
        &[1, img.dims[1], img.dims[2]],
        10,
    ))
}

fn find_file(dir: &Path, stem: &str) -> PathBuf {
    let gz = dir.join(format!("{stem}.gz"));
    if gz.exists() {
        gz
    } else {
        dir.join(stem)
    }
}

/// Fashion-MNIST from `dir` (default [`FASHION_MNIST_DIR`]): `(train, test)` with 60,000
/// and 10,000 images of shape `[1, 28, 28]` scaled to `[0, 1]`. Each file may be
/// gzip-compressed (`*.gz`) or raw.
pub fn fashion_mnist(dir: Option<&Path>) -> Result<(InMemoryDataset, InMemoryDataset), DataError> {
    let dir = dir.unwrap_or(Path::new(FASHION_MNIST_DIR));
    let train = read_idx_pair(
        &find_file(dir, "train-images-idx3-ubyte"),
        &find_file(dir, "train-labels-idx1-ubyte"),
        "fashion-mnist-train",
    )?;
    let test = read_idx_pair(
        &find_file(dir, "t10k-images-idx3-ubyte"),
        &find_file(dir, "t10k-labels-idx1-ubyte"),
        "fashion-mnist-test",
    )?;
    Ok((train, test))
}
