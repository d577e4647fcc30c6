#![allow(clippy::result_large_err)] // figment::Jail fixes the closure error type

use figment::Jail;

use super::*;

fn load_in(jail: &Jail, file: Option<&str>) -> Result<Settings, SettingsError> {
    let path = file.map(|name| jail.directory().join(name));
    Settings::load(path.as_deref())
}

#[test]
fn the_library_loads_its_own_sections_from_the_same_names() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "app.toml",
            "[memory]\nttl_seconds = 60\n[[agents]]\nname = \"a\"\ntype = \"conversation\"\n",
        )?;
        jail.set_env("ARSHAI_PROVIDERS__RETRY__MAX_RETRIES", "5");
        jail.set_env("REDIS_URL", "redis://plain:6379");
        let settings = load_in(jail, Some("app.toml")).expect("loads");
        assert_eq!(settings.memory.ttl_seconds, 60);
        assert_eq!(settings.providers.retry.max_retries, 5);
        assert_eq!(settings.memory.effective_provider(), MemoryProvider::Redis);
        assert_eq!(settings.agents[0].name, "a");
        Ok(())
    });
}

#[test]
fn the_servers_sections_are_not_the_librarys() {
    Jail::expect_with(|jail| {
        jail.create_file("server.toml", "[server]\nport = 9000\n")?;
        let error = load_in(jail, Some("server.toml"))
            .expect_err("unknown section")
            .to_string();
        assert!(error.contains("server"), "{error}");
        Ok(())
    });
}

#[test]
fn a_servers_environment_does_not_break_the_librarys_load() {
    Jail::expect_with(|jail| {
        // A pod that runs a server beside an embedding program sets the server's names.
        jail.set_env("ARSHAI_SERVER__PORT", "9000");
        jail.set_env("ARSHAI_ADMISSION__MAX_IN_FLIGHT_TURNS", "5");
        jail.set_env("ARSHAI_MEMORY__TTL_SECONDS", "90");
        let settings = load_in(jail, None).expect("the library's sections load");
        assert_eq!(settings.memory.ttl_seconds, 90);
        // Its own sections are still strict.
        jail.set_env("ARSHAI_MEMORY__NO_SUCH_KEY", "1");
        let error = load_in(jail, None).expect_err("unknown key").to_string();
        assert!(error.contains("no_such_key"), "{error}");
        Ok(())
    });
}

#[test]
fn each_section_checks_itself() {
    Jail::expect_with(|jail| {
        jail.set_env("ARSHAI_MEMORY__MAX_CONVERSATIONS", "0");
        let error = load_in(jail, None).expect_err("must fail").to_string();
        assert!(error.contains("memory.max_conversations = 0"), "{error}");
        Ok(())
    });
    Jail::expect_with(|jail| {
        jail.set_env("ARSHAI_PROVIDERS__HTTP__READ_TIMEOUT_SECONDS", "0");
        let error = load_in(jail, None).expect_err("must fail").to_string();
        assert!(
            error.contains("providers.http.read_timeout_seconds"),
            "{error}"
        );
        Ok(())
    });
}
