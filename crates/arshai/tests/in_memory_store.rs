//! The in-memory store's limits: sliding TTL, LRU eviction at `max_conversations`, trimming,
//! versioned appends and turn leases.

use std::sync::Arc;
use std::time::Duration;

use arshai::llm::Message;
use arshai::memory::{
    ConversationId, ConversationKey, InMemoryStore, InMemoryStoreConfig, LeasePolicy,
    LeaseSettings, MemoryError, MemoryStore, Turn, TurnStart,
};

fn key(id: &str) -> ConversationKey {
    ConversationKey::new("default", ConversationId::parse(id).unwrap())
}

fn store(ttl: Duration, max_conversations: u64, max_messages: usize) -> InMemoryStore {
    InMemoryStore::new(InMemoryStoreConfig {
        ttl,
        max_conversations,
        max_conversations_total: None,
        max_messages,
    })
}

#[tokio::test]
async fn conversations_expire_after_the_ttl_and_writes_refresh_it() {
    // Margins of a second or more keep this correct on a loaded CI machine.
    let store = store(Duration::from_secs(3), 100, 100);
    store
        .append(&key("a"), &[Message::user("1")], None)
        .await
        .unwrap();
    store
        .append(&key("b"), &[Message::user("1")], None)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // A write to `a` slides its TTL; `b` is left alone; a read does not slide.
    store
        .append(&key("a"), &[Message::user("2")], None)
        .await
        .unwrap();
    assert!(store.load(&key("b")).await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert!(store.load(&key("b")).await.unwrap().is_none(), "b expired");
    let a = store
        .load(&key("a"))
        .await
        .unwrap()
        .expect("a was refreshed");
    assert_eq!(a.messages.len(), 2);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        store.load(&key("a")).await.unwrap().is_none(),
        "a expired too"
    );
}

#[tokio::test]
async fn the_least_recently_used_conversation_is_evicted_at_max_conversations() {
    let store = store(Duration::from_secs(60), 3, 100);
    for id in ["a", "b", "c"] {
        store
            .append(&key(id), &[Message::user(id)], None)
            .await
            .unwrap();
        store.run_pending_tasks();
    }
    // Touch `a` so that `b` becomes the least recently used.
    assert!(store.load(&key("a")).await.unwrap().is_some());
    store.run_pending_tasks();
    store
        .append(&key("d"), &[Message::user("d")], None)
        .await
        .unwrap();
    store.run_pending_tasks();
    assert!(store.load(&key("b")).await.unwrap().is_none(), "b evicted");
    for id in ["a", "c", "d"] {
        assert!(store.load(&key(id)).await.unwrap().is_some(), "{id} kept");
    }
    assert_eq!(store.conversation_count().await.unwrap(), 3);
}

#[tokio::test]
async fn old_messages_are_trimmed_and_versions_count_writes() {
    let store = store(Duration::from_secs(60), 10, 3);
    for i in 0..5 {
        let version = store
            .append(&key("t"), &[Message::user(i.to_string())], None)
            .await
            .unwrap();
        assert_eq!(version, i + 1);
    }
    let conversation = store.load(&key("t")).await.unwrap().unwrap();
    let kept: Vec<&str> = conversation
        .messages
        .iter()
        .map(|m| m.content.as_str())
        .collect();
    assert_eq!(kept, ["2", "3", "4"]);
    assert_eq!(conversation.version, 5);
}

#[tokio::test]
async fn a_stale_expected_version_is_a_conflict_and_writes_nothing() {
    let store = store(Duration::from_secs(60), 10, 10);
    assert_eq!(
        store
            .append(&key("v"), &[Message::user("a")], Some(0))
            .await
            .unwrap(),
        1
    );
    let error = store
        .append(&key("v"), &[Message::user("b")], Some(0))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            MemoryError::Conflict {
                expected: 0,
                actual: 1
            }
        ),
        "{error}"
    );
    assert_eq!(
        store.load(&key("v")).await.unwrap().unwrap().messages.len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_lose_nothing_and_keep_each_writers_order() {
    let store: Arc<dyn MemoryStore> = Arc::new(store(Duration::from_secs(60), 10, 10_000));
    let mut tasks = Vec::new();
    for task in 0..8 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            for i in 0..100 {
                store
                    .append(&key("race"), &[Message::user(format!("{task}:{i}"))], None)
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let conversation = store.load(&key("race")).await.unwrap().unwrap();
    assert_eq!(conversation.messages.len(), 800);
    for task in 0..8 {
        let prefix = format!("{task}:");
        let seen: Vec<u32> = conversation
            .messages
            .iter()
            .filter_map(|m| m.content.strip_prefix(&prefix))
            .map(|n| n.parse().unwrap())
            .collect();
        assert_eq!(seen, (0..100).collect::<Vec<_>>(), "task {task} in order");
    }
}

#[tokio::test]
async fn tenants_do_not_see_each_other() {
    let store = store(Duration::from_secs(60), 10, 10);
    let id = ConversationId::parse("shared-id").unwrap();
    let a = ConversationKey::new("tenant-a", id.clone());
    let b = ConversationKey::new("tenant-b", id);
    store
        .append(&a, &[Message::user("secret")], None)
        .await
        .unwrap();
    assert!(store.load(&b).await.unwrap().is_none());
    assert_eq!(
        store.list("tenant-b", None, 10).await.unwrap().items.len(),
        0
    );
    assert_eq!(
        store.list("tenant-a", None, 10).await.unwrap().items.len(),
        1
    );
}

#[tokio::test]
async fn listing_pages_through_a_tenant_in_id_order() {
    let store = store(Duration::from_secs(60), 100, 10);
    for id in ["e", "a", "d", "b", "c"] {
        store
            .append(&key(id), &[Message::user(id)], None)
            .await
            .unwrap();
    }
    let first = store.list("default", None, 2).await.unwrap();
    let ids: Vec<&str> = first.items.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["a", "b"]);
    let second = store
        .list("default", first.next_cursor.as_deref(), 2)
        .await
        .unwrap();
    let third = store
        .list("default", second.next_cursor.as_deref(), 2)
        .await
        .unwrap();
    let ids: Vec<&str> = third.items.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["e"]);
    assert!(third.next_cursor.is_none());
}

#[tokio::test]
async fn a_busy_conversation_rejects_or_waits_for_the_lease() {
    let store: Arc<dyn MemoryStore> = Arc::new(store(Duration::from_secs(60), 10, 10));
    let reject = LeaseSettings {
        ttl: Duration::from_secs(5),
        policy: LeasePolicy::Reject,
        max_wait: Duration::ZERO,
    };
    let Ok(TurnStart::Open(held)) = Turn::begin(Arc::clone(&store), key("l"), reject, None).await
    else {
        panic!("the lease is free");
    };
    let busy = Turn::begin(Arc::clone(&store), key("l"), reject, None).await;
    assert!(matches!(busy, Err(MemoryError::Busy)));

    let wait = LeaseSettings {
        policy: LeasePolicy::Wait,
        max_wait: Duration::from_secs(5),
        ..reject
    };
    let waiter = tokio::spawn({
        let store = Arc::clone(&store);
        async move { Turn::begin(store, key("l"), wait, None).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !waiter.is_finished(),
        "the waiter waits while the lease is held"
    );
    held.abort().await;
    let Ok(TurnStart::Open(second)) = waiter.await.unwrap() else {
        panic!("acquired after release");
    };
    assert!(
        second.wait().handoff.is_some(),
        "the waiter was woken by the release, not by polling"
    );
    second.abort().await;
}

/// On virtual time: a turn that waits for a held conversation gives up with `Busy` exactly
/// at its wait bound, however long that is, while the holder's lease is kept renewed; and a
/// waiter is handed the conversation as soon as the holder commits.
#[tokio::test(start_paused = true)]
async fn a_waiting_turn_is_bounded_by_its_wait_and_handed_over_on_commit() {
    let store: Arc<dyn MemoryStore> = Arc::new(store(Duration::from_secs(3600), 100, 100));
    let k = key("held");
    let settings = LeaseSettings {
        ttl: Duration::from_secs(5),
        policy: LeasePolicy::Wait,
        max_wait: Duration::from_secs(120),
    };
    let TurnStart::Open(holder) = Turn::begin(Arc::clone(&store), k.clone(), settings, None)
        .await
        .unwrap()
    else {
        panic!("a fresh conversation is open");
    };
    let started = tokio::time::Instant::now();
    let waited = Turn::begin(Arc::clone(&store), k.clone(), settings, None).await;
    assert!(
        matches!(waited, Err(MemoryError::Busy)),
        "{:?}",
        waited.err()
    );
    assert_eq!(
        started.elapsed(),
        settings.max_wait,
        "the wait ends at its bound, not earlier (the holder's lease is renewed meanwhile)"
    );

    let waiter = tokio::spawn({
        let (store, k) = (Arc::clone(&store), k.clone());
        async move { Turn::begin(store, k, settings, None).await }
    });
    tokio::time::sleep(Duration::from_secs(10)).await;
    let committed_at = tokio::time::Instant::now();
    holder
        .commit(&[Message::user("first")], None)
        .await
        .unwrap();
    let TurnStart::Open(mut next) = waiter.await.unwrap().unwrap() else {
        panic!("the waiter gets the conversation");
    };
    assert!(
        committed_at.elapsed() < Duration::from_millis(100),
        "handed over on the commit, not on the 500 ms fallback poll: {:?}",
        committed_at.elapsed()
    );
    assert_eq!(
        next.take_conversation().messages.len(),
        1,
        "it sees the commit"
    );
}
