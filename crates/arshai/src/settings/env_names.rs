//! Every environment variable the settings loader reads, in one place.
//!
//! The environment of a process on a platform holds much more than its settings:
//! Kubernetes injects `<SERVICE>_SERVICE_HOST`, `<SERVICE>_PORT=tcp://…` and friends for
//! every Service in the namespace (a Service named `arshai` yields `ARSHAI_SERVICE_PORT`, one
//! named `redis` yields `REDIS_PORT`), and tools add their own `ARSHAI_*` variables. So only
//! two shapes are settings: `ARSHAI_<SECTION>__<KEY>` (a double underscore after the prefix)
//! and the plain names of [`PLAIN`] (plus an application's own, [`EnvNames`]). See
//! [`crate::settings::environment`] for the rule.

/// Prefix of the structured variables: `ARSHAI_<SECTION>__<KEY>`, e.g.
/// `ARSHAI_MEMORY__TTL_SECONDS`.
pub const PREFIX: &str = "ARSHAI_";

/// Separator between section and key in structured variables.
pub const SEPARATOR: &str = "__";

/// Schemes of the service-link variables Kubernetes injects (`REDIS_PORT=tcp://10.0.0.1:6379`).
/// A plain name whose value starts with one of them is a service link, not a setting.
pub const SERVICE_LINK_SCHEMES: &[&str] = &["tcp://", "udp://", "sctp://"];

/// Conventional plain names, each mapped to the settings key it sets. The structured
/// `ARSHAI_…` form of the same key wins when both are set.
pub const PLAIN: &[(&str, &str)] = &[
    ("REDIS_URL", "memory.redis_url"),
    ("REDIS_HOST", "memory.redis_host"),
    ("REDIS_PORT", "memory.redis_port"),
    ("REDIS_DB", "memory.redis_db"),
    ("MEMORY_PROVIDER", "memory.memory_provider"),
    ("OPENAI_API_KEY", "providers.openai.api_key"),
    ("OPENAI_BASE_URL", "providers.openai.base_url"),
    ("OPENAI_MODEL", "providers.openai.model"),
    ("AZURE_OPENAI_ENDPOINT", "providers.azure.endpoint"),
    ("AZURE_OPENAI_API_KEY", "providers.azure.api_key"),
    ("AZURE_DEPLOYMENT", "providers.azure.deployment"),
    ("AZURE_API_VERSION", "providers.azure.api_version"),
    ("GOOGLE_API_KEY", "providers.gemini.api_key"),
    ("OPENROUTER_API_KEY", "providers.openrouter.api_key"),
    ("OPENROUTER_BASE_URL", "providers.openrouter.base_url"),
];

/// The names an application adds to the library's: plain names for its own keys, and the
/// `ARSHAI_*` variables it reads itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnvNames {
    /// Plain names of the application's keys, beyond [`PLAIN`], each mapped to the dotted
    /// key it sets.
    pub plain: &'static [(&'static str, &'static str)],
    /// Variables under [`PREFIX`] (named without it, `CONFIG` for `ARSHAI_CONFIG`) that the
    /// application reads itself: they are not settings, and not reported as ignored.
    pub not_settings: &'static [&'static str],
    /// The sections the application's settings have, when it reads only some of those a
    /// deployment may set (`None`: every `ARSHAI_<SECTION>__<KEY>` is the application's, and
    /// an unknown section is an error). An embedder loading the library's sections alone
    /// must not fail because the pod also sets `ARSHAI_SERVER__PORT` for a server.
    pub sections: Option<&'static [&'static str]>,
}

impl EnvNames {
    /// The library's names alone: [`PLAIN`], and no variable of an application's own.
    pub const LIBRARY: Self = Self {
        plain: &[],
        not_settings: &[],
        sections: Some(&["memory", "providers", "agents", "workflows"]),
    };

    /// Whether the structured variable `rest` (`SECTION__KEY`, after the prefix) belongs to
    /// one of the application's sections.
    pub fn reads_section(&self, rest: &str) -> bool {
        let section = rest.split(SEPARATOR).next().unwrap_or_default();
        self.sections.is_none_or(|sections| {
            sections
                .iter()
                .any(|known| known.eq_ignore_ascii_case(section))
        })
    }

    /// Every plain name with its key: [`PLAIN`], then the application's.
    pub fn plain_names(&self) -> impl Iterator<Item = (&'static str, &'static str)> {
        PLAIN.iter().chain(self.plain).copied()
    }
}
