//! The memory-store contract, run against every backend: in-memory, Redis standalone,
//! Redis Cluster (3 masters) and Redis Sentinel (master + replica + sentinel). The Redis
//! backends run against real `redis-server` processes started by the test kit.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, ensure};
use arshai::agent::{Agent, AgentInput, ConversationAgent, ConversationAgentConfig};
use arshai::llm::{ClientFactory, Message, Role};
use arshai::memory::{
    BeginTurn, Begun, ConversationId, ConversationKey, LeasePolicy, LeaseSettings, MemoryError,
    MemoryStore, Turn,
};
use arshai::settings::{ProviderChoice, ProvidersSettings};
use arshai_testkit::{FakeUpstream, UpstreamOptions};

#[macro_use]
mod support;
use support::{Backend, Env, Servers, key, texts};

async fn round_trip(backend: Backend) -> anyhow::Result<()> {
    let env = Env::open(backend, |_| {}).await?;
    let store = &env.store;
    let k = key("t", "conv-1");
    assert!(store.load(&k).await?.is_none());
    let v1 = store
        .append(
            &k,
            &[Message::user("hello"), Message::assistant("hi there")],
            None,
        )
        .await?;
    assert_eq!(v1, 1);
    let v2 = store.set_working_memory(&k, "the user greets").await?;
    assert_eq!(v2, 2);
    let metadata = BTreeMap::from([
        ("channel".to_owned(), "web".to_owned()),
        ("x:odd key".to_owned(), "ü".to_owned()),
    ]);
    let v3 = store.merge_metadata(&k, &metadata).await?;
    assert_eq!(v3, 3);
    let loaded = store.load(&k).await?.context("stored")?;
    assert_eq!(loaded.version, 3);
    assert_eq!(texts(&loaded.messages), ["hello", "hi there"]);
    assert_eq!(loaded.messages[0].role, Role::User);
    assert_eq!(loaded.messages[1].role, Role::Assistant);
    assert_eq!(loaded.working_memory.as_deref(), Some("the user greets"));
    assert_eq!(loaded.metadata, metadata);
    assert!(loaded.created_at_ms > 0 && loaded.created_at_ms <= loaded.updated_at_ms);
    let page = store.list("t", None, 10).await?;
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].id.as_str(), "conv-1");
    assert_eq!(page.items[0].version, 3);
    assert_eq!(store.conversation_count().await?, 1);
    store.health_check().await?;
    assert!(store.delete(&k).await?);
    assert!(!store.delete(&k).await?);
    assert!(store.load(&k).await?.is_none());
    assert!(store.list("t", None, 10).await?.items.is_empty());
    Ok(())
}

async fn listing_is_paged_in_id_order(backend: Backend) -> anyhow::Result<()> {
    let env = Env::open(backend, |_| {}).await?;
    for id in ["e", "a", "d", "b", "c"] {
        env.store
            .append(&key("t", id), &[Message::user(id)], None)
            .await?;
    }
    env.store
        .append(&key("other", "z"), &[Message::user("z")], None)
        .await?;
    let mut seen = Vec::new();
    let mut cursor = None;
    for _ in 0..10 {
        let page = env.store.list("t", cursor.as_deref(), 2).await?;
        assert!(page.items.len() <= 2);
        seen.extend(page.items.iter().map(|s| s.id.as_str().to_owned()));
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(seen, ["a", "b", "c", "d", "e"]);
    Ok(())
}

async fn ttl_expires_and_every_write_refreshes_it(backend: Backend) -> anyhow::Result<()> {
    let env = Env::open(backend, |s| s.ttl_seconds = 2).await?;
    let k = key("t", "short-lived");
    env.store.append(&k, &[Message::user("one")], None).await?;
    tokio::time::sleep(Duration::from_millis(1300)).await;
    env.store.append(&k, &[Message::user("two")], None).await?;
    tokio::time::sleep(Duration::from_millis(1300)).await;
    // 2.6 s after the first write, 1.3 s after the second: alive only because it slid.
    let alive = env
        .store
        .load(&k)
        .await?
        .context("the second write refreshed the TTL")?;
    assert_eq!(texts(&alive.messages), ["one", "two"]);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    env.settle();
    assert!(
        env.store.load(&k).await?.is_none(),
        "expired 2 s after the last write"
    );
    assert_eq!(env.store.conversation_count().await?, 0);
    Ok(())
}

async fn least_recently_used_is_evicted_first(backend: Backend) -> anyhow::Result<()> {
    let env = &Env::open(backend, |s| s.max_conversations = 3).await?;
    let write = |id: &'static str| {
        let store = env.store.clone();
        async move {
            store
                .append(&key("t", id), &[Message::user(id)], None)
                .await?;
            env.settle();
            // Distinct millisecond timestamps keep the order unambiguous.
            tokio::time::sleep(Duration::from_millis(5)).await;
            anyhow::Ok(())
        }
    };
    write("a").await?;
    write("b").await?;
    write("c").await?;
    write("a").await?;
    write("d").await?;
    env.settle();
    assert!(
        env.store.load(&key("t", "b")).await?.is_none(),
        "b was the least recent"
    );
    for id in ["a", "c", "d"] {
        assert!(
            env.store.load(&key("t", id)).await?.is_some(),
            "{id} is kept"
        );
    }
    write("e").await?;
    env.settle();
    // Every backend counts the loads above (a, c, d) as uses: a is now the least recent.
    let next = "a";
    assert!(
        env.store.load(&key("t", next)).await?.is_none(),
        "{next} is next"
    );
    assert_eq!(env.store.conversation_count().await?, 3);
    Ok(())
}

async fn oldest_messages_are_trimmed(backend: Backend) -> anyhow::Result<()> {
    let env = Env::open(backend, |s| s.max_messages = 5).await?;
    let k = key("t", "long");
    let batch = |range: std::ops::Range<u32>| -> Vec<Message> {
        range.map(|i| Message::user(format!("m{i}"))).collect()
    };
    env.store.append(&k, &batch(0..3), None).await?;
    env.store.append(&k, &batch(3..7), None).await?;
    let loaded = env.store.load(&k).await?.context("stored")?;
    assert_eq!(texts(&loaded.messages), ["m2", "m3", "m4", "m5", "m6"]);
    assert_eq!(loaded.version, 2);
    Ok(())
}

async fn a_stale_expected_version_conflicts_and_writes_nothing(
    backend: Backend,
) -> anyhow::Result<()> {
    let env = Env::open(backend, |_| {}).await?;
    let k = key("t", "versioned");
    assert_eq!(
        env.store.append(&k, &[Message::user("a")], Some(0)).await?,
        1
    );
    match env.store.append(&k, &[Message::user("b")], Some(0)).await {
        Err(MemoryError::Conflict {
            expected: 0,
            actual: 1,
        }) => {}
        other => anyhow::bail!("expected a conflict, got {other:?}"),
    }
    assert_eq!(
        texts(&env.store.load(&k).await?.context("stored")?.messages),
        ["a"]
    );
    assert_eq!(
        env.store.append(&k, &[Message::user("c")], Some(1)).await?,
        2
    );
    match env
        .store
        .append(&key("t", "new"), &[Message::user("x")], Some(3))
        .await
    {
        Err(MemoryError::Conflict {
            expected: 3,
            actual: 0,
        }) => {}
        other => anyhow::bail!("expected a conflict on a missing conversation, got {other:?}"),
    }
    assert!(env.store.load(&key("t", "new")).await?.is_none());
    Ok(())
}

async fn concurrent_appends_lose_nothing(backend: Backend) -> anyhow::Result<()> {
    let env = Env::open(backend, |_| {}).await?;
    let k = key("t", "hot");
    let mut tasks = Vec::new();
    for task in 0..8 {
        // Half the writers are other instances with their own connections.
        let store = if task % 2 == 0 {
            env.store.clone()
        } else {
            env.another_instance().await?
        };
        let k = k.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..100 {
                store
                    .append(&k, &[Message::user(format!("{task}:{i}"))], None)
                    .await?;
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let loaded = env.store.load(&k).await?.context("stored")?;
    assert_eq!(loaded.messages.len(), 800);
    assert_eq!(loaded.version, 800);
    let mut next = [0u32; 8];
    for message in &loaded.messages {
        let (task, i) = message.content.split_once(':').context("format")?;
        let (task, i): (usize, u32) = (task.parse()?, i.parse()?);
        assert_eq!(i, next[task], "task {task}'s appends stay in order");
        next[task] += 1;
    }
    assert_eq!(next, [100; 8]);
    Ok(())
}

async fn racing_turns_are_serialized_and_both_recorded(backend: Backend) -> anyhow::Result<()> {
    let env = Env::open(backend, |_| {}).await?;
    let upstream = FakeUpstream::start_with(UpstreamOptions {
        latency: Duration::from_millis(200),
        record: true,
        ..UpstreamOptions::default()
    })
    .await?;
    let mut providers = ProvidersSettings::default();
    providers.openai.base_url = Some(upstream.base_url());
    let llm = ClientFactory::new(providers).client(ProviderChoice::Openai)?;
    let agent = |store: Arc<dyn MemoryStore>| {
        Arc::new(ConversationAgent::new(
            ConversationAgentConfig {
                name: "racer".to_owned(),
                lease: LeaseSettings {
                    ttl: Duration::from_secs(5),
                    policy: LeasePolicy::Wait,
                    max_wait: Duration::from_secs(20),
                },
                ..ConversationAgentConfig::default()
            },
            llm.clone(),
            store,
        ))
    };
    // Two instances of the fleet, one conversation.
    let first = agent(env.store.clone());
    let second = agent(env.another_instance().await?);
    let id = ConversationId::parse("raced")?;
    let run = |agent: Arc<ConversationAgent>, text: &'static str| {
        let id = id.clone();
        tokio::spawn(async move { agent.respond(AgentInput::new(Some(id), text)).await })
    };
    let (a, b) = (run(first, "from A"), run(second, "from B"));
    a.await??;
    b.await??;
    let stored = env
        .store
        .load(&key(ConversationKey::DEFAULT_TENANT, "raced"))
        .await?
        .context("stored")?;
    assert_eq!(stored.messages.len(), 4, "both turns are recorded");
    let requests = upstream.requests();
    assert_eq!(requests.len(), 2);
    // Serialized: the second call saw the whole first turn.
    let history = requests[1].body["messages"]
        .as_array()
        .context("messages")?;
    assert_eq!(history.len(), 3, "{history:?}");
    let contents = texts(&stored.messages);
    assert_eq!(contents[1], format!("echo: {}", contents[0]));
    assert_eq!(contents[3], format!("echo: {}", contents[2]));
    Ok(())
}

async fn leases_are_exclusive_and_released_only_by_their_owner(
    backend: Backend,
) -> anyhow::Result<()> {
    let env = Env::open(backend, |_| {}).await?;
    let store = &env.store;
    let k = key("t", "leased");
    let ttl = Duration::from_secs(10);
    let begin = |owner: &'static str, ttl: Duration| {
        let store = store.clone();
        let k = k.clone();
        async move {
            let request = BeginTurn {
                owner,
                ttl,
                wait: Duration::from_secs(1),
                idempotency: None,
                history: None,
            };
            store.begin_turn(&k, &request).await
        }
    };
    assert!(matches!(begin("one", ttl).await?, Begun::Acquired(_)));
    // Retried begin by the holder (a lost reply) still succeeds.
    assert!(matches!(begin("one", ttl).await?, Begun::Acquired(_)));
    match begin("two", ttl).await? {
        Begun::Busy { expires_in } => ensure!(expires_in <= ttl && expires_in > ttl / 2),
        other => anyhow::bail!("expected busy, got {other:?}"),
    }
    assert!(!store.renew_lease(&k, "two", ttl).await?);
    assert!(!store.release_lease(&k, "two").await?);
    assert!(store.renew_lease(&k, "one", ttl).await?);
    assert!(store.release_lease(&k, "one").await?);
    assert!(matches!(
        begin("two", Duration::from_millis(300)).await?,
        Begun::Acquired(_)
    ));
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        !store.renew_lease(&k, "two", ttl).await?,
        "expired leases are lost"
    );
    assert!(
        matches!(begin("three", ttl).await?, Begun::Acquired(_)),
        "and can be taken"
    );
    // The reject policy fails at once while the lease is held.
    let busy = Turn::begin(
        store.clone(),
        k.clone(),
        LeaseSettings {
            ttl,
            policy: LeasePolicy::Reject,
            max_wait: ttl,
        },
        None,
    )
    .await;
    assert!(matches!(busy, Err(MemoryError::Busy)));
    Ok(())
}

/// `max_conversations` holds per tenant: a tenant's writes only ever evict its own
/// conversations, however many another tenant writes.
async fn one_tenant_never_evicts_another(backend: Backend) -> anyhow::Result<()> {
    let env = &Env::open(backend, |s| s.max_conversations = 3).await?;
    for id in ["a1", "a2", "a3"] {
        env.store
            .append(&key("a", id), &[Message::user(id)], None)
            .await?;
    }
    for n in 0..20 {
        let id = format!("b{n}");
        env.store
            .append(&key("b", &id), &[Message::user(id.clone())], None)
            .await?;
        env.settle();
    }
    env.settle();
    for id in ["a1", "a2", "a3"] {
        ensure!(
            env.store.load(&key("a", id)).await?.is_some(),
            "tenant a's {id} survived tenant b's writes"
        );
    }
    let kept = futures::future::join_all(
        (0..20).map(|n| async move { env.store.load(&key("b", &format!("b{n}"))).await }),
    )
    .await
    .into_iter()
    .collect::<Result<Vec<_>, _>>()?
    .into_iter()
    .filter(Option::is_some)
    .count();
    ensure!(kept == 3, "tenant b keeps its own 3, kept {kept}");
    ensure!(
        env.store.load(&key("b", "b19")).await?.is_some(),
        "the newest is kept"
    );
    assert_eq!(env.store.conversation_count().await?, 6);
    Ok(())
}

/// The optional global cap bounds every tenant together, least recently used first.
async fn the_global_cap_bounds_every_tenant_together(backend: Backend) -> anyhow::Result<()> {
    let env = &Env::open(backend, |s| {
        s.max_conversations = 10;
        s.max_conversations_total = Some(4);
    })
    .await?;
    for (tenant, id) in [
        ("a", "1"),
        ("b", "1"),
        ("a", "2"),
        ("b", "2"),
        ("a", "3"),
        ("b", "3"),
    ] {
        env.store
            .append(&key(tenant, id), &[Message::user(id)], None)
            .await?;
        env.settle();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    env.settle();
    ensure!(
        env.store.load(&key("a", "1")).await?.is_none(),
        "a/1 was the oldest"
    );
    ensure!(
        env.store.load(&key("b", "1")).await?.is_none(),
        "b/1 was next"
    );
    for (tenant, id) in [("a", "2"), ("b", "2"), ("a", "3"), ("b", "3")] {
        ensure!(
            env.store.load(&key(tenant, id)).await?.is_some(),
            "{tenant}/{id} kept"
        );
    }
    assert_eq!(env.store.conversation_count().await?, 4);
    Ok(())
}

async fn unusual_ids_are_stored_safely(backend: Backend) -> anyhow::Result<()> {
    let env = Env::open(backend, |_| {}).await?;
    let ids = [
        "ünïcødé 💬 σ".to_owned(),
        "a:b:c".to_owned(),
        "{tag}".to_owned(),
        "}{".to_owned(),
        "%7B".to_owned(),
        "{".to_owned(),
        "é".repeat(256),
        "x:{y}:%3A".repeat(25),
    ];
    for (tenant, id) in [("t", ids.as_slice()), ("te:{n}ant", ids.as_slice())] {
        for (n, id) in id.iter().enumerate() {
            env.store
                .append(
                    &key(tenant, id),
                    &[Message::user(format!("{tenant}/{n}"))],
                    None,
                )
                .await?;
        }
    }
    for tenant in ["t", "te:{n}ant"] {
        for (n, id) in ids.iter().enumerate() {
            let loaded = env.store.load(&key(tenant, id)).await?.context("stored")?;
            assert_eq!(texts(&loaded.messages), [format!("{tenant}/{n}")], "{id}");
        }
        let page = env.store.list(tenant, None, 100).await?;
        let mut listed: Vec<String> = page
            .items
            .iter()
            .map(|s| s.id.as_str().to_owned())
            .collect();
        let mut expected = ids.to_vec();
        expected.sort();
        listed.sort();
        assert_eq!(listed, expected);
    }
    Ok(())
}

async fn tenants_cannot_read_each_other(backend: Backend) -> anyhow::Result<()> {
    let env = Env::open(backend, |_| {}).await?;
    env.store
        .append(&key("alice", "same"), &[Message::user("secret")], None)
        .await?;
    assert!(env.store.load(&key("bob", "same")).await?.is_none());
    assert!(env.store.list("bob", None, 10).await?.items.is_empty());
    assert!(!env.store.delete(&key("bob", "same")).await?);
    env.store
        .append(&key("bob", "same"), &[Message::user("mine")], None)
        .await?;
    // Tenant/id pairs that concatenate alike stay apart.
    env.store
        .append(&key("a:b", "c"), &[Message::user("1")], None)
        .await?;
    env.store
        .append(&key("a", "b:c"), &[Message::user("2")], None)
        .await?;
    let alice = env
        .store
        .load(&key("alice", "same"))
        .await?
        .context("kept")?;
    assert_eq!(texts(&alice.messages), ["secret"]);
    assert_eq!(
        texts(
            &env.store
                .load(&key("a:b", "c"))
                .await?
                .context("kept")?
                .messages
        ),
        ["1"]
    );
    assert_eq!(
        texts(
            &env.store
                .load(&key("a", "b:c"))
                .await?
                .context("kept")?
                .messages
        ),
        ["2"]
    );
    Ok(())
}

/// Kills the server a conversation lives on; operations fail with a typed error within the
/// response timeout (x2 with the one retry), then succeed again after a restart.
async fn an_outage_gives_typed_errors_then_recovers(backend: Backend) -> anyhow::Result<()> {
    let mut env = Env::open(backend, |_| {}).await?;
    let k = key("t", "outage");
    env.store
        .append(&k, &[Message::user("before")], None)
        .await?;
    let bound = Duration::from_secs_f64(env.settings.redis_response_timeout_seconds * 2.0)
        + Duration::from_millis(500);
    match &mut env.servers {
        Servers::None => anyhow::bail!("no server to kill"),
        Servers::Standalone(server) => server.kill().await?,
        Servers::Sentinel(group) => group.master_mut().kill().await?,
        // Kill every node: whichever holds the slot is down.
        Servers::Cluster(cluster) => {
            for node in cluster.nodes_mut() {
                node.kill().await?;
            }
        }
    }
    for _ in 0..3 {
        let started = tokio::time::Instant::now();
        let outcome = tokio::time::timeout(
            bound * 2,
            env.store.append(&k, &[Message::user("during")], None),
        )
        .await
        .context("the store hung")?;
        let elapsed = started.elapsed();
        match outcome {
            Err(MemoryError::Unavailable { .. } | MemoryError::Timeout { .. }) => {}
            other => anyhow::bail!("expected a typed outage error, got {other:?}"),
        }
        ensure!(
            elapsed <= bound,
            "failed after {elapsed:?}, bound {bound:?}"
        );
        match env.store.health_check().await {
            Err(MemoryError::Unavailable { .. } | MemoryError::Timeout { .. }) => {}
            other => anyhow::bail!("health check during the outage: {other:?}"),
        }
    }
    match &mut env.servers {
        Servers::None => {}
        Servers::Standalone(server) => server.restart().await?,
        Servers::Sentinel(group) => group.master_mut().restart().await?,
        Servers::Cluster(cluster) => {
            for node in cluster.nodes_mut() {
                node.restart().await?;
            }
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match env.store.append(&k, &[Message::user("after")], None).await {
            Ok(_) => break,
            Err(error) if tokio::time::Instant::now() < deadline => {
                tracing::debug!(%error, "not yet");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => anyhow::bail!("never recovered: {error}"),
        }
    }
    let loaded = env
        .store
        .load(&k)
        .await?
        .context("written after the restart")?;
    assert_eq!(
        texts(&loaded.messages).last().map(String::as_str),
        Some("after")
    );
    env.store.health_check().await?;
    Ok(())
}

/// A turn's begin loads only the history window (the tail), and the version and fields are
/// the whole conversation's.
async fn a_turn_loads_only_its_history_window(backend: Backend) -> anyhow::Result<()> {
    let env = Env::open(backend, |_| {}).await?;
    let k = key("t", "windowed");
    let messages: Vec<Message> = (0..7).map(|i| Message::user(format!("m{i}"))).collect();
    let version = env.store.append(&k, &messages, None).await?;
    let begin = |history, owner| BeginTurn {
        owner,
        ttl: Duration::from_secs(5),
        wait: Duration::from_secs(1),
        idempotency: None,
        history,
    };
    for (history, expected) in [
        (Some(3), vec!["m4", "m5", "m6"]),
        (Some(100), vec!["m0", "m1", "m2", "m3", "m4", "m5", "m6"]),
        (None, vec!["m0", "m1", "m2", "m3", "m4", "m5", "m6"]),
    ] {
        let Begun::Acquired(loaded) = env.store.begin_turn(&k, &begin(history, "w")).await? else {
            anyhow::bail!("the lease is free");
        };
        ensure!(
            texts(&loaded.messages) == expected,
            "{history:?}: {:?}",
            texts(&loaded.messages)
        );
        ensure!(
            loaded.version == version,
            "the version is the whole conversation's"
        );
        ensure!(env.store.release_lease(&k, "w").await?);
    }
    Ok(())
}

every_backend!(
    a_turn_loads_only_its_history_window,
    round_trip,
    listing_is_paged_in_id_order,
    ttl_expires_and_every_write_refreshes_it,
    least_recently_used_is_evicted_first,
    oldest_messages_are_trimmed,
    a_stale_expected_version_conflicts_and_writes_nothing,
    concurrent_appends_lose_nothing,
    racing_turns_are_serialized_and_both_recorded,
    leases_are_exclusive_and_released_only_by_their_owner,
    one_tenant_never_evicts_another,
    the_global_cap_bounds_every_tenant_together,
    unusual_ids_are_stored_safely,
    tenants_cannot_read_each_other,
);

/// Faults only make sense where there is a server to kill.
mod faults {
    mod standalone {
        contract!(Standalone: an_outage_gives_typed_errors_then_recovers);
    }
    mod cluster {
        contract!(Cluster: an_outage_gives_typed_errors_then_recovers);
    }
    mod sentinel {
        contract!(Sentinel: an_outage_gives_typed_errors_then_recovers);
    }
}

/// Kills the Sentinel group's master: once the sentinel promotes the replica, writes resume
/// on it through the same store, and what was written (and replicated) before is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_failover_writes_resume_on_the_new_master() -> anyhow::Result<()> {
    let mut env = Env::open(Backend::Sentinel, |_| {}).await?;
    let k = key("t", "failover");
    env.store
        .append(&k, &[Message::user("before")], None)
        .await?;
    let Servers::Sentinel(group) = &mut env.servers else {
        anyhow::bail!("not a sentinel group");
    };
    let old_master = group.current_master_port().await?;
    group.fail_over().await?;
    let new_master = group.current_master_port().await?;
    ensure!(new_master != old_master && new_master == group.replica().port());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        // With the expected version, a timed-out attempt that was applied all the same shows
        // up as a conflict at version 2 on the next attempt instead of a second message.
        match env
            .store
            .append(&k, &[Message::user("after")], Some(1))
            .await
        {
            Ok(_) | Err(MemoryError::Conflict { actual: 2, .. }) => break,
            Err(error @ (MemoryError::Unavailable { .. } | MemoryError::Timeout { .. }))
                if tokio::time::Instant::now() < deadline =>
            {
                tracing::debug!(%error, "failover in progress");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => anyhow::bail!("writes never resumed: {error}"),
        }
    }
    let loaded = env
        .store
        .load(&k)
        .await?
        .context("kept across the failover")?;
    assert_eq!(
        texts(&loaded.messages),
        ["before", "after"],
        "version {}",
        loaded.version
    );
    // The write went to the promoted server.
    let keys = group.replica().cli(&["dbsize"]).await?;
    ensure!(
        keys.trim().parse::<u64>()? > 0,
        "the new master holds the data"
    );
    env.store.health_check().await?;
    Ok(())
}

/// A hung server (all clients paused): commands fail with a timeout after the response
/// timeout, and with `redis_max_connections = 1` the others fail after the pool wait instead
/// of queueing without bound. The store works again once the server answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_commands_are_bounded_and_a_hung_server_times_out() -> anyhow::Result<()> {
    let env = Env::open(Backend::Standalone, |s| {
        s.redis_max_connections = 1;
        s.redis_pool_wait_seconds = 0.3;
        s.redis_response_timeout_seconds = 1.5;
        s.redis_retry_on_timeout = false;
    })
    .await?;
    env.store.health_check().await?;
    let Servers::Standalone(server) = &env.servers else {
        anyhow::bail!("not standalone");
    };
    // Paused clients' commands wait unanswered (the pause also holds an unpause; it ends
    // by itself after 2.5 s).
    server.cli(&["client", "pause", "2500", "ALL"]).await?;
    let mut tasks = Vec::new();
    for i in 0..3 {
        let store = env.store.clone();
        tasks.push(tokio::spawn(async move {
            // Staggered so the first one holds the only slot.
            tokio::time::sleep(Duration::from_millis(50 * i)).await;
            store.load(&key("t", "paused")).await
        }));
    }
    let mut after = Vec::new();
    for task in tasks {
        match task.await? {
            Err(MemoryError::Timeout { after: bound, .. }) => after.push(bound),
            other => anyhow::bail!("expected a timeout, got {other:?}"),
        }
    }
    after.sort();
    assert_eq!(
        after,
        [
            Duration::from_millis(300),
            Duration::from_millis(300),
            Duration::from_millis(1500)
        ],
        "one command waits for the server, the others for the single slot"
    );
    env.store
        .append(&key("t", "paused"), &[Message::user("back")], None)
        .await?;
    Ok(())
}
