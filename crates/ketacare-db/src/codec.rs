//! Conversion between domain types and the portable row format both backends store:
//! ids and timestamps as text, record content as a versioned JSON document.
//!
//! The JSON shapes here are the storage format (schema version 1). They are deliberately
//! separate from the domain types and from the HTTP API's shapes, so each can change alone.

use crate::{ApiToken, DbError, StoredSession, User};
use chrono::{DateTime, NaiveDate, Utc};
use ketacare_domain::access::{Role, Username};
use ketacare_domain::assessment::{Acknowledgement, Anchor, Assessment, FilledBy, QuestionnaireRequest, SafetyAlert, Schedule};
use ketacare_domain::audit::{Actor, AuditAction, AuditEntry, AuditEvent, AuditOutcome};
use ketacare_domain::coding::{CodeSystem, Coding};
use ketacare_domain::dose::{Route, WeightBasis};
use ketacare_domain::ids::{AlertId, PatientId, RecordId, RequestId, ScheduleId, SessionId, TokenId, UserId, VersionId};
use ketacare_domain::order::{DoseOrderRecord, DoubleCheck, OrderStatus, PlanSession, TreatmentPlanRecord};
use ketacare_domain::patient::{Contact, DateOfBirth, Demographics, EmergencyContact, Mrn, PersonName, Sex};
use ketacare_domain::record::*;
use ketacare_domain::safety::{
    CarePlan, Goal, GoalKind, LabResult, LabTest, ReviewDecision, SafetyEvent, SafetyEventKind, SafetyReview, Therapy,
};
use ketacare_domain::screening::{
    Acceptance, Category, ConditionRecord, Finding, PriorTreatment, PriorTreatmentRecord, ResistanceStatus, ScreeningRecord, Severity,
    TreatmentKind, TrialJudgement, TrialStatus, Verdict,
};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

fn corrupt(what: impl std::fmt::Display) -> DbError {
    DbError::Corrupt(what.to_string())
}

/// Fixed-width UTC timestamp text, so text order equals time order on both backends.
pub fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// Parses [`ts`] output.
pub fn parse_ts(s: &str) -> Result<DateTime<Utc>, DbError> {
    DateTime::parse_from_rfc3339(s).map(|d| d.with_timezone(&Utc)).map_err(|_| corrupt("timestamp"))
}

fn id<T>(s: &str, f: fn(&str) -> Result<T, String>) -> Result<T, DbError> {
    f(s).map_err(|_| corrupt("identifier"))
}

#[derive(Serialize, Deserialize)]
struct CodingJson {
    system: String,
    code: String,
    display: String,
}

impl CodingJson {
    fn from(c: &Coding) -> Self {
        Self { system: c.system().uri().to_owned(), code: c.code().to_owned(), display: c.display().to_owned() }
    }
    fn into_domain(self) -> Result<Coding, DbError> {
        let system = CodeSystem::parse(&self.system).map_err(corrupt)?;
        Coding::new(system, &self.code, &self.display).map_err(corrupt)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ValueJson {
    Quantity { value: Decimal, unit: String },
    Coded { coding: CodingJson },
    Text { text: String },
    Boolean { value: bool },
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant, reason = "a short-lived (de)serialisation value, one per row; boxing would only add an allocation")]
enum RecordJson {
    Diagnosis {
        condition: CodingJson,
        icd10: Option<CodingJson>,
        onset: Option<NaiveDate>,
        status: String,
        note: Option<String>,
    },
    Medication {
        name: String,
        rxnorm: Option<String>,
        dose: Option<String>,
        start: Option<NaiveDate>,
        stop: Option<NaiveDate>,
    },
    Allergy {
        substance: String,
        reaction: Option<String>,
        severity: String,
    },
    Encounter {
        encounter_kind: String,
        start: DateTime<Utc>,
        end: Option<DateTime<Utc>>,
        reason: Option<String>,
        note: Option<String>,
    },
    Observation {
        code: CodingJson,
        value: ValueJson,
        effective: DateTime<Utc>,
        #[serde(default)]
        acknowledged_warnings: Vec<String>,
    },
    Assessment {
        instrument: String,
        instrument_version: String,
        answers: Vec<Option<u32>>,
        taken_at: DateTime<Utc>,
        filled_by: String,
        session: Option<String>,
        timepoint: Option<String>,
        request: Option<String>,
        note: Option<String>,
    },
    PriorTreatment {
        treatment_kind: String,
        name: String,
        dose: Option<String>,
        weeks: Option<Decimal>,
        adequate: Option<bool>,
        instrument: Option<String>,
        baseline: Option<Decimal>,
        final_score: Option<Decimal>,
        stop_reason: Option<String>,
    },
    Condition {
        condition: String,
        present: bool,
        controlled: Option<bool>,
        note: Option<String>,
    },
    TreatmentPlan {
        protocol: String,
        protocol_name: String,
        route: String,
        start: NaiveDate,
        sessions: Vec<PlanSessionJson>,
        note: Option<String>,
    },
    DoseOrder {
        plan: Option<String>,
        step: Option<String>,
        route: String,
        basis: String,
        mg_per_kg: Option<Decimal>,
        fixed_mg: Option<Decimal>,
        concentration_mg_per_ml: Option<Decimal>,
        final_volume_ml: Option<Decimal>,
        minutes: Option<Decimal>,
        weight_kg: Decimal,
        weight_measured_at: DateTime<Utc>,
        weight_measured_by: String,
        weight_used_kg: Decimal,
        dose_mg: Decimal,
        dose_requested_mg: Decimal,
        drug_volume_ml: Option<Decimal>,
        rate_ml_per_h: Option<Decimal>,
        steps: Vec<String>,
        breaches: Vec<String>,
        status: String,
        override_reason: Option<String>,
        override_approved_by: Option<String>,
        check: Option<DoubleCheckJson>,
    },
    Screening {
        verdict: String,
        findings: Vec<FindingJson>,
        trials: Vec<TrialJson>,
        resistance: String,
        resistance_definition: String,
        acceptances: Vec<AcceptanceJson>,
        knowledge_version: String,
        note: Option<String>,
    },
    LabResult {
        test: String,
        value: Decimal,
        unit: String,
        uln: Decimal,
        sampled_at: DateTime<Utc>,
        lab: Option<String>,
    },
    SafetyEvent {
        event: String,
        at: DateTime<Utc>,
        score: Option<u8>,
        positive: Option<bool>,
        substances: Option<String>,
        note: Option<String>,
    },
    SafetyReview {
        decision: String,
        reasons: String,
        evidence: Vec<String>,
        signals: Vec<String>,
        next_review: NaiveDate,
    },
    CarePlan {
        goals: Vec<GoalJson>,
        therapies: Vec<TherapyJson>,
        responsible: Vec<String>,
        next_review: Option<NaiveDate>,
        notes: Option<String>,
    },
}

#[derive(Serialize, Deserialize)]
struct PlanSessionJson {
    step: String,
    label: String,
    date: NaiveDate,
    mg_per_kg: Option<Decimal>,
    fixed_mg: Option<Decimal>,
    minutes: Option<u32>,
}

#[derive(Serialize, Deserialize)]
struct DoubleCheckJson {
    by: String,
    weight_kg: Decimal,
    concentration_mg_per_ml: Option<Decimal>,
    dose_mg: Decimal,
    at: DateTime<Utc>,
}

#[derive(Serialize, Deserialize)]
struct FindingJson {
    code: String,
    severity: String,
    category: String,
    title: String,
    trigger: String,
    #[serde(default)]
    effect: String,
    action: String,
    source: String,
    unverified: bool,
    conflict: Option<String>,
    accepted: bool,
}

#[derive(Serialize, Deserialize)]
struct TrialJson {
    index: usize,
    name: String,
    treatment_kind: Option<String>,
    status: String,
    reduction_percent: Option<Decimal>,
    explanation: String,
}

#[derive(Serialize, Deserialize)]
struct AcceptanceJson {
    code: String,
    #[serde(default)]
    trigger: String,
    reason: String,
}

/// Encodes record content as the stored JSON document.
#[derive(Serialize, Deserialize)]
struct GoalJson {
    kind: String,
    text: String,
    instrument: Option<String>,
    target: Option<Decimal>,
}

#[derive(Serialize, Deserialize)]
struct TherapyJson {
    kind: String,
    description: String,
    who: String,
    frequency: String,
    attendance: Vec<(NaiveDate, bool)>,
}

pub fn encode_record(r: &ClinicalRecord) -> String {
    let j = match r {
        ClinicalRecord::Diagnosis(d) => RecordJson::Diagnosis {
            condition: CodingJson::from(&d.condition),
            icd10: d.icd10.as_ref().map(CodingJson::from),
            onset: d.onset,
            status: d.status.code().to_owned(),
            note: d.note.clone(),
        },
        ClinicalRecord::Medication(m) => {
            RecordJson::Medication { name: m.name.clone(), rxnorm: m.rxnorm.clone(), dose: m.dose.clone(), start: m.start, stop: m.stop }
        }
        ClinicalRecord::Allergy(a) => {
            RecordJson::Allergy { substance: a.substance.clone(), reaction: a.reaction.clone(), severity: a.severity.code().to_owned() }
        }
        ClinicalRecord::Encounter(e) => RecordJson::Encounter {
            encounter_kind: e.kind.code().to_owned(),
            start: e.start,
            end: e.end,
            reason: e.reason.clone(),
            note: e.note.clone(),
        },
        ClinicalRecord::Observation(o) => RecordJson::Observation {
            code: CodingJson::from(&o.code),
            value: match &o.value {
                ObservationValue::Quantity { value, unit } => ValueJson::Quantity { value: *value, unit: unit.as_str().to_owned() },
                ObservationValue::Coded(c) => ValueJson::Coded { coding: CodingJson::from(c) },
                ObservationValue::Text(t) => ValueJson::Text { text: t.clone() },
                ObservationValue::Boolean(b) => ValueJson::Boolean { value: *b },
            },
            effective: o.effective,
            acknowledged_warnings: o.acknowledged_warnings.clone(),
        },
        ClinicalRecord::Assessment(a) => RecordJson::Assessment {
            instrument: a.instrument.clone(),
            instrument_version: a.instrument_version.clone(),
            answers: a.answers.clone(),
            taken_at: a.taken_at,
            filled_by: a.filled_by.code().to_owned(),
            session: a.session.map(|s| s.to_string()),
            timepoint: a.timepoint.clone(),
            request: a.request.map(|r| r.to_string()),
            note: a.note.clone(),
        },
        ClinicalRecord::PriorTreatment(p) => {
            let t = &p.treatment;
            RecordJson::PriorTreatment {
                treatment_kind: t.kind.map(|k| k.code()).unwrap_or("").to_owned(),
                name: t.name.clone(),
                dose: t.dose.clone(),
                weeks: t.weeks,
                adequate: t.adequate,
                instrument: t.instrument.clone(),
                baseline: t.baseline,
                final_score: t.final_score,
                stop_reason: t.stop_reason.clone(),
            }
        }
        ClinicalRecord::Condition(c) => {
            RecordJson::Condition { condition: c.condition.clone(), present: c.present, controlled: c.controlled, note: c.note.clone() }
        }
        ClinicalRecord::TreatmentPlan(p) => RecordJson::TreatmentPlan {
            protocol: p.protocol.clone(),
            protocol_name: p.protocol_name.clone(),
            route: p.route.code().to_owned(),
            start: p.start,
            sessions: p
                .sessions
                .iter()
                .map(|s| PlanSessionJson {
                    step: s.step.clone(),
                    label: s.label.clone(),
                    date: s.date,
                    mg_per_kg: s.mg_per_kg,
                    fixed_mg: s.fixed_mg,
                    minutes: s.minutes,
                })
                .collect(),
            note: p.note.clone(),
        },
        ClinicalRecord::DoseOrder(o) => RecordJson::DoseOrder {
            plan: o.plan.map(|p| p.to_string()),
            step: o.step.clone(),
            route: o.route.code().to_owned(),
            basis: o.basis.code().to_owned(),
            mg_per_kg: o.mg_per_kg,
            fixed_mg: o.fixed_mg,
            concentration_mg_per_ml: o.concentration_mg_per_ml,
            final_volume_ml: o.final_volume_ml,
            minutes: o.minutes,
            weight_kg: o.weight_kg,
            weight_measured_at: o.weight_measured_at,
            weight_measured_by: o.weight_measured_by.clone(),
            weight_used_kg: o.weight_used_kg,
            dose_mg: o.dose_mg,
            dose_requested_mg: o.dose_requested_mg,
            drug_volume_ml: o.drug_volume_ml,
            rate_ml_per_h: o.rate_ml_per_h,
            steps: o.steps.clone(),
            breaches: o.breaches.clone(),
            status: o.status.code().to_owned(),
            override_reason: o.override_reason.clone(),
            override_approved_by: o.override_approved_by.clone(),
            check: o.check.as_ref().map(|c| DoubleCheckJson {
                by: c.by.clone(),
                weight_kg: c.weight_kg,
                concentration_mg_per_ml: c.concentration_mg_per_ml,
                dose_mg: c.dose_mg,
                at: c.at,
            }),
        },
        ClinicalRecord::LabResult(l) => RecordJson::LabResult {
            test: l.test.code().to_owned(),
            value: l.value,
            unit: l.unit.clone(),
            uln: l.uln,
            sampled_at: l.sampled_at,
            lab: l.lab.clone(),
        },
        ClinicalRecord::SafetyEvent(e) => RecordJson::SafetyEvent {
            event: e.kind.code().to_owned(),
            at: e.at,
            score: e.score,
            positive: e.positive,
            substances: e.substances.clone(),
            note: e.note.clone(),
        },
        ClinicalRecord::SafetyReview(r) => RecordJson::SafetyReview {
            decision: r.decision.code().to_owned(),
            reasons: r.reasons.clone(),
            evidence: r.evidence.clone(),
            signals: r.signals.clone(),
            next_review: r.next_review,
        },
        ClinicalRecord::CarePlan(c) => RecordJson::CarePlan {
            goals: c
                .goals
                .iter()
                .map(|g| GoalJson {
                    kind: match g.kind {
                        GoalKind::Score => "score".into(),
                        GoalKind::Functional => "functional".into(),
                    },
                    text: g.text.clone(),
                    instrument: g.instrument.clone(),
                    target: g.target,
                })
                .collect(),
            therapies: c
                .therapies
                .iter()
                .map(|t| TherapyJson {
                    kind: t.kind.clone(),
                    description: t.description.clone(),
                    who: t.who.clone(),
                    frequency: t.frequency.clone(),
                    attendance: t.attendance.clone(),
                })
                .collect(),
            responsible: c.responsible.clone(),
            next_review: c.next_review,
            notes: c.notes.clone(),
        },
        ClinicalRecord::Screening(x) => RecordJson::Screening {
            verdict: x.verdict.code().to_owned(),
            findings: x
                .findings
                .iter()
                .map(|f| FindingJson {
                    code: f.code.clone(),
                    severity: f.severity.code().to_owned(),
                    category: f.category.code().to_owned(),
                    title: f.title.clone(),
                    trigger: f.trigger.clone(),
                    effect: f.effect.clone(),
                    action: f.action.clone(),
                    source: f.source.clone(),
                    unverified: f.unverified,
                    conflict: f.conflict.clone(),
                    accepted: f.accepted,
                })
                .collect(),
            trials: x
                .trials
                .iter()
                .map(|t| TrialJson {
                    index: t.index,
                    name: t.name.clone(),
                    treatment_kind: t.kind.map(|k| k.code().to_owned()),
                    status: t.status.code().to_owned(),
                    reduction_percent: t.reduction_percent,
                    explanation: t.explanation.clone(),
                })
                .collect(),
            resistance: x.resistance.code().to_owned(),
            resistance_definition: x.resistance_definition.clone(),
            acceptances: x
                .acceptances
                .iter()
                .map(|a| AcceptanceJson { code: a.code.clone(), trigger: a.trigger.clone(), reason: a.reason.clone() })
                .collect(),
            knowledge_version: x.knowledge_version.clone(),
            note: x.note.clone(),
        },
    };
    serde_json::to_string(&j).unwrap_or_default()
}

/// Decodes a stored JSON document.
pub fn decode_record(s: &str) -> Result<ClinicalRecord, DbError> {
    let j: RecordJson = serde_json::from_str(s).map_err(|_| corrupt("record body"))?;
    Ok(match j {
        RecordJson::Diagnosis { condition, icd10, onset, status, note } => ClinicalRecord::Diagnosis(Diagnosis {
            condition: condition.into_domain()?,
            icd10: icd10.map(CodingJson::into_domain).transpose()?,
            onset,
            status: ClinicalStatus::parse(&status).map_err(corrupt)?,
            note,
        }),
        RecordJson::Medication { name, rxnorm, dose, start, stop } => {
            ClinicalRecord::Medication(Medication { name, rxnorm, dose, start, stop })
        }
        RecordJson::Allergy { substance, reaction, severity } => {
            ClinicalRecord::Allergy(Allergy { substance, reaction, severity: AllergySeverity::parse(&severity).map_err(corrupt)? })
        }
        RecordJson::Encounter { encounter_kind, start, end, reason, note } => {
            ClinicalRecord::Encounter(Encounter { kind: EncounterKind::parse(&encounter_kind).map_err(corrupt)?, start, end, reason, note })
        }
        RecordJson::Observation { code, value, effective, acknowledged_warnings } => ClinicalRecord::Observation(Observation {
            code: code.into_domain()?,
            value: match value {
                ValueJson::Quantity { value, unit } => ObservationValue::Quantity { value, unit: UcumUnit::parse(&unit).map_err(corrupt)? },
                ValueJson::Coded { coding } => ObservationValue::Coded(coding.into_domain()?),
                ValueJson::Text { text } => ObservationValue::Text(text),
                ValueJson::Boolean { value } => ObservationValue::Boolean(value),
            },
            effective,
            acknowledged_warnings,
        }),
        RecordJson::Assessment { instrument, instrument_version, answers, taken_at, filled_by, session, timepoint, request, note } => {
            ClinicalRecord::Assessment(Assessment {
                instrument,
                instrument_version,
                answers,
                taken_at,
                filled_by: FilledBy::parse(&filled_by).map_err(corrupt)?,
                session: session.as_deref().map(|s| id(s, RecordId::parse)).transpose()?,
                timepoint,
                request: request.as_deref().map(|s| id(s, RequestId::parse)).transpose()?,
                note,
            })
        }
        RecordJson::PriorTreatment { treatment_kind, name, dose, weeks, adequate, instrument, baseline, final_score, stop_reason } => {
            ClinicalRecord::PriorTreatment(PriorTreatmentRecord {
                treatment: PriorTreatment {
                    kind: Some(TreatmentKind::parse(&treatment_kind).map_err(corrupt)?),
                    name,
                    dose,
                    weeks,
                    adequate,
                    instrument,
                    baseline,
                    final_score,
                    stop_reason,
                },
            })
        }
        RecordJson::Condition { condition, present, controlled, note } => {
            ClinicalRecord::Condition(ConditionRecord { condition, present, controlled, note })
        }
        RecordJson::TreatmentPlan { protocol, protocol_name, route, start, sessions, note } => {
            ClinicalRecord::TreatmentPlan(TreatmentPlanRecord {
                protocol,
                protocol_name,
                route: Route::parse(&route).map_err(corrupt)?,
                start,
                sessions: sessions
                    .into_iter()
                    .map(|s| PlanSession {
                        step: s.step,
                        label: s.label,
                        date: s.date,
                        mg_per_kg: s.mg_per_kg,
                        fixed_mg: s.fixed_mg,
                        minutes: s.minutes,
                    })
                    .collect(),
                note,
            })
        }
        RecordJson::DoseOrder {
            plan,
            step,
            route,
            basis,
            mg_per_kg,
            fixed_mg,
            concentration_mg_per_ml,
            final_volume_ml,
            minutes,
            weight_kg,
            weight_measured_at,
            weight_measured_by,
            weight_used_kg,
            dose_mg,
            dose_requested_mg,
            drug_volume_ml,
            rate_ml_per_h,
            steps,
            breaches,
            status,
            override_reason,
            override_approved_by,
            check,
        } => ClinicalRecord::DoseOrder(Box::new(DoseOrderRecord {
            plan: plan.as_deref().map(|s| id(s, RecordId::parse)).transpose()?,
            step,
            route: Route::parse(&route).map_err(corrupt)?,
            basis: WeightBasis::parse(&basis).map_err(corrupt)?,
            mg_per_kg,
            fixed_mg,
            concentration_mg_per_ml,
            final_volume_ml,
            minutes,
            weight_kg,
            weight_measured_at,
            weight_measured_by,
            weight_used_kg,
            dose_mg,
            dose_requested_mg,
            drug_volume_ml,
            rate_ml_per_h,
            steps,
            breaches,
            status: OrderStatus::parse(&status).map_err(corrupt)?,
            override_reason,
            override_approved_by,
            check: check.map(|c| DoubleCheck {
                by: c.by,
                weight_kg: c.weight_kg,
                concentration_mg_per_ml: c.concentration_mg_per_ml,
                dose_mg: c.dose_mg,
                at: c.at,
            }),
        })),
        RecordJson::LabResult { test, value, unit, uln, sampled_at, lab } => ClinicalRecord::LabResult(LabResult {
            test: LabTest::parse(&test).ok_or_else(|| corrupt(format!("lab test {test}")))?,
            value,
            unit,
            uln,
            sampled_at,
            lab,
        }),
        RecordJson::SafetyEvent { event, at, score, positive, substances, note } => ClinicalRecord::SafetyEvent(SafetyEvent {
            kind: SafetyEventKind::parse(&event).ok_or_else(|| corrupt(format!("safety event {event}")))?,
            at,
            score,
            positive,
            substances,
            note,
        }),
        RecordJson::SafetyReview { decision, reasons, evidence, signals, next_review } => ClinicalRecord::SafetyReview(SafetyReview {
            decision: ReviewDecision::parse(&decision).ok_or_else(|| corrupt(format!("review decision {decision}")))?,
            reasons,
            evidence,
            signals,
            next_review,
        }),
        RecordJson::CarePlan { goals, therapies, responsible, next_review, notes } => ClinicalRecord::CarePlan(CarePlan {
            goals: goals
                .into_iter()
                .map(|g| Goal {
                    kind: if g.kind == "score" { GoalKind::Score } else { GoalKind::Functional },
                    text: g.text,
                    instrument: g.instrument,
                    target: g.target,
                })
                .collect(),
            therapies: therapies
                .into_iter()
                .map(|t| Therapy { kind: t.kind, description: t.description, who: t.who, frequency: t.frequency, attendance: t.attendance })
                .collect(),
            responsible,
            next_review,
            notes,
        }),
        RecordJson::Screening { verdict, findings, trials, resistance, resistance_definition, acceptances, knowledge_version, note } => {
            let mut fs = Vec::with_capacity(findings.len());
            for f in findings {
                fs.push(Finding {
                    code: f.code,
                    severity: Severity::parse(&f.severity).map_err(corrupt)?,
                    category: Category::parse(&f.category).map_err(corrupt)?,
                    title: f.title,
                    trigger: f.trigger,
                    effect: f.effect,
                    action: f.action,
                    source: f.source,
                    unverified: f.unverified,
                    conflict: f.conflict,
                    accepted: f.accepted,
                });
            }
            let mut ts = Vec::with_capacity(trials.len());
            for t in trials {
                ts.push(TrialJudgement {
                    index: t.index,
                    name: t.name,
                    kind: t.treatment_kind.as_deref().map(TreatmentKind::parse).transpose().map_err(corrupt)?,
                    status: TrialStatus::parse(&t.status).map_err(corrupt)?,
                    reduction_percent: t.reduction_percent,
                    explanation: t.explanation,
                });
            }
            ClinicalRecord::Screening(ScreeningRecord {
                verdict: Verdict::parse(&verdict).map_err(corrupt)?,
                findings: fs,
                trials: ts,
                resistance: ResistanceStatus::parse(&resistance).map_err(corrupt)?,
                resistance_definition,
                acceptances: acceptances.into_iter().map(|a| Acceptance { code: a.code, trigger: a.trigger, reason: a.reason }).collect(),
                knowledge_version,
                note,
            })
        }
    })
}

#[derive(Serialize, Deserialize, Default)]
struct ContactJson {
    phone: Option<String>,
    email: Option<String>,
    address: Option<String>,
    emergency_name: Option<String>,
    emergency_relationship: Option<String>,
    emergency_phone: Option<String>,
}

/// Encodes contact and emergency contact details.
pub fn encode_contact(d: &Demographics) -> String {
    let j = ContactJson {
        phone: d.contact.phone.clone(),
        email: d.contact.email.clone(),
        address: d.contact.address.clone(),
        emergency_name: d.emergency_contact.name.clone(),
        emergency_relationship: d.emergency_contact.relationship.clone(),
        emergency_phone: d.emergency_contact.phone.clone(),
    };
    serde_json::to_string(&j).unwrap_or_default()
}

/// A `patient_versions` row.
#[derive(sqlx::FromRow)]
pub struct PatientRow {
    /// Column.
    pub version_id: String,
    /// Column.
    pub patient_id: String,
    /// Column.
    pub version: i64,
    /// Column.
    pub action: String,
    /// Column.
    pub mrn: String,
    /// Column.
    pub family_name: String,
    /// Column.
    pub given_name: String,
    /// Column.
    pub date_of_birth: String,
    /// Column.
    pub sex: String,
    /// Column.
    pub contact: String,
    /// Column.
    pub reason: Option<String>,
    /// Column.
    pub recorded_by: String,
    /// Column.
    pub recorded_by_name: String,
    /// Column.
    pub recorded_at: String,
}

impl PatientRow {
    /// Into the domain type.
    pub fn into_domain(self) -> Result<PatientVersion, DbError> {
        let c: ContactJson = serde_json::from_str(&self.contact).map_err(|_| corrupt("contact"))?;
        let dob = NaiveDate::parse_from_str(&self.date_of_birth, "%Y-%m-%d").map_err(|_| corrupt("date of birth"))?;
        Ok(PatientVersion {
            patient_id: id(&self.patient_id, PatientId::parse)?,
            version_id: id(&self.version_id, VersionId::parse)?,
            version: u32::try_from(self.version).map_err(|_| corrupt("version"))?,
            action: VersionAction::parse(&self.action).map_err(corrupt)?,
            demographics: Demographics {
                mrn: Mrn::parse(&self.mrn).map_err(corrupt)?,
                name: PersonName::new(&self.family_name, &self.given_name).map_err(corrupt)?,
                date_of_birth: DateOfBirth::from_stored(dob),
                sex: Sex::parse(&self.sex).map_err(corrupt)?,
                contact: Contact { phone: c.phone, email: c.email, address: c.address },
                emergency_contact: EmergencyContact {
                    name: c.emergency_name,
                    relationship: c.emergency_relationship,
                    phone: c.emergency_phone,
                },
            },
            reason: self.reason.map(|r| Reason::parse(&r)).transpose().map_err(corrupt)?,
            provenance: Provenance {
                user_id: id(&self.recorded_by, UserId::parse)?,
                username: self.recorded_by_name,
                recorded_at: parse_ts(&self.recorded_at)?,
            },
        })
    }
}

/// A `record_versions` row.
#[derive(sqlx::FromRow)]
pub struct RecordRow {
    /// Column.
    pub version_id: String,
    /// Column.
    pub record_id: String,
    /// Column.
    pub version: i64,
    /// Column.
    pub supersedes: Option<String>,
    /// Column.
    pub patient_id: String,
    /// Column.
    pub kind: String,
    /// Column.
    pub action: String,
    /// Column.
    pub body: String,
    /// Column.
    pub reason: Option<String>,
    /// Column.
    pub recorded_by: String,
    /// Column.
    pub recorded_by_name: String,
    /// Column.
    pub recorded_at: String,
}

impl RecordRow {
    /// Into the domain type.
    pub fn into_domain(self) -> Result<RecordVersion, DbError> {
        let record = decode_record(&self.body)?;
        if record.kind().code() != self.kind {
            return Err(corrupt("record kind column does not match body"));
        }
        Ok(RecordVersion {
            record_id: id(&self.record_id, RecordId::parse)?,
            version_id: id(&self.version_id, VersionId::parse)?,
            version: u32::try_from(self.version).map_err(|_| corrupt("version"))?,
            supersedes: self.supersedes.as_deref().map(VersionId::parse).transpose().map_err(|_| corrupt("supersedes"))?,
            patient_id: id(&self.patient_id, PatientId::parse)?,
            action: VersionAction::parse(&self.action).map_err(corrupt)?,
            record,
            reason: self.reason.map(|r| Reason::parse(&r)).transpose().map_err(corrupt)?,
            provenance: Provenance {
                user_id: id(&self.recorded_by, UserId::parse)?,
                username: self.recorded_by_name,
                recorded_at: parse_ts(&self.recorded_at)?,
            },
        })
    }
}

/// A `users` row.
#[derive(sqlx::FromRow)]
pub struct UserRow {
    /// Column.
    pub id: String,
    /// Column.
    pub username: String,
    /// Column.
    pub display_name: String,
    /// Column.
    pub role: String,
    /// Column.
    pub password_hash: String,
    /// Column.
    pub active: i64,
    /// Column.
    pub created_at: String,
    /// Column.
    pub failed_logins: i64,
    /// Column.
    pub locked_until: Option<String>,
}

impl UserRow {
    /// Into the domain type plus password hash.
    pub fn into_domain(self) -> Result<(User, String), DbError> {
        Ok((
            User {
                id: id(&self.id, UserId::parse)?,
                username: Username::parse(&self.username).map_err(corrupt)?,
                display_name: self.display_name,
                role: Role::parse(&self.role).map_err(corrupt)?,
                active: self.active != 0,
                created_at: parse_ts(&self.created_at)?,
                lock: ketacare_domain::login::AccountLock {
                    failed: u32::try_from(self.failed_logins)
                        .map_err(|_| DbError::Corrupt(format!("failed_logins {}", self.failed_logins)))?,
                    locked_until: self.locked_until.as_deref().map(parse_ts).transpose()?,
                },
            },
            self.password_hash,
        ))
    }
}

/// A `sessions` row.
#[derive(sqlx::FromRow)]
pub struct SessionRow {
    /// Column.
    pub id: String,
    /// Column.
    pub token_hash: String,
    /// Column.
    pub user_id: String,
    /// Column.
    pub csrf_token: String,
    /// Column.
    pub created_at: String,
    /// Column.
    pub last_seen_at: String,
    /// Column.
    pub expires_at: String,
    /// Column.
    pub client_addr: Option<String>,
}

impl SessionRow {
    /// Into the model type.
    pub fn into_model(self) -> Result<StoredSession, DbError> {
        Ok(StoredSession {
            id: id(&self.id, SessionId::parse)?,
            token_hash: self.token_hash,
            user_id: id(&self.user_id, UserId::parse)?,
            csrf_token: self.csrf_token,
            created_at: parse_ts(&self.created_at)?,
            last_seen_at: parse_ts(&self.last_seen_at)?,
            expires_at: parse_ts(&self.expires_at)?,
            client_addr: self.client_addr,
        })
    }
}

/// An `api_tokens` row.
#[derive(sqlx::FromRow)]
pub struct TokenRow {
    /// Column.
    pub id: String,
    /// Column.
    pub user_id: String,
    /// Column.
    pub label: String,
    /// Column.
    pub token_hash: String,
    /// Column.
    pub created_at: String,
    /// Column.
    pub created_by: String,
    /// Column.
    pub revoked_at: Option<String>,
}

impl TokenRow {
    /// Into the model type.
    pub fn into_model(self) -> Result<ApiToken, DbError> {
        Ok(ApiToken {
            id: id(&self.id, TokenId::parse)?,
            user_id: id(&self.user_id, UserId::parse)?,
            label: self.label,
            token_hash: self.token_hash,
            created_at: parse_ts(&self.created_at)?,
            created_by: id(&self.created_by, UserId::parse)?,
            revoked_at: self.revoked_at.as_deref().map(parse_ts).transpose()?,
        })
    }
}

/// An `audit_log` row.
#[derive(sqlx::FromRow)]
pub struct AuditRow {
    /// Column.
    pub seq: i64,
    /// Column.
    pub recorded_at: String,
    /// Column.
    pub user_id: Option<String>,
    /// Column.
    pub username: String,
    /// Column.
    pub role: Option<String>,
    /// Column.
    pub session_ref: Option<String>,
    /// Column.
    pub client_addr: Option<String>,
    /// Column.
    pub action: String,
    /// Column.
    pub outcome: String,
    /// Column.
    pub entity_type: String,
    /// Column.
    pub entity_id: Option<String>,
    /// Column.
    pub patient_id: Option<String>,
    /// Column.
    pub detail: Option<String>,
}

impl AuditRow {
    /// Into the domain type.
    pub fn into_domain(self) -> Result<AuditEntry, DbError> {
        Ok(AuditEntry {
            seq: self.seq,
            event: AuditEvent {
                recorded_at: parse_ts(&self.recorded_at)?,
                actor: Actor {
                    user_id: self.user_id.as_deref().map(UserId::parse).transpose().map_err(|_| corrupt("user id"))?,
                    username: self.username,
                    role: self.role.as_deref().map(Role::parse).transpose().map_err(corrupt)?,
                    session_ref: self.session_ref,
                    client_addr: self.client_addr,
                },
                action: AuditAction::parse(&self.action).map_err(corrupt)?,
                outcome: AuditOutcome::parse(&self.outcome).map_err(corrupt)?,
                entity_type: self.entity_type,
                entity_id: self.entity_id,
                patient_id: self.patient_id.as_deref().map(PatientId::parse).transpose().map_err(|_| corrupt("patient id"))?,
                detail: self.detail,
            },
        })
    }
}

/// Escapes `%`, `_` and `\` for a `LIKE … ESCAPE '\'` pattern and wraps in `%…%`, lower-cased.
pub fn like_pattern(q: &str) -> String {
    let mut s = String::from("%");
    for c in q.trim().to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('%');
    s
}

/// A `questionnaire_requests` row.
#[derive(sqlx::FromRow)]
pub struct RequestRow {
    /// Column.
    pub id: String,
    /// Column.
    pub patient_id: String,
    /// Column.
    pub instrument: String,
    /// Column.
    pub token_hash: String,
    /// Column.
    pub session_record_id: Option<String>,
    /// Column.
    pub timepoint: Option<String>,
    /// Column.
    pub sent_by: String,
    /// Column.
    pub sent_by_name: String,
    /// Column.
    pub sent_at: String,
    /// Column.
    pub expires_at: String,
    /// Column.
    pub completed_at: Option<String>,
    /// Column.
    pub response_record_id: Option<String>,
    /// Column.
    pub cancelled_at: Option<String>,
}

fn opt_ts(s: Option<String>) -> Result<Option<DateTime<Utc>>, DbError> {
    s.as_deref().map(parse_ts).transpose()
}

impl RequestRow {
    /// Into the domain type.
    pub fn into_domain(self) -> Result<QuestionnaireRequest, DbError> {
        Ok(QuestionnaireRequest {
            id: id(&self.id, RequestId::parse)?,
            patient_id: id(&self.patient_id, PatientId::parse)?,
            instrument: self.instrument,
            token_hash: self.token_hash,
            session: self.session_record_id.as_deref().map(|s| id(s, RecordId::parse)).transpose()?,
            timepoint: self.timepoint,
            sent_by: id(&self.sent_by, UserId::parse)?,
            sent_by_name: self.sent_by_name,
            sent_at: parse_ts(&self.sent_at)?,
            expires_at: parse_ts(&self.expires_at)?,
            completed_at: opt_ts(self.completed_at)?,
            response: self.response_record_id.as_deref().map(|s| id(s, RecordId::parse)).transpose()?,
            cancelled_at: opt_ts(self.cancelled_at)?,
        })
    }
}

/// A `safety_alerts` row.
#[derive(sqlx::FromRow)]
pub struct AlertRow {
    /// Column.
    pub id: String,
    /// Column.
    pub patient_id: String,
    /// Column.
    pub code: String,
    /// Column.
    pub label: String,
    /// Column.
    pub source_record_id: String,
    /// Column.
    pub raised_at: String,
    /// Column.
    pub assigned_to: Option<String>,
    /// Column.
    pub acknowledged_by: Option<String>,
    /// Column.
    pub acknowledged_by_name: Option<String>,
    /// Column.
    pub acknowledged_at: Option<String>,
    /// Column.
    pub action_taken: Option<String>,
}

impl AlertRow {
    /// Into the domain type.
    pub fn into_domain(self) -> Result<SafetyAlert, DbError> {
        let acknowledgement = match (self.acknowledged_by, self.acknowledged_by_name, self.acknowledged_at, self.action_taken) {
            (Some(by), Some(by_name), Some(at), Some(action_taken)) => {
                Some(Acknowledgement { by: id(&by, UserId::parse)?, by_name, at: parse_ts(&at)?, action_taken })
            }
            (None, None, None, None) => None,
            _ => return Err(corrupt("partial alert acknowledgement")),
        };
        Ok(SafetyAlert {
            id: id(&self.id, AlertId::parse)?,
            patient_id: id(&self.patient_id, PatientId::parse)?,
            code: self.code,
            label: self.label,
            source_record: id(&self.source_record_id, RecordId::parse)?,
            raised_at: parse_ts(&self.raised_at)?,
            assigned_to: self.assigned_to.as_deref().map(|s| id(s, UserId::parse)).transpose()?,
            acknowledgement,
        })
    }
}

/// An `assessment_schedules` row.
#[derive(sqlx::FromRow)]
pub struct ScheduleRow {
    /// Column.
    pub id: String,
    /// Column.
    pub patient_id: String,
    /// Column.
    pub instrument: String,
    /// Column.
    pub anchor: String,
    /// Column.
    pub timepoints: Option<String>,
    /// Column.
    pub interval_days: Option<i64>,
    /// Column.
    pub start_date: Option<String>,
    /// Column.
    pub created_by_name: String,
    /// Column.
    pub created_at: String,
    /// Column.
    pub ended_at: Option<String>,
}

/// The anchor as stored: (anchor, timepoints, interval_days, start_date).
pub fn encode_anchor(a: &Anchor) -> (&'static str, Option<String>, Option<i64>, Option<String>) {
    match a {
        Anchor::Session { timepoints } => ("session", Some(timepoints.join(",")), None, None),
        Anchor::Calendar { interval_days, start } => {
            ("calendar", None, Some(i64::from(*interval_days)), Some(start.format("%Y-%m-%d").to_string()))
        }
    }
}

impl ScheduleRow {
    /// Into the domain type.
    pub fn into_domain(self) -> Result<Schedule, DbError> {
        let anchor = match (self.anchor.as_str(), self.timepoints, self.interval_days, self.start_date) {
            ("session", Some(t), _, _) => Anchor::Session { timepoints: t.split(',').map(str::to_owned).collect() },
            ("calendar", _, Some(d), Some(start)) => Anchor::Calendar {
                interval_days: u32::try_from(d).map_err(|_| corrupt("interval_days"))?,
                start: NaiveDate::parse_from_str(&start, "%Y-%m-%d").map_err(|_| corrupt("start_date"))?,
            },
            _ => return Err(corrupt("schedule anchor")),
        };
        Ok(Schedule {
            id: id(&self.id, ScheduleId::parse)?,
            patient_id: id(&self.patient_id, PatientId::parse)?,
            instrument: self.instrument,
            anchor,
            created_by: self.created_by_name,
            created_at: parse_ts(&self.created_at)?,
            ended_at: opt_ts(self.ended_at)?,
        })
    }
}
