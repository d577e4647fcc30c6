//! The arithmetic of the forward pass: a quantized matrix times rows of activations, and a
//! query's attention over its keys and values.
//!
//! On x86-64 CPUs with AVX2 and FMA (detected once, at run time, so one binary serves every
//! x86-64 machine) the products use those instructions through `pulp`'s safe intrinsics
//! and the attention loops are compiled for them; elsewhere both run in portable Rust.
//!
//! A product reads each weight block once for up to [`GROUP`] activation rows, and walks
//! the weights in tiles of [`TILE_ROWS`] rows, all activation rows against one tile before
//! the next: with a batch of sequences (or a chunk of a prompt) the weights come from memory
//! once per forward pass, not once per row. Each row's arithmetic is the same whatever rows
//! it is computed beside, so a sequence gets the same numbers alone or in a batch.

use std::ops::Range;

use super::quant::{ActBlock, Activations, Blocks, Q4Block, Q8Block, QMatrix};

/// Weight rows per tile.
pub(crate) const TILE_ROWS: usize = 32;
/// Activation rows multiplied by one weight block at a time.
const GROUP: usize = 4;

/// The instructions the kernels use on this machine.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Kernels {
    #[cfg(target_arch = "x86_64")]
    avx2: Option<pulp::x86::V3>,
}

/// The shape of multi-head attention with grouped keys and values.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Heads {
    /// Query heads.
    pub(crate) n_head: usize,
    /// Key and value heads (each shared by `n_head / n_kv_head` query heads).
    pub(crate) n_kv_head: usize,
    /// Values per head.
    pub(crate) head_dim: usize,
}

impl Kernels {
    /// The best kernels this CPU runs.
    pub(crate) fn detect() -> Self {
        Self {
            #[cfg(target_arch = "x86_64")]
            avx2: pulp::x86::V3::try_new(),
        }
    }

    /// The portable kernels, whatever the CPU (to compare against in tests).
    #[cfg(test)]
    pub(crate) fn portable() -> Self {
        Self {
            #[cfg(target_arch = "x86_64")]
            avx2: None,
        }
    }

    /// What the products run on: `"avx2"` or `"portable"`.
    pub(crate) fn name(self) -> &'static str {
        #[cfg(target_arch = "x86_64")]
        if self.avx2.is_some() {
            return "avx2";
        }
        "portable"
    }

    /// `out[m][r] = Σ weights[r] · x[m]`: `out` is `x.rows() × weights.rows`, row-major.
    pub(crate) fn matmul(self, weights: &QMatrix, x: &Activations, out: &mut [f32]) {
        self.matmul_rows(weights, 0..weights.rows, x, out);
    }

    /// [`Kernels::matmul`] for the weight rows `rows` only: `out` is `x.rows() × rows.len()`,
    /// `out[m][r - rows.start]`.
    pub(crate) fn matmul_rows(
        self,
        weights: &QMatrix,
        rows: Range<usize>,
        x: &Activations,
        out: &mut [f32],
    ) {
        debug_assert_eq!(weights.blocks_per_row(), x.blocks_per_row());
        debug_assert!(rows.end <= weights.rows);
        debug_assert_eq!(out.len(), x.rows() * rows.len());
        #[cfg(target_arch = "x86_64")]
        if let Some(simd) = self.avx2 {
            match &weights.blocks {
                Blocks::Q4(blocks) => simd.vectorize(|| product(Avx2(simd), blocks, rows, x, out)),
                Blocks::Q8(blocks) => simd.vectorize(|| product(Avx2(simd), blocks, rows, x, out)),
            }
            return;
        }
        match &weights.blocks {
            Blocks::Q4(blocks) => product(Portable, blocks, rows, x, out),
            Blocks::Q8(blocks) => product(Portable, blocks, rows, x, out),
        }
    }

    /// Quantizes `values` (`rows × cols`) into `x` for the next product (the same numbers on
    /// every kernel; compiled for AVX2 when the CPU has it, so the rounding vectorizes).
    pub(crate) fn quantize(self, x: &mut Activations, values: &[f32], cols: usize) {
        #[cfg(target_arch = "x86_64")]
        if let Some(simd) = self.avx2 {
            simd.vectorize(|| x.quantize(values, cols));
            return;
        }
        x.quantize(values, cols);
    }

    /// One query row's attention for the query heads `only` (`q`: every head,
    /// `heads.n_head × head_dim`) over `keys` and `values` (positions × `n_kv_head ×
    /// head_dim`, all visible to it), into `out` (`only.len() × head_dim`). `scores` is
    /// scratch space.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn attend(
        self,
        heads: Heads,
        only: Range<usize>,
        q: &[f32],
        keys: &[f32],
        values: &[f32],
        scores: &mut Vec<f32>,
        out: &mut [f32],
    ) {
        #[cfg(target_arch = "x86_64")]
        if let Some(simd) = self.avx2 {
            simd.vectorize(|| attend(heads, only, q, keys, values, scores, out));
            return;
        }
        attend(heads, only, q, keys, values, scores, out);
    }
}

/// A dot product of one weight row with `N` activation rows, block by block.
trait BlockDot<B>: Copy {
    fn dot<const N: usize>(self, weights: &[B], x: [&[ActBlock]; N]) -> [f32; N];
}

#[inline(always)]
fn product<B, K: BlockDot<B>>(
    kernel: K,
    blocks: &[B],
    rows: Range<usize>,
    x: &Activations,
    out: &mut [f32],
) {
    let per_row = x.blocks_per_row();
    let n = x.rows();
    let width = rows.len();
    for first_row in rows.clone().step_by(TILE_ROWS) {
        let tile = first_row..(first_row + TILE_ROWS).min(rows.end);
        let mut m0 = 0;
        while m0 < n {
            let group = (n - m0).min(GROUP);
            for r in tile.clone() {
                let weights = &blocks[r * per_row..(r + 1) * per_row];
                let at = r - rows.start;
                match group {
                    1 => store(out, width, m0, at, kernel.dot(weights, gather::<1>(x, m0))),
                    2 => store(out, width, m0, at, kernel.dot(weights, gather::<2>(x, m0))),
                    3 => store(out, width, m0, at, kernel.dot(weights, gather::<3>(x, m0))),
                    _ => store(out, width, m0, at, kernel.dot(weights, gather::<4>(x, m0))),
                }
            }
            m0 += group;
        }
    }
}

#[inline(always)]
fn gather<const N: usize>(x: &Activations, first: usize) -> [&[ActBlock]; N] {
    std::array::from_fn(|k| x.row(first + k))
}

#[inline(always)]
fn store<const N: usize>(out: &mut [f32], width: usize, m0: usize, at: usize, sums: [f32; N]) {
    for (k, sum) in sums.into_iter().enumerate() {
        out[(m0 + k) * width + at] = sum;
    }
}

#[derive(Clone, Copy)]
struct Portable;

impl BlockDot<Q4Block> for Portable {
    #[inline(always)]
    fn dot<const N: usize>(self, weights: &[Q4Block], x: [&[ActBlock]; N]) -> [f32; N] {
        std::array::from_fn(|k| {
            weights
                .iter()
                .zip(x[k])
                .map(|(block, a)| {
                    let mut sum = 0i32;
                    for (j, byte) in block.qs.iter().enumerate() {
                        sum += i32::from(byte & 0x0F) * i32::from(a.qs[j])
                            + i32::from(byte >> 4) * i32::from(a.qs[j + 16]);
                    }
                    block.d * a.d * sum as f32 + block.m * a.s
                })
                .sum()
        })
    }
}

impl BlockDot<Q8Block> for Portable {
    #[inline(always)]
    fn dot<const N: usize>(self, weights: &[Q8Block], x: [&[ActBlock]; N]) -> [f32; N] {
        std::array::from_fn(|k| {
            weights
                .iter()
                .zip(x[k])
                .map(|(block, a)| {
                    let sum: i32 = block
                        .qs
                        .iter()
                        .zip(a.qs)
                        .map(|(&w, y)| i32::from(w) * i32::from(y))
                        .sum();
                    block.d * a.d * sum as f32
                })
                .sum()
        })
    }
}

#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct Avx2(pulp::x86::V3);

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use core::arch::x86_64::{__m128i, __m256, __m256i};

    use super::{ActBlock, Avx2, BlockDot, Q4Block, Q8Block};

    /// The sum of a vector's lanes.
    #[inline(always)]
    fn sum_lanes(vector: __m256) -> f32 {
        let lanes: [f32; 8] = pulp::cast(vector);
        lanes.iter().sum()
    }

    impl BlockDot<Q4Block> for Avx2 {
        #[inline(always)]
        fn dot<const N: usize>(self, weights: &[Q4Block], x: [&[ActBlock]; N]) -> [f32; N] {
            let simd = self.0;
            let x = x.map(|row| &row[..weights.len()]);
            let low_nibbles = simd.avx._mm256_set1_epi8(0x0F);
            let ones = simd.avx._mm256_set1_epi16(1);
            let mut acc = [simd.avx._mm256_setzero_ps(); N];
            let mut minimums = [0.0f32; N];
            for (b, block) in weights.iter().enumerate() {
                // Values 0..16 in bytes 0..16, values 16..32 in bytes 16..32.
                let packed: __m128i = pulp::cast(block.qs);
                let high = simd.sse2._mm_srli_epi16::<4>(packed);
                let values = simd
                    .avx2
                    ._mm256_and_si256(simd.avx._mm256_set_m128i(high, packed), low_nibbles);
                for k in 0..N {
                    let a = &x[k][b];
                    let y: __m256i = pulp::cast(a.qs);
                    let pairs = simd.avx2._mm256_maddubs_epi16(values, y);
                    let sums = simd.avx2._mm256_madd_epi16(pairs, ones);
                    let scale = simd.avx._mm256_set1_ps(block.d * a.d);
                    acc[k] =
                        simd.fma
                            ._mm256_fmadd_ps(scale, simd.avx._mm256_cvtepi32_ps(sums), acc[k]);
                    minimums[k] += block.m * a.s;
                }
            }
            std::array::from_fn(|k| sum_lanes(acc[k]) + minimums[k])
        }
    }

    impl BlockDot<Q8Block> for Avx2 {
        #[inline(always)]
        fn dot<const N: usize>(self, weights: &[Q8Block], x: [&[ActBlock]; N]) -> [f32; N] {
            let simd = self.0;
            let x = x.map(|row| &row[..weights.len()]);
            let ones = simd.avx._mm256_set1_epi16(1);
            let mut acc = [simd.avx._mm256_setzero_ps(); N];
            for (b, block) in weights.iter().enumerate() {
                let w: __m256i = pulp::cast(block.qs);
                // u8 × i8 products: |w| times y with w's sign.
                let magnitudes = simd.avx2._mm256_sign_epi8(w, w);
                for k in 0..N {
                    let a = &x[k][b];
                    let y: __m256i = pulp::cast(a.qs);
                    let signed = simd.avx2._mm256_sign_epi8(y, w);
                    let pairs = simd.avx2._mm256_maddubs_epi16(magnitudes, signed);
                    let sums = simd.avx2._mm256_madd_epi16(pairs, ones);
                    let scale = simd.avx._mm256_set1_ps(block.d * a.d);
                    acc[k] =
                        simd.fma
                            ._mm256_fmadd_ps(scale, simd.avx._mm256_cvtepi32_ps(sums), acc[k]);
                }
            }
            std::array::from_fn(|k| sum_lanes(acc[k]))
        }
    }
}

/// See [`Kernels::attend`]; plain loops, compiled for AVX2 too when called from it.
#[inline(always)]
fn attend(
    heads: Heads,
    only: Range<usize>,
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    scores: &mut Vec<f32>,
    out: &mut [f32],
) {
    let Heads {
        n_head,
        n_kv_head,
        head_dim,
    } = heads;
    let kv_dim = n_kv_head * head_dim;
    let positions = keys.len() / kv_dim;
    let group = n_head / n_kv_head;
    let scale = 1.0 / (head_dim as f32).sqrt();
    scores.clear();
    scores.resize(positions, 0.0);
    for head in only.clone() {
        let kv = (head / group) * head_dim;
        let query = &q[head * head_dim..(head + 1) * head_dim];
        let mut max = f32::NEG_INFINITY;
        for (t, score) in scores.iter_mut().enumerate() {
            let key = &keys[t * kv_dim + kv..t * kv_dim + kv + head_dim];
            *score = dot(query, key) * scale;
            max = max.max(*score);
        }
        for score in scores.iter_mut() {
            *score = exp_nonpositive(*score - max);
        }
        let total = sum(scores);
        let at = head - only.start;
        let output = &mut out[at * head_dim..(at + 1) * head_dim];
        output.fill(0.0);
        for (t, score) in scores.iter().enumerate() {
            let value = &values[t * kv_dim + kv..t * kv_dim + kv + head_dim];
            let weight = score / total;
            for (o, v) in output.iter_mut().zip(value) {
                *o += weight * v;
            }
        }
    }
}

/// `e^x` for `x ≤ 0` (a score minus the largest), within about 2e-7 relative: Cephes'
/// `expf` (a degree-6 polynomial after taking out the powers of two) in plain arithmetic, so
/// that a loop over scores vectorizes, where `f32::exp` is a call per value.
#[inline(always)]
pub(crate) fn exp_nonpositive(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    // ln 2 in two parts, so `x - n ln 2` loses nothing.
    const LN2_HIGH: f32 = 0.693_359_4;
    const LN2_LOW: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.0, 0.0);
    let n = (x * LOG2_E + 0.5).floor();
    let r = x - n * LN2_HIGH - n * LN2_LOW;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5;
    let e = p * r * r + r + 1.0;
    // 2^n, n in -126..=0: the exponent field.
    e * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// A sum in eight independent lanes (so it vectorizes).
#[inline(always)]
fn sum(values: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let chunks = values.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().sum();
    for chunk in chunks {
        for lane in 0..8 {
            lanes[lane] += chunk[lane];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// A dot product in eight independent lanes (so it vectorizes).
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (a_chunks, b_chunks) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for lane in 0..8 {
            lanes[lane] += x[lane] * y[lane];
        }
    }
    lanes.iter().sum::<f32>() + tail
}
