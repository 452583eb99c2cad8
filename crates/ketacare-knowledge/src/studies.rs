//! Loads `knowledge/studies.toml`: the published studies the clinic's cohort is compared with.

use crate::KnowledgeError;
use ketacare_domain::evidence::{PublishedStudy, ResponseDefinition};
use rust_decimal::Decimal;
use serde::Deserialize;
use std::str::FromStr;

const FILE: &str = "studies.toml";
const TEXT: &str = include_str!("../../../knowledge/studies.toml");

#[derive(Deserialize)]
struct File {
    version: String,
    #[allow(dead_code)]
    title: String,
    study: Vec<StudyToml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StudyToml {
    key: String,
    short: String,
    citation: String,
    design: String,
    n: u64,
    population: String,
    diagnoses: Vec<String>,
    route: String,
    protocol: String,
    instruments: Vec<String>,
    response_definition: String,
    response_instrument: Option<String>,
    response_reduction_percent: Option<String>,
    response_strict: Option<bool>,
    #[serde(default)]
    response_doses_mg_per_kg: Vec<String>,
    responders: Option<u64>,
    functioning_improved: Option<u64>,
    results: String,
    source: String,
}

/// Parses the embedded `knowledge/studies.toml` (version, studies).
pub fn load_studies() -> Result<(String, Vec<PublishedStudy>), KnowledgeError> {
    let f: File = toml::from_str(TEXT).map_err(|source| KnowledgeError::Parse { file: FILE, source })?;
    let mut out: Vec<PublishedStudy> = Vec::new();
    for s in f.study {
        let bad = |problem: String| KnowledgeError::Value { file: FILE, key: s.key.clone(), problem };
        if out.iter().any(|o| o.key == s.key) {
            return Err(bad("is repeated".into()));
        }
        if s.source.trim().len() < 10 || s.citation.trim().len() < 20 {
            return Err(bad("needs its citation and source".into()));
        }
        if s.responders.is_some_and(|r| r > s.n) || s.functioning_improved.is_some_and(|r| r > s.n) {
            return Err(bad("more responders than patients".into()));
        }
        let dec = |t: &str| Decimal::from_str(t.trim()).map_err(|_| bad(format!("{t:?} is not a decimal number")));
        let response = match &s.response_reduction_percent {
            Some(p) => Some(ResponseDefinition {
                instrument: s.response_instrument.clone(),
                reduction_percent: dec(p)?,
                strict: s.response_strict.unwrap_or(false),
                doses_mg_per_kg: s.response_doses_mg_per_kg.iter().map(|d| dec(d)).collect::<Result<_, _>>()?,
            }),
            None => None,
        };
        out.push(PublishedStudy {
            key: s.key.clone(),
            short: s.short.clone(),
            citation: s.citation.clone(),
            design: s.design.clone(),
            n: s.n,
            population: s.population.clone(),
            diagnoses: s.diagnoses.clone(),
            route: s.route.clone(),
            protocol: s.protocol.clone(),
            instruments: s.instruments.clone(),
            response_text: s.response_definition.clone(),
            response,
            responders: s.responders.or(s.functioning_improved),
            results: s.results.clone(),
            source: s.source.clone(),
        });
    }
    Ok((f.version, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ketacare_domain::stats::{wilson, Z95};

    #[test]
    fn the_studies_parse_with_their_definitions_and_reported_rates() {
        let (version, studies) = load_studies().unwrap();
        assert!(!version.is_empty() && studies.len() >= 5);
        let glue = studies.iter().find(|s| s.key == "glue-2017").unwrap();
        let p = wilson(glue.responders.unwrap(), glue.n, Z95).unwrap();
        // 10 of 12: 83 % (Wilson 55-95 %).
        assert!((p.p - 10.0 / 12.0).abs() < 1e-12 && (p.lo - 0.5520).abs() < 1e-3 && (p.hi - 0.9530).abs() < 1e-3, "{p:?}");
        let taylor = studies.iter().find(|s| s.key == "taylor-2018").unwrap();
        let def = taylor.response.as_ref().unwrap();
        assert!(def.strict && def.instrument.as_deref() == Some("lsas") && def.reduction_percent == Decimal::from(35));
        assert_eq!((taylor.responders, taylor.n), (Some(6), 18), "33.33 % of 18");
    }
}
