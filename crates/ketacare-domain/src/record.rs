//! The append-only clinical record.
//!
//! A patient's chart is a set of logical records (diagnoses, medications, allergies, encounters,
//! observations). Each logical record is a chain of immutable versions: the first `Create`,
//! then any number of `Amend` versions, each pointing at the version it replaces, and
//! possibly a final `Void` that removes it from the current chart with who, when and why.
//! Nothing is edited in place and nothing is deleted; the history shows every version.

use crate::coding::{CodeSystem, Coding};
use crate::ids::{PatientId, RecordId, UserId, VersionId};
use crate::patient::Demographics;
use crate::validation::{bounded_text, optional_note, optional_text, FieldErrors};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use rust_decimal::Decimal;
use std::str::FromStr;

/// What a version did to its record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VersionAction {
    /// First version.
    Create,
    /// Replaces the previous version's content.
    Amend,
    /// Removes the record from the current chart; the content stays in history.
    Void,
}

impl VersionAction {
    /// Stable code.
    pub fn code(self) -> &'static str {
        match self {
            VersionAction::Create => "create",
            VersionAction::Amend => "amend",
            VersionAction::Void => "void",
        }
    }
    /// Parses a stable code.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "create" => Ok(Self::Create),
            "amend" => Ok(Self::Amend),
            "void" => Ok(Self::Void),
            _ => Err(format!("unknown version action {s}")),
        }
    }
}

/// Why a record was amended or voided: required, 3–500 characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reason(String);

impl Reason {
    /// Validates a reason.
    pub fn parse(raw: &str) -> Result<Self, String> {
        bounded_text(raw, 3, 500).map(Self).map_err(|e| format!("{e}; say why, for example \"entered in error: wrong patient\""))
    }
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Who made a version and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Provenance {
    /// User id.
    pub user_id: UserId,
    /// Username at the time (kept so history stays readable if the account is renamed).
    pub username: String,
    /// When the version was recorded (server clock, UTC).
    pub recorded_at: DateTime<Utc>,
}

/// One immutable version of a patient's demographics.
#[derive(Clone, Debug)]
pub struct PatientVersion {
    /// The patient.
    pub patient_id: PatientId,
    /// This version.
    pub version_id: VersionId,
    /// 1, 2, 3, … per patient.
    pub version: u32,
    /// Create, amend or void.
    pub action: VersionAction,
    /// Content of this version.
    pub demographics: Demographics,
    /// Reason (required for amend and void).
    pub reason: Option<Reason>,
    /// Who and when.
    pub provenance: Provenance,
}

/// The kind of a clinical record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordKind {
    /// Diagnosis (FHIR Condition).
    Diagnosis,
    /// Current or past medication (FHIR MedicationStatement).
    Medication,
    /// Allergy or intolerance (FHIR AllergyIntolerance).
    Allergy,
    /// Visit (FHIR Encounter).
    Encounter,
    /// Measurement or finding (FHIR Observation).
    Observation,
    /// Administration of a rating instrument (FHIR QuestionnaireResponse + score Observations).
    Assessment,
    /// A treatment tried before (FHIR MedicationStatement or Procedure, with its outcome).
    PriorTreatment,
    /// A comorbid condition or status that bears on eligibility (FHIR Condition).
    Condition,
    /// A signed screening verdict (FHIR RiskAssessment).
    Screening,
    /// A protocol laid out on dates (FHIR CarePlan).
    TreatmentPlan,
    /// A dose ordered for a session (FHIR MedicationRequest).
    DoseOrder,
    /// A lab result with the laboratory's upper limit of normal (FHIR Observation, laboratory).
    LabResult,
    /// A safety observation: requests, craving, substance use, toxicology, haematuria (FHIR Observation).
    SafetyEvent,
    /// A signed benefit-risk review (FHIR ClinicalImpression).
    SafetyReview,
    /// The care plan: goals, psychotherapy, responsible clinicians (FHIR CarePlan).
    CarePlan,
}

impl RecordKind {
    /// All kinds.
    pub const ALL: [RecordKind; 15] = [
        RecordKind::Diagnosis,
        RecordKind::Medication,
        RecordKind::Allergy,
        RecordKind::Encounter,
        RecordKind::Observation,
        RecordKind::Assessment,
        RecordKind::PriorTreatment,
        RecordKind::Condition,
        RecordKind::Screening,
        RecordKind::TreatmentPlan,
        RecordKind::DoseOrder,
        RecordKind::LabResult,
        RecordKind::SafetyEvent,
        RecordKind::SafetyReview,
        RecordKind::CarePlan,
    ];
    /// Stable code.
    pub fn code(self) -> &'static str {
        match self {
            RecordKind::Diagnosis => "diagnosis",
            RecordKind::Medication => "medication",
            RecordKind::Allergy => "allergy",
            RecordKind::Encounter => "encounter",
            RecordKind::Observation => "observation",
            RecordKind::Assessment => "assessment",
            RecordKind::PriorTreatment => "prior_treatment",
            RecordKind::Condition => "condition",
            RecordKind::Screening => "screening",
            RecordKind::TreatmentPlan => "treatment_plan",
            RecordKind::DoseOrder => "dose_order",
            RecordKind::LabResult => "lab_result",
            RecordKind::SafetyEvent => "safety_event",
            RecordKind::SafetyReview => "safety_review",
            RecordKind::CarePlan => "care_plan",
        }
    }
    /// Parses a stable code.
    pub fn parse(s: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|k| k.code() == s).ok_or_else(|| {
            "must be one of diagnosis, medication, allergy, encounter, observation, assessment, prior_treatment, condition, screening, lab_result, safety_event, care_plan"
                .to_owned()
        })
    }
    /// Display label.
    pub fn label(self) -> &'static str {
        match self {
            RecordKind::Diagnosis => "Diagnosis",
            RecordKind::Medication => "Medication",
            RecordKind::Allergy => "Allergy",
            RecordKind::Encounter => "Encounter",
            RecordKind::Observation => "Observation",
            RecordKind::Assessment => "Rating scale",
            RecordKind::PriorTreatment => "Prior treatment",
            RecordKind::Condition => "Comorbid condition",
            RecordKind::Screening => "Screening verdict",
            RecordKind::TreatmentPlan => "Treatment plan",
            RecordKind::DoseOrder => "Dose order",
            RecordKind::LabResult => "Lab result",
            RecordKind::SafetyEvent => "Safety observation",
            RecordKind::SafetyReview => "Benefit-risk review",
            RecordKind::CarePlan => "Care plan",
        }
    }
}

/// Clinical status of a diagnosis (FHIR condition-clinical subset).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClinicalStatus {
    /// Active.
    Active,
    /// In remission.
    Remission,
    /// Resolved.
    Resolved,
}

impl ClinicalStatus {
    /// All values.
    pub const ALL: [ClinicalStatus; 3] = [ClinicalStatus::Active, ClinicalStatus::Remission, ClinicalStatus::Resolved];
    /// Stable code.
    pub fn code(self) -> &'static str {
        match self {
            ClinicalStatus::Active => "active",
            ClinicalStatus::Remission => "remission",
            ClinicalStatus::Resolved => "resolved",
        }
    }
    /// Parses a code.
    pub fn parse(s: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|k| k.code() == s.trim()).ok_or_else(|| "must be active, remission or resolved".to_owned())
    }
}

/// A diagnosis coded in SNOMED CT (or another system) with an optional ICD-10-CM code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnosis {
    /// Primary code (SNOMED CT for the catalogue entries).
    pub condition: Coding,
    /// ICD-10-CM code, if known.
    pub icd10: Option<Coding>,
    /// Onset date.
    pub onset: Option<NaiveDate>,
    /// Clinical status.
    pub status: ClinicalStatus,
    /// Free-text note.
    pub note: Option<String>,
}

/// A medication the patient takes or took.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Medication {
    /// Name as prescribed.
    pub name: String,
    /// RxNorm concept id, if known.
    pub rxnorm: Option<String>,
    /// Dose and frequency as text, e.g. "20 mg once daily".
    pub dose: Option<String>,
    /// Start date.
    pub start: Option<NaiveDate>,
    /// Stop date (on or after start).
    pub stop: Option<NaiveDate>,
}

/// Severity of an allergic reaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllergySeverity {
    /// Mild.
    Mild,
    /// Moderate.
    Moderate,
    /// Severe.
    Severe,
    /// Not known.
    Unknown,
}

impl AllergySeverity {
    /// All values.
    pub const ALL: [AllergySeverity; 4] =
        [AllergySeverity::Mild, AllergySeverity::Moderate, AllergySeverity::Severe, AllergySeverity::Unknown];
    /// Stable code.
    pub fn code(self) -> &'static str {
        match self {
            AllergySeverity::Mild => "mild",
            AllergySeverity::Moderate => "moderate",
            AllergySeverity::Severe => "severe",
            AllergySeverity::Unknown => "unknown",
        }
    }
    /// Parses a code.
    pub fn parse(s: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|k| k.code() == s.trim()).ok_or_else(|| "must be mild, moderate, severe or unknown".to_owned())
    }
}

/// An allergy or intolerance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allergy {
    /// Substance.
    pub substance: String,
    /// Reaction.
    pub reaction: Option<String>,
    /// Severity.
    pub severity: AllergySeverity,
}

/// Kind of visit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncounterKind {
    /// Screening / assessment visit.
    Screening,
    /// Treatment session.
    Treatment,
    /// Follow-up.
    FollowUp,
    /// Anything else.
    Other,
}

impl EncounterKind {
    /// All values.
    pub const ALL: [EncounterKind; 4] = [EncounterKind::Screening, EncounterKind::Treatment, EncounterKind::FollowUp, EncounterKind::Other];
    /// Stable code.
    pub fn code(self) -> &'static str {
        match self {
            EncounterKind::Screening => "screening",
            EncounterKind::Treatment => "treatment",
            EncounterKind::FollowUp => "follow_up",
            EncounterKind::Other => "other",
        }
    }
    /// Label.
    pub fn label(self) -> &'static str {
        match self {
            EncounterKind::Screening => "Screening visit",
            EncounterKind::Treatment => "Treatment session",
            EncounterKind::FollowUp => "Follow-up",
            EncounterKind::Other => "Other",
        }
    }
    /// Parses a code.
    pub fn parse(s: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|k| k.code() == s.trim()).ok_or_else(|| "must be screening, treatment, follow_up or other".to_owned())
    }
}

/// A visit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encounter {
    /// Kind of visit.
    pub kind: EncounterKind,
    /// Start (UTC).
    pub start: DateTime<Utc>,
    /// End (UTC), not before start.
    pub end: Option<DateTime<Utc>>,
    /// Reason for the visit.
    pub reason: Option<String>,
    /// Note.
    pub note: Option<String>,
}

/// A UCUM unit code such as `kg`, `cm`, `mm[Hg]`, `/min`, `%`, `Cel`, `kg/m2`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UcumUnit(String);

impl UcumUnit {
    /// Checks the code uses UCUM's character set (case-sensitive, no spaces) and is 1–30 characters.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let t = raw.trim();
        let ok = !t.is_empty() && t.len() <= 30 && t.chars().all(|c| c.is_ascii_alphanumeric() || "[]{}/.%*^_-'".contains(c));
        if ok {
            Ok(Self(t.to_owned()))
        } else {
            Err("must be a UCUM unit code such as kg, cm, mm[Hg], /min, %, Cel or kg/m2".to_owned())
        }
    }
    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The value of an observation, typed by its datatype.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ObservationValue {
    /// A number with a UCUM unit.
    Quantity {
        /// Exact decimal value.
        value: Decimal,
        /// UCUM unit.
        unit: UcumUnit,
    },
    /// A coded answer.
    Coded(Coding),
    /// Free text.
    Text(String),
    /// Yes / no.
    Boolean(bool),
}

/// A measurement or finding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    /// What was observed (LOINC where one exists).
    pub code: Coding,
    /// The value.
    pub value: ObservationValue,
    /// When it was measured (UTC).
    pub effective: DateTime<Utc>,
    /// Plausibility warnings the person recording it confirmed (codes).
    pub acknowledged_warnings: Vec<String>,
}

impl Observation {
    /// The quantity value in `unit`, if this observation has code `loinc` in LOINC and that unit.
    pub fn quantity_if(&self, loinc: &str, unit: &str) -> Option<Decimal> {
        if self.code.system() != &CodeSystem::Loinc || self.code.code() != loinc {
            return None;
        }
        match &self.value {
            ObservationValue::Quantity { value, unit: u } if u.as_str() == unit => Some(*value),
            _ => None,
        }
    }
}

/// The content of one clinical record version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClinicalRecord {
    /// Diagnosis.
    Diagnosis(Diagnosis),
    /// Medication.
    Medication(Medication),
    /// Allergy.
    Allergy(Allergy),
    /// Encounter.
    Encounter(Encounter),
    /// Observation.
    Observation(Observation),
    /// Administration of a rating instrument.
    Assessment(crate::assessment::Assessment),
    /// A treatment tried before.
    PriorTreatment(crate::screening::PriorTreatmentRecord),
    /// A comorbid condition or status.
    Condition(crate::screening::ConditionRecord),
    /// A signed screening verdict.
    Screening(crate::screening::ScreeningRecord),
    /// A treatment plan.
    TreatmentPlan(crate::order::TreatmentPlanRecord),
    /// A dose order.
    DoseOrder(Box<crate::order::DoseOrderRecord>),
    /// A lab result.
    LabResult(crate::safety::LabResult),
    /// A safety observation.
    SafetyEvent(crate::safety::SafetyEvent),
    /// A signed benefit-risk review.
    SafetyReview(crate::safety::SafetyReview),
    /// The care plan.
    CarePlan(crate::safety::CarePlan),
}

impl ClinicalRecord {
    /// The record's kind.
    pub fn kind(&self) -> RecordKind {
        match self {
            ClinicalRecord::Diagnosis(_) => RecordKind::Diagnosis,
            ClinicalRecord::Medication(_) => RecordKind::Medication,
            ClinicalRecord::Allergy(_) => RecordKind::Allergy,
            ClinicalRecord::Encounter(_) => RecordKind::Encounter,
            ClinicalRecord::Observation(_) => RecordKind::Observation,
            ClinicalRecord::Assessment(_) => RecordKind::Assessment,
            ClinicalRecord::PriorTreatment(_) => RecordKind::PriorTreatment,
            ClinicalRecord::Condition(_) => RecordKind::Condition,
            ClinicalRecord::Screening(_) => RecordKind::Screening,
            ClinicalRecord::TreatmentPlan(_) => RecordKind::TreatmentPlan,
            ClinicalRecord::DoseOrder(_) => RecordKind::DoseOrder,
            ClinicalRecord::LabResult(_) => RecordKind::LabResult,
            ClinicalRecord::SafetyEvent(_) => RecordKind::SafetyEvent,
            ClinicalRecord::SafetyReview(_) => RecordKind::SafetyReview,
            ClinicalRecord::CarePlan(_) => RecordKind::CarePlan,
        }
    }
    /// One-line summary for lists and history.
    pub fn summary(&self) -> String {
        match self {
            ClinicalRecord::Diagnosis(d) => {
                let icd = d.icd10.as_ref().map(|c| format!(" ({})", c.code())).unwrap_or_default();
                format!("{}{icd}, {}", d.condition.display(), d.status.code())
            }
            ClinicalRecord::Medication(m) => format!("{}{}", m.name, m.dose.as_ref().map(|d| format!(" {d}")).unwrap_or_default()),
            ClinicalRecord::Allergy(a) => format!("{} ({})", a.substance, a.severity.code()),
            ClinicalRecord::Encounter(e) => format!("{} {}", e.kind.label(), e.start.format("%Y-%m-%d %H:%M")),
            ClinicalRecord::Observation(o) => format!("{}: {}", o.code.display(), value_text(&o.value)),
            ClinicalRecord::Assessment(a) => format!("{} {}", a.instrument, a.taken_at.format("%Y-%m-%d %H:%M")),
            ClinicalRecord::PriorTreatment(t) => t.summary(),
            ClinicalRecord::Condition(c) => c.summary(),
            ClinicalRecord::Screening(s) => format!("{} ({} findings)", s.verdict.label(), s.findings.len()),
            ClinicalRecord::TreatmentPlan(p) => p.summary(),
            ClinicalRecord::DoseOrder(o) => o.summary(),
            ClinicalRecord::LabResult(l) => {
                format!(
                    "{} {} {} ({} x ULN) sampled {}",
                    l.test.label(),
                    l.value.normalize(),
                    l.unit,
                    l.multiple().normalize(),
                    l.sampled_at.format("%Y-%m-%d")
                )
            }
            ClinicalRecord::SafetyEvent(e) => {
                let detail = match (e.score, e.positive, &e.substances) {
                    (Some(s), _, _) => format!(" {s}/10"),
                    (_, Some(p), subs) => format!(
                        " {}{}",
                        if p { "positive" } else { "negative" },
                        subs.as_ref().map(|x| format!(": {x}")).unwrap_or_default()
                    ),
                    (_, _, Some(subs)) => format!(": {subs}"),
                    _ => String::new(),
                };
                format!("{}{detail} on {}", e.kind.label(), e.at.format("%Y-%m-%d"))
            }
            ClinicalRecord::SafetyReview(r) => format!("Benefit-risk review: {}; next review {}", r.decision.label(), r.next_review),
            ClinicalRecord::CarePlan(c) => format!("Care plan: {} goals, {} therapies", c.goals.len(), c.therapies.len()),
        }
    }
}

/// Display text for an observation value.
pub fn value_text(v: &ObservationValue) -> String {
    match v {
        ObservationValue::Quantity { value, unit } => format!("{} {}", value.normalize(), unit.as_str()),
        ObservationValue::Coded(c) => c.display().to_owned(),
        ObservationValue::Text(t) => t.clone(),
        ObservationValue::Boolean(b) => if *b { "yes" } else { "no" }.to_owned(),
    }
}

/// One immutable version of a clinical record.
#[derive(Clone, Debug)]
pub struct RecordVersion {
    /// The logical record.
    pub record_id: RecordId,
    /// This version.
    pub version_id: VersionId,
    /// 1, 2, 3, … per record.
    pub version: u32,
    /// The version this one replaces (None for the first).
    pub supersedes: Option<VersionId>,
    /// The patient.
    pub patient_id: PatientId,
    /// Create, amend or void.
    pub action: VersionAction,
    /// Content (a void repeats the content it removes).
    pub record: ClinicalRecord,
    /// Reason (required for amend and void).
    pub reason: Option<Reason>,
    /// Who and when.
    pub provenance: Provenance,
}

impl RecordVersion {
    /// Whether this version removed the record.
    pub fn is_void(&self) -> bool {
        self.action == VersionAction::Void
    }
}

/// A diagnosis offered as a one-click choice (from `knowledge/diagnoses.toml`).
#[derive(Clone, Debug)]
pub struct DiagnosisChoice {
    /// Stable key, e.g. `gad`.
    pub key: String,
    /// SNOMED CT coding.
    pub snomed: Coding,
    /// ICD-10-CM coding.
    pub icd10: Option<Coding>,
    /// Caveat shown next to the code (e.g. "verify"), if any.
    pub caveat: Option<String>,
}

/// Parses an optional `YYYY-MM-DD` date.
pub fn optional_date(raw: &str) -> Result<Option<NaiveDate>, String> {
    let t = raw.trim();
    if t.is_empty() {
        return Ok(None);
    }
    NaiveDate::parse_from_str(t, "%Y-%m-%d").map(Some).map_err(|_| "must be a date in the form YYYY-MM-DD".to_owned())
}

/// Parses a UTC date-time `YYYY-MM-DDTHH:MM` (seconds and a trailing `Z` are accepted).
pub fn date_time(raw: &str) -> Result<DateTime<Utc>, String> {
    let t = raw.trim().trim_end_matches('Z');
    for f in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"] {
        if let Ok(n) = NaiveDateTime::parse_from_str(t, f) {
            return Ok(n.and_utc());
        }
    }
    Err("must be a date and time in the form YYYY-MM-DDTHH:MM (UTC)".to_owned())
}

/// Raw diagnosis input.
#[derive(Clone, Debug, Default)]
pub struct DiagnosisInput {
    /// Catalogue key (`gad`, `sad`, …) or `other`.
    pub choice: String,
    /// For `other`: code system.
    pub system: String,
    /// For `other`: code.
    pub code: String,
    /// For `other`: display.
    pub display: String,
    /// Optional ICD-10-CM code for `other`.
    pub icd10: String,
    /// Onset date.
    pub onset: String,
    /// Status code.
    pub status: String,
    /// Note.
    pub note: String,
}

impl DiagnosisInput {
    /// Validates against the catalogue.
    pub fn validate(&self, catalogue: &[DiagnosisChoice]) -> Result<Diagnosis, FieldErrors> {
        let mut e = FieldErrors::new();
        let (condition, icd10) = if self.choice.trim() == "other" {
            let system = e.check("system", CodeSystem::parse(&self.system));
            let code = system.and_then(|s| e.check("code", Coding::new(s, &self.code, &self.display)));
            let icd = if self.icd10.trim().is_empty() {
                Some(None)
            } else {
                e.check("icd10", Coding::new(CodeSystem::Icd10Cm, &self.icd10, &self.display).map(Some))
            };
            (code, icd.flatten())
        } else if let Some(c) = catalogue.iter().find(|c| c.key == self.choice.trim()) {
            (Some(c.snomed.clone()), c.icd10.clone())
        } else {
            let keys: Vec<&str> = catalogue.iter().map(|c| c.key.as_str()).collect();
            e.add("choice", format!("must be one of {} or other", keys.join(", ")));
            (None, None)
        };
        let onset = e.check("onset", optional_date(&self.onset));
        let status = e.check("status", ClinicalStatus::parse(if self.status.trim().is_empty() { "active" } else { &self.status }));
        let note = e.check("note", optional_note(&self.note, 2000));
        match (condition, onset, status, note) {
            (Some(condition), Some(onset), Some(status), Some(note)) if e.is_empty() => {
                Ok(Diagnosis { condition, icd10, onset, status, note })
            }
            _ => Err(e),
        }
    }
}

/// Raw medication input.
#[derive(Clone, Debug, Default)]
pub struct MedicationInput {
    /// Name.
    pub name: String,
    /// RxNorm id.
    pub rxnorm: String,
    /// Dose text.
    pub dose: String,
    /// Start date.
    pub start: String,
    /// Stop date.
    pub stop: String,
}

impl MedicationInput {
    /// Validates.
    pub fn validate(&self) -> Result<Medication, FieldErrors> {
        let mut e = FieldErrors::new();
        let name = e.check("name", bounded_text(&self.name, 1, 200));
        let rx = e.check(
            "rxnorm",
            match self.rxnorm.trim() {
                "" => Ok(None),
                t if t.len() <= 10 && t.chars().all(|c| c.is_ascii_digit()) => Ok(Some(t.to_owned())),
                _ => Err("must be an RxNorm concept id (digits only, such as 36437) or empty".to_owned()),
            },
        );
        let dose = e.check("dose", optional_text(&self.dose, 200));
        let start = e.check("start", optional_date(&self.start));
        let stop = e.check("stop", optional_date(&self.stop));
        if let (Some(Some(s)), Some(Some(t))) = (start, stop) {
            if t < s {
                e.add("stop", "must be on or after the start date");
            }
        }
        match (name, rx, dose, start, stop) {
            (Some(name), Some(rxnorm), Some(dose), Some(start), Some(stop)) if e.is_empty() => {
                Ok(Medication { name, rxnorm, dose, start, stop })
            }
            _ => Err(e),
        }
    }
}

/// Raw allergy input.
#[derive(Clone, Debug, Default)]
pub struct AllergyInput {
    /// Substance.
    pub substance: String,
    /// Reaction.
    pub reaction: String,
    /// Severity code.
    pub severity: String,
}

impl AllergyInput {
    /// Validates.
    pub fn validate(&self) -> Result<Allergy, FieldErrors> {
        let mut e = FieldErrors::new();
        let substance = e.check("substance", bounded_text(&self.substance, 1, 200));
        let reaction = e.check("reaction", optional_text(&self.reaction, 300));
        let severity =
            e.check("severity", AllergySeverity::parse(if self.severity.trim().is_empty() { "unknown" } else { &self.severity }));
        match (substance, reaction, severity) {
            (Some(substance), Some(reaction), Some(severity)) if e.is_empty() => Ok(Allergy { substance, reaction, severity }),
            _ => Err(e),
        }
    }
}

/// Raw encounter input.
#[derive(Clone, Debug, Default)]
pub struct EncounterInput {
    /// Kind code.
    pub kind: String,
    /// Start date-time.
    pub start: String,
    /// End date-time.
    pub end: String,
    /// Reason.
    pub reason: String,
    /// Note.
    pub note: String,
}

impl EncounterInput {
    /// Validates.
    pub fn validate(&self) -> Result<Encounter, FieldErrors> {
        let mut e = FieldErrors::new();
        let kind = e.check("kind", EncounterKind::parse(&self.kind));
        let start = e.check("start", date_time(&self.start));
        let end = if self.end.trim().is_empty() { Some(None) } else { e.check("end", date_time(&self.end).map(Some)) };
        if let (Some(s), Some(Some(t))) = (start, end) {
            if t < s {
                e.add("end", "must not be before the start");
            }
        }
        let reason = e.check("reason", optional_text(&self.reason, 300));
        let note = e.check("note", optional_note(&self.note, 4000));
        match (kind, start, end, reason, note) {
            (Some(kind), Some(start), Some(end), Some(reason), Some(note)) if e.is_empty() => {
                Ok(Encounter { kind, start, end, reason, note })
            }
            _ => Err(e),
        }
    }
}

/// Raw input for a general quantity or text observation.
#[derive(Clone, Debug, Default)]
pub struct ObservationInput {
    /// LOINC code (or other system with `system`).
    pub code: String,
    /// Code system; defaults to LOINC.
    pub system: String,
    /// Display text for the code.
    pub display: String,
    /// `quantity` (default) or `text`.
    pub value_type: String,
    /// The value.
    pub value: String,
    /// UCUM unit for quantities.
    pub unit: String,
    /// When measured.
    pub effective: String,
}

impl ObservationInput {
    /// Validates. Weight and height must be recorded through their own checked path.
    pub fn validate(&self) -> Result<Observation, FieldErrors> {
        let mut e = FieldErrors::new();
        let system = e.check("system", CodeSystem::parse(if self.system.trim().is_empty() { "loinc" } else { &self.system }));
        let code = system.and_then(|s| e.check("code", Coding::new(s, &self.code, &self.display)));
        if let Some(c) = &code {
            if c.system() == &CodeSystem::Loinc
                && [crate::coding::loinc::BODY_WEIGHT, crate::coding::loinc::BODY_HEIGHT, crate::coding::loinc::BMI].contains(&c.code())
            {
                e.add("code", "weight and height are recorded on the weight and height form, which checks them; BMI is derived");
            }
        }
        let value = match self.value_type.trim() {
            "" | "quantity" => {
                let v = e.check(
                    "value",
                    Decimal::from_str(self.value.trim())
                        .map_err(|_| "must be a number such as 36.8 (point as decimal separator)".to_owned()),
                );
                let u = e.check("unit", UcumUnit::parse(&self.unit));
                v.zip(u).map(|(value, unit)| ObservationValue::Quantity { value, unit })
            }
            "text" => e.check("value", bounded_text(&self.value, 1, 2000)).map(ObservationValue::Text),
            "boolean" => e
                .check(
                    "value",
                    match self.value.trim() {
                        "yes" | "true" => Ok(true),
                        "no" | "false" => Ok(false),
                        _ => Err("must be yes or no".to_owned()),
                    },
                )
                .map(ObservationValue::Boolean),
            _ => {
                e.add("value_type", "must be quantity, text or boolean");
                None
            }
        };
        let effective = e.check("effective", date_time(&self.effective));
        match (code, value, effective) {
            (Some(code), Some(value), Some(effective)) if e.is_empty() => {
                Ok(Observation { code, value, effective, acknowledged_warnings: Vec::new() })
            }
            _ => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalogue() -> Vec<DiagnosisChoice> {
        vec![DiagnosisChoice {
            key: "gad".into(),
            snomed: Coding::new(CodeSystem::SnomedCt, "21897009", "Generalized anxiety disorder").unwrap(),
            icd10: Some(Coding::new(CodeSystem::Icd10Cm, "F41.1", "Generalized anxiety disorder").unwrap()),
            caveat: None,
        }]
    }

    #[test]
    fn catalogue_diagnosis_carries_both_codes() {
        let d = DiagnosisInput { choice: "gad".into(), ..Default::default() }.validate(&catalogue()).unwrap();
        assert_eq!(d.condition.code(), "21897009");
        assert_eq!(d.icd10.unwrap().code(), "F41.1");
        assert_eq!(d.status, ClinicalStatus::Active);
    }

    #[test]
    fn other_diagnosis_needs_system_and_code() {
        let e =
            DiagnosisInput { choice: "other".into(), system: "snowmed".into(), ..Default::default() }.validate(&catalogue()).unwrap_err();
        assert!(e.for_field("system").unwrap().contains("snomed"));
        let d = DiagnosisInput {
            choice: "other".into(),
            system: "icd10".into(),
            code: "F42.2".into(),
            display: "Mixed obsessional thoughts and acts".into(),
            ..Default::default()
        }
        .validate(&catalogue())
        .unwrap();
        assert_eq!(d.condition.system(), &CodeSystem::Icd10Cm);
    }

    #[test]
    fn medication_stop_must_follow_start() {
        let e = MedicationInput { name: "Sertraline".into(), start: "2026-05-01".into(), stop: "2026-04-01".into(), ..Default::default() }
            .validate()
            .unwrap_err();
        assert!(e.for_field("stop").is_some());
        let e = MedicationInput { name: "Sertraline".into(), rxnorm: "sertraline".into(), ..Default::default() }.validate().unwrap_err();
        assert!(e.for_field("rxnorm").unwrap().contains("digits"));
    }

    #[test]
    fn observations_are_typed_and_weight_goes_through_its_own_path() {
        let o = ObservationInput {
            code: "8310-5".into(),
            display: "Body temperature".into(),
            value: "36.8".into(),
            unit: "Cel".into(),
            effective: "2026-11-26T09:30".into(),
            ..Default::default()
        }
        .validate()
        .unwrap();
        assert!(matches!(o.value, ObservationValue::Quantity { .. }));
        let e = ObservationInput {
            code: "29463-7".into(),
            display: "Body weight".into(),
            value: "80".into(),
            unit: "kg".into(),
            effective: "2026-11-26T09:30".into(),
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        assert!(e.for_field("code").is_some());
        let e = ObservationInput {
            code: "8310-5".into(),
            display: "T".into(),
            value: "36,8".into(),
            unit: "deg C".into(),
            effective: "x".into(),
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        for f in ["value", "unit", "effective"] {
            assert!(e.for_field(f).is_some(), "{f}");
        }
    }

    #[test]
    fn reasons_must_say_something() {
        assert!(Reason::parse("  ").is_err());
        assert!(Reason::parse("typo in dose").is_ok());
    }
}
