//! Dose events, routes and their absorption parameters, and the checks on a regimen.

use super::model::Evidence;
use crate::validation::FieldErrors;

/// Route of a dose event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PkRoute {
    /// Intravenous.
    Iv,
    /// Subcutaneous.
    Sc,
    /// Intramuscular.
    Im,
    /// Intranasal.
    In,
    /// Oral.
    Po,
}

impl PkRoute {
    /// All routes.
    pub const ALL: [PkRoute; 5] = [PkRoute::Iv, PkRoute::Sc, PkRoute::Im, PkRoute::In, PkRoute::Po];
    /// Stable code as in regimen files.
    pub fn code(self) -> &'static str {
        match self {
            PkRoute::Iv => "iv",
            PkRoute::Sc => "sc",
            PkRoute::Im => "im",
            PkRoute::In => "in",
            PkRoute::Po => "po",
        }
    }
    /// Parses a code.
    pub fn parse(s: &str) -> Option<PkRoute> {
        PkRoute::ALL.into_iter().find(|r| r.code() == s.trim().to_ascii_lowercase())
    }
    /// Words for people.
    pub fn label(self) -> &'static str {
        match self {
            PkRoute::Iv => "intravenous",
            PkRoute::Sc => "subcutaneous",
            PkRoute::Im => "intramuscular",
            PkRoute::In => "intranasal",
            PkRoute::Po => "oral",
        }
    }
}

/// A value with the range the simulator samples for its uncertainty band.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ranged {
    /// Default value.
    pub value: f64,
    /// Lowest plausible value.
    pub low: f64,
    /// Highest plausible value.
    pub high: f64,
}

/// Default absorption of an extravascular route (from the knowledge file).
#[derive(Clone, Debug, PartialEq)]
pub struct RouteSpec {
    /// Route.
    pub route: PkRoute,
    /// Bioavailability (fraction reaching plasma as parent drug).
    pub f: Ranged,
    /// First-order absorption rate, per min.
    pub ka_per_min: Ranged,
    /// Evidence status of the defaults.
    pub evidence: Evidence,
    /// Where the numbers come from.
    pub source: String,
    /// What the single-depot simplification leaves out.
    pub caveat: Option<String>,
}

/// Whether a recorded dose is ketamine base or its hydrochloride salt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Salt {
    /// Ketamine base (vials state strength as base equivalent).
    Base,
    /// Ketamine hydrochloride: converted to base before simulation.
    Hydrochloride,
}

impl Salt {
    /// Parses "base" or "hydrochloride" ("hcl").
    pub fn parse(s: &str) -> Option<Salt> {
        match s.trim().to_ascii_lowercase().as_str() {
            "base" => Some(Salt::Base),
            "hydrochloride" | "hcl" => Some(Salt::Hydrochloride),
            _ => None,
        }
    }
}

/// One dose. Doses are mg of ketamine base.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DoseEvent {
    /// Intravenous bolus.
    IvBolus {
        /// When, min.
        at_min: f64,
        /// Dose, mg.
        dose_mg: f64,
    },
    /// Zero-order intravenous infusion.
    Infusion {
        /// Start, min.
        start_min: f64,
        /// Duration, min.
        duration_min: f64,
        /// Total dose, mg.
        dose_mg: f64,
    },
    /// Extravascular dose absorbed first-order from a depot.
    Depot {
        /// When, min.
        at_min: f64,
        /// Dose, mg.
        dose_mg: f64,
        /// Route.
        route: PkRoute,
        /// Bioavailability used.
        f: f64,
        /// Absorption rate used, per min.
        ka_per_min: f64,
        /// Whether f and ka are the route's defaults (they vary in the uncertainty band).
        defaults: bool,
    },
}

impl DoseEvent {
    /// When the dose starts, min.
    pub fn start_min(&self) -> f64 {
        match *self {
            DoseEvent::IvBolus { at_min, .. } | DoseEvent::Depot { at_min, .. } => at_min,
            DoseEvent::Infusion { start_min, .. } => start_min,
        }
    }
    /// Dose, mg.
    pub fn dose_mg(&self) -> f64 {
        match *self {
            DoseEvent::IvBolus { dose_mg, .. } | DoseEvent::Depot { dose_mg, .. } | DoseEvent::Infusion { dose_mg, .. } => dose_mg,
        }
    }
    /// Amount that reaches plasma, mg.
    pub fn bioavailable_mg(&self) -> f64 {
        match *self {
            DoseEvent::Depot { dose_mg, f, .. } => f * dose_mg,
            _ => self.dose_mg(),
        }
    }
    /// Route.
    pub fn route(&self) -> PkRoute {
        match *self {
            DoseEvent::Depot { route, .. } => route,
            _ => PkRoute::Iv,
        }
    }
    /// Times at which the input changes (a bolus, the start and end of an infusion).
    pub fn breakpoints(&self) -> [Option<f64>; 2] {
        match *self {
            DoseEvent::Infusion { start_min, duration_min, .. } => [Some(start_min), Some(start_min + duration_min)],
            _ => [Some(self.start_min()), None],
        }
    }
}

/// Longest time the simulator accepts (one year), min.
pub const MAX_TIME_MIN: f64 = 525_600.0;
/// Most dose events in one regimen.
pub const MAX_EVENTS: usize = 1_000;
/// Largest single dose the simulator accepts, mg (far above any clinical dose; catches unit slips).
pub const MAX_DOSE_MG: f64 = 10_000.0;

/// Checks a list of events and names each bad field (`events[2].dose_mg`, ...).
pub fn check_events(events: &[DoseEvent]) -> Result<(), FieldErrors> {
    let mut errors = FieldErrors::new();
    if events.is_empty() {
        errors.add("events", "give at least one dose event");
    }
    if events.len() > MAX_EVENTS {
        errors.add("events", format!("at most {MAX_EVENTS} dose events per regimen"));
    }
    for (i, e) in events.iter().enumerate().take(MAX_EVENTS) {
        let field = |name: &str| format!("events[{i}].{name}");
        let time = |errors: &mut FieldErrors, name: &str, v: f64| {
            if !(v.is_finite() && (0.0..=MAX_TIME_MIN).contains(&v)) {
                errors.add(&field(name), format!("must be a time in minutes from 0 to {MAX_TIME_MIN} (one year)"));
            }
        };
        let dose = e.dose_mg();
        if !(dose.is_finite() && dose > 0.0 && dose <= MAX_DOSE_MG) {
            errors.add(&field("dose_mg"), format!("must be a dose in mg of ketamine base, above 0 and at most {MAX_DOSE_MG}"));
        }
        match *e {
            DoseEvent::IvBolus { at_min, .. } => time(&mut errors, "at_min", at_min),
            DoseEvent::Infusion { start_min, duration_min, .. } => {
                time(&mut errors, "start_min", start_min);
                if !(duration_min.is_finite() && duration_min > 0.0 && duration_min <= 10_080.0) {
                    errors.add(&field("duration_min"), "must be the infusion time in minutes, above 0 and at most 10080 (one week)");
                } else if start_min + duration_min > MAX_TIME_MIN {
                    errors.add(&field("duration_min"), "the infusion must end within one year");
                }
            }
            DoseEvent::Depot { at_min, f, ka_per_min, .. } => {
                time(&mut errors, "at_min", at_min);
                if !(f.is_finite() && f > 0.0 && f <= 1.0) {
                    errors.add(&field("f"), "must be a bioavailability fraction above 0 and at most 1 (0.93, not 93)");
                }
                if !(ka_per_min.is_finite() && ka_per_min > 1e-6 && ka_per_min <= 100.0) {
                    errors.add(&field("ka_per_min"), "must be an absorption rate per minute above 0.000001 and at most 100");
                }
            }
        }
    }
    errors.into_result()
}
