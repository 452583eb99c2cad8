//! Durability under crashes: `ketacare serve` is killed with SIGKILL at a random moment while
//! four clients write patients, weights and heights through the API, then started again, many
//! times over (`KETACARE_CRASH_CYCLES`, default 200 on SQLite and 50 on PostgreSQL). After
//! every restart, and once more at the end, every write the server acknowledged must be there,
//! the database must pass its own consistency checks, and the audit trail's chain must verify.
//!
//! Negative control: the same checker, told to trust a write as soon as its request was sent
//! (what a server that answered before committing would amount to), must find writes missing;
//! otherwise the kills never hit a write in flight and the test proves nothing.

#![cfg(unix)]

use ketacare::{build_app, open_store, Config};
use ketacare_app::{NewUserInput, SystemClock};
use ketacare_db_tests::TestDb;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PASSWORD: &str = "violet lantern harbour 2026";
const WRITERS: usize = 4;

/// A write and whether the server acknowledged it.
#[derive(Clone, Debug)]
enum Write {
    Patient { id: String },
    Record { id: String },
}

#[derive(Default)]
struct Ledger {
    /// Acknowledged by the server (2xx received).
    acked: Vec<Write>,
    /// Requests sent whose answer never came (the server died first): their patient MRNs.
    in_flight_mrns: Vec<String>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn spawn_server(url: &str, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_ketacare"))
        .arg("serve")
        .env_remove("KETACARE_CONFIG")
        // Not a setting of the server: its configuration refuses unknown KETACARE_* variables.
        .env_remove("KETACARE_CRASH_CYCLES")
        .env("KETACARE_DATABASE_URL", url)
        .env("KETACARE_LISTEN", format!("127.0.0.1:{port}"))
        .env("KETACARE_SECURE_COOKIES", "false")
        .env("KETACARE_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start ketacare serve")
}

async fn wait_ready(c: &reqwest::Client, base: &str) {
    let start = Instant::now();
    loop {
        if let Ok(r) = c.get(format!("{base}/health")).send().await {
            if r.status().is_success() {
                return;
            }
        }
        assert!(start.elapsed() < Duration::from_secs(60), "the server did not come up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One writer: patients, each with a weight and a height, until the server dies.
async fn writer(c: reqwest::Client, base: String, token: String, prefix: String, ledger: Arc<Mutex<Ledger>>) {
    let auth = format!("Bearer {token}");
    let mut n = 0u32;
    loop {
        n += 1;
        let mrn = format!("{prefix}-{n}");
        let body = json!({"mrn": mrn, "family_name": "Crashtest", "given_name": "Writer", "date_of_birth": "1980-05-05", "sex": "female"});
        let r = c.post(format!("{base}/api/patients")).header("authorization", &auth).json(&body).send().await;
        let id = match r {
            Ok(r) if r.status().as_u16() == 201 => {
                let v: Value = match r.json().await {
                    Ok(v) => v,
                    // The answer was cut off: not acknowledged.
                    Err(_) => return ledger.lock().unwrap().in_flight_mrns.push(mrn),
                };
                let id = v["id"].as_str().expect("patient id").to_owned();
                ledger.lock().unwrap().acked.push(Write::Patient { id: id.clone() });
                id
            }
            Ok(r) => panic!("registration refused with {}: {}", r.status(), r.text().await.unwrap_or_default()),
            Err(_) => return ledger.lock().unwrap().in_flight_mrns.push(mrn),
        };
        for (path, value) in [("weights", 72.5), ("heights", 168.0)] {
            let r = c
                .post(format!("{base}/api/patients/{id}/{path}"))
                .header("authorization", &auth)
                .json(&json!({"value": value}))
                .send()
                .await;
            match r {
                Ok(r) if r.status().as_u16() == 201 => match r.json::<Value>().await {
                    Ok(v) => {
                        ledger.lock().unwrap().acked.push(Write::Record { id: v["record_id"].as_str().expect("record id").to_owned() })
                    }
                    Err(_) => return,
                },
                Ok(r) => panic!("{path} refused with {}: {}", r.status(), r.text().await.unwrap_or_default()),
                Err(_) => return,
            }
        }
    }
}

/// Every acknowledged write is readable; returns how many were checked.
async fn check_acked(c: &reqwest::Client, base: &str, token: &str, acked: &[Write]) -> usize {
    let auth = format!("Bearer {token}");
    for w in acked {
        let path = match w {
            Write::Patient { id } => format!("/api/patients/{id}"),
            Write::Record { id } => format!("/api/records/{id}"),
        };
        let r = c.get(format!("{base}{path}")).header("authorization", &auth).send().await.expect("read back");
        assert_eq!(r.status().as_u16(), 200, "acknowledged write {w:?} is missing after a crash");
    }
    acked.len()
}

/// The negative control's view: MRNs of writes sent but never answered that are missing now.
async fn missing_in_flight(c: &reqwest::Client, base: &str, token: &str, mrns: &[String]) -> usize {
    let auth = format!("Bearer {token}");
    let mut missing = 0;
    for m in mrns {
        let r =
            c.get(format!("{base}/api/patients")).query(&[("q", m.as_str())]).header("authorization", &auth).send().await.expect("search");
        let found: Vec<Value> = r.json().await.expect("search results");
        if !found.iter().any(|p| p["demographics"]["mrn"] == m.as_str()) {
            missing += 1;
        }
    }
    missing
}

/// SQLite's own integrity and foreign-key checks (PostgreSQL is not the process killed here).
async fn consistent(db: &TestDb) {
    if db.backend() != "sqlite" {
        return;
    }
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&db.url).await.expect("open");
    let ok: String = sqlx::query_scalar("PRAGMA integrity_check").fetch_one(&mut conn).await.expect("integrity_check");
    assert_eq!(ok, "ok", "SQLite integrity check after a crash");
    let fk: Vec<(String,)> = sqlx::query_as("PRAGMA foreign_key_check").fetch_all(&mut conn).await.unwrap_or_default();
    assert!(fk.is_empty(), "foreign keys after a crash: {fk:?}");
}

async fn crash_cycles(db: TestDb, default_cycles: u32) {
    let cycles: u32 = std::env::var("KETACARE_CRASH_CYCLES").ok().and_then(|v| v.parse().ok()).unwrap_or(default_cycles);
    // Accounts and a token, written before the first start.
    let token = {
        let store = open_store(&db.url).await.expect("open");
        store.migrate().await.expect("migrate");
        let config = Config { database_url: db.url.clone(), ..Config::default() };
        let app = build_app(store, &config, Arc::new(SystemClock)).expect("app");
        let admin = app
            .create_user_as_system(&NewUserInput {
                username: "ada.admin".into(),
                display_name: "Ada Admin".into(),
                role: "admin".into(),
                password: PASSWORD.into(),
            })
            .await
            .expect("admin");
        let nurse = app
            .create_user_as_system(&NewUserInput {
                username: "nina.nurse".into(),
                display_name: "Nina Nurse".into(),
                role: "nurse".into(),
                password: PASSWORD.into(),
            })
            .await
            .expect("nurse");
        let (secret, _) = app.issue_api_token(&app.system_principal(admin), &nurse.id.to_string(), "crash test").await.expect("token");
        app.store().close().await;
        secret
    };
    let c = reqwest::Client::builder().pool_max_idle_per_host(0).timeout(Duration::from_secs(30)).build().unwrap();
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x6b65_7461);
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut verified = 0usize;
    for cycle in 0..cycles {
        let mut child = spawn_server(&db.url, port);
        wait_ready(&c, &base).await;
        // What survived the previous kill.
        let acked: Vec<Write> = ledger.lock().unwrap().acked.clone();
        check_acked(&c, &base, &token, &acked[verified..]).await;
        verified = acked.len();
        let tasks: Vec<_> = (0..WRITERS)
            .map(|w| tokio::spawn(writer(c.clone(), base.clone(), token.clone(), format!("CR{cycle}W{w}"), ledger.clone())))
            .collect();
        tokio::time::sleep(Duration::from_millis(rng.gen_range(30..400))).await;
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
        for t in tasks {
            t.await.expect("writer");
        }
    }
    // Last restart: everything acknowledged, the database consistent, the audit chain intact.
    consistent(&db).await;
    let mut child = spawn_server(&db.url, port);
    wait_ready(&c, &base).await;
    let (acked, in_flight) = {
        let l = ledger.lock().unwrap();
        (l.acked.clone(), l.in_flight_mrns.clone())
    };
    let checked = check_acked(&c, &base, &token, &acked).await;
    let lost_if_trusted_on_send = missing_in_flight(&c, &base, &token, &in_flight).await;
    child.kill().expect("stop");
    child.wait().expect("reaped");
    let verify = Command::new(env!("CARGO_BIN_EXE_ketacare"))
        .args(["audit", "verify", "--seal", "--json"])
        .env_remove("KETACARE_CONFIG")
        .env_remove("KETACARE_CRASH_CYCLES")
        .env("KETACARE_DATABASE_URL", &db.url)
        .output()
        .expect("audit verify");
    let report: Value = serde_json::from_slice(&verify.stdout).expect("audit report");
    assert_eq!(report["intact"], true, "the audit chain after {cycles} crashes: {report}");
    let patients = acked.iter().filter(|w| matches!(w, Write::Patient { .. })).count();
    eprintln!(
        "{}: {cycles} SIGKILL cycles; {checked} acknowledged writes ({patients} patients, {} weights and heights), 0 lost; {} writes in flight at a kill, of which {lost_if_trusted_on_send} never committed; audit entries checked {}",
        db.backend(),
        checked - patients,
        in_flight.len(),
        report["entries_checked"]
    );
    assert!(patients >= cycles as usize, "the writers made progress: {patients} patients in {cycles} cycles");
    let distinct: HashSet<String> = in_flight.iter().cloned().collect();
    assert_eq!(distinct.len(), in_flight.len());
    assert!(
        lost_if_trusted_on_send > 0,
        "negative control: a checker that trusts a write when it is sent must find losses (kills hit writes in flight)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill_on_sqlite() {
    crash_cycles(ketacare_db_tests::fresh_sqlite().await, 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill_on_postgres() {
    let Some(db) = ketacare_db_tests::fresh_postgres().await else { return };
    crash_cycles(db, 50).await;
}
