//! Whose charts a clinician may open: the clinic's chart scope, care teams and emergency
//! ("break-glass") access.
//!
//! Every use case that reads or writes one patient's data calls [`App::authorize_patient`]
//! first; every list of patients is narrowed with [`App::patient_scope`]. Under the clinic
//! policy `access.chart_scope = all` (the default) both let every clinician through. Under
//! `care_team` a nurse or prescriber opens the charts of the patients whose care team they are
//! on, and any other chart only after giving a reason: an emergency access, which lasts
//! [`EMERGENCY_ACCESS_HOURS`], is flagged in the audit trail and waits for the medical
//! director's review. The medical director always sees every chart.

use std::collections::HashSet;

use chrono::Duration;
use ketacare_db::{AccessReview, AuditFilter, AuditSort, CareTeamMember, EmergencyAccess, Owned, Page, PolicyVersion, User};
use ketacare_domain::access::{check_emergency_reason, ChartScope, Permission, Role, EMERGENCY_ACCESS_HOURS};
use ketacare_domain::audit::{AuditAction, AuditEntry, AuditEvent, AuditOutcome};
use ketacare_domain::ids::{PatientId, UserId};
use ketacare_domain::record::Reason;
use ketacare_domain::validation::FieldErrors;
use uuid::Uuid;

use crate::{App, AppError, Principal};

/// How a clinician came to open a chart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PatientAccess {
    /// The whole clinic (scope `all`, or the medical director) or the patient's care team.
    Usual,
    /// Through an emergency access in force.
    Emergency(EmergencyAccess),
}

/// The patients a clinician may see in lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PatientScope {
    /// Every patient.
    All,
    /// These patients only (care teams and emergency accesses in force).
    Only(HashSet<PatientId>),
}

impl PatientScope {
    /// Whether `id` is in scope.
    pub fn allows(&self, id: PatientId) -> bool {
        match self {
            PatientScope::All => true,
            PatientScope::Only(ids) => ids.contains(&id),
        }
    }
}

/// A care-team member with their account.
#[derive(Clone, Debug)]
pub struct TeamMember {
    /// The membership.
    pub membership: CareTeamMember,
    /// The account (absent only if it was removed from the database by hand).
    pub user: Option<User>,
}

/// An emergency access with what was done under it, for the medical director's review.
#[derive(Clone, Debug)]
pub struct EmergencyAccessReport {
    /// The access.
    pub access: EmergencyAccess,
    /// The patient's MRN and name, as the director sees them.
    pub patient_label: String,
    /// The audit entries of that clinician on that patient while it was in force.
    pub trail: Vec<AuditEntry>,
}

impl App {
    /// The clinic's chart scope (the default until the medical director changes it).
    pub async fn chart_scope(&self) -> Result<ChartScope, AppError> {
        let value = self.policy_value(ChartScope::POLICY_KEY).await?;
        // A stored value was checked when it was set; one that no longer reads falls back to
        // the narrower scope, which shows less, not more.
        Ok(value.map_or(ChartScope::default(), |v| ChartScope::parse(&v).unwrap_or(ChartScope::CareTeam)))
    }

    /// Sets the chart scope (medical director; a reason is required; versioned and audited).
    pub async fn set_chart_scope(&self, p: &Principal, value: &str, reason: &str) -> Result<ChartScope, AppError> {
        self.authorize(p, Permission::ManagePolicy, "ClinicPolicy").await?;
        let mut e = FieldErrors::new();
        let scope = e.check("value", ChartScope::parse(value));
        let reason = e.check("reason", Reason::parse(reason));
        let (Some(scope), Some(reason)) = (scope, reason) else { return Err(e.into()) };
        let v = PolicyVersion {
            key: ChartScope::POLICY_KEY.into(),
            value: Some(scope.code().into()),
            reason: reason.as_str().to_owned(),
            set_by: p.user.id,
            set_by_name: p.user.username.as_str().to_owned(),
            set_at: self.clock.now(),
        };
        self.store.set_policy(&self.ctx(p, "operations"), &v).await?;
        Ok(scope)
    }

    /// The patients `p` may see in lists.
    pub async fn patient_scope(&self, p: &Principal) -> Result<PatientScope, AppError> {
        if self.chart_scope().await?.sees_every_chart(p.role()) {
            return Ok(PatientScope::All);
        }
        let mut ids: HashSet<PatientId> = self.store.care_team_patients(p.user.id).await?.into_iter().collect();
        ids.extend(self.store.active_emergency_access(p.user.id, self.clock.now()).await?.into_iter().map(|g| g.patient_id));
        Ok(PatientScope::Only(ids))
    }

    /// The patients `p` reaches without an emergency access: every patient, or those of
    /// their care teams. The identified bulk export uses it: an emergency access opens one
    /// chart to treat, not a way to take the patient's data away in bulk.
    pub async fn usual_patient_scope(&self, p: &Principal) -> Result<PatientScope, AppError> {
        if self.chart_scope().await?.sees_every_chart(p.role()) {
            return Ok(PatientScope::All);
        }
        Ok(PatientScope::Only(self.store.care_team_patients(p.user.id).await?.into_iter().collect()))
    }

    /// How `p` may open patient `id`'s chart without an emergency access, if at all.
    async fn usual_access(&self, p: &Principal, id: PatientId) -> Result<bool, AppError> {
        Ok(self.chart_scope().await?.sees_every_chart(p.role()) || self.store.care_team_patients(p.user.id).await?.contains(&id))
    }

    /// Checks that `p` may open patient `id`'s data: the permission to read patients, then the
    /// chart scope. Outside it, the refusal is audited and returned as
    /// [`AppError::OutsideCareTeam`], which offers an emergency access.
    pub async fn authorize_patient(&self, p: &Principal, id: PatientId) -> Result<PatientAccess, AppError> {
        self.authorize(p, Permission::ReadPatients, "Patient").await?;
        if self.usual_access(p, id).await? {
            return Ok(PatientAccess::Usual);
        }
        let now = self.clock.now();
        if let Some(g) = self.store.active_emergency_access(p.user.id, now).await?.into_iter().find(|g| g.patient_id == id) {
            p.emergency.store(true, std::sync::atomic::Ordering::Relaxed);
            return Ok(PatientAccess::Emergency(g));
        }
        let e = AuditEvent {
            recorded_at: now,
            actor: p.actor(),
            action: AuditAction::Read,
            outcome: AuditOutcome::Denied,
            entity_type: "Patient".to_owned(),
            entity_id: Some(id.to_string()),
            patient_id: Some(id),
            detail: Some("outside the care team; no emergency access in force".into()),
        };
        self.store.append_audit(&e).await?;
        Err(AppError::OutsideCareTeam(id))
    }

    /// Checks the scope for a thing addressed by its own id (a record, a treatment session, a
    /// questionnaire request, an alert, a schedule), before anything of it is read: the patient
    /// it belongs to must be in scope. An unknown id passes, for the use
    /// case to report as not found.
    pub(crate) async fn authorize_owner(&self, p: &Principal, thing: Owned, id: &str) -> Result<(), AppError> {
        if let Some(patient) = self.store.patient_of(thing, id).await? {
            self.authorize_patient(p, patient).await?;
        }
        Ok(())
    }

    /// Opens a chart outside `p`'s care teams, with a reason, for [`EMERGENCY_ACCESS_HOURS`].
    /// Flagged in the audit trail and listed for the medical director's review. Returns the
    /// access and whether it is new (`false`: one was in force already and is returned).
    pub async fn grant_emergency_access(&self, p: &Principal, id: PatientId, reason: &str) -> Result<(EmergencyAccess, bool), AppError> {
        self.authorize(p, Permission::ReadPatients, "EmergencyAccess").await?;
        let reason = check_emergency_reason(reason).map_err(|m| FieldErrors::single("reason", m))?;
        self.emergency_patient(p, id).await?;
        if self.usual_access(p, id).await? {
            return Err(AppError::Conflict("you can open this chart already (it is in your scope); no emergency access is needed".into()));
        }
        let now = self.clock.now();
        if let Some(g) = self.store.active_emergency_access(p.user.id, now).await?.into_iter().find(|g| g.patient_id == id) {
            return Ok((g, false));
        }
        let g = EmergencyAccess {
            id: Uuid::new_v4(),
            patient_id: id,
            user_id: p.user.id,
            username: p.user.username.as_str().to_owned(),
            reason,
            granted_at: now,
            expires_at: now + Duration::hours(EMERGENCY_ACCESS_HOURS),
            review: None,
        };
        self.store.create_emergency_access(&self.ctx(p, "emergency"), &g).await?;
        Ok((g, true))
    }

    /// Whom an emergency-access form opens: the patient's MRN and name when the clinician gave
    /// that exact MRN (they searched for it), else `None`, so that a bare patient id (from a
    /// link or the board) does not reveal a name. `NotFound` for an unknown or voided patient.
    pub async fn emergency_target(&self, p: &Principal, id: PatientId, mrn: &str) -> Result<Option<String>, AppError> {
        self.authorize(p, Permission::ReadPatients, "EmergencyAccess").await?;
        let d = self.emergency_patient(p, id).await?.demographics;
        let typed = !mrn.trim().is_empty() && d.mrn.as_str().eq_ignore_ascii_case(mrn.trim());
        Ok(typed.then(|| format!("{} · {}", d.mrn.as_str(), d.name.display())))
    }

    /// A registered, not voided patient, read for an emergency access (audited with
    /// `purpose=emergency`); `NotFound` otherwise.
    async fn emergency_patient(&self, p: &Principal, id: PatientId) -> Result<ketacare_domain::record::PatientVersion, AppError> {
        match self.store.get_patient(&self.ctx(p, "emergency"), id).await? {
            Some(v) if v.action != ketacare_domain::record::VersionAction::Void => Ok(v),
            _ => Err(AppError::NotFound),
        }
    }

    /// A patient's care team (anyone who may open the chart).
    pub async fn care_team(&self, p: &Principal, id: PatientId) -> Result<Vec<TeamMember>, AppError> {
        self.authorize_patient(p, id).await?;
        let users = self.store.list_users().await?;
        Ok(self
            .store
            .care_team(&self.ctx(p, "treatment"), id)
            .await?
            .into_iter()
            .map(|m| TeamMember { user: users.iter().find(|u| u.id == m.user_id).cloned(), membership: m })
            .collect())
    }

    /// Who may change a care team: the medical director, or a clinician on the team, whatever
    /// the scope (so nobody joins teams while every chart is open and keeps them when the
    /// scope narrows; and one who opened the chart in an emergency cannot make it lasting).
    async fn authorize_team_change(&self, p: &Principal, id: PatientId) -> Result<(), AppError> {
        self.authorize(p, Permission::WriteDemographics, "CareTeam").await?;
        self.authorize_patient(p, id).await?;
        if p.role() == Role::MedicalDirector || self.store.care_team_patients(p.user.id).await?.contains(&id) {
            return Ok(());
        }
        Err(AppError::Forbidden)
    }

    /// Adds a clinician (by username) to a patient's care team.
    pub async fn add_to_care_team(&self, p: &Principal, id: PatientId, username: &str) -> Result<TeamMember, AppError> {
        self.authorize_team_change(p, id).await?;
        let clinician = self
            .store
            .find_user_by_username(username.trim())
            .await?
            .map(|(u, _)| u)
            .filter(|u| u.active && matches!(u.role, Role::Prescriber | Role::Nurse | Role::MedicalDirector))
            .ok_or_else(|| FieldErrors::single("username", "must be the username of an active prescriber, nurse or medical director"))?;
        let membership = self.add_member(p, id, clinician.id).await.map_err(|e| match e {
            AppError::Conflict(_) => AppError::from(FieldErrors::single("username", "is on this patient's care team already")),
            other => other,
        })?;
        Ok(TeamMember { membership, user: Some(clinician) })
    }

    /// The care-team membership of the clinician registering patient `id` (nurses and
    /// prescribers), so that they keep the chart under the care-team scope; stored with the
    /// registration.
    pub(crate) fn registrant_membership(&self, p: &Principal, id: PatientId) -> Option<CareTeamMember> {
        matches!(p.role(), Role::Prescriber | Role::Nurse).then(|| self.membership(p, id, p.user.id))
    }

    /// Adds the registering clinician to the team of a patient created outside
    /// [`App::register_patient`] (a FHIR import).
    pub(crate) async fn add_registrant_to_team(&self, p: &Principal, id: PatientId) -> Result<(), AppError> {
        if let Some(m) = self.registrant_membership(p, id) {
            self.store.add_care_team_member(&self.ctx(p, "treatment"), &m).await?;
        }
        Ok(())
    }

    fn membership(&self, p: &Principal, id: PatientId, user: UserId) -> CareTeamMember {
        CareTeamMember {
            id: Uuid::new_v4(),
            patient_id: id,
            user_id: user,
            added_by: p.user.id,
            added_by_name: p.user.username.as_str().to_owned(),
            added_at: self.clock.now(),
        }
    }

    async fn add_member(&self, p: &Principal, id: PatientId, user: UserId) -> Result<CareTeamMember, AppError> {
        let m = self.membership(p, id, user);
        self.store.add_care_team_member(&self.ctx(p, "treatment"), &m).await?;
        Ok(m)
    }

    /// Removes a clinician from a patient's care team, with a reason.
    pub async fn remove_from_care_team(&self, p: &Principal, id: PatientId, user: UserId, reason: &str) -> Result<(), AppError> {
        self.authorize_team_change(p, id).await?;
        let reason = Reason::parse(reason).map_err(|m| FieldErrors::single("reason", m))?;
        Ok(self.store.remove_care_team_member(&self.ctx(p, "treatment"), id, user, reason.as_str()).await?)
    }

    /// Emergency accesses for the medical director: the unreviewed ones (or the latest 200 of
    /// all), each with what the clinician did under it.
    pub async fn emergency_accesses(&self, p: &Principal, all: bool) -> Result<Vec<EmergencyAccessReport>, AppError> {
        self.authorize(p, Permission::ReviewEmergencyAccess, "EmergencyAccess").await?;
        let ctx = self.ctx(p, "operations");
        let mut out = Vec::new();
        for access in self.store.list_emergency_access(!all, if all { 200 } else { 1000 }).await? {
            let patient_label = match self.store.get_patient(&ctx, access.patient_id).await? {
                Some(v) => format!("{} · {}", v.demographics.mrn.as_str(), v.demographics.name.display()),
                None => access.patient_id.to_string(),
            };
            let filter = AuditFilter {
                username: Some(access.username.clone()),
                patient_id: Some(access.patient_id),
                from: Some(access.granted_at - Duration::seconds(1)),
                to: Some(access.expires_at),
                sort: AuditSort::default(),
                ascending: true,
                page: Page { limit: 500, offset: 0 },
                ..AuditFilter::default()
            };
            let trail = self.store.search_audit(&ctx, &filter).await?;
            out.push(EmergencyAccessReport { access, patient_label, trail });
        }
        Ok(out)
    }

    /// The medical director records the review of an emergency access, once.
    pub async fn review_emergency_access(&self, p: &Principal, id: &str, note: &str) -> Result<EmergencyAccess, AppError> {
        self.authorize(p, Permission::ReviewEmergencyAccess, "EmergencyAccess").await?;
        let id = Uuid::parse_str(id.trim()).map_err(|_| AppError::NotFound)?;
        let note = Reason::parse(note).map_err(|m| FieldErrors::single("note", m))?;
        let review = AccessReview {
            by: p.user.id,
            by_name: p.user.username.as_str().to_owned(),
            at: self.clock.now(),
            note: note.as_str().to_owned(),
        };
        Ok(self.store.review_emergency_access(&self.ctx(p, "operations"), id, &review).await?)
    }
}
