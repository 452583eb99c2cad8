//! The PostgreSQL backend of the Ketacare store, for larger clinics where several `ketacare`
//! servers share one database (sessions live in the database, so any server can serve any user).
//!
//! Same SQL as SQLite (`ketacare_db::impl_sql_store!`), own migrations. PostgreSQL's durability
//! settings (`fsync`, `synchronous_commit`, `full_page_writes`) must stay at their defaults (on);
//! [`PgStore::open`] checks them and refuses to run otherwise. Concurrency invariants (one
//! version number per record, one owner per MRN) are enforced by unique constraints, not by the
//! isolation level.

mod link;

pub use link::{LinkPolicy, Transport};

use ketacare_db::{DbError, DbResult};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Pool, Postgres, Transaction};
use std::time::Duration;

/// A PostgreSQL-backed store.
pub struct PgStore {
    pool: Pool<Postgres>,
}

impl PgStore {
    const BACKEND: &'static str = "postgres";

    /// Connects to `url` (`postgres://…`, with libpq's `sslmode`, `sslrootcert`, `sslcert`
    /// and `sslkey` for TLS; see [`LinkPolicy`]) and checks the durability settings. A failed
    /// TLS handshake is [`DbError::Tls`], naming the setting to look at.
    pub async fn open(url: &str) -> DbResult<Self> {
        let (policy, opts) = LinkPolicy::parse(url)?;
        policy.check()?;
        let opts = opts.application_name("ketacare");
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(15))
            .connect_with(opts)
            .await
            .map_err(|e| if link::is_tls_failure(&policy, &e) { link::tls_failure(&policy, &e) } else { DbError::from_sqlx(e) })?;
        let store = Self { pool };
        store.check_durability().await?;
        Ok(store)
    }

    /// How this store's connections travel (one connection of the pool, read from
    /// `pg_stat_ssl`; every connection is opened with the same options).
    pub async fn transport(&self) -> DbResult<Transport> {
        let (encrypted, protocol, cipher): (bool, Option<String>, Option<String>) =
            sqlx::query_as("SELECT ssl, version, cipher FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                .fetch_one(&self.pool)
                .await
                .map_err(DbError::from_sqlx)?;
        Ok(Transport { encrypted, protocol, cipher })
    }

    /// Refuses to run when PostgreSQL may acknowledge commits it can lose.
    pub async fn check_durability(&self) -> DbResult<()> {
        for setting in ["fsync", "synchronous_commit", "full_page_writes"] {
            let v: String = sqlx::query_scalar(&format!("SHOW {setting}")).fetch_one(&self.pool).await.map_err(DbError::from_sqlx)?;
            if v == "off" {
                return Err(DbError::UnsafeConfig(format!("{setting} is off; it must be on so that acknowledged commits survive a crash")));
            }
        }
        Ok(())
    }

    /// Nothing to do: old row versions stay until vacuumed, and the WAL as configured (see
    /// `Store::scrub_freed_space`).
    async fn __scrub_freed_space(&self) -> Result<(), sqlx::Error> {
        Ok(())
    }

    /// `BEGIN`, started so that a caller dropped meanwhile cannot leave it open
    /// ([`ketacare_db::pool`]).
    async fn begin_write(&self) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        let pool = self.pool.clone();
        ketacare_db::pool::begin_detached(async move { pool.begin().await }).await
    }

    /// Sealing the audit chain: `SHARE ROW EXCLUSIVE` on `audit_log` waits for every
    /// transaction that inserted an entry to end and holds new inserts (and other sealers) back
    /// until this one commits, so no entry can appear below the sealed head afterwards. The
    /// wait is bounded (well below `deadlock_timeout`): writers queued behind a waiting sealer
    /// could otherwise close a lock cycle; a sealer that gives up simply tries again later.
    async fn begin_audit_seal(&self) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        let mut tx = self.begin_write().await?;
        sqlx::query("SET LOCAL lock_timeout = '300ms'").execute(&mut *tx).await?;
        sqlx::query("LOCK TABLE audit_log IN SHARE ROW EXCLUSIVE MODE").execute(&mut *tx).await?;
        Ok(tx)
    }

    async fn run_migrations(&self) -> DbResult<()> {
        sqlx::migrate!("./migrations").run(&self.pool).await?;
        Ok(())
    }

    /// Applies the shipped migrations up to and including `version` only: for tests that
    /// prove an upgrade from an older schema keeps every row. (Builds the migrator from the
    /// embedded list; sqlx documents those fields as exempt from semver, so a sqlx upgrade may
    /// need this adjusted, which the upgrade tests would show at once.)
    pub async fn migrate_to(&self, version: i64) -> DbResult<()> {
        let all = sqlx::migrate!("./migrations");
        let subset: Vec<sqlx::migrate::Migration> = all.iter().filter(|m| m.version <= version).cloned().collect();
        let migrator = sqlx::migrate::Migrator { migrations: std::borrow::Cow::Owned(subset), ..all };
        migrator.run(&self.pool).await?;
        Ok(())
    }

    /// Number of migrations this build ships.
    pub fn shipped_migrations() -> usize {
        sqlx::migrate!("./migrations").iter().count()
    }

    /// The pool, for tests that must bypass the store.
    pub fn pool(&self) -> &Pool<Postgres> {
        &self.pool
    }

    /// Hears every server's session changes (`LISTEN ketacare_sessions`; the writers call
    /// `pg_notify` inside their transactions) and passes each session id to `listener`.
    /// The listener reconnects by itself if the connection drops (sqlx re-issues `LISTEN`).
    async fn __listen_session_changes(&self, listener: ketacare_db::session::ChangeListener) -> DbResult<bool> {
        let mut l = sqlx::postgres::PgListener::connect_with(&self.pool).await.map_err(DbError::from_sqlx)?;
        l.listen("ketacare_sessions").await.map_err(DbError::from_sqlx)?;
        let pool = self.pool.clone();
        tokio::spawn(async move {
            loop {
                match l.recv().await {
                    Ok(n) => listener(n.payload().to_owned()),
                    // The store was closed: the server is stopping.
                    Err(_) if pool.is_closed() => return,
                    Err(e) => {
                        tracing::warn!(error = %e, "session change listener lost its connection; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
        Ok(true)
    }
}

ketacare_db::impl_sql_store!(PgStore, sqlx::Postgres);
ketacare_db::impl_session_store!(PgStore, sqlx::Postgres);
ketacare_db::impl_research_store!(PgStore, sqlx::Postgres);
ketacare_db::impl_bulk_store!(PgStore, sqlx::Postgres);
ketacare_db::impl_audit_chain_store!(PgStore, sqlx::Postgres);
