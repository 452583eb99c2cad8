//! Parsing of `knowledge/instruments/*.toml` into [`Instrument`] definitions.

use crate::KnowledgeError;
use ketacare_domain::instrument::{
    AnswerKind, Band, BandSet, Condition, Direction, FlagRule, Instrument, ItemDef, OutcomeRules, Reliability, RemissionRule, Respondent,
    ResponseRule, SkipRule, SumDef, TriageRule,
};
use rust_decimal::Decimal;
use serde::Deserialize;
use std::str::FromStr;

/// The embedded instrument files, by file name (one instrument per file).
pub const INSTRUMENT_FILES: &[(&str, &str)] = &[
    ("gad7.toml", include_str!("../../../knowledge/instruments/gad7.toml")),
    ("phq9.toml", include_str!("../../../knowledge/instruments/phq9.toml")),
    ("hama.toml", include_str!("../../../knowledge/instruments/hama.toml")),
    ("lsas.toml", include_str!("../../../knowledge/instruments/lsas.toml")),
    ("fq.toml", include_str!("../../../knowledge/instruments/fq.toml")),
    ("vas_anxiety.toml", include_str!("../../../knowledge/instruments/vas_anxiety.toml")),
    ("sds.toml", include_str!("../../../knowledge/instruments/sds.toml")),
    ("qlesq_sf.toml", include_str!("../../../knowledge/instruments/qlesq_sf.toml")),
    ("cadss.toml", include_str!("../../../knowledge/instruments/cadss.toml")),
    ("moaas.toml", include_str!("../../../knowledge/instruments/moaas.toml")),
    ("cssrs_screener.toml", include_str!("../../../knowledge/instruments/cssrs_screener.toml")),
    ("icsi.toml", include_str!("../../../knowledge/instruments/icsi.toml")),
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    version: String,
    key: String,
    name: String,
    title: String,
    respondent: String,
    recall: Option<String>,
    licence: String,
    source: String,
    direction: String,
    #[serde(default = "yes")]
    has_total: bool,
    total_loinc: Option<String>,
    panel_loinc: Option<String>,
    #[serde(default)]
    percent_of_max: bool,
    #[serde(default)]
    caveats: Vec<String>,
    #[serde(default)]
    item_defaults: ItemDefaults,
    items: Vec<Item>,
    #[serde(default)]
    subscales: Vec<Subscale>,
    #[serde(default)]
    band_sets: Vec<BandSetToml>,
    response: Option<Response>,
    remission: Option<Remission>,
    reliability: Option<ReliabilityToml>,
    #[serde(default)]
    triage: Vec<Triage>,
    triage_none: Option<String>,
    triage_loinc: Option<String>,
    #[serde(default)]
    flags: Vec<Flag>,
}

fn yes() -> bool {
    true
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ItemDefaults {
    kind: Option<String>,
    min: Option<u32>,
    max: Option<u32>,
    allowed: Option<Vec<u32>>,
    scored: Option<bool>,
    optional: Option<bool>,
    choice_labels: Option<Vec<String>>,
    choice_loinc: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Item {
    key: String,
    label: String,
    kind: Option<String>,
    min: Option<u32>,
    max: Option<u32>,
    allowed: Option<Vec<u32>>,
    scored: Option<bool>,
    optional: Option<bool>,
    skip_when_item: Option<String>,
    skip_equals: Option<u32>,
    loinc: Option<String>,
    choice_labels: Option<Vec<String>>,
    choice_loinc: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Subscale {
    key: String,
    label: String,
    items: Vec<String>,
    loinc: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BandSetToml {
    key: String,
    label: String,
    source: String,
    bands: Vec<BandToml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BandToml {
    code: String,
    label: String,
    min: String,
    max: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Response {
    percent: String,
    strict: bool,
    #[serde(default)]
    policy: bool,
    source: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Remission {
    total_at_most: String,
    no_item_above: Option<u32>,
    #[serde(default)]
    policy: bool,
    source: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReliabilityToml {
    coefficient: String,
    sd: String,
    critical: String,
    source: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Triage {
    level: String,
    label: String,
    any: Vec<ConditionToml>,
    loinc_answer: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Flag {
    code: String,
    label: String,
    urgent: bool,
    when: ConditionToml,
    source: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum ConditionToml {
    ItemAtLeast { item: String, value: u32 },
    ItemAtMost { item: String, value: u32 },
    AnyItemAtLeast { items: Vec<String>, value: u32 },
    AllItemsAtLeast { items: Vec<String>, value: u32 },
    TotalAtLeast(String),
    TriageIn(Vec<String>),
}

/// Parses one instrument file.
pub fn parse_instrument(file: &'static str, text: &str) -> Result<Instrument, KnowledgeError> {
    let f: File = toml::from_str(text).map_err(|source| KnowledgeError::Parse { file, source })?;
    let bad = |key: &str, problem: String| KnowledgeError::Value { file, key: key.to_owned(), problem };
    let dec = |key: &str, v: &str| Decimal::from_str(v).map_err(|_| bad(key, format!("is not a decimal number: {v}")));
    let condition = |c: ConditionToml| -> Result<Condition, KnowledgeError> {
        Ok(match c {
            ConditionToml::ItemAtLeast { item, value } => Condition::ItemAtLeast { item, value },
            ConditionToml::ItemAtMost { item, value } => Condition::ItemAtMost { item, value },
            ConditionToml::AnyItemAtLeast { items, value } => Condition::AnyItemAtLeast { items, value },
            ConditionToml::AllItemsAtLeast { items, value } => Condition::AllItemsAtLeast { items, value },
            ConditionToml::TotalAtLeast(v) => Condition::TotalAtLeast(dec("total_at_least", &v)?),
            ConditionToml::TriageIn(l) => Condition::TriageIn(l),
        })
    };
    let d = &f.item_defaults;
    let mut items = Vec::new();
    for i in f.items {
        let kind = match i.kind.as_deref().or(d.kind.as_deref()).unwrap_or("number") {
            "number" => AnswerKind::Number,
            "yes_no" => AnswerKind::YesNo,
            other => return Err(bad(&i.key, format!("kind must be number or yes_no, not {other}"))),
        };
        let (dmin, dmax) = if kind == AnswerKind::YesNo { (0, 1) } else { (0, 0) };
        let skip = match (i.skip_when_item, i.skip_equals) {
            (Some(when_item), Some(equals)) => Some(SkipRule { when_item, equals }),
            (None, None) => None,
            _ => return Err(bad(&i.key, "skip_when_item and skip_equals go together".into())),
        };
        let min = i.min.or(d.min).unwrap_or(dmin);
        let max = i.max.or(d.max).unwrap_or(dmax);
        if kind == AnswerKind::Number && i.max.or(d.max).is_none() {
            return Err(bad(&i.key, "needs max (on the item or in item_defaults)".into()));
        }
        items.push(ItemDef {
            label: i.label,
            kind,
            min,
            max,
            allowed: i.allowed.or_else(|| d.allowed.clone()),
            scored: i.scored.or(d.scored).unwrap_or(true),
            optional: i.optional.or(d.optional).unwrap_or(false),
            skip,
            loinc: i.loinc,
            choice_labels: i.choice_labels.or_else(|| d.choice_labels.clone()).unwrap_or_default(),
            choice_loinc: i.choice_loinc.or_else(|| d.choice_loinc.clone()).unwrap_or_default(),
            key: i.key,
        });
    }
    let mut band_sets = Vec::new();
    for s in f.band_sets {
        let mut bands = Vec::new();
        for b in s.bands {
            bands.push(Band { min: dec(&b.code, &b.min)?, max: dec(&b.code, &b.max)?, code: b.code, label: b.label });
        }
        band_sets.push(BandSet { key: s.key, label: s.label, source: s.source, bands });
    }
    let response = match f.response {
        Some(r) => {
            Some(ResponseRule { percent: dec("response.percent", &r.percent)?, strict: r.strict, policy: r.policy, source: r.source })
        }
        None => None,
    };
    let remission = match f.remission {
        Some(r) => Some(RemissionRule {
            total_at_most: dec("remission.total_at_most", &r.total_at_most)?,
            no_item_above: r.no_item_above,
            policy: r.policy,
            source: r.source,
        }),
        None => None,
    };
    let reliability = match f.reliability {
        Some(r) => Some(Reliability {
            coefficient: dec("reliability.coefficient", &r.coefficient)?,
            sd: dec("reliability.sd", &r.sd)?,
            critical: dec("reliability.critical", &r.critical)?,
            source: r.source,
        }),
        None => None,
    };
    let mut triage = Vec::new();
    for t in f.triage {
        let any = t.any.into_iter().map(condition).collect::<Result<_, _>>()?;
        triage.push(TriageRule { level: t.level, label: t.label, any, loinc_answer: t.loinc_answer });
    }
    let mut flags = Vec::new();
    for g in f.flags {
        flags.push(FlagRule { when: condition(g.when)?, code: g.code, label: g.label, urgent: g.urgent, source: g.source });
    }
    let inst = Instrument {
        respondent: Respondent::parse(&f.respondent).map_err(|p| bad("respondent", p))?,
        direction: match f.direction.as_str() {
            "higher_is_worse" => Direction::HigherIsWorse,
            "higher_is_better" => Direction::HigherIsBetter,
            other => return Err(bad("direction", format!("must be higher_is_worse or higher_is_better, not {other}"))),
        },
        key: f.key,
        name: f.name,
        title: f.title,
        version: f.version,
        recall: f.recall,
        licence: f.licence,
        source: f.source,
        items,
        has_total: f.has_total,
        total_loinc: f.total_loinc,
        panel_loinc: f.panel_loinc,
        percent_of_max: f.percent_of_max,
        subscales: f.subscales.into_iter().map(|s| SumDef { key: s.key, label: s.label, items: s.items, loinc: s.loinc }).collect(),
        band_sets,
        default_rules: OutcomeRules { response, remission },
        reliability,
        triage,
        triage_none: f.triage_none,
        triage_loinc: f.triage_loinc,
        flags,
        caveats: f.caveats,
    };
    inst.check_definition().map_err(|problem| KnowledgeError::Inconsistent { file, problem })?;
    Ok(inst)
}

/// Parses all embedded instrument files, in catalogue order.
pub fn load_instruments() -> Result<Vec<Instrument>, KnowledgeError> {
    let mut out: Vec<Instrument> = Vec::new();
    for (file, text) in INSTRUMENT_FILES {
        let inst = parse_instrument(file, text)?;
        if out.iter().any(|i| i.key == inst.key) {
            return Err(KnowledgeError::Inconsistent { file, problem: format!("instrument key {} is used twice", inst.key) });
        }
        out.push(inst);
    }
    Ok(out)
}
