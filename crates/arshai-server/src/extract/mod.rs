//! Request extractors whose rejections are [`crate::ApiError`]s, so every malformed
//! request gets the same JSON error body whatever part of it is wrong.
//!
//! - [`JsonBody`] — the body as JSON: 400 (not JSON), 413 (too large), 415 (another media
//!   type), 422 (JSON of the wrong shape).
//! - [`PathParams`] — path segments: 400 when a segment is not valid (percent-decoded) UTF-8.
//! - [`IdempotencyKey`] — the `Idempotency-Key` header.

mod idempotency;
mod json;
mod path;

pub use idempotency::{IDEMPOTENCY_KEY_HEADER, IdempotencyKey, MAX_KEY_LEN};
pub use json::JsonBody;
pub use path::PathParams;
