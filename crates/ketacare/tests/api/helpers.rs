//! The test harness: a real Ketacare server on port 0 over a fresh database (SQLite, or
//! PostgreSQL when `KETACARE_TEST_POSTGRES_URL` is set), a movable clock, one account per role,
//! and HTTP clients that handle the session cookie by hand (so the tests see exactly what a
//! browser would be sent).

use chrono::{TimeZone, Utc};
use ketacare::{Config, Server};
use ketacare_app::{App, Clock, FixedClock, NewUserInput};
use ketacare_db_tests::TestDb;
use ketacare_domain::access::Role;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// Password of every test account: at least 12 characters, contains no username, not common.
pub const PASSWORD: &str = "violet lantern harbour 2026";

/// Name of the session cookie when `secure_cookies` is off.
pub const COOKIE: &str = "ketacare_session";

/// Which database the server runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each listed `async fn name(app: &TestApp)` on SQLite and, when configured, PostgreSQL,
/// each on its own fresh database and server.
macro_rules! http_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(app) = $crate::helpers::spawn_app($crate::helpers::Backend::Sqlite).await else {
                        panic!("SQLite is always available")
                    };
                    super::$name(&app).await;
                    app.stop().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(app) = $crate::helpers::spawn_app($crate::helpers::Backend::Postgres).await else { return };
                    super::$name(&app).await;
                    app.stop().await;
                }
            )*
        }
    };
}
pub(crate) use http_tests;

/// One staff account created for the test.
#[derive(Clone, Debug)]
pub struct TestUser {
    pub id: String,
    pub username: String,
    pub role: Role,
}

/// A running server with its database, clock and accounts.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The clock the server reads; tests move it forward.
    pub clock: Arc<FixedClock>,
    /// The application behind the server (for counting rows).
    pub app: Arc<App>,
    /// One account per role, in `Role::ALL` order.
    pub users: Vec<TestUser>,
    /// The database backend.
    pub backend: Backend,
    /// The MLLP listener for bedside monitors.
    pub mllp: std::net::SocketAddr,
    server: Option<Server>,
    _db: TestDb,
}

/// Starts a server on a fresh database; `None` when PostgreSQL is asked for but not configured.
pub async fn spawn_app(backend: Backend) -> Option<TestApp> {
    let db = match backend {
        Backend::Sqlite => ketacare_db_tests::fresh_sqlite().await,
        Backend::Postgres => ketacare_db_tests::fresh_postgres().await?,
    };
    let config = Config {
        database_url: db.url.clone(),
        listen: "127.0.0.1:0".into(),
        secure_cookies: false,
        mllp_listen: "127.0.0.1:0".into(),
        ..Config::default()
    };
    let start = Utc.with_ymd_and_hms(2026, 11, 26, 9, 0, 0).single().expect("valid start time");
    let clock = Arc::new(FixedClock::new(start));
    let dyn_clock: Arc<dyn Clock> = clock.clone();
    let server = Server::start(&config, Some(dyn_clock)).await.expect("server starts");
    let base = format!("http://{}", server.addr);
    let app = server.app.clone();
    let mllp = server.mllp_addr.expect("the MLLP listener starts");

    // Real Argon2 hashes; the application hashes at most two at a time.
    let create = |role: Role, username: &'static str, display: &'static str| {
        let app = app.clone();
        async move {
            let input = NewUserInput {
                username: username.into(),
                display_name: display.into(),
                role: role.code().into(),
                password: PASSWORD.into(),
            };
            let u = app.create_user_as_system(&input).await.unwrap_or_else(|e| panic!("create {username}: {e}"));
            TestUser { id: u.id.to_string(), username: u.username.as_str().to_owned(), role }
        }
    };
    let (a, d, p, n, r) = tokio::join!(
        create(Role::Admin, "ada.admin", "Ada Admin"),
        create(Role::MedicalDirector, "mira.director", "Dr Mira Director"),
        create(Role::Prescriber, "pia.prescriber", "Dr Pia Prescriber"),
        create(Role::Nurse, "nina.nurse", "Nina Nurse, RN"),
        create(Role::Researcher, "rex.researcher", "Dr Rex Researcher"),
    );
    // Most tests sign in many times within one 30-second step of the fixed clock, which a
    // one-use code would refuse; two-step sign-in has its own tests (`mfa.rs`), which put the
    // clinic default back.
    let director = app.store().get_user(ketacare_domain::ids::UserId::parse(&d.id).expect("id")).await.expect("read").expect("director");
    app.set_mfa_policy_as_system(&director, "none", "test harness: accounts sign in with a password only").await.expect("policy");
    Some(TestApp { base, clock, app, users: vec![a, d, p, n, r], backend, mllp, server: Some(server), _db: db })
}

/// A collected HTTP response.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
}

impl Resp {
    /// The body as JSON (panics with the body when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("body is not JSON ({e}): status {} body {}", self.status, self.text))
    }

    /// The `Location` header.
    pub fn location(&self) -> String {
        self.headers.get("location").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned()
    }

    /// A header as text (empty when absent).
    pub fn header(&self, name: &str) -> String {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned()
    }

    /// Every `Set-Cookie` header.
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).map(str::to_owned).collect()
    }

    /// Asserts the status, showing the body on failure.
    #[track_caller]
    pub fn assert_status(&self, expected: u16, what: &str) -> &Self {
        assert_eq!(self.status.as_u16(), expected, "{what}: unexpected status; body: {}", self.text);
        self
    }

    /// The field names of a validation problem.
    pub fn problem_fields(&self) -> Vec<String> {
        self.json()["fields"]
            .as_array()
            .map(|a| a.iter().filter_map(|f| f["field"].as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    }

    /// The message of the validation problem on `field`.
    pub fn field_message(&self, field: &str) -> String {
        self.json()["fields"]
            .as_array()
            .and_then(|a| a.iter().find(|f| f["field"] == field))
            .and_then(|f| f["message"].as_str())
            .unwrap_or_else(|| panic!("no problem on field {field}: {}", self.text))
            .to_owned()
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("HTTP client")
}

/// An HTTP caller: anonymous, a login session (cookie) or an API token (bearer).
#[derive(Clone)]
pub struct Session {
    client: reqwest::Client,
    base: String,
    /// `ketacare_session=<token>` as sent in the `Cookie` header.
    pub cookie: Option<String>,
    /// The bearer secret.
    pub bearer: Option<String>,
    /// The full `Set-Cookie` header of the login response.
    pub set_cookie: String,
}

/// `name="_csrf" value="..."` from a rendered page.
pub fn extract_csrf(html: &str) -> Option<String> {
    let marker = "name=\"_csrf\" value=\"";
    let start = html.find(marker)? + marker.len();
    let end = html[start..].find('"')?;
    Some(html[start..start + end].to_owned())
}

impl Session {
    /// A request with this caller's credentials.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let mut rb = self.client.request(method, format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            rb = rb.header("cookie", c);
        }
        if let Some(b) = &self.bearer {
            rb = rb.header("authorization", format!("Bearer {b}"));
        }
        rb
    }

    /// Sends and collects.
    pub async fn send(&self, rb: reqwest::RequestBuilder) -> Resp {
        let r = rb.send().await.expect("request reaches the server");
        let status = r.status();
        let headers = r.headers().clone();
        let text = r.text().await.expect("response body");
        Resp { status, headers, text }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send(self.request(Method::GET, path)).await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Resp {
        self.send(self.request(Method::POST, path).json(body)).await
    }

    /// POST with no body at all.
    pub async fn post_empty(&self, path: &str) -> Resp {
        self.send(self.request(Method::POST, path)).await
    }

    /// The anti-forgery token from the form on `page`.
    pub async fn csrf(&self, page: &str) -> String {
        let r = self.get(page).await;
        r.assert_status(200, &format!("GET {page}"));
        extract_csrf(&r.text).unwrap_or_else(|| panic!("no _csrf field on {page}"))
    }

    /// Posts a urlencoded form as is (repeated keys allowed).
    pub async fn post_form_raw(&self, action: &str, fields: &[(&str, &str)], headers: &[(&str, &str)]) -> Resp {
        let mut rb = self.request(Method::POST, action).form(fields);
        for (k, v) in headers {
            rb = rb.header(HeaderName::from_bytes(k.as_bytes()).expect("header name"), HeaderValue::from_str(v).expect("header value"));
        }
        self.send(rb).await
    }

    /// Fetches `page`, takes its `_csrf` value and posts `fields` with it to `action`.
    pub async fn post_form(&self, page: &str, action: &str, fields: &[(&str, &str)]) -> Resp {
        let token = self.csrf(page).await;
        let mut all: Vec<(&str, &str)> = vec![("_csrf", token.as_str())];
        all.extend_from_slice(fields);
        self.post_form_raw(action, &all, &[]).await
    }
}

impl TestApp {
    /// The account of `role`.
    pub fn user(&self, role: Role) -> &TestUser {
        self.users.iter().find(|u| u.role == role).expect("one user per role")
    }

    /// A caller without credentials.
    pub fn anon(&self) -> Session {
        Session { client: client(), base: self.base.clone(), cookie: None, bearer: None, set_cookie: String::new() }
    }

    /// A caller with an API bearer token.
    pub fn with_bearer(&self, secret: &str) -> Session {
        Session { bearer: Some(secret.to_owned()), ..self.anon() }
    }

    /// A caller with an arbitrary session cookie value.
    pub fn with_cookie(&self, token: &str) -> Session {
        Session { cookie: Some(format!("{COOKIE}={token}")), ..self.anon() }
    }

    /// `POST /api/login` and collect the response.
    pub async fn try_login(&self, username: &str, password: &str) -> Resp {
        self.anon().post_json("/api/login", &json!({"username": username, "password": password})).await
    }

    /// Logs in through the API and returns a caller carrying the session cookie.
    pub async fn login_api(&self, username: &str) -> Session {
        let r = self.try_login(username, PASSWORD).await;
        r.assert_status(200, &format!("login {username}"));
        assert_eq!(r.json()["username"], username, "login answers with the account");
        let set_cookie = r
            .set_cookies()
            .into_iter()
            .find(|c| c.starts_with(&format!("{COOKIE}=")))
            .unwrap_or_else(|| panic!("login sets {COOKIE}: {:?}", r.headers));
        let pair = set_cookie.split(';').next().unwrap_or("").trim().to_owned();
        assert!(pair.len() > COOKIE.len() + 20, "session token is long: {pair}");
        Session { cookie: Some(pair), set_cookie, ..self.anon() }
    }

    /// Logs in the account of `role`.
    pub async fn login(&self, role: Role) -> Session {
        let name = self.user(role).username.clone();
        self.login_api(&name).await
    }

    /// The database URL (a second server on the same database joins it).
    pub fn database_url(&self) -> &str {
        &self._db.url
    }

    /// Moves the server's clock forward.
    pub fn advance_minutes(&self, m: i64) {
        self.clock.advance(chrono::Duration::minutes(m));
    }

    /// Current (non-voided) patients in the database.
    pub async fn patient_count(&self) -> i64 {
        self.app.store().count_patients().await.expect("count patients")
    }

    /// Stops the server and closes its database.
    pub async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.stop().await;
        }
    }
}

/// A valid registration body.
pub fn patient_body(mrn: &str, family: &str, given: &str, dob: &str, sex: &str) -> Value {
    json!({"mrn": mrn, "family_name": family, "given_name": given, "date_of_birth": dob, "sex": sex})
}

/// Registers a patient through the API and returns its id.
pub async fn register(s: &Session, mrn: &str, family: &str, given: &str, dob: &str, sex: &str) -> String {
    let r = s.post_json("/api/patients", &patient_body(mrn, family, given, dob, sex)).await;
    r.assert_status(201, "register patient");
    r.json()["id"].as_str().expect("patient id").to_owned()
}

/// The chart of a patient (asserting 200).
pub async fn chart(s: &Session, id: &str) -> Value {
    let r = s.get(&format!("/api/patients/{id}")).await;
    r.assert_status(200, "GET chart");
    r.json()
}

/// A fresh random UUID in canonical text form.
pub fn random_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}
