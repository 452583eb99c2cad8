//! Body weight, height and BMI: the base of every weight-based dose.
//!
//! Weights are metric only and stored as whole grams, heights as whole millimetres, so no
//! binary floating point is involved anywhere in the dose path.
//! Values outside physiological limits are rejected ([`BodyWeight::parse`], [`Height::parse`]);
//! plausible but suspicious values produce warnings ([`assess_weight`], [`assess_height`]) that
//! the person entering them must acknowledge before saving.
//!
//! Every limit and factor comes from [`AnthropometryPolicy`], which the caller builds from the
//! versioned knowledge file `knowledge/anthropometry.toml` (sources are cited there).

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use std::fmt;
use std::str::FromStr;

/// Limits and factors for weight and height checks. Built from the knowledge file.
#[derive(Clone, Debug, PartialEq)]
pub struct AnthropometryPolicy {
    /// Lowest accepted weight, kg (inclusive).
    pub weight_min_kg: Decimal,
    /// Highest accepted weight, kg (inclusive).
    pub weight_max_kg: Decimal,
    /// Lowest accepted height, cm (inclusive).
    pub height_min_cm: Decimal,
    /// Highest accepted height, cm (inclusive).
    pub height_max_cm: Decimal,
    /// Pounds per kilogram (2.2046).
    pub pounds_per_kg: Decimal,
    /// Centimetres per inch (2.54).
    pub cm_per_inch: Decimal,
    /// How close, in percent, a value must be to the converted previous value to suspect a unit mix-up.
    pub unit_match_tolerance_percent: Decimal,
    /// A weight change from the previous weight larger than this percentage is questioned.
    pub weight_change_warn_percent: Decimal,
    /// A height change from the previous height larger than this many cm is questioned.
    pub height_change_warn_cm: Decimal,
    /// BMI below this is questioned.
    pub bmi_warn_below: Decimal,
    /// BMI above this is questioned.
    pub bmi_warn_above: Decimal,
}

impl AnthropometryPolicy {
    /// Checks internal consistency (ordering of limits, positive factors).
    pub fn validate(&self) -> Result<(), String> {
        let pos = |d: Decimal| d > Decimal::ZERO;
        if !(pos(self.weight_min_kg) && self.weight_min_kg < self.weight_max_kg) {
            return Err("weight limits must satisfy 0 < min < max".into());
        }
        if !(pos(self.height_min_cm) && self.height_min_cm < self.height_max_cm) {
            return Err("height limits must satisfy 0 < min < max".into());
        }
        if !(pos(self.bmi_warn_below) && self.bmi_warn_below < self.bmi_warn_above) {
            return Err("BMI band must satisfy 0 < low < high".into());
        }
        if !(pos(self.pounds_per_kg) && pos(self.cm_per_inch) && pos(self.unit_match_tolerance_percent)) {
            return Err("conversion factors and tolerance must be positive".into());
        }
        if !(pos(self.weight_change_warn_percent) && pos(self.height_change_warn_cm)) {
            return Err("change thresholds must be positive".into());
        }
        Ok(())
    }
}

fn parse_decimal(raw: &str, unit: &str, example: &str) -> Result<Decimal, String> {
    let t = raw.trim();
    if t.is_empty() {
        return Err(format!("is required, in {unit} (for example {example})"));
    }
    let lower = t.to_ascii_lowercase();
    if lower.contains("lb") || lower.contains("pound") || lower.contains('"') || lower.contains("in") || lower.contains('\'') {
        return Err(format!("must be in {unit}; other units are not accepted (for example {example})"));
    }
    let cleaned = lower.trim_end_matches(unit).trim();
    if cleaned.contains(',') {
        return Err(format!("must use a point as decimal separator, such as {example}"));
    }
    Decimal::from_str(cleaned).map_err(|_| format!("must be a number of {unit}, such as {example}"))
}

/// A measured body weight, whole grams.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BodyWeight {
    grams: u32,
}

impl BodyWeight {
    /// Parses kilograms (up to three decimals) and rejects values outside the physiological limits.
    pub fn parse(raw: &str, policy: &AnthropometryPolicy) -> Result<Self, String> {
        let kg = parse_decimal(raw, "kg", "72.4")?;
        Self::from_kg(kg, policy)
    }

    /// Checks a kilogram value against the policy limits.
    pub fn from_kg(kg: Decimal, policy: &AnthropometryPolicy) -> Result<Self, String> {
        if kg.scale() > 3 && kg.round_dp(3) != kg {
            return Err("must have at most three decimals (whole grams)".to_owned());
        }
        if kg < policy.weight_min_kg || kg > policy.weight_max_kg {
            return Err(format!(
                "{} kg is outside the accepted range {}–{} kg; weight is entered in kilograms only",
                kg.normalize(),
                policy.weight_min_kg.normalize(),
                policy.weight_max_kg.normalize()
            ));
        }
        let grams = (kg * Decimal::ONE_THOUSAND).to_u32().ok_or("is too large")?;
        Ok(Self { grams })
    }

    /// Wraps a value read back from storage (already validated when recorded).
    pub fn from_grams(grams: u32) -> Self {
        Self { grams }
    }
    /// Whole grams.
    pub fn grams(self) -> u32 {
        self.grams
    }
    /// Kilograms as an exact decimal.
    pub fn kg(self) -> Decimal {
        Decimal::from(self.grams) / Decimal::ONE_THOUSAND
    }
}

impl fmt::Display for BodyWeight {
    /// Kilograms without trailing zeros and with a leading zero, e.g. `72.4 kg`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} kg", self.kg().normalize())
    }
}

impl fmt::Debug for BodyWeight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BodyWeight({}g)", self.grams)
    }
}

/// A measured body height, whole millimetres.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Height {
    mm: u32,
}

impl Height {
    /// Parses centimetres (up to one decimal) and rejects values outside the physiological limits.
    pub fn parse(raw: &str, policy: &AnthropometryPolicy) -> Result<Self, String> {
        let cm = parse_decimal(raw, "cm", "171.5")?;
        Self::from_cm(cm, policy)
    }

    /// Checks a centimetre value against the policy limits.
    pub fn from_cm(cm: Decimal, policy: &AnthropometryPolicy) -> Result<Self, String> {
        if cm.round_dp(1) != cm {
            return Err("must have at most one decimal (whole millimetres)".to_owned());
        }
        if cm < policy.height_min_cm || cm > policy.height_max_cm {
            return Err(format!(
                "{} cm is outside the accepted range {}–{} cm; height is entered in centimetres only",
                cm.normalize(),
                policy.height_min_cm.normalize(),
                policy.height_max_cm.normalize()
            ));
        }
        let mm = (cm * Decimal::TEN).to_u32().ok_or("is too large")?;
        Ok(Self { mm })
    }
    /// Wraps a value read back from storage.
    pub fn from_mm(mm: u32) -> Self {
        Self { mm }
    }
    /// Whole millimetres.
    pub fn mm(self) -> u32 {
        self.mm
    }
    /// Centimetres as an exact decimal.
    pub fn cm(self) -> Decimal {
        Decimal::from(self.mm) / Decimal::TEN
    }
}

impl fmt::Display for Height {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} cm", self.cm().normalize())
    }
}

impl fmt::Debug for Height {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Height({}mm)", self.mm)
    }
}

/// Body-mass index, kg/m², derived from weight and height (never typed), rounded to one decimal.
///
/// Source: WHO definition, weight in kilograms divided by the square of height in metres.
pub fn bmi(weight: BodyWeight, height: Height) -> Decimal {
    let m = Decimal::from(height.mm()) / Decimal::ONE_THOUSAND;
    (weight.kg() / (m * m)).round_dp(1)
}

/// Something about a new weight or height that the person entering it must confirm.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MeasurementWarning {
    /// The new weight is the previous weight times 2.2046: it looks like pounds.
    PossiblePounds {
        /// The previous weight.
        previous: BodyWeight,
    },
    /// The new weight is the previous weight divided by 2.2046: the previous one may have been pounds.
    PreviousMayBePounds {
        /// The previous weight.
        previous: BodyWeight,
    },
    /// The weight changed by more than the policy percentage since the previous weight.
    LargeWeightChange {
        /// The previous weight.
        previous: BodyWeight,
        /// Signed change in percent, one decimal.
        percent: Decimal,
    },
    /// The new height is the previous height divided by 2.54: it looks like inches.
    PossibleInches {
        /// The previous height.
        previous: Height,
    },
    /// The height changed by more than the policy amount since the previous height.
    LargeHeightChange {
        /// The previous height.
        previous: Height,
    },
    /// The BMI from this weight and height lies outside the plausible band.
    BmiOutsideBand {
        /// The BMI.
        bmi: Decimal,
        /// Band low end.
        low: Decimal,
        /// Band high end.
        high: Decimal,
    },
}

impl MeasurementWarning {
    /// Stable code used by the API and forms to acknowledge this warning.
    pub fn code(&self) -> &'static str {
        match self {
            MeasurementWarning::PossiblePounds { .. } => "possible_pounds",
            MeasurementWarning::PreviousMayBePounds { .. } => "previous_may_be_pounds",
            MeasurementWarning::LargeWeightChange { .. } => "large_weight_change",
            MeasurementWarning::PossibleInches { .. } => "possible_inches",
            MeasurementWarning::LargeHeightChange { .. } => "large_height_change",
            MeasurementWarning::BmiOutsideBand { .. } => "bmi_outside_band",
        }
    }

    /// What the person should check, in plain words.
    pub fn message(&self) -> String {
        match self {
            MeasurementWarning::PossiblePounds { previous } => format!(
                "Did you enter pounds? This value is the previous weight ({previous}) multiplied by 2.2046. Weights are entered in kilograms only."
            ),
            MeasurementWarning::PreviousMayBePounds { previous } => format!(
                "This value is the previous weight ({previous}) divided by 2.2046. Check whether the previous weight was entered in pounds; amend it if so."
            ),
            MeasurementWarning::LargeWeightChange { previous, percent } => format!(
                "Weight changed by {}% since the previous weight ({previous}). Re-weigh the patient if this is unexpected.",
                percent.normalize()
            ),
            MeasurementWarning::PossibleInches { previous } => format!(
                "Did you enter inches? This value is the previous height ({previous}) divided by 2.54. Heights are entered in centimetres only."
            ),
            MeasurementWarning::LargeHeightChange { previous } => {
                format!("Height differs noticeably from the previous height ({previous}). Re-measure if this is unexpected.")
            }
            MeasurementWarning::BmiOutsideBand { bmi, low, high } => format!(
                "The BMI from this weight and height is {}, outside the plausible band {}–{}. Check both values.",
                bmi.normalize(),
                low.normalize(),
                high.normalize()
            ),
        }
    }
}

fn close_to(value: Decimal, target: Decimal, tolerance_percent: Decimal) -> bool {
    let tol = target * tolerance_percent / Decimal::ONE_HUNDRED;
    (value - target).abs() <= tol
}

fn bmi_warning(weight: BodyWeight, height: Height, p: &AnthropometryPolicy) -> Option<MeasurementWarning> {
    let b = bmi(weight, height);
    (b < p.bmi_warn_below || b > p.bmi_warn_above).then_some(MeasurementWarning::BmiOutsideBand {
        bmi: b,
        low: p.bmi_warn_below,
        high: p.bmi_warn_above,
    })
}

/// Warnings for a new weight, given the previous weight and latest height if any.
///
/// A unit mix-up warning replaces the large-change warning it implies.
pub fn assess_weight(
    new: BodyWeight,
    previous: Option<BodyWeight>,
    latest_height: Option<Height>,
    p: &AnthropometryPolicy,
) -> Vec<MeasurementWarning> {
    let mut out = Vec::new();
    if let Some(prev) = previous {
        let (n, o) = (new.kg(), prev.kg());
        if close_to(n, o * p.pounds_per_kg, p.unit_match_tolerance_percent) {
            out.push(MeasurementWarning::PossiblePounds { previous: prev });
        } else if close_to(n, o / p.pounds_per_kg, p.unit_match_tolerance_percent) {
            out.push(MeasurementWarning::PreviousMayBePounds { previous: prev });
        } else {
            let percent = ((n - o) / o * Decimal::ONE_HUNDRED).round_dp(1);
            if percent.abs() > p.weight_change_warn_percent {
                out.push(MeasurementWarning::LargeWeightChange { previous: prev, percent });
            }
        }
    }
    if let Some(h) = latest_height {
        out.extend(bmi_warning(new, h, p));
    }
    out
}

/// Warnings for a new height, given the previous height and latest weight if any.
pub fn assess_height(
    new: Height,
    previous: Option<Height>,
    latest_weight: Option<BodyWeight>,
    p: &AnthropometryPolicy,
) -> Vec<MeasurementWarning> {
    let mut out = Vec::new();
    if let Some(prev) = previous {
        if close_to(new.cm(), prev.cm() / p.cm_per_inch, p.unit_match_tolerance_percent) {
            out.push(MeasurementWarning::PossibleInches { previous: prev });
        } else if (new.cm() - prev.cm()).abs() > p.height_change_warn_cm {
            out.push(MeasurementWarning::LargeHeightChange { previous: prev });
        }
    }
    if let Some(w) = latest_weight {
        out.extend(bmi_warning(w, new, p));
    }
    out
}

/// The warnings whose codes are not in `acknowledged`.
pub fn unacknowledged<'a>(warnings: &'a [MeasurementWarning], acknowledged: &[String]) -> Vec<&'a MeasurementWarning> {
    warnings.iter().filter(|w| !acknowledged.iter().any(|a| a == w.code())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    /// Mirrors knowledge/anthropometry.toml; the knowledge crate's tests check they agree.
    pub(crate) fn policy() -> AnthropometryPolicy {
        AnthropometryPolicy {
            weight_min_kg: d("20"),
            weight_max_kg: d("400"),
            height_min_cm: d("100"),
            height_max_cm: d("250"),
            pounds_per_kg: d("2.2046"),
            cm_per_inch: d("2.54"),
            unit_match_tolerance_percent: d("3"),
            weight_change_warn_percent: d("10"),
            height_change_warn_cm: d("3"),
            bmi_warn_below: d("15"),
            bmi_warn_above: d("60"),
        }
    }

    fn w(s: &str) -> BodyWeight {
        BodyWeight::parse(s, &policy()).unwrap()
    }

    #[test]
    fn parses_kilograms_exactly() {
        assert_eq!(w("72.4").grams(), 72_400);
        assert_eq!(w(" 72.4 kg ").grams(), 72_400);
        assert_eq!(w("72.4").to_string(), "72.4 kg");
        assert_eq!(w("80.0").to_string(), "80 kg");
    }

    #[test]
    fn rejects_units_and_garbage_with_field_friendly_messages() {
        let p = policy();
        assert!(BodyWeight::parse("160 lb", &p).unwrap_err().contains("kg"));
        assert!(BodyWeight::parse("72,4", &p).unwrap_err().contains("decimal separator"));
        assert!(BodyWeight::parse("", &p).unwrap_err().contains("required"));
        assert!(BodyWeight::parse("abc", &p).unwrap_err().contains("number of kg"));
        assert!(BodyWeight::parse("4", &p).unwrap_err().contains("outside the accepted range 20–400 kg"));
        assert!(BodyWeight::parse("724", &p).unwrap_err().contains("outside"));
        assert!(BodyWeight::parse("-70", &p).is_err());
        assert!(Height::parse("67 in", &p).is_err());
        assert!(Height::parse("67", &p).unwrap_err().contains("100–250 cm"));
    }

    #[test]
    fn pounds_typed_as_kilograms_is_caught() {
        let warnings = assess_weight(w("176.4"), Some(w("80")), None, &policy());
        assert_eq!(warnings.len(), 1);
        assert_eq!(warnings[0].code(), "possible_pounds");
        assert!(warnings[0].message().contains("Did you enter pounds?"));
    }

    #[test]
    fn previous_weight_in_pounds_is_caught() {
        let warnings = assess_weight(w("80"), Some(w("176.4")), None, &policy());
        assert_eq!(warnings[0].code(), "previous_may_be_pounds");
    }

    #[test]
    fn change_over_ten_percent_is_questioned_and_under_is_not() {
        let p = policy();
        assert!(assess_weight(w("88.8"), Some(w("80")), None, &p)[0].code() == "large_weight_change");
        assert!(assess_weight(w("71.9"), Some(w("80")), None, &p)[0].code() == "large_weight_change");
        assert!(assess_weight(w("88"), Some(w("80")), None, &p).is_empty());
        assert!(assess_weight(w("72"), Some(w("80")), None, &p).is_empty());
    }

    #[test]
    fn bmi_is_derived_and_band_checked() {
        let p = policy();
        let h = Height::parse("180", &p).unwrap();
        assert_eq!(bmi(w("81"), h), d("25.0"));
        let warn = assess_weight(w("40"), None, Some(h), &p);
        assert_eq!(warn[0].code(), "bmi_outside_band");
        let warn = assess_height(Height::parse("120", &p).unwrap(), None, Some(w("120")), &p);
        assert_eq!(warn[0].code(), "bmi_outside_band");
    }

    #[test]
    fn inches_and_height_jumps_are_questioned() {
        let p = policy();
        // 172.7 cm previous; 68 typed (inches) is below the 100 cm floor and rejected outright,
        // so test the inches rule with a tall previous height whose inch value stays in range.
        let prev = Height::parse("250", &p).unwrap();
        let typed = Height::parse("100", &p).unwrap();
        assert_eq!(assess_height(typed, Some(prev), None, &p)[0].code(), "possible_inches");
        let warn = assess_height(Height::parse("176", &p).unwrap(), Some(Height::parse("170", &p).unwrap()), None, &p);
        assert_eq!(warn[0].code(), "large_height_change");
    }

    #[test]
    fn acknowledged_warnings_are_filtered() {
        let warnings = assess_weight(w("176.4"), Some(w("80")), None, &policy());
        assert_eq!(unacknowledged(&warnings, &[]).len(), 1);
        assert!(unacknowledged(&warnings, &["possible_pounds".to_owned()]).is_empty());
    }

    proptest! {
        #[test]
        fn any_previous_weight_times_lb_factor_is_flagged(prev_g in 20_000u32..180_000) {
            let p = policy();
            let prev = BodyWeight::from_grams(prev_g);
            let lb = (prev.kg() * p.pounds_per_kg).round_dp(1);
            if let Ok(new) = BodyWeight::from_kg(lb, &p) {
                let warnings = assess_weight(new, Some(prev), None, &p);
                prop_assert!(warnings.iter().any(|w| w.code() == "possible_pounds"));
            }
        }

        #[test]
        fn small_changes_never_warn(prev_g in 40_000u32..200_000, delta_permille in -90i64..90) {
            let p = policy();
            let prev = BodyWeight::from_grams(prev_g);
            let new_g = i64::from(prev_g) + i64::from(prev_g) * delta_permille / 1000;
            let new = BodyWeight::from_grams(u32::try_from(new_g).unwrap());
            prop_assert!(assess_weight(new, Some(prev), None, &p).is_empty());
        }

        #[test]
        fn parse_never_panics(s in ".{0,20}") {
            let _ = BodyWeight::parse(&s, &policy());
            let _ = Height::parse(&s, &policy());
        }

        #[test]
        fn accepted_weights_are_within_limits(kg in -1000.0f64..1000.0) {
            let p = policy();
            let text = format!("{kg:.1}");
            if let Ok(wt) = BodyWeight::parse(&text, &p) {
                prop_assert!(wt.kg() >= p.weight_min_kg && wt.kg() <= p.weight_max_kg);
            }
        }

        #[test]
        fn bmi_increases_with_weight(h_mm in 1_000u32..2_500, g in 20_000u32..399_000) {
            let h = Height::from_mm(h_mm);
            prop_assert!(bmi(BodyWeight::from_grams(g + 1_000), h) >= bmi(BodyWeight::from_grams(g), h));
        }
    }
}
