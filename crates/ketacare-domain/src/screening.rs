//! Screening and eligibility for ketamine therapy: from an intake (diagnoses, prior treatments,
//! conditions, medicines, baseline ratings, blood pressure, liver tests, suicide-risk screens)
//! to a verdict with its findings.
//!
//! The rules are data ([`ScreeningRules`], from the knowledge files); this module interprets
//! them. Each finding says what triggered it, what to do and its source. Missing data is a
//! finding of its own, never a silent pass. The verdict follows the findings:
//! an exclusion (absolute contraindication) makes the patient not eligible and cannot be
//! accepted by anyone; a finding that needs review (relative contraindication, missing data,
//! treatment resistance not shown) makes the verdict "needs review" until the medical director
//! accepts it with a reason; cautions give "eligible with cautions".
//!
//! Pure: the caller passes ages of results in days (no clock here).

use rust_decimal::Decimal;

// ---------------------------------------------------------------- rules (from knowledge)

/// How serious a knowledge entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grade {
    /// Absolute contraindication: not eligible; cannot be accepted.
    Absolute,
    /// Relative contraindication: the medical director may accept it with a reason.
    Relative,
    /// Caution: shown; treatment may go ahead.
    Caution,
}

impl Grade {
    /// Stable code.
    pub fn code(self) -> &'static str {
        match self {
            Grade::Absolute => "absolute",
            Grade::Relative => "relative",
            Grade::Caution => "caution",
        }
    }
    /// Parses a code.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "absolute" => Ok(Self::Absolute),
            "relative" => Ok(Self::Relative),
            "caution" => Ok(Self::Caution),
            _ => Err("must be absolute, relative or caution".into()),
        }
    }
    fn severity(self) -> Severity {
        match self {
            Grade::Absolute => Severity::Exclusion,
            Grade::Relative => Severity::Review,
            Grade::Caution => Severity::Caution,
        }
    }
}

/// A comorbid condition and how it bears on ketamine therapy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConditionRule {
    /// Stable key, e.g. `psychosis`.
    pub key: String,
    /// Label.
    pub label: String,
    /// Other names that match (lower case).
    pub synonyms: Vec<String>,
    /// Grade (when not controlled, for conditions that can be).
    pub grade: Grade,
    /// Grade when recorded as controlled or treated (hypertension, hyperthyroidism).
    pub grade_if_controlled: Option<Grade>,
    /// The grade is a clinic-policy choice.
    pub policy: bool,
    /// The sources do not confirm it.
    pub unverified: bool,
    /// Sources disagree.
    pub conflict: Option<String>,
    /// Why it matters.
    pub effect: String,
    /// What to do.
    pub action: String,
    /// Source.
    pub source: String,
}

/// A medicine named in the interaction lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DrugName {
    /// Generic (ingredient) name, lower case.
    pub name: String,
    /// RxNorm ingredient code (RxCUI), where known.
    pub rxnorm: Option<String>,
    /// Brand names.
    pub brands: Vec<String>,
    /// Other generic names.
    pub synonyms: Vec<String>,
}

/// An interaction of ketamine with a medicine or class.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InteractionRule {
    /// Stable key, e.g. `benzodiazepines`.
    pub key: String,
    /// Class or medicine, for display.
    pub class: String,
    /// Caution or relative (needs review).
    pub grade: Grade,
    /// Effect.
    pub effect: String,
    /// What to do.
    pub action: String,
    /// Source.
    pub source: String,
    /// Not confirmed by a source.
    pub unverified: bool,
    /// Sources disagree.
    pub conflict: Option<String>,
    /// Medicines in the class.
    pub members: Vec<DrugName>,
}

/// A definition of treatment-resistant anxiety.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResistanceDefinition {
    /// Stable key, e.g. `delphi2024`.
    pub key: String,
    /// Label.
    pub label: String,
    /// Failed adequate pharmacological trials needed.
    pub min_pharmacological_failures: usize,
    /// Or failed adequate psychotherapy (CBT) courses needed.
    pub min_psychotherapy_failures: usize,
    /// A trial failed when the reduction is below this percentage (50: exactly 50 % is a response).
    pub failure_reduction_below_percent: Decimal,
    /// Instrument keys on which the reduction is judged.
    pub failure_instruments: Vec<String>,
    /// CGI-I above this is a failure.
    pub cgi_i_failure_above: Option<Decimal>,
    /// Psychotherapy names that count (lower case).
    pub psychotherapy_names: Vec<String>,
    /// Shortest adequate pharmacological trial, weeks.
    pub min_weeks_pharmacological: Decimal,
    /// Shortest adequate psychotherapy course, weeks.
    pub min_weeks_psychotherapy: Decimal,
    /// A clinic-policy choice.
    pub policy: bool,
    /// Source.
    pub source: String,
}

/// A protocol inclusion criterion on baseline severity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InclusionRule {
    /// Stable key.
    pub key: String,
    /// Label, e.g. "GAD: HAM-A above 20".
    pub label: String,
    /// Diagnosis keys it applies to.
    pub diagnoses: Vec<String>,
    /// Instrument key.
    pub instrument: String,
    /// The baseline total must be above this.
    pub greater_than: Decimal,
    /// Source.
    pub source: String,
}

/// A number with its source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limit {
    /// Value.
    pub value: Decimal,
    /// Source.
    pub source: String,
    /// Clinic policy.
    pub policy: bool,
    /// Not confirmed by a source.
    pub unverified: bool,
}

/// A diagnosis the screening recognises, with the names and codes that match it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiagnosisName {
    /// Catalogue key, e.g. `gad`.
    pub key: String,
    /// Display name.
    pub display: String,
    /// Names and codes that match (lower case): key, display, SNOMED CT, ICD-10-CM.
    pub matches: Vec<String>,
}

/// Everything the screening needs from the knowledge files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScreeningRules {
    /// Version(s) of the knowledge files, for the signed record.
    pub version: String,
    /// Conditions.
    pub conditions: Vec<ConditionRule>,
    /// Interactions.
    pub interactions: Vec<InteractionRule>,
    /// Medicines recognised with no listed interaction.
    pub no_interaction: Vec<DrugName>,
    /// Source of the no-interaction list.
    pub no_interaction_source: String,
    /// Definitions of treatment resistance; the one in force is chosen by key.
    pub resistance: Vec<ResistanceDefinition>,
    /// Key of the definition in force.
    pub resistance_in_force: String,
    /// Inclusion criteria.
    pub inclusion: Vec<InclusionRule>,
    /// Anxiety diagnoses recognised.
    pub diagnoses: Vec<DiagnosisName>,
    /// Youngest age treated.
    pub minimum_age: Limit,
    /// BP above which treatment is excluded (systolic, diastolic).
    pub bp_exclude: (Limit, Limit),
    /// BP above which a caution is shown.
    pub bp_caution: (Limit, Limit),
    /// How old a blood pressure may be, days.
    pub bp_max_age_days: Limit,
    /// ULN of ALT, AST, ALP (U/L) and bilirubin (µmol/L).
    pub liver_uln: LiverLimits,
    /// Multiple of ULN above which liver tests need review.
    pub liver_review_multiple: Limit,
    /// How old liver tests may be, days.
    pub liver_max_age_days: Limit,
    /// Source of the C-SSRS triage rule.
    pub cssrs_source: String,
    /// Source of the PHQ-9 item 9 rule.
    pub phq9_source: String,
    /// Display names of rating scales by key (`hama` → `HAM-A`), for findings.
    pub instrument_names: Vec<(String, String)>,
}

/// Upper limits of normal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiverLimits {
    /// ALT, U/L.
    pub alt: Limit,
    /// AST, U/L.
    pub ast: Limit,
    /// ALP, U/L.
    pub alp: Limit,
    /// Total bilirubin, µmol/L.
    pub bilirubin: Limit,
}

impl ScreeningRules {
    /// The display name of a rating scale key (`hama` → `HAM-A`); unknown keys upper-cased.
    pub fn instrument_name(&self, key: &str) -> String {
        self.instrument_names.iter().find(|(k, _)| k == key).map(|(_, n)| n.clone()).unwrap_or_else(|| key.to_uppercase())
    }

    /// The treatment-resistance definition in force.
    pub fn resistance_definition(&self) -> Option<&ResistanceDefinition> {
        self.resistance.iter().find(|d| d.key == self.resistance_in_force).or(self.resistance.first())
    }

    /// Checks that the rules are usable (keys unique, grades sensible); for the knowledge loader.
    pub fn check(&self) -> Result<(), String> {
        let mut keys: Vec<&str> = self.conditions.iter().map(|c| c.key.as_str()).collect();
        keys.sort_unstable();
        if let Some(w) = keys.windows(2).find(|w| w[0] == w[1]) {
            return Err(format!("condition {} is defined twice", w[0]));
        }
        let mut ikeys: Vec<&str> = self.interactions.iter().map(|c| c.key.as_str()).collect();
        ikeys.sort_unstable();
        if let Some(w) = ikeys.windows(2).find(|w| w[0] == w[1]) {
            return Err(format!("interaction {} is defined twice", w[0]));
        }
        for i in &self.interactions {
            if i.grade == Grade::Absolute {
                return Err(format!("interaction {}: grade must be caution or relative", i.key));
            }
            if i.members.is_empty() {
                return Err(format!("interaction {} lists no medicines", i.key));
            }
        }
        for c in self.conditions.iter().chain(std::iter::empty()) {
            if c.source.trim().len() < 20 {
                return Err(format!("condition {} needs a real source", c.key));
            }
        }
        for i in &self.interactions {
            if i.source.trim().len() < 20 {
                return Err(format!("interaction {} needs a real source", i.key));
            }
        }
        if self.resistance_definition().is_none() {
            return Err("no treatment-resistance definition".into());
        }
        if self.resistance.iter().all(|d| d.key != self.resistance_in_force) {
            return Err(format!("the default treatment-resistance definition {} is not defined", self.resistance_in_force));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- intake

/// Pharmacological or psychological treatment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TreatmentKind {
    /// A medicine.
    Pharmacological,
    /// A psychological therapy.
    Psychotherapy,
}

impl TreatmentKind {
    /// Stable code.
    pub fn code(self) -> &'static str {
        match self {
            TreatmentKind::Pharmacological => "pharmacological",
            TreatmentKind::Psychotherapy => "psychotherapy",
        }
    }
    /// Parses a code.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim() {
            "pharmacological" => Ok(Self::Pharmacological),
            "psychotherapy" => Ok(Self::Psychotherapy),
            _ => Err("must be pharmacological or psychotherapy".into()),
        }
    }
}

/// A treatment tried before.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PriorTreatment {
    /// Kind (`None`: not recorded).
    pub kind: Option<TreatmentKind>,
    /// Medicine or therapy, e.g. "sertraline" or "CBT".
    pub name: String,
    /// Dose as given.
    pub dose: Option<String>,
    /// Duration in weeks.
    pub weeks: Option<Decimal>,
    /// The clinician's judgement that dose or delivery was adequate.
    pub adequate: Option<bool>,
    /// Instrument key of the ratings before and after (e.g. `hama`, `bai`, `cgi_i`).
    pub instrument: Option<String>,
    /// Rating before.
    pub baseline: Option<Decimal>,
    /// Rating at the end.
    pub final_score: Option<Decimal>,
    /// Why it stopped.
    pub stop_reason: Option<String>,
}

/// A comorbid condition as recorded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConditionEntry {
    /// Name or key.
    pub name: String,
    /// Controlled or treated (for hypertension, hyperthyroidism); `None`: not recorded.
    pub controlled: Option<bool>,
}

/// A current medicine.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MedicineEntry {
    /// Name as prescribed (may include dose text).
    pub name: String,
    /// RxNorm code, if known.
    pub rxnorm: Option<String>,
}

/// A baseline rating.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaselineRating {
    /// Instrument key.
    pub instrument: String,
    /// Total.
    pub total: Decimal,
}

/// Liver tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LiverTests {
    /// ALT, U/L.
    pub alt: Option<Decimal>,
    /// AST, U/L.
    pub ast: Option<Decimal>,
    /// ALP, U/L.
    pub alp: Option<Decimal>,
    /// Total bilirubin, µmol/L.
    pub bilirubin: Option<Decimal>,
    /// Days since the sample (`None`: unknown).
    pub age_days: Option<i64>,
}

/// Everything the screening looks at.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Intake {
    /// Age in whole years.
    pub age_years: Option<u32>,
    /// `female`, `male`, `other` or `unknown`.
    pub sex: Option<String>,
    /// Weight, kg.
    pub weight_kg: Option<Decimal>,
    /// Height, cm.
    pub height_cm: Option<Decimal>,
    /// Diagnoses: catalogue keys, names, SNOMED CT or ICD-10-CM codes.
    pub diagnoses: Vec<String>,
    /// Prior treatments.
    pub prior_treatments: Vec<PriorTreatment>,
    /// Current medicines.
    pub medications: Vec<MedicineEntry>,
    /// Comorbid conditions.
    pub conditions: Vec<ConditionEntry>,
    /// Resting systolic BP, mmHg.
    pub bp_systolic: Option<u32>,
    /// Resting diastolic BP, mmHg.
    pub bp_diastolic: Option<u32>,
    /// Days since the BP reading (`None`: unknown or just taken).
    pub bp_age_days: Option<i64>,
    /// Resting heart rate, /min.
    pub heart_rate: Option<u32>,
    /// Pregnant (`None`: not recorded).
    pub pregnant: Option<bool>,
    /// Breastfeeding (`None`: not recorded).
    pub breastfeeding: Option<bool>,
    /// Baseline ratings (latest per instrument).
    pub baseline_ratings: Vec<BaselineRating>,
    /// Liver tests (`None`: none on record).
    pub liver: Option<LiverTests>,
    /// C-SSRS screener triage level (`none`, `low`, `moderate`, `high`); `None`: not done.
    pub cssrs_triage: Option<String>,
    /// PHQ-9 item 9 answer; `None`: not done.
    pub phq9_item9: Option<u32>,
}

// ---------------------------------------------------------------- result

/// How a finding bears on the verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Not eligible; cannot be accepted by anyone.
    Exclusion,
    /// Needs the medical director's review; may be accepted with a reason.
    Review,
    /// Shown to the team; treatment may go ahead.
    Caution,
    /// For the record.
    Info,
}

impl Severity {
    /// Stable code.
    pub fn code(self) -> &'static str {
        match self {
            Severity::Exclusion => "exclusion",
            Severity::Review => "review",
            Severity::Caution => "caution",
            Severity::Info => "info",
        }
    }
    /// Parses a code.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "exclusion" => Ok(Self::Exclusion),
            "review" => Ok(Self::Review),
            "caution" => Ok(Self::Caution),
            "info" => Ok(Self::Info),
            _ => Err("must be exclusion, review, caution or info".into()),
        }
    }
    /// Label for people.
    pub fn label(self) -> &'static str {
        match self {
            Severity::Exclusion => "Absolute contraindication",
            Severity::Review => "Needs review",
            Severity::Caution => "Caution",
            Severity::Info => "Information",
        }
    }
}

/// What a finding is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Category {
    /// A comorbid condition.
    Condition,
    /// A medicine.
    Interaction,
    /// Treatment resistance.
    Resistance,
    /// Baseline severity against the protocol.
    Inclusion,
    /// Blood pressure.
    BloodPressure,
    /// Liver tests.
    Liver,
    /// Suicide-risk screen.
    SuicideRisk,
    /// Age, diagnosis, pregnancy and other eligibility facts.
    Eligibility,
    /// Data the screening needs but does not have.
    MissingData,
    /// A name the screening does not recognise.
    Unrecognised,
}

impl Category {
    /// Stable code.
    pub fn code(self) -> &'static str {
        match self {
            Category::Condition => "condition",
            Category::Interaction => "interaction",
            Category::Resistance => "resistance",
            Category::Inclusion => "inclusion",
            Category::BloodPressure => "blood_pressure",
            Category::Liver => "liver",
            Category::SuicideRisk => "suicide_risk",
            Category::Eligibility => "eligibility",
            Category::MissingData => "missing_data",
            Category::Unrecognised => "unrecognised",
        }
    }
    /// Parses a code.
    pub fn parse(s: &str) -> Result<Self, String> {
        [
            Category::Condition,
            Category::Interaction,
            Category::Resistance,
            Category::Inclusion,
            Category::BloodPressure,
            Category::Liver,
            Category::SuicideRisk,
            Category::Eligibility,
            Category::MissingData,
            Category::Unrecognised,
        ]
        .into_iter()
        .find(|c| c.code() == s)
        .ok_or_else(|| format!("unknown finding category {s}"))
    }
}

/// One finding of a screening.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// Stable code, unique within a screening (e.g. `condition:psychosis`,
    /// `interaction:benzodiazepines`, `missing:liver_tests`).
    pub code: String,
    /// Severity.
    pub severity: Severity,
    /// Category.
    pub category: Category,
    /// One line for people.
    pub title: String,
    /// The data that triggered it.
    pub trigger: String,
    /// Why it matters (for conditions and interactions; empty otherwise).
    pub effect: String,
    /// What to do.
    pub action: String,
    /// Source.
    pub source: String,
    /// The source is not confirmed.
    pub unverified: bool,
    /// Sources disagree.
    pub conflict: Option<String>,
    /// Accepted by the medical director (for review findings only).
    pub accepted: bool,
}

/// How a prior trial counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrialStatus {
    /// An adequate trial that failed: counts towards treatment resistance.
    AdequateFailure,
    /// The patient responded (reduction at or above the cut-off).
    Responded,
    /// Dose, delivery or duration not adequate.
    NotAdequate,
    /// No ratings before and after on an accepted scale, or adequacy not recorded.
    Unconfirmed,
    /// A psychotherapy other than the kind the definition counts.
    NotCounted,
}

impl TrialStatus {
    /// Stable code.
    pub fn code(self) -> &'static str {
        match self {
            TrialStatus::AdequateFailure => "adequate_failure",
            TrialStatus::Responded => "responded",
            TrialStatus::NotAdequate => "not_adequate",
            TrialStatus::Unconfirmed => "unconfirmed",
            TrialStatus::NotCounted => "not_counted",
        }
    }
}

/// One prior trial as judged by the definition in force.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrialJudgement {
    /// Position in the intake (0-based).
    pub index: usize,
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: Option<TreatmentKind>,
    /// How it counted.
    pub status: TrialStatus,
    /// Reduction in percent (exact), where measured.
    pub reduction_percent: Option<Decimal>,
    /// Why, in words.
    pub explanation: String,
}

/// Whether treatment resistance is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResistanceStatus {
    /// Shown by the definition in force.
    Met,
    /// Would be shown if the unconfirmed trials were confirmed failures.
    Unconfirmed,
    /// Not shown.
    NotMet,
}

impl ResistanceStatus {
    /// Stable code.
    pub fn code(self) -> &'static str {
        match self {
            ResistanceStatus::Met => "met",
            ResistanceStatus::Unconfirmed => "unconfirmed",
            ResistanceStatus::NotMet => "not_met",
        }
    }
}

/// The verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Eligible.
    Eligible,
    /// Eligible; cautions apply.
    EligibleWithCautions,
    /// Needs the medical director's review.
    NeedsReview,
    /// Not eligible.
    NotEligible,
}

impl Verdict {
    /// Stable code.
    pub fn code(self) -> &'static str {
        match self {
            Verdict::Eligible => "eligible",
            Verdict::EligibleWithCautions => "eligible_with_cautions",
            Verdict::NeedsReview => "needs_review",
            Verdict::NotEligible => "not_eligible",
        }
    }
    /// Parses a code.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "eligible" => Ok(Self::Eligible),
            "eligible_with_cautions" => Ok(Self::EligibleWithCautions),
            "needs_review" => Ok(Self::NeedsReview),
            "not_eligible" => Ok(Self::NotEligible),
            _ => Err("must be eligible, eligible_with_cautions, needs_review or not_eligible".into()),
        }
    }
    /// Label for people.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Eligible => "Eligible",
            Verdict::EligibleWithCautions => "Eligible with cautions",
            Verdict::NeedsReview => "Needs medical-director review",
            Verdict::NotEligible => "Not eligible",
        }
    }
    /// The verdict of a set of findings.
    pub fn of(findings: &[Finding]) -> Verdict {
        if findings.iter().any(|f| f.severity == Severity::Exclusion) {
            Verdict::NotEligible
        } else if findings.iter().any(|f| f.severity == Severity::Review && !f.accepted) {
            Verdict::NeedsReview
        } else if findings.iter().any(|f| f.severity == Severity::Caution || (f.severity == Severity::Review && f.accepted)) {
            Verdict::EligibleWithCautions
        } else {
            Verdict::Eligible
        }
    }
}

/// A medicine matched to the interaction lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MedicineMatch {
    /// As recorded.
    pub recorded: String,
    /// Generic name matched, if any.
    pub ingredient: Option<String>,
    /// Interaction keys that apply.
    pub interactions: Vec<String>,
}

/// The outcome of a screening.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Screening {
    /// The verdict.
    pub verdict: Verdict,
    /// Findings, most serious first.
    pub findings: Vec<Finding>,
    /// Each prior trial and how it counted.
    pub trials: Vec<TrialJudgement>,
    /// Treatment resistance.
    pub resistance: ResistanceStatus,
    /// Definition used.
    pub resistance_definition: String,
    /// Medicines and what they matched.
    pub medicines: Vec<MedicineMatch>,
}

impl Screening {
    /// Findings that need review and are not accepted.
    pub fn open_reviews(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.severity == Severity::Review && !f.accepted)
    }
}

// ---------------------------------------------------------------- matching

/// Lower-case words of a text (letters and digits), for matching names.
pub fn words(s: &str) -> Vec<String> {
    s.to_lowercase().split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_owned).collect()
}

fn contains_phrase(hay: &[String], phrase: &str) -> bool {
    let p = words(phrase);
    !p.is_empty() && hay.windows(p.len()).any(|w| w == p.as_slice())
}

fn same_name(a: &str, b: &str) -> bool {
    let (wa, wb) = (words(a), words(b));
    !wa.is_empty() && wa == wb
}

impl DrugName {
    fn matches(&self, text_words: &[String], rxnorm: Option<&str>) -> bool {
        if let (Some(code), Some(mine)) = (rxnorm, &self.rxnorm) {
            if code.trim() == mine {
                return true;
            }
        }
        std::iter::once(&self.name).chain(&self.synonyms).chain(&self.brands).any(|n| contains_phrase(text_words, n))
    }
}

/// Splits "controlled hypertension", "hypertension (controlled)" or "untreated hypertension"
/// into the condition name and whether it is controlled.
pub fn parse_condition_text(raw: &str) -> ConditionEntry {
    let w = words(raw);
    let negative = ["uncontrolled", "untreated", "poorly"];
    let positive = ["controlled", "treated"];
    let controlled = if w.iter().any(|x| negative.contains(&x.as_str())) {
        Some(false)
    } else if w.iter().any(|x| positive.contains(&x.as_str())) {
        Some(true)
    } else {
        None
    };
    let name: Vec<&str> =
        w.iter().map(String::as_str).filter(|x| !negative.contains(x) && !positive.contains(x) && *x != "controlled").collect();
    ConditionEntry { name: name.join(" "), controlled }
}

fn find_condition<'a>(rules: &'a ScreeningRules, name: &str) -> Option<&'a ConditionRule> {
    rules
        .conditions
        .iter()
        .find(|c| same_name(&c.key.replace('_', " "), name) || same_name(&c.label, name) || c.synonyms.iter().any(|s| same_name(s, name)))
}

fn dec(d: Decimal) -> String {
    d.normalize().to_string()
}

fn sourced_flags(l: &Limit) -> (bool, Option<String>) {
    (l.unverified, None)
}

// ---------------------------------------------------------------- the rules

struct Builder {
    findings: Vec<Finding>,
}

impl Builder {
    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        code: String,
        severity: Severity,
        category: Category,
        title: String,
        trigger: String,
        action: &str,
        source: &str,
        unverified: bool,
        conflict: Option<String>,
    ) {
        if self.findings.iter().any(|f| f.code == code) {
            return;
        }
        self.findings.push(Finding {
            code,
            severity,
            category,
            title,
            trigger,
            effect: String::new(),
            action: action.to_owned(),
            source: source.to_owned(),
            unverified,
            conflict,
            accepted: false,
        });
    }
    fn set_effect(&mut self, code: &str, effect: &str) {
        if let Some(f) = self.findings.iter_mut().find(|f| f.code == code) {
            f.effect = effect.to_owned();
        }
    }
    fn missing(&mut self, what: &str, title: &str, trigger: &str, action: &str, source: &str) {
        self.add(
            format!("missing:{what}"),
            Severity::Review,
            Category::MissingData,
            title.to_owned(),
            trigger.to_owned(),
            action,
            source,
            false,
            None,
        );
    }
}

/// Screens an intake. `accepted` holds the codes of review findings the medical director has
/// accepted with a reason; exclusions cannot be accepted (their codes are ignored).
pub fn screen(intake: &Intake, rules: &ScreeningRules, accepted: &[String]) -> Screening {
    let mut b = Builder { findings: Vec::new() };

    // Age.
    match intake.age_years {
        None => b.missing("age", "Age not recorded", "no date of birth or age", "Record the date of birth.", &rules.minimum_age.source),
        Some(a) if Decimal::from(a) < rules.minimum_age.value => b.add(
            "eligibility:age".into(),
            Severity::Exclusion,
            Category::Eligibility,
            format!("Younger than {} years", dec(rules.minimum_age.value)),
            format!("age {a} years"),
            "Ketamine therapy in this service is for adults only.",
            &rules.minimum_age.source,
            false,
            None,
        ),
        Some(_) => {}
    }

    // Diagnoses.
    let mut diagnosis_keys: Vec<&str> = Vec::new();
    for d in &intake.diagnoses {
        let w = words(d).join(" ");
        match rules.diagnoses.iter().find(|n| n.matches.iter().any(|m| words(m).join(" ") == w) || same_name(&n.display, d)) {
            Some(n) => {
                if !diagnosis_keys.contains(&n.key.as_str()) {
                    diagnosis_keys.push(&n.key);
                }
            }
            None => b.add(
                format!("unrecognised:diagnosis:{w}"),
                Severity::Review,
                Category::Unrecognised,
                format!("Diagnosis not recognised: {}", d.trim()),
                format!("diagnosis {:?} matches no anxiety diagnosis of the catalogue ({})", d.trim(), rules.diagnoses.iter().map(|n| n.key.as_str()).collect::<Vec<_>>().join(", ")),
                "Record the anxiety diagnosis with its catalogue entry, SNOMED CT or ICD-10-CM code, or review whether the patient has an anxiety disorder the service treats.",
                "Diagnosis catalogue (knowledge/diagnoses.toml).",
                false,
                None,
            ),
        }
    }
    if diagnosis_keys.is_empty() {
        b.missing(
            "anxiety_diagnosis",
            "No anxiety diagnosis on record",
            "no recognised anxiety diagnosis (generalised anxiety, social anxiety, panic or phobic disorder)",
            "Record the diagnosis the referral is for; ketamine therapy here is for treatment-resistant anxiety disorders.",
            "Scope of the service; anxiety trials enrolled GAD and social anxiety disorder (Glue 2017, doi:10.1177/0269881117705089; Taylor 2018, PMC5729569).",
        );
    }

    // Weight and height (the dose is weight-based).
    if intake.weight_kg.is_none() {
        b.missing(
            "weight",
            "Weight not recorded",
            "no body weight on record",
            "Weigh the patient (kilograms): every dose is weight-based.",
            "Weight-based dosing: 0.5 mg/kg IV (Taylor 2018); 0.25-1 mg/kg SC (Glue 2017).",
        );
    }
    if intake.height_cm.is_none() {
        b.add(
            "missing:height".into(),
            Severity::Caution,
            Category::MissingData,
            "Height not recorded".into(),
            "no height on record".into(),
            "Measure the height: ideal and adjusted body weight need it.",
            "Dose-weight bases (ideal and adjusted body weight) need height.",
            false,
            None,
        );
    }

    // Conditions (and pregnancy, breastfeeding).
    let mut conditions: Vec<ConditionEntry> = intake
        .conditions
        .iter()
        .map(|c| {
            let parsed = parse_condition_text(&c.name);
            ConditionEntry { name: parsed.name, controlled: c.controlled.or(parsed.controlled) }
        })
        .collect();
    if intake.pregnant == Some(true) {
        conditions.push(ConditionEntry { name: "pregnancy".into(), controlled: None });
    }
    if intake.breastfeeding == Some(true) {
        conditions.push(ConditionEntry { name: "breastfeeding".into(), controlled: None });
    }
    for c in &conditions {
        // The name as typed first (it may be a label such as "Hypertension (uncontrolled or
        // untreated)"), then without the words that say whether it is controlled.
        let raw =
            intake.conditions.iter().find(|r| parse_condition_text(&r.name).name == c.name).map(|r| r.name.as_str()).unwrap_or(&c.name);
        match find_condition(rules, raw).or_else(|| find_condition(rules, &c.name)) {
            Some(rule) => {
                let (grade, state) = match (rule.grade_if_controlled, c.controlled) {
                    (Some(g), Some(true)) => (g, " (controlled)"),
                    (Some(_), Some(false)) => (rule.grade, " (not controlled)"),
                    (Some(_), None) => (rule.grade.max_review(), " (control not recorded)"),
                    (None, _) => (rule.grade, ""),
                };
                let title = format!("{}{state}", rule.label);
                let action = if rule.grade_if_controlled.is_some() && c.controlled.is_none() {
                    format!("Record whether it is controlled. {}", rule.action)
                } else {
                    rule.action.clone()
                };
                b.add(
                    format!("condition:{}", rule.key),
                    grade.severity(),
                    Category::Condition,
                    title,
                    format!(
                        "{}: {}",
                        if c.name == "pregnancy" || c.name == "breastfeeding" { "status" } else { "condition on record" },
                        c.name
                    ),
                    &action,
                    &rule.source,
                    rule.unverified,
                    rule.conflict.clone(),
                );
                b.set_effect(&format!("condition:{}", rule.key), &rule.effect);
            }
            None => b.add(
                format!("unrecognised:condition:{}", words(&c.name).join("_")),
                Severity::Review,
                Category::Unrecognised,
                format!("Condition not recognised: {}", c.name),
                format!(
                    "condition {:?} is not in the screening list ({})",
                    c.name,
                    rules.conditions.iter().map(|r| r.key.as_str()).collect::<Vec<_>>().join(", ")
                ),
                "Use a name from the list, or review by hand whether this condition bears on ketamine therapy.",
                "Conditions list (knowledge/screening/conditions.toml).",
                false,
                None,
            ),
        }
    }
    if intake.sex.as_deref() == Some("female") && (intake.pregnant.is_none() || intake.breastfeeding.is_none()) {
        let which = match (intake.pregnant.is_none(), intake.breastfeeding.is_none()) {
            (true, true) => "pregnancy and breastfeeding status",
            (true, false) => "pregnancy status",
            _ => "breastfeeding status",
        };
        let src = find_condition(rules, "pregnancy").map(|r| r.source.clone()).unwrap_or_default();
        b.missing(
            "pregnancy_status",
            &format!("Not recorded: {which}"),
            &format!("{which} not recorded for a female patient"),
            "Ask and record it (and a pregnancy test where the clinic requires one) before treatment.",
            &src,
        );
    }

    // Medicines.
    let mut medicines = Vec::new();
    for m in &intake.medications {
        let w = words(&m.name);
        let mut ingredient = None;
        let mut hits: Vec<&InteractionRule> = Vec::new();
        for rule in &rules.interactions {
            if let Some(member) = rule.members.iter().find(|d| d.matches(&w, m.rxnorm.as_deref())) {
                ingredient.get_or_insert_with(|| member.name.clone());
                hits.push(rule);
            }
        }
        if ingredient.is_none() {
            ingredient = rules.no_interaction.iter().find(|d| d.matches(&w, m.rxnorm.as_deref())).map(|d| d.name.clone());
        }
        for rule in &hits {
            let ing = ingredient.clone().unwrap_or_default();
            b.add(
                format!("interaction:{}", rule.key),
                rule.grade.severity(),
                Category::Interaction,
                if same_name(&rule.class, &ing) { rule.class.clone() } else { format!("{}: {}", rule.class, ing) },
                format!("current medicine: {}", m.name.trim()),
                &rule.action,
                &rule.source,
                rule.unverified,
                rule.conflict.clone(),
            );
            b.set_effect(&format!("interaction:{}", rule.key), &rule.effect);
            // Several medicines of one class: name them all in the one finding.
            if let Some(f) = b.findings.iter_mut().find(|f| f.code == format!("interaction:{}", rule.key)) {
                if !f.trigger.contains(m.name.trim()) {
                    f.trigger = format!("{}; {}", f.trigger, m.name.trim());
                }
                if !words(&f.title).contains(&ing) {
                    f.title = format!("{}, {ing}", f.title);
                }
            }
        }
        if ingredient.is_none() {
            b.add(
                format!("unrecognised:medicine:{}", w.join("_")),
                Severity::Review,
                Category::Unrecognised,
                format!("Medicine not recognised: {}", m.name.trim()),
                format!("{:?} matches no medicine in the interaction lists", m.name.trim()),
                "Check the spelling (use the generic name) or have a pharmacist review it for interactions with ketamine.",
                &rules.no_interaction_source,
                false,
                None,
            );
        }
        medicines.push(MedicineMatch {
            recorded: m.name.trim().to_owned(),
            ingredient,
            interactions: hits.iter().map(|r| r.key.clone()).collect(),
        });
    }

    // Treatment resistance.
    let def = rules.resistance_definition().cloned().unwrap_or_else(|| ResistanceDefinition {
        key: "none".into(),
        label: "none".into(),
        min_pharmacological_failures: 2,
        min_psychotherapy_failures: 1,
        failure_reduction_below_percent: Decimal::from(50),
        failure_instruments: vec![],
        cgi_i_failure_above: None,
        psychotherapy_names: vec![],
        min_weeks_pharmacological: Decimal::ZERO,
        min_weeks_psychotherapy: Decimal::ZERO,
        policy: false,
        source: String::new(),
    });
    let trials: Vec<TrialJudgement> =
        intake.prior_treatments.iter().enumerate().map(|(i, t)| judge_trial(i, t, &def, &rules.instrument_names)).collect();
    let count = |kind: TreatmentKind, status: TrialStatus| trials.iter().filter(|t| t.kind == Some(kind) && t.status == status).count();
    let (pf, sf) = (
        count(TreatmentKind::Pharmacological, TrialStatus::AdequateFailure),
        count(TreatmentKind::Psychotherapy, TrialStatus::AdequateFailure),
    );
    let (pu, su) =
        (count(TreatmentKind::Pharmacological, TrialStatus::Unconfirmed), count(TreatmentKind::Psychotherapy, TrialStatus::Unconfirmed));
    let met = pf >= def.min_pharmacological_failures || sf >= def.min_psychotherapy_failures;
    let could = pf + pu >= def.min_pharmacological_failures || sf + su >= def.min_psychotherapy_failures;
    let resistance = if met {
        ResistanceStatus::Met
    } else if could {
        ResistanceStatus::Unconfirmed
    } else {
        ResistanceStatus::NotMet
    };
    let tally = format!(
        "{pf} adequate pharmacological failure{} (needs {}) and {sf} adequate CBT failure{} (needs {}); {} trial{} unconfirmed",
        if pf == 1 { "" } else { "s" },
        def.min_pharmacological_failures,
        if sf == 1 { "" } else { "s" },
        def.min_psychotherapy_failures,
        pu + su,
        if pu + su == 1 { "" } else { "s" }
    );
    match resistance {
        ResistanceStatus::Met => b.add("resistance:met".into(), Severity::Info, Category::Resistance, format!("Treatment resistance shown ({})", def.label), tally, "None.", &def.source, false, None),
        ResistanceStatus::Unconfirmed => b.add(
            "resistance:unconfirmed".into(),
            Severity::Review,
            Category::Resistance,
            format!("Treatment resistance not confirmed ({})", def.label),
            tally,
            "Complete the prior-treatment records (adequacy, duration, ratings before and after on an accepted scale) or have the medical director review.",
            &def.source,
            false,
            None,
        ),
        ResistanceStatus::NotMet => b.add(
            "resistance:not_met".into(),
            Severity::Review,
            Category::Resistance,
            format!("Treatment resistance not shown ({})", def.label),
            if intake.prior_treatments.is_empty() { "no prior treatments recorded".into() } else { tally },
            "Record every prior treatment; if resistance is not shown, ketamine is outside the studied indication and needs the medical director's review.",
            &def.source,
            false,
            None,
        ),
    }

    // Inclusion (baseline severity) for each recognised diagnosis with criteria.
    for key in &diagnosis_keys {
        let crit: Vec<&InclusionRule> = rules.inclusion.iter().filter(|r| r.diagnoses.iter().any(|d| d == key)).collect();
        if crit.is_empty() {
            continue;
        }
        let rated: Vec<(&InclusionRule, Decimal)> = crit
            .iter()
            .filter_map(|r| intake.baseline_ratings.iter().find(|x| x.instrument == r.instrument).map(|x| (*r, x.total)))
            .collect();
        let labels = crit.iter().map(|r| r.label.as_str()).collect::<Vec<_>>().join(" or ");
        let sources = crit.iter().map(|r| r.source.as_str()).collect::<Vec<_>>().join(" ");
        if rated.is_empty() {
            b.missing(
                &format!("baseline:{key}"),
                &format!("Baseline severity not recorded ({labels})"),
                &format!(
                    "no baseline {} on record",
                    crit.iter().map(|r| rules.instrument_name(&r.instrument)).collect::<Vec<_>>().join(" or ")
                ),
                "Record the baseline rating before treatment.",
                &sources,
            );
        } else if let Some((r, v)) = rated.iter().find(|(r, v)| *v > r.greater_than) {
            b.add(
                format!("inclusion:{key}"),
                Severity::Info,
                Category::Inclusion,
                format!("Baseline severity meets {}", r.label),
                format!("{} baseline {}", rules.instrument_name(&r.instrument), dec(*v)),
                "None.",
                &r.source,
                false,
                None,
            );
        } else {
            let (r, v) = rated[0];
            b.add(
                format!("inclusion:{key}"),
                Severity::Review,
                Category::Inclusion,
                format!("Baseline severity below the protocol threshold ({labels})"),
                format!("{} baseline {} (needs above {})", rules.instrument_name(&r.instrument), dec(v), dec(r.greater_than)),
                "Treatment outside the studied severity needs the medical director's review.",
                &sources,
                false,
                None,
            );
        }
    }

    // Blood pressure.
    let (ex_s, ex_d) = (&rules.bp_exclude.0, &rules.bp_exclude.1);
    let (ca_s, ca_d) = (&rules.bp_caution.0, &rules.bp_caution.1);
    match (intake.bp_systolic, intake.bp_diastolic) {
        (Some(s), Some(d)) if intake.bp_age_days.is_none_or(|a| Decimal::from(a) <= rules.bp_max_age_days.value) => {
            let (s, d) = (Decimal::from(s), Decimal::from(d));
            let reading = format!("resting BP {}/{} mmHg", dec(s), dec(d));
            if s > ex_s.value || d > ex_d.value {
                b.add(
                    "bp:exclusion".into(),
                    Severity::Exclusion,
                    Category::BloodPressure,
                    format!("Blood pressure above {}/{} mmHg at rest", dec(ex_s.value), dec(ex_d.value)),
                    reading,
                    "Do not treat: uncontrolled hypertension. Refer for blood-pressure control and screen again.",
                    &ex_s.source,
                    ex_s.unverified,
                    None,
                );
            } else if s > ca_s.value || d > ca_d.value {
                b.add(
                    "bp:caution".into(),
                    Severity::Caution,
                    Category::BloodPressure,
                    format!("Blood pressure above {}/{} mmHg", dec(ca_s.value), dec(ca_d.value)),
                    reading,
                    "Consider delaying treatment; recheck before dosing and monitor closely: ketamine raises blood pressure.",
                    &ca_s.source,
                    ca_s.unverified,
                    None,
                );
            }
        }
        (Some(_), Some(_)) => b.missing(
            "blood_pressure",
            "Baseline blood pressure out of date",
            &format!("the latest resting blood pressure is older than {} days", dec(rules.bp_max_age_days.value)),
            "Measure the resting blood pressure and heart rate.",
            &rules.bp_max_age_days.source,
        ),
        _ => b.missing(
            "blood_pressure",
            "Baseline blood pressure not on record",
            "no resting systolic and diastolic reading",
            "Measure the resting blood pressure and heart rate.",
            &ex_s.source,
        ),
    }
    if intake.heart_rate.is_none() {
        b.add(
            "missing:heart_rate".into(),
            Severity::Caution,
            Category::MissingData,
            "Baseline heart rate not on record".into(),
            "no resting heart rate".into(),
            "Record the resting heart rate with the blood pressure.",
            "Baseline vital signs before ketamine (blood pressure and heart rate rise with dose: Glue 2017).",
            false,
            None,
        );
    }

    // Liver tests.
    let uln = &rules.liver_uln;
    match &intake.liver {
        Some(l)
            if l.age_days.is_none_or(|a| Decimal::from(a) <= rules.liver_max_age_days.value) && (l.alt.is_some() || l.ast.is_some()) =>
        {
            let tests: [(&str, Option<Decimal>, &Limit, &str); 4] = [
                ("ALT", l.alt, &uln.alt, "U/L"),
                ("AST", l.ast, &uln.ast, "U/L"),
                ("ALP", l.alp, &uln.alp, "U/L"),
                ("Bilirubin", l.bilirubin, &uln.bilirubin, "µmol/L"),
            ];
            let above: Vec<String> = tests
                .iter()
                .filter_map(|(n, v, lim, u)| v.filter(|v| *v > lim.value).map(|v| format!("{n} {} {u} (ULN {})", dec(v), dec(lim.value))))
                .collect();
            let k = rules.liver_review_multiple.value;
            let high: Vec<String> = tests[..2]
                .iter()
                .filter_map(|(n, v, lim, u)| {
                    v.filter(|v| *v > lim.value * k).map(|v| format!("{n} {} {u} > {}x ULN {}", dec(v), dec(k), dec(lim.value)))
                })
                .collect();
            let (unv, _) = sourced_flags(&uln.alt);
            if !high.is_empty() {
                b.add(
                    "liver:high".into(),
                    Severity::Review,
                    Category::Liver,
                    format!("Liver enzymes above {}x the upper limit of normal", dec(k)),
                    high.join("; "),
                    "Investigate before ketamine: repeated ketamine can cause cholestatic liver injury.",
                    &rules.liver_review_multiple.source,
                    rules.liver_review_multiple.unverified,
                    None,
                );
            } else if !above.is_empty() {
                b.add(
                    "liver:above_uln".into(),
                    Severity::Caution,
                    Category::Liver,
                    "Liver tests above the upper limit of normal".into(),
                    above.join("; "),
                    "Repeat the liver tests during treatment and review the trend.",
                    &rules.liver_review_multiple.source,
                    unv,
                    None,
                );
            }
        }
        Some(l) if l.alt.is_some() || l.ast.is_some() => b.missing(
            "liver_tests",
            "Liver tests out of date",
            &format!("the latest liver tests are older than {} days", dec(rules.liver_max_age_days.value)),
            "Take blood for ALT, AST, ALP and bilirubin before treatment.",
            &rules.liver_max_age_days.source,
        ),
        _ => b.missing(
            "liver_tests",
            "Liver tests not on record",
            "no ALT or AST result",
            "Take blood for ALT, AST, ALP and bilirubin before treatment.",
            &rules.liver_max_age_days.source,
        ),
    }

    // Suicide-risk screens.
    match intake.cssrs_triage.as_deref() {
        None => b.missing(
            "cssrs",
            "C-SSRS screen not done",
            "no C-SSRS screener on record",
            "Complete the C-SSRS screener before treatment.",
            &rules.cssrs_source,
        ),
        Some(t @ ("high" | "moderate")) => b.add(
            "suicide:cssrs".into(),
            Severity::Review,
            Category::SuicideRisk,
            format!("C-SSRS screen: {t} risk"),
            format!("C-SSRS screener triage {t}"),
            "Same-day clinical suicide-risk assessment and safety plan before any treatment decision.",
            &rules.cssrs_source,
            false,
            None,
        ),
        Some("low") => b.add(
            "suicide:cssrs".into(),
            Severity::Caution,
            Category::SuicideRisk,
            "C-SSRS screen: low risk".into(),
            "C-SSRS screener triage low".into(),
            "Review at each session.",
            &rules.cssrs_source,
            false,
            None,
        ),
        Some(_) => {}
    }
    match intake.phq9_item9 {
        None => b.missing("phq9", "PHQ-9 not done", "no PHQ-9 on record", "Complete the PHQ-9 before treatment.", &rules.phq9_source),
        Some(v) if v > 0 => b.add(
            "suicide:phq9_item9".into(),
            Severity::Review,
            Category::SuicideRisk,
            "PHQ-9 item 9 above 0 (thoughts of death or self-harm)".into(),
            format!("PHQ-9 item 9 = {v}"),
            "Clinical suicide-risk assessment before any treatment decision.",
            &rules.phq9_source,
            false,
            None,
        ),
        Some(_) => {}
    }

    // Acceptances: only review findings can be accepted.
    for f in &mut b.findings {
        if f.severity == Severity::Review && accepted.iter().any(|a| a == &f.code) {
            f.accepted = true;
        }
    }
    b.findings.sort_by_key(|f| (f.severity, f.accepted));
    Screening {
        verdict: Verdict::of(&b.findings),
        findings: b.findings,
        trials,
        resistance,
        resistance_definition: def.label.clone(),
        medicines,
    }
}

impl Grade {
    /// The grade when the controlling fact is unknown: at most "relative" (needs review).
    fn max_review(self) -> Grade {
        match self {
            Grade::Absolute => Grade::Relative,
            g => g,
        }
    }
}

/// Judges one prior trial against a definition of treatment resistance.
pub fn judge_trial(index: usize, t: &PriorTreatment, def: &ResistanceDefinition, names: &[(String, String)]) -> TrialJudgement {
    let iname = |k: &str| names.iter().find(|(key, _)| key == k).map(|(_, n)| n.clone()).unwrap_or_else(|| k.to_uppercase());
    let name = t.name.trim().to_owned();
    let done = |status: TrialStatus, reduction: Option<Decimal>, explanation: String| TrialJudgement {
        index,
        name: name.clone(),
        kind: t.kind,
        status,
        reduction_percent: reduction,
        explanation,
    };
    let Some(kind) = t.kind else {
        return done(TrialStatus::Unconfirmed, None, "kind (pharmacological or psychotherapy) not recorded".into());
    };
    if kind == TreatmentKind::Psychotherapy {
        let w = words(&name);
        if !def.psychotherapy_names.iter().any(|n| contains_phrase(&w, n)) {
            return done(TrialStatus::NotCounted, None, format!("only cognitive behavioural therapy counts under {}", def.label));
        }
    }
    let min_weeks = match kind {
        TreatmentKind::Pharmacological => def.min_weeks_pharmacological,
        TreatmentKind::Psychotherapy => def.min_weeks_psychotherapy,
    };
    match (t.adequate, t.weeks) {
        (Some(false), _) => return done(TrialStatus::NotAdequate, None, "recorded as not adequate (dose or delivery)".into()),
        (_, Some(w)) if w < min_weeks => {
            return done(
                TrialStatus::NotAdequate,
                None,
                format!("{} weeks is shorter than the {} weeks counted as adequate", dec(w), dec(min_weeks)),
            )
        }
        (None, _) => return done(TrialStatus::Unconfirmed, None, "adequacy (dose or delivery) not recorded".into()),
        (Some(true), None) => return done(TrialStatus::Unconfirmed, None, "duration not recorded".into()),
        (Some(true), Some(_)) => {}
    }
    let instrument = t.instrument.as_deref().map(str::trim).unwrap_or("");
    if instrument.is_empty() {
        return done(TrialStatus::Unconfirmed, None, "no rating before and after: response cannot be judged".into());
    }
    if instrument == "cgi_i" {
        let Some(cut) = def.cgi_i_failure_above else {
            return done(TrialStatus::Unconfirmed, None, format!("CGI-I is not a scale of {}", def.label));
        };
        return match t.final_score {
            None => done(TrialStatus::Unconfirmed, None, "final CGI-I not recorded".into()),
            Some(v) if v > cut => done(
                TrialStatus::AdequateFailure,
                None,
                format!("adequate; final CGI-I {} (above {}: not much improved)", dec(v), dec(cut)),
            ),
            Some(v) => done(TrialStatus::Responded, None, format!("final CGI-I {} (at most {}: improved)", dec(v), dec(cut))),
        };
    }
    if !def.failure_instruments.iter().any(|i| i == instrument) {
        return done(
            TrialStatus::Unconfirmed,
            None,
            format!(
                "rated on {}; {} judges response on {}",
                iname(instrument),
                def.label,
                def.failure_instruments.iter().map(|i| iname(i)).collect::<Vec<_>>().join(", ")
            ),
        );
    }
    let (Some(b), Some(f)) = (t.baseline, t.final_score) else {
        return done(TrialStatus::Unconfirmed, None, format!("{} before and after not both recorded", iname(instrument)));
    };
    if b <= Decimal::ZERO {
        return done(
            TrialStatus::Unconfirmed,
            None,
            format!("baseline {} of 0 or below: a reduction cannot be computed", iname(instrument)),
        );
    }
    // Exact: reduction % = (b - f) / b * 100; compared by cross-multiplication.
    let reduction = ((b - f) * Decimal::ONE_HUNDRED / b).round_dp(1);
    let failed = (b - f) * Decimal::ONE_HUNDRED < def.failure_reduction_below_percent * b;
    let scale = iname(instrument);
    if failed {
        done(
            TrialStatus::AdequateFailure,
            Some(reduction),
            format!(
                "adequate ({} weeks); {scale} {} -> {} is a {} % reduction, below {} %",
                t.weeks.map(dec).unwrap_or_default(),
                dec(b),
                dec(f),
                dec(reduction),
                dec(def.failure_reduction_below_percent)
            ),
        )
    } else {
        done(
            TrialStatus::Responded,
            Some(reduction),
            format!(
                "{scale} {} -> {} is a {} % reduction, at least {} %: a response, not a failure",
                dec(b),
                dec(f),
                dec(reduction),
                dec(def.failure_reduction_below_percent)
            ),
        )
    }
}

// ---------------------------------------------------------------- chart records

use crate::validation::{bounded_text, optional_note, optional_text, FieldErrors};

/// A prior treatment as kept in the chart (record kind `prior_treatment`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PriorTreatmentRecord {
    /// The treatment (kind is always set in a record).
    pub treatment: PriorTreatment,
}

impl PriorTreatmentRecord {
    /// One line for lists.
    pub fn summary(&self) -> String {
        let t = &self.treatment;
        let mut s = format!("{} ({})", t.name, t.kind.map(|k| k.code()).unwrap_or("?"));
        if let Some(w) = t.weeks {
            s.push_str(&format!(", {} weeks", w.normalize()));
        }
        match t.adequate {
            Some(true) => s.push_str(", adequate"),
            Some(false) => s.push_str(", not adequate"),
            None => {}
        }
        if let (Some(i), Some(b), Some(f)) = (&t.instrument, t.baseline, t.final_score) {
            s.push_str(&format!(", {} {} -> {}", i, b.normalize(), f.normalize()));
        }
        s
    }
}

/// Raw input of a prior treatment (forms and API fields).
#[derive(Clone, Debug, Default)]
pub struct PriorTreatmentInput {
    /// `pharmacological` or `psychotherapy`.
    pub kind: String,
    /// Medicine or therapy.
    pub name: String,
    /// Dose.
    pub dose: String,
    /// Weeks.
    pub weeks: String,
    /// `yes`, `no` or empty (not known).
    pub adequate: String,
    /// Instrument key.
    pub instrument: String,
    /// Rating before.
    pub baseline: String,
    /// Rating at the end.
    pub final_score: String,
    /// Why it stopped.
    pub stop_reason: String,
}

fn opt_decimal(raw: &str, lo: Decimal, hi: Decimal, what: &str) -> Result<Option<Decimal>, String> {
    let t = raw.trim();
    if t.is_empty() {
        return Ok(None);
    }
    match t.parse::<Decimal>() {
        Ok(d) if d >= lo && d <= hi => Ok(Some(d)),
        _ => Err(format!("must be {what} from {lo} to {hi}, or empty; got {t:?}")),
    }
}

fn yes_no(raw: &str) -> Result<Option<bool>, String> {
    match raw.trim().to_lowercase().as_str() {
        "" | "unknown" => Ok(None),
        "yes" | "true" | "y" => Ok(Some(true)),
        "no" | "false" | "n" => Ok(Some(false)),
        _ => Err("must be yes, no or empty (not known)".into()),
    }
}

impl PriorTreatmentInput {
    /// Validates, naming every bad field.
    pub fn validate(&self) -> Result<PriorTreatmentRecord, FieldErrors> {
        let mut e = FieldErrors::new();
        let kind = e.check("kind", TreatmentKind::parse(&self.kind));
        let name = e.check("name", bounded_text(&self.name, 1, 200));
        let dose = e.check("dose", optional_text(&self.dose, 200));
        let weeks = e.check("weeks", opt_decimal(&self.weeks, Decimal::ZERO, Decimal::from(520), "a number of weeks"));
        let adequate = e.check("adequate", yes_no(&self.adequate));
        let instrument = e.check(
            "instrument",
            match self.instrument.trim() {
                "" => Ok(None),
                t if t.len() <= 30 && t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => Ok(Some(t.to_lowercase())),
                _ => Err("must be an instrument key such as hama, bai or cgi_i".to_owned()),
            },
        );
        let baseline = e.check("baseline", opt_decimal(&self.baseline, Decimal::ZERO, Decimal::from(1000), "a rating"));
        let final_score = e.check("final", opt_decimal(&self.final_score, Decimal::ZERO, Decimal::from(1000), "a rating"));
        let stop_reason = e.check("stop_reason", optional_note(&self.stop_reason, 500));
        let rated = baseline.flatten().is_some() || final_score.flatten().is_some();
        if instrument == Some(None) && rated {
            e.add("instrument", "name the scale of the ratings before and after (for example hama, bai or cgi_i)");
        }
        e.into_result()?;
        Ok(PriorTreatmentRecord {
            treatment: PriorTreatment {
                kind,
                name: name.unwrap_or_default(),
                dose: dose.flatten(),
                weeks: weeks.flatten(),
                adequate: adequate.flatten(),
                instrument: instrument.flatten(),
                baseline: baseline.flatten(),
                final_score: final_score.flatten(),
                stop_reason: stop_reason.flatten(),
            },
        })
    }
}

/// A comorbid condition or status as kept in the chart (record kind `condition`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConditionRecord {
    /// Key from the conditions list, or a free-text name.
    pub condition: String,
    /// Present (`false`: asked and absent, e.g. not pregnant).
    pub present: bool,
    /// Controlled or treated, where that applies.
    pub controlled: Option<bool>,
    /// Note.
    pub note: Option<String>,
}

impl ConditionRecord {
    /// One line for lists.
    pub fn summary(&self) -> String {
        let state = match (self.present, self.controlled) {
            (false, _) => " (absent)",
            (true, Some(true)) => " (controlled)",
            (true, Some(false)) => " (not controlled)",
            (true, None) => "",
        };
        format!("{}{state}", self.condition.replace('_', " "))
    }
}

/// Raw input of a condition.
#[derive(Clone, Debug, Default)]
pub struct ConditionInput {
    /// Key from the list, or `other`.
    pub condition: String,
    /// Name when `other`.
    pub other: String,
    /// `present` or `absent`.
    pub status: String,
    /// `yes`, `no` or empty.
    pub controlled: String,
    /// Note.
    pub note: String,
}

impl ConditionInput {
    /// Validates against the conditions list; `other` takes a free-text name.
    pub fn validate(&self, rules: &ScreeningRules) -> Result<ConditionRecord, FieldErrors> {
        let mut e = FieldErrors::new();
        let key = self.condition.trim();
        let condition = if key == "other" {
            e.check("other", bounded_text(&self.other, 2, 200))
        } else if rules.conditions.iter().any(|c| c.key == key) {
            Some(key.to_owned())
        } else {
            let keys: Vec<&str> = rules.conditions.iter().map(|c| c.key.as_str()).collect();
            e.add("condition", format!("must be one of {}, or other (with its name)", keys.join(", ")));
            None
        };
        let present = e.check(
            "status",
            match self.status.trim() {
                "" | "present" => Ok(true),
                "absent" => Ok(false),
                _ => Err("must be present or absent".to_owned()),
            },
        );
        let controlled = e.check("controlled", yes_no(&self.controlled));
        let note = e.check("note", optional_note(&self.note, 1000));
        e.into_result()?;
        Ok(ConditionRecord {
            condition: condition.unwrap_or_default(),
            present: present.unwrap_or(true),
            controlled: controlled.flatten(),
            note: note.flatten(),
        })
    }
}

/// A finding the medical director accepted, with the reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acceptance {
    /// Finding code.
    pub code: String,
    /// The data the finding had when accepted: the acceptance holds only while it is the same.
    pub trigger: String,
    /// Why.
    pub reason: String,
}

/// A signed screening verdict (record kind `screening`): the findings as they were when it was
/// signed, the acceptances, and the knowledge version. The signer is the record's author.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScreeningRecord {
    /// Verdict when signed.
    pub verdict: Verdict,
    /// Findings when signed.
    pub findings: Vec<Finding>,
    /// Prior trials when signed.
    pub trials: Vec<TrialJudgement>,
    /// Treatment resistance.
    pub resistance: ResistanceStatus,
    /// Definition used.
    pub resistance_definition: String,
    /// Review findings accepted by the medical director, with reasons.
    pub acceptances: Vec<Acceptance>,
    /// Knowledge version.
    pub knowledge_version: String,
    /// Signer's note.
    pub note: Option<String>,
}

impl TrialStatus {
    /// Parses a code.
    pub fn parse(s: &str) -> Result<Self, String> {
        [TrialStatus::AdequateFailure, TrialStatus::Responded, TrialStatus::NotAdequate, TrialStatus::Unconfirmed, TrialStatus::NotCounted]
            .into_iter()
            .find(|t| t.code() == s)
            .ok_or_else(|| format!("unknown trial status {s}"))
    }
}

impl ResistanceStatus {
    /// Parses a code.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "met" => Ok(Self::Met),
            "unconfirmed" => Ok(Self::Unconfirmed),
            "not_met" => Ok(Self::NotMet),
            _ => Err(format!("unknown resistance status {s}")),
        }
    }
}

impl ScreeningRecord {
    /// Codes of the signed acceptances still in force against `bare` (the screening now, with no
    /// acceptance applied): an acceptance holds only while its finding rests on the same data it
    /// had when it was accepted. A new reading or a changed answer asks for a fresh review.
    pub fn acceptances_in_force(&self, bare: &Screening) -> Vec<String> {
        self.acceptances
            .iter()
            .filter(|a| bare.findings.iter().any(|f| f.code == a.code && f.trigger == a.trigger && f.severity == Severity::Review))
            .map(|a| a.code.clone())
            .collect()
    }
}

/// Findings of `now` that were not in the signed screening, became more serious, or rest on
/// different data since (a new reading, a higher risk level): what the nurse and prescriber
/// must see at check-in.
pub fn new_since<'a>(signed: &ScreeningRecord, now: &'a Screening) -> Vec<&'a Finding> {
    now.findings
        .iter()
        .filter(|f| f.severity != Severity::Info)
        .filter(|f| !signed.findings.iter().any(|s| s.code == f.code && s.severity <= f.severity && s.trigger == f.trigger))
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn lim(v: i64) -> Limit {
        Limit { value: Decimal::from(v), source: "test source for this limit".into(), policy: false, unverified: false }
    }

    pub(crate) fn rules() -> ScreeningRules {
        let drug = |n: &str, rx: Option<&str>, brands: &[&str]| DrugName {
            name: n.into(),
            rxnorm: rx.map(str::to_owned),
            brands: brands.iter().map(|b| (*b).to_owned()).collect(),
            synonyms: vec![],
        };
        let cond = |k: &str, g: Grade, gc: Option<Grade>, syn: &[&str]| ConditionRule {
            key: k.into(),
            label: k.replace('_', " "),
            synonyms: syn.iter().map(|s| (*s).to_owned()).collect(),
            grade: g,
            grade_if_controlled: gc,
            policy: false,
            unverified: false,
            conflict: None,
            effect: "effect.".into(),
            action: "action.".into(),
            source: "a source long enough".into(),
        };
        ScreeningRules {
            version: "t".into(),
            conditions: vec![
                cond("psychosis", Grade::Absolute, None, &["schizophrenia"]),
                cond("hypertension", Grade::Absolute, Some(Grade::Caution), &["high blood pressure"]),
                cond("bipolar_disorder", Grade::Relative, None, &[]),
                cond("sleep_apnoea", Grade::Caution, None, &[]),
                cond("pregnancy", Grade::Absolute, None, &[]),
                cond("breastfeeding", Grade::Relative, None, &[]),
            ],
            interactions: vec![
                InteractionRule {
                    key: "benzodiazepines".into(),
                    class: "Benzodiazepines".into(),
                    grade: Grade::Caution,
                    effect: "May blunt the response.".into(),
                    action: "Review the dose.".into(),
                    source: "Andrashko 2020 and a long source".into(),
                    unverified: false,
                    conflict: None,
                    members: vec![drug("clonazepam", Some("2598"), &["Klonopin"]), drug("diazepam", Some("3322"), &["Valium"])],
                },
                InteractionRule {
                    key: "lamotrigine".into(),
                    class: "Lamotrigine".into(),
                    grade: Grade::Caution,
                    effect: "May reduce perceptual effects.".into(),
                    action: "Note it.".into(),
                    source: "Anand 2000 and a long source".into(),
                    unverified: false,
                    conflict: Some("no effect in depressed samples".into()),
                    members: vec![drug("lamotrigine", Some("28439"), &["Lamictal"])],
                },
                InteractionRule {
                    key: "memantine".into(),
                    class: "Memantine".into(),
                    grade: Grade::Relative,
                    effect: "Additive NMDA antagonism plausible.".into(),
                    action: "Pharmacist review.".into(),
                    source: "no source retrieved, long enough".into(),
                    unverified: true,
                    conflict: None,
                    members: vec![drug("memantine", Some("6719"), &[])],
                },
            ],
            no_interaction: vec![drug("sertraline", Some("36437"), &["Zoloft"])],
            no_interaction_source: "none listed".into(),
            resistance: vec![ResistanceDefinition {
                key: "delphi2024".into(),
                label: "Delphi 2024".into(),
                min_pharmacological_failures: 2,
                min_psychotherapy_failures: 1,
                failure_reduction_below_percent: Decimal::from(50),
                failure_instruments: vec!["hama".into(), "bai".into()],
                cgi_i_failure_above: Some(Decimal::TWO),
                psychotherapy_names: vec!["cbt".into(), "cognitive behavioural therapy".into()],
                min_weeks_pharmacological: Decimal::from(8),
                min_weeks_psychotherapy: Decimal::from(8),
                policy: false,
                source: "Domschke 2024".into(),
            }],
            resistance_in_force: "delphi2024".into(),
            inclusion: vec![
                InclusionRule {
                    key: "g".into(),
                    label: "GAD: HAM-A above 20".into(),
                    diagnoses: vec!["gad".into()],
                    instrument: "hama".into(),
                    greater_than: Decimal::from(20),
                    source: "Glue".into(),
                },
                InclusionRule {
                    key: "s".into(),
                    label: "SAD: LSAS above 60".into(),
                    diagnoses: vec!["sad".into()],
                    instrument: "lsas".into(),
                    greater_than: Decimal::from(60),
                    source: "Taylor".into(),
                },
            ],
            diagnoses: vec![
                DiagnosisName {
                    key: "gad".into(),
                    display: "Generalized anxiety disorder".into(),
                    matches: vec!["gad".into(), "21897009".into(), "F41.1".into()],
                },
                DiagnosisName {
                    key: "sad".into(),
                    display: "Social phobia".into(),
                    matches: vec!["sad".into(), "social anxiety disorder".into()],
                },
            ],
            minimum_age: lim(18),
            bp_exclude: (lim(180), lim(100)),
            bp_caution: (lim(140), lim(90)),
            bp_max_age_days: lim(30),
            liver_uln: LiverLimits { alt: lim(40), ast: lim(40), alp: lim(130), bilirubin: lim(21) },
            liver_review_multiple: lim(3),
            liver_max_age_days: lim(90),
            cssrs_source: "Posner 2011".into(),
            phq9_source: "Kroenke 2001".into(),
            instrument_names: vec![("hama".into(), "HAM-A".into())],
        }
    }

    fn trial(kind: TreatmentKind, name: &str, weeks: i64, b: i64, f: i64) -> PriorTreatment {
        PriorTreatment {
            kind: Some(kind),
            name: name.into(),
            weeks: Some(Decimal::from(weeks)),
            adequate: Some(true),
            instrument: Some("hama".into()),
            baseline: Some(Decimal::from(b)),
            final_score: Some(Decimal::from(f)),
            ..Default::default()
        }
    }

    /// A complete intake of an eligible patient.
    pub(crate) fn eligible() -> Intake {
        Intake {
            age_years: Some(40),
            sex: Some("male".into()),
            weight_kg: Some(Decimal::from(80)),
            height_cm: Some(Decimal::from(180)),
            diagnoses: vec!["gad".into()],
            prior_treatments: vec![
                trial(TreatmentKind::Pharmacological, "sertraline", 12, 26, 20),
                trial(TreatmentKind::Pharmacological, "venlafaxine", 10, 25, 19),
            ],
            medications: vec![MedicineEntry { name: "Sertraline 100 mg daily".into(), rxnorm: None }],
            conditions: vec![],
            bp_systolic: Some(128),
            bp_diastolic: Some(82),
            bp_age_days: Some(3),
            heart_rate: Some(72),
            pregnant: None,
            breastfeeding: None,
            baseline_ratings: vec![BaselineRating { instrument: "hama".into(), total: Decimal::from(24) }],
            liver: Some(LiverTests {
                alt: Some(Decimal::from(25)),
                ast: Some(Decimal::from(22)),
                alp: Some(Decimal::from(80)),
                bilirubin: Some(Decimal::from(9)),
                age_days: Some(10),
            }),
            cssrs_triage: Some("none".into()),
            phq9_item9: Some(0),
        }
    }

    fn codes(s: &Screening) -> Vec<&str> {
        s.findings.iter().map(|f| f.code.as_str()).collect()
    }

    #[test]
    fn a_complete_eligible_intake_is_eligible() {
        let s = screen(&eligible(), &rules(), &[]);
        assert_eq!(s.verdict, Verdict::Eligible, "{:#?}", s.findings);
        assert_eq!(s.resistance, ResistanceStatus::Met);
        assert_eq!(codes(&s), vec!["resistance:met", "inclusion:gad"]);
        assert_eq!(s.medicines[0].ingredient.as_deref(), Some("sertraline"));
    }

    #[test]
    fn the_fifty_percent_boundary_is_a_response_not_a_failure() {
        let def = &rules().resistance[0];
        let j = judge_trial(0, &trial(TreatmentKind::Pharmacological, "x", 8, 20, 10), def, &[]);
        assert_eq!(j.status, TrialStatus::Responded, "{}", j.explanation);
        assert_eq!(j.reduction_percent, Some(Decimal::from(50)));
        let j = judge_trial(0, &trial(TreatmentKind::Pharmacological, "x", 8, 20, 11), def, &[]);
        assert_eq!(j.status, TrialStatus::AdequateFailure, "45 % is a failure");
        // Just below 50 %: 49.99… on a non-integer scale.
        let mut t = trial(TreatmentKind::Pharmacological, "x", 8, 3, 0);
        t.baseline = Some(Decimal::new(30001, 3));
        t.final_score = Some(Decimal::new(15001, 3));
        assert_eq!(judge_trial(0, &t, def, &[]).status, TrialStatus::AdequateFailure, "49.998 % reduction is a failure");
    }

    #[test]
    fn trials_are_explained() {
        let def = &rules().resistance[0];
        let short = judge_trial(0, &trial(TreatmentKind::Pharmacological, "x", 6, 20, 19), def, &[]);
        assert_eq!(short.status, TrialStatus::NotAdequate);
        assert!(short.explanation.contains("6 weeks is shorter than the 8 weeks"), "{}", short.explanation);
        let mut inadequate = trial(TreatmentKind::Pharmacological, "x", 12, 20, 19);
        inadequate.adequate = Some(false);
        assert_eq!(judge_trial(0, &inadequate, def, &[]).status, TrialStatus::NotAdequate);
        let mut no_rating = trial(TreatmentKind::Pharmacological, "x", 12, 20, 19);
        no_rating.instrument = None;
        assert_eq!(judge_trial(0, &no_rating, def, &[]).status, TrialStatus::Unconfirmed);
        let mut other = trial(TreatmentKind::Pharmacological, "x", 12, 20, 19);
        other.instrument = Some("gad7".into());
        let j = judge_trial(0, &other, def, &[("hama".into(), "HAM-A".into())]);
        assert_eq!(j.status, TrialStatus::Unconfirmed);
        assert!(j.explanation.contains("rated on GAD7; Delphi 2024 judges response on HAM-A, BAI"), "{}", j.explanation);
        let cbt = judge_trial(0, &trial(TreatmentKind::Psychotherapy, "Cognitive Behavioural Therapy (12 sessions)", 12, 22, 20), def, &[]);
        assert_eq!(cbt.status, TrialStatus::AdequateFailure);
        let other_therapy = judge_trial(0, &trial(TreatmentKind::Psychotherapy, "psychodynamic therapy", 20, 22, 20), def, &[]);
        assert_eq!(other_therapy.status, TrialStatus::NotCounted);
        let mut cgi = trial(TreatmentKind::Pharmacological, "x", 12, 0, 3);
        cgi.instrument = Some("cgi_i".into());
        assert_eq!(judge_trial(0, &cgi, def, &[]).status, TrialStatus::AdequateFailure);
        cgi.final_score = Some(Decimal::TWO);
        assert_eq!(judge_trial(0, &cgi, def, &[]).status, TrialStatus::Responded);
    }

    #[test]
    fn resistance_needs_two_drug_failures_or_one_cbt_failure() {
        let r = rules();
        let mut i = eligible();
        i.prior_treatments.truncate(1);
        let s = screen(&i, &r, &[]);
        assert_eq!(s.resistance, ResistanceStatus::NotMet);
        assert_eq!(s.verdict, Verdict::NeedsReview);
        assert!(codes(&s).contains(&"resistance:not_met"));
        i.prior_treatments.push(trial(TreatmentKind::Psychotherapy, "CBT", 12, 24, 20));
        assert_eq!(screen(&i, &r, &[]).resistance, ResistanceStatus::Met, "one CBT failure is enough");
        i.prior_treatments.pop();
        let mut unrated = trial(TreatmentKind::Pharmacological, "citalopram", 12, 0, 0);
        unrated.instrument = None;
        i.prior_treatments.push(unrated);
        assert_eq!(screen(&i, &r, &[]).resistance, ResistanceStatus::Unconfirmed);
    }

    #[test]
    fn absolute_contraindications_exclude_and_cannot_be_accepted() {
        let r = rules();
        let mut i = eligible();
        i.conditions.push(ConditionEntry { name: "Schizophrenia".into(), controlled: None });
        let s = screen(&i, &r, &["condition:psychosis".into()]);
        assert_eq!(s.verdict, Verdict::NotEligible);
        let f = s.findings.iter().find(|f| f.code == "condition:psychosis").unwrap();
        assert_eq!(f.severity, Severity::Exclusion);
        assert!(!f.accepted, "an absolute contraindication is never accepted");
        assert_eq!(s.findings[0].code, "condition:psychosis", "most serious first");
    }

    #[test]
    fn relative_findings_need_review_until_accepted() {
        let r = rules();
        let mut i = eligible();
        i.conditions.push(ConditionEntry { name: "bipolar disorder".into(), controlled: None });
        let s = screen(&i, &r, &[]);
        assert_eq!(s.verdict, Verdict::NeedsReview);
        let s = screen(&i, &r, &["condition:bipolar_disorder".into()]);
        assert_eq!(s.verdict, Verdict::EligibleWithCautions);
        assert!(s.findings.iter().any(|f| f.code == "condition:bipolar_disorder" && f.accepted));
    }

    #[test]
    fn hypertension_depends_on_control_and_the_reading() {
        let r = rules();
        let mut i = eligible();
        i.conditions.push(ConditionEntry { name: "hypertension (controlled)".into(), controlled: None });
        let s = screen(&i, &r, &[]);
        assert_eq!(s.verdict, Verdict::EligibleWithCautions);
        assert!(s
            .findings
            .iter()
            .any(|f| f.code == "condition:hypertension" && f.severity == Severity::Caution && f.title.contains("(controlled)")));
        i.conditions[0] = ConditionEntry { name: "uncontrolled hypertension".into(), controlled: None };
        assert_eq!(screen(&i, &r, &[]).verdict, Verdict::NotEligible);
        i.conditions[0] = ConditionEntry { name: "hypertension".into(), controlled: None };
        let s = screen(&i, &r, &[]);
        assert_eq!(s.verdict, Verdict::NeedsReview, "control not recorded: review, not a silent pass");
        // The reading itself: above 180/100 excludes, above 140/90 is a caution; boundaries are not above.
        let mut i = eligible();
        for ((s, d), expected) in [
            ((180, 100), Some(Severity::Caution)),
            ((181, 90), Some(Severity::Exclusion)),
            ((150, 101), Some(Severity::Exclusion)),
            ((141, 80), Some(Severity::Caution)),
            ((140, 90), None),
            ((120, 91), Some(Severity::Caution)),
        ] {
            i.bp_systolic = Some(s);
            i.bp_diastolic = Some(d);
            let got = screen(&i, &r, &[]).findings.iter().find(|f| f.category == Category::BloodPressure).map(|f| f.severity);
            assert_eq!(got, expected, "{s}/{d}");
        }
        i.bp_age_days = Some(31);
        assert!(codes(&screen(&i, &r, &[])).contains(&"missing:blood_pressure"), "an old reading is missing data");
    }

    #[test]
    fn interactions_match_generic_brand_and_rxnorm_names() {
        let r = rules();
        let mut i = eligible();
        i.medications = vec![
            MedicineEntry { name: "Lamictal 200 mg".into(), rxnorm: None },
            MedicineEntry { name: "clonazepam 0.5 mg at night".into(), rxnorm: None },
            MedicineEntry { name: "Anxiolytic tablet".into(), rxnorm: Some("3322".into()) },
        ];
        let s = screen(&i, &r, &[]);
        assert_eq!(s.verdict, Verdict::EligibleWithCautions, "{:#?}", s.findings);
        let benzo = s.findings.iter().find(|f| f.code == "interaction:benzodiazepines").unwrap();
        assert!(benzo.trigger.contains("clonazepam 0.5 mg at night") && benzo.trigger.contains("Anxiolytic tablet"), "{}", benzo.trigger);
        assert!(benzo.title.contains("clonazepam") && benzo.title.contains("diazepam"), "{}", benzo.title);
        let lam = s.findings.iter().find(|f| f.code == "interaction:lamotrigine").unwrap();
        assert!(lam.conflict.is_some());
        // A relative interaction needs review; an unknown medicine is reported, not ignored.
        i.medications =
            vec![MedicineEntry { name: "memantine".into(), rxnorm: None }, MedicineEntry { name: "Zorbex".into(), rxnorm: None }];
        let s = screen(&i, &r, &[]);
        assert_eq!(s.verdict, Verdict::NeedsReview);
        assert!(s.findings.iter().any(|f| f.code == "interaction:memantine" && f.unverified));
        assert!(codes(&s).contains(&"unrecognised:medicine:zorbex"));
        // "Sertralines" is not "sertraline": whole words only.
        i.medications = vec![MedicineEntry { name: "sertralines".into(), rxnorm: None }];
        assert!(codes(&screen(&i, &r, &[])).contains(&"unrecognised:medicine:sertralines"));
    }

    #[test]
    fn missing_data_is_a_finding_never_a_silent_pass() {
        let r = rules();
        let s = screen(&Intake::default(), &r, &[]);
        assert_eq!(s.verdict, Verdict::NeedsReview);
        for c in [
            "missing:age",
            "missing:anxiety_diagnosis",
            "missing:weight",
            "missing:blood_pressure",
            "missing:liver_tests",
            "missing:cssrs",
            "missing:phq9",
            "resistance:not_met",
        ] {
            assert!(codes(&s).contains(&c), "{c} in {:?}", codes(&s));
        }
        let mut i = eligible();
        i.sex = Some("female".into());
        assert!(codes(&screen(&i, &r, &[])).contains(&"missing:pregnancy_status"));
        i.pregnant = Some(true);
        i.breastfeeding = Some(false);
        assert_eq!(screen(&i, &r, &[]).verdict, Verdict::NotEligible);
        i.pregnant = Some(false);
        assert_eq!(screen(&i, &r, &[]).verdict, Verdict::Eligible);
        let mut old = eligible();
        old.liver.as_mut().unwrap().age_days = Some(200);
        assert!(codes(&screen(&old, &r, &[])).contains(&"missing:liver_tests"));
    }

    #[test]
    fn liver_suicide_age_and_inclusion_rules() {
        let r = rules();
        let mut i = eligible();
        i.liver.as_mut().unwrap().alt = Some(Decimal::from(60));
        assert_eq!(screen(&i, &r, &[]).verdict, Verdict::EligibleWithCautions);
        i.liver.as_mut().unwrap().alt = Some(Decimal::from(121));
        assert!(codes(&screen(&i, &r, &[])).contains(&"liver:high"));
        i.liver.as_mut().unwrap().alt = Some(Decimal::from(120));
        assert!(codes(&screen(&i, &r, &[])).contains(&"liver:above_uln"), "exactly 3x ULN is not above it");
        let mut i = eligible();
        i.cssrs_triage = Some("high".into());
        assert_eq!(screen(&i, &r, &[]).verdict, Verdict::NeedsReview);
        i.cssrs_triage = Some("none".into());
        i.phq9_item9 = Some(1);
        assert!(codes(&screen(&i, &r, &[])).contains(&"suicide:phq9_item9"));
        let mut i = eligible();
        i.age_years = Some(17);
        assert_eq!(screen(&i, &r, &[]).verdict, Verdict::NotEligible);
        let mut i = eligible();
        i.baseline_ratings[0].total = Decimal::from(20);
        let s = screen(&i, &r, &[]);
        let f = s.findings.iter().find(|f| f.code == "inclusion:gad").unwrap();
        assert_eq!(f.severity, Severity::Review, "HAM-A 20 is not above 20");
        i.diagnoses = vec!["F41.1".into(), "Social anxiety disorder".into(), "Hoarding".into()];
        let s = screen(&i, &r, &[]);
        assert!(codes(&s).contains(&"missing:baseline:sad"), "{:?}", codes(&s));
        assert!(codes(&s).contains(&"unrecognised:diagnosis:hoarding"));
    }

    #[test]
    fn an_acceptance_holds_only_while_the_finding_rests_on_the_same_data() {
        let r = rules();
        let mut i = eligible();
        i.phq9_item9 = Some(1);
        let bare = screen(&i, &r, &[]);
        assert_eq!(bare.verdict, Verdict::NeedsReview);
        let f = bare.findings.iter().find(|f| f.code == "suicide:phq9_item9").unwrap();
        let signed = ScreeningRecord {
            verdict: Verdict::EligibleWithCautions,
            findings: bare.findings.clone(),
            trials: vec![],
            resistance: ResistanceStatus::Met,
            resistance_definition: String::new(),
            acceptances: vec![Acceptance { code: f.code.clone(), trigger: f.trigger.clone(), reason: "assessed in person".into() }],
            knowledge_version: "t".into(),
            note: None,
        };
        // Same answer: the acceptance stands and the verdict is eligible with cautions.
        let accepted = signed.acceptances_in_force(&bare);
        assert_eq!(accepted, vec!["suicide:phq9_item9".to_owned()]);
        assert_eq!(screen(&i, &r, &accepted).verdict, Verdict::EligibleWithCautions);
        assert!(new_since(&signed, &screen(&i, &r, &accepted)).is_empty());
        // A worse answer since: the acceptance lapses, review again, and it shows as new.
        i.phq9_item9 = Some(3);
        let bare = screen(&i, &r, &[]);
        assert!(signed.acceptances_in_force(&bare).is_empty());
        let now = screen(&i, &r, &signed.acceptances_in_force(&bare));
        assert_eq!(now.verdict, Verdict::NeedsReview);
        assert!(new_since(&signed, &now).iter().any(|f| f.code == "suicide:phq9_item9"));
    }
}
