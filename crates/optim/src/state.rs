//! Optimiser state: the typed per-parameter buffers (`Buf`), the serialisable
//! [`StateDict`] (PyTorch's `optimizer.state_dict()`), and its file format: safetensors,
//! one tensor per buffer named `state.<param index>.<buffer>`, with the groups'
//! hyper-parameters and the scalar state (step counts) as JSON in the header metadata.
//! Files are written atomically (temp file + rename, `tapegrad_nn::io::write_atomic`) and
//! validated fully before anything is loaded: a corrupt or hostile file is an error naming
//! the file and what was wrong, never a panic, and costs at most a few times its size in
//! memory.

use std::any::Any;
use std::collections::BTreeMap;
use std::path::Path;

use ndarray::{ArrayD, IxDyn};
use serde::{Deserialize, Serialize};
use tapegrad::{DType, Element, Tensor};
use tapegrad_nn::io::{write_atomic, TensorFile};

use crate::error::OptimError;

/// A state buffer of a parameter's dtype and shape (an exponential average, a momentum
/// buffer, ...), owned by the optimiser and reused every step.
#[derive(Clone, Debug)]
pub(crate) enum Buf {
    F32(ArrayD<f32>),
    F64(ArrayD<f64>),
}

impl Buf {
    /// A buffer of `shape` filled with `value`.
    pub(crate) fn full(shape: &[usize], dtype: DType, value: f64) -> Buf {
        match dtype {
            DType::F32 => Buf::F32(ArrayD::from_elem(IxDyn(shape), value as f32)),
            DType::F64 => Buf::F64(ArrayD::from_elem(IxDyn(shape), value)),
            other => panic!("optimiser state: buffers are f32 or f64, not {other}"),
        }
    }

    pub(crate) fn dtype(&self) -> DType {
        match self {
            Buf::F32(_) => DType::F32,
            Buf::F64(_) => DType::F64,
        }
    }

    /// The array as element type `T`.
    ///
    /// # Panics
    /// If `T` is not the buffer's dtype (an internal invariant: buffers are created with
    /// their parameter's dtype and loading checks it).
    pub(crate) fn get_mut<T: Element>(&mut self) -> &mut ArrayD<T> {
        let dtype = self.dtype();
        let any: &mut dyn Any = match self {
            Buf::F32(a) => a,
            Buf::F64(a) => a,
        };
        match any.downcast_mut() {
            Some(a) => a,
            None => panic!("optimiser state buffer is {dtype}, not {}", T::DTYPE),
        }
    }

    pub(crate) fn to_tensor(&self) -> Tensor {
        match self {
            Buf::F32(a) => Tensor::from_array(a.clone()),
            Buf::F64(a) => Tensor::from_array(a.clone()),
        }
    }

    pub(crate) fn from_tensor(t: &Tensor) -> Buf {
        match t.dtype() {
            DType::F32 => Buf::F32(t.to_array::<f32>()),
            DType::F64 => Buf::F64(t.to_array::<f64>()),
            other => panic!("optimiser state: buffers are f32 or f64, not {other}"),
        }
    }
}

/// The complete state of an optimiser, as PyTorch's `optimizer.state_dict()`: the
/// hyper-parameters of each group and, for each parameter that has state, its scalars
/// (step count) and buffers. Parameters are numbered across groups in order (group 0's
/// parameters first), as in PyTorch.
#[derive(Clone, Debug)]
pub struct StateDict {
    /// The optimiser's name (`"Adam"`); loading into another optimiser is an error.
    pub optimizer: String,
    /// One record per parameter group.
    pub groups: Vec<GroupRecord>,
    /// Per-parameter state, keyed by parameter index. Parameters without state (never
    /// stepped, or an optimiser without state such as SGD without momentum) are absent.
    pub state: BTreeMap<usize, ParamRecord>,
}

/// One parameter group in a [`StateDict`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupRecord {
    /// The group's hyper-parameters (the optimiser's config struct, as JSON).
    pub hyper: serde_json::Value,
    /// Indices of the group's parameters.
    pub params: Vec<usize>,
    /// Their names, when the group was built with names.
    pub names: Vec<Option<String>>,
}

/// The state of one parameter in a [`StateDict`].
#[derive(Clone, Debug, Default)]
pub struct ParamRecord {
    /// Scalar state such as `"step"`.
    pub scalars: BTreeMap<String, f64>,
    /// Buffers such as `"exp_avg"`, each of the parameter's shape and dtype.
    pub tensors: BTreeMap<String, Tensor>,
}

impl ParamRecord {
    /// The scalar `key`, or an error naming `what` (the parameter) and the key.
    pub(crate) fn scalar(&self, key: &str, what: &str) -> Result<f64, OptimError> {
        self.scalars
            .get(key)
            .copied()
            .ok_or_else(|| OptimError::mismatch(format!("{what}: scalar state '{key}' is missing")))
    }

    /// The buffer `key`, checked against the parameter's shape and dtype.
    pub(crate) fn buf(&self, key: &str, param: &Tensor, what: &str) -> Result<Buf, OptimError> {
        let t = self.tensors.get(key).ok_or_else(|| {
            OptimError::mismatch(format!("{what}: state buffer '{key}' is missing"))
        })?;
        if t.shape() != param.shape() {
            return Err(OptimError::mismatch(format!(
                "{what}: state buffer '{key}' has shape {:?} but the parameter has shape {:?}",
                t.shape(),
                param.shape()
            )));
        }
        if t.dtype() != param.dtype() {
            return Err(OptimError::mismatch(format!(
                "{what}: state buffer '{key}' is {} but the parameter is {}",
                t.dtype(),
                param.dtype()
            )));
        }
        Ok(Buf::from_tensor(t))
    }

    /// The buffer `key` if present (checked), `None` if absent.
    pub(crate) fn opt_buf(
        &self,
        key: &str,
        param: &Tensor,
        what: &str,
    ) -> Result<Option<Buf>, OptimError> {
        if self.tensors.contains_key(key) {
            self.buf(key, param, what).map(Some)
        } else {
            Ok(None)
        }
    }
}

/// The JSON stored in the safetensors header under [`META_KEY`].
#[derive(Serialize, Deserialize)]
struct Meta {
    format_version: u32,
    optimizer: String,
    groups: Vec<GroupRecord>,
    /// Scalars per parameter index; also lists every parameter that has state.
    scalars: BTreeMap<usize, BTreeMap<String, f64>>,
}

const META_KEY: &str = "tapegrad.optim";
const FORMAT_VERSION: u32 = 1;

impl StateDict {
    /// Writes the state to `path` as safetensors, atomically (a temp file in the same
    /// directory, then a rename): a crash never leaves a half-written file.
    ///
    /// ```
    /// use tapegrad::{DType, Tensor};
    /// use tapegrad_nn::Param;
    /// use tapegrad_optim::{Adam, AdamConfig, Optimizer, StateDict};
    /// let w = Param::new(Tensor::ones(&[3], DType::F32));
    /// let mut opt = Adam::new([w.clone()], AdamConfig::default());
    /// opt.step(&(&*w * &*w).sum().backward());
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("adam.safetensors");
    /// opt.state_dict().save(&path).unwrap();
    /// let back = StateDict::load(&path).unwrap();
    /// assert_eq!(back.state[&0].scalars["step"], 1.0);
    /// assert_eq!(back.state[&0].tensors["exp_avg"].shape(), &[3]);
    /// ```
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), OptimError> {
        let path = path.as_ref();
        let bytes = self.to_bytes().map_err(|reason| OptimError::Format {
            path: path.to_path_buf(),
            reason,
        })?;
        write_atomic(path, &bytes).map_err(|source| OptimError::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Reads a state written by [`save`](Self::save). A corrupt or truncated file is an
    /// [`OptimError::Format`] naming the file.
    pub fn load(path: impl AsRef<Path>) -> Result<StateDict, OptimError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| OptimError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        StateDict::from_bytes(&bytes).map_err(|reason| OptimError::Format {
            path: path.to_path_buf(),
            reason,
        })
    }

    fn to_bytes(&self) -> Result<Vec<u8>, String> {
        for (i, rec) in &self.state {
            // JSON has no NaN or infinity: such a value would be written as `null` and the
            // file could not be read back.
            if let Some((key, v)) = rec.scalars.iter().find(|(_, v)| !v.is_finite()) {
                return Err(format!(
                    "parameter {i}: scalar state '{key}' is {v}; only finite values can be saved"
                ));
            }
        }
        let meta = Meta {
            format_version: FORMAT_VERSION,
            optimizer: self.optimizer.clone(),
            groups: self.groups.clone(),
            scalars: self
                .state
                .iter()
                .map(|(i, r)| (*i, r.scalars.clone()))
                .collect(),
        };
        let meta =
            serde_json::to_string(&meta).map_err(|e| format!("cannot encode the header: {e}"))?;
        let mut tensors = BTreeMap::new();
        for (i, rec) in &self.state {
            for (key, t) in &rec.tensors {
                if key.contains('.') {
                    return Err(format!("state buffer name '{key}' contains a '.'"));
                }
                tensors.insert(format!("state.{i}.{key}"), t.clone());
            }
        }
        let file = TensorFile {
            tensors,
            metadata: BTreeMap::from([(META_KEY.to_string(), meta)]),
        };
        file.to_bytes().map_err(|e| e.to_string())
    }

    fn from_bytes(bytes: &[u8]) -> Result<StateDict, String> {
        let file = TensorFile::from_bytes(bytes).map_err(|e| e.to_string())?;
        let meta_json = file
            .metadata
            .get(META_KEY)
            .ok_or_else(|| format!("the header has no '{META_KEY}' metadata"))?;
        let meta: Meta = serde_json::from_str(meta_json)
            .map_err(|e| format!("bad '{META_KEY}' metadata: {e}"))?;
        if meta.format_version != FORMAT_VERSION {
            return Err(format!(
                "format version {} (this build reads {FORMAT_VERSION})",
                meta.format_version
            ));
        }
        let mut state: BTreeMap<usize, ParamRecord> = meta
            .scalars
            .into_iter()
            .map(|(i, scalars)| {
                (
                    i,
                    ParamRecord {
                        scalars,
                        tensors: BTreeMap::new(),
                    },
                )
            })
            .collect();
        for (name, t) in file.tensors {
            let (index, key) = name
                .strip_prefix("state.")
                .and_then(|rest| rest.split_once('.'))
                .ok_or_else(|| {
                    format!(
                        "unexpected tensor '{name}' (state tensors are 'state.<index>.<buffer>')"
                    )
                })?;
            // Only the canonical spelling, so that "state.07.x" cannot shadow "state.7.x".
            let index: usize = index
                .parse()
                .ok()
                .filter(|i: &usize| i.to_string() == index)
                .ok_or_else(|| format!("tensor '{name}': '{index}' is not a parameter index"))?;
            let rec = state.get_mut(&index).ok_or_else(|| {
                format!("tensor '{name}' belongs to parameter {index}, which has no state entry")
            })?;
            rec.tensors.insert(key.to_string(), t);
        }
        Ok(StateDict {
            optimizer: meta.optimizer,
            groups: meta.groups,
            state,
        })
    }
}
