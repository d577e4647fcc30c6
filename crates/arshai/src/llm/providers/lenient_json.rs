//! Lenient decoding shared by the providers' JSON wire formats.

use serde::Deserialize;

/// Deserializes `null` as the type's default, so `"tool_calls": null` decodes like a
/// missing field.
pub(crate) fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}
