//! The completion webhook: once a run finishes, its record (as `GET /v1/runs/{id}` shows
//! it) is POSTed to the run's `webhook` URL, signed, with bounded retries.
//!
//! Headers: `X-Arshai-Run-Id`, `X-Arshai-Timestamp` (Unix seconds) and
//! `X-Arshai-Signature: sha256=<hex>`, the HMAC-SHA256 under `runs.webhook_secret` of
//! `<timestamp>.<body>` (the receiver recomputes it and rejects stale timestamps). A network
//! error, a 429 or a 5xx is retried after `runs.webhook_backoff_seconds`, doubling, up to
//! `runs.webhook_max_attempts` deliveries; any other answer ends the delivery.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::settings::RunsSettings;

/// The signature header.
pub const SIGNATURE_HEADER: &str = "x-arshai-signature";
/// The timestamp header.
pub const TIMESTAMP_HEADER: &str = "x-arshai-timestamp";
/// The run id header.
pub const RUN_ID_HEADER: &str = "x-arshai-run-id";

/// `sha256=<hex>`: the HMAC-SHA256 under `secret` of `<timestamp>.<body>`.
pub fn signature(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    // HMAC takes a key of any length: `new_from_slice` cannot fail for it.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("sha256={hex}")
}

/// Whether a delivery answered with `status` should be tried again.
fn retryable(status: reqwest::StatusCode) -> bool {
    status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS
}

/// Delivers `body` (a finished run's JSON) for `run_id` to `url`; returns the deliveries
/// made and whether one was accepted (a 2xx).
pub async fn deliver(
    http: &reqwest::Client,
    settings: &RunsSettings,
    url: &str,
    run_id: &str,
    body: &serde_json::Value,
) -> (u32, bool) {
    let Some(secret) = settings.webhook_secret.as_deref() else {
        tracing::warn!(
            run = run_id,
            "a webhook without runs.webhook_secret is not sent"
        );
        return (0, false);
    };
    let body = body.to_string();
    let mut backoff = Duration::from_secs_f64(settings.webhook_backoff_seconds);
    let timeout = Duration::from_secs_f64(settings.webhook_timeout_seconds);
    for attempt in 1..=settings.webhook_max_attempts {
        let timestamp = super::now_ms() / 1000;
        let result = http
            .post(url)
            .timeout(timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(RUN_ID_HEADER, run_id)
            .header(TIMESTAMP_HEADER, timestamp.to_string())
            .header(
                SIGNATURE_HEADER,
                signature(secret.as_bytes(), timestamp, body.as_bytes()),
            )
            .body(body.clone())
            .send()
            .await;
        match result {
            Ok(response) if response.status().is_success() => return (attempt, true),
            Ok(response) if !retryable(response.status()) => {
                tracing::warn!(run = run_id, status = %response.status(), "the webhook refused the run");
                return (attempt, false);
            }
            Ok(response) => {
                tracing::info!(run = run_id, attempt, status = %response.status(), "webhook failed; retrying");
            }
            Err(error) => {
                tracing::info!(run = run_id, attempt, %error, "webhook failed; retrying");
            }
        }
        if attempt < settings.webhook_max_attempts {
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
    }
    tracing::warn!(
        run = run_id,
        "the webhook was given up after its last attempt"
    );
    (settings.webhook_max_attempts, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(mac: Hmac<Sha256>) -> String {
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // RFC 4231 test case 2: the primitive is HMAC-SHA256.
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let mut mac = Hmac::<Sha256>::new_from_slice(b"secret").unwrap();
        mac.update(b"10.{}");
        assert_eq!(
            signature(b"secret", 10, b"{}"),
            format!("sha256={}", hex(mac))
        );
        assert_ne!(
            signature(b"secret", 10, b"{}"),
            signature(b"secret", 11, b"{}")
        );
    }
}
