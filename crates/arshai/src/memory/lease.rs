//! Turn leases: one agent turn at a time per conversation, across every instance.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use super::{ConversationKey, MemoryError, MemoryStore};

/// What a turn does when another turn holds the conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LeasePolicy {
    /// Wait for the lease, up to [`LeaseSettings::max_wait`].
    Wait,
    /// Fail at once with [`MemoryError::Busy`] (the server answers 409).
    Reject,
}

/// How turn leases are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseSettings {
    /// How long a lease lives without renewal; it is renewed at a third of this while the
    /// turn runs, so a crashed instance blocks a conversation for at most this long.
    pub ttl: Duration,
    /// What to do when the conversation is busy.
    pub policy: LeasePolicy,
    /// With [`LeasePolicy::Wait`], the longest wait before [`MemoryError::Busy`].
    pub max_wait: Duration,
}

impl Default for LeaseSettings {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(30),
            policy: LeasePolicy::Wait,
            max_wait: Duration::from_secs(30),
        }
    }
}

/// A held turn lease. It is renewed in the background until released or dropped.
///
/// Release it with [`TurnLease::release`]; dropping it stops the renewal and releases it in
/// the background.
pub struct TurnLease {
    store: Arc<dyn MemoryStore>,
    key: ConversationKey,
    owner: String,
    renewal: Option<JoinHandle<()>>,
}

impl TurnLease {
    /// Takes the lease on `key` under `settings`' policy.
    pub async fn acquire(
        store: Arc<dyn MemoryStore>,
        key: ConversationKey,
        settings: LeaseSettings,
    ) -> Result<Self, MemoryError> {
        let owner = uuid::Uuid::new_v4().simple().to_string();
        let deadline = tokio::time::Instant::now() + settings.max_wait;
        let mut pause = Duration::from_millis(2);
        loop {
            if store.try_acquire_lease(&key, &owner, settings.ttl).await? {
                break;
            }
            let now = tokio::time::Instant::now();
            if settings.policy == LeasePolicy::Reject || now >= deadline {
                return Err(MemoryError::Busy);
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(Duration::from_millis(50));
        }
        let renewal = tokio::spawn(renew(
            Arc::clone(&store),
            key.clone(),
            owner.clone(),
            settings.ttl,
        ));
        Ok(Self {
            store,
            key,
            owner,
            renewal: Some(renewal),
        })
    }

    /// Releases the lease now.
    pub async fn release(mut self) -> Result<(), MemoryError> {
        if let Some(renewal) = self.renewal.take() {
            renewal.abort();
        }
        self.store.release_lease(&self.key, &self.owner).await?;
        Ok(())
    }
}

impl Drop for TurnLease {
    fn drop(&mut self) {
        if let Some(renewal) = self.renewal.take() {
            renewal.abort();
            let store = Arc::clone(&self.store);
            let key = self.key.clone();
            let owner = std::mem::take(&mut self.owner);
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    if let Err(error) = store.release_lease(&key, &owner).await {
                        tracing::warn!(%error, "could not release a dropped turn lease; it expires on its own");
                    }
                });
            }
        }
    }
}

async fn renew(store: Arc<dyn MemoryStore>, key: ConversationKey, owner: String, ttl: Duration) {
    let mut interval = tokio::time::interval(ttl / 3);
    interval.tick().await;
    loop {
        interval.tick().await;
        match store.renew_lease(&key, &owner, ttl).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(conversation = %key.id, "turn lease lost before the turn ended");
                return;
            }
            Err(error) => tracing::warn!(%error, "could not renew a turn lease; retrying"),
        }
    }
}
