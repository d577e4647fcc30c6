//! Loading the GGUF file: metadata and tokenizer first (fast, at startup), weights second
//! (on an inference thread) into [`Llama`], re-quantized from Q4_1 to Q8_0 when asked.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file;

use super::tokenizer::{ChatTokenizer, TokenizerError};
use arshai_llama::Llama;

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

/// Loads the weights of `path`. With `requantize_q8_0`, Q4_1 tensors are converted to Q8_0
/// as they are read.
///
/// Slow (about a second): call it on an inference thread, never on the async runtime.
pub(crate) fn load_weights(path: &Path, requantize_q8_0: bool) -> Result<Llama, LoadError> {
    let invalid = |message: String| LoadError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    let content = read_content(path)?;
    let mut reader = BufReader::new(File::open(path).map_err(|e| invalid(e.to_string()))?);
    Llama::from_gguf(&content, &mut reader, requantize_q8_0).map_err(|e| invalid(e.to_string()))
}
