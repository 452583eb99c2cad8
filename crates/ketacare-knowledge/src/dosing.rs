//! Parsing of `knowledge/drug-library.toml` (the clinic's ketamine drug library: shelf
//! concentrations, rounding, weight formulas, soft and hard limits per route) and
//! `knowledge/protocols.toml` (published protocols and their steps).

use crate::{KnowledgeError, SourcedValue, ValueTable};
use ketacare_domain::dose::{Band, CalculatorPolicy, Limits, Protocol, ProtocolStep, Route, RouteLimits, Sourced, WeightBasis};
use rust_decimal::Decimal;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::str::FromStr;

/// The embedded files.
pub const DOSING_FILES: &[(&str, &str)] = &[
    ("titration.toml", include_str!("../../../knowledge/titration.toml")),
    ("drug-library.toml", include_str!("../../../knowledge/drug-library.toml")),
    ("protocols.toml", include_str!("../../../knowledge/protocols.toml")),
];

const LIB: &str = "drug-library.toml";
const PROT: &str = "protocols.toml";

fn text(file: &str) -> &'static str {
    DOSING_FILES.iter().find(|(n, _)| *n == file).map(|(_, t)| *t).unwrap_or_default()
}

// No `deny_unknown_fields`: serde cannot combine it with `flatten`.
#[derive(Deserialize)]
struct LibraryFile {
    version: String,
    title: String,
    drug: String,
    rxnorm: String,
    rxnorm_source: String,
    concentrations: Concentrations,
    route: Vec<RouteToml>,
    #[serde(flatten)]
    values: BTreeMap<String, SourcedValue>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Concentrations {
    values: Vec<String>,
    #[serde(default)]
    policy: bool,
    source: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RouteToml {
    route: String,
    soft_min_mg_per_kg: Option<String>,
    soft_max_mg_per_kg: Option<String>,
    hard_min_mg_per_kg: Option<String>,
    hard_max_mg_per_kg: Option<String>,
    mg_per_kg_source: Option<String>,
    soft_max_total_mg: Option<String>,
    hard_max_total_mg: Option<String>,
    total_mg_source: Option<String>,
    soft_max_mg_per_kg_per_h: Option<String>,
    hard_max_mg_per_kg_per_h: Option<String>,
    rate_source: Option<String>,
    soft_min_minutes: Option<String>,
    soft_max_minutes: Option<String>,
    hard_min_minutes: Option<String>,
    hard_max_minutes: Option<String>,
    minutes_source: Option<String>,
    soft_max_7d_mg: Option<String>,
    hard_max_7d_mg: Option<String>,
    soft_max_28d_mg: Option<String>,
    hard_max_28d_mg: Option<String>,
    cumulative_source: Option<String>,
    device_mg: Option<String>,
    #[serde(default)]
    policy: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProtocolFile {
    version: String,
    title: String,
    protocol: Vec<ProtocolToml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProtocolToml {
    key: String,
    name: String,
    route: String,
    indication: String,
    source: String,
    steps: Vec<StepToml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StepToml {
    key: String,
    label: String,
    day: u32,
    mg_per_kg: Option<String>,
    fixed_mg: Option<String>,
    minutes: Option<u32>,
    repeat_every_days: Option<u32>,
    repeat_until_day: Option<u32>,
    #[serde(default)]
    assessments: Vec<String>,
    move_on: String,
}

/// The drug library as parsed: the calculator policy, the limits by route, the default basis.
#[derive(Clone, Debug)]
pub struct DrugLibrary {
    /// Version of the file.
    pub version: String,
    /// Drug name.
    pub drug: String,
    /// RxNorm code and its source.
    pub rxnorm: (String, String),
    /// Calculator policy.
    pub policy: CalculatorPolicy,
    /// Limits by route.
    pub routes: Vec<(Route, RouteLimits)>,
    /// Default weight basis (clinic policy).
    pub default_basis: WeightBasis,
    /// Basis at or above the BMI of `policy.bmi_ideal_caution` when none is chosen (clinic policy).
    pub obese_basis: WeightBasis,
    /// Source of the concentrations.
    pub concentrations_source: String,
    /// How old the measured weight may be, in days (0: measured the same day).
    pub weight_max_age_days: i64,
}

impl DrugLibrary {
    /// Parses a typed dose with this library's weight basis when none is chosen (the default,
    /// or the basis for obesity at or above the BMI threshold). `weight_range` is the plausible
    /// range in kg.
    pub fn parse_dose(
        &self,
        input: &ketacare_domain::dose::DoseInput,
        weight_range: (Decimal, Decimal),
    ) -> Result<ketacare_domain::dose::DoseRequest, ketacare_domain::validation::FieldErrors> {
        let mut req = input.parse(self.default_basis, weight_range)?;
        if input.weight_basis.trim().is_empty() {
            req.basis = ketacare_domain::dose::basis_for(
                req.weight_kg,
                req.height_cm,
                self.default_basis,
                self.obese_basis,
                self.policy.bmi_ideal_caution,
            );
        }
        Ok(req)
    }

    /// Limits for a route.
    pub fn limits(&self, route: Route) -> Option<&RouteLimits> {
        self.routes.iter().find(|(r, _)| *r == route).map(|(_, l)| l)
    }
}

fn dec(file: &'static str, key: &str, v: &str) -> Result<Decimal, KnowledgeError> {
    Decimal::from_str(v.trim()).map_err(|_| KnowledgeError::Value {
        file,
        key: key.to_owned(),
        problem: format!("is not a decimal number: {v}"),
    })
}

fn limit(v: &Option<String>, source: &Option<String>, key: &str) -> Result<Option<Sourced>, KnowledgeError> {
    match v {
        None => Ok(None),
        Some(v) => {
            let source = source.clone().filter(|s| s.len() > 20).ok_or_else(|| KnowledgeError::Value {
                file: LIB,
                key: key.to_owned(),
                problem: "needs its source beside it".into(),
            })?;
            Ok(Some(Sourced { value: dec(LIB, key, v)?, source }))
        }
    }
}

/// Parses the drug library and the protocols.
pub fn load_dosing(cm_per_inch: Decimal) -> Result<(DrugLibrary, Vec<Protocol>, Vec<ValueTable>), KnowledgeError> {
    let f: LibraryFile = toml::from_str(text(LIB)).map_err(|source| KnowledgeError::Parse { file: LIB, source })?;
    let value = |key: &str| -> Result<Decimal, KnowledgeError> {
        let v = f.values.get(key).ok_or_else(|| KnowledgeError::Value { file: LIB, key: key.to_owned(), problem: "is missing".into() })?;
        dec(LIB, key, &v.value)
    };
    let concentrations =
        f.concentrations.values.iter().map(|c| dec(LIB, "concentrations", c).map(|d| d.normalize())).collect::<Result<Vec<_>, _>>()?;
    if concentrations.is_empty() || concentrations.iter().any(|c| *c <= Decimal::ZERO) {
        return Err(KnowledgeError::Inconsistent { file: LIB, problem: "concentrations must be positive and at least one".into() });
    }
    let policy = CalculatorPolicy {
        concentrations_mg_per_ml: concentrations,
        volume_step_ml: value("volume_step_ml")?,
        rate_step_ml_per_h: value("rate_step_ml_per_h")?,
        adjusted_factor: value("adjusted_factor")?,
        devine_male_kg: value("devine_male_kg")?,
        devine_female_kg: value("devine_female_kg")?,
        devine_kg_per_inch: value("devine_kg_per_inch")?,
        cm_per_inch,
        bmi_ideal_caution: value("bmi_ideal_caution")?,
        weight_source: f.values.get("devine_male_kg").map(|v| v.source.clone()).unwrap_or_default(),
    };
    let default_basis = WeightBasis::parse(&f.values.get("default_weight_basis").map(|v| v.value.clone()).unwrap_or_default())
        .map_err(|problem| KnowledgeError::Value { file: LIB, key: "default_weight_basis".into(), problem })?;
    let obese_basis = WeightBasis::parse(&f.values.get("obese_weight_basis").map(|v| v.value.clone()).unwrap_or_default())
        .map_err(|problem| KnowledgeError::Value { file: LIB, key: "obese_weight_basis".into(), problem })?;
    let mut routes = Vec::new();
    for r in &f.route {
        let route = Route::parse(&r.route).map_err(|problem| KnowledgeError::Value { file: LIB, key: "route".into(), problem })?;
        let band = |min: &Option<String>, max: &Option<String>, src: &Option<String>, key: &str| -> Result<Band, KnowledgeError> {
            Ok(Band { min: limit(min, src, key)?, max: limit(max, src, key)? })
        };
        let lim = |soft: Band, hard: Band| Limits { soft, hard };
        let none = None;
        let limits = RouteLimits {
            mg_per_kg: lim(
                band(&r.soft_min_mg_per_kg, &r.soft_max_mg_per_kg, &r.mg_per_kg_source, "mg_per_kg")?,
                band(&r.hard_min_mg_per_kg, &r.hard_max_mg_per_kg, &r.mg_per_kg_source, "mg_per_kg")?,
            ),
            total_mg: lim(
                band(&none, &r.soft_max_total_mg, &r.total_mg_source, "total_mg")?,
                band(&none, &r.hard_max_total_mg, &r.total_mg_source, "total_mg")?,
            ),
            mg_per_kg_per_h: lim(
                band(&none, &r.soft_max_mg_per_kg_per_h, &r.rate_source, "rate")?,
                band(&none, &r.hard_max_mg_per_kg_per_h, &r.rate_source, "rate")?,
            ),
            minutes: lim(
                band(&r.soft_min_minutes, &r.soft_max_minutes, &r.minutes_source, "minutes")?,
                band(&r.hard_min_minutes, &r.hard_max_minutes, &r.minutes_source, "minutes")?,
            ),
            cumulative_7d_mg: lim(
                band(&none, &r.soft_max_7d_mg, &r.cumulative_source, "7d")?,
                band(&none, &r.hard_max_7d_mg, &r.cumulative_source, "7d")?,
            ),
            cumulative_28d_mg: lim(
                band(&none, &r.soft_max_28d_mg, &r.cumulative_source, "28d")?,
                band(&none, &r.hard_max_28d_mg, &r.cumulative_source, "28d")?,
            ),
            device_mg: r.device_mg.as_deref().map(|d| dec(LIB, "device_mg", d)).transpose()?,
        };
        // A soft band must sit inside the hard band.
        for (name, l) in [
            ("mg_per_kg", &limits.mg_per_kg),
            ("total_mg", &limits.total_mg),
            ("rate", &limits.mg_per_kg_per_h),
            ("minutes", &limits.minutes),
        ] {
            if let (Some(s), Some(h)) = (&l.soft.max, &l.hard.max) {
                if s.value > h.value {
                    return Err(KnowledgeError::Inconsistent {
                        file: LIB,
                        problem: format!("{}: soft maximum of {name} above the hard maximum", r.route),
                    });
                }
            }
            if let (Some(s), Some(h)) = (&l.soft.min, &l.hard.min) {
                if s.value < h.value {
                    return Err(KnowledgeError::Inconsistent {
                        file: LIB,
                        problem: format!("{}: soft minimum of {name} below the hard minimum", r.route),
                    });
                }
            }
        }
        let _ = r.policy;
        routes.push((route, limits));
    }
    let mut values = f.values.clone();
    values.insert(
        "concentrations_mg_per_ml".into(),
        SourcedValue {
            value: f.concentrations.values.join(", "),
            policy: f.concentrations.policy,
            unverified: false,
            source: f.concentrations.source.clone(),
        },
    );
    let library = DrugLibrary {
        version: f.version.clone(),
        drug: f.drug.clone(),
        rxnorm: (f.rxnorm.clone(), f.rxnorm_source.clone()),
        policy,
        routes,
        default_basis,
        obese_basis,
        concentrations_source: f.concentrations.source.clone(),
        weight_max_age_days: i64::try_from(value("weight_max_age_days")?.trunc().mantissa()).unwrap_or(0),
    };

    let pf: ProtocolFile = toml::from_str(text(PROT)).map_err(|source| KnowledgeError::Parse { file: PROT, source })?;
    let mut protocols = Vec::new();
    for p in pf.protocol {
        protocols.push(protocol_from(p)?);
    }
    let _ = pf.title;
    let _ = pf.version;
    Ok((library, protocols, vec![ValueTable { file: LIB, version: f.version, title: f.title, values }]))
}

fn protocol_from(p: ProtocolToml) -> Result<Protocol, KnowledgeError> {
    {
        let route = Route::parse(&p.route).map_err(|problem| KnowledgeError::Value { file: PROT, key: p.key.clone(), problem })?;
        if p.source.len() < 20 {
            return Err(KnowledgeError::Value { file: PROT, key: p.key, problem: "needs its source".into() });
        }
        let mut steps = Vec::new();
        for s in p.steps {
            let mg_per_kg = s.mg_per_kg.as_deref().map(|v| dec(PROT, &s.key, v)).transpose()?;
            let fixed_mg = s.fixed_mg.as_deref().map(|v| dec(PROT, &s.key, v)).transpose()?;
            if (route == Route::In) != fixed_mg.is_some() || (route != Route::In) != mg_per_kg.is_some() {
                return Err(KnowledgeError::Inconsistent {
                    file: PROT,
                    problem: format!("{}/{}: intranasal steps have fixed_mg, others mg_per_kg", p.key, s.key),
                });
            }
            if s.day > 3650
                || s.repeat_until_day.is_some_and(|u| u > 3650 || u < s.day)
                || s.repeat_every_days == Some(0)
                || s.minutes.is_some_and(|m| m == 0 || m > 1440)
            {
                return Err(KnowledgeError::Inconsistent {
                    file: PROT,
                    problem: format!(
                        "{}/{}: days must be 0-3650 (repeat_until_day not before day), repeats every 1 day or more, minutes 1-1440",
                        p.key, s.key
                    ),
                });
            }
            if route.infused() != s.minutes.is_some() {
                return Err(KnowledgeError::Inconsistent {
                    file: PROT,
                    problem: format!("{}/{}: IV steps (only) have minutes", p.key, s.key),
                });
            }
            steps.push(ProtocolStep {
                key: s.key,
                label: s.label,
                day: s.day,
                mg_per_kg,
                fixed_mg,
                minutes: s.minutes,
                repeat_every_days: s.repeat_every_days,
                repeat_until_day: s.repeat_until_day,
                assessments: s.assessments,
                move_on: s.move_on,
            });
        }
        if steps.is_empty() {
            return Err(KnowledgeError::Inconsistent { file: PROT, problem: format!("{}: a protocol needs at least one step", p.key) });
        }
        Ok(Protocol { key: p.key, name: p.name, route, indication: p.indication, source: p.source, steps })
    }
}

/// Parses one protocol written by a clinic (the same TOML as `knowledge/protocols.toml`, one
/// `[[protocol]]` table), naming what is wrong.
pub fn parse_clinic_protocol(text: &str) -> Result<Protocol, ketacare_domain::validation::FieldErrors> {
    use ketacare_domain::validation::FieldErrors;
    let bad = |m: String| FieldErrors::single("content", m);
    if text.len() > 64 * 1024 {
        return Err(bad("must be at most 64 KiB".into()));
    }
    let f: ProtocolFile = toml::from_str(&format!("version = \"clinic\"\ntitle = \"clinic\"\n{text}"))
        .map_err(|e| bad(format!("is not a valid protocol (TOML as in knowledge/protocols.toml): {}", e.message())))?;
    let mut ps = f.protocol.into_iter();
    let (Some(p), None) = (ps.next(), ps.next()) else { return Err(bad("must hold exactly one [[protocol]] table".into())) };
    protocol_from(p).map_err(|e| bad(e.to_string().replace("knowledge file protocols.toml", "the protocol")))
}

/// Parses `knowledge/titration.toml`.
pub fn load_titration() -> Result<(ketacare_domain::titration::TitrationRules, ValueTable), KnowledgeError> {
    use ketacare_domain::titration::{Rule, TitrationRules};
    const FILE: &str = "titration.toml";
    #[derive(Deserialize)]
    struct File {
        version: String,
        title: String,
        #[serde(flatten)]
        values: BTreeMap<String, SourcedValue>,
    }
    let f: File = toml::from_str(text(FILE)).map_err(|source| KnowledgeError::Parse { file: FILE, source })?;
    let get = |key: &str| -> Result<&SourcedValue, KnowledgeError> {
        f.values.get(key).ok_or_else(|| KnowledgeError::Value { file: FILE, key: key.to_owned(), problem: "is missing".into() })
    };
    let rule = |key: &str| -> Result<Rule, KnowledgeError> {
        let v = get(key)?;
        Ok(Rule { value: dec(FILE, key, &v.value)?, source: v.source.clone() })
    };
    let rules = TitrationRules {
        response_percent: rule("response_reduction_percent")?,
        response_timepoint: get("response_timepoint")?.value.clone(),
        benefit_days_weekly: rule("benefit_days_weekly")?,
        sbp_above: rule("hypertension_systolic_above")?,
        dbp_above: rule("hypertension_diastolic_above")?,
        moaas_unresponsive: rule("moaas_unresponsive")?,
        gap_days: rule("gap_days_repeat")?,
        maintenance_days: rule("maintenance_max_days")?,
        maintenance_from_mg_per_kg: rule("maintenance_from_mg_per_kg")?,
    };
    Ok((rules, ValueTable { file: FILE, version: f.version, title: f.title, values: f.values }))
}
