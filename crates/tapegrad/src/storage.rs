//! `Data`, the one value type behind a tensor: one variant per dtype, the float ones
//! holding typed values ([`Values`]: a computed array or a deferred elementwise
//! expression), `I64` and `Bool` a computed array; and `dispatch!`, the one macro that
//! runs generic code on the typed values.
//!
//! A new dtype is one variant here, one arm in each form of `dispatch!` and its `From`
//! impls; kernels never see `Data` (they take and return `Values<T>` and arrays).

use ndarray::{ArcArray, IxDyn};

use crate::dtype::{DType, Scalar};
use crate::kernels::buffers;
use crate::kernels::fused::Values;
use crate::shape::Shape;

/// A tensor's values, of any dtype, computed or deferred.
#[derive(Clone)]
pub(crate) enum Data {
    F32(Values<f32>),
    F64(Values<f64>),
    I64(ArcArray<i64, IxDyn>),
    Bool(ArcArray<bool, IxDyn>),
}

/// The panic of a float-only kernel given an integer or bool tensor. Ops check their
/// inputs first with an op-specific message (`ops::check_float`); this is the backstop.
#[track_caller]
#[cold]
pub(crate) fn not_float(dtypes: &[DType]) -> ! {
    panic!("this op needs float tensors (f32 or f64), got {dtypes:?}; convert with to_dtype")
}

/// `dispatch!(data, |a| body)` runs `body` with `a` bound to the typed [`Values`] of
/// float `data` and `E` to its element type; `dispatch!((d1, d2), |a, b| body)` and
/// `dispatch!((d1, d2, d3), |a, b, c| body)` do the same for operands of one dtype
/// (callers check dtypes first: a mismatch here is a bug). These forms are for float
/// kernels: `I64`/`Bool` data panics (`not_float`). `dispatch!(any data, |a| body)`
/// runs on every dtype with `a` the computed `ArcArray<E, IxDyn>` (`E: Scalar`), for
/// layout ops (reshape, permute, gather, ...) that only move elements, and comparisons;
/// `dispatch!(any (d1, d2), |a, b| body)` likewise for two operands of one dtype. A body that
/// makes new values wraps them with `Data::from`.
macro_rules! dispatch {
    (any $d:expr, |$a:ident| $body:expr) => {
        match $d {
            $crate::storage::Data::F32(v) => {
                #[allow(dead_code)]
                type E = f32;
                let $a = v.force().into_owned();
                $body
            }
            $crate::storage::Data::F64(v) => {
                #[allow(dead_code)]
                type E = f64;
                let $a = v.force().into_owned();
                $body
            }
            $crate::storage::Data::I64($a) => {
                #[allow(dead_code)]
                type E = i64;
                $body
            }
            $crate::storage::Data::Bool($a) => {
                #[allow(dead_code)]
                type E = bool;
                $body
            }
        }
    };
    ($d:expr, |$a:ident| $body:expr) => {
        match $d {
            $crate::storage::Data::F32($a) => {
                #[allow(dead_code)]
                type E = f32;
                $body
            }
            $crate::storage::Data::F64($a) => {
                #[allow(dead_code)]
                type E = f64;
                $body
            }
            other => $crate::storage::not_float(&[other.dtype()]),
        }
    };
    (any ($d1:expr, $d2:expr), |$a:ident, $b:ident| $body:expr) => {
        match ($d1, $d2) {
            ($crate::storage::Data::F32(x), $crate::storage::Data::F32(y)) => {
                #[allow(dead_code)]
                type E = f32;
                let ($a, $b) = (x.force().into_owned(), y.force().into_owned());
                $body
            }
            ($crate::storage::Data::F64(x), $crate::storage::Data::F64(y)) => {
                #[allow(dead_code)]
                type E = f64;
                let ($a, $b) = (x.force().into_owned(), y.force().into_owned());
                $body
            }
            ($crate::storage::Data::I64($a), $crate::storage::Data::I64($b)) => {
                #[allow(dead_code)]
                type E = i64;
                $body
            }
            ($crate::storage::Data::Bool($a), $crate::storage::Data::Bool($b)) => {
                #[allow(dead_code)]
                type E = bool;
                $body
            }
            (x, y) => unreachable!(
                "dtype mismatch {} vs {} reached a kernel",
                x.dtype(),
                y.dtype()
            ),
        }
    };
    (($d1:expr, $d2:expr), |$a:ident, $b:ident| $body:expr) => {
        match ($d1, $d2) {
            ($crate::storage::Data::F32($a), $crate::storage::Data::F32($b)) => {
                #[allow(dead_code)]
                type E = f32;
                $body
            }
            ($crate::storage::Data::F64($a), $crate::storage::Data::F64($b)) => {
                #[allow(dead_code)]
                type E = f64;
                $body
            }
            (x, y) => $crate::storage::not_float(&[x.dtype(), y.dtype()]),
        }
    };
    (($d1:expr, $d2:expr, $d3:expr), |$a:ident, $b:ident, $c:ident| $body:expr) => {
        match ($d1, $d2, $d3) {
            (
                $crate::storage::Data::F32($a),
                $crate::storage::Data::F32($b),
                $crate::storage::Data::F32($c),
            ) => {
                #[allow(dead_code)]
                type E = f32;
                $body
            }
            (
                $crate::storage::Data::F64($a),
                $crate::storage::Data::F64($b),
                $crate::storage::Data::F64($c),
            ) => {
                #[allow(dead_code)]
                type E = f64;
                $body
            }
            (x, y, z) => $crate::storage::not_float(&[x.dtype(), y.dtype(), z.dtype()]),
        }
    };
}
pub(crate) use dispatch;

impl Data {
    /// Wraps a computed array of a generic element type.
    pub(crate) fn from_array<T: Scalar>(a: ArcArray<T, IxDyn>) -> Data {
        // Moves `a` into the variant of its type; no allocation, no copy.
        let mut slot = Some(a);
        let any: &mut dyn std::any::Any = &mut slot;
        if let Some(a) = any.downcast_mut::<Option<ArcArray<f32, IxDyn>>>() {
            return Data::from(a.take().expect("set above"));
        }
        if let Some(a) = any.downcast_mut::<Option<ArcArray<f64, IxDyn>>>() {
            return Data::from(a.take().expect("set above"));
        }
        if let Some(a) = any.downcast_mut::<Option<ArcArray<i64, IxDyn>>>() {
            return Data::I64(a.take().expect("set above"));
        }
        if let Some(a) = any.downcast_mut::<Option<ArcArray<bool, IxDyn>>>() {
            return Data::Bool(a.take().expect("set above"));
        }
        unreachable!("Scalar is sealed: f32, f64, i64 or bool")
    }

    pub(crate) fn dtype(&self) -> DType {
        match self {
            Data::F32(_) => DType::F32,
            Data::F64(_) => DType::F64,
            Data::I64(_) => DType::I64,
            Data::Bool(_) => DType::Bool,
        }
    }

    pub(crate) fn shape(&self) -> Shape {
        match self {
            Data::F32(v) => Shape::from_slice(v.shape()),
            Data::F64(v) => Shape::from_slice(v.shape()),
            Data::I64(a) => Shape::from_slice(a.shape()),
            Data::Bool(a) => Shape::from_slice(a.shape()),
        }
    }

    /// The same values, computed (a deferred expression is computed now, once: later
    /// readers of the expression share the result).
    pub(crate) fn force(&self) -> Data {
        dispatch!(any self.clone(), |a| Data::from_array(a))
    }

    /// Whether the values are a computed array (not an expression, even a computed one).
    pub(crate) fn is_ready(&self) -> bool {
        match self {
            Data::F32(v) => matches!(v, Values::Ready(_)),
            Data::F64(v) => matches!(v, Values::Ready(_)),
            Data::I64(_) | Data::Bool(_) => true,
        }
    }

    /// The computed array of element type `T` (`None` for another type or an expression).
    pub(crate) fn array<T: Scalar>(&self) -> Option<&ArcArray<T, IxDyn>> {
        let any: &dyn std::any::Any = match self {
            Data::F32(Values::Ready(a)) => a,
            Data::F64(Values::Ready(a)) => a,
            Data::I64(a) => a,
            Data::Bool(a) => a,
            Data::F32(Values::Lazy(_)) | Data::F64(Values::Lazy(_)) => return None,
        };
        any.downcast_ref()
    }

    pub(crate) fn array_mut<T: Scalar>(&mut self) -> Option<&mut ArcArray<T, IxDyn>> {
        let any: &mut dyn std::any::Any = match self {
            Data::F32(Values::Ready(a)) => a,
            Data::F64(Values::Ready(a)) => a,
            Data::I64(a) => a,
            Data::Bool(a) => a,
            Data::F32(Values::Lazy(_)) | Data::F64(Values::Lazy(_)) => return None,
        };
        any.downcast_mut()
    }

    /// Whether it is a deferred expression not yet computed.
    pub(crate) fn is_pending(&self) -> bool {
        match self {
            Data::F32(v) => v.is_pending(),
            Data::F64(v) => v.is_pending(),
            Data::I64(_) | Data::Bool(_) => false,
        }
    }

    /// Whether, saved for backward, it may stay deferred (see `Values::keep_lazy_when_saved`).
    pub(crate) fn keep_lazy_when_saved(&self) -> bool {
        match self {
            Data::F32(v) => v.keep_lazy_when_saved(),
            Data::F64(v) => v.keep_lazy_when_saved(),
            Data::I64(_) | Data::Bool(_) => true,
        }
    }

    /// Hands a large computed float buffer that nothing else holds back to the buffer
    /// cache (`kernels::buffers`), for the next kernel output of its size. Integer and
    /// bool buffers are simply freed.
    pub(crate) fn recycle(self) {
        match self {
            Data::F32(v) => {
                if let Some(a) = v.into_array() {
                    buffers::recycle(a)
                }
            }
            Data::F64(v) => {
                if let Some(a) = v.into_array() {
                    buffers::recycle(a)
                }
            }
            Data::I64(_) | Data::Bool(_) => {}
        }
    }

    /// The values converted to `dtype`, PyTorch's way: bool to number gives 0/1, number
    /// to bool is "non-zero" (NaN is non-zero), float to `i64` truncates toward zero
    /// (saturating at the `i64` range, NaN gives 0).
    pub(crate) fn convert(&self, dtype: DType) -> Data {
        if dtype == self.dtype() {
            return self.clone();
        }
        dispatch!(any self.clone(), |a| match dtype {
            DType::F32 => Data::from(a.mapv(|x| Cast::to_f64(x) as f32).into_shared()),
            DType::F64 => Data::from(a.mapv(Cast::to_f64).into_shared()),
            DType::I64 => Data::I64(a.mapv(Cast::to_i64).into_shared()),
            DType::Bool => Data::Bool(a.mapv(Cast::to_bool).into_shared()),
        })
    }
}

/// Exact conversions between the four element types (`to_dtype`'s kernel).
trait Cast: Copy {
    fn to_f64(self) -> f64;
    fn to_i64(self) -> i64;
    fn to_bool(self) -> bool;
}

impl Cast for f32 {
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn to_i64(self) -> i64 {
        self as i64
    }
    fn to_bool(self) -> bool {
        self != 0.0
    }
}

impl Cast for f64 {
    fn to_f64(self) -> f64 {
        self
    }
    fn to_i64(self) -> i64 {
        self as i64
    }
    fn to_bool(self) -> bool {
        self != 0.0
    }
}

impl Cast for i64 {
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn to_i64(self) -> i64 {
        self
    }
    fn to_bool(self) -> bool {
        self != 0
    }
}

impl Cast for bool {
    fn to_f64(self) -> f64 {
        self as u8 as f64
    }
    fn to_i64(self) -> i64 {
        self as i64
    }
    fn to_bool(self) -> bool {
        self
    }
}

impl From<Values<f32>> for Data {
    fn from(v: Values<f32>) -> Data {
        Data::F32(v)
    }
}

impl From<Values<f64>> for Data {
    fn from(v: Values<f64>) -> Data {
        Data::F64(v)
    }
}

impl From<ArcArray<f32, IxDyn>> for Data {
    fn from(a: ArcArray<f32, IxDyn>) -> Data {
        Data::F32(Values::Ready(a))
    }
}

impl From<ArcArray<f64, IxDyn>> for Data {
    fn from(a: ArcArray<f64, IxDyn>) -> Data {
        Data::F64(Values::Ready(a))
    }
}

impl From<ArcArray<i64, IxDyn>> for Data {
    fn from(a: ArcArray<i64, IxDyn>) -> Data {
        Data::I64(a)
    }
}

impl From<ArcArray<bool, IxDyn>> for Data {
    fn from(a: ArcArray<bool, IxDyn>) -> Data {
        Data::Bool(a)
    }
}
