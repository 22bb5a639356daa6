//! Reading configuration sources.

use super::*;

fn table(text: &str) -> toml::Table {
    text.parse().unwrap()
}

#[test]
fn root_table_beats_top_level_and_paths_are_relative_to_the_file() {
    let mut config = Config::embedded();
    config
        .apply_table(
            &table(
                r#"
        filesystem = "top"
        definitions = ["functions.sql"]
        [root]
        filesystem = "caches"
        read_only = true
        [root.filesystem_options]
        secret_access_key = "hunter2"
        [local]
        filesystem = "/fast/disk"
        [mirror-public]
        filesystem = "s3://public/caches"
        [mirror-public.filesystem_options]
        region = "eu-west-1"
        [root.arrow]
        filesystem = "arrow-store"
    "#,
            ),
            Path::new("/project"),
        )
        .unwrap();
    assert_eq!(config.root.filesystem, "/project/caches");
    assert!(config.root.read_only);
    assert_eq!(config.local.filesystem, "/fast/disk");
    assert_eq!(config.mirrors[0].0, "mirror-public");
    assert_eq!(config.mirrors[0].1.options["region"], "eu-west-1");
    assert_eq!(
        config.root.backend_store("arrow").unwrap().filesystem,
        "/project/arrow-store"
    );
    assert_eq!(
        config.definitions,
        vec![PathBuf::from("/project/functions.sql")]
    );
    let shown = format!("{config:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    let described = format!("{:?}", config.describe(false));
    assert!(!described.contains("hunter2"), "{described}");
    assert!(format!("{:?}", config.describe(true)).contains("hunter2"));
}

#[test]
fn unknown_settings_are_named_and_python_keys_are_accepted() {
    let mut config = Config::embedded();
    let err = config
        .apply_table(&table("[root]\nfilesytem = 'x'"), Path::new("/p"))
        .unwrap_err();
    assert!(err.contains("'root.filesytem'"), "{err}");
    config
        .apply_table(
            &table(
                "host = 'db'\nport = 5432\ndynamic_config_path = 'x'\n[root.sql]\npassword = 'pw'",
            ),
            Path::new("/p"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.root.params["host"], "db");
    assert_eq!(config.root.params["port"], "5432");
}

#[test]
fn environment_names_locations_backends_and_options() {
    let mut config = Config::with_root("/a");
    let vars = [
        ("NUTHATCH_ROOT_FILESYSTEM", "memory://"),
        ("NUTHATCH_ROOT_FILESYSTEM_OPTIONS_REGION", "eu"),
        ("NUTHATCH_LOCAL_FILESYSTEM", "/fast"),
        ("NUTHATCH_MIRROR1_FILESYSTEM", "/other/team"),
        ("NUTHATCH_ROOT_ARROW_FILESYSTEM", "/arrow"),
        ("NUTHATCH_SQL_HOST", "db.internal"),
        ("NUTHATCH_MEMORY_LIMIT", "1.5G"),
        ("NUTHATCH_MEMOIZE_LIMIT", "64M"),
        ("NUTHATCH_LOG", "debug"),
        ("PATH", "/bin"),
    ];
    config
        .apply_env(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
        .unwrap();
    assert_eq!(config.memory_limit, Some(3 << 29));
    assert_eq!(config.memoize_limit, 64 << 20);
    assert_eq!(config.root.filesystem, "memory://");
    assert_eq!(config.root.options["region"], "eu");
    assert_eq!(config.local.filesystem, "/fast");
    assert_eq!(
        config.mirrors,
        vec![("mirror1".into(), TierConfig::new("/other/team"))]
    );
    assert_eq!(
        config.root.backends["arrow"].filesystem.as_deref(),
        Some("/arrow")
    );
    assert_eq!(config.root.backends["sql"].params["host"], "db.internal");
    let err = config
        .apply_env([("NUTHATCH_ROOT_FILESYSTEMS".to_string(), "x".to_string())])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("NUTHATCH_ROOT_FILESYSTEMS") && err.contains("root.filesystems"),
        "{err}"
    );
}

#[test]
fn code_settings_secrets_and_dynamic_values() {
    let mut config = Config::with_root("/a");
    config.set("local.filesystem", "/fast").unwrap();
    config
        .set_secret("root.filesystem_options.session", "tok-123")
        .unwrap();
    config
        .set_dynamic("root.filesystem_options.region", true, || Ok("eu-2".into()))
        .unwrap();
    assert!(config.set("root.filesystemm", "x").is_err());
    assert!(config
        .set_dynamic("root.nowhere", false, || Ok(String::new()))
        .is_err());
    let shown = format!("{:?}", config.describe(false));
    assert!(
        !shown.contains("tok-123") && shown.contains("<dynamic>"),
        "{shown}"
    );
    let resolved = config.resolved().unwrap();
    assert_eq!(resolved.root.options["region"], "eu-2");
    assert_eq!(resolved.local.filesystem, "/fast");
    assert!(!format!("{:?}", resolved.describe(false)).contains("eu-2"));
}

#[test]
fn memory_sizes_read_like_datafusion_cli() {
    assert_eq!(parse_memory_limit("512M").unwrap(), 512 << 20);
    assert_eq!(parse_memory_limit("2g").unwrap(), 2 << 30);
    assert_eq!(parse_memory_limit("1000").unwrap(), 1000);
    let err = parse_memory_limit("2X").unwrap_err().to_string();
    assert!(err.contains("K, M, G or T"), "{err}");
    assert!(parse_memory_limit("lots").is_err());
    assert!(parse_memory_limit("0").is_err());
}

#[test]
fn server_settings_come_from_the_file_and_the_environment_and_hide_the_token() {
    let mut config = Config::embedded();
    config
        .apply_table(
            &table(
                r#"
        [server]
        addr = "0.0.0.0:50051"
        token = "from-the-file"
        tls_cert = "certs/server.pem"
    "#,
            ),
            Path::new("/project"),
        )
        .unwrap();
    assert_eq!(
        config.server.tls_cert,
        Some("/project/certs/server.pem".into())
    );
    let vars = [("NUTHATCH_SERVER_TOKEN", "from-the-env")];
    config
        .apply_env(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
        .unwrap();
    assert_eq!(config.server.token.as_deref(), Some("from-the-env"));
    assert_eq!(config.server.addr.as_deref(), Some("0.0.0.0:50051"));
    let shown = format!("{:?} {:?}", config, config.describe(false));
    assert!(!shown.contains("from-the"), "{shown}");
    assert!(config
        .describe(true)
        .contains(&("server.token".into(), "from-the-env".into())));
    // An empty variable is no token at all.
    config.set("server.token", " ").unwrap();
    assert_eq!(config.server.token, None);
    config.set("server.session_idle", "30m").unwrap();
    assert_eq!(
        config.server.session_idle,
        Some(std::time::Duration::from_secs(1800))
    );
    let error = config
        .set("server.session_idle", "soon")
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("such as 90s, 30m, 24h or 7d, got 'soon'"),
        "{error}"
    );
    let error = config.set("server.port", "1").unwrap_err().to_string();
    assert!(error.contains("unknown setting 'server.port'"), "{error}");
}

#[test]
fn workers_come_from_a_file_list_or_the_environment_and_the_token_is_masked() {
    let mut config = Config::with_root("/a");
    config
        .apply_table(
            &table(
                "[distributed]\nworkers = [\"http://10.0.0.5:7400\", \"http://10.0.0.6:7400\"]\n\
                 token = \"s3cret\"",
            ),
            Path::new("/p"),
        )
        .unwrap();
    assert_eq!(
        config.distributed.workers,
        ["http://10.0.0.5:7400", "http://10.0.0.6:7400"]
    );
    let shown = format!("{:?} {:?}", config.describe(false), config);
    assert!(
        !shown.contains("s3cret") && shown.contains("distributed.token"),
        "{shown}"
    );
    config
        .apply_env([(
            "NUTHATCH_DISTRIBUTED_WORKERS".to_string(),
            "http://a:7400, http://b:7400".to_string(),
        )])
        .unwrap();
    assert_eq!(
        config.distributed.workers,
        ["http://a:7400", "http://b:7400"]
    );
    let err = config
        .apply_env([(
            "NUTHATCH_DISTRIBUTED_WORKERS".to_string(),
            "a:7400".to_string(),
        )])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("'a:7400' is not one") && err.contains("http://host:port"),
        "{err}"
    );
}
