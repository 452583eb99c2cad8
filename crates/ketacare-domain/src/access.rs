//! Roles and what each may do.
//!
//! Access is denied by default: a role has exactly the permissions listed in
//! [`Role::permissions`]. Researchers see de-identified data only; administrators manage
//! accounts and read the audit trail but do not open charts.

use std::fmt;

/// A user's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Manages user accounts and API tokens; reads the audit trail.
    Admin,
    /// Clinical lead: everything a prescriber does, plus the audit trail and research views.
    MedicalDirector,
    /// Physician or nurse practitioner who prescribes.
    Prescriber,
    /// Nurse.
    Nurse,
    /// Sees de-identified data only.
    Researcher,
}

/// Something a user may be allowed to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Open identified patient data (lists, charts, history).
    ReadPatients,
    /// Register a patient and amend or void demographics.
    WriteDemographics,
    /// Record, amend and void diagnoses.
    WriteDiagnoses,
    /// Record, amend and void medications, allergies, encounters and observations (incl. weight).
    WriteClinical,
    /// See the de-identified cohort.
    ReadDeidentified,
    /// Search and read the audit trail.
    ReadAudit,
    /// Create and deactivate users, issue and revoke API tokens.
    ManageUsers,
    /// Change clinic-policy values (replace a knowledge-file default, with a reason).
    ManagePolicy,
    /// Sign a screening verdict (prescribers and the medical director).
    SignScreening,
    /// Accept a finding that needs review (a relative contraindication, missing data) with a
    /// written reason. Medical director only; absolute contraindications cannot be accepted.
    AcceptScreeningFinding,
    /// Plan protocols, order doses and approve another prescriber's soft-limit override
    /// (prescribers and the medical director).
    Prescribe,
    /// Review emergency ("break-glass") accesses to charts outside a clinician's care teams
    /// (medical director).
    ReviewEmergencyAccess,
}

impl Role {
    /// All roles.
    pub const ALL: [Role; 5] = [Role::Admin, Role::MedicalDirector, Role::Prescriber, Role::Nurse, Role::Researcher];

    /// Stable code.
    pub fn code(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::MedicalDirector => "medical_director",
            Role::Prescriber => "prescriber",
            Role::Nurse => "nurse",
            Role::Researcher => "researcher",
        }
    }

    /// Display label.
    pub fn label(self) -> &'static str {
        match self {
            Role::Admin => "Administrator",
            Role::MedicalDirector => "Medical director",
            Role::Prescriber => "Prescriber",
            Role::Nurse => "Nurse",
            Role::Researcher => "Researcher",
        }
    }

    /// Parses a code.
    pub fn parse(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|r| r.code() == s.trim())
            .ok_or_else(|| "must be one of admin, medical_director, prescriber, nurse, researcher".to_owned())
    }

    /// The permissions of this role.
    pub fn permissions(self) -> &'static [Permission] {
        use Permission::*;
        match self {
            Role::Admin => &[ManageUsers, ReadAudit],
            Role::MedicalDirector => &[
                ReadPatients,
                WriteDemographics,
                WriteDiagnoses,
                WriteClinical,
                ReadDeidentified,
                ReadAudit,
                ManagePolicy,
                SignScreening,
                AcceptScreeningFinding,
                Prescribe,
                ReviewEmergencyAccess,
            ],
            Role::Prescriber => &[ReadPatients, WriteDemographics, WriteDiagnoses, WriteClinical, SignScreening, Prescribe],
            Role::Nurse => &[ReadPatients, WriteDemographics, WriteClinical],
            Role::Researcher => &[ReadDeidentified],
        }
    }

    /// Whether this role has `p`.
    pub fn can(self, p: Permission) -> bool {
        self.permissions().contains(&p)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// A username: 3–40 characters, lower-case letters, digits, `.`, `_` and `-`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Username(String);

impl Username {
    /// Parses and lower-cases.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let t = raw.trim().to_ascii_lowercase();
        if (3..=40).contains(&t.len()) && t.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
            Ok(Self(t))
        } else {
            Err("must be 3 to 40 letters, digits, dots, underscores or hyphens".to_owned())
        }
    }
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Checks a new password: 12 to 128 characters, any characters, not a common password.
///
/// Length rules follow OWASP ASVS 5.0 V6.2 (at least 8, 15 recommended, allow 64 or more, no
/// composition rules); the clinic default of 12 sits between the two.
pub fn check_new_password(pw: &str, username: &str, common: &[&str]) -> Result<(), String> {
    let n = pw.chars().count();
    if n < 12 {
        return Err(format!("must be at least 12 characters (got {n}); a phrase of several words works well"));
    }
    if n > 128 {
        return Err("must be at most 128 characters".to_owned());
    }
    let lower = pw.to_lowercase();
    if !username.is_empty() && lower.contains(&username.to_lowercase()) {
        return Err("must not contain the username".to_owned());
    }
    if common.iter().any(|c| c.eq_ignore_ascii_case(pw)) {
        return Err("is on the list of commonly used passwords; choose another".to_owned());
    }
    Ok(())
}

/// Whose charts a nurse or prescriber opens without giving a reason: clinic policy
/// [`ChartScope::POLICY_KEY`], set by the medical director.
///
/// The medical director, who reviews emergency accesses, always sees every chart.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ChartScope {
    /// Every clinician opens every chart (a small clinic where everyone treats everyone).
    #[default]
    All,
    /// A clinician opens the charts of the patients whose care team they are on; any other chart
    /// only through an emergency access with a reason.
    CareTeam,
}

/// An emergency ("break-glass") access lasts this long: one clinic day, so that it covers the
/// emergency and the treatment session around it but not the next day's work. The medical
/// director reviews every one.
pub const EMERGENCY_ACCESS_HOURS: i64 = 12;

/// Exact-MRN lookups that name a patient outside the clinician's care teams, per clinician per
/// hour (and per server), before further lookups wait: enough for any shift's emergencies, few
/// enough that nobody walks the MRN range to collect names. Each is audited with the patient.
pub const OUTSIDE_LOOKUPS_PER_HOUR: u32 = 20;

/// [`OUTSIDE_LOOKUPS_PER_HOUR`] as a limit, per clinician.
pub fn outside_lookup_limit() -> crate::limiter::WindowLimit {
    crate::limiter::WindowLimit { max: OUTSIDE_LOOKUPS_PER_HOUR, window: chrono::Duration::hours(1) }
}

/// A reason for an emergency access must say something: at least this many characters.
pub const EMERGENCY_REASON_MIN_CHARS: usize = 10;

impl ChartScope {
    /// The clinic-policy key.
    pub const POLICY_KEY: &'static str = "access.chart_scope";

    /// Stable code (`all`, `care_team`).
    pub fn code(self) -> &'static str {
        match self {
            ChartScope::All => "all",
            ChartScope::CareTeam => "care_team",
        }
    }

    /// Parses a code.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim() {
            "all" => Ok(ChartScope::All),
            "care_team" => Ok(ChartScope::CareTeam),
            _ => Err("must be all (every clinician opens every chart) or care_team (a clinician opens their care teams' charts; others only in an emergency, with a reason)".to_owned()),
        }
    }

    /// Whether `role` opens every chart under this scope without a care-team membership.
    pub fn sees_every_chart(self, role: Role) -> bool {
        self == ChartScope::All || role == Role::MedicalDirector
    }
}

/// Checks the reason given for an emergency access.
pub fn check_emergency_reason(reason: &str) -> Result<String, String> {
    let t = reason.trim();
    let n = t.chars().count();
    if n < EMERGENCY_REASON_MIN_CHARS {
        return Err(format!(
            "must say why you need this chart now, in at least {EMERGENCY_REASON_MIN_CHARS} characters (got {n}); the medical director reviews it"
        ));
    }
    if n > 500 {
        return Err(format!("must be at most 500 characters (got {n})"));
    }
    Ok(t.to_owned())
}

#[cfg(test)]
mod scope_tests {
    use super::*;

    #[test]
    fn the_director_sees_every_chart_and_others_only_under_all() {
        for role in [Role::Prescriber, Role::Nurse] {
            assert!(ChartScope::All.sees_every_chart(role));
            assert!(!ChartScope::CareTeam.sees_every_chart(role));
        }
        assert!(ChartScope::CareTeam.sees_every_chart(Role::MedicalDirector));
        assert_eq!(ChartScope::default(), ChartScope::All);
    }

    #[test]
    fn scope_codes_round_trip_and_others_are_refused() {
        for s in [ChartScope::All, ChartScope::CareTeam] {
            assert_eq!(ChartScope::parse(s.code()), Ok(s));
        }
        assert!(ChartScope::parse("team").unwrap_err().contains("care_team"));
    }

    #[test]
    fn an_emergency_reason_must_say_something() {
        assert!(check_emergency_reason("  x  ").unwrap_err().contains("at least 10"));
        assert_eq!(check_emergency_reason(" patient unwell in room 2 ").as_deref(), Ok("patient unwell in room 2"));
        assert!(check_emergency_reason(&"a".repeat(501)).is_err());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn researchers_never_read_identified_patients() {
        assert!(!Role::Researcher.can(Permission::ReadPatients));
        assert!(Role::Researcher.can(Permission::ReadDeidentified));
    }

    #[test]
    fn admins_manage_accounts_but_do_not_open_charts() {
        assert!(Role::Admin.can(Permission::ManageUsers));
        assert!(!Role::Admin.can(Permission::ReadPatients));
    }

    #[test]
    fn nurses_record_weights_but_not_diagnoses() {
        assert!(Role::Nurse.can(Permission::WriteClinical));
        assert!(!Role::Nurse.can(Permission::WriteDiagnoses));
    }

    #[test]
    fn role_codes_round_trip() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.code()).unwrap(), r);
        }
    }

    #[test]
    fn password_rules() {
        assert!(check_new_password("short", "ana", &[]).is_err());
        assert!(check_new_password("correct horse battery", "ana", &[]).is_ok());
        assert!(check_new_password("ana-is-my-password", "ana", &[]).is_err());
        assert!(check_new_password("password1234", "ana", &["password1234"]).is_err());
    }
}
