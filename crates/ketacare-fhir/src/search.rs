//! What the FHIR API serves: the resource types with their interactions and search
//! parameters, and the search itself (parameters checked, then matched on the resources).
//!
//! Searches of patient data are scoped to one patient (`patient` is required), so a search
//! reads one chart, audited as such. Dates take the prefixes `eq` (default), `gt`, `lt`, `ge`
//! and `le` at the precision given (`2026`, `2026-11`, `2026-11-26`, or a date and time).

use crate::{FhirError, Value};
use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, Utc};

/// One search parameter of a type.
#[derive(Clone, Copy, Debug)]
pub struct Param {
    /// Name.
    pub name: &'static str,
    /// FHIR search parameter type.
    pub kind: &'static str,
    /// What it matches.
    pub doc: &'static str,
}

/// A resource type the API serves.
#[derive(Clone, Copy, Debug)]
pub struct TypeSupport {
    /// Resource type.
    pub name: &'static str,
    /// Whether `GET /fhir/{Type}/{id}` reads it.
    pub read: bool,
    /// Whether it is patient data (needs `patient` in a search, and ends up in `$everything`
    /// and the bulk export).
    pub patient_data: bool,
    /// Search parameters.
    pub params: &'static [Param],
    /// What the resource holds.
    pub doc: &'static str,
}

const PATIENT: Param = Param { name: "patient", kind: "reference", doc: "the patient: Patient/{id} or {id} (required)" };
const CODE: Param = Param { name: "code", kind: "token", doc: "system|code, |code or code; several separated by commas" };
const DATE: Param = Param {
    name: "date",
    kind: "date",
    doc: "eq (default), gt, lt, ge or le, then YYYY, YYYY-MM, YYYY-MM-DD or a date and time; repeat for a range",
};
const ID: Param = Param { name: "_id", kind: "token", doc: "the resource id" };

/// Everything the API serves, in the order of the CapabilityStatement.
pub const TYPES: &[TypeSupport] = &[
    TypeSupport {
        name: "Patient",
        read: true,
        patient_data: true,
        params: &[
            ID,
            Param { name: "identifier", kind: "token", doc: "the MRN: urn:ketacare:mrn|KC-000123 or KC-000123" },
            Param { name: "name", kind: "string", doc: "part of the family or given name" },
        ],
        doc: "Demographics; identified staff view only.",
    },
    TypeSupport {
        name: "Condition",
        read: true,
        patient_data: true,
        params: &[PATIENT, CODE, DATE],
        doc: "Diagnoses (SNOMED CT, ICD-10-CM) and comorbid conditions; date: onset, else recorded.",
    },
    TypeSupport {
        name: "Encounter",
        read: true,
        patient_data: true,
        params: &[PATIENT, CODE, DATE],
        doc: "Visits and treatment sessions; code: the encounter kind; date: period start.",
    },
    TypeSupport {
        name: "Observation",
        read: true,
        patient_data: true,
        params: &[PATIENT, CODE, DATE, Param { name: "category", kind: "token", doc: "vital-signs, laboratory or survey" }],
        doc: "Weight, height, vital signs (R4 vital-signs profiles), lab results, rating-scale scores; date: effective.",
    },
    TypeSupport {
        name: "QuestionnaireResponse",
        read: true,
        patient_data: true,
        params: &[PATIENT, DATE],
        doc: "Rating-scale answers; date: authored.",
    },
    TypeSupport {
        name: "MedicationRequest",
        read: true,
        patient_data: true,
        params: &[PATIENT, CODE, DATE],
        doc: "Ketamine dose orders; the dose only once double-checked; date: authored.",
    },
    TypeSupport {
        name: "MedicationAdministration",
        read: true,
        patient_data: true,
        params: &[PATIENT, CODE, DATE],
        doc: "Doses given in treatment sessions; date: start.",
    },
    TypeSupport {
        name: "MedicationStatement",
        read: true,
        patient_data: true,
        params: &[PATIENT, CODE, DATE],
        doc: "Current and past medications; date: start, else asserted.",
    },
    TypeSupport { name: "AllergyIntolerance", read: true, patient_data: true, params: &[PATIENT, DATE], doc: "Allergies; date: recorded." },
    TypeSupport {
        name: "AdverseEvent",
        read: true,
        patient_data: true,
        params: &[PATIENT, CODE, DATE],
        doc: "Session adverse events and safety observations; code: the event; date: when.",
    },
    TypeSupport {
        name: "CarePlan",
        read: true,
        patient_data: true,
        params: &[PATIENT, DATE],
        doc: "Treatment plans (planned sessions) and the care plan (goals, therapies); date: start, else created.",
    },
    TypeSupport {
        name: "Provenance",
        read: true,
        patient_data: true,
        params: &[PATIENT, DATE],
        doc: "Who recorded each current record version, and when; date: recorded.",
    },
    TypeSupport {
        name: "AuditEvent",
        read: false,
        patient_data: false,
        params: &[
            Param { name: "patient", kind: "reference", doc: "the patient concerned" },
            DATE,
            Param { name: "action", kind: "token", doc: "C, R, U, D or E" },
        ],
        doc: "The audit trail (administrators and the medical director); search only, newest first, at most 500.",
    },
    TypeSupport {
        name: "Questionnaire",
        read: true,
        patient_data: false,
        params: &[ID, Param { name: "url", kind: "uri", doc: "the canonical URL" }],
        doc: "One per rating instrument; item text as the knowledge files hold it.",
    },
];

/// The support of `name`, or an error naming the types served.
pub fn support(name: &str) -> Result<&'static TypeSupport, FhirError> {
    TYPES.iter().find(|t| t.name == name).ok_or_else(|| FhirError::UnsupportedType(name.to_owned()))
}

/// A token: `system|code` (`Some(system)`, empty for no system), or a bare code (`None`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    /// System.
    pub system: Option<String>,
    /// Code.
    pub code: String,
}

impl Token {
    fn parse(raw: &str) -> Option<Self> {
        let t = raw.trim();
        let tok = match t.split_once('|') {
            Some((s, c)) => Token { system: Some(s.to_owned()), code: c.to_owned() },
            None => Token { system: None, code: t.to_owned() },
        };
        (!tok.code.is_empty()).then_some(tok)
    }
    /// Whether a Coding matches.
    pub fn matches(&self, coding: &Value) -> bool {
        let code = coding.get("code").and_then(Value::as_str);
        let system = coding.get("system").and_then(Value::as_str);
        code == Some(self.code.as_str())
            && match &self.system {
                None => true,
                Some(s) if s.is_empty() => system.is_none(),
                Some(s) => system == Some(s.as_str()),
            }
    }
}

/// A date comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prefix {
    /// Within the precision given.
    Eq,
    /// After.
    Gt,
    /// Before.
    Lt,
    /// On or after.
    Ge,
    /// On or before.
    Le,
}

/// A date parameter: the prefix and the interval of the value at its precision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DateParam {
    /// Comparison.
    pub prefix: Prefix,
    /// First instant of the value.
    pub lo: DateTime<Utc>,
    /// Last instant of the value (inclusive).
    pub hi: DateTime<Utc>,
}

impl DateParam {
    /// Parses `ge2026-11-01` and the like.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let t = raw.trim();
        let (prefix, rest) = match t.get(..2) {
            Some("eq") => (Prefix::Eq, &t[2..]),
            Some("gt") => (Prefix::Gt, &t[2..]),
            Some("lt") => (Prefix::Lt, &t[2..]),
            Some("ge") => (Prefix::Ge, &t[2..]),
            Some("le") => (Prefix::Le, &t[2..]),
            Some(p) if p.chars().all(|c| c.is_ascii_lowercase()) && t[2..].starts_with(|c: char| c.is_ascii_digit()) => {
                return Err(format!("prefix {p} is not supported; use eq, gt, lt, ge or le"));
            }
            _ => (Prefix::Eq, t),
        };
        let (lo, hi) = interval(rest).ok_or_else(|| {
            format!("{rest:?} is not a date; give YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ssZ, with an optional prefix eq, gt, lt, ge or le")
        })?;
        Ok(Self { prefix, lo, hi })
    }
    /// Whether an instant satisfies it.
    pub fn holds(&self, t: DateTime<Utc>) -> bool {
        match self.prefix {
            Prefix::Eq => t >= self.lo && t <= self.hi,
            Prefix::Gt => t > self.hi,
            Prefix::Lt => t < self.lo,
            Prefix::Ge => t >= self.lo,
            Prefix::Le => t <= self.hi,
        }
    }
}

fn day_start(d: NaiveDate) -> DateTime<Utc> {
    d.and_hms_opt(0, 0, 0).map(|n| n.and_utc()).unwrap_or_default()
}

/// The interval a FHIR date or dateTime value stands for.
pub fn interval(s: &str) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let s = s.trim();
    let ms = Duration::milliseconds(1);
    match s.len() {
        4 => {
            let y: i32 = s.parse().ok()?;
            let a = NaiveDate::from_ymd_opt(y, 1, 1)?;
            let b = NaiveDate::from_ymd_opt(y + 1, 1, 1)?;
            Some((day_start(a), day_start(b) - ms))
        }
        7 => {
            let a = NaiveDate::parse_from_str(&format!("{s}-01"), "%Y-%m-%d").ok()?;
            let b = a.checked_add_months(chrono::Months::new(1))?;
            Some((day_start(a), day_start(b) - ms))
        }
        10 => {
            let a = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
            Some((day_start(a), day_start(a) + Duration::days(1) - ms))
        }
        _ => {
            if let Ok(t) = DateTime::parse_from_rfc3339(s) {
                let t = t.with_timezone(&Utc);
                return Some((t, t));
            }
            let n = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M").ok()?;
            Some((n.and_utc(), n.and_utc() + Duration::minutes(1) - ms))
        }
    }
}

/// A checked search.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Search {
    /// Patient id (from `patient=Patient/{id}` or `patient={id}`).
    pub patient: Option<String>,
    /// Codes (any matches).
    pub codes: Vec<Token>,
    /// Date conditions (all must hold).
    pub dates: Vec<DateParam>,
    /// Categories (any matches).
    pub categories: Vec<Token>,
    /// `_id`.
    pub id: Option<String>,
    /// `identifier`.
    pub identifier: Option<Token>,
    /// `name`.
    pub name: Option<String>,
    /// `url`.
    pub url: Option<String>,
    /// `action`.
    pub action: Option<String>,
}

fn bad(param: &str, message: impl Into<String>) -> FhirError {
    FhirError::BadParameter { param: param.to_owned(), message: message.into() }
}

fn tokens(param: &str, raw: &str) -> Result<Vec<Token>, FhirError> {
    let out: Vec<Token> = raw.split(',').filter_map(Token::parse).collect();
    if out.is_empty() {
        return Err(bad(param, "give a code, |code or system|code"));
    }
    Ok(out)
}

/// Checks the query of a search of `type_name`: every parameter must be one the type supports,
/// with a well-formed value; patient data needs `patient`.
pub fn parse(type_name: &str, query: &[(String, String)]) -> Result<Search, FhirError> {
    let t = support(type_name)?;
    let mut s = Search::default();
    for (k, v) in query {
        if k == "_format" {
            if !["json", "application/json", "application/fhir+json"].contains(&v.as_str()) {
                return Err(bad(k, "only json (application/fhir+json) is served"));
            }
            continue;
        }
        let Some(p) = t.params.iter().find(|p| p.name == k) else {
            let names: Vec<&str> = t.params.iter().map(|p| p.name).collect();
            return Err(bad(k, format!("is not supported for {type_name}; supported: {}", names.join(", "))));
        };
        match p.name {
            "patient" => {
                let id = v.trim().strip_prefix("Patient/").unwrap_or(v.trim());
                if !crate::valid_id(id) {
                    return Err(bad(k, "must be Patient/{id} or {id}"));
                }
                if s.patient.replace(id.to_owned()).is_some() {
                    return Err(bad(k, "give one patient"));
                }
            }
            "code" => s.codes.extend(tokens(k, v)?),
            "category" => s.categories.extend(tokens(k, v)?),
            "date" => s.dates.push(DateParam::parse(v).map_err(|m| bad(k, m))?),
            "_id" => {
                if !crate::valid_id(v.trim()) {
                    return Err(bad(k, "must be a FHIR id (letters, digits, - and ., at most 64)"));
                }
                s.id = Some(v.trim().to_owned());
            }
            "identifier" => s.identifier = Some(Token::parse(v).ok_or_else(|| bad(k, "give the MRN, or urn:ketacare:mrn|{MRN}"))?),
            "name" => {
                let n = v.trim();
                if n.is_empty() || n.chars().count() > 100 {
                    return Err(bad(k, "give 1 to 100 characters of the name"));
                }
                s.name = Some(n.to_owned());
            }
            "url" => s.url = Some(v.trim().to_owned()),
            "action" => {
                let a = v.trim();
                if !["C", "R", "U", "D", "E"].contains(&a) {
                    return Err(bad(k, "must be C, R, U, D or E"));
                }
                s.action = Some(a.to_owned());
            }
            _ => return Err(bad(k, "is not supported")),
        }
    }
    if t.patient_data && type_name != "Patient" && s.patient.is_none() {
        return Err(bad("patient", format!("is required: {type_name} searches are made within one patient (patient=Patient/{{id}})")));
    }
    Ok(s)
}

/// The CodeableConcepts `code` matches on, per type.
fn concepts(r: &Value) -> Vec<&Value> {
    let key = match crate::resources::resource_type(r) {
        "Observation" | "Condition" | "AllergyIntolerance" => "code",
        "MedicationRequest" | "MedicationAdministration" | "MedicationStatement" => "medicationCodeableConcept",
        "AdverseEvent" => "event",
        "Encounter" => return r.get("type").and_then(Value::as_array).map(|a| a.iter().collect()).unwrap_or_default(),
        _ => return Vec::new(),
    };
    r.get(key).into_iter().collect()
}

/// The instant the `date` parameter compares, per type.
pub fn date_of(r: &Value) -> Option<DateTime<Utc>> {
    let at = |p: &str| r.pointer(p).and_then(Value::as_str).and_then(interval).map(|(lo, _)| lo);
    match crate::resources::resource_type(r) {
        "Observation" => at("/effectiveDateTime"),
        "Condition" => at("/onsetDateTime").or_else(|| at("/recordedDate")),
        "Encounter" => at("/period/start"),
        "QuestionnaireResponse" => at("/authored"),
        "MedicationRequest" => at("/authoredOn"),
        "MedicationAdministration" => at("/effectivePeriod/start"),
        "MedicationStatement" => at("/effectivePeriod/start").or_else(|| at("/dateAsserted")),
        "AllergyIntolerance" => at("/recordedDate"),
        "AdverseEvent" => at("/date"),
        "CarePlan" => at("/period/start").or_else(|| at("/created")),
        "Provenance" => at("/recorded"),
        "AuditEvent" => at("/recorded"),
        _ => None,
    }
}

impl Search {
    /// Whether a resource of the searched type matches the code, category, date and id
    /// conditions (the patient is applied by reading that patient only).
    pub fn matches(&self, r: &Value) -> bool {
        if let Some(id) = &self.id {
            if crate::resources::resource_id(r) != id {
                return false;
            }
        }
        if !self.codes.is_empty() {
            let codings: Vec<&Value> =
                concepts(r).into_iter().flat_map(|c| c.get("coding").and_then(Value::as_array).into_iter().flatten()).collect();
            if !self.codes.iter().any(|t| codings.iter().any(|c| t.matches(c))) {
                return false;
            }
        }
        if !self.categories.is_empty() {
            let codings: Vec<&Value> = r
                .get("category")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .flat_map(|c| c.get("coding").and_then(Value::as_array).into_iter().flatten())
                .collect();
            if !self.categories.iter().any(|t| codings.iter().any(|c| t.matches(c))) {
                return false;
            }
        }
        if !self.dates.is_empty() {
            match date_of(r) {
                Some(t) => {
                    if !self.dates.iter().all(|d| d.holds(t)) {
                        return false;
                    }
                }
                None => return false,
            }
        }
        if let Some(u) = &self.url {
            let url = r.get("url").and_then(Value::as_str).unwrap_or("");
            if url != u && url != u.split('|').next().unwrap_or("") {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect()
    }

    #[test]
    fn unknown_parameters_and_bad_values_name_the_parameter() {
        let e = parse("Observation", &q(&[("patient", "p1"), ("colour", "red")])).unwrap_err();
        assert!(
            matches!(&e, FhirError::BadParameter { param, message } if param == "colour" && message.contains("supported: patient, code, date"))
        );
        let e = parse("Observation", &q(&[("patient", "p1"), ("date", "yesterday")])).unwrap_err();
        assert!(matches!(&e, FhirError::BadParameter { param, .. } if param == "date"));
        let e = parse("Observation", &q(&[("patient", "p1"), ("date", "yesterday")])).unwrap_err();
        assert!(matches!(&e, FhirError::BadParameter { message, .. } if message.contains("YYYY-MM-DD")));
        let e = parse("Observation", &q(&[("patient", "p1"), ("date", "sa2026")])).unwrap_err();
        assert!(matches!(&e, FhirError::BadParameter { message, .. } if message.contains("prefix sa")));
        let e = parse("Observation", &q(&[("code", "8867-4")])).unwrap_err();
        assert!(matches!(&e, FhirError::BadParameter { param, .. } if param == "patient"));
        assert!(matches!(parse("Specimen", &[]), Err(FhirError::UnsupportedType(_))));
    }

    #[test]
    fn dates_compare_at_their_precision() {
        let t = |s: &str| interval(s).unwrap().0;
        let ge = DateParam::parse("ge2026-11-01").unwrap();
        let le = DateParam::parse("le2026-11").unwrap();
        assert!(ge.holds(t("2026-11-01T00:00:00Z")) && !ge.holds(t("2026-10-31T23:59:59Z")));
        assert!(le.holds(t("2026-11-30T23:59:59Z")) && !le.holds(t("2026-12-01T00:00:00Z")));
        let eq = DateParam::parse("2026-11-26").unwrap();
        assert!(eq.holds(t("2026-11-26T18:00:00Z")) && !eq.holds(t("2026-11-27T00:00:00Z")));
        assert!(DateParam::parse("gt2026").unwrap().holds(t("2027-01-01")));
    }

    #[test]
    fn codes_match_with_or_without_system() {
        let s = parse("Observation", &q(&[("patient", "Patient/p1"), ("code", "http://loinc.org|29463-7,8302-2")])).unwrap();
        assert_eq!(s.patient.as_deref(), Some("p1"));
        let w = json!({"resourceType": "Observation", "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]}});
        let h = json!({"resourceType": "Observation", "code": {"coding": [{"system": "http://loinc.org", "code": "8302-2"}]}});
        let x = json!({"resourceType": "Observation", "code": {"coding": [{"system": "http://snomed.info/sct", "code": "29463-7"}]}});
        assert!(s.matches(&w) && s.matches(&h) && !s.matches(&x));
    }
}
