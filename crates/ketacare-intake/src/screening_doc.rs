//! The documented intake format of the screening (`docs/intake.schema.json`), shared by the
//! JSON API (`POST /api/screening/evaluate`) and the CLI (`ketacare screen --input`), and the
//! JSON form of a screening result.

use crate::NumberOrText;
use ketacare_domain::screening::{
    BaselineRating, ConditionEntry, Finding, Intake, LiverTests, MedicineEntry, PriorTreatment, Screening, TreatmentKind, TrialJudgement,
};
use ketacare_domain::validation::FieldErrors;
use ketacare_knowledge::Knowledge;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::str::FromStr;
use utoipa::ToSchema;

/// A name, or an object with more detail.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub enum MedicationDoc {
    /// Name as prescribed, e.g. "clonazepam 0.5 mg at night".
    Name(String),
    /// Name with its RxNorm code.
    Detail {
        /// Name as prescribed.
        name: String,
        /// RxNorm ingredient code (RxCUI), digits.
        #[serde(default)]
        rxnorm: Option<String>,
    },
}

/// A condition name, or an object saying whether it is controlled.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ConditionDoc {
    /// Name from the conditions list, e.g. "hypertension (controlled)".
    Name(String),
    /// Name and control.
    Detail {
        /// Name from the conditions list.
        name: String,
        /// Controlled or treated (hypertension, hyperthyroidism).
        #[serde(default)]
        controlled: Option<bool>,
    },
}

/// A prior treatment.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PriorTreatmentDoc {
    /// `pharmacological` or `psychotherapy`.
    kind: String,
    /// Medicine or therapy, e.g. "sertraline" or "CBT".
    name: String,
    /// Dose as given, e.g. "150 mg daily".
    #[serde(default)]
    dose: Option<String>,
    /// Whether dose or delivery was adequate (the clinician's judgement).
    #[serde(default)]
    adequate: Option<bool>,
    /// Duration in weeks.
    #[serde(default)]
    #[schema(value_type = Option<NumberOrText>)]
    weeks: Option<NumberOrText>,
    /// Scale of the ratings before and after: hama, bai, cgi_i, gad7, lsas, …
    #[serde(default)]
    instrument: Option<String>,
    /// Rating before.
    #[serde(default)]
    #[schema(value_type = Option<NumberOrText>)]
    baseline: Option<NumberOrText>,
    /// Rating at the end (CGI-I: the final rating).
    #[serde(default, rename = "final")]
    #[schema(value_type = Option<NumberOrText>)]
    final_score: Option<NumberOrText>,
    /// Why it stopped.
    #[serde(default)]
    stop_reason: Option<String>,
}

/// Liver tests.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LiverDoc {
    /// ALT, U/L.
    #[serde(default)]
    #[schema(value_type = Option<NumberOrText>)]
    alt: Option<NumberOrText>,
    /// AST, U/L.
    #[serde(default)]
    #[schema(value_type = Option<NumberOrText>)]
    ast: Option<NumberOrText>,
    /// ALP, U/L.
    #[serde(default)]
    #[schema(value_type = Option<NumberOrText>)]
    alp: Option<NumberOrText>,
    /// Total bilirubin, µmol/L.
    #[serde(default)]
    #[schema(value_type = Option<NumberOrText>)]
    bilirubin: Option<NumberOrText>,
    /// Days since the sample (0 or omitted: current).
    #[serde(default)]
    age_days: Option<i64>,
}

/// The intake of a candidate for ketamine therapy.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IntakeDoc {
    /// Age in whole years.
    #[serde(default)]
    age_years: Option<u32>,
    /// female, male, other or unknown.
    #[serde(default)]
    sex: Option<String>,
    /// Body weight in kilograms (not pounds).
    #[serde(default)]
    #[schema(value_type = Option<NumberOrText>)]
    weight_kg: Option<NumberOrText>,
    /// Height in centimetres.
    #[serde(default)]
    #[schema(value_type = Option<NumberOrText>)]
    height_cm: Option<NumberOrText>,
    /// Diagnoses: catalogue keys (gad, sad, panic, specific_phobia), names, SNOMED CT or ICD-10-CM codes.
    #[serde(default)]
    diagnoses: Vec<String>,
    /// Prior treatments.
    #[serde(default)]
    prior_treatments: Vec<PriorTreatmentDoc>,
    /// Current medicines: names, or objects with name and rxnorm.
    #[serde(default)]
    medications: Vec<MedicationDoc>,
    /// Comorbid conditions: names from the conditions list, or objects with name and controlled.
    #[serde(default)]
    conditions: Vec<ConditionDoc>,
    /// Resting systolic blood pressure, mmHg.
    #[serde(default)]
    bp_systolic: Option<u32>,
    /// Resting diastolic blood pressure, mmHg.
    #[serde(default)]
    bp_diastolic: Option<u32>,
    /// Days since the blood pressure was taken (0 or omitted: today).
    #[serde(default)]
    bp_age_days: Option<i64>,
    /// Resting heart rate, beats per minute.
    #[serde(default)]
    heart_rate: Option<u32>,
    /// Pregnant.
    #[serde(default)]
    pregnant: Option<bool>,
    /// Breastfeeding.
    #[serde(default)]
    breastfeeding: Option<bool>,
    /// Baseline totals by instrument key, e.g. {"hama": 24, "lsas": 82}.
    #[serde(default)]
    #[schema(value_type = Object)]
    baseline_ratings: BTreeMap<String, NumberOrText>,
    /// Liver tests.
    #[serde(default)]
    liver_tests: Option<LiverDoc>,
    /// C-SSRS screener triage level: none, low, moderate or high.
    #[serde(default)]
    cssrs_triage: Option<String>,
    /// PHQ-9 item 9 answer (0-3).
    #[serde(default)]
    phq9_item9: Option<u32>,
}

fn decimal(e: &mut FieldErrors, field: &str, v: &Option<NumberOrText>, lo: Decimal, hi: Decimal, unit: &str) -> Option<Decimal> {
    let t = v.as_ref()?.text();
    match Decimal::from_str(t.trim()) {
        Ok(d) if d >= lo && d <= hi => Some(d),
        Ok(d) => {
            e.add(field, format!("must be from {lo} to {hi} {unit}; got {d}"));
            None
        }
        Err(_) => {
            e.add(field, format!("must be a number in {unit}; got {t:?}"));
            None
        }
    }
}

fn range(e: &mut FieldErrors, field: &str, v: Option<u32>, lo: u32, hi: u32, unit: &str) -> Option<u32> {
    match v {
        Some(x) if x < lo || x > hi => {
            e.add(field, format!("must be from {lo} to {hi} {unit}; got {x}"));
            None
        }
        other => other,
    }
}

/// Parses intake JSON text (the CLI's `--input` file), naming every bad field.
pub fn parse_intake_json(text: &str, k: &Knowledge) -> Result<Intake, FieldErrors> {
    let doc: IntakeDoc = serde_json::from_str(text).map_err(|e| {
        FieldErrors::single(
            "intake",
            format!("is not a valid intake document (line {}, column {}): {e}; see docs/intake.schema.json", e.line(), e.column()),
        )
    })?;
    intake_from_doc(doc, k)
}

/// Checks an intake document and turns it into the domain's [`Intake`].
pub fn intake_from_doc(doc: IntakeDoc, k: &Knowledge) -> Result<Intake, FieldErrors> {
    let mut e = FieldErrors::new();
    let a = &k.anthropometry;
    let age_years = range(&mut e, "age_years", doc.age_years, 0, 130, "years");
    let sex = doc.sex.map(|s| s.trim().to_lowercase());
    if let Some(s) = &sex {
        if !["female", "male", "other", "unknown"].contains(&s.as_str()) {
            e.add("sex", format!("must be female, male, other or unknown; got {s:?}"));
        }
    }
    let weight_kg = decimal(&mut e, "weight_kg", &doc.weight_kg, a.weight_min_kg, a.weight_max_kg, "kg (kilograms, not pounds)");
    let height_cm = decimal(&mut e, "height_cm", &doc.height_cm, a.height_min_cm, a.height_max_cm, "cm");
    let bp_systolic = range(&mut e, "bp_systolic", doc.bp_systolic, 50, 300, "mmHg");
    let bp_diastolic = range(&mut e, "bp_diastolic", doc.bp_diastolic, 20, 200, "mmHg");
    if let (Some(s), Some(d)) = (bp_systolic, bp_diastolic) {
        if d >= s {
            e.add("bp_diastolic", format!("must be below the systolic pressure ({s} mmHg); got {d}: are the two swapped?"));
        }
    }
    if bp_systolic.is_some() != bp_diastolic.is_some() {
        e.add(if bp_systolic.is_some() { "bp_diastolic" } else { "bp_systolic" }, "give both the systolic and the diastolic pressure");
    }
    let heart_rate = range(&mut e, "heart_rate", doc.heart_rate, 20, 250, "beats per minute");
    if doc.bp_age_days.is_some_and(|d| d < 0) {
        e.add("bp_age_days", "must be 0 or more days");
    }
    let phq9_item9 = range(&mut e, "phq9_item9", doc.phq9_item9, 0, 3, "(PHQ-9 item 9 answers are 0-3)");
    let cssrs_triage = doc.cssrs_triage.map(|t| t.trim().to_lowercase());
    if let Some(t) = &cssrs_triage {
        if !["none", "low", "moderate", "high"].contains(&t.as_str()) {
            e.add("cssrs_triage", format!("must be none, low, moderate or high; got {t:?}"));
        }
    }
    let mut prior_treatments = Vec::new();
    for (n, t) in doc.prior_treatments.into_iter().enumerate() {
        let f = |x: &str| format!("prior_treatments[{n}].{x}");
        let kind = e.check(&f("kind"), TreatmentKind::parse(&t.kind));
        if t.name.trim().is_empty() {
            e.add(&f("name"), "must name the medicine or therapy");
        }
        let big = Decimal::from(1000);
        prior_treatments.push(PriorTreatment {
            kind,
            name: t.name.trim().to_owned(),
            dose: t.dose,
            weeks: decimal(&mut e, &f("weeks"), &t.weeks, Decimal::ZERO, Decimal::from(520), "weeks"),
            adequate: t.adequate,
            instrument: t.instrument.map(|i| i.trim().to_lowercase()).filter(|i| !i.is_empty()),
            baseline: decimal(&mut e, &f("baseline"), &t.baseline, Decimal::ZERO, big, "points"),
            final_score: decimal(&mut e, &f("final"), &t.final_score, Decimal::ZERO, big, "points"),
            stop_reason: t.stop_reason,
        });
    }
    let mut baseline_ratings = Vec::new();
    for (key, v) in &doc.baseline_ratings {
        let field = format!("baseline_ratings.{key}");
        match k.instrument(key) {
            None => {
                let keys: Vec<&str> = k.instruments.iter().map(|i| i.key.as_str()).collect();
                e.add(&field, format!("{key:?} is not an instrument; use one of {}", keys.join(", ")));
            }
            Some(inst) => {
                let (lo, hi) = inst.total_range();
                if let Some(total) = decimal(&mut e, &field, &Some(v.clone()), lo, hi, &format!("({} total)", inst.name)) {
                    baseline_ratings.push(BaselineRating { instrument: inst.key.clone(), total });
                }
            }
        }
    }
    let liver = doc.liver_tests.map(|l| {
        let big = Decimal::from(100_000);
        LiverTests {
            alt: decimal(&mut e, "liver_tests.alt", &l.alt, Decimal::ZERO, big, "U/L"),
            ast: decimal(&mut e, "liver_tests.ast", &l.ast, Decimal::ZERO, big, "U/L"),
            alp: decimal(&mut e, "liver_tests.alp", &l.alp, Decimal::ZERO, big, "U/L"),
            bilirubin: decimal(&mut e, "liver_tests.bilirubin", &l.bilirubin, Decimal::ZERO, big, "µmol/L"),
            age_days: l.age_days.filter(|d| *d >= 0),
        }
    });
    let medications = doc
        .medications
        .into_iter()
        .map(|m| match m {
            MedicationDoc::Name(n) => MedicineEntry { name: n, rxnorm: None },
            MedicationDoc::Detail { name, rxnorm } => MedicineEntry { name, rxnorm },
        })
        .collect::<Vec<_>>();
    for (n, m) in medications.iter().enumerate() {
        if m.name.trim().is_empty() && m.rxnorm.is_none() {
            e.add(&format!("medications[{n}]"), "must name the medicine");
        }
        if m.rxnorm.as_deref().is_some_and(|c| c.is_empty() || !c.chars().all(|c| c.is_ascii_digit())) {
            e.add(&format!("medications[{n}].rxnorm"), "must be an RxNorm code (digits only)");
        }
    }
    let conditions = doc
        .conditions
        .into_iter()
        .map(|c| match c {
            ConditionDoc::Name(name) => ConditionEntry { name, controlled: None },
            ConditionDoc::Detail { name, controlled } => ConditionEntry { name, controlled },
        })
        .collect();
    e.into_result()?;
    Ok(Intake {
        age_years,
        sex,
        weight_kg,
        height_cm,
        diagnoses: doc.diagnoses,
        prior_treatments,
        medications,
        conditions,
        bp_systolic,
        bp_diastolic,
        bp_age_days: doc.bp_age_days,
        heart_rate,
        pregnant: doc.pregnant,
        breastfeeding: doc.breastfeeding,
        baseline_ratings,
        liver,
        cssrs_triage,
        phq9_item9,
    })
}

/// One finding.
#[derive(Serialize, ToSchema)]
pub struct FindingDto {
    /// Stable code, e.g. condition:psychosis.
    pub code: String,
    /// exclusion, review, caution or info.
    pub severity: String,
    /// condition, interaction, resistance, inclusion, blood_pressure, liver, suicide_risk, eligibility, missing_data or unrecognised.
    pub category: String,
    /// One line.
    pub title: String,
    /// The data that triggered it.
    pub trigger: String,
    /// Why it matters (conditions and interactions).
    pub effect: String,
    /// What to do.
    pub action: String,
    /// Source.
    pub source: String,
    /// The source is not confirmed (UNVERIFIED).
    pub unverified: bool,
    /// Where sources disagree.
    pub conflict: Option<String>,
    /// Accepted by the medical director with a reason.
    pub accepted: bool,
}

impl From<&Finding> for FindingDto {
    fn from(f: &Finding) -> Self {
        FindingDto {
            code: f.code.clone(),
            severity: f.severity.code().into(),
            category: f.category.code().into(),
            title: f.title.clone(),
            trigger: f.trigger.clone(),
            effect: f.effect.clone(),
            action: f.action.clone(),
            source: f.source.clone(),
            unverified: f.unverified,
            conflict: f.conflict.clone(),
            accepted: f.accepted,
        }
    }
}

/// How a prior trial counted.
#[derive(Serialize, ToSchema)]
pub struct TrialDto {
    /// Position in the intake (0-based).
    pub index: usize,
    /// Name.
    pub name: String,
    /// pharmacological or psychotherapy.
    pub kind: Option<String>,
    /// adequate_failure, responded, not_adequate, unconfirmed or not_counted.
    pub status: String,
    /// Reduction in percent, exact text.
    pub reduction_percent: Option<String>,
    /// Why.
    pub explanation: String,
}

impl From<&TrialJudgement> for TrialDto {
    fn from(t: &TrialJudgement) -> Self {
        TrialDto {
            index: t.index,
            name: t.name.clone(),
            kind: t.kind.map(|k| k.code().to_owned()),
            status: t.status.code().into(),
            reduction_percent: t.reduction_percent.map(|d| d.normalize().to_string()),
            explanation: t.explanation.clone(),
        }
    }
}

/// A medicine and what it matched.
#[derive(Serialize, ToSchema)]
pub struct MedicineDto {
    /// As recorded.
    pub recorded: String,
    /// Generic name matched.
    pub ingredient: Option<String>,
    /// Interaction keys.
    pub interactions: Vec<String>,
}

/// A screening: the verdict and its findings.
#[derive(Serialize, ToSchema)]
pub struct ScreeningDto {
    /// eligible, eligible_with_cautions, needs_review or not_eligible.
    pub verdict: String,
    /// The verdict in words.
    pub verdict_label: String,
    /// Findings, most serious first.
    pub findings: Vec<FindingDto>,
    /// Prior trials and how they counted.
    pub trials: Vec<TrialDto>,
    /// met, unconfirmed or not_met.
    pub resistance: String,
    /// Definition of treatment resistance used.
    pub resistance_definition: String,
    /// Medicines matched.
    pub medicines: Vec<MedicineDto>,
    /// Versions of the screening knowledge files.
    pub knowledge_version: String,
}

impl ScreeningDto {
    /// The DTO of a screening.
    pub fn new(s: &Screening, knowledge_version: &str) -> Self {
        ScreeningDto {
            verdict: s.verdict.code().into(),
            verdict_label: s.verdict.label().into(),
            findings: s.findings.iter().map(FindingDto::from).collect(),
            trials: s.trials.iter().map(TrialDto::from).collect(),
            resistance: s.resistance.code().into(),
            resistance_definition: s.resistance_definition.clone(),
            medicines: s
                .medicines
                .iter()
                .map(|m| MedicineDto {
                    recorded: m.recorded.clone(),
                    ingredient: m.ingredient.clone(),
                    interactions: m.interactions.clone(),
                })
                .collect(),
            knowledge_version: knowledge_version.to_owned(),
        }
    }
}
