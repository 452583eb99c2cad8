//! `ketacare simulate`: predicted ketamine concentrations of a regimen, from a regimen file or a
//! one-dose shortcut, as text, JSON (`--json`) or CSV (`--csv`). Same models, maths and warnings
//! as the server; no database.

use ketacare_domain::pk::engine::Engine;
use ketacare_domain::pk::model::Analyte;
use ketacare_domain::pk::regimen::{PkRoute, Salt};
use ketacare_domain::pk::{simulate, EventInput, Grid, Request, Simulation};
use ketacare_domain::validation::FieldErrors;
use ketacare_knowledge::Knowledge;
use ketacare_web::api_pk::{models_dto, parse_regimen, SimulationDto, CONTEXT_NOTE};

/// The command line of `ketacare simulate`, as text.
#[derive(Debug, Default)]
pub struct SimulateArgs {
    pub weight_kg: Option<String>,
    pub route: Option<String>,
    pub mg_per_kg: Option<String>,
    pub dose_mg: Option<String>,
    pub minutes: Option<String>,
    pub salt: Option<String>,
    pub model: Option<String>,
    pub drug: Option<String>,
    pub age_years: Option<String>,
    pub medications: Vec<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub step: Option<String>,
    pub c_at: Option<String>,
    pub thresholds: Option<String>,
    pub ke0_per_min: Option<String>,
    pub engine: Option<String>,
    pub no_band: bool,
    pub json: bool,
    pub csv: bool,
    pub list_models: bool,
}

fn errors_text(e: &FieldErrors) -> String {
    e.iter()
        .map(|x| match x.field.strip_prefix("regimen.") {
            Some(f) => format!("regimen file, {f}: {}", x.message),
            None if x.field.starts_with("events") => format!("{}: {}", x.field, x.message),
            None => format!("--{}: {}", x.field.replace('_', "-"), x.message),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn number(errors: &mut FieldErrors, field: &str, v: &Option<String>, accepted: &str) -> Option<f64> {
    let s = v.as_deref()?.trim();
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() => Some(x),
        _ => {
            errors.add(field, format!("{s:?} is not a number; give {accepted}"));
            None
        }
    }
}

fn list(errors: &mut FieldErrors, field: &str, v: &Option<String>) -> Vec<f64> {
    let Some(s) = v.as_deref() else { return Vec::new() };
    s.split(',')
        .filter(|x| !x.trim().is_empty())
        .filter_map(|x| match x.trim().parse::<f64>() {
            Ok(n) if n.is_finite() => Some(n),
            _ => {
                errors.add(field, format!("{x:?} is not a number; give numbers separated by commas, e.g. 40,120"));
                None
            }
        })
        .collect()
}

/// Builds the request from the arguments (regimen file text read by the caller).
pub fn request(a: &SimulateArgs, regimen_text: Option<&str>) -> Result<Request, FieldErrors> {
    let mut errors = FieldErrors::new();
    let weight = number(&mut errors, "weight_kg", &a.weight_kg, "the body weight in kg, e.g. 70");
    if a.weight_kg.is_none() {
        errors.add("weight_kg", "is required: the body weight in kg (not pounds)");
    }
    let mut salt = match a.salt.as_deref() {
        None => Salt::Base,
        Some(s) => Salt::parse(s).unwrap_or_else(|| {
            errors.add("salt", "must be base (as vials are labelled) or hydrochloride");
            Salt::Base
        }),
    };
    let shortcut = a.route.is_some() || a.mg_per_kg.is_some() || a.dose_mg.is_some() || a.minutes.is_some();
    let events: Vec<EventInput> = match (regimen_text, shortcut) {
        (Some(_), true) => {
            errors.add(
                "regimen",
                "give either --regimen FILE or the one-dose shortcut (--route, --mg-per-kg or --dose-mg, --minutes), not both",
            );
            Vec::new()
        }
        (Some(text), false) => match serde_json::from_str::<serde_json::Value>(text) {
            Ok(v) => match parse_regimen(&v) {
                Ok((ev, file_salt)) => {
                    if a.salt.is_none() {
                        salt = file_salt;
                    }
                    ev
                }
                Err(e) => {
                    errors.extend_prefixed("regimen.", e);
                    Vec::new()
                }
            },
            Err(e) => {
                errors.add("regimen", format!("is not valid JSON ({e}); expected {{\"events\": [...]}}"));
                Vec::new()
            }
        },
        (None, true) => {
            let route = match a.route.as_deref().map(PkRoute::parse) {
                Some(Some(r)) => Some(r),
                Some(None) => {
                    errors.add("route", "must be iv, sc, im, in (intranasal) or po (oral)");
                    None
                }
                None => {
                    errors.add("route", "is required with --mg-per-kg or --dose-mg");
                    None
                }
            };
            let mgkg = number(&mut errors, "mg_per_kg", &a.mg_per_kg, "a dose in mg/kg, e.g. 0.5");
            let mg = number(&mut errors, "dose_mg", &a.dose_mg, "a dose in mg, e.g. 35");
            let minutes = number(&mut errors, "minutes", &a.minutes, "the infusion time in minutes, e.g. 40");
            let dose = match (mgkg, mg, weight) {
                (Some(_), Some(_), _) => {
                    errors.add("dose_mg", "give --mg-per-kg or --dose-mg, not both");
                    None
                }
                (Some(x), None, Some(w)) => {
                    if !(0.0..=10.0).contains(&x) {
                        errors.add("mg_per_kg", "must be a dose in mg/kg from 0 to 10 (0.5, not 50)");
                    }
                    Some(x * w)
                }
                (None, Some(d), _) => Some(d),
                (None, None, _) => {
                    errors.add("mg_per_kg", "give the dose: --mg-per-kg or --dose-mg");
                    None
                }
                _ => None,
            };
            if minutes.is_some() && route != Some(PkRoute::Iv) {
                errors.add("minutes", "is the infusion time of an iv dose; other routes are given at once");
            }
            match (route, dose) {
                (Some(PkRoute::Iv), Some(d)) => match minutes {
                    Some(m) => vec![EventInput::Infusion { start_min: 0.0, duration_min: m, dose_mg: d }],
                    None => vec![EventInput::Bolus { route: PkRoute::Iv, at_min: 0.0, dose_mg: d, f: None, ka_per_min: None }],
                },
                (Some(r), Some(d)) => vec![EventInput::Bolus { route: r, at_min: 0.0, dose_mg: d, f: None, ka_per_min: None }],
                _ => Vec::new(),
            }
        }
        (None, false) => {
            errors
                .add("regimen", "give --regimen FILE (JSON {\"events\": [...]}) or a single dose: --route iv --mg-per-kg 0.5 --minutes 40");
            Vec::new()
        }
    };
    let drug = match a.drug.as_deref() {
        None => Analyte::Racemic,
        Some(d) => Analyte::parse(d).unwrap_or_else(|| {
            errors.add("drug", "must be racemic or esketamine");
            Analyte::Racemic
        }),
    };
    let engine = match a.engine.as_deref() {
        None => Engine::Recursive,
        Some(e) => Engine::parse(e).unwrap_or_else(|| {
            errors.add("engine", "must be recursive or closed-form");
            Engine::Recursive
        }),
    };
    let age = number(&mut errors, "age_years", &a.age_years, "an age in years");
    let d = Grid::default();
    let grid = Grid {
        from_min: number(&mut errors, "from", &a.from, "a time in minutes").unwrap_or(d.from_min),
        to_min: number(&mut errors, "to", &a.to, "a time in minutes").unwrap_or(d.to_min),
        step_min: number(&mut errors, "step", &a.step, "a step in minutes, e.g. 1").unwrap_or(d.step_min),
    };
    let c_at = list(&mut errors, "c_at", &a.c_at);
    let thresholds = list(&mut errors, "thresholds", &a.thresholds);
    let ke0 = number(&mut errors, "ke0_per_min", &a.ke0_per_min, "a rate per minute, e.g. 0.652");
    if a.json && a.csv {
        errors.add("csv", "choose --json or --csv");
    }
    errors.into_result()?;
    let mut r = Request::new(weight.unwrap_or(f64::NAN), events);
    r.model = a.model.clone();
    r.subject.age_years = age;
    r.subject.medications = a.medications.clone();
    r.drug = drug;
    r.salt = salt;
    r.grid = grid;
    r.c_at_min = c_at;
    r.thresholds_ng_per_ml = thresholds;
    r.ke0_per_min = ke0;
    r.engine = engine;
    r.band = !a.no_band && !a.csv;
    Ok(r)
}

/// Runs the command; returns what to print on stdout and what to print on stderr.
pub fn run(k: &Knowledge, a: &SimulateArgs, regimen_text: Option<&str>) -> Result<(String, String), String> {
    if a.list_models {
        let doc = models_dto(&k.pk);
        if a.json {
            return Ok((serde_json::to_string_pretty(&doc).unwrap_or_default(), String::new()));
        }
        let mut out = String::from("Models (the first is the default):\n");
        for m in &k.pk.models {
            out.push_str(&format!(
                "  {:<12} {} [{}; {}]\n               {}\n",
                m.id,
                m.name,
                m.analyte.label(),
                m.evidence.code(),
                m.population
            ));
        }
        out.push_str("Routes (absorption defaults):\n");
        for r in &k.pk.routes {
            out.push_str(&format!(
                "  {:<3} F {} (range {}-{}), absorption half-life {:.1} min [{}]\n",
                r.route.code(),
                r.f.value,
                r.f.low,
                r.f.high,
                std::f64::consts::LN_2 / r.ka_per_min.value,
                r.evidence.code()
            ));
        }
        return Ok((out, String::new()));
    }
    let req = request(a, regimen_text).map_err(|e| errors_text(&e))?;
    let s = simulate(&k.pk, &req).map_err(|e| errors_text(&e))?;
    let warnings: String = s.warnings.iter().map(|w| format!("warning [{}]: {}\n", w.code, w.message)).collect();
    if a.csv {
        let mut out = String::from("time_min,cp_ng_per_ml,ce_ng_per_ml\n");
        for i in 0..s.times_min.len() {
            out.push_str(&format!("{},{},{}\n", s.times_min[i], s.cp_ng_per_ml[i], s.ce_ng_per_ml[i]));
        }
        return Ok((out.trim_end().to_owned(), warnings));
    }
    if a.json {
        return Ok((serde_json::to_string_pretty(&SimulationDto::from(&s)).unwrap_or_default(), String::new()));
    }
    Ok((text(&s), String::new()))
}

fn text(s: &Simulation) -> String {
    let m = &s.model;
    let sm = &s.summary;
    let mut out = String::new();
    out.push_str(&format!("Model: {} ({}), {}\n", m.name, m.analyte.label(), m.evidence.label()));
    out.push_str(&format!("  {}\n", m.citation));
    out.push_str(&format!(
        "  V1 {:.2} L, CL {:.3} L/min, terminal half-life {:.0} min; ke0 {} per min; engine {}\n",
        s.micro.v1_l,
        s.micro.clearance_l_per_min(),
        s.disposition.terminal_half_life_min(),
        s.ke0_per_min,
        s.engine.code()
    ));
    out.push_str("Doses:\n");
    for d in &s.doses {
        out.push_str(&format!(
            "  {} {:.1} mg at {} min{}\n",
            d.event.route().label(),
            d.event.dose_mg(),
            d.event.start_min(),
            match d.event {
                ketacare_domain::pk::regimen::DoseEvent::Infusion { duration_min, .. } => format!(" over {duration_min} min"),
                ketacare_domain::pk::regimen::DoseEvent::Depot { f, ka_per_min, .. } => {
                    format!(" (F {f}, absorption half-life {:.1} min)", std::f64::consts::LN_2 / ka_per_min)
                }
                _ => String::new(),
            }
        ));
    }
    out.push_str(&format!("Cmax {:.1} ng/mL at {:.1} min (plasma)\n", sm.cmax_ng_per_ml, sm.tmax_min));
    out.push_str(&format!("Effect site (illustrative) max {:.1} ng/mL at {:.1} min\n", sm.ce_max_ng_per_ml, sm.ce_tmax_min));
    out.push_str(&format!(
        "AUC 0-{} min {:.1} ng*h/mL; AUC 0-inf {:.1} ng*h/mL\n",
        s.times_min.last().copied().unwrap_or(0.0),
        sm.auc_0_t_ng_h_per_ml,
        sm.auc_0_inf_ng_h_per_ml
    ));
    for (t, cp, ce) in &sm.c_at {
        out.push_str(&format!("At {t} min: plasma {cp:.1} ng/mL, effect site {ce:.1} ng/mL\n"));
    }
    for (c, mins) in &sm.minutes_above {
        out.push_str(&format!("Above {c} ng/mL: {mins:.1} min\n"));
    }
    match &s.band {
        Some(b) => out.push_str(&format!(
            "Uncertainty: Cmax 5th-95th percentile {:.0}-{:.0} ng/mL ({} subjects, seed {}; varied: {})\n",
            b.cmax_p05_p95.0,
            b.cmax_p05_p95.1,
            b.subjects,
            b.seed,
            b.varied.join("; ")
        )),
        None => {
            if let Some(r) = &s.band_absent_reason {
                out.push_str(&format!("Uncertainty band: none ({r})\n"));
            }
        }
    }
    for w in &s.warnings {
        out.push_str(&format!("WARNING [{}]: {}\n", w.code, w.message));
    }
    out.push_str("Context (not targets):\n");
    for b in &s.context_bands {
        let hi = b.high_ng_per_ml.map(|h| format!("-{h}")).unwrap_or_else(|| "+".into());
        out.push_str(&format!("  {}{} ng/mL: {} ({})\n", b.low_ng_per_ml, hi, b.label, b.source));
    }
    out.push_str(CONTEXT_NOTE);
    out.push_str("\nThe curve itself: add --csv (time_min,cp_ng_per_ml,ce_ng_per_ml) or --json.");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k() -> Knowledge {
        Knowledge::load().expect("knowledge")
    }

    fn shortcut(route: &str, mg_per_kg: &str, minutes: Option<&str>) -> SimulateArgs {
        SimulateArgs {
            weight_kg: Some("70".into()),
            route: Some(route.into()),
            mg_per_kg: Some(mg_per_kg.into()),
            minutes: minutes.map(Into::into),
            ..SimulateArgs::default()
        }
    }

    #[test]
    fn json_has_the_summary_and_the_series() {
        let a = SimulateArgs { json: true, c_at: Some("40,120".into()), ..shortcut("iv", "0.5", Some("40")) };
        let (out, _) = run(&k(), &a, None).unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        for key in ["cmax_ng_per_ml", "tmax_min", "auc_0_inf_ng_h_per_ml", "auc_0_t_ng_h_per_ml", "c_at", "minutes_above"] {
            assert!(!v["summary"][key].is_null(), "{key}");
        }
        assert!((v["summary"]["cmax_ng_per_ml"].as_f64().unwrap() - 240.33).abs() < 0.01);
        assert_eq!(v["series"]["time_min"].as_array().unwrap().len(), 361);
    }

    #[test]
    fn csv_has_one_row_per_grid_point_and_warnings_apart() {
        let a = SimulateArgs {
            csv: true,
            from: Some("0".into()),
            to: Some("120".into()),
            step: Some("0.5".into()),
            ..shortcut("sc", "1", None)
        };
        let (out, err) = run(&k(), &a, None).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "time_min,cp_ng_per_ml,ce_ng_per_ml");
        assert_eq!(lines.len(), 1 + 241);
        assert!(lines[1].starts_with("0,0,0"));
        assert!(err.contains("ASSUMED"), "warnings go to standard error: {err}");
    }

    #[test]
    fn a_regimen_file_with_hydrochloride_doses() {
        let text = r#"{"events": [{"kind": "bolus", "route": "sc", "at_min": 0, "dose_mg": 80.7}], "salt": "hydrochloride"}"#;
        let a = SimulateArgs { weight_kg: Some("70".into()), ..SimulateArgs::default() };
        let (out, _) = run(&k(), &a, Some(text)).unwrap();
        assert!(out.contains("hydrochloride") && out.contains("0.867"), "{out}");
        assert!(out.contains("subcutaneous 70.0 mg"), "80.7 mg of the salt is 70 mg of base: {out}");
    }

    #[test]
    fn bad_input_names_the_option_and_the_accepted_form() {
        let cases: Vec<(SimulateArgs, Option<&str>, &str)> = vec![
            (SimulateArgs { weight_kg: Some("154 lb".into()), ..shortcut("iv", "0.5", Some("40")) }, None, "--weight-kg"),
            (shortcut("sc", "50", None), None, "0.5, not 50"),
            (shortcut("oral", "1", None), None, "--route: must be iv, sc"),
            (shortcut("sc", "1", Some("40")), None, "--minutes"),
            (SimulateArgs { weight_kg: Some("70".into()), ..SimulateArgs::default() }, None, "give --regimen FILE"),
            (SimulateArgs { weight_kg: Some("70".into()), ..SimulateArgs::default() }, Some("{\"events\": [}"), "is not valid JSON"),
            (
                SimulateArgs { weight_kg: Some("70".into()), ..SimulateArgs::default() },
                Some(r#"{"events": [{"kind": "bolus", "route": "sc", "dose_mg": 70, "f": 93}]}"#),
                "events[0].f",
            ),
            (SimulateArgs { step: Some("0".into()), ..shortcut("iv", "0.5", Some("40")) }, None, "--step"),
            (SimulateArgs { json: true, csv: true, ..shortcut("iv", "0.5", Some("40")) }, None, "--csv"),
        ];
        for (a, text, want) in cases {
            let e = run(&k(), &a, text).expect_err(want);
            assert!(e.contains(want), "{want}: {e}");
        }
    }
}
