//! Which vector instructions the hot loops run with.
//!
//! The loops that take most of a training pass (the interleaved
//! forward-backward, the summed edge marginals, the lift of emissions into
//! probabilities) are compiled again for AVX2 and AVX-512 and chosen at run
//! time: their vector loops then handle four or eight `f64` at once instead
//! of baseline x86-64's two. Only the vector width changes, never an
//! operation (no reordered sum), so every build gives the same bits. The
//! fused multiply-adds of chains beyond eight labels (`crate::fused`) are
//! fused on every build, the portable one included.

/// The widest vectors a loop may use on this processor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum VectorWidth {
    /// Eight `f64` (AVX-512F).
    Avx512,
    /// Four `f64` (AVX2, with FMA).
    Avx2,
    /// Two `f64` (baseline x86-64), or not x86-64.
    Baseline,
}

/// The [`VectorWidth`] for loops compiled for `fixed` labels (see
/// `chain::with_width`; 0 for a label count known only at run time).
/// AVX-512 is used only for run-time label counts (more than 8): a row of 8
/// or fewer labels fills at most one of its vectors, and those loops are
/// tuned for the narrower ones.
#[inline]
pub(crate) fn vector_width(fixed: usize) -> VectorWidth {
    #[cfg(target_arch = "x86_64")]
    {
        if fixed == 0 && std::arch::is_x86_feature_detected!("avx512f") {
            return VectorWidth::Avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            return VectorWidth::Avx2;
        }
    }
    let _ = fixed;
    VectorWidth::Baseline
}
