//! Rating instruments (GAD-7, PHQ-9, HAM-A, LSAS, ...): their definitions, validation of a
//! completed form, scoring, severity bands, safety flags, and change from baseline with
//! response, remission and the reliable change index.
//!
//! The definitions are data (they come from the knowledge files); this module holds only the
//! rules that interpret them. Answers are whole numbers in the instrument's published item
//! order; `None` means the item was left blank or skipped. A form that is incomplete is
//! rejected unless the instrument's own rule says the item may be blank (an optional,
//! unscored item) or is skipped (C-SSRS skip logic). Nothing is guessed or prorated.

use crate::validation::FieldErrors;
use rust_decimal::{Decimal, MathematicalOps};

/// Who fills the instrument in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Respondent {
    /// The patient (self-report; can be sent as a link).
    Patient,
    /// A clinician rates the patient.
    Clinician,
    /// Either (a self-report and a clinician-administered version exist).
    Either,
}

impl Respondent {
    /// Stable code.
    pub fn code(self) -> &'static str {
        match self {
            Respondent::Patient => "patient",
            Respondent::Clinician => "clinician",
            Respondent::Either => "either",
        }
    }
    /// Parses a code.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "patient" => Ok(Self::Patient),
            "clinician" => Ok(Self::Clinician),
            "either" => Ok(Self::Either),
            _ => Err("must be patient, clinician or either".into()),
        }
    }
}

/// How an item is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnswerKind {
    /// A whole number in `min..=max`.
    Number,
    /// Yes (1) or no (0); typed as `y` or `n`.
    YesNo,
}

/// Whether a higher score means more symptoms or better functioning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Higher is worse (symptom scales).
    HigherIsWorse,
    /// Higher is better (quality of life).
    HigherIsBetter,
}

/// An item is skipped (must be left blank) when another item has a given answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkipRule {
    /// Key of the controlling item.
    pub when_item: String,
    /// The controlling answer that skips this item.
    pub equals: u32,
}

/// One item of an instrument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemDef {
    /// Stable key, e.g. `q9`.
    pub key: String,
    /// Short label (never the licensed item wording).
    pub label: String,
    /// How it is answered.
    pub kind: AnswerKind,
    /// Lowest answer.
    pub min: u32,
    /// Highest answer.
    pub max: u32,
    /// If set, only these answers are valid (e.g. ICSI pain item: 0, 2, 3, 4, 5).
    pub allowed: Option<Vec<u32>>,
    /// Whether the item counts towards the total.
    pub scored: bool,
    /// Whether the item may be left blank.
    pub optional: bool,
    /// Skip logic.
    pub skip: Option<SkipRule>,
    /// LOINC code of the item, where known.
    pub loinc: Option<String>,
    /// Labels of the answers, aligned with [`ItemDef::choices`] (empty: no label).
    pub choice_labels: Vec<String>,
    /// LOINC answer codes, aligned with [`ItemDef::choices`] (empty: none known).
    pub choice_loinc: Vec<String>,
}

impl ItemDef {
    /// The label of answer `v`, if any.
    pub fn choice_label(&self, v: u32) -> Option<&str> {
        let i = self.choices().iter().position(|c| *c == v)?;
        self.choice_labels.get(i).map(String::as_str).filter(|s| !s.is_empty())
    }
    /// The accepted answers, as text for messages and forms.
    pub fn accepted(&self) -> String {
        match (&self.allowed, self.kind) {
            (_, AnswerKind::YesNo) => "y (yes) or n (no)".to_owned(),
            (Some(a), _) => {
                let v: Vec<String> = a.iter().map(u32::to_string).collect();
                format!("one of {}", v.join(", "))
            }
            (None, _) => format!("a whole number from {} to {}", self.min, self.max),
        }
    }
    /// The valid answers in order.
    pub fn choices(&self) -> Vec<u32> {
        match &self.allowed {
            Some(a) => a.clone(),
            None => (self.min..=self.max).collect(),
        }
    }
    fn valid(&self, v: u32) -> bool {
        match &self.allowed {
            Some(a) => a.contains(&v),
            None => v >= self.min && v <= self.max,
        }
    }
}

/// A sum of items (a subscale, or the total when `items` is empty: all scored items).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SumDef {
    /// Stable key, e.g. `psychic`.
    pub key: String,
    /// Label.
    pub label: String,
    /// Item keys summed.
    pub items: Vec<String>,
    /// LOINC code, where known.
    pub loinc: Option<String>,
}

/// A severity band `[min, max]` of the total (inclusive both ends).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Band {
    /// Stable code, e.g. `moderate`.
    pub code: String,
    /// Label.
    pub label: String,
    /// Lowest total in the band.
    pub min: Decimal,
    /// Highest total in the band.
    pub max: Decimal,
}

/// A named set of bands with its source (instruments with conflicting published bands carry
/// several sets; the clinic chooses one, the default is named in the knowledge file).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BandSet {
    /// Stable key, e.g. `matza2010`.
    pub key: String,
    /// Label.
    pub label: String,
    /// Source.
    pub source: String,
    /// Bands in ascending order, contiguous.
    pub bands: Vec<Band>,
}

impl BandSet {
    /// The band holding `total`.
    pub fn band_for(&self, total: Decimal) -> Option<&Band> {
        self.bands.iter().find(|b| total >= b.min && total <= b.max)
    }
}

/// Response: an improvement from baseline of at least (or, if `strict`, more than) a percentage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseRule {
    /// Percent improvement (reduction for symptom scales).
    pub percent: Decimal,
    /// `true`: more than `percent` (LSAS, Taylor 2018); `false`: at least `percent`.
    pub strict: bool,
    /// Whether the default is clinic policy (a local choice) rather than the instrument's rule.
    pub policy: bool,
    /// Source.
    pub source: String,
}

/// Remission: total at or below a cut-off, optionally with no item above a value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemissionRule {
    /// Highest total that counts as remission.
    pub total_at_most: Decimal,
    /// If set, no scored item may be above this.
    pub no_item_above: Option<u32>,
    /// Whether the default is clinic policy (a local choice).
    pub policy: bool,
    /// Source.
    pub source: String,
}

/// Response and remission rules in force (knowledge defaults, or the clinic's choice).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutcomeRules {
    /// Response rule, if the instrument has one.
    pub response: Option<ResponseRule>,
    /// Remission rule, if the instrument has one.
    pub remission: Option<RemissionRule>,
}

/// Published reliability and standard deviation of the total, for the reliable change index
/// of Jacobson and Truax (1991): `RCI = (x2 − x1) / S_diff`, `S_diff = √2 · SD · √(1 − r)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reliability {
    /// Reliability coefficient `r` (test-retest or internal consistency).
    pub coefficient: Decimal,
    /// Standard deviation of the total in the reference sample.
    pub sd: Decimal,
    /// Critical |RCI| (1.96 for p < 0.05 two-sided).
    pub critical: Decimal,
    /// Source.
    pub source: String,
}

impl Reliability {
    /// `S_diff = √2 · SD · √(1 − r)`.
    pub fn s_diff(&self) -> Option<Decimal> {
        let two_var_err = Decimal::TWO * self.sd * self.sd * (Decimal::ONE - self.coefficient);
        two_var_err.sqrt().filter(|s| !s.is_zero())
    }
    /// Smallest change in points that is reliable (`critical · S_diff`).
    pub fn threshold_points(&self) -> Option<Decimal> {
        self.s_diff().map(|s| s * self.critical)
    }
}

/// A condition on a completed form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Condition {
    /// The item's answer is at least `value`.
    ItemAtLeast {
        /// Item key.
        item: String,
        /// Threshold.
        value: u32,
    },
    /// The item's answer is at most `value`.
    ItemAtMost {
        /// Item key.
        item: String,
        /// Threshold.
        value: u32,
    },
    /// Any of the items is at least `value`.
    AnyItemAtLeast {
        /// Item keys.
        items: Vec<String>,
        /// Threshold.
        value: u32,
    },
    /// All of the items are at least `value` (e.g. behaviour ever and within 3 months).
    AllItemsAtLeast {
        /// Item keys.
        items: Vec<String>,
        /// Threshold.
        value: u32,
    },
    /// The total is at least `value`.
    TotalAtLeast(Decimal),
    /// The triage level is one of these.
    TriageIn(Vec<String>),
}

/// A triage level reached when any of its conditions holds (rules are tried in order,
/// the first that matches wins; no match gives the instrument's `triage_none` level).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TriageRule {
    /// Level code, e.g. `high`.
    pub level: String,
    /// Label.
    pub label: String,
    /// Any of these.
    pub any: Vec<Condition>,
    /// LOINC answer code, where known.
    pub loinc_answer: Option<String>,
}

/// A flag raised by a completed form; urgent flags raise a safety alert.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlagRule {
    /// Stable code, e.g. `phq9_item9`.
    pub code: String,
    /// What it means, for the clinician.
    pub label: String,
    /// Whether it raises an urgent alert that must be acknowledged.
    pub urgent: bool,
    /// When it is raised.
    pub when: Condition,
    /// Source.
    pub source: String,
}

/// A rating instrument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instrument {
    /// Stable key, e.g. `gad7`.
    pub key: String,
    /// Short name, e.g. `GAD-7`.
    pub name: String,
    /// Full title.
    pub title: String,
    /// Version of the definition (knowledge file version).
    pub version: String,
    /// Who fills it in.
    pub respondent: Respondent,
    /// Recall period, e.g. "past 2 weeks".
    pub recall: Option<String>,
    /// Licence note.
    pub licence: String,
    /// Source of the scoring rules.
    pub source: String,
    /// Items in published order.
    pub items: Vec<ItemDef>,
    /// Whether there is a total (MOAA/S: the single rating is the total).
    pub has_total: bool,
    /// LOINC code of the total, where known.
    pub total_loinc: Option<String>,
    /// LOINC code of the panel, where known.
    pub panel_loinc: Option<String>,
    /// Report the total also as percent of the maximum (Q-LES-Q-SF).
    pub percent_of_max: bool,
    /// Subscales.
    pub subscales: Vec<SumDef>,
    /// Severity band sets; the first is the default.
    pub band_sets: Vec<BandSet>,
    /// Direction of the total.
    pub direction: Direction,
    /// Default response and remission rules.
    pub default_rules: OutcomeRules,
    /// Published reliability for the reliable change index.
    pub reliability: Option<Reliability>,
    /// Triage rules, in order.
    pub triage: Vec<TriageRule>,
    /// LOINC code of the triage level (C-SSRS risk level 93374-7), where known.
    pub triage_loinc: Option<String>,
    /// Level when no triage rule matches (e.g. `none`).
    pub triage_none: Option<String>,
    /// Flags.
    pub flags: Vec<FlagRule>,
    /// Caveats shown wherever the instrument is (UNVERIFIED conventions, conflicts).
    pub caveats: Vec<String>,
}

/// A score of a subscale.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscaleScore {
    /// Key.
    pub key: String,
    /// Label.
    pub label: String,
    /// Value.
    pub value: Decimal,
    /// Lowest possible.
    pub min: Decimal,
    /// Highest possible.
    pub max: Decimal,
}

/// A raised flag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flag {
    /// Code.
    pub code: String,
    /// Label.
    pub label: String,
    /// Urgent (raises a safety alert).
    pub urgent: bool,
}

/// The result of scoring a valid form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Score {
    /// Instrument key.
    pub instrument: String,
    /// Total (sum of scored items), if the instrument has one.
    pub total: Option<Decimal>,
    /// Range of the total.
    pub total_min: Decimal,
    /// Range of the total.
    pub total_max: Decimal,
    /// Percent of the maximum, `(total − min) / (max − min) × 100`, if the instrument reports it.
    pub percent_max: Option<Decimal>,
    /// Subscales.
    pub subscales: Vec<SubscaleScore>,
    /// Severity band (code and label) under the band set used.
    pub band: Option<Band>,
    /// Triage level (C-SSRS).
    pub triage: Option<String>,
    /// Flags raised.
    pub flags: Vec<Flag>,
}

impl Score {
    /// Whether any urgent flag was raised.
    pub fn has_urgent_flag(&self) -> bool {
        self.flags.iter().any(|f| f.urgent)
    }
}

impl Instrument {
    /// The item with `key`.
    pub fn item(&self, key: &str) -> Option<&ItemDef> {
        self.items.iter().find(|i| i.key == key)
    }

    fn index(&self, key: &str) -> Option<usize> {
        self.items.iter().position(|i| i.key == key)
    }

    /// The default band set.
    pub fn default_band_set(&self) -> Option<&BandSet> {
        self.band_sets.first()
    }

    /// The band set with `key`, or the default.
    pub fn band_set(&self, key: Option<&str>) -> Option<&BandSet> {
        key.and_then(|k| self.band_sets.iter().find(|b| b.key == k)).or_else(|| self.default_band_set())
    }

    /// Range of the total (sum of the scored items' minimum and maximum).
    pub fn total_range(&self) -> (Decimal, Decimal) {
        self.range_of(self.items.iter().filter(|i| i.scored))
    }

    fn range_of<'a>(&self, items: impl Iterator<Item = &'a ItemDef>) -> (Decimal, Decimal) {
        items.fold((Decimal::ZERO, Decimal::ZERO), |(lo, hi), i| (lo + Decimal::from(i.min), hi + Decimal::from(i.max)))
    }

    /// Whether item `i` is skipped given the other answers.
    fn skipped(&self, item: &ItemDef, answers: &[Option<u32>]) -> Option<bool> {
        let rule = item.skip.as_ref()?;
        let ctl = self.index(&rule.when_item)?;
        answers.get(ctl).copied().flatten().map(|v| v == rule.equals)
    }

    /// Checks a completed form: every missing, skipped-but-answered or out-of-range item is
    /// named. `answers` is in published item order; trailing optional items may be omitted.
    pub fn validate(&self, answers: &[Option<u32>]) -> Result<(), FieldErrors> {
        let mut errors = FieldErrors::new();
        if answers.len() > self.items.len() {
            errors.add("items", format!("{} has {} items; {} answers were given", self.name, self.items.len(), answers.len()));
            return Err(errors);
        }
        for (n, item) in self.items.iter().enumerate() {
            let answer = answers.get(n).copied().flatten();
            let name = format!("{} item {} ({})", self.name, n + 1, item.label);
            match self.skipped(item, answers) {
                Some(true) => {
                    if answer.is_some() {
                        let ctl = self.index(&item.skip.as_ref().map(|s| s.when_item.clone()).unwrap_or_default()).unwrap_or(0);
                        errors.add(&item.key, format!("{name} is skipped when item {} is answered that way; leave it blank (-)", ctl + 1));
                    }
                    continue;
                }
                None if item.skip.is_some() => {
                    // The controlling item is missing: that item's own error says so.
                    if let Some(v) = answer {
                        if !item.valid(v) {
                            errors.add(&item.key, format!("{name} must be {}; got {v}", item.accepted()));
                        }
                    }
                    continue;
                }
                _ => {}
            }
            match answer {
                None if item.optional => {}
                None => errors.add(&item.key, format!("{name} is missing; enter {}", item.accepted())),
                Some(v) if !item.valid(v) => errors.add(&item.key, format!("{name} must be {}; got {v}", item.accepted())),
                Some(_) => {}
            }
        }
        errors.into_result()
    }

    /// Validates and scores a completed form.
    pub fn score(&self, answers: &[Option<u32>], band_set: Option<&str>) -> Result<Score, FieldErrors> {
        self.validate(answers)?;
        let value = |key: &str| self.index(key).and_then(|i| answers.get(i).copied().flatten()).unwrap_or(0);
        let sum = |keys: &[String]| keys.iter().map(|k| Decimal::from(value(k))).sum::<Decimal>();
        let (total_min, total_max) = self.total_range();
        let total: Option<Decimal> = self.has_total.then(|| {
            self.items
                .iter()
                .enumerate()
                .filter(|(_, i)| i.scored)
                .map(|(n, _)| Decimal::from(answers.get(n).copied().flatten().unwrap_or(0)))
                .sum()
        });
        let percent_max = match total {
            Some(t) if self.percent_of_max && total_max > total_min => {
                Some(((t - total_min) * Decimal::ONE_HUNDRED / (total_max - total_min)).round_dp(2))
            }
            _ => None,
        };
        let subscales = self
            .subscales
            .iter()
            .map(|s| {
                let (min, max) = self.range_of(s.items.iter().filter_map(|k| self.item(k)));
                SubscaleScore { key: s.key.clone(), label: s.label.clone(), value: sum(&s.items), min, max }
            })
            .collect();
        let band = total.and_then(|t| self.band_set(band_set).and_then(|s| s.band_for(t)).cloned());
        let holds = |c: &Condition, triage: Option<&str>| match c {
            Condition::ItemAtLeast { item, value: v } => value(item) >= *v,
            Condition::ItemAtMost { item, value: v } => value(item) <= *v,
            Condition::AnyItemAtLeast { items, value: v } => items.iter().any(|k| value(k) >= *v),
            Condition::AllItemsAtLeast { items, value: v } => items.iter().all(|k| value(k) >= *v),
            Condition::TotalAtLeast(t) => total.is_some_and(|x| x >= *t),
            Condition::TriageIn(levels) => triage.is_some_and(|l| levels.iter().any(|x| x == l)),
        };
        let triage = if self.triage.is_empty() {
            None
        } else {
            self.triage.iter().find(|r| r.any.iter().any(|c| holds(c, None))).map(|r| r.level.clone()).or_else(|| self.triage_none.clone())
        };
        let flags = self
            .flags
            .iter()
            .filter(|f| holds(&f.when, triage.as_deref()))
            .map(|f| Flag { code: f.code.clone(), label: f.label.clone(), urgent: f.urgent })
            .collect();
        Ok(Score { instrument: self.key.clone(), total, total_min, total_max, percent_max, subscales, band, triage, flags })
    }

    /// Parses answers typed as `3,2,2,1` (numbers) or `y,n,-` (yes/no; `-` or empty = blank).
    /// Errors name the position and the accepted form.
    pub fn parse_answers(&self, text: &str) -> Result<Vec<Option<u32>>, FieldErrors> {
        let mut errors = FieldErrors::new();
        let mut out = Vec::new();
        let parts: Vec<&str> = if text.trim().is_empty() { Vec::new() } else { text.split(',').map(str::trim).collect() };
        for (n, raw) in parts.iter().enumerate() {
            let Some(item) = self.items.get(n) else {
                errors.add("items", format!("{} has {} items; {} answers were given", self.name, self.items.len(), parts.len()));
                return Err(errors);
            };
            out.push(match parse_one(item, raw) {
                Ok(v) => v,
                Err(msg) => {
                    errors.add(&item.key, format!("{} item {} ({}) {msg}", self.name, n + 1, item.label));
                    None
                }
            });
        }
        errors.into_result().map(|()| out)
    }
}

/// Parses one typed answer for `item`: `-` or empty is blank; yes/no items take `y`/`n`
/// (or `1`/`0`); number items take a whole number.
pub fn parse_one(item: &ItemDef, raw: &str) -> Result<Option<u32>, String> {
    let t = raw.trim();
    if t.is_empty() || t == "-" {
        return Ok(None);
    }
    match item.kind {
        AnswerKind::YesNo => match t.to_ascii_lowercase().as_str() {
            "y" | "yes" | "1" => Ok(Some(1)),
            "n" | "no" | "0" => Ok(Some(0)),
            _ => Err(format!("must be {}, or - if skipped; got {t:?}", item.accepted())),
        },
        AnswerKind::Number => t.parse::<u32>().map(Some).map_err(|_| format!("must be {}; got {t:?}", item.accepted())),
    }
}

/// Whether a change is a reliable improvement, a reliable deterioration, or within error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReliableChange {
    /// |RCI| above the critical value, in the better direction.
    Improved,
    /// |RCI| above the critical value, in the worse direction.
    Deteriorated,
    /// Within measurement error.
    NoReliableChange,
}

impl ReliableChange {
    /// Stable code.
    pub fn code(self) -> &'static str {
        match self {
            ReliableChange::Improved => "improved",
            ReliableChange::Deteriorated => "deteriorated",
            ReliableChange::NoReliableChange => "no_reliable_change",
        }
    }
}

/// Change from baseline to a later score.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Baseline total.
    pub baseline: Decimal,
    /// Current total.
    pub current: Decimal,
    /// `current − baseline` in points.
    pub change: Decimal,
    /// `(current − baseline) / baseline × 100`, rounded to 2 places; `None` when baseline is 0.
    pub change_percent: Option<Decimal>,
    /// Whether the response rule is met (`None` when the instrument has no rule or the
    /// baseline is 0).
    pub response: Option<bool>,
    /// Whether the remission rule is met (`None` when there is no rule, or it needs item
    /// answers that were not given).
    pub remission: Option<bool>,
    /// Reliable change index, rounded to 2 places.
    pub rci: Option<Decimal>,
    /// Classification of the RCI.
    pub reliable_change: Option<ReliableChange>,
}

/// Why an outcome cannot be computed.
pub fn check_total(inst: &Instrument, field: &str, v: Decimal) -> Result<(), String> {
    let (lo, hi) = inst.total_range();
    if v < lo || v > hi || !v.fract().is_zero() {
        return Err(format!("{field} must be a whole-number {} total from {lo} to {hi}; got {v}", inst.name));
    }
    Ok(())
}

impl Instrument {
    /// Change from `baseline` to `current` under `rules`. `current_items` (the current form's
    /// answers) are needed only for remission rules with an item condition.
    pub fn outcome(
        &self,
        rules: &OutcomeRules,
        baseline: Decimal,
        current: Decimal,
        current_items: Option<&[Option<u32>]>,
    ) -> Result<Outcome, FieldErrors> {
        let mut errors = FieldErrors::new();
        if !self.has_total {
            errors.add("instrument", format!("{} has no total to compare", self.name));
            return Err(errors);
        }
        if let Err(e) = check_total(self, "baseline", baseline) {
            errors.add("baseline", e);
        }
        if let Err(e) = check_total(self, "current", current) {
            errors.add("current", e);
        }
        errors.into_result()?;
        let change = current - baseline;
        let change_percent = (!baseline.is_zero()).then(|| (change * Decimal::ONE_HUNDRED / baseline).round_dp(2));
        // Improvement in points: reduction for symptom scales, increase for quality of life.
        let improvement = match self.direction {
            Direction::HigherIsWorse => baseline - current,
            Direction::HigherIsBetter => current - baseline,
        };
        // Exact comparison by cross-multiplication: improvement/baseline*100 (>|>=) percent.
        let response = rules.response.as_ref().and_then(|r| {
            if baseline <= Decimal::ZERO {
                return None;
            }
            let lhs = improvement * Decimal::ONE_HUNDRED;
            let rhs = r.percent * baseline;
            Some(if r.strict { lhs > rhs } else { lhs >= rhs })
        });
        let remission = rules.remission.as_ref().and_then(|r| {
            let total_ok = match self.direction {
                Direction::HigherIsWorse => current <= r.total_at_most,
                Direction::HigherIsBetter => current >= r.total_at_most,
            };
            match r.no_item_above {
                None => Some(total_ok),
                Some(max) => current_items
                    .map(|items| total_ok && self.items.iter().zip(items.iter()).all(|(d, a)| !d.scored || a.unwrap_or(0) <= max)),
            }
        });
        let (rci, reliable_change) = match self.reliability.as_ref().and_then(|r| r.s_diff().map(|s| (r, s))) {
            Some((r, s_diff)) => {
                let rci = change / s_diff;
                let better = match self.direction {
                    Direction::HigherIsWorse => rci < Decimal::ZERO,
                    Direction::HigherIsBetter => rci > Decimal::ZERO,
                };
                let class = if rci.abs() > r.critical {
                    if better {
                        ReliableChange::Improved
                    } else {
                        ReliableChange::Deteriorated
                    }
                } else {
                    ReliableChange::NoReliableChange
                };
                (Some(rci.round_dp(2)), Some(class))
            }
            None => (None, None),
        };
        Ok(Outcome { baseline, current, change, change_percent, response, remission, rci, reliable_change })
    }

    /// Checks the definition itself: keys unique, ranges sane, subscale and rule items exist,
    /// bands contiguous and inside the total's range. Used when the knowledge files load.
    pub fn check_definition(&self) -> Result<(), String> {
        let mut seen = std::collections::BTreeSet::new();
        if self.items.is_empty() {
            return Err(format!("{}: no items", self.key));
        }
        for i in &self.items {
            if !seen.insert(i.key.as_str()) {
                return Err(format!("{}: duplicate item key {}", self.key, i.key));
            }
            if i.min > i.max {
                return Err(format!("{}: item {} has min above max", self.key, i.key));
            }
            if let Some(a) = &i.allowed {
                if a.is_empty() || a.iter().any(|v| *v < i.min || *v > i.max) {
                    return Err(format!("{}: item {} allowed values outside its range", self.key, i.key));
                }
            }
            let n = i.choices().len();
            if (!i.choice_labels.is_empty() && i.choice_labels.len() != n) || (!i.choice_loinc.is_empty() && i.choice_loinc.len() != n) {
                return Err(format!("{}: item {} needs one choice label per answer ({n})", self.key, i.key));
            }
            if let Some(s) = &i.skip {
                if self.index(&s.when_item).is_none_or(|c| Some(c) >= self.index(&i.key)) {
                    return Err(format!("{}: item {} skip rule must name an earlier item", self.key, i.key));
                }
            }
        }
        let known = |k: &String| self.index(k).is_some();
        for s in &self.subscales {
            if s.items.is_empty() || !s.items.iter().all(known) {
                return Err(format!("{}: subscale {} names an unknown item", self.key, s.key));
            }
        }
        let cond_ok = |c: &Condition| match c {
            Condition::ItemAtLeast { item, .. } | Condition::ItemAtMost { item, .. } => known(item),
            Condition::AnyItemAtLeast { items, .. } | Condition::AllItemsAtLeast { items, .. } => {
                !items.is_empty() && items.iter().all(known)
            }
            Condition::TotalAtLeast(_) => self.has_total,
            Condition::TriageIn(l) => l.iter().all(|x| self.triage.iter().any(|r| &r.level == x) || self.triage_none.as_ref() == Some(x)),
        };
        for r in &self.triage {
            if r.any.is_empty() || !r.any.iter().all(cond_ok) || r.any.iter().any(|c| matches!(c, Condition::TriageIn(_))) {
                return Err(format!("{}: triage rule {} is invalid", self.key, r.level));
            }
        }
        for f in &self.flags {
            if !cond_ok(&f.when) {
                return Err(format!("{}: flag {} names an unknown item or level", self.key, f.code));
            }
        }
        let (lo, hi) = self.total_range();
        for set in &self.band_sets {
            let mut expect = lo;
            for b in &set.bands {
                if b.min != expect || b.max < b.min {
                    return Err(format!("{}: band set {} is not contiguous at {}", self.key, set.key, b.code));
                }
                expect = b.max + Decimal::ONE;
            }
            if expect != hi + Decimal::ONE {
                return Err(format!("{}: band set {} does not end at the maximum total {hi}", self.key, set.key));
            }
        }
        if let Some(r) = &self.reliability {
            if r.coefficient <= Decimal::ZERO || r.coefficient >= Decimal::ONE || r.sd <= Decimal::ZERO {
                return Err(format!("{}: reliability needs 0 < r < 1 and SD > 0", self.key));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    fn item(key: &str, min: u32, max: u32) -> ItemDef {
        ItemDef {
            key: key.into(),
            label: key.into(),
            kind: AnswerKind::Number,
            min,
            max,
            allowed: None,
            scored: true,
            optional: false,
            skip: None,
            loinc: None,
            choice_labels: vec![],
            choice_loinc: vec![],
        }
    }

    pub(crate) fn three_item() -> Instrument {
        Instrument {
            key: "t3".into(),
            name: "T-3".into(),
            title: "Test".into(),
            version: "1".into(),
            respondent: Respondent::Patient,
            recall: None,
            licence: "public".into(),
            source: "test".into(),
            items: vec![item("a", 0, 3), item("b", 0, 3), ItemDef { allowed: Some(vec![0, 2, 3]), ..item("c", 0, 3) }],
            has_total: true,
            total_loinc: None,
            panel_loinc: None,
            percent_of_max: true,
            subscales: vec![SumDef { key: "ab".into(), label: "A+B".into(), items: vec!["a".into(), "b".into()], loinc: None }],
            band_sets: vec![BandSet {
                key: "x".into(),
                label: "x".into(),
                source: "s".into(),
                bands: vec![
                    Band { code: "low".into(), label: "Low".into(), min: Decimal::ZERO, max: Decimal::from(4) },
                    Band { code: "high".into(), label: "High".into(), min: Decimal::from(5), max: Decimal::from(9) },
                ],
            }],
            direction: Direction::HigherIsWorse,
            default_rules: OutcomeRules {
                response: Some(ResponseRule { percent: Decimal::from(35), strict: true, policy: false, source: "s".into() }),
                remission: Some(RemissionRule {
                    total_at_most: Decimal::from(2),
                    no_item_above: Some(1),
                    policy: false,
                    source: "s".into(),
                }),
            },
            reliability: Some(Reliability {
                coefficient: Decimal::new(84, 2),
                sd: Decimal::from(2),
                critical: Decimal::new(196, 2),
                source: "s".into(),
            }),
            triage: vec![],
            triage_loinc: None,
            triage_none: None,
            flags: vec![FlagRule {
                code: "c_pos".into(),
                label: "c".into(),
                urgent: true,
                when: Condition::ItemAtLeast { item: "c".into(), value: 2 },
                source: "s".into(),
            }],
            caveats: vec![],
        }
    }

    #[test]
    fn definition_is_consistent() {
        three_item().check_definition().unwrap();
    }

    #[test]
    fn scores_total_subscale_band_percent_and_flags() {
        let s = three_item().score(&[Some(3), Some(1), Some(2)], None).unwrap();
        assert_eq!(s.total, Some(Decimal::from(6)));
        assert_eq!(s.subscales[0].value, Decimal::from(4));
        assert_eq!(s.band.as_ref().unwrap().code, "high");
        assert_eq!(s.percent_max, Some(Decimal::new(6667, 2)));
        assert!(s.has_urgent_flag());
    }

    #[test]
    fn names_every_bad_item() {
        let e = three_item().validate(&[None, Some(4), Some(1)]).unwrap_err();
        let fields: Vec<_> = e.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["a", "b", "c"]);
        assert!(e.for_field("b").unwrap().contains("from 0 to 3"));
        assert!(e.for_field("c").unwrap().contains("one of 0, 2, 3"));
        let e = three_item().parse_answers("1,2,3,4").unwrap_err();
        assert!(e.for_field("items").unwrap().contains("has 3 items"));
        let e = three_item().parse_answers("1,x,2").unwrap_err();
        assert!(e.for_field("b").unwrap().contains("item 2"));
    }

    #[test]
    fn strict_response_and_item_remission() {
        let t = three_item();
        let r = &t.default_rules;
        // 35 % exactly is not "more than 35 %".
        let e = t.outcome(r, Decimal::from(20), Decimal::from(13), None).unwrap_err();
        assert!(e.for_field("baseline").unwrap().contains("from 0 to 9"));
        let o = t.outcome(r, Decimal::from(9), Decimal::from(6), None).unwrap();
        assert_eq!(o.response, Some(false)); // 33.3 %
        let o = t.outcome(r, Decimal::from(9), Decimal::from(5), None).unwrap();
        assert_eq!(o.response, Some(true)); // 44.4 %
        assert_eq!(o.change_percent, Some(Decimal::new(-4444, 2)));
        assert_eq!(t.outcome(r, Decimal::from(9), Decimal::from(2), None).unwrap().remission, None);
        let items = [Some(1), Some(1), Some(0)];
        assert_eq!(t.outcome(r, Decimal::from(9), Decimal::from(2), Some(&items)).unwrap().remission, Some(true));
        let items = [Some(2), Some(0), Some(0)];
        assert_eq!(t.outcome(r, Decimal::from(9), Decimal::from(2), Some(&items)).unwrap().remission, Some(false));
    }

    #[test]
    fn reliable_change_index() {
        // S_diff = sqrt(2) * 2 * sqrt(0.16) = 1.1314; 1.96 * S_diff = 2.2174 points.
        let t = three_item();
        let o = t.outcome(&t.default_rules, Decimal::from(9), Decimal::from(6), None).unwrap();
        assert_eq!(o.rci, Some(Decimal::new(-265, 2)));
        assert_eq!(o.reliable_change, Some(ReliableChange::Improved));
        let o = t.outcome(&t.default_rules, Decimal::from(5), Decimal::from(7), None).unwrap();
        assert_eq!(o.reliable_change, Some(ReliableChange::NoReliableChange));
        let o = t.outcome(&t.default_rules, Decimal::from(0), Decimal::from(3), None).unwrap();
        assert_eq!(o.reliable_change, Some(ReliableChange::Deteriorated));
        assert_eq!(o.change_percent, None);
        assert_eq!(o.response, None);
    }

    proptest! {
        #[test]
        fn never_panics_and_totals_stay_in_range(answers in proptest::collection::vec(proptest::option::of(0u32..10), 0..6)) {
            let t = three_item();
            if let Ok(s) = t.score(&answers, None) {
                let total = s.total.unwrap();
                prop_assert!(total >= s.total_min && total <= s.total_max);
            }
        }
    }
}
