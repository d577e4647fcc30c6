//! The llama forward pass (SmolLM2's architecture) over the GGUF weights, batched.
//!
//! candle's `quantized_llama::ModelWeights` keeps one KV cache inside the model, so it runs
//! one sequence at a time. Here the caches live outside ([`KvCache`], one per sequence) and
//! one [`Llama::forward`] runs any number of sequences together: their rows (one token of
//! each decoding sequence, a chunk of a prompt being read) form one `[rows, hidden]` matrix,
//! so each quantized weight is read once per step for all of them; attention and RoPE run
//! per sequence, against its own cache at its own positions.

use candle_core::quantized::{GgmlDType, QMatMul, QTensor, gguf_file};
use candle_core::{DType, Device, Module, Result, Tensor};
use candle_transformers::quantized_nn::RmsNorm;

/// The longest position the rotary table covers.
pub(crate) const MAX_POSITIONS: usize = 4096;

/// The shape of the model, from the GGUF metadata.
#[derive(Debug, Clone, Copy)]
struct Shape {
    n_head: usize,
    n_kv_head: usize,
    head_dim: usize,
    hidden: usize,
}

struct Layer {
    attention_norm: RmsNorm,
    wq: QMatMul,
    wk: QMatMul,
    wv: QMatMul,
    wo: QMatMul,
    ffn_norm: RmsNorm,
    gate: QMatMul,
    up: QMatMul,
    down: QMatMul,
}

/// The weights, shared by every sequence (read-only during a forward pass).
pub(crate) struct Llama {
    embeddings: Tensor,
    layers: Vec<Layer>,
    norm: RmsNorm,
    output: QMatMul,
    cos: Tensor,
    sin: Tensor,
    shape: Shape,
}

/// One sequence's keys and values, per layer, in buffers sized for its whole answer
/// (prompt plus the most tokens it may generate): appending never reallocates.
pub(crate) struct KvCache {
    layers: Vec<(Tensor, Tensor)>,
    len: usize,
    capacity: usize,
}

/// The rows one sequence contributes to a forward pass.
pub(crate) struct Rows<'a> {
    /// The tokens, at positions `cache.len()..`.
    pub(crate) tokens: &'a [u32],
    /// The sequence's cache; the tokens' keys and values are appended to it.
    pub(crate) cache: &'a mut KvCache,
}

impl Llama {
    /// Builds the model from a GGUF file's tensors. With `requantize_q8_0`, Q4_1 matrices
    /// are converted to Q8_0, which candle multiplies with AVX2 kernels (it has none for
    /// Q4_1).
    pub(crate) fn from_gguf<R: std::io::Read + std::io::Seek>(
        content: &gguf_file::Content,
        reader: &mut R,
        requantize_q8_0: bool,
    ) -> Result<Self> {
        let device = Device::Cpu;
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
        let eps = f64::from(meta("llama.attention.layer_norm_rms_epsilon")?.to_f32()?);
        let freq_base = meta("llama.rope.freq_base")
            .and_then(|value| value.to_f32())
            .unwrap_or(10_000.0);
        if n_kv_head == 0 || !n_head.is_multiple_of(n_kv_head) || !hidden.is_multiple_of(n_head) {
            candle_core::bail!("unsupported head counts {n_head} / {n_kv_head}");
        }
        let mut tensor = |name: &str| content.tensor(reader, name, &device);
        let matmul = |tensor: QTensor| QMatMul::from_qtensor(requantize(tensor, requantize_q8_0)?);
        let embeddings_q = tensor("token_embd.weight")?;
        let embeddings = embeddings_q.dequantize(&device)?;
        let norm = RmsNorm::from_qtensor(tensor("output_norm.weight")?, eps)?;
        let output = match tensor("output.weight") {
            Ok(output) => matmul(output)?,
            Err(_) => matmul(embeddings_q)?,
        };
        let mut layers = Vec::with_capacity(blocks);
        for index in 0..blocks {
            let mut weight = |name: &str| tensor(&format!("blk.{index}.{name}.weight"));
            layers.push(Layer {
                attention_norm: RmsNorm::from_qtensor(weight("attn_norm")?, eps)?,
                wq: matmul(weight("attn_q")?)?,
                wk: matmul(weight("attn_k")?)?,
                wv: matmul(weight("attn_v")?)?,
                wo: matmul(weight("attn_output")?)?,
                ffn_norm: RmsNorm::from_qtensor(weight("ffn_norm")?, eps)?,
                gate: matmul(weight("ffn_gate")?)?,
                up: matmul(weight("ffn_up")?)?,
                down: matmul(weight("ffn_down")?)?,
            });
        }
        let (cos, sin) = rotary_table(rope_dim, freq_base, &device)?;
        Ok(Self {
            embeddings,
            layers,
            norm,
            output,
            cos,
            sin,
            shape: Shape {
                n_head,
                n_kv_head,
                head_dim: hidden / n_head,
                hidden,
            },
        })
    }

    /// An empty cache with room for `capacity` positions (at most [`MAX_POSITIONS`]).
    pub(crate) fn cache(&self, capacity: usize) -> Result<KvCache> {
        let capacity = capacity.clamp(1, MAX_POSITIONS);
        let shape = (self.shape.n_kv_head, capacity, self.shape.head_dim);
        let layers = (0..self.layers.len())
            .map(|_| {
                Ok((
                    Tensor::zeros(shape, DType::F32, &Device::Cpu)?,
                    Tensor::zeros(shape, DType::F32, &Device::Cpu)?,
                ))
            })
            .collect::<Result<_>>()?;
        Ok(KvCache {
            layers,
            len: 0,
            capacity,
        })
    }

    /// Runs the rows of every sequence in `batch` through the model together, appending to
    /// each one's cache, and returns the logits after each sequence's last row:
    /// `[batch.len(), vocab]`.
    pub(crate) fn forward(&self, batch: &mut [Rows<'_>]) -> Result<Tensor> {
        let device = Device::Cpu;
        let mut ids = Vec::new();
        for rows in batch.iter() {
            if rows.tokens.is_empty() || rows.cache.len + rows.tokens.len() > rows.cache.capacity {
                candle_core::bail!(
                    "{} tokens do not fit a cache at {} of {}",
                    rows.tokens.len(),
                    rows.cache.len,
                    rows.cache.capacity
                );
            }
            ids.extend_from_slice(rows.tokens);
        }
        let ids = Tensor::new(ids.as_slice(), &device)?;
        let mut x = self.embeddings.index_select(&ids, 0)?;
        for (index, layer) in self.layers.iter().enumerate() {
            let h = layer.attention_norm.forward(&x)?;
            let q = layer.wq.forward(&h)?;
            let k = layer.wk.forward(&h)?;
            let v = layer.wv.forward(&h)?;
            let mut outputs = Vec::with_capacity(batch.len());
            let mut start = 0;
            for rows in batch.iter_mut() {
                let n = rows.tokens.len();
                let attended = self.attend(
                    &q.narrow(0, start, n)?,
                    &k.narrow(0, start, n)?,
                    &v.narrow(0, start, n)?,
                    rows.cache,
                    index,
                )?;
                outputs.push(attended);
                start += n;
            }
            let attended = if outputs.len() == 1 {
                outputs.remove(0)
            } else {
                Tensor::cat(&outputs, 0)?
            };
            x = (layer.wo.forward(&attended)? + x)?;
            let h = layer.ffn_norm.forward(&x)?;
            let gated =
                (candle_nn::ops::silu(&layer.gate.forward(&h)?)? * layer.up.forward(&h)?)?;
            x = (layer.down.forward(&gated)? + x)?;
        }
        let mut last = Vec::with_capacity(batch.len());
        let mut end = 0;
        for rows in batch.iter_mut() {
            end += rows.tokens.len();
            last.push((end - 1) as u32);
            rows.cache.len += rows.tokens.len();
        }
        let x = x.index_select(&Tensor::new(last.as_slice(), &device)?, 0)?;
        self.output.forward(&self.norm.forward(&x)?)
    }

    /// Attention of one sequence's `n` new rows (`q`, `k`, `v`: `[n, heads * head_dim]`)
    /// over its cached positions plus themselves, causally; `[n, hidden]`.
    fn attend(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        cache: &mut KvCache,
        layer: usize,
    ) -> Result<Tensor> {
        let Shape {
            n_head,
            n_kv_head,
            head_dim,
            hidden,
        } = self.shape;
        let n = q.dim(0)?;
        let position = cache.len;
        let heads = |x: &Tensor, count: usize| {
            x.reshape((n, count, head_dim))?
                .transpose(0, 1)?
                .contiguous()?
                .unsqueeze(0)
        };
        let cos = self.cos.narrow(0, position, n)?;
        let sin = self.sin.narrow(0, position, n)?;
        let q = candle_nn::rotary_emb::rope_i(&heads(q, n_head)?, &cos, &sin)?.squeeze(0)?;
        let k = candle_nn::rotary_emb::rope_i(&heads(k, n_kv_head)?, &cos, &sin)?.squeeze(0)?;
        let v = heads(v, n_kv_head)?.squeeze(0)?;
        let (k_cache, v_cache) = &cache.layers[layer];
        k_cache.slice_set(&k, 1, position)?;
        v_cache.slice_set(&v, 1, position)?;
        let total = position + n;
        let keys = k_cache.narrow(1, 0, total)?;
        let values = v_cache.narrow(1, 0, total)?;
        // Grouped-query attention: the query heads sharing a key head are stacked as rows.
        let group = n_head / n_kv_head;
        let q = q.reshape((n_kv_head, group * n, head_dim))?;
        let scores = (q.matmul(&keys.t()?)? / (head_dim as f64).sqrt())?;
        let scores = if n > 1 {
            let mask = causal_mask(n, position)?;
            scores
                .reshape((n_kv_head, group, n, total))?
                .broadcast_add(&mask)?
                .reshape((n_kv_head, group * n, total))?
        } else {
            scores
        };
        let weights = candle_nn::ops::softmax_last_dim(&scores)?;
        weights
            .matmul(&values.contiguous()?)?
            .reshape((n_head, n, head_dim))?
            .transpose(0, 1)?
            .reshape((n, hidden))
    }
}

/// `[n, position + n]`: 0 where row `i` may attend (positions up to `position + i`),
/// -inf elsewhere.
fn causal_mask(n: usize, position: usize) -> Result<Tensor> {
    let total = position + n;
    let values: Vec<f32> = (0..n)
        .flat_map(|row| {
            (0..total).map(move |column| {
                if column <= position + row {
                    0.0
                } else {
                    f32::NEG_INFINITY
                }
            })
        })
        .collect();
    Tensor::from_vec(values, (n, total), &Device::Cpu)
}

fn rotary_table(dim: usize, base: f32, device: &Device) -> Result<(Tensor, Tensor)> {
    let theta: Vec<f32> = (0..dim)
        .step_by(2)
        .map(|i| 1.0 / base.powf(i as f32 / dim as f32))
        .collect();
    let theta = Tensor::new(theta.as_slice(), device)?;
    let angles = Tensor::arange(0, MAX_POSITIONS as u32, device)?
        .to_dtype(DType::F32)?
        .reshape((MAX_POSITIONS, 1))?
        .matmul(&theta.reshape((1, theta.elem_count()))?)?;
    Ok((angles.cos()?, angles.sin()?))
}

/// Q4_1 → Q8_0 when asked and the row length allows it; any other tensor unchanged.
fn requantize(tensor: QTensor, requantize_q8_0: bool) -> Result<QTensor> {
    let row = tensor.shape().dims().last().copied().unwrap_or(0);
    if !requantize_q8_0
        || tensor.dtype() != GgmlDType::Q4_1
        || row % GgmlDType::Q8_0.block_size() != 0
    {
        return Ok(tensor);
    }
    QTensor::quantize(&tensor.dequantize(&Device::Cpu)?, GgmlDType::Q8_0)
}
