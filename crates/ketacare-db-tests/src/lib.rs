//! Fresh, isolated databases for tests, on either backend.
//!
//! - SQLite: a new file in a temporary directory, removed on drop.
//! - PostgreSQL: a new database `ketacare_test_<uuid>` on the server named by
//!   `KETACARE_TEST_POSTGRES_URL` (an admin URL such as
//!   `postgres://postgres@127.0.0.1:5432/postgres`), dropped on drop.
//!
//! When `KETACARE_TEST_POSTGRES_URL` is unset, [`fresh_postgres`] returns `None` and the
//! PostgreSQL half of each suite does not run; `cargo xtask test` says so plainly. When
//! `KETACARE_REQUIRE_POSTGRES=1` (set by CI), a missing URL or an unreachable server is a
//! test failure, never a skip.

use ketacare_db::Store;
use ketacare_db_postgres::PgStore;
use ketacare_db_sqlite::SqliteStore;
use sqlx::Connection;
use std::sync::Arc;

/// Environment variable naming the PostgreSQL admin URL for tests.
pub const PG_URL_VAR: &str = "KETACARE_TEST_POSTGRES_URL";
/// Environment variable that turns a missing PostgreSQL into a failure.
pub const PG_REQUIRE_VAR: &str = "KETACARE_REQUIRE_POSTGRES";

/// A migrated store on a fresh database, cleaned up on drop.
pub struct TestDb {
    store: Arc<dyn Store>,
    /// Database URL (for spawning a server on the same database).
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Sqlite(#[allow(dead_code, reason = "kept alive until drop")] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl TestDb {
    /// The store.
    pub fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    /// Runs raw SQL outside the store (to prove database-level invariants such as triggers).
    pub async fn exec_raw(&self, sql: &str) -> Result<(), String> {
        match &self.cleanup {
            Cleanup::Sqlite(_) => {
                let mut c = sqlx::SqliteConnection::connect(&self.url).await.map_err(|e| e.to_string())?;
                sqlx::query(sql).execute(&mut c).await.map(|_| ()).map_err(|e| e.to_string())
            }
            Cleanup::Postgres { .. } => {
                let mut c = sqlx::PgConnection::connect(&self.url).await.map_err(|e| e.to_string())?;
                sqlx::query(sql).execute(&mut c).await.map(|_| ()).map_err(|e| e.to_string())
            }
        }
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        self.store.backend()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Cleanup::Postgres { admin_url, name } = &self.cleanup {
            let (admin_url, name) = (admin_url.clone(), name.clone());
            // Drop the database from a separate thread with its own runtime: Drop cannot be async.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
                if let Ok(rt) = rt {
                    rt.block_on(async {
                        if let Ok(mut c) = sqlx::PgConnection::connect(&admin_url).await {
                            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).execute(&mut c).await;
                        }
                    });
                }
            })
            .join();
        }
    }
}

/// A fresh, migrated SQLite database in a temporary directory.
pub async fn fresh_sqlite() -> TestDb {
    fresh_sqlite_at(None).await
}

/// A fresh SQLite database migrated up to `schema` only (`None`: every shipped migration),
/// for upgrade tests; `store().migrate()` then brings it to the latest schema.
pub async fn fresh_sqlite_at(schema: Option<i64>) -> TestDb {
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite://{}", dir.path().join("ketacare.db").display());
    let store = SqliteStore::open(&url).await.expect("open sqlite");
    match schema {
        Some(v) => store.migrate_to(v).await.expect("migrate sqlite to the older schema"),
        None => store.migrate().await.expect("migrate sqlite"),
    }
    TestDb { store: Arc::new(store), url, cleanup: Cleanup::Sqlite(dir) }
}

/// Whether CI demands the PostgreSQL half.
pub fn postgres_required() -> bool {
    std::env::var(PG_REQUIRE_VAR).is_ok_and(|v| v == "1" || v == "true")
}

/// A fresh, migrated PostgreSQL database, or `None` when no server is configured.
///
/// Panics when a server is configured but unreachable, or when one is required and not configured.
pub async fn fresh_postgres() -> Option<TestDb> {
    fresh_postgres_at(None).await
}

/// A fresh PostgreSQL database migrated up to `schema` only (`None`: all); see [`fresh_sqlite_at`].
pub async fn fresh_postgres_at(schema: Option<i64>) -> Option<TestDb> {
    let admin_url = match std::env::var(PG_URL_VAR) {
        Ok(u) if !u.trim().is_empty() => u,
        _ => {
            assert!(!postgres_required(), "{PG_REQUIRE_VAR} is set but {PG_URL_VAR} is not: the PostgreSQL suite must run");
            return None;
        }
    };
    let name = format!("ketacare_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin =
        sqlx::PgConnection::connect(&admin_url).await.unwrap_or_else(|e| panic!("PostgreSQL at {PG_URL_VAR} is unreachable: {e}"));
    sqlx::query(&format!("CREATE DATABASE \"{name}\"")).execute(&mut admin).await.expect("create test database");
    let _ = admin.close().await;
    let url = match admin_url.rfind('/') {
        Some(i) if admin_url[..i].contains("://") && admin_url[i..].len() > 1 && !admin_url[..i].ends_with('/') => {
            let (base, rest) = admin_url.split_at(i);
            let query = rest.find('?').map(|q| &rest[q..]).unwrap_or("");
            format!("{base}/{name}{query}")
        }
        _ => format!("{}/{name}", admin_url.trim_end_matches('/')),
    };
    let store = PgStore::open(&url).await.expect("open postgres test database");
    match schema {
        Some(v) => store.migrate_to(v).await.expect("migrate postgres to the older schema"),
        None => store.migrate().await.expect("migrate postgres"),
    }
    Some(TestDb { store: Arc::new(store), url, cleanup: Cleanup::Postgres { admin_url, name } })
}

/// Runs the same test body on both backends: SQLite always, PostgreSQL when configured.
///
/// ```text
/// both_backends!(register_patient_is_audited, …);
/// async fn register_patient_is_audited(db: &TestDb) { … }
/// ```
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = $crate::fresh_sqlite().await;
                    super::$name(&db).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = $crate::fresh_postgres().await else { return };
                    super::$name(&db).await;
                }
            )*
        }
    };
}

/// Shared fixtures of the storage suites: a fixed instant, audit contexts and users.
pub mod fixtures {
    use crate::TestDb;
    use chrono::{DateTime, TimeZone, Utc};
    use ketacare_db::{AuditCtx, NewUser, User};
    use ketacare_domain::access::{Role, Username};
    use ketacare_domain::audit::{Actor, AuditAction, AuditEvent, AuditOutcome};
    use ketacare_domain::ids::UserId;
    use uuid::Uuid;

    /// The instant the suites record at.
    pub fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 26, 9, 0, 0).unwrap()
    }

    /// The system acting at `t0` (operations).
    pub fn system_ctx() -> AuditCtx {
        AuditCtx {
            actor: Actor { user_id: None, username: "system".into(), role: None, session_ref: None, client_addr: None },
            at: t0(),
            purpose: "operations",
        }
    }

    /// The `i`-th of a run of audit entries: the system reading patient `p-{i}` at `t0`,
    /// with a detail on two in three.
    pub fn read_event(i: usize) -> AuditEvent {
        AuditEvent {
            recorded_at: t0(),
            actor: system_ctx().actor,
            action: AuditAction::Read,
            outcome: AuditOutcome::Success,
            entity_type: "Patient".into(),
            entity_id: Some(format!("p-{i}")),
            patient_id: None,
            detail: if i.is_multiple_of(3) { None } else { Some(format!("read {i}")) },
        }
    }

    /// `user` acting at `t0` for treatment.
    pub fn ctx(user: &User) -> AuditCtx {
        AuditCtx {
            actor: Actor {
                user_id: Some(user.id),
                username: user.username.as_str().to_owned(),
                role: Some(user.role),
                session_ref: None,
                client_addr: None,
            },
            at: t0(),
            purpose: "treatment",
        }
    }

    /// Registers a patient (version 1, recorded by `user` at `t0`) and returns its id.
    pub async fn patient(db: &TestDb, user: &User, mrn: &str, family: &str, given: &str) -> ketacare_domain::ids::PatientId {
        let v = patient_version(user, mrn, family, given);
        db.store().register_patient(&ctx(user), &v).await.unwrap();
        v.patient_id
    }

    /// A registration (version 1, recorded by `user` at `t0`), not stored.
    pub fn patient_version(user: &User, mrn: &str, family: &str, given: &str) -> ketacare_domain::record::PatientVersion {
        use ketacare_domain::ids::{PatientId, VersionId};
        use ketacare_domain::patient::{AgeLimits, DemographicsInput};
        use ketacare_domain::record::{PatientVersion, Provenance, VersionAction};
        let id = PatientId::from_uuid(Uuid::new_v4());
        let demographics = DemographicsInput {
            mrn: mrn.into(),
            family_name: family.into(),
            given_name: given.into(),
            date_of_birth: "1985-05-05".into(),
            sex: "female".into(),
            ..Default::default()
        }
        .validate(t0().date_naive(), AgeLimits { minimum_years: 18, maximum_years: 110 })
        .unwrap();
        let v = PatientVersion {
            patient_id: id,
            version_id: VersionId::from_uuid(Uuid::new_v4()),
            version: 1,
            action: VersionAction::Create,
            demographics,
            reason: None,
            provenance: Provenance { user_id: user.id, username: user.username.as_str().to_owned(), recorded_at: t0() },
        };
        v
    }

    /// Creates a user with `username` and `role` (display name `display_name`).
    pub async fn user(db: &TestDb, username: &str, display_name: &str, role: Role) -> User {
        db.store()
            .create_user(
                &system_ctx(),
                NewUser {
                    id: UserId::from_uuid(Uuid::new_v4()),
                    username: Username::parse(username).unwrap(),
                    display_name: display_name.into(),
                    role,
                    password_hash: "$argon2id$test".into(),
                    created_at: t0(),
                },
            )
            .await
            .unwrap()
    }
}
