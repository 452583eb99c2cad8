//! TOTP secrets at rest (`mfa_secret_key`), on both backends: a secret enrolled on a server
//! without the key is stored plain; the first start with the key seals it (audited), and the
//! person still signs in with their code; secrets enrolled afterwards, and the pending secret of
//! an enrolment, are sealed from the start; a start without the key, or with another key,
//! is refused with the setting named, since no code could be checked.

use chrono::TimeZone;
use ketacare::{Config, Server};
use ketacare_app::{Clock, FixedClock, NewUserInput};
use ketacare_domain::ids::UserId;
use ketacare_domain::mfa::TotpSecret;
use serde_json::{json, Value};
use std::sync::Arc;

const PASSWORD: &str = "correct horse battery staple 42";
const KEY: &str = "5f3c9a0e7d2b4c6a8e1f0a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f";

async fn start(url: &str, key: &str, clock: &Arc<FixedClock>) -> anyhow::Result<Server> {
    let config = Config {
        database_url: url.to_owned(),
        listen: "127.0.0.1:0".into(),
        secure_cookies: false,
        mfa_secret_key: key.to_owned(),
        ..Config::default()
    };
    let c: Arc<dyn Clock> = clock.clone();
    Server::start(&config, Some(c)).await
}

async fn post(server: &Server, path: &str, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new().post(format!("http://{}{path}", server.addr)).json(&body).send().await.expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn code(clock: &FixedClock, secret: &str) -> String {
    TotpSecret::parse_base32(secret).expect("base32").code_at(clock.now().timestamp())
}

/// Enrols `username` at its first sign-in; returns the secret shown.
async fn enrol(server: &Server, clock: &FixedClock, username: &str) -> String {
    let (s, b) = post(server, "/api/login", json!({"username": username, "password": PASSWORD})).await;
    assert_eq!((s, b["second_step"].as_str()), (202, Some("enrol")), "{b}");
    let secret = b["secret"].as_str().expect("secret").to_owned();
    let (s, b) = post(server, "/api/login/code", json!({"challenge": b["challenge"], "code": code(clock, &secret)})).await;
    assert_eq!(s, 200, "the first code enrols: {b}");
    secret
}

/// Signs in with password and code (a step later than any used before).
async fn sign_in(server: &Server, clock: &FixedClock, username: &str, secret: &str) {
    clock.advance(chrono::Duration::seconds(30));
    let (s, b) = post(server, "/api/login", json!({"username": username, "password": PASSWORD})).await;
    assert_eq!((s, b["second_step"].as_str()), (202, Some("code")), "{b}");
    let (s, b) = post(server, "/api/login/code", json!({"challenge": b["challenge"], "code": code(clock, secret)})).await;
    assert_eq!(s, 200, "signed in with the code: {b}");
}

async fn prescriber(server: &Server, username: &str) -> UserId {
    let input =
        NewUserInput { username: username.into(), display_name: username.into(), role: "prescriber".into(), password: PASSWORD.into() };
    server.app.create_user_as_system(&input).await.expect("create").id
}

async fn stored(server: &Server, user: UserId) -> String {
    server.app.store().get_totp(user).await.expect("read").expect("enrolled").secret
}

async fn secrets_are_sealed_at_rest(url: &str) {
    let clock = Arc::new(FixedClock::new(chrono::Utc.with_ymd_and_hms(2026, 12, 7, 9, 0, 0).unwrap()));
    // Without the key: stored plain.
    let server = start(url, "", &clock).await.expect("starts without a key");
    let pia = prescriber(&server, "pia.prescriber").await;
    let pia_secret = enrol(&server, &clock, "pia.prescriber").await;
    assert_eq!(stored(&server, pia).await, pia_secret, "no key: plain");
    server.stop().await;

    // The first start with the key seals it; the code still works; on SQLite no copy of the
    // plain secret is left in the files (freed content zeroed, the log emptied).
    let server = start(url, KEY, &clock).await.expect("starts with the key");
    if let Some(path) = url.strip_prefix("sqlite://") {
        for file in [path.to_owned(), format!("{path}-wal")] {
            let bytes = std::fs::read(&file).unwrap_or_default();
            assert!(!bytes.windows(pia_secret.len()).any(|w| w == pia_secret.as_bytes()), "the plain secret is still in {file}");
        }
    }
    let sealed = stored(&server, pia).await;
    assert!(sealed.starts_with("kc1:") && !sealed.contains(&pia_secret), "{sealed}");
    let trail = server.app.store().search_audit(&ketacare_db_tests::fixtures::system_ctx(), &Default::default()).await.expect("audit");
    assert!(
        trail.iter().any(|e| e.event.detail.as_deref().is_some_and(|d| d.contains("1 TOTP secrets sealed with mfa_secret_key"))),
        "the sealing is audited"
    );
    sign_in(&server, &clock, "pia.prescriber", &pia_secret).await;
    // Enrolled under the key: sealed from the start, pending secret included.
    let paul = prescriber(&server, "paul.prescriber").await;
    let (s, b) = post(&server, "/api/login", json!({"username": "paul.prescriber", "password": PASSWORD})).await;
    assert_eq!(s, 202);
    let shown = b["secret"].as_str().expect("secret").to_owned();
    let challenge = b["challenge"].as_str().expect("challenge").to_owned();
    let (s, _) = post(&server, "/api/login/code", json!({"challenge": challenge, "code": code(&clock, &shown)})).await;
    assert_eq!(s, 200);
    let paul_sealed = stored(&server, paul).await;
    assert!(paul_sealed.starts_with("kc1:") && !paul_sealed.contains(&shown), "{paul_sealed}");
    server.stop().await;

    // A secret stored plain meanwhile (a server without the key, say) is not sealed by a start
    // with another key: every secret is opened before anything is written.
    let store = ketacare::open_store(url).await.expect("open");
    let ctx = ketacare_db_tests::fixtures::system_ctx();
    let late = TotpSecret::from_bytes([3; ketacare_domain::mfa::SECRET_BYTES]).to_base32();
    let olga = store
        .create_user(
            &ctx,
            ketacare_db::NewUser {
                id: UserId::from_uuid(uuid::Uuid::new_v4()),
                username: ketacare_domain::access::Username::parse("olga.prescriber").unwrap(),
                display_name: "Olga".into(),
                role: ketacare_domain::access::Role::Prescriber,
                password_hash: "$argon2id$test".into(),
                created_at: clock.now(),
            },
        )
        .await
        .expect("user")
        .id;
    store.enrol_totp(&ctx, olga, &late, 1, &[]).await.expect("plain enrolment");
    store.close().await;
    // Without the key, or with another, no code could be checked: the start is refused,
    // naming the account and the way out.
    let e = format!("{:#}", start(url, "", &clock).await.err().expect("refused without the key"));
    assert!(e.contains("mfa_secret_key is not set") && e.contains("reset-mfa --username"), "{e}");
    let other = "0".repeat(64);
    let e = format!("{:#}", start(url, &other, &clock).await.err().expect("refused with another key"));
    assert!(e.contains("mfa_secret_key does not open") && !e.contains("internal error"), "{e}");
    let store = ketacare::open_store(url).await.expect("open");
    assert_eq!(store.get_totp(olga).await.unwrap().expect("enrolled").secret, late, "nothing was sealed with the wrong key");
    store.close().await;
    // With the key again, everyone signs in.
    let server = start(url, KEY, &clock).await.expect("starts with the key");
    sign_in(&server, &clock, "pia.prescriber", &pia_secret).await;
    sign_in(&server, &clock, "paul.prescriber", &shown).await;
    assert!(stored(&server, olga).await.starts_with("kc1:"), "sealed with the right key");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totp_secrets_are_sealed_at_rest_on_sqlite() {
    let db = ketacare_db_tests::fresh_sqlite().await;
    let url = db.url.clone();
    db.store().close().await;
    secrets_are_sealed_at_rest(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totp_secrets_are_sealed_at_rest_on_postgres() {
    let Some(db) = ketacare_db_tests::fresh_postgres().await else { return };
    let url = db.url.clone();
    db.store().close().await;
    secrets_are_sealed_at_rest(&url).await;
}

#[test]
fn a_malformed_key_is_refused_by_its_setting() {
    let config = Config { mfa_secret_key: "abc".into(), ..Config::default() };
    let e = config.validate().unwrap_err().to_string();
    assert!(e.contains("mfa_secret_key") && e.contains("64 hexadecimal digits"), "{e}");
    let both = Config { mfa_secret_key: KEY.into(), mfa_secret_key_file: "/etc/ketacare/mfa.key".into(), ..Config::default() };
    assert!(both.validate().unwrap_err().to_string().contains("not both"));
}
