//! CSV reader: one sample per line, numeric features and an integer class label.

use std::path::Path;

use crate::error::read_maybe_gzip;
use crate::{DataError, InMemoryDataset};

/// Reads a CSV file (plain or gzip-compressed) of numeric features and one integer label
/// column (`label_column`, or the last column if `None`), skipping a header line if
/// `has_header`. The number of classes is the largest label plus one.
///
/// Every malformed record is an `Err` naming the file and line: a non-numeric or
/// non-finite field, a negative, fractional or too large (at least [`MAX_CLASSES`])
/// label, a row with the wrong number of columns, an empty file.
pub fn read_csv(
    path: impl AsRef<Path>,
    label_column: Option<usize>,
    has_header: bool,
) -> Result<InMemoryDataset, DataError> {
    let path = path.as_ref();
    let bytes = read_maybe_gzip(path)?;
    let text = String::from_utf8(bytes).map_err(|e| DataError::Invalid {
        path: path.into(),
        message: format!("not UTF-8 text: {e}"),
    })?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    parse_csv(&text, path, &name, label_column, has_header, None)
}

/// Labels are class indices: a label this large (the classifier would need as many
/// outputs) is an error naming the line, not an allocation of that size.
pub const MAX_CLASSES: usize = 1 << 20;

pub(crate) fn parse_csv(
    text: &str,
    path: &Path,
    name: &str,
    label_column: Option<usize>,
    has_header: bool,
    num_classes: Option<usize>,
) -> Result<InMemoryDataset, DataError> {
    let record = |line: usize, message: String| DataError::Record {
        path: path.into(),
        line,
        message,
    };
    let mut features = Vec::new();
    let mut labels = Vec::new();
    let mut width = None;
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if (has_header && i == 0) || line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let w = *width.get_or_insert(fields.len());
        if fields.len() != w {
            return Err(record(
                line_no,
                format!("{} columns, expected {w} like the first row", fields.len()),
            ));
        }
        if w < 2 {
            return Err(record(
                line_no,
                "a row needs at least one feature and a label".into(),
            ));
        }
        let lc = label_column.unwrap_or(w - 1);
        if lc >= w {
            return Err(record(
                line_no,
                format!("label column {lc} does not exist in a row of {w} columns"),
            ));
        }
        for (j, f) in fields.iter().enumerate() {
            if j == lc {
                let v: f64 = f
                    .parse()
                    .map_err(|_| record(line_no, format!("label {f:?} is not a number")))?;
                if !(v >= 0.0 && v.fract() == 0.0) {
                    return Err(record(
                        line_no,
                        format!("label {f:?} is not a non-negative integer"),
                    ));
                }
                if v >= MAX_CLASSES as f64 {
                    return Err(record(
                        line_no,
                        format!("label {f:?} is not below the {MAX_CLASSES} classes a CSV file may have"),
                    ));
                }
                labels.push(v as usize);
            } else {
                let v: f32 = f.parse().map_err(|_| {
                    record(
                        line_no,
                        format!("column {} value {f:?} is not a number", j + 1),
                    )
                })?;
                if !v.is_finite() {
                    return Err(record(
                        line_no,
                        format!("column {} value {f:?} is not a finite f32", j + 1),
                    ));
                }
                features.push(v);
            }
        }
        if let Some(k) = num_classes {
            let l = *labels.last().expect("pushed above");
            if l >= k {
                return Err(record(
                    line_no,
                    format!("label {l} is not below the {k} classes"),
                ));
            }
        }
    }
    let Some(w) = width else {
        return Err(DataError::Invalid {
            path: path.into(),
            message: "no data rows".into(),
        });
    };
    let k = num_classes.unwrap_or_else(|| labels.iter().max().map_or(0, |m| m + 1));
    Ok(InMemoryDataset::new(name, features, labels, &[w - 1], k))
}
