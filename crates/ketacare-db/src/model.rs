//! Types the storage interface uses beyond the domain's own.

use chrono::{DateTime, Utc};
use ketacare_domain::access::{Role, Username};
use ketacare_domain::audit::{Actor, AuditAction, AuditOutcome};
use ketacare_domain::ids::{PatientId, SessionId, TokenId, UserId};

/// Who is acting, and when: every audited store call takes one.
#[derive(Clone, Debug)]
pub struct AuditCtx {
    /// The actor.
    pub actor: Actor,
    /// Server time of the call.
    pub at: DateTime<Utc>,
    /// Why the data is accessed (`treatment`, `research`, `operations`).
    pub purpose: &'static str,
}

/// A staff or service account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// Id.
    pub id: UserId,
    /// Login name.
    pub username: Username,
    /// Name shown in the UI and in history.
    pub display_name: String,
    /// Role.
    pub role: Role,
    /// Whether the account may log in.
    pub active: bool,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Consecutive failed logins and the lock they caused, if any.
    pub lock: ketacare_domain::login::AccountLock,
}

/// A user to create.
#[derive(Clone, Debug)]
pub struct NewUser {
    /// Id.
    pub id: UserId,
    /// Login name.
    pub username: Username,
    /// Display name.
    pub display_name: String,
    /// Role.
    pub role: Role,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// Created.
    pub created_at: DateTime<Utc>,
}

/// A server-side login session. Only the SHA-256 of the cookie token is stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredSession {
    /// Id (a non-secret reference used in audit rows).
    pub id: SessionId,
    /// SHA-256 of the token, hex.
    pub token_hash: String,
    /// Owner.
    pub user_id: UserId,
    /// Anti-forgery token for forms.
    pub csrf_token: String,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last request.
    pub last_seen_at: DateTime<Utc>,
    /// Absolute expiry.
    pub expires_at: DateTime<Utc>,
    /// Client address at login.
    pub client_addr: Option<String>,
}

/// An account's two-step sign-in enrolment.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpEnrolment {
    /// The shared secret, base32.
    pub secret: String,
    /// When it was enrolled.
    pub enrolled_at: DateTime<Utc>,
    /// The last 30-second step whose code was accepted.
    pub last_step: i64,
}

impl std::fmt::Debug for TotpEnrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpEnrolment").field("enrolled_at", &self.enrolled_at).field("last_step", &self.last_step).finish_non_exhaustive()
    }
}

/// What a pending sign-in step is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChallengePurpose {
    /// The password was right; a code (or recovery code) is awaited.
    Login,
    /// At sign-in, for a role that requires it: a new secret was shown; its first code is
    /// awaited to confirm the enrolment and sign in.
    Enrol,
    /// From a signed-in person's Account page: a new secret was shown; its first code is
    /// awaited to confirm it (never signs anyone in).
    AccountEnrol,
}

impl ChallengePurpose {
    /// Database code.
    pub fn code(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::Enrol => "enrol",
            Self::AccountEnrol => "account_enrol",
        }
    }
}

/// A pending sign-in step. Only the SHA-256 of its token is stored.
#[derive(Clone, PartialEq, Eq)]
pub struct LoginChallenge {
    /// SHA-256 of the token, hex.
    pub token_hash: String,
    /// The account.
    pub user_id: UserId,
    /// What it is for.
    pub purpose: ChallengePurpose,
    /// The secret being enrolled (base32), for the enrolment purposes.
    pub pending_secret: Option<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Closes.
    pub expires_at: DateTime<Utc>,
    /// Codes tried so far, this one included.
    pub attempts: u32,
}

impl std::fmt::Debug for LoginChallenge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginChallenge")
            .field("user_id", &self.user_id)
            .field("purpose", &self.purpose)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

/// An API token issued by an administrator. Only the SHA-256 of the secret is stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiToken {
    /// Id.
    pub id: TokenId,
    /// The account the token acts as.
    pub user_id: UserId,
    /// What it is for (e.g. "monitor gateway chair 3").
    pub label: String,
    /// SHA-256 of the secret, hex.
    pub token_hash: String,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Issuing administrator.
    pub created_by: UserId,
    /// When revoked, if revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Paging.
#[derive(Clone, Copy, Debug)]
pub struct Page {
    /// Rows per page (1–500).
    pub limit: i64,
    /// Rows to skip.
    pub offset: i64,
}

impl Default for Page {
    fn default() -> Self {
        Self { limit: 50, offset: 0 }
    }
}

/// Audit trail search.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    /// Username (exact).
    pub username: Option<String>,
    /// Patient.
    pub patient_id: Option<PatientId>,
    /// Action.
    pub action: Option<AuditAction>,
    /// Outcome.
    pub outcome: Option<AuditOutcome>,
    /// Entity type (exact).
    pub entity_type: Option<String>,
    /// From (inclusive).
    pub from: Option<DateTime<Utc>>,
    /// To (exclusive).
    pub to: Option<DateTime<Utc>>,
    /// Sort column.
    pub sort: AuditSort,
    /// Ascending instead of newest first.
    pub ascending: bool,
    /// Paging.
    pub page: Page,
}

/// Columns the audit report can be sorted by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AuditSort {
    /// Time (sequence).
    #[default]
    Time,
    /// Username.
    User,
    /// Patient.
    Patient,
    /// Action.
    Action,
    /// Entity type.
    Entity,
    /// Outcome.
    Outcome,
}

impl AuditSort {
    /// SQL column (fixed strings only; never user text).
    pub fn column(self) -> &'static str {
        match self {
            AuditSort::Time => "seq",
            AuditSort::User => "username",
            AuditSort::Patient => "patient_id",
            AuditSort::Action => "action",
            AuditSort::Entity => "entity_type",
            AuditSort::Outcome => "outcome",
        }
    }
    /// Parses a sort key.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "" | "time" => Ok(Self::Time),
            "user" => Ok(Self::User),
            "patient" => Ok(Self::Patient),
            "action" => Ok(Self::Action),
            "entity" => Ok(Self::Entity),
            "outcome" => Ok(Self::Outcome),
            _ => Err("must be time, user, patient, action, entity or outcome".to_owned()),
        }
    }
}

/// One version of a clinic-policy value (`value` `None` = back to the knowledge default).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyVersion {
    /// Key, e.g. `instrument.gad7.response_percent`.
    pub key: String,
    /// The value as text, or `None` to return to the default.
    pub value: Option<String>,
    /// Why it was changed.
    pub reason: String,
    /// Who changed it.
    pub set_by: ketacare_domain::ids::UserId,
    /// Their username.
    pub set_by_name: String,
    /// When.
    pub set_at: chrono::DateTime<chrono::Utc>,
}

/// A proposed change of a clinic-policy value that needs a second person (the drug library).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyProposal {
    /// Id.
    pub id: uuid::Uuid,
    /// Key, e.g. `drug_library.iv.soft_max_mg_per_kg`.
    pub key: String,
    /// Proposed value (`None`: back to the knowledge default).
    pub value: Option<String>,
    /// Why.
    pub reason: String,
    /// Who proposed it.
    pub proposed_by: ketacare_domain::ids::UserId,
    /// Their username.
    pub proposed_by_name: String,
    /// When.
    pub proposed_at: chrono::DateTime<chrono::Utc>,
    /// The decision, once made.
    pub decision: Option<ProposalDecision>,
}

/// The second person's decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProposalDecision {
    /// Approved (the value is in force) or rejected.
    pub approved: bool,
    /// Who decided.
    pub by: ketacare_domain::ids::UserId,
    /// Their username.
    pub by_name: String,
    /// When.
    pub at: chrono::DateTime<chrono::Utc>,
    /// Why (required to reject).
    pub reason: Option<String>,
}

/// A thing with its own id that belongs to one patient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owned {
    /// A questionnaire request.
    QuestionnaireRequest,
    /// A safety alert.
    SafetyAlert,
    /// An assessment schedule.
    Schedule,
    /// A clinical record (any of its versions).
    Record,
    /// A treatment session.
    TreatmentSession,
}

impl Owned {
    /// The query of its patient by its id (fixed text, never user input).
    pub fn patient_query(self) -> &'static str {
        match self {
            Owned::QuestionnaireRequest => "SELECT patient_id FROM questionnaire_requests WHERE id = $1",
            Owned::SafetyAlert => "SELECT patient_id FROM safety_alerts WHERE id = $1",
            Owned::Schedule => "SELECT patient_id FROM assessment_schedules WHERE id = $1",
            Owned::Record => "SELECT patient_id FROM record_versions WHERE record_id = $1 LIMIT 1",
            Owned::TreatmentSession => "SELECT patient_id FROM treatment_sessions WHERE id = $1",
        }
    }
}

/// A clinician on a patient's care team (added once, removed once).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CareTeamMember {
    /// Id of the membership.
    pub id: uuid::Uuid,
    /// The patient.
    pub patient_id: PatientId,
    /// The clinician.
    pub user_id: UserId,
    /// Who added them.
    pub added_by: UserId,
    /// Their username.
    pub added_by_name: String,
    /// When.
    pub added_at: DateTime<Utc>,
}

/// An emergency ("break-glass") access to a chart outside a clinician's care teams.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmergencyAccess {
    /// Id.
    pub id: uuid::Uuid,
    /// The patient.
    pub patient_id: PatientId,
    /// The clinician who opened the chart.
    pub user_id: UserId,
    /// Their username.
    pub username: String,
    /// Why, in their words.
    pub reason: String,
    /// When it was granted.
    pub granted_at: DateTime<Utc>,
    /// When it ends.
    pub expires_at: DateTime<Utc>,
    /// The medical director's review, once done.
    pub review: Option<AccessReview>,
}

/// The medical director's review of an emergency access.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessReview {
    /// Who reviewed.
    pub by: UserId,
    /// Their username.
    pub by_name: String,
    /// When.
    pub at: DateTime<Utc>,
    /// What they concluded.
    pub note: String,
}
