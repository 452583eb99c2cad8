//! The SQLite backend of the Ketacare store: the default, embedded in the binary.
//!
//! Durability is a configuration plus a check: every connection runs in WAL mode with
//! `synchronous=FULL` (so an acknowledged commit survives power loss on storage that honours
//! fsync) and `foreign_keys=ON`, and [`SqliteStore::open`] reads the settings back and refuses
//! to start if any differs. Write transactions start with `BEGIN IMMEDIATE` so two writers never
//! deadlock on a lock upgrade. The SQL itself is shared with PostgreSQL (`ketacare_db::impl_sql_store!`).

use ketacare_db::{DbError, DbResult};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Pool, Sqlite, Transaction};
use std::str::FromStr;
use std::time::Duration;

/// A SQLite-backed store.
pub struct SqliteStore {
    pool: Pool<Sqlite>,
}

impl SqliteStore {
    const BACKEND: &'static str = "sqlite";

    /// Opens (creating if missing) the database at `url` (`sqlite://path` or `sqlite::memory:`),
    /// then verifies WAL, `synchronous=FULL` and foreign keys on a pooled connection.
    pub async fn open(url: &str) -> DbResult<Self> {
        let opts = SqliteConnectOptions::from_str(url)
            .map_err(DbError::from_sqlx)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(15))
            .connect_with(opts)
            .await
            .map_err(DbError::from_sqlx)?;
        let store = Self { pool };
        store.check_durability().await?;
        Ok(store)
    }

    /// Reads back the durability settings and refuses anything but WAL + FULL + foreign keys.
    pub async fn check_durability(&self) -> DbResult<()> {
        let mut conn = self.pool.acquire().await.map_err(DbError::from_sqlx)?;
        let journal: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&mut *conn).await.map_err(DbError::from_sqlx)?;
        let sync: i64 = sqlx::query_scalar("PRAGMA synchronous").fetch_one(&mut *conn).await.map_err(DbError::from_sqlx)?;
        let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys").fetch_one(&mut *conn).await.map_err(DbError::from_sqlx)?;
        // PRAGMA synchronous: 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA. FULL or EXTRA are accepted.
        if !journal.eq_ignore_ascii_case("wal") {
            return Err(DbError::UnsafeConfig(format!(
                "journal_mode is {journal}, expected wal (is the database on a network filesystem?)"
            )));
        }
        if sync < 2 {
            return Err(DbError::UnsafeConfig(format!("synchronous is {sync}, expected 2 (FULL) or 3 (EXTRA)")));
        }
        if fk != 1 {
            return Err(DbError::UnsafeConfig("foreign_keys is off".into()));
        }
        Ok(())
    }

    async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
        self.pool.begin_with("BEGIN IMMEDIATE").await
    }

    /// Sealing the audit chain: one writer at a time, so sequence order is commit order.
    async fn begin_audit_seal(&self) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
        self.pool.begin_with("BEGIN IMMEDIATE").await
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

    /// Number of migrations this build ships (compared with PostgreSQL's in CI).
    pub fn shipped_migrations() -> usize {
        sqlx::migrate!("./migrations").iter().count()
    }

    /// The pool, for tests that must bypass the store (e.g. to prove triggers refuse updates).
    pub fn pool(&self) -> &Pool<Sqlite> {
        &self.pool
    }

    /// An embedded database has one server: there is nobody else to hear from.
    async fn __listen_session_changes(&self, _listener: ketacare_db::session::ChangeListener) -> DbResult<bool> {
        Ok(false)
    }
}

ketacare_db::impl_sql_store!(SqliteStore, sqlx::Sqlite);
ketacare_db::impl_session_store!(SqliteStore, sqlx::Sqlite);
ketacare_db::impl_research_store!(SqliteStore, sqlx::Sqlite);
ketacare_db::impl_bulk_store!(SqliteStore, sqlx::Sqlite);
ketacare_db::impl_audit_chain_store!(SqliteStore, sqlx::Sqlite);
