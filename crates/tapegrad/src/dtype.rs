//! Runtime element types (`DType`) and the sealed `Element` trait the kernels are generic over.

use std::fmt;

/// The element type of a tensor, chosen at run time.
///
/// Ops require all their inputs to share one dtype; convert with
/// [`Tensor::to_dtype`](crate::Tensor::to_dtype).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// 32-bit IEEE float (the default, as in PyTorch).
    F32,
    /// 64-bit IEEE float (what the gradient checker uses).
    F64,
    /// 64-bit signed integer (indices, class targets). Never differentiable.
    I64,
    /// Boolean (comparison results, masks). Never differentiable.
    Bool,
}

impl DType {
    /// Size of one element in bytes.
    pub fn size_in_bytes(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F64 => 8,
            DType::I64 => 8,
            DType::Bool => 1,
        }
    }

    /// Whether this is a float dtype (the only ones that can require grad).
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64)
    }

    /// The relative spacing of floats near 1 (machine epsilon); 1 for `I64`, and 1 for
    /// `Bool` too (the spacing of its 0/1 values).
    pub fn epsilon(self) -> f64 {
        match self {
            DType::F32 => f32::EPSILON as f64,
            DType::F64 => f64::EPSILON,
            DType::I64 | DType::Bool => 1.0,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::I64 => "i64",
            DType::Bool => "bool",
        })
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
    impl Sealed for i64 {}
    impl Sealed for bool {}
}

/// A type a tensor can hold: `f32`, `f64`, `i64` or `bool`. Sealed. Creation
/// ([`Tensor::from_vec`](crate::Tensor::from_vec)) and reading
/// ([`Tensor::to_vec`](crate::Tensor::to_vec)) are generic over it.
///
/// ```
/// use tapegrad::{DType, Tensor};
/// let t = Tensor::from_vec(vec![3i64, -1, 4], &[3]);
/// assert_eq!(t.dtype(), DType::I64);
/// assert_eq!(t.to_vec::<bool>(), vec![true, true, true]);
/// ```
pub trait Scalar: sealed::Sealed + Copy + PartialEq + fmt::Debug + Send + Sync + 'static {
    /// The runtime tag of this type.
    const DTYPE: DType;
    /// The value as `f64` (`bool`: 0 or 1; `i64`: rounded to nearest beyond 2^53).
    fn as_f64(self) -> f64;
}

impl Scalar for f32 {
    const DTYPE: DType = DType::F32;
    #[inline(always)]
    fn as_f64(self) -> f64 {
        self as f64
    }
}

impl Scalar for f64 {
    const DTYPE: DType = DType::F64;
    #[inline(always)]
    fn as_f64(self) -> f64 {
        self
    }
}

impl Scalar for i64 {
    const DTYPE: DType = DType::I64;
    #[inline(always)]
    fn as_f64(self) -> f64 {
        self as f64
    }
}

impl Scalar for bool {
    const DTYPE: DType = DType::Bool;
    #[inline(always)]
    fn as_f64(self) -> f64 {
        if self {
            1.0
        } else {
            0.0
        }
    }
}

/// A float type a tensor can hold: `f32` or `f64`. Sealed: kernels are written once,
/// generically, and dispatched once per op on the tensor's [`DType`].
pub trait Element:
    Scalar
    + num_traits::Float
    + num_traits::FromPrimitive
    + ndarray::LinalgScalar
    + ndarray::ScalarOperand
    + std::iter::Sum
    + std::ops::AddAssign
    + std::ops::SubAssign
    + std::ops::MulAssign
    + Default
    + fmt::Debug
    + fmt::Display
    + fmt::LowerExp
    + Send
    + Sync
    + 'static
{
    /// Converts from `f64`, rounding to nearest.
    fn of(v: f64) -> Self;
    /// The error function.
    fn erf(self) -> Self;
}

impl Element for f32 {
    #[inline(always)]
    fn of(v: f64) -> Self {
        v as f32
    }
    #[inline(always)]
    fn erf(self) -> Self {
        libm::erff(self)
    }
}

impl Element for f64 {
    #[inline(always)]
    fn of(v: f64) -> Self {
        v
    }
    #[inline(always)]
    fn erf(self) -> Self {
        libm::erf(self)
    }
}
