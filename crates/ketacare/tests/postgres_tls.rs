//! TLS between Ketacare and PostgreSQL: the URL's `sslmode` decides, and what the connection
//! really uses is read back from the server (`pg_stat_ssl`). `verify-full` accepts the server's
//! own certificate and refuses one signed by another CA, or issued for another host name, with an
//! error that names `sslrootcert`. Runs against the test server (KETACARE_TEST_POSTGRES_URL),
//! which must have `ssl = on` when KETACARE_REQUIRE_POSTGRES is set.

use ketacare::{Config, Server};
use ketacare_db::DbError;
use ketacare_db_postgres::PgStore;

fn with(url: &str, params: &str) -> String {
    format!("{url}{}{params}", if url.contains('?') { '&' } else { '?' })
}

/// The test database, if the server is configured and speaks TLS.
async fn tls_database() -> Option<ketacare_db_tests::TestDb> {
    let db = ketacare_db_tests::fresh_postgres().await?;
    let plain = PgStore::open(&with(&db.url, "sslmode=disable")).await.expect("plain connection");
    let ssl: String = sqlx::query_scalar("SHOW ssl").fetch_one(plain.pool()).await.unwrap();
    if ssl != "on" {
        assert!(!ketacare_db_tests::postgres_required(), "the test PostgreSQL server has ssl = {ssl}; the TLS tests need it on");
        eprintln!("skipped: the PostgreSQL server has ssl = {ssl}");
        return None;
    }
    Some(db)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sslmode_decides_and_the_connection_is_read_back() {
    let Some(db) = tls_database().await else { return };

    let s = PgStore::open(&with(&db.url, "sslmode=require")).await.expect("require connects");
    let t = s.transport().await.unwrap();
    assert!(t.encrypted, "sslmode=require is encrypted: {t:?}");
    assert!(t.protocol.as_deref().is_some_and(|p| p.starts_with("TLSv1.")), "{t:?}");
    assert!(t.to_string().starts_with("TLS (TLSv1."), "{t}");

    // The default (prefer) now encrypts too: TLS is built in.
    let t = PgStore::open(&db.url).await.unwrap().transport().await.unwrap();
    assert!(t.encrypted, "sslmode=prefer uses TLS when the server offers it: {t:?}");

    // The negative control: disable really is plain, and is reported so.
    let t = PgStore::open(&with(&db.url, "sslmode=disable")).await.unwrap().transport().await.unwrap();
    assert!(!t.encrypted, "{t:?}");
    assert_eq!(t.to_string(), "unencrypted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_checks_the_servers_certificate_and_host_name() {
    let Some(db) = tls_database().await else { return };

    // A CA that did not sign the server's certificate: refused, naming the setting.
    let other_ca = format!("{}/tests/fixtures/tls/ca.pem", env!("CARGO_MANIFEST_DIR"));
    let wrong = with(&db.url, &format!("sslmode=verify-full&sslrootcert={other_ca}"));
    match PgStore::open(&wrong).await {
        Err(DbError::Tls(m)) => {
            assert!(m.contains("sslrootcert") && m.contains("verify-full"), "{m}");
        }
        Err(e) => panic!("expected a TLS error, got {e:?}"),
        Ok(_) => panic!("a server signed by another CA was accepted"),
    }
    // Through the server's start, as an operator sees it.
    let config = Config { database_url: wrong.clone(), listen: "127.0.0.1:0".into(), ..Config::default() };
    let e = format!("{:#}", Server::start(&config, None).await.err().expect("the server does not start"));
    assert!(e.contains("opening PostgreSQL database") && e.contains("sslrootcert"), "{e}");

    // The server's own certificate, where this machine can read it (the test server is local).
    let probe = PgStore::open(&db.url).await.unwrap();
    let cert: String = sqlx::query_scalar("SHOW ssl_cert_file").fetch_one(probe.pool()).await.unwrap();
    let cert = if cert.starts_with('/') { cert } else { String::new() };
    if cert.is_empty() || std::fs::metadata(&cert).is_err() || !db.url.contains("@127.0.0.1") {
        assert!(!ketacare_db_tests::postgres_required(), "the server's certificate ({cert}) must be readable for this test");
        eprintln!("skipped the verify-full success case: the server's certificate is not readable here");
        return;
    }
    // Debian's certificate is issued for localhost: by that name it verifies ...
    let by_name = with(&db.url.replace("@127.0.0.1", "@localhost"), &format!("sslmode=verify-full&sslrootcert={cert}"));
    let t = PgStore::open(&by_name).await.expect("verify-full with the server's certificate").transport().await.unwrap();
    assert!(t.encrypted, "{t:?}");
    // ... and by an address it does not carry, verify-full refuses.
    let by_address = with(&db.url, &format!("sslmode=verify-full&sslrootcert={cert}"));
    match PgStore::open(&by_address).await {
        Err(DbError::Tls(m)) => assert!(m.contains("not valid for name"), "verify-full checks the host name: {m}"),
        Err(e) => panic!("expected a TLS error, got {e:?}"),
        Ok(_) => panic!("verify-full accepted a certificate for another name"),
    }
    // verify-ca is refused before connecting, naming the mode that works.
    let ca_only = with(&db.url, &format!("sslmode=verify-ca&sslrootcert={cert}"));
    match PgStore::open(&ca_only).await {
        Err(DbError::UnsafeConfig(m)) => assert!(m.contains("use sslmode=verify-full"), "{m}"),
        Err(e) => panic!("expected the configuration to be refused, got {e:?}"),
        Ok(_) => panic!("verify-ca was accepted"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_says_how_the_database_connection_travels() {
    let Some(db) = tls_database().await else { return };
    let run = |url: String| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ketacare"))
            .args(["--database-url", &url, "check-config"])
            .env_remove("KETACARE_CONFIG")
            .output()
            .expect("run ketacare check-config");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let shown = run(with(&db.url, "sslmode=require"));
    assert!(shown.contains("Database connection: TLS (TLSv1."), "{shown}");
    let shown = run(with(&db.url, "sslmode=disable"));
    assert!(shown.contains("Database connection: unencrypted"), "{shown}");
    assert!(!shown.contains("WARNING: the connection to PostgreSQL"), "a local database is not warned about: {shown}");
}
