//! Treatment plans (a protocol laid out on dates) and dose orders (a calculated dose for a
//! patient, with the soft-limit override by a second clinician and the independent double
//! check), both kept as append-only clinical records: each change is a new version.

use crate::dose::{format_amount, Protocol, Route, WeightBasis};
use crate::validation::FieldErrors;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use rust_decimal::Decimal;

/// How many times an open-ended repeat (no last day) is laid out ahead.
pub const OPEN_REPEATS: u32 = 4;

/// One planned session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanSession {
    /// Step key of the protocol.
    pub step: String,
    /// Label, e.g. "Ascending dose 2 of 3".
    pub label: String,
    /// Planned date.
    pub date: NaiveDate,
    /// Dose rule, mg/kg.
    pub mg_per_kg: Option<Decimal>,
    /// Fixed dose, mg.
    pub fixed_mg: Option<Decimal>,
    /// Infusion time, minutes.
    pub minutes: Option<u32>,
}

/// A protocol laid out on dates for one patient (record kind `treatment_plan`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreatmentPlanRecord {
    /// Protocol key.
    pub protocol: String,
    /// Protocol name (as when planned).
    pub protocol_name: String,
    /// Route.
    pub route: Route,
    /// First day.
    pub start: NaiveDate,
    /// Sessions in date order.
    pub sessions: Vec<PlanSession>,
    /// Why the plan is as it is (the prescriber's note, or the decision that changed it).
    pub note: Option<String>,
}

impl TreatmentPlanRecord {
    /// Lays a protocol out from `start`. Steps that start on the same day and repeat are
    /// alternatives (weekly or twice weekly maintenance): `variant` names the one to use (the
    /// first by default).
    pub fn from_protocol(p: &Protocol, start: NaiveDate, variant: Option<&str>) -> Result<Self, FieldErrors> {
        let mut sessions = Vec::new();
        let alternatives: Vec<&str> = p
            .steps
            .iter()
            .filter(|s| {
                s.repeat_every_days.is_some() && p.steps.iter().filter(|o| o.day == s.day && o.repeat_every_days.is_some()).count() > 1
            })
            .map(|s| s.key.as_str())
            .collect();
        if let Some(v) = variant.filter(|v| !v.is_empty()) {
            if !alternatives.contains(&v) {
                return Err(FieldErrors::single(
                    "variant",
                    if alternatives.is_empty() {
                        format!("{} has no alternatives to choose", p.name)
                    } else {
                        format!("must be one of {}", alternatives.join(", "))
                    },
                ));
            }
        }
        let chosen = variant.filter(|v| !v.is_empty()).or(alternatives.first().copied());
        for s in &p.steps {
            if alternatives.contains(&s.key.as_str()) && Some(s.key.as_str()) != chosen {
                continue;
            }
            let mut day = s.day;
            let mut n = 0;
            loop {
                sessions.push(PlanSession {
                    step: s.key.clone(),
                    label: if s.repeat_every_days.is_some() { format!("{} ({})", s.label, n + 1) } else { s.label.clone() },
                    date: start + Duration::days(i64::from(day)),
                    mg_per_kg: s.mg_per_kg,
                    fixed_mg: s.fixed_mg,
                    minutes: s.minutes,
                });
                n += 1;
                // Knowledge and proposals refuse a repeat of 0 days; a plan never loops on one.
                let Some(every) = s.repeat_every_days.filter(|e| *e > 0) else { break };
                day = day.saturating_add(every);
                match s.repeat_until_day {
                    Some(until) if day > until => break,
                    None if n >= OPEN_REPEATS => break,
                    _ => {}
                }
            }
        }
        sessions.sort_by_key(|s| s.date);
        Ok(TreatmentPlanRecord { protocol: p.key.clone(), protocol_name: p.name.clone(), route: p.route, start, sessions, note: None })
    }

    /// The next planned session on or after `today`.
    pub fn next_session(&self, today: NaiveDate) -> Option<&PlanSession> {
        self.sessions.iter().find(|s| s.date >= today)
    }

    /// One line for lists.
    pub fn summary(&self) -> String {
        format!("{} from {} ({} sessions)", self.protocol_name, self.start, self.sessions.len())
    }
}

/// Where an order stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderStatus {
    /// A soft limit is breached: waiting for a second clinician to approve the override.
    AwaitingOverride,
    /// Ready to prepare: waiting for the independent double check.
    AwaitingCheck,
    /// Double-checked: may be given.
    Checked,
    /// The double check did not match: the dose is blocked; the prescriber orders again.
    Blocked,
}

impl OrderStatus {
    /// Stable code.
    pub fn code(self) -> &'static str {
        match self {
            OrderStatus::AwaitingOverride => "awaiting_override",
            OrderStatus::AwaitingCheck => "awaiting_check",
            OrderStatus::Checked => "checked",
            OrderStatus::Blocked => "blocked",
        }
    }
    /// Parses a code.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "awaiting_override" => Ok(Self::AwaitingOverride),
            "awaiting_check" => Ok(Self::AwaitingCheck),
            "checked" => Ok(Self::Checked),
            "blocked" => Ok(Self::Blocked),
            _ => Err(format!("unknown order status {s}")),
        }
    }
    /// Label.
    pub fn label(self) -> &'static str {
        match self {
            OrderStatus::AwaitingOverride => "Awaiting a second clinician's approval of the override",
            OrderStatus::AwaitingCheck => "Awaiting the independent double check",
            OrderStatus::Checked => "Double-checked: ready to give",
            OrderStatus::Blocked => "Blocked: the double check did not match; order again",
        }
    }
}

/// What the second clinician entered, blind, for the independent double check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DoubleCheck {
    /// Who checked.
    pub by: String,
    /// Weight they read, kg.
    pub weight_kg: Decimal,
    /// Concentration they took from the shelf, mg/mL.
    pub concentration_mg_per_ml: Option<Decimal>,
    /// Dose they calculated, mg.
    pub dose_mg: Decimal,
    /// When.
    pub at: DateTime<Utc>,
}

/// A dose ordered for a patient (record kind `dose_order`): what was asked, the weight it used
/// (measured today, with its time and measurer), the calculation as it came out, and the
/// override and double check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DoseOrderRecord {
    /// The plan and session it belongs to, if any.
    pub plan: Option<crate::ids::RecordId>,
    /// Step key of the plan session.
    pub step: Option<String>,
    /// Route.
    pub route: Route,
    /// Weight basis.
    pub basis: WeightBasis,
    /// Dose rule, mg/kg.
    pub mg_per_kg: Option<Decimal>,
    /// Fixed dose, mg.
    pub fixed_mg: Option<Decimal>,
    /// Vial concentration, mg/mL.
    pub concentration_mg_per_ml: Option<Decimal>,
    /// Final volume, mL.
    pub final_volume_ml: Option<Decimal>,
    /// Infusion time, minutes.
    pub minutes: Option<Decimal>,
    /// Measured weight used, kg.
    pub weight_kg: Decimal,
    /// When it was measured.
    pub weight_measured_at: DateTime<Utc>,
    /// Who measured it.
    pub weight_measured_by: String,
    /// Weight used for the dose (basis applied), kg.
    pub weight_used_kg: Decimal,
    /// Dose to give, mg.
    pub dose_mg: Decimal,
    /// Dose asked for before rounding to the syringe, mg.
    pub dose_requested_mg: Decimal,
    /// Drug volume, mL.
    pub drug_volume_ml: Option<Decimal>,
    /// Pump rate, mL/h.
    pub rate_ml_per_h: Option<Decimal>,
    /// The calculation chain.
    pub steps: Vec<String>,
    /// Soft limits breached (text).
    pub breaches: Vec<String>,
    /// Status.
    pub status: OrderStatus,
    /// The prescriber's reason for passing a soft limit.
    pub override_reason: Option<String>,
    /// The second clinician who approved the override.
    pub override_approved_by: Option<String>,
    /// The independent double check.
    pub check: Option<DoubleCheck>,
}

impl DoseOrderRecord {
    /// One line for lists. The dose appears only once double-checked, so that lists, the chart
    /// and record histories never show it to the clinician who checks it blind.
    pub fn summary(&self) -> String {
        match self.status {
            OrderStatus::Checked => {
                let mut s = format!("{} {} mg", self.route.code().to_uppercase(), format_amount(self.dose_mg));
                if let Some(m) = self.mg_per_kg {
                    s.push_str(&format!(" ({} mg/kg)", format_amount(m)));
                }
                s.push_str(", double-checked");
                s
            }
            other => format!("{} dose order, {}", self.route.code().to_uppercase(), other.code().replace('_', " ")),
        }
    }

    /// Compares a blind double check with this order: the weight and concentration must be
    /// the same, and the dose the same within one syringe step. Returns the fields that differ
    /// (named, without the order's values, so the check stays independent).
    pub fn compare(
        &self,
        weight_kg: Decimal,
        concentration: Option<Decimal>,
        dose_mg: Decimal,
        volume_step_ml: Decimal,
    ) -> Vec<&'static str> {
        let mut differ = Vec::new();
        if weight_kg.normalize() != self.weight_kg.normalize() {
            differ.push("weight_kg");
        }
        if self.route != Route::In && concentration.map(|c| c.normalize()) != self.concentration_mg_per_ml.map(|c| c.normalize()) {
            differ.push("concentration_mg_per_ml");
        }
        let tolerance = self.concentration_mg_per_ml.map(|c| c * volume_step_ml).unwrap_or(Decimal::ZERO);
        let close = |target: Decimal| (dose_mg - target).abs() <= tolerance;
        if !(close(self.dose_mg) || close(self.dose_requested_mg)) {
            differ.push("dose_mg");
        }
        differ
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dose::ProtocolStep;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn step(key: &str, day: u32, mgkg: &str, every: Option<u32>, until: Option<u32>) -> ProtocolStep {
        ProtocolStep {
            key: key.into(),
            label: key.into(),
            day,
            mg_per_kg: Some(d(mgkg)),
            fixed_mg: None,
            minutes: None,
            repeat_every_days: every,
            repeat_until_day: until,
            assessments: vec![],
            move_on: String::new(),
        }
    }

    #[test]
    fn protocols_are_laid_out_on_dates_with_one_alternative() {
        let start = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        let asc = Protocol {
            key: "a".into(),
            name: "A".into(),
            route: Route::Sc,
            indication: String::new(),
            source: String::new(),
            steps: vec![step("d1", 0, "0.25", None, None), step("d2", 7, "0.5", None, None), step("d3", 14, "1", None, None)],
        };
        let plan = TreatmentPlanRecord::from_protocol(&asc, start, None).unwrap();
        assert_eq!(
            plan.sessions.iter().map(|s| (s.date.to_string(), s.mg_per_kg.unwrap().to_string())).collect::<Vec<_>>(),
            vec![("2026-12-01".into(), "0.25".into()), ("2026-12-08".into(), "0.5".into()), ("2026-12-15".into(), "1".into())]
        );
        let maint = Protocol {
            key: "m".into(),
            name: "M".into(),
            route: Route::Sc,
            indication: String::new(),
            source: String::new(),
            steps: vec![step("weekly", 0, "1", Some(7), Some(84)), step("twice", 0, "1", Some(3), Some(84))],
        };
        let weekly = TreatmentPlanRecord::from_protocol(&maint, start, None).unwrap();
        assert_eq!(weekly.sessions.len(), 13, "days 0 to 84 weekly");
        let twice = TreatmentPlanRecord::from_protocol(&maint, start, Some("twice")).unwrap();
        assert_eq!(twice.sessions.len(), 29);
        assert!(TreatmentPlanRecord::from_protocol(&maint, start, Some("daily"))
            .unwrap_err()
            .for_field("variant")
            .unwrap()
            .contains("weekly, twice"));
        assert!(TreatmentPlanRecord::from_protocol(&asc, start, Some("x")).is_err());
        let open = Protocol {
            key: "o".into(),
            name: "O".into(),
            route: Route::Sc,
            indication: String::new(),
            source: String::new(),
            steps: vec![step("m", 0, "1", Some(14), None)],
        };
        assert_eq!(TreatmentPlanRecord::from_protocol(&open, start, None).unwrap().sessions.len(), OPEN_REPEATS as usize);
        assert_eq!(plan.next_session(NaiveDate::from_ymd_opt(2026, 12, 2).unwrap()).unwrap().step, "d2");
        // A repeat of 0 days (refused by the knowledge loader) gives one session, never a hang.
        let zero = Protocol { steps: vec![step("z", 0, "1", Some(0), Some(84))], ..open };
        assert_eq!(TreatmentPlanRecord::from_protocol(&zero, start, None).unwrap().sessions.len(), 1);
    }

    #[test]
    fn the_double_check_names_what_differs_without_the_orders_values() {
        let o = DoseOrderRecord {
            plan: None,
            step: None,
            route: Route::Sc,
            basis: WeightBasis::Actual,
            mg_per_kg: Some(d("0.25")),
            fixed_mg: None,
            concentration_mg_per_ml: Some(d("50")),
            final_volume_ml: None,
            minutes: None,
            weight_kg: d("67.3"),
            weight_measured_at: DateTime::UNIX_EPOCH,
            weight_measured_by: "nurse".into(),
            weight_used_kg: d("67.3"),
            dose_mg: d("16.5"),
            dose_requested_mg: d("16.825"),
            drug_volume_ml: Some(d("0.33")),
            rate_ml_per_h: None,
            steps: vec![],
            breaches: vec![],
            status: OrderStatus::AwaitingCheck,
            override_reason: None,
            override_approved_by: None,
            check: None,
        };
        assert!(o.compare(d("67.3"), Some(d("50")), d("16.8"), d("0.01")).is_empty(), "within one syringe step of the dose asked for");
        assert!(o.compare(d("67.30"), Some(d("50.0")), d("16.5"), d("0.01")).is_empty());
        assert_eq!(o.compare(d("67.3"), Some(d("5")), d("16.5"), d("0.01")), vec!["concentration_mg_per_ml"], "a ten-fold vial mix-up");
        assert_eq!(o.compare(d("148.4"), Some(d("50")), d("37.1"), d("0.01")), vec!["weight_kg", "dose_mg"], "pounds for kilograms");
        assert_eq!(o.compare(d("67.3"), Some(d("50")), d("168.25"), d("0.01")), vec!["dose_mg"], "a ten-fold dose");
    }
}
