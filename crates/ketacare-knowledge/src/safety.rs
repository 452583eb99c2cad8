//! Loads `knowledge/safety.toml`: the long-term safety rules (tolerance and misuse signals,
//! bladder and liver thresholds, test and review intervals).

use crate::{KnowledgeError, ValueTable};
use ketacare_domain::safety::SafetyRules;
use rust_decimal::Decimal;

const FILE: &str = "safety.toml";
const TEXT: &str = include_str!("../../../knowledge/safety.toml");

/// Parses the embedded `knowledge/safety.toml`.
pub fn load_safety() -> Result<(SafetyRules, ValueTable), KnowledgeError> {
    parse_safety(TEXT)
}

/// Parses a safety rules file; every value must be a non-negative decimal with its source.
pub fn parse_safety(text: &str) -> Result<(SafetyRules, ValueTable), KnowledgeError> {
    let f: crate::ValueFile = toml::from_str(text).map_err(|source| KnowledgeError::Parse { file: FILE, source })?;
    let bad = |key: &str, problem: String| KnowledgeError::Value { file: FILE, key: key.to_owned(), problem };
    let rule = |key: &str| crate::sourced_rule(FILE, &f.values, key);
    let codes = f.values.get("substance_use_codes").ok_or_else(|| bad("substance_use_codes", "is missing".into()))?;
    let rules = SafetyRules {
        version: f.version.clone(),
        escalation_window_doses: rule("escalation_window_doses")?,
        escalation_percent: rule("escalation_percent")?,
        benefit_improvement_points: rule("benefit_improvement_points")?,
        interval_shortening_percent: rule("interval_shortening_percent")?,
        benefit_days_drop: rule("benefit_days_drop")?,
        early_requests_28d: rule("early_requests_28d")?,
        cadss_decline_points: rule("cadss_decline_points")?,
        craving_at_or_above: rule("craving_at_or_above")?,
        substance_lookback_days: rule("substance_lookback_days")?,
        substance_use_snomed: codes.value.split_whitespace().map(str::to_owned).collect(),
        icsi_rise_points: rule("icsi_rise_points")?,
        icsi_at_or_above: rule("icsi_at_or_above")?,
        icsi_interval_days: rule("icsi_interval_days")?,
        liver_interval_days: rule("liver_interval_days")?,
        liver_repeat_days: rule("liver_repeat_days")?,
        alt_review_multiple: rule("alt_review_multiple")?,
        alp_review_multiple: rule("alp_review_multiple")?,
        ggt_review_multiple: rule("ggt_review_multiple")?,
        bilirubin_review_multiple: rule("bilirubin_review_multiple")?,
        r_hepatocellular: rule("r_hepatocellular")?,
        r_cholestatic: rule("r_cholestatic")?,
        review_interval_days: rule("review_interval_days")?,
    };
    if rules.r_cholestatic.value >= rules.r_hepatocellular.value {
        return Err(KnowledgeError::Inconsistent { file: FILE, problem: "r_cholestatic must be below r_hepatocellular".into() });
    }
    if rules.escalation_window_doses.value < Decimal::ONE || rules.review_interval_days.value < Decimal::ONE {
        return Err(KnowledgeError::Inconsistent {
            file: FILE,
            problem: "escalation_window_doses and review_interval_days must be at least 1".into(),
        });
    }
    Ok((rules, ValueTable { file: FILE, version: f.version, title: f.title, values: f.values }))
}
