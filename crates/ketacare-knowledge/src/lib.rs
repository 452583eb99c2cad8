//! The clinical knowledge files (`knowledge/*.toml` at the repository root), embedded in the
//! binary at build time and parsed into the domain's policy types.
//!
//! Each value in a knowledge file carries its source, and clinic-policy values are marked so the
//! UI can show them as reviewable defaults. Parsing is pure (the files are compiled in), so this
//! crate does no IO; a knowledge file that does not parse is a build-time bug caught by the tests.

pub mod dosing;
pub mod instruments;
pub mod pk;
pub mod research;
pub mod safety;
pub mod screening;
pub mod session;
pub mod studies;
pub mod wording;

use ketacare_domain::anthropometry::AnthropometryPolicy;
use ketacare_domain::assessment::TimePoint;
use ketacare_domain::coding::{CodeSystem, Coding};
use ketacare_domain::instrument::Instrument;
use ketacare_domain::patient::AgeLimits;
use ketacare_domain::record::DiagnosisChoice;
use ketacare_domain::screening::ScreeningRules;
use rust_decimal::Decimal;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::str::FromStr;

/// Raw text of the embedded knowledge files, by file name.
pub const FILES: &[(&str, &str)] = &[
    ("anthropometry.toml", include_str!("../../../knowledge/anthropometry.toml")),
    ("patients.toml", include_str!("../../../knowledge/patients.toml")),
    ("diagnoses.toml", include_str!("../../../knowledge/diagnoses.toml")),
    ("assessment-schedule.toml", include_str!("../../../knowledge/assessment-schedule.toml")),
];

const COMMON_PASSWORDS: &str = include_str!("../../../knowledge/common-passwords.txt");

/// Why a knowledge file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KnowledgeError {
    /// TOML syntax or shape.
    #[error("knowledge file {file} does not parse: {source}")]
    Parse {
        /// File name.
        file: &'static str,
        /// Parser error.
        source: toml::de::Error,
    },
    /// A value is missing or not a number.
    #[error("knowledge file {file}: value {key} {problem}")]
    Value {
        /// File name.
        file: &'static str,
        /// Key.
        key: String,
        /// What is wrong.
        problem: String,
    },
    /// Values parse but contradict each other.
    #[error("knowledge file {file} is inconsistent: {problem}")]
    Inconsistent {
        /// File name.
        file: &'static str,
        /// What is wrong.
        problem: String,
    },
}

/// One sourced value as shown to clinicians.
#[derive(Clone, Debug, Deserialize)]
pub struct SourcedValue {
    /// The value as text (exact decimal).
    pub value: String,
    /// Whether it is clinic policy (reviewable default) rather than a constant.
    #[serde(default)]
    pub policy: bool,
    /// Whether the sources do not confirm it (shown as UNVERIFIED).
    #[serde(default)]
    pub unverified: bool,
    /// Where it comes from.
    pub source: String,
}

/// A flat knowledge file: version, title and sourced values by key.
#[derive(Deserialize)]
pub(crate) struct ValueFile {
    pub(crate) version: String,
    pub(crate) title: String,
    #[serde(flatten)]
    pub(crate) values: BTreeMap<String, SourcedValue>,
}

#[derive(Deserialize)]
struct DiagnosisFile {
    version: String,
    title: String,
    diagnosis: Vec<DiagnosisEntry>,
}

#[derive(Clone, Debug, Deserialize)]
struct DiagnosisEntry {
    key: String,
    snomed: String,
    display: String,
    icd10: Option<String>,
    caveat: Option<String>,
    /// Other names that mean this diagnosis (for the screening).
    #[serde(default)]
    names: Vec<String>,
    source: String,
}

#[derive(Deserialize)]
struct ScheduleFile {
    version: String,
    title: String,
    timepoints: Vec<TimePointToml>,
    link_expiry_hours: SourcedValue,
    calendar_grace_days: SourcedValue,
}

#[derive(Deserialize)]
struct TimePointToml {
    key: String,
    label: String,
    offset_minutes: i64,
    window_before_minutes: i64,
    window_after_minutes: i64,
    source: String,
}

/// Rating-scale time points and the timings of schedules and questionnaire links.
#[derive(Clone, Debug)]
pub struct AssessmentTiming {
    /// Time points relative to a session, in order.
    pub timepoints: Vec<TimePoint>,
    /// Source of each time point, by key.
    pub timepoint_sources: BTreeMap<String, String>,
    /// How long a questionnaire link works.
    pub link_expiry_hours: i64,
    /// How long a calendar item stays due before it is overdue.
    pub calendar_grace_days: i64,
}

fn assessment_timing() -> Result<(AssessmentTiming, ValueTable), KnowledgeError> {
    const FILE: &str = "assessment-schedule.toml";
    let text = FILES.iter().find(|(n, _)| *n == FILE).map(|(_, t)| *t).unwrap_or_default();
    let f: ScheduleFile = toml::from_str(text).map_err(|source| KnowledgeError::Parse { file: FILE, source })?;
    let whole = |key: &str, v: &SourcedValue, lo: i64, hi: i64| {
        v.value.parse::<i64>().ok().filter(|n| (lo..=hi).contains(n)).ok_or_else(|| KnowledgeError::Value {
            file: FILE,
            key: key.to_owned(),
            problem: format!("must be a whole number from {lo} to {hi}"),
        })
    };
    let link_expiry_hours = whole("link_expiry_hours", &f.link_expiry_hours, 1, 24 * 30)?;
    let calendar_grace_days = whole("calendar_grace_days", &f.calendar_grace_days, 0, 60)?;
    let mut values = BTreeMap::new();
    let mut timepoint_sources = BTreeMap::new();
    let mut timepoints = Vec::new();
    for t in f.timepoints {
        if t.window_before_minutes < 0 || t.window_after_minutes < 0 || timepoints.iter().any(|p: &TimePoint| p.key == t.key) {
            return Err(KnowledgeError::Inconsistent {
                file: FILE,
                problem: format!("time point {} is duplicated or has a negative window", t.key),
            });
        }
        values.insert(
            format!("timepoint_{}", t.key),
            SourcedValue {
                value: format!(
                    "{} min after start (window {} min before, {} min after)",
                    t.offset_minutes, t.window_before_minutes, t.window_after_minutes
                ),
                policy: true,
                unverified: false,
                source: t.source.clone(),
            },
        );
        timepoint_sources.insert(t.key.clone(), t.source);
        timepoints.push(TimePoint {
            key: t.key,
            label: t.label,
            offset_minutes: t.offset_minutes,
            window_before_minutes: t.window_before_minutes,
            window_after_minutes: t.window_after_minutes,
        });
    }
    values.insert("link_expiry_hours".into(), f.link_expiry_hours);
    values.insert("calendar_grace_days".into(), f.calendar_grace_days);
    Ok((
        AssessmentTiming { timepoints, timepoint_sources, link_expiry_hours, calendar_grace_days },
        ValueTable { file: FILE, version: f.version, title: f.title, values },
    ))
}

/// One sourced, non-negative decimal of a flat knowledge file, as a domain [`Rule`].
pub(crate) fn sourced_rule(
    file: &'static str,
    values: &BTreeMap<String, SourcedValue>,
    key: &str,
) -> Result<ketacare_domain::titration::Rule, KnowledgeError> {
    let bad = |problem: String| KnowledgeError::Value { file, key: key.to_owned(), problem };
    let v = values.get(key).ok_or_else(|| bad("is missing".into()))?;
    if v.source.trim().len() < 10 {
        return Err(bad("needs its source".into()));
    }
    let value = Decimal::from_str(v.value.trim()).map_err(|_| bad(format!("{:?} is not a decimal number", v.value)))?;
    if value.is_sign_negative() {
        return Err(bad("must not be negative".into()));
    }
    Ok(ketacare_domain::titration::Rule { value, source: v.source.clone() })
}

/// A parsed knowledge file of sourced values, for display ("where does this number come from").
#[derive(Clone, Debug)]
pub struct ValueTable {
    /// File name.
    pub file: &'static str,
    /// Version string.
    pub version: String,
    /// Title.
    pub title: String,
    /// Values by key.
    pub values: BTreeMap<String, SourcedValue>,
}

impl ValueTable {
    fn decimal(&self, key: &str) -> Result<Decimal, KnowledgeError> {
        let v = self.values.get(key).ok_or_else(|| KnowledgeError::Value {
            file: self.file,
            key: key.to_owned(),
            problem: "is missing".into(),
        })?;
        Decimal::from_str(&v.value).map_err(|_| KnowledgeError::Value {
            file: self.file,
            key: key.to_owned(),
            problem: format!("is not a decimal number: {}", v.value),
        })
    }
}

fn table(file: &'static str) -> Result<ValueTable, KnowledgeError> {
    let text = FILES.iter().find(|(n, _)| *n == file).map(|(_, t)| *t).unwrap_or_default();
    let f: ValueFile = toml::from_str(text).map_err(|source| KnowledgeError::Parse { file, source })?;
    Ok(ValueTable { file, version: f.version, title: f.title, values: f.values })
}

/// Everything the application needs from the knowledge files.
#[derive(Clone, Debug)]
pub struct Knowledge {
    /// Weight and height rules.
    pub anthropometry: AnthropometryPolicy,
    /// Registration age limits.
    pub age_limits: AgeLimits,
    /// One-click diagnoses.
    pub diagnoses: Vec<DiagnosisChoice>,
    /// The value tables, for display with their sources.
    pub tables: Vec<ValueTable>,
    /// Version of the diagnosis catalogue.
    pub diagnoses_version: String,
    /// Sources of the diagnosis catalogue entries, by key.
    pub diagnosis_sources: BTreeMap<String, String>,
    /// Rating-scale time points and link/schedule timings.
    pub assessment_timing: AssessmentTiming,
    /// Rating instruments, in catalogue order.
    pub instruments: Vec<Instrument>,
    /// Screening rules: conditions, interactions, treatment resistance, eligibility limits.
    pub screening: ScreeningRules,
    /// Versions and titles of the screening files.
    pub screening_files: screening::ScreeningFiles,
    /// The ketamine drug library (concentrations, rounding, soft and hard limits by route).
    pub drug_library: dosing::DrugLibrary,
    /// Published protocols.
    pub protocols: Vec<ketacare_domain::dose::Protocol>,
    /// Rules of the titration review.
    pub titration: ketacare_domain::titration::TitrationRules,
    /// Rules of the treatment session (gate, alarms, plausibility, discharge).
    pub session: ketacare_domain::session::SessionRules,
    /// How monitors name vital signs (MDC codes).
    pub monitor_codes: ketacare_domain::session::MonitorCodes,
    /// Pharmacokinetic models, routes and concentration bands of the regimen simulator.
    pub pk: ketacare_domain::pk::PkKnowledge,
    /// Long-term safety rules.
    pub safety: ketacare_domain::safety::SafetyRules,
    common_passwords: Vec<&'static str>,
    /// Cohort analytics definitions, covariates and the published studies.
    pub research: research::ResearchKnowledge,
}

impl Knowledge {
    /// Parses the embedded knowledge files.
    pub fn load() -> Result<Self, KnowledgeError> {
        let anth = table("anthropometry.toml")?;
        let anthropometry = AnthropometryPolicy {
            weight_min_kg: anth.decimal("weight_min_kg")?,
            weight_max_kg: anth.decimal("weight_max_kg")?,
            height_min_cm: anth.decimal("height_min_cm")?,
            height_max_cm: anth.decimal("height_max_cm")?,
            pounds_per_kg: anth.decimal("pounds_per_kg")?,
            cm_per_inch: anth.decimal("cm_per_inch")?,
            unit_match_tolerance_percent: anth.decimal("unit_match_tolerance_percent")?,
            weight_change_warn_percent: anth.decimal("weight_change_warn_percent")?,
            height_change_warn_cm: anth.decimal("height_change_warn_cm")?,
            bmi_warn_below: anth.decimal("bmi_warn_below")?,
            bmi_warn_above: anth.decimal("bmi_warn_above")?,
        };
        anthropometry.validate().map_err(|problem| KnowledgeError::Inconsistent { file: "anthropometry.toml", problem })?;

        let pat = table("patients.toml")?;
        let years = |k: &str| -> Result<u32, KnowledgeError> {
            let d = pat.decimal(k)?;
            u32::try_from(d.trunc().mantissa()).map_err(|_| KnowledgeError::Value {
                file: "patients.toml",
                key: k.to_owned(),
                problem: "must be a whole number of years".into(),
            })
        };
        let age_limits = AgeLimits { minimum_years: years("minimum_age_years")?, maximum_years: years("maximum_age_years")? };
        if age_limits.minimum_years >= age_limits.maximum_years {
            return Err(KnowledgeError::Inconsistent { file: "patients.toml", problem: "minimum age must be below maximum".into() });
        }

        let dtext = FILES.iter().find(|(n, _)| *n == "diagnoses.toml").map(|(_, t)| *t).unwrap_or_default();
        let dfile: DiagnosisFile = toml::from_str(dtext).map_err(|source| KnowledgeError::Parse { file: "diagnoses.toml", source })?;
        let mut diagnoses = Vec::new();
        let mut diagnosis_sources = BTreeMap::new();
        for d in &dfile.diagnosis {
            let bad = |problem: String| KnowledgeError::Value { file: "diagnoses.toml", key: d.key.clone(), problem };
            let snomed = Coding::new(CodeSystem::SnomedCt, &d.snomed, &d.display).map_err(bad)?;
            let icd10 = d
                .icd10
                .as_deref()
                .map(|c| Coding::new(CodeSystem::Icd10Cm, c, &d.display))
                .transpose()
                .map_err(|p| KnowledgeError::Value { file: "diagnoses.toml", key: d.key.clone(), problem: p })?;
            diagnosis_sources.insert(d.key.clone(), d.source.clone());
            diagnoses.push(DiagnosisChoice { key: d.key.clone(), snomed, icd10, caveat: d.caveat.clone() });
        }
        let _ = dfile.title;
        let (assessment_timing, timing_table) = assessment_timing()?;
        let instruments = instruments::load_instruments()?;
        let diagnosis_names: BTreeMap<String, String> = dfile.diagnosis.iter().map(|d| (d.key.clone(), d.names.join(";"))).collect();
        let min_age_source = pat.values.get("minimum_age_years").map(|v| v.source.clone()).unwrap_or_default();
        let (screening, screening_files, eligibility_table) =
            screening::load_screening(&diagnoses, &diagnosis_names, (&age_limits, &min_age_source), &instruments)?;
        let (drug_library, protocols, library_tables) = dosing::load_dosing(anthropometry.cm_per_inch)?;
        let (titration, titration_table) = dosing::load_titration()?;
        let (session, session_table) = session::load_session()?;
        let (pk, pk_table) = pk::load_pk()?;
        let (safety, safety_table) = safety::load_safety()?;
        let monitor_codes = session::load_monitor_codes()?;
        let instrument_keys: Vec<String> = instruments.iter().map(|i| i.key.clone()).collect();
        let (research, research_table) = research::load_research(&instrument_keys)?;
        if !assessment_timing.timepoints.iter().any(|t| t.key == titration.response_timepoint) {
            return Err(KnowledgeError::Inconsistent {
                file: "titration.toml",
                problem: format!("response_timepoint {} is not a time point", titration.response_timepoint),
            });
        }
        for p in &protocols {
            for s in &p.steps {
                for a in &s.assessments {
                    let (inst, tp) = a.split_once('@').unwrap_or((a, ""));
                    if !instruments.iter().any(|i| i.key == inst) || !assessment_timing.timepoints.iter().any(|t| t.key == tp) {
                        return Err(KnowledgeError::Inconsistent {
                            file: "protocols.toml",
                            problem: format!("{}/{}: assessment {a} names an unknown instrument or time point", p.key, s.key),
                        });
                    }
                }
            }
        }
        let common_passwords = COMMON_PASSWORDS.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
        Ok(Self {
            anthropometry,
            age_limits,
            diagnoses,
            tables: [
                vec![anth, pat, timing_table, eligibility_table],
                library_tables,
                vec![titration_table, session_table, safety_table, pk_table, research_table],
            ]
            .concat(),
            diagnoses_version: dfile.version,
            diagnosis_sources,
            instruments,
            screening,
            screening_files,
            drug_library,
            protocols,
            titration,
            session,
            monitor_codes,
            pk,
            safety,
            research,
            assessment_timing,
            common_passwords,
        })
    }

    /// The instrument with `key`.
    pub fn instrument(&self, key: &str) -> Option<&Instrument> {
        self.instruments.iter().find(|i| i.key == key)
    }

    /// Passwords refused for accounts.
    pub fn common_passwords(&self) -> &[&'static str] {
        &self.common_passwords
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_files_parse_and_are_consistent() {
        let k = Knowledge::load().unwrap();
        assert_eq!(k.anthropometry.pounds_per_kg, Decimal::from_str("2.2046").unwrap());
        assert_eq!(k.age_limits.minimum_years, 18);
        assert!(k.diagnoses.iter().any(|d| d.key == "gad" && d.snomed.code() == "21897009"));
        assert!(k.common_passwords().contains(&"password1234"));
    }

    #[test]
    fn every_value_has_a_source() {
        let k = Knowledge::load().unwrap();
        for t in &k.tables {
            assert!(!t.version.is_empty());
            for (key, v) in &t.values {
                assert!(v.source.len() > 20, "{}:{key} needs a real source", t.file);
            }
        }
        for (key, s) in &k.diagnosis_sources {
            assert!(s.len() > 20, "diagnosis {key} needs a source");
        }
    }
}
