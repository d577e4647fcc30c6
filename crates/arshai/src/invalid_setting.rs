//! The error of a setting whose value has the right type but is out of range or inconsistent.
//!
//! Every layer's settings section checks itself and reports this one error, so that the
//! loader ([`crate::settings`]) can compose them without the layers knowing the loader.

/// A value that has the right type but is out of range or inconsistent. The message names
/// the dotted key and the bad value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid setting {key} = {value}: {reason}")]
pub struct InvalidSetting {
    /// The dotted key (`memory.ttl_seconds`).
    pub key: String,
    /// The offending value, as text (`(hidden)` for secrets).
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
}

impl InvalidSetting {
    /// The error for `key` holding `value`, with `reason`.
    pub fn new(key: impl Into<String>, value: impl ToString, reason: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    /// Checks that each `(key, seconds)` is a positive, finite number of seconds below 1e9.
    pub fn check_seconds<'a>(
        durations: impl IntoIterator<Item = (&'a str, f64)>,
    ) -> Result<(), Self> {
        for (key, value) in durations {
            if !(value.is_finite() && value > 0.0 && value < 1e9) {
                return Err(Self::new(
                    key,
                    value,
                    "must be a positive number of seconds",
                ));
            }
        }
        Ok(())
    }

    /// Checks that each `(key, count)` is at least 1.
    pub fn check_at_least_one<'a>(
        counts: impl IntoIterator<Item = (&'a str, u64)>,
    ) -> Result<(), Self> {
        for (key, value) in counts {
            if value == 0 {
                return Err(Self::new(key, 0, "must be at least 1"));
            }
        }
        Ok(())
    }
}
