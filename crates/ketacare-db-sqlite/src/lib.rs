//! The SQLite backend of the Ketacare store: the default, embedded in the binary.
//!
//! Durability is a configuration plus a check: every connection runs in WAL mode with
//! `synchronous=FULL` (so an acknowledged commit survives power loss on storage that honours
//! fsync) and `foreign_keys=ON`, and [`SqliteStore::open`] reads the settings back and refuses
//! to start if any differs. Write transactions start with `BEGIN IMMEDIATE` so two writers never
//! deadlock on a lock upgrade. The SQL itself is shared with PostgreSQL (`ketacare_db::impl_sql_store!`).

use ketacare_db::{DbError, DbResult};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Pool, Sqlite, Transaction};
use std::str::FromStr;
use std::time::Duration;

/// A SQLite-backed store.
pub struct SqliteStore {
    pool: Pool<Sqlite>,
}

/// The 256-bit key of an encrypted (SQLCipher) database, given as 64 hexadecimal characters.
/// Used as a raw key (no passphrase derivation), so opening a connection costs no key
/// stretching; make one with `ketacare database new-key`.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseKey(String);

impl std::fmt::Debug for DatabaseKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DatabaseKey(…)")
    }
}

impl DatabaseKey {
    /// Reads a key: 64 hexadecimal characters (surrounding white space ignored).
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        if t.len() != 64 || !t.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!(
                "must be 64 hexadecimal characters (a 256-bit key; `ketacare database new-key` makes one); got {} characters",
                t.len()
            ));
        }
        Ok(Self(t.to_ascii_lowercase()))
    }

    /// A key from 32 random bytes.
    pub fn from_bytes(b: [u8; 32]) -> Self {
        Self(b.iter().map(|x| format!("{x:02x}")).collect())
    }

    /// The hexadecimal text.
    pub fn hex(&self) -> &str {
        &self.0
    }
}

/// Connection options for the database at `url`, keyed when `key` is given (SQLCipher runs
/// `PRAGMA key` before any other statement on every connection).
pub fn connect_options(url: &str, key: Option<&DatabaseKey>) -> DbResult<SqliteConnectOptions> {
    let opts = SqliteConnectOptions::from_str(url).map_err(DbError::from_sqlx)?;
    Ok(match key {
        // sqlx sends the pragmas as one statement through its statement log (at debug, or at
        // warn when slow): a keyed connection logs no statement, so the key never reaches a log.
        Some(k) => opts
            .pragma("key", format!("\"x'{}'\"", k.0))
            .log_statements(log::LevelFilter::Off)
            .log_slow_statements(log::LevelFilter::Off, Duration::from_secs(3600)),
        None => opts,
    }
    // Deleted and overwritten content is zeroed in the file, not left in free space (expired
    // sign-in challenges, secrets sealed after being stored plain).
    .pragma("secure_delete", "ON"))
}

impl SqliteStore {
    const BACKEND: &'static str = "sqlite";

    /// Opens (creating if missing) the database at `url` (`sqlite://path` or `sqlite::memory:`),
    /// then verifies WAL, `synchronous=FULL` and foreign keys on a pooled connection.
    pub async fn open(url: &str) -> DbResult<Self> {
        Self::open_keyed(url, None).await
    }

    /// Opens the database at `url` as [`SqliteStore::open`] does, encrypted with `key` when
    /// given (a new database is created encrypted). A key that does not open the file, or a
    /// key given for a file that is not encrypted (and the other way round), is refused with
    /// [`DbError::UnsafeConfig`] naming the setting.
    pub async fn open_keyed(url: &str, key: Option<&DatabaseKey>) -> DbResult<Self> {
        let opts = connect_options(url, key)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(15))
            // A dropped transaction's rollback is queued on the connection's worker: settle it,
            // then refuse a connection still inside a transaction.
            .after_release(|conn, _| Box::pin(ketacare_db::pool::released_outside_transaction(conn)))
            .connect_with(opts)
            .await
            .map_err(|e| Self::key_error(e, key.is_some()))?;
        let store = Self { pool };
        if key.is_some() {
            let cipher: Option<String> =
                sqlx::query_scalar("PRAGMA cipher_version").fetch_optional(&store.pool).await.map_err(DbError::from_sqlx)?;
            if cipher.as_deref().unwrap_or("").is_empty() {
                return Err(DbError::UnsafeConfig("database_key is set but this build has no SQLCipher".into()));
            }
        }
        store.check_durability().await.map_err(|e| match e {
            DbError::Driver(e) => Self::key_error(e, key.is_some()),
            other => other,
        })?;
        Ok(store)
    }

    /// SQLCipher reports a wrong key (or a key for a plain file, or none for an encrypted one)
    /// as "file is not a database" at the first read.
    fn key_error(e: sqlx::Error, keyed: bool) -> DbError {
        if e.to_string().contains("file is not a database") {
            DbError::UnsafeConfig(if keyed {
                "the database could not be read with database_key: the key is wrong, or the file is not encrypted".into()
            } else {
                "the database could not be read: it is encrypted (set database_key or database_key_file), or it is not a Ketacare database"
                    .into()
            })
        } else {
            DbError::from_sqlx(e)
        }
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

    /// Deleted content is zeroed as it is freed (`secure_delete`, on every connection); this
    /// moves the write-ahead log into the database file and empties it, so that no old page
    /// remains there either. A reader holding an old snapshot can keep part of the log: best
    /// effort, as the trait says.
    async fn __scrub_freed_space(&self) -> Result<(), sqlx::Error> {
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&self.pool).await.map(drop)
    }

    /// `BEGIN IMMEDIATE`, started so that a caller dropped meanwhile cannot leave it open
    /// ([`ketacare_db::pool`]).
    async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
        let pool = self.pool.clone();
        ketacare_db::pool::begin_detached(async move { pool.begin_with("BEGIN IMMEDIATE").await }).await
    }

    /// Sealing the audit chain: one writer at a time, so sequence order is commit order.
    async fn begin_audit_seal(&self) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
        self.begin_write().await
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
