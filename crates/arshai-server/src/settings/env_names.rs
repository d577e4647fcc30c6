//! The environment names the `arshai` binary adds to the library's.

use arshai::settings::EnvNames;

/// Variables under `ARSHAI_` that the binary reads itself (not settings keys): they are
/// neither loaded as settings nor reported as ignored. `BENCH_API_KEY` is `arshai bench`'s
/// `--api-key`, so a shell that exports it for the benchmark can still run `arshai serve`.
pub const NOT_SETTINGS: &[&str] = &["CONFIG", "LOG", "LOG_FORMAT", "BENCH_API_KEY"];

/// The binary's names: the library's plain names (it has none of its own) and
/// [`NOT_SETTINGS`].
pub const NAMES: EnvNames = EnvNames {
    plain: &[],
    not_settings: NOT_SETTINGS,
    sections: None,
};
