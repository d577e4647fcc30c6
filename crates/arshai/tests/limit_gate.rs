//! [`LimitGate`] on real `redis-server` processes (standalone and a 3-master Cluster): the
//! one-script admission (rate check + budget reservation) and the batched settles, raced
//! by several replicas, each with its own Redis link.

mod support;

use std::sync::Arc;
use std::time::Duration;

use arshai::limits::{
    BudgetLimits, FleetRedis, GateRefusal, LimitError, LimitGate, LimitStats, LimitsSettings,
    RateLimits, Refusal, Subject,
};
use arshai::memory::redis::RedisStoreConfig;
use support::Servers;

async fn start(cluster: bool) -> anyhow::Result<(Servers, RedisStoreConfig)> {
    support::limits_redis(cluster).await
}

/// One gate per replica, each on its own link.
async fn gates(
    config: &RedisStoreConfig,
    settings: &LimitsSettings,
    n: usize,
) -> anyhow::Result<Vec<Arc<LimitGate>>> {
    let mut gates = Vec::with_capacity(n);
    for _ in 0..n {
        let redis = FleetRedis::open(config, 64).await?;
        gates.push(Arc::new(LimitGate::redis(
            &redis,
            settings,
            Arc::new(LimitStats::default()),
        )));
    }
    Ok(gates)
}

async fn flush(gates: &[Arc<LimitGate>]) {
    for gate in gates {
        assert!(gate.flush(Duration::from_secs(5)).await, "settles applied");
    }
}

/// 24 workers on 3 replicas admit, "call", and settle (queued, batched) against one
/// tenant's rate limits and daily budget until the budget refuses them: the ledger equals
/// the settled usage exactly, the budget is overspent by less than one reservation, and
/// the tokens-per-minute cell was moved to the real usage too.
async fn admissions_raced_by_three_replicas(cluster: bool) -> anyhow::Result<()> {
    const LIMIT: u64 = 20_000;
    const ESTIMATE: u64 = 300;
    const TPM: u64 = 100_000_000;
    let (_servers, config) = start(cluster).await?;
    let settings = LimitsSettings {
        tenant: RateLimits {
            requests_per_minute: Some(1_000_000),
            tokens_per_minute: Some(TPM),
        },
        tenant_budget: BudgetLimits {
            tokens_per_day: Some(LIMIT),
            tokens_per_month: Some(10 * LIMIT),
        },
        ..LimitsSettings::default()
    };
    let gates = gates(&config, &settings, 3).await?;
    let who = Subject::new("acme", None, &settings);
    let workers: Vec<_> = (0..24)
        .map(|i| {
            let gate = gates[i % 3].clone();
            let who = who.clone();
            tokio::spawn(async move {
                let mut spent = 0u64;
                for call in 0u64.. {
                    match gate.admit(&who, ESTIMATE).await {
                        Ok(admission) => {
                            tokio::time::sleep(Duration::from_millis(1 + call % 3)).await;
                            let actual = 100 + (call * 37 + i as u64 * 11) % 201;
                            gate.settle(
                                admission.decision.reservation,
                                Some(admission.budget),
                                actual,
                            );
                            spent += actual;
                        }
                        Err(GateRefusal::Budget {
                            decision,
                            error: LimitError::BudgetExceeded(refusal),
                        }) => {
                            assert_eq!(refusal.status.limit, LIMIT);
                            assert!(decision.allowed, "the rate limits admitted it");
                            assert!(decision.reservation.is_none(), "no tokens charged");
                            return anyhow::Ok(spent);
                        }
                        Err(other) => anyhow::bail!("unexpected refusal: {other:?}"),
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
    // A worker is refused while other calls' settles are still queued (their estimates
    // stay reserved until they land: refusals err on the safe side). Once every settle
    // has landed, the budget admits again until it is really spent.
    flush(&gates).await;
    while let Ok(admission) = gates[0].admit(&who, ESTIMATE).await {
        gates[0].settle(admission.decision.reservation, Some(admission.budget), 200);
        spent += 200;
        flush(&gates).await;
    }
    let usage = gates[1].usage(&who).await?;
    let day = &usage[0];
    println!(
        "gate, cluster {cluster}: budget {LIMIT}, spent {spent}, used {}",
        day.used
    );
    assert_eq!(day.used, spent, "the ledger is exact");
    assert_eq!(day.reserved, 0, "every reservation was released");
    assert_eq!(usage[1].used, spent, "the month counts the same calls");
    assert!(spent >= LIMIT, "admitted until spent");
    assert!(
        spent < LIMIT + ESTIMATE,
        "overspent by less than one reservation"
    );
    // The tokens-per-minute cell holds the real usage, not the estimates: a check of 0
    // tokens reports what is left (the cell drains ~1.7M a second, so "at least").
    let Err(GateRefusal::Budget { decision, .. }) = gates[0].admit(&who, 0).await else {
        anyhow::bail!("the spent budget refuses");
    };
    let tokens = decision.tokens.expect("a tokens limit applies");
    assert!(tokens.remaining >= TPM - spent, "{tokens:?}, spent {spent}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admissions_raced_by_three_replicas_standalone() -> anyhow::Result<()> {
    admissions_raced_by_three_replicas(false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admissions_raced_by_three_replicas_cluster() -> anyhow::Result<()> {
    admissions_raced_by_three_replicas(true).await
}

/// 300 admissions from 6 replicas in parallel on a key limited to 60 requests per minute:
/// exactly 60 admitted (the refill of one a second does not matter within the race).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_per_minute_hold_through_the_gate() -> anyhow::Result<()> {
    let (_servers, config) = start(false).await?;
    let settings = LimitsSettings {
        key: RateLimits {
            requests_per_minute: Some(60),
            tokens_per_minute: None,
        },
        tenant_budget: BudgetLimits {
            tokens_per_day: Some(1_000_000),
            tokens_per_month: None,
        },
        ..LimitsSettings::default()
    };
    let gates = gates(&config, &settings, 6).await?;
    let who = Subject::new("acme", Some("key-1".to_owned()), &settings);
    for gate in &gates {
        let warm = Subject::new("acme", Some("warm-up".to_owned()), &settings);
        let admission = gate.admit(&warm, 1).await.expect("warm-up admitted");
        gate.settle(admission.decision.reservation, Some(admission.budget), 1);
    }
    flush(&gates).await;
    let started = std::time::Instant::now();
    let tasks: Vec<_> = (0..300)
        .map(|i| {
            let gate = gates[i % gates.len()].clone();
            let who = who.clone();
            tokio::spawn(async move { gate.admit(&who, 10).await })
        })
        .collect();
    let mut admitted = Vec::new();
    for task in tasks {
        match task.await? {
            Ok(admission) => admitted.push(admission),
            Err(GateRefusal::Rate(decision)) => {
                assert_eq!(decision.refused_by, Some(Refusal::KeyRequests));
                assert!(decision.retry_after.is_some());
            }
            Err(other) => anyhow::bail!("unexpected refusal: {other:?}"),
        }
    }
    let elapsed = started.elapsed();
    let count = admitted.len() as u64;
    assert!(
        (60..=60 + elapsed.as_secs()).contains(&count),
        "{count} in {elapsed:?}"
    );
    // Each admitted call reserved 10 tokens of the tenant's day; refused ones nothing.
    let usage = gates[0].usage(&who).await?;
    assert_eq!(
        (usage[0].used, usage[0].reserved),
        (6, 10 * count),
        "{usage:?}"
    );
    for admission in admitted {
        gates[0].settle(admission.decision.reservation, Some(admission.budget), 7);
    }
    flush(&gates).await;
    let usage = gates[0].usage(&who).await?;
    assert_eq!(usage[0].reserved, 0);
    assert_eq!(usage[0].used, 7 * count + 6);
    Ok(())
}

/// A call the budget refuses counts as a request but spends no tokens per minute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_refusal_counts_the_request_but_not_its_tokens() -> anyhow::Result<()> {
    let (_servers, config) = start(false).await?;
    let settings = LimitsSettings {
        tenant: RateLimits {
            requests_per_minute: Some(100),
            tokens_per_minute: Some(10_000),
        },
        tenant_budget: BudgetLimits {
            tokens_per_day: Some(1_000),
            tokens_per_month: None,
        },
        budget_strict: true,
        ..LimitsSettings::default()
    };
    let gates = gates(&config, &settings, 1).await?;
    let gate = &gates[0];
    let who = Subject::new("acme", None, &settings);
    let admission = gate.admit(&who, 600).await.expect("the first call fits");
    gate.settle(admission.decision.reservation, Some(admission.budget), 900);
    flush(&gates).await;
    // 900 used: 600 more do not fit the strict budget of 1000.
    let Err(GateRefusal::Budget { decision, error }) = gate.admit(&who, 600).await else {
        anyhow::bail!("the budget refuses");
    };
    assert!(matches!(error, LimitError::BudgetExceeded(_)), "{error}");
    let requests = decision.requests.expect("requests limited");
    let tokens = decision.tokens.expect("tokens limited");
    // Two requests counted (the cells drain 1.7 requests and 167 tokens a second).
    assert!((98..=99).contains(&requests.remaining), "{requests:?}");
    // Only the first call's real 900 tokens are charged, not the refused call's 600.
    assert!((9_100..=9_300).contains(&tokens.remaining), "{tokens:?}");
    let usage = gate.usage(&who).await?;
    assert_eq!((usage[0].used, usage[0].reserved), (900, 0));
    Ok(())
}
