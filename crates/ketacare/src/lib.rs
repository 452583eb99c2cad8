//! Wiring of the Ketacare server: configuration, opening the store, building the application
//! and serving the router. The binary (`main.rs`) adds the command line; tests call
//! [`Server::start`] with a fresh database on port 0, exactly as production does.

pub mod monitors;
pub mod tls;

use anyhow::Context;
use ketacare_app::{App, Clock, Settings, SystemClock};
use ketacare_db::Store;
use ketacare_knowledge::Knowledge;
use ketacare_web::{AppState, WebConfig};
use serde::Deserialize;
use std::net::SocketAddr;
use std::sync::Arc;

/// Configuration, from a TOML file and `KETACARE_*` environment variables (environment wins).
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `sqlite://path/to/ketacare.db` or `postgres://user@host/db`.
    pub database_url: String,
    /// Listen address.
    pub listen: String,
    /// Mark cookies Secure with the `__Host-` prefix; keep on whenever served over HTTPS.
    pub secure_cookies: bool,
    /// Minutes of inactivity after which a session ends.
    pub session_idle_minutes: i64,
    /// Hours after which a session ends regardless of activity.
    pub session_absolute_hours: i64,
    /// Secret key for research pseudonyms (set a long random value in production).
    pub pseudonym_key: String,
    /// Address of the MLLP listener for bedside monitors (HL7 v2 ORU^R01), e.g.
    /// `127.0.0.1:2575`; empty: off. MLLP has no authentication: bind it to the monitor
    /// network only.
    pub mllp_listen: String,
    /// Failed logins in a row after which an account locks (3–100).
    pub login_max_failures: u32,
    /// Minutes a locked account stays locked unless an administrator unlocks it (1–1440).
    pub login_lock_minutes: i64,
    /// Failed logins from one address within `login_address_window_minutes` after which that
    /// address is refused for a while (10–10000). Behind a reverse proxy every login comes from
    /// the proxy's address: raise it to cover the whole clinic.
    pub login_address_max_failures: u32,
    /// Window of the per-address limit, minutes (1–1440).
    pub login_address_window_minutes: i64,
    /// The Ed25519 secret key (64 hex digits) that signs checkpoints of the audit chain;
    /// usually set as `KETACARE_AUDIT_SIGNING_KEY`. Empty: no checkpoints (the chain is kept).
    pub audit_signing_key: String,
    /// A file holding that key instead (64 hex digits); readable by the server only.
    pub audit_signing_key_file: String,
    /// Minutes between signed checkpoints of the audit chain (1–1440).
    pub audit_checkpoint_minutes: i64,
    /// PEM certificate chain for HTTPS; with `tls_key_file`, the server speaks TLS itself.
    /// Empty: plain HTTP (for loopback, or behind a TLS-terminating proxy).
    pub tls_cert_file: String,
    /// PEM private key of that certificate.
    pub tls_key_file: String,
    /// The 256-bit key (64 hex digits) that encrypts the SQLite database (SQLCipher); usually
    /// set as `KETACARE_DATABASE_KEY`. Empty: not encrypted. SQLite only.
    pub database_key: String,
    /// A file holding that key instead; readable by the server only.
    pub database_key_file: String,
    /// The 256-bit key (64 hex digits) that seals the TOTP secrets of two-step sign-in in the
    /// database; usually set as `KETACARE_MFA_SECRET_KEY`. Empty: they are stored plain. Once
    /// set, keep it: the sealed secrets open with it only.
    pub mfa_secret_key: String,
    /// A file holding that key instead; readable by the server only.
    pub mfa_secret_key_file: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            database_url: "sqlite://ketacare.db".into(),
            listen: "127.0.0.1:8080".into(),
            secure_cookies: true,
            session_idle_minutes: 15,
            session_absolute_hours: 12,
            pseudonym_key: "change-me".into(),
            mllp_listen: String::new(),
            login_max_failures: 10,
            login_lock_minutes: 15,
            login_address_max_failures: 50,
            login_address_window_minutes: 15,
            audit_signing_key: String::new(),
            audit_signing_key_file: String::new(),
            audit_checkpoint_minutes: 10,
            tls_cert_file: String::new(),
            tls_key_file: String::new(),
            database_key: String::new(),
            database_key_file: String::new(),
            mfa_secret_key: String::new(),
            mfa_secret_key_file: String::new(),
        }
    }
}

impl std::fmt::Debug for Config {
    /// Redacts credentials in the database URL and the pseudonym key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("database_url", &redact_url(&self.database_url))
            .field("listen", &self.listen)
            .field("secure_cookies", &self.secure_cookies)
            .field("session_idle_minutes", &self.session_idle_minutes)
            .field("session_absolute_hours", &self.session_absolute_hours)
            .field("pseudonym_key", &"***")
            .field("mllp_listen", &self.mllp_listen)
            .field("login_max_failures", &self.login_max_failures)
            .field("login_lock_minutes", &self.login_lock_minutes)
            .field("login_address_max_failures", &self.login_address_max_failures)
            .field("login_address_window_minutes", &self.login_address_window_minutes)
            .field("audit_signing_key", &if self.audit_signing_key.is_empty() { "" } else { "***" })
            .field("audit_signing_key_file", &self.audit_signing_key_file)
            .field("audit_checkpoint_minutes", &self.audit_checkpoint_minutes)
            .field("tls_cert_file", &self.tls_cert_file)
            .field("tls_key_file", &self.tls_key_file)
            .field("database_key", &if self.database_key.is_empty() { "" } else { "***" })
            .field("database_key_file", &self.database_key_file)
            .field("mfa_secret_key", &if self.mfa_secret_key.is_empty() { "" } else { "***" })
            .field("mfa_secret_key_file", &self.mfa_secret_key_file)
            .finish()
    }
}

/// Hides the password in `scheme://user:password@host/...`.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}{}:***{}", &url[..s + 3], user, &url[at..])
        }
        _ => url.to_owned(),
    }
}

impl Config {
    /// Checks values that would make the server unsafe or unusable.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.database_url.starts_with("sqlite:")
                || self.database_url.starts_with("postgres://")
                || self.database_url.starts_with("postgresql://"),
            "database_url must start with sqlite:// or postgres:// (got {})",
            redact_url(&self.database_url)
        );
        anyhow::ensure!((1..=240).contains(&self.session_idle_minutes), "session_idle_minutes must be 1–240");
        anyhow::ensure!((1..=24).contains(&self.session_absolute_hours), "session_absolute_hours must be 1–24");
        anyhow::ensure!((3..=100).contains(&self.login_max_failures), "login_max_failures must be 3–100 (got {})", self.login_max_failures);
        anyhow::ensure!(
            (1..=1440).contains(&self.login_lock_minutes),
            "login_lock_minutes must be 1–1440 (got {})",
            self.login_lock_minutes
        );
        anyhow::ensure!(
            (10..=10_000).contains(&self.login_address_max_failures),
            "login_address_max_failures must be 10–10000 (got {})",
            self.login_address_max_failures
        );
        anyhow::ensure!(
            (1..=1440).contains(&self.login_address_window_minutes),
            "login_address_window_minutes must be 1–1440 (got {})",
            self.login_address_window_minutes
        );
        anyhow::ensure!(
            (1..=1440).contains(&self.audit_checkpoint_minutes),
            "audit_checkpoint_minutes must be 1–1440 (got {})",
            self.audit_checkpoint_minutes
        );
        anyhow::ensure!(
            self.audit_signing_key.is_empty() || self.audit_signing_key_file.is_empty(),
            "set audit_signing_key or audit_signing_key_file, not both"
        );
        self.audit_key()?;
        anyhow::ensure!(
            self.mfa_secret_key.is_empty() || self.mfa_secret_key_file.is_empty(),
            "set mfa_secret_key or mfa_secret_key_file, not both"
        );
        self.mfa_key()?;
        anyhow::ensure!(
            self.database_key.is_empty() || self.database_key_file.is_empty(),
            "set database_key or database_key_file, not both"
        );
        if self.database_key()?.is_some() {
            anyhow::ensure!(
                self.database_url.starts_with("sqlite:"),
                "database_key encrypts an SQLite database; for PostgreSQL use an encrypted volume (see the README)"
            );
        }
        anyhow::ensure!(
            self.tls_cert_file.is_empty() == self.tls_key_file.is_empty(),
            "set both tls_cert_file and tls_key_file for HTTPS, or neither"
        );
        self.listen
            .parse::<SocketAddr>()
            .with_context(|| format!("listen must be an address such as 127.0.0.1:8080 (got {})", self.listen))?;
        if !self.mllp_listen.is_empty() {
            self.mllp_listen
                .parse::<SocketAddr>()
                .with_context(|| format!("mllp_listen must be an address such as 127.0.0.1:2575, or empty (got {})", self.mllp_listen))?;
        }
        Ok(())
    }
}

/// A secret setting given either inline (`name`) or as a file (`name_file`, which wins): its
/// text and how to name its source in an error, or `None` when neither is set.
fn secret_setting(inline: &str, file: &str, name: &str) -> anyhow::Result<Option<(String, String)>> {
    if !file.is_empty() {
        let t = std::fs::read_to_string(file).with_context(|| format!("reading {name}_file {file}"))?;
        Ok(Some((t, format!("the file {file}"))))
    } else if !inline.is_empty() {
        Ok(Some((inline.to_owned(), name.to_owned())))
    } else {
        Ok(None)
    }
}

impl Config {
    /// The audit signing key from `audit_signing_key` or the file named by
    /// `audit_signing_key_file`, if either is set.
    pub fn audit_key(&self) -> anyhow::Result<Option<ketacare_app::audit_chain::AuditKey>> {
        let Some((text, what)) = secret_setting(&self.audit_signing_key, &self.audit_signing_key_file, "audit_signing_key")? else {
            return Ok(None);
        };
        ketacare_app::audit_chain::AuditKey::from_hex(&text).map(Some).map_err(|e| anyhow::anyhow!("{what} {e}"))
    }

    /// The key that seals TOTP secrets, from `mfa_secret_key` or the file named by
    /// `mfa_secret_key_file`, if either is set.
    pub fn mfa_key(&self) -> anyhow::Result<Option<ketacare_app::secret_box::MfaKey>> {
        let Some((text, what)) = secret_setting(&self.mfa_secret_key, &self.mfa_secret_key_file, "mfa_secret_key")? else {
            return Ok(None);
        };
        ketacare_app::secret_box::MfaKey::from_hex(&text).map(Some).map_err(|e| anyhow::anyhow!("{what} {e}"))
    }

    /// The SQLite database key from `database_key` or the file named by `database_key_file`,
    /// if either is set.
    pub fn database_key(&self) -> anyhow::Result<Option<DatabaseKey>> {
        let Some((text, what)) = secret_setting(&self.database_key, &self.database_key_file, "database_key")? else {
            return Ok(None);
        };
        DatabaseKey::parse(&text).map(Some).map_err(|e| anyhow::anyhow!("{what} {e}"))
    }

    /// Opens the configured store (with its database key), checking its durability settings.
    pub async fn open_store(&self) -> anyhow::Result<Arc<dyn Store>> {
        open_store_keyed(&self.database_url, self.database_key()?.as_ref()).await
    }
}

pub use ketacare_db_sqlite::DatabaseKey;

/// Opens the store named by the URL, checking its durability settings.
pub async fn open_store(url: &str) -> anyhow::Result<Arc<dyn Store>> {
    open_store_keyed(url, None).await
}

/// Opens the store named by the URL, an SQLite database with its SQLCipher key when given.
pub async fn open_store_keyed(url: &str, key: Option<&DatabaseKey>) -> anyhow::Result<Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        let s = ketacare_db_sqlite::SqliteStore::open_keyed(url, key).await.with_context(|| format!("opening SQLite database {url}"))?;
        Ok(Arc::new(s))
    } else {
        let s =
            ketacare_db_postgres::PgStore::open(url).await.with_context(|| format!("opening PostgreSQL database {}", redact_url(url)))?;
        report_database_link(url, &s).await;
        Ok(Arc::new(s))
    }
}

/// Says in the log how the connection to PostgreSQL travels, and warns when patient data could
/// cross a network unencrypted or reach a server whose certificate is not checked.
async fn report_database_link(url: &str, store: &ketacare_db_postgres::PgStore) {
    let Ok(policy) = ketacare_db_postgres::LinkPolicy::from_url(url) else { return };
    match store.transport().await {
        Ok(t) => tracing::info!(host = %policy.host, sslmode = policy.ssl_mode, transport = %t, "connected to PostgreSQL"),
        Err(e) => tracing::warn!(error = %e, "could not read the PostgreSQL connection's TLS state"),
    }
    if let Some(w) = policy.warning() {
        tracing::warn!("{w}");
    }
}

/// How the connection to a PostgreSQL database travels (for `check-config`).
#[derive(Debug)]
pub struct DatabaseLink {
    /// What the connection uses.
    pub transport: ketacare_db_postgres::Transport,
    /// The warning for a database on another machine reached without a verified certificate.
    pub warning: Option<String>,
}

/// Connects to the PostgreSQL database named by `url` and reads how the connection travels;
/// `None` for SQLite (a file on this machine).
pub async fn database_link(url: &str) -> anyhow::Result<Option<DatabaseLink>> {
    if url.starts_with("sqlite:") {
        return Ok(None);
    }
    let policy = ketacare_db_postgres::LinkPolicy::from_url(url)?;
    let store =
        ketacare_db_postgres::PgStore::open(url).await.with_context(|| format!("opening PostgreSQL database {}", redact_url(url)))?;
    let transport = store.transport().await;
    ketacare_db::Store::close(&store).await;
    Ok(Some(DatabaseLink { transport: transport?, warning: policy.warning() }))
}

/// Builds the application on a store.
pub fn build_app(store: Arc<dyn Store>, config: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<Arc<App>> {
    let knowledge = Knowledge::load().context("loading the clinical knowledge files")?;
    let settings = Settings {
        session_idle: chrono_minutes(config.session_idle_minutes),
        session_absolute: chrono_minutes(config.session_absolute_hours * 60),
        pseudonym_key: config.pseudonym_key.clone(),
        login: ketacare_domain::login::LoginProtection {
            max_failures: config.login_max_failures,
            lock_for: chrono_minutes(config.login_lock_minutes),
            address_max_failures: config.login_address_max_failures,
            address_window: chrono_minutes(config.login_address_window_minutes),
        },
        audit_key: config.audit_key()?,
        audit_checkpoint_every: chrono_minutes(config.audit_checkpoint_minutes),
        mfa_key: config.mfa_key()?,
    };
    Ok(Arc::new(App::new(store, clock, Arc::new(knowledge), settings)))
}

fn chrono_minutes(m: i64) -> chrono::Duration {
    chrono::Duration::minutes(m)
}

/// A running server.
pub struct Server {
    /// Bound address (port 0 resolves to the real port).
    pub addr: SocketAddr,
    /// The application (tests use it for seeding).
    pub app: Arc<App>,
    /// Bound address of the MLLP listener, when configured.
    pub mllp_addr: Option<SocketAddr>,
    shutdown: tokio::sync::watch::Sender<bool>,
    handle: tokio::task::JoinHandle<()>,
    background: Vec<tokio::task::JoinHandle<()>>,
}

/// Resolves when `rx` says stop.
async fn stopped(mut rx: tokio::sync::watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

impl Server {
    /// Opens the store, migrates, builds the app and starts serving.
    pub async fn start(config: &Config, clock: Option<Arc<dyn Clock>>) -> anyhow::Result<Self> {
        config.validate()?;
        let store = config.open_store().await?;
        store.migrate().await.context("applying database migrations")?;
        let app = build_app(store, config, clock.unwrap_or_else(|| Arc::new(SystemClock)))?;
        let sealed = app.seal_totp_secrets().await.map_err(|e| match e {
            ketacare_app::AppError::Internal(m) => anyhow::anyhow!("two-step sign-in secrets: {m}"),
            other => anyhow::Error::new(other).context("two-step sign-in secrets"),
        })?;
        if sealed > 0 {
            tracing::info!(sealed, "TOTP secrets stored plain are now sealed with mfa_secret_key");
        }
        Self::serve(app, config).await
    }

    /// Serves an already built application.
    pub async fn serve(app: Arc<App>, config: &Config) -> anyhow::Result<Self> {
        let state = AppState { app: app.clone(), config: WebConfig { secure_cookies: config.secure_cookies } };
        let router = ketacare_web::router(state);
        let tls =
            if config.tls_cert_file.is_empty() { None } else { Some(crate::tls::acceptor(&config.tls_cert_file, &config.tls_key_file)?) };
        let listener = tokio::net::TcpListener::bind(&config.listen).await.with_context(|| format!("binding {}", config.listen))?;
        let addr = listener.local_addr()?;
        if tls.is_none() && !addr.ip().is_loopback() {
            tracing::warn!(
                %addr,
                "serving patient data over plain HTTP on a non-loopback address: set tls_cert_file and tls_key_file, or put a TLS-terminating proxy in front"
            );
        }
        let (tx, rx) = tokio::sync::watch::channel(false);
        let mut background = Vec::new();
        // Other servers' session changes reach this server's live boards (PostgreSQL).
        if app.listen_for_other_servers().await.map_err(|e| anyhow::anyhow!("listening for other servers: {e}"))? {
            tracing::info!("live board hears the other servers through PostgreSQL");
        }
        // The alarm engine's clock: silent monitors raise their alarm.
        let (tick_app, tick_rx) = (app.clone(), rx.clone());
        background.push(tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(1));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tokio::select! {
                    _ = every.tick() => {
                        if let Err(e) = tick_app.tick_sessions().await {
                            tracing::warn!(error = %e, "stale-monitor check failed");
                        }
                    }
                    _ = stopped(tick_rx.clone()) => return,
                }
            }
        }));
        // The audit chain: new entries are linked every 2 seconds, checkpoints signed as due.
        if app.settings().audit_key.is_none() {
            tracing::warn!("no audit_signing_key: the audit trail is hash-chained but no checkpoint is signed");
        }
        let (seal_app, seal_rx) = (app.clone(), rx.clone());
        background.push(tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(2));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tokio::select! {
                    _ = every.tick() => {
                        if let Err(e) = seal_app.seal_audit().await {
                            tracing::warn!(error = %e, "sealing the audit trail failed; retrying");
                        }
                    }
                    _ = stopped(seal_rx.clone()) => {
                        // Seal what the last requests wrote.
                        if let Err(e) = seal_app.seal_audit().await {
                            tracing::warn!(error = %e, "sealing the audit trail at shutdown failed");
                        }
                        return;
                    }
                }
            }
        }));
        let mut mllp_addr = None;
        if !config.mllp_listen.is_empty() {
            let l = tokio::net::TcpListener::bind(&config.mllp_listen)
                .await
                .with_context(|| format!("binding the MLLP listener {}", config.mllp_listen))?;
            mllp_addr = Some(l.local_addr()?);
            let handler = Arc::new(crate::monitors::MonitorHandler { app: app.clone() });
            let clock = app.clock().clone();
            let now: Arc<dyn Fn() -> chrono::DateTime<chrono::Utc> + Send + Sync> = Arc::new(move || clock.now());
            let stop = stopped(rx.clone());
            background.push(tokio::spawn(async move {
                if let Err(e) = ketacare_hl7::serve(l, handler, ketacare_hl7::ListenerConfig::default(), now, stop).await {
                    tracing::error!(error = %e, "MLLP listener stopped with an error");
                }
            }));
        }
        let http_rx = rx.clone();
        let handle = match tls {
            Some(acceptor) => {
                use axum::serve::ListenerExt;
                let listener = crate::tls::TlsListener::new(listener, acceptor)?.tap_io(|_| {});
                tokio::spawn(async move {
                    let svc = router.into_make_service_with_connect_info::<SocketAddr>();
                    if let Err(e) = axum::serve(listener, svc).with_graceful_shutdown(stopped(http_rx)).await {
                        tracing::error!(error = %e, "server stopped with an error");
                    }
                })
            }
            None => tokio::spawn(async move {
                let svc = router.into_make_service_with_connect_info::<SocketAddr>();
                if let Err(e) = axum::serve(listener, svc).with_graceful_shutdown(stopped(http_rx)).await {
                    tracing::error!(error = %e, "server stopped with an error");
                }
            }),
        };
        Ok(Self { addr, app, mllp_addr, shutdown: tx, handle, background })
    }

    /// Stops accepting requests, finishes those in flight and closes the database.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        // Live boards hold their connections open: end them so the server can stop.
        self.app.close_streams();
        let _ = self.handle.await;
        for b in self.background {
            let _ = b.await;
        }
        self.app.store().close().await;
    }
}
