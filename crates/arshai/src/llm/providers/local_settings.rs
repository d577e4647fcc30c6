//! Settings of the embedded local model (`[providers.local]`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::InvalidSetting;

/// Where `scripts/fetch-model` puts the model, relative to the repository root.
pub const DEFAULT_MODEL_PATH: &str = "models/SmolLM2-135M-Instruct-Q4_1.gguf";

/// The longest context the embedded model supports (the forward pass's rotary table).
pub const MAX_CONTEXT_TOKENS: usize = 4096;

/// The most kernel threads `kernel_threads = 0` chooses (a 135M-parameter model's products
/// are too small to share among more).
const MAX_AUTO_KERNEL_THREADS: usize = 8;

/// The most kernel threads that may be configured.
const MAX_KERNEL_THREADS: usize = 64;

/// The embedded local model: SmolLM2-135M-Instruct run in-process, used when no HTTP
/// provider is configured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocalProviderSettings {
    /// The GGUF file. A relative path is looked up from the working directory, then from
    /// each of its parents (so tests running inside `crates/…` find the repository's
    /// `models/`). `ARSHAI_PROVIDERS__LOCAL__MODEL_PATH` sets it; `scripts/fetch-model`
    /// writes to the same path.
    pub model_path: PathBuf,
    /// Dedicated inference threads, never the async runtime's: each runs a continuous batch
    /// of up to `batch_size` generations. One is best on most machines (its batch shares
    /// every forward pass); more only split the concurrent requests into separate batches.
    pub threads: usize,
    /// Threads that share each forward pass of an inference thread: the inference thread
    /// and `kernel_threads - 1` helpers, which claim chunks of each matrix product and of
    /// each layer's attention (a helper the OS does not schedule leaves its chunks to the
    /// others, so busy cores slow a pass down instead of stalling it). `0` (the default):
    /// the CPUs this process may use (`std::thread::available_parallelism`, which follows a
    /// container's CPU quota), at most 8.
    pub kernel_threads: usize,
    /// Generations one inference thread runs together (continuous batching): each forward
    /// pass computes the next token of every member, reading the weights once for all.
    /// Requests join as slots free up and leave when they finish; beyond the slots they
    /// wait in the queue.
    pub batch_size: usize,
    /// Requests that may wait for a worker; beyond that, calls fail fast with a
    /// rate-limited error (HTTP 503 with `Retry-After` at the server).
    pub queue_size: usize,
    /// Upper bound on generated tokens per call (a request may ask for fewer).
    pub max_new_tokens: usize,
    /// Context window in tokens: prompt plus answer. At most 4096.
    pub context_tokens: usize,
    /// Re-quantize Q4_1 weights to Q8_0 at load. Both have AVX2 kernels; Q8_0 reads
    /// prompts a little faster, for about 0.7 s more load time and ~60 MB more memory.
    pub requantize_q8_0: bool,
}

impl Default for LocalProviderSettings {
    fn default() -> Self {
        Self {
            model_path: PathBuf::from(DEFAULT_MODEL_PATH),
            threads: 1,
            kernel_threads: 0,
            batch_size: 8,
            queue_size: 16,
            max_new_tokens: 512,
            context_tokens: MAX_CONTEXT_TOKENS,
            requantize_q8_0: false,
        }
    }
}

impl LocalProviderSettings {
    /// The model file to open: `model_path` when absolute or present relative to the working
    /// directory, else the first parent directory of the working directory that holds it,
    /// else `model_path` unchanged (so the error names what was configured).
    pub fn resolved_model_path(&self) -> PathBuf {
        resolve_upwards(&self.model_path)
    }

    /// `kernel_threads` with `0` resolved to this machine's available CPUs (at most 8).
    pub fn resolved_kernel_threads(&self) -> usize {
        match self.kernel_threads {
            0 => std::thread::available_parallelism()
                .map_or(1, std::num::NonZeroUsize::get)
                .min(MAX_AUTO_KERNEL_THREADS),
            threads => threads,
        }
    }

    /// Checks ranges.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        let invalid = |key: &str, value: usize, reason: &str| {
            InvalidSetting::new(format!("providers.local.{key}"), value, reason)
        };
        for (key, value) in [
            ("threads", self.threads),
            ("batch_size", self.batch_size),
            ("max_new_tokens", self.max_new_tokens),
        ] {
            if value == 0 {
                return Err(invalid(key, value, "must be at least 1"));
            }
        }
        if self.kernel_threads > MAX_KERNEL_THREADS {
            return Err(invalid(
                "kernel_threads",
                self.kernel_threads,
                "must be at most 64 (0: the available CPUs)",
            ));
        }
        if !(16..=MAX_CONTEXT_TOKENS).contains(&self.context_tokens) {
            return Err(invalid(
                "context_tokens",
                self.context_tokens,
                "must be within 16 to 4096",
            ));
        }
        if self.max_new_tokens >= self.context_tokens {
            return Err(invalid(
                "max_new_tokens",
                self.max_new_tokens,
                "must be smaller than providers.local.context_tokens",
            ));
        }
        Ok(())
    }
}

fn resolve_upwards(path: &Path) -> PathBuf {
    if path.is_absolute() || path.exists() {
        return path.to_path_buf();
    }
    if let Ok(cwd) = std::env::current_dir() {
        for dir in cwd.ancestors().skip(1) {
            let candidate = dir.join(path);
            if candidate.exists() {
                return candidate;
            }
        }
    }
    path.to_path_buf()
}
