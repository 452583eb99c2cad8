//! Loads `knowledge/pk-models.toml`: the disposition models, the absorption defaults of the
//! routes, the illustrative effect-site rate, the conversions, interacting medications and the
//! concentration bands of the regimen simulator.

use crate::{KnowledgeError, SourcedValue, ValueTable};
use ketacare_domain::pk::model::{Analyte, Evidence, Micro, ModelSpec, Parameters, Scaled};
use ketacare_domain::pk::regimen::{PkRoute, Ranged, RouteSpec};
use ketacare_domain::pk::{ConcentrationBand, Interaction, PkKnowledge};
use serde::Deserialize;
use std::collections::BTreeMap;

const FILE: &str = "pk-models.toml";
const TEXT: &str = include_str!("../../../knowledge/pk-models.toml");

#[derive(Deserialize)]
struct File {
    version: String,
    title: String,
    effect_site: EffectSite,
    conversions: Conversions,
    uncertainty_band: BandPolicy,
    model: Vec<ModelToml>,
    route: Vec<RouteToml>,
    interaction: Vec<InteractionToml>,
    band: Vec<BandToml>,
}

#[derive(Deserialize)]
struct EffectSite {
    ke0_per_min: String,
    ke0_low: String,
    ke0_high: String,
    evidence: String,
    source: String,
}

#[derive(Deserialize)]
struct Conversions {
    hydrochloride_to_base: String,
    hydrochloride_source: String,
    racemate_s_fraction: String,
    racemate_source: String,
}

#[derive(Deserialize)]
struct BandPolicy {
    subjects: String,
    seed: String,
    #[serde(default)]
    policy: bool,
    source: String,
}

#[derive(Deserialize)]
struct ScaledToml {
    value: String,
    exponent: String,
    bsv_cv: Option<String>,
}

#[derive(Deserialize)]
struct ModelToml {
    id: String,
    name: String,
    analyte: String,
    sampling: String,
    population: String,
    adult_population: bool,
    weight_range_kg: [String; 2],
    age_range_years: [String; 2],
    structure: String,
    evidence: String,
    citation: String,
    notes: String,
    // per-kg micro constants
    v1_l_per_kg: Option<String>,
    k10: Option<String>,
    k12: Option<String>,
    k21: Option<String>,
    k13: Option<String>,
    k31: Option<String>,
    // allometric
    reference_kg: Option<String>,
    v1: Option<ScaledToml>,
    cl: Option<ScaledToml>,
    v2: Option<ScaledToml>,
    q2: Option<ScaledToml>,
    v3: Option<ScaledToml>,
    q3: Option<ScaledToml>,
}

#[derive(Deserialize)]
struct RouteToml {
    route: String,
    f: String,
    f_low: String,
    f_high: String,
    absorption_half_life_min: Option<String>,
    half_life_low_min: Option<String>,
    half_life_high_min: Option<String>,
    ka_per_hour: Option<String>,
    ka_low_per_hour: Option<String>,
    ka_high_per_hour: Option<String>,
    evidence: String,
    source: String,
    caveat: Option<String>,
}

#[derive(Deserialize)]
struct InteractionToml {
    class: String,
    names: Vec<String>,
    effect: String,
    source: String,
}

#[derive(Deserialize)]
struct BandToml {
    low_ng_per_ml: String,
    high_ng_per_ml: Option<String>,
    label: String,
    source: String,
}

/// Parses the embedded `knowledge/pk-models.toml`.
pub fn load_pk() -> Result<(PkKnowledge, ValueTable), KnowledgeError> {
    parse_pk(TEXT)
}

fn bad(key: &str, problem: impl Into<String>) -> KnowledgeError {
    KnowledgeError::Value { file: FILE, key: key.to_owned(), problem: problem.into() }
}

fn num(key: &str, text: &str) -> Result<f64, KnowledgeError> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .ok_or_else(|| bad(key, format!("{text:?} is not a number of 0 or more")))
}

fn positive(key: &str, text: &str) -> Result<f64, KnowledgeError> {
    let v = num(key, text)?;
    if v > 0.0 {
        Ok(v)
    } else {
        Err(bad(key, "must be above 0"))
    }
}

fn ranged(key: &str, value: f64, low: f64, high: f64) -> Result<Ranged, KnowledgeError> {
    if !(low <= value && value <= high) {
        return Err(bad(key, format!("default {value} must lie within its range {low}-{high}")));
    }
    Ok(Ranged { value, low, high })
}

fn evidence(key: &str, text: &str) -> Result<Evidence, KnowledgeError> {
    Evidence::parse(text).ok_or_else(|| bad(key, format!("evidence {text:?} must be verified, code, secondary or assumed")))
}

fn scaled(key: &str, s: &Option<ScaledToml>) -> Result<Option<Scaled>, KnowledgeError> {
    let Some(s) = s else { return Ok(None) };
    let cv = s.bsv_cv.as_deref().map(|c| num(&format!("{key}.bsv_cv"), c)).transpose()?;
    Ok(Some(Scaled {
        value: positive(&format!("{key}.value"), &s.value)?,
        exponent: num(&format!("{key}.exponent"), &s.exponent)?,
        bsv_cv: cv,
    }))
}

/// Parses a models file; every model must give a stable solution at 70 kg and every route its
/// absorption either as a half-life or as ka.
pub fn parse_pk(text: &str) -> Result<(PkKnowledge, ValueTable), KnowledgeError> {
    let f: File = toml::from_str(text).map_err(|source| KnowledgeError::Parse { file: FILE, source })?;
    let mut values: BTreeMap<String, SourcedValue> = BTreeMap::new();
    let mut show = |key: String, value: String, policy: bool, unverified: bool, source: &str| {
        values.insert(key, SourcedValue { value, policy, unverified, source: source.to_owned() });
    };
    let es = &f.effect_site;
    let ke0_ev = evidence("effect_site.evidence", &es.evidence)?;
    let ke0 = ranged(
        "effect_site.ke0_per_min",
        positive("effect_site.ke0_per_min", &es.ke0_per_min)?,
        positive("effect_site.ke0_low", &es.ke0_low)?,
        positive("effect_site.ke0_high", &es.ke0_high)?,
    )?;
    show(
        "effect_site_ke0_per_min".into(),
        format!("{} (range {}-{})", ke0.value, ke0.low, ke0.high),
        false,
        ke0_ev == Evidence::Assumed,
        &es.source,
    );
    let c = &f.conversions;
    let hcl = positive("conversions.hydrochloride_to_base", &c.hydrochloride_to_base)?;
    let s_frac = positive("conversions.racemate_s_fraction", &c.racemate_s_fraction)?;
    if hcl >= 1.0 || s_frac >= 1.0 {
        return Err(bad("conversions", "hydrochloride_to_base and racemate_s_fraction must be fractions below 1"));
    }
    show("hydrochloride_to_base".into(), c.hydrochloride_to_base.clone(), false, false, &c.hydrochloride_source);
    show("racemate_s_fraction".into(), c.racemate_s_fraction.clone(), false, false, &c.racemate_source);
    let bp = &f.uncertainty_band;
    let subjects = bp
        .subjects
        .trim()
        .parse::<usize>()
        .ok()
        .filter(|n| (20..=20_000).contains(n))
        .ok_or_else(|| bad("uncertainty_band.subjects", "must be a whole number from 20 to 20000"))?;
    let seed = bp.seed.trim().parse::<u64>().map_err(|_| bad("uncertainty_band.seed", "must be a whole number"))?;
    show("uncertainty_band_subjects".into(), bp.subjects.clone(), bp.policy, false, &bp.source);
    show("uncertainty_band_seed".into(), bp.seed.clone(), bp.policy, false, &bp.source);

    let mut models = Vec::new();
    for m in &f.model {
        let key = |k: &str| format!("model {}: {k}", m.id);
        if models.iter().any(|x: &ModelSpec| x.id == m.id) || m.id.trim().is_empty() {
            return Err(KnowledgeError::Inconsistent { file: FILE, problem: format!("model id {:?} is empty or repeated", m.id) });
        }
        if m.citation.trim().len() < 10 {
            return Err(bad(&key("citation"), "needs its source"));
        }
        let analyte = Analyte::parse(&m.analyte).ok_or_else(|| bad(&key("analyte"), "must be racemic or s-ketamine"))?;
        let ev = evidence(&key("evidence"), &m.evidence)?;
        let wr = (num(&key("weight_range_kg"), &m.weight_range_kg[0])?, num(&key("weight_range_kg"), &m.weight_range_kg[1])?);
        let ar = (num(&key("age_range_years"), &m.age_range_years[0])?, num(&key("age_range_years"), &m.age_range_years[1])?);
        if wr.0 >= wr.1 || ar.0 >= ar.1 {
            return Err(bad(&key("ranges"), "each range must be low then high"));
        }
        let parameters = match m.structure.as_str() {
            "per-kg micro constants" => {
                let g = |k: &str, v: &Option<String>| -> Result<f64, KnowledgeError> {
                    v.as_deref().map(|t| num(&key(k), t)).transpose()?.ok_or_else(|| bad(&key(k), "is missing"))
                };
                let opt = |k: &str, v: &Option<String>| -> Result<f64, KnowledgeError> {
                    Ok(v.as_deref().map(|t| num(&key(k), t)).transpose()?.unwrap_or(0.0))
                };
                let v1 = g("v1_l_per_kg", &m.v1_l_per_kg)?;
                let micro = Micro {
                    v1_l: 1.0,
                    k10: g("k10", &m.k10)?,
                    k12: opt("k12", &m.k12)?,
                    k21: opt("k21", &m.k21)?,
                    k13: opt("k13", &m.k13)?,
                    k31: opt("k31", &m.k31)?,
                };
                for (n, v) in [
                    ("v1_l_per_kg", v1),
                    ("k10", micro.k10),
                    ("k12", micro.k12),
                    ("k21", micro.k21),
                    ("k13", micro.k13),
                    ("k31", micro.k31),
                ] {
                    show(format!("model_{}_{n}", m.id), v.to_string(), false, ev >= Evidence::Code, &m.citation);
                }
                Parameters::PerKg { v1_l_per_kg: v1, micro }
            }
            "allometric" => {
                let reference_kg = positive(&key("reference_kg"), m.reference_kg.as_deref().unwrap_or(""))?;
                let need = |k: &str, s: &Option<ScaledToml>| scaled(&key(k), s)?.ok_or_else(|| bad(&key(k), "is missing"));
                let v1 = need("v1", &m.v1)?;
                let cl = need("cl", &m.cl)?;
                let pair = |vk: &str,
                            v: &Option<ScaledToml>,
                            qk: &str,
                            q: &Option<ScaledToml>|
                 -> Result<Option<(Scaled, Scaled)>, KnowledgeError> {
                    match (scaled(&key(vk), v)?, scaled(&key(qk), q)?) {
                        (Some(v), Some(q)) => Ok(Some((v, q))),
                        (None, None) => Ok(None),
                        _ => Err(bad(&key(vk), format!("{vk} and {qk} come together"))),
                    }
                };
                let second = pair("v2", &m.v2, "q2", &m.q2)?;
                let third = pair("v3", &m.v3, "q3", &m.q3)?;
                let mut list = vec![("v1_l", v1), ("cl_l_per_min", cl)];
                if let Some((v, q)) = second {
                    list.extend([("v2_l", v), ("q2_l_per_min", q)]);
                }
                if let Some((v, q)) = third {
                    list.extend([("v3_l", v), ("q3_l_per_min", q)]);
                }
                for (n, s) in list {
                    let cv = s.bsv_cv.map(|c| format!(", between-subject CV {}", c)).unwrap_or_default();
                    show(
                        format!("model_{}_{n}", m.id),
                        format!("{} at {reference_kg} kg, x (W/{reference_kg})^{}{cv}", s.value, s.exponent),
                        false,
                        ev >= Evidence::Code,
                        &m.citation,
                    );
                }
                Parameters::Physiological { reference_kg, v1, cl, second, third }
            }
            other => return Err(bad(&key("structure"), format!("{other:?} must be \"per-kg micro constants\" or \"allometric\""))),
        };
        let spec = ModelSpec {
            id: m.id.clone(),
            name: m.name.clone(),
            analyte,
            sampling: m.sampling.clone(),
            population: m.population.clone(),
            adult_population: m.adult_population,
            weight_range_kg: wr,
            age_range_years: ar,
            parameters,
            evidence: ev,
            citation: m.citation.clone(),
            notes: m.notes.clone(),
        };
        spec.micro(70.0, None).disposition().map_err(|e| bad(&key("parameters"), e.to_string()))?;
        models.push(spec);
    }
    if models.is_empty() {
        return Err(KnowledgeError::Inconsistent { file: FILE, problem: "no model".into() });
    }

    let mut routes = Vec::new();
    for r in &f.route {
        let key = |k: &str| format!("route {}: {k}", r.route);
        let route = PkRoute::parse(&r.route).filter(|r| *r != PkRoute::Iv).ok_or_else(|| bad(&key("route"), "must be sc, im, in or po"))?;
        if routes.iter().any(|x: &RouteSpec| x.route == route) {
            return Err(KnowledgeError::Inconsistent { file: FILE, problem: format!("route {} is repeated", r.route) });
        }
        let f_r = ranged(&key("f"), positive(&key("f"), &r.f)?, positive(&key("f_low"), &r.f_low)?, positive(&key("f_high"), &r.f_high)?)?;
        if f_r.high > 1.0 {
            return Err(bad(&key("f_high"), "a bioavailability is at most 1"));
        }
        let ln2 = std::f64::consts::LN_2;
        let ka = match (&r.absorption_half_life_min, &r.ka_per_hour) {
            (Some(h), None) => {
                let v = positive(&key("absorption_half_life_min"), h)?;
                let lo = positive(&key("half_life_low_min"), r.half_life_low_min.as_deref().unwrap_or(""))?;
                let hi = positive(&key("half_life_high_min"), r.half_life_high_min.as_deref().unwrap_or(""))?;
                ranged(&key("absorption_half_life_min"), v, lo, hi)?;
                Ranged { value: ln2 / v, low: ln2 / hi, high: ln2 / lo }
            }
            (None, Some(k)) => {
                let v = positive(&key("ka_per_hour"), k)? / 60.0;
                let lo = positive(&key("ka_low_per_hour"), r.ka_low_per_hour.as_deref().unwrap_or(""))? / 60.0;
                let hi = positive(&key("ka_high_per_hour"), r.ka_high_per_hour.as_deref().unwrap_or(""))? / 60.0;
                ranged(&key("ka_per_hour"), v, lo, hi)?
            }
            _ => return Err(bad(&key("absorption"), "give either absorption_half_life_min or ka_per_hour")),
        };
        let ev = evidence(&key("evidence"), &r.evidence)?;
        if r.source.trim().len() < 10 {
            return Err(bad(&key("source"), "needs its source"));
        }
        show(
            format!("route_{}_f", r.route),
            format!("{} (range {}-{})", f_r.value, f_r.low, f_r.high),
            false,
            ev == Evidence::Assumed,
            &r.source,
        );
        show(
            format!("route_{}_ka_per_min", r.route),
            format!("{:.5} (half-life {:.1} min; range {:.5}-{:.5})", ka.value, ln2 / ka.value, ka.low, ka.high),
            false,
            ev == Evidence::Assumed,
            &r.source,
        );
        routes.push(RouteSpec { route, f: f_r, ka_per_min: ka, evidence: ev, source: r.source.clone(), caveat: r.caveat.clone() });
    }
    for needed in [PkRoute::Sc, PkRoute::Im, PkRoute::In, PkRoute::Po] {
        if !routes.iter().any(|r| r.route == needed) {
            return Err(KnowledgeError::Inconsistent { file: FILE, problem: format!("route {} has no defaults", needed.code()) });
        }
    }
    let interactions = f
        .interaction
        .iter()
        .map(|i| {
            show(format!("interaction_{}", i.class), i.names.join(", "), false, false, &i.source);
            Interaction {
                class: i.class.clone(),
                names: i.names.iter().map(|n| n.to_lowercase()).collect(),
                effect: i.effect.clone(),
                source: i.source.clone(),
            }
        })
        .collect();
    let mut bands: Vec<ConcentrationBand> = Vec::new();
    for b in &f.band {
        let low = num("band.low_ng_per_ml", &b.low_ng_per_ml)?;
        let high = b.high_ng_per_ml.as_deref().map(|h| positive("band.high_ng_per_ml", h)).transpose()?;
        if high.is_some_and(|h| h <= low) || bands.last().is_some_and(|p| p.high_ng_per_ml.is_none_or(|h| (h - low).abs() > 1e-9)) {
            return Err(KnowledgeError::Inconsistent {
                file: FILE,
                problem: format!("band {} must follow the previous band without a gap", b.label),
            });
        }
        show(
            format!("band_{low:05}"),
            format!("{}{} ng/mL: {}", low, high.map(|h| format!("-{h}")).unwrap_or_else(|| " and above".into()), b.label),
            false,
            false,
            &b.source,
        );
        bands.push(ConcentrationBand { low_ng_per_ml: low, high_ng_per_ml: high, label: b.label.clone(), source: b.source.clone() });
    }
    let k = PkKnowledge {
        version: f.version.clone(),
        models,
        routes,
        ke0_per_min: ke0,
        ke0_evidence: ke0_ev,
        ke0_source: es.source.clone(),
        hydrochloride_to_base: hcl,
        hydrochloride_source: c.hydrochloride_source.clone(),
        racemate_s_fraction: s_frac,
        interactions,
        bands,
        band_subjects: subjects,
        band_seed: seed,
    };
    Ok((k, ValueTable { file: FILE, version: f.version, title: f.title, values }))
}
