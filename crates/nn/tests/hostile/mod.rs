//! Hostile safetensors files for the reader fuzz tests (weights here, optimiser state in
//! `crates/optim/tests/state_fuzz.rs`, which includes this file): proptest strategies of
//! arbitrary bytes and of valid files mutated (truncated, bits flipped, the header length
//! replaced, the header JSON edited), and a per-thread counting allocator that measures the
//! peak heap a reader uses.
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use proptest::prelude::*;
use serde_json::{json, Map, Value};

/// A global allocator that keeps, per thread, the bytes live and their peak, so that a
/// test measures only what its own thread allocates while other tests run.
pub struct Counting;

thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn grow(bytes: usize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + bytes;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

fn shrink(bytes: usize) {
    let _ = LIVE.try_with(|live| live.set(live.get().saturating_sub(bytes)));
}

// SAFETY: every call is forwarded unchanged to the system allocator; the bookkeeping only
// touches `const`-initialised thread-locals without destructors, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grow(layout.size());
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        grow(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        shrink(layout.size());
        // SAFETY: `ptr` was allocated by `System` with `layout` (every allocation goes
        // through the functions above).
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        shrink(layout.size());
        grow(new_size);
        // SAFETY: as for `dealloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Runs `f` and returns its result and the most heap this thread held during it beyond
/// what it held before.
pub fn peak_heap_of<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let start = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(start));
    let r = f();
    (r, PEAK.with(Cell::get) - start)
}

/// The most heap a reader may use for a file of `len` bytes: the file itself, its decoded
/// tensors, the parsed header (a few times its text) and a fixed allowance for paths,
/// messages and maps.
pub fn heap_bound(len: usize) -> usize {
    16 * len + (256 << 10)
}

/// A valid file split into its parts.
#[derive(Clone, Debug)]
pub struct Parts {
    pub header: Map<String, Value>,
    pub data: Vec<u8>,
}

/// Splits a valid safetensors file.
pub fn split(bytes: &[u8]) -> Parts {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = serde_json::from_slice(&bytes[8..8 + n]).expect("a valid file's header");
    Parts {
        header,
        data: bytes[8 + n..].to_vec(),
    }
}

/// The file of `header` and `data`, with the true header length.
pub fn join(header: &Map<String, Value>, data: &[u8]) -> Vec<u8> {
    let text = serde_json::to_vec(header).unwrap();
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend(text);
    out.extend(data);
    out
}

/// Numbers worth trying as lengths, offsets and header lengths: small ones (inside the
/// fixtures' few hundred bytes), and the edges of 32- and 64-bit arithmetic.
pub fn number() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => 0u64..300,
        1 => Just(1u64 << 31),
        1 => Just(1u64 << 32),
        1 => Just(1u64 << 62),
        1 => Just(1u64 << 63),
        1 => Just(isize::MAX as u64),
        1 => Just(u64::MAX),
        1 => any::<u64>(),
    ]
}

/// Huge lengths: 2^31, 2^32, 2^62, 2^63, isize::MAX, u64::MAX.
fn huge() -> impl Strategy<Value = u64> {
    prop::sample::select(vec![
        1u64 << 31,
        1 << 32,
        1 << 62,
        1 << 63,
        isize::MAX as u64,
        u64::MAX,
    ])
}

/// Shapes worth trying: small lengths mixed with huge ones, and empty shapes (a length 0)
/// whose other lengths overflow, which pass safetensors' size check with zero bytes.
pub fn shape() -> impl Strategy<Value = Vec<u64>> {
    prop_oneof![
        2 => prop::collection::vec(prop_oneof![3 => 0u64..4, 1 => huge()], 0..5),
        1 => (prop::collection::vec(huge(), 1..4), any::<prop::sample::Index>()).prop_map(
            |(mut dims, at)| {
                dims.insert(at.index(dims.len() + 1), 0);
                dims
            }
        ),
    ]
}

/// JSON values of every type, for fields that expect another.
pub fn json_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        Just(json!(-1)),
        Just(json!(1.5)),
        Just(json!(1e300)),
        Just(json!(true)),
        Just(json!("F32")),
        Just(json!("")),
        Just(json!([])),
        Just(json!([1, 2, 3])),
        Just(json!([[1]])),
        Just(json!({})),
        number().prop_map(Value::from),
    ]
}

/// Names worth trying: reserved, empty, a model's, an optimiser state's, malformed ones.
pub fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("__metadata__".to_string()),
        Just("weight".to_string()),
        Just("0.weight".to_string()),
        Just("state.0.exp_avg".to_string()),
        Just("state.1.exp_avg_sq".to_string()),
        Just("state.x.exp_avg".to_string()),
        Just("state.07.exp_avg".to_string()),
        Just("state.18446744073709551615.exp_avg".to_string()),
        Just("state.99999999999999999999999.exp_avg".to_string()),
        Just("state.0".to_string()),
        "[a-z._0-9]{0,12}",
    ]
}

/// One edit of a header. `tensor` picks a tensor entry by position (modulo their count).
#[derive(Clone, Debug)]
pub enum Edit {
    Offsets {
        tensor: usize,
        start: u64,
        end: u64,
    },
    Shape {
        tensor: usize,
        shape: Vec<u64>,
    },
    DType {
        tensor: usize,
        dtype: &'static str,
    },
    Rename {
        tensor: usize,
        name: String,
    },
    Remove {
        tensor: usize,
    },
    Copy {
        tensor: usize,
        name: String,
    },
    Field {
        tensor: usize,
        field: &'static str,
        value: Value,
    },
    Metadata {
        key: String,
        value: Value,
    },
    Top {
        key: String,
        value: Value,
    },
}

pub fn edit() -> impl Strategy<Value = Edit> {
    let t = 0usize..8;
    prop_oneof![
        2 => (t.clone(), number(), number()).prop_map(|(tensor, start, end)| Edit::Offsets {
            tensor,
            start,
            end
        }),
        3 => (t.clone(), shape()).prop_map(|(tensor, shape)| Edit::Shape { tensor, shape }),
        1 => (
            t.clone(),
            prop::sample::select(vec![
                "F32", "F64", "F16", "BF16", "I64", "I32", "U8", "BOOL", "F8_E4M3", "f32", "X", ""
            ])
        )
            .prop_map(|(tensor, dtype)| Edit::DType { tensor, dtype }),
        1 => (t.clone(), name()).prop_map(|(tensor, name)| Edit::Rename { tensor, name }),
        1 => t.clone().prop_map(|tensor| Edit::Remove { tensor }),
        1 => (t.clone(), name()).prop_map(|(tensor, name)| Edit::Copy { tensor, name }),
        1 => (
            t,
            prop::sample::select(vec!["dtype", "shape", "data_offsets", "extra"]),
            json_value()
        )
            .prop_map(|(tensor, field, value)| Edit::Field {
                tensor,
                field,
                value
            }),
        1 => (name(), json_value()).prop_map(|(key, value)| Edit::Metadata { key, value }),
        1 => (name(), json_value()).prop_map(|(key, value)| Edit::Top { key, value }),
    ]
}

fn tensor_names(header: &Map<String, Value>) -> Vec<String> {
    header
        .keys()
        .filter(|k| *k != "__metadata__")
        .cloned()
        .collect()
}

impl Edit {
    pub fn apply(&self, header: &mut Map<String, Value>) {
        let names = tensor_names(header);
        let pick = |i: usize| names.get(i % names.len().max(1)).cloned();
        let entry = |header: &mut Map<String, Value>, i: usize| {
            pick(i).and_then(|n| header.get_mut(&n).and_then(Value::as_object_mut).cloned())
        };
        match self {
            Edit::Offsets { tensor, start, end } => {
                if let (Some(n), Some(mut e)) = (pick(*tensor), entry(header, *tensor)) {
                    e.insert("data_offsets".into(), json!([start, end]));
                    header.insert(n, Value::Object(e));
                }
            }
            Edit::Shape { tensor, shape } => {
                if let (Some(n), Some(mut e)) = (pick(*tensor), entry(header, *tensor)) {
                    e.insert("shape".into(), json!(shape));
                    header.insert(n, Value::Object(e));
                }
            }
            Edit::DType { tensor, dtype } => {
                if let (Some(n), Some(mut e)) = (pick(*tensor), entry(header, *tensor)) {
                    e.insert("dtype".into(), json!(dtype));
                    header.insert(n, Value::Object(e));
                }
            }
            Edit::Field {
                tensor,
                field,
                value,
            } => {
                if let (Some(n), Some(mut e)) = (pick(*tensor), entry(header, *tensor)) {
                    e.insert(field.to_string(), value.clone());
                    header.insert(n, Value::Object(e));
                }
            }
            Edit::Rename { tensor, name } => {
                if let Some(n) = pick(*tensor) {
                    let v = header.remove(&n).expect("picked from the header");
                    header.insert(name.clone(), v);
                }
            }
            Edit::Remove { tensor } => {
                if let Some(n) = pick(*tensor) {
                    header.remove(&n);
                }
            }
            Edit::Copy { tensor, name } => {
                if let Some(n) = pick(*tensor) {
                    let v = header[n.as_str()].clone();
                    header.insert(name.clone(), v);
                }
            }
            Edit::Metadata { key, value } => {
                let meta = header.entry("__metadata__").or_insert_with(|| json!({}));
                if let Some(m) = meta.as_object_mut() {
                    m.insert(key.clone(), value.clone());
                } else {
                    *meta = value.clone();
                }
            }
            Edit::Top { key, value } => {
                header.insert(key.clone(), value.clone());
            }
        }
    }
}

fn dtype_size(dtype: &str) -> Option<u64> {
    Some(match dtype {
        "F64" | "I64" | "U64" => 8,
        "F32" | "I32" | "U32" => 4,
        "F16" | "BF16" | "I16" | "U16" => 2,
        "BOOL" | "U8" | "I8" | "F8_E4M3" | "F8_E5M2" => 1,
        _ => return None,
    })
}

/// Lays the tensors out again one after the other (in their current offset order) with
/// the byte lengths their shapes and dtypes need, and data of that length, so that an
/// edited header can pass safetensors' own checks and reach tapegrad's. Gives up (returns
/// `None`) when an entry is not well formed or the data would exceed 64 KiB.
pub fn relayout(header: &Map<String, Value>) -> Option<(Map<String, Value>, Vec<u8>)> {
    let mut entries: Vec<(String, Map<String, Value>, u64)> = Vec::new();
    for name in tensor_names(header) {
        let e = header[name.as_str()].as_object()?.clone();
        let start = e.get("data_offsets")?.get(0)?.as_u64()?;
        entries.push((name, e, start));
    }
    entries.sort_by_key(|(_, _, start)| *start);
    let mut out = header.clone();
    let mut offset = 0u64;
    for (name, mut e, _) in entries {
        let size = dtype_size(e.get("dtype")?.as_str()?)?;
        let dims: Vec<u64> = e
            .get("shape")?
            .as_array()?
            .iter()
            .map(Value::as_u64)
            .collect::<Option<_>>()?;
        let bytes = dims
            .iter()
            .try_fold(size, |n, &d| n.checked_mul(d))
            .filter(|&b| b <= 1 << 16)?;
        e.insert("data_offsets".into(), json!([offset, offset + bytes]));
        out.insert(name, Value::Object(e));
        offset += bytes;
    }
    if offset > 1 << 16 {
        return None;
    }
    let data = (0..offset).map(|i| (i * 37 % 251) as u8).collect();
    Some((out, data))
}

/// How a valid file is damaged.
#[derive(Clone, Debug)]
pub enum Damage {
    /// Keep the first `at` bytes (`at` taken modulo the length + 1).
    Truncate { at: usize },
    /// Flip these bits (byte index modulo the length, bit).
    FlipBits(Vec<(usize, u8)>),
    /// Replace the 8-byte header length.
    HeaderLength(u64),
    /// Replace the header length by the true one plus or minus a little.
    HeaderLengthOff(i64),
    /// Edit the header JSON; `relayout` then makes offsets and data fit the new shapes;
    /// `data_delta` then adds (positive) or cuts (negative) data bytes.
    Header {
        edits: Vec<Edit>,
        relayout: bool,
        data_delta: i64,
    },
    /// Append bytes.
    Append(Vec<u8>),
}

pub fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        1 => any::<usize>().prop_map(|at| Damage::Truncate { at }),
        1 => prop::collection::vec((any::<usize>(), 0u8..8), 1..4).prop_map(Damage::FlipBits),
        1 => number().prop_map(Damage::HeaderLength),
        1 => (-16i64..16).prop_map(Damage::HeaderLengthOff),
        4 => (
            prop::collection::vec(edit(), 1..4),
            prop_oneof![3 => Just(true), 1 => Just(false)],
            prop_oneof![3 => Just(0i64), 1 => -8i64..8]
        )
            .prop_map(|(edits, relayout, data_delta)| Damage::Header {
                edits,
                relayout,
                data_delta
            }),
        1 => prop::collection::vec(any::<u8>(), 1..16).prop_map(Damage::Append),
    ]
}

impl Damage {
    /// The damaged copy of the valid file `valid`.
    pub fn apply(&self, valid: &[u8]) -> Vec<u8> {
        let mut bytes = valid.to_vec();
        match self {
            Damage::Truncate { at } => bytes.truncate(at % (bytes.len() + 1)),
            Damage::FlipBits(flips) => {
                for &(i, bit) in flips {
                    let i = i % bytes.len();
                    bytes[i] ^= 1 << bit;
                }
            }
            Damage::HeaderLength(n) => bytes[..8].copy_from_slice(&n.to_le_bytes()),
            Damage::HeaderLengthOff(d) => {
                let n = u64::from_le_bytes(bytes[..8].try_into().unwrap());
                bytes[..8].copy_from_slice(&n.wrapping_add_signed(*d).to_le_bytes());
            }
            Damage::Header {
                edits,
                relayout: re,
                data_delta,
            } => {
                let Parts {
                    mut header,
                    mut data,
                } = split(valid);
                for e in edits {
                    e.apply(&mut header);
                }
                if *re {
                    if let Some((h, d)) = relayout(&header) {
                        header = h;
                        data = d;
                    }
                }
                if *data_delta < 0 {
                    data.truncate(
                        data.len()
                            .saturating_sub(data_delta.unsigned_abs() as usize),
                    );
                } else {
                    data.extend(std::iter::repeat_n(0x5a, *data_delta as usize));
                }
                bytes = join(&header, &data);
            }
            Damage::Append(extra) => bytes.extend(extra),
        }
        bytes
    }
}

/// Arbitrary bytes, half of them behind a plausible header length.
pub fn arbitrary_file() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..400),
        (0u64..400, prop::collection::vec(any::<u8>(), 0..400)).prop_map(|(n, rest)| {
            let mut out = n.to_le_bytes().to_vec();
            out.extend(rest);
            out
        }),
        // A header of JSON-ish text.
        "[{}\\[\\]\":,a-zF0-9_ ]{0,200}".prop_map(|text| {
            let mut out = (text.len() as u64).to_le_bytes().to_vec();
            out.extend(text.as_bytes());
            out
        }),
    ]
}
