//! FHIR R4 (4.0.1) resources of Ketacare's records, and a transaction Bundle read back into
//! records.
//!
//! Pure: no IO, no clock, no database. The application gathers a patient's data (with its
//! authorisation and audit) into [`PatientData`] and this crate turns it into FHIR JSON; an
//! imported transaction Bundle is checked here, resource by resource, into validated domain
//! records, and every bad resource is reported with its entry index, resource type, field path
//! and what is accepted.
//!
//! - [`codes`]: the code systems, codes and profiles used, each with its source.
//! - [`resources`]: the mapping of records to resources (identified, or de-identified for
//!   research: no name, identifiers, contact details or free text; dates shifted per patient).
//! - [`search`]: the search parameters (`patient`, `code`, `date` with prefixes, ...) and
//!   their checks.
//! - [`bundle`]: Bundles, OperationOutcome and the CapabilityStatement.
//! - [`import`]: the transaction Bundle importer.

pub mod bundle;
pub mod codes;
pub mod import;
pub mod resources;
pub mod search;

pub use serde_json::{json, Map, Value};

use chrono::{DateTime, NaiveDate, Utc};
use ketacare_domain::anthropometry::AnthropometryPolicy;
use ketacare_domain::assessment::TimePoint;
use ketacare_domain::deid::DateShift;
use ketacare_domain::instrument::Instrument;
use ketacare_domain::patient::AgeLimits;
use ketacare_domain::record::DiagnosisChoice;
use ketacare_domain::screening::ConditionRule;
use rust_decimal::Decimal;
use std::str::FromStr;

/// The FHIR version this crate speaks.
pub const FHIR_VERSION: &str = "4.0.1";

/// The media type of FHIR JSON.
pub const FHIR_JSON: &str = "application/fhir+json";

/// The media type of FHIR NDJSON (bulk export files).
pub const FHIR_NDJSON: &str = "application/fhir+ndjson";

/// Errors of this crate.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FhirError {
    /// A search parameter is unknown or its value malformed.
    #[error("search parameter {param}: {message}")]
    BadParameter {
        /// The parameter as sent.
        param: String,
        /// What is wrong and what is accepted.
        message: String,
    },
    /// A resource type this server does not serve.
    #[error("resource type {0} is not supported")]
    UnsupportedType(String),
    /// An imported Bundle has bad resources; nothing of it may be written.
    #[error("{} problems in the Bundle", .0.len())]
    Invalid(Vec<Problem>),
}

/// One problem with one resource of an imported Bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Index of the entry in `Bundle.entry` (`None`: the Bundle itself).
    pub entry: Option<usize>,
    /// Resource type of the entry (as sent; empty when missing).
    pub resource_type: String,
    /// Path of the element inside the resource (FHIRPath-like, e.g. `valueQuantity.code`).
    pub path: String,
    /// What is wrong and what is accepted.
    pub message: String,
}

impl Problem {
    /// The full FHIRPath expression of the element, from the Bundle.
    pub fn expression(&self) -> String {
        match (self.entry, self.path.is_empty()) {
            (Some(i), true) => format!("Bundle.entry[{i}].resource"),
            (Some(i), false) => format!("Bundle.entry[{i}].resource.{}", self.path),
            (None, true) => "Bundle".to_owned(),
            (None, false) => format!("Bundle.{}", self.path),
        }
    }
}

/// What the mapping needs to know from the clinic's knowledge files.
#[derive(Clone, Copy)]
pub struct Catalog<'a> {
    /// The rating instruments.
    pub instruments: &'a [Instrument],
    /// The comorbid conditions of the screening rules (key, label).
    pub conditions: &'a [ConditionRule],
    /// The diagnosis catalogue.
    pub diagnoses: &'a [DiagnosisChoice],
    /// The drug of the drug library (name) and its RxNorm code.
    pub drug: (&'a str, &'a str),
    /// Plausibility limits of weight and height.
    pub anthropometry: &'a AnthropometryPolicy,
    /// Age limits of a registration.
    pub age_limits: AgeLimits,
    /// Rating-scale time points.
    pub timepoints: &'a [TimePoint],
}

impl<'a> Catalog<'a> {
    /// What the mapping needs of the clinic's knowledge files.
    pub fn from_knowledge(k: &'a ketacare_knowledge::Knowledge) -> Self {
        Catalog {
            instruments: &k.instruments,
            conditions: &k.screening.conditions,
            diagnoses: &k.diagnoses,
            drug: (&k.drug_library.drug, &k.drug_library.rxnorm.0),
            anthropometry: &k.anthropometry,
            age_limits: k.age_limits,
            timepoints: &k.assessment_timing.timepoints,
        }
    }

    /// The instrument with `key`.
    pub fn instrument(&self, key: &str) -> Option<&Instrument> {
        self.instruments.iter().find(|i| i.key == key)
    }
}

/// Who the resources are for: staff (identified) or research (de-identified).
#[derive(Clone)]
pub enum View {
    /// Identified: real ids, names, identifiers and dates.
    Identified,
    /// De-identified: the patient is their research id, every date is shifted by the patient's
    /// offset, direct identifiers and free text are left out, and resource ids are pseudonyms.
    Deidentified {
        /// The research id (used as the Patient's id).
        research_id: String,
        /// The patient's date shift.
        shift: DateShift,
        /// Whether the patient is older than 89 today (birth year left out).
        over_89: bool,
        /// A keyed digest of a resource id, as a FHIR id (the key stays with the caller).
        pseudonym: std::sync::Arc<dyn Fn(&str) -> String + Send + Sync>,
    },
}

impl std::fmt::Debug for View {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.deidentified() { "View::Deidentified" } else { "View::Identified" })
    }
}

impl View {
    /// Whether this is the research view.
    pub fn deidentified(&self) -> bool {
        matches!(self, View::Deidentified { .. })
    }
    /// A resource id as this view shows it.
    pub fn id(&self, real: &str) -> String {
        match self {
            View::Identified => real.to_owned(),
            View::Deidentified { pseudonym, .. } => pseudonym(real),
        }
    }
    /// An instant as this view shows it (FHIR `instant`, UTC).
    pub fn instant(&self, t: DateTime<Utc>) -> String {
        let t = match self {
            View::Identified => t,
            View::Deidentified { shift, .. } => shift.instant(t),
        };
        instant(t)
    }
    /// A date as this view shows it (FHIR `date`).
    pub fn date(&self, d: NaiveDate) -> String {
        let d = match self {
            View::Identified => d,
            View::Deidentified { shift, .. } => shift.date(d),
        };
        d.format("%Y-%m-%d").to_string()
    }
    /// Free text, or nothing in the research view (notes may name people and places).
    pub fn text(&self, s: Option<&str>) -> Option<String> {
        match self {
            View::Identified => s.map(str::to_owned).filter(|s| !s.trim().is_empty()),
            View::Deidentified { .. } => None,
        }
    }
}

/// A FHIR `instant` (seconds, UTC).
pub fn instant(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A decimal as a JSON number (integers stay integers).
pub fn number(d: Decimal) -> Value {
    let d = d.normalize();
    if d.scale() == 0 {
        if let Ok(i) = i64::from_str(&d.to_string()) {
            return Value::from(i);
        }
    }
    serde_json::Number::from_str(&d.to_string()).map(Value::Number).unwrap_or_else(|_| Value::String(d.to_string()))
}

/// A UCUM quantity.
pub fn quantity(value: Decimal, unit: &str) -> Value {
    json!({"value": number(value), "unit": unit, "system": codes::UCUM, "code": unit})
}

/// A coding.
pub fn coding(system: &str, code: &str, display: &str) -> Value {
    if display.is_empty() {
        json!({"system": system, "code": code})
    } else {
        json!({"system": system, "code": code, "display": display})
    }
}

/// A CodeableConcept with one coding and its display as text.
pub fn concept(system: &str, code: &str, display: &str) -> Value {
    let mut c = json!({"coding": [coding(system, code, display)]});
    if !display.is_empty() {
        c["text"] = Value::String(display.to_owned());
    }
    c
}

/// The 32 lower-case hex digits of a UUID (two of them make a 64-character FHIR id).
pub fn hex32(u: uuid::Uuid) -> String {
    u.simple().to_string()
}

/// Splits a 64-character id made of two UUIDs ([`hex32`] each).
pub fn split_pair(id: &str) -> Option<(uuid::Uuid, uuid::Uuid)> {
    if id.len() != 64 || !id.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    Some((uuid::Uuid::parse_str(&id[..32]).ok()?, uuid::Uuid::parse_str(&id[32..]).ok()?))
}

/// The FHIR id of an instrument's Questionnaire (FHIR ids have no `_`).
pub fn questionnaire_id(key: &str) -> String {
    key.replace('_', "-")
}

/// The canonical URL of an instrument's Questionnaire.
pub fn questionnaire_url(key: &str) -> String {
    format!("{}{}", codes::QUESTIONNAIRE_BASE, questionnaire_id(key))
}

/// Whether `id` is a valid FHIR id (`[A-Za-z0-9\-\.]{1,64}`).
pub fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_stay_exact_and_integers_stay_integers() {
        assert_eq!(number(Decimal::from_str("72.50").unwrap()), json!(72.5));
        assert_eq!(number(Decimal::from_str("120").unwrap()), json!(120));
        assert_eq!(number(Decimal::from_str("0.33").unwrap()).to_string(), "0.33");
    }

    #[test]
    fn pair_ids_are_64_characters_and_split_back() {
        let a = uuid::Uuid::new_v4();
        let b = uuid::Uuid::new_v4();
        let id = format!("{}{}", hex32(a), hex32(b));
        assert!(valid_id(&id));
        assert_eq!(split_pair(&id), Some((a, b)));
        assert_eq!(split_pair("abc"), None);
        assert!(!valid_id("cssrs_screener"));
        assert!(valid_id(&questionnaire_id("cssrs_screener")));
    }

    #[test]
    fn the_research_view_shifts_dates_and_drops_free_text() {
        let v = View::Deidentified {
            research_id: "R-0011223344".into(),
            shift: DateShift { days: -10 },
            over_89: false,
            pseudonym: std::sync::Arc::new(|s: &str| format!("p{}", s.len())),
        };
        assert_eq!(v.date(NaiveDate::from_ymd_opt(2026, 1, 11).unwrap()), "2026-01-01");
        assert_eq!(v.text(Some("lives at 1 Main St")), None);
        assert_eq!(v.id("abc"), "p3");
        assert_eq!(View::Identified.text(Some("note")), Some("note".into()));
    }
}
