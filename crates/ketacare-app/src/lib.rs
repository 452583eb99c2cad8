//! Ketacare's use cases.
//!
//! [`App`] is the one entry point the web layer and the CLI call. Every method that touches
//! patient data takes a [`Principal`] (who is asking), checks the role's permission (denials are
//! audited), validates raw input through the domain's constructors, and calls the store with an
//! audit context so the audit row lands in the same transaction. Time comes from a [`Clock`]
//! (injected, so tests can move it) and ids from UUID v4.

pub mod access;
pub mod audit_chain;
mod auth;
mod clock;
mod dosing;
mod error;
pub mod export;
pub mod fhir;
mod mfa;
mod outcomes;
mod patients;
mod pk;
mod records;
pub mod research;
mod safety;
mod screening;
pub mod secret_box;
mod session;

pub use auth::{token_hash, NewUserInput, Principal, PrincipalKind};
pub use clock::{Clock, FixedClock, SystemClock};
pub use dosing::{CheckInput, DosingView, OrderInput, TitrationView, LIBRARY_FIELDS};
pub use error::AppError;
pub use mfa::{Enrolment, LoginStep, MfaStatus, SignedIn};
pub use outcomes::{LinkProblem, LoadedWording, OpenQuestionnaire, OutcomeView, ScoredAssessment, SentRequest, Series, SessionMarker};
pub use patients::{Chart, DeidentifiedPatient, Measurement};
pub use pk::{dose_events, Exposure};
pub use records::{MeasurementInput, RecordInput};
pub use safety::{review_evidence, BoardRow, SafetyView, ScaleTrend};
pub use screening::{LiverInput, ScreeningView, SignInput, VitalsInput};
pub use session::{
    BoardChair, BookingInput, ChecksInput, GateView, IngestOutcome, LiveAlarm, MonitorBatch, Prompt, ReadingInput, SessionAction,
    SessionView,
};

use chrono::Duration;
use ketacare_db::Store;
use ketacare_knowledge::Knowledge;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Session and security settings (from configuration).
#[derive(Clone, Debug)]
pub struct Settings {
    /// Inactivity timeout of a login session.
    pub session_idle: Duration,
    /// Absolute lifetime of a login session.
    pub session_absolute: Duration,
    /// Secret used to derive research pseudonyms (never shown).
    pub pseudonym_key: String,
    /// Account lockout and the per-address limit on failed logins.
    pub login: ketacare_domain::login::LoginProtection,
    /// The key that signs checkpoints of the audit chain (none: the chain is kept, no
    /// checkpoint is signed).
    pub audit_key: Option<audit_chain::AuditKey>,
    /// How often a checkpoint of the audit chain is signed.
    pub audit_checkpoint_every: Duration,
    /// The key that seals TOTP secrets at rest (none: they are stored plain).
    pub mfa_key: Option<secret_box::MfaKey>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            session_idle: Duration::minutes(15),
            session_absolute: Duration::hours(12),
            pseudonym_key: "ketacare".into(),
            login: ketacare_domain::login::LoginProtection::default(),
            audit_key: None,
            audit_checkpoint_every: audit_chain::default_checkpoint_every(),
            mfa_key: None,
        }
    }
}

/// The application: store, clock, knowledge and settings.
pub struct App {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    knowledge: Arc<Knowledge>,
    settings: Settings,
    hashing: Arc<Semaphore>,
    changes: tokio::sync::broadcast::Sender<String>,
    trends: std::sync::Mutex<std::collections::HashMap<ketacare_domain::ids::RecordId, session::Trend>>,
    closing: std::sync::atomic::AtomicBool,
    /// Failed logins per client address (this server's memory).
    login_addresses: std::sync::Mutex<ketacare_domain::limiter::SlidingWindowLimiter>,
    /// Exact-MRN lookups outside the care teams, per clinician (this server's memory).
    outside_lookups: std::sync::Mutex<ketacare_domain::limiter::SlidingWindowLimiter>,
    /// When this server last saw a checkpoint signed, and its position.
    audit_checkpoint: std::sync::Mutex<Option<(chrono::DateTime<chrono::Utc>, i64)>>,
}

/// Clinic policy key of the clinic's name; the name (say "Riverside Ketamine Clinic") is not
/// clinical, so it has no knowledge-file default.
pub const CLINIC_NAME_KEY: &str = "clinic.name";
/// The name shown until the clinic sets its own.
const DEFAULT_CLINIC_NAME: &str = "Ketacare clinic";

impl App {
    /// The clinic's name (clinic policy `clinic.name`, or a neutral name when unset): on
    /// reports and as the issuer an authenticator app shows.
    pub async fn clinic_name(&self) -> Result<String, AppError> {
        Ok(self.policy_value(CLINIC_NAME_KEY).await?.filter(|v| !v.trim().is_empty()).unwrap_or_else(|| DEFAULT_CLINIC_NAME.to_owned()))
    }

    /// The value in force of one clinic-policy key, when the clinic set one (`None`: the
    /// default applies).
    pub(crate) async fn policy_value(&self, key: &str) -> Result<Option<String>, AppError> {
        Ok(self.store.current_policies().await?.into_iter().find(|v| v.key == key).and_then(|v| v.value))
    }

    /// Builds the application.
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, knowledge: Arc<Knowledge>, settings: Settings) -> Self {
        // At most two password hashes at once, so a login flood cannot starve clinical requests.
        Self {
            store,
            clock,
            knowledge,
            settings,
            hashing: Arc::new(Semaphore::new(2)),
            changes: tokio::sync::broadcast::channel(1024).0,
            trends: Default::default(),
            closing: Default::default(),
            login_addresses: Default::default(),
            outside_lookups: Default::default(),
            audit_checkpoint: Default::default(),
        }
    }
    /// The store (for health checks and shutdown).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }
    /// The clinical knowledge in force.
    pub fn knowledge(&self) -> &Knowledge {
        &self.knowledge
    }
    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }
    /// Settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }
}
