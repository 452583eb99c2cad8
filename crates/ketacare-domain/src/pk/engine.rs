//! The two exact engines: superposition of closed-form event responses, and the exact recursive
//! update (state per exponential, advanced across any interval without discretisation error).
//!
//! Both build every output from [`conv`]: a dose passes through a chain of first-order stages
//! (absorption depot or infusion step, one hybrid exponential of the disposition, then the
//! effect site or an integral), and the response of such a chain is a convolution of
//! exponentials. Neither engine integrates step by step.

use super::expsum::{conv, MAX_RATES};
use super::model::Disposition;
use super::regimen::DoseEvent;

/// What is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// Plasma concentration, mg/L.
    Cp,
    /// Effect-site concentration, mg/L.
    Ce,
    /// Integral of plasma concentration from time 0, mg min/L.
    AucCp,
    /// Amount in the second compartment, mg.
    Peripheral2,
    /// Amount in the third compartment, mg.
    Peripheral3,
}

/// Which engine evaluates a series.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Engine {
    /// Exact recursive update from the state at the previous point (default; fast).
    #[default]
    Recursive,
    /// Sum over every dose of its closed-form response (the cross-check).
    ClosedForm,
}

impl Engine {
    /// Stable code.
    pub fn code(self) -> &'static str {
        match self {
            Engine::Recursive => "recursive",
            Engine::ClosedForm => "closed-form",
        }
    }
    /// Parses a code.
    pub fn parse(s: &str) -> Option<Engine> {
        match s.trim() {
            "recursive" => Some(Engine::Recursive),
            "closed-form" | "closed_form" => Some(Engine::ClosedForm),
            _ => None,
        }
    }
}

/// A disposition with its effect-site rate and a regimen: everything needed to evaluate.
#[derive(Clone, Debug)]
pub struct System<'a> {
    /// Disposition (hybrid rates and coefficients).
    pub disp: Disposition,
    /// Effect-site equilibration rate, per min.
    pub ke0: f64,
    /// Dose events (checked).
    pub events: &'a [DoseEvent],
}

/// Stages after the disposition exponential for one output: (rate, gain) pairs.
fn downstream(out: Output, d: &Disposition, ke0: f64) -> ([(f64, f64); 1], usize) {
    let m = d.micro;
    match out {
        Output::Cp => ([(0.0, 0.0)], 0),
        Output::Ce => ([(ke0, ke0)], 1),
        Output::AucCp => ([(0.0, 1.0)], 1),
        Output::Peripheral2 => ([(m.k21, m.k12 * m.v1_l)], 1),
        Output::Peripheral3 => ([(m.k31, m.k13 * m.v1_l)], 1),
    }
}

impl System<'_> {
    /// Closed-form value of one output at `t` (right-continuous at a bolus).
    pub fn closed_form(&self, out: Output, t: f64) -> f64 {
        self.events.iter().map(|e| self.event_response(e, out, t)).sum()
    }

    /// Response to one event at `t`.
    pub fn event_response(&self, e: &DoseEvent, out: Output, t: f64) -> f64 {
        let tau = t - e.start_min();
        if tau < 0.0 {
            return 0.0;
        }
        let (ds, nd) = downstream(out, &self.disp, self.ke0);
        let ds = &ds[..nd];
        let gain_ds: f64 = ds.iter().map(|(_, g)| g).product();
        let mut chain = [0.0; MAX_RATES];
        let mut sum = 0.0;
        for i in 0..self.disp.n {
            let (li, ci) = (self.disp.lambdas[i], self.disp.coefs[i]);
            match *e {
                DoseEvent::IvBolus { dose_mg, .. } => {
                    let n = fill(&mut chain, &[li], ds);
                    sum += dose_mg * ci * gain_ds * conv(&chain[..n], tau);
                }
                DoseEvent::Depot { dose_mg, f, ka_per_min, .. } => {
                    let n = fill(&mut chain, &[ka_per_min, li], ds);
                    sum += f * dose_mg * ka_per_min * ci * gain_ds * conv(&chain[..n], tau);
                }
                DoseEvent::Infusion { duration_min, dose_mg, .. } => {
                    let rate = dose_mg / duration_min;
                    if tau <= duration_min {
                        let n = fill(&mut chain, &[0.0, li], ds);
                        sum += rate * ci * gain_ds * conv(&chain[..n], tau);
                    } else {
                        // States of the chain's stages at the end of the infusion, each then decays
                        // freely through the rest of the chain.
                        let after = tau - duration_min;
                        let stages: Vec<(f64, f64)> = std::iter::once((li, ci)).chain(ds.iter().copied()).collect();
                        let mut gain_to = rate;
                        for j in 0..stages.len() {
                            gain_to *= stages[j].1;
                            let mut rates = [0.0; MAX_RATES];
                            rates[0] = 0.0;
                            for (k, s) in stages[..=j].iter().enumerate() {
                                rates[k + 1] = s.0;
                            }
                            let state = gain_to * conv(&rates[..j + 2], duration_min);
                            let mut rest = [0.0; MAX_RATES];
                            for (k, s) in stages[j..].iter().enumerate() {
                                rest[k] = s.0;
                            }
                            let gain_after: f64 = stages[j + 1..].iter().map(|s| s.1).product();
                            sum += state * gain_after * conv(&rest[..stages.len() - j], after);
                        }
                    }
                }
            }
        }
        sum
    }
}

fn fill(chain: &mut [f64; MAX_RATES], head: &[f64], ds: &[(f64, f64)]) -> usize {
    chain[..head.len()].copy_from_slice(head);
    for (k, (r, _)) in ds.iter().enumerate() {
        chain[head.len() + k] = *r;
    }
    head.len() + ds.len()
}

/// State of the recursive engine: one plasma and one effect-site partial state per exponential,
/// the current infusion rate and the bioavailable amount left in each absorption depot.
#[derive(Clone, Debug, PartialEq)]
pub struct State {
    /// Plasma partial concentrations, mg/L.
    pub x: [f64; 3],
    /// Effect-site partial concentrations, mg/L.
    pub e: [f64; 3],
    /// Infusion rate running now, mg/min.
    pub rate: f64,
    /// Depots: (absorption rate per min, amount mg). Doses with the same rate share a depot.
    pub depots: Vec<(f64, f64)>,
}

impl State {
    fn zero() -> State {
        State { x: [0.0; 3], e: [0.0; 3], rate: 0.0, depots: Vec::new() }
    }
    /// Plasma concentration, mg/L.
    pub fn cp(&self) -> f64 {
        self.x.iter().sum()
    }
    /// Effect-site concentration, mg/L.
    pub fn ce(&self) -> f64 {
        self.e.iter().sum()
    }
}

/// Transition coefficients for one interval length.
#[derive(Clone, Debug)]
struct Step {
    dt: f64,
    ex: [f64; 3],
    sx: [f64; 3],
    xe: [f64; 3],
    se: [f64; 3],
    ee: f64,
    kas: Vec<f64>,
    dx: Vec<[f64; 3]>,
    de: Vec<[f64; 3]>,
    decay: Vec<f64>,
}

/// Input changes at one instant.
#[derive(Clone, Debug)]
enum Action {
    Bolus(f64),
    Depot { ka: f64, amount: f64 },
    InfusionStart { end: f64, rate: f64 },
}

/// The state right after each instant at which the input changes; from any of them the state at a
/// later time (before the next change) follows exactly.
#[derive(Clone, Debug)]
pub struct Trajectory {
    disp: Disposition,
    ke0: f64,
    snapshots: Vec<(f64, State)>,
}

impl Trajectory {
    /// Runs through every input change of the regimen.
    pub fn new(sys: &System<'_>) -> Trajectory {
        let mut actions: Vec<(f64, Action)> = Vec::with_capacity(sys.events.len() + 1);
        for e in sys.events {
            match *e {
                DoseEvent::IvBolus { at_min, dose_mg } => actions.push((at_min, Action::Bolus(dose_mg))),
                DoseEvent::Depot { at_min, dose_mg, f, ka_per_min, .. } => {
                    actions.push((at_min, Action::Depot { ka: ka_per_min, amount: f * dose_mg }))
                }
                DoseEvent::Infusion { start_min, duration_min, dose_mg } => {
                    actions.push((start_min, Action::InfusionStart { end: start_min + duration_min, rate: dose_mg / duration_min }))
                }
            }
        }
        let mut times: Vec<f64> = actions.iter().map(|a| a.0).collect();
        for e in sys.events {
            if let DoseEvent::Infusion { start_min, duration_min, .. } = e {
                times.push(start_min + duration_min);
            }
        }
        times.sort_by(f64::total_cmp);
        times.dedup();
        actions.sort_by(|a, b| a.0.total_cmp(&b.0));
        let start = times.first().copied().unwrap_or(0.0).min(0.0);
        let mut t = Trajectory { disp: sys.disp, ke0: sys.ke0, snapshots: vec![(start, State::zero())] };
        let mut active: Vec<(f64, f64)> = Vec::new();
        let mut next = 0;
        for &when in &times {
            let (t0, s0) = t.snapshots.last().expect("initial snapshot");
            let mut s = t.advance(s0, when - t0);
            while next < actions.len() && actions[next].0 <= when {
                match actions[next].1 {
                    Action::Bolus(dose) => {
                        for i in 0..t.disp.n {
                            s.x[i] += dose * t.disp.coefs[i];
                        }
                    }
                    Action::Depot { ka, amount } => match s.depots.iter_mut().find(|d| d.0.to_bits() == ka.to_bits()) {
                        Some(d) => d.1 += amount,
                        None => s.depots.push((ka, amount)),
                    },
                    Action::InfusionStart { end, rate } => active.push((end, rate)),
                }
                next += 1;
            }
            active.retain(|(end, _)| *end > when);
            // Summed afresh so that a finished infusion leaves no rounding residue.
            s.rate = active.iter().map(|(_, r)| r).sum();
            t.snapshots.push((when, s));
        }
        t
    }

    /// Times at which the input changes.
    pub fn breakpoints(&self) -> impl Iterator<Item = f64> + '_ {
        self.snapshots.iter().skip(1).map(|s| s.0)
    }

    /// Index of the snapshot in force at `t` (the last change at or before `t`).
    fn index_at(&self, t: f64) -> usize {
        self.snapshots.partition_point(|s| s.0 <= t).saturating_sub(1)
    }

    /// State at `t` (right-continuous: a change at `t` is included).
    pub fn state_at(&self, t: f64) -> State {
        let (t0, s) = &self.snapshots[self.index_at(t)];
        if t <= *t0 {
            return s.clone();
        }
        self.advance(s, t - t0)
    }

    /// State just before `t` (the left limit; differs from [`Self::state_at`] at a bolus).
    pub fn state_before(&self, t: f64) -> State {
        let i = self.snapshots.partition_point(|s| s.0 < t).saturating_sub(1);
        let (t0, s) = &self.snapshots[i];
        if t <= *t0 {
            return s.clone();
        }
        self.advance(s, t - t0)
    }

    /// Time derivatives (dCp/dt, dCe/dt) of a state, mg/L per min.
    pub fn derivatives(&self, s: &State) -> (f64, f64) {
        let input: f64 = s.rate + s.depots.iter().map(|(ka, a)| ka * a).sum::<f64>();
        let mut dcp = 0.0;
        for i in 0..self.disp.n {
            dcp += -self.disp.lambdas[i] * s.x[i] + self.disp.coefs[i] * input;
        }
        (dcp, self.ke0 * (s.cp() - s.ce()))
    }

    fn step(&self, dt: f64, kas: &[f64]) -> Step {
        let d = &self.disp;
        let k = self.ke0;
        let mut st = Step {
            dt,
            ex: [0.0; 3],
            sx: [0.0; 3],
            xe: [0.0; 3],
            se: [0.0; 3],
            ee: conv(&[k], dt),
            kas: kas.to_vec(),
            dx: vec![[0.0; 3]; kas.len()],
            de: vec![[0.0; 3]; kas.len()],
            decay: kas.iter().map(|ka| (-ka * dt).exp()).collect(),
        };
        for i in 0..d.n {
            let l = d.lambdas[i];
            st.ex[i] = conv(&[l], dt);
            st.sx[i] = conv(&[0.0, l], dt);
            st.xe[i] = conv(&[l, k], dt);
            st.se[i] = conv(&[0.0, l, k], dt);
            for (j, ka) in kas.iter().enumerate() {
                st.dx[j][i] = conv(&[*ka, l], dt);
                st.de[j][i] = conv(&[*ka, l, k], dt);
            }
        }
        st
    }

    fn apply(&self, s: &State, st: &Step) -> State {
        let mut out = s.clone();
        self.apply_mut(&mut out, st);
        out
    }

    /// Advances a state in place across one step (no allocation: the series' inner loop).
    fn apply_mut(&self, s: &mut State, st: &Step) {
        let d = &self.disp;
        let k = self.ke0;
        for i in 0..d.n {
            let c = d.coefs[i];
            let mut x = s.x[i] * st.ex[i] + s.rate * c * st.sx[i];
            let mut e = s.e[i] * st.ee + s.x[i] * k * st.xe[i] + s.rate * c * k * st.se[i];
            for (j, (ka, a)) in s.depots.iter().enumerate() {
                x += a * ka * c * st.dx[j][i];
                e += a * ka * c * k * st.de[j][i];
            }
            s.x[i] = x;
            s.e[i] = e;
        }
        for (j, dep) in s.depots.iter_mut().enumerate() {
            dep.1 *= st.decay[j];
        }
    }

    /// The state `dt` minutes after `s`, with no change of input in between.
    pub fn advance(&self, s: &State, dt: f64) -> State {
        if dt <= 0.0 {
            return s.clone();
        }
        let kas: Vec<f64> = s.depots.iter().map(|d| d.0).collect();
        self.apply(s, &self.step(dt, &kas))
    }

    /// Plasma and effect-site concentrations (mg/L) at ascending times, by the recursive update.
    /// Intervals of equal length reuse one set of transition coefficients.
    pub fn series(&self, times: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let mut cp = Vec::with_capacity(times.len());
        let mut ce = Vec::with_capacity(times.len());
        let mut idx = 0;
        let mut cur: Option<(f64, State)> = None;
        let mut cache: Option<Step> = None;
        for &t in times {
            let i = self.index_at(t);
            // Restart from a snapshot when a change lies between the last point and this one.
            let restart = match &cur {
                None => true,
                Some((tc, _)) => i != idx || t < *tc,
            };
            if restart {
                idx = i;
                let (t0, s0) = &self.snapshots[i];
                cur = Some((*t0, s0.clone()));
            }
            let (tc, s) = cur.as_mut().expect("current state");
            let dt = t - *tc;
            if dt > 0.0 {
                let same_depots =
                    |st: &Step| st.kas.len() == s.depots.len() && st.kas.iter().zip(&s.depots).all(|(a, b)| a.to_bits() == b.0.to_bits());
                let reuse = cache.as_ref().is_some_and(|st| (st.dt - dt).abs() <= 1e-12 * dt && same_depots(st));
                if !reuse {
                    let kas: Vec<f64> = s.depots.iter().map(|d| d.0).collect();
                    let st = self.step(dt, &kas);
                    if restart {
                        // An irregular interval after a change; keep the regular step cached.
                        self.apply_mut(s, &st);
                    } else {
                        self.apply_mut(s, &st);
                        cache = Some(st);
                    }
                } else {
                    self.apply_mut(s, cache.as_ref().expect("cached step"));
                }
                *tc = t;
            }
            cp.push(s.cp());
            ce.push(s.ce());
        }
        (cp, ce)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pk::model::Micro;
    use crate::pk::regimen::PkRoute;

    fn domino() -> Disposition {
        Micro { v1_l: 4.41, k10: 0.4381, k12: 0.5921, k21: 0.2470, k13: 0.5900, k31: 0.0146 }.disposition().unwrap()
    }

    fn rel(a: f64, b: f64) -> f64 {
        (a - b).abs() / a.abs().max(b.abs()).max(1e-12)
    }

    #[test]
    fn engines_agree_on_a_mixed_regimen() {
        let events = [
            DoseEvent::IvBolus { at_min: 0.0, dose_mg: 10.0 },
            DoseEvent::Infusion { start_min: 0.0, duration_min: 40.0, dose_mg: 25.0 },
            DoseEvent::Depot { at_min: 180.0, dose_mg: 35.0, route: PkRoute::Sc, f: 0.93, ka_per_min: 0.0693, defaults: true },
            DoseEvent::Depot { at_min: 200.0, dose_mg: 20.0, route: PkRoute::Im, f: 0.93, ka_per_min: 0.1386, defaults: true },
        ];
        let sys = System { disp: domino(), ke0: 0.652, events: &events };
        let traj = Trajectory::new(&sys);
        let times: Vec<f64> = (0..=600).map(|m| m as f64).collect();
        let (cp, ce) = traj.series(&times);
        for (k, &t) in times.iter().enumerate() {
            assert!(rel(cp[k], sys.closed_form(Output::Cp, t)) < 1e-11, "cp at {t}");
            assert!(rel(ce[k], sys.closed_form(Output::Ce, t)) < 1e-11, "ce at {t}");
        }
    }

    #[test]
    fn infusion_peaks_at_its_end_near_240_ng_per_ml() {
        let events = [DoseEvent::Infusion { start_min: 0.0, duration_min: 40.0, dose_mg: 35.0 }];
        let sys = System { disp: domino(), ke0: 0.652, events: &events };
        let at40 = sys.closed_form(Output::Cp, 40.0) * 1000.0;
        assert!((at40 - 240.0).abs() < 1.0, "{at40}");
        let at120 = sys.closed_form(Output::Cp, 120.0) * 1000.0;
        assert!((at120 - 35.8).abs() < 0.1, "{at120}");
    }

    #[test]
    fn a_bolus_is_right_continuous() {
        let events = [DoseEvent::IvBolus { at_min: 10.0, dose_mg: 10.0 }];
        let sys = System { disp: domino(), ke0: 0.652, events: &events };
        let traj = Trajectory::new(&sys);
        assert!(traj.state_before(10.0).cp().abs() < 1e-300);
        let at = traj.state_at(10.0).cp();
        assert!(rel(at, 10.0 / 4.41) < 1e-14);
        assert!(rel(sys.closed_form(Output::Cp, 10.0), at) < 1e-14);
    }
}

/// Where the drug is at one time, mg (for the mass balance).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Amounts {
    /// Central compartment.
    pub a1: f64,
    /// Second compartment.
    pub a2: f64,
    /// Third compartment.
    pub a3: f64,
    /// Still in absorption depots (bioavailable part).
    pub depot: f64,
    /// Not yet infused (rest of running infusions).
    pub to_infuse: f64,
    /// Eliminated.
    pub eliminated: f64,
}

impl System<'_> {
    /// Amounts at `t`, by the closed form.
    pub fn amounts(&self, t: f64) -> Amounts {
        let m = self.disp.micro;
        let mut depot = 0.0;
        let mut to_infuse = 0.0;
        for e in self.events {
            match *e {
                DoseEvent::Depot { at_min, dose_mg, f, ka_per_min, .. } if t >= at_min => {
                    depot += f * dose_mg * (-ka_per_min * (t - at_min)).exp()
                }
                DoseEvent::Infusion { start_min, duration_min, dose_mg } if t >= start_min => {
                    to_infuse += dose_mg * ((start_min + duration_min - t) / duration_min).clamp(0.0, 1.0)
                }
                _ => {}
            }
        }
        Amounts {
            a1: m.v1_l * self.closed_form(Output::Cp, t),
            a2: self.closed_form(Output::Peripheral2, t),
            a3: self.closed_form(Output::Peripheral3, t),
            depot,
            to_infuse,
            eliminated: m.clearance_l_per_min() * self.closed_form(Output::AucCp, t),
        }
    }
}
