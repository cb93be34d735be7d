//! Pure array kernels: ndarray + rayon, generic over [`Element`](crate::Element), no
//! knowledge of the tape. Ops call these for their forward values.

pub(crate) mod attention;
pub(crate) mod buffers;
pub(crate) mod conv;
pub(crate) mod elementwise;
pub(crate) mod fused;
pub(crate) mod index;
pub(crate) mod layout;
pub(crate) mod logic;
pub(crate) mod lstm;
pub(crate) mod matmul;
pub(crate) mod reduce;
pub(crate) mod sgemm;
pub(crate) mod simd;

/// Arrays with at least this many elements are processed in parallel with rayon; below
/// it the fork-join overhead outweighs the gain (see `benches/`).
pub(crate) const PAR_THRESHOLD: usize = 1 << 15;
