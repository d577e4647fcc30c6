//! Loading the GGUF file: metadata and tokenizer first (fast, at startup), weights second
//! (on an inference thread), re-quantized from Q4_1 to Q8_0 when asked.

use std::fs::File;
use std::io::{BufReader, Cursor};
use std::path::{Path, PathBuf};

use candle_core::Device;
use candle_core::quantized::{GgmlDType, QTensor, gguf_file};
use candle_transformers::models::quantized_llama::ModelWeights;

use super::tokenizer::{ChatTokenizer, TokenizerError};

/// Why the model file could not be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LoadError {
    /// The file does not exist.
    #[error(
        "the local model file {path} does not exist: run scripts/fetch-model (or set \
         providers.local.model_path / ARSHAI_PROVIDERS__LOCAL__MODEL_PATH)"
    )]
    Missing {
        /// The path that was looked up.
        path: PathBuf,
    },
    /// The file exists but is not a usable GGUF model.
    #[error("cannot load the local model {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The tokenizer in the metadata is unusable.
    #[error("cannot build the tokenizer of {path}: {source}")]
    Tokenizer {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: TokenizerError,
    },
}

/// What the GGUF metadata says about the model, read at startup.
pub(crate) struct ModelHeader {
    /// The file.
    pub(crate) path: PathBuf,
    /// The tokenizer and chat format.
    pub(crate) tokenizer: ChatTokenizer,
    /// The model's context length as trained.
    pub(crate) trained_context: Option<usize>,
}

impl ModelHeader {
    /// Reads the metadata of `path` and builds its tokenizer, without reading the weights.
    pub(crate) fn read(path: &Path) -> Result<Self, LoadError> {
        if !path.is_file() {
            return Err(LoadError::Missing {
                path: path.to_path_buf(),
            });
        }
        let content = read_content(path)?;
        let tokenizer =
            ChatTokenizer::from_gguf(&content).map_err(|source| LoadError::Tokenizer {
                path: path.to_path_buf(),
                source,
            })?;
        let trained_context = content
            .metadata
            .get("llama.context_length")
            .and_then(|value| value.to_u32().ok())
            .map(|value| value as usize);
        Ok(Self {
            path: path.to_path_buf(),
            tokenizer,
            trained_context,
        })
    }
}

fn read_content(path: &Path) -> Result<gguf_file::Content, LoadError> {
    let invalid = |message: String| LoadError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    let mut reader = BufReader::new(File::open(path).map_err(|e| invalid(e.to_string()))?);
    gguf_file::Content::read(&mut reader).map_err(|e| invalid(e.to_string()))
}

/// Loads the weights of `path`. With `requantize_q8_0`, Q4_1 tensors are converted to Q8_0,
/// which candle multiplies with AVX2 kernels (it has none for Q4_1).
///
/// Slow (about a second): call it on an inference thread, never on the async runtime.
pub(crate) fn load_weights(path: &Path, requantize_q8_0: bool) -> Result<ModelWeights, LoadError> {
    let invalid = |message: String| LoadError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    let content = read_content(path)?;
    let mut reader = BufReader::new(File::open(path).map_err(|e| invalid(e.to_string()))?);
    let device = Device::Cpu;
    let needs_requantize = requantize_q8_0
        && content
            .tensor_infos
            .values()
            .any(|info| info.ggml_dtype == GgmlDType::Q4_1);
    if !needs_requantize {
        return ModelWeights::from_gguf(content, &mut reader, &device)
            .map_err(|e| invalid(e.to_string()));
    }
    // candle builds the model only from a GGUF reader, so the converted tensors are written
    // to an in-memory GGUF (about 150 MB, freed once the model is built).
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort();
    let mut tensors = Vec::with_capacity(names.len());
    for name in names {
        let tensor = content
            .tensor(&mut reader, name, &device)
            .map_err(|e| invalid(format!("tensor {name}: {e}")))?;
        let tensor = requantize(tensor).map_err(|e| invalid(format!("tensor {name}: {e}")))?;
        tensors.push((name.as_str(), tensor));
    }
    let metadata: Vec<(&str, &gguf_file::Value)> = content
        .metadata
        .iter()
        .map(|(key, value)| (key.as_str(), value))
        .collect();
    let tensor_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (*n, t)).collect();
    let mut buffer = Cursor::new(Vec::new());
    gguf_file::write(&mut buffer, &metadata, &tensor_refs).map_err(|e| invalid(e.to_string()))?;
    drop(tensor_refs);
    drop(tensors);
    buffer.set_position(0);
    let converted = gguf_file::Content::read(&mut buffer).map_err(|e| invalid(e.to_string()))?;
    ModelWeights::from_gguf(converted, &mut buffer, &device).map_err(|e| invalid(e.to_string()))
}

/// Q4_1 → Q8_0 when the row length allows it; any other tensor unchanged.
fn requantize(tensor: QTensor) -> candle_core::Result<QTensor> {
    let row = tensor.shape().dims().last().copied().unwrap_or(0);
    if tensor.dtype() != GgmlDType::Q4_1 || row % GgmlDType::Q8_0.block_size() != 0 {
        return Ok(tensor);
    }
    let values = tensor.dequantize(&Device::Cpu)?;
    QTensor::quantize(&values, GgmlDType::Q8_0)
}
