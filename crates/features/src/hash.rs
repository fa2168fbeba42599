//! Stable hashing of attribute names, and memory hints for the tables keyed by them.
//!
//! The hash is part of the model file format (dictionaries store keys, not names),
//! so it must never change between versions or platforms: it is FNV-1a over the
//! UTF-8 bytes followed by a 64-bit finalizer (from MurmurHash3's `fmix64`) that
//! spreads FNV's weak low bits.

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Mixes the bits of a 64-bit value (MurmurHash3's finalizer).
#[inline]
pub fn mix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h
}

/// Hashes bytes with FNV-1a and finalizes; stable across versions and platforms.
#[inline]
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h = FNV_OFFSET;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    mix64(h)
}

/// The stable 64-bit key of an attribute name.
#[inline]
pub fn hash_name(name: &str) -> u64 {
    hash_bytes(name.as_bytes())
}

/// Combines a running key with one more 64-bit part (for extractors that hash
/// template ids and characters without building strings).
#[inline]
pub fn hash_combine(seed: u64, part: u64) -> u64 {
    mix64(seed ^ part.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(31))
}

/// Asks the CPU to bring `x`'s cache line closer (a hint: it never faults and
/// changes no result); a no-op on targets without a prefetch instruction.
/// Used where lookups into tables larger than the cache are known a little in
/// advance (attribute ids of the next positions, keys of the next attributes).
#[inline(always)]
pub fn prefetch<T>(x: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        let ptr: *const T = x;
        // SAFETY: `_mm_prefetch` is only a hint, valid for any address; SSE is
        // part of the x86_64 baseline.
        unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(ptr.cast::<i8>()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = x;
}

/// Allocates a vector of `len` copies of `value` whose memory the kernel is
/// asked to back with huge pages (Linux, `madvise(MADV_HUGEPAGE)`, before the
/// pages are touched); elsewhere, or when the kernel declines, a plain vector.
///
/// For tables of tens of megabytes read at random (attribute indexes, weight
/// and gradient vectors): with 4 KiB pages nearly every access to a rarely
/// used row also misses the TLB, and a page walk costs as much as the cache
/// miss itself. Results never depend on it.
pub(crate) fn huge_page_vec<T: Clone>(len: usize, value: T) -> Vec<T> {
    let mut v: Vec<T> = Vec::with_capacity(len);
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let bytes = len * std::mem::size_of::<T>();
        if bytes >= 2 * HUGE {
            let start = v.as_mut_ptr() as usize;
            let page = 4096;
            let first = start.div_ceil(page) * page;
            let end = (start + bytes) / page * page;
            if end > first {
                // SAFETY: the range lies inside this vector's allocation, which
                // nothing else references; MADV_HUGEPAGE only changes how the
                // kernel backs the pages, not their contents or validity.
                unsafe {
                    libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE);
                }
            }
        }
    }
    v.resize(len, value);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_stable() {
        // Pinned values: changing the hash breaks every saved model.
        assert_eq!(hash_name(""), mix64(FNV_OFFSET));
        assert_ne!(hash_name("a"), hash_name("b"));
        assert_eq!(hash_name("U00:x"), hash_name("U00:x"));
    }
}
