//! The turn protocol on every backend: a turn cancelled at any await point frees its
//! conversation at once and leaves nothing half-written; a crashed holder blocks for at most
//! one short lease; a release that failed is retried once Redis is back; a stale holder
//! cannot commit (fencing); idempotency keys make retries safe; waiters are woken by the
//! release, not by polling; and a turn costs two commands on one server.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use arshai::agent::{
    Agent, AgentInput, ConversationAgent, ConversationAgentConfig, FnTool, ToolError, ToolSet,
};
use arshai::llm::{ClientFactory, LlmClient, Message};
use arshai::memory::{
    BeginTurn, Begun, CommitTurn, Conversation, ConversationKey, ConversationPage, IdempotencyKey,
    LeasePolicy, LeaseSettings, LeaseWakers, MemoryError, MemoryStore, Turn, TurnStart, TurnWait,
};
use arshai::settings::{ProviderChoice, ProvidersSettings};
use arshai_testkit::{FakeUpstream, Reply, UpstreamOptions, redis_cli};
use async_trait::async_trait;
use tokio::time::Instant;

#[macro_use]
mod support;
use support::{Backend, Env, Servers, key, texts};

/// A lease long enough that only an explicit release can free a conversation within the
/// tests' bounds.
const LONG_LEASE: Duration = Duration::from_secs(30);
/// How soon a cancelled turn's conversation must be free again. The protocol's target is
/// 50 ms; the bound leaves room for a loaded CI machine while staying far below the lease.
const FREED_WITHIN: Duration = Duration::from_secs(1);

/// Which store call a trap interrupts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    Begin,
    Commit,
    Release,
}

/// How the trapped call is interrupted: before it reaches the store, or after the store
/// applied it but before its reply is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Moment {
    BeforeSent,
    AfterApplied,
}

/// A store that, once armed, never answers one call, so the turn awaiting it is dropped
/// there by its caller's timeout — the way a client disconnect drops a turn on the server.
/// With `renewals_fail`, every lease renewal fails instead, so a lease runs out mid-turn (a
/// paused or partitioned instance).
struct Interrupting {
    inner: Arc<dyn MemoryStore>,
    trap: Mutex<Option<(Call, Moment)>>,
    renewals_fail: bool,
}

impl Interrupting {
    fn new(inner: Arc<dyn MemoryStore>, call: Call, moment: Moment) -> Arc<Self> {
        Arc::new(Self {
            inner,
            trap: Mutex::new(Some((call, moment))),
            renewals_fail: false,
        })
    }

    fn without_renewals(inner: Arc<dyn MemoryStore>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            trap: Mutex::new(None),
            renewals_fail: true,
        })
    }

    /// The moment to interrupt `call` at, if it is the trapped one (the trap fires once).
    fn sprung(&self, call: Call) -> Option<Moment> {
        let mut trap = self.trap.lock().expect("trap");
        match *trap {
            Some((trapped, moment)) if trapped == call => {
                *trap = None;
                Some(moment)
            }
            _ => None,
        }
    }

    async fn hang<T>(&self, call: Call, applied: impl Future<Output = T>) -> Option<T> {
        match self.sprung(call) {
            None => Some(applied.await),
            Some(Moment::BeforeSent) => std::future::pending().await,
            Some(Moment::AfterApplied) => {
                // The store applies the call; its reply is lost with the dropped turn.
                let _ = applied.await;
                std::future::pending().await
            }
        }
    }
}

#[async_trait]
impl MemoryStore for Interrupting {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    async fn load(&self, key: &ConversationKey) -> Result<Option<Conversation>, MemoryError> {
        self.inner.load(key).await
    }
    async fn append(
        &self,
        key: &ConversationKey,
        messages: &[Message],
        expected: Option<u64>,
    ) -> Result<u64, MemoryError> {
        self.inner.append(key, messages, expected).await
    }
    async fn set_working_memory(
        &self,
        key: &ConversationKey,
        text: &str,
    ) -> Result<u64, MemoryError> {
        self.inner.set_working_memory(key, text).await
    }
    async fn merge_metadata(
        &self,
        key: &ConversationKey,
        metadata: &BTreeMap<String, String>,
    ) -> Result<u64, MemoryError> {
        self.inner.merge_metadata(key, metadata).await
    }
    async fn delete(&self, key: &ConversationKey) -> Result<bool, MemoryError> {
        self.inner.delete(key).await
    }
    async fn list(
        &self,
        tenant: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<ConversationPage, MemoryError> {
        self.inner.list(tenant, cursor, limit).await
    }
    async fn health_check(&self) -> Result<Duration, MemoryError> {
        self.inner.health_check().await
    }
    async fn begin_turn(
        &self,
        key: &ConversationKey,
        request: &BeginTurn<'_>,
    ) -> Result<Begun, MemoryError> {
        self.hang(Call::Begin, self.inner.begin_turn(key, request))
            .await
            .expect("answered")
    }
    async fn commit_turn(
        &self,
        key: &ConversationKey,
        commit: &CommitTurn<'_>,
    ) -> Result<u64, MemoryError> {
        self.hang(Call::Commit, self.inner.commit_turn(key, commit))
            .await
            .expect("answered")
    }
    async fn renew_lease(
        &self,
        key: &ConversationKey,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, MemoryError> {
        if self.renewals_fail {
            return Err(MemoryError::Unavailable {
                backend: "test",
                message: "renewals are cut off".to_owned(),
            });
        }
        self.inner.renew_lease(key, owner, ttl).await
    }
    async fn release_lease(&self, key: &ConversationKey, owner: &str) -> Result<bool, MemoryError> {
        self.hang(Call::Release, self.inner.release_lease(key, owner))
            .await
            .expect("answered")
    }
    fn lease_wakers(&self) -> &LeaseWakers {
        self.inner.lease_wakers()
    }
    fn observe_turn_wait(&self, wait: &TurnWait) {
        self.inner.observe_turn_wait(wait);
    }
    async fn conversation_count(&self) -> Result<u64, MemoryError> {
        self.inner.conversation_count().await
    }
}

fn llm(upstream: &FakeUpstream) -> anyhow::Result<Arc<dyn LlmClient>> {
    let mut providers = ProvidersSettings::default();
    providers.openai.base_url = Some(upstream.base_url());
    Ok(ClientFactory::new(providers).client(ProviderChoice::Openai)?)
}

fn agent(
    llm: Arc<dyn LlmClient>,
    store: Arc<dyn MemoryStore>,
    lease: LeaseSettings,
) -> ConversationAgent {
    ConversationAgent::new(
        ConversationAgentConfig {
            name: "turns".to_owned(),
            lease,
            ..ConversationAgentConfig::default()
        },
        llm,
        store,
    )
}

fn long_lease() -> LeaseSettings {
    LeaseSettings {
        ttl: LONG_LEASE,
        policy: LeasePolicy::Wait,
        max_wait: Duration::from_secs(10),
    }
}

/// How long until `store` (another instance) can take the conversation's lease.
async fn time_until_free(
    store: &Arc<dyn MemoryStore>,
    k: &ConversationKey,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let request = BeginTurn {
        owner: "the-next-turn",
        ttl: Duration::from_secs(5),
        wait: Duration::from_secs(1),
        idempotency: None,
        history: None,
    };
    loop {
        // Errors (Redis still coming back) count as busy.
        if let Ok(Begun::Acquired(_)) = store.begin_turn(k, &request).await {
            store.release_lease(k, "the-next-turn").await?;
            return Ok(started.elapsed());
        }
        if started.elapsed() > Duration::from_secs(10) {
            bail!("the conversation stayed busy for 10 s");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Where a turn is cancelled.
#[derive(Debug, Clone, Copy)]
enum Point {
    Begin(Moment),
    Llm,
    Tool,
    Commit(Moment),
    /// The turn failed (the upstream refused it) and its release is interrupted.
    Release,
}

async fn cancelled_at(backend: Backend, point: Point) -> anyhow::Result<()> {
    let env = Env::open(backend, |_| {}).await?;
    let upstream = FakeUpstream::start_with(UpstreamOptions {
        latency: if matches!(point, Point::Llm) {
            Duration::from_secs(20)
        } else {
            Duration::ZERO
        },
        record: true,
        ..UpstreamOptions::default()
    })
    .await?;
    let k = key(arshai::memory::ConversationKey::DEFAULT_TENANT, "cancelled");
    // One whole turn first, so "nothing half-written" has something to compare with.
    env.store
        .append(
            &k,
            &[Message::user("before"), Message::assistant("ok")],
            None,
        )
        .await?;
    let store: Arc<dyn MemoryStore> = match point {
        Point::Begin(moment) => Interrupting::new(env.store.clone(), Call::Begin, moment),
        Point::Commit(moment) => Interrupting::new(env.store.clone(), Call::Commit, moment),
        Point::Release => {
            // A client error is not retried, so the turn fails at once and releases.
            upstream.push(Reply::status(400));
            Interrupting::new(env.store.clone(), Call::Release, Moment::BeforeSent)
        }
        Point::Llm | Point::Tool => env.store.clone(),
    };
    let mut turns = agent(llm(&upstream)?, store, long_lease());
    if matches!(point, Point::Tool) {
        upstream.push(Reply::tool_call("slow", "{}"));
        turns = turns.with_tools(ToolSet::new().with(FnTool::new(
            "slow",
            "Takes a minute",
            |_: serde_json::Value| async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok::<_, ToolError>("done".to_owned())
            },
        )));
    }
    let turn = Arc::new(turns).respond(AgentInput::new(Some(k.id.clone()), "hello"));
    let outcome = tokio::time::timeout(Duration::from_millis(500), turn).await;
    ensure!(
        outcome.is_err(),
        "{point:?}: the turn ended instead of hanging: {outcome:?}"
    );
    // The turn future is dropped here, at the trapped await point.
    let other = env.another_instance().await?;
    let freed = time_until_free(&other, &k).await?;
    println!("{backend:?} {point:?}: free again after {freed:?}");
    ensure!(
        freed < FREED_WITHIN,
        "{point:?}: free only after {freed:?} (the lease is {LONG_LEASE:?})"
    );
    let stored = env.store.load(&k).await?.context("kept")?;
    match point {
        // The commit was applied before the turn was dropped: recorded whole.
        Point::Commit(Moment::AfterApplied) => {
            assert_eq!(
                texts(&stored.messages),
                ["before", "ok", "hello", "echo: hello"]
            );
        }
        _ => assert_eq!(
            texts(&stored.messages),
            ["before", "ok"],
            "{point:?}: nothing of the cancelled turn is visible"
        ),
    }
    Ok(())
}

async fn cancelled_before_the_begin_is_sent(backend: Backend) -> anyhow::Result<()> {
    cancelled_at(backend, Point::Begin(Moment::BeforeSent)).await
}
async fn cancelled_after_the_begin_was_applied(backend: Backend) -> anyhow::Result<()> {
    cancelled_at(backend, Point::Begin(Moment::AfterApplied)).await
}
async fn cancelled_during_the_llm_call(backend: Backend) -> anyhow::Result<()> {
    cancelled_at(backend, Point::Llm).await
}
async fn cancelled_during_a_tool_call(backend: Backend) -> anyhow::Result<()> {
    cancelled_at(backend, Point::Tool).await
}
async fn cancelled_before_the_commit_is_sent(backend: Backend) -> anyhow::Result<()> {
    cancelled_at(backend, Point::Commit(Moment::BeforeSent)).await
}
async fn cancelled_after_the_commit_was_applied(backend: Backend) -> anyhow::Result<()> {
    cancelled_at(backend, Point::Commit(Moment::AfterApplied)).await
}
async fn cancelled_while_a_failed_turn_releases(backend: Backend) -> anyhow::Result<()> {
    cancelled_at(backend, Point::Release).await
}

/// A holder that vanishes without releasing (a crashed instance) blocks the conversation
/// for at most its lease; the waiting turn then gets it.
async fn a_crashed_holder_blocks_for_at_most_one_lease(backend: Backend) -> anyhow::Result<()> {
    let env = Env::open(backend, |_| {}).await?;
    let k = key("t", "crashed");
    let lease = Duration::from_secs(2);
    let crashed = BeginTurn {
        owner: "crashed-instance",
        ttl: lease,
        wait: lease,
        idempotency: None,
        history: None,
    };
    assert!(matches!(
        env.store.begin_turn(&k, &crashed).await?,
        Begun::Acquired(_)
    ));
    let started = Instant::now();
    let other = env.another_instance().await?;
    let TurnStart::Open(turn) = Turn::begin(other, k.clone(), long_lease(), None).await? else {
        bail!("no idempotency key");
    };
    let waited = started.elapsed();
    ensure!(
        waited <= lease + Duration::from_millis(700),
        "waited {waited:?} for a {lease:?} lease"
    );
    turn.abort().await;
    Ok(())
}

/// A stale holder — its lease expired while it was paused — cannot commit: its turn is
/// refused and the turn of the instance that took over is the only one recorded.
async fn a_stale_holder_cannot_commit(backend: Backend) -> anyhow::Result<()> {
    let env = Env::open(backend, |_| {}).await?;
    let k = key("t", "fenced");
    let short = LeaseSettings {
        ttl: Duration::from_millis(300),
        policy: LeasePolicy::Wait,
        max_wait: Duration::from_secs(5),
    };
    let paused: Arc<dyn MemoryStore> = Interrupting::without_renewals(env.store.clone());
    let TurnStart::Open(stale) = Turn::begin(paused, k.clone(), short, None).await? else {
        bail!("no idempotency key");
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    let other = env.another_instance().await?;
    let TurnStart::Open(fresh) = Turn::begin(other, k.clone(), long_lease(), None).await? else {
        bail!("no idempotency key");
    };
    let refused = stale
        .commit(&[Message::user("stale"), Message::assistant("late")], None)
        .await;
    ensure!(
        matches!(refused, Err(MemoryError::LeaseLost)),
        "the stale commit was {refused:?}"
    );
    fresh
        .commit(&[Message::user("fresh"), Message::assistant("now")], None)
        .await?;
    let stored = env.store.load(&k).await?.context("stored")?;
    assert_eq!(texts(&stored.messages), ["fresh", "now"]);
    Ok(())
}

/// A turn retried with its idempotency key answers from the receipt: one upstream call,
/// one recorded turn; the same key on another message is refused.
async fn an_idempotent_turn_is_recorded_once(backend: Backend) -> anyhow::Result<()> {
    let env = Env::open(backend, |_| {}).await?;
    let upstream = FakeUpstream::start_with(UpstreamOptions {
        record: true,
        ..UpstreamOptions::default()
    })
    .await?;
    let first = Arc::new(agent(llm(&upstream)?, env.store.clone(), long_lease()));
    let second = Arc::new(agent(
        llm(&upstream)?,
        env.another_instance().await?,
        long_lease(),
    ));
    let input = |message: &str| AgentInput {
        idempotency_key: Some("retry-me".to_owned()),
        ..AgentInput::new(None, message)
    };
    let original = Arc::clone(&first).respond(input("hello")).await?;
    let retried = Arc::clone(&second).respond(input("hello")).await?;
    assert_eq!(
        retried, original,
        "the retry answers with the recorded turn"
    );
    assert_eq!(upstream.requests().len(), 1, "the model was asked once");
    let k = key(
        ConversationKey::DEFAULT_TENANT,
        original
            .conversation_id
            .as_ref()
            .context("recorded")?
            .as_str(),
    );
    let stored = env.store.load(&k).await?.context("stored")?;
    assert_eq!(texts(&stored.messages), ["hello", "echo: hello"]);
    let reused = second.respond(input("something else")).await;
    ensure!(
        matches!(
            reused,
            Err(arshai::agent::AgentError::Memory(
                MemoryError::IdempotencyMismatch
            ))
        ),
        "{reused:?}"
    );
    // Store level: the receipt comes back as it was kept.
    let keyed = IdempotencyKey {
        key: "k2".to_owned(),
        fingerprint: "f".to_owned(),
    };
    let TurnStart::Open(turn) =
        Turn::begin(env.store.clone(), k.clone(), long_lease(), Some(&keyed)).await?
    else {
        bail!("k2 is new");
    };
    turn.commit(&[Message::user("x")], Some((&keyed, "the receipt")))
        .await?;
    match Turn::begin(env.store.clone(), k.clone(), long_lease(), Some(&keyed)).await? {
        TurnStart::Recorded(receipt) => assert_eq!(receipt.body, "the receipt"),
        TurnStart::Open(_) => bail!("k2 was committed"),
    }
    Ok(())
}

/// A turn waiting for a busy conversation — on this instance or another — is woken by the
/// release: it gets the lease before its fallback poll would have tried again.
async fn a_waiting_turn_is_woken_by_the_release(backend: Backend) -> anyhow::Result<()> {
    let env = Env::open(backend, |_| {}).await?;
    let k = key("t", "woken");
    for waiter_store in [env.store.clone(), env.another_instance().await?] {
        let TurnStart::Open(holder) =
            Turn::begin(env.store.clone(), k.clone(), long_lease(), None).await?
        else {
            bail!("no idempotency key");
        };
        let waiter = tokio::spawn({
            let k = k.clone();
            async move { Turn::begin(waiter_store, k, long_lease(), None).await }
        });
        // The waiter tries, finds the conversation busy, and sleeps.
        tokio::time::sleep(Duration::from_millis(150)).await;
        ensure!(
            !waiter.is_finished(),
            "the waiter waits while the lease is held"
        );
        holder.commit(&[Message::user("first")], None).await?;
        let TurnStart::Open(next) = waiter.await?? else {
            bail!("no idempotency key");
        };
        let wait = next.wait();
        ensure!(
            wait.handoff.is_some(),
            "the waiter was woken by the release, not by its fallback poll ({wait:?})"
        );
        println!(
            "{backend:?}: hand-off {:?} after a wait of {:?}",
            wait.handoff, wait.waited
        );
        next.commit(&[Message::user("second")], None).await?;
    }
    Ok(())
}

/// A commit sent again with the same write id (its reply was lost) is applied once, even
/// though the first attempt already released the lease.
async fn a_retried_commit_is_applied_once(backend: Backend) -> anyhow::Result<()> {
    let env = Env::open(backend, |_| {}).await?;
    let k = key("t", "retried");
    let begin = BeginTurn {
        owner: "owner",
        ttl: LONG_LEASE,
        wait: LONG_LEASE,
        idempotency: None,
        history: None,
    };
    assert!(matches!(
        env.store.begin_turn(&k, &begin).await?,
        Begun::Acquired(_)
    ));
    let messages = [Message::user("once"), Message::assistant("only once")];
    let commit = CommitTurn {
        owner: "owner",
        expected_version: Some(0),
        write_id: "write-1",
        messages: &messages,
        receipt: None,
        working_memory: None,
    };
    let first = env.store.commit_turn(&k, &commit).await?;
    let again = env.store.commit_turn(&k, &commit).await?;
    assert_eq!(again, first, "the retry answers with the applied version");
    let stored = env.store.load(&k).await?.context("stored")?;
    assert_eq!(texts(&stored.messages), ["once", "only once"]);
    // A different write by the same (former) owner is fenced.
    let late = CommitTurn {
        write_id: "write-2",
        ..commit
    };
    ensure!(matches!(
        env.store.commit_turn(&k, &late).await,
        Err(MemoryError::LeaseLost)
    ));
    Ok(())
}

every_backend!(
    a_retried_commit_is_applied_once,
    cancelled_before_the_begin_is_sent,
    cancelled_after_the_begin_was_applied,
    cancelled_during_the_llm_call,
    cancelled_during_a_tool_call,
    cancelled_before_the_commit_is_sent,
    cancelled_after_the_commit_was_applied,
    cancelled_while_a_failed_turn_releases,
    a_crashed_holder_blocks_for_at_most_one_lease,
    a_stale_holder_cannot_commit,
    an_idempotent_turn_is_recorded_once,
    a_waiting_turn_is_woken_by_the_release,
);

/// Watches a server with `redis-cli MONITOR` and counts the commands clients send it
/// (commands run inside scripts are shown as `[0 lua]` and not counted).
struct Monitor {
    child: tokio::process::Child,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

impl Monitor {
    async fn start(port: u16) -> anyhow::Result<Self> {
        use tokio::io::AsyncBufReadExt;
        let mut child = tokio::process::Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "MONITOR"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let stdout = child.stdout.take().context("stdout")?;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let first = tokio::time::timeout(Duration::from_secs(5), lines.next_line()).await??;
        ensure!(first.as_deref() == Some("OK"), "MONITOR said {first:?}");
        Ok(Self { child, lines })
    }

    /// The client commands seen until a `PING` marker comes through.
    async fn client_commands(mut self, port: u16) -> anyhow::Result<Vec<String>> {
        redis_cli(port, &["ECHO", "end-of-turns"]).await?;
        let mut seen = Vec::new();
        loop {
            let line = tokio::time::timeout(Duration::from_secs(5), self.lines.next_line())
                .await??
                .context("MONITOR ended")?;
            if line.contains("\"end-of-turns\"") {
                break;
            }
            if !line.contains(" lua]") {
                seen.push(line);
            }
        }
        self.child.start_kill()?;
        Ok(seen)
    }
}

/// On one server (standalone, Sentinel's master) a turn is two commands: begin and commit.
async fn a_turn_is_two_commands(backend: Backend) -> anyhow::Result<()> {
    let env = Env::open(backend, |_| {}).await?;
    let port = match &env.servers {
        Servers::Standalone(server) => server.port(),
        Servers::Sentinel(group) => group.current_master_port().await?,
        _ => bail!("one-server backends only"),
    };
    let upstream = FakeUpstream::start().await?;
    let turns = Arc::new(agent(llm(&upstream)?, env.store.clone(), long_lease()));
    let id = arshai::memory::ConversationId::parse("counted")?;
    Arc::clone(&turns)
        .respond(AgentInput::new(Some(id.clone()), "warm up"))
        .await?;
    let monitor = Monitor::start(port).await?;
    for n in 0..10 {
        Arc::clone(&turns)
            .respond(AgentInput::new(Some(id.clone()), format!("turn {n}")))
            .await?;
    }
    let seen = monitor.client_commands(port).await?;
    ensure!(
        seen.len() == 20 && seen.iter().all(|line| line.contains("\"EVALSHA\"")),
        "10 turns sent {} commands: {seen:#?}",
        seen.len()
    );
    Ok(())
}

mod round_trips {
    mod standalone {
        contract!(Standalone: a_turn_is_two_commands);
    }
    mod sentinel {
        contract!(Sentinel: a_turn_is_two_commands);
    }
}

/// With Redis down when a turn ends, its release is retried and lands once Redis is back,
/// long before the lease would have expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_release_is_retried_when_redis_is_back() -> anyhow::Result<()> {
    let mut env = Env::open(Backend::Standalone, |s| s.redis_retry_on_timeout = false).await?;
    let Servers::Standalone(server) = &mut env.servers else {
        bail!("standalone");
    };
    let k = key("t", "outage");
    let TurnStart::Open(turn) =
        Turn::begin(env.store.clone(), k.clone(), long_lease(), None).await?
    else {
        bail!("no idempotency key");
    };
    // Persist the lease (as AOF or a snapshot would), take Redis down, give the turn up.
    server.cli(&["SAVE"]).await?;
    server.kill().await?;
    drop(turn);
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.restart().await?;
    let back = Instant::now();
    let raw = redis_cli(server.port(), &["EXISTS", "arshai:{t:outage}:l"]).await?;
    ensure!(raw.trim() == "1", "the lease survived the restart: {raw}");
    let freed = time_until_free(&env.store, &k).await?;
    println!("free {freed:?} after Redis came back (a {LONG_LEASE:?} lease)");
    ensure!(
        back.elapsed() < Duration::from_secs(5),
        "the lease was released {:?} after Redis came back",
        back.elapsed()
    );
    Ok(())
}

/// On Cluster the indexes are spread over buckets (no single hot slot), and each tenant's
/// bound is `buckets × ⌈max / buckets⌉`, still never touching another tenant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_indexes_are_bucketed_and_bounded() -> anyhow::Result<()> {
    let env = Env::open(Backend::Cluster, |s| {
        s.redis_index_buckets = 8;
        s.max_conversations = 16;
    })
    .await?;
    for n in 0..5 {
        env.store
            .append(&key("quiet", &format!("q{n}")), &[Message::user("q")], None)
            .await?;
    }
    for n in 0..200 {
        env.store
            .append(&key("busy", &format!("b{n}")), &[Message::user("b")], None)
            .await?;
    }
    // Evictions on Cluster finish in the background.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let Servers::Cluster(cluster) = &env.servers else {
        bail!("cluster");
    };
    let mut buckets = std::collections::BTreeSet::new();
    let mut busy_kept = 0;
    for seed in cluster.seeds() {
        let port: u16 = seed.rsplit(':').next().context("port")?.parse()?;
        for name in redis_cli(port, &["KEYS", "arshai:{t:busy:*}:lru"])
            .await?
            .lines()
        {
            buckets.insert(name.to_owned());
        }
        busy_kept += redis_cli(port, &["KEYS", "arshai:{busy:*}:h"])
            .await?
            .lines()
            .count();
    }
    ensure!(
        buckets.len() == 8,
        "the tenant's index is spread over 8 buckets: {buckets:?}"
    );
    ensure!(
        (8..=16).contains(&busy_kept),
        "tenant busy keeps at most 8 × ⌈16/8⌉ = 16, kept {busy_kept}"
    );
    for n in 0..5 {
        ensure!(
            env.store
                .load(&key("quiet", &format!("q{n}")))
                .await?
                .is_some(),
            "the quiet tenant keeps q{n}"
        );
    }
    Ok(())
}
