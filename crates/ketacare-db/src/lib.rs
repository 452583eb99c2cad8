//! The storage boundary of Ketacare.
//!
//! [`Store`] is expressed in domain types. Two crates implement it: `ketacare-db-sqlite`
//! (default, embedded) and `ketacare-db-postgres`. Both run the same SQL, written once in
//! [`impl_sql_store!`] with `$n` placeholders and portable types (text ids and timestamps,
//! 64-bit integers); each backend owns its migrations, pool set-up and write-transaction start.
//! `ketacare-db-tests` runs one conformance suite against both.
//!
//! Invariants the implementations keep:
//! - Clinical tables (`patients`, `patient_mrns`, `patient_versions`, `record_versions`) and
//!   `audit_log` are append-only; database triggers refuse UPDATE and DELETE on them.
//! - Workflow tables change state once and are never deleted: a questionnaire request is
//!   completed or cancelled once, a safety alert acknowledged once, a schedule ended once
//!   (triggers refuse anything else).
//! - Every method that reads or writes patient data takes an [`AuditCtx`] and writes the audit
//!   row in the same transaction; if the audit row cannot be written the call fails and returns
//!   no data.
//! - Configuration data (users, sessions, API tokens) may be updated; user changes are audited.
//! - No connection goes back to the pool inside a transaction: store transactions start in a
//!   task of their own, and on SQLite a returning connection is checked too ([`pool`]), so a
//!   caller dropped half-way cannot leave a lock held or a later caller's writes uncommitted.

pub mod bulk;
pub mod chain;
pub mod codec;
mod model;
pub mod pool;
pub mod research;
pub mod session;
#[doc(hidden)]
pub mod sql;

pub use model::*;

#[doc(hidden)]
pub use async_trait::async_trait as __async_trait;
#[doc(hidden)]
pub use sqlx as __sqlx;
#[doc(hidden)]
pub use uuid as __uuid;

use ketacare_domain::assessment::{Acknowledgement, QuestionnaireRequest, SafetyAlert, Schedule};
use ketacare_domain::audit::{AuditEntry, AuditEvent};
use ketacare_domain::ids::{AlertId, PatientId, RecordId, RequestId, ScheduleId, SessionId, TokenId, UserId};
use ketacare_domain::record::{PatientVersion, RecordVersion};

/// What went wrong in storage, named for the caller.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The addressed row does not exist.
    #[error("not found")]
    NotFound,
    /// A uniqueness or version constraint refused the write (e.g. MRN taken, concurrent amendment).
    #[error("conflict: {0}")]
    Conflict(String),
    /// Stored data could not be decoded into domain types.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The database refused the configuration (e.g. SQLite not in WAL + synchronous=FULL).
    #[error("unsafe database configuration: {0}")]
    UnsafeConfig(String),
    /// The TLS handshake with the database server failed (the message names the setting).
    #[error("{0}")]
    Tls(String),
    /// Driver, connection or IO failure.
    #[error("database error")]
    Driver(#[from] sqlx::Error),
    /// Migration failure.
    #[error("migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl DbError {
    /// Maps driver errors, turning unique violations into [`DbError::Conflict`].
    pub fn from_sqlx(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e {
            if db.is_unique_violation() {
                let what = db.constraint().map(str::to_owned).unwrap_or_else(|| db.message().to_owned());
                return DbError::Conflict(what);
            }
        }
        if let sqlx::Error::RowNotFound = e {
            return DbError::NotFound;
        }
        DbError::Driver(e)
    }
}

/// Result alias.
pub type DbResult<T> = Result<T, DbError>;

/// The storage interface. See the crate docs for the invariants.
#[async_trait::async_trait]
pub trait Store:
    session::SessionStore + research::ResearchStore + bulk::BulkStore + chain::AuditChainStore + Send + Sync + 'static
{
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;
    /// Applies pending migrations.
    async fn migrate(&self) -> DbResult<()>;
    /// Number of applied migrations (both backends must agree).
    async fn schema_version(&self) -> DbResult<i64>;
    /// Closes the pool.
    async fn close(&self);
    /// Best effort to leave no readable copy of overwritten or deleted rows in the database's
    /// files (after secrets stored plain are sealed). SQLite, which overwrites freed content
    /// with zeros (`secure_delete`), moves the write-ahead log into the database and empties it
    /// (`wal_checkpoint(TRUNCATE)`); PostgreSQL keeps old row versions until vacuumed and its
    /// WAL as configured, which nothing here can erase: a no-op.
    async fn scrub_freed_space(&self) -> DbResult<()>;

    // ---- users, sessions, tokens (configuration data) ----
    /// Creates a user; audited as a privilege change.
    async fn create_user(&self, ctx: &AuditCtx, user: NewUser) -> DbResult<User>;
    /// Finds a user and their password hash by username.
    async fn find_user_by_username(&self, username: &str) -> DbResult<Option<(User, String)>>;
    /// A user by id.
    async fn get_user(&self, id: UserId) -> DbResult<Option<User>>;
    /// All users, by username.
    async fn list_users(&self) -> DbResult<Vec<User>>;
    /// Activates or deactivates a user (and ends their sessions when deactivated); audited.
    async fn set_user_active(&self, ctx: &AuditCtx, id: UserId, active: bool) -> DbResult<()>;
    /// Replaces a password hash (rehash on login or reset).
    async fn set_password_hash(&self, id: UserId, hash: &str) -> DbResult<()>;
    /// Counts a failed login at `now` and, when the count reaches `max_failures`, locks the
    /// account until `lock_until` (as [`ketacare_domain::login::AccountLock::after_failure`]).
    /// One atomic statement: concurrent failures on several servers all count. Returns the new
    /// state.
    async fn record_login_failure(
        &self,
        id: UserId,
        now: chrono::DateTime<chrono::Utc>,
        max_failures: u32,
        lock_until: chrono::DateTime<chrono::Utc>,
    ) -> DbResult<ketacare_domain::login::AccountLock>;
    /// After a right password: sets the failure count back to zero, unless the account is
    /// locked at `now` (failures verified at the same time may have locked it); `false` then,
    /// and the login must be refused. One atomic statement.
    async fn clear_login_failures(&self, id: UserId, now: chrono::DateTime<chrono::Utc>) -> DbResult<bool>;
    /// Unlocks an account and sets its failure count back to zero (administrator); audited.
    async fn unlock_user(&self, ctx: &AuditCtx, id: UserId) -> DbResult<()>;
    /// An account's two-step sign-in enrolment, if any.
    async fn get_totp(&self, user: UserId) -> DbResult<Option<TotpEnrolment>>;
    /// The accounts enrolled in two-step sign-in.
    async fn list_totp_enrolled(&self) -> DbResult<Vec<UserId>>;
    /// Enrols an account (replacing an earlier enrolment) with its first accepted step and a
    /// fresh set of recovery codes (their hashes), in one transaction; audited.
    async fn enrol_totp(&self, ctx: &AuditCtx, user: UserId, secret: &str, step: i64, recovery_hashes: &[String]) -> DbResult<()>;
    /// Replaces an account's stored TOTP secret `old` by `new` (the same secret, sealed), only
    /// if it is still `old`: `false` when it changed meanwhile. Not audited (the caller audits
    /// the sealing once).
    async fn reseal_totp(&self, user: UserId, old: &str, new: &str) -> DbResult<bool>;
    /// Claims a step for an account: `true` only when it is later than the last step accepted
    /// (one conditional statement, so a code is accepted once across all servers).
    async fn claim_totp_step(&self, user: UserId, step: i64) -> DbResult<bool>;
    /// Uses an unused recovery code (by hash) once: `true` when it was there and unused.
    async fn use_recovery_code(&self, user: UserId, hash: &str, at: chrono::DateTime<chrono::Utc>) -> DbResult<bool>;
    /// Recovery codes not yet used.
    async fn unused_recovery_codes(&self, user: UserId) -> DbResult<i64>;
    /// Replaces all recovery codes with a fresh set; audited.
    async fn replace_recovery_codes(&self, ctx: &AuditCtx, user: UserId, hashes: &[String]) -> DbResult<()>;
    /// Removes an enrolment and its recovery codes, and ends the account's sessions; audited.
    /// [`DbError::NotFound`] when the account is not enrolled.
    async fn remove_totp(&self, ctx: &AuditCtx, user: UserId) -> DbResult<()>;
    /// Stores a pending sign-in step (and deletes expired ones).
    async fn create_login_challenge(&self, c: &LoginChallenge) -> DbResult<()>;
    /// Counts one attempt against an open challenge and returns it, or `None` when there is no
    /// such challenge, it has expired at `now` or its attempts are used up (atomic).
    async fn attempt_login_challenge(
        &self,
        token_hash: &str,
        now: chrono::DateTime<chrono::Utc>,
        max_attempts: u32,
    ) -> DbResult<Option<LoginChallenge>>;
    /// An open challenge (not expired at `now`, attempts left), without counting an attempt.
    async fn find_login_challenge(
        &self,
        token_hash: &str,
        now: chrono::DateTime<chrono::Utc>,
        max_attempts: u32,
    ) -> DbResult<Option<LoginChallenge>>;
    /// Ends a challenge; `true` when this call ended it (so it is used once).
    async fn end_login_challenge(&self, token_hash: &str) -> DbResult<bool>;
    /// Stores a new session.
    async fn create_session(&self, s: &StoredSession) -> DbResult<()>;
    /// A session by the hash of its token.
    async fn find_session(&self, token_hash: &str) -> DbResult<Option<StoredSession>>;
    /// Records activity on a session.
    async fn touch_session(&self, id: SessionId, at: chrono::DateTime<chrono::Utc>) -> DbResult<()>;
    /// Ends a session.
    async fn delete_session(&self, id: SessionId) -> DbResult<()>;
    /// Ends every session of `user` but `keep` (after the person moved to a new authenticator).
    async fn end_other_sessions(&self, user: UserId, keep: Option<SessionId>) -> DbResult<u64>;
    /// Stores an API token (hash only); audited.
    async fn create_api_token(&self, ctx: &AuditCtx, t: &ApiToken) -> DbResult<()>;
    /// An API token by the hash of its secret.
    async fn find_api_token(&self, token_hash: &str) -> DbResult<Option<ApiToken>>;
    /// All API tokens.
    async fn list_api_tokens(&self) -> DbResult<Vec<ApiToken>>;
    /// Revokes a token; audited.
    async fn revoke_api_token(&self, ctx: &AuditCtx, id: TokenId) -> DbResult<()>;

    // ---- audit ----
    /// Appends a standalone audit entry (login, logout, denied access).
    async fn append_audit(&self, event: &AuditEvent) -> DbResult<()>;
    /// Searches the audit trail; the search itself is audited.
    async fn search_audit(&self, ctx: &AuditCtx, filter: &AuditFilter) -> DbResult<Vec<AuditEntry>>;

    // ---- patients ----
    /// Registers a patient (version 1); MRN must be unused.
    async fn register_patient(&self, ctx: &AuditCtx, v: &PatientVersion) -> DbResult<()> {
        self.register_patient_with_member(ctx, v, None).await
    }
    /// Registers a patient and, in the same transaction, puts `member` (the registering
    /// clinician) on the care team: both or neither.
    async fn register_patient_with_member(&self, ctx: &AuditCtx, v: &PatientVersion, member: Option<&CareTeamMember>) -> DbResult<()>;
    /// Appends an amend or void version of the demographics; `v.version` must be current + 1.
    async fn append_patient_version(&self, ctx: &AuditCtx, v: &PatientVersion) -> DbResult<()>;
    /// Current demographics version (voided ones included), audited as a read.
    async fn get_patient(&self, ctx: &AuditCtx, id: PatientId) -> DbResult<Option<PatientVersion>>;
    /// Every demographics version, oldest first, audited.
    async fn patient_history(&self, ctx: &AuditCtx, id: PatientId) -> DbResult<Vec<PatientVersion>>;
    /// Current, non-voided patients matching `query` (name or MRN; empty matches all), audited.
    async fn search_patients(&self, ctx: &AuditCtx, query: &str, page: Page) -> DbResult<Vec<PatientVersion>>;
    /// As [`Store::search_patients`], among the patients of `user`'s care teams and of their
    /// emergency accesses in force at `now` (what [`Store::care_team_patients`] and
    /// [`Store::active_emergency_access`] list), filtered and paged in the database; audited.
    async fn search_patients_in_scope(
        &self,
        ctx: &AuditCtx,
        query: &str,
        user: UserId,
        now: chrono::DateTime<chrono::Utc>,
        page: Page,
    ) -> DbResult<Vec<PatientVersion>>;
    /// Number of current, non-voided patients.
    async fn count_patients(&self) -> DbResult<i64>;

    // ---- clinical records ----
    /// Appends a record version (create, amend or void); `(record_id, version)` must be new.
    /// Appends several record versions in one transaction (all or nothing), each audited; for
    /// readings taken together (blood pressure with heart rate, a liver panel).
    async fn append_record_versions(&self, ctx: &AuditCtx, vs: &[RecordVersion]) -> DbResult<()>;
    async fn append_record_version(&self, ctx: &AuditCtx, v: &RecordVersion) -> DbResult<()>;
    /// The latest version of each record of a patient (voided ones included), audited.
    async fn current_records(&self, ctx: &AuditCtx, patient: PatientId) -> DbResult<Vec<RecordVersion>>;
    /// The latest version of one record, audited.
    async fn get_record(&self, ctx: &AuditCtx, id: RecordId) -> DbResult<Option<RecordVersion>>;
    /// Every version of one record, oldest first, audited.
    async fn record_history(&self, ctx: &AuditCtx, id: RecordId) -> DbResult<Vec<RecordVersion>>;

    // ---- measurement-based care ----
    /// Appends an assessment record version together with the safety alerts it raises and,
    /// for a patient's answer, the completion of the questionnaire request: all or nothing.
    /// A request that is already completed, cancelled or expired (at `ctx.at`) is a conflict.
    async fn append_assessment(
        &self,
        ctx: &AuditCtx,
        v: &RecordVersion,
        alerts: &[SafetyAlert],
        complete_request: Option<RequestId>,
    ) -> DbResult<()>;
    /// Stores a new questionnaire request; audited.
    async fn create_request(&self, ctx: &AuditCtx, r: &QuestionnaireRequest) -> DbResult<()>;
    /// The request whose link token hashes to `token_hash`; audited (the actor is the link).
    async fn find_request_by_token(&self, ctx: &AuditCtx, token_hash: &str) -> DbResult<Option<QuestionnaireRequest>>;
    /// A patient's requests, newest first; audited.
    async fn list_requests(&self, ctx: &AuditCtx, patient: PatientId) -> DbResult<Vec<QuestionnaireRequest>>;
    /// Withdraws an open request; audited.
    async fn cancel_request(&self, ctx: &AuditCtx, id: RequestId, by: UserId) -> DbResult<()>;
    /// Safety alerts, newest first: of one patient or of all, open only or all; audited.
    async fn list_alerts(&self, ctx: &AuditCtx, patient: Option<PatientId>, open_only: bool) -> DbResult<Vec<SafetyAlert>>;
    /// Number of unacknowledged alerts (no patient data).
    async fn count_open_alerts(&self) -> DbResult<i64>;
    /// Acknowledges an open alert (once); audited.
    async fn acknowledge_alert(&self, ctx: &AuditCtx, id: AlertId, ack: &Acknowledgement) -> DbResult<SafetyAlert>;
    /// Stores a schedule; audited.
    async fn create_schedule(&self, ctx: &AuditCtx, s: &Schedule, created_by: UserId) -> DbResult<()>;
    /// A patient's schedules (ended ones included), oldest first; audited.
    async fn list_schedules(&self, ctx: &AuditCtx, patient: PatientId) -> DbResult<Vec<Schedule>>;
    /// Ends a schedule (once); audited.
    async fn end_schedule(&self, ctx: &AuditCtx, id: ScheduleId, by: UserId) -> DbResult<()>;

    // ---- dosing ----
    /// Appends a dose evaluation to the drug-library log; audited.
    async fn append_dose_evaluation(&self, ctx: &AuditCtx, e: &ketacare_domain::dose::DoseEvaluation) -> DbResult<()>;
    /// Dose evaluations from `from` (inclusive) to `to` (exclusive), oldest first.
    async fn list_dose_evaluations(
        &self,
        from: chrono::DateTime<chrono::Utc>,
        to: chrono::DateTime<chrono::Utc>,
    ) -> DbResult<Vec<ketacare_domain::dose::DoseEvaluation>>;

    // ---- two-person policy changes ----
    /// Stores a proposal; audited.
    async fn create_policy_proposal(&self, ctx: &AuditCtx, p: &PolicyProposal) -> DbResult<()>;
    /// Proposals, newest first (open only, or all).
    async fn list_policy_proposals(&self, open_only: bool) -> DbResult<Vec<PolicyProposal>>;
    /// Decides an open proposal once; an approval appends the policy version in the same
    /// transaction. `NotFound` for an unknown id, `Conflict` when already decided or when the
    /// decider proposed it.
    async fn decide_policy_proposal(&self, ctx: &AuditCtx, id: uuid::Uuid, d: &ProposalDecision) -> DbResult<PolicyProposal>;

    // ---- clinic policy ----
    /// Appends a policy version; audited.
    async fn set_policy(&self, ctx: &AuditCtx, v: &PolicyVersion) -> DbResult<()>;
    /// The latest version of every policy key that has one.
    async fn current_policies(&self) -> DbResult<Vec<PolicyVersion>>;

    // ---- care teams and emergency access ----
    /// Adds a clinician to a patient's care team; audited. [`DbError::Conflict`] when they are
    /// on it already.
    async fn add_care_team_member(&self, ctx: &AuditCtx, m: &CareTeamMember) -> DbResult<()>;
    /// Removes a clinician from a patient's care team (the membership ends once, with who and
    /// why); audited. [`DbError::NotFound`] when they are not on it.
    async fn remove_care_team_member(&self, ctx: &AuditCtx, patient: PatientId, user: UserId, reason: &str) -> DbResult<()>;
    /// A patient's current care team, in the order added; audited as a read.
    async fn care_team(&self, ctx: &AuditCtx, patient: PatientId) -> DbResult<Vec<CareTeamMember>>;
    /// The patient a questionnaire request, safety alert, schedule, record or treatment session
    /// belongs to (by its id); `None` for an unknown id. Not audited: it reads no patient data,
    /// and the use case checks the scope before its audited read.
    async fn patient_of(&self, thing: Owned, id: &str) -> DbResult<Option<PatientId>>;
    /// The patients whose current care team `user` is on (ids only).
    async fn care_team_patients(&self, user: UserId) -> DbResult<Vec<PatientId>>;
    /// Stores an emergency access; audited with `purpose=emergency` and its reason.
    async fn create_emergency_access(&self, ctx: &AuditCtx, g: &EmergencyAccess) -> DbResult<()>;
    /// The emergency accesses of `user` in force at `now`.
    async fn active_emergency_access(&self, user: UserId, now: chrono::DateTime<chrono::Utc>) -> DbResult<Vec<EmergencyAccess>>;
    /// Emergency accesses, newest first: the unreviewed ones, or the latest `limit` of all.
    async fn list_emergency_access(&self, unreviewed_only: bool, limit: i64) -> DbResult<Vec<EmergencyAccess>>;
    /// Records the medical director's review of an emergency access, once; audited.
    /// [`DbError::NotFound`] for an unknown id, [`DbError::Conflict`] when already reviewed.
    async fn review_emergency_access(&self, ctx: &AuditCtx, id: uuid::Uuid, review: &AccessReview) -> DbResult<EmergencyAccess>;
}
