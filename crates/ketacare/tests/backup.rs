//! `ketacare backup` and `ketacare restore` as the built binary, on SQLite and (when configured)
//! PostgreSQL: a backup taken while the server runs and clients write restores into an empty
//! database with every write acknowledged before it began; a backup of the quiet database
//! restores to a copy equal to the source in every row of every table; restore refuses a
//! target that is not empty and a file that is not a backup.

use ketacare::{build_app, open_store, Config};
use ketacare_app::{NewUserInput, SystemClock};
use ketacare_db_tests::TestDb;
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PASSWORD: &str = "violet lantern harbour 2026";

fn ketacare(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ketacare"))
        .args(args)
        .env_remove("KETACARE_CONFIG")
        .env("KETACARE_DATABASE_URL", url)
        .output()
        .expect("run ketacare")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Every row of every table, as sorted text, per table.
async fn dump(url: &str) -> Vec<(String, Vec<String>)> {
    use sqlx::Connection;
    let mut out = Vec::new();
    if url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        let tables: Vec<String> =
            sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
                .fetch_all(&mut c)
                .await
                .unwrap();
        for t in tables {
            let cols: Vec<String> =
                sqlx::query_scalar(&format!("SELECT name FROM pragma_table_info('{t}')")).fetch_all(&mut c).await.unwrap();
            let expr = cols.iter().map(|c| format!("quote(\"{c}\")")).collect::<Vec<_>>().join(" || '|' || ");
            let mut rows: Vec<String> = sqlx::query_scalar(&format!("SELECT {expr} FROM \"{t}\"")).fetch_all(&mut c).await.unwrap();
            rows.sort();
            out.push((t, rows));
        }
    } else {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        let tables: Vec<String> =
            sqlx::query_scalar("SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1")
                .fetch_all(&mut c)
                .await
                .unwrap();
        for t in tables {
            let mut rows: Vec<String> =
                sqlx::query_scalar(&format!("SELECT row_to_json(t)::text FROM \"{t}\" t")).fetch_all(&mut c).await.unwrap();
            rows.sort();
            out.push((t, rows));
        }
    }
    out
}

/// An empty target: a path in an empty directory, or a new empty PostgreSQL database.
async fn empty_target(db: &TestDb, dir: &Path, name: &str) -> String {
    if db.backend() == "sqlite" {
        format!("sqlite://{}", dir.join(name).join("ketacare.db").display())
    } else {
        use sqlx::Connection;
        let admin = std::env::var("KETACARE_TEST_POSTGRES_URL").unwrap();
        let db_name = format!("ketacare_restore_{}_{}", name, std::process::id());
        let mut c = sqlx::PgConnection::connect(&admin).await.unwrap();
        sqlx::query(&format!("DROP DATABASE IF EXISTS {db_name}")).execute(&mut c).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {db_name}")).execute(&mut c).await.unwrap();
        let base = admin.rsplit_once('/').unwrap().0;
        format!("{base}/{db_name}")
    }
}

async fn drop_target(url: &str) {
    if let Some(name) = url.strip_prefix("postgres").and(url.rsplit('/').next()) {
        use sqlx::Connection;
        let admin = std::env::var("KETACARE_TEST_POSTGRES_URL").unwrap();
        let mut c = sqlx::PgConnection::connect(&admin).await.unwrap();
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut c).await;
    }
}

async fn scenario(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    // A clinic with staff and an API token.
    let token = {
        let store = open_store(&db.url).await.unwrap();
        store.migrate().await.unwrap();
        let app = build_app(store, &Config { database_url: db.url.clone(), ..Config::default() }, Arc::new(SystemClock)).unwrap();
        let admin = app
            .create_user_as_system(&NewUserInput {
                username: "ada.admin".into(),
                display_name: "Ada".into(),
                role: "admin".into(),
                password: PASSWORD.into(),
            })
            .await
            .unwrap();
        let nurse = app
            .create_user_as_system(&NewUserInput {
                username: "nina.nurse".into(),
                display_name: "Nina".into(),
                role: "nurse".into(),
                password: PASSWORD.into(),
            })
            .await
            .unwrap();
        let (t, _) = app.issue_api_token(&app.system_principal(admin), &nurse.id.to_string(), "backup test").await.unwrap();
        app.store().close().await;
        t
    };
    // The server runs and a client writes patients with a weight each, while the backup is taken.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = Command::new(env!("CARGO_BIN_EXE_ketacare"))
        .arg("serve")
        .env_remove("KETACARE_CONFIG")
        .env("KETACARE_DATABASE_URL", &db.url)
        .env("KETACARE_LISTEN", format!("127.0.0.1:{port}"))
        .env("KETACARE_SECURE_COOKIES", "false")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let c = reqwest::Client::new();
    let start = Instant::now();
    while c.get(format!("{base}/health")).send().await.is_err() {
        assert!(start.elapsed() < Duration::from_secs(60), "server up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (c, base, token, acked, stop) = (c.clone(), base.clone(), token.clone(), acked.clone(), stop.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let body = json!({"mrn": format!("BK-{n}"), "family_name": "Backup", "given_name": "Online", "date_of_birth": "1970-01-01", "sex": "male"});
                let r = c.post(format!("{base}/api/patients")).bearer_auth(&token).json(&body).send().await.unwrap();
                assert_eq!(r.status().as_u16(), 201);
                let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
                let r = c
                    .post(format!("{base}/api/patients/{id}/weights"))
                    .bearer_auth(&token)
                    .json(&json!({"value": 80.5}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status().as_u16(), 201);
                acked.lock().unwrap().push(id);
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    let before: Vec<String> = acked.lock().unwrap().clone();
    let online = dir.path().join("online.backup");
    let out = ketacare(&db.url, &["backup", "--to", online.to_str().unwrap()]);
    assert!(out.status.success(), "online backup: {}", text(&out));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&online).unwrap().permissions().mode() & 0o777, 0o600, "a backup is readable by its owner only");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.await.unwrap();
    assert!(!before.is_empty() && acked.lock().unwrap().len() > before.len(), "writes went on around the backup");

    // The online backup restores into an empty database with everything acknowledged before it.
    let target = empty_target(&db, dir.path(), "online").await;
    let out = ketacare(&target, &["restore", "--from", online.to_str().unwrap()]);
    assert!(out.status.success(), "restore: {}", text(&out));
    assert!(text(&out).contains("audit trail intact"), "{}", text(&out));
    let restored = dump(&target).await;
    let patients: std::collections::HashSet<String> =
        restored.iter().find(|(t, _)| t == "patients").map(|(_, rows)| rows.iter().map(|r| r.to_owned()).collect()).unwrap();
    for id in &before {
        assert!(patients.iter().any(|row| row.contains(id.as_str())), "patient {id}, acknowledged before the backup, is in it");
    }
    drop_target(&target).await;

    // Quiet: the server stops; a backup now restores to an exact copy.
    server.kill().unwrap();
    server.wait().unwrap();
    let quiet = dir.path().join("quiet.backup");
    let out = ketacare(&db.url, &["backup", "--to", quiet.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let out = ketacare(&db.url, &["backup", "--to", quiet.to_str().unwrap()]);
    assert!(!out.status.success() && text(&out).contains("already exists"), "a backup never overwrites: {}", text(&out));
    let target = empty_target(&db, dir.path(), "quiet").await;
    let out = ketacare(&target, &["restore", "--from", quiet.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let (source, copy) = (dump(&db.url).await, dump(&target).await);
    assert_eq!(source.iter().map(|(t, _)| t).collect::<Vec<_>>(), copy.iter().map(|(t, _)| t).collect::<Vec<_>>(), "the same tables");
    let mut rows = 0;
    for ((t, a), (_, b)) in source.iter().zip(&copy) {
        assert_eq!(a.len(), b.len(), "{t}: row count");
        assert!(a == b, "{t}: every row equal");
        rows += a.len();
    }
    assert!(rows > 300, "a real clinic's worth of rows compared: {rows}");
    eprintln!("{}: restored copy equal to the source in {} tables, {rows} rows", db.backend(), source.len());

    // Refusals: a target that is not empty, a file that is not a backup.
    let out = ketacare(&target, &["restore", "--from", quiet.to_str().unwrap()]);
    assert!(!out.status.success(), "restore into a database that exists is refused: {}", text(&out));
    let junk = dir.path().join("junk.backup");
    std::fs::write(&junk, "not a backup").unwrap();
    let fresh = empty_target(&db, dir.path(), "junk").await;
    let out = ketacare(&fresh, &["restore", "--from", junk.to_str().unwrap()]);
    assert!(!out.status.success(), "junk is refused: {}", text(&out));
    if db.backend() == "sqlite" {
        // A log left beside the target would be replayed into the restored file: refused.
        let path = fresh.strip_prefix("sqlite://").unwrap();
        std::fs::create_dir_all(Path::new(path).parent().unwrap()).unwrap();
        std::fs::write(format!("{path}-wal"), b"old log").unwrap();
        let out = ketacare(&fresh, &["restore", "--from", quiet.to_str().unwrap()]);
        assert!(!out.status.success() && text(&out).contains("-wal already exists"), "{}", text(&out));
        assert!(!Path::new(path).exists(), "nothing restored");
    }
    drop_target(&target).await;
    drop_target(&fresh).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_and_restore_on_sqlite() {
    scenario(ketacare_db_tests::fresh_sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_and_restore_on_postgres() {
    let Some(db) = ketacare_db_tests::fresh_postgres().await else { return };
    scenario(db).await;
}
