//! Clinical records: add, amend, void, history; and the checked weight and height path.

use crate::patients::measurements;
use crate::{App, AppError, Principal};
use ketacare_domain::access::Permission;
use ketacare_domain::anthropometry::{assess_height, assess_weight, unacknowledged, BodyWeight, Height};
use ketacare_domain::coding::{loinc, CodeSystem, Coding};
use ketacare_domain::ids::{PatientId, RecordId, VersionId};
use ketacare_domain::record::*;
use ketacare_domain::validation::FieldErrors;
use uuid::Uuid;

/// Raw input for any record kind.
#[derive(Clone, Debug)]
pub enum RecordInput {
    /// Diagnosis.
    Diagnosis(DiagnosisInput),
    /// Medication.
    Medication(MedicationInput),
    /// Allergy.
    Allergy(AllergyInput),
    /// Encounter.
    Encounter(EncounterInput),
    /// General observation (not weight or height).
    Observation(ObservationInput),
    /// Administration of a rating instrument.
    Assessment(ketacare_domain::assessment::AssessmentInput),
    /// A treatment tried before.
    PriorTreatment(ketacare_domain::screening::PriorTreatmentInput),
    /// A comorbid condition or status.
    Condition(ketacare_domain::screening::ConditionInput),
    /// A screening verdict: signed on the screening page only, never typed as a record.
    Screening,
    /// A treatment plan: made on the dosing page from a protocol.
    TreatmentPlan,
    /// A dose order: made on the dosing page with the weight measured today.
    DoseOrder,
    /// Lab results, safety observations, reviews and the care plan: made on the patient's
    /// safety page (or its API), where their own checks apply.
    SafetyRecord(RecordKind),
}

impl RecordInput {
    fn kind(&self) -> RecordKind {
        match self {
            RecordInput::Diagnosis(_) => RecordKind::Diagnosis,
            RecordInput::Medication(_) => RecordKind::Medication,
            RecordInput::Allergy(_) => RecordKind::Allergy,
            RecordInput::Encounter(_) => RecordKind::Encounter,
            RecordInput::Observation(_) => RecordKind::Observation,
            RecordInput::Assessment(_) => RecordKind::Assessment,
            RecordInput::PriorTreatment(_) => RecordKind::PriorTreatment,
            RecordInput::Condition(_) => RecordKind::Condition,
            RecordInput::Screening => RecordKind::Screening,
            RecordInput::SafetyRecord(k) => *k,
            RecordInput::TreatmentPlan => RecordKind::TreatmentPlan,
            RecordInput::DoseOrder => RecordKind::DoseOrder,
        }
    }
}

/// Raw input for a weight (kg) or height (cm).
#[derive(Clone, Debug, Default)]
pub struct MeasurementInput {
    /// The number as typed.
    pub value: String,
    /// When measured, `YYYY-MM-DDTHH:MM` UTC; blank means now.
    pub measured_at: String,
    /// Codes of the warnings the user has read and confirmed.
    pub acknowledged: Vec<String>,
}

fn permission_for(kind: RecordKind) -> Permission {
    match kind {
        RecordKind::Diagnosis => Permission::WriteDiagnoses,
        // Plans and dose orders are the prescriber's; a signed screening is the signer's.
        RecordKind::TreatmentPlan | RecordKind::DoseOrder => Permission::Prescribe,
        RecordKind::Screening => Permission::SignScreening,
        _ => Permission::WriteClinical,
    }
}

fn is_anthropometric(r: &ClinicalRecord) -> bool {
    matches!(r, ClinicalRecord::Observation(o) if o.code.system() == &CodeSystem::Loinc && [loinc::BODY_WEIGHT, loinc::BODY_HEIGHT].contains(&o.code.code()))
}

impl App {
    fn validate_record(&self, input: &RecordInput) -> Result<ClinicalRecord, AppError> {
        Ok(match input {
            RecordInput::Diagnosis(d) => ClinicalRecord::Diagnosis(d.validate(&self.knowledge.diagnoses)?),
            RecordInput::Medication(m) => ClinicalRecord::Medication(m.validate()?),
            RecordInput::Allergy(a) => ClinicalRecord::Allergy(a.validate()?),
            RecordInput::Encounter(e) => ClinicalRecord::Encounter(e.validate()?),
            RecordInput::Observation(o) => {
                let obs = o.validate()?;
                if obs.effective > self.clock.now() + chrono::Duration::minutes(5) {
                    return Err(FieldErrors::single("effective", "must not be in the future").into());
                }
                ClinicalRecord::Observation(obs)
            }
            RecordInput::Assessment(_) => return Err(AppError::Internal("assessments are validated by record_assessment".into())),
            RecordInput::PriorTreatment(t) => ClinicalRecord::PriorTreatment(t.validate()?),
            RecordInput::Condition(c) => ClinicalRecord::Condition(c.validate(&self.knowledge.screening)?),
            RecordInput::TreatmentPlan | RecordInput::DoseOrder => {
                return Err(FieldErrors::single("kind", "treatment plans and dose orders are made on the patient's dosing page (or /api/patients/{id}/plans and /orders), not entered as records").into())
            }
            RecordInput::SafetyRecord(_) => {
                return Err(FieldErrors::single("kind", "lab results, safety observations, benefit-risk reviews and the care plan are entered on the patient's Safety page (or /api/patients/{id}/safety/...), not as generic records").into())
            }
            RecordInput::Screening => {
                return Err(FieldErrors::single("kind", "a screening verdict is signed on the patient's screening page (or POST /api/patients/{id}/screening/sign), not entered as a record").into())
            }
        })
    }

    pub(crate) fn provenance(&self, p: &Principal) -> Provenance {
        Provenance { user_id: p.user.id, username: p.user.username.as_str().to_owned(), recorded_at: self.clock.now() }
    }

    /// Version 1 of a new record, authored by `provenance`.
    pub(crate) fn first_version(patient: PatientId, record: ClinicalRecord, provenance: Provenance) -> RecordVersion {
        RecordVersion {
            record_id: RecordId::from_uuid(Uuid::new_v4()),
            version_id: VersionId::from_uuid(Uuid::new_v4()),
            version: 1,
            supersedes: None,
            patient_id: patient,
            action: VersionAction::Create,
            record,
            reason: None,
            provenance,
        }
    }

    async fn append_first(&self, p: &Principal, patient: PatientId, record: ClinicalRecord) -> Result<RecordVersion, AppError> {
        let v = Self::first_version(patient, record, self.provenance(p));
        self.store.append_record_version(&self.ctx(p, "treatment"), &v).await?;
        Ok(v)
    }

    /// Adds a record to a patient's chart.
    pub async fn add_record(&self, p: &Principal, patient: PatientId, input: &RecordInput) -> Result<RecordVersion, AppError> {
        self.authorize_patient(p, patient).await?;
        if let RecordInput::Assessment(a) = input {
            return self.record_assessment(p, patient, a).await.map(|(v, _, _)| v);
        }
        self.authorize(p, permission_for(input.kind()), "Record").await?;
        let record = self.validate_record(input)?;
        self.patient(p, patient).await?;
        if crate::screening::is_treatment_session(&record) {
            self.recheck_before_session(p, patient).await?;
        }
        self.append_first(p, patient, record).await
    }

    /// The latest version of a record (voided included).
    pub async fn record(&self, p: &Principal, id: RecordId) -> Result<RecordVersion, AppError> {
        self.authorize(p, Permission::ReadPatients, "Record").await?;
        self.authorize_owner(p, ketacare_db::Owned::Record, &id.to_string()).await?;
        self.store.get_record(&self.ctx(p, "treatment"), id).await?.ok_or(AppError::NotFound)
    }

    async fn current_for_change(&self, p: &Principal, id: RecordId, base_version: u32) -> Result<RecordVersion, AppError> {
        let cur = self.record(p, id).await?;
        self.authorize(p, permission_for(cur.record.kind()), "Record").await?;
        if cur.is_void() {
            return Err(AppError::Conflict("the record is voided and cannot be changed".into()));
        }
        if cur.version != base_version {
            return Err(AppError::Conflict("the record changed since you opened it; reload and try again".into()));
        }
        Ok(cur)
    }

    pub(crate) fn next(
        &self,
        p: &Principal,
        cur: &RecordVersion,
        action: VersionAction,
        record: ClinicalRecord,
        reason: Reason,
    ) -> RecordVersion {
        RecordVersion {
            record_id: cur.record_id,
            version_id: VersionId::from_uuid(Uuid::new_v4()),
            version: cur.version + 1,
            supersedes: Some(cur.version_id),
            patient_id: cur.patient_id,
            action,
            record,
            reason: Some(reason),
            provenance: self.provenance(p),
        }
    }

    /// Amends a record (not weight or height, which use [`App::amend_measurement`]).
    pub async fn amend_record(
        &self,
        p: &Principal,
        id: RecordId,
        base_version: u32,
        input: &RecordInput,
        reason: &str,
    ) -> Result<RecordVersion, AppError> {
        if let RecordInput::Assessment(a) = input {
            return self.amend_assessment(p, id, base_version, a, reason).await;
        }
        let cur = self.current_for_change(p, id, base_version).await?;
        if cur.record.kind() != input.kind() {
            return Err(FieldErrors::single("kind", format!("this record is a {}", cur.record.kind().code())).into());
        }
        if is_anthropometric(&cur.record) {
            return Err(FieldErrors::single("code", "weight and height are amended on their own checked form").into());
        }
        let mut errors = FieldErrors::new();
        let reason = errors.check("reason", Reason::parse(reason));
        let record = match self.validate_record(input) {
            Ok(r) => Some(r),
            Err(AppError::Validation(e)) => {
                errors.extend_prefixed("", e);
                None
            }
            Err(e) => return Err(e),
        };
        let (Some(reason), Some(record)) = (reason, record) else { return Err(errors.into()) };
        if crate::screening::is_treatment_session(&record) && !crate::screening::is_treatment_session(&cur.record) {
            self.recheck_before_session(p, cur.patient_id).await?;
        }
        let v = self.next(p, &cur, VersionAction::Amend, record, reason);
        self.store.append_record_version(&self.ctx(p, "treatment"), &v).await?;
        Ok(v)
    }

    /// Voids a record with a reason; it leaves the chart and stays in the history.
    pub async fn void_record(&self, p: &Principal, id: RecordId, base_version: u32, reason: &str) -> Result<RecordVersion, AppError> {
        let cur = self.current_for_change(p, id, base_version).await?;
        if let ClinicalRecord::DoseOrder(o) = &cur.record {
            if o.status == ketacare_domain::order::OrderStatus::Checked {
                return Err(FieldErrors::single(
                    "reason",
                    "a double-checked dose counts towards the cumulative totals and cannot be voided; record what happened in a note",
                )
                .into());
            }
        }
        let reason = Reason::parse(reason).map_err(|m| FieldErrors::single("reason", m))?;
        let v = self.next(p, &cur, VersionAction::Void, cur.record.clone(), reason);
        self.store.append_record_version(&self.ctx(p, "treatment"), &v).await?;
        Ok(v)
    }

    /// Every version of a record, oldest first.
    pub async fn record_history(&self, p: &Principal, id: RecordId) -> Result<Vec<RecordVersion>, AppError> {
        self.authorize(p, Permission::ReadPatients, "Record").await?;
        self.authorize_owner(p, ketacare_db::Owned::Record, &id.to_string()).await?;
        let h = self.store.record_history(&self.ctx(p, "treatment"), id).await?;
        if h.is_empty() {
            return Err(AppError::NotFound);
        }
        Ok(h)
    }

    fn measured_at(&self, raw: &str) -> Result<chrono::DateTime<chrono::Utc>, FieldErrors> {
        let now = self.clock.now();
        if raw.trim().is_empty() {
            return Ok(now);
        }
        let t = date_time(raw).map_err(|m| FieldErrors::single("measured_at", m))?;
        if t > now + chrono::Duration::minutes(5) {
            return Err(FieldErrors::single("measured_at", "must not be in the future"));
        }
        Ok(t)
    }

    fn weight_observation(&self, w: BodyWeight, at: chrono::DateTime<chrono::Utc>, ack: Vec<String>) -> Result<ClinicalRecord, AppError> {
        Ok(ClinicalRecord::Observation(Observation {
            code: Coding::new(CodeSystem::Loinc, loinc::BODY_WEIGHT, "Body weight").map_err(AppError::Internal)?,
            value: ObservationValue::Quantity { value: w.kg().normalize(), unit: UcumUnit::parse("kg").map_err(AppError::Internal)? },
            effective: at,
            acknowledged_warnings: ack,
        }))
    }

    fn height_observation(&self, h: Height, at: chrono::DateTime<chrono::Utc>, ack: Vec<String>) -> Result<ClinicalRecord, AppError> {
        Ok(ClinicalRecord::Observation(Observation {
            code: Coding::new(CodeSystem::Loinc, loinc::BODY_HEIGHT, "Body height").map_err(AppError::Internal)?,
            value: ObservationValue::Quantity { value: h.cm().normalize(), unit: UcumUnit::parse("cm").map_err(AppError::Internal)? },
            effective: at,
            acknowledged_warnings: ack,
        }))
    }

    /// Builds a checked weight or height record against the chart (excluding `replacing`).
    async fn checked_measurement(
        &self,
        p: &Principal,
        patient: PatientId,
        is_weight: bool,
        input: &MeasurementInput,
        replacing: Option<RecordId>,
    ) -> Result<ClinicalRecord, AppError> {
        let policy = &self.knowledge.anthropometry;
        // Named after `MeasurementInput::value`, the field the forms and the API send.
        let field = "value";
        let mut e = FieldErrors::new();
        let w = if is_weight { e.check(field, BodyWeight::parse(&input.value, policy)) } else { None };
        let h = if is_weight { None } else { e.check(field, Height::parse(&input.value, policy)) };
        let at = match self.measured_at(&input.measured_at) {
            Ok(t) => Some(t),
            Err(x) => {
                e.extend_prefixed("", x);
                None
            }
        };
        e.clone().into_result()?;
        let at = at.ok_or_else(|| AppError::Validation(e.clone()))?;
        let chart = self.chart(p, patient).await?;
        let others: Vec<RecordVersion> = chart.records.iter().filter(|r| Some(r.record_id) != replacing).cloned().collect();
        let (weights, heights) = measurements(&others);
        let prev_w = weights.iter().rfind(|m| m.effective <= at).or(weights.last()).map(|m| m.value);
        let prev_h = heights.iter().rfind(|m| m.effective <= at).or(heights.last()).map(|m| m.value);
        let warnings = match (w, h) {
            (Some(w), _) => assess_weight(w, prev_w, prev_h, policy),
            (_, Some(h)) => assess_height(h, prev_h, prev_w, policy),
            _ => Vec::new(),
        };
        let open: Vec<_> = unacknowledged(&warnings, &input.acknowledged).into_iter().cloned().collect();
        if !open.is_empty() {
            return Err(AppError::NeedsConfirmation(open));
        }
        let ack: Vec<String> = warnings.iter().map(|w| w.code().to_owned()).collect();
        match (w, h) {
            (Some(w), _) => self.weight_observation(w, at, ack),
            (_, Some(h)) => self.height_observation(h, at, ack),
            _ => Err(AppError::Validation(e)),
        }
    }

    /// Records a measured weight (kg) after the plausibility checks.
    ///
    /// Suspicious values return [`AppError::NeedsConfirmation`] with every warning; resubmitting
    /// with those warning codes acknowledged saves the value and keeps the acknowledgement.
    pub async fn record_weight(&self, p: &Principal, patient: PatientId, input: &MeasurementInput) -> Result<RecordVersion, AppError> {
        self.authorize(p, Permission::WriteClinical, "Record").await?;
        self.authorize_patient(p, patient).await?;
        let r = self.checked_measurement(p, patient, true, input, None).await?;
        self.append_first(p, patient, r).await
    }

    /// Records a measured height (cm) after the plausibility checks.
    pub async fn record_height(&self, p: &Principal, patient: PatientId, input: &MeasurementInput) -> Result<RecordVersion, AppError> {
        self.authorize(p, Permission::WriteClinical, "Record").await?;
        self.authorize_patient(p, patient).await?;
        let r = self.checked_measurement(p, patient, false, input, None).await?;
        self.append_first(p, patient, r).await
    }

    /// Amends a weight or height record through the same checks.
    pub async fn amend_measurement(
        &self,
        p: &Principal,
        id: RecordId,
        base_version: u32,
        input: &MeasurementInput,
        reason: &str,
    ) -> Result<RecordVersion, AppError> {
        let cur = self.current_for_change(p, id, base_version).await?;
        let reason = Reason::parse(reason).map_err(|m| FieldErrors::single("reason", m))?;
        let is_weight = match &cur.record {
            ClinicalRecord::Observation(o) if o.code.code() == loinc::BODY_WEIGHT => true,
            ClinicalRecord::Observation(o) if o.code.code() == loinc::BODY_HEIGHT => false,
            _ => return Err(FieldErrors::single("value", "this record is not a weight or height").into()),
        };
        let r = self.checked_measurement(p, cur.patient_id, is_weight, input, Some(cur.record_id)).await?;
        let v = self.next(p, &cur, VersionAction::Amend, r, reason);
        self.store.append_record_version(&self.ctx(p, "treatment"), &v).await?;
        Ok(v)
    }
}
