//! Parsing of `knowledge/screening/*.toml` (conditions, interactions, eligibility) into the
//! domain's [`ScreeningRules`].

use crate::{KnowledgeError, SourcedValue, ValueTable};
use ketacare_domain::instrument::Instrument;
use ketacare_domain::patient::AgeLimits;
use ketacare_domain::record::DiagnosisChoice;
use ketacare_domain::screening::{
    ConditionRule, DiagnosisName, DrugName, Grade, InclusionRule, InteractionRule, Limit, LiverLimits, ResistanceDefinition, ScreeningRules,
};
use rust_decimal::Decimal;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::str::FromStr;

/// The embedded screening files, by file name.
pub const SCREENING_FILES: &[(&str, &str)] = &[
    ("screening/conditions.toml", include_str!("../../../knowledge/screening/conditions.toml")),
    ("screening/interactions.toml", include_str!("../../../knowledge/screening/interactions.toml")),
    ("screening/eligibility.toml", include_str!("../../../knowledge/screening/eligibility.toml")),
];

fn text(file: &str) -> &'static str {
    SCREENING_FILES.iter().find(|(n, _)| *n == file).map(|(_, t)| *t).unwrap_or_default()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConditionsFile {
    version: String,
    title: String,
    condition: Vec<ConditionToml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConditionToml {
    key: String,
    label: String,
    #[serde(default)]
    synonyms: Vec<String>,
    grade: String,
    grade_if_controlled: Option<String>,
    #[serde(default)]
    policy: bool,
    #[serde(default)]
    unverified: bool,
    conflict: Option<String>,
    effect: String,
    action: String,
    source: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InteractionsFile {
    version: String,
    title: String,
    interaction: Vec<InteractionToml>,
    no_interaction: NoInteractionToml,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InteractionToml {
    key: String,
    class: String,
    grade: String,
    effect: String,
    action: String,
    source: String,
    #[serde(default)]
    unverified: bool,
    conflict: Option<String>,
    members: Vec<MemberToml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoInteractionToml {
    source: String,
    members: Vec<MemberToml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberToml {
    name: String,
    rxnorm: Option<String>,
    #[serde(default)]
    brands: Vec<String>,
    #[serde(default)]
    synonyms: Vec<String>,
}

// No `deny_unknown_fields`: serde cannot combine it with `flatten`; unknown values would be
// caught by `value()` asking for each key by name.
#[derive(Deserialize)]
struct EligibilityFile {
    version: String,
    title: String,
    default_resistance: String,
    resistance: Vec<ResistanceToml>,
    inclusion: Vec<InclusionToml>,
    #[serde(flatten)]
    values: BTreeMap<String, SourcedValue>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResistanceToml {
    key: String,
    label: String,
    min_pharmacological_failures: usize,
    min_psychotherapy_failures: usize,
    failure_reduction_below_percent: String,
    failure_instruments: Vec<String>,
    cgi_i_failure_above: Option<u32>,
    psychotherapy_names: Vec<String>,
    #[serde(default)]
    policy: bool,
    source: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InclusionToml {
    key: String,
    label: String,
    diagnoses: Vec<String>,
    instrument: String,
    greater_than: String,
    #[serde(default)]
    policy: bool,
    source: String,
}

/// Versions and titles of the screening files, for display.
#[derive(Clone, Debug)]
pub struct ScreeningFiles {
    /// `(file, version, title)` for each file.
    pub files: Vec<(&'static str, String, String)>,
}

fn grade(file: &'static str, key: &str, g: &str) -> Result<Grade, KnowledgeError> {
    Grade::parse(g).map_err(|problem| KnowledgeError::Value { file, key: key.to_owned(), problem })
}

fn member(m: MemberToml) -> DrugName {
    DrugName {
        name: m.name.trim().to_lowercase(),
        rxnorm: m.rxnorm.map(|r| r.trim().to_owned()).filter(|r| !r.is_empty()),
        brands: m.brands,
        synonyms: m.synonyms.into_iter().map(|s| s.to_lowercase()).collect(),
    }
}

/// Parses the screening files. `diagnoses` and `age` come from the other knowledge files;
/// the C-SSRS and PHQ-9 rule sources from the instrument definitions.
pub fn load_screening(
    diagnoses: &[DiagnosisChoice],
    diagnosis_names: &BTreeMap<String, String>,
    age: (&AgeLimits, &str),
    instruments: &[Instrument],
) -> Result<(ScreeningRules, ScreeningFiles, ValueTable), KnowledgeError> {
    const CF: &str = "screening/conditions.toml";
    const IF: &str = "screening/interactions.toml";
    const EF: &str = "screening/eligibility.toml";
    let cf: ConditionsFile = toml::from_str(text(CF)).map_err(|source| KnowledgeError::Parse { file: CF, source })?;
    let inf: InteractionsFile = toml::from_str(text(IF)).map_err(|source| KnowledgeError::Parse { file: IF, source })?;
    let ef: EligibilityFile = toml::from_str(text(EF)).map_err(|source| KnowledgeError::Parse { file: EF, source })?;

    let mut conditions = Vec::new();
    for c in cf.condition {
        conditions.push(ConditionRule {
            grade: grade(CF, &c.key, &c.grade)?,
            grade_if_controlled: c.grade_if_controlled.as_deref().map(|g| grade(CF, &c.key, g)).transpose()?,
            key: c.key,
            label: c.label,
            synonyms: c.synonyms.into_iter().map(|s| s.to_lowercase()).collect(),
            policy: c.policy,
            unverified: c.unverified,
            conflict: c.conflict,
            effect: c.effect,
            action: c.action,
            source: c.source,
        });
    }
    let mut interactions = Vec::new();
    for i in inf.interaction {
        interactions.push(InteractionRule {
            grade: grade(IF, &i.key, &i.grade)?,
            key: i.key,
            class: i.class,
            effect: i.effect,
            action: i.action,
            source: i.source,
            unverified: i.unverified,
            conflict: i.conflict,
            members: i.members.into_iter().map(member).collect(),
        });
    }

    let value = |key: &str| -> Result<Limit, KnowledgeError> {
        let v = ef.values.get(key).ok_or_else(|| KnowledgeError::Value { file: EF, key: key.to_owned(), problem: "is missing".into() })?;
        let d = Decimal::from_str(&v.value).map_err(|_| KnowledgeError::Value {
            file: EF,
            key: key.to_owned(),
            problem: format!("is not a decimal number: {}", v.value),
        })?;
        Ok(Limit { value: d, source: v.source.clone(), policy: v.policy, unverified: v.unverified })
    };
    let min_weeks_p = value("min_weeks_pharmacological")?;
    let min_weeks_s = value("min_weeks_psychotherapy")?;
    let mut resistance = Vec::new();
    for r in ef.resistance {
        let pct = Decimal::from_str(&r.failure_reduction_below_percent).map_err(|_| KnowledgeError::Value {
            file: EF,
            key: r.key.clone(),
            problem: "failure_reduction_below_percent is not a number".into(),
        })?;
        resistance.push(ResistanceDefinition {
            key: r.key,
            label: r.label,
            min_pharmacological_failures: r.min_pharmacological_failures,
            min_psychotherapy_failures: r.min_psychotherapy_failures,
            failure_reduction_below_percent: pct,
            failure_instruments: r.failure_instruments,
            cgi_i_failure_above: r.cgi_i_failure_above.map(Decimal::from),
            psychotherapy_names: r.psychotherapy_names.into_iter().map(|s| s.to_lowercase()).collect(),
            min_weeks_pharmacological: min_weeks_p.value,
            min_weeks_psychotherapy: min_weeks_s.value,
            policy: r.policy,
            source: r.source,
        });
    }
    let mut inclusion = Vec::new();
    for r in ef.inclusion {
        let gt = Decimal::from_str(&r.greater_than).map_err(|_| KnowledgeError::Value {
            file: EF,
            key: r.key.clone(),
            problem: "greater_than is not a number".into(),
        })?;
        if !instruments.iter().any(|i| i.key == r.instrument) {
            return Err(KnowledgeError::Inconsistent {
                file: EF,
                problem: format!("inclusion {}: unknown instrument {}", r.key, r.instrument),
            });
        }
        for d in &r.diagnoses {
            if !diagnoses.iter().any(|c| &c.key == d) {
                return Err(KnowledgeError::Inconsistent { file: EF, problem: format!("inclusion {}: unknown diagnosis {d}", r.key) });
            }
        }
        let _ = r.policy;
        inclusion.push(InclusionRule {
            key: r.key,
            label: r.label,
            diagnoses: r.diagnoses,
            instrument: r.instrument,
            greater_than: gt,
            source: r.source,
        });
    }
    let names = diagnoses
        .iter()
        .map(|d| {
            let mut matches = vec![d.key.clone(), d.key.replace('_', " "), d.snomed.code().to_owned(), d.snomed.display().to_lowercase()];
            if let Some(i) = &d.icd10 {
                matches.push(i.code().to_lowercase());
            }
            if let Some(extra) = diagnosis_names.get(&d.key) {
                matches.extend(extra.split(';').map(|s| s.trim().to_lowercase()).filter(|s| !s.is_empty()));
            }
            DiagnosisName { key: d.key.clone(), display: d.snomed.display().to_owned(), matches }
        })
        .collect();
    let flag_source = |inst: &str| -> String {
        instruments.iter().find(|i| i.key == inst).and_then(|i| i.flags.first()).map(|f| f.source.clone()).unwrap_or_default()
    };
    let versions = format!("conditions {} · interactions {} · eligibility {}", cf.version, inf.version, ef.version);
    let rules = ScreeningRules {
        version: versions,
        conditions,
        interactions,
        no_interaction: inf.no_interaction.members.into_iter().map(member).collect(),
        no_interaction_source: inf.no_interaction.source,
        resistance,
        resistance_in_force: ef.default_resistance,
        inclusion,
        diagnoses: names,
        minimum_age: Limit { value: Decimal::from(age.0.minimum_years), source: age.1.to_owned(), policy: true, unverified: false },
        bp_exclude: (value("bp_exclude_systolic_above")?, value("bp_exclude_diastolic_above")?),
        bp_caution: (value("bp_caution_systolic_above")?, value("bp_caution_diastolic_above")?),
        bp_max_age_days: value("bp_max_age_days")?,
        liver_uln: LiverLimits {
            alt: value("alt_uln_u_per_l")?,
            ast: value("ast_uln_u_per_l")?,
            alp: value("alp_uln_u_per_l")?,
            bilirubin: value("bilirubin_uln_umol_per_l")?,
        },
        liver_review_multiple: value("liver_review_above_uln_multiple")?,
        liver_max_age_days: value("liver_tests_max_age_days")?,
        cssrs_source: flag_source("cssrs_screener"),
        phq9_source: flag_source("phq9"),
        instrument_names: instruments
            .iter()
            .map(|i| (i.key.clone(), i.name.clone()))
            .chain([("bai".to_owned(), "BAI".to_owned()), ("cgi_i".to_owned(), "CGI-I".to_owned())])
            .collect(),
    };
    rules.check().map_err(|problem| KnowledgeError::Inconsistent { file: CF, problem })?;
    let files = ScreeningFiles {
        files: vec![(CF, cf.version, cf.title), (IF, inf.version, inf.title), (EF, ef.version.clone(), ef.title.clone())],
    };
    Ok((rules, files, ValueTable { file: EF, version: ef.version, title: ef.title, values: ef.values }))
}
