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
    pub fn parse_dose(&self, input: &DoseInput) -> Result<DoseRequest, AppError> {
        let a = &self.knowledge.anthropometry;
        Ok(input.parse(self.knowledge.drug_library.default_basis, (a.weight_min_kg, a.weight_max_kg))?)
    }

    /// Calculates a dose against the drug library (nothing is ordered) and logs the evaluation.
    /// A hard-limit breach is a result with `refused()`, not an error: the caller shows why.
    pub async fn calculate_dose(&self, p: &Principal, input: &DoseInput) -> Result<DoseResult, AppError> {
        self.authorize(p, Permission::ReadPatients, "DoseCalculation").await?;
        let req = self.parse_dose(input)?;
        let lib = &self.knowledge.drug_library;
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
