//! Loads `knowledge/session.toml`: the pre-dose gate, the alarm rules, the plausibility limits
//! of readings and the discharge criteria of the treatment session.

use crate::{KnowledgeError, ValueTable};
use ketacare_domain::session::{MonitorCodes, SessionRules, Vital};
use rust_decimal::Decimal;
use serde::Deserialize;

const FILE: &str = "session.toml";
const TEXT: &str = include_str!("../../../knowledge/session.toml");

/// Parses the embedded `knowledge/session.toml`.
pub fn load_session() -> Result<(SessionRules, ValueTable), KnowledgeError> {
    parse_session(TEXT)
}

/// Parses a session rules file; every value must be a decimal with a source, every range
/// ordered, and the gate below the alarm.
pub fn parse_session(text: &str) -> Result<(SessionRules, ValueTable), KnowledgeError> {
    let f: crate::ValueFile = toml::from_str(text).map_err(|source| KnowledgeError::Parse { file: FILE, source })?;
    let bad = |key: &str, problem: String| KnowledgeError::Value { file: FILE, key: key.to_owned(), problem };
    let rule = |key: &str| crate::sourced_rule(FILE, &f.values, key);
    let mut plausible = Vec::new();
    for v in Vital::ALL {
        let lo = rule(&format!("plausible_{}_min", v.code()))?.value;
        let hi = rule(&format!("plausible_{}_max", v.code()))?.value;
        if lo >= hi {
            return Err(bad(&format!("plausible_{}_min", v.code()), format!("{lo} is not below the maximum {hi}")));
        }
        plausible.push((v, lo, hi));
    }
    let rules = SessionRules {
        version: f.version.clone(),
        gate_sbp_above: rule("gate_systolic_above")?,
        gate_dbp_above: rule("gate_diastolic_above")?,
        gate_hard_sbp_above: rule("gate_hard_systolic_above")?,
        gate_hard_dbp_above: rule("gate_hard_diastolic_above")?,
        sbp_above: rule("alarm_systolic_above")?,
        dbp_above: rule("alarm_diastolic_above")?,
        sbp_rise: rule("alarm_systolic_rise")?,
        dbp_rise: rule("alarm_diastolic_rise")?,
        hr_above: rule("alarm_heart_rate_above")?,
        hr_below: rule("alarm_heart_rate_below")?,
        spo2_below: rule("alarm_spo2_below")?,
        rr_below: rule("alarm_respiratory_rate_below")?,
        rr_above: rule("alarm_respiratory_rate_above")?,
        cadss_above: rule("alarm_cadss_above")?,
        moaas_at_or_below: rule("alarm_moaas_at_or_below")?,
        moaas_critical_at_or_below: rule("alarm_moaas_critical_at_or_below")?,
        stale_seconds: rule("stale_feed_seconds")?,
        stale_bp_seconds: rule("stale_bp_seconds")?,
        escalate_seconds: rule("escalate_after_seconds")?,
        realarm_seconds: rule("realarm_after_seconds")?,
        plausible,
        discharge_minutes: rule("discharge_min_observation_minutes")?,
        discharge_sbp_within: rule("discharge_systolic_within")?,
        discharge_moaas: rule("discharge_moaas")?,
        prompt_vitals_minutes: rule("prompt_vitals_minutes")?,
        prompt_moaas_minutes: rule("prompt_moaas_minutes")?,
        prompt_cadss_minutes: rule("prompt_cadss_minutes")?,
    };
    if rules.gate_sbp_above.value >= rules.gate_hard_sbp_above.value || rules.gate_dbp_above.value >= rules.gate_hard_dbp_above.value {
        return Err(KnowledgeError::Inconsistent { file: FILE, problem: "the pre-dose gate must be below its hard ceiling".into() });
    }
    if rules.gate_sbp_above.value >= rules.sbp_above.value || rules.gate_dbp_above.value >= rules.dbp_above.value {
        return Err(KnowledgeError::Inconsistent { file: FILE, problem: "the pre-dose gate must be below the alarm limits".into() });
    }
    if rules.hr_below.value >= rules.hr_above.value || rules.rr_below.value >= rules.rr_above.value {
        return Err(KnowledgeError::Inconsistent { file: FILE, problem: "a lower alarm limit is not below the upper one".into() });
    }
    let day = Decimal::from(86_400);
    for (key, r) in [
        ("stale_feed_seconds", &rules.stale_seconds),
        ("stale_bp_seconds", &rules.stale_bp_seconds),
        ("escalate_after_seconds", &rules.escalate_seconds),
        ("realarm_after_seconds", &rules.realarm_seconds),
    ] {
        if r.value.fract() != Decimal::ZERO || r.value < Decimal::ONE || r.value > day {
            return Err(bad(key, format!("{} must be whole seconds from 1 to 86400", r.value)));
        }
    }
    for (key, r) in [
        ("prompt_vitals_minutes", &rules.prompt_vitals_minutes),
        ("prompt_moaas_minutes", &rules.prompt_moaas_minutes),
        ("prompt_cadss_minutes", &rules.prompt_cadss_minutes),
    ] {
        if r.value.fract() != Decimal::ZERO || r.value < Decimal::ONE || r.value > Decimal::from(240) {
            return Err(bad(key, format!("{} must be whole minutes from 1 to 240", r.value)));
        }
    }
    if rules.moaas_critical_at_or_below.value > rules.moaas_at_or_below.value {
        return Err(KnowledgeError::Inconsistent { file: FILE, problem: "the critical MOAA/S must not be above the alarm MOAA/S".into() });
    }
    Ok((rules, ValueTable { file: FILE, version: f.version, title: f.title, values: f.values }))
}

const CODES_FILE: &str = "monitor-codes.toml";
const CODES_TEXT: &str = include_str!("../../../knowledge/monitor-codes.toml");

/// Parses the embedded `knowledge/monitor-codes.toml`: each MDC code once, each naming a vital
/// sign Ketacare knows.
pub fn load_monitor_codes() -> Result<MonitorCodes, KnowledgeError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        version: String,
        title: String,
        source: String,
        no_value_markers: Vec<String>,
        no_value_source: String,
        code: Vec<Code>,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Code {
        mdc: String,
        refid: String,
        vital: String,
    }
    let f: File = toml::from_str(CODES_TEXT).map_err(|source| KnowledgeError::Parse { file: CODES_FILE, source })?;
    let _ = (&f.version, &f.title, &f.source, &f.no_value_source);
    let mut codes: Vec<(String, String, Vital)> = Vec::new();
    for c in f.code {
        let bad = |problem: String| KnowledgeError::Value { file: CODES_FILE, key: c.mdc.clone(), problem };
        let vital = Vital::parse(&c.vital).map_err(bad)?;
        if c.mdc.parse::<u32>().is_err() || codes.iter().any(|(m, _, _)| *m == c.mdc) {
            return Err(bad("must be a numeric MDC code listed once".into()));
        }
        codes.push((c.mdc, c.refid, vital));
    }
    Ok(MonitorCodes { codes, no_value: f.no_value_markers })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_file_loads_with_a_source_for_every_value() {
        let (r, table) = load_session().unwrap();
        assert_eq!((r.sbp_above.value, r.dbp_above.value), (Decimal::from(180), Decimal::from(110)));
        assert_eq!((r.gate_sbp_above.value, r.gate_dbp_above.value), (Decimal::from(140), Decimal::from(90)));
        assert_eq!(r.plausible.len(), 5);
        assert!(table.values.values().all(|v| v.source.len() > 10));
        // Local-policy thresholds without a published number are marked so.
        for k in ["alarm_spo2_below", "alarm_heart_rate_above", "alarm_respiratory_rate_below", "alarm_cadss_above"] {
            assert!(table.values[k].policy && table.values[k].unverified, "{k}");
        }
    }

    #[test]
    fn bad_files_are_refused_with_the_key_named() {
        let swap = |from: &str, to: &str| parse_session(&TEXT.replacen(from, to, 1)).map(|_| ()).unwrap_err().to_string();
        assert!(swap("[alarm_spo2_below]\nvalue = \"92\"", "[alarm_spo2_below]\nvalue = \"ninety\"").contains("alarm_spo2_below"));
        assert!(swap("[gate_systolic_above]\nvalue = \"140\"", "[gate_systolic_above]\nvalue = \"190\"").contains("gate"));
        assert!(swap("[plausible_spo2_min]\nvalue = \"50\"", "[plausible_spo2_min]\nvalue = \"100\"").contains("plausible_spo2_min"));
        assert!(swap("[stale_feed_seconds]\nvalue = \"60\"", "[stale_feed_seconds]\nvalue = \"0\"").contains("stale"));
        assert!(swap("[stale_feed_seconds]\nvalue = \"60\"", "[stale_feed_seconds]\nvalue = \"0.5\"").contains("whole seconds"));
        assert!(swap("[escalate_after_seconds]\nvalue = \"120\"", "[escalate_after_seconds]\nvalue = \"99999999999\"").contains("86400"));
        assert!(swap("[gate_hard_systolic_above]\nvalue = \"180\"", "[gate_hard_systolic_above]\nvalue = \"130\"").contains("hard ceiling"));
        assert!(swap("[discharge_moaas]", "[discharge_moaas_x]").contains("discharge_moaas"));
    }

    #[test]
    fn every_vital_sign_has_a_monitor_code() {
        let m = load_monitor_codes().unwrap();
        for v in Vital::ALL {
            assert!(m.codes.iter().any(|(_, _, x)| *x == v), "{v:?}");
        }
        assert_eq!(m.vital_for("150021^MDC_PRESS_BLD_NONINV_SYS^MDC"), Some(Vital::Systolic));
        assert_eq!(m.value("-100"), Ok(None));
    }
}
