//! `ketacare audit verify` run as the built binary, on SQLite and (when configured)
//! PostgreSQL: an intact trail with a signed checkpoint passes; an entry altered behind the
//! application's back, a checkpoint checked with the wrong key, and a chain recomputed after a
//! change (caught by the signed checkpoint) each fail with the position.

use chrono::{TimeZone, Utc};
use ketacare::{build_app, open_store, Config};
use ketacare_app::{App, FixedClock, NewUserInput};
use ketacare_db_tests::TestDb;
use ketacare_domain::patient::DemographicsInput;
use serde_json::Value;
use std::process::{Command, Output};
use std::sync::Arc;

const KEY: &str = "4c1f0e2d3b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
const PASSWORD: &str = "violet lantern harbour 2026";

async fn app_on(db: &TestDb) -> Arc<App> {
    let store = open_store(&db.url).await.expect("open");
    store.migrate().await.expect("migrate");
    let config = Config { database_url: db.url.clone(), audit_signing_key: KEY.into(), ..Config::default() };
    let clock = Arc::new(FixedClock::new(Utc.with_ymd_and_hms(2026, 11, 26, 9, 0, 0).unwrap()));
    build_app(store, &config, clock).expect("app")
}

fn verify(db: &TestDb, extra: &[&str]) -> (Output, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_ketacare"))
        .args(["audit", "verify", "--json"])
        .args(extra)
        .env_remove("KETACARE_CONFIG")
        .env("KETACARE_DATABASE_URL", &db.url)
        .env("KETACARE_AUDIT_SIGNING_KEY", KEY)
        .output()
        .expect("run ketacare audit verify");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("JSON report: {}", String::from_utf8_lossy(&out.stderr)));
    (out, v)
}

fn tamper(db: &TestDb, sql: &[&str]) {
    let url = db.url.clone();
    let sql: Vec<String> = sql.iter().map(|s| (*s).to_owned()).collect();
    let sqlite = db.backend() == "sqlite";
    // Its own runtime thread: the test's runtime is busy awaiting nothing here.
    std::thread::spawn(move || {
        tokio::runtime::Runtime::new().unwrap().block_on(async move {
            use sqlx::Connection;
            if sqlite {
                let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
                for s in ["DROP TRIGGER IF EXISTS audit_log_no_update", "DROP TRIGGER IF EXISTS audit_chain_no_update"] {
                    sqlx::query(s).execute(&mut c).await.unwrap();
                }
                for s in &sql {
                    sqlx::query(s).execute(&mut c).await.unwrap();
                }
            } else {
                let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
                for s in ["ALTER TABLE audit_log DISABLE TRIGGER USER", "ALTER TABLE audit_chain DISABLE TRIGGER USER"] {
                    sqlx::query(s).execute(&mut c).await.unwrap();
                }
                for s in &sql {
                    sqlx::query(s).execute(&mut c).await.unwrap();
                }
            }
        })
    })
    .join()
    .unwrap();
}

async fn scenario(db: TestDb) {
    let app = app_on(&db).await;
    let input =
        NewUserInput { username: "nils.nurse".into(), display_name: "Nils Nurse".into(), role: "nurse".into(), password: PASSWORD.into() };
    let nurse = app.system_principal(app.create_user_as_system(&input).await.unwrap());
    for (mrn, family) in [("AUD-1", "Ashby"), ("AUD-2", "Brook")] {
        let d = DemographicsInput {
            mrn: mrn.into(),
            family_name: family.into(),
            given_name: "Test".into(),
            date_of_birth: "1980-01-01".into(),
            sex: "female".into(),
            ..Default::default()
        };
        app.register_patient(&nurse, &d).await.unwrap();
    }
    let sealed = app.seal_audit().await.unwrap();
    let (head, _) = sealed.head.clone().expect("sealed");
    assert!(sealed.sealed >= 3, "{sealed:?}");
    app.store().close().await;

    let (out, r) = verify(&db, &[]);
    assert!(out.status.success(), "intact: {r}");
    assert_eq!(r["intact"], true);
    assert_eq!(r["entries_checked"], sealed.sealed);
    assert_eq!((r["checkpoints"].as_u64(), r["checkpoints_signature_verified"].as_u64()), (Some(1), Some(1)), "{r}");

    // The trail as FHIR AuditEvents (NDJSON), oldest first.
    let export = tempfile::tempdir().unwrap();
    let file = export.path().join("audit.ndjson");
    let out = Command::new(env!("CARGO_BIN_EXE_ketacare"))
        .args(["audit", "export", "--to", file.to_str().unwrap()])
        .env_remove("KETACARE_CONFIG")
        .env("KETACARE_DATABASE_URL", &db.url)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<Value> = std::fs::read_to_string(&file).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(lines.len() as u64 >= sealed.sealed, "every entry: {} lines", lines.len());
    assert!(lines.iter().all(|e| e["resourceType"] == "AuditEvent" && e["recorded"].is_string() && e["agent"].is_array()));
    assert!(lines.iter().any(|e| e.to_string().contains("nils.nurse")), "the nurse's entries are there");

    // Someone else's key: the checkpoint is not trusted.
    let (out, r) = verify(&db, &["--public-key", &"11".repeat(32)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(r["findings"].as_array().unwrap().iter().any(|f| f["kind"] == "bad_signature" && f["seq"] == head), "{r}");
    let out = Command::new(env!("CARGO_BIN_EXE_ketacare"))
        .args(["audit", "verify", "--public-key", "xyz"])
        .env_remove("KETACARE_CONFIG")
        .env("KETACARE_DATABASE_URL", &db.url)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--public-key must be 64 hexadecimal digits"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // An entry altered in place: found at its position, and the text report names it.
    let target = head - 1;
    tamper(&db, &[&format!("UPDATE audit_log SET detail = 'nothing to see' WHERE seq = {target}")]);
    let (out, r) = verify(&db, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(r["findings"][0]["kind"], "altered", "{r}");
    assert_eq!(r["findings"][0]["seq"], target);
    let text = Command::new(env!("CARGO_BIN_EXE_ketacare"))
        .args(["audit", "verify"])
        .env_remove("KETACARE_CONFIG")
        .env("KETACARE_DATABASE_URL", &db.url)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains(&format!("#{target}: entry #{target} does not match the chain")) && text.contains("TAMPERED"), "{text}");

    // The attacker recomputes every link from there on: the chain is consistent again, but
    // no longer matches the signed checkpoint.
    let items = {
        let store = open_store(&db.url).await.unwrap();
        let items = store.audit_chain_page(i64::MIN, 1000).await.unwrap();
        store.close().await;
        items
    };
    let mut prev = ketacare_domain::audit_chain::GENESIS.to_owned();
    let mut updates = Vec::new();
    for i in &items {
        let l = ketacare_domain::audit_chain::link(&prev, i.seq, i.columns.as_ref().unwrap());
        if i.seq >= target {
            updates.push(format!("UPDATE audit_chain SET link = '{l}' WHERE seq = {}", i.seq));
        }
        prev = l;
    }
    let refs: Vec<&str> = updates.iter().map(String::as_str).collect();
    tamper(&db, &refs);
    let (out, r) = verify(&db, &[]);
    assert_eq!(out.status.code(), Some(1));
    let kinds: Vec<(&str, i64)> =
        r["findings"].as_array().unwrap().iter().map(|f| (f["kind"].as_str().unwrap(), f["seq"].as_i64().unwrap())).collect();
    assert_eq!(kinds, vec![("checkpoint_mismatch", head)], "only the signed checkpoint can tell: {r}");

    // Deleting the checkpoints too leaves a consistent chain that nothing vouches for.
    if db.backend() == "sqlite" {
        tamper(&db, &["DROP TRIGGER IF EXISTS audit_checkpoints_no_delete", "DELETE FROM audit_checkpoints"]);
    } else {
        tamper(&db, &["ALTER TABLE audit_checkpoints DISABLE TRIGGER USER", "DELETE FROM audit_checkpoints"]);
    }
    let (out, r) = verify(&db, &[]);
    assert_eq!(out.status.code(), Some(1));
    let kinds: Vec<&str> = r["findings"].as_array().unwrap().iter().map(|f| f["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, vec!["not_signed"], "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_on_sqlite() {
    scenario(ketacare_db_tests::fresh_sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_on_postgres() {
    let Some(db) = ketacare_db_tests::fresh_postgres().await else { return };
    scenario(db).await;
}
