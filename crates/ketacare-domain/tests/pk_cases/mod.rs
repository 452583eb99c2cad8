//! The independent test cases of `tests/pk/cases.json` (regimens, micro constants, grids) and
//! their reference values computed by `tests/pk/reference.py` (40-digit matrix exponential).

use ketacare_domain::pk::model::Micro;
use ketacare_domain::pk::regimen::{DoseEvent, PkRoute};
use serde::Deserialize;

pub const CASES: &str = include_str!("../../../../tests/pk/cases.json");
#[allow(dead_code)]
pub const REFERENCE: &str = include_str!("../../../../tests/pk/reference-curves.json");

#[derive(Deserialize)]
pub struct Cases {
    pub cases: Vec<Case>,
}

#[derive(Deserialize)]
pub struct MicroJson {
    pub v1_l: f64,
    pub k10: f64,
    #[serde(default)]
    pub k12: f64,
    #[serde(default)]
    pub k21: f64,
    #[serde(default)]
    pub k13: f64,
    #[serde(default)]
    pub k31: f64,
}

#[derive(Deserialize)]
pub struct EventJson {
    pub kind: String,
    pub route: Option<String>,
    pub start_min: Option<f64>,
    pub duration_min: Option<f64>,
    pub at_min: Option<f64>,
    pub dose_mg: f64,
    pub f: Option<f64>,
    pub ka_per_min: Option<f64>,
}

#[derive(Deserialize)]
pub struct Case {
    pub name: String,
    pub micro: MicroJson,
    pub ke0_per_min: f64,
    pub events: Vec<EventJson>,
    pub times_min: Vec<f64>,
    #[allow(dead_code)]
    pub thresholds_ng_per_ml: Vec<f64>,
}

impl Case {
    pub fn micro(&self) -> Micro {
        let m = &self.micro;
        Micro { v1_l: m.v1_l, k10: m.k10, k12: m.k12, k21: m.k21, k13: m.k13, k31: m.k31 }
    }

    pub fn events(&self) -> Vec<DoseEvent> {
        self.events
            .iter()
            .map(|e| match (e.kind.as_str(), e.route.as_deref()) {
                ("infusion", _) => DoseEvent::Infusion {
                    start_min: e.start_min.unwrap_or(0.0),
                    duration_min: e.duration_min.expect("duration"),
                    dose_mg: e.dose_mg,
                },
                ("bolus", Some("iv")) => DoseEvent::IvBolus { at_min: e.at_min.unwrap_or(0.0), dose_mg: e.dose_mg },
                ("bolus", Some(r)) => DoseEvent::Depot {
                    at_min: e.at_min.unwrap_or(0.0),
                    dose_mg: e.dose_mg,
                    route: PkRoute::parse(r).expect("route"),
                    f: e.f.expect("f"),
                    ka_per_min: e.ka_per_min.expect("ka"),
                    defaults: false,
                },
                other => panic!("unknown event {other:?}"),
            })
            .collect()
    }
}

#[allow(dead_code)]
#[derive(Deserialize)]
pub struct Above {
    pub threshold_ng_per_ml: f64,
    pub minutes: f64,
}

#[allow(dead_code)]
#[derive(Deserialize)]
pub struct Amounts {
    pub a1: f64,
    pub a2: f64,
    pub a3: f64,
    pub depot: f64,
    pub eliminated: f64,
}

#[allow(dead_code)]
#[derive(Deserialize)]
pub struct Reference {
    pub name: String,
    pub cp_ng_per_ml: Vec<f64>,
    pub ce_ng_per_ml: Vec<f64>,
    pub auc_0_t_ng_h_per_ml: f64,
    pub auc_0_inf_ng_h_per_ml: f64,
    pub cmax_ng_per_ml: f64,
    pub tmax_min: f64,
    pub minutes_above: Vec<Above>,
    pub amounts_at_end: Amounts,
}

#[allow(dead_code)]
#[derive(Deserialize)]
pub struct References {
    pub generated_by: String,
    pub cases: Vec<Reference>,
}

pub fn cases() -> Vec<Case> {
    serde_json::from_str::<Cases>(CASES).expect("tests/pk/cases.json parses").cases
}

#[allow(dead_code)]
pub fn references() -> References {
    serde_json::from_str(REFERENCE).expect("tests/pk/reference-curves.json parses")
}
