//! Ketacare's records as FHIR R4 resources.
//!
//! | Record | Resource |
//! |---|---|
//! | demographics | `Patient` |
//! | diagnosis, comorbid condition | `Condition` |
//! | medication | `MedicationStatement` |
//! | allergy | `AllergyIntolerance` |
//! | encounter, treatment session | `Encounter` |
//! | weight, height, other observations, lab results, session vital signs | `Observation` |
//! | assessment | `QuestionnaireResponse` + score `Observation`s (`derivedFrom`) |
//! | dose order | `MedicationRequest` |
//! | dose given in a session | `MedicationAdministration` |
//! | session adverse event, safety observation | `AdverseEvent` |
//! | treatment plan, care plan | `CarePlan` |
//! | record version | `Provenance` |
//! | audit entry | `AuditEvent` |
//! | instrument | `Questionnaire` |
//!
//! Not exported: prior treatments, signed screening verdicts and benefit-risk reviews (their
//! resources, Procedure, RiskAssessment and ClinicalImpression, are not served).
//!
//! A dose order shows its dose only once it has passed the independent double check, as
//! everywhere else in Ketacare: the checker works blind.

use crate::codes::{self, profile};
use crate::{coding, concept, hex32, json, quantity, questionnaire_id, questionnaire_url, Catalog, Value, View};
use chrono::{DateTime, NaiveDate, Utc};
use ketacare_domain::assessment::{Assessment, FilledBy};
use ketacare_domain::audit::{AuditEntry, AuditOutcome};
use ketacare_domain::coding::{loinc, CodeSystem, Coding};
use ketacare_domain::ids::{PatientId, RecordId};
use ketacare_domain::instrument::{AnswerKind, Instrument};
use ketacare_domain::order::{DoseOrderRecord, OrderStatus, TreatmentPlanRecord};
use ketacare_domain::patient::Demographics;
use ketacare_domain::record::{
    Allergy, ClinicalRecord, ClinicalStatus, Diagnosis, Encounter, Medication, Observation, ObservationValue, PatientVersion,
    RecordVersion, VersionAction,
};
use ketacare_domain::safety::{CarePlan, GoalKind, LabResult, SafetyEvent, SafetyEventKind};
use ketacare_domain::screening::ConditionRecord;
use ketacare_domain::session::{AdverseEvent, Phase, Vital, ADVERSE_EVENT_KINDS};
use rust_decimal::Decimal;
use std::collections::HashMap;
use uuid::Uuid;

/// One vital-sign reading of a treatment session.
#[derive(Clone, Debug)]
pub struct Reading {
    /// Reading id.
    pub id: Uuid,
    /// Vital sign.
    pub vital: Vital,
    /// Value in the vital's UCUM unit.
    pub value: Decimal,
    /// When measured.
    pub observed_at: DateTime<Utc>,
    /// Monitor or gateway device id.
    pub device_id: Option<String>,
}

/// An adverse event recorded in a treatment session.
#[derive(Clone, Debug)]
pub struct SessionAdverseEvent {
    /// The session event's id.
    pub id: Uuid,
    /// When recorded.
    pub at: DateTime<Utc>,
    /// The event.
    pub event: AdverseEvent,
    /// Who recorded it.
    pub recorded_by: String,
}

/// A treatment session with what the FHIR resources show of it.
#[derive(Clone, Debug)]
pub struct SessionData {
    /// Session id (the treatment encounter's record id).
    pub id: RecordId,
    /// Phase now.
    pub phase: Phase,
    /// Booked for.
    pub scheduled_at: DateTime<Utc>,
    /// Dose started.
    pub dose_started_at: Option<DateTime<Utc>>,
    /// Dose ended.
    pub dose_ended_at: Option<DateTime<Utc>>,
    /// Discharge signed.
    pub signed_at: Option<DateTime<Utc>>,
    /// The dose order given.
    pub order_id: Option<RecordId>,
    /// The dose was stopped before the end.
    pub stopped_early: bool,
    /// Chair.
    pub chair: String,
    /// Vital-sign readings, oldest first.
    pub readings: Vec<Reading>,
    /// Adverse events, oldest first.
    pub adverse_events: Vec<SessionAdverseEvent>,
}

/// Everything about one patient that becomes resources.
#[derive(Clone, Debug)]
pub struct PatientData {
    /// Current demographics.
    pub patient: PatientVersion,
    /// Current, non-voided records.
    pub records: Vec<RecordVersion>,
    /// Treatment sessions.
    pub sessions: Vec<SessionData>,
    /// Today (UTC), for statuses that depend on dates.
    pub now: DateTime<Utc>,
}

fn reference(kind: &str, id: &str) -> Value {
    json!({"reference": format!("{kind}/{id}")})
}

fn meta(view: &View, version: u32, at: DateTime<Utc>, profiles: &[&str]) -> Value {
    let mut m = json!({"versionId": version.to_string(), "lastUpdated": view.instant(at)});
    if !profiles.is_empty() {
        m["profile"] = json!(profiles);
    }
    m
}

fn set(o: &mut Value, key: &str, v: Option<Value>) {
    if let Some(v) = v {
        o[key] = v;
    }
}

fn domain_coding(c: &Coding) -> Value {
    coding(c.system().uri(), c.code(), c.display())
}

/// The patient's id as the view shows it.
pub fn patient_id(view: &View, id: PatientId) -> String {
    match view {
        View::Identified => id.to_string(),
        View::Deidentified { research_id, .. } => research_id.clone(),
    }
}

fn subject(view: &View, id: PatientId) -> Value {
    reference("Patient", &patient_id(view, id))
}

/// The Patient resource.
pub fn patient(v: &PatientVersion, view: &View) -> Value {
    let d = &v.demographics;
    match view {
        View::Identified => identified_patient(v, d, view),
        View::Deidentified { research_id, shift, over_89, .. } => {
            let mut p = json!({
                "resourceType": "Patient",
                "id": research_id,
                "meta": meta(view, v.version, v.provenance.recorded_at, &[]),
                "identifier": [{"system": codes::RESEARCH_ID, "value": research_id}],
                "gender": d.sex.code(),
            });
            if !over_89 {
                p["birthDate"] = Value::String(shift.date(d.date_of_birth.date()).format("%Y").to_string());
            }
            p
        }
    }
}

fn identified_patient(v: &PatientVersion, d: &Demographics, view: &View) -> Value {
    let given: Vec<&str> = d.name.given().split_whitespace().collect();
    let mut p = json!({
        "resourceType": "Patient",
        "id": v.patient_id.to_string(),
        "meta": meta(view, v.version, v.provenance.recorded_at, &[]),
        "identifier": [{
            "use": "usual",
            "type": {"coding": [coding(codes::IDENTIFIER_TYPE, "MR", "Medical record number")], "text": "MRN"},
            "system": codes::MRN,
            "value": d.mrn.as_str(),
        }],
        "active": v.action != VersionAction::Void,
        "name": [{"use": "official", "family": d.name.family(), "given": given}],
        "gender": d.sex.code(),
        "birthDate": d.date_of_birth.date().format("%Y-%m-%d").to_string(),
    });
    let mut telecom = Vec::new();
    if let Some(ph) = &d.contact.phone {
        telecom.push(json!({"system": "phone", "value": ph, "use": "home"}));
    }
    if let Some(e) = &d.contact.email {
        telecom.push(json!({"system": "email", "value": e, "use": "home"}));
    }
    if !telecom.is_empty() {
        p["telecom"] = Value::Array(telecom);
    }
    if let Some(a) = &d.contact.address {
        p["address"] = json!([{"use": "home", "text": a}]);
    }
    let ec = &d.emergency_contact;
    if ec.name.is_some() || ec.phone.is_some() {
        let mut c =
            json!({"relationship": [{"coding": [coding("http://terminology.hl7.org/CodeSystem/v2-0131", "C", "Emergency Contact")]}]});
        if let (Some(r), Some(a)) = (&ec.relationship, c["relationship"].as_array_mut()) {
            a.push(json!({"text": r}));
        }
        set(&mut c, "name", ec.name.as_ref().map(|n| json!({"text": n})));
        set(&mut c, "telecom", ec.phone.as_ref().map(|ph| json!([{"system": "phone", "value": ph}])));
        p["contact"] = json!([c]);
    }
    p
}

fn diagnosis(v: &RecordVersion, d: &Diagnosis, view: &View) -> Value {
    let mut codings = vec![domain_coding(&d.condition)];
    if let Some(icd) = &d.icd10 {
        if icd != &d.condition {
            codings.push(domain_coding(icd));
        }
    }
    let status = match d.status {
        ClinicalStatus::Active => ("active", "Active"),
        ClinicalStatus::Remission => ("remission", "Remission"),
        ClinicalStatus::Resolved => ("resolved", "Resolved"),
    };
    let mut c = json!({
        "resourceType": "Condition",
        "id": view.id(&v.record_id.to_string()),
        "meta": meta(view, v.version, v.provenance.recorded_at, &[]),
        "clinicalStatus": concept(codes::CONDITION_CLINICAL, status.0, status.1),
        "verificationStatus": concept(codes::CONDITION_VERIFICATION, "confirmed", "Confirmed"),
        "category": [concept(codes::CONDITION_CATEGORY, "problem-list-item", "Problem List Item")],
        "code": {"coding": codings, "text": d.condition.display()},
        "subject": subject(view, v.patient_id),
        "recordedDate": view.instant(v.provenance.recorded_at),
    });
    set(&mut c, "onsetDateTime", d.onset.map(|o| Value::String(view.date(o))));
    set(&mut c, "note", view.text(d.note.as_deref()).map(|t| json!([{"text": t}])));
    c
}

fn comorbidity(v: &RecordVersion, r: &ConditionRecord, view: &View, cat: &Catalog) -> Value {
    let rule = cat.conditions.iter().find(|c| c.key == r.condition);
    let code = match rule {
        Some(rule) => Some(concept(codes::COMORBIDITY, &rule.key, &rule.label)),
        None => view.text(Some(&r.condition)).map(|t| json!({"text": t})),
    };
    let (clinical, verification) =
        if r.present { (("active", "Active"), ("confirmed", "Confirmed")) } else { (("inactive", "Inactive"), ("refuted", "Refuted")) };
    let mut c = json!({
        "resourceType": "Condition",
        "id": view.id(&v.record_id.to_string()),
        "meta": meta(view, v.version, v.provenance.recorded_at, &[]),
        "clinicalStatus": concept(codes::CONDITION_CLINICAL, clinical.0, clinical.1),
        "verificationStatus": concept(codes::CONDITION_VERIFICATION, verification.0, verification.1),
        "category": [concept(codes::CONDITION_CATEGORY, "problem-list-item", "Problem List Item")],
        "subject": subject(view, v.patient_id),
        "recordedDate": view.instant(v.provenance.recorded_at),
    });
    set(&mut c, "code", code);
    set(&mut c, "extension", r.controlled.map(|b| json!([{"url": codes::EXT_CONTROLLED, "valueBoolean": b}])));
    set(&mut c, "note", view.text(r.note.as_deref()).map(|t| json!([{"text": t}])));
    c
}

fn medication_concept(name: &str, rxnorm: Option<&str>) -> Value {
    match rxnorm {
        Some(rx) => json!({"coding": [coding(codes::RXNORM, rx, name)], "text": name}),
        None => json!({"text": name}),
    }
}

fn medication(v: &RecordVersion, m: &Medication, view: &View, today: NaiveDate) -> Value {
    let status = if m.stop.is_some_and(|s| s <= today) { "completed" } else { "active" };
    let mut s = json!({
        "resourceType": "MedicationStatement",
        "id": view.id(&v.record_id.to_string()),
        "meta": meta(view, v.version, v.provenance.recorded_at, &[]),
        "status": status,
        "medicationCodeableConcept": medication_concept(&m.name, m.rxnorm.as_deref()),
        "subject": subject(view, v.patient_id),
        "dateAsserted": view.instant(v.provenance.recorded_at),
    });
    if m.start.is_some() || m.stop.is_some() {
        let mut p = json!({});
        set(&mut p, "start", m.start.map(|d| Value::String(view.date(d))));
        set(&mut p, "end", m.stop.map(|d| Value::String(view.date(d))));
        s["effectivePeriod"] = p;
    }
    set(&mut s, "dosage", m.dose.as_ref().map(|d| json!([{"text": d}])));
    s
}

fn allergy(v: &RecordVersion, a: &Allergy, view: &View) -> Value {
    let mut r = json!({
        "resourceType": "AllergyIntolerance",
        "id": view.id(&v.record_id.to_string()),
        "meta": meta(view, v.version, v.provenance.recorded_at, &[]),
        "clinicalStatus": concept(codes::ALLERGY_CLINICAL, "active", "Active"),
        "verificationStatus": concept(codes::ALLERGY_VERIFICATION, "confirmed", "Confirmed"),
        "code": {"text": a.substance},
        "patient": subject(view, v.patient_id),
        "recordedDate": view.instant(v.provenance.recorded_at),
    });
    let severity = match a.severity {
        ketacare_domain::record::AllergySeverity::Mild => Some("mild"),
        ketacare_domain::record::AllergySeverity::Moderate => Some("moderate"),
        ketacare_domain::record::AllergySeverity::Severe => Some("severe"),
        ketacare_domain::record::AllergySeverity::Unknown => None,
    };
    if a.reaction.is_some() || severity.is_some() {
        let manifestation = match &a.reaction {
            Some(t) => json!({"text": t}),
            None => json!({"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason", "valueCode": "unknown"}]}),
        };
        let mut reaction = json!({"manifestation": [manifestation]});
        set(&mut reaction, "severity", severity.map(|s| Value::String(s.to_owned())));
        r["reaction"] = json!([reaction]);
    }
    r
}

fn encounter_status(phase: Option<Phase>, e: &Encounter, now: DateTime<Utc>) -> &'static str {
    match phase {
        Some(Phase::Scheduled) => "planned",
        Some(Phase::CheckedIn) => "arrived",
        Some(Phase::Discharged) => "finished",
        Some(Phase::Cancelled) => "cancelled",
        Some(_) => "in-progress",
        None if e.end.is_some() => "finished",
        None if e.start > now => "planned",
        None => "in-progress",
    }
}

fn encounter(v: &RecordVersion, e: &Encounter, session: Option<&SessionData>, view: &View, now: DateTime<Utc>) -> Value {
    let mut period = json!({"start": view.instant(e.start)});
    set(&mut period, "end", e.end.map(|t| Value::String(view.instant(t))));
    let mut r = json!({
        "resourceType": "Encounter",
        "id": view.id(&v.record_id.to_string()),
        "meta": meta(view, v.version, v.provenance.recorded_at, &[]),
        "status": encounter_status(session.map(|s| s.phase), e, now),
        "class": coding(codes::ACT_CODE, "AMB", "ambulatory"),
        "type": [concept(codes::ENCOUNTER_KIND, e.kind.code(), e.kind.label())],
        "subject": subject(view, v.patient_id),
        "period": period,
    });
    set(&mut r, "reasonCode", view.text(e.reason.as_deref()).map(|t| json!([{"text": t}])));
    if let Some(s) = session {
        set(&mut r, "location", view.text(Some(&s.chair)).map(|c| json!([{"location": {"display": c}}])));
    }
    r
}

fn vital_profile(code: &str) -> Option<&'static str> {
    Some(match code {
        loinc::BODY_WEIGHT => profile::BODY_WEIGHT,
        loinc::BODY_HEIGHT => profile::BODY_HEIGHT,
        loinc::HEART_RATE => profile::HEART_RATE,
        loinc::SPO2 | codes::SPO2_ARTERIAL => profile::OXYGEN_SAT,
        loinc::RESPIRATORY_RATE => profile::RESP_RATE,
        loinc::SYSTOLIC_BP | loinc::DIASTOLIC_BP | codes::BP_PANEL => profile::BP,
        _ => return None,
    })
}

fn category(code: &str, display: &str) -> Value {
    json!([concept(codes::OBSERVATION_CATEGORY, code, display)])
}

fn vital_code(code: &str, display: &str) -> Value {
    if code == loinc::SPO2 {
        json!({"coding": [coding(codes::LOINC, codes::SPO2_ARTERIAL, "Oxygen saturation in Arterial blood"), coding(codes::LOINC, loinc::SPO2, display)], "text": display})
    } else {
        concept(codes::LOINC, code, display)
    }
}

fn observation_value(o: &mut Value, v: &ObservationValue, view: &View) {
    match v {
        ObservationValue::Quantity { value, unit } => o["valueQuantity"] = quantity(*value, unit.as_str()),
        ObservationValue::Coded(c) => o["valueCodeableConcept"] = json!({"coding": [domain_coding(c)], "text": c.display()}),
        ObservationValue::Text(t) => match view.text(Some(t)) {
            Some(t) => o["valueString"] = Value::String(t),
            None => o["dataAbsentReason"] = concept(codes::DATA_ABSENT, "masked", "Masked"),
        },
        ObservationValue::Boolean(b) => o["valueBoolean"] = Value::Bool(*b),
    }
}

fn is_score_code(cat: &Catalog, code: &Coding) -> bool {
    code.system() == &CodeSystem::Loinc
        && cat
            .instruments
            .iter()
            .any(|i| i.total_loinc.as_deref() == Some(code.code()) || i.subscales.iter().any(|s| s.loinc.as_deref() == Some(code.code())))
}

fn observation(v: &RecordVersion, o: &Observation, view: &View, cat: &Catalog) -> Value {
    let loinc_code = (o.code.system() == &CodeSystem::Loinc).then(|| o.code.code());
    let vital = loinc_code.and_then(vital_profile);
    let profiles: Vec<&str> = match vital {
        Some(p) => vec![profile::VITAL_SIGNS, p],
        None => vec![],
    };
    let mut r = json!({
        "resourceType": "Observation",
        "id": view.id(&v.record_id.to_string()),
        "meta": meta(view, v.version, v.provenance.recorded_at, &profiles),
        "status": if v.action == VersionAction::Amend { "amended" } else { "final" },
        "code": match loinc_code { Some(c) if vital.is_some() => vital_code(c, o.code.display()), _ => json!({"coding": [domain_coding(&o.code)], "text": o.code.display()}) },
        "subject": subject(view, v.patient_id),
        "effectiveDateTime": view.instant(o.effective),
        "issued": view.instant(v.provenance.recorded_at),
    });
    if vital.is_some() {
        r["category"] = category("vital-signs", "Vital Signs");
    } else if is_score_code(cat, &o.code) {
        r["category"] = category("survey", "Survey");
    }
    observation_value(&mut r, &o.value, view);
    if !o.acknowledged_warnings.is_empty() {
        r["extension"] =
            Value::Array(o.acknowledged_warnings.iter().map(|w| json!({"url": codes::EXT_ACKNOWLEDGED, "valueCode": w})).collect());
    }
    r
}

fn bp_component(code: &str, display: &str, value: Option<Decimal>) -> Value {
    let mut c = json!({"code": concept(codes::LOINC, code, display)});
    match value {
        Some(v) => c["valueQuantity"] = quantity(v, "mm[Hg]"),
        None => c["dataAbsentReason"] = concept(codes::DATA_ABSENT, "not-performed", "Not Performed"),
    }
    c
}

#[allow(clippy::too_many_arguments)]
fn bp_panel(
    id: String,
    view: &View,
    patient: PatientId,
    at: DateTime<Utc>,
    systolic: Option<Decimal>,
    diastolic: Option<Decimal>,
    version: Option<(u32, DateTime<Utc>)>,
) -> Value {
    let mut r = json!({
        "resourceType": "Observation",
        "id": id,
        "status": "final",
        "category": category("vital-signs", "Vital Signs"),
        "code": concept(codes::LOINC, codes::BP_PANEL, "Blood pressure panel with all children optional"),
        "subject": subject(view, patient),
        "effectiveDateTime": view.instant(at),
        "component": [
            bp_component(loinc::SYSTOLIC_BP, "Systolic blood pressure", systolic),
            bp_component(loinc::DIASTOLIC_BP, "Diastolic blood pressure", diastolic),
        ],
    });
    r["meta"] = match version {
        Some((v, t)) => meta(view, v, t, &[profile::VITAL_SIGNS, profile::BP]),
        None => json!({"profile": [profile::VITAL_SIGNS, profile::BP]}),
    };
    r
}

fn lab(v: &RecordVersion, l: &LabResult, view: &View) -> Value {
    let mut r = json!({
        "resourceType": "Observation",
        "id": view.id(&v.record_id.to_string()),
        "meta": meta(view, v.version, v.provenance.recorded_at, &[]),
        "status": "final",
        "category": category("laboratory", "Laboratory"),
        "code": concept(codes::LOINC, l.test.loinc(), l.test.label()),
        "subject": subject(view, v.patient_id),
        "effectiveDateTime": view.instant(l.sampled_at),
        "issued": view.instant(v.provenance.recorded_at),
        "valueQuantity": quantity(l.value, &l.unit),
        "referenceRange": [{"high": quantity(l.uln, &l.unit)}],
    });
    set(&mut r, "performer", view.text(l.lab.as_deref()).map(|t| json!([{"display": t}])));
    r
}

fn score_code(inst: &Instrument, loinc_code: Option<&str>, local: &str, display: &str) -> Value {
    match loinc_code {
        Some(c) => concept(codes::LOINC, c, display),
        None => concept(codes::INSTRUMENT_CODE, &format!("{}.{local}", inst.key), display),
    }
}

fn answer(item: &ketacare_domain::instrument::ItemDef, v: u32) -> Value {
    if item.kind == AnswerKind::YesNo {
        return json!({"valueBoolean": v != 0});
    }
    let choices = item.choices();
    match choices.iter().position(|c| *c == v).and_then(|i| item.choice_loinc.get(i)) {
        Some(la) if !la.is_empty() => json!({"valueCoding": coding(codes::LOINC, la, item.choice_label(v).unwrap_or(""))}),
        _ => json!({"valueInteger": v}),
    }
}

/// The id of an assessment's total score Observation (`n = 0`) or of its `n`th subscale.
pub fn score_id(record: &str, n: usize) -> String {
    if n == 0 {
        format!("{record}-total")
    } else {
        format!("{record}-sub{n}")
    }
}

fn assessment(v: &RecordVersion, a: &Assessment, view: &View, cat: &Catalog) -> Vec<Value> {
    let rid = view.id(&v.record_id.to_string());
    let inst = cat.instrument(&a.instrument);
    let mut qr = json!({
        "resourceType": "QuestionnaireResponse",
        "id": rid,
        "meta": meta(view, v.version, v.provenance.recorded_at, &[]),
        "questionnaire": format!("{}|{}", questionnaire_url(&a.instrument), a.instrument_version),
        "status": if v.action == VersionAction::Amend { "amended" } else { "completed" },
        "subject": subject(view, v.patient_id),
        "authored": view.instant(a.taken_at),
    });
    set(&mut qr, "encounter", a.session.map(|s| reference("Encounter", &view.id(&s.to_string()))));
    match a.filled_by {
        FilledBy::Patient => qr["source"] = subject(view, v.patient_id),
        FilledBy::Clinician => set(&mut qr, "author", view.text(Some(&v.provenance.username)).map(|u| json!({"display": u}))),
    }
    let Some(inst) = inst else { return vec![qr] };
    let items: Vec<Value> = inst
        .items
        .iter()
        .zip(a.answers.iter())
        .map(|(item, ans)| {
            let mut i = json!({"linkId": item.key});
            if let Some(x) = ans {
                i["answer"] = json!([answer(item, *x)]);
            }
            i
        })
        .collect();
    if !items.is_empty() {
        qr["item"] = Value::Array(items);
    }
    let mut out = vec![qr];
    let Ok(score) = inst.score(&a.answers, None) else { return out };
    let derived = json!([reference("QuestionnaireResponse", &rid)]);
    let obs = |id: String, code: Value, value: Decimal, band: Option<&str>| {
        let mut o = json!({
            "resourceType": "Observation",
            "id": id,
            "meta": meta(view, v.version, v.provenance.recorded_at, &[]),
            "status": "final",
            "category": category("survey", "Survey"),
            "code": code,
            "subject": subject(view, v.patient_id),
            "effectiveDateTime": view.instant(a.taken_at),
            "valueQuantity": quantity(value, "{score}"),
            "derivedFrom": derived.clone(),
        });
        set(&mut o, "encounter", a.session.map(|s| reference("Encounter", &view.id(&s.to_string()))));
        set(&mut o, "interpretation", band.map(|b| json!([{"text": b}])));
        o
    };
    if let Some(t) = score.total {
        let display = format!("{} total score", inst.name);
        out.push(obs(
            score_id(&rid, 0),
            score_code(inst, inst.total_loinc.as_deref(), "total", &display),
            t,
            score.band.as_ref().map(|b| b.label.as_str()),
        ));
    }
    for (n, s) in score.subscales.iter().enumerate() {
        let def = inst.subscales.iter().find(|d| d.key == s.key);
        let display = format!("{} {}", inst.name, s.label);
        out.push(obs(score_id(&rid, n + 1), score_code(inst, def.and_then(|d| d.loinc.as_deref()), &s.key, &display), s.value, None));
    }
    out
}

/// The SNOMED CT concept of a route.
fn route(r: ketacare_domain::dose::Route) -> Value {
    let (code, display) = codes::route(r);
    concept(codes::SNOMED, code, display)
}

/// The dose of a double-checked order as text (`16.5 mg SC (0.25 mg/kg)`).
pub fn dose_text(o: &DoseOrderRecord) -> String {
    let mut s = format!("{} mg {}", ketacare_domain::dose::format_amount(o.dose_mg), o.route.code().to_uppercase());
    if let Some(m) = o.mg_per_kg {
        s.push_str(&format!(" ({} mg/kg)", ketacare_domain::dose::format_amount(m)));
    }
    if let Some(min) = o.minutes {
        s.push_str(&format!(" over {} min", min.normalize()));
    }
    s
}

fn dose_order(v: &RecordVersion, o: &DoseOrderRecord, view: &View, cat: &Catalog, given: bool) -> Value {
    let status = match o.status {
        OrderStatus::AwaitingOverride | OrderStatus::AwaitingCheck => "draft",
        OrderStatus::Checked if given => "completed",
        OrderStatus::Checked => "active",
        OrderStatus::Blocked => "cancelled",
    };
    let mut r = json!({
        "resourceType": "MedicationRequest",
        "id": view.id(&v.record_id.to_string()),
        "meta": meta(view, v.version, v.provenance.recorded_at, &[]),
        "status": status,
        "intent": "order",
        "medicationCodeableConcept": medication_concept(cat.drug.0, Some(cat.drug.1)),
        "subject": subject(view, v.patient_id),
        "authoredOn": view.instant(v.provenance.recorded_at),
    });
    set(&mut r, "requester", view.text(Some(&v.provenance.username)).map(|u| json!({"display": u})));
    set(&mut r, "basedOn", o.plan.map(|p| json!([reference("CarePlan", &view.id(&p.to_string()))])));
    if o.status == OrderStatus::Checked {
        let mut dr = json!({"doseQuantity": quantity(o.dose_mg, "mg")});
        set(&mut dr, "rateQuantity", o.rate_ml_per_h.map(|r| quantity(r, "mL/h")));
        r["dosageInstruction"] = json!([{"text": dose_text(o), "route": route(o.route), "doseAndRate": [dr]}]);
    } else if o.status != OrderStatus::Blocked {
        r["note"] = json!([{"text": "The dose is shown once the order has passed the independent double check."}]);
    }
    r
}

fn treatment_plan(v: &RecordVersion, p: &TreatmentPlanRecord, view: &View, cat: &Catalog, today: NaiveDate) -> Value {
    let activities: Vec<Value> = p
        .sessions
        .iter()
        .map(|s| {
            let mut description = s.label.clone();
            if let Some(m) = s.mg_per_kg {
                description.push_str(&format!(": {} mg/kg", ketacare_domain::dose::format_amount(m)));
            }
            if let Some(m) = s.fixed_mg {
                description.push_str(&format!(": {} mg", ketacare_domain::dose::format_amount(m)));
            }
            if let Some(min) = s.minutes {
                description.push_str(&format!(" over {min} min"));
            }
            let day = view.date(s.date);
            json!({"detail": {
                "kind": "MedicationRequest",
                "status": if s.date >= today { "scheduled" } else { "unknown" },
                "scheduledPeriod": {"start": day, "end": day},
                "productCodeableConcept": medication_concept(cat.drug.0, Some(cat.drug.1)),
                "description": description,
            }})
        })
        .collect();
    let mut period = json!({"start": view.date(p.start)});
    set(&mut period, "end", p.sessions.last().map(|s| Value::String(view.date(s.date))));
    let mut r = json!({
        "resourceType": "CarePlan",
        "id": view.id(&v.record_id.to_string()),
        "meta": meta(view, v.version, v.provenance.recorded_at, &[]),
        "status": "active",
        "intent": "plan",
        "title": p.protocol_name,
        "description": format!("{} ({})", p.protocol_name, p.route.label()),
        "subject": subject(view, v.patient_id),
        "period": period,
        "created": view.instant(v.provenance.recorded_at),
    });
    if !activities.is_empty() {
        r["activity"] = Value::Array(activities);
    }
    set(&mut r, "note", view.text(p.note.as_deref()).map(|t| json!([{"text": t}])));
    r
}

fn care_plan(v: &RecordVersion, c: &CarePlan, view: &View, cat: &Catalog) -> Value {
    let pid = subject(view, v.patient_id);
    let mut contained = Vec::new();
    let mut goals = Vec::new();
    for (n, g) in c.goals.iter().enumerate() {
        let gid = format!("goal{}", n + 1);
        let inst = g.instrument.as_deref().and_then(|k| cat.instrument(k));
        let text = match (g.kind, view.deidentified(), inst, g.target) {
            (_, false, _, _) => g.text.clone(),
            (GoalKind::Score, true, Some(i), Some(t)) => format!("{} total at most {}", i.name, t.normalize()),
            (GoalKind::Score, true, _, _) => "Score goal".to_owned(),
            (GoalKind::Functional, true, _, _) => "Functional goal (in the patient's words)".to_owned(),
        };
        let mut goal = json!({
            "resourceType": "Goal",
            "id": gid,
            "lifecycleStatus": "active",
            "description": {"text": text},
            "subject": pid.clone(),
        });
        if let (GoalKind::Score, Some(key), Some(target)) = (g.kind, &g.instrument, g.target) {
            if let Some(inst) = cat.instrument(key) {
                let measure = score_code(inst, inst.total_loinc.as_deref(), "total", &format!("{} total score", inst.name));
                goal["target"] = json!([{"measure": measure, "detailRange": {"high": quantity(target, "{score}")}}]);
            }
        }
        goals.push(json!({"reference": format!("#{gid}")}));
        contained.push(goal);
    }
    let activities: Vec<Value> = c
        .therapies
        .iter()
        .map(|t| {
            let mut d = json!({
                "kind": "ServiceRequest",
                "status": "in-progress",
                "description": match view.text(Some(&t.description)) {
                    Some(text) => format!("{}: {text}", t.kind),
                    None => t.kind.clone(),
                },
            });
            set(&mut d, "scheduledString", view.text(Some(&t.frequency)).map(Value::String));
            set(&mut d, "performer", view.text(Some(&t.who)).map(|w| json!([{"display": w}])));
            json!({"detail": d})
        })
        .collect();
    let mut r = json!({
        "resourceType": "CarePlan",
        "id": view.id(&v.record_id.to_string()),
        "meta": meta(view, v.version, v.provenance.recorded_at, &[]),
        "status": "active",
        "intent": "plan",
        "title": "Care plan",
        "subject": pid,
        "created": view.instant(v.provenance.recorded_at),
    });
    if !contained.is_empty() {
        r["contained"] = Value::Array(contained);
        r["goal"] = Value::Array(goals);
    }
    if !activities.is_empty() {
        r["activity"] = Value::Array(activities);
    }
    if !view.deidentified() && !c.responsible.is_empty() {
        r["contributor"] = Value::Array(c.responsible.iter().map(|x| json!({"display": x})).collect());
    }
    set(&mut r, "period", c.next_review.map(|d| json!({"end": view.date(d)})));
    set(&mut r, "note", view.text(c.notes.as_deref()).map(|t| json!([{"text": t}])));
    r
}

fn safety_event(v: &RecordVersion, e: &SafetyEvent, view: &View) -> Value {
    let actual = matches!(
        (e.kind, e.positive),
        (SafetyEventKind::Haematuria | SafetyEventKind::UrineToxicology, Some(true)) | (SafetyEventKind::SubstanceUse, _)
    );
    let mut text = e.kind.label().to_owned();
    if let Some(s) = e.score {
        text.push_str(&format!(": {s}/10"));
    }
    if let Some(p) = e.positive {
        text.push_str(if p { ": positive" } else { ": negative" });
    }
    if let Some(s) = view.text(e.substances.as_deref()) {
        text.push_str(&format!(" ({s})"));
    }
    let mut event = concept(codes::SAFETY_EVENT_KIND, e.kind.code(), e.kind.label());
    event["text"] = Value::String(text);
    let mut r = json!({
        "resourceType": "AdverseEvent",
        "id": view.id(&v.record_id.to_string()),
        "meta": meta(view, v.version, v.provenance.recorded_at, &[]),
        "actuality": if actual { "actual" } else { "potential" },
        "event": event,
        "subject": subject(view, v.patient_id),
        "date": view.instant(e.at),
        "recordedDate": view.instant(v.provenance.recorded_at),
    });
    set(&mut r, "recorder", view.text(Some(&v.provenance.username)).map(|u| json!({"display": u})));
    r
}

fn session_adverse_event(s: &SessionData, ae: &SessionAdverseEvent, patient: PatientId, view: &View) -> Value {
    let e = &ae.event;
    let label = ADVERSE_EVENT_KINDS.iter().find(|(k, _)| *k == e.kind).map(|(_, l)| *l).unwrap_or(e.kind.as_str());
    let mut event = concept(codes::ADVERSE_EVENT_KIND, &e.kind, label);
    if let Some(d) = view.text(e.description.as_deref()) {
        event["text"] = Value::String(format!("{label}: {d}"));
    }
    let severity = match e.grade {
        1 => ("mild", "Mild"),
        2 => ("moderate", "Moderate"),
        _ => ("severe", "Severe"),
    };
    let outcome = match (e.grade, e.outcome.as_str()) {
        (5, _) => ("fatal", "Fatal"),
        (_, "resolved") => ("resolved", "Resolved"),
        (_, "resolving") => ("recovering", "Recovering"),
        (_, "not_resolved") => ("ongoing", "Ongoing"),
        _ => ("unknown", "Unknown"),
    };
    let sid = view.id(&s.id.to_string());
    let mut r = json!({
        "resourceType": "AdverseEvent",
        "id": view.id(&format!("{}{}", hex32(s.id.as_uuid()), hex32(ae.id))),
        "extension": [{"url": codes::EXT_GRADE, "valueInteger": e.grade}],
        "actuality": "actual",
        "event": event,
        "subject": subject(view, patient),
        "encounter": reference("Encounter", &sid),
        "date": view.instant(ae.at),
        "recordedDate": view.instant(ae.at),
        "seriousness": if e.serious { concept(codes::AE_SERIOUSNESS, "serious", "Serious") } else { concept(codes::AE_SERIOUSNESS, "non-serious", "Non-serious") },
        "severity": concept(codes::AE_SEVERITY, severity.0, severity.1),
        "outcome": concept(codes::AE_OUTCOME, outcome.0, outcome.1),
    });
    set(&mut r, "recorder", view.text(Some(&ae.recorded_by)).map(|u| json!({"display": u})));
    if s.dose_started_at.is_some() && s.order_id.is_some() {
        r["suspectEntity"] = json!([{"instance": reference("MedicationAdministration", &sid)}]);
    }
    r
}

fn administration(s: &SessionData, order: &DoseOrderRecord, patient: PatientId, view: &View, cat: &Catalog) -> Option<Value> {
    let started = s.dose_started_at?;
    let order_id = s.order_id?;
    let status = match s.dose_ended_at {
        None => "in-progress",
        Some(_) if s.stopped_early || s.phase == Phase::StoppedEarly => "stopped",
        Some(_) => "completed",
    };
    let sid = view.id(&s.id.to_string());
    let mut period = json!({"start": view.instant(started)});
    set(&mut period, "end", s.dose_ended_at.map(|t| Value::String(view.instant(t))));
    let mut dosage = json!({"text": dose_text(order), "route": route(order.route)});
    if status == "completed" {
        dosage["dose"] = quantity(order.dose_mg, "mg");
        set(&mut dosage, "rateQuantity", order.rate_ml_per_h.map(|r| quantity(r, "mL/h")));
    }
    Some(json!({
        "resourceType": "MedicationAdministration",
        "id": sid,
        "status": status,
        "medicationCodeableConcept": medication_concept(cat.drug.0, Some(cat.drug.1)),
        "subject": subject(view, patient),
        "context": reference("Encounter", &sid),
        "effectivePeriod": period,
        "request": reference("MedicationRequest", &view.id(&order_id.to_string())),
        "dosage": dosage,
    }))
}

fn vital_display(v: Vital) -> &'static str {
    match v {
        Vital::Systolic => "Systolic blood pressure",
        Vital::Diastolic => "Diastolic blood pressure",
        Vital::HeartRate => "Heart rate",
        Vital::Spo2 => "Oxygen saturation in Arterial blood by Pulse oximetry",
        Vital::RespiratoryRate => "Respiratory rate",
    }
}

fn session_vitals(s: &SessionData, patient: PatientId, view: &View) -> Vec<Value> {
    let sid = view.id(&s.id.to_string());
    let mut out = Vec::new();
    let mut used = std::collections::HashSet::new();
    let device = |r: &Reading| r.device_id.as_deref().and_then(|d| view.text(Some(d))).map(|d| json!({"display": d}));
    for r in &s.readings {
        if used.contains(&r.id) {
            continue;
        }
        let id = view.id(&format!("{}{}", hex32(s.id.as_uuid()), hex32(r.id)));
        let mut o = match r.vital {
            Vital::Systolic | Vital::Diastolic => {
                let other_vital = if r.vital == Vital::Systolic { Vital::Diastolic } else { Vital::Systolic };
                let other = s.readings.iter().find(|x| x.vital == other_vital && x.observed_at == r.observed_at && !used.contains(&x.id));
                if let Some(o) = other {
                    used.insert(o.id);
                }
                let (sys, dia) = match r.vital {
                    Vital::Systolic => (Some(r.value), other.map(|o| o.value)),
                    _ => (other.map(|o| o.value), Some(r.value)),
                };
                bp_panel(id, view, patient, r.observed_at, sys, dia, None)
            }
            v => {
                let p = vital_profile(v.loinc()).unwrap_or(profile::VITAL_SIGNS);
                json!({
                    "resourceType": "Observation",
                    "id": id,
                    "meta": {"profile": [profile::VITAL_SIGNS, p]},
                    "status": "final",
                    "category": category("vital-signs", "Vital Signs"),
                    "code": vital_code(v.loinc(), vital_display(v)),
                    "subject": subject(view, patient),
                    "effectiveDateTime": view.instant(r.observed_at),
                    "valueQuantity": quantity(r.value, v.unit()),
                })
            }
        };
        used.insert(r.id);
        o["encounter"] = reference("Encounter", &sid);
        set(&mut o, "device", device(r));
        out.push(o);
    }
    out
}

/// Chart observations of systolic and diastolic pressure recorded together (same time, same
/// author and instant) become one blood-pressure panel, whose id is the systolic record's. The
/// map gives the resource id of every record that went into another record's panel.
fn chart_observations(data: &PatientData, view: &View, cat: &Catalog) -> (Vec<Value>, HashMap<RecordId, String>) {
    let mut out = Vec::new();
    let mut merged = HashMap::new();
    let obs: Vec<(&RecordVersion, &Observation)> = data
        .records
        .iter()
        .filter_map(|v| match &v.record {
            ClinicalRecord::Observation(o) => Some((v, o)),
            _ => None,
        })
        .collect();
    let bp_value = |o: &Observation, code: &str| o.quantity_if(code, "mm[Hg]");
    let mut paired = std::collections::HashSet::new();
    for (v, o) in &obs {
        if paired.contains(&v.record_id) {
            continue;
        }
        let sys = bp_value(o, loinc::SYSTOLIC_BP);
        let dia = bp_value(o, loinc::DIASTOLIC_BP);
        if sys.is_none() && dia.is_none() {
            out.push(observation(v, o, view, cat));
            continue;
        }
        let want = if sys.is_some() { loinc::DIASTOLIC_BP } else { loinc::SYSTOLIC_BP };
        let partner = obs.iter().find(|(w, p)| {
            !paired.contains(&w.record_id)
                && w.record_id != v.record_id
                && p.effective == o.effective
                && w.provenance.recorded_at == v.provenance.recorded_at
                && bp_value(p, want).is_some()
        });
        paired.insert(v.record_id);
        let (s, d, id_rec) = match partner {
            Some((w, p)) => {
                paired.insert(w.record_id);
                let (s, d, id_rec, other) = if sys.is_some() { (sys, bp_value(p, want), *v, *w) } else { (bp_value(p, want), dia, *w, *v) };
                merged.insert(other.record_id, view.id(&id_rec.record_id.to_string()));
                (s, d, id_rec)
            }
            None => (sys, dia, *v),
        };
        out.push(bp_panel(
            view.id(&id_rec.record_id.to_string()),
            view,
            v.patient_id,
            o.effective,
            s,
            d,
            Some((v.version, v.provenance.recorded_at)),
        ));
    }
    (out, merged)
}

/// The resource references a record version became (for its Provenance); `merged` names the
/// panel a blood-pressure reading went into.
fn targets(v: &RecordVersion, view: &View, cat: &Catalog, merged: &HashMap<RecordId, String>) -> Vec<Value> {
    let id = merged.get(&v.record_id).cloned().unwrap_or_else(|| view.id(&v.record_id.to_string()));
    let kind = match &v.record {
        ClinicalRecord::Diagnosis(_) | ClinicalRecord::Condition(_) => "Condition",
        ClinicalRecord::Medication(_) => "MedicationStatement",
        ClinicalRecord::Allergy(_) => "AllergyIntolerance",
        ClinicalRecord::Encounter(_) => "Encounter",
        ClinicalRecord::Observation(_) | ClinicalRecord::LabResult(_) => "Observation",
        ClinicalRecord::Assessment(a) => {
            let mut t = vec![json!({"reference": format!("QuestionnaireResponse/{id}/_history/{}", v.version)})];
            if let Some(inst) = cat.instrument(&a.instrument) {
                if let Ok(s) = inst.score(&a.answers, None) {
                    if s.total.is_some() {
                        t.push(json!({"reference": format!("Observation/{}/_history/{}", score_id(&id, 0), v.version)}));
                    }
                    for k in 0..s.subscales.len() {
                        t.push(json!({"reference": format!("Observation/{}/_history/{}", score_id(&id, k + 1), v.version)}));
                    }
                }
            }
            return t;
        }
        ClinicalRecord::DoseOrder(_) => "MedicationRequest",
        ClinicalRecord::TreatmentPlan(_) | ClinicalRecord::CarePlan(_) => "CarePlan",
        ClinicalRecord::SafetyEvent(_) => "AdverseEvent",
        ClinicalRecord::PriorTreatment(_) | ClinicalRecord::Screening(_) | ClinicalRecord::SafetyReview(_) => return Vec::new(),
    };
    vec![json!({"reference": format!("{kind}/{id}/_history/{}", v.version)})]
}

fn provenance(
    id: String,
    targets: Vec<Value>,
    action: VersionAction,
    reason: Option<&str>,
    by: &str,
    at: DateTime<Utc>,
    view: &View,
) -> Value {
    let activity = match action {
        VersionAction::Create => ("CREATE", "create"),
        VersionAction::Amend => ("UPDATE", "revise"),
        VersionAction::Void => ("DELETE", "delete"),
    };
    let mut p = json!({
        "resourceType": "Provenance",
        "id": id,
        "target": targets,
        "recorded": view.instant(at),
        "activity": concept(codes::DATA_OPERATION, activity.0, activity.1),
        "agent": [{
            "type": concept(codes::PROVENANCE_PARTICIPANT, "author", "Author"),
            "who": {"display": by},
        }],
    });
    set(&mut p, "reason", reason.map(|r| json!([{"text": r}])));
    p
}

/// Every resource of one patient: the Patient first, then the records, the treatment sessions
/// and (identified view only) one Provenance per current record version.
pub fn patient_resources(data: &PatientData, cat: &Catalog, view: &View) -> Vec<Value> {
    let today = data.now.date_naive();
    let mut out = vec![patient(&data.patient, view)];
    let pid = data.patient.patient_id;
    let given_orders: std::collections::HashSet<RecordId> =
        data.sessions.iter().filter(|s| s.dose_started_at.is_some()).filter_map(|s| s.order_id).collect();
    for v in &data.records {
        match &v.record {
            ClinicalRecord::Diagnosis(d) => out.push(diagnosis(v, d, view)),
            ClinicalRecord::Condition(c) => out.push(comorbidity(v, c, view, cat)),
            ClinicalRecord::Medication(m) => out.push(medication(v, m, view, today)),
            ClinicalRecord::Allergy(a) => out.push(allergy(v, a, view)),
            ClinicalRecord::Encounter(e) => {
                let s = data.sessions.iter().find(|s| s.id == v.record_id);
                out.push(encounter(v, e, s, view, data.now));
            }
            ClinicalRecord::Observation(_) => {}
            ClinicalRecord::LabResult(l) => out.push(lab(v, l, view)),
            ClinicalRecord::Assessment(a) => out.extend(assessment(v, a, view, cat)),
            ClinicalRecord::DoseOrder(o) => out.push(dose_order(v, o, view, cat, given_orders.contains(&v.record_id))),
            ClinicalRecord::TreatmentPlan(p) => out.push(treatment_plan(v, p, view, cat, today)),
            ClinicalRecord::CarePlan(c) => out.push(care_plan(v, c, view, cat)),
            ClinicalRecord::SafetyEvent(e) => out.push(safety_event(v, e, view)),
            ClinicalRecord::PriorTreatment(_) | ClinicalRecord::Screening(_) | ClinicalRecord::SafetyReview(_) => {}
        }
    }
    let (observations, merged) = chart_observations(data, view, cat);
    out.extend(observations);
    for s in &data.sessions {
        let order = s.order_id.and_then(|o| data.records.iter().find(|v| v.record_id == o)).and_then(|v| match &v.record {
            ClinicalRecord::DoseOrder(o) if o.status == OrderStatus::Checked => Some(o.as_ref()),
            _ => None,
        });
        if let Some(order) = order {
            out.extend(administration(s, order, pid, view, cat));
        }
        out.extend(session_vitals(s, pid, view));
        out.extend(s.adverse_events.iter().map(|ae| session_adverse_event(s, ae, pid, view)));
    }
    if !view.deidentified() {
        let p = &data.patient;
        out.push(provenance(
            format!("{}{}", hex32(p.patient_id.as_uuid()), hex32(p.version_id.as_uuid())),
            vec![json!({"reference": format!("Patient/{}/_history/{}", p.patient_id, p.version)})],
            p.action,
            p.reason.as_ref().map(|r| r.as_str()),
            &p.provenance.username,
            p.provenance.recorded_at,
            view,
        ));
        for v in &data.records {
            let t = targets(v, view, cat, &merged);
            if t.is_empty() {
                continue;
            }
            out.push(provenance(
                format!("{}{}", hex32(v.record_id.as_uuid()), hex32(v.version_id.as_uuid())),
                t,
                v.action,
                v.reason.as_ref().map(|r| r.as_str()),
                &v.provenance.username,
                v.provenance.recorded_at,
                view,
            ));
        }
    }
    out
}

/// The Questionnaire of an instrument: items with their LOINC codes and answer options, item
/// text only as the knowledge file holds it (a clinic's licensed wording is not exported).
pub fn questionnaire(inst: &Instrument) -> Value {
    let items: Vec<Value> = inst
        .items
        .iter()
        .map(|item| {
            let mut i = json!({"linkId": item.key, "text": item.label, "required": !item.optional});
            if let Some(l) = &item.loinc {
                i["code"] = json!([coding(codes::LOINC, l, &item.label)]);
            }
            let coded = !item.choice_loinc.is_empty() && item.choice_loinc.iter().all(|c| !c.is_empty());
            match item.kind {
                AnswerKind::YesNo => i["type"] = json!("boolean"),
                AnswerKind::Number if coded => {
                    i["type"] = json!("choice");
                    i["answerOption"] = Value::Array(
                        item.choices()
                            .iter()
                            .zip(item.choice_loinc.iter())
                            .map(|(v, la)| {
                                json!({
                                    "extension": [{"url": codes::ORDINAL_VALUE, "valueDecimal": v}],
                                    "valueCoding": coding(codes::LOINC, la, item.choice_label(*v).unwrap_or("")),
                                })
                            })
                            .collect(),
                    );
                }
                AnswerKind::Number => {
                    i["type"] = json!("integer");
                    i["answerOption"] = Value::Array(item.choices().iter().map(|v| json!({"valueInteger": v})).collect());
                }
            }
            i
        })
        .collect();
    let name: String = inst
        .key
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
        })
        .collect();
    let mut q = json!({
        "resourceType": "Questionnaire",
        "id": questionnaire_id(&inst.key),
        "url": questionnaire_url(&inst.key),
        "version": inst.version,
        "name": name,
        "title": inst.title,
        "status": "active",
        "subjectType": ["Patient"],
        "description": format!("{} ({}). Source: {}", inst.title, inst.name, inst.source),
        "copyright": inst.licence,
        "item": items,
    });
    if let Some(p) = &inst.panel_loinc {
        q["code"] = json!([coding(codes::LOINC, p, &inst.title)]);
    }
    q
}

/// An audit entry as an AuditEvent.
pub fn audit_event(e: &AuditEntry) -> Value {
    let ev = &e.event;
    let (outcome, desc) = match ev.outcome {
        AuditOutcome::Success => ("0", None),
        AuditOutcome::Denied => ("4", Some("denied")),
        AuditOutcome::NotFound => ("4", Some("not found")),
    };
    let detail = ev.detail.clone().unwrap_or_default();
    let purpose = detail.split(';').find_map(|p| p.trim().strip_prefix("purpose=")).map(str::to_owned);
    let mut agent = json!({"who": {"display": ev.actor.username}, "requestor": true});
    set(&mut agent, "altId", ev.actor.session_ref.clone().map(Value::String));
    set(&mut agent, "role", ev.actor.role.map(|r| json!([{"text": r.label()}])));
    set(&mut agent, "network", ev.actor.client_addr.clone().map(|a| json!({"address": a, "type": "2"})));
    let mut entities = Vec::new();
    if let Some(p) = ev.patient_id {
        entities.push(json!({"what": reference("Patient", &p.to_string()), "type": coding(codes::AUDIT_ENTITY_TYPE, "1", "Person")}));
    }
    let mut what = json!({"what": {"display": match &ev.entity_id { Some(id) => format!("{}/{id}", ev.entity_type), None => ev.entity_type.clone() }},
        "type": coding(codes::AUDIT_ENTITY_TYPE, "2", "System Object")});
    if !detail.is_empty() {
        what["description"] = Value::String(detail);
    }
    entities.push(what);
    let mut r = json!({
        "resourceType": "AuditEvent",
        "id": e.seq.to_string(),
        "type": coding(codes::AUDIT_TYPE, "rest", "RESTful Operation"),
        "action": ev.action.code(),
        "recorded": crate::instant(ev.recorded_at),
        "outcome": outcome,
        "agent": [agent],
        "source": {"observer": {"display": codes::AUDIT_SOURCE}},
        "entity": entities,
    });
    set(&mut r, "outcomeDesc", desc.map(|d| Value::String(d.to_owned())));
    let purpose = purpose.and_then(|p| match p.as_str() {
        "treatment" => Some(("TREAT", "treatment")),
        "research" => Some(("HRESCH", "healthcare research")),
        "operations" => Some(("HOPERAT", "healthcare operations")),
        _ => None,
    });
    set(&mut r, "purposeOfEvent", purpose.map(|(c, d)| json!([concept(codes::PURPOSE_OF_USE, c, d)])));
    r
}

/// The type of a resource.
pub fn resource_type(r: &Value) -> &str {
    r.get("resourceType").and_then(Value::as_str).unwrap_or("")
}

/// The id of a resource.
pub fn resource_id(r: &Value) -> &str {
    r.get("id").and_then(Value::as_str).unwrap_or("")
}
