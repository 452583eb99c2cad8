//! The patient progress report for the referring doctor: who the patient is, the diagnoses,
//! the protocol and every dose given, an outcome chart per rating scale (severity bands,
//! baseline, response threshold, doses), response and remission per scale, tolerability
//! (dissociation, blood-pressure peaks, adverse events) and the safety summary.
//!
//! The report is identified (name, date of birth, MRN): it is written for the doctor who referred
//! the patient. It takes plain data ([`ProgressReport`]); the web layer fills it from the
//! application's use cases.

use crate::canvas::{Align, Color, Metadata, PageSetup, Shape, Stroke, TextStyle};
use crate::chart::{x_of, Band, LineChart, Marker, RefLine, Series, XAxis};
use crate::layout::{Flow, Running, BODY, SMALL};
use crate::table::{Column, Table};
use crate::text::Font;
use crate::ReportError;
use chrono::{DateTime, Duration, NaiveDate, Utc};

/// The footer of every page.
pub const DISCLAIMER: &str = "decision support; not a substitute for clinical judgement";

/// Who the report is about.
#[derive(Clone, Debug, PartialEq)]
pub struct PatientHeader {
    /// Name as "Family, Given".
    pub name: String,
    /// Date of birth.
    pub date_of_birth: NaiveDate,
    /// Medical record number.
    pub mrn: String,
    /// Administrative sex, as a label.
    pub sex: String,
}

/// A dose given.
#[derive(Clone, Debug, PartialEq)]
pub struct DoseRow {
    /// When it was given (the double check or the session's start).
    pub at: DateTime<Utc>,
    /// Protocol and step (e.g. "SC ascending dose (Otago): Ascending dose 2 of 3").
    pub what: String,
    /// Route label (SC, IV, ...).
    pub route: String,
    /// Dose rule, e.g. "0.5 mg/kg"; empty for fixed doses.
    pub mg_per_kg: String,
    /// Dose given, e.g. "36.5 mg".
    pub dose: String,
    /// Short marker label on the charts, e.g. "0.5".
    pub marker: String,
}

/// A severity band of a scale.
#[derive(Clone, Debug, PartialEq)]
pub struct ScaleBand {
    /// Lower edge (total).
    pub from: f64,
    /// Upper edge (total).
    pub to: f64,
    /// Label.
    pub label: String,
}

/// One administration of a scale.
#[derive(Clone, Debug, PartialEq)]
pub struct ScalePoint {
    /// When.
    pub at: DateTime<Utc>,
    /// Total score.
    pub total: f64,
}

/// One rating scale's course.
#[derive(Clone, Debug, PartialEq)]
pub struct ScaleReport {
    /// Short name (e.g. "HAM-A").
    pub name: String,
    /// Full title.
    pub title: String,
    /// Range of the total.
    pub min: f64,
    /// Range of the total.
    pub max: f64,
    /// Whether a higher total is better (quality of life); otherwise lower is better.
    pub higher_is_better: bool,
    /// Severity bands.
    pub bands: Vec<ScaleBand>,
    /// Administrations, oldest first; the first is the baseline.
    pub points: Vec<ScalePoint>,
    /// The total at which response is reached, with its rule in words (e.g. "50 % reduction").
    pub response_threshold: Option<(f64, String)>,
    /// Remission rule in words (e.g. "total 7 or below"), where the scale has one.
    pub remission_rule: Option<String>,
    /// Change from baseline to the latest, percent.
    pub change_percent: Option<f64>,
    /// Whether the latest rating meets the response rule (None: no rule or no later rating).
    pub response: Option<bool>,
    /// Whether the latest rating meets the remission rule.
    pub remission: Option<bool>,
    /// Whether any rating after the baseline met the response rule.
    pub ever_responded: Option<bool>,
}

/// Blood pressure of one session.
#[derive(Clone, Debug, PartialEq)]
pub struct BpRow {
    /// When the dose started.
    pub at: DateTime<Utc>,
    /// Dose (marker label, e.g. "0.5 mg/kg").
    pub dose: String,
    /// Baseline "systolic/diastolic".
    pub baseline: String,
    /// Highest readings "systolic/diastolic".
    pub peak: String,
    /// Systolic rise, mmHg.
    pub rise: String,
    /// Whether the peak passed the hypertension limits.
    pub above_limit: bool,
}

/// Tolerability.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Tolerability {
    /// Dissociation (CADSS) totals after doses.
    pub cadss: Vec<ScalePoint>,
    /// CADSS range of the total.
    pub cadss_max: f64,
    /// The clinic's CADSS alarm threshold (a total above it asks a clinician to attend).
    pub cadss_alarm: Option<f64>,
    /// Blood pressure per session.
    pub blood_pressure: Vec<BpRow>,
    /// The hypertension limits in words.
    pub bp_limits: String,
    /// Adverse events: when and what.
    pub adverse_events: Vec<(DateTime<Utc>, String)>,
}

/// The safety summary.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct SafetySummary {
    /// Cumulative exposure rows: window, doses, mg, mg/kg, limit.
    pub cumulative: Vec<[String; 5]>,
    /// Signals: level, title, data.
    pub signals: Vec<(String, String, String)>,
    /// The next-session recommendation of the titration review, if any.
    pub recommendation: Option<String>,
}

/// Everything the progress report shows.
#[derive(Clone, Debug, PartialEq)]
pub struct ProgressReport {
    /// The clinic's name.
    pub clinic: String,
    /// Patient.
    pub patient: PatientHeader,
    /// Age in years when generated.
    pub age: u32,
    /// Diagnoses, one line each.
    pub diagnoses: Vec<String>,
    /// Treatment plans (protocol, route, start, sessions).
    pub plans: Vec<String>,
    /// Doses given, oldest first.
    pub doses: Vec<DoseRow>,
    /// Treatment sessions recorded without a double-checked dose order (e.g. entered as visits):
    /// when, and what the record says.
    pub other_sessions: Vec<(DateTime<Utc>, String)>,
    /// Outcome scales (anxiety, functioning), in catalogue order.
    pub scales: Vec<ScaleReport>,
    /// Tolerability.
    pub tolerability: Tolerability,
    /// Safety.
    pub safety: SafetySummary,
    /// The clinician who generated it.
    pub clinician: String,
    /// When.
    pub generated_at: DateTime<Utc>,
}

/// Height of an outcome chart.
const CHART_H: f32 = 190.0;

fn yes_no(v: Option<bool>) -> &'static str {
    match v {
        Some(true) => "yes",
        Some(false) => "no",
        None => "not applicable",
    }
}

fn day(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d").to_string()
}

fn num(v: f64) -> String {
    crate::chart::number_label((v * 10.0).round() / 10.0)
}

/// The x range of charts: from a little before the first rating or dose to a little after the
/// last.
fn span(report: &ProgressReport, points: &[ScalePoint]) -> (DateTime<Utc>, DateTime<Utc>) {
    let times = points.iter().map(|p| p.at).chain(report.doses.iter().map(|d| d.at)).chain(report.other_sessions.iter().map(|(t, _)| *t));
    let (mut lo, mut hi) = (None::<DateTime<Utc>>, None::<DateTime<Utc>>);
    for t in times {
        lo = Some(lo.map_or(t, |x| x.min(t)));
        hi = Some(hi.map_or(t, |x| x.max(t)));
    }
    let lo = lo.unwrap_or(report.generated_at);
    let hi = hi.unwrap_or(report.generated_at).max(lo + Duration::days(1));
    let pad = Duration::seconds(((hi - lo).num_seconds() / 20).max(86_400));
    (lo - pad, hi + pad)
}

/// Label of the markers of sessions without a dose order.
const SESSION_MARK: &str = "S";

/// Vertical markers: each dose (its mg/kg) and each session without a dose order.
fn markers(report: &ProgressReport) -> Vec<Marker> {
    report
        .doses
        .iter()
        .map(|d| Marker { x: x_of(d.at), label: d.marker.clone() })
        .chain(report.other_sessions.iter().map(|(t, _)| Marker { x: x_of(*t), label: SESSION_MARK.into() }))
        .collect()
}

fn marker_legend(report: &ProgressReport) -> String {
    match (report.doses.is_empty(), report.other_sessions.is_empty()) {
        (false, true) => "Dose given (mg/kg)".into(),
        (true, false) => format!("{SESSION_MARK}: treatment session"),
        _ => format!("Dose given (mg/kg); {SESSION_MARK}: session without a dose order"),
    }
}

fn scale_chart(report: &ProgressReport, s: &ScaleReport) -> LineChart {
    let (from, to) = span(report, &s.points);
    let shades = [0.97f32, 0.92];
    let bands =
        s.bands.iter().enumerate().map(|(i, b)| Band { from: b.from, to: b.to, label: b.label.clone(), shade: shades[i % 2] }).collect();
    let mut lines = Vec::new();
    if let Some(b) = s.points.first() {
        lines.push(RefLine {
            y: b.total,
            label: format!("Baseline {} ({})", num(b.total), day(b.at)),
            stroke: Stroke::dashed(0.8, Color::DARK, 4.0, 2.0),
        });
    }
    if let Some((t, rule)) = &s.response_threshold {
        let side = if s.higher_is_better { "at or above" } else { "at or below" };
        lines.push(RefLine {
            y: *t,
            label: format!("Response {side} {} ({rule})", num(*t)),
            stroke: Stroke::dashed(1.0, Color::GREEN, 2.0, 2.0),
        });
    }
    LineChart {
        title: format!("{}: {}", s.name, s.title),
        y_label: format!("{} total ({}-{})", s.name, num(s.min), num(s.max)),
        x: XAxis::Time { from, to },
        y_min: s.min,
        y_max: s.max,
        bands,
        lines,
        markers: markers(report),
        marker_legend: marker_legend(report),
        series: vec![Series {
            label: format!("{} total", s.name),
            points: s.points.iter().map(|p| (x_of(p.at), p.total)).collect(),
            color: Color::BLUE,
            shape: Shape::Circle,
            joined: true,
        }],
    }
}

fn status_line(s: &ScaleReport) -> String {
    let (Some(first), Some(last)) = (s.points.first(), s.points.last()) else { return "No ratings.".into() };
    let mut out = format!("Baseline {} on {}; latest {} on {}", num(first.total), day(first.at), num(last.total), day(last.at));
    if let Some(c) = s.change_percent {
        out.push_str(&format!(" ({}{} %)", if c > 0.0 { "+" } else { "" }, num(c)));
    }
    out.push_str(". ");
    if let Some((_, rule)) = &s.response_threshold {
        out.push_str(&format!("Response ({rule}) now: {}", yes_no(s.response)));
        if let Some(e) = s.ever_responded {
            out.push_str(&format!(", at any rating after baseline: {}", if e { "yes" } else { "no" }));
        }
        out.push_str(". ");
    }
    if let Some(rule) = &s.remission_rule {
        out.push_str(&format!("Remission ({rule}) now: {}.", yes_no(s.remission)));
    }
    out.trim_end().to_owned()
}

/// Renders the report as a PDF.
pub fn render(report: &ProgressReport) -> Result<Vec<u8>, ReportError> {
    let p = &report.patient;
    let running = Running {
        header_left: format!("Progress report: {} (MRN {})", p.name, p.mrn),
        header_right: report.clinic.clone(),
        footer: format!("Ketacare: {DISCLAIMER}."),
    };
    let mut flow = Flow::new(PageSetup::default(), running);
    let body = TextStyle::regular(BODY);
    let small = TextStyle { font: Font::Regular, size: SMALL, color: Color::DARK };

    flow.heading("Patient progress report", 1, 60.0);
    flow.paragraph(
        &format!("{} · for the referring doctor", report.clinic),
        TextStyle { font: Font::Regular, size: 10.0, color: Color::DARK },
    );
    flow.space(8.0);
    flow.key_values(
        &[
            ("Patient".into(), p.name.clone()),
            ("Date of birth".into(), format!("{} (age {})", p.date_of_birth.format("%Y-%m-%d"), report.age)),
            ("MRN".into(), p.mrn.clone()),
            ("Sex".into(), p.sex.clone()),
            ("Prepared by".into(), format!("{} on {}", report.clinician, report.generated_at.format("%Y-%m-%d %H:%M UTC"))),
        ],
        90.0,
    );

    flow.heading("Diagnoses", 2, 20.0);
    if report.diagnoses.is_empty() {
        flow.paragraph("No diagnosis is recorded.", body);
    } else {
        flow.bullets(&report.diagnoses, body);
    }

    flow.heading("Treatment", 2, 40.0);
    if report.plans.is_empty() {
        flow.paragraph("No treatment plan is recorded.", body);
    } else {
        flow.bullets(&report.plans, body);
    }
    flow.space(4.0);
    if report.doses.is_empty() {
        flow.paragraph("No dose has been given.", body);
    } else {
        let mut t = Table::new(vec![
            Column::left("Date", 1.1),
            Column::left("Protocol step", 3.2),
            Column::left("Route", 0.6),
            Column::right("Dose rule", 1.0),
            Column::right("Dose given", 1.0),
        ]);
        for d in &report.doses {
            t.row(vec![d.at.format("%Y-%m-%d %H:%M").to_string(), d.what.clone(), d.route.clone(), d.mg_per_kg.clone(), d.dose.clone()]);
        }
        flow.table(&t);
    }
    if !report.other_sessions.is_empty() {
        flow.heading("Treatment sessions without a dose order", 3, 30.0);
        let mut t = Table::new(vec![Column::left("Date", 1.1), Column::left("As recorded", 5.0)]);
        for (at, what) in &report.other_sessions {
            t.row(vec![at.format("%Y-%m-%d %H:%M").to_string(), what.clone()]);
        }
        flow.table(&t);
    }
    if let Some(r) = &report.safety.recommendation {
        flow.paragraph(&format!("Titration review: {r}"), small);
    }

    flow.heading("Outcomes", 2, CHART_H + 30.0);
    if report.scales.is_empty() {
        flow.paragraph("No rating scale has been recorded.", body);
    }
    let mut result = Ok(());
    for s in &report.scales {
        let chart = scale_chart(report, s);
        let status = status_line(s);
        let lines = crate::text::wrap(&status, Font::Regular, BODY, flow.width()).len() as f32;
        flow.ensure(CHART_H + lines * body.leading() + 10.0);
        flow.block(CHART_H, |c, a| {
            if let Err(e) = chart.draw(c, a) {
                result = Err(e);
            }
        });
        result.clone()?;
        flow.paragraph(&status, body);
        flow.space(10.0);
    }

    flow.heading("Tolerability", 2, 60.0);
    let tol = &report.tolerability;
    if !tol.cadss.is_empty() {
        let (from, to) = span(report, &tol.cadss);
        // The axis stops a little above the highest of the ratings and the alarm threshold, so
        // the usual low totals stay readable; never above the scale's maximum.
        let highest = tol.cadss.iter().map(|p| p.total).fold(tol.cadss_alarm.unwrap_or(0.0), f64::max);
        let top = crate::chart::nice_ticks(0.0, (highest * 1.15).max(10.0), 5).last().copied().unwrap_or(highest);
        let y_max = if top < highest * 1.05 { highest * 1.15 } else { top }.min(tol.cadss_max.max(1.0));
        let lines = tol
            .cadss_alarm
            .map(|a| RefLine {
                y: a,
                label: format!("Alarm above {} (clinic policy)", num(a)),
                stroke: Stroke::dashed(0.9, Color::RED, 3.0, 2.0),
            })
            .into_iter()
            .collect();
        let chart = LineChart {
            title: "Dissociation after each dose (CADSS)".into(),
            y_label: format!("CADSS total (of 0-{})", num(tol.cadss_max)),
            x: XAxis::Time { from, to },
            y_min: 0.0,
            y_max: y_max.max(1.0),
            bands: vec![],
            lines,
            markers: markers(report),
            marker_legend: marker_legend(report),
            series: vec![Series {
                label: "CADSS total".into(),
                points: tol.cadss.iter().map(|p| (x_of(p.at), p.total)).collect(),
                color: Color::RED,
                shape: Shape::Diamond,
                joined: false,
            }],
        };
        flow.ensure(150.0);
        flow.block(150.0, |c, a| {
            if let Err(e) = chart.draw(c, a) {
                result = Err(e);
            }
        });
        result.clone()?;
        flow.space(6.0);
    }
    flow.heading("Blood pressure at each session", 3, 40.0);
    if tol.blood_pressure.is_empty() {
        flow.paragraph("No session readings.", body);
    } else {
        let mut t = Table::new(vec![
            Column::left("Date", 1.2),
            Column::left("Dose", 1.0),
            Column::right("Baseline (mmHg)", 1.2),
            Column::right("Peak (mmHg)", 1.2),
            Column::right("Systolic rise", 1.0),
            Column::left("Above the limits", 1.2),
        ]);
        for b in &tol.blood_pressure {
            t.row(vec![
                day(b.at),
                b.dose.clone(),
                b.baseline.clone(),
                b.peak.clone(),
                b.rise.clone(),
                if b.above_limit { "yes".into() } else { "no".into() },
            ]);
        }
        flow.table(&t);
        flow.paragraph(&format!("Limits: {}.", tol.bp_limits), small);
    }
    flow.heading("Adverse events", 3, 20.0);
    if tol.adverse_events.is_empty() {
        flow.paragraph("None recorded.", body);
    } else {
        let items: Vec<String> = tol.adverse_events.iter().map(|(t, what)| format!("{}: {what}", day(*t))).collect();
        flow.bullets(&items, body);
    }

    flow.heading("Safety summary", 2, 60.0);
    if !report.safety.cumulative.is_empty() {
        let mut t = Table::new(vec![
            Column::left("Cumulative dose", 1.4),
            Column::right("Doses", 0.7),
            Column::right("mg", 0.8),
            Column::right("mg/kg", 0.8),
            Column::left("Drug library limit", 2.0),
        ]);
        for r in &report.safety.cumulative {
            t.row(r.to_vec());
        }
        flow.table(&t);
    }
    if report.safety.signals.is_empty() {
        flow.paragraph("No long-term safety signal (tolerance, misuse, bladder, liver) is open.", body);
    } else {
        let items: Vec<String> = report.safety.signals.iter().map(|(level, title, data)| format!("{level}: {title}. {data}")).collect();
        flow.bullets(&items, body);
    }
    flow.space(14.0);
    flow.ensure(30.0);
    flow.block(26.0, |c, a| {
        c.frame(a, Stroke::solid(0.6, Color::DARK));
        c.text(a.x + a.w / 2.0, a.y + 16.0, &format!("Ketacare is {DISCLAIMER}."), TextStyle::bold(9.0), Align::Center);
    });

    let meta = Metadata {
        title: format!("Patient progress report, {}", report.generated_at.format("%Y-%m-%d")),
        author: report.clinic.clone(),
        subject: "Ketamine treatment of anxiety: outcomes, tolerability and safety".into(),
        created: Some(report.generated_at),
    };
    Ok(flow.finish(&meta))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, h, 0, 0).unwrap() + Duration::days(i64::from(d))
    }

    /// A patient on three ascending doses and weekly maintenance.
    pub(crate) fn sample() -> ProgressReport {
        let doses: Vec<DoseRow> = [(0, "0.25"), (7, "0.5"), (14, "1"), (21, "1"), (28, "1")]
            .iter()
            .map(|(d, mgkg)| DoseRow {
                at: t(*d, 9),
                what: format!("SC ascending dose (Otago): dose at {mgkg} mg/kg"),
                route: "SC".into(),
                mg_per_kg: format!("{mgkg} mg/kg"),
                dose: format!("{} mg", mgkg.parse::<f64>().unwrap() * 70.0),
                marker: (*mgkg).into(),
            })
            .collect();
        let hama = ScaleReport {
            name: "HAM-A".into(),
            title: "Hamilton Anxiety Rating Scale".into(),
            min: 0.0,
            max: 56.0,
            higher_is_better: false,
            bands: vec![
                ScaleBand { from: 0.0, to: 17.0, label: "Mild".into() },
                ScaleBand { from: 18.0, to: 24.0, label: "Mild to moderate".into() },
                ScaleBand { from: 25.0, to: 56.0, label: "Moderate to severe".into() },
            ],
            points: [(-10, 30.0), (0, 26.0), (7, 18.0), (14, 12.0), (21, 11.0), (42, 9.0)]
                .iter()
                .map(|(d, v)| ScalePoint { at: t(0, 9) + Duration::days(*d), total: *v })
                .collect(),
            response_threshold: Some((15.0, "50 % reduction".into())),
            remission_rule: Some("total 7 or below".into()),
            change_percent: Some(-70.0),
            response: Some(true),
            remission: Some(false),
            ever_responded: Some(true),
        };
        let qol = ScaleReport {
            name: "Q-LES-Q-SF".into(),
            title: "Quality of Life Enjoyment and Satisfaction Questionnaire, short form".into(),
            min: 14.0,
            max: 70.0,
            higher_is_better: true,
            bands: vec![],
            points: vec![ScalePoint { at: t(0, 8) - Duration::days(10), total: 30.0 }, ScalePoint { at: t(42, 9), total: 50.0 }],
            response_threshold: None,
            remission_rule: None,
            change_percent: Some(66.7),
            response: None,
            remission: None,
            ever_responded: None,
        };
        ProgressReport {
            clinic: "Harbour Ketamine Clinic".into(),
            patient: PatientHeader {
                name: "Fernández, Lucía".into(),
                date_of_birth: NaiveDate::from_ymd_opt(1980, 5, 17).unwrap(),
                mrn: "KC-000123".into(),
                sex: "Female".into(),
            },
            age: 46,
            diagnoses: vec![
                "Generalized anxiety disorder (F41.1), active since 2012-04-01".into(),
                "Social phobia (F40.10), active".into(),
            ],
            plans: vec![
                "SC ascending dose (Otago), from 2026-03-01: 3 sessions".into(),
                "SC maintenance (Otago), from 2026-03-22: 13 sessions".into(),
            ],
            doses,
            other_sessions: vec![(t(35, 9), "Treatment session on Chair 2".into())],
            scales: vec![hama, qol],
            tolerability: Tolerability {
                cadss: (0..5).map(|i| ScalePoint { at: t(7 * i, 10), total: f64::from(4 + 4 * i) }).collect(),
                cadss_max: 92.0,
                cadss_alarm: Some(40.0),
                blood_pressure: (0..5)
                    .map(|i| BpRow {
                        at: t(7 * i, 9),
                        dose: "1 mg/kg".into(),
                        baseline: "124/78".into(),
                        peak: "142/88".into(),
                        rise: "+18".into(),
                        above_limit: false,
                    })
                    .collect(),
                bp_limits: "systolic above 180 or diastolic above 110 mmHg".into(),
                adverse_events: vec![(t(14, 10), "Nausea, grade 1, not serious; treated; resolved".into())],
            },
            safety: SafetySummary {
                cumulative: vec![["28 days".into(), "4".into(), "245".into(), "3.5".into(), "soft 800 mg, hard 1200 mg".into()]],
                signals: vec![],
                recommendation: Some("continue weekly maintenance at 1 mg/kg".into()),
            },
            clinician: "Dr Mei Tanaka".into(),
            generated_at: t(43, 12),
        }
    }

    use crate::test_support::text_of;

    #[test]
    fn the_report_is_a_pdf_with_every_section_and_the_disclaimer_on_each_page() {
        let pdf = render(&sample()).unwrap();
        assert!(pdf.starts_with(b"%PDF-"));
        let (pages, texts) = text_of(&pdf);
        assert!(pages >= 2, "{pages} pages");
        let all = texts.join("\n");
        for needle in [
            "Patient progress report",
            "Harbour Ketamine Clinic",
            "Fernández, Lucía",
            "1980-05-17",
            "KC-000123",
            "Generalized anxiety disorder",
            "SC ascending dose (Otago)",
            "0.5 mg/kg",
            "HAM-A: Hamilton Anxiety Rating Scale",
            "Response at or below 15 (50 % reduction)",
            "Baseline 30",
            "Remission (total 7 or below) now: no",
            "Q-LES-Q-SF",
            "Dissociation after each dose (CADSS)",
            "Alarm above 40",
            "Treatment sessions without a dose order",
            "124/78",
            "Nausea, grade 1",
            "Safety summary",
            "Dr Mei Tanaka",
            "2026-04-13",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in\n{all}");
        }
        for (i, t) in texts.iter().enumerate() {
            assert!(t.contains(DISCLAIMER), "page {} has the disclaimer", i + 1);
            assert!(t.contains(&format!("Page {} of {pages}", i + 1)), "page {} is numbered", i + 1);
        }
    }

    #[test]
    fn the_outcome_charts_are_vector_lines() {
        let pdf = render(&sample()).unwrap();
        let doc = lopdf::Document::load_mem(&pdf).unwrap();
        let mut lines = 0;
        let mut dashed = 0;
        for (_, id) in doc.get_pages() {
            let content = doc.get_and_decode_page_content(id).unwrap();
            lines += content.operations.iter().filter(|o| o.operator == "l").count();
            dashed += content
                .operations
                .iter()
                .filter(|o| o.operator == "d" && o.operands.first().and_then(|a| a.as_array().ok()).is_some_and(|a| !a.is_empty()))
                .count();
        }
        assert!(lines > 100, "{lines} line segments");
        assert!(dashed >= 3, "baseline, threshold and dose markers are dashed ({dashed})");
    }

    #[test]
    fn a_patient_without_doses_or_ratings_still_gets_a_report() {
        let mut r = sample();
        r.doses.clear();
        r.scales.clear();
        r.tolerability = Tolerability::default();
        r.safety = SafetySummary::default();
        let (_, texts) = text_of(&render(&r).unwrap());
        let all = texts.join("\n");
        assert!(all.contains("No dose has been given."));
        assert!(all.contains("No rating scale has been recorded."));
        assert!(all.contains(DISCLAIMER));
    }

    #[test]
    fn a_bad_number_is_refused_with_the_chart_named() {
        let mut r = sample();
        r.scales[0].points[1].total = f64::INFINITY;
        let e = render(&r).unwrap_err();
        assert!(e.to_string().contains("HAM-A") && e.to_string().contains("finite"), "{e}");
    }

    #[test]
    fn long_tables_repeat_their_header_on_the_next_page() {
        let mut r = sample();
        let d = r.doses[0].clone();
        r.doses = (0..90).map(|i| DoseRow { at: d.at + Duration::days(i), ..d.clone() }).collect();
        let (pages, texts) = text_of(&render(&r).unwrap());
        assert!(pages >= 3);
        let with_header = texts.iter().filter(|t| t.contains("Protocol step")).count();
        assert!(with_header >= 2, "the dose table's header on {with_header} pages");
    }

    /// Writes the sample report where `KETACARE_REPORT_SAMPLE` says, to look at it.
    #[test]
    fn the_sample_report_can_be_written_out() {
        let pdf = render(&sample()).unwrap();
        assert!(pdf.len() > 5_000);
        if let Ok(path) = std::env::var("KETACARE_REPORT_SAMPLE") {
            std::fs::write(path, &pdf).unwrap();
        }
    }
}
