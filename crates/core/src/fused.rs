//! Fused multiply-add kernels for chains of more than eight labels.
//!
//! Beyond eight labels, the probability semiring's work is two dense
//! products per position: the vector–matrix product of the forward and
//! backward passes, and the sum of outer products `Σₜ αₜ₋₁ ⊗ vₜ` behind the
//! summed edge marginals. Done as a multiply and then an add, each product
//! term costs two vector instructions, and the outer-product sum also moves
//! its whole `k × k` accumulator through memory at every position. Here each
//! term is one fused multiply-add, and the outer-product sum keeps a tile of
//! its accumulator in registers while the positions stream past.
//!
//! A fused multiply-add rounds once where a multiply and an add round twice,
//! so the results differ from the unfused loops in the last bits. They are
//! the same on every build: each entry folds its terms in one fixed order
//! (rows `0..k` for the vector–matrix product, positions in order for the
//! outer-product sum), the AVX-512 and AVX2 kernels use the processor's FMA,
//! and the portable kernel calls [`f64::mul_add`], which is correctly
//! rounded everywhere (a software routine where the processor has no FMA,
//! slow but exact). One generic kernel per product, over a [`Lanes`] type
//! per instruction set, keeps the three builds one algorithm.

#[cfg(target_arch = "x86_64")]
use crate::simd::{vector_width, VectorWidth};

/// A vector of `f64` lanes with the few operations the kernels need.
///
/// # Safety
/// Every method is `unsafe`: the caller runs on a processor with the
/// instruction set of the implementation, and pointers are valid for the
/// lanes they read or write.
trait Lanes: Copy {
    /// Lanes per vector.
    const WIDTH: usize;
    unsafe fn zero() -> Self;
    unsafe fn splat(x: f64) -> Self;
    unsafe fn load(p: *const f64) -> Self;
    /// The first `n` lanes from `p` (`1 ≤ n ≤ WIDTH`), the rest 0.
    unsafe fn load_first(p: *const f64, n: usize) -> Self;
    /// Writes the first `n` lanes to `p` (`1 ≤ n ≤ WIDTH`).
    unsafe fn store_first(self, p: *mut f64, n: usize);
    /// `self · x + acc`, rounded once.
    unsafe fn mul_add(self, x: Self, acc: Self) -> Self;
}

/// One lane: the portable build.
#[derive(Clone, Copy)]
struct Scalar(f64);

impl Lanes for Scalar {
    const WIDTH: usize = 1;
    #[inline(always)]
    unsafe fn zero() -> Self {
        Scalar(0.0)
    }
    #[inline(always)]
    unsafe fn splat(x: f64) -> Self {
        Scalar(x)
    }
    #[inline(always)]
    unsafe fn load(p: *const f64) -> Self {
        Scalar(unsafe { *p })
    }
    #[inline(always)]
    unsafe fn load_first(p: *const f64, _n: usize) -> Self {
        Scalar(unsafe { *p })
    }
    #[inline(always)]
    unsafe fn store_first(self, p: *mut f64, _n: usize) {
        unsafe { *p = self.0 }
    }
    #[inline(always)]
    unsafe fn mul_add(self, x: Self, acc: Self) -> Self {
        Scalar(self.0.mul_add(x.0, acc.0))
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Lanes, OuterTerms};
    use std::arch::x86_64::*;

    /// Four lanes: AVX2 with FMA.
    #[derive(Clone, Copy)]
    pub(super) struct Avx2(__m256d);

    impl Avx2 {
        #[inline(always)]
        unsafe fn first_mask(n: usize) -> __m256i {
            // Lane `i` is selected when its sign bit is set, i.e. `i < n`.
            unsafe { _mm256_cmpgt_epi64(_mm256_set1_epi64x(n as i64), _mm256_setr_epi64x(0, 1, 2, 3)) }
        }
    }

    impl Lanes for Avx2 {
        const WIDTH: usize = 4;
        #[inline(always)]
        unsafe fn zero() -> Self {
            Avx2(unsafe { _mm256_setzero_pd() })
        }
        #[inline(always)]
        unsafe fn splat(x: f64) -> Self {
            Avx2(unsafe { _mm256_set1_pd(x) })
        }
        #[inline(always)]
        unsafe fn load(p: *const f64) -> Self {
            Avx2(unsafe { _mm256_loadu_pd(p) })
        }
        #[inline(always)]
        unsafe fn load_first(p: *const f64, n: usize) -> Self {
            Avx2(unsafe { _mm256_maskload_pd(p, Self::first_mask(n)) })
        }
        #[inline(always)]
        unsafe fn store_first(self, p: *mut f64, n: usize) {
            unsafe { _mm256_maskstore_pd(p, Self::first_mask(n), self.0) }
        }
        #[inline(always)]
        unsafe fn mul_add(self, x: Self, acc: Self) -> Self {
            Avx2(unsafe { _mm256_fmadd_pd(self.0, x.0, acc.0) })
        }
    }

    /// Eight lanes: AVX-512F.
    #[derive(Clone, Copy)]
    pub(super) struct Avx512(__m512d);

    impl Lanes for Avx512 {
        const WIDTH: usize = 8;
        #[inline(always)]
        unsafe fn zero() -> Self {
            Avx512(unsafe { _mm512_setzero_pd() })
        }
        #[inline(always)]
        unsafe fn splat(x: f64) -> Self {
            Avx512(unsafe { _mm512_set1_pd(x) })
        }
        #[inline(always)]
        unsafe fn load(p: *const f64) -> Self {
            Avx512(unsafe { _mm512_loadu_pd(p) })
        }
        #[inline(always)]
        unsafe fn load_first(p: *const f64, n: usize) -> Self {
            Avx512(unsafe { _mm512_maskz_loadu_pd(((1u32 << n) - 1) as __mmask8, p) })
        }
        #[inline(always)]
        unsafe fn store_first(self, p: *mut f64, n: usize) {
            unsafe { _mm512_mask_storeu_pd(p, ((1u32 << n) - 1) as __mmask8, self.0) }
        }
        #[inline(always)]
        unsafe fn mul_add(self, x: Self, acc: Self) -> Self {
            Avx512(unsafe { _mm512_fmadd_pd(self.0, x.0, acc.0) })
        }
    }

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn vec_mat_avx512(row: &[f64], mat: &[f64], out: &mut [f64]) {
        unsafe { super::vec_mat_with::<Avx512>(row, mat, out) }
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn vec_mat_avx2(row: &[f64], mat: &[f64], out: &mut [f64]) {
        unsafe { super::vec_mat_with::<Avx2>(row, mat, out) }
    }

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn outer_sum_avx512(terms: &OuterTerms<'_>, acc: &mut [f64]) {
        unsafe { super::outer_sum_with::<Avx512, 4>(terms, acc) }
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn outer_sum_avx2(terms: &OuterTerms<'_>, acc: &mut [f64]) {
        unsafe { super::outer_sum_with::<Avx2, 2>(terms, acc) }
    }
}

/// Column blocks: full blocks of this many vectors while more than
/// [`LAST_BLOCK`] vectors' worth of columns are left, then the rest as one
/// block. A block's partial results stay in registers while the rows stream
/// past, and each needs several of them for the chains of dependent
/// additions to overlap.
const BLOCK: usize = 4;
/// The most vectors of the last column block.
const LAST_BLOCK: usize = 6;

/// The column blocks of a `k`-wide row as `(first column, vectors,
/// columns)`.
#[inline(always)]
fn column_blocks(k: usize, width: usize) -> impl Iterator<Item = (usize, usize, usize)> {
    let full = k.saturating_sub(LAST_BLOCK * width).div_ceil(BLOCK * width);
    let j = full * BLOCK * width;
    (0..full)
        .map(move |b| (b * BLOCK * width, BLOCK, BLOCK * width))
        .chain(std::iter::once((j, (k - j).div_ceil(width), k - j)))
}

/// `out[j] = Σᵢ row[i] · mat[i·k + j]` for a `k × k` row-major `mat`, each
/// entry folding `i = 0..k` in order with fused multiply-adds (`k > 8`).
pub(crate) fn vec_mat(row: &[f64], mat: &[f64], out: &mut [f64]) {
    let k = row.len();
    assert!(
        mat.len() >= k * k && out.len() >= k,
        "vec_mat needs a k × k matrix and k outputs"
    );
    #[cfg(target_arch = "x86_64")]
    match vector_width(0) {
        // SAFETY: the processor has AVX-512F (checked by `vector_width`);
        // the lengths are checked above.
        VectorWidth::Avx512 => return unsafe { x86::vec_mat_avx512(row, mat, out) },
        // SAFETY: the processor has AVX2 and FMA (checked by `vector_width`).
        VectorWidth::Avx2 => return unsafe { x86::vec_mat_avx2(row, mat, out) },
        VectorWidth::Baseline => {}
    }
    // SAFETY: `Scalar` runs anywhere; the lengths are checked above.
    unsafe { vec_mat_with::<Scalar>(row, mat, out) }
}

/// [`vec_mat`] over the lanes `L`.
///
/// # Safety
/// The processor has `L`'s instructions; `mat` holds `k²` values and `out`
/// `k`, where `k = row.len()`.
#[inline(always)]
unsafe fn vec_mat_with<L: Lanes>(row: &[f64], mat: &[f64], out: &mut [f64]) {
    for (j, vectors, columns) in column_blocks(row.len(), L::WIDTH) {
        // SAFETY: as for this function.
        unsafe {
            match vectors {
                1 => vec_mat_block::<L, 1>(row, mat, out, j, columns),
                2 => vec_mat_block::<L, 2>(row, mat, out, j, columns),
                3 => vec_mat_block::<L, 3>(row, mat, out, j, columns),
                4 => vec_mat_block::<L, 4>(row, mat, out, j, columns),
                5 => vec_mat_block::<L, 5>(row, mat, out, j, columns),
                _ => vec_mat_block::<L, 6>(row, mat, out, j, columns),
            }
        }
    }
}

/// Columns `j0..j0 + columns` of [`vec_mat`] in `V` vectors (the last one
/// possibly partial, read and written lane by lane).
#[inline(always)]
unsafe fn vec_mat_block<L: Lanes, const V: usize>(
    row: &[f64],
    mat: &[f64],
    out: &mut [f64],
    j0: usize,
    columns: usize,
) {
    let k = row.len();
    let last = columns - (V - 1) * L::WIDTH;
    unsafe {
        let mut acc = [L::zero(); V];
        for (i, &x) in row.iter().enumerate() {
            let x = L::splat(x);
            let p = mat.as_ptr().add(i * k + j0);
            for (c, a) in acc.iter_mut().enumerate() {
                let m = if c + 1 < V {
                    L::load(p.add(c * L::WIDTH))
                } else {
                    L::load_first(p.add(c * L::WIDTH), last)
                };
                *a = x.mul_add(m, *a);
            }
        }
        let o = out.as_mut_ptr().add(j0);
        for (c, a) in acc.iter().enumerate() {
            a.store_first(o.add(c * L::WIDTH), if c + 1 < V { L::WIDTH } else { last });
        }
    }
}

/// The positions of a sum of outer products `Σₜ aₜ ⊗ src(t, i)`, laid out
/// for [`outer_sum`]: position `t` is row `t` of `rows`, [`term_stride`]
/// values holding `aₜ` (`k` values, then 0 up to [`a_stride`]), `vₜ` and
/// `vₜ'` (`k` values each, then 0 up to [`v_stride`]); `masked_row[t]` is
/// the one row `i` of the accumulator that takes `vₜ'` instead of `vₜ`
/// (`u32::MAX`: none).
pub(crate) struct OuterTerms<'a> {
    /// The label count `k`.
    pub k: usize,
    /// The number of positions `t`.
    pub len: usize,
    /// At least `len` rows of [`term_stride`] values.
    pub rows: &'a [f64],
    /// `len` row indices.
    pub masked_row: &'a [u32],
}

/// Where `vₜ` starts in a row of [`OuterTerms::rows`]: `k` rounded up to 4.
pub(crate) fn a_stride(k: usize) -> usize {
    k.next_multiple_of(4)
}

/// The room of `vₜ` and of `vₜ'` in a row of [`OuterTerms::rows`]: `k`
/// rounded up to 8.
pub(crate) fn v_stride(k: usize) -> usize {
    k.next_multiple_of(8)
}

/// The length of a row of [`OuterTerms::rows`].
pub(crate) fn term_stride(k: usize) -> usize {
    a_stride(k) + 2 * v_stride(k)
}

/// `acc[i·k + j] = Σₜ a[t][i] · src(t, i)[j]` over `t` in order, with fused
/// multiply-adds, where `src(t, i)` is `v_masked` row `t` if `i` is
/// `masked_row[t]` and `v` row `t` otherwise (`k > 8`). Overwrites `acc`.
pub(crate) fn outer_sum(terms: &OuterTerms<'_>, acc: &mut [f64]) {
    let (k, len) = (terms.k, terms.len);
    assert!(
        terms.rows.len() >= len * term_stride(k) && terms.masked_row.len() >= len && acc.len() >= k * k,
        "outer_sum's buffers are too short"
    );
    #[cfg(target_arch = "x86_64")]
    match vector_width(0) {
        // SAFETY: the processor has AVX-512F (checked by `vector_width`);
        // the lengths are checked above.
        VectorWidth::Avx512 => return unsafe { x86::outer_sum_avx512(terms, acc) },
        // SAFETY: the processor has AVX2 and FMA (checked by `vector_width`).
        VectorWidth::Avx2 => return unsafe { x86::outer_sum_avx2(terms, acc) },
        VectorWidth::Baseline => {}
    }
    // SAFETY: `Scalar` runs anywhere; the lengths are checked above.
    unsafe { outer_sum_with::<Scalar, 4>(terms, acc) }
}

/// [`outer_sum`] over the lanes `L`, in tiles of `R` accumulator rows
/// (`R` divides 4).
///
/// # Safety
/// The processor has `L`'s instructions; the buffers are as long as
/// [`outer_sum`] checks.
#[inline(always)]
unsafe fn outer_sum_with<L: Lanes, const R: usize>(terms: &OuterTerms<'_>, acc: &mut [f64]) {
    for (j, vectors, columns) in column_blocks(terms.k, L::WIDTH) {
        // SAFETY: as for this function.
        unsafe {
            match vectors {
                1 => outer_sum_block::<L, R, 1>(terms, acc, j, columns),
                2 => outer_sum_block::<L, R, 2>(terms, acc, j, columns),
                3 => outer_sum_block::<L, R, 3>(terms, acc, j, columns),
                4 => outer_sum_block::<L, R, 4>(terms, acc, j, columns),
                5 => outer_sum_block::<L, R, 5>(terms, acc, j, columns),
                _ => outer_sum_block::<L, R, 6>(terms, acc, j, columns),
            }
        }
    }
}

/// Columns `j0..j0 + columns` of [`outer_sum`], `R` rows at a time: the
/// tile's `R × V` vectors stay in registers over every position.
#[inline(always)]
unsafe fn outer_sum_block<L: Lanes, const R: usize, const V: usize>(
    terms: &OuterTerms<'_>,
    acc: &mut [f64],
    j0: usize,
    columns: usize,
) {
    let k = terms.k;
    let (stride, sa, sv) = (term_stride(k), a_stride(k), v_stride(k));
    let last = columns - (V - 1) * L::WIDTH;
    let mut i0 = 0;
    while i0 < k {
        unsafe {
            let mut tile = [[L::zero(); V]; R];
            for t in 0..terms.len {
                let masked = *terms.masked_row.get_unchecked(t) as usize;
                let row = terms.rows.as_ptr().add(t * stride);
                let a = row.add(i0);
                let v = row.add(sa + j0);
                let vm = row.add(sa + sv + j0);
                for (r, row) in tile.iter_mut().enumerate() {
                    let x = L::splat(*a.add(r));
                    let src = if masked == i0 + r { vm } else { v };
                    for (c, acc) in row.iter_mut().enumerate() {
                        *acc = x.mul_add(L::load(src.add(c * L::WIDTH)), *acc);
                    }
                }
            }
            for (r, row) in tile.iter().enumerate().take(k - i0) {
                let o = acc.as_mut_ptr().add((i0 + r) * k + j0);
                for (c, x) in row.iter().enumerate() {
                    x.store_first(o.add(c * L::WIDTH), if c + 1 < V { L::WIDTH } else { last });
                }
            }
        }
        i0 += R;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(seed: u64, n: usize, zeros: bool) -> Vec<f64> {
        let mut s = seed | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                let u = (s >> 11) as f64 / (1u64 << 53) as f64;
                if zeros && u < 0.1 {
                    0.0
                } else {
                    u * 3.0
                }
            })
            .collect()
    }

    /// Every build the processor has, the portable one included, gives the
    /// definition's bits: each column folds the rows in order with `mul_add`.
    #[test]
    fn vec_mat_is_the_fused_fold_on_every_build() {
        for k in 9..=75usize {
            let row = values(k as u64, k, true);
            let mat = values(k as u64 + 1000, k * k, true);
            let want: Vec<u64> = (0..k)
                .map(|j| {
                    (0..k)
                        .fold(0.0f64, |acc, i| row[i].mul_add(mat[i * k + j], acc))
                        .to_bits()
                })
                .collect();
            let mut builds: Vec<(&str, Vec<f64>)> = Vec::new();
            let mut out = vec![f64::NAN; k];
            // SAFETY: the lengths are right; `Scalar` runs anywhere.
            unsafe { vec_mat_with::<Scalar>(&row, &mat, &mut out) };
            builds.push(("portable", out.clone()));
            vec_mat(&row, &mat, &mut out);
            builds.push(("dispatched", out.clone()));
            #[cfg(target_arch = "x86_64")]
            {
                if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                    // SAFETY: checked just above.
                    unsafe { x86::vec_mat_avx2(&row, &mat, &mut out) };
                    builds.push(("avx2", out.clone()));
                }
                if is_x86_feature_detected!("avx512f") {
                    // SAFETY: checked just above.
                    unsafe { x86::vec_mat_avx512(&row, &mat, &mut out) };
                    builds.push(("avx512", out.clone()));
                }
            }
            for (name, got) in builds {
                let got: Vec<u64> = got.iter().map(|x| x.to_bits()).collect();
                assert_eq!(got, want, "{name}, k = {k}");
            }
        }
    }

    /// The tiled outer-product sum against its definition, with zero rows of
    /// `a`, masked rows and positions without one, on every build.
    #[test]
    fn outer_sum_is_the_fused_sum_on_every_build() {
        for k in 9..=75usize {
            let len = 1 + k % 7 * 3;
            let (stride, sa, sv) = (term_stride(k), a_stride(k), v_stride(k));
            let mut rows = vec![0.0; len * stride];
            let mut masked_row = vec![u32::MAX; len];
            let av = values(k as u64 * 3, len * k, true);
            let vv = values(k as u64 * 5, len * k, false);
            for t in 0..len {
                let row = &mut rows[t * stride..][..stride];
                row[..k].copy_from_slice(&av[t * k..][..k]);
                row[sa..sa + k].copy_from_slice(&vv[t * k..][..k]);
                row[sa + sv..sa + sv + k].copy_from_slice(&vv[t * k..][..k]);
                if t % 3 != 2 {
                    let (i, j) = ((t * 7 + k) % k, (t * 11 + 3) % k);
                    masked_row[t] = i as u32;
                    row[sa + sv + j] = 0.0;
                }
            }
            let terms = OuterTerms {
                k,
                len,
                rows: &rows,
                masked_row: &masked_row,
            };
            let mut want = vec![0.0f64; k * k];
            for t in 0..len {
                let row = &rows[t * stride..][..stride];
                for i in 0..k {
                    let src = if masked_row[t] as usize == i { sa + sv } else { sa };
                    for j in 0..k {
                        want[i * k + j] = row[i].mul_add(row[src + j], want[i * k + j]);
                    }
                }
            }
            let want: Vec<u64> = want.iter().map(|x| x.to_bits()).collect();
            let mut builds: Vec<(&str, Vec<f64>)> = Vec::new();
            let mut out = vec![f64::NAN; k * k];
            // SAFETY: the lengths are right; `Scalar` runs anywhere.
            unsafe { outer_sum_with::<Scalar, 4>(&terms, &mut out) };
            builds.push(("portable", out.clone()));
            outer_sum(&terms, &mut out);
            builds.push(("dispatched", out.clone()));
            #[cfg(target_arch = "x86_64")]
            {
                if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                    // SAFETY: checked just above.
                    unsafe { x86::outer_sum_avx2(&terms, &mut out) };
                    builds.push(("avx2", out.clone()));
                }
                if is_x86_feature_detected!("avx512f") {
                    // SAFETY: checked just above.
                    unsafe { x86::outer_sum_avx512(&terms, &mut out) };
                    builds.push(("avx512", out.clone()));
                }
            }
            for (name, got) in builds {
                let got: Vec<u64> = got.iter().map(|x| x.to_bits()).collect();
                assert_eq!(got, want, "{name}, k = {k}");
            }
        }
    }
}
