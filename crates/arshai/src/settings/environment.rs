//! Which environment variables are settings, and which are ignored (and reported).
//!
//! The rule, so that a pod's environment never stops the server:
//!
//! - `ARSHAI_<SECTION>__<KEY>` (a double underscore after the prefix) is a setting. A
//!   misspelt one (`ARSHAI_MEMORY__TTL_SECOND`, `ARSHAI_MEMROY__TTL_SECONDS`) is still a
//!   startup error: it was meant as a setting.
//! - An application's own `ARSHAI_*` variables ([`EnvNames::not_settings`]; the `arshai`
//!   binary's are `ARSHAI_CONFIG`, `ARSHAI_LOG_FORMAT`, …) are read by it and skipped here,
//!   silently.
//! - Every other `ARSHAI_*` variable (`ARSHAI_SERVICE_PORT=tcp://…` from a Service named
//!   `arshai`, a tool's `ARSHAI_SOMETHING`) is ignored and reported.
//! - A plain name of [`env_names::PLAIN`] (or of [`EnvNames::plain`]) is a setting, unless its value is a Kubernetes
//!   service link (`REDIS_PORT=tcp://10.0.0.1:6379` from a Service named `redis`): then it is
//!   ignored and reported.
//!
//! [`IgnoredEnvironment::read`] lists what is ignored, by name only (values may be secrets),
//! so the binary can log one warning once logging is up.

use super::env_names::{self, EnvNames};

/// What one environment variable is to the settings loader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A structured setting, `ARSHAI_<SECTION>__<KEY>`.
    Structured,
    /// A plain name that sets the given dotted key.
    Plain(&'static str),
    /// A variable the application reads itself ([`EnvNames::not_settings`]: the `arshai`
    /// binary's `ARSHAI_CONFIG`, …).
    Binary,
    /// An `ARSHAI_*` variable that is not a setting: ignored, reported.
    IgnoredPrefixed,
    /// A plain name holding a Kubernetes service link (`tcp://…`): ignored, reported.
    ServiceLink,
    /// Anything else: none of our business.
    Unrelated,
}

/// Classifies one variable by its name and value, given the application's `names`.
///
/// ```
/// use arshai::settings::EnvNames;
/// use arshai::settings::environment::{Role, classify};
/// let names = EnvNames { plain: &[], not_settings: &["CONFIG"], sections: None };
/// assert_eq!(classify(&names, "ARSHAI_MEMORY__TTL_SECONDS", "60"), Role::Structured);
/// assert_eq!(classify(&names, "ARSHAI_SERVICE_PORT", "tcp://10.0.0.9:80"), Role::IgnoredPrefixed);
/// assert_eq!(classify(&names, "ARSHAI_CONFIG", "arshai.toml"), Role::Binary);
/// assert_eq!(classify(&names, "REDIS_PORT", "tcp://10.0.0.1:6379"), Role::ServiceLink);
/// assert_eq!(classify(&names, "REDIS_PORT", "6380"), Role::Plain("memory.redis_port"));
/// assert_eq!(classify(&names, "PATH", "/usr/bin"), Role::Unrelated);
/// ```
pub fn classify(names: &EnvNames, name: &str, value: &str) -> Role {
    if let Some(rest) = name.strip_prefix(env_names::PREFIX) {
        if is_structured(rest) {
            return Role::Structured;
        }
        if names.not_settings.contains(&rest) {
            return Role::Binary;
        }
        return Role::IgnoredPrefixed;
    }
    match names.plain_names().find(|(plain, _)| *plain == name) {
        Some(_) if is_service_link(value) => Role::ServiceLink,
        Some((_, key)) => Role::Plain(key),
        None => Role::Unrelated,
    }
}

/// Whether the part of a variable's name after [`env_names::PREFIX`] is `SECTION__KEY`: a
/// non-empty section, the separator, a non-empty key.
pub(crate) fn is_structured(rest: &str) -> bool {
    rest.split_once(env_names::SEPARATOR)
        .is_some_and(|(section, key)| !section.is_empty() && !key.is_empty())
}

/// Whether `value` is a Kubernetes service-link value (`tcp://10.0.0.1:6379`).
pub(crate) fn is_service_link(value: &str) -> bool {
    env_names::SERVICE_LINK_SCHEMES
        .iter()
        .any(|scheme| value.starts_with(scheme))
}

/// The environment variables the loader ignored, by name (never by value).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IgnoredEnvironment {
    /// `ARSHAI_*` variables that are not `ARSHAI_<SECTION>__<KEY>` settings, sorted.
    pub prefixed: Vec<String>,
    /// Plain setting names holding a service link instead of a setting value, sorted.
    pub service_links: Vec<String>,
}

impl IgnoredEnvironment {
    /// Classifies `variables` (name, value pairs) given the application's `names`; names
    /// that are not valid Unicode never reach here.
    pub fn from_vars<I, K, V>(names: &EnvNames, variables: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut ignored = Self::default();
        for (name, value) in variables {
            let name = name.as_ref();
            match classify(names, name, value.as_ref()) {
                Role::IgnoredPrefixed => ignored.prefixed.push(name.to_owned()),
                Role::ServiceLink => ignored.service_links.push(name.to_owned()),
                _ => {}
            }
        }
        ignored.prefixed.sort();
        ignored.service_links.sort();
        ignored
    }

    /// Classifies the process environment given the application's `names` (variables whose
    /// name or value is not Unicode are skipped: none of ours is).
    pub fn read(names: &EnvNames) -> Self {
        Self::from_vars(
            names,
            std::env::vars_os().filter_map(|(name, value)| {
                Some((name.into_string().ok()?, value.into_string().ok()?))
            }),
        )
    }

    /// Whether nothing was ignored.
    pub fn is_empty(&self) -> bool {
        self.prefixed.is_empty() && self.service_links.is_empty()
    }
}
