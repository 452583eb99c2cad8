//! Regimen simulation for the dose calculator, the comparison page, the titration view, the API
//! and the CLI. The maths and the warnings are in `ketacare_domain::pk`; this layer maps clinic
//! records (orders, weights, medications) onto it.

use crate::{App, AppError, Principal};
use ketacare_domain::dose::Route;
use ketacare_domain::ids::PatientId;
use ketacare_domain::pk::model::Analyte;
use ketacare_domain::pk::regimen::PkRoute;
use ketacare_domain::pk::{simulate, EventInput, Request, Simulation, Subject};
use ketacare_domain::record::ClinicalRecord;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

/// Predicted exposure of one dose.
#[derive(Clone, Debug, PartialEq)]
pub struct Exposure {
    /// Model used (name).
    pub model: String,
    /// Route.
    pub route: PkRoute,
    /// Dose, mg.
    pub dose_mg: f64,
    /// Infusion time, min (IV).
    pub minutes: Option<f64>,
    /// Body weight used, kg.
    pub weight_kg: f64,
    /// Predicted peak plasma concentration, ng/mL.
    pub cmax_ng_per_ml: f64,
    /// When, min after the start.
    pub tmax_min: f64,
    /// Predicted AUC 0-inf, ng h/mL.
    pub auc_0_inf_ng_h_per_ml: f64,
    /// Warning codes of the simulation.
    pub warnings: Vec<String>,
}

/// The dose events and drug of one dose as the calculator and orders describe it: IV as an
/// infusion over its minutes (a bolus without minutes), SC and IM as injections, intranasal as
/// esketamine.
pub fn dose_events(route: Route, dose_mg: f64, minutes: Option<f64>) -> (Vec<EventInput>, Analyte) {
    let bolus = |route| EventInput::Bolus { route, at_min: 0.0, dose_mg, f: None, ka_per_min: None };
    match route {
        Route::Iv => match minutes.filter(|m| *m > 0.0) {
            Some(m) => (vec![EventInput::Infusion { start_min: 0.0, duration_min: m, dose_mg }], Analyte::Racemic),
            None => (vec![bolus(PkRoute::Iv)], Analyte::Racemic),
        },
        Route::Sc => (vec![bolus(PkRoute::Sc)], Analyte::Racemic),
        Route::Im => (vec![bolus(PkRoute::Im)], Analyte::Racemic),
        Route::In => (vec![bolus(PkRoute::In)], Analyte::SKetamine),
    }
}

fn f(d: Decimal) -> f64 {
    d.to_f64().unwrap_or(f64::NAN)
}

impl App {
    /// Runs a simulation with the shipped models (no patient data involved, nothing audited).
    pub fn simulate(&self, req: &Request) -> Result<Simulation, AppError> {
        simulate(&self.knowledge.pk, req).map_err(AppError::Validation)
    }

    /// Predicted exposure of one dose for a patient of this weight (the calculator's curve).
    pub fn dose_exposure(
        &self,
        route: Route,
        dose_mg: Decimal,
        minutes: Option<Decimal>,
        weight_kg: Decimal,
    ) -> Result<Simulation, AppError> {
        let (events, drug) = dose_events(route, f(dose_mg), minutes.map(f));
        let mut req = Request::new(f(weight_kg), events);
        req.drug = drug;
        let end = minutes.map(f).unwrap_or(0.0);
        req.grid.to_min = (end + 240.0).max(360.0).ceil();
        self.simulate(&req)
    }

    /// The patient as the simulator needs them: latest weight, age today and current
    /// medications (an audited read of the chart).
    pub async fn pk_subject(&self, p: &Principal, patient: PatientId) -> Result<Subject, AppError> {
        self.authorize_patient(p, patient).await?;
        let chart = self.chart(p, patient).await?;
        let today = self.clock.now().date_naive();
        let medications = chart
            .records
            .iter()
            .filter_map(|v| match &v.record {
                ClinicalRecord::Medication(m) if m.stop.is_none_or(|s| s >= today) => Some(m.name.clone()),
                _ => None,
            })
            .collect();
        Ok(Subject {
            weight_kg: chart.latest_weight().map(|w| f(w.value.kg())).unwrap_or(f64::NAN),
            age_years: Some(f64::from(chart.patient.demographics.date_of_birth.age_on(today))),
            medications,
        })
    }

    /// Predicted exposure of a dose order (its dose, route and minutes at its weight).
    pub(crate) fn order_exposure(&self, o: &ketacare_domain::order::DoseOrderRecord, subject: &Subject) -> Option<Exposure> {
        let (events, drug) = dose_events(o.route, f(o.dose_mg), o.minutes.map(f));
        let mut req = Request::new(f(o.weight_kg), events);
        req.drug = drug;
        req.band = false;
        req.subject.age_years = subject.age_years;
        req.subject.medications = subject.medications.clone();
        req.grid.to_min = (o.minutes.map(f).unwrap_or(0.0) + 240.0).max(360.0).ceil();
        let s = self.simulate(&req).ok()?;
        Some(Exposure {
            model: s.model.name.clone(),
            route: s.doses.first().map(|d| d.event.route()).unwrap_or(PkRoute::Iv),
            dose_mg: f(o.dose_mg),
            minutes: o.minutes.map(f),
            weight_kg: f(o.weight_kg),
            cmax_ng_per_ml: s.summary.cmax_ng_per_ml,
            tmax_min: s.summary.tmax_min,
            auc_0_inf_ng_h_per_ml: s.summary.auc_0_inf_ng_h_per_ml,
            warnings: s.warnings.iter().map(|w| w.code.to_owned()).collect(),
        })
    }
}
