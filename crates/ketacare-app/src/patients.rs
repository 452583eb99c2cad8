//! Patient registration, demographics amendments, the chart and the de-identified cohort.

use crate::access::PatientScope;
use crate::{App, AppError, Principal};
use chrono::{DateTime, Utc};
use ketacare_db::Page;
use ketacare_domain::access::{Permission, OUTSIDE_LOOKUPS_PER_HOUR};
use ketacare_domain::anthropometry::{bmi, BodyWeight, Height};
use ketacare_domain::coding::loinc;
use ketacare_domain::ids::{PatientId, VersionId};
use ketacare_domain::patient::{age_in_years, DemographicsInput, Mrn, Sex};
use ketacare_domain::record::{ClinicalRecord, PatientVersion, Provenance, Reason, RecordKind, RecordVersion, VersionAction};
use ketacare_domain::validation::FieldErrors;
use rand::Rng;
use rust_decimal::Decimal;

use uuid::Uuid;

/// One weight or height measurement on the chart.
#[derive(Clone, Debug)]
pub struct Measurement<T> {
    /// The value.
    pub value: T,
    /// When measured.
    pub effective: DateTime<Utc>,
    /// The record version it comes from (who recorded it, when, which version).
    pub version: RecordVersion,
}

/// Everything the chart page shows.
#[derive(Clone, Debug)]
pub struct Chart {
    /// Current demographics version.
    pub patient: PatientVersion,
    /// Current (non-voided) records, oldest first.
    pub records: Vec<RecordVersion>,
    /// Voided records (shown collapsed, with their reason).
    pub voided: Vec<RecordVersion>,
    /// Weights, oldest first.
    pub weights: Vec<Measurement<BodyWeight>>,
    /// Heights, oldest first.
    pub heights: Vec<Measurement<Height>>,
}

impl Chart {
    /// Current records of one kind.
    pub fn of_kind(&self, k: RecordKind) -> impl Iterator<Item = &RecordVersion> {
        self.records.iter().filter(move |r| r.record.kind() == k)
    }
    /// Latest weight.
    pub fn latest_weight(&self) -> Option<&Measurement<BodyWeight>> {
        self.weights.last()
    }
    /// Latest height.
    pub fn latest_height(&self) -> Option<&Measurement<Height>> {
        self.heights.last()
    }
    /// BMI from the latest weight and height.
    pub fn bmi(&self) -> Option<Decimal> {
        Some(bmi(self.latest_weight()?.value, self.latest_height()?.value))
    }
}

/// Weights and heights among current records, oldest first.
pub(crate) fn measurements(records: &[RecordVersion]) -> (Vec<Measurement<BodyWeight>>, Vec<Measurement<Height>>) {
    let mut w = Vec::new();
    let mut h = Vec::new();
    for r in records.iter().filter(|r| !r.is_void()) {
        if let ClinicalRecord::Observation(o) = &r.record {
            if let Some(kg) = o.quantity_if(loinc::BODY_WEIGHT, "kg") {
                if let Some(g) = (kg * Decimal::ONE_THOUSAND).trunc().mantissa().try_into().ok().filter(|_| kg.scale() <= 3) {
                    w.push(Measurement { value: BodyWeight::from_grams(g), effective: o.effective, version: r.clone() });
                }
            } else if let Some(cm) = o.quantity_if(loinc::BODY_HEIGHT, "cm") {
                if let Ok(mm) = u32::try_from((cm * Decimal::TEN).round().mantissa()) {
                    h.push(Measurement { value: Height::from_mm(mm), effective: o.effective, version: r.clone() });
                }
            }
        }
    }
    w.sort_by_key(|m| (m.effective, m.version.provenance.recorded_at));
    h.sort_by_key(|m| (m.effective, m.version.provenance.recorded_at));
    (w, h)
}

/// A patient as a researcher sees them: no name, MRN, date of birth or contact details.
#[derive(Clone, Debug)]
pub struct DeidentifiedPatient {
    /// Stable pseudonym (keyed hash of the patient id).
    pub research_id: String,
    /// Age band of five years, e.g. "35-39".
    pub age_band: String,
    /// Administrative sex.
    pub sex: Sex,
    /// Current diagnosis codes (SNOMED CT or other system), with display.
    pub diagnoses: Vec<(String, String)>,
    /// BMI rounded to whole numbers, if weight and height are known.
    pub bmi: Option<Decimal>,
}

impl App {
    fn new_patient_version(
        &self,
        p: &Principal,
        id: PatientId,
        version: u32,
        action: VersionAction,
        input: &DemographicsInput,
        reason: Option<Reason>,
    ) -> Result<PatientVersion, AppError> {
        let now = self.clock.now();
        let demographics = input.validate(now.date_naive(), self.knowledge.age_limits)?;
        Ok(PatientVersion {
            patient_id: id,
            version_id: VersionId::from_uuid(Uuid::new_v4()),
            version,
            action,
            demographics,
            reason,
            provenance: Provenance { user_id: p.user.id, username: p.user.username.as_str().to_owned(), recorded_at: now },
        })
    }

    /// Registers a patient. A blank MRN is assigned (`KC-` and six digits).
    pub async fn register_patient(&self, p: &Principal, input: &DemographicsInput) -> Result<PatientVersion, AppError> {
        self.authorize(p, Permission::WriteDemographics, "Patient").await?;
        let auto = input.mrn.trim().is_empty();
        for _ in 0..5 {
            let mut input = input.clone();
            if auto {
                input.mrn = format!("KC-{:06}", rand::thread_rng().gen_range(0..1_000_000));
            }
            let v = self.new_patient_version(p, PatientId::from_uuid(Uuid::new_v4()), 1, VersionAction::Create, &input, None)?;
            let member = self.registrant_membership(p, v.patient_id);
            match self.store.register_patient_with_member(&self.ctx(p, "treatment"), &v, member.as_ref()).await {
                Ok(()) => return Ok(v),
                Err(ketacare_db::DbError::Conflict(_)) if auto => continue,
                Err(ketacare_db::DbError::Conflict(_)) => {
                    return Err(AppError::Validation(FieldErrors::single(
                        "mrn",
                        "is already used by another patient; check the number or leave it blank to assign one",
                    )))
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(AppError::Conflict("could not assign a free MRN; enter one".into()))
    }

    async fn current_patient(&self, p: &Principal, id: PatientId) -> Result<PatientVersion, AppError> {
        self.store.get_patient(&self.ctx(p, "treatment"), id).await?.ok_or(AppError::NotFound)
    }

    /// Amends demographics; `base_version` is the version the user edited.
    pub async fn amend_patient(
        &self,
        p: &Principal,
        id: PatientId,
        base_version: u32,
        input: &DemographicsInput,
        reason: &str,
    ) -> Result<PatientVersion, AppError> {
        self.authorize(p, Permission::WriteDemographics, "Patient").await?;
        self.authorize_patient(p, id).await?;
        let reason = Reason::parse(reason).map_err(|m| FieldErrors::single("reason", m));
        let built = self.new_patient_version(p, id, base_version + 1, VersionAction::Amend, input, None);
        let (reason, mut v) = match (reason, built) {
            (Ok(r), Ok(v)) => (r, v),
            (r, v) => {
                let mut e = FieldErrors::new();
                if let Err(AppError::Validation(x)) = v {
                    e.extend_prefixed("", x);
                }
                if let Err(x) = r {
                    e.extend_prefixed("", x);
                }
                return Err(AppError::Validation(e));
            }
        };
        v.reason = Some(reason);
        let cur = self.current_patient(p, id).await?;
        if cur.action == VersionAction::Void {
            return Err(AppError::NotFound);
        }
        if cur.version != base_version {
            return Err(AppError::Conflict("the patient record changed since you opened it; reload and try again".into()));
        }
        self.store.append_patient_version(&self.ctx(p, "treatment"), &v).await.map_err(|e| match AppError::from(e) {
            AppError::Conflict(c) if c.contains("mrn") => {
                AppError::Validation(FieldErrors::single("mrn", "is already used by another patient"))
            }
            other => other,
        })?;
        Ok(v)
    }

    /// Voids a patient registration (e.g. a duplicate); the history is kept.
    pub async fn void_patient(&self, p: &Principal, id: PatientId, base_version: u32, reason: &str) -> Result<(), AppError> {
        self.authorize(p, Permission::WriteDemographics, "Patient").await?;
        self.authorize_patient(p, id).await?;
        let reason = Reason::parse(reason).map_err(|m| FieldErrors::single("reason", m))?;
        let cur = self.current_patient(p, id).await?;
        if cur.action == VersionAction::Void {
            return Err(AppError::NotFound);
        }
        if cur.version != base_version {
            return Err(AppError::Conflict("the patient record changed since you opened it; reload and try again".into()));
        }
        let mut v = cur.clone();
        v.version_id = VersionId::from_uuid(Uuid::new_v4());
        v.version = cur.version + 1;
        v.action = VersionAction::Void;
        v.reason = Some(reason);
        v.provenance = Provenance { user_id: p.user.id, username: p.user.username.as_str().to_owned(), recorded_at: self.clock.now() };
        Ok(self.store.append_patient_version(&self.ctx(p, "treatment"), &v).await?)
    }

    /// Current demographics (not voided).
    pub async fn patient(&self, p: &Principal, id: PatientId) -> Result<PatientVersion, AppError> {
        self.authorize(p, Permission::ReadPatients, "Patient").await?;
        self.authorize_patient(p, id).await?;
        let v = self.current_patient(p, id).await?;
        if v.action == VersionAction::Void {
            return Err(AppError::NotFound);
        }
        Ok(v)
    }

    /// The whole chart.
    pub async fn chart(&self, p: &Principal, id: PatientId) -> Result<Chart, AppError> {
        let patient = self.patient(p, id).await?;
        let all = self.store.current_records(&self.ctx(p, "treatment"), id).await?;
        let (voided, records): (Vec<_>, Vec<_>) = all.into_iter().partition(RecordVersion::is_void);
        let (weights, heights) = measurements(&records);
        Ok(Chart { patient, records, voided, weights, heights })
    }

    /// Every version of the demographics, oldest first (voided patients included).
    pub async fn patient_history(&self, p: &Principal, id: PatientId) -> Result<Vec<PatientVersion>, AppError> {
        self.authorize(p, Permission::ReadPatients, "Patient").await?;
        self.authorize_patient(p, id).await?;
        let h = self.store.patient_history(&self.ctx(p, "treatment"), id).await?;
        if h.is_empty() {
            return Err(AppError::NotFound);
        }
        Ok(h)
    }

    /// Searches current patients by name or MRN.
    pub async fn search_patients(&self, p: &Principal, query: &str, page: Page) -> Result<Vec<PatientVersion>, AppError> {
        self.authorize(p, Permission::ReadPatients, "Patient").await?;
        if query.chars().count() > 100 {
            return Err(AppError::Validation(FieldErrors::single("q", "must be at most 100 characters")));
        }
        let ctx = self.ctx(p, "treatment");
        if self.chart_scope().await?.sees_every_chart(p.role()) {
            return Ok(self.store.search_patients(&ctx, query, page).await?);
        }
        // Under the care-team scope the list holds the clinician's own patients (and those of
        // their emergency accesses in force), filtered and paged by the database.
        Ok(self.store.search_patients_in_scope(&ctx, query, p.user.id, self.clock.now(), page).await?)
    }

    /// A patient outside the caller's scope found by exact MRN: their id and a minimal label
    /// (MRN and name), so that a clinician can open the chart in an emergency. `None` when the
    /// MRN is unknown or the patient is in scope (the ordinary search shows them). After
    /// [`OUTSIDE_LOOKUPS_PER_HOUR`] names in an hour, [`AppError::RateLimited`] (audited once).
    pub async fn locate_outside_scope(&self, p: &Principal, mrn: &str) -> Result<Option<(PatientId, String)>, AppError> {
        self.authorize(p, Permission::ReadPatients, "Patient").await?;
        let Ok(mrn) = Mrn::parse(mrn) else { return Ok(None) };
        let scope = self.patient_scope(p).await?;
        if scope == PatientScope::All {
            return Ok(None);
        }
        let now = self.clock.now();
        let key = p.user.id.to_string();
        let limit = ketacare_domain::access::outside_lookup_limit();
        let held = {
            let mut limiter = self.outside_lookups.lock().map_err(|_| AppError::Internal("lookup limiter poisoned".into()))?;
            limiter.blocked_until(&key, now, &limit).map(|until| (until, limiter.first_refusal(&key, until)))
        };
        if let Some((until, first)) = held {
            if first {
                let e = ketacare_domain::audit::AuditEvent {
                    recorded_at: now,
                    actor: p.actor(),
                    action: ketacare_domain::audit::AuditAction::Read,
                    outcome: ketacare_domain::audit::AuditOutcome::Denied,
                    entity_type: "Patient".to_owned(),
                    entity_id: None,
                    patient_id: None,
                    detail: Some(format!("purpose=emergency; {OUTSIDE_LOOKUPS_PER_HOUR} exact-MRN lookups outside the care team within an hour; held until {until}")),
                };
                self.store.append_audit(&e).await?;
            }
            return Err(AppError::RateLimited { retry_after_secs: (until - now).num_seconds().max(1) });
        }
        let found = self
            .store
            .search_patients(&self.ctx(p, "emergency"), mrn.as_str(), Page { limit: 500, offset: 0 })
            .await?
            .into_iter()
            .find(|v| v.demographics.mrn == mrn && !scope.allows(v.patient_id));
        let Some(v) = found else { return Ok(None) };
        // The name was shown outside the care team: the trail names the patient.
        let e = ketacare_domain::audit::AuditEvent {
            recorded_at: self.clock.now(),
            actor: p.actor(),
            action: ketacare_domain::audit::AuditAction::Read,
            outcome: ketacare_domain::audit::AuditOutcome::Success,
            entity_type: "Patient".to_owned(),
            entity_id: Some(v.patient_id.to_string()),
            patient_id: Some(v.patient_id),
            detail: Some("purpose=emergency; found by exact MRN outside the care team (MRN and name shown)".into()),
        };
        self.store.append_audit(&e).await?;
        if let Ok(mut limiter) = self.outside_lookups.lock() {
            limiter.record(&key, now, &limit);
        }
        Ok(Some((v.patient_id, format!("{} · {}", v.demographics.mrn.as_str(), v.demographics.name.display()))))
    }

    /// Looks a patient up by exact MRN (for integrations).
    pub async fn find_by_mrn(&self, p: &Principal, mrn: &str) -> Result<PatientVersion, AppError> {
        let mrn = Mrn::parse(mrn).map_err(|m| FieldErrors::single("mrn", m))?;
        self.search_patients(p, mrn.as_str(), Page { limit: 5, offset: 0 })
            .await?
            .into_iter()
            .find(|v| v.demographics.mrn == mrn)
            .ok_or(AppError::NotFound)
    }

    fn pseudonym(&self, id: PatientId) -> String {
        self.deidentifier().research_id(id)
    }

    /// The de-identified cohort (researchers and the medical director).
    pub async fn research_cohort(&self, p: &Principal) -> Result<Vec<DeidentifiedPatient>, AppError> {
        self.authorize(p, Permission::ReadDeidentified, "ResearchCohort").await?;
        let today = self.clock.now().date_naive();
        let ctx = self.ctx(p, "research");
        let mut out = Vec::new();
        let mut after = None;
        loop {
            // A page of patients with their diagnoses and measurements in a few range queries.
            let page = self.store.cohort_page(&ctx, &[RecordKind::Diagnosis, RecordKind::Observation], after, 500).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.patient.patient_id);
            let n = page.len();
            for cp in page {
                let v = cp.patient;
                let current = cp.records;
                let diagnoses = current
                    .iter()
                    .filter_map(|r| match &r.record {
                        ClinicalRecord::Diagnosis(d) => Some((d.condition.code().to_owned(), d.condition.display().to_owned())),
                        _ => None,
                    })
                    .collect();
                let (w, h) = measurements(&current);
                let age = age_in_years(v.demographics.date_of_birth.date(), today);
                let lo = age / 5 * 5;
                out.push(DeidentifiedPatient {
                    research_id: self.pseudonym(v.patient_id),
                    age_band: if age > ketacare_domain::deid::OLDEST_EXACT_AGE {
                        ketacare_domain::deid::OLDEST_GROUP.to_owned()
                    } else {
                        format!("{lo}-{}", lo + 4)
                    },
                    sex: v.demographics.sex,
                    diagnoses,
                    bmi: w.last().zip(h.last()).map(|(w, h)| bmi(w.value, h.value).round()),
                });
            }
            if n < 500 {
                break;
            }
        }
        out.sort_by(|a, b| a.research_id.cmp(&b.research_id));
        Ok(out)
    }
}
