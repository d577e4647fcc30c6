//! The endpoint of an HTTP provider: its checked base URL and the headers sent with every
//! request (configured pairs, credentials marked sensitive).

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use crate::llm::LlmError;

/// `base` without its trailing slash, refused unless it is an http(s) URL.
pub(crate) fn checked_base_url<'a>(
    provider: &'static str,
    base: &'a str,
) -> Result<&'a str, LlmError> {
    let base = base.trim_end_matches('/');
    if base.starts_with("http://") || base.starts_with("https://") {
        Ok(base)
    } else {
        Err(LlmError::Config {
            provider,
            message: format!("base URL {base:?} must start with http:// or https://"),
        })
    }
}

/// Headers from configured name/value pairs; a bad name or value is a configuration error.
pub(crate) fn header_map(
    provider: &'static str,
    pairs: &[(String, String)],
) -> Result<HeaderMap, LlmError> {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| LlmError::Config {
            provider,
            message: format!("{name:?} is not a valid header name"),
        })?;
        let value = HeaderValue::from_str(value).map_err(|_| LlmError::Config {
            provider,
            message: format!("the value of header {name} is not valid"),
        })?;
        headers.insert(name, value);
    }
    Ok(headers)
}

/// A header value holding a credential: marked sensitive so it never shows in debug output.
pub(crate) fn secret_header(provider: &'static str, value: &str) -> Result<HeaderValue, LlmError> {
    let mut value = HeaderValue::from_str(value).map_err(|_| LlmError::Config {
        provider,
        message: "the API key contains characters not allowed in a header".to_owned(),
    })?;
    value.set_sensitive(true);
    Ok(value)
}
