//! Weights on disk: a module's parameters and buffers saved to and loaded from a
//! safetensors file under their dotted names (`"0.weight"`, `"3.running_mean"`).
//!
//! Saving is atomic: the file is written to a temporary name in the same directory,
//! flushed, then renamed over the target, so a crash leaves the old file or the new one,
//! never half of one. Loading checks everything before changing anything: every name
//! the model has must be in the file with the same shape and dtype, and the file may hold
//! nothing else; otherwise the model is untouched and the error names the first mismatch.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use tapegrad::{DType, Tensor};

use crate::Module;

/// Why weights could not be saved or loaded. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    /// Reading, writing or renaming the file failed.
    #[error("{path}: {action} failed: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not a valid safetensors file (truncated, corrupt header, bad offsets).
    #[error("{path}: not a valid safetensors file (truncated or corrupt): {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What the parser reported.
        reason: String,
    },
    /// The model has a tensor the file lacks.
    #[error("{path}: tensor `{name}` is missing from the file (the model expects it)")]
    Missing {
        /// The file.
        path: PathBuf,
        /// The tensor's name.
        name: String,
    },
    /// The file has a tensor the model does not.
    #[error("{path}: unexpected tensor `{name}` in the file (the model has no such parameter or buffer)")]
    Unexpected {
        /// The file.
        path: PathBuf,
        /// The tensor's name.
        name: String,
    },
    /// A tensor's shape differs.
    #[error(
        "{path}: tensor `{name}` has shape {found:?} in the file, the model expects {expected:?}"
    )]
    Shape {
        /// The file.
        path: PathBuf,
        /// The tensor's name.
        name: String,
        /// The model's shape.
        expected: Vec<usize>,
        /// The file's shape.
        found: Vec<usize>,
    },
    /// A tensor's dtype differs (or is one tapegrad does not have).
    #[error("{path}: tensor `{name}` is {found} in the file, the model expects {expected}")]
    DType {
        /// The file.
        path: PathBuf,
        /// The tensor's name.
        name: String,
        /// The model's dtype.
        expected: DType,
        /// The file's dtype, as safetensors names it.
        found: String,
    },
    /// Two parameters or buffers of the model share a name, so the file cannot hold both.
    #[error("{path}: the model has two tensors named `{name}`")]
    DuplicateName {
        /// The file.
        path: PathBuf,
        /// The repeated name.
        name: String,
    },
}

/// Every tensor saved with a module: parameters, then buffers, by name.
fn named_tensors(module: &dyn Module, path: &Path) -> Result<Vec<(String, Tensor)>, WeightsError> {
    let mut all: Vec<(String, Tensor)> = module
        .named_params()
        .into_iter()
        .map(|(n, p)| (n, p.tensor().clone()))
        .collect();
    all.extend(module.named_buffers());
    let mut seen = HashSet::new();
    for (name, _) in &all {
        if !seen.insert(name.as_str()) {
            return Err(WeightsError::DuplicateName {
                path: path.to_path_buf(),
                name: name.clone(),
            });
        }
    }
    Ok(all)
}

fn st_dtype(d: DType) -> Dtype {
    match d {
        DType::F32 => Dtype::F32,
        DType::F64 => Dtype::F64,
    }
}

fn le_bytes(t: &Tensor) -> Vec<u8> {
    match t.dtype() {
        DType::F32 => t
            .to_vec::<f32>()
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        DType::F64 => t
            .to_vec::<f64>()
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
    }
}

/// Saves `module`'s parameters and buffers to `path` as safetensors, atomically.
///
/// # Errors
/// [`WeightsError::DuplicateName`] if two tensors share a name, [`WeightsError::Io`] if
/// the file cannot be written.
///
/// ```
/// use tapegrad_nn::{io, Linear};
/// let dir = std::env::temp_dir().join(format!("tapegrad-doc-save-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("linear.safetensors");
/// let a = Linear::new(3, 2, 0);
/// io::save(&a, &path).unwrap();
/// let b = Linear::new(3, 2, 1);
/// io::load(&b, &path).unwrap();
/// assert_eq!(a.weight.to_vec::<f32>(), b.weight.to_vec::<f32>());
/// std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub fn save(module: &dyn Module, path: impl AsRef<Path>) -> Result<(), WeightsError> {
    let path = path.as_ref();
    let tensors = named_tensors(module, path)?;
    let data: Vec<(String, Vec<usize>, DType, Vec<u8>)> = tensors
        .iter()
        .map(|(n, t)| (n.clone(), t.shape().to_vec(), t.dtype(), le_bytes(t)))
        .collect();
    let views = data.iter().map(|(n, shape, d, bytes)| {
        let view = TensorView::new(st_dtype(*d), shape.clone(), bytes)
            .expect("byte length matches shape and dtype");
        (n.clone(), view)
    });
    let bytes = safetensors::serialize(views, &None).map_err(|e| WeightsError::Corrupt {
        path: path.to_path_buf(),
        reason: format!("could not serialise: {e}"),
    })?;
    write_atomically(path, &bytes)
}

/// Writes `bytes` to a temporary file next to `path`, syncs it, and renames it over `path`.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), WeightsError> {
    let io_err = |action: &'static str| {
        move |source| WeightsError::Io {
            path: path.to_path_buf(),
            action,
            source,
        }
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = fs::File::create(&tmp).map_err(io_err("creating a temporary file"))?;
        f.write_all(bytes).map_err(io_err("writing"))?;
        f.sync_all().map_err(io_err("syncing"))?;
        drop(f);
        fs::rename(&tmp, path).map_err(io_err("renaming the temporary file"))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Loads the parameters and buffers of `module` from the safetensors file at `path`,
/// in place (parameter ids do not change, so optimiser state stays attached).
///
/// Nothing is changed unless everything matches.
///
/// # Errors
/// [`WeightsError::Io`] if the file cannot be read; [`WeightsError::Corrupt`] if it is
/// truncated or not safetensors; [`WeightsError::Missing`], [`WeightsError::Shape`] or
/// [`WeightsError::DType`] for the first of the model's tensors (in `named_params` then
/// `named_buffers` order) that the file lacks or holds differently; then
/// [`WeightsError::Unexpected`] for the first (alphabetically) extra tensor in the file.
///
/// ```
/// use tapegrad_nn::{io, io::WeightsError, Linear};
/// let dir = std::env::temp_dir().join(format!("tapegrad-doc-load-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("linear.safetensors");
/// io::save(&Linear::new(3, 2, 0), &path).unwrap();
/// let err = io::load(&Linear::new(4, 2, 0), &path).unwrap_err();
/// assert!(matches!(err, WeightsError::Shape { ref name, .. } if name == "weight"));
/// std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub fn load(module: &dyn Module, path: impl AsRef<Path>) -> Result<(), WeightsError> {
    let path = path.as_ref();
    let bytes = fs::read(path).map_err(|source| WeightsError::Io {
        path: path.to_path_buf(),
        action: "reading",
        source,
    })?;
    let file = SafeTensors::deserialize(&bytes).map_err(|e| WeightsError::Corrupt {
        path: path.to_path_buf(),
        reason: format!("{e:?}"),
    })?;
    let wanted = named_tensors(module, path)?;
    let mut in_file: BTreeMap<String, TensorView<'_>> = file.tensors().into_iter().collect();
    let mut values = Vec::with_capacity(wanted.len());
    for (name, t) in &wanted {
        let Some(view) = in_file.remove(name) else {
            return Err(WeightsError::Missing {
                path: path.to_path_buf(),
                name: name.clone(),
            });
        };
        if view.shape() != t.shape() {
            return Err(WeightsError::Shape {
                path: path.to_path_buf(),
                name: name.clone(),
                expected: t.shape().to_vec(),
                found: view.shape().to_vec(),
            });
        }
        let value = match (t.dtype(), view.dtype()) {
            (DType::F32, Dtype::F32) => {
                let v: Vec<f32> = view
                    .data()
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
                    .collect();
                Tensor::from_vec(v, t.shape())
            }
            (DType::F64, Dtype::F64) => {
                let v: Vec<f64> = view
                    .data()
                    .chunks_exact(8)
                    .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")))
                    .collect();
                Tensor::from_vec(v, t.shape())
            }
            (expected, found) => {
                return Err(WeightsError::DType {
                    path: path.to_path_buf(),
                    name: name.clone(),
                    expected,
                    found: format!("{found:?}"),
                })
            }
        };
        values.push(value);
    }
    if let Some(name) = in_file.keys().next() {
        return Err(WeightsError::Unexpected {
            path: path.to_path_buf(),
            name: name.clone(),
        });
    }
    // Everything matched: only now change the model.
    for ((_, t), v) in wanted.iter().zip(values) {
        t.assign_(&v);
    }
    Ok(())
}
