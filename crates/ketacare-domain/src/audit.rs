//! The audit entry model. One row per read or write of patient data, and per security event
//! (login, logout, failed login, access denied). Columns map one-to-one to FHIR AuditEvent.

use crate::access::Role;
use crate::ids::{PatientId, UserId};
use chrono::{DateTime, Utc};

/// FHIR AuditEvent action codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditAction {
    /// Create.
    Create,
    /// Read / view.
    Read,
    /// Update (amend).
    Update,
    /// Delete (void).
    Delete,
    /// Execute: login, logout, search, export.
    Execute,
}

impl AuditAction {
    /// FHIR code: C, R, U, D, E.
    pub fn code(self) -> &'static str {
        match self {
            AuditAction::Create => "C",
            AuditAction::Read => "R",
            AuditAction::Update => "U",
            AuditAction::Delete => "D",
            AuditAction::Execute => "E",
        }
    }
    /// Parses a FHIR code.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "C" => Ok(Self::Create),
            "R" => Ok(Self::Read),
            "U" => Ok(Self::Update),
            "D" => Ok(Self::Delete),
            "E" => Ok(Self::Execute),
            _ => Err("must be one of C, R, U, D, E".to_owned()),
        }
    }
    /// Label.
    pub fn label(self) -> &'static str {
        match self {
            AuditAction::Create => "create",
            AuditAction::Read => "read",
            AuditAction::Update => "amend",
            AuditAction::Delete => "void",
            AuditAction::Execute => "execute",
        }
    }
}

/// Outcome of the audited action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditOutcome {
    /// Succeeded.
    Success,
    /// Refused: not authenticated, not permitted, or invalid input.
    Denied,
    /// Asked-for record did not exist.
    NotFound,
}

impl AuditOutcome {
    /// Stable code.
    pub fn code(self) -> &'static str {
        match self {
            AuditOutcome::Success => "success",
            AuditOutcome::Denied => "denied",
            AuditOutcome::NotFound => "not_found",
        }
    }
    /// Parses a code.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "success" => Ok(Self::Success),
            "denied" => Ok(Self::Denied),
            "not_found" => Ok(Self::NotFound),
            _ => Err("must be success, denied or not_found".to_owned()),
        }
    }
}

/// Who acted and from where: passed into every audited storage call.
#[derive(Clone, Debug)]
pub struct Actor {
    /// User id (None only for failed logins of unknown users).
    pub user_id: Option<UserId>,
    /// Username as typed or as stored.
    pub username: String,
    /// Role, if authenticated.
    pub role: Option<Role>,
    /// Session or token reference (a non-secret id).
    pub session_ref: Option<String>,
    /// Client network address.
    pub client_addr: Option<String>,
}

/// A new audit entry (the store assigns the sequence number).
#[derive(Clone, Debug)]
pub struct AuditEvent {
    /// When (server clock, UTC).
    pub recorded_at: DateTime<Utc>,
    /// Who.
    pub actor: Actor,
    /// Action code.
    pub action: AuditAction,
    /// Outcome.
    pub outcome: AuditOutcome,
    /// Entity type, e.g. `Patient`, `Record/observation`, `Session`, `AuditEvent`.
    pub entity_type: String,
    /// Entity id, if one record.
    pub entity_id: Option<String>,
    /// Patient concerned, if any.
    pub patient_id: Option<PatientId>,
    /// Short description (query parameters for searches, reason for amendments); never PHI values.
    pub detail: Option<String>,
}

/// A stored audit entry.
#[derive(Clone, Debug)]
pub struct AuditEntry {
    /// Sequence number, strictly increasing.
    pub seq: i64,
    /// The event.
    pub event: AuditEvent,
}
