//! Properties of the exact engine over random models and regimens: dose linearity,
//! superposition, time-shift invariance, AUC 0-inf = F x dose / CL, mass balance,
//! non-negativity, right-continuity at a bolus, a monotone rise during a constant infusion, and
//! agreement of the recursive update with the closed form.

use ketacare_domain::pk::engine::{Output, System, Trajectory};
use ketacare_domain::pk::model::Micro;
use ketacare_domain::pk::regimen::{DoseEvent, PkRoute};
use proptest::prelude::*;

fn micro() -> impl Strategy<Value = Micro> {
    (1.0f64..200.0, 0.002f64..1.0, 0usize..3, 0.001f64..2.0, 0.001f64..2.0, 0.0005f64..1.0, 0.0005f64..0.5).prop_map(
        |(v1_l, k10, extra, k12, k21, k13, k31)| Micro {
            v1_l,
            k10,
            k12: if extra >= 1 { k12 } else { 0.0 },
            k21: if extra >= 1 { k21 } else { 0.0 },
            k13: if extra >= 2 { k13 } else { 0.0 },
            k31: if extra >= 2 { k31 } else { 0.0 },
        },
    )
}

fn event() -> impl Strategy<Value = DoseEvent> {
    prop_oneof![
        (0.0f64..300.0, 0.1f64..100.0).prop_map(|(at_min, dose_mg)| DoseEvent::IvBolus { at_min, dose_mg }),
        (0.0f64..300.0, 1.0f64..120.0, 0.1f64..100.0).prop_map(|(start_min, duration_min, dose_mg)| DoseEvent::Infusion {
            start_min,
            duration_min,
            dose_mg
        }),
        (0.0f64..300.0, 0.1f64..100.0, 0.05f64..1.0, 0.001f64..3.0, 0usize..4).prop_map(|(at_min, dose_mg, f, ka_per_min, r)| {
            DoseEvent::Depot {
                at_min,
                dose_mg,
                route: [PkRoute::Sc, PkRoute::Im, PkRoute::In, PkRoute::Po][r],
                f,
                ka_per_min,
                defaults: false,
            }
        }),
    ]
}

fn scale(e: &DoseEvent, k: f64) -> DoseEvent {
    match *e {
        DoseEvent::IvBolus { at_min, dose_mg } => DoseEvent::IvBolus { at_min, dose_mg: dose_mg * k },
        DoseEvent::Infusion { start_min, duration_min, dose_mg } => DoseEvent::Infusion { start_min, duration_min, dose_mg: dose_mg * k },
        DoseEvent::Depot { at_min, dose_mg, route, f, ka_per_min, defaults } => {
            DoseEvent::Depot { at_min, dose_mg: dose_mg * k, route, f, ka_per_min, defaults }
        }
    }
}

fn shift(e: &DoseEvent, s: f64) -> DoseEvent {
    match *e {
        DoseEvent::IvBolus { at_min, dose_mg } => DoseEvent::IvBolus { at_min: at_min + s, dose_mg },
        DoseEvent::Infusion { start_min, duration_min, dose_mg } => DoseEvent::Infusion { start_min: start_min + s, duration_min, dose_mg },
        DoseEvent::Depot { at_min, dose_mg, route, f, ka_per_min, defaults } => {
            DoseEvent::Depot { at_min: at_min + s, dose_mg, route, f, ka_per_min, defaults }
        }
    }
}

fn close(a: f64, b: f64, scale: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(scale)
}

fn peak_scale(events: &[DoseEvent], m: &Micro) -> f64 {
    // Concentration scale of the regimen: all drug in the central volume.
    events.iter().map(|e| e.bioavailable_mg()).sum::<f64>() / m.v1_l * 1e-6
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn dose_linearity_and_superposition(m in micro(), a in prop::collection::vec(event(), 1..4), b in prop::collection::vec(event(), 1..4), k in 0.1f64..10.0, t in 0.0f64..900.0) {
        let disp = m.disposition().unwrap();
        let ka: Vec<DoseEvent> = a.iter().map(|e| scale(e, k)).collect();
        let both: Vec<DoseEvent> = a.iter().chain(&b).copied().collect();
        let c = |ev: &[DoseEvent], out| System { disp, ke0: 0.3, events: ev }.closed_form(out, t);
        let sc = peak_scale(&both, &m) * k.max(1.0);
        for out in [Output::Cp, Output::Ce] {
            prop_assert!(close(c(&ka, out), k * c(&a, out), sc), "linearity");
            prop_assert!(close(c(&both, out), c(&a, out) + c(&b, out), sc), "superposition");
        }
    }

    #[test]
    fn time_shift_invariance(m in micro(), a in prop::collection::vec(event(), 1..4), s in 0.0f64..5000.0, t in 0.0f64..900.0) {
        let disp = m.disposition().unwrap();
        let shifted: Vec<DoseEvent> = a.iter().map(|e| shift(e, s)).collect();
        let c0 = System { disp, ke0: 0.5, events: &a }.closed_form(Output::Cp, t);
        let c1 = System { disp, ke0: 0.5, events: &shifted }.closed_form(Output::Cp, t + s);
        prop_assert!(close(c0, c1, peak_scale(&a, &m)));
    }

    #[test]
    fn auc_to_infinity_is_f_dose_over_clearance_and_mass_balances(m in micro(), a in prop::collection::vec(event(), 1..4), t in 0.0f64..2000.0) {
        let disp = m.disposition().unwrap();
        let sys = System { disp, ke0: 0.652, events: &a };
        let given: f64 = a.iter().map(|e| e.bioavailable_mg()).sum();
        // Far beyond every time constant the integral reaches F x dose / CL.
        let slowest = disp.lambdas[disp.n - 1].min(a.iter().filter_map(|e| match e { DoseEvent::Depot { ka_per_min, .. } => Some(*ka_per_min), _ => None }).fold(f64::INFINITY, f64::min));
        let far = 500.0 + 60.0 / slowest;
        let auc = sys.closed_form(Output::AucCp, far);
        prop_assert!((auc - given / m.clearance_l_per_min()).abs() <= 1e-8 * auc, "AUC {auc} vs {}", given / m.clearance_l_per_min());
        // Mass balance at any time: central + peripheral + depots + still to infuse + eliminated
        // = bioavailable amount of every dose started.
        let am = sys.amounts(t);
        let started: f64 = a.iter().filter(|e| e.start_min() <= t).map(|e| e.bioavailable_mg()).sum();
        let total = am.a1 + am.a2 + am.a3 + am.depot + am.to_infuse + am.eliminated;
        prop_assert!((total - started).abs() <= 1e-9 * started.max(1e-12), "mass {total} vs {started}");
    }

    #[test]
    fn non_negative_and_the_recursive_update_matches_the_closed_form(m in micro(), a in prop::collection::vec(event(), 1..5), step in 0.05f64..30.0) {
        let disp = m.disposition().unwrap();
        let sys = System { disp, ke0: 0.2, events: &a };
        let times: Vec<f64> = (0..200).map(|i| i as f64 * step).collect();
        let (cp, ce) = Trajectory::new(&sys).series(&times);
        let sc = peak_scale(&a, &m);
        for (i, t) in times.iter().enumerate() {
            prop_assert!(cp[i] >= 0.0 && ce[i] >= 0.0, "negative at {t}");
            prop_assert!(close(cp[i], sys.closed_form(Output::Cp, *t), sc), "Cp at {t}: {} vs {}", cp[i], sys.closed_form(Output::Cp, *t));
            prop_assert!(close(ce[i], sys.closed_form(Output::Ce, *t), sc), "Ce at {t}");
        }
    }

    #[test]
    fn a_bolus_is_right_continuous(m in micro(), at in 0.0f64..100.0, dose in 0.1f64..100.0) {
        let disp = m.disposition().unwrap();
        let ev = [DoseEvent::IvBolus { at_min: at, dose_mg: dose }];
        let sys = System { disp, ke0: 0.652, events: &ev };
        let traj = Trajectory::new(&sys);
        let at_bolus = traj.state_at(at).cp();
        prop_assert!(close(at_bolus, dose / m.v1_l, 0.0), "the value at the bolus time includes the bolus");
        prop_assert!(close(sys.closed_form(Output::Cp, at), at_bolus, 0.0));
        prop_assert!(traj.state_before(at).cp().abs() < 1e-300, "nothing before it");
        let just_after = sys.closed_form(Output::Cp, at + 1e-9);
        prop_assert!((just_after - at_bolus).abs() <= 1e-6 * at_bolus);
    }

    #[test]
    fn a_constant_infusion_from_zero_rises_monotonically(m in micro(), duration in 1.0f64..240.0, dose in 1.0f64..100.0) {
        let disp = m.disposition().unwrap();
        let ev = [DoseEvent::Infusion { start_min: 0.0, duration_min: duration, dose_mg: dose }];
        let sys = System { disp, ke0: 0.652, events: &ev };
        let mut prev = 0.0;
        for i in 1..=100 {
            let c = sys.closed_form(Output::Cp, (duration * f64::from(i) / 100.0).min(duration));
            prop_assert!(c >= prev, "falls at step {i}: {c} after {prev}");
            prev = c;
        }
    }
}
