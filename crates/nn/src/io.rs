//! Tensors on disk, as safetensors files.
//!
//! - [`save`] / [`load`]: a module's parameters and buffers under their dotted names
//!   (`"0.weight"`, `"3.running_mean"`).
//! - [`save_tensors`] / [`load_tensors`]: any named F32/F64 tensors (not a module's).
//! - [`TensorFile`]: the bytes of a file, both ways, with the header's string metadata
//!   (what the optimiser state format is built on).
//! - [`write_atomic`]: how every file is written: a temporary file in the same directory,
//!   synced, then renamed over the target, so a crash leaves the old file or the new one,
//!   never half of one. Files get the permissions of a plain new file (0666 minus the umask).
//!
//! Loading checks everything before changing anything: every name the model has must be
//! in the file with the same shape and dtype, and the file may hold nothing else;
//! otherwise the model is untouched and the error names the file and the first mismatch.
//!
//! Reading never trusts the header: the header's lengths and offsets are checked against
//! the bytes present, and every allocation is sized by bytes present in the file, never by
//! a count the header claims, so a hostile file costs at most a few times its own size.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use safetensors::tensor::{Dtype, Metadata, SafeTensorError, SafeTensors, TensorInfo, TensorView};
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
        /// What was wrong.
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
    /// A tensor in the file has a dtype tapegrad does not have (it has F32 and F64).
    #[error("{path}: tensor `{name}` is {found}; tapegrad reads F32 and F64 tensors")]
    UnsupportedDType {
        /// The file.
        path: PathBuf,
        /// The tensor's name.
        name: String,
        /// The file's dtype, as safetensors names it.
        found: String,
    },
    /// A tensor's shape has more elements than memory can address (its data is empty, so
    /// safetensors' own size check passes, but no array of that shape can exist).
    #[error("{path}: tensor `{name}` has shape {shape:?}, whose element count overflows")]
    ShapeOverflow {
        /// The file.
        path: PathBuf,
        /// The tensor's name.
        name: String,
        /// The file's shape.
        shape: Vec<usize>,
    },
    /// A tensor name safetensors reserves for the header's metadata.
    #[error("{path}: a tensor cannot be named `{name}` (safetensors keeps that name for the header's metadata)")]
    ReservedName {
        /// The file.
        path: PathBuf,
        /// The name.
        name: String,
    },
}

/// What is wrong with the bytes of a [`TensorFile`] (or with one about to be written);
/// [`WeightsError`] says the same naming the file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// Not valid safetensors: truncated, a corrupt header, offsets that do not fit.
    #[error("not a valid safetensors file (truncated or corrupt): {0}")]
    Corrupt(String),
    /// A tensor of a dtype tapegrad does not have.
    #[error("tensor `{name}` is {found}; tapegrad reads F32 and F64 tensors")]
    UnsupportedDType {
        /// The tensor's name.
        name: String,
        /// Its dtype, as safetensors names it.
        found: String,
    },
    /// A tensor whose shape has more elements than memory can address.
    #[error("tensor `{name}` has shape {shape:?}, whose element count overflows")]
    ShapeOverflow {
        /// The tensor's name.
        name: String,
        /// Its shape.
        shape: Vec<usize>,
    },
    /// A tensor named `__metadata__`, which safetensors keeps for the header's metadata.
    #[error(
        "a tensor cannot be named `{name}` (safetensors keeps that name for the header's metadata)"
    )]
    ReservedName {
        /// The name.
        name: String,
    },
}

impl FormatError {
    /// The same error, naming `path`.
    pub fn in_file(self, path: &Path) -> WeightsError {
        let path = path.to_path_buf();
        match self {
            FormatError::Corrupt(reason) => WeightsError::Corrupt { path, reason },
            FormatError::UnsupportedDType { name, found } => {
                WeightsError::UnsupportedDType { path, name, found }
            }
            FormatError::ShapeOverflow { name, shape } => {
                WeightsError::ShapeOverflow { path, name, shape }
            }
            FormatError::ReservedName { name } => WeightsError::ReservedName { path, name },
        }
    }
}

/// The header key safetensors reserves for string metadata.
const METADATA_KEY: &str = "__metadata__";

/// The contents of a safetensors file: tensors by name, and the header's free-form string
/// metadata (`__metadata__`). Only F32 and F64 tensors can be read.
///
/// ```
/// use std::collections::BTreeMap;
/// use tapegrad::Tensor;
/// use tapegrad_nn::io::TensorFile;
/// let file = TensorFile {
///     tensors: BTreeMap::from([("w".to_string(), Tensor::from_vec(vec![1.0f32, 2.0], &[2]))]),
///     metadata: BTreeMap::from([("note".to_string(), "hello".to_string())]),
/// };
/// let back = TensorFile::from_bytes(&file.to_bytes().unwrap()).unwrap();
/// assert_eq!(back.tensors["w"].to_vec::<f32>(), [1.0, 2.0]);
/// assert_eq!(back.metadata["note"], "hello");
/// ```
#[derive(Clone, Debug, Default)]
pub struct TensorFile {
    /// The tensors, by name.
    pub tensors: BTreeMap<String, Tensor>,
    /// The header's string metadata.
    pub metadata: BTreeMap<String, String>,
}

impl TensorFile {
    /// The safetensors bytes of this file.
    ///
    /// # Errors
    /// [`FormatError::ReservedName`] if a tensor is named `__metadata__`.
    pub fn to_bytes(&self) -> Result<Vec<u8>, FormatError> {
        encode(&self.tensors, &self.metadata)
    }

    /// Reads safetensors `bytes`: every tensor (F32, F64, I64 or BOOL) and the string metadata.
    ///
    /// # Errors
    /// [`FormatError::Corrupt`] for bytes that are not valid safetensors,
    /// [`FormatError::UnsupportedDType`] for a tensor of another dtype,
    /// [`FormatError::ShapeOverflow`] for a shape no array can have.
    pub fn from_bytes(bytes: &[u8]) -> Result<TensorFile, FormatError> {
        let file = Parsed::new(bytes)?;
        let tensors = file
            .header
            .tensors()
            .into_iter()
            .map(|(name, info)| {
                let t = file.tensor(&name, info)?;
                Ok((name, t))
            })
            .collect::<Result<_, FormatError>>()?;
        let metadata = file
            .header
            .metadata()
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Ok(TensorFile { tensors, metadata })
    }
}

/// The safetensors bytes of `tensors` with `metadata`.
fn encode(
    tensors: &BTreeMap<String, Tensor>,
    metadata: &BTreeMap<String, String>,
) -> Result<Vec<u8>, FormatError> {
    if tensors.contains_key(METADATA_KEY) {
        return Err(FormatError::ReservedName {
            name: METADATA_KEY.to_string(),
        });
    }
    let data: Vec<(&str, Dtype, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(n, t)| {
            (
                n.as_str(),
                st_dtype(t.dtype()),
                t.shape().to_vec(),
                le_bytes(t),
            )
        })
        .collect();
    let views = data.iter().map(|(n, dtype, shape, bytes)| {
        let view = TensorView::new(*dtype, shape.clone(), bytes)
            .expect("byte length matches shape and dtype");
        (*n, view)
    });
    let metadata = (!metadata.is_empty()).then(|| {
        metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<HashMap<_, _>>()
    });
    // Serialising only fails for views whose bytes do not match their shape, and ours
    // are built from the tensors themselves.
    Ok(safetensors::serialize(views, &metadata).expect("tensor views are consistent"))
}

/// Safetensors bytes whose header has been parsed and checked (header length, JSON, each
/// tensor's offsets against its shape and dtype and against the data present).
struct Parsed<'a> {
    header: Metadata,
    /// The bytes after the header.
    data: &'a [u8],
}

impl<'a> Parsed<'a> {
    fn new(bytes: &'a [u8]) -> Result<Parsed<'a>, FormatError> {
        let (header_len, header) = SafeTensors::read_metadata(bytes)
            .map_err(|e| FormatError::Corrupt(describe(e, bytes)))?;
        let data = bytes
            .get(8 + header_len..)
            .ok_or_else(|| FormatError::Corrupt("the header runs past the end".to_string()))?;
        Ok(Parsed { header, data })
    }

    /// The tensor `name` described by `info`. Its values are sized by the bytes present.
    fn tensor(&self, name: &str, info: &TensorInfo) -> Result<Tensor, FormatError> {
        let (start, end) = info.data_offsets;
        let data = self.data.get(start..end).ok_or_else(|| {
            FormatError::Corrupt(format!(
                "tensor `{name}`: data_offsets [{start}, {end}] lie outside the {} bytes of data",
                self.data.len()
            ))
        })?;
        tensor_from_bytes(name, info.dtype, &info.shape, data)
    }
}

/// What a safetensors parse error means, in words.
fn describe(e: SafeTensorError, bytes: &[u8]) -> String {
    let header_len = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
    match (e, header_len) {
        (SafeTensorError::HeaderTooSmall, _) => format!(
            "the file has {} bytes, fewer than the 8 of the header length",
            bytes.len()
        ),
        (SafeTensorError::HeaderTooLarge, Some(n)) => {
            format!("the header length {n} is more than safetensors allows (100 MB)")
        }
        (SafeTensorError::InvalidHeaderLength, Some(n)) => format!(
            "the header length {n} runs past the end of the file ({} bytes)",
            bytes.len()
        ),
        (SafeTensorError::InvalidHeader, _) => "the header is not UTF-8 text".to_string(),
        (SafeTensorError::InvalidHeaderStart, _) => {
            "the header does not start with '{'".to_string()
        }
        (SafeTensorError::InvalidHeaderDeserialization, _) => {
            "the header is not a JSON map of tensor name to {dtype, shape, data_offsets} \
             (with an optional string map `__metadata__`)"
                .to_string()
        }
        (SafeTensorError::InvalidOffset(name), _) => format!(
            "tensor `{name}`: its data_offsets do not start where the previous tensor's data \
             ends, or end before they start"
        ),
        (SafeTensorError::ValidationOverflow, _) => {
            "a tensor's shape has more bytes than memory can address".to_string()
        }
        (SafeTensorError::TensorInvalidInfo, _) => {
            "a tensor's data_offsets span a different number of bytes than its shape and dtype need"
                .to_string()
        }
        (SafeTensorError::MetadataIncompleteBuffer, _) => {
            "the tensors' data does not end where the file ends (truncated, or extra bytes)"
                .to_string()
        }
        (other, _) => format!("{other:?}"),
    }
}

/// The element count of `shape`, if an array of that shape can exist: the product of its
/// nonzero lengths must fit in `isize` (what ndarray requires, even when another length is
/// 0 and the array is empty).
fn element_count(shape: &[usize]) -> Option<usize> {
    let nonzero = shape
        .iter()
        .filter(|&&d| d != 0)
        .try_fold(1usize, |n, &d| n.checked_mul(d))?;
    isize::try_from(nonzero).ok()?;
    Some(if shape.contains(&0) { 0 } else { nonzero })
}

/// The tensor of `dtype` and `shape` whose little-endian values are `data`.
fn tensor_from_bytes(
    name: &str,
    dtype: Dtype,
    shape: &[usize],
    data: &[u8],
) -> Result<Tensor, FormatError> {
    let overflow = || FormatError::ShapeOverflow {
        name: name.to_string(),
        shape: shape.to_vec(),
    };
    let count = element_count(shape).ok_or_else(overflow)?;
    let (dtype, size) = match dtype {
        Dtype::F32 => (DType::F32, 4),
        Dtype::F64 => (DType::F64, 8),
        Dtype::I64 => (DType::I64, 8),
        Dtype::BOOL => (DType::Bool, 1),
        other => {
            return Err(FormatError::UnsupportedDType {
                name: name.to_string(),
                found: format!("{other:?}"),
            })
        }
    };
    // safetensors checked this already; checking again keeps `from_vec` from panicking
    // should that ever change.
    if count.checked_mul(size) != Some(data.len()) {
        return Err(FormatError::Corrupt(format!(
            "tensor `{name}` has {} bytes of data, its shape {shape:?} needs {count} values",
            data.len()
        )));
    }
    Ok(match dtype {
        DType::F32 => {
            let v: Vec<f32> = data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
                .collect();
            Tensor::from_vec(v, shape)
        }
        DType::F64 => {
            let v: Vec<f64> = data
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")))
                .collect();
            Tensor::from_vec(v, shape)
        }
        DType::I64 => {
            let v: Vec<i64> = data
                .chunks_exact(8)
                .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
                .collect();
            Tensor::from_vec(v, shape)
        }
        DType::Bool => {
            let mut v = Vec::with_capacity(data.len());
            for &b in data {
                v.push(match b {
                    0 => false,
                    1 => true,
                    other => {
                        return Err(FormatError::Corrupt(format!(
                            "tensor `{name}` is BOOL but holds the byte {other} (only 0 and 1 are valid)"
                        )))
                    }
                });
            }
            Tensor::from_vec(v, shape)
        }
    })
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
        DType::I64 => Dtype::I64,
        DType::Bool => Dtype::BOOL,
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
        DType::I64 => t
            .to_vec::<i64>()
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        DType::Bool => t.to_vec::<bool>().iter().map(|&b| u8::from(b)).collect(),
    }
}

/// Writes `bytes` to `path` atomically: to a new temporary file in the same directory
/// (a unique name beside the target), synced to disk, then renamed over `path`. A crash
/// leaves the old file or the new one, never half of one; on an error the temporary file
/// is removed. The file gets the permissions of any newly created file (0666 minus the
/// umask on Unix).
///
/// # Errors
/// The I/O error, saying which step failed (creating, writing, syncing or renaming).
///
/// ```
/// let dir = std::env::temp_dir().join(format!("tapegrad-doc-atomic-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("notes.txt");
/// tapegrad_nn::io::write_atomic(&path, b"first").unwrap();
/// tapegrad_nn::io::write_atomic(&path, b"second").unwrap();
/// assert_eq!(std::fs::read(&path).unwrap(), b"second");
/// assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "no temporary file is left");
/// std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub fn write_atomic(path: impl AsRef<Path>, bytes: &[u8]) -> std::io::Result<()> {
    let path = path.as_ref();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let Some(file_name) = path.file_name() else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} does not name a file", path.display()),
        ));
    };
    let (tmp, mut file) = create_temporary(dir, &file_name.to_string_lossy())?;
    let context = |step: &'static str| {
        let tmp = tmp.display().to_string();
        move |e: std::io::Error| std::io::Error::new(e.kind(), format!("{step} {tmp}: {e}"))
    };
    let written = file
        .write_all(bytes)
        .map_err(context("writing"))
        .and_then(|()| file.sync_all().map_err(context("syncing")));
    drop(file);
    let result = written.and_then(|()| fs::rename(&tmp, path).map_err(context("renaming")));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
        return result;
    }
    // Make the rename itself durable. Best effort: some filesystems cannot sync a directory.
    #[cfg(unix)]
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Creates a new file `.<file_name>.<pid>-<n>.tmp` in `dir`, never reusing an existing
/// one (a leftover from a crashed process with the same id is skipped).
fn create_temporary(dir: &Path, file_name: &str) -> std::io::Result<(PathBuf, fs::File)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut last = None;
    for _ in 0..64 {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{file_name}.{}-{n}.tmp", std::process::id()));
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
        {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => {
                return Err(std::io::Error::new(
                    e.kind(),
                    format!("creating {}: {e}", tmp.display()),
                ))
            }
        }
    }
    Err(last.expect("64 attempts failed"))
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), WeightsError> {
    write_atomic(path, bytes).map_err(|source| WeightsError::Io {
        path: path.to_path_buf(),
        action: "writing",
        source,
    })
}

fn read_file(path: &Path) -> Result<Vec<u8>, WeightsError> {
    fs::read(path).map_err(|source| WeightsError::Io {
        path: path.to_path_buf(),
        action: "reading",
        source,
    })
}

/// Saves `module`'s parameters and buffers to `path` as safetensors, atomically (see
/// [`write_atomic`]).
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
    let tensors = named_tensors(module, path)?.into_iter().collect();
    save_tensors(path, &tensors)
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
    let bytes = read_file(path)?;
    let file = Parsed::new(&bytes).map_err(|e| e.in_file(path))?;
    let wanted = named_tensors(module, path)?;
    let mut in_file: BTreeMap<String, &TensorInfo> = file.header.tensors().into_iter().collect();
    let mut values = Vec::with_capacity(wanted.len());
    for (name, t) in &wanted {
        let Some(info) = in_file.remove(name) else {
            return Err(WeightsError::Missing {
                path: path.to_path_buf(),
                name: name.clone(),
            });
        };
        if info.shape != t.shape() {
            return Err(WeightsError::Shape {
                path: path.to_path_buf(),
                name: name.clone(),
                expected: t.shape().to_vec(),
                found: info.shape.clone(),
            });
        }
        if info.dtype != st_dtype(t.dtype()) {
            return Err(WeightsError::DType {
                path: path.to_path_buf(),
                name: name.clone(),
                expected: t.dtype(),
                found: format!("{:?}", info.dtype),
            });
        }
        values.push(file.tensor(name, info).map_err(|e| e.in_file(path))?);
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

/// Saves named tensors (F32, F64, I64 or BOOL, any shapes) to `path` as safetensors,
/// atomically (see [`write_atomic`]): for tensors that are not a module's weights, such
/// as a batch of inputs with `I64` targets and a `Bool` mask.
///
/// # Errors
/// [`WeightsError::ReservedName`] for a tensor named `__metadata__`;
/// [`WeightsError::Io`] if the file cannot be written.
///
/// ```
/// use std::collections::BTreeMap;
/// use tapegrad::Tensor;
/// use tapegrad_nn::io;
/// let dir = std::env::temp_dir().join(format!("tapegrad-doc-tensors-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("stats.safetensors");
/// let mean = Tensor::from_vec(vec![0.5f64, 1.5], &[2]);
/// io::save_tensors(&path, &BTreeMap::from([("mean".to_string(), mean)])).unwrap();
/// let back = io::load_tensors(&path).unwrap();
/// assert_eq!(back["mean"].to_vec::<f64>(), [0.5, 1.5]);
/// std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub fn save_tensors(
    path: impl AsRef<Path>,
    tensors: &BTreeMap<String, Tensor>,
) -> Result<(), WeightsError> {
    let path = path.as_ref();
    let bytes = encode(tensors, &BTreeMap::new()).map_err(|e| e.in_file(path))?;
    write_file(path, &bytes)
}

/// Loads every tensor of the safetensors file at `path`, by name.
///
/// # Errors
/// [`WeightsError::Io`] if the file cannot be read; [`WeightsError::Corrupt`] if it is
/// truncated or not safetensors, or a BOOL tensor holds a byte other than 0 or 1;
/// [`WeightsError::UnsupportedDType`] for a tensor that is not F32, F64, I64 or BOOL;
/// [`WeightsError::ShapeOverflow`] for a shape no array can have.
pub fn load_tensors(path: impl AsRef<Path>) -> Result<BTreeMap<String, Tensor>, WeightsError> {
    let path = path.as_ref();
    let bytes = read_file(path)?;
    TensorFile::from_bytes(&bytes)
        .map(|f| f.tensors)
        .map_err(|e| e.in_file(path))
}
