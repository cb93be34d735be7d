//! The dtype-tagged array behind a tensor (`Storage`: computed; `Data`: computed or
//! deferred), and the macros that dispatch a generic kernel once per op on them.

use ndarray::{ArcArray, IxDyn};

use crate::dtype::{DType, Element};
use crate::kernels::fused::Values;
use crate::shape::Shape;

/// A shared, copy-on-write n-d array of one of the supported element types.
#[derive(Clone)]
pub(crate) enum Storage {
    F32(ArcArray<f32, IxDyn>),
    F64(ArcArray<f64, IxDyn>),
}

impl Storage {
    /// Wraps a generic array, dispatching on its element type.
    pub(crate) fn from_array<T: Element>(a: ArcArray<T, IxDyn>) -> Storage {
        let any: Box<dyn std::any::Any> = Box::new(a);
        match T::DTYPE {
            DType::F32 => Storage::F32(*any.downcast().expect("f32 storage")),
            DType::F64 => Storage::F64(*any.downcast().expect("f64 storage")),
        }
    }

    /// The array, if it holds elements of type `T`.
    pub(crate) fn array<T: Element>(&self) -> Option<&ArcArray<T, IxDyn>> {
        match self {
            Storage::F32(a) => (a as &dyn std::any::Any).downcast_ref(),
            Storage::F64(a) => (a as &dyn std::any::Any).downcast_ref(),
        }
    }
}

/// A tensor's values: a computed array, or a deferred elementwise expression (see
/// `kernels::fused`), of either element type.
#[derive(Clone)]
pub(crate) enum Data {
    F32(Values<f32>),
    F64(Values<f64>),
}

impl Data {
    pub(crate) fn dtype(&self) -> DType {
        match self {
            Data::F32(_) => DType::F32,
            Data::F64(_) => DType::F64,
        }
    }

    pub(crate) fn shape(&self) -> Shape {
        match self {
            Data::F32(v) => Shape::from_slice(v.shape()),
            Data::F64(v) => Shape::from_slice(v.shape()),
        }
    }

    /// The computed array (computing a deferred one now).
    pub(crate) fn force(&self) -> Storage {
        match self {
            Data::F32(v) => Storage::F32(v.force()),
            Data::F64(v) => Storage::F64(v.force()),
        }
    }

    /// The array, if this holds a computed array (not an expression, even a computed one).
    pub(crate) fn computed(&self) -> Option<Storage> {
        match self {
            Data::F32(Values::Ready(a)) => Some(Storage::F32(a.clone())),
            Data::F64(Values::Ready(a)) => Some(Storage::F64(a.clone())),
            _ => None,
        }
    }

    /// The computed array, taken out of a finished expression if nothing else holds it
    /// (for recycling its buffer).
    pub(crate) fn into_computed(self) -> Option<Storage> {
        match self {
            Data::F32(v) => v.into_computed().map(Storage::F32),
            Data::F64(v) => v.into_computed().map(Storage::F64),
        }
    }

    /// The computed array of element type `T` (`None` for another type or an expression).
    pub(crate) fn array<T: Element>(&self) -> Option<&ArcArray<T, IxDyn>> {
        match self {
            Data::F32(Values::Ready(a)) => (a as &dyn std::any::Any).downcast_ref(),
            Data::F64(Values::Ready(a)) => (a as &dyn std::any::Any).downcast_ref(),
            _ => None,
        }
    }

    pub(crate) fn array_mut<T: Element>(&mut self) -> Option<&mut ArcArray<T, IxDyn>> {
        match self {
            Data::F32(Values::Ready(a)) => (a as &mut dyn std::any::Any).downcast_mut(),
            Data::F64(Values::Ready(a)) => (a as &mut dyn std::any::Any).downcast_mut(),
            _ => None,
        }
    }

    /// Whether it is a deferred expression not yet computed.
    pub(crate) fn is_pending(&self) -> bool {
        match self {
            Data::F32(v) => v.is_pending(),
            Data::F64(v) => v.is_pending(),
        }
    }

    /// Whether, saved for backward, it may stay deferred (see `Values::keep_lazy_when_saved`).
    pub(crate) fn keep_lazy_when_saved(&self) -> bool {
        match self {
            Data::F32(v) => v.keep_lazy_when_saved(),
            Data::F64(v) => v.keep_lazy_when_saved(),
        }
    }
}

impl From<Storage> for Data {
    fn from(s: Storage) -> Data {
        match s {
            Storage::F32(a) => Data::F32(Values::Ready(a)),
            Storage::F64(a) => Data::F64(Values::Ready(a)),
        }
    }
}

/// `map_storage!(s, a => expr)`: evaluates `expr` with `a` bound to the typed array and
/// wraps the result (an `ArcArray`) in the same variant.
macro_rules! map_storage {
    ($s:expr, $a:ident => $body:expr) => {
        match $s {
            $crate::storage::Storage::F32($a) => $crate::storage::Storage::F32($body),
            $crate::storage::Storage::F64($a) => $crate::storage::Storage::F64($body),
        }
    };
}

/// `zip_storage!(s1, s2, (a, b) => expr)`: like `map_storage!` for two operands of the
/// same dtype. Callers check dtypes first; a mismatch here is a bug.
macro_rules! zip_storage {
    ($s1:expr, $s2:expr, ($a:ident, $b:ident) => $body:expr) => {
        match ($s1, $s2) {
            ($crate::storage::Storage::F32($a), $crate::storage::Storage::F32($b)) => {
                $crate::storage::Storage::F32($body)
            }
            ($crate::storage::Storage::F64($a), $crate::storage::Storage::F64($b)) => {
                $crate::storage::Storage::F64($body)
            }
            _ => unreachable!("dtype mismatch reached a kernel"),
        }
    };
}

/// `visit_storage!(s, a => expr)`: evaluates `expr` (any type) with the typed array.
macro_rules! visit_storage {
    ($s:expr, $a:ident => $body:expr) => {
        match $s {
            $crate::storage::Storage::F32($a) => $body,
            $crate::storage::Storage::F64($a) => $body,
        }
    };
}

/// `map_data!(d, a => expr)`: `map_storage!` over the typed `Values` of a `Data`.
macro_rules! map_data {
    ($s:expr, $a:ident => $body:expr) => {
        match $s {
            $crate::storage::Data::F32($a) => $crate::storage::Data::F32($body),
            $crate::storage::Data::F64($a) => $crate::storage::Data::F64($body),
        }
    };
}

/// `zip_data!(d1, d2, (a, b) => expr)`: `zip_storage!` over the typed `Values` of two
/// `Data` of one dtype.
macro_rules! zip_data {
    ($s1:expr, $s2:expr, ($a:ident, $b:ident) => $body:expr) => {
        match ($s1, $s2) {
            ($crate::storage::Data::F32($a), $crate::storage::Data::F32($b)) => {
                $crate::storage::Data::F32($body)
            }
            ($crate::storage::Data::F64($a), $crate::storage::Data::F64($b)) => {
                $crate::storage::Data::F64($body)
            }
            _ => unreachable!("dtype mismatch reached a kernel"),
        }
    };
}

pub(crate) use map_data;
pub(crate) use map_storage;
pub(crate) use visit_storage;
pub(crate) use zip_data;
pub(crate) use zip_storage;
