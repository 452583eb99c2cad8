//! The dose calculator: weight basis (actual, ideal by Devine, adjusted with the 0.4 factor),
//! dose in mg, drug volume from a concentration on the shelf (never typed), dilution, rate, and
//! the checks of a drug library with soft limits (a reason and a second clinician) and hard
//! limits (nobody passes them).
//!
//! Every amount is an exact decimal (`rust_decimal`), never binary floating point. Each result
//! carries the chain of calculation as steps a person can check, and every displayed dose goes
//! through [`format_amount`] (no trailing zero, always a leading zero).

use crate::validation::FieldErrors;
use rust_decimal::Decimal;

/// Route of administration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Route {
    /// Intravenous infusion.
    Iv,
    /// Subcutaneous injection.
    Sc,
    /// Intramuscular injection.
    Im,
    /// Intranasal (esketamine devices).
    In,
}

impl Route {
    /// All routes.
    pub const ALL: [Route; 4] = [Route::Iv, Route::Sc, Route::Im, Route::In];
    /// Stable code.
    pub fn code(self) -> &'static str {
        match self {
            Route::Iv => "iv",
            Route::Sc => "sc",
            Route::Im => "im",
            Route::In => "in",
        }
    }
    /// Label.
    pub fn label(self) -> &'static str {
        match self {
            Route::Iv => "Intravenous infusion",
            Route::Sc => "Subcutaneous injection",
            Route::Im => "Intramuscular injection",
            Route::In => "Intranasal",
        }
    }
    /// Parses a code.
    pub fn parse(s: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|r| r.code() == s.trim().to_lowercase()).ok_or_else(|| "must be iv, sc, im or in".to_owned())
    }
    /// Whether the route is given over time (has a rate).
    pub fn infused(self) -> bool {
        self == Route::Iv
    }
}

/// Which body weight a mg/kg dose is based on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightBasis {
    /// Actual (measured) body weight.
    Actual,
    /// Ideal body weight (Devine 1974).
    Ideal,
    /// Adjusted body weight: IBW + factor × (ABW − IBW).
    Adjusted,
}

impl WeightBasis {
    /// Stable code.
    pub fn code(self) -> &'static str {
        match self {
            WeightBasis::Actual => "actual",
            WeightBasis::Ideal => "ideal",
            WeightBasis::Adjusted => "adjusted",
        }
    }
    /// Parses a code.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim() {
            "actual" => Ok(Self::Actual),
            "ideal" => Ok(Self::Ideal),
            "adjusted" => Ok(Self::Adjusted),
            _ => Err("must be actual, ideal or adjusted".into()),
        }
    }
}

/// A number with its source (from the knowledge files or the clinic's drug library).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sourced {
    /// Value.
    pub value: Decimal,
    /// Source.
    pub source: String,
}

/// A pair of limits, either of which may be absent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Band {
    /// Lowest allowed.
    pub min: Option<Sourced>,
    /// Highest allowed.
    pub max: Option<Sourced>,
}

/// Soft and hard limits of one quantity.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// Soft: a reason and a second clinician may pass them.
    pub soft: Band,
    /// Hard: nobody passes them.
    pub hard: Band,
}

/// The drug library's rules for one drug by one route.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteLimits {
    /// Dose in mg/kg.
    pub mg_per_kg: Limits,
    /// Total mg in one dose.
    pub total_mg: Limits,
    /// Rate in mg/kg/h (infusions).
    pub mg_per_kg_per_h: Limits,
    /// Infusion time in minutes (infusions).
    pub minutes: Limits,
    /// Cumulative mg over the last 7 days, this dose included.
    pub cumulative_7d_mg: Limits,
    /// Cumulative mg over the last 28 days, this dose included.
    pub cumulative_28d_mg: Limits,
    /// Fixed-dose devices (intranasal): mg per device; doses must be whole devices.
    pub device_mg: Option<Decimal>,
}

/// Policy of the calculator (clinic defaults from the knowledge files).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CalculatorPolicy {
    /// Concentrations on the shelf, mg/mL.
    pub concentrations_mg_per_ml: Vec<Decimal>,
    /// Drawing-up resolution of the syringe, mL.
    pub volume_step_ml: Decimal,
    /// Pump rate resolution, mL/h.
    pub rate_step_ml_per_h: Decimal,
    /// Adjusted-weight factor (0.4).
    pub adjusted_factor: Decimal,
    /// Devine constants: male base, female base, per inch above 60 in, inches per cm.
    pub devine_male_kg: Decimal,
    /// Female base, kg.
    pub devine_female_kg: Decimal,
    /// kg per inch over 5 feet.
    pub devine_kg_per_inch: Decimal,
    /// cm per inch.
    pub cm_per_inch: Decimal,
    /// BMI at which a caution suggests ideal body weight (APA consensus).
    pub bmi_ideal_caution: Decimal,
    /// Source of the weight formulas.
    pub weight_source: String,
}

/// What the prescriber asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DoseRequest {
    /// Route.
    pub route: Route,
    /// Measured body weight, kg.
    pub weight_kg: Decimal,
    /// Height, cm (for BMI, IBW and AdjBW).
    pub height_cm: Option<Decimal>,
    /// `male` or `female` (for IBW).
    pub sex: Option<String>,
    /// Basis chosen.
    pub basis: WeightBasis,
    /// Dose in mg/kg (weight-based routes).
    pub mg_per_kg: Option<Decimal>,
    /// Fixed dose in mg (intranasal devices).
    pub fixed_mg: Option<Decimal>,
    /// Concentration chosen from the shelf, mg/mL (not for intranasal).
    pub concentration_mg_per_ml: Option<Decimal>,
    /// Final volume after dilution, mL (infusions; `None`: undiluted).
    pub final_volume_ml: Option<Decimal>,
    /// Infusion time, minutes (infusions).
    pub minutes: Option<Decimal>,
    /// mg already given in the last 7 and 28 days (from the record).
    pub given_7d_mg: Decimal,
    /// mg given in the last 28 days.
    pub given_28d_mg: Decimal,
}

/// How a limit was met.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LimitLevel {
    /// Outside a hard limit: refused for everyone.
    Hard,
    /// Outside a soft limit: needs a reason and a second clinician.
    Soft,
}

impl LimitLevel {
    /// Stable code.
    pub fn code(self) -> &'static str {
        match self {
            LimitLevel::Hard => "hard",
            LimitLevel::Soft => "soft",
        }
    }
}

/// A limit breached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Breach {
    /// Hard or soft.
    pub level: LimitLevel,
    /// Which quantity, e.g. `mg_per_kg`, `total_mg`, `rate`.
    pub quantity: String,
    /// What happened, e.g. "1.2 mg/kg is above the hard maximum of 1 mg/kg".
    pub message: String,
    /// Source of the limit.
    pub source: String,
}

/// The result of a dose calculation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DoseResult {
    /// Route.
    pub route: Route,
    /// BMI, where height is known.
    pub bmi: Option<Decimal>,
    /// Ideal body weight, kg (Devine), where height and sex are known.
    pub ibw_kg: Option<Decimal>,
    /// Adjusted body weight, kg.
    pub adjbw_kg: Option<Decimal>,
    /// Weight used, kg.
    pub weight_used_kg: Decimal,
    /// Basis used.
    pub basis: WeightBasis,
    /// Dose asked for (before rounding to the syringe), mg.
    pub dose_requested_mg: Decimal,
    /// Dose that will be given (after rounding the volume), mg.
    pub dose_mg: Decimal,
    /// mg/kg actually given.
    pub dose_mg_per_kg: Decimal,
    /// Concentration, mg/mL.
    pub concentration_mg_per_ml: Option<Decimal>,
    /// Drug volume to draw, mL (rounded to the syringe).
    pub drug_volume_ml: Option<Decimal>,
    /// Diluent to add, mL.
    pub diluent_ml: Option<Decimal>,
    /// Final volume, mL.
    pub final_volume_ml: Option<Decimal>,
    /// Final concentration, mg/mL.
    pub final_concentration_mg_per_ml: Option<Decimal>,
    /// Infusion time, minutes.
    pub minutes: Option<Decimal>,
    /// Pump rate, mL/h (rounded to the pump).
    pub rate_ml_per_h: Option<Decimal>,
    /// Rate, mg/h.
    pub rate_mg_per_h: Option<Decimal>,
    /// Rate, mg/kg/h.
    pub rate_mg_per_kg_per_h: Option<Decimal>,
    /// Intranasal devices.
    pub devices: Option<u32>,
    /// The chain of calculation, step by step.
    pub steps: Vec<String>,
    /// Cautions that need no override (e.g. BMI above the ideal-weight threshold).
    pub warnings: Vec<String>,
    /// Limits breached, hard first.
    pub breaches: Vec<Breach>,
}

impl DoseResult {
    /// Whether a hard limit was breached (the dose cannot be given).
    pub fn refused(&self) -> bool {
        self.breaches.iter().any(|b| b.level == LimitLevel::Hard)
    }
    /// Whether a soft limit was breached (needs a reason and a second clinician).
    pub fn needs_override(&self) -> bool {
        !self.refused() && self.breaches.iter().any(|b| b.level == LimitLevel::Soft)
    }
}

/// Formats an amount for display and print: no trailing zeros ("5", never "5.0"), always a
/// leading zero ("0.5", never ".5"), thousands grouped with commas ("1,250").
pub fn format_amount(d: Decimal) -> String {
    let n = d.normalize();
    let neg = n.is_sign_negative() && !n.is_zero();
    let text = n.abs().to_string();
    let (int, frac) = match text.split_once('.') {
        Some((i, f)) => (i.to_owned(), Some(f.to_owned())),
        None => (text.clone(), None),
    };
    let int = if int.is_empty() { "0".to_owned() } else { int };
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let mut out = if neg { format!("-{grouped}") } else { grouped };
    if let Some(f) = frac {
        out.push('.');
        out.push_str(&f);
    }
    out
}

/// Rounds down to a multiple of `step` (never rounds a dose up).
fn floor_to(x: Decimal, step: Decimal) -> Decimal {
    if step <= Decimal::ZERO {
        return x;
    }
    ((x / step).floor() * step).normalize()
}

/// Rounds to the nearest multiple of `step` (half away from zero).
fn round_to(x: Decimal, step: Decimal) -> Decimal {
    if step <= Decimal::ZERO {
        return x;
    }
    ((x / step).round() * step).normalize()
}

fn f(d: Decimal) -> String {
    format_amount(d)
}

/// Ideal body weight by Devine: 50 kg (male) or 45.5 kg (female) + 2.3 kg per inch over 60.
pub fn ideal_body_weight(height_cm: Decimal, sex: &str, p: &CalculatorPolicy) -> Option<Decimal> {
    let base = match sex {
        "male" => p.devine_male_kg,
        "female" => p.devine_female_kg,
        _ => return None,
    };
    let inches = height_cm / p.cm_per_inch;
    Some((base + p.devine_kg_per_inch * (inches - Decimal::from(60))).round_dp(1))
}

fn check(value: Decimal, limits: &Limits, quantity: &str, what: &str, unit: &str, out: &mut Vec<Breach>) {
    let mut add = |level: LimitLevel, bound: &Sourced, above: bool| {
        let side = match (level, above) {
            (LimitLevel::Hard, true) => "hard maximum",
            (LimitLevel::Hard, false) => "hard minimum",
            (LimitLevel::Soft, true) => "soft maximum",
            (LimitLevel::Soft, false) => "soft minimum",
        };
        out.push(Breach {
            level,
            quantity: quantity.to_owned(),
            message: format!(
                "{what} {} {unit} is {} the {side} of {} {unit}",
                f(value),
                if above { "above" } else { "below" },
                f(bound.value)
            ),
            source: bound.source.clone(),
        });
    };
    if let Some(m) = &limits.hard.max {
        if value > m.value {
            add(LimitLevel::Hard, m, true);
            return;
        }
    }
    if let Some(m) = &limits.hard.min {
        if value < m.value {
            add(LimitLevel::Hard, m, false);
            return;
        }
    }
    if let Some(m) = &limits.soft.max {
        if value > m.value {
            add(LimitLevel::Soft, m, true);
        }
    }
    if let Some(m) = &limits.soft.min {
        if value < m.value {
            add(LimitLevel::Soft, m, false);
        }
    }
}

/// Calculates a dose and checks it against the drug library's limits for its route. Input
/// that cannot make a dose (a concentration not on the shelf, a final volume smaller than the
/// drug volume, a missing infusion time) is a validation error naming the field.
pub fn calculate(req: &DoseRequest, limits: &RouteLimits, p: &CalculatorPolicy) -> Result<DoseResult, FieldErrors> {
    let mut e = FieldErrors::new();
    let mut steps = Vec::new();
    let mut warnings = Vec::new();
    if req.weight_kg <= Decimal::ZERO {
        e.add("weight_kg", "must be a positive weight in kilograms");
    }
    if req.route == Route::In {
        if req.fixed_mg.is_none() {
            e.add("dose_mg", "is required for intranasal doses (whole devices), for example 56");
        }
    } else if req.mg_per_kg.is_none_or(|d| d <= Decimal::ZERO) {
        e.add("mg_per_kg", "is required: a dose in mg/kg above 0, for example 0.5");
    }
    if req.route != Route::In {
        match req.concentration_mg_per_ml {
            None => e.add(
                "concentration_mg_per_ml",
                format!(
                    "is required: choose one on the shelf ({} mg/mL)",
                    p.concentrations_mg_per_ml.iter().map(|c| f(*c)).collect::<Vec<_>>().join(", ")
                ),
            ),
            Some(c) if !p.concentrations_mg_per_ml.contains(&c.normalize()) && !p.concentrations_mg_per_ml.contains(&c) => e.add(
                "concentration_mg_per_ml",
                format!(
                    "{} mg/mL is not a concentration on the shelf; choose {} mg/mL",
                    f(c),
                    p.concentrations_mg_per_ml.iter().map(|c| f(*c)).collect::<Vec<_>>().join(", ")
                ),
            ),
            Some(_) => {}
        }
    }
    if req.route.infused() && req.minutes.is_none_or(|m| m <= Decimal::ZERO) {
        e.add("minutes", "is required for an infusion: the infusion time in minutes above 0, for example 40");
    }
    if req.route.infused() && req.final_volume_ml.is_none() {
        e.add(
            "final_volume_ml",
            "is required for an infusion: the final volume after dilution in mL, for example 100 (vials are diluted before IV use)",
        );
    }
    // Bounds far outside any dose, so that nothing typed can overflow the arithmetic.
    let caps: [(&str, Option<Decimal>, i64, &str); 7] = [
        ("weight_kg", Some(req.weight_kg), 1000, "kg"),
        ("height_cm", req.height_cm, 300, "cm"),
        ("mg_per_kg", req.mg_per_kg, 100, "mg/kg"),
        ("dose_mg", req.fixed_mg, 10_000, "mg"),
        ("concentration_mg_per_ml", req.concentration_mg_per_ml, 1000, "mg/mL"),
        ("final_volume_ml", req.final_volume_ml, 10_000, "mL"),
        ("minutes", req.minutes, 10_000, "minutes"),
    ];
    for (field, v, max, unit) in caps {
        if v.is_some_and(|v| v > Decimal::from(max)) {
            e.add(field, format!("must be at most {max} {unit}"));
        }
    }
    if req.height_cm.is_some_and(|h| h < Decimal::from(50)) {
        e.add("height_cm", "must be a height in centimetres of at least 50");
    }
    if !req.route.infused() && (req.minutes.is_some() || req.final_volume_ml.is_some()) {
        e.add(
            if req.minutes.is_some() { "minutes" } else { "final_volume_ml" },
            format!("{} doses are given at once: they have no infusion time or dilution", req.route.code().to_uppercase()),
        );
    }
    e.into_result()?;

    // Weight basis.
    let bmi = req.height_cm.filter(|h| *h > Decimal::ZERO).map(|h| {
        let m = h / Decimal::ONE_HUNDRED;
        (req.weight_kg / (m * m)).round_dp(1)
    });
    let ibw = match (req.height_cm, req.sex.as_deref()) {
        (Some(h), Some(s)) => ideal_body_weight(h, s, p),
        _ => None,
    };
    let adj = ibw.map(|i| if req.weight_kg < i { req.weight_kg } else { (i + p.adjusted_factor * (req.weight_kg - i)).round_dp(1) });
    steps.push(format!("Measured weight {} kg", f(req.weight_kg)));
    if let Some(b) = bmi {
        steps.push(format!(
            "BMI = {} kg / ({} m)² = {}",
            f(req.weight_kg),
            f(req.height_cm.unwrap_or_default() / Decimal::ONE_HUNDRED),
            f(b)
        ));
    }
    if let (Some(i), Some(h)) = (ibw, req.height_cm) {
        steps.push(format!(
            "Ideal body weight (Devine) = {} kg + {} kg × ({} cm ÷ {} − 60 in) = {} kg",
            f(if req.sex.as_deref() == Some("male") { p.devine_male_kg } else { p.devine_female_kg }),
            f(p.devine_kg_per_inch),
            f(h),
            f(p.cm_per_inch),
            f(i)
        ));
    }
    if let (Some(a), Some(i)) = (adj, ibw) {
        if req.weight_kg < i {
            steps.push(format!("Adjusted body weight = actual weight {} kg (below the ideal weight)", f(a)));
        } else {
            steps.push(format!(
                "Adjusted body weight = {} + {} × ({} − {}) = {} kg",
                f(i),
                f(p.adjusted_factor),
                f(req.weight_kg),
                f(i),
                f(a)
            ));
        }
    }
    let weight_used = match req.basis {
        WeightBasis::Actual => req.weight_kg,
        WeightBasis::Ideal => match ibw {
            Some(i) => i.min(req.weight_kg),
            None => {
                return Err(FieldErrors::single("weight_basis", "ideal weight needs the height (cm) and the sex (male or female)"));
            }
        },
        WeightBasis::Adjusted => match adj {
            Some(a) => a,
            None => return Err(FieldErrors::single("weight_basis", "adjusted weight needs the height (cm) and the sex (male or female)")),
        },
    };
    steps.push(format!("Weight used ({}): {} kg", req.basis.code(), f(weight_used)));
    if let Some(b) = bmi {
        if b >= p.bmi_ideal_caution && req.basis == WeightBasis::Actual {
            warnings.push(format!(
                "BMI {} is {} or more: the APA consensus suggested dosing on ideal body weight ({}); trials dosed on actual weight.",
                f(b),
                f(p.bmi_ideal_caution),
                ibw.map(|i| format!("{} kg", f(i))).unwrap_or_else(|| "needs height and sex".into())
            ));
        }
    }

    let mut breaches = Vec::new();
    let (dose_requested, dose, volume, devices) = if req.route == Route::In {
        let mg = req.fixed_mg.unwrap_or_default();
        let device = limits.device_mg.unwrap_or(Decimal::from(28));
        let n = mg / device;
        if !n.fract().is_zero() || n <= Decimal::ZERO {
            return Err(FieldErrors::single(
                "dose_mg",
                format!("must be whole {} mg devices (for example 28, 56 or 84); got {} mg", f(device), f(mg)),
            ));
        }
        steps.push(format!("{} mg = {} devices of {} mg", f(mg), f(n), f(device)));
        (mg, mg, None, u32::try_from(n.trunc().mantissa()).ok())
    } else {
        let mgkg = req.mg_per_kg.unwrap_or_default();
        let conc = req.concentration_mg_per_ml.unwrap_or(Decimal::ONE);
        let requested = mgkg * weight_used;
        steps.push(format!("Dose = {} mg/kg × {} kg = {} mg", f(mgkg), f(weight_used), f(requested)));
        let raw_volume = requested / conc;
        let volume = floor_to(raw_volume, p.volume_step_ml);
        let given = volume * conc;
        steps.push(format!(
            "Drug volume = {} mg ÷ {} mg/mL = {} mL, drawn as {} mL (syringe steps of {} mL, rounded down)",
            f(requested),
            f(conc),
            f(raw_volume.round_dp(4)),
            f(volume),
            f(p.volume_step_ml)
        ));
        if volume <= Decimal::ZERO {
            return Err(FieldErrors::single(
                "concentration_mg_per_ml",
                format!(
                    "{} mg at {} mg/mL is less than one syringe step ({} mL): choose a lower concentration",
                    f(requested),
                    f(conc),
                    f(p.volume_step_ml)
                ),
            ));
        }
        if given != requested {
            steps.push(format!("Dose given = {} mL × {} mg/mL = {} mg", f(volume), f(conc), f(given)));
        }
        (requested, given.normalize(), Some(volume), None)
    };
    // Limits are checked on exact values; only the display is rounded.
    let exact_mg_per_kg = dose / weight_used;
    let dose_mg_per_kg = exact_mg_per_kg.round_dp(3);
    if req.route != Route::In {
        check(exact_mg_per_kg, &limits.mg_per_kg, "mg_per_kg", "Dose", "mg/kg", &mut breaches);
    }
    check(dose, &limits.total_mg, "total_mg", "Dose", "mg", &mut breaches);
    let c7 = req.given_7d_mg + dose;
    let c28 = req.given_28d_mg + dose;
    if req.given_7d_mg > Decimal::ZERO || req.given_28d_mg > Decimal::ZERO {
        steps.push(format!("Cumulative with this dose: {} mg in 7 days, {} mg in 28 days", f(c7), f(c28)));
    }
    check(c7, &limits.cumulative_7d_mg, "cumulative_7d_mg", "Cumulative 7-day dose", "mg", &mut breaches);
    check(c28, &limits.cumulative_28d_mg, "cumulative_28d_mg", "Cumulative 28-day dose", "mg", &mut breaches);

    let mut result = DoseResult {
        route: req.route,
        bmi,
        ibw_kg: ibw,
        adjbw_kg: adj,
        weight_used_kg: weight_used,
        basis: req.basis,
        dose_requested_mg: dose_requested.normalize(),
        dose_mg: dose,
        dose_mg_per_kg,
        concentration_mg_per_ml: req.concentration_mg_per_ml.filter(|_| req.route != Route::In),
        drug_volume_ml: volume,
        diluent_ml: None,
        final_volume_ml: None,
        final_concentration_mg_per_ml: None,
        minutes: None,
        rate_ml_per_h: None,
        rate_mg_per_h: None,
        rate_mg_per_kg_per_h: None,
        devices,
        steps,
        warnings,
        breaches: Vec::new(),
    };
    if req.route.infused() {
        let minutes = req.minutes.unwrap_or(Decimal::ONE);
        let volume = volume.unwrap_or_default();
        let final_volume = req.final_volume_ml.unwrap_or(volume);
        if final_volume < volume {
            return Err(FieldErrors::single(
                "final_volume_ml",
                format!("{} mL is less than the drug volume of {} mL; the final volume includes the drug", f(final_volume), f(volume)),
            ));
        }
        let diluent = final_volume - volume;
        let exact_conc = dose / final_volume;
        let final_conc = exact_conc.round_dp(4);
        let hours = minutes / Decimal::from(60);
        let rate_ml = round_to(final_volume / hours, p.rate_step_ml_per_h);
        if rate_ml <= Decimal::ZERO {
            return Err(FieldErrors::single(
                "minutes",
                format!(
                    "the rate would round to 0 mL/h (pump steps of {} mL/h): shorten the infusion or dilute to a larger volume",
                    f(p.rate_step_ml_per_h)
                ),
            ));
        }
        // The rate the pump will actually run (rounded to its steps) is what the limits check.
        let actual_mg_per_h = rate_ml * exact_conc;
        let actual_mg_per_kg_per_h = actual_mg_per_h / weight_used;
        let rate_mg = actual_mg_per_h.round_dp(3);
        let rate_mgkg = actual_mg_per_kg_per_h.round_dp(3);
        result.steps.push(format!("Diluent = {} mL final − {} mL drug = {} mL", f(final_volume), f(volume), f(diluent)));
        result.steps.push(format!("Final concentration = {} mg ÷ {} mL = {} mg/mL", f(dose), f(final_volume), f(final_conc)));
        result.steps.push(format!(
            "Rate = {} mL ÷ {} min × 60 = {} mL/h (pump steps of {} mL/h); {} mg/h; {} mg/kg/h",
            f(final_volume),
            f(minutes),
            f(rate_ml),
            f(p.rate_step_ml_per_h),
            f(rate_mg),
            f(rate_mgkg)
        ));
        check(actual_mg_per_kg_per_h, &limits.mg_per_kg_per_h, "rate", "Rate", "mg/kg/h", &mut breaches);
        check(minutes, &limits.minutes, "minutes", "Infusion time", "min", &mut breaches);
        result.diluent_ml = Some(diluent);
        result.final_volume_ml = Some(final_volume);
        result.final_concentration_mg_per_ml = Some(final_conc);
        result.minutes = Some(minutes);
        result.rate_ml_per_h = Some(rate_ml);
        result.rate_mg_per_h = Some(rate_mg);
        result.rate_mg_per_kg_per_h = Some(rate_mgkg);
    }
    breaches.sort_by_key(|b| b.level);
    result.breaches = breaches;
    Ok(result)
}

/// One step of a protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolStep {
    /// Stable key within the protocol.
    pub key: String,
    /// Label, e.g. "Ascending dose 1 of 3".
    pub label: String,
    /// Day from the start of the protocol.
    pub day: u32,
    /// Dose rule in mg/kg (weight-based routes).
    pub mg_per_kg: Option<Decimal>,
    /// Fixed dose in mg (intranasal).
    pub fixed_mg: Option<Decimal>,
    /// Infusion time, minutes.
    pub minutes: Option<u32>,
    /// Repeats every so many days (maintenance), from `day`.
    pub repeat_every_days: Option<u32>,
    /// Last day of the repeats.
    pub repeat_until_day: Option<u32>,
    /// Assessments due, as `instrument@timepoint`.
    pub assessments: Vec<String>,
    /// Criteria to move on.
    pub move_on: String,
}

impl ProtocolStep {
    /// The dose rule in words, e.g. "0.5 mg/kg over 40 min" or "56 mg".
    pub fn dose_rule(&self) -> String {
        let dose = match (self.mg_per_kg, self.fixed_mg) {
            (Some(m), _) => format!("{} mg/kg", format_amount(m)),
            (None, Some(f)) => format!("{} mg", format_amount(f)),
            (None, None) => "no dose".into(),
        };
        match self.minutes {
            Some(m) => format!("{dose} over {m} min"),
            None => dose,
        }
    }
    /// The timing in words.
    pub fn timing(&self) -> String {
        match (self.repeat_every_days, self.repeat_until_day) {
            (Some(e), Some(u)) => format!("from day {} every {e} days until day {u}", self.day),
            (Some(e), None) => format!("from day {} every {e} days", self.day),
            _ => format!("day {}", self.day),
        }
    }
}

/// A published protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Protocol {
    /// Stable key, e.g. `sc_ascending`.
    pub key: String,
    /// Name.
    pub name: String,
    /// Route.
    pub route: Route,
    /// Indication.
    pub indication: String,
    /// Source.
    pub source: String,
    /// Steps in order.
    pub steps: Vec<ProtocolStep>,
}

/// A dose request as typed (forms, API, CLI): every field text, parsed with errors that name
/// the field and the accepted form.
#[derive(Clone, Debug, Default)]
pub struct DoseInput {
    /// iv, sc, im or in.
    pub route: String,
    /// Kilograms.
    pub weight_kg: String,
    /// mg/kg.
    pub mg_per_kg: String,
    /// mg (intranasal).
    pub dose_mg: String,
    /// mg/mL.
    pub concentration_mg_per_ml: String,
    /// mL.
    pub final_volume_ml: String,
    /// Minutes.
    pub minutes: String,
    /// cm.
    pub height_cm: String,
    /// male or female.
    pub sex: String,
    /// actual, ideal or adjusted (empty: the library's default).
    pub weight_basis: String,
}

fn positive(e: &mut FieldErrors, field: &str, raw: &str, unit: &str) -> Option<Decimal> {
    let t = raw.trim();
    if t.is_empty() {
        return None;
    }
    match t.parse::<Decimal>() {
        Ok(d) if d > Decimal::ZERO => Some(d),
        _ => {
            e.add(field, format!("must be a positive number in {unit}; got {t:?}"));
            None
        }
    }
}

/// The weight basis when the prescriber chose none: `obese` at or above `bmi_threshold` (when
/// height is known), else `default`.
pub fn basis_for(
    weight_kg: Decimal,
    height_cm: Option<Decimal>,
    default: WeightBasis,
    obese: WeightBasis,
    bmi_threshold: Decimal,
) -> WeightBasis {
    match height_cm.filter(|h| *h > Decimal::ZERO) {
        Some(h) => {
            // Checked: an absurd height (the calculator refuses it, with its field, afterwards)
            // must not overflow here first.
            let m = h / Decimal::ONE_HUNDRED;
            match m.checked_mul(m).and_then(|m2| weight_kg.checked_div(m2)) {
                Some(bmi) if bmi.round_dp(1) >= bmi_threshold => obese,
                _ => default,
            }
        }
        None => default,
    }
}

impl DoseInput {
    /// Parses the typed fields. `weight_range` is the plausible range in kg (a weight outside it
    /// is refused as a likely pounds-for-kilograms error).
    pub fn parse(&self, default_basis: WeightBasis, weight_range: (Decimal, Decimal)) -> Result<DoseRequest, FieldErrors> {
        let mut e = FieldErrors::new();
        let route = e.check("route", Route::parse(&self.route));
        let weight = positive(&mut e, "weight_kg", &self.weight_kg, "kilograms");
        if self.weight_kg.trim().is_empty() {
            e.add("weight_kg", "is required: the weight measured today, in kilograms");
        }
        if let Some(w) = weight {
            if w < weight_range.0 || w > weight_range.1 {
                e.add(
                    "weight_kg",
                    format!(
                        "must be from {} to {} kg; got {} (was it typed in pounds?)",
                        format_amount(weight_range.0),
                        format_amount(weight_range.1),
                        format_amount(w)
                    ),
                );
            }
        }
        let basis = match self.weight_basis.trim() {
            "" => Some(default_basis),
            b => e.check("weight_basis", WeightBasis::parse(b)),
        };
        let sex = match self.sex.trim().to_lowercase().as_str() {
            "" => None,
            s @ ("male" | "female") => Some(s.to_owned()),
            _ => {
                e.add("sex", "must be male or female (for the ideal body weight)");
                None
            }
        };
        let req = DoseRequest {
            route: route.unwrap_or(Route::Iv),
            weight_kg: weight.unwrap_or_default(),
            height_cm: positive(&mut e, "height_cm", &self.height_cm, "centimetres"),
            sex,
            basis: basis.unwrap_or(WeightBasis::Actual),
            mg_per_kg: positive(&mut e, "mg_per_kg", &self.mg_per_kg, "mg/kg"),
            fixed_mg: positive(&mut e, "dose_mg", &self.dose_mg, "mg"),
            concentration_mg_per_ml: positive(&mut e, "concentration_mg_per_ml", &self.concentration_mg_per_ml, "mg/mL"),
            final_volume_ml: positive(&mut e, "final_volume_ml", &self.final_volume_ml, "mL"),
            minutes: positive(&mut e, "minutes", &self.minutes, "minutes"),
            given_7d_mg: Decimal::ZERO,
            given_28d_mg: Decimal::ZERO,
        };
        e.into_result()?;
        Ok(req)
    }
}

/// What happened to one evaluation of a dose against the drug library (the pump-style log).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EvaluationOutcome {
    /// Within every limit.
    Accepted,
    /// A soft limit breached; not (yet) overridden.
    SoftBreach,
    /// A soft-limit breach overridden with a reason and a second clinician.
    Overridden,
    /// A hard limit breached: refused.
    Rejected,
    /// The independent double check did not match the order.
    CheckMismatch,
}

impl EvaluationOutcome {
    /// All outcomes.
    pub const ALL: [EvaluationOutcome; 5] = [
        EvaluationOutcome::Accepted,
        EvaluationOutcome::SoftBreach,
        EvaluationOutcome::Overridden,
        EvaluationOutcome::Rejected,
        EvaluationOutcome::CheckMismatch,
    ];
    /// Stable code.
    pub fn code(self) -> &'static str {
        match self {
            EvaluationOutcome::Accepted => "accepted",
            EvaluationOutcome::SoftBreach => "soft_breach",
            EvaluationOutcome::Overridden => "overridden",
            EvaluationOutcome::Rejected => "rejected",
            EvaluationOutcome::CheckMismatch => "check_mismatch",
        }
    }
    /// Parses a code.
    pub fn parse(s: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|o| o.code() == s).ok_or_else(|| format!("unknown evaluation outcome {s}"))
    }
    /// Of a calculation result (before any override).
    pub fn of(r: &DoseResult) -> Self {
        if r.refused() {
            EvaluationOutcome::Rejected
        } else if r.needs_override() {
            EvaluationOutcome::SoftBreach
        } else {
            EvaluationOutcome::Accepted
        }
    }
}

/// One logged evaluation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DoseEvaluation {
    /// Id.
    pub id: crate::ids::RecordId,
    /// When.
    pub at: chrono::DateTime<chrono::Utc>,
    /// Who evaluated (the prescriber, or the checker for a mismatch).
    pub username: String,
    /// Their user id.
    pub user_id: crate::ids::UserId,
    /// Patient, when the dose was for one (`None`: the stand-alone calculator).
    pub patient_id: Option<crate::ids::PatientId>,
    /// The order, when there is one.
    pub order_id: Option<crate::ids::RecordId>,
    /// Drug.
    pub drug: String,
    /// Route.
    pub route: Route,
    /// Dose, mg.
    pub dose_mg: Decimal,
    /// Dose, mg/kg.
    pub mg_per_kg: Option<Decimal>,
    /// Outcome.
    pub outcome: EvaluationOutcome,
    /// The limits breached, as text.
    pub breaches: Vec<String>,
    /// Override reason.
    pub reason: Option<String>,
    /// Second clinician (override approval or double check).
    pub second_username: Option<String>,
}

/// A row of the quality report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QualityRow {
    /// What the row groups by (route or user).
    pub key: String,
    /// Evaluations.
    pub total: u32,
    /// Accepted.
    pub accepted: u32,
    /// Soft breaches not overridden.
    pub soft: u32,
    /// Overridden.
    pub overridden: u32,
    /// Rejected by a hard limit.
    pub rejected: u32,
    /// Double-check mismatches.
    pub mismatches: u32,
}

impl QualityRow {
    fn add(&mut self, o: EvaluationOutcome) {
        self.total += 1;
        match o {
            EvaluationOutcome::Accepted => self.accepted += 1,
            EvaluationOutcome::SoftBreach => self.soft += 1,
            EvaluationOutcome::Overridden => self.overridden += 1,
            EvaluationOutcome::Rejected => self.rejected += 1,
            EvaluationOutcome::CheckMismatch => self.mismatches += 1,
        }
    }
    /// Overrides per soft breach, in percent (`None` without soft breaches).
    pub fn override_rate_percent(&self) -> Option<Decimal> {
        let soft = self.soft + self.overridden;
        (soft > 0).then(|| (Decimal::from(self.overridden) * Decimal::ONE_HUNDRED / Decimal::from(soft)).round_dp(1))
    }
}

/// The drug-library quality report, like an infusion pump's: by drug and route, and by user.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QualityReport {
    /// All evaluations.
    pub all: QualityRow,
    /// By `drug route`.
    pub by_route: Vec<QualityRow>,
    /// By user.
    pub by_user: Vec<QualityRow>,
}

/// Aggregates logged evaluations.
pub fn quality_report(evals: &[DoseEvaluation]) -> QualityReport {
    let mut r = QualityReport { all: QualityRow { key: "all".into(), ..Default::default() }, ..Default::default() };
    for e in evals {
        r.all.add(e.outcome);
        let rk = format!("{} {}", e.drug, e.route.code());
        match r.by_route.iter_mut().find(|x| x.key == rk) {
            Some(x) => x.add(e.outcome),
            None => {
                let mut x = QualityRow { key: rk, ..Default::default() };
                x.add(e.outcome);
                r.by_route.push(x);
            }
        }
        match r.by_user.iter_mut().find(|x| x.key == e.username) {
            Some(x) => x.add(e.outcome),
            None => {
                let mut x = QualityRow { key: e.username.clone(), ..Default::default() };
                x.add(e.outcome);
                r.by_user.push(x);
            }
        }
    }
    r.by_route.sort_by(|a, b| a.key.cmp(&b.key));
    r.by_user.sort_by(|a, b| a.key.cmp(&b.key));
    r
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn s(v: &str) -> Option<Sourced> {
        Some(Sourced { value: d(v), source: "test limit".into() })
    }

    pub(crate) fn policy() -> CalculatorPolicy {
        CalculatorPolicy {
            concentrations_mg_per_ml: vec![d("10"), d("50"), d("100")],
            volume_step_ml: d("0.01"),
            rate_step_ml_per_h: d("0.1"),
            adjusted_factor: d("0.4"),
            devine_male_kg: d("50"),
            devine_female_kg: d("45.5"),
            devine_kg_per_inch: d("2.3"),
            cm_per_inch: d("2.54"),
            bmi_ideal_caution: d("30"),
            weight_source: "Devine 1974".into(),
        }
    }

    pub(crate) fn iv_limits() -> RouteLimits {
        RouteLimits {
            mg_per_kg: Limits { soft: Band { min: s("0.1"), max: s("0.75") }, hard: Band { min: s("0.05"), max: s("1") } },
            total_mg: Limits { soft: Band { min: None, max: s("80") }, hard: Band { min: None, max: s("120") } },
            mg_per_kg_per_h: Limits { soft: Band { min: None, max: s("1.125") }, hard: Band { min: None, max: s("1.5") } },
            minutes: Limits { soft: Band { min: s("40"), max: s("100") }, hard: Band { min: s("2"), max: s("240") } },
            cumulative_7d_mg: Limits { soft: Band { min: None, max: s("200") }, hard: Band { min: None, max: s("300") } },
            cumulative_28d_mg: Limits::default(),
            device_mg: None,
        }
    }

    fn iv(weight: &str, mgkg: &str) -> DoseRequest {
        DoseRequest {
            route: Route::Iv,
            weight_kg: d(weight),
            height_cm: None,
            sex: None,
            basis: WeightBasis::Actual,
            mg_per_kg: Some(d(mgkg)),
            fixed_mg: None,
            concentration_mg_per_ml: Some(d("10")),
            final_volume_ml: Some(d("100")),
            minutes: Some(d("40")),
            given_7d_mg: Decimal::ZERO,
            given_28d_mg: Decimal::ZERO,
        }
    }

    #[test]
    fn the_worked_iv_example() {
        // 72 kg, 0.5 mg/kg over 40 min, 10 mg/mL into 100 mL.
        let r = calculate(&iv("72", "0.5"), &iv_limits(), &policy()).unwrap();
        assert_eq!(r.dose_mg, d("36"));
        assert_eq!(r.drug_volume_ml, Some(d("3.6")));
        assert_eq!(r.diluent_ml, Some(d("96.4")));
        assert_eq!(r.final_concentration_mg_per_ml, Some(d("0.36")));
        assert_eq!(r.rate_ml_per_h, Some(d("150")));
        assert_eq!(r.rate_mg_per_h, Some(d("54")));
        assert_eq!(r.rate_mg_per_kg_per_h, Some(d("0.75")));
        assert!(r.breaches.is_empty(), "{:?}", r.breaches);
        assert!(r.steps.iter().any(|s| s == "Dose = 0.5 mg/kg × 72 kg = 36 mg"), "{:?}", r.steps);
    }

    #[test]
    fn weight_bases_follow_devine_and_the_adjusted_factor() {
        let mut r = iv("100", "0.5");
        r.height_cm = Some(d("175.26")); // 69 in
        r.sex = Some("male".into());
        let out = calculate(&r, &iv_limits(), &policy()).unwrap();
        assert_eq!(out.ibw_kg, Some(d("70.7")), "50 + 2.3 × 9");
        assert_eq!(out.adjbw_kg, Some(d("82.4")), "70.7 + 0.4 × 29.3 = 82.42");
        assert_eq!(out.bmi, Some(d("32.6")));
        assert!(out.warnings.iter().any(|w| w.contains("ideal body weight")), "{:?}", out.warnings);
        r.basis = WeightBasis::Ideal;
        let out = calculate(&r, &iv_limits(), &policy()).unwrap();
        assert_eq!(out.weight_used_kg, d("70.7"));
        assert_eq!(out.dose_requested_mg, d("35.35"));
        assert_eq!(out.dose_mg, d("35.3"), "3.535 mL is drawn as 3.53 mL");
        r.basis = WeightBasis::Adjusted;
        assert_eq!(calculate(&r, &iv_limits(), &policy()).unwrap().weight_used_kg, d("82.4"));
        // Below the ideal weight, the actual weight is used for ideal and adjusted.
        r.weight_kg = d("60");
        assert_eq!(calculate(&r, &iv_limits(), &policy()).unwrap().weight_used_kg, d("60"));
        r.sex = Some("female".into());
        r.height_cm = Some(d("160.02")); // 63 in
        r.basis = WeightBasis::Ideal;
        r.weight_kg = d("70");
        assert_eq!(calculate(&r, &iv_limits(), &policy()).unwrap().ibw_kg, d("52.4").into(), "45.5 + 2.3 × 3");
    }

    #[test]
    fn limits_hard_and_soft() {
        let out = calculate(&iv("72", "0.8"), &iv_limits(), &policy()).unwrap();
        assert!(out.needs_override() && !out.refused());
        assert_eq!(out.breaches[0].message, "Dose 0.8 mg/kg is above the soft maximum of 0.75 mg/kg");
        let out = calculate(&iv("72", "5"), &iv_limits(), &policy()).unwrap();
        assert!(out.refused(), "a ten-fold dose is refused");
        assert!(out.breaches.iter().any(|b| b.message == "Dose 5 mg/kg is above the hard maximum of 1 mg/kg"), "{:?}", out.breaches);
        // Pounds typed as kilograms: 158.7 "kg" at 0.5 mg/kg is 79.35 mg, under the soft cap, but
        // 0.75 mg/kg on 158.7 passes the hard total cap: refused.
        let out = calculate(&iv("158.7", "0.75"), &iv_limits(), &policy()).unwrap();
        assert!(out.breaches.iter().any(|b| b.quantity == "total_mg" && b.level == LimitLevel::Soft), "{:?}", out.breaches);
        let mut fast = iv("72", "0.5");
        fast.minutes = Some(d("10"));
        let out = calculate(&fast, &iv_limits(), &policy()).unwrap();
        assert!(out.refused(), "{:?}", out.breaches);
        assert!(out.breaches.iter().any(|b| b.quantity == "rate"));
        let mut cumul = iv("72", "0.5");
        cumul.given_7d_mg = d("180");
        let out = calculate(&cumul, &iv_limits(), &policy()).unwrap();
        assert!(out.breaches.iter().any(|b| b.quantity == "cumulative_7d_mg" && b.level == LimitLevel::Soft));
    }

    #[test]
    fn a_concentration_not_on_the_shelf_is_refused_and_the_volume_is_never_typed() {
        let mut r = iv("72", "0.5");
        r.concentration_mg_per_ml = Some(d("25"));
        let e = calculate(&r, &iv_limits(), &policy()).unwrap_err();
        assert!(e.for_field("concentration_mg_per_ml").unwrap().contains("choose 10, 50, 100 mg/mL"));
        // The 100 mg/mL vial taken for 10 mg/mL: the volume is a tenth, the dose the same.
        r.concentration_mg_per_ml = Some(d("100"));
        let out = calculate(&r, &iv_limits(), &policy()).unwrap();
        assert_eq!((out.drug_volume_ml, out.dose_mg), (Some(d("0.36")), d("36")));
        r.final_volume_ml = Some(d("0.2"));
        assert!(calculate(&r, &iv_limits(), &policy()).unwrap_err().for_field("final_volume_ml").is_some());
    }

    #[test]
    fn sc_doses_are_rounded_down_to_the_syringe_and_have_no_rate() {
        let r = DoseRequest {
            route: Route::Sc,
            weight_kg: d("67.3"),
            height_cm: None,
            sex: None,
            basis: WeightBasis::Actual,
            mg_per_kg: Some(d("0.25")),
            fixed_mg: None,
            concentration_mg_per_ml: Some(d("50")),
            final_volume_ml: None,
            minutes: None,
            given_7d_mg: Decimal::ZERO,
            given_28d_mg: Decimal::ZERO,
        };
        let out = calculate(&r, &RouteLimits::default(), &policy()).unwrap();
        assert_eq!(out.dose_requested_mg, d("16.825"));
        assert_eq!(out.drug_volume_ml, Some(d("0.33")), "0.3365 mL rounds down");
        assert_eq!(out.dose_mg, d("16.5"));
        assert_eq!(out.rate_ml_per_h, None);
        let mut with_rate = r.clone();
        with_rate.minutes = Some(d("40"));
        assert!(calculate(&with_rate, &RouteLimits::default(), &policy()).unwrap_err().for_field("minutes").is_some());
    }

    #[test]
    fn intranasal_doses_are_whole_devices() {
        let r = DoseRequest {
            route: Route::In,
            weight_kg: d("70"),
            height_cm: None,
            sex: None,
            basis: WeightBasis::Actual,
            mg_per_kg: None,
            fixed_mg: Some(d("56")),
            concentration_mg_per_ml: None,
            final_volume_ml: None,
            minutes: None,
            given_7d_mg: Decimal::ZERO,
            given_28d_mg: Decimal::ZERO,
        };
        let limits = RouteLimits {
            device_mg: Some(d("28")),
            total_mg: Limits { soft: Band::default(), hard: Band { min: None, max: s("84") } },
            ..RouteLimits::default()
        };
        assert_eq!(calculate(&r, &limits, &policy()).unwrap().devices, Some(2));
        let mut odd = r.clone();
        odd.fixed_mg = Some(d("50"));
        assert!(calculate(&odd, &limits, &policy()).unwrap_err().for_field("dose_mg").unwrap().contains("whole 28 mg devices"));
        odd.fixed_mg = Some(d("112"));
        assert!(calculate(&odd, &limits, &policy()).unwrap().refused());
    }

    #[test]
    fn limits_are_checked_on_exact_values_and_the_rate_the_pump_runs() {
        let hard1 =
            RouteLimits { mg_per_kg: Limits { soft: Band::default(), hard: Band { min: None, max: s("1") } }, ..RouteLimits::default() };
        let mut r = iv("200", "1.0005");
        r.route = Route::Sc;
        r.final_volume_ml = None;
        r.minutes = None;
        let out = calculate(&r, &hard1, &policy()).unwrap();
        assert_eq!(out.dose_mg, d("200.1"));
        assert!(out.refused(), "1.0005 mg/kg is above 1 even though it displays as {}", out.dose_mg_per_kg);
        // A tiny infusion: the pump's 0.1 mL/h step is what the rate limit sees.
        let mut tiny = iv("70", "0.01");
        tiny.final_volume_ml = Some(d("0.07"));
        tiny.minutes = Some(d("60"));
        let out = calculate(&tiny, &RouteLimits::default(), &policy()).unwrap();
        assert_eq!((out.rate_ml_per_h, out.rate_mg_per_h), (Some(d("0.1")), Some(d("1"))), "0.1 mL/h of 10 mg/mL");
        tiny.final_volume_ml = Some(d("0.03"));
        tiny.mg_per_kg = Some(d("0.004"));
        tiny.minutes = Some(d("100"));
        assert!(calculate(&tiny, &RouteLimits::default(), &policy())
            .unwrap_err()
            .for_field("minutes")
            .unwrap()
            .contains("round to 0 mL/h"));
        // IV needs a dilution.
        let mut neat = iv("72", "0.5");
        neat.final_volume_ml = None;
        assert!(calculate(&neat, &iv_limits(), &policy()).unwrap_err().for_field("final_volume_ml").is_some());
        // Absurd numbers are refused, never a panic.
        let mut huge = iv("72", "0.5");
        huge.mg_per_kg = Some(Decimal::MAX);
        huge.height_cm = Some(Decimal::new(1, 15));
        let e = calculate(&huge, &iv_limits(), &policy()).unwrap_err();
        assert!(e.for_field("mg_per_kg").is_some() && e.for_field("height_cm").is_some(), "{e:?}");
    }

    #[test]
    fn amounts_are_printed_without_trailing_zeros_and_with_a_leading_zero() {
        for (v, want) in [
            ("5.0", "5"),
            ("0.50", "0.5"),
            (".5", "0.5"),
            ("36.00", "36"),
            ("1250", "1,250"),
            ("1250000.25", "1,250,000.25"),
            ("0", "0"),
            ("-0.5", "-0.5"),
        ] {
            assert_eq!(format_amount(d(v)), want, "{v}");
        }
    }

    #[test]
    fn the_quality_report_counts_outcomes_and_the_override_rate() {
        let ev = |user: &str, route: Route, o: EvaluationOutcome| DoseEvaluation {
            id: crate::ids::RecordId::from_uuid(uuid_like()),
            at: chrono::DateTime::UNIX_EPOCH,
            username: user.into(),
            user_id: crate::ids::UserId::from_uuid(uuid_like()),
            patient_id: None,
            order_id: None,
            drug: "ketamine".into(),
            route,
            dose_mg: d("36"),
            mg_per_kg: Some(d("0.5")),
            outcome: o,
            breaches: vec![],
            reason: None,
            second_username: None,
        };
        let r = quality_report(&[
            ev("pia", Route::Iv, EvaluationOutcome::Accepted),
            ev("pia", Route::Iv, EvaluationOutcome::Overridden),
            ev("pia", Route::Iv, EvaluationOutcome::SoftBreach),
            ev("max", Route::Sc, EvaluationOutcome::Rejected),
        ]);
        assert_eq!((r.all.total, r.all.accepted, r.all.overridden, r.all.soft, r.all.rejected), (4, 1, 1, 1, 1));
        assert_eq!(r.all.override_rate_percent(), Some(d("50")));
        assert_eq!(r.by_route.iter().map(|x| x.key.as_str()).collect::<Vec<_>>(), vec!["ketamine iv", "ketamine sc"]);
        assert_eq!(r.by_user[1].key, "pia");
        assert_eq!(r.by_user[0].override_rate_percent(), None);
    }

    fn uuid_like() -> uuid::Uuid {
        uuid::Uuid::nil()
    }

    proptest! {
        #[test]
        fn any_numbers_at_all_give_a_result_or_an_error_never_a_panic(w in any::<i64>(), m in any::<i64>(), h in any::<i64>(), v in any::<i64>(), mins in any::<i64>(), sc in 0u32..28) {
            let mut r = iv("1", "1");
            r.weight_kg = Decimal::new(w, sc);
            r.mg_per_kg = Some(Decimal::new(m, sc));
            r.height_cm = Some(Decimal::new(h, sc));
            r.sex = Some("female".into());
            r.basis = WeightBasis::Adjusted;
            r.final_volume_ml = Some(Decimal::new(v, sc));
            r.minutes = Some(Decimal::new(mins, sc));
            r.given_7d_mg = Decimal::new(w, 0).abs();
            let _ = calculate(&r, &iv_limits(), &policy());
        }

        #[test]
        fn every_amount_prints_safely(mantissa in -10_000_000_000i64..10_000_000_000i64, scale in 0u32..8) {
            let v = Decimal::new(mantissa, scale);
            let s = format_amount(v);
            prop_assert!(!s.starts_with('.') && !s.starts_with("-."), "leading zero: {s}");
            prop_assert!(!(s.contains('.') && (s.ends_with('0') || s.ends_with('.'))), "no trailing zero: {s}");
            // The text reads back to the same amount.
            prop_assert_eq!(s.replace(',', "").parse::<Decimal>().unwrap(), v.normalize());
        }

        #[test]
        fn never_panics_is_monotone_and_exact(w in 1u32..400_000u32, m in 1u32..5000u32, c in 0usize..3, fv in 0u32..1000, mins in 1u32..300) {
            let p = policy();
            let weight = Decimal::new(w as i64, 3);
            let mgkg = Decimal::new(m as i64, 3);
            let mut r = iv("1", "1");
            r.weight_kg = weight;
            r.mg_per_kg = Some(mgkg);
            r.concentration_mg_per_ml = Some(p.concentrations_mg_per_ml[c]);
            r.final_volume_ml = Some(Decimal::from(fv));
            r.minutes = Some(Decimal::from(mins));
            if let Ok(out) = calculate(&r, &iv_limits(), &p) {
                // Exact unit conversions: the volume times the concentration is the dose given.
                prop_assert_eq!(out.drug_volume_ml.unwrap() * out.concentration_mg_per_ml.unwrap(), out.dose_mg);
                prop_assert!(out.dose_mg <= out.dose_requested_mg, "rounding never adds drug");
                prop_assert!(out.dose_requested_mg - out.dose_mg < p.volume_step_ml * out.concentration_mg_per_ml.unwrap());
                prop_assert!(!format_amount(out.dose_mg).ends_with(".0") && !format_amount(out.dose_mg).starts_with('.'));
                // Monotone in weight and in dose.
                let mut heavier = r.clone();
                heavier.weight_kg = weight + Decimal::ONE;
                if let Ok(h) = calculate(&heavier, &iv_limits(), &p) { prop_assert!(h.dose_mg >= out.dose_mg); }
                let mut more = r.clone();
                more.mg_per_kg = Some(mgkg + Decimal::new(1, 2));
                if let Ok(h) = calculate(&more, &iv_limits(), &p) { prop_assert!(h.dose_mg >= out.dose_mg); }
            }
        }
    }
    #[test]
    fn an_absurd_height_is_refused_by_its_field_not_by_an_overflow() {
        // Found by the dose_calculator fuzz target: "1_00000000000000000_1.70" cm.
        let input = DoseInput {
            route: "iv".into(),
            weight_kg: "70".into(),
            mg_per_kg: "0.5".into(),
            concentration_mg_per_ml: "10".into(),
            final_volume_ml: "51".into(),
            minutes: "40".into(),
            height_cm: "1_____00000000000000000__1.___70".into(),
            sex: "female".into(),
            ..DoseInput::default()
        };
        let basis = basis_for(Decimal::from(70), Some(Decimal::MAX), WeightBasis::Actual, WeightBasis::Adjusted, Decimal::from(30));
        assert_eq!(basis, WeightBasis::Actual);
        let _ = input.parse(WeightBasis::Actual, (Decimal::from(30), Decimal::from(300)));
    }
}
