//! The titration review: from the plan's protocol and the patient's history (doses given,
//! the response at the protocol's time point, how long the benefit lasted, dissociation, peak
//! blood pressure, sedation, missed sessions) a recommendation for the next session, with the
//! rule, the data behind it and the source. The software recommends; a prescriber decides.

use crate::dose::{format_amount, Protocol};
use chrono::NaiveDate;
use rust_decimal::Decimal;

/// A number with its source (from `knowledge/titration.toml`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Value.
    pub value: Decimal,
    /// Source.
    pub source: String,
}

/// The rules of the review.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TitrationRules {
    /// A response is a reduction of at least this percent.
    pub response_percent: Rule,
    /// Time point of the response rating (e.g. `1h`).
    pub response_timepoint: String,
    /// Benefit lasting at least this many days keeps maintenance weekly.
    pub benefit_days_weekly: Rule,
    /// Peak systolic BP above this is treatment-emergent hypertension.
    pub sbp_above: Rule,
    /// Peak diastolic BP above this likewise.
    pub dbp_above: Rule,
    /// MOAA/S at or below this is unresponsiveness.
    pub moaas_unresponsive: Rule,
    /// More days than this since the last dose: repeat rather than escalate.
    pub gap_days: Rule,
    /// Maintenance lasts at most this many days.
    pub maintenance_days: Rule,
    /// A response at this dose (mg/kg) or above makes the patient eligible for maintenance.
    pub maintenance_from_mg_per_kg: Rule,
}

/// What was seen at one dose given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GivenSession {
    /// Date given.
    pub date: NaiveDate,
    /// Plan step key.
    pub step: Option<String>,
    /// Dose, mg/kg.
    pub mg_per_kg: Option<Decimal>,
    /// Reduction from baseline at the response time point, percent, and the scale.
    pub response: Option<(Decimal, String)>,
    /// Days the benefit lasted (from later ratings), where known.
    pub benefit_days: Option<u32>,
    /// CADSS total after the dose.
    pub cadss: Option<Decimal>,
    /// Peak BP during the session.
    pub peak_bp: Option<(u32, u32)>,
    /// Lowest MOAA/S.
    pub moaas_min: Option<u32>,
}

/// The recommended action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Give the first step.
    Start,
    /// Go to the next, higher step.
    Escalate,
    /// Repeat the last dose.
    Repeat,
    /// Go back to the previous, lower dose.
    Reduce,
    /// Change how often maintenance doses are given.
    ChangeInterval,
    /// Hold doses until reviewed.
    Pause,
    /// End the course.
    Stop,
    /// Move to maintenance.
    Maintenance,
    /// Carry on as planned.
    Continue,
}

impl Action {
    /// Stable code.
    pub fn code(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Escalate => "escalate",
            Action::Repeat => "repeat",
            Action::Reduce => "reduce",
            Action::ChangeInterval => "change_interval",
            Action::Pause => "pause",
            Action::Stop => "stop",
            Action::Maintenance => "maintenance",
            Action::Continue => "continue",
        }
    }
    /// Label.
    pub fn label(self) -> &'static str {
        match self {
            Action::Start => "Start the protocol",
            Action::Escalate => "Escalate to the next dose",
            Action::Repeat => "Repeat the last dose",
            Action::Reduce => "Reduce to the previous dose",
            Action::ChangeInterval => "Change the interval",
            Action::Pause => "Pause and review",
            Action::Stop => "Stop the course",
            Action::Maintenance => "Move to maintenance",
            Action::Continue => "Continue as planned",
        }
    }
}

/// A recommendation for the next session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recommendation {
    /// Action.
    pub action: Action,
    /// Dose for the next session, mg/kg, where one applies.
    pub next_mg_per_kg: Option<Decimal>,
    /// Days between maintenance doses, where the interval changes.
    pub interval_days: Option<u32>,
    /// The rule applied, in words.
    pub rule: String,
    /// The data behind it.
    pub data: Vec<String>,
    /// Source.
    pub source: String,
}

fn f(d: Decimal) -> String {
    format_amount(d)
}

/// Recommends the next session of `protocol` after `given` (oldest first), on `today`.
pub fn recommend(protocol: &Protocol, given: &[GivenSession], today: NaiveDate, r: &TitrationRules) -> Recommendation {
    let mut data: Vec<String> = given
        .iter()
        .map(|g| {
            let mut s = format!("{}: {}", g.date, g.mg_per_kg.map(|m| format!("{} mg/kg", f(m))).unwrap_or_else(|| "dose".into()));
            if let Some((p, scale)) = &g.response {
                s.push_str(&format!(", {scale} reduced {} % at {}", f(*p), r.response_timepoint));
            }
            if let Some(b) = g.benefit_days {
                s.push_str(&format!(", benefit {b} days"));
            }
            if let Some(c) = g.cadss {
                s.push_str(&format!(", CADSS {}", f(c)));
            }
            if let Some((sbp, dbp)) = g.peak_bp {
                s.push_str(&format!(", peak BP {sbp}/{dbp}"));
            }
            if let Some(m) = g.moaas_min {
                s.push_str(&format!(", MOAA/S {m}"));
            }
            s
        })
        .collect();
    let rec = |action: Action, next: Option<Decimal>, interval: Option<u32>, rule: String, source: &str, data: Vec<String>| {
        Recommendation { action, next_mg_per_kg: next, interval_days: interval, rule, data, source: source.to_owned() }
    };
    let Some(last) = given.last() else {
        let first = protocol.steps.first().and_then(|s| s.mg_per_kg);
        return rec(
            Action::Start,
            first,
            None,
            format!("No dose given yet: start {} at its first step.", protocol.name),
            &protocol.source,
            data,
        );
    };
    // Tolerability first.
    let hypertensive = last.peak_bp.is_some_and(|(s, d)| Decimal::from(s) > r.sbp_above.value || Decimal::from(d) > r.dbp_above.value);
    let unresponsive = last.moaas_min.is_some_and(|m| Decimal::from(m) <= r.moaas_unresponsive.value);
    let idx = last.step.as_deref().and_then(|k| protocol.steps.iter().position(|s| s.key == k));
    let is_maintenance = protocol.steps.iter().any(|s| s.repeat_every_days.is_some());
    let previous_dose = idx.and_then(|i| i.checked_sub(1)).and_then(|i| protocol.steps[i].mg_per_kg);
    if hypertensive || unresponsive {
        let why = if hypertensive {
            format!("peak BP above {}/{} mmHg (treatment-emergent hypertension)", f(r.sbp_above.value), f(r.dbp_above.value))
        } else {
            format!("MOAA/S {} (unresponsive)", f(r.moaas_unresponsive.value))
        };
        let source = if hypertensive { &r.sbp_above.source } else { &r.moaas_unresponsive.source };
        return match previous_dose {
            Some(prev) if !is_maintenance => rec(
                Action::Reduce,
                Some(prev),
                None,
                format!("Not tolerated at the last dose: {why}. Go back to the previous dose and review before escalating again."),
                source,
                data,
            ),
            _ => rec(
                Action::Pause,
                None,
                None,
                format!("Not tolerated: {why}. Hold further doses until the medical team has reviewed."),
                source,
                data,
            ),
        };
    }
    let gap = (today - last.date).num_days();
    let responded = last.response.as_ref().map(|(p, _)| *p >= r.response_percent.value);
    if is_maintenance {
        let first = given.first().map(|g| g.date).unwrap_or(last.date);
        if Decimal::from((today - first).num_days()) >= r.maintenance_days.value {
            return rec(
                Action::Stop,
                None,
                None,
                format!(
                    "Maintenance has lasted {} days, the studied maximum of {} days: end the course and review.",
                    (today - first).num_days(),
                    f(r.maintenance_days.value)
                ),
                &r.maintenance_days.source,
                data,
            );
        }
        if responded == Some(false) {
            return rec(
                Action::Pause,
                None,
                None,
                format!(
                    "The last maintenance dose gave less than {} % reduction: review whether to continue.",
                    f(r.response_percent.value)
                ),
                &r.response_percent.source,
                data,
            );
        }
        return match last.benefit_days {
            Some(b) if Decimal::from(b) >= r.benefit_days_weekly.value => rec(
                Action::ChangeInterval,
                last.mg_per_kg,
                Some(7),
                format!("Benefit lasted {b} days (at least {}): dose weekly.", f(r.benefit_days_weekly.value)),
                &r.benefit_days_weekly.source,
                data,
            ),
            Some(b) => rec(
                Action::ChangeInterval,
                last.mg_per_kg,
                Some(3),
                format!("Benefit lasted {b} days (fewer than {}): dose twice weekly.", f(r.benefit_days_weekly.value)),
                &r.benefit_days_weekly.source,
                data,
            ),
            None => {
                data.push("How long the benefit lasted is not known: rate the scale at 72 h and 7 days.".into());
                rec(Action::Continue, last.mg_per_kg, None, "Continue maintenance as planned.".into(), &protocol.source, data)
            }
        };
    }
    // An ascending series.
    let next_step = idx.and_then(|i| protocol.steps.get(i + 1));
    if Decimal::from(gap) > r.gap_days.value {
        return rec(
            Action::Repeat,
            last.mg_per_kg,
            None,
            format!(
                "{gap} days since the last dose (more than {}): repeat the last tolerated dose rather than escalate.",
                f(r.gap_days.value)
            ),
            &r.gap_days.source,
            data,
        );
    }
    match (responded, next_step) {
        (Some(true), _) if last.mg_per_kg.is_some_and(|m| m >= r.maintenance_from_mg_per_kg.value) => rec(
            Action::Maintenance,
            None,
            None,
            format!(
                "A response ({} % or more) at {} mg/kg: eligible for maintenance.",
                f(r.response_percent.value),
                last.mg_per_kg.map(f).unwrap_or_default()
            ),
            &r.maintenance_from_mg_per_kg.source,
            data,
        ),
        (Some(true), Some(n)) => rec(
            Action::Repeat,
            last.mg_per_kg,
            None,
            format!(
                "A response below {} mg/kg: repeat this dose (the protocol would escalate to {}; choose otherwise with a reason).",
                f(r.maintenance_from_mg_per_kg.value),
                n.dose_rule()
            ),
            &r.response_percent.source,
            data,
        ),
        (_, Some(n)) => rec(
            Action::Escalate,
            n.mg_per_kg,
            None,
            format!(
                "{} and tolerated: escalate to {} ({}).",
                if responded == Some(false) {
                    format!("Less than {} % reduction", f(r.response_percent.value))
                } else {
                    "Response not rated".to_owned()
                },
                n.dose_rule(),
                n.label
            ),
            &protocol.source,
            data,
        ),
        (Some(true), None) => rec(
            Action::Maintenance,
            None,
            None,
            "A response at the last step: eligible for maintenance.".into(),
            &r.response_percent.source,
            data,
        ),
        (_, None) => rec(
            Action::Stop,
            None,
            None,
            format!("No response ({} % reduction) at the highest step: stop the series.", f(r.response_percent.value)),
            &r.response_percent.source,
            data,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dose::{ProtocolStep, Route};

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn rule(v: &str) -> Rule {
        Rule { value: d(v), source: format!("source of {v}") }
    }

    fn rules() -> TitrationRules {
        TitrationRules {
            response_percent: rule("50"),
            response_timepoint: "1h".into(),
            benefit_days_weekly: rule("5"),
            sbp_above: rule("180"),
            dbp_above: rule("110"),
            moaas_unresponsive: rule("0"),
            gap_days: rule("14"),
            maintenance_days: rule("84"),
            maintenance_from_mg_per_kg: rule("0.5"),
        }
    }

    fn step(key: &str, day: u32, mgkg: &str, every: Option<u32>) -> ProtocolStep {
        ProtocolStep {
            key: key.into(),
            label: key.into(),
            day,
            mg_per_kg: Some(d(mgkg)),
            fixed_mg: None,
            minutes: None,
            repeat_every_days: every,
            repeat_until_day: every.map(|_| 84),
            assessments: vec![],
            move_on: String::new(),
        }
    }

    fn ascending() -> Protocol {
        Protocol {
            key: "sc_ascending".into(),
            name: "SC ascending".into(),
            route: Route::Sc,
            indication: String::new(),
            source: "Glue 2017".into(),
            steps: vec![step("dose1", 0, "0.25", None), step("dose2", 7, "0.5", None), step("dose3", 14, "1", None)],
        }
    }

    fn day(n: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, 1).unwrap() + chrono::Duration::days(i64::from(n))
    }

    fn given(step: &str, mgkg: &str, date: u32, response: Option<&str>) -> GivenSession {
        GivenSession {
            date: day(date),
            step: Some(step.into()),
            mg_per_kg: Some(d(mgkg)),
            response: response.map(|r| (d(r), "HAM-A".into())),
            ..Default::default()
        }
    }

    #[test]
    fn the_ascending_series_escalates_until_a_response_then_moves_to_maintenance() {
        let r = rules();
        let p = ascending();
        assert_eq!(recommend(&p, &[], day(0), &r).action, Action::Start);
        let g1 = given("dose1", "0.25", 0, Some("20"));
        let rec = recommend(&p, std::slice::from_ref(&g1), day(7), &r);
        assert_eq!((rec.action, rec.next_mg_per_kg), (Action::Escalate, Some(d("0.5"))));
        assert!(rec.data[0].contains("HAM-A reduced 20 % at 1h"), "{:?}", rec.data);
        let g2 = given("dose2", "0.5", 7, Some("50"));
        let rec = recommend(&p, &[g1.clone(), g2.clone()], day(14), &r);
        assert_eq!(rec.action, Action::Maintenance, "exactly 50 % is a response: {}", rec.rule);
        let g2 = given("dose2", "0.5", 7, Some("49.9"));
        assert_eq!(recommend(&p, &[g1.clone(), g2.clone()], day(14), &r).action, Action::Escalate);
        let g3 = given("dose3", "1", 14, Some("30"));
        assert_eq!(recommend(&p, &[g1.clone(), g2.clone(), g3], day(21), &r).action, Action::Stop, "no response at the top step");
        // A gap of more than 14 days: repeat.
        let rec = recommend(&p, std::slice::from_ref(&g1), day(30), &r);
        assert_eq!((rec.action, rec.next_mg_per_kg), (Action::Repeat, Some(d("0.25"))));
        // A response at 0.25 mg/kg: repeat it.
        let early = given("dose1", "0.25", 0, Some("60"));
        assert_eq!(recommend(&p, &[early], day(7), &r).action, Action::Repeat);
    }

    #[test]
    fn intolerance_reduces_or_pauses() {
        let r = rules();
        let p = ascending();
        let mut g2 = given("dose2", "0.5", 7, Some("20"));
        g2.peak_bp = Some((184, 100));
        let rec = recommend(&p, &[given("dose1", "0.25", 0, None), g2.clone()], day(14), &r);
        assert_eq!((rec.action, rec.next_mg_per_kg), (Action::Reduce, Some(d("0.25"))));
        assert_eq!(rec.source, "source of 180");
        g2.peak_bp = Some((180, 110));
        assert_eq!(recommend(&p, &[g2.clone()], day(14), &r).action, Action::Escalate, "180/110 is not above the threshold");
        let mut g1 = given("dose1", "0.25", 0, None);
        g1.moaas_min = Some(0);
        assert_eq!(recommend(&p, &[g1], day(7), &r).action, Action::Pause, "nothing lower to go back to");
    }

    #[test]
    fn maintenance_interval_follows_how_long_the_benefit_lasted() {
        let r = rules();
        let p = Protocol {
            key: "m".into(),
            name: "Maintenance".into(),
            route: Route::Sc,
            indication: String::new(),
            source: "Glue 2018".into(),
            steps: vec![step("weekly", 0, "1", Some(7)), step("twice", 0, "1", Some(3))],
        };
        let mut g = given("weekly", "1", 0, Some("55"));
        g.benefit_days = Some(6);
        let rec = recommend(&p, std::slice::from_ref(&g), day(7), &r);
        assert_eq!((rec.action, rec.interval_days), (Action::ChangeInterval, Some(7)));
        g.benefit_days = Some(4);
        assert_eq!(recommend(&p, std::slice::from_ref(&g), day(7), &r).interval_days, Some(3));
        g.benefit_days = None;
        assert_eq!(recommend(&p, std::slice::from_ref(&g), day(7), &r).action, Action::Continue);
        g.response = Some((d("10"), "HAM-A".into()));
        assert_eq!(recommend(&p, std::slice::from_ref(&g), day(7), &r).action, Action::Pause);
        assert_eq!(recommend(&p, &[given("weekly", "1", 0, Some("60"))], day(90), &r).action, Action::Stop, "after 3 months");
    }
}
