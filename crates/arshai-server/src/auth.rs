//! API-key authentication: each key maps to a tenant, whose conversations it alone reaches.
//!
//! Keys are kept only as SHA-256 digests and compared in constant time. Off by default
//! (every request then belongs to the `default` tenant); `config/production.toml` turns it
//! on. Keys come from `[[auth.keys]]` in the settings and from `auth.keys_file`. A key is
//! read from `Authorization: Bearer <key>` or `X-Api-Key: <key>`. Keys never appear in logs,
//! metrics or error bodies.

use std::path::{Path, PathBuf};

use arshai::memory::ConversationKey;
use axum::extract::{FromRequestParts, RawPathParams, Request, State};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use figment::Figment;
use figment::providers::{Format, Toml};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::error_response_for;
use crate::settings::{ApiKeySettings, AuthSettings};
use crate::{ApiError, AppState};

/// Why the keys could not be loaded. Never contains a key.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The keys file could not be read or parsed.
    #[error("cannot read the API keys file {path}: {message}")]
    KeysFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// An entry is malformed.
    #[error("API key entry {index} of {source_name}: {reason}")]
    Entry {
        /// `settings` or the file's path.
        source_name: String,
        /// The entry's position.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// Auth is on but no key is configured: every request would be refused.
    #[error("auth is enabled but no API key is configured")]
    NoKeys,
}

/// The SHA-256 of `key`, hex encoded, as `[[auth.keys]] sha256` expects it.
pub fn hash_key(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn parse_hex_digest(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim();
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut digest = [0u8; 32];
    for (index, byte) in digest.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * index..2 * index + 2], 16).ok()?;
    }
    Some(digest)
}

/// One accepted key.
#[derive(Debug, Clone)]
struct KeyEntry {
    digest: [u8; 32],
    tenant: Tenant,
    caller: Caller,
}

/// Who a request acts for, as rate limits and budgets see it: the tenant, the key's id
/// (never its secret) and the key's own limits (each `None` takes the `[limits]` default).
/// The auth layer records it on every authenticated request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The tenant.
    pub tenant: String,
    /// The key's id; `None` when auth is off.
    pub key_id: Option<String>,
    /// The key's requests per minute.
    pub requests_per_minute: Option<u64>,
    /// The key's tokens per minute.
    pub tokens_per_minute: Option<u64>,
    /// The key's tokens per UTC day.
    pub tokens_per_day: Option<u64>,
    /// The key's tokens per UTC month.
    pub tokens_per_month: Option<u64>,
    /// The agents the key may use; empty: every agent.
    pub agents: Vec<String>,
}

impl Caller {
    /// The caller of a request when auth is off: the default tenant, no key.
    pub fn anonymous() -> Self {
        Self {
            tenant: ConversationKey::DEFAULT_TENANT.to_owned(),
            key_id: None,
            requests_per_minute: None,
            tokens_per_minute: None,
            tokens_per_day: None,
            tokens_per_month: None,
            agents: Vec::new(),
        }
    }

    /// Whether this caller may use the agent `name` (the key's `agents` list). Checked by
    /// the auth middleware on routes that name the agent in their path, and by the
    /// OpenAI-compatible routes, which name it in the body (`model`).
    pub fn may_use(&self, name: &str) -> bool {
        self.agents.is_empty() || self.agents.iter().any(|allowed| allowed == name)
    }

    /// The limits subject of this caller: the `[limits]` defaults, with the key's own
    /// limits in their place where it sets them.
    pub fn subject(&self, settings: &arshai::limits::LimitsSettings) -> arshai::limits::Subject {
        let mut subject =
            arshai::limits::Subject::new(self.tenant.clone(), self.key_id.clone(), settings);
        let key = &mut subject.key_limits;
        key.requests_per_minute = self.requests_per_minute.or(key.requests_per_minute);
        key.tokens_per_minute = self.tokens_per_minute.or(key.tokens_per_minute);
        let budget = &mut subject.key_budget;
        budget.tokens_per_day = self.tokens_per_day.or(budget.tokens_per_day);
        budget.tokens_per_month = self.tokens_per_month.or(budget.tokens_per_month);
        subject
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match parts.extensions.get::<Caller>() {
            Some(caller) => Ok(caller.clone()),
            // Fail closed, as for the tenant.
            None if state.auth.enabled() => Err(ApiError::Unauthorized("missing API key")),
            None => Ok(Self::anonymous()),
        }
    }
}

/// The accepted keys.
#[derive(Debug, Clone, Default)]
pub struct ApiKeys {
    enabled: bool,
    entries: Vec<KeyEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysFile {
    #[serde(default)]
    keys: Vec<ApiKeySettings>,
}

impl ApiKeys {
    /// Loads the keys from `settings` and its keys file.
    pub fn load(settings: &AuthSettings) -> Result<Self, AuthError> {
        let mut entries = Vec::new();
        add_entries(&mut entries, "settings", &settings.keys)?;
        if let Some(path) = &settings.keys_file {
            let file = read_keys_file(path)?;
            add_entries(&mut entries, &path.display().to_string(), &file.keys)?;
        }
        if settings.enabled && entries.is_empty() {
            return Err(AuthError::NoKeys);
        }
        Ok(Self {
            enabled: settings.enabled,
            entries,
        })
    }

    /// Whether requests must carry a key.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The entry `key` belongs to. Every entry is compared, in constant time, so the time
    /// taken does not depend on which entry (if any) matched.
    fn find(&self, key: &str) -> Option<&KeyEntry> {
        let digest = Sha256::digest(key.as_bytes());
        let mut found = None;
        for entry in &self.entries {
            if bool::from(entry.digest.ct_eq(digest.as_slice())) {
                found = Some(entry);
            }
        }
        found
    }
}

fn read_keys_file(path: &Path) -> Result<KeysFile, AuthError> {
    if !path.is_file() {
        return Err(AuthError::KeysFile {
            path: path.to_owned(),
            message: "no such file".to_owned(),
        });
    }
    Figment::from(Toml::file_exact(path))
        .extract()
        .map_err(|error| AuthError::KeysFile {
            path: path.to_owned(),
            // figment's message names keys and types, not the values of secrets.
            message: error.kind.to_string(),
        })
}

fn add_entries(
    entries: &mut Vec<KeyEntry>,
    source_name: &str,
    keys: &[ApiKeySettings],
) -> Result<(), AuthError> {
    for (index, key) in keys.iter().enumerate() {
        let invalid = |reason: &str| AuthError::Entry {
            source_name: source_name.to_owned(),
            index,
            reason: reason.to_owned(),
        };
        if key.tenant.is_empty() {
            return Err(invalid("the tenant is empty"));
        }
        let digest = match (&key.sha256, &key.key) {
            (Some(hex), None) => parse_hex_digest(hex)
                .ok_or_else(|| invalid("`sha256` must be 64 hexadecimal digits"))?,
            (None, Some(clear)) if !clear.is_empty() => Sha256::digest(clear.as_bytes()).into(),
            _ => {
                return Err(invalid(
                    "needs exactly one of `sha256` or a non-empty `key`",
                ));
            }
        };
        let id = match &key.id {
            Some(id) => id.clone(),
            None => digest
                .iter()
                .take(8)
                .map(|byte| format!("{byte:02x}"))
                .collect(),
        };
        entries.push(KeyEntry {
            digest,
            tenant: Tenant(key.tenant.clone()),
            caller: Caller {
                tenant: key.tenant.clone(),
                key_id: Some(id),
                requests_per_minute: key.requests_per_minute,
                tokens_per_minute: key.tokens_per_minute,
                tokens_per_day: key.tokens_per_day,
                tokens_per_month: key.tokens_per_month,
                agents: key.agents.clone(),
            },
        });
    }
    Ok(())
}

/// The tenant a request acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant(pub String);

impl Tenant {
    /// The tenant used when auth is off.
    pub fn default_tenant() -> Self {
        Self(ConversationKey::DEFAULT_TENANT.to_owned())
    }
}

impl FromRequestParts<AppState> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match parts.extensions.get::<Tenant>() {
            Some(tenant) => Ok(tenant.clone()),
            // Fail closed: a route that skipped the auth layer gets no tenant when auth is on.
            None if state.auth.enabled() => Err(ApiError::Unauthorized("missing API key")),
            None => Ok(Self::default_tenant()),
        }
    }
}

/// The key a request presents, from `Authorization: Bearer` or `X-Api-Key`.
fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(value) = headers.get(axum::http::header::AUTHORIZATION) {
        let value = value.to_str().ok()?;
        let (scheme, key) = value.split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then_some(key.trim());
    }
    headers.get("x-api-key")?.to_str().ok().map(str::trim)
}

/// Middleware: authenticates the request and records its [`Tenant`].
pub async fn authenticate(
    State(state): State<AppState>,
    params: Result<RawPathParams, axum::extract::rejection::RawPathParamsRejection>,
    mut request: Request,
    next: Next,
) -> Response {
    if !state.auth.enabled() {
        request.extensions_mut().insert(Tenant::default_tenant());
        request.extensions_mut().insert(Caller::anonymous());
        return next.run(request).await;
    }
    let refuse = |error: ApiError| error_response_for(request.uri().path(), error);
    let entry = match presented_key(request.headers()) {
        None => return refuse(ApiError::Unauthorized("missing API key")),
        Some(key) => match state.auth.find(key) {
            None => return refuse(ApiError::Unauthorized("invalid API key")),
            Some(entry) => entry,
        },
    };
    if let Ok(params) = &params
        && let Some((_, agent)) = params.iter().find(|(name, _)| *name == "agent")
        && !entry.caller.may_use(agent)
    {
        return refuse(ApiError::Forbidden(format!(
            "this API key may not use the agent {agent:?}"
        )));
    }
    request.extensions_mut().insert(entry.tenant.clone());
    request.extensions_mut().insert(entry.caller.clone());
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(keys: Vec<ApiKeySettings>) -> AuthSettings {
        AuthSettings {
            enabled: true,
            keys,
            keys_file: None,
        }
    }

    fn key(tenant: &str, clear: Option<&str>, sha: Option<&str>) -> ApiKeySettings {
        ApiKeySettings {
            tenant: tenant.to_owned(),
            key: clear.map(str::to_owned),
            sha256: sha.map(str::to_owned),
            agents: vec![],
            ..Default::default()
        }
    }

    #[test]
    fn clear_and_hashed_keys_both_match_their_tenant() {
        let hashed = hash_key("second-secret");
        let keys = ApiKeys::load(&settings(vec![
            key("acme", Some("first-secret"), None),
            key("globex", None, Some(&hashed)),
        ]))
        .unwrap();
        assert_eq!(keys.find("first-secret").unwrap().tenant.0, "acme");
        assert_eq!(keys.find("second-secret").unwrap().tenant.0, "globex");
        assert!(keys.find("first-secre").is_none());
        assert!(keys.find("").is_none());
    }

    #[test]
    fn malformed_entries_are_refused_without_echoing_the_key() {
        for entry in [
            key("", Some("k"), None),
            key("t", None, Some("zz")),
            key("t", Some("k"), Some(&hash_key("k"))),
            key("t", None, None),
        ] {
            let error = ApiKeys::load(&settings(vec![entry])).unwrap_err();
            assert!(!error.to_string().contains("zz"), "{error}");
        }
        assert!(matches!(
            ApiKeys::load(&settings(vec![])),
            Err(AuthError::NoKeys)
        ));
    }

    #[test]
    fn the_hash_is_the_sha256_hex() {
        assert_eq!(
            hash_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
