//! The dtype-tagged array behind a tensor, and the macros that dispatch a generic kernel
//! once per op on it.

use ndarray::{ArcArray, IxDyn};

use crate::dtype::{DType, Element};
use crate::shape::Shape;

/// A shared, copy-on-write n-d array of one of the supported element types.
#[derive(Clone)]
pub(crate) enum Storage {
    F32(ArcArray<f32, IxDyn>),
    F64(ArcArray<f64, IxDyn>),
}

impl Storage {
    pub(crate) fn dtype(&self) -> DType {
        match self {
            Storage::F32(_) => DType::F32,
            Storage::F64(_) => DType::F64,
        }
    }

    pub(crate) fn shape(&self) -> Shape {
        match self {
            Storage::F32(a) => Shape::from_slice(a.shape()),
            Storage::F64(a) => Shape::from_slice(a.shape()),
        }
    }

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

    pub(crate) fn array_mut<T: Element>(&mut self) -> Option<&mut ArcArray<T, IxDyn>> {
        match self {
            Storage::F32(a) => (a as &mut dyn std::any::Any).downcast_mut(),
            Storage::F64(a) => (a as &mut dyn std::any::Any).downcast_mut(),
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

pub(crate) use map_storage;
pub(crate) use visit_storage;
pub(crate) use zip_storage;
