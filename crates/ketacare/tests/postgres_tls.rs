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

/// The server's own certificate, where this machine can read it (the test server is local),
/// with the URL by the name `localhost`; `None` (and a note) where it cannot be used.
async fn server_certificate(db: &ketacare_db_tests::TestDb) -> Option<String> {
    let probe = PgStore::open(&db.url).await.unwrap();
    let cert: String = sqlx::query_scalar("SHOW ssl_cert_file").fetch_one(probe.pool()).await.unwrap();
    if !cert.starts_with('/') || std::fs::metadata(&cert).is_err() || !db.url.contains("@127.0.0.1") {
        assert!(!ketacare_db_tests::postgres_required(), "the server's certificate ({cert}) must be readable for this test");
        eprintln!("skipped: the server's certificate is not readable here");
        return None;
    }
    Some(cert)
}

fn by_name(db: &ketacare_db_tests::TestDb) -> String {
    db.url.replace("@127.0.0.1", "@localhost")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_checks_the_host_name_and_names_the_setting_when_it_fails() {
    let Some(db) = tls_database().await else { return };
    let Some(cert) = server_certificate(&db).await else { return };
    // Debian's certificate is issued for localhost: by that name it verifies ...
    let good = with(&by_name(&db), &format!("sslmode=verify-full&sslrootcert={cert}"));
    let t = PgStore::open(&good).await.expect("verify-full with the server's certificate").transport().await.unwrap();
    assert!(t.encrypted, "{t:?}");
    // ... and by an address it does not carry, verify-full refuses, naming the setting.
    let by_address = with(&db.url, &format!("sslmode=verify-full&sslrootcert={cert}"));
    match PgStore::open(&by_address).await {
        Err(DbError::Tls(m)) => assert!(m.contains("not valid for name") && m.contains("sslrootcert"), "{m}"),
        Err(e) => panic!("expected a TLS error, got {e:?}"),
        Ok(_) => panic!("verify-full accepted a certificate for another name"),
    }
    // At the server's start, as an operator sees it.
    let config = Config { database_url: by_address, listen: "127.0.0.1:0".into(), ..Config::default() };
    let e = format!("{:#}", Server::start(&config, None).await.err().expect("the server does not start"));
    assert!(e.contains("opening PostgreSQL database") && e.contains("sslrootcert"), "{e}");
    // verify-ca, and verify-full without sslrootcert, are refused before connecting.
    for (q, says) in [
        (format!("sslmode=verify-ca&sslrootcert={cert}"), "use sslmode=verify-full"),
        ("sslmode=verify-full".to_owned(), "verify-full needs sslrootcert"),
        ("sslmode=verify-full&sslrootcert=/nonexistent/ca.pem".to_owned(), "sslrootcert /nonexistent/ca.pem"),
    ] {
        match PgStore::open(&with(&by_name(&db), &q)).await {
            Err(DbError::UnsafeConfig(m)) => assert!(m.contains(says), "{q}: {m}"),
            Err(e) => panic!("{q}: expected the configuration to be refused, got {e:?}"),
            Ok(_) => panic!("{q} was accepted"),
        }
    }
}

/// Runs `ketacare` with `args`; the operating system's trusted CAs are replaced by `trusted`
/// (rustls-native-certs reads only SSL_CERT_FILE and SSL_CERT_DIR when they are set), so that
/// only the URL's sslrootcert and that file are trusted.
fn ketacare(args: &[&str], trusted: Option<&str>) -> (bool, String) {
    let empty = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ketacare"));
    cmd.args(args).env_remove("KETACARE_CONFIG");
    if let Some(file) = trusted {
        cmd.env("SSL_CERT_FILE", file).env("SSL_CERT_DIR", empty.path());
    }
    let out = cmd.output().expect("run ketacare");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_refuses_a_server_signed_by_another_ca() {
    let Some(db) = tls_database().await else { return };
    let Some(cert) = server_certificate(&db).await else { return };
    let other_ca = format!("{}/tests/fixtures/tls/ca.pem", env!("CARGO_MANIFEST_DIR"));
    // Only a CA that did not sign the server's certificate is trusted: refused, naming the setting.
    let wrong = with(&by_name(&db), &format!("sslmode=verify-full&sslrootcert={other_ca}"));
    let (ok, out) = ketacare(&["--database-url", &wrong, "check-config"], Some(&other_ca));
    assert!(!ok, "a server signed by another CA was accepted: {out}");
    assert!(out.contains("invalid peer certificate") && out.contains("sslrootcert"), "{out}");
    // The negative control: the same trust store with the server's own certificate connects.
    let right = with(&by_name(&db), &format!("sslmode=verify-full&sslrootcert={cert}"));
    let (ok, out) = ketacare(&["--database-url", &right, "check-config"], Some(&other_ca));
    assert!(ok && out.contains("Database connection: TLS (TLSv1."), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_takes_the_same_verified_url() {
    let Some(db) = tls_database().await else { return };
    let Some(cert) = server_certificate(&db).await else { return };
    if std::process::Command::new("pg_dump").arg("--version").output().is_err() {
        assert!(!ketacare_db_tests::postgres_required(), "pg_dump is needed for PostgreSQL backups");
        return;
    }
    let url = with(&by_name(&db), &format!("sslmode=verify-full&sslrootcert={cert}"));
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join("clinic.dump");
    let (ok, out) = ketacare(&["--database-url", &url, "backup", "--to", to.to_str().unwrap()], None);
    assert!(ok, "{out}");
    assert!(std::fs::metadata(&to).unwrap().len() > 0, "{out}");
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
