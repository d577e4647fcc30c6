#![allow(clippy::result_large_err)] // figment::Jail fixes the closure error type

use arshai::settings::{MemoryProvider, SettingsError};
use figment::Jail;

use super::*;

fn load_in(jail: &Jail, file: Option<&str>) -> Result<Settings, SettingsError> {
    let path = file.map(|name| jail.directory().join(name));
    Settings::load(path.as_deref())
}

#[test]
fn defaults_follow_the_scaling_guide() {
    Jail::expect_with(|jail| {
        let settings = load_in(jail, None).expect("defaults load");
        assert_eq!(settings.server.port, 8000);
        assert_eq!(settings.memory.ttl_seconds, 3600);
        assert_eq!(settings.memory.max_conversations, 1000);
        assert_eq!(settings.memory.redis_max_connections, 20);
        assert_eq!(settings.memory.effective_provider(), MemoryProvider::Memory);
        Ok(())
    });
}

#[test]
fn file_overrides_defaults_and_environment_overrides_file() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "arshai.toml",
            r#"
            [memory]
            ttl_seconds = 60
            max_conversations = 5

            [[agents]]
            name = "assistant"
            type = "conversation"
            system_prompt = "Be brief."
            "#,
        )?;
        jail.set_env("ARSHAI_MEMORY__TTL_SECONDS", "120");
        let settings = load_in(jail, Some("arshai.toml")).expect("loads");
        assert_eq!(settings.memory.ttl_seconds, 120, "env beats file");
        assert_eq!(settings.memory.max_conversations, 5, "file beats default");
        assert_eq!(settings.memory.max_messages, 1000, "default kept");
        assert_eq!(settings.agents[0].name, "assistant");
        Ok(())
    });
}

#[test]
fn plain_names_are_honoured_and_structured_names_win() {
    Jail::expect_with(|jail| {
        jail.set_env("REDIS_URL", "redis://plain:6379");
        jail.set_env("OPENAI_BASE_URL", "http://127.0.0.1:9/v1");
        jail.set_env("OPENAI_API_KEY", "sk-test");
        let settings = load_in(jail, None).expect("loads");
        assert_eq!(
            settings.memory.redis_url.as_deref(),
            Some("redis://plain:6379")
        );
        assert_eq!(settings.memory.effective_provider(), MemoryProvider::Redis);
        assert_eq!(
            settings.providers.openai.api_key.as_deref(),
            Some("sk-test")
        );
        assert!(settings.providers.openai.is_configured());

        jail.set_env("ARSHAI_MEMORY__REDIS_URL", "redis://structured:6379");
        let settings = load_in(jail, None).expect("loads");
        assert_eq!(
            settings.memory.redis_url.as_deref(),
            Some("redis://structured:6379")
        );
        Ok(())
    });
}

#[test]
fn a_bad_value_names_the_key_and_the_value() {
    Jail::expect_with(|jail| {
        jail.set_env("ARSHAI_MEMORY__TTL_SECONDS", "soon");
        let error = load_in(jail, None).expect_err("must fail").to_string();
        assert!(
            error.to_lowercase().contains("memory.ttl_seconds"),
            "{error}"
        );
        assert!(error.contains("soon"), "{error}");
        Ok(())
    });
    Jail::expect_with(|jail| {
        jail.set_env("ARSHAI_MEMORY__MAX_CONVERSATIONS", "0");
        let error = load_in(jail, None).expect_err("must fail").to_string();
        assert!(error.contains("memory.max_conversations = 0"), "{error}");
        Ok(())
    });
}

#[test]
fn a_bad_file_is_a_startup_error() {
    Jail::expect_with(|jail| {
        jail.create_file("typo.toml", "[memory]\nttl_secondz = 5\n")?;
        let error = load_in(jail, Some("typo.toml"))
            .expect_err("unknown key")
            .to_string();
        assert!(error.contains("ttl_secondz"), "{error}");

        jail.create_file("broken.toml", "[memory\n")?;
        assert!(load_in(jail, Some("broken.toml")).is_err());

        jail.create_file(
            "agent.toml",
            "[[agents]]\nname = \"a\"\ntype = \"wizard\"\n",
        )?;
        let error = load_in(jail, Some("agent.toml"))
            .expect_err("unknown type")
            .to_string();
        assert!(error.contains("wizard"), "{error}");

        let error = load_in(jail, Some("missing.toml"))
            .expect_err("missing")
            .to_string();
        assert!(error.contains("missing.toml"), "{error}");
        Ok(())
    });
}

#[test]
fn duplicate_agent_names_are_refused() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "dup.toml",
            "[[agents]]\nname = \"a\"\ntype = \"conversation\"\n[[agents]]\nname = \"a\"\ntype = \"conversation\"\n",
        )?;
        let error = load_in(jail, Some("dup.toml"))
            .expect_err("dup")
            .to_string();
        assert!(error.contains("agents[1].name"), "{error}");
        Ok(())
    });
}

#[test]
fn redis_topologies_are_selected_from_the_environment() {
    use arshai::memory::{RedisStoreConfig, RedisTopology};
    Jail::expect_with(|jail| {
        jail.set_env(
            "ARSHAI_MEMORY__REDIS_CLUSTER_NODES",
            r#"["10.0.0.1:6379", "10.0.0.2:6379"]"#,
        );
        let settings = load_in(jail, None).expect("loads");
        assert_eq!(settings.memory.effective_provider(), MemoryProvider::Redis);
        assert_eq!(
            RedisStoreConfig::from_settings(&settings.memory).topology,
            RedisTopology::Cluster {
                nodes: vec!["10.0.0.1:6379".to_owned(), "10.0.0.2:6379".to_owned()]
            }
        );
        jail.clear_env();
        jail.set_env("ARSHAI_MEMORY__REDIS_SENTINEL_MASTER", "mymaster");
        assert!(load_in(jail, None).is_err(), "sentinels are required");
        jail.set_env("ARSHAI_MEMORY__REDIS_SENTINELS", r#"["s1:26379"]"#);
        jail.set_env("ARSHAI_MEMORY__REDIS_RESPONSE_TIMEOUT_SECONDS", "0.5");
        let settings = load_in(jail, None).expect("loads");
        let config = RedisStoreConfig::from_settings(&settings.memory);
        assert!(matches!(config.topology, RedisTopology::Sentinel { .. }));
        assert_eq!(
            config.response_timeout,
            std::time::Duration::from_millis(500)
        );
        jail.set_env("ARSHAI_MEMORY__KEY_PREFIX", "bad{prefix}");
        assert!(
            load_in(jail, None).is_err(),
            "braces would move the hash tag"
        );
        Ok(())
    });
}

#[test]
fn provider_env_names_reach_their_sections() {
    Jail::expect_with(|jail| {
        jail.set_env("AZURE_OPENAI_ENDPOINT", "https://res.openai.azure.com");
        jail.set_env("AZURE_OPENAI_API_KEY", "az");
        jail.set_env("AZURE_DEPLOYMENT", "dep");
        jail.set_env("AZURE_API_VERSION", "2025-01-01-preview");
        jail.set_env("GOOGLE_API_KEY", "g");
        jail.set_env("OPENROUTER_API_KEY", "or");
        jail.set_env("OPENROUTER_BASE_URL", "http://127.0.0.1:9/api/v1");
        jail.set_env("ARSHAI_PROVIDERS__RETRY__MAX_RETRIES", "5");
        let settings = load_in(jail, None).expect("loads");
        let providers = &settings.providers;
        assert_eq!(
            providers.azure.endpoint.as_deref(),
            Some("https://res.openai.azure.com")
        );
        assert_eq!(providers.azure.api_key.as_deref(), Some("az"));
        assert_eq!(providers.azure.deployment.as_deref(), Some("dep"));
        assert_eq!(providers.azure.api_version, "2025-01-01-preview");
        assert_eq!(providers.gemini.api_key.as_deref(), Some("g"));
        assert_eq!(providers.openrouter.api_key.as_deref(), Some("or"));
        assert_eq!(
            providers.openrouter.base_url.as_deref(),
            Some("http://127.0.0.1:9/api/v1")
        );
        assert_eq!(providers.retry.max_retries, 5);
        Ok(())
    });
}

#[test]
fn kubernetes_service_links_under_the_prefix_are_ignored() {
    Jail::expect_with(|jail| {
        // What a Service named `arshai` injects into every pod of its namespace.
        jail.set_env("ARSHAI_SERVICE_HOST", "10.0.0.9");
        jail.set_env("ARSHAI_SERVICE_PORT", "80");
        jail.set_env("ARSHAI_SERVICE_PORT_HTTP", "80");
        jail.set_env("ARSHAI_PORT", "tcp://10.0.0.9:80");
        jail.set_env("ARSHAI_PORT_80_TCP", "tcp://10.0.0.9:80");
        jail.set_env("ARSHAI_PORT_80_TCP_PROTO", "tcp");
        jail.set_env("ARSHAI_PORT_80_TCP_ADDR", "10.0.0.9");
        // The binary's own variables and a tool's.
        jail.set_env("ARSHAI_BENCH_API_KEY", "k");
        jail.set_env("ARSHAI_CONFIG", "/nowhere.toml");
        jail.set_env("ARSHAI_SOMETHING_ELSE", "x");
        jail.set_env("ARSHAI_MEMORY__TTL_SECONDS", "77");
        let settings = load_in(jail, None).expect("a platform's variables do not stop startup");
        assert_eq!(
            settings.memory.ttl_seconds, 77,
            "structured names still apply"
        );
        assert_eq!(settings.server.port, 8000);
        Ok(())
    });
}

#[test]
fn a_redis_service_link_is_not_a_redis_port() {
    Jail::expect_with(|jail| {
        // A Service named `redis`.
        jail.set_env("REDIS_PORT", "tcp://10.0.0.1:6379");
        jail.set_env("REDIS_SERVICE_HOST", "10.0.0.1");
        jail.set_env("REDIS_SERVICE_PORT", "6379");
        jail.set_env("REDIS_PORT_6379_TCP", "tcp://10.0.0.1:6379");
        let settings = load_in(jail, None).expect("a service link does not stop startup");
        assert_eq!(settings.memory.redis_port, 6379, "the default is kept");

        // A real plain value still applies, and a bad one is still an error.
        jail.set_env("REDIS_PORT", "6380");
        assert_eq!(load_in(jail, None).expect("loads").memory.redis_port, 6380);
        jail.set_env("REDIS_PORT", "not-a-port");
        let error = load_in(jail, None)
            .expect_err("bad plain value")
            .to_string();
        assert!(error.contains("not-a-port"), "{error}");
        Ok(())
    });
}

#[test]
fn a_misspelt_structured_name_is_still_an_error() {
    Jail::expect_with(|jail| {
        jail.set_env("ARSHAI_MEMORY__TTL_SECOND", "5");
        let error = load_in(jail, None).expect_err("unknown key").to_string();
        assert!(error.to_lowercase().contains("ttl_second"), "{error}");
        Ok(())
    });
    Jail::expect_with(|jail| {
        jail.set_env("ARSHAI_MEMROY__TTL_SECONDS", "5");
        let error = load_in(jail, None)
            .expect_err("unknown section")
            .to_string();
        assert!(error.to_lowercase().contains("memroy"), "{error}");
        Ok(())
    });
}

#[test]
fn ignored_variables_are_listed_by_name_only() {
    use arshai::settings::environment::{IgnoredEnvironment, Role, classify};
    let ignored = IgnoredEnvironment::from_vars(
        &env_names::NAMES,
        [
            ("ARSHAI_SERVICE_PORT", "80"),
            ("ARSHAI_PORT", "tcp://10.0.0.9:80"),
            ("ARSHAI_CONFIG", "/etc/arshai/arshai.toml"),
            ("ARSHAI_LOG_FORMAT", "json"),
            ("ARSHAI_BENCH_API_KEY", "secret"),
            ("ARSHAI_MEMORY__TTL_SECONDS", "60"),
            ("REDIS_PORT", "tcp://10.0.0.1:6379"),
            ("REDIS_URL", "redis://redis:6379"),
            ("PATH", "/usr/bin"),
        ],
    );
    assert_eq!(ignored.prefixed, ["ARSHAI_PORT", "ARSHAI_SERVICE_PORT"]);
    assert_eq!(ignored.service_links, ["REDIS_PORT"]);
    assert!(!ignored.is_empty());
    assert!(IgnoredEnvironment::from_vars(&env_names::NAMES, [("HOME", "/root")]).is_empty());
    assert_eq!(
        classify(&env_names::NAMES, "ARSHAI___X", "1"),
        Role::IgnoredPrefixed
    );
    assert_eq!(
        classify(&env_names::NAMES, "ARSHAI_MEMORY__", "1"),
        Role::IgnoredPrefixed
    );
    assert_eq!(
        classify(&env_names::NAMES, "ARSHAI_CONFIG", "f"),
        Role::Binary
    );
    assert_eq!(
        classify(&env_names::NAMES, "OPENAI_API_KEY", "sk"),
        Role::Plain("providers.openai.api_key")
    );
}

#[test]
fn the_bench_api_key_is_the_binarys_own_variable() {
    use arshai::settings::environment::{IgnoredEnvironment, Role, classify};
    // `arshai bench --api-key` reads it: a shell that exports it must still run `arshai serve`,
    // and the server must not warn about it.
    Jail::expect_with(|jail| {
        jail.set_env("ARSHAI_BENCH_API_KEY", "secret");
        load_in(jail, None).expect("loads with the bench key set");
        Ok(())
    });
    assert_eq!(
        classify(&env_names::NAMES, "ARSHAI_BENCH_API_KEY", "secret"),
        Role::Binary
    );
    assert!(
        IgnoredEnvironment::from_vars(&env_names::NAMES, [("ARSHAI_BENCH_API_KEY", "secret")])
            .is_empty()
    );
}

#[test]
fn limits_cache_and_per_key_limits_load_and_are_checked() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "controls.toml",
            r#"
[limits]
backend = "redis"
fail_mode = "fail_open"
key = { requests_per_minute = 60 }
tenant_budget = { tokens_per_month = 1000 }

[cache]
max_entry_bytes = 4096

[[agents]]
name = "faq"
type = "conversation"
cache = { ttl_seconds = 60, scope = "global" }

[[auth.keys]]
tenant = "acme"
key = "secret"
id = "acme-1"
requests_per_minute = 5
tokens_per_day = 100
"#,
        )?;
        let settings = load_in(jail, Some("controls.toml")).expect("loads");
        assert_eq!(
            settings.limits.backend,
            arshai::limits::LimitsBackend::Redis
        );
        assert_eq!(settings.limits.key.requests_per_minute, Some(60));
        assert_eq!(settings.cache.max_entry_bytes, 4096);
        let cache = settings.agents[0].cache.as_ref().expect("cached agent");
        assert_eq!(cache.ttl_seconds, 60);
        assert_eq!(cache.scope, arshai::cache::CacheScope::Global);
        assert_eq!(settings.auth.keys[0].requests_per_minute, Some(5));
        assert_eq!(settings.auth.keys[0].tokens_per_day, Some(100));

        jail.create_file("typo.toml", "[limits]\nrequests_per_minute = 5\n")?;
        let error = load_in(jail, Some("typo.toml"))
            .expect_err("unknown key")
            .to_string();
        assert!(error.contains("requests_per_minute"), "{error}");

        jail.create_file("prefix.toml", "[limits]\nkey_prefix = \"a{b}\"\n")?;
        let error = load_in(jail, Some("prefix.toml"))
            .expect_err("bad prefix")
            .to_string();
        assert!(error.contains("key_prefix"), "{error}");

        jail.create_file("cache.toml", "[cache]\nmax_entries = 0\n")?;
        let error = load_in(jail, Some("cache.toml"))
            .expect_err("zero bound")
            .to_string();
        assert!(error.contains("max_entries"), "{error}");

        jail.create_file(
            "agent.toml",
            "[[agents]]\nname = \"a\"\ntype = \"conversation\"\ncache = { ttl = 5 }\n",
        )?;
        assert!(load_in(jail, Some("agent.toml")).is_err());
        Ok(())
    });
}
