use super::*;

#[test]
fn defaults_are_safe() {
    let c = Config::merge(FileConfig::default(), FileConfig::default(), false).unwrap();
    assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
    assert_eq!(c.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
    assert_eq!(
        c.secret,
        SecretSource::Generated(PathBuf::from(DEFAULT_DATA_DIR).join("jwt-secret"))
    );
    assert!(!c.manual_clock);
}

#[test]
fn command_line_wins_over_file_and_audiences_add_up() {
    let file: FileConfig = toml::from_str(
        "listen = \"127.0.0.1:9000\"\ndata-dir = \"/tmp/x\"\naudience = [\"api://a\"]\nmanual-clock = true\n",
    )
    .unwrap();
    let cli = FileConfig {
        listen: Some("127.0.0.1:9001".into()),
        audience: vec!["api://b".into()],
        ..Default::default()
    };
    let c = Config::merge(cli, file, false).unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:9001");
    assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
    assert_eq!(
        c.audiences,
        vec!["api://a".to_string(), "api://b".to_string()]
    );
    assert!(c.manual_clock);
}

#[test]
fn unknown_file_keys_and_bad_values_are_refused() {
    assert!(toml::from_str::<FileConfig>("lisen = \"x\"").is_err());
    let bad = FileConfig {
        listen: Some("localhost".into()),
        ..Default::default()
    };
    assert!(Config::merge(bad, FileConfig::default(), false).is_err());
    let named = FileConfig {
        listen: Some("localhost:8080".into()),
        ..Default::default()
    };
    assert!(Config::merge(named, FileConfig::default(), false).is_ok());
    let start = FileConfig {
        start_time: Some("2026-01-01T09:00:00Z".into()),
        ..Default::default()
    };
    assert!(Config::merge(start, FileConfig::default(), false).is_err());
}

fn start_at(text: &str) -> Result<Config, ConfigError> {
    let cli = FileConfig {
        manual_clock: Some(true),
        start_time: Some(text.into()),
        ..Default::default()
    };
    Config::merge(cli, FileConfig::default(), false)
}

#[test]
fn start_time_must_lie_between_1970_and_the_end_of_9999() {
    for ok in [
        "1970-01-01T00:00:00Z",
        "1970-01-01T01:00:00+01:00",
        "9999-12-31T23:59:59Z",
        "9999-12-31T22:59:59-01:00",
    ] {
        assert!(start_at(ok).is_ok(), "{ok}");
    }
    for out in [
        "1969-12-31T23:59:59Z",
        "1970-01-01T00:59:59+01:00",
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59.9999999Z",
        "9999-12-31T23:00:00-01:00",
    ] {
        let err = start_at(out).unwrap_err().to_string();
        assert_eq!(
            err,
            format!("--start-time '{out}' is outside the supported range 1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z")
        );
    }
}

#[test]
fn start_time_refuses_second_60_as_malformed() {
    let err = start_at("2016-12-31T23:59:60Z").unwrap_err().to_string();
    assert_eq!(
        err,
        "'2016-12-31T23:59:60Z' is not an RFC 3339 instant such as 2026-01-01T09:00:00Z"
    );
}

#[test]
fn jwks_urls_must_be_https_except_on_loopback() {
    let with = |url: &str| FileConfig {
        jwks_url: Some(url.into()),
        ..Default::default()
    };
    for ok in [
        "https://login.example/keys",
        "http://127.0.0.1:9/keys",
        "http://localhost/keys",
    ] {
        assert!(
            Config::merge(with(ok), FileConfig::default(), false).is_ok(),
            "{ok}"
        );
    }
    for bad in [
        "http://keys.example/keys",
        "http://localhost.evil.example/",
        "http://127.0.0.1:80@keys.example/jwks",
        "ftp://x",
        "keys.json",
    ] {
        assert!(
            Config::merge(with(bad), FileConfig::default(), false).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn tls_takes_a_certificate_and_key_together_or_a_self_signed_one() {
    let with = |cert: Option<&str>, key: Option<&str>, self_signed: bool| FileConfig {
        tls_cert: cert.map(PathBuf::from),
        tls_key: key.map(PathBuf::from),
        tls_self_signed: self_signed.then_some(true),
        ..Default::default()
    };
    let merge = |f| Config::merge(f, FileConfig::default(), false);
    assert_eq!(merge(with(None, None, false)).unwrap().tls, None);
    assert_eq!(
        merge(with(None, None, true)).unwrap().tls,
        Some(TlsSource::SelfSigned)
    );
    assert_eq!(
        merge(with(Some("c.pem"), Some("k.pem"), false))
            .unwrap()
            .tls,
        Some(TlsSource::Files {
            cert: "c.pem".into(),
            key: "k.pem".into()
        })
    );
    assert!(merge(with(Some("c.pem"), None, false)).is_err());
    assert!(merge(with(Some("c.pem"), Some("k.pem"), true)).is_err());
}

#[test]
fn a_public_url_is_an_origin_without_a_path() {
    assert_eq!(
        parse_public_url("https://presence.example.com/").unwrap(),
        "https://presence.example.com"
    );
    assert_eq!(
        parse_public_url("http://10.0.0.5:8080").unwrap(),
        "http://10.0.0.5:8080"
    );
    for bad in [
        "presence.example.com",
        "ftp://x.example",
        "https://x.example/graph",
        "https://x.example/?a=b",
        "https://user:pw@x.example",
    ] {
        assert!(parse_public_url(bad).is_err(), "{bad}");
    }
}

#[test]
fn store_is_sqlite_by_default_and_names_the_choices_when_unknown() {
    let c = Config::merge(FileConfig::default(), FileConfig::default(), false).unwrap();
    assert_eq!(c.store, StoreSpec::Sqlite);
    let cli = FileConfig {
        store: Some("memory".into()),
        jwt_secret_file: Some("/secret".into()),
        ..FileConfig::default()
    };
    let c = Config::merge(cli, FileConfig::default(), false).unwrap();
    assert_eq!(c.store, StoreSpec::Memory);
    let cli = FileConfig {
        store: Some("postgres".into()),
        ..FileConfig::default()
    };
    let err = Config::merge(cli, FileConfig::default(), false).unwrap_err();
    assert!(err.to_string().contains("'sqlite'"), "{err}");
}

#[test]
fn in_memory_needs_a_key_it_need_not_write_and_no_self_signed_certificate() {
    let memory = |extra: FileConfig| {
        let cli = FileConfig {
            in_memory: Some(true),
            ..extra
        };
        Config::merge(cli, FileConfig::default(), false)
    };
    let err = memory(FileConfig::default()).unwrap_err().to_string();
    assert!(err.contains("--jwt-secret-file"), "{err}");
    let with_secret = || FileConfig {
        jwt_secret_file: Some("/s".into()),
        ..Default::default()
    };
    assert_eq!(memory(with_secret()).unwrap().store, StoreSpec::Memory);
    let err = memory(FileConfig {
        tls_self_signed: Some(true),
        ..with_secret()
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("--tls-cert"), "{err}");
    let err = memory(FileConfig {
        store: Some("sqlite".into()),
        ..with_secret()
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("contradict"), "{err}");
    let env = Config::merge(
        FileConfig {
            store: Some("memory".into()),
            ..Default::default()
        },
        FileConfig::default(),
        true,
    )
    .unwrap();
    assert_eq!(env.secret, SecretSource::Env);
}

#[test]
fn store_takes_redis_urls_and_cluster_seeds() {
    let parse = |text: &str| text.parse::<StoreSpec>();
    assert_eq!(
        parse("redis://127.0.0.1:6379/2").unwrap(),
        StoreSpec::Redis("redis://127.0.0.1:6379/2".into())
    );
    assert_eq!(
        parse("rediss://cache.example.com:6380").unwrap(),
        StoreSpec::Redis("rediss://cache.example.com:6380".into())
    );
    assert_eq!(
        parse("redis-cluster://10.0.0.1:7000,10.0.0.2:7001").unwrap(),
        StoreSpec::RedisCluster(vec![
            "redis://10.0.0.1:7000".into(),
            "redis://10.0.0.2:7001".into()
        ])
    );
    for bad in [
        "redis-cluster://",
        "redis-cluster://10.0.0.1",
        "redis-cluster://10.0.0.1:7000,",
        "redis-cluster://:7000",
        "redis-cluster://10.0.0.1:99999",
        "redis-cluster://10.0.0.1:0",
        "redis://",
        "redis://host:notaport",
        "redis+unix:///tmp/redis.sock",
        "postgres://db:5432",
    ] {
        let err = parse(bad).unwrap_err().to_string();
        assert!(err.contains("--store"), "{bad}: {err}");
    }
}

#[test]
fn the_redis_delivery_lease_is_a_minute_by_default_and_never_zero() {
    let c = Config::merge(FileConfig::default(), FileConfig::default(), false).unwrap();
    assert_eq!(c.redis_delivery_lease, std::time::Duration::from_secs(60));
    let cli = |text: &str| FileConfig {
        redis_delivery_lease: Some(text.into()),
        ..FileConfig::default()
    };
    let c = Config::merge(cli("PT5S"), FileConfig::default(), false).unwrap();
    assert_eq!(c.redis_delivery_lease, std::time::Duration::from_secs(5));
    for bad in ["PT0S", "PT2H", "soon"] {
        let err = Config::merge(cli(bad), FileConfig::default(), false).unwrap_err();
        assert!(err.to_string().contains("--redis-delivery-lease"), "{err}");
    }
}

#[test]
fn store_errors_and_debug_never_show_credentials() {
    for bad in [
        "redis://:s3cret-pw@host:notaport",
        "redis-cluster://:s3cret-pw@10.0.0.1:7000",
        "mysql://root:s3cret-pw@db",
    ] {
        let err = bad.parse::<StoreSpec>().unwrap_err().to_string();
        assert!(!err.contains("s3cret-pw"), "{err}");
    }
    let spec: StoreSpec = "redis://:s3cret-pw@127.0.0.1:6379".parse().unwrap();
    assert!(!format!("{spec:?}").contains("s3cret-pw"));
    let cli = FileConfig {
        store: Some("redis://:s3cret-pw@127.0.0.1:6379".into()),
        ..FileConfig::default()
    };
    let config = Config::merge(cli, FileConfig::default(), false).unwrap();
    assert!(!format!("{config:?}").contains("s3cret-pw"));
}

#[test]
fn jwks_alone_means_no_generated_secret() {
    let cli = FileConfig {
        jwks_file: Some("/keys.json".into()),
        ..Default::default()
    };
    assert_eq!(
        Config::merge(cli, FileConfig::default(), false)
            .unwrap()
            .secret,
        SecretSource::None
    );
    assert_eq!(
        Config::merge(FileConfig::default(), FileConfig::default(), true)
            .unwrap()
            .secret,
        SecretSource::Env
    );
}
