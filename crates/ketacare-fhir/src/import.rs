//! A FHIR R4 transaction Bundle read into validated domain records.
//!
//! The Bundle holds one Patient (matched to a chart by its MRN identifier) and that patient's
//! Condition, AllergyIntolerance, MedicationStatement, MedicationRequest, Observation and
//! QuestionnaireResponse resources. Every resource goes through the same checks as the forms
//! (the domain's input validation, the weight and height plausibility limits and warnings,
//! the instrument's answers); every bad resource is reported, with its entry index, type, path
//! and what is accepted, and then nothing is written.
//!
//! What becomes what:
//! - Condition coded in `urn:ketacare:comorbidity` → comorbid condition; any other → diagnosis
//!   (a catalogue diagnosis when a SNOMED CT code matches, else the codes as sent).
//! - MedicationStatement and MedicationRequest → a medication the patient takes or took (a
//!   request from elsewhere is never an order here: doses are ordered with the calculator and
//!   double-checked). Requests that are `draft`, `cancelled` or `entered-in-error` are skipped.
//! - Observation: body weight 29463-7 (kg) and height 8302-2 (cm) through the plausibility
//!   checks; the blood-pressure panel 85354-9 as its components; liver tests with the
//!   laboratory's upper limit of normal (`referenceRange.high`); a rating-scale total or
//!   subscale (the instrument's LOINC code) as a prior score; BMI is derived and skipped; any
//!   other coded quantity, text or yes/no as an observation. A score `derivedFrom` a
//!   QuestionnaireResponse of the Bundle is recomputed from the answers and must agree.
//! - QuestionnaireResponse of an instrument (its canonical `urn:ketacare:questionnaire:{key}`
//!   or its LOINC panel) → an assessment, its answers checked against the instrument. The
//!   encounter it belonged to elsewhere is not carried (sessions are not imported).

use crate::codes;
use crate::{Catalog, Problem, Value};
use chrono::{DateTime, NaiveDate, Utc};
use ketacare_domain::anthropometry::{assess_height, assess_weight, BodyWeight, Height};
use ketacare_domain::assessment::{AssessmentInput, FilledBy};
use ketacare_domain::coding::{loinc, CodeSystem, Coding};
use ketacare_domain::instrument::{check_total, AnswerKind, Instrument};
use ketacare_domain::patient::{Demographics, DemographicsInput, Mrn};
use ketacare_domain::record::{
    AllergyInput, ClinicalRecord, DiagnosisInput, MedicationInput, Observation, ObservationInput, ObservationValue, UcumUnit,
};
use ketacare_domain::safety::{LabInput, LabTest};
use ketacare_domain::screening::ConditionRecord;
use ketacare_domain::validation::{optional_note, FieldErrors};
use rust_decimal::Decimal;
use std::str::FromStr;

/// What the importer needs besides the Bundle.
pub struct ImportContext<'a> {
    /// The knowledge in force.
    pub catalog: Catalog<'a>,
    /// Now (nothing may be measured in the future).
    pub now: DateTime<Utc>,
    /// Weights already on the chart (when, value), for the plausibility warnings.
    pub chart_weights: Vec<(DateTime<Utc>, BodyWeight)>,
    /// Heights already on the chart.
    pub chart_heights: Vec<(DateTime<Utc>, Height)>,
    /// Warning codes the caller confirmed for the whole Bundle (`?acknowledge=`).
    pub acknowledged: &'a [String],
}

/// What one entry of the Bundle became.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The Patient.
    Patient,
    /// Records to write (a blood-pressure panel gives two).
    Records(Vec<ClinicalRecord>),
    /// Not written, with why (derived, or a status that is not a fact).
    Skipped(String),
}

/// A checked Bundle.
#[derive(Clone, Debug)]
pub struct Imported {
    /// The patient's demographics.
    pub demographics: Demographics,
    /// One outcome per entry, in Bundle order.
    pub entries: Vec<Outcome>,
}

type Errs = Vec<(String, String)>;

fn err(path: &str, message: impl Into<String>) -> Errs {
    vec![(path.to_owned(), message.into())]
}

fn s<'a>(v: &'a Value, path: &str) -> Option<&'a str> {
    v.pointer(path).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty())
}

fn field_errors(e: FieldErrors, map: &[(&str, &str)]) -> Errs {
    e.iter()
        .map(|f| {
            let path = map.iter().find(|(k, _)| *k == f.field).map(|(_, p)| (*p).to_owned()).unwrap_or_else(|| f.field.clone());
            (path, f.message.clone())
        })
        .collect()
}

/// A FHIR date or dateTime as a date (`YYYY-MM-DD`).
fn date_of(raw: &str) -> Option<NaiveDate> {
    let t = raw.trim();
    NaiveDate::parse_from_str(t.get(..10)?, "%Y-%m-%d").ok()
}

/// A FHIR dateTime as an instant (a date alone is midnight UTC).
fn instant_of(raw: &str) -> Option<DateTime<Utc>> {
    let t = raw.trim();
    if let Ok(x) = DateTime::parse_from_rfc3339(t) {
        return Some(x.with_timezone(&Utc));
    }
    if t.len() == 10 {
        return date_of(t).and_then(|d| d.and_hms_opt(0, 0, 0)).map(|n| n.and_utc());
    }
    None
}

fn decimal(v: &Value) -> Option<Decimal> {
    match v {
        Value::Number(n) => Decimal::from_str(&n.to_string()).or_else(|_| Decimal::from_scientific(&n.to_string())).ok(),
        _ => None,
    }
}

fn codings(concept: Option<&Value>) -> Vec<&Value> {
    concept.and_then(|c| c.get("coding")).and_then(Value::as_array).map(|a| a.iter().collect()).unwrap_or_default()
}

fn find_code<'a>(concept: Option<&'a Value>, system: &str) -> Option<&'a str> {
    codings(concept).into_iter().find(|c| c.get("system").and_then(Value::as_str) == Some(system)).and_then(|c| s(c, "/code"))
}

/// The MRN of the Bundle's Patient: the identifier in `urn:ketacare:mrn`, else the one typed MR.
fn mrn_of(patient: &Value) -> Result<Mrn, Errs> {
    let ids = patient.get("identifier").and_then(Value::as_array).cloned().unwrap_or_default();
    let by_system = ids.iter().find(|i| s(i, "/system") == Some(codes::MRN));
    let by_type = ids.iter().find(|i| codings(i.get("type")).iter().any(|c| s(c, "/code") == Some("MR")));
    let Some(id) = by_system.or(by_type) else {
        return Err(err("identifier", format!("needs the medical record number: an identifier with system {} (or type MR)", codes::MRN)));
    };
    let raw = s(id, "/value").unwrap_or("");
    Mrn::parse(raw).map_err(|m| err("identifier.value", format!("(MRN) {m}")))
}

fn patient(p: &Value, ctx: &ImportContext) -> Result<Demographics, Errs> {
    let mut errs = Errs::new();
    let mrn = match mrn_of(p) {
        Ok(m) => m.as_str().to_owned(),
        Err(e) => {
            errs.extend(e);
            "!".to_owned()
        }
    };
    let names = p.get("name").and_then(Value::as_array).cloned().unwrap_or_default();
    let name = names.iter().find(|n| s(n, "/use") == Some("official")).or(names.first());
    let family = name.and_then(|n| s(n, "/family")).unwrap_or("").to_owned();
    let given: Vec<&str> = name
        .and_then(|n| n.get("given"))
        .and_then(Value::as_array)
        .map(|g| g.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let telecom = p.get("telecom").and_then(Value::as_array).cloned().unwrap_or_default();
    let contact_point =
        |sys: &str| telecom.iter().find(|t| s(t, "/system") == Some(sys)).and_then(|t| s(t, "/value")).unwrap_or("").to_owned();
    let address = p.pointer("/address/0").map(|a| {
        s(a, "/text").map(str::to_owned).unwrap_or_else(|| {
            let mut parts: Vec<String> =
                a.get("line").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).map(str::to_owned).collect();
            for k in ["/city", "/postalCode", "/country"] {
                if let Some(x) = s(a, k) {
                    parts.push(x.to_owned());
                }
            }
            parts.join(", ")
        })
    });
    let contact = p.pointer("/contact/0");
    let contact_name = contact
        .and_then(|c| c.get("name"))
        .map(|n| {
            s(n, "/text").map(str::to_owned).unwrap_or_else(|| {
                let g: Vec<&str> = n.get("given").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
                format!("{} {}", g.join(" "), s(n, "/family").unwrap_or("")).trim().to_owned()
            })
        })
        .unwrap_or_default();
    let relationship = contact
        .and_then(|c| c.get("relationship"))
        .and_then(Value::as_array)
        .and_then(|a| a.iter().find_map(|r| s(r, "/text")))
        .unwrap_or("")
        .to_owned();
    let contact_phone = contact
        .and_then(|c| c.get("telecom"))
        .and_then(Value::as_array)
        .and_then(|a| a.iter().find(|t| s(t, "/system") == Some("phone")))
        .and_then(|t| s(t, "/value"))
        .unwrap_or("")
        .to_owned();
    let input = DemographicsInput {
        mrn,
        family_name: family,
        given_name: given.join(" "),
        date_of_birth: s(p, "/birthDate").unwrap_or("").to_owned(),
        sex: s(p, "/gender").unwrap_or("").to_owned(),
        phone: contact_point("phone"),
        email: contact_point("email"),
        address: address.unwrap_or_default(),
        emergency_name: contact_name,
        emergency_relationship: relationship,
        emergency_phone: contact_phone,
    };
    match input.validate(ctx.now.date_naive(), ctx.catalog.age_limits) {
        Ok(d) if errs.is_empty() => Ok(d),
        Ok(_) => Err(errs),
        Err(e) => {
            let e = field_errors(
                e,
                &[
                    ("family_name", "name[0].family"),
                    ("given_name", "name[0].given"),
                    ("date_of_birth", "birthDate"),
                    ("sex", "gender"),
                    ("phone", "telecom(phone)"),
                    ("email", "telecom(email)"),
                    ("address", "address[0]"),
                    ("emergency_name", "contact[0].name"),
                    ("emergency_relationship", "contact[0].relationship"),
                    ("emergency_phone", "contact[0].telecom"),
                ],
            );
            errs.extend(e.into_iter().filter(|(p, _)| p != "mrn"));
            Err(errs)
        }
    }
}

fn condition(c: &Value, ctx: &ImportContext) -> Result<Outcome, Errs> {
    let verification = find_code(c.get("verificationStatus"), codes::CONDITION_VERIFICATION);
    if verification == Some("entered-in-error") {
        return Ok(Outcome::Skipped("entered in error: not imported".into()));
    }
    let note = c.get("note").and_then(Value::as_array).and_then(|a| a.iter().find_map(|n| s(n, "/text"))).unwrap_or("").to_owned();
    if let Some(key) = find_code(c.get("code"), codes::COMORBIDITY) {
        let mut errs = Errs::new();
        if !ctx.catalog.conditions.iter().any(|r| r.key == key) {
            let keys: Vec<&str> = ctx.catalog.conditions.iter().map(|r| r.key.as_str()).collect();
            errs.extend(err(
                "code.coding",
                format!("{key:?} is not a comorbid condition of the screening rules; accepted: {}", keys.join(", ")),
            ));
        }
        let controlled = c
            .get("extension")
            .and_then(Value::as_array)
            .and_then(|a| a.iter().find(|e| s(e, "/url") == Some(codes::EXT_CONTROLLED)))
            .and_then(|e| e.get("valueBoolean"))
            .and_then(Value::as_bool);
        let note = match optional_note(&note, 1000) {
            Ok(n) => n,
            Err(m) => {
                errs.extend(err("note", m));
                None
            }
        };
        if !errs.is_empty() {
            return Err(errs);
        }
        return Ok(Outcome::Records(vec![ClinicalRecord::Condition(ConditionRecord {
            condition: key.to_owned(),
            present: verification != Some("refuted"),
            controlled,
            note,
        })]));
    }
    if verification == Some("refuted") {
        return Ok(Outcome::Skipped("a refuted diagnosis is not imported".into()));
    }
    let all = codings(c.get("code"));
    if all.is_empty() {
        return Err(err("code.coding", "needs a coding (SNOMED CT, ICD-10-CM or another system with its code and display)"));
    }
    let snomed = all.iter().filter(|x| s(x, "/system") == Some(codes::SNOMED)).find_map(|x| s(x, "/code"));
    let catalogue = snomed.and_then(|code| ctx.catalog.diagnoses.iter().find(|d| d.snomed.code() == code));
    let text = s(c, "/code/text");
    let mut input = DiagnosisInput {
        onset: c.get("onsetDateTime").and_then(Value::as_str).map(|d| d.get(..10).unwrap_or(d).to_owned()).unwrap_or_default(),
        status: find_code(c.get("clinicalStatus"), codes::CONDITION_CLINICAL).unwrap_or("").to_owned(),
        note,
        ..Default::default()
    };
    match catalogue {
        Some(d) => input.choice = d.key.clone(),
        None => {
            let icd = CodeSystem::Icd10Cm.uri();
            let primary = all
                .iter()
                .find(|x| s(x, "/system") == Some(codes::SNOMED))
                .or_else(|| all.iter().find(|x| s(x, "/system") == Some(icd)))
                .or(all.first())
                .copied();
            let primary = primary.unwrap_or(&Value::Null);
            input.choice = "other".into();
            input.system = s(primary, "/system").unwrap_or("").to_owned();
            input.code = s(primary, "/code").unwrap_or("").to_owned();
            input.display = s(primary, "/display").or(text).unwrap_or("").to_owned();
            if input.system != icd {
                if let Some(x) = all.iter().find(|x| s(x, "/system") == Some(icd)) {
                    input.icd10 = s(x, "/code").unwrap_or("").to_owned();
                }
            }
        }
    }
    if c.get("onsetDateTime").is_none() && c.get("onsetPeriod").is_some() {
        return Err(err("onset[x]", "give onsetDateTime (a date); onsetPeriod is not imported"));
    }
    input.validate(ctx.catalog.diagnoses).map(|d| Outcome::Records(vec![ClinicalRecord::Diagnosis(d)])).map_err(|e| {
        let mut out = field_errors(
            e,
            &[
                ("choice", "code.coding"),
                ("system", "code.coding[0].system"),
                ("code", "code.coding[0]"),
                ("display", "code.coding[0].display"),
                ("icd10", "code.coding(icd-10-cm)"),
                ("onset", "onsetDateTime"),
                ("note", "note"),
            ],
        );
        for (p, m) in &mut out {
            if p == "status" {
                *p = "clinicalStatus".into();
                *m = format!("{} (system {})", m, codes::CONDITION_CLINICAL);
            }
        }
        out
    })
}

fn allergy(a: &Value) -> Result<Outcome, Errs> {
    if find_code(a.get("verificationStatus"), codes::ALLERGY_VERIFICATION) == Some("entered-in-error") {
        return Ok(Outcome::Skipped("entered in error: not imported".into()));
    }
    let substance = s(a, "/code/text").or_else(|| codings(a.get("code")).first().and_then(|c| s(c, "/display"))).unwrap_or("");
    let input = AllergyInput {
        substance: substance.to_owned(),
        reaction: s(a, "/reaction/0/manifestation/0/text").unwrap_or("").to_owned(),
        severity: s(a, "/reaction/0/severity").unwrap_or("").to_owned(),
    };
    input.validate().map(|x| Outcome::Records(vec![ClinicalRecord::Allergy(x)])).map_err(|e| {
        field_errors(
            e,
            &[("substance", "code.text"), ("reaction", "reaction[0].manifestation[0].text"), ("severity", "reaction[0].severity")],
        )
    })
}

fn medication_input(concept: Option<&Value>, dose: &str, start: &str, stop: &str) -> MedicationInput {
    let name = concept
        .and_then(|c| s(c, "/text"))
        .or_else(|| codings(concept).into_iter().find_map(|c| s(c, "/display")))
        .unwrap_or("")
        .to_owned();
    MedicationInput {
        name,
        rxnorm: find_code(concept, codes::RXNORM).unwrap_or("").to_owned(),
        dose: dose.to_owned(),
        start: start.get(..10).unwrap_or(start).to_owned(),
        stop: stop.get(..10).unwrap_or(stop).to_owned(),
    }
}

fn medication_errors(e: FieldErrors, dose_path: &str, start_path: &str, stop_path: &str) -> Errs {
    field_errors(
        e,
        &[
            ("name", "medicationCodeableConcept.text"),
            ("rxnorm", "medicationCodeableConcept.coding(rxnorm)"),
            ("dose", dose_path),
            ("start", start_path),
            ("stop", stop_path),
        ],
    )
}

fn medication_statement(m: &Value) -> Result<Outcome, Errs> {
    let status = s(m, "/status").unwrap_or("");
    if ["entered-in-error", "not-taken"].contains(&status) {
        return Ok(Outcome::Skipped(format!("status {status}: not imported")));
    }
    if m.get("medicationCodeableConcept").is_none() {
        return Err(err("medication[x]", "give medicationCodeableConcept (RxNorm coding and/or text); references are not imported"));
    }
    let start = s(m, "/effectivePeriod/start").or_else(|| s(m, "/effectiveDateTime")).unwrap_or("");
    let input = medication_input(
        m.get("medicationCodeableConcept"),
        s(m, "/dosage/0/text").unwrap_or(""),
        start,
        s(m, "/effectivePeriod/end").unwrap_or(""),
    );
    input
        .validate()
        .map(|x| Outcome::Records(vec![ClinicalRecord::Medication(x)]))
        .map_err(|e| medication_errors(e, "dosage[0].text", "effectivePeriod.start", "effectivePeriod.end"))
}

fn medication_request(m: &Value) -> Result<Outcome, Errs> {
    let status = s(m, "/status").unwrap_or("");
    if ["draft", "cancelled", "entered-in-error"].contains(&status) {
        return Ok(Outcome::Skipped(format!("status {status}: not a medication taken; not imported")));
    }
    if m.get("medicationCodeableConcept").is_none() {
        return Err(err("medication[x]", "give medicationCodeableConcept (RxNorm coding and/or text); references are not imported"));
    }
    let input = medication_input(
        m.get("medicationCodeableConcept"),
        s(m, "/dosageInstruction/0/text").unwrap_or(""),
        s(m, "/authoredOn").unwrap_or(""),
        "",
    );
    input
        .validate()
        .map(|x| Outcome::Records(vec![ClinicalRecord::Medication(x)]))
        .map_err(|e| medication_errors(e, "dosageInstruction[0].text", "authoredOn", "authoredOn"))
}

/// An Observation that is a rating-scale score: the instrument and whether it is the total.
fn score_instrument<'a>(o: &Value, cat: &'a Catalog) -> Option<(&'a Instrument, bool)> {
    let code = o.get("code");
    if let Some(l) = find_code(code, codes::LOINC) {
        for i in cat.instruments {
            if i.total_loinc.as_deref() == Some(l) {
                return Some((i, true));
            }
            if i.subscales.iter().any(|s| s.loinc.as_deref() == Some(l)) {
                return Some((i, false));
            }
        }
    }
    let local = find_code(code, codes::INSTRUMENT_CODE)?;
    let (key, part) = local.split_once('.')?;
    cat.instrument(key).map(|i| (i, part == "total"))
}

/// A measurement the plausibility checks run over, once every resource is read.
struct Anthro {
    entry: usize,
    at: DateTime<Utc>,
    weight: Option<BodyWeight>,
    height: Option<Height>,
    acknowledged: Vec<String>,
}

fn effective(o: &Value, now: DateTime<Utc>) -> Result<DateTime<Utc>, Errs> {
    let raw = s(o, "/effectiveDateTime").or_else(|| s(o, "/effectiveInstant")).or_else(|| s(o, "/effectivePeriod/start"));
    let Some(raw) = raw else {
        return Err(err("effective[x]", "is required: effectiveDateTime, such as 2026-11-20T08:30:00Z"));
    };
    let t = instant_of(raw).ok_or_else(|| err("effectiveDateTime", "must be a FHIR dateTime such as 2026-11-20T08:30:00Z (or a date)"))?;
    if t > now + chrono::Duration::minutes(5) {
        return Err(err("effectiveDateTime", "must not be in the future"));
    }
    Ok(t)
}

/// A JSON pointer as a FHIRPath-like element path (`/referenceRange/0/high` is
/// `referenceRange[0].high`).
fn fhir_path(pointer: &str) -> String {
    let mut out = String::new();
    for part in pointer.split('/').filter(|p| !p.is_empty()) {
        if part.chars().all(|c| c.is_ascii_digit()) {
            out.push_str(&format!("[{part}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(part);
        }
    }
    out
}

fn value_quantity(o: &Value, path: &str) -> Result<(Decimal, String), Errs> {
    let q = o.pointer(path);
    let value = q.and_then(|q| q.get("value")).and_then(decimal);
    let unit = q.and_then(|q| s(q, "/code").or_else(|| s(q, "/unit")));
    let field = fhir_path(path);
    if let Some(sys) = q.and_then(|q| s(q, "/system")) {
        if sys != codes::UCUM {
            return Err(err(&format!("{field}.system"), format!("must be UCUM ({})", codes::UCUM)));
        }
    }
    match (value, unit) {
        (Some(v), Some(u)) => Ok((v, u.to_owned())),
        _ => Err(err(&field, "must be a Quantity with a numeric value and a UCUM code (system http://unitsofmeasure.org)")),
    }
}

fn acknowledged_of(o: &Value) -> Vec<String> {
    o.get("extension")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|e| s(e, "/url") == Some(codes::EXT_ACKNOWLEDGED))
        .filter_map(|e| s(e, "/valueCode").map(str::to_owned))
        .collect()
}

fn observation_record(code: Coding, value: ObservationValue, at: DateTime<Utc>, ack: Vec<String>) -> ClinicalRecord {
    ClinicalRecord::Observation(Observation { code, value, effective: at, acknowledged_warnings: ack })
}

/// A score Observation derived from a QuestionnaireResponse of the Bundle (checked later).
struct DerivedScore {
    entry: usize,
    reference: String,
    instrument: String,
    total: bool,
    loinc: Option<String>,
    value: Decimal,
}

enum ObsResult {
    Done(Outcome),
    Anthro(Anthro, ClinicalRecord),
    Derived(DerivedScore),
}

fn observation(o: &Value, entry: usize, ctx: &ImportContext) -> Result<ObsResult, Errs> {
    let status = s(o, "/status").unwrap_or("");
    if ["entered-in-error", "cancelled"].contains(&status) {
        return Ok(ObsResult::Done(Outcome::Skipped(format!("status {status}: not imported"))));
    }
    if !["final", "amended", "corrected", "preliminary"].contains(&status) {
        return Err(err("status", "must be final, amended, corrected or preliminary"));
    }
    let cat = &ctx.catalog;
    let loinc_code = find_code(o.get("code"), codes::LOINC);
    let policy = cat.anthropometry;
    if loinc_code == Some(loinc::BMI) {
        return Ok(ObsResult::Done(Outcome::Skipped("BMI is derived from weight and height: not stored".into())));
    }
    let at = effective(o, ctx.now)?;
    let ack = acknowledged_of(o);
    match loinc_code {
        Some(loinc::BODY_WEIGHT) => {
            let (v, unit) = value_quantity(o, "/valueQuantity")?;
            if unit != "kg" {
                return Err(err("valueQuantity.code", format!("must be kg: weights are kilograms only (got {unit})")));
            }
            let w = BodyWeight::from_kg(v, policy).map_err(|m| err("valueQuantity.value", m))?;
            let rec = observation_record(
                Coding::new(CodeSystem::Loinc, loinc::BODY_WEIGHT, "Body weight").map_err(|m| err("code", m))?,
                ObservationValue::Quantity { value: w.kg().normalize(), unit: UcumUnit::parse("kg").map_err(|m| err("valueQuantity", m))? },
                at,
                Vec::new(),
            );
            return Ok(ObsResult::Anthro(Anthro { entry, at, weight: Some(w), height: None, acknowledged: ack }, rec));
        }
        Some(loinc::BODY_HEIGHT) => {
            let (v, unit) = value_quantity(o, "/valueQuantity")?;
            if unit != "cm" {
                return Err(err("valueQuantity.code", format!("must be cm: heights are centimetres only (got {unit})")));
            }
            let h = Height::from_cm(v, policy).map_err(|m| err("valueQuantity.value", m))?;
            let rec = observation_record(
                Coding::new(CodeSystem::Loinc, loinc::BODY_HEIGHT, "Body height").map_err(|m| err("code", m))?,
                ObservationValue::Quantity { value: h.cm().normalize(), unit: UcumUnit::parse("cm").map_err(|m| err("valueQuantity", m))? },
                at,
                Vec::new(),
            );
            return Ok(ObsResult::Anthro(Anthro { entry, at, weight: None, height: Some(h), acknowledged: ack }, rec));
        }
        Some(codes::BP_PANEL) => {
            let comps = o.get("component").and_then(Value::as_array).cloned().unwrap_or_default();
            let mut recs = Vec::new();
            let mut errs = Errs::new();
            for (i, c) in comps.iter().enumerate() {
                let code = find_code(c.get("code"), codes::LOINC);
                let (want, display) = match code {
                    Some(loinc::SYSTOLIC_BP) => (loinc::SYSTOLIC_BP, "Systolic blood pressure"),
                    Some(loinc::DIASTOLIC_BP) => (loinc::DIASTOLIC_BP, "Diastolic blood pressure"),
                    _ => {
                        errs.extend(err(&format!("component[{i}].code"), "must be LOINC 8480-6 (systolic) or 8462-4 (diastolic)"));
                        continue;
                    }
                };
                if c.get("valueQuantity").is_none() && c.get("dataAbsentReason").is_some() {
                    continue;
                }
                match value_quantity(c, "/valueQuantity") {
                    Ok((v, u)) if u == "mm[Hg]" => recs.push(observation_record(
                        Coding::new(CodeSystem::Loinc, want, display).map_err(|m| err("code", m))?,
                        ObservationValue::Quantity {
                            value: v.normalize(),
                            unit: UcumUnit::parse("mm[Hg]").map_err(|m| err("component", m))?,
                        },
                        at,
                        ack.clone(),
                    )),
                    Ok(_) => errs.extend(err(&format!("component[{i}].valueQuantity.code"), "must be mm[Hg]")),
                    Err(e) => errs.extend(e.into_iter().map(|(p, m)| (format!("component[{i}].{p}"), m))),
                }
            }
            if recs.is_empty() && errs.is_empty() {
                errs.extend(err("component", "needs a systolic (8480-6) or diastolic (8462-4) component with a value in mm[Hg]"));
            }
            return if errs.is_empty() { Ok(ObsResult::Done(Outcome::Records(recs))) } else { Err(errs) };
        }
        _ => {}
    }
    // A liver test with the laboratory's upper limit of normal is a lab result; without one it is
    // an observation like any other (as the screening records the tests it is given).
    let lab_test = loinc_code
        .and_then(|l| LabTest::ALL.into_iter().find(|t| t.loinc() == l))
        .filter(|_| o.pointer("/referenceRange/0/high").is_some());
    if let Some(test) = lab_test {
        let (v, unit) = value_quantity(o, "/valueQuantity")?;
        let (uln, uln_unit) = value_quantity(o, "/referenceRange/0/high")?;
        if uln_unit != unit {
            return Err(err("referenceRange[0].high", format!("must be in the same unit as the value ({unit}), not {uln_unit}")));
        }
        let input = LabInput {
            test: test.code().into(),
            value: v.to_string(),
            unit,
            uln: uln.to_string(),
            lab: s(o, "/performer/0/display").unwrap_or("").to_owned(),
        };
        return input.validate(at).map(|l| ObsResult::Done(Outcome::Records(vec![ClinicalRecord::LabResult(l)]))).map_err(|e| {
            field_errors(
                e,
                &[
                    ("value", "valueQuantity.value"),
                    ("unit", "valueQuantity.code"),
                    ("uln", "referenceRange[0].high"),
                    ("lab", "performer[0].display"),
                ],
            )
        });
    }
    if let Some((inst, total)) = score_instrument(o, cat) {
        let value = o
            .get("valueQuantity")
            .and_then(|q| q.get("value"))
            .and_then(decimal)
            .or_else(|| o.get("valueInteger").and_then(decimal))
            .ok_or_else(|| err("value[x]", "a score needs valueQuantity (unit {score}) or valueInteger"))?;
        let derived =
            o.get("derivedFrom").and_then(Value::as_array).and_then(|a| a.iter().find_map(|r| s(r, "/reference"))).map(str::to_owned);
        if let Some(reference) = derived {
            return Ok(ObsResult::Derived(DerivedScore {
                entry,
                reference,
                instrument: inst.key.clone(),
                total,
                loinc: loinc_code.map(str::to_owned),
                value,
            }));
        }
        if total {
            check_total(inst, "value", value).map_err(|m| err("valueQuantity.value", m))?;
        } else if value < Decimal::ZERO {
            return Err(err("valueQuantity.value", "a subscale score is 0 or more"));
        }
        let first = codings(o.get("code")).into_iter().next().cloned().unwrap_or(Value::Null);
        let system = s(&first, "/system").unwrap_or(codes::LOINC);
        let code = s(&first, "/code").unwrap_or("");
        let display =
            s(&first, "/display").or_else(|| s(o, "/code/text")).map(str::to_owned).unwrap_or_else(|| format!("{} total score", inst.name));
        let coding = CodeSystem::parse(system).and_then(|sys| Coding::new(sys, code, &display)).map_err(|m| err("code.coding[0]", m))?;
        return Ok(ObsResult::Done(Outcome::Records(vec![observation_record(
            coding,
            ObservationValue::Quantity { value: value.normalize(), unit: UcumUnit::parse("{score}").map_err(|m| err("valueQuantity", m))? },
            at,
            Vec::new(),
        )])));
    }
    let first = codings(o.get("code")).into_iter().next().cloned();
    let Some(first) = first else {
        return Err(err("code.coding", "needs a coding (LOINC, with its display)"));
    };
    let (value_type, value, unit) = if o.get("valueQuantity").is_some() {
        let (v, u) = value_quantity(o, "/valueQuantity")?;
        ("quantity", v.to_string(), u)
    } else if let Some(t) = o.get("valueString").and_then(Value::as_str) {
        ("text", t.to_owned(), String::new())
    } else if let Some(b) = o.get("valueBoolean").and_then(Value::as_bool) {
        ("boolean", if b { "yes" } else { "no" }.to_owned(), String::new())
    } else {
        return Err(err("value[x]", "must be valueQuantity, valueString or valueBoolean"));
    };
    let input = ObservationInput {
        code: s(&first, "/code").unwrap_or("").to_owned(),
        system: s(&first, "/system").unwrap_or("").to_owned(),
        display: s(&first, "/display").or_else(|| s(o, "/code/text")).unwrap_or("").to_owned(),
        value_type: value_type.to_owned(),
        value,
        unit,
        effective: at.format("%Y-%m-%dT%H:%M:%S").to_string(),
    };
    input
        .validate()
        .map(|mut x| {
            x.acknowledged_warnings = ack;
            ObsResult::Done(Outcome::Records(vec![ClinicalRecord::Observation(x)]))
        })
        .map_err(|e| {
            field_errors(
                e,
                &[
                    ("code", "code.coding[0]"),
                    ("system", "code.coding[0].system"),
                    ("value", "value[x]"),
                    ("unit", "valueQuantity.code"),
                    ("value_type", "value[x]"),
                    ("effective", "effectiveDateTime"),
                ],
            )
        })
}

fn questionnaire_instrument<'a>(url: &str, cat: &'a Catalog) -> Option<&'a Instrument> {
    let base = url.split('|').next().unwrap_or("");
    if let Some(id) = base.strip_prefix(codes::QUESTIONNAIRE_BASE) {
        return cat.instruments.iter().find(|i| crate::questionnaire_id(&i.key) == id);
    }
    cat.instruments.iter().find(|i| i.panel_loinc.as_deref().is_some_and(|p| base.ends_with(&format!("/{p}")) || base == p))
}

fn answer_value(item: &ketacare_domain::instrument::ItemDef, a: &Value) -> Result<u32, String> {
    if let Some(b) = a.get("valueBoolean").and_then(Value::as_bool) {
        if item.kind == AnswerKind::YesNo {
            return Ok(u32::from(b));
        }
        return Err(format!("must be {}, not a yes/no", item.accepted()));
    }
    let coded: Vec<&str> = item.choice_loinc.iter().map(String::as_str).filter(|c| !c.is_empty()).collect();
    let accepted = if coded.is_empty() {
        item.accepted()
    } else {
        format!("{} (valueInteger), or one of the LOINC answers {} (valueCoding)", item.accepted(), coded.join(", "))
    };
    if let Some(n) = a
        .get("valueInteger")
        .and_then(Value::as_i64)
        .or_else(|| a.get("valueDecimal").and_then(Value::as_f64).filter(|f| f.fract() == 0.0).map(|f| f as i64))
    {
        return u32::try_from(n)
            .ok()
            .filter(|v| item.choices().contains(v))
            .ok_or_else(|| format!("{n} is not an answer: give {accepted}"));
    }
    if let Some(c) = a.get("valueCoding") {
        let code = s(c, "/code").unwrap_or("");
        if let Some(pos) = item.choice_loinc.iter().position(|la| la == code) {
            if let Some(v) = item.choices().get(pos) {
                return Ok(*v);
            }
        }
        return Err(format!("{code:?} is not an answer: give {accepted}"));
    }
    Err(format!("give {accepted}"))
}

fn questionnaire_response(q: &Value, ctx: &ImportContext) -> Result<Outcome, Errs> {
    let cat = &ctx.catalog;
    let url = s(q, "/questionnaire").unwrap_or("");
    let Some(inst) = questionnaire_instrument(url, cat) else {
        let known: Vec<String> = cat.instruments.iter().map(|i| crate::questionnaire_url(&i.key)).collect();
        return Err(err("questionnaire", format!("must name an instrument: one of {} (or its LOINC panel)", known.join(", "))));
    };
    let status = s(q, "/status").unwrap_or("");
    if !["completed", "amended"].contains(&status) {
        return Err(err("status", "must be completed or amended (answers in progress are not imported)"));
    }
    let mut errs = Errs::new();
    let authored = match s(q, "/authored").and_then(instant_of) {
        Some(t) => t.format("%Y-%m-%dT%H:%M:%S").to_string(),
        None => {
            errs.extend(err("authored", "is required: when the form was filled in, such as 2026-11-20T08:30:00Z"));
            String::new()
        }
    };
    let mut answers = vec![String::new(); inst.items.len()];
    let items = q.get("item").and_then(Value::as_array).cloned().unwrap_or_default();
    for (i, it) in items.iter().enumerate() {
        let link = s(it, "/linkId").unwrap_or("");
        let link = link.trim_start_matches('/');
        let Some(pos) = inst.items.iter().position(|d| d.key == link || d.loinc.as_deref() == Some(link)) else {
            let keys: Vec<&str> = inst.items.iter().map(|d| d.key.as_str()).collect();
            errs.extend(err(
                &format!("item[{i}].linkId"),
                format!("{link:?} is not an item of {}; accepted: {}", inst.name, keys.join(", ")),
            ));
            continue;
        };
        let item = &inst.items[pos];
        let ans = it.get("answer").and_then(Value::as_array).cloned().unwrap_or_default();
        match ans.as_slice() {
            [] => {}
            [a] => match answer_value(item, a) {
                Ok(v) => answers[pos] = v.to_string(),
                Err(m) => errs.extend(err(&format!("item[{i}].answer[0]"), format!("({}) {m}", item.key))),
            },
            _ => errs.extend(err(&format!("item[{i}].answer"), "give one answer per item")),
        }
        if item.kind == AnswerKind::YesNo {
            if let Some(x) = answers.get_mut(pos) {
                *x = match x.as_str() {
                    "1" => "y".into(),
                    "0" => "n".into(),
                    other => other.to_owned(),
                };
            }
        }
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    let filled_by = match s(q, "/source/reference") {
        Some(r) if r.starts_with("Patient/") || r.starts_with("urn:uuid:") => FilledBy::Patient,
        _ => FilledBy::Clinician,
    };
    let input = AssessmentInput { instrument: inst.key.clone(), answers, taken_at: authored, ..Default::default() };
    let a = input.validate(inst, cat.timepoints, filled_by, ctx.now).map_err(|e| {
        e.iter()
            .map(|f| {
                let path = match inst.items.iter().position(|d| d.key == f.field) {
                    Some(_) => format!("item(linkId={})", f.field),
                    None if f.field == "taken_at" => "authored".to_owned(),
                    None => f.field.clone(),
                };
                (path, f.message.clone())
            })
            .collect::<Errs>()
    })?;
    Ok(Outcome::Records(vec![ClinicalRecord::Assessment(a)]))
}

const SUPPORTED: &str =
    "Patient, Condition, AllergyIntolerance, MedicationStatement, MedicationRequest, Observation, QuestionnaireResponse";

fn problem(entry: Option<usize>, rt: &str, (path, message): (String, String)) -> Problem {
    Problem { entry, resource_type: rt.to_owned(), path, message }
}

/// One entry of the Bundle: its index, its resource and its fullUrl.
type Entry<'a> = (usize, &'a Value, Option<&'a str>);

/// The resources of the Bundle.
fn entries(bundle: &Value) -> Result<Vec<Entry<'_>>, Vec<Problem>> {
    let mut probs = Vec::new();
    if bundle.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
        probs.push(problem(None, "", ("resourceType".into(), "must be \"Bundle\"".into())));
        return Err(probs);
    }
    if bundle.get("type").and_then(Value::as_str) != Some("transaction") {
        probs.push(problem(None, "Bundle", ("type".into(), "must be \"transaction\" (all or nothing)".into())));
    }
    let list = bundle.get("entry").and_then(Value::as_array).cloned().unwrap_or_default();
    if list.is_empty() {
        probs.push(problem(None, "Bundle", ("entry".into(), "needs at least the Patient".into())));
    }
    let raw = bundle.get("entry").and_then(Value::as_array);
    let mut out = Vec::new();
    for (i, e) in raw.into_iter().flatten().enumerate() {
        let Some(r) = e.get("resource").filter(|r| r.is_object()) else {
            probs.push(Problem {
                entry: Some(i),
                resource_type: String::new(),
                path: String::new(),
                message: "entry has no resource".into(),
            });
            continue;
        };
        let rt = r.get("resourceType").and_then(Value::as_str).unwrap_or("");
        match e.pointer("/request/method").and_then(Value::as_str) {
            Some("POST" | "PUT") => {}
            Some(m) => probs.push(Problem {
                entry: Some(i),
                resource_type: rt.to_owned(),
                path: String::new(),
                message: format!("request.method {m} is not supported; use POST (or PUT)"),
            }),
            None => probs.push(Problem {
                entry: Some(i),
                resource_type: rt.to_owned(),
                path: String::new(),
                message: "needs request.method POST and request.url naming its type (a transaction entry)".into(),
            }),
        }
        out.push((i, r, e.get("fullUrl").and_then(Value::as_str)));
    }
    if probs.is_empty() {
        Ok(out)
    } else {
        Err(probs)
    }
}

/// The MRN of the Bundle's Patient (to find the chart before the full check).
pub fn bundle_mrn(bundle: &Value) -> Result<Mrn, Vec<Problem>> {
    let list = entries(bundle)?;
    let patients: Vec<&Entry> = list.iter().filter(|(_, r, _)| r.get("resourceType").and_then(Value::as_str) == Some("Patient")).collect();
    match patients.as_slice() {
        [(i, p, _)] => mrn_of(p).map_err(|e| e.into_iter().map(|x| problem(Some(*i), "Patient", x)).collect()),
        [] => Err(vec![problem(None, "Bundle", ("entry".into(), "needs one Patient (the patient the records belong to)".into()))]),
        _ => Err(vec![problem(None, "Bundle", ("entry".into(), "must hold one Patient only; import one patient per Bundle".into()))]),
    }
}

/// Checks the whole Bundle; every problem of every resource is returned.
pub fn parse(bundle: &Value, ctx: &ImportContext) -> Result<Imported, Vec<Problem>> {
    bundle_mrn(bundle)?;
    let list = entries(bundle)?;
    let mut probs = Vec::new();
    let (pi, pres, pfull) =
        *list.iter().find(|(_, r, _)| r.get("resourceType").and_then(Value::as_str) == Some("Patient")).ok_or_else(Vec::new)?;
    let mut patient_refs: Vec<String> = Vec::new();
    if let Some(f) = pfull {
        patient_refs.push(f.to_owned());
    }
    if let Some(id) = pres.get("id").and_then(Value::as_str) {
        patient_refs.push(format!("Patient/{id}"));
    }
    let demographics = patient(pres, ctx).map_err(|e| e.into_iter().map(|x| problem(Some(pi), "Patient", x)).collect::<Vec<_>>());
    let demographics = match demographics {
        Ok(d) => Some(d),
        Err(e) => {
            probs.extend(e);
            None
        }
    };
    // QuestionnaireResponses by the references a score may use.
    let mut qr_refs: Vec<(Vec<String>, usize)> = Vec::new();
    for (i, r, full) in &list {
        if r.get("resourceType").and_then(Value::as_str) == Some("QuestionnaireResponse") {
            let mut refs = Vec::new();
            if let Some(f) = full {
                refs.push((*f).to_owned());
            }
            if let Some(id) = r.get("id").and_then(Value::as_str) {
                refs.push(format!("QuestionnaireResponse/{id}"));
            }
            qr_refs.push((refs, *i));
        }
    }
    let mut outcomes: Vec<Option<Outcome>> = vec![None; list.iter().map(|(i, _, _)| i + 1).max().unwrap_or(0)];
    let mut anthro: Vec<(Anthro, ClinicalRecord)> = Vec::new();
    let mut derived: Vec<DerivedScore> = Vec::new();
    for (i, r, _) in &list {
        let rt = r.get("resourceType").and_then(Value::as_str).unwrap_or("");
        if rt == "Patient" {
            outcomes[*i] = Some(Outcome::Patient);
            continue;
        }
        let subject_path = if rt == "AllergyIntolerance" { "/patient/reference" } else { "/subject/reference" };
        let mut errs = Errs::new();
        match r.pointer(subject_path).and_then(Value::as_str) {
            Some(refr) if patient_refs.iter().any(|p| p == refr) => {}
            _ => errs.extend(err(fhir_path(subject_path).as_str(), "must reference the Bundle's Patient (its fullUrl, or Patient/{id})")),
        }
        let result = match rt {
            "Condition" => condition(r, ctx).map(Some),
            "AllergyIntolerance" => allergy(r).map(Some),
            "MedicationStatement" => medication_statement(r).map(Some),
            "MedicationRequest" => medication_request(r).map(Some),
            "QuestionnaireResponse" => questionnaire_response(r, ctx).map(Some),
            "Observation" => match observation(r, *i, ctx) {
                Ok(ObsResult::Done(o)) => Ok(Some(o)),
                Ok(ObsResult::Anthro(a, rec)) => {
                    anthro.push((a, rec));
                    Ok(None)
                }
                Ok(ObsResult::Derived(d)) => {
                    derived.push(d);
                    Ok(None)
                }
                Err(e) => Err(e),
            },
            "" => Err(err("resourceType", format!("is missing; accepted: {SUPPORTED}"))),
            other => Err(err("resourceType", format!("{other} is not imported; accepted: {SUPPORTED}"))),
        };
        match result {
            Ok(o) if errs.is_empty() => outcomes[*i] = o,
            Ok(_) => {}
            Err(e) => errs.extend(e),
        }
        probs.extend(errs.into_iter().map(|x| problem(Some(*i), rt, x)));
    }
    // Weights and heights in time order, each checked against the chart and the ones before it.
    anthro.sort_by_key(|(a, _)| (a.at, a.entry));
    let mut weights = ctx.chart_weights.clone();
    let mut heights = ctx.chart_heights.clone();
    for (a, mut rec) in anthro {
        let prev_w =
            weights.iter().filter(|(t, _)| *t <= a.at).max_by_key(|(t, _)| *t).or(weights.iter().max_by_key(|(t, _)| *t)).map(|x| x.1);
        let prev_h =
            heights.iter().filter(|(t, _)| *t <= a.at).max_by_key(|(t, _)| *t).or(heights.iter().max_by_key(|(t, _)| *t)).map(|x| x.1);
        let warnings = match (a.weight, a.height) {
            (Some(w), _) => assess_weight(w, prev_w, prev_h, ctx.catalog.anthropometry),
            (_, Some(h)) => assess_height(h, prev_h, prev_w, ctx.catalog.anthropometry),
            _ => Vec::new(),
        };
        let open: Vec<_> =
            warnings.iter().filter(|w| !ctx.acknowledged.iter().chain(a.acknowledged.iter()).any(|c| c == w.code())).collect();
        for w in &open {
            probs.push(problem(
                Some(a.entry),
                "Observation",
                (
                    "valueQuantity".into(),
                    format!(
                        "needs confirmation ({}): {}; if it is right, send the Bundle again with ?acknowledge={}",
                        w.code(),
                        w.message(),
                        w.code()
                    ),
                ),
            ));
        }
        if let ClinicalRecord::Observation(o) = &mut rec {
            // What the source confirmed when it was measured, and what was confirmed now.
            let mut ack = a.acknowledged.clone();
            for w in &warnings {
                if !ack.iter().any(|c| c == w.code()) {
                    ack.push(w.code().to_owned());
                }
            }
            o.acknowledged_warnings = ack;
        }
        if let Some(w) = a.weight {
            weights.push((a.at, w));
        }
        if let Some(h) = a.height {
            heights.push((a.at, h));
        }
        outcomes[a.entry] = Some(Outcome::Records(vec![rec]));
    }
    // Scores derived from a QuestionnaireResponse of the Bundle must be what its answers give.
    for d in derived {
        let qr = qr_refs.iter().find(|(refs, _)| refs.contains(&d.reference)).map(|(_, i)| *i);
        let Some(qi) = qr else {
            probs.push(problem(
                Some(d.entry),
                "Observation",
                ("derivedFrom".into(), "must reference a QuestionnaireResponse of this Bundle (scores are recomputed from the answers); send a prior score without derivedFrom".into()),
            ));
            continue;
        };
        let assessment = match outcomes.get(qi).and_then(Option::as_ref) {
            Some(Outcome::Records(r)) => r.iter().find_map(|x| match x {
                ClinicalRecord::Assessment(a) => Some(a.clone()),
                _ => None,
            }),
            _ => None,
        };
        let Some(a) = assessment else { continue };
        let Some(inst) = ctx.catalog.instrument(&d.instrument).filter(|i| i.key == a.instrument) else {
            probs.push(problem(
                Some(d.entry),
                "Observation",
                ("code".into(), "is not a score of the instrument of the referenced QuestionnaireResponse".into()),
            ));
            continue;
        };
        let score = inst.score(&a.answers, None).ok();
        let expected = score.as_ref().and_then(|s| {
            if d.total {
                s.total
            } else {
                let key = inst.subscales.iter().find(|x| x.loinc.is_some() && x.loinc == d.loinc).map(|x| x.key.clone());
                s.subscales.iter().find(|x| Some(&x.key) == key.as_ref()).map(|x| x.value)
            }
        });
        match expected {
            Some(v) if v == d.value => {
                outcomes[d.entry] = Some(Outcome::Skipped("derived from the answers: recomputed, not stored".into()))
            }
            Some(v) => probs.push(problem(
                Some(d.entry),
                "Observation",
                (
                    "valueQuantity.value".into(),
                    format!("is {}, but the answers of the QuestionnaireResponse give {}", d.value.normalize(), v.normalize()),
                ),
            )),
            None => outcomes[d.entry] = Some(Outcome::Skipped("derived from the answers: recomputed, not stored".into())),
        }
    }
    if !probs.is_empty() {
        probs.sort_by_key(|p| p.entry);
        return Err(probs);
    }
    let entries: Vec<Outcome> = outcomes.into_iter().map(|o| o.unwrap_or(Outcome::Skipped("not imported".into()))).collect();
    Ok(Imported { demographics: demographics.ok_or_else(Vec::new)?, entries })
}
