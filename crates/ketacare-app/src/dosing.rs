//! Dosing: the stand-alone calculator (the bedside tool), every evaluation logged against the
//! drug library, and the pump-style quality report.

use crate::{App, AppError, Principal};
use chrono::{DateTime, Utc};
use ketacare_domain::access::Permission;
use ketacare_domain::dose::{
    calculate, quality_report, DoseEvaluation, DoseInput, DoseRequest, DoseResult, EvaluationOutcome, QualityReport,
};
use ketacare_domain::ids::{PatientId, RecordId};
use uuid::Uuid;

impl App {
    /// Parses a typed dose request with the library's default weight basis and the clinic's
    /// weight limits.
    /// When no basis is chosen, the library's default applies, or its basis for obesity at or
    /// above the BMI threshold (clinic policy).
    pub fn parse_dose(&self, input: &DoseInput) -> Result<DoseRequest, AppError> {
        let a = &self.knowledge.anthropometry;
        Ok(self.knowledge.drug_library.parse_dose(input, (a.weight_min_kg, a.weight_max_kg))?)
    }

    /// Calculates a dose against the drug library (nothing is ordered) and logs the evaluation.
    /// A hard-limit breach is a result with `refused()`, not an error: the caller shows why.
    pub async fn calculate_dose(&self, p: &Principal, input: &DoseInput) -> Result<DoseResult, AppError> {
        self.authorize(p, Permission::ReadPatients, "DoseCalculation").await?;
        let req = self.parse_dose(input)?;
        let lib = self.drug_library_in_force().await?;
        let limits = lib.limits(req.route).ok_or_else(|| {
            AppError::Validation(ketacare_domain::validation::FieldErrors::single("route", "the drug library has no limits for this route"))
        })?;
        let r = calculate(&req, limits, &lib.policy)?;
        self.log_evaluation(p, None, None, &req, &r, EvaluationOutcome::of(&r), None, None).await?;
        Ok(r)
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn log_evaluation(
        &self,
        p: &Principal,
        patient: Option<PatientId>,
        order: Option<RecordId>,
        req: &DoseRequest,
        r: &DoseResult,
        outcome: EvaluationOutcome,
        reason: Option<String>,
        second: Option<String>,
    ) -> Result<(), AppError> {
        let e = DoseEvaluation {
            id: RecordId::from_uuid(Uuid::new_v4()),
            at: self.clock.now(),
            username: p.user.username.as_str().to_owned(),
            user_id: p.user.id,
            patient_id: patient,
            order_id: order,
            drug: self.knowledge.drug_library.drug.clone(),
            route: req.route,
            dose_mg: r.dose_mg,
            mg_per_kg: req.mg_per_kg,
            outcome,
            breaches: r.breaches.iter().map(|b| format!("{} limit: {}", b.level.code(), b.message)).collect(),
            reason,
            second_username: second,
        };
        self.store.append_dose_evaluation(&self.ctx(p, "operations"), &e).await?;
        Ok(())
    }

    /// The quality report of the drug library over a period (medical director and
    /// administrators): evaluations, soft breaches, overrides, hard-limit refusals and
    /// double-check mismatches, by route and by user.
    pub async fn dose_quality(
        &self,
        p: &Principal,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<(QualityReport, Vec<DoseEvaluation>), AppError> {
        self.authorize(p, Permission::ReadAudit, "DoseQuality").await?;
        let evs = self.store.list_dose_evaluations(from, to).await?;
        Ok((quality_report(&evs), evs))
    }
}

// ---------------------------------------------------------------- plans and orders

use crate::patients::Measurement;
use ketacare_domain::anthropometry::BodyWeight;
use ketacare_domain::dose::{LimitLevel, Route};
use ketacare_domain::order::{DoseOrderRecord, DoubleCheck, OrderStatus, TreatmentPlanRecord};
use ketacare_domain::record::{ClinicalRecord, Reason, RecordVersion, VersionAction};
use ketacare_domain::validation::FieldErrors;
use rust_decimal::Decimal;

/// A patient's dosing: plans, orders, the weight the next dose would use, and what was given.
#[derive(Clone, Debug)]
pub struct DosingView {
    /// Treatment plans (current versions), newest first.
    pub plans: Vec<(RecordVersion, TreatmentPlanRecord)>,
    /// Dose orders (current versions), newest first.
    pub orders: Vec<(RecordVersion, DoseOrderRecord)>,
    /// The latest weight.
    pub latest_weight: Option<Measurement<BodyWeight>>,
    /// Whether it is recent enough for a dose (the drug library's policy).
    pub weight_current: bool,
    /// mg given (double-checked orders) in the last 7 days.
    pub given_7d_mg: Decimal,
    /// mg given in the last 28 days.
    pub given_28d_mg: Decimal,
    /// mg given or pending (orders neither blocked nor cancelled) in the last 7 and 28 days:
    /// what the cumulative limits count. Not for display (pending doses are blind).
    pub committed: (Decimal, Decimal),
    /// Absolute contraindications that stop any dose now.
    pub blocking: Vec<String>,
}

/// A dose to order for a patient: the dose fields (the weight, height and sex come from the
/// chart), the plan session it belongs to, and the reason for passing a soft limit.
#[derive(Clone, Debug, Default)]
pub struct OrderInput {
    /// The dose as typed (weight, height and sex are ignored: taken from the chart).
    pub dose: DoseInput,
    /// Plan record id, if ordered from a plan.
    pub plan: String,
    /// Plan step key.
    pub step: String,
    /// Reason for passing a soft limit (then a second clinician must approve).
    pub override_reason: String,
}

/// What the second clinician enters, blind.
#[derive(Clone, Debug, Default)]
pub struct CheckInput {
    /// Weight read from the record of today's measurement, kg.
    pub weight_kg: String,
    /// Concentration of the vial in hand, mg/mL.
    pub concentration_mg_per_ml: String,
    /// Dose calculated independently, mg.
    pub dose_mg: String,
}

/// The input field a breached limit belongs to.
fn field_of(quantity: &str) -> &'static str {
    match quantity {
        "rate" | "minutes" => "minutes",
        _ => "mg_per_kg",
    }
}

impl App {
    /// Everything the dosing page shows.
    pub async fn dosing(&self, p: &Principal, patient: PatientId) -> Result<DosingView, AppError> {
        self.authorize(p, Permission::ReadPatients, "Dosing").await?;
        self.authorize_patient(p, patient).await?;
        let chart = self.chart(p, patient).await?;
        let now = self.clock.now();
        let mut plans = Vec::new();
        let mut orders = Vec::new();
        for v in &chart.records {
            match &v.record {
                ClinicalRecord::TreatmentPlan(x) => plans.push((v.clone(), x.clone())),
                ClinicalRecord::DoseOrder(x) => orders.push((v.clone(), (**x).clone())),
                _ => {}
            }
        }
        plans.reverse();
        orders.reverse();
        // Given (double-checked) doses are shown; the limits also count pending orders, so that
        // a later order is checked against every earlier one that may still be given. Pending
        // amounts are never shown: an order may wait for its blind double check.
        let total = |days: i64, pending_too: bool| -> Decimal {
            orders
                .iter()
                .filter(|(_, o)| o.status == OrderStatus::Checked || (pending_too && o.status != OrderStatus::Blocked))
                .filter(|(v, _)| v.provenance.recorded_at > now - chrono::Duration::days(days))
                .map(|(_, o)| o.dose_mg)
                .sum()
        };
        let given = |days: i64| total(days, false);
        let committed = (total(7, true), total(28, true));
        let latest_weight = chart.latest_weight().cloned();
        let max_age = self.knowledge.drug_library.weight_max_age_days;
        let weight_current = latest_weight.as_ref().is_some_and(|w| (now.date_naive() - w.effective.date_naive()).num_days() <= max_age);
        let view = self.screening(p, patient).await?;
        let blocking = view
            .screening
            .findings
            .iter()
            .filter(|f| f.severity == ketacare_domain::screening::Severity::Exclusion)
            .map(|f| f.title.clone())
            .collect();
        let (given_7d_mg, given_28d_mg) = (given(7), given(28));
        Ok(DosingView { plans, orders, latest_weight, weight_current, given_7d_mg, given_28d_mg, committed, blocking })
    }

    /// Lays a protocol out for a patient from a start date (prescribers and the medical
    /// director); kept as a versioned treatment-plan record.
    pub async fn plan_protocol(
        &self,
        p: &Principal,
        patient: PatientId,
        protocol: &str,
        start: &str,
        variant: &str,
        note: &str,
    ) -> Result<RecordVersion, AppError> {
        self.authorize(p, Permission::Prescribe, "TreatmentPlan").await?;
        self.authorize_patient(p, patient).await?;
        self.patient(p, patient).await?;
        let mut e = FieldErrors::new();
        let protocols = self.protocols_in_force().await?;
        let proto = protocols.iter().find(|x| x.key == protocol.trim());
        if proto.is_none() {
            let keys: Vec<&str> = protocols.iter().map(|x| x.key.as_str()).collect();
            e.add("protocol", format!("must be one of {}", keys.join(", ")));
        }
        let start = e.check(
            "start",
            chrono::NaiveDate::parse_from_str(start.trim(), "%Y-%m-%d").map_err(|_| "must be a date such as 2026-12-01".to_owned()),
        );
        if start.is_some_and(|s| s < self.clock.now().date_naive()) {
            e.add("start", "must be today or later");
        }
        let note = e.check("note", ketacare_domain::validation::optional_note(note, 2000));
        let (Some(proto), Some(start)) = (proto, start) else { return Err(e.into()) };
        let mut plan = match TreatmentPlanRecord::from_protocol(proto, start, Some(variant)) {
            Ok(x) => x,
            Err(errs) => {
                for x in errs.iter() {
                    e.add(&x.field, x.message.clone());
                }
                return Err(e.into());
            }
        };
        e.into_result()?;
        plan.note = note.flatten();
        let v = Self::first_version(patient, ClinicalRecord::TreatmentPlan(plan), self.provenance(p));
        self.store.append_record_version(&self.ctx(p, "treatment"), &v).await?;
        Ok(v)
    }

    /// Orders a dose for a patient with the weight measured today: calculated against the
    /// drug library and logged. A hard-limit breach is refused for everyone; a soft-limit breach
    /// needs a reason, then a second clinician's approval; the order then waits for the
    /// independent double check.
    pub async fn order_dose(&self, p: &Principal, patient: PatientId, input: &OrderInput) -> Result<RecordVersion, AppError> {
        self.authorize(p, Permission::Prescribe, "DoseOrder").await?;
        self.authorize_patient(p, patient).await?;
        let view = self.dosing(p, patient).await?;
        if !view.blocking.is_empty() {
            return Err(FieldErrors::single(
                "route",
                format!("No dose while an absolute contraindication stands: {}. See the patient's screening.", view.blocking.join("; ")),
            )
            .into());
        }
        let Some(w) = view.latest_weight.as_ref().filter(|_| view.weight_current) else {
            let msg = match &view.latest_weight {
                Some(w) => format!(
                    "the latest weight ({}) was measured on {} by {}; weigh the patient today, in kilograms, before a dose is calculated",
                    w.value,
                    w.effective.format("%Y-%m-%d"),
                    w.version.provenance.username
                ),
                None => "no weight is recorded; weigh the patient today, in kilograms, before a dose is calculated".into(),
            };
            return Err(FieldErrors::single("weight_kg", msg).into());
        };
        let chart = self.chart(p, patient).await?;
        let mut dose = input.dose.clone();
        dose.weight_kg = w.value.kg().normalize().to_string();
        dose.height_cm = chart.latest_height().map(|h| h.value.cm().normalize().to_string()).unwrap_or_default();
        dose.sex = match chart.patient.demographics.sex.code() {
            s @ ("male" | "female") => s.to_owned(),
            _ => String::new(),
        };
        let mut req = self.parse_dose(&dose)?;
        (req.given_7d_mg, req.given_28d_mg) = view.committed;
        let plan = match input.plan.trim() {
            "" => None,
            id => {
                let rid = RecordId::parse(id).map_err(|_| FieldErrors::single("plan", "must be a treatment plan of this patient"))?;
                let (_, pl) = view
                    .plans
                    .iter()
                    .find(|(v, _)| v.record_id == rid)
                    .ok_or_else(|| FieldErrors::single("plan", "must be a treatment plan of this patient"))?;
                if !input.step.trim().is_empty() && !pl.sessions.iter().any(|s| s.step == input.step.trim()) {
                    return Err(FieldErrors::single("step", "must be a session of the plan").into());
                }
                if pl.route != req.route {
                    return Err(FieldErrors::single("route", format!("the plan is {}; order by that route", pl.route.code())).into());
                }
                Some(rid)
            }
        };
        let lib = self.drug_library_in_force().await?;
        let limits = lib.limits(req.route).ok_or_else(|| FieldErrors::single("route", "the drug library has no limits for this route"))?;
        let r = calculate(&req, limits, &lib.policy)?;
        let reason = input.override_reason.trim();
        if r.refused() {
            self.log_evaluation(p, Some(patient), None, &req, &r, EvaluationOutcome::Rejected, None, None).await?;
            let mut e = FieldErrors::new();
            for b in r.breaches.iter().filter(|b| b.level == LimitLevel::Hard) {
                let field = if req.route == Route::In { "dose_mg" } else { field_of(&b.quantity) };
                e.add(field, format!("Hard limit, refused for everyone: {} ({})", b.message, b.source));
            }
            return Err(e.into());
        }
        let mut e = FieldErrors::new();
        let override_reason = if r.needs_override() {
            if reason.is_empty() {
                self.log_evaluation(p, Some(patient), None, &req, &r, EvaluationOutcome::SoftBreach, None, None).await?;
                let limits: Vec<String> = r.breaches.iter().map(|b| b.message.clone()).collect();
                return Err(FieldErrors::single(
                    "override_reason",
                    format!(
                        "Soft limit: {}. Give a reason to order it anyway; a second clinician must then approve it.",
                        limits.join("; ")
                    ),
                )
                .into());
            }
            e.check("override_reason", Reason::parse(reason)).map(|r| r.as_str().to_owned())
        } else {
            None
        };
        e.into_result()?;
        let order = DoseOrderRecord {
            plan,
            step: Some(input.step.trim().to_owned()).filter(|s| !s.is_empty()),
            route: req.route,
            basis: req.basis,
            mg_per_kg: req.mg_per_kg,
            fixed_mg: req.fixed_mg,
            concentration_mg_per_ml: req.concentration_mg_per_ml,
            final_volume_ml: req.final_volume_ml,
            minutes: req.minutes,
            weight_kg: req.weight_kg,
            weight_measured_at: w.effective,
            weight_measured_by: w.version.provenance.username.clone(),
            weight_used_kg: r.weight_used_kg,
            dose_mg: r.dose_mg,
            dose_requested_mg: r.dose_requested_mg,
            drug_volume_ml: r.drug_volume_ml,
            rate_ml_per_h: r.rate_ml_per_h,
            steps: r.steps.clone(),
            breaches: r.breaches.iter().map(|b| format!("{} limit: {}", b.level.code(), b.message)).collect(),
            status: if r.needs_override() { OrderStatus::AwaitingOverride } else { OrderStatus::AwaitingCheck },
            override_reason: override_reason.clone(),
            override_approved_by: None,
            check: None,
        };
        let v = Self::first_version(patient, ClinicalRecord::DoseOrder(Box::new(order)), self.provenance(p));
        self.store.append_record_version(&self.ctx(p, "treatment"), &v).await?;
        let outcome = if r.needs_override() { EvaluationOutcome::SoftBreach } else { EvaluationOutcome::Accepted };
        self.log_evaluation(p, Some(patient), Some(v.record_id), &req, &r, outcome, override_reason, None).await?;
        Ok(v)
    }

    async fn order_for_change(
        &self,
        p: &Principal,
        id: RecordId,
        base_version: u32,
    ) -> Result<(RecordVersion, DoseOrderRecord, RecordVersion), AppError> {
        let h = self.record_history(p, id).await?;
        let cur = h.last().cloned().ok_or(AppError::NotFound)?;
        let first = h.first().cloned().ok_or(AppError::NotFound)?;
        let ClinicalRecord::DoseOrder(o) = &cur.record else { return Err(AppError::NotFound) };
        if cur.is_void() {
            return Err(AppError::Conflict("the order was cancelled".into()));
        }
        if cur.version != base_version {
            return Err(AppError::Conflict("the order changed meanwhile; reload it".into()));
        }
        Ok((cur.clone(), (**o).clone(), first))
    }

    fn order_request(o: &DoseOrderRecord) -> DoseRequest {
        DoseRequest {
            route: o.route,
            weight_kg: o.weight_kg,
            height_cm: None,
            sex: None,
            basis: o.basis,
            mg_per_kg: o.mg_per_kg,
            fixed_mg: o.fixed_mg,
            concentration_mg_per_ml: o.concentration_mg_per_ml,
            final_volume_ml: o.final_volume_ml,
            minutes: o.minutes,
            given_7d_mg: Decimal::ZERO,
            given_28d_mg: Decimal::ZERO,
        }
    }

    fn order_result(o: &DoseOrderRecord) -> DoseResult {
        DoseResult {
            route: o.route,
            bmi: None,
            ibw_kg: None,
            adjbw_kg: None,
            weight_used_kg: o.weight_used_kg,
            basis: o.basis,
            dose_requested_mg: o.dose_requested_mg,
            dose_mg: o.dose_mg,
            dose_mg_per_kg: o.mg_per_kg.unwrap_or_default(),
            concentration_mg_per_ml: o.concentration_mg_per_ml,
            drug_volume_ml: o.drug_volume_ml,
            diluent_ml: None,
            final_volume_ml: o.final_volume_ml,
            final_concentration_mg_per_ml: None,
            minutes: o.minutes,
            rate_ml_per_h: o.rate_ml_per_h,
            rate_mg_per_h: None,
            rate_mg_per_kg_per_h: None,
            devices: None,
            steps: vec![],
            warnings: vec![],
            breaches: vec![],
        }
    }

    /// A second clinician approves a soft-limit override (not the prescriber who ordered it).
    pub async fn approve_override(&self, p: &Principal, id: RecordId, base_version: u32) -> Result<RecordVersion, AppError> {
        self.authorize(p, Permission::Prescribe, "DoseOrder").await?;
        let (cur, mut o, first) = self.order_for_change(p, id, base_version).await?;
        if o.status != OrderStatus::AwaitingOverride {
            return Err(AppError::Conflict("this order does not wait for an override".into()));
        }
        if first.provenance.user_id == p.user.id {
            return Err(FieldErrors::single(
                "approver",
                "the second clinician must be someone other than the prescriber who ordered the dose",
            )
            .into());
        }
        o.status = OrderStatus::AwaitingCheck;
        o.override_approved_by = Some(p.user.username.as_str().to_owned());
        let reason = Reason::parse(&format!("soft-limit override approved by {}", p.user.username.as_str())).map_err(AppError::Internal)?;
        let v = self.next(p, &cur, VersionAction::Amend, ClinicalRecord::DoseOrder(Box::new(o.clone())), reason);
        self.store.append_record_version(&self.ctx(p, "treatment"), &v).await?;
        self.log_evaluation(
            p,
            Some(cur.patient_id),
            Some(id),
            &Self::order_request(&o),
            &Self::order_result(&o),
            EvaluationOutcome::Overridden,
            o.override_reason.clone(),
            Some(p.user.username.as_str().to_owned()),
        )
        .await?;
        Ok(v)
    }

    /// The independent double check: a second clinician (not the one who ordered) enters the
    /// weight, the concentration in hand and the dose they calculated, without seeing the order's
    /// values; a mismatch blocks the dose and is logged.
    pub async fn double_check(
        &self,
        p: &Principal,
        id: RecordId,
        base_version: u32,
        input: &CheckInput,
    ) -> Result<RecordVersion, AppError> {
        self.authorize(p, Permission::WriteClinical, "DoseOrder").await?;
        let (cur, mut o, first) = self.order_for_change(p, id, base_version).await?;
        match o.status {
            OrderStatus::AwaitingCheck => {}
            OrderStatus::AwaitingOverride => {
                return Err(AppError::Conflict("a second clinician must approve the soft-limit override first".into()))
            }
            OrderStatus::Checked => return Err(AppError::Conflict("this order is already double-checked".into())),
            OrderStatus::Blocked => {
                return Err(AppError::Conflict("this order is blocked by a mismatched double check; the prescriber orders again".into()))
            }
        }
        if first.provenance.user_id == p.user.id {
            return Err(FieldErrors::single(
                "checker",
                "the double check must be done by someone other than the prescriber who ordered the dose",
            )
            .into());
        }
        if o.override_approved_by.as_deref() == Some(p.user.username.as_str()) {
            return Err(FieldErrors::single(
                "checker",
                "the double check must be done by someone who has not seen the order: not the clinician who approved its override",
            )
            .into());
        }
        // The order must still hold today: weighed today, no absolute contraindication since.
        let view = self.dosing(p, cur.patient_id).await?;
        if !view.blocking.is_empty() {
            return Err(FieldErrors::single(
                "checker",
                format!("No dose while an absolute contraindication stands: {}. The prescriber must review.", view.blocking.join("; ")),
            )
            .into());
        }
        if (self.clock.now().date_naive() - o.weight_measured_at.date_naive()).num_days() > self.knowledge.drug_library.weight_max_age_days
        {
            return Err(FieldErrors::single(
                "checker",
                "the order used a weight from another day; the prescriber orders again with today's weight",
            )
            .into());
        }
        let mut e = FieldErrors::new();
        let num = |e: &mut FieldErrors, f: &str, raw: &str, unit: &str| -> Option<Decimal> {
            match raw.trim().parse::<Decimal>() {
                Ok(d) if d > Decimal::ZERO => Some(d),
                _ => {
                    e.add(f, format!("must be the {unit} you read or calculated yourself, a positive number"));
                    None
                }
            }
        };
        let weight = num(&mut e, "weight_kg", &input.weight_kg, "weight in kg");
        let conc = if o.route == Route::In {
            None
        } else {
            num(&mut e, "concentration_mg_per_ml", &input.concentration_mg_per_ml, "concentration in mg/mL")
        };
        let dose = num(&mut e, "dose_mg", &input.dose_mg, "dose in mg");
        e.into_result()?;
        let (Some(weight), Some(dose)) = (weight, dose) else { return Err(AppError::Internal("checked above".into())) };
        let differ = o.compare(weight, conc, dose, self.drug_library_in_force().await?.policy.volume_step_ml);
        if !differ.is_empty() {
            let mut r = Self::order_result(&o);
            r.dose_mg = dose;
            self.log_evaluation(
                p,
                Some(cur.patient_id),
                Some(id),
                &Self::order_request(&o),
                &r,
                EvaluationOutcome::CheckMismatch,
                None,
                Some(p.user.username.as_str().to_owned()),
            )
            .await?;
            // The order is blocked for good (no second try that could be adjusted until it passes).
            let mut blocked = o.clone();
            blocked.status = OrderStatus::Blocked;
            let why = Reason::parse(&format!("double check by {} did not match ({})", p.user.username.as_str(), differ.join(", ")))
                .map_err(AppError::Internal)?;
            let v = self.next(p, &cur, VersionAction::Amend, ClinicalRecord::DoseOrder(Box::new(blocked)), why);
            self.store.append_record_version(&self.ctx(p, "treatment"), &v).await?;
            let mut e = FieldErrors::new();
            for f in differ {
                e.add(f, "does not match the order: the dose is blocked. Check the weight record, the vial label and your calculation; the prescriber must order again.");
            }
            return Err(e.into());
        }
        o.status = OrderStatus::Checked;
        o.check = Some(DoubleCheck {
            by: p.user.username.as_str().to_owned(),
            weight_kg: weight,
            concentration_mg_per_ml: conc,
            dose_mg: dose,
            at: self.clock.now(),
        });
        let reason = Reason::parse(&format!("independent double check by {}", p.user.username.as_str())).map_err(AppError::Internal)?;
        let v = self.next(p, &cur, VersionAction::Amend, ClinicalRecord::DoseOrder(Box::new(o)), reason);
        self.store.append_record_version(&self.ctx(p, "treatment"), &v).await?;
        Ok(v)
    }
}

// ---------------------------------------------------------------- titration review

use ketacare_domain::titration::{recommend, Action, GivenSession, Recommendation};

/// The titration review of a patient's current plan.
#[derive(Clone, Debug)]
pub struct TitrationView {
    /// The plan (current version).
    pub plan: (RecordVersion, TreatmentPlanRecord),
    /// What was given under it, with what was seen.
    pub given: Vec<GivenSession>,
    /// The recommendation for the next session.
    pub recommendation: Recommendation,
    /// Predicted exposure of each dose in `given` (same order), where it can be simulated.
    pub exposure: Vec<Option<crate::Exposure>>,
}

impl App {
    /// The recommendation for the next session of the patient's latest plan, from the
    /// double-checked doses given under it and the ratings, blood pressure and sedation seen.
    pub async fn titration(&self, p: &Principal, patient: PatientId) -> Result<Option<TitrationView>, AppError> {
        self.authorize_patient(p, patient).await?;
        let view = self.dosing(p, patient).await?;
        let Some((pv, plan)) = view.plans.first().cloned() else { return Ok(None) };
        let protocols = self.protocols_in_force().await?;
        let Some(protocol) = protocols.iter().find(|x| x.key == plan.protocol) else { return Ok(None) };
        let chart = self.chart(p, patient).await?;
        let rules = &self.knowledge.titration;
        let assessments: Vec<&ketacare_domain::assessment::Assessment> = chart
            .records
            .iter()
            .filter_map(|v| match &v.record {
                ClinicalRecord::Assessment(a) => Some(a),
                _ => None,
            })
            .collect();
        let total = |a: &ketacare_domain::assessment::Assessment| {
            self.knowledge.instrument(&a.instrument).and_then(|i| i.score(&a.answers, None).ok()).and_then(|s| s.total)
        };
        let mut given = Vec::new();
        let mut exposure = Vec::new();
        let subject = self.pk_subject(p, patient).await?;
        let mut orders: Vec<&(RecordVersion, DoseOrderRecord)> =
            view.orders.iter().filter(|(_, o)| o.plan == Some(pv.record_id) && o.status == OrderStatus::Checked).collect();
        orders.sort_by_key(|(_, o)| o.check.as_ref().map(|c| c.at));
        // Each dose's response, benefit and dissociation, read as the cohort analytics read them.
        let ratings: Vec<ketacare_domain::cohort::Rating> = assessments
            .iter()
            .filter_map(|a| {
                total(a).map(|t| ketacare_domain::cohort::Rating {
                    instrument: a.instrument.clone(),
                    at: a.taken_at,
                    total: t,
                    timepoint: a.timepoint.clone(),
                })
            })
            .collect();
        let doses: Vec<ketacare_domain::cohort::DoseGiven> = orders
            .iter()
            .filter_map(|(_, o)| {
                o.check.as_ref().map(|c| ketacare_domain::cohort::DoseGiven {
                    at: c.at,
                    mg_per_kg: o.mg_per_kg,
                    route: o.route.code().to_owned(),
                    protocol: None,
                    step: o.step.clone(),
                })
            })
            .collect();
        let read = ketacare_domain::cohort::dose_outcomes(
            &doses,
            &ratings,
            &self.knowledge.research.primary_scales,
            &rules.response_timepoint,
            rules.response_percent.value,
            &self.knowledge.research.dissociation_scale,
        );
        for ((_, o), seen) in orders.into_iter().filter(|(_, o)| o.check.is_some()).zip(read) {
            let Some(at) = o.check.as_ref().map(|c| c.at) else { continue };
            let date = at.date_naive();
            let on_day = |inst: &'static str| assessments.iter().filter(move |a| a.instrument == inst && a.taken_at.date_naive() == date);
            let response = seen.response.map(|(r, key)| (r, self.knowledge.instrument(&key).map(|i| i.name.clone()).unwrap_or(key)));
            let benefit_days = seen.benefit_days;
            let cadss = seen.dissociation;
            let moaas_min = on_day("moaas").filter_map(|a| total(a)).min().and_then(|m| u32::try_from(m.trunc().mantissa()).ok());
            let mut peak: Option<(u32, u32)> = None;
            for v in &chart.records {
                if let ClinicalRecord::Observation(obs) = &v.record {
                    if obs.effective.date_naive() != date {
                        continue;
                    }
                    let whole = |d: Decimal| u32::try_from(d.round().mantissa()).ok();
                    if let Some(s) = obs.quantity_if(ketacare_domain::coding::loinc::SYSTOLIC_BP, "mm[Hg]").and_then(whole) {
                        let cur = peak.unwrap_or((0, 0));
                        peak = Some((cur.0.max(s), cur.1));
                    }
                    if let Some(dia) = obs.quantity_if(ketacare_domain::coding::loinc::DIASTOLIC_BP, "mm[Hg]").and_then(whole) {
                        let cur = peak.unwrap_or((0, 0));
                        peak = Some((cur.0, cur.1.max(dia)));
                    }
                }
            }
            exposure.push(self.order_exposure(o, &subject));
            given.push(GivenSession {
                date,
                step: o.step.clone(),
                mg_per_kg: o.mg_per_kg,
                response,
                benefit_days,
                cadss,
                peak_bp: peak,
                moaas_min,
            });
        }
        let recommendation = recommend(protocol, &given, self.clock.now().date_naive(), rules);
        Ok(Some(TitrationView { plan: (pv, plan), given, recommendation, exposure }))
    }

    /// A prescriber accepts the recommendation (the plan changes as it says) or chooses
    /// otherwise with a reason (the plan keeps its sessions); either way the decision is a new
    /// version of the plan, with who, when and why.
    pub async fn decide_titration(
        &self,
        p: &Principal,
        patient: PatientId,
        base_version: u32,
        accept: bool,
        reason: &str,
    ) -> Result<RecordVersion, AppError> {
        self.authorize(p, Permission::Prescribe, "TreatmentPlan").await?;
        self.authorize_patient(p, patient).await?;
        let t = self.titration(p, patient).await?.ok_or_else(|| FieldErrors::single("plan", "the patient has no treatment plan"))?;
        let (pv, mut plan) = t.plan;
        if pv.version != base_version {
            return Err(AppError::Conflict("the plan changed meanwhile; reload it".into()));
        }
        let rec = &t.recommendation;
        let today = self.clock.now().date_naive();
        let why = if accept {
            // The next session is the first one after the last dose given (and not before today).
            let last_given = t.given.last().map(|g| g.date);
            let is_next = |d: chrono::NaiveDate| d >= today && last_given.is_none_or(|g| d > g);
            match rec.action {
                Action::Reduce | Action::Repeat => {
                    if let (Some(next), Some(s)) = (rec.next_mg_per_kg, plan.sessions.iter_mut().find(|s| is_next(s.date))) {
                        s.mg_per_kg = Some(next);
                    }
                }
                Action::ChangeInterval => {
                    // Lay the remaining sessions out again at the new interval, up to the plan's end.
                    if let (Some(every), Some(first), Some(end)) =
                        (rec.interval_days, plan.sessions.iter().find(|s| is_next(s.date)).cloned(), plan.sessions.last().map(|s| s.date))
                    {
                        plan.sessions.retain(|s| !is_next(s.date));
                        let mut d = first.date;
                        let mut n = 1;
                        while d <= end && every > 0 {
                            plan.sessions.push(ketacare_domain::order::PlanSession {
                                date: d,
                                label: format!("{} (every {every} days, {n})", first.step),
                                mg_per_kg: rec.next_mg_per_kg.or(first.mg_per_kg),
                                ..first.clone()
                            });
                            d += chrono::Duration::days(i64::from(every));
                            n += 1;
                        }
                    }
                }
                Action::Stop | Action::Pause | Action::Maintenance => plan.sessions.retain(|s| !is_next(s.date) && s.date < today),
                _ => {}
            }
            let extra = reason.trim();
            format!(
                "titration review: accepted \"{}\" ({}){}",
                rec.action.label(),
                rec.rule,
                if extra.is_empty() { String::new() } else { format!("; {extra}") }
            )
        } else {
            let r = Reason::parse(reason)
                .map_err(|m| FieldErrors::single("reason", format!("{m}: say why you choose otherwise than \"{}\"", rec.action.label())))?;
            format!("titration review: chose otherwise than \"{}\": {}", rec.action.label(), r.as_str())
        };
        let why: String = why.chars().take(480).collect();
        plan.note = Some(why.clone());
        let reason = Reason::parse(&why).map_err(AppError::Internal)?;
        let v = self.next(p, &pv, VersionAction::Amend, ClinicalRecord::TreatmentPlan(plan), reason);
        self.store.append_record_version(&self.ctx(p, "treatment"), &v).await?;
        Ok(v)
    }
}

// ---------------------------------------------------------------- the clinic's drug library

use ketacare_db::{PolicyProposal, PolicyVersion, ProposalDecision};
use ketacare_domain::dose::{Limits, RouteLimits, Sourced};
use ketacare_knowledge::dosing::DrugLibrary;

/// The drug-library values a clinic may change (per route), each a soft or hard bound.
pub const LIBRARY_FIELDS: [&str; 16] = [
    "soft_min_mg_per_kg",
    "soft_max_mg_per_kg",
    "hard_min_mg_per_kg",
    "hard_max_mg_per_kg",
    "soft_max_total_mg",
    "hard_max_total_mg",
    "soft_max_mg_per_kg_per_h",
    "hard_max_mg_per_kg_per_h",
    "soft_min_minutes",
    "soft_max_minutes",
    "hard_min_minutes",
    "hard_max_minutes",
    "soft_max_7d_mg",
    "hard_max_7d_mg",
    "soft_max_28d_mg",
    "hard_max_28d_mg",
];

fn bound<'a>(l: &'a mut RouteLimits, field: &str) -> Option<&'a mut Option<Sourced>> {
    let (soft, rest) = if let Some(r) = field.strip_prefix("soft_") { (true, r) } else { (false, field.strip_prefix("hard_")?) };
    let (min, q) = if let Some(r) = rest.strip_prefix("min_") { (true, r) } else { (false, rest.strip_prefix("max_")?) };
    let limits: &mut Limits = match q {
        "mg_per_kg" => &mut l.mg_per_kg,
        "total_mg" => &mut l.total_mg,
        "mg_per_kg_per_h" => &mut l.mg_per_kg_per_h,
        "minutes" => &mut l.minutes,
        "7d_mg" => &mut l.cumulative_7d_mg,
        "28d_mg" => &mut l.cumulative_28d_mg,
        _ => return None,
    };
    let band = if soft { &mut limits.soft } else { &mut limits.hard };
    Some(if min { &mut band.min } else { &mut band.max })
}

fn consistent(lib: &DrugLibrary) -> Result<(), String> {
    for (route, l) in &lib.routes {
        for (name, x) in [
            ("dose", &l.mg_per_kg),
            ("total", &l.total_mg),
            ("rate", &l.mg_per_kg_per_h),
            ("minutes", &l.minutes),
            ("7-day total", &l.cumulative_7d_mg),
            ("28-day total", &l.cumulative_28d_mg),
        ] {
            let v = |b: &Option<Sourced>| b.as_ref().map(|s| s.value);
            let (smin, smax, hmin, hmax) = (v(&x.soft.min), v(&x.soft.max), v(&x.hard.min), v(&x.hard.max));
            let bad = |what: &str| Err(format!("{}: the {name} {what}", route.code()));
            if matches!((smax, hmax), (Some(s), Some(h)) if s > h) {
                return bad("soft maximum would be above the hard maximum");
            }
            if matches!((smin, hmin), (Some(s), Some(h)) if s < h) {
                return bad("soft minimum would be below the hard minimum");
            }
            if matches!((smin, smax), (Some(a), Some(b)) if a > b) || matches!((hmin, hmax), (Some(a), Some(b)) if a > b) {
                return bad("minimum would be above its maximum");
            }
        }
    }
    Ok(())
}

fn apply_library_policies(base: &DrugLibrary, policies: &[PolicyVersion]) -> DrugLibrary {
    let mut lib = base.clone();
    for p in policies.iter().filter(|p| p.key.starts_with("drug_library.")) {
        let note = |default: &str| {
            format!("Clinic policy set on {} ({}): {} (default: {default})", p.set_at.format("%Y-%m-%d"), p.set_by_name, p.reason)
        };
        let parts: Vec<&str> = p.key.split('.').collect();
        match parts.as_slice() {
            ["drug_library", "concentrations"] => {
                if let Some(v) = &p.value {
                    let cs: Vec<Decimal> = v.split(',').filter_map(|c| c.trim().parse::<Decimal>().ok()).map(|d| d.normalize()).collect();
                    if !cs.is_empty() {
                        lib.policy.concentrations_mg_per_ml = cs;
                        lib.concentrations_source = note(&base.concentrations_source);
                    }
                }
            }
            ["drug_library", route, field] => {
                let Ok(route) = Route::parse(route) else { continue };
                let Some((_, l)) = lib.routes.iter_mut().find(|(r, _)| *r == route) else { continue };
                let Some(slot) = bound(l, field) else { continue };
                let default_source = slot.as_ref().map(|s| s.source.clone()).unwrap_or_else(|| "none".into());
                let default_value = base.limits(route).cloned().and_then(|mut bl| bound(&mut bl, field).and_then(|b| b.clone()));
                *slot = match &p.value {
                    Some(v) => v.parse::<Decimal>().ok().map(|value| Sourced { value, source: note(&default_source) }),
                    None => default_value,
                };
            }
            _ => {}
        }
    }
    lib
}

/// The key a proposal changes: `concentrations` or `<route>.<field>`.
fn library_key(key: &str) -> Result<String, String> {
    let k = key.trim();
    if k == "concentrations" {
        return Ok("drug_library.concentrations".into());
    }
    match k.split_once('.') {
        Some((route, field)) if Route::parse(route).is_ok() && LIBRARY_FIELDS.contains(&field) => {
            Ok(format!("drug_library.{route}.{field}"))
        }
        _ => Err(format!(
            "must be concentrations or <route>.<field> with route iv, sc, im or in and field one of {}",
            LIBRARY_FIELDS.join(", ")
        )),
    }
}

impl App {
    /// The drug library in force: the knowledge defaults with the clinic's approved changes.
    pub async fn drug_library_in_force(&self) -> Result<DrugLibrary, AppError> {
        let policies = self.store.current_policies().await?;
        Ok(apply_library_policies(&self.knowledge.drug_library, &policies))
    }

    /// Proposes a change of the drug library (medical director); another person must approve it
    /// before it is in force. The change is checked: values are positive numbers, and every soft
    /// limit stays inside its hard limits.
    pub async fn propose_library_change(&self, p: &Principal, key: &str, value: &str, reason: &str) -> Result<PolicyProposal, AppError> {
        self.authorize(p, Permission::ManagePolicy, "PolicyProposal").await?;
        let mut e = FieldErrors::new();
        let key = e.check("key", library_key(key));
        let v = value.trim();
        let value = if v.is_empty() {
            None
        } else if key.as_deref() == Some("drug_library.concentrations") {
            let ok = v.split(',').all(|c| c.trim().parse::<Decimal>().is_ok_and(|d| d > Decimal::ZERO));
            if !ok {
                e.add("value", "must be concentrations in mg/mL separated by commas, for example 10, 50, 100");
            }
            Some(
                v.split(',')
                    .map(|c| c.trim().parse::<Decimal>().map(|d| d.normalize().to_string()).unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join(", "),
            )
        } else {
            match v.parse::<Decimal>() {
                Ok(d) if d > Decimal::ZERO => Some(d.normalize().to_string()),
                _ => {
                    e.add("value", "must be a positive number (mg/kg, mg, mg/kg/h or minutes), or empty to return to the default");
                    None
                }
            }
        };
        let reason = e.check("reason", Reason::parse(reason));
        let (Some(key), Some(reason)) = (key, reason) else { return Err(e.into()) };
        e.into_result()?;
        let mut policies = self.store.current_policies().await?;
        policies.retain(|x| x.key != key);
        policies.push(PolicyVersion {
            key: key.clone(),
            value: value.clone(),
            reason: "proposed".into(),
            set_by: p.user.id,
            set_by_name: String::new(),
            set_at: self.clock.now(),
        });
        consistent(&apply_library_policies(&self.knowledge.drug_library, &policies)).map_err(|m| FieldErrors::single("value", m))?;
        self.store_proposal(p, key, value, reason).await
    }

    async fn store_proposal(&self, p: &Principal, key: String, value: Option<String>, reason: Reason) -> Result<PolicyProposal, AppError> {
        let proposal = PolicyProposal {
            id: Uuid::new_v4(),
            key,
            value,
            reason: reason.as_str().to_owned(),
            proposed_by: p.user.id,
            proposed_by_name: p.user.username.as_str().to_owned(),
            proposed_at: self.clock.now(),
            decision: None,
        };
        self.store.create_policy_proposal(&self.ctx(p, "operations"), &proposal).await?;
        Ok(proposal)
    }

    /// Drug-library proposals (open ones first in the list the page shows).
    pub async fn library_proposals(&self, p: &Principal) -> Result<Vec<PolicyProposal>, AppError> {
        self.authorize(p, Permission::ReadPatients, "PolicyProposal").await?;
        Ok(self.store.list_policy_proposals(false).await?.into_iter().filter(|x| x.key.starts_with("drug_library.")).collect())
    }

    /// A second person (a prescriber or the medical director, not the proposer) approves or
    /// rejects a drug-library proposal; a rejection needs a reason. An approval is in force at once.
    ///
    /// Protocol proposals (`protocols.<key>`) are decided by the medical director.
    pub async fn decide_library_change(&self, p: &Principal, id: &str, approve: bool, reason: &str) -> Result<PolicyProposal, AppError> {
        self.authorize(p, Permission::Prescribe, "PolicyProposal").await?;
        let id = Uuid::parse_str(id.trim()).map_err(|_| AppError::NotFound)?;
        let open = self.store.list_policy_proposals(true).await?;
        let Some(prop) = open.iter().find(|x| x.id == id) else {
            return Err(AppError::Conflict("the proposal is already decided or does not exist; reload".into()));
        };
        if prop.key.starts_with("protocols.") {
            self.authorize(p, Permission::ManagePolicy, "ProtocolProposal").await?;
        }
        if prop.proposed_by == p.user.id {
            return Err(FieldErrors::single("decider", "the second person must be someone other than the proposer").into());
        }
        let reason = reason.trim();
        let reason = if approve && prop.key.starts_with("protocols.") {
            if let Some(text) = &prop.value {
                self.check_clinic_protocol(text)?;
            }
            (!reason.is_empty()).then(|| reason.to_owned())
        } else if approve {
            let mut policies = self.store.current_policies().await?;
            policies.retain(|x| x.key != prop.key);
            policies.push(PolicyVersion {
                key: prop.key.clone(),
                value: prop.value.clone(),
                reason: String::new(),
                set_by: p.user.id,
                set_by_name: String::new(),
                set_at: self.clock.now(),
            });
            consistent(&apply_library_policies(&self.knowledge.drug_library, &policies))
                .map_err(|m| FieldErrors::single("value", format!("no longer fits the library in force: {m}")))?;
            (!reason.is_empty()).then(|| reason.to_owned())
        } else {
            Some(
                Reason::parse(reason)
                    .map_err(|m| FieldErrors::single("reason", format!("{m}: say why you reject it")))?
                    .as_str()
                    .to_owned(),
            )
        };
        let d = ProposalDecision {
            approved: approve,
            by: p.user.id,
            by_name: p.user.username.as_str().to_owned(),
            at: self.clock.now(),
            reason,
        };
        Ok(self.store.decide_policy_proposal(&self.ctx(p, "operations"), id, &d).await?)
    }
}

// ---------------------------------------------------------------- the clinic's protocols

use ketacare_domain::dose::Protocol;

impl App {
    fn check_clinic_protocol(&self, text: &str) -> Result<Protocol, AppError> {
        let proto = ketacare_knowledge::dosing::parse_clinic_protocol(text)?;
        let mut e = FieldErrors::new();
        for s in &proto.steps {
            for a in &s.assessments {
                let (inst, tp) = a.split_once('@').unwrap_or((a, ""));
                if self.knowledge.instrument(inst).is_none() || !self.knowledge.assessment_timing.timepoints.iter().any(|t| t.key == tp) {
                    e.add("content", format!("step {}: assessment {a:?} must be instrument@timepoint, e.g. hama@1h", s.key));
                }
            }
        }
        if proto.source.trim().chars().count() < 20 {
            e.add("content", "the protocol needs its source (publication or local guideline), at least 20 characters");
        }
        e.into_result()?;
        Ok(proto)
    }

    /// The protocols in force: the published ones, with the clinic's approved protocols added
    /// (or replacing a published one of the same key). Plans keep the protocol as planned.
    pub async fn protocols_in_force(&self) -> Result<Vec<Protocol>, AppError> {
        let mut out = self.knowledge.protocols.clone();
        for pv in self.store.current_policies().await?.into_iter().filter(|x| x.key.starts_with("protocols.")) {
            let key = pv.key.trim_start_matches("protocols.");
            out.retain(|x| x.key != key);
            if let Some(text) = &pv.value {
                if let Ok(mut proto) = ketacare_knowledge::dosing::parse_clinic_protocol(text) {
                    proto.source = format!(
                        "{} (clinic protocol approved by {} on {}: {})",
                        proto.source,
                        pv.set_by_name,
                        pv.set_at.format("%Y-%m-%d"),
                        pv.reason
                    );
                    out.push(proto);
                }
            }
        }
        Ok(out)
    }

    /// Proposes a new or changed protocol (a prescriber or the medical director); the medical
    /// director (not the proposer) approves it before it can be planned. Versions are kept.
    pub async fn propose_protocol(&self, p: &Principal, text: &str, reason: &str) -> Result<PolicyProposal, AppError> {
        self.authorize(p, Permission::Prescribe, "ProtocolProposal").await?;
        let mut e = FieldErrors::new();
        let proto = match self.check_clinic_protocol(text) {
            Ok(x) => Some(x),
            Err(AppError::Validation(errs)) => {
                for x in errs.iter() {
                    e.add(&x.field, x.message.clone());
                }
                None
            }
            Err(other) => return Err(other),
        };
        let reason = e.check("reason", Reason::parse(reason));
        let (Some(proto), Some(reason)) = (proto, reason) else { return Err(e.into()) };
        self.store_proposal(p, format!("protocols.{}", proto.key), Some(text.trim().to_owned()), reason).await
    }

    /// Protocol proposals, newest first.
    pub async fn protocol_proposals(&self, p: &Principal) -> Result<Vec<PolicyProposal>, AppError> {
        self.authorize(p, Permission::ReadPatients, "ProtocolProposal").await?;
        Ok(self.store.list_policy_proposals(false).await?.into_iter().filter(|x| x.key.starts_with("protocols.")).collect())
    }
}
