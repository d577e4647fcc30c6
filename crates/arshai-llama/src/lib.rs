//! The forward pass of arshai's embedded local model.
//!
//! [`Llama`] holds a llama-architecture model's weights from a GGUF file (SmolLM2 is the
//! one arshai ships) and runs any number of sequences through it in one
//! [`Llama::forward`], each with its own [`KvCache`]. The products run on this crate's own
//! kernels over the file's quantized blocks (`quant`, `kernels`): AVX2 when the CPU has
//! it, portable Rust otherwise, on the calling thread and any helpers it is given (`crew`).
//!
//! It is a crate of its own so that development builds can optimize it (an unoptimized
//! forward pass generates a few tokens per second) while the rest of the workspace builds
//! fast.

mod crew;
mod kernels;
mod llama;
mod quant;

pub use llama::{KvCache, Llama, MAX_POSITIONS, Rows};

#[cfg(test)]
mod tests;
