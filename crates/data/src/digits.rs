//! The embedded digits dataset (UCI optical recognition of handwritten digits, 8x8),
//! compiled into the binary so training works on a fresh machine with no set-up.

use std::io::Read;

use crate::csv::parse_csv;
use crate::{DataError, InMemoryDataset};

/// The gzip-compressed CSV: 1,797 rows of 64 pixel values (0..16) then the label.
/// Creators: E. Alpaydin, C. Kaynak (1998), UCI Machine Learning Repository, CC BY 4.0.
static DIGITS_CSV_GZ: &[u8] = include_bytes!("../../../data/digits.csv.gz");

/// The 1,797 digits as a dataset of 64 features scaled to `[0, 1]` and 10 classes.
///
/// ```
/// use tapegrad_data::Dataset;
/// let d = tapegrad_data::digits().unwrap();
/// assert_eq!((d.len(), d.sample_shape(), d.num_classes()), (1797, &[64usize][..], 10));
/// ```
pub fn digits() -> Result<InMemoryDataset, DataError> {
    let name = "<embedded digits.csv.gz>";
    let mut text = String::new();
    flate2::read::GzDecoder::new(DIGITS_CSV_GZ)
        .read_to_string(&mut text)
        .map_err(crate::error::io_err(name))?;
    let mut data = parse_csv(&text, name.as_ref(), "digits", None, false, Some(10))?;
    data.scale(1.0 / 16.0);
    Ok(data)
}
