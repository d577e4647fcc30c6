//! The response cache's and the limits' counters, read at scrape time and written as
//! Prometheus counters (`arshai_cache_*_total`, `arshai_ratelimit_*_total`,
//! `arshai_budget_*_total`).

use std::fmt::Write;

use arshai::cache::CacheCounters;
use arshai::limits::LimitCounters;

/// The Prometheus text of `cache` and `limits`.
pub fn encode_controls(cache: &CacheCounters, limits: &LimitCounters) -> String {
    let counters = [
        (
            "arshai_cache_hits_total",
            "Turns' model calls answered from the response cache",
            cache.hits,
        ),
        (
            "arshai_cache_misses_total",
            "Cacheable model calls not found in the cache",
            cache.misses,
        ),
        (
            "arshai_cache_bypasses_total",
            "Model calls that skipped the cache (not cacheable, or no-cache)",
            cache.bypasses,
        ),
        (
            "arshai_cache_coalesced_total",
            "Identical concurrent misses served by one provider call",
            cache.coalesced,
        ),
        (
            "arshai_cache_stored_total",
            "Answers stored in the cache",
            cache.stored,
        ),
        (
            "arshai_cache_bytes_stored_total",
            "Bytes of answers stored in the cache",
            cache.bytes_stored,
        ),
        (
            "arshai_cache_bytes_served_total",
            "Bytes of answers served from the cache",
            cache.bytes_served,
        ),
        (
            "arshai_cache_provider_calls_saved_total",
            "Provider calls the cache saved",
            cache.provider_calls_saved,
        ),
        (
            "arshai_cache_tokens_saved_total",
            "Provider tokens the cache saved",
            cache.tokens_saved,
        ),
        (
            "arshai_cache_errors_total",
            "Cache backend errors (the call went to the provider)",
            cache.errors,
        ),
        (
            "arshai_ratelimit_allowed_total",
            "Turns admitted by the rate limits",
            limits.allowed,
        ),
        (
            "arshai_ratelimit_refused_total",
            "Turns refused by the rate limits (429)",
            limits.refused,
        ),
        (
            "arshai_ratelimit_fail_open_total",
            "Turns admitted unchecked: limits backend unreachable under fail_open",
            limits.fail_open,
        ),
        (
            "arshai_ratelimit_unavailable_total",
            "Limit or budget operations failed: backend unreachable under fail_closed",
            limits.unavailable,
        ),
        (
            "arshai_budget_admitted_total",
            "Turns admitted by the token budgets",
            limits.budget_admitted,
        ),
        (
            "arshai_budget_refused_total",
            "Turns refused by a spent token budget (429)",
            limits.budget_refused,
        ),
        (
            "arshai_budget_fail_open_total",
            "Turns admitted unchecked: budget backend unreachable under fail_open",
            limits.budget_fail_open,
        ),
        (
            "arshai_budget_tokens_settled_total",
            "Tokens charged to budgets by settled turns",
            limits.tokens_settled,
        ),
        (
            "arshai_limits_settles_dropped_total",
            "Turn settles dropped because the settlement queue was full",
            limits.settles_dropped,
        ),
    ];
    let mut text = String::with_capacity(4096);
    for (name, help, value) in counters {
        let _ = writeln!(text, "# HELP {name} {help}.");
        let _ = writeln!(text, "# TYPE {name} counter");
        let _ = writeln!(text, "{name} {value}");
    }
    text
}
