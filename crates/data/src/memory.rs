//! Measuring memory: a counting global allocator (current and peak bytes in use) and the
//! search for the largest batch size whose training step fits a memory limit.
//!
//! Install the allocator in a binary or test to make the measurements real:
//!
//! ```
//! #[global_allocator]
//! static ALLOC: tapegrad_data::CountingAllocator = tapegrad_data::CountingAllocator;
//!
//! fn main() {
//!     let (_, peak) = tapegrad_data::measure_peak(|| std::hint::black_box(vec![0u8; 1 << 20]));
//!     assert!(peak >= 1 << 20);
//! }
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static ACTIVE: AtomicBool = AtomicBool::new(true);

/// The system allocator, counting bytes in use and their peak (process-wide).
pub struct CountingAllocator;

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged to the system allocator.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() && ACTIVE.load(Ordering::Relaxed) {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged to the system allocator.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() && ACTIVE.load(Ordering::Relaxed) {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by this allocator with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        if ACTIVE.load(Ordering::Relaxed) {
            CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded unchanged to the system allocator.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() && ACTIVE.load(Ordering::Relaxed) {
            CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        p
    }
}

/// Counts an allocation: one atomic add, and a write to the peak only when it rises (a
/// read-modify-write on every allocation showed in the per-op cost of small tensors).
#[inline]
fn grew(bytes: usize) {
    let now = CURRENT.fetch_add(bytes, Ordering::Relaxed) + bytes;
    if now > PEAK.load(Ordering::Relaxed) {
        PEAK.fetch_max(now, Ordering::Relaxed);
    }
}

/// Whether [`CountingAllocator`] is the global allocator of this process (it has seen an
/// allocation, so the peak is above 0) and counts ([`stop_counting`] was not called);
/// without it the figures below stay 0 or stop moving.
pub fn counting_enabled() -> bool {
    ACTIVE.load(Ordering::Relaxed) && PEAK.load(Ordering::Relaxed) > 0
}

/// Stops counting for the rest of the process: [`CountingAllocator`] then forwards to the
/// system allocator and costs nothing more. For a binary that installs the allocator but
/// measures memory in only some of its modes (the `tapegrad` command counts only in
/// `batch-sweep`). One way: counts restarted later would miss frees of blocks allocated in
/// between.
pub fn stop_counting() {
    ACTIVE.store(false, Ordering::Relaxed);
}

/// Bytes currently allocated through [`CountingAllocator`].
pub fn current_bytes() -> usize {
    CURRENT.load(Ordering::Relaxed)
}

/// Peak of [`current_bytes`] since the last [`reset_peak`].
pub fn peak_bytes() -> usize {
    PEAK.load(Ordering::Relaxed)
}

/// Restarts peak tracking from the bytes in use now.
pub fn reset_peak() {
    PEAK.store(CURRENT.load(Ordering::Relaxed), Ordering::Relaxed);
}

/// Runs `f` and returns its result with the peak number of bytes allocated *above* what
/// was in use before it started (its working memory), after emptying tapegrad's buffer
/// pool. Process-wide: other threads' allocations in that window count too.
pub fn measure_peak<R>(f: impl FnOnce() -> R) -> (R, usize) {
    // Buffers tapegrad pooled earlier would be reused without allocating and hide the
    // step's real footprint: start from an empty pool, so what the pool keeps during `f`
    // counts, as it does for the process.
    tapegrad::clear_buffer_pool();
    let base = current_bytes();
    reset_peak();
    let r = f();
    (r, peak_bytes().saturating_sub(base))
}

/// The largest batch size in `1..=max_batch` whose measured peak bytes (`peak(batch)`)
/// are at most `limit`, assuming memory grows with the batch size; `None` if even a
/// batch of one does not fit. Measures O(log max_batch) batch sizes.
///
/// ```
/// // A step needing 1 MB plus 10 kB per sample, under a 2 MB limit.
/// let fits = tapegrad_data::largest_batch_that_fits(2_000_000, 4096, |b| 1_000_000 + 10_000 * b);
/// assert_eq!(fits, Some(100));
/// ```
pub fn largest_batch_that_fits(
    limit: usize,
    max_batch: usize,
    mut peak: impl FnMut(usize) -> usize,
) -> Option<usize> {
    if max_batch == 0 || peak(1) > limit {
        return None;
    }
    // Double until it no longer fits, then bisect between the last fit and the first miss.
    let (mut lo, mut hi) = (1usize, None);
    let mut b = 2usize;
    while b <= max_batch {
        if peak(b) <= limit {
            lo = b;
            b *= 2;
        } else {
            hi = Some(b);
            break;
        }
    }
    let mut hi = match hi {
        Some(h) => h,
        None if lo == max_batch => return Some(lo),
        None => {
            if peak(max_batch) <= limit {
                return Some(max_batch);
            }
            max_batch
        }
    };
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if peak(mid) <= limit {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Some(lo)
}

/// Parses a memory size such as `512MiB`, `2GiB`, `1.5GB`, `300kB` or `1000000` (bytes).
///
/// ```
/// assert_eq!(tapegrad_data::parse_bytes("512MiB"), Ok(512 * 1024 * 1024));
/// assert_eq!(tapegrad_data::parse_bytes("1.5GB"), Ok(1_500_000_000));
/// assert!(tapegrad_data::parse_bytes("12 parsecs").is_err());
/// ```
pub fn parse_bytes(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected a number followed by a unit such as MiB"))?;
    let factor: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "kib" | "k" => 1024.0,
        "mib" | "m" => 1024.0 * 1024.0,
        "gib" | "g" => 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "{s:?}: unknown unit {other:?} (use B, kB, MB, GB, KiB, MiB, GiB)"
            ))
        }
    };
    Ok((value * factor).round() as usize)
}

/// Formats bytes with a binary unit (`12.3 MiB`).
pub fn format_bytes(bytes: usize) -> String {
    let b = bytes as f64;
    if b >= 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2} GiB", b / (1024.0 * 1024.0 * 1024.0))
    } else if b >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", b / (1024.0 * 1024.0))
    } else if b >= 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{bytes} B")
    }
}

#[cfg(test)]
mod tests {
    use super::largest_batch_that_fits;

    #[test]
    fn search_finds_the_boundary() {
        for limit in [0usize, 5, 11, 100, 1000, 4096, 10_000] {
            let peak = |b: usize| 10 * b + 1;
            let brute = (1..=512).rev().find(|&b| peak(b) <= limit);
            assert_eq!(
                largest_batch_that_fits(limit, 512, peak),
                brute,
                "limit {limit}"
            );
        }
        assert_eq!(largest_batch_that_fits(usize::MAX, 1000, |b| b), Some(1000));
        assert_eq!(largest_batch_that_fits(usize::MAX, 1024, |b| b), Some(1024));
    }
}
