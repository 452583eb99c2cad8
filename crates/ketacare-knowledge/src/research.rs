//! Loads `knowledge/research.toml` (definitions of the cohort analytics and the research
//! covariates) together with `knowledge/studies.toml` (the published studies).

use crate::{KnowledgeError, SourcedValue, ValueTable};
use ketacare_domain::cohort::CovariateDef;
use ketacare_domain::evidence::PublishedStudy;
use rust_decimal::Decimal;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::str::FromStr;

const FILE: &str = "research.toml";
const TEXT: &str = include_str!("../../../knowledge/research.toml");

/// What the cohort analytics take from the knowledge files.
#[derive(Clone, Debug)]
pub struct ResearchKnowledge {
    /// Anxiety scales in order of preference for a patient's primary outcome.
    pub primary_scales: Vec<String>,
    /// Functioning and quality-of-life scales.
    pub functioning_scales: Vec<String>,
    /// Dissociation scale.
    pub dissociation_scale: String,
    /// Small-numbers threshold.
    pub small_numbers_below: u64,
    /// Normal quantile of the intervals.
    pub z: f64,
    /// Covariates and biomarkers.
    pub covariates: Vec<CovariateDef>,
    /// Baseline PHQ-9 at or above which depression counts as comorbid when not recorded.
    pub phq9_depression_at_least: Decimal,
    /// The published studies.
    pub studies: Vec<PublishedStudy>,
    /// Version of the studies file.
    pub studies_version: String,
}

#[derive(Deserialize)]
struct File {
    version: String,
    title: String,
    primary_scales: SourcedValue,
    functioning_scales: SourcedValue,
    dissociation_scale: SourcedValue,
    relapse: SourcedValue,
    small_numbers_below: SourcedValue,
    confidence_percent: SourcedValue,
    covariate: Vec<CovariateToml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CovariateToml {
    key: String,
    label: String,
    unit: Option<String>,
    system: String,
    code: String,
    #[serde(default)]
    cuts: Vec<String>,
    #[serde(default)]
    at_most: bool,
    #[serde(default)]
    labels: Vec<String>,
    phq9_at_least: Option<String>,
    source: String,
}

fn list(v: &SourcedValue) -> Vec<String> {
    v.value.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect()
}

/// Parses the research definitions and the studies; checks every scale named is an instrument.
pub fn load_research(instrument_keys: &[String]) -> Result<(ResearchKnowledge, ValueTable), KnowledgeError> {
    let f: File = toml::from_str(TEXT).map_err(|source| KnowledgeError::Parse { file: FILE, source })?;
    let bad = |key: &str, problem: String| KnowledgeError::Value { file: FILE, key: key.to_owned(), problem };
    let primary_scales = list(&f.primary_scales);
    let functioning_scales = list(&f.functioning_scales);
    let dissociation_scale = f.dissociation_scale.value.trim().to_owned();
    for k in primary_scales.iter().chain(&functioning_scales).chain(std::iter::once(&dissociation_scale)) {
        if !instrument_keys.contains(k) {
            return Err(bad(k, "is not an instrument of knowledge/instruments".into()));
        }
    }
    let small_numbers_below = f
        .small_numbers_below
        .value
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|n| (1..=1000).contains(n))
        .ok_or_else(|| bad("small_numbers_below", "must be a whole number from 1 to 1000".into()))?;
    let z = match f.confidence_percent.value.trim() {
        "95" => ketacare_domain::stats::Z95,
        other => return Err(bad("confidence_percent", format!("{other:?}: only 95 is supported"))),
    };
    let mut covariates: Vec<CovariateDef> = Vec::new();
    let mut phq9 = None;
    for c in f.covariate {
        if covariates.iter().any(|x| x.key == c.key) {
            return Err(bad(&c.key, "is repeated".into()));
        }
        if c.source.trim().len() < 10 {
            return Err(bad(&c.key, "needs its source".into()));
        }
        let cuts: Vec<Decimal> = c
            .cuts
            .iter()
            .map(|t| Decimal::from_str(t.trim()).map_err(|_| bad(&c.key, format!("cut point {t:?} is not a decimal number"))))
            .collect::<Result<_, _>>()?;
        if cuts.windows(2).any(|w| w[0] >= w[1]) {
            return Err(bad(&c.key, "cut points must ascend".into()));
        }
        if !c.labels.is_empty() && c.labels.len() != cuts.len() + 1 {
            return Err(bad(&c.key, "needs one label more than cut points".into()));
        }
        if let Some(p) = &c.phq9_at_least {
            phq9 = Some(Decimal::from_str(p.trim()).map_err(|_| bad(&c.key, format!("phq9_at_least {p:?} is not a decimal number")))?);
        }
        covariates.push(CovariateDef {
            key: c.key,
            label: c.label,
            unit: c.unit,
            system: c.system,
            code: c.code,
            cuts,
            at_most: c.at_most,
            labels: c.labels,
            source: c.source,
        });
    }
    let phq9_depression_at_least = phq9.ok_or_else(|| bad("comorbid_depression", "needs phq9_at_least".into()))?;
    let (studies_version, studies) = crate::studies::load_studies()?;
    let mut values = BTreeMap::new();
    values.insert("primary_scales".into(), f.primary_scales);
    values.insert("functioning_scales".into(), f.functioning_scales);
    values.insert("dissociation_scale".into(), f.dissociation_scale);
    values.insert("relapse".into(), f.relapse);
    values.insert("small_numbers_below".into(), f.small_numbers_below);
    values.insert("confidence_percent".into(), f.confidence_percent);
    for c in &covariates {
        let cuts =
            if c.cuts.is_empty() { "yes/no".to_owned() } else { c.cuts.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ") };
        values.insert(
            format!("covariate_{}", c.key),
            SourcedValue {
                value: format!("{} ({} {}); strata {cuts}", c.label, c.system, c.code),
                policy: false,
                unverified: false,
                source: c.source.clone(),
            },
        );
    }
    Ok((
        ResearchKnowledge {
            primary_scales,
            functioning_scales,
            dissociation_scale,
            small_numbers_below,
            z,
            covariates,
            phq9_depression_at_least,
            studies,
            studies_version,
        },
        ValueTable { file: FILE, version: f.version, title: f.title, values },
    ))
}
