//! The buffer cache: large freed buffers, reused by the next kernel output of a similar
//! size. All buffer recycling goes through here ([`take`], [`give`], [`recycle`]).
//!
//! Why: a training step allocates and frees the same large arrays every iteration. The
//! system allocator returns big blocks to the kernel (glibc trims or unmaps anything over
//! a few MiB), so each new output page-faults its memory back in and the kernel zeroes it:
//! measured on W4 (`elementwise_big`, 4M floats) that was most of the time, and it came
//! and went with the allocator's heuristics (`docs/benchmarks.md`). Keeping a few freed
//! buffers here makes the cost flat, as PyTorch's caching allocator does for GPU memory.
//!
//! Only buffers of at least [`MIN_BYTES`] are kept, at most [`MAX_BUFFERS`] of them and
//! [`max_bytes`] in total (64 MiB by default; `TAPEGRAD_POOL_MB` sets it, 0 turns the
//! cache off). Buffers are handed out uninitialised; kernels write every element.

use std::any::Any;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use ndarray::{ArcArray, IxDyn};

/// Smallest buffer worth keeping: below this the allocator reuses memory well by itself.
pub(crate) const MIN_BYTES: usize = 1 << 20;
/// Most buffers kept at once.
pub(crate) const MAX_BUFFERS: usize = 16;

struct Entry {
    bytes: usize,
    buf: Box<dyn Any + Send>,
}

static CACHE: Mutex<Vec<Entry>> = Mutex::new(Vec::new());
static LIMIT: AtomicUsize = AtomicUsize::new(usize::MAX);

/// Total bytes the cache may hold.
pub(crate) fn max_bytes() -> usize {
    match LIMIT.load(Ordering::Relaxed) {
        usize::MAX => {
            let mb = std::env::var("TAPEGRAD_POOL_MB")
                .ok()
                .and_then(|s| s.trim().parse::<usize>().ok())
                .unwrap_or(64);
            let limit = mb << 20;
            LIMIT.store(limit, Ordering::Relaxed);
            limit
        }
        limit => limit,
    }
}

/// An empty vector with capacity for at least `n` elements, reusing a cached buffer of
/// between `n` and `2n` elements when there is one.
pub(crate) fn take<T: Send + 'static>(n: usize) -> Vec<T> {
    let bytes = n * std::mem::size_of::<T>();
    if bytes >= MIN_BYTES {
        let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
        let best = cache
            .iter()
            .enumerate()
            .filter(|(_, e)| e.bytes >= bytes && e.bytes <= 2 * bytes && e.buf.is::<Vec<T>>())
            .min_by_key(|(_, e)| e.bytes)
            .map(|(i, _)| i);
        if let Some(i) = best {
            let entry = cache.swap_remove(i);
            drop(cache);
            let mut v = *entry.buf.downcast::<Vec<T>>().expect("type checked above");
            v.clear();
            return v;
        }
    }
    Vec::with_capacity(n)
}

/// Offers a vector's buffer to the cache; it is kept if large enough and there is room
/// (the oldest buffers make way for it), otherwise freed.
pub(crate) fn give<T: Send + 'static>(v: Vec<T>) {
    let bytes = v.capacity() * std::mem::size_of::<T>();
    let limit = max_bytes();
    if bytes < MIN_BYTES || bytes > limit {
        return;
    }
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    let mut held: usize = cache.iter().map(|e| e.bytes).sum();
    while !cache.is_empty() && (held + bytes > limit || cache.len() >= MAX_BUFFERS) {
        held -= cache.remove(0).bytes;
    }
    cache.push(Entry {
        bytes,
        buf: Box::new(v),
    });
}

/// Recycles the buffer of an array that is about to be dropped, if nothing else shares it.
pub(crate) fn recycle<T: Clone + Send + 'static>(a: ArcArray<T, IxDyn>) {
    if a.len() * std::mem::size_of::<T>() >= MIN_BYTES && a.is_unique() {
        let (v, _) = a.into_owned().into_raw_vec_and_offset();
        give(v);
    }
}

/// Frees every cached buffer (public as [`crate::clear_buffer_pool`]).
pub fn clear() {
    let drained: Vec<Entry> = std::mem::take(&mut *CACHE.lock().unwrap_or_else(|e| e.into_inner()));
    drop(drained);
}

/// Bytes currently held (for tests and diagnostics).
#[cfg(test)]
pub(crate) fn held_bytes() -> usize {
    CACHE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|e| e.bytes)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_by_type_and_size_and_bounded() {
        // Another test may use the cache concurrently: assert only on what this one owns.
        let v: Vec<f64> = Vec::with_capacity(300_000); // 2.4 MB
        let ptr = v.as_ptr();
        give(v);
        // A request of a different type does not get it; a close size of the same type may.
        let w: Vec<f32> = take(300_000);
        assert_ne!(w.as_ptr() as *const f64, ptr);
        let u: Vec<f64> = take(290_000);
        assert!(u.capacity() >= 290_000 && u.is_empty());
        // Small buffers are never kept.
        give(vec![0u8; 100]);
        assert!(held_bytes() <= max_bytes());
        for _ in 0..2 * MAX_BUFFERS {
            give(Vec::<f32>::with_capacity(MIN_BYTES / 4));
        }
        assert!(CACHE.lock().unwrap().len() <= MAX_BUFFERS);
        assert!(held_bytes() <= max_bytes());
    }

    #[test]
    fn shared_arrays_are_not_recycled() {
        let a = ArcArray::<f32, IxDyn>::zeros(IxDyn(&[MIN_BYTES]));
        let b = a.clone();
        recycle(a); // `b` still uses the buffer: it must stay intact
        assert_eq!(b.len(), MIN_BYTES);
        assert!(b.iter().all(|&x| x == 0.0));
    }
}
