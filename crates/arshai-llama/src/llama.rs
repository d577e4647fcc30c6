//! The llama forward pass (SmolLM2's architecture) over the GGUF weights, batched.
//!
//! The caches live outside the model ([`KvCache`], one per sequence), so one
//! [`Llama::forward`] runs any number of sequences together: their rows (one token of each
//! decoding sequence, a chunk of a prompt being read) form one `rows × hidden` matrix, and
//! each weight matrix is read once per pass for all of them ([`Kernels::matmul`]);
//! attention and RoPE run per row, against its own sequence's cache at its own position.
//!
//! The pass runs on the calling (inference) thread, on plain `Vec<f32>` buffers; with
//! [`Llama::with_threads`] above one, helpers started for the pass share its products and
//! its attention (`crew`: chunks claimed, never assigned, so a helper the OS does not
//! schedule only leaves its share to the others). Q, K and V are one stacked matrix, as
//! are the gate and up projections, so a layer is four products.

use std::io::{Read, Seek, SeekFrom};

use candle_core::quantized::{GgmlDType, gguf_file};
use candle_core::{Device, Result};

use super::crew::{Attention, Crew};
use super::kernels::{Heads, Kernels};
use super::quant::{Activations, QMatrix};

/// The longest position the rotary table covers.
pub const MAX_POSITIONS: usize = 4096;

/// The shape of the model, from the GGUF metadata.
#[derive(Debug, Clone, Copy)]
struct Shape {
    heads: Heads,
    hidden: usize,
    feed_forward: usize,
    vocab: usize,
    rope_pairs: usize,
    eps: f32,
}

impl Shape {
    fn kv_dim(&self) -> usize {
        self.heads.n_kv_head * self.heads.head_dim
    }

    fn qkv_dim(&self) -> usize {
        self.hidden + 2 * self.kv_dim()
    }
}

struct Layer {
    attention_norm: Vec<f32>,
    /// Q, K and V stacked: `hidden + 2 × kv_dim` rows.
    qkv: QMatrix,
    wo: QMatrix,
    ffn_norm: Vec<f32>,
    /// Gate and up stacked: `2 × feed_forward` rows.
    gate_up: QMatrix,
    down: QMatrix,
}

/// The weights, shared by every sequence (read-only during a forward pass).
pub struct Llama {
    embeddings: QMatrix,
    /// `None`: tied to the embeddings.
    output: Option<QMatrix>,
    layers: Vec<Layer>,
    norm: Vec<f32>,
    /// `cos` and `sin` of every position's rotation angles: `MAX_POSITIONS × rope_pairs`.
    cos: Vec<f32>,
    sin: Vec<f32>,
    shape: Shape,
    kernels: Kernels,
    threads: usize,
}

/// One sequence's keys and values, per layer (`positions × kv_dim`, row-major). The
/// buffers are reserved for the whole answer (prompt plus the most tokens it may
/// generate), so appending never reallocates; memory is touched only as it fills.
pub struct KvCache {
    keys: Vec<Vec<f32>>,
    values: Vec<Vec<f32>>,
    len: usize,
    capacity: usize,
}

/// The rows one sequence contributes to a forward pass.
pub struct Rows<'a> {
    /// The tokens, at positions `cache.len()..`.
    pub tokens: &'a [u32],
    /// The sequence's cache; the tokens' keys and values are appended to it.
    pub cache: &'a mut KvCache,
}

impl Llama {
    /// Builds the model from a GGUF file's tensors. Q4_1, Q4_0 and Q8_0 matrices are used
    /// as they are (Q4_1 re-quantized to Q8_0 with `requantize_q8_0`); other types are
    /// dequantized and stored as Q8_0.
    pub fn from_gguf<R: Read + Seek>(
        content: &gguf_file::Content,
        reader: &mut R,
        requantize_q8_0: bool,
    ) -> Result<Self> {
        let meta = |key: &str| {
            content
                .metadata
                .get(key)
                .ok_or_else(|| candle_core::Error::msg(format!("no {key} in the metadata")))
        };
        let n_head = meta("llama.attention.head_count")?.to_u32()? as usize;
        let n_kv_head = meta("llama.attention.head_count_kv")?.to_u32()? as usize;
        let blocks = meta("llama.block_count")?.to_u32()? as usize;
        let hidden = meta("llama.embedding_length")?.to_u32()? as usize;
        let rope_dim = meta("llama.rope.dimension_count")?.to_u32()? as usize;
        let eps = meta("llama.attention.layer_norm_rms_epsilon")?.to_f32()?;
        let freq_base = meta("llama.rope.freq_base")
            .and_then(|value| value.to_f32())
            .unwrap_or(10_000.0);
        if n_kv_head == 0 || !n_head.is_multiple_of(n_kv_head) || !hidden.is_multiple_of(n_head) {
            candle_core::bail!("unsupported head counts {n_head} / {n_kv_head}");
        }
        let head_dim = hidden / n_head;
        if rope_dim > head_dim || !rope_dim.is_multiple_of(2) {
            candle_core::bail!("unsupported rotary dimension {rope_dim} for heads of {head_dim}");
        }
        let mut tensors = Tensors {
            content,
            reader,
            requantize_q8_0,
        };
        let embeddings = tensors.matrix("token_embd.weight")?;
        let output = if content.tensor_infos.contains_key("output.weight") {
            Some(tensors.matrix("output.weight")?)
        } else {
            None
        };
        let norm = tensors.vector("output_norm.weight", hidden)?;
        let mut layers = Vec::with_capacity(blocks);
        for index in 0..blocks {
            let name = |part: &str| format!("blk.{index}.{part}.weight");
            let stack = |parts: Vec<QMatrix>| {
                QMatrix::stack(parts).map_err(|error| candle_core::Error::msg(error.to_string()))
            };
            layers.push(Layer {
                attention_norm: tensors.vector(&name("attn_norm"), hidden)?,
                qkv: stack(vec![
                    tensors.matrix(&name("attn_q"))?,
                    tensors.matrix(&name("attn_k"))?,
                    tensors.matrix(&name("attn_v"))?,
                ])?,
                wo: tensors.matrix(&name("attn_output"))?,
                ffn_norm: tensors.vector(&name("ffn_norm"), hidden)?,
                gate_up: stack(vec![
                    tensors.matrix(&name("ffn_gate"))?,
                    tensors.matrix(&name("ffn_up"))?,
                ])?,
                down: tensors.matrix(&name("ffn_down"))?,
            });
        }
        let shape = Shape {
            heads: Heads {
                n_head,
                n_kv_head,
                head_dim,
            },
            hidden,
            feed_forward: layers.first().map_or(0, |layer| layer.down.cols),
            vocab: embeddings.rows,
            rope_pairs: rope_dim / 2,
            eps,
        };
        let model = Self {
            embeddings,
            output,
            layers,
            norm,
            cos: Vec::new(),
            sin: Vec::new(),
            shape,
            kernels: Kernels::detect(),
            threads: 1,
        };
        model.check_shapes()?;
        let (cos, sin) = rotary_table(rope_dim, freq_base);
        Ok(Self { cos, sin, ..model })
    }

    fn check_shapes(&self) -> Result<()> {
        let Shape {
            hidden,
            feed_forward,
            vocab,
            ..
        } = self.shape;
        let output = self.output.as_ref().unwrap_or(&self.embeddings);
        let mut expected = vec![
            ("token_embd", &self.embeddings, vocab, hidden),
            ("output", output, vocab, hidden),
        ];
        for layer in &self.layers {
            expected.extend([
                ("attn_q/k/v", &layer.qkv, self.shape.qkv_dim(), hidden),
                ("attn_output", &layer.wo, hidden, hidden),
                ("ffn_gate/up", &layer.gate_up, 2 * feed_forward, hidden),
                ("ffn_down", &layer.down, hidden, feed_forward),
            ]);
        }
        for (name, matrix, rows, cols) in expected {
            if matrix.rows != rows || matrix.cols != cols {
                candle_core::bail!(
                    "{name} is {}×{}, the model's shape needs {rows}×{cols}",
                    matrix.rows,
                    matrix.cols
                );
            }
        }
        Ok(())
    }

    /// The model with `threads` threads per forward pass (the calling one and
    /// `threads - 1` helpers started for each pass); at least 1.
    #[must_use]
    pub fn with_threads(self, threads: usize) -> Self {
        Self {
            threads: threads.max(1),
            ..self
        }
    }

    /// Threads per forward pass.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// What the products run on (`"avx2"` or `"portable"`).
    pub fn kernels(&self) -> &'static str {
        self.kernels.name()
    }

    /// An empty cache with room for `capacity` positions (at most [`MAX_POSITIONS`]).
    pub fn cache(&self, capacity: usize) -> Result<KvCache> {
        let capacity = capacity.clamp(1, MAX_POSITIONS);
        let size = capacity * self.shape.kv_dim();
        let buffers = || {
            (0..self.layers.len())
                .map(|_| Vec::with_capacity(size))
                .collect()
        };
        Ok(KvCache {
            keys: buffers(),
            values: buffers(),
            len: 0,
            capacity,
        })
    }

    /// Runs the rows of every sequence in `batch` through the model together, appending to
    /// each one's cache, and returns the logits after each sequence's last row:
    /// `batch.len() × vocab` values, row-major.
    pub fn forward(&self, batch: &mut [Rows<'_>]) -> Result<Vec<f32>> {
        if self.threads <= 1 {
            return self.pass(batch, Products::Alone(self.kernels));
        }
        let crew = Crew::new(self.kernels, self.threads);
        std::thread::scope(|scope| {
            for _ in 1..self.threads {
                // Without a helper the pass is only slower: the chunks are claimed, not
                // assigned.
                let _ = std::thread::Builder::new()
                    .name("arshai-llama".to_owned())
                    .spawn_scoped(scope, || crew.help());
            }
            let _finish = FinishOnDrop(&crew);
            self.pass(batch, Products::Shared(&crew))
        })
    }

    fn pass<'w>(&'w self, batch: &mut [Rows<'_>], products: Products<'_, 'w>) -> Result<Vec<f32>> {
        let shape = self.shape;
        let (hidden, kv_dim, qkv_dim, ffn) = (
            shape.hidden,
            shape.kv_dim(),
            shape.qkv_dim(),
            shape.feed_forward,
        );
        let mut rows = 0;
        for sequence in batch.iter() {
            let (tokens, cache) = (sequence.tokens, &sequence.cache);
            if tokens.is_empty() || cache.len + tokens.len() > cache.capacity {
                candle_core::bail!(
                    "{} tokens do not fit a cache at {} of {}",
                    tokens.len(),
                    cache.len,
                    cache.capacity
                );
            }
            if let Some(token) = tokens.iter().find(|&&token| token as usize >= shape.vocab) {
                candle_core::bail!("token {token} is outside the vocabulary");
            }
            rows += tokens.len();
        }
        let mut x = vec![0.0; rows * hidden];
        let tokens = batch.iter().flat_map(|sequence| sequence.tokens);
        for (row, &token) in x.chunks_exact_mut(hidden).zip(tokens) {
            self.embeddings.dequantize_row(token as usize, row);
        }
        let mut normed = vec![0.0; rows * hidden];
        let mut qkv = vec![0.0; rows * qkv_dim];
        let mut attended = vec![0.0; rows * hidden];
        let mut projected = vec![0.0; rows * hidden];
        let mut gate_up = vec![0.0; rows * 2 * ffn];
        let mut gated = vec![0.0; rows * ffn];
        let mut acts = Activations::default();
        let mut attention = Attention {
            heads: Some(shape.heads),
            qkv_dim,
            ..Attention::default()
        };
        for (index, layer) in self.layers.iter().enumerate() {
            rms_norm(&x, &layer.attention_norm, shape.eps, &mut normed);
            self.kernels.quantize(&mut acts, &normed, hidden);
            products.matmul(&layer.qkv, &mut acts, &mut qkv);
            // RoPE, then each row's keys and values into its sequence's cache; the
            // caches are lent to the attention (which may be shared) and put back.
            attention.rows.clear();
            let mut first = 0;
            for (at, sequence) in batch.iter_mut().enumerate() {
                let count = sequence.tokens.len();
                let cache = &mut *sequence.cache;
                let (keys, values) = (&mut cache.keys[index], &mut cache.values[index]);
                for (offset, row) in qkv[first * qkv_dim..(first + count) * qkv_dim]
                    .chunks_exact_mut(qkv_dim)
                    .enumerate()
                {
                    let position = cache.len + offset;
                    let (q, kv) = row.split_at_mut(hidden);
                    let (k, v) = kv.split_at_mut(kv_dim);
                    self.rotate(q, position);
                    self.rotate(k, position);
                    keys.extend_from_slice(k);
                    values.extend_from_slice(v);
                    attention.rows.push((at, position + 1));
                }
                attention
                    .caches
                    .push((std::mem::take(keys), std::mem::take(values)));
                first += count;
            }
            attention.qkv = std::mem::take(&mut qkv);
            products.attend(&mut attention, &mut attended);
            qkv = std::mem::take(&mut attention.qkv);
            for (sequence, (keys, values)) in batch.iter_mut().zip(attention.caches.drain(..)) {
                sequence.cache.keys[index] = keys;
                sequence.cache.values[index] = values;
            }
            self.kernels.quantize(&mut acts, &attended, hidden);
            products.matmul(&layer.wo, &mut acts, &mut projected);
            add(&mut x, &projected);
            rms_norm(&x, &layer.ffn_norm, shape.eps, &mut normed);
            self.kernels.quantize(&mut acts, &normed, hidden);
            products.matmul(&layer.gate_up, &mut acts, &mut gate_up);
            for (out, both) in gated
                .chunks_exact_mut(ffn)
                .zip(gate_up.chunks_exact(2 * ffn))
            {
                let (gate, up) = both.split_at(ffn);
                for ((out, &g), &u) in out.iter_mut().zip(gate).zip(up) {
                    *out = g / (1.0 + (-g).exp()) * u;
                }
            }
            self.kernels.quantize(&mut acts, &gated, ffn);
            products.matmul(&layer.down, &mut acts, &mut projected);
            add(&mut x, &projected);
        }
        let mut last = Vec::with_capacity(batch.len() * hidden);
        let mut end = 0;
        for sequence in batch.iter_mut() {
            end += sequence.tokens.len();
            last.extend_from_slice(&x[(end - 1) * hidden..end * hidden]);
            sequence.cache.len += sequence.tokens.len();
        }
        let mut normed = vec![0.0; last.len()];
        rms_norm(&last, &self.norm, shape.eps, &mut normed);
        self.kernels.quantize(&mut acts, &normed, hidden);
        let mut logits = vec![0.0; batch.len() * shape.vocab];
        let output = self.output.as_ref().unwrap_or(&self.embeddings);
        products.matmul(output, &mut acts, &mut logits);
        Ok(logits)
    }

    /// Tokens in the vocabulary (the length of a row of logits).
    pub fn vocab(&self) -> usize {
        self.shape.vocab
    }

    /// Rotates each head of `x` (GGUF's interleaved pairs) by `position`'s angles.
    fn rotate(&self, x: &mut [f32], position: usize) {
        let pairs = self.shape.rope_pairs;
        let cos = &self.cos[position * pairs..(position + 1) * pairs];
        let sin = &self.sin[position * pairs..(position + 1) * pairs];
        for head in x.chunks_exact_mut(self.shape.heads.head_dim) {
            for ((pair, &cos), &sin) in head.chunks_exact_mut(2).zip(cos).zip(sin) {
                let (a, b) = (pair[0], pair[1]);
                pair[0] = a * cos - b * sin;
                pair[1] = a * sin + b * cos;
            }
        }
    }
}

/// Where a pass's products run.
enum Products<'c, 'w> {
    /// On the calling thread.
    Alone(Kernels),
    /// Shared with the crew's helpers.
    Shared(&'c Crew<'w>),
}

impl<'w> Products<'_, 'w> {
    /// `out = x · weightsᵀ`; `x` may be left empty (quantize into it again).
    fn matmul(&self, weights: &'w QMatrix, x: &mut Activations, out: &mut Vec<f32>) {
        match self {
            Self::Alone(kernels) => kernels.matmul(weights, x, out),
            Self::Shared(crew) => crew.matmul(weights, std::mem::take(x), out),
        }
    }

    /// Every row's attention into `out` (`rows × hidden`); `attention` is handed back.
    fn attend(&self, attention: &mut Attention, out: &mut Vec<f32>) {
        match self {
            Self::Alone(kernels) => {
                let mut scores = Vec::new();
                let hidden = out.len() / attention.rows.len().max(1);
                for (row, out) in out.chunks_exact_mut(hidden).enumerate() {
                    attention.row(*kernels, row, &mut scores, out);
                }
            }
            Self::Shared(crew) => crew.attend(attention, out),
        }
    }
}

/// Releases the helpers when the pass ends, returned or unwound.
struct FinishOnDrop<'c, 'w>(&'c Crew<'w>);

impl Drop for FinishOnDrop<'_, '_> {
    fn drop(&mut self) {
        self.0.finish();
    }
}

/// Reads the file's tensors into the forms the forward pass uses.
struct Tensors<'a, R> {
    content: &'a gguf_file::Content,
    reader: &'a mut R,
    requantize_q8_0: bool,
}

impl<R: Read + Seek> Tensors<'_, R> {
    fn matrix(&mut self, name: &str) -> Result<QMatrix> {
        let info = self
            .content
            .tensor_infos
            .get(name)
            .ok_or_else(|| candle_core::Error::msg(format!("no tensor {name}")))?;
        let (rows, cols) = match info.shape.dims() {
            &[rows, cols] => (rows, cols),
            dims => candle_core::bail!("{name} has shape {dims:?}, not a matrix"),
        };
        let matrix = match info.ggml_dtype {
            GgmlDType::Q4_1 | GgmlDType::Q4_0 | GgmlDType::Q8_0 => {
                let dtype = info.ggml_dtype;
                let bytes = rows * cols / dtype.block_size() * dtype.type_size();
                let mut raw = vec![0; bytes];
                self.reader.seek(SeekFrom::Start(
                    self.content.tensor_data_offset.saturating_add(info.offset),
                ))?;
                self.reader.read_exact(&mut raw)?;
                match dtype {
                    GgmlDType::Q4_1 => QMatrix::from_q4_1(&raw, rows, cols),
                    GgmlDType::Q4_0 => QMatrix::from_q4_0(&raw, rows, cols),
                    _ => QMatrix::from_q8_0(&raw, rows, cols),
                }
            }
            _ => {
                let values = self.values(name)?;
                QMatrix::quantize_q8_0(&values, rows, cols)
            }
        };
        let matrix = if self.requantize_q8_0 {
            matrix.and_then(QMatrix::into_q8_0)
        } else {
            matrix
        };
        matrix.map_err(|error| candle_core::Error::msg(format!("{name}: {error}")))
    }

    fn vector(&mut self, name: &str, len: usize) -> Result<Vec<f32>> {
        let values = self.values(name)?;
        if values.len() != len {
            candle_core::bail!("{name} has {} values, the model needs {len}", values.len());
        }
        Ok(values)
    }

    /// Any tensor, dequantized by candle, flattened.
    fn values(&mut self, name: &str) -> Result<Vec<f32>> {
        self.content
            .tensor(self.reader, name, &Device::Cpu)?
            .dequantize(&Device::Cpu)?
            .flatten_all()?
            .to_vec1::<f32>()
    }
}

/// Each row of `x` (rows of `weight.len()`) scaled to unit root mean square, times
/// `weight`, into `out`.
fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let width = weight.len();
    for (row, out) in x.chunks_exact(width).zip(out.chunks_exact_mut(width)) {
        let mean_square = row.iter().map(|value| value * value).sum::<f32>() / width as f32;
        let scale = 1.0 / (mean_square + eps).sqrt();
        for ((out, value), weight) in out.iter_mut().zip(row).zip(weight) {
            *out = value * scale * weight;
        }
    }
}

fn add(x: &mut [f32], delta: &[f32]) {
    for (x, delta) in x.iter_mut().zip(delta) {
        *x += delta;
    }
}

/// `cos` and `sin` of `position × base^(-2i/dim)` for every position and pair `i`.
fn rotary_table(dim: usize, base: f32) -> (Vec<f32>, Vec<f32>) {
    let pairs = dim / 2;
    let theta: Vec<f32> = (0..pairs)
        .map(|i| 1.0 / base.powf((2 * i) as f32 / dim as f32))
        .collect();
    let mut cos = Vec::with_capacity(MAX_POSITIONS * pairs);
    let mut sin = Vec::with_capacity(MAX_POSITIONS * pairs);
    for position in 0..MAX_POSITIONS {
        for &theta in &theta {
            let angle = position as f32 * theta;
            cos.push(angle.cos());
            sin.push(angle.sin());
        }
    }
    (cos, sin)
}
