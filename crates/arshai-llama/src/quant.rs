//! Quantized weight matrices and activations, in the block formats of the GGUF file.
//!
//! A weight matrix is `rows × cols` (output × input features), each row cut into blocks of
//! [`BLOCK`] values. Two block kinds are multiplied directly: Q4_1 (4-bit values with a
//! scale and a minimum, what the embedded SmolLM2 ships) and Q8_0 (8-bit values with a
//! scale, its embedding table). Q4_0 loads as Q4_1 (its minimum is `-8 × scale`); any other
//! GGUF type is dequantized once at load and stored as Q8_0. The scales are widened from
//! the file's f16 to f32 at load, so the kernels never convert them.
//!
//! Activations (the inputs of a product) are quantized row by row to [`ActBlock`]s, 8-bit
//! values with a scale and their scaled sum, as llama.cpp does for these formats.

use half::f16;

/// Values per block.
pub(crate) const BLOCK: usize = 32;

/// 32 weights as `d × q + m`, `q` in 0..16: byte `j` of `qs` holds value `j` in its low
/// nibble and value `j + 16` in its high nibble.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Q4Block {
    pub(crate) d: f32,
    pub(crate) m: f32,
    pub(crate) qs: [u8; 16],
}

/// 32 weights as `d × q`, `q` in -128..128.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Q8Block {
    pub(crate) d: f32,
    pub(crate) qs: [i8; 32],
}

/// 32 activations as `d × q`, `q` in -127..=127, with `s = d × Σq` (what a Q4 block's
/// minimum multiplies).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ActBlock {
    pub(crate) d: f32,
    pub(crate) s: f32,
    pub(crate) qs: [i8; 32],
}

/// The blocks of a matrix, row after row.
pub(crate) enum Blocks {
    /// 4-bit weights.
    Q4(Vec<Q4Block>),
    /// 8-bit weights.
    Q8(Vec<Q8Block>),
}

/// A quantized `rows × cols` matrix.
pub(crate) struct QMatrix {
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    pub(crate) blocks: Blocks,
}

/// Why a tensor could not become a [`QMatrix`].
#[derive(Debug, thiserror::Error)]
pub(crate) enum QuantError {
    /// The row length is not a whole number of blocks.
    #[error("rows of {0} values are not a whole number of {BLOCK}-value blocks")]
    RowLength(usize),
    /// The data is shorter or longer than the shape says.
    #[error("{found} bytes where the shape needs {expected}")]
    Size {
        /// Bytes the shape needs.
        expected: usize,
        /// Bytes found.
        found: usize,
    },
    /// A scale is infinite or not a number.
    #[error("a block scale is not finite")]
    NonFinite,
    /// Matrices to stack have different widths or kinds.
    #[error("matrices of different widths or kinds cannot be stacked")]
    Mismatch,
}

impl QMatrix {
    /// A matrix from the raw bytes of a GGUF Q4_1 tensor.
    pub(crate) fn from_q4_1(raw: &[u8], rows: usize, cols: usize) -> Result<Self, QuantError> {
        let blocks = raw_blocks(raw, rows, cols, 20)?
            .map(|bytes| {
                let d = f16_at(bytes, 0);
                let m = f16_at(bytes, 2);
                let mut qs = [0; 16];
                qs.copy_from_slice(&bytes[4..20]);
                finite(Q4Block { d, m, qs }, [d, m])
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            rows,
            cols,
            blocks: Blocks::Q4(blocks),
        })
    }

    /// A matrix from the raw bytes of a GGUF Q4_0 tensor (`d × (q - 8)`), as Q4_1 blocks.
    pub(crate) fn from_q4_0(raw: &[u8], rows: usize, cols: usize) -> Result<Self, QuantError> {
        let blocks = raw_blocks(raw, rows, cols, 18)?
            .map(|bytes| {
                let d = f16_at(bytes, 0);
                let mut qs = [0; 16];
                qs.copy_from_slice(&bytes[2..18]);
                finite(Q4Block { d, m: -8.0 * d, qs }, [d, d])
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            rows,
            cols,
            blocks: Blocks::Q4(blocks),
        })
    }

    /// A matrix from the raw bytes of a GGUF Q8_0 tensor.
    pub(crate) fn from_q8_0(raw: &[u8], rows: usize, cols: usize) -> Result<Self, QuantError> {
        let blocks = raw_blocks(raw, rows, cols, 34)?
            .map(|bytes| {
                let d = f16_at(bytes, 0);
                let mut qs = [0; 32];
                for (q, byte) in qs.iter_mut().zip(&bytes[2..34]) {
                    *q = i8::from_le_bytes([*byte]);
                }
                finite(Q8Block { d, qs }, [d, d])
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            rows,
            cols,
            blocks: Blocks::Q8(blocks),
        })
    }

    /// A matrix quantized to Q8_0 from `values` (`rows × cols`, row-major).
    pub(crate) fn quantize_q8_0(
        values: &[f32],
        rows: usize,
        cols: usize,
    ) -> Result<Self, QuantError> {
        if !cols.is_multiple_of(BLOCK) {
            return Err(QuantError::RowLength(cols));
        }
        if values.len() != rows * cols {
            return Err(QuantError::Size {
                expected: rows * cols * 4,
                found: values.len() * 4,
            });
        }
        let blocks = values
            .chunks_exact(BLOCK)
            .map(|chunk| {
                let (d, qs) = quantize_block(chunk);
                finite(Q8Block { d, qs }, [d, d])
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            rows,
            cols,
            blocks: Blocks::Q8(blocks),
        })
    }

    /// This matrix re-quantized to Q8_0 (Q8_0 stays as it is).
    pub(crate) fn into_q8_0(self) -> Result<Self, QuantError> {
        if matches!(self.blocks, Blocks::Q8(_)) {
            return Ok(self);
        }
        let mut values = vec![0.0; self.rows * self.cols];
        for (row, out) in values.chunks_exact_mut(self.cols).enumerate() {
            self.dequantize_row(row, out);
        }
        Self::quantize_q8_0(&values, self.rows, self.cols)
    }

    /// Stacks matrices of one width and kind: the rows of the first, then of the second…
    /// (one product then computes several projections of the same input).
    pub(crate) fn stack(parts: Vec<Self>) -> Result<Self, QuantError> {
        let mut parts = parts.into_iter();
        let Some(mut stacked) = parts.next() else {
            return Err(QuantError::Mismatch);
        };
        for part in parts {
            if part.cols != stacked.cols {
                return Err(QuantError::Mismatch);
            }
            match (&mut stacked.blocks, part.blocks) {
                (Blocks::Q4(all), Blocks::Q4(more)) => all.extend(more),
                (Blocks::Q8(all), Blocks::Q8(more)) => all.extend(more),
                _ => return Err(QuantError::Mismatch),
            }
            stacked.rows += part.rows;
        }
        Ok(stacked)
    }

    /// Blocks per row.
    pub(crate) fn blocks_per_row(&self) -> usize {
        self.cols / BLOCK
    }

    /// Writes row `row` as f32 values into `out` (`cols` long).
    pub(crate) fn dequantize_row(&self, row: usize, out: &mut [f32]) {
        let per_row = self.blocks_per_row();
        let range = row * per_row..(row + 1) * per_row;
        match &self.blocks {
            Blocks::Q4(blocks) => {
                for (block, out) in blocks[range].iter().zip(out.chunks_exact_mut(BLOCK)) {
                    for (j, byte) in block.qs.iter().enumerate() {
                        out[j] = block.d * f32::from(byte & 0x0F) + block.m;
                        out[j + 16] = block.d * f32::from(byte >> 4) + block.m;
                    }
                }
            }
            Blocks::Q8(blocks) => {
                for (block, out) in blocks[range].iter().zip(out.chunks_exact_mut(BLOCK)) {
                    for (value, q) in out.iter_mut().zip(block.qs) {
                        *value = block.d * f32::from(q);
                    }
                }
            }
        }
    }
}

/// Rows of activations quantized for a product: `rows × blocks_per_row` blocks. Reused
/// across the products of a forward pass (it only grows).
#[derive(Default)]
pub(crate) struct Activations {
    blocks: Vec<ActBlock>,
    rows: usize,
    per_row: usize,
}

impl Activations {
    /// Quantizes `values` (`rows × cols`, row-major; `cols` a multiple of [`BLOCK`]).
    #[inline(always)]
    pub(crate) fn quantize(&mut self, values: &[f32], cols: usize) {
        debug_assert!(cols.is_multiple_of(BLOCK) && values.len().is_multiple_of(cols));
        self.per_row = cols / BLOCK;
        self.rows = values.len() / cols.max(1);
        self.blocks.clear();
        self.blocks.extend(values.chunks_exact(BLOCK).map(|chunk| {
            let (d, qs) = quantize_block(chunk);
            let sum: i32 = qs.iter().map(|&q| i32::from(q)).sum();
            ActBlock {
                d,
                s: d * sum as f32,
                qs,
            }
        }));
    }

    /// Rows held.
    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    /// Blocks per row.
    pub(crate) fn blocks_per_row(&self) -> usize {
        self.per_row
    }

    /// The blocks of row `row`.
    pub(crate) fn row(&self, row: usize) -> &[ActBlock] {
        &self.blocks[row * self.per_row..(row + 1) * self.per_row]
    }
}

/// The scale and 8-bit values of 32 values, rounding to nearest: `q = round(x / d)` with
/// `d = max|x| / 127`.
#[inline(always)]
fn quantize_block(values: &[f32]) -> (f32, [i8; 32]) {
    let max = values
        .iter()
        .fold(0.0f32, |max, value| max.max(value.abs()));
    let d = max / 127.0;
    let inverse = if d > 0.0 { 1.0 / d } else { 0.0 };
    let mut qs = [0; 32];
    for (q, value) in qs.iter_mut().zip(values) {
        // In -127..=127 by construction; `as` saturates anyway.
        *q = (value * inverse).round() as i8;
    }
    (d, qs)
}

fn raw_blocks(
    raw: &[u8],
    rows: usize,
    cols: usize,
    block_bytes: usize,
) -> Result<std::slice::ChunksExact<'_, u8>, QuantError> {
    if !cols.is_multiple_of(BLOCK) {
        return Err(QuantError::RowLength(cols));
    }
    let expected = rows * cols / BLOCK * block_bytes;
    if raw.len() != expected {
        return Err(QuantError::Size {
            expected,
            found: raw.len(),
        });
    }
    Ok(raw.chunks_exact(block_bytes))
}

fn f16_at(bytes: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([bytes[at], bytes[at + 1]]).to_f32()
}

fn finite<T>(block: T, scales: [f32; 2]) -> Result<T, QuantError> {
    if scales.iter().all(|scale| scale.is_finite()) {
        Ok(block)
    } else {
        Err(QuantError::NonFinite)
    }
}
