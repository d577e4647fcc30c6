//! Rate limits and token budgets, on real `redis-server` processes (standalone and a
//! 3-master Cluster) with one link per simulated replica, and in process on virtual time.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use arshai::limits::{
    BudgetLimits, Budgets, FailMode, FleetRedis, LimitError, LimitStats, LimitsSettings,
    RateLimiter, RateLimits, Refusal, Subject,
};
use arshai::memory::redis::RedisStoreConfig;
use support::Servers;

async fn start(cluster: bool) -> anyhow::Result<(Servers, RedisStoreConfig)> {
    support::limits_redis(cluster).await
}

/// One link per replica, as separate instances would have.
async fn replicas(config: &RedisStoreConfig, n: usize) -> anyhow::Result<Vec<FleetRedis>> {
    let mut links = Vec::with_capacity(n);
    for _ in 0..n {
        links.push(FleetRedis::open(config, 64).await?);
    }
    Ok(links)
}

fn subject(tenant: &str, key: &str, settings: &LimitsSettings) -> Subject {
    Subject::new(tenant, Some(key.to_owned()), settings)
}

/// 300 requests from 6 replicas in parallel on a key limited to 60 per minute: exactly 60
/// are admitted (GCRA refills one per second, so the race must finish within a second for
/// "exactly"; it takes a few milliseconds), and every refusal carries the headers' data.
async fn requests_per_minute_hold_across_replicas(cluster: bool) -> anyhow::Result<()> {
    let (_servers, config) = start(cluster).await?;
    let settings = LimitsSettings {
        key: RateLimits {
            requests_per_minute: Some(60),
            tokens_per_minute: None,
        },
        ..LimitsSettings::default()
    };
    let limiters: Vec<Arc<RateLimiter>> = replicas(&config, 6)
        .await?
        .iter()
        .map(|redis| {
            Arc::new(RateLimiter::redis(
                redis,
                &settings,
                Arc::new(LimitStats::default()),
            ))
        })
        .collect();
    let who = subject("acme", "key-1", &settings);
    // Warm every link (Cluster slot maps, script cache) on another key.
    for limiter in &limiters {
        let _ = limiter
            .check(&subject("acme", "warm-up", &settings), 0)
            .await?;
    }
    let started = Instant::now();
    let tasks: Vec<_> = (0..300)
        .map(|i| {
            let limiter = limiters[i % limiters.len()].clone();
            let who = who.clone();
            tokio::spawn(async move { limiter.check(&who, 0).await })
        })
        .collect();
    let mut decisions = Vec::with_capacity(300);
    for task in tasks {
        decisions.push(task.await??);
    }
    let elapsed = started.elapsed();
    let allowed = decisions.iter().filter(|d| d.allowed).count() as u64;
    let refill = elapsed.as_secs();
    println!("300 racing checks on 6 replicas: {allowed} allowed in {elapsed:?}");
    assert!(
        (60..=60 + refill).contains(&allowed),
        "{allowed} allowed in {elapsed:?}"
    );
    if elapsed < Duration::from_secs(1) {
        assert_eq!(allowed, 60);
    }
    for decision in &decisions {
        let requests = decision.requests.expect("a requests limit applies");
        assert_eq!(requests.limit, 60);
        assert!(requests.remaining < 60);
        assert!(decision.tokens.is_none());
        if decision.allowed {
            assert!(decision.retry_after.is_none());
        } else {
            assert_eq!(requests.remaining, 0);
            assert_eq!(decision.refused_by, Some(Refusal::KeyRequests));
            let retry = decision.retry_after.expect("a refusal says when to retry");
            assert_eq!(decision.retry_after_seconds(), Some(1));
            assert!(retry > Duration::ZERO && retry <= Duration::from_secs(1));
            assert!(
                requests.reset > Duration::from_secs(58)
                    && requests.reset <= Duration::from_secs(60)
            );
        }
    }
    // The tenant of another key is untouched.
    assert!(
        limiters[0]
            .check(&subject("acme", "key-2", &settings), 0)
            .await?
            .allowed
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_per_minute_hold_across_replicas_standalone() -> anyhow::Result<()> {
    requests_per_minute_hold_across_replicas(false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_per_minute_hold_across_replicas_cluster() -> anyhow::Result<()> {
    requests_per_minute_hold_across_replicas(true).await
}

/// Tokens per minute: reservations at the estimate, refunds and extra charges at settle,
/// on a key and its tenant at once; then 50 racing reservations admit exactly what fits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_per_minute_reserve_and_settle() -> anyhow::Result<()> {
    let (_servers, config) = start(false).await?;
    let settings = LimitsSettings {
        key: RateLimits {
            requests_per_minute: None,
            tokens_per_minute: Some(1_000),
        },
        tenant: RateLimits {
            requests_per_minute: None,
            tokens_per_minute: Some(1_500),
        },
        ..LimitsSettings::default()
    };
    let links = replicas(&config, 3).await?;
    let stats = Arc::new(LimitStats::default());
    let a = RateLimiter::redis(&links[0], &settings, stats.clone());
    let b = RateLimiter::redis(&links[1], &settings, stats.clone());
    let key1 = subject("acme", "key-1", &settings);
    let key2 = subject("acme", "key-2", &settings);

    let first = a.check(&key1, 400).await?;
    let second = b.check(&key1, 400).await?;
    assert!(first.allowed && second.allowed);
    let tokens = second.tokens.expect("a tokens limit applies");
    assert_eq!((tokens.limit, tokens.remaining), (1_000, 200));
    let third = a.check(&key1, 400).await?;
    assert!(!third.allowed);
    assert_eq!(third.refused_by, Some(Refusal::KeyTokens));
    assert!(third.retry_after.expect("retry") <= Duration::from_secs(12));

    // The first call used 100 of its 400: 300 come back, and the third now fits.
    a.settle(first.reservation.expect("reserved"), 100).await?;
    let third = a.check(&key1, 400).await?;
    assert!(third.allowed, "{third:?}");
    assert_eq!(third.tokens.expect("tokens").remaining, 100);

    // The tenant (1500) is now at 900: another key of it gets 600, not more.
    assert!(!b.check(&key2, 700).await?.allowed);
    let other = b.check(&key2, 600).await?;
    assert!(other.allowed);
    assert_eq!(other.refused_by, None);
    // Using more than reserved charges the difference: the key is now in debt.
    b.settle(second.reservation.expect("reserved"), 1_000)
        .await?;
    let refused = a.check(&key1, 1).await?;
    assert!(!refused.allowed);
    assert!(refused.retry_after.expect("retry") > Duration::from_secs(30));

    // 50 racing reservations of 100 on a fresh key (1000/min, tenant unlimited): 10 fit.
    let settings = LimitsSettings {
        key: RateLimits {
            requests_per_minute: None,
            tokens_per_minute: Some(1_000),
        },
        ..LimitsSettings::default()
    };
    let limiters: Vec<Arc<RateLimiter>> = links
        .iter()
        .map(|redis| Arc::new(RateLimiter::redis(redis, &settings, stats.clone())))
        .collect();
    let fresh = subject("other", "key-9", &settings);
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let limiter = limiters[i % 3].clone();
            let fresh = fresh.clone();
            tokio::spawn(async move { limiter.check(&fresh, 100).await })
        })
        .collect();
    let mut allowed = 0;
    for task in tasks {
        allowed += usize::from(task.await??.allowed);
    }
    assert_eq!(allowed, 10);
    Ok(())
}

/// The in-process backend on virtual time: the burst, the refill of one request per
/// second, the full reset after a minute, and the tenant limit shared by its keys.
#[tokio::test(start_paused = true)]
async fn in_process_limits_on_virtual_time() -> anyhow::Result<()> {
    let settings = LimitsSettings {
        key: RateLimits {
            requests_per_minute: Some(60),
            tokens_per_minute: None,
        },
        tenant: RateLimits {
            requests_per_minute: Some(90),
            tokens_per_minute: None,
        },
        ..LimitsSettings::default()
    };
    let limiter = RateLimiter::in_process(&settings, Arc::new(LimitStats::default()));
    let key1 = subject("acme", "key-1", &settings);
    let key2 = subject("acme", "key-2", &settings);
    let mut allowed = 0;
    for _ in 0..100 {
        allowed += usize::from(limiter.check(&key1, 0).await?.allowed);
    }
    assert_eq!(allowed, 60);
    let refused = limiter.check(&key1, 0).await?;
    assert_eq!(refused.retry_after, Some(Duration::from_secs(1)));
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(limiter.check(&key1, 0).await?.allowed);
    assert!(!limiter.check(&key1, 0).await?.allowed);
    // The tenant has 90 - 61 = 29 left (plus the second's refill): key-2 gets about 30.
    let mut second_key = 0;
    for _ in 0..60 {
        second_key += usize::from(limiter.check(&key2, 0).await?.allowed);
    }
    assert_eq!(second_key, 30);
    let refused = limiter.check(&key2, 0).await?;
    assert_eq!(refused.refused_by, Some(Refusal::TenantRequests));
    tokio::time::advance(Duration::from_secs(60)).await;
    let fresh = limiter.check(&key1, 0).await?;
    assert!(fresh.allowed);
    assert_eq!(fresh.requests.expect("requests").remaining, 59);
    assert_eq!(
        fresh.requests.expect("requests").reset,
        Duration::from_secs(1)
    );
    Ok(())
}

/// Three replicas race on one tenant's daily budget until it refuses them: the budget is
/// never overspent by more than one in-flight reservation (and not at all in strict mode),
/// and the usage read afterwards is exact.
async fn budget_raced_by_three_replicas(cluster: bool, strict: bool) -> anyhow::Result<()> {
    const LIMIT: u64 = 20_000;
    const ESTIMATE: u64 = 300;
    let (_servers, config) = start(cluster).await?;
    let settings = LimitsSettings {
        tenant_budget: BudgetLimits {
            tokens_per_day: Some(LIMIT),
            tokens_per_month: Some(10 * LIMIT),
        },
        budget_strict: strict,
        ..LimitsSettings::default()
    };
    let budgets: Vec<Arc<Budgets>> = replicas(&config, 3)
        .await?
        .iter()
        .map(|redis| {
            Arc::new(Budgets::redis(
                redis,
                &settings,
                Arc::new(LimitStats::default()),
            ))
        })
        .collect();
    let who = Subject::new("acme", None, &settings);
    let workers: Vec<_> = (0..24)
        .map(|i| {
            let budgets = budgets[i % 3].clone();
            let who = who.clone();
            tokio::spawn(async move {
                let mut spent = 0u64;
                for call in 0u64.. {
                    match budgets.reserve(&who, ESTIMATE).await {
                        Ok(reservation) => {
                            tokio::time::sleep(Duration::from_millis(1 + call % 3)).await;
                            let actual = 100 + (call * 37 + i as u64 * 11) % 201;
                            budgets.settle(reservation, actual).await?;
                            spent += actual;
                        }
                        Err(LimitError::BudgetExceeded(refusal)) => {
                            assert_eq!(refusal.status.limit, LIMIT);
                            assert!(refusal.retry_after() <= Duration::from_secs(86_400));
                            return anyhow::Ok(spent);
                        }
                        Err(other) => return Err(other.into()),
                    }
                }
                Ok(spent)
            })
        })
        .collect();
    let mut spent = 0;
    for worker in workers {
        spent += worker.await??;
    }
    let usage = budgets[1].usage(&who).await?;
    let day = &usage[0];
    println!(
        "budget {LIMIT}, strict {strict}: spent {spent}, used {}",
        day.used
    );
    assert_eq!(day.used, spent, "the ledger is exact");
    assert_eq!(day.reserved, 0);
    assert_eq!(usage[1].used, spent, "the month counts the same calls");
    if strict {
        assert!(spent <= LIMIT);
        assert!(spent > LIMIT - 2 * ESTIMATE);
    } else {
        assert!(spent >= LIMIT, "admitted until spent");
        assert!(
            spent < LIMIT + ESTIMATE,
            "overspent by at most one reservation"
        );
        assert_eq!(day.remaining, 0);
    }
    assert!(day.period_end > std::time::SystemTime::now());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budget_raced_by_three_replicas_standalone() -> anyhow::Result<()> {
    budget_raced_by_three_replicas(false, false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budget_raced_by_three_replicas_strict() -> anyhow::Result<()> {
    budget_raced_by_three_replicas(false, true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budget_raced_by_three_replicas_cluster() -> anyhow::Result<()> {
    budget_raced_by_three_replicas(true, false).await
}

/// A reservation never settled (its instance died) is released after its TTL; key and
/// tenant budgets are separate; the in-process ledger does the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsettled_reservations_expire_and_keys_have_their_own_budget() -> anyhow::Result<()> {
    let (_servers, config) = start(false).await?;
    let settings = LimitsSettings {
        key_budget: BudgetLimits {
            tokens_per_day: Some(1_000),
            tokens_per_month: None,
        },
        tenant_budget: BudgetLimits {
            tokens_per_day: Some(5_000),
            tokens_per_month: None,
        },
        reservation_ttl_seconds: 1,
        ..LimitsSettings::default()
    };
    let redis = FleetRedis::open(&config, 8).await?;
    for budgets in [
        Budgets::redis(&redis, &settings, Arc::new(LimitStats::default())),
        Budgets::in_process(&settings, Arc::new(LimitStats::default())),
    ] {
        let key1 = subject("acme", "key-1", &settings);
        let key2 = subject("acme", "key-2", &settings);
        let lost = budgets.reserve(&key1, 1_000).await?;
        assert!(matches!(
            budgets.reserve(&key1, 1).await,
            Err(LimitError::BudgetExceeded(_))
        ));
        assert!(budgets.reserve(&key2, 10).await.is_ok());
        let usage = budgets.usage(&key1).await?;
        assert_eq!(usage.len(), 2, "the key's day and the tenant's day");
        assert_eq!((usage[0].reserved, usage[0].remaining), (1_000, 0));
        assert_eq!(usage[1].reserved, 1_010);
        drop(lost); // never settled
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        let usage = budgets.usage(&key1).await?;
        assert_eq!(usage[0].reserved, 0);
        let again = budgets.reserve(&key1, 500).await?;
        budgets.settle(again, 450).await?;
        let usage = budgets.usage(&key1).await?;
        assert_eq!((usage[0].used, usage[0].remaining), (450, 550));
        assert_eq!(usage[1].used, 450);
    }
    Ok(())
}

/// Redis stopped: `fail_closed` refuses with `Unavailable` (503), `fail_open` admits and
/// counts; budgets fail closed by default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_under_each_fail_mode() -> anyhow::Result<()> {
    let (servers, config) = start(false).await?;
    let Servers::Standalone(mut server) = servers else {
        unreachable!()
    };
    let limited = LimitsSettings {
        key: RateLimits {
            requests_per_minute: Some(10),
            tokens_per_minute: Some(1_000),
        },
        tenant_budget: BudgetLimits {
            tokens_per_day: Some(1_000),
            tokens_per_month: None,
        },
        ..LimitsSettings::default()
    };
    let open = LimitsSettings {
        fail_mode: FailMode::FailOpen,
        budget_fail_mode: FailMode::FailOpen,
        ..limited.clone()
    };
    let redis = FleetRedis::open(&config, 8).await?;
    let stats = Arc::new(LimitStats::default());
    let closed_limiter = RateLimiter::redis(&redis, &limited, stats.clone());
    let open_limiter = RateLimiter::redis(&redis, &open, stats.clone());
    let closed_budgets = Budgets::redis(&redis, &limited, stats.clone());
    let open_budgets = Budgets::redis(&redis, &open, stats.clone());
    let who = subject("acme", "key-1", &limited);
    assert!(closed_limiter.check(&who, 10).await?.allowed);

    server.kill().await?;
    let started = Instant::now();
    assert!(matches!(
        closed_limiter.check(&who, 10).await,
        Err(LimitError::Unavailable { .. })
    ));
    let degraded = open_limiter.check(&who, 10).await?;
    assert!(degraded.allowed && degraded.degraded);
    assert!(matches!(
        closed_budgets.reserve(&who, 10).await,
        Err(LimitError::Unavailable { .. })
    ));
    let reservation = open_budgets.reserve(&who, 10).await?;
    assert!(reservation.degraded);
    open_budgets.settle(reservation, 10).await?;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "every wait is bounded"
    );
    let counters = stats.snapshot();
    assert_eq!(counters.fail_open, 1);
    assert_eq!(counters.budget_fail_open, 1);
    assert_eq!(counters.unavailable, 2);

    // Back up: checks work again on the same link.
    server.restart().await?;
    let mut back = false;
    for _ in 0..40 {
        if let Ok(decision) = closed_limiter.check(&who, 10).await {
            back = decision.allowed;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(back, "the link reconnects after the outage");
    Ok(())
}

/// The settings reject unknown keys, fill defaults, and validate the prefix.
#[test]
fn limits_settings_parse_strictly() {
    let parsed: LimitsSettings = serde_json::from_value(serde_json::json!({
        "backend": "redis",
        "fail_mode": "fail_open",
        "key": {"requests_per_minute": 60},
        "tenant_budget": {"tokens_per_month": 1000}
    }))
    .expect("valid");
    assert_eq!(parsed.fail_mode, FailMode::FailOpen);
    assert_eq!(parsed.budget_fail_mode, FailMode::FailClosed);
    assert_eq!(parsed.key.requests_per_minute, Some(60));
    assert_eq!(parsed.tenant_budget.tokens_per_month, Some(1000));
    assert!(parsed.validate().is_ok());
    assert!(serde_json::from_value::<LimitsSettings>(serde_json::json!({"rpm": 1})).is_err());
    assert!(
        serde_json::from_value::<LimitsSettings>(serde_json::json!({"key": {"rpm": 1}})).is_err()
    );
    let braces = LimitsSettings {
        key_prefix: "a{b}".to_owned(),
        ..LimitsSettings::default()
    };
    assert!(matches!(braces.validate(), Err(LimitError::Invalid(_))));
}
