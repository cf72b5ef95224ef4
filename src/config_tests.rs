//! Unit tests for `config`.

use super::*;

#[test]
fn layers_apply_in_order_and_secrets_are_redacted() {
    figment::Jail::expect_with(|jail| {
        jail.create_file(
            "f.toml",
            r#"
            [server]
            listen = "0.0.0.0:9000"
            [ofsc]
            base_url = "https://acme.fs.ocs.oraclecloud.com"
            instance = "acme"
            client_id = "app"
            client_secret = "from-file"
            auth = "basic"
            "#,
        )?;
        jail.set_env("FSTEST__SERVER__LISTEN", "127.0.0.1:9001");
        jail.set_env("FSTEST__OFSC__CLIENT_SECRET", "s3cr3t-from-env");
        jail.set_env("FSTEST__DEMO__PASSWORD", "12345");
        let s = Settings::load_with_env(Some(Path::new("f.toml")), "FSTEST__").unwrap();
        assert_eq!(s.server.listen, "127.0.0.1:9001");
        let t = s.ofsc.clone().unwrap();
        assert_eq!(t.client_secret.expose(), "s3cr3t-from-env");
        assert_eq!(t.auth, AuthKind::Basic);
        assert_eq!(s.demo.password.expose(), "12345");
        let printed = s.to_redacted_toml();
        assert!(!printed.contains("s3cr3t"), "{printed}");
        assert!(!printed.contains("12345"), "{printed}");
        assert!(printed.contains("acme.fs.ocs.oraclecloud.com"));
        assert!(!format!("{s:?}").contains("s3cr3t"));
        Ok(())
    });
}

#[test]
fn defaults_use_the_embedded_simulator() {
    figment::Jail::expect_with(|_| {
        let s = Settings::load_with_env(None, "FSNONE__").unwrap();
        assert!(s.ofsc.is_none());
        assert_eq!(s.server.data_dir, PathBuf::from("./data"));
        Ok(())
    });
}

#[test]
fn unknown_keys_and_missing_files_are_errors() {
    figment::Jail::expect_with(|jail| {
        jail.create_file("bad.toml", "[server]\nlisten_typo = 1\n")?;
        assert!(Settings::load_with_env(Some(Path::new("bad.toml")), "FSX__").is_err());
        assert!(Settings::load_with_env(Some(Path::new("missing.toml")), "FSX__").is_err());
        Ok(())
    });
}

#[test]
fn secrets_too_short_to_be_secrets_are_refused() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("FSSHORT__AUTH__JWT_SECRET", "short");
        jail.set_env("FSSHORT__SERVER__METRICS_TOKEN", "tiny");
        let e = Settings::load_with_env(None, "FSSHORT__")
            .unwrap_err()
            .to_string();
        assert!(e.contains("auth.jwt_secret needs at least 32 bytes"), "{e}");
        assert!(
            e.contains("server.metrics_token needs at least 16 bytes"),
            "{e}"
        );
        assert!(
            !e.contains("short") && !e.contains("tiny"),
            "the secret is not echoed: {e}"
        );
        jail.set_env("FSSHORT__AUTH__JWT_SECRET", "x".repeat(32));
        jail.set_env("FSSHORT__SERVER__METRICS_TOKEN", "y".repeat(16));
        assert!(Settings::load_with_env(None, "FSSHORT__").is_ok());
        Ok(())
    });
}

#[test]
fn the_oidc_section_loads_from_env_and_redacts_its_secret() {
    figment::Jail::expect_with(|jail| {
        jail.set_env(
            "FSOIDC__OIDC__ISSUER",
            "https://login.example.com/tenant/v2.0",
        );
        jail.set_env("FSOIDC__OIDC__CLIENT_ID", "fieldsync-app");
        jail.set_env("FSOIDC__OIDC__CLIENT_SECRET", "console-secret-value");
        jail.set_env(
            "FSOIDC__OIDC__ROLE_MAP",
            r#"{fieldsync-technicians="technician",fieldsync-supervisors="supervisor"}"#,
        );
        jail.set_env("FSOIDC__OIDC__PROVISION", "true");
        jail.set_env("FSOIDC__OIDC__ALGORITHMS", "[RS256,ES256]");
        let s = Settings::load_with_env(None, "FSOIDC__").unwrap();
        let o = s.oidc.as_ref().unwrap();
        assert_eq!(o.client_id, "fieldsync-app");
        assert_eq!(
            o.role_map.get("fieldsync-technicians"),
            Some(&crate::auth::Role::Technician)
        );
        assert!(o.provision);
        assert_eq!(o.algorithms, ["RS256", "ES256"]);
        let printed = s.to_redacted_toml();
        assert!(printed.contains("[oidc]"), "{printed}");
        assert!(!printed.contains("console-secret-value"), "{printed}");

        jail.set_env("FSOIDC__OIDC__ALGORITHMS", "[HS256]");
        let err = Settings::load_with_env(None, "FSOIDC__").unwrap_err();
        assert!(err.to_string().contains("HS256"), "{err}");
        Ok(())
    });
}

#[test]
fn without_an_oidc_section_sso_is_off() {
    figment::Jail::expect_with(|_| {
        let s = Settings::load_with_env(None, "FSNOOIDC__").unwrap();
        assert!(s.oidc.is_none());
        assert!(!s.to_redacted_toml().contains("[oidc]"));
        Ok(())
    });
}

#[test]
fn a_public_url_must_be_a_plain_http_url() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("FSPUB__SERVER__PUBLIC_URL", "fieldsync.example.com");
        assert!(Settings::load_with_env(None, "FSPUB__").is_err());
        jail.set_env("FSPUB__SERVER__PUBLIC_URL", "https://fs.example.com/?x=1");
        assert!(Settings::load_with_env(None, "FSPUB__").is_err());
        jail.set_env("FSPUB__SERVER__PUBLIC_URL", "https://fs.example.com");
        jail.set_env("FSPUB__SERVER__TRUSTED_PROXIES", "[\"10.0.0.1\"]");
        let s = Settings::load_with_env(None, "FSPUB__").unwrap();
        assert_eq!(
            s.server.trusted_proxies,
            ["10.0.0.1".parse::<std::net::IpAddr>().unwrap()]
        );
        Ok(())
    });
}

#[test]
fn a_retention_that_would_evict_readable_routes_is_refused() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("FSRET__CACHE__READ_DAYS_BACK", "31");
        jail.set_env("FSRET__CACHE__ROUTE_RETENTION_DAYS", "31");
        let e = Settings::load_with_env(None, "FSRET__")
            .unwrap_err()
            .to_string();
        assert!(e.contains("cache.route_retention_days (31)"), "{e}");
        jail.set_env("FSRET__CACHE__ROUTE_RETENTION_DAYS", "32");
        assert!(Settings::load_with_env(None, "FSRET__").is_ok());
        Ok(())
    });
}

#[test]
fn a_history_retention_shorter_than_the_readable_days_is_refused() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("FSHIST__HISTORY__RETENTION_DAYS", "62");
        let e = Settings::load_with_env(None, "FSHIST__")
            .unwrap_err()
            .to_string();
        assert!(e.contains("history.retention_days (62)"), "{e}");
        jail.set_env("FSHIST__HISTORY__RETENTION_DAYS", "63");
        assert!(Settings::load_with_env(None, "FSHIST__").is_ok());
        jail.set_env("FSHIST__HISTORY__RETENTION_DAYS", "0");
        assert!(Settings::load_with_env(None, "FSHIST__").is_ok());
        Ok(())
    });
}

#[test]
fn history_is_kept_90_days_by_default_which_the_default_read_window_allows() {
    figment::Jail::expect_with(|_| {
        let s = Settings::load_with_env(None, "FSHISTDEF__").expect("defaults are valid");
        assert_eq!(s.history.retention_days, 90);
        assert!(90 > s.cache.read_days_back + s.cache.read_days_ahead);
        Ok(())
    });
}
