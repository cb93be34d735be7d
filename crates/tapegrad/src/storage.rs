//! `Data`, the one value type behind a tensor: one variant per dtype, each holding the
//! typed values ([`Values`]: a computed array or a deferred elementwise expression), and
//! `dispatch!`, the one macro that runs generic code on the typed values.
//!
//! A new dtype is one variant here, one arm in each form of `dispatch!` and its `From`
//! impls; kernels never see `Data` (they take and return `Values<T>` and arrays).

use ndarray::{ArcArray, IxDyn};

use crate::dtype::{DType, Element};
use crate::kernels::buffers;
use crate::kernels::fused::Values;
use crate::shape::Shape;

/// A tensor's values, of any dtype, computed or deferred.
#[derive(Clone)]
pub(crate) enum Data {
    F32(Values<f32>),
    F64(Values<f64>),
}

/// `dispatch!(data, |a| body)` runs `body` with `a` bound to the typed [`Values`] of
/// `data` and `E` to its element type; `dispatch!((d1, d2), |a, b| body)` and
/// `dispatch!((d1, d2, d3), |a, b, c| body)` do the same for operands of one dtype
/// (callers check dtypes first: a mismatch here is a bug). A body that makes new values
/// wraps them with `Data::from`.
macro_rules! dispatch {
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
            _ => unreachable!("dtype mismatch reached a kernel"),
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
            _ => unreachable!("dtype mismatch reached a kernel"),
        }
    };
}
pub(crate) use dispatch;

impl Data {
    /// Wraps a computed array of a generic element type.
    pub(crate) fn from_array<T: Element>(a: ArcArray<T, IxDyn>) -> Data {
        // Moves `a` into the variant of its type; no allocation, no copy.
        let mut slot = Some(a);
        let any: &mut dyn std::any::Any = &mut slot;
        if let Some(a) = any.downcast_mut::<Option<ArcArray<f32, IxDyn>>>() {
            return Data::from(a.take().expect("set above"));
        }
        if let Some(a) = any.downcast_mut::<Option<ArcArray<f64, IxDyn>>>() {
            return Data::from(a.take().expect("set above"));
        }
        unreachable!("Element is sealed: f32 or f64")
    }

    pub(crate) fn dtype(&self) -> DType {
        match self {
            Data::F32(_) => DType::F32,
            Data::F64(_) => DType::F64,
        }
    }

    pub(crate) fn shape(&self) -> Shape {
        dispatch!(self, |v| Shape::from_slice(v.shape()))
    }

    /// The same values, computed (a deferred expression is computed now, once: later
    /// readers of the expression share the result).
    pub(crate) fn force(&self) -> Data {
        dispatch!(self, |v| Data::from(v.force().into_owned()))
    }

    /// Whether the values are a computed array (not an expression, even a computed one).
    pub(crate) fn is_ready(&self) -> bool {
        dispatch!(self, |v| matches!(v, Values::Ready(_)))
    }

    /// The computed array of element type `T` (`None` for another type or an expression).
    pub(crate) fn array<T: Element>(&self) -> Option<&ArcArray<T, IxDyn>> {
        dispatch!(self, |v| match v {
            Values::Ready(a) => (a as &dyn std::any::Any).downcast_ref(),
            Values::Lazy(_) => None,
        })
    }

    pub(crate) fn array_mut<T: Element>(&mut self) -> Option<&mut ArcArray<T, IxDyn>> {
        dispatch!(self, |v| match v {
            Values::Ready(a) => (a as &mut dyn std::any::Any).downcast_mut(),
            Values::Lazy(_) => None,
        })
    }

    /// Whether it is a deferred expression not yet computed.
    pub(crate) fn is_pending(&self) -> bool {
        dispatch!(self, |v| v.is_pending())
    }

    /// Whether, saved for backward, it may stay deferred (see `Values::keep_lazy_when_saved`).
    pub(crate) fn keep_lazy_when_saved(&self) -> bool {
        dispatch!(self, |v| v.keep_lazy_when_saved())
    }

    /// Hands a large computed buffer that nothing else holds back to the buffer cache
    /// (`kernels::buffers`), for the next kernel output of its size.
    pub(crate) fn recycle(self) {
        dispatch!(self, |v| if let Some(a) = v.into_array() {
            buffers::recycle(a)
        })
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
