//! Pharmacokinetic simulation: predicted plasma and effect-site concentrations of ketamine for
//! any regimen, exactly (closed form and exact recursive update; no step-wise integration).
//!
//! - [`model`]: micro constants, hybrid rates, the published model sets and their covariates.
//! - [`regimen`]: dose events, routes and their absorption defaults, salt conversion, checks.
//! - [`expsum`]: stable convolutions of exponentials (equal and nearly equal rates included).
//! - [`engine`]: the closed-form superposition and the recursive update.
//! - [`summary`]: Cmax and Tmax on the continuous curve, minutes above thresholds.
//! - [`population`]: the Monte Carlo uncertainty band (fixed seed).
//!
//! [`simulate`] ties them together and attaches to every result the model, its parameters, its
//! evidence and the warnings a prescriber must see. Concentration bands are context with their
//! sources, never a target for anxiolysis: no concentration target for the anxiolytic or
//! antidepressant effect is known.
//!
//! Units: time in minutes, doses in mg of ketamine base, volumes in L, concentrations in mg/L
//! inside and ng/mL (= mg/L x 1000) in results.

pub mod engine;
pub mod expsum;
pub mod model;
pub mod population;
pub mod regimen;
pub mod summary;

use crate::validation::FieldErrors;
use engine::{Engine, Output, System, Trajectory};
use model::{Analyte, Disposition, Evidence, Micro, ModelSpec};
use population::PopulationBand;
use regimen::{check_events, DoseEvent, PkRoute, Ranged, RouteSpec, Salt, MAX_TIME_MIN};
use summary::Site;

/// Why a simulation could not run.
#[derive(Clone, Debug, PartialEq)]
pub enum PkError {
    /// The model's constants are unusable.
    Model(String),
}

impl std::fmt::Display for PkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PkError::Model(m) => write!(f, "model: {m}"),
        }
    }
}

impl std::error::Error for PkError {}

/// A medication class that changes ketamine exposure but that no model here quantifies.
#[derive(Clone, Debug, PartialEq)]
pub struct Interaction {
    /// Class, e.g. "benzodiazepine".
    pub class: String,
    /// Lower-case names (or name fragments) that belong to the class.
    pub names: Vec<String>,
    /// What is known of the effect.
    pub effect: String,
    /// Where it comes from.
    pub source: String,
}

/// A concentration range shown as context (never a target).
#[derive(Clone, Debug, PartialEq)]
pub struct ConcentrationBand {
    /// Lower bound, ng/mL.
    pub low_ng_per_ml: f64,
    /// Upper bound, ng/mL (None: open-ended).
    pub high_ng_per_ml: Option<f64>,
    /// What is seen in this range.
    pub label: String,
    /// Where it comes from.
    pub source: String,
}

/// Everything the simulator takes from the knowledge files.
#[derive(Clone, Debug, PartialEq)]
pub struct PkKnowledge {
    /// Knowledge file version.
    pub version: String,
    /// Disposition models; the first is the default.
    pub models: Vec<ModelSpec>,
    /// Absorption defaults of the extravascular routes.
    pub routes: Vec<RouteSpec>,
    /// Illustrative effect-site rate (no accepted ke0 exists for racemic ketamine).
    pub ke0_per_min: Ranged,
    /// Evidence and source of ke0.
    pub ke0_evidence: Evidence,
    /// Source of ke0.
    pub ke0_source: String,
    /// Factor from ketamine hydrochloride to base (MW ratio).
    pub hydrochloride_to_base: f64,
    /// Source of the factor.
    pub hydrochloride_source: String,
    /// Fraction of a racemic dose that is S-ketamine.
    pub racemate_s_fraction: f64,
    /// Interacting medications.
    pub interactions: Vec<Interaction>,
    /// Concentration bands for context.
    pub bands: Vec<ConcentrationBand>,
    /// Subjects in the Monte Carlo band.
    pub band_subjects: usize,
    /// Seed of the Monte Carlo band.
    pub band_seed: u64,
}

impl PkKnowledge {
    /// The model with this id.
    pub fn model(&self, id: &str) -> Option<&ModelSpec> {
        self.models.iter().find(|m| m.id == id)
    }
    /// The default model.
    pub fn default_model(&self) -> &ModelSpec {
        &self.models[0]
    }
    /// The absorption defaults of a route (None for IV).
    pub fn route(&self, r: PkRoute) -> Option<&RouteSpec> {
        self.routes.iter().find(|s| s.route == r)
    }
}

/// One dose as entered (route defaults not yet applied, salt not yet converted).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum EventInput {
    /// Zero-order IV infusion.
    Infusion {
        /// Start, min.
        start_min: f64,
        /// Duration, min.
        duration_min: f64,
        /// Dose, mg.
        dose_mg: f64,
    },
    /// A dose given at once: IV bolus or an extravascular depot.
    Bolus {
        /// Route.
        route: PkRoute,
        /// When, min.
        at_min: f64,
        /// Dose, mg.
        dose_mg: f64,
        /// Bioavailability override.
        f: Option<f64>,
        /// Absorption rate override, per min.
        ka_per_min: Option<f64>,
    },
}

/// The patient as far as the simulation needs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Subject {
    /// Body weight, kg.
    pub weight_kg: f64,
    /// Age, years, when known.
    pub age_years: Option<f64>,
    /// Current medications by name.
    pub medications: Vec<String>,
}

/// The time grid of a simulation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Grid {
    /// First time, min.
    pub from_min: f64,
    /// Last time, min.
    pub to_min: f64,
    /// Step, min.
    pub step_min: f64,
}

impl Default for Grid {
    fn default() -> Self {
        Grid { from_min: 0.0, to_min: 360.0, step_min: 1.0 }
    }
}

/// Most points on one time grid.
pub const MAX_POINTS: usize = 200_001;
/// Most points for which the Monte Carlo band is computed (it holds every subject's curve).
pub const BAND_MAX_POINTS: usize = 4_001;
/// Most doses for which the Monte Carlo band is computed.
pub const BAND_MAX_EVENTS: usize = 200;

impl Grid {
    /// The times, ascending; the last is `to` even when the step does not divide the window.
    pub fn times(&self) -> Vec<f64> {
        let n = ((self.to_min - self.from_min) / self.step_min + 1e-9).floor() as usize;
        let mut t: Vec<f64> = (0..=n).map(|k| self.from_min + k as f64 * self.step_min).collect();
        if t.last().is_some_and(|l| *l < self.to_min - 1e-9 * self.step_min) {
            t.push(self.to_min);
        }
        t
    }

    fn check(&self, errors: &mut FieldErrors) {
        let ok = |v: f64| v.is_finite() && (0.0..=MAX_TIME_MIN).contains(&v);
        if !ok(self.from_min) {
            errors.add("from", format!("must be a time in minutes from 0 to {MAX_TIME_MIN}"));
        }
        if !ok(self.to_min) || self.to_min <= self.from_min {
            errors.add("to", "must be a time in minutes after `from`, at most one year (525600)");
        }
        if !(self.step_min.is_finite() && self.step_min > 0.0) {
            errors.add("step", "must be a number of minutes above 0");
        } else if ok(self.from_min) && ok(self.to_min) && (self.to_min - self.from_min) / self.step_min > (MAX_POINTS - 1) as f64 {
            errors.add("step", format!("gives more than {MAX_POINTS} points; use a larger step"));
        }
    }
}

/// What to simulate.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// Model id (None: the default model).
    pub model: Option<String>,
    /// Patient.
    pub subject: Subject,
    /// Drug given: racemic ketamine or esketamine.
    pub drug: Analyte,
    /// Doses.
    pub events: Vec<EventInput>,
    /// Whether the doses are recorded as base or hydrochloride.
    pub salt: Salt,
    /// Time grid.
    pub grid: Grid,
    /// Extra times for concentrations, min.
    pub c_at_min: Vec<f64>,
    /// Thresholds for minutes above, ng/mL (empty: the lower bounds of the context bands).
    pub thresholds_ng_per_ml: Vec<f64>,
    /// Effect-site rate override, per min.
    pub ke0_per_min: Option<f64>,
    /// Engine.
    pub engine: Engine,
    /// Whether to compute the Monte Carlo band.
    pub band: bool,
}

impl Request {
    /// A request for one regimen with the defaults (default model, racemic, base, 0-360 min by 1).
    pub fn new(weight_kg: f64, events: Vec<EventInput>) -> Request {
        Request {
            model: None,
            subject: Subject { weight_kg, ..Subject::default() },
            drug: Analyte::Racemic,
            events,
            salt: Salt::Base,
            grid: Grid::default(),
            c_at_min: Vec::new(),
            thresholds_ng_per_ml: Vec::new(),
            ke0_per_min: None,
            engine: Engine::default(),
            band: true,
        }
    }
}

/// A warning every display of the result must show.
#[derive(Clone, Debug, PartialEq)]
pub struct Warning {
    /// Stable code.
    pub code: &'static str,
    /// Sentence for the prescriber.
    pub message: String,
}

/// Exposure metrics (concentrations in ng/mL).
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// Highest plasma concentration over the window.
    pub cmax_ng_per_ml: f64,
    /// When it occurs, min (continuous, not only on the grid).
    pub tmax_min: f64,
    /// Highest effect-site concentration over the window.
    pub ce_max_ng_per_ml: f64,
    /// When, min.
    pub ce_tmax_min: f64,
    /// Area under the plasma curve from 0 to the end of the window, ng h/mL.
    pub auc_0_t_ng_h_per_ml: f64,
    /// Area under the plasma curve from 0 to infinity (F x dose / CL), ng h/mL.
    pub auc_0_inf_ng_h_per_ml: f64,
    /// Concentrations at requested times: (time, plasma, effect site).
    pub c_at: Vec<(f64, f64, f64)>,
    /// Minutes of plasma concentration above each threshold within the window: (threshold, minutes).
    pub minutes_above: Vec<(f64, f64)>,
}

/// A dose as simulated, with what was done to it.
#[derive(Clone, Debug, PartialEq)]
pub struct SimulatedDose {
    /// The event (mg of the modelled analyte, base).
    pub event: DoseEvent,
    /// The dose as entered, mg.
    pub entered_mg: f64,
    /// Evidence of the route parameters used (None for IV or overrides).
    pub route_evidence: Option<Evidence>,
}

/// The result of a simulation with its provenance.
#[derive(Clone, Debug, PartialEq)]
pub struct Simulation {
    /// Model used.
    pub model: ModelSpec,
    /// Micro constants for this patient.
    pub micro: Micro,
    /// Hybrid rates and coefficients.
    pub disposition: Disposition,
    /// Effect-site rate used, per min.
    pub ke0_per_min: f64,
    /// Engine used.
    pub engine: Engine,
    /// Knowledge file version.
    pub knowledge_version: String,
    /// Doses as simulated.
    pub doses: Vec<SimulatedDose>,
    /// Time grid, min.
    pub times_min: Vec<f64>,
    /// Plasma concentration, ng/mL.
    pub cp_ng_per_ml: Vec<f64>,
    /// Effect-site concentration (illustrative), ng/mL.
    pub ce_ng_per_ml: Vec<f64>,
    /// Metrics.
    pub summary: Summary,
    /// Monte Carlo band (ng/mL), where the model or the routes have the data.
    pub band: Option<PopulationBand>,
    /// Why there is no band.
    pub band_absent_reason: Option<String>,
    /// Warnings.
    pub warnings: Vec<Warning>,
    /// Concentration bands for context.
    pub context_bands: Vec<ConcentrationBand>,
}

const NG_PER_MG: f64 = 1000.0;

/// Runs a simulation; bad input comes back as field errors naming each field.
pub fn simulate(k: &PkKnowledge, req: &Request) -> Result<Simulation, FieldErrors> {
    let mut errors = FieldErrors::new();
    let model = match &req.model {
        None => Some(k.default_model()),
        Some(id) => {
            let m = k.model(id.trim());
            if m.is_none() {
                let ids: Vec<&str> = k.models.iter().map(|m| m.id.as_str()).collect();
                errors.add("model", format!("is not a known model; choose one of {}", ids.join(", ")));
            }
            m
        }
    };
    let w = req.subject.weight_kg;
    if !(w.is_finite() && (2.0..=350.0).contains(&w)) {
        errors.add("weight_kg", "must be the body weight in kg, from 2 to 350 (a weight in pounds divided by 2.2)");
    }
    if let Some(age) = req.subject.age_years {
        if !(age.is_finite() && (0.0..=120.0).contains(&age)) {
            errors.add("age_years", "must be an age in years from 0 to 120");
        }
    }
    if let Some(ke0) = req.ke0_per_min {
        if !(ke0.is_finite() && ke0 > 0.0 && ke0 <= 100.0) {
            errors.add("ke0_per_min", "must be an effect-site rate per minute above 0 and at most 100");
        }
    }
    req.grid.check(&mut errors);
    for (i, t) in req.c_at_min.iter().enumerate() {
        if !(t.is_finite() && (0.0..=MAX_TIME_MIN).contains(t)) {
            errors.add(&format!("c_at[{i}]"), "must be a time in minutes from 0 to 525600");
        }
    }
    for (i, c) in req.thresholds_ng_per_ml.iter().enumerate() {
        if !(c.is_finite() && *c > 0.0 && *c <= 100_000.0) {
            errors.add(&format!("thresholds[{i}]"), "must be a concentration in ng/mL above 0 and at most 100000");
        }
    }
    if req.c_at_min.len() > 1000 || req.thresholds_ng_per_ml.len() > 50 {
        errors.add("c_at", "at most 1000 times and 50 thresholds");
    }
    // Doses: salt, analyte and route defaults.
    let salt_factor = match req.salt {
        Salt::Base => 1.0,
        Salt::Hydrochloride => k.hydrochloride_to_base,
    };
    let s_only = model.is_some_and(|m| m.analyte == Analyte::SKetamine) && req.drug == Analyte::Racemic;
    let analyte_factor = if s_only { k.racemate_s_fraction } else { 1.0 };
    let mut doses = Vec::with_capacity(req.events.len());
    for e in &req.events {
        let d = match *e {
            EventInput::Infusion { start_min, duration_min, dose_mg } => SimulatedDose {
                event: DoseEvent::Infusion { start_min, duration_min, dose_mg: dose_mg * salt_factor * analyte_factor },
                entered_mg: dose_mg,
                route_evidence: None,
            },
            EventInput::Bolus { route: PkRoute::Iv, at_min, dose_mg, .. } => SimulatedDose {
                event: DoseEvent::IvBolus { at_min, dose_mg: dose_mg * salt_factor * analyte_factor },
                entered_mg: dose_mg,
                route_evidence: None,
            },
            EventInput::Bolus { route, at_min, dose_mg, f, ka_per_min } => {
                let spec = k.route(route);
                let defaults = f.is_none() && ka_per_min.is_none();
                SimulatedDose {
                    event: DoseEvent::Depot {
                        at_min,
                        dose_mg: dose_mg * salt_factor * analyte_factor,
                        route,
                        f: f.or(spec.map(|s| s.f.value)).unwrap_or(f64::NAN),
                        ka_per_min: ka_per_min.or(spec.map(|s| s.ka_per_min.value)).unwrap_or(f64::NAN),
                        defaults,
                    },
                    entered_mg: dose_mg,
                    route_evidence: if f.is_some() && ka_per_min.is_some() { None } else { spec.map(|s| s.evidence) },
                }
            }
        };
        doses.push(d);
    }
    let events: Vec<DoseEvent> = doses.iter().map(|d| d.event).collect();
    if let Err(e) = check_events(&events) {
        // Report entered doses, not converted ones; the field names are the same.
        errors.extend_prefixed("", e);
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let model = model.expect("checked above").clone();
    let micro = model.micro(w, None);
    let disposition = micro.disposition().map_err(|e| FieldErrors::single("model", e.to_string()))?;
    let ke0 = req.ke0_per_min.unwrap_or(k.ke0_per_min.value);
    let sys = System { disp: disposition, ke0, events: &events };
    let traj = Trajectory::new(&sys);
    let times = req.grid.times();
    let (cp, ce) = match req.engine {
        Engine::Recursive => traj.series(&times),
        Engine::ClosedForm => (
            times.iter().map(|t| sys.closed_form(Output::Cp, *t)).collect(),
            times.iter().map(|t| sys.closed_form(Output::Ce, *t)).collect(),
        ),
    };
    let (from, to) = (req.grid.from_min, req.grid.to_min);
    let plasma = summary::Curve::new(&traj, Site::Plasma, from, to);
    let (cmax, tmax) = plasma.maximum();
    let (ce_max, ce_tmax) = summary::Curve::new(&traj, Site::Effect, from, to).maximum();
    let thresholds: Vec<f64> = if req.thresholds_ng_per_ml.is_empty() {
        k.bands.iter().map(|b| b.low_ng_per_ml).filter(|l| *l > 0.0).collect()
    } else {
        req.thresholds_ng_per_ml.clone()
    };
    let to_ng = |mg_per_l: f64| mg_per_l * NG_PER_MG;
    // mg min/L -> ng h/mL: x 1000 ng/mg / 1000 mL/L... = mg/L x min = (ng/mL) x min; / 60 for hours.
    let auc_h = |mg_min_per_l: f64| mg_min_per_l * NG_PER_MG / 60.0;
    let summary = Summary {
        cmax_ng_per_ml: to_ng(cmax),
        tmax_min: tmax,
        ce_max_ng_per_ml: to_ng(ce_max),
        ce_tmax_min: ce_tmax,
        auc_0_t_ng_h_per_ml: auc_h(sys.closed_form(Output::AucCp, to)),
        auc_0_inf_ng_h_per_ml: auc_h(events.iter().map(DoseEvent::bioavailable_mg).sum::<f64>() / micro.clearance_l_per_min()),
        c_at: req
            .c_at_min
            .iter()
            .map(|t| {
                let s = traj.state_at(*t);
                (*t, to_ng(s.cp()), to_ng(s.ce()))
            })
            .collect(),
        minutes_above: thresholds.iter().map(|c| (*c, plasma.minutes_above(c / NG_PER_MG))).collect(),
    };
    let warnings = warnings(k, &model, req, &doses, s_only, ke0);
    let (band, band_absent_reason) = if req.band && (times.len() > BAND_MAX_POINTS || events.len() > BAND_MAX_EVENTS) {
        (
            None,
            Some(format!(
                "the band is computed for at most {BAND_MAX_POINTS} time points and {BAND_MAX_EVENTS} doses; use a larger step or fewer doses"
            )),
        )
    } else if req.band {
        match population::band(&model, w, ke0, &events, &k.routes, &times, k.band_subjects, k.band_seed) {
            Some(mut b) => {
                for v in b.p05.iter_mut().chain(b.p50.iter_mut()).chain(b.p95.iter_mut()) {
                    *v *= NG_PER_MG;
                }
                b.cmax_p05_p95 = (to_ng(b.cmax_p05_p95.0), to_ng(b.cmax_p05_p95.1));
                (Some(b), None)
            }
            None => (
                None,
                Some(format!(
                    "{} publishes no between-subject variability and no dose uses default route values, so there is nothing to vary",
                    model.name
                )),
            ),
        }
    } else {
        (None, Some("not requested".into()))
    };
    Ok(Simulation {
        model,
        micro,
        disposition,
        ke0_per_min: ke0,
        engine: req.engine,
        knowledge_version: k.version.clone(),
        doses,
        times_min: times,
        cp_ng_per_ml: cp.into_iter().map(to_ng).collect(),
        ce_ng_per_ml: ce.into_iter().map(to_ng).collect(),
        summary,
        band,
        band_absent_reason,
        warnings,
        context_bands: k.bands.clone(),
    })
}

fn warnings(k: &PkKnowledge, m: &ModelSpec, req: &Request, doses: &[SimulatedDose], s_only: bool, ke0: f64) -> Vec<Warning> {
    let mut out = Vec::new();
    let mut add = |code: &'static str, message: String| out.push(Warning { code, message });
    let w = req.subject.weight_kg;
    if w < m.weight_range_kg.0 || w > m.weight_range_kg.1 {
        add(
            "outside_population",
            format!(
                "{w} kg is outside the weights {} was fitted on ({}-{} kg); the prediction is an extrapolation.",
                m.name, m.weight_range_kg.0, m.weight_range_kg.1
            ),
        );
    }
    match req.subject.age_years {
        Some(age) if age < m.age_range_years.0 || age > m.age_range_years.1 => add(
            "outside_population",
            format!(
                "Age {age} is outside the ages {} was fitted on ({}-{} years); the prediction is an extrapolation.",
                m.name, m.age_range_years.0, m.age_range_years.1
            ),
        ),
        _ => {}
    }
    if !m.adult_population && req.subject.age_years.is_none_or(|a| a >= 18.0) {
        add(
            "paediatric_model",
            format!("{} was fitted on children ({}); using it for an adult is an extrapolation.", m.name, m.population),
        );
    }
    if s_only {
        add(
            "s_ketamine_model",
            format!(
                "{} predicts S-ketamine only: the curve is the S-enantiomer of the racemic dose ({} of each dose); R-ketamine is not shown.",
                m.name, k.racemate_s_fraction
            ),
        );
    } else if m.analyte == Analyte::Racemic && req.drug == Analyte::SKetamine {
        add(
            "racemic_model_for_esketamine",
            format!("{} was fitted on racemic ketamine; S-ketamine is cleared faster, so this over-predicts esketamine exposure.", m.name),
        );
    }
    if req.salt == Salt::Hydrochloride {
        add(
            "hydrochloride_converted",
            format!(
                "Doses were entered as ketamine hydrochloride and converted to base (x {}; {}).",
                k.hydrochloride_to_base, k.hydrochloride_source
            ),
        );
    }
    let mut routes: Vec<PkRoute> = doses.iter().filter(|d| d.route_evidence == Some(Evidence::Assumed)).map(|d| d.event.route()).collect();
    routes.sort();
    routes.dedup();
    for r in routes {
        if let Some(spec) = k.route(r) {
            add(
                "assumed_route_parameters",
                format!(
                    "The {} absorption (F {}, ka {:.4} per min) is ASSUMED: no published adult estimate. Cmax depends strongly on it; see the band.",
                    r.label(),
                    spec.f.value,
                    spec.ka_per_min.value
                ),
            );
        }
    }
    let mut caveats: Vec<PkRoute> = doses.iter().map(|d| d.event.route()).collect();
    caveats.sort();
    caveats.dedup();
    for r in caveats {
        if let Some(c) = k.route(r).and_then(|s| s.caveat.clone()) {
            add("route_simplified", c);
        }
    }
    if (ke0 - k.ke0_per_min.value).abs() < 1e-12 && k.ke0_evidence == Evidence::Assumed {
        add(
            "effect_site_illustrative",
            format!("The effect-site curve is an illustration: ke0 {ke0} per min is assumed ({}).", k.ke0_source),
        );
    }
    for med in &req.subject.medications {
        let lower = med.to_lowercase();
        for i in &k.interactions {
            if i.names.iter().any(|n| lower.contains(n.as_str())) {
                add(
                    "interacting_medication",
                    format!(
                        "{med} ({}): {} No model here quantifies this; the curve does not include it ({}).",
                        i.class, i.effect, i.source
                    ),
                );
            }
        }
    }
    if m.evidence >= Evidence::Code {
        add("model_evidence", format!("{} parameters: {}.", m.name, m.evidence.label()));
    }
    out
}
