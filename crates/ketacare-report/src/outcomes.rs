//! The clinic outcomes report: the clinic's de-identified cohort (counts, rates with their
//! intervals, Kaplan-Meier curves, tolerability, subgroups) beside the published studies, for the
//! medical director, a governance meeting or a funder.
//!
//! The report holds aggregates only: no name, record number or date of any patient. It takes
//! plain data ([`OutcomesReport`]: sections of paragraphs, tables and charts, already worded);
//! the web layer fills it from the same cohort analytics as the outcomes page, so the page, its
//! CSV and this PDF always show the same numbers.

use crate::canvas::{Color, Metadata, PageSetup, TextStyle};
use crate::chart::{IntervalChart, LineChart};
use crate::layout::{Flow, Running, BODY, SMALL};
use crate::table::{Column, Table};
use crate::text::Font;
use crate::ReportError;
use chrono::{DateTime, Utc};

/// The footer of every page.
pub const FOOTER: &str = "Ketacare: de-identified aggregate data; exploratory statistics, not a substitute for clinical judgement";

/// Height of a chart on the page, in points.
const CHART_H: f32 = 190.0;

/// One block of a section.
#[derive(Clone, Debug, PartialEq)]
pub enum Block {
    /// A paragraph in the body text.
    Paragraph(String),
    /// A note in small grey text (definitions, sources).
    Note(String),
    /// A warning, in bold.
    Warning(String),
    /// A table with a caption above it.
    Table {
        /// Caption (e.g. "By diagnosis").
        caption: String,
        /// Columns.
        columns: Vec<Column>,
        /// Rows of text cells.
        rows: Vec<Vec<String>>,
    },
    /// Estimates with their intervals, side by side.
    Intervals(IntervalChart),
    /// A curve over a number or time (e.g. a Kaplan-Meier curve).
    Curve(LineChart),
}

/// A section: a heading and its blocks.
#[derive(Clone, Debug, PartialEq)]
pub struct Section {
    /// Heading.
    pub title: String,
    /// Blocks, top to bottom.
    pub blocks: Vec<Block>,
}

/// Everything the clinic outcomes report shows.
#[derive(Clone, Debug, PartialEq)]
pub struct OutcomesReport {
    /// The clinic's name (running header).
    pub clinic: String,
    /// Who downloaded it (display name).
    pub prepared_by: String,
    /// When it was drawn.
    pub generated_at: DateTime<Utc>,
    /// The filter applied, as label–value pairs; empty for the whole clinic.
    pub filter: Vec<(String, String)>,
    /// The cohort's counts, as label–value pairs (patients, treated, evaluable).
    pub counts: Vec<(String, String)>,
    /// The small-numbers and multiple-comparisons warning shown under the title.
    pub warning: String,
    /// Sections, in order.
    pub sections: Vec<Section>,
}

/// Draws the report as a PDF.
///
/// # Errors
/// A chart was given numbers it cannot draw ([`ReportError::Chart`], naming the chart).
pub fn render(report: &OutcomesReport) -> Result<Vec<u8>, ReportError> {
    let running = Running {
        header_left: "Clinic outcomes report (de-identified)".into(),
        header_right: report.clinic.clone(),
        footer: format!("{FOOTER}."),
    };
    let mut flow = Flow::new(PageSetup::default(), running);
    let body = TextStyle::regular(BODY);
    let small = TextStyle { font: Font::Regular, size: SMALL, color: Color::DARK };
    let bold = TextStyle::bold(BODY);

    flow.heading("Clinic outcomes report", 1, 60.0);
    flow.paragraph(
        &format!("{} · de-identified cohort outcomes beside the published studies", report.clinic),
        TextStyle { font: Font::Regular, size: 10.0, color: Color::DARK },
    );
    flow.space(8.0);
    let mut pairs =
        vec![("Prepared by".to_owned(), format!("{} on {}", report.prepared_by, report.generated_at.format("%Y-%m-%d %H:%M UTC")))];
    if report.filter.is_empty() {
        pairs.push(("Patients".into(), "the whole clinic (no filter)".into()));
    } else {
        pairs.extend(report.filter.iter().map(|(k, v)| (format!("Filter: {k}"), v.clone())));
    }
    pairs.extend(report.counts.iter().cloned());
    flow.key_values(&pairs, 120.0);
    flow.space(6.0);
    flow.paragraph(&report.warning, bold);

    let mut result = Ok(());
    for s in &report.sections {
        flow.heading(&s.title, 2, 40.0);
        for b in &s.blocks {
            match b {
                Block::Paragraph(t) => {
                    flow.paragraph(t, body);
                    flow.space(3.0);
                }
                Block::Note(t) => {
                    flow.paragraph(t, small);
                    flow.space(3.0);
                }
                Block::Warning(t) => {
                    flow.paragraph(t, bold);
                    flow.space(3.0);
                }
                Block::Table { caption, columns, rows } => {
                    flow.heading(caption, 3, 30.0);
                    if rows.is_empty() {
                        flow.paragraph("No patients in this table.", small);
                    } else {
                        let mut t = Table::new(columns.clone());
                        for r in rows {
                            t.row(r.clone());
                        }
                        flow.table(&t);
                    }
                }
                Block::Intervals(chart) => {
                    if chart.groups.is_empty() {
                        continue;
                    }
                    flow.ensure(CHART_H + 6.0);
                    flow.block(CHART_H, |c, a| {
                        if let Err(e) = chart.draw(c, a) {
                            result = Err(e);
                        }
                    });
                    result.clone()?;
                    flow.space(8.0);
                }
                Block::Curve(chart) => {
                    if chart.series.iter().all(|s| s.points.is_empty()) {
                        continue;
                    }
                    flow.ensure(CHART_H + 6.0);
                    flow.block(CHART_H, |c, a| {
                        if let Err(e) = chart.draw(c, a) {
                            result = Err(e);
                        }
                    });
                    result.clone()?;
                    flow.space(8.0);
                }
            }
        }
    }

    let meta = Metadata {
        title: format!("Clinic outcomes report, {}", report.clinic),
        author: report.prepared_by.clone(),
        subject: "De-identified cohort outcomes beside the published studies".into(),
        created: Some(report.generated_at),
    };
    Ok(flow.finish(&meta))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canvas::{Shape, Stroke};
    use crate::chart::{Interval, RefLine, Series, XAxis};
    use chrono::TimeZone;

    fn sample() -> OutcomesReport {
        let km = LineChart {
            title: "Not yet responded".into(),
            y_label: "% of patients".into(),
            x: XAxis::Linear { min: 0.0, max: 60.0, label: "days from the first dose".into() },
            y_min: 0.0,
            y_max: 100.0,
            bands: vec![],
            lines: vec![],
            markers: vec![],
            marker_legend: String::new(),
            series: vec![Series {
                label: "Kaplan-Meier estimate".into(),
                points: vec![(0.0, 100.0), (7.0, 100.0), (7.0, 60.0), (21.0, 60.0), (21.0, 35.0), (60.0, 35.0)],
                color: Color::BLUE,
                shape: Shape::Circle,
                joined: true,
            }],
        };
        let evidence = IntervalChart {
            title: "Response: published and the clinic on the same definition".into(),
            y_label: "% responders".into(),
            y_min: 0.0,
            y_max: 100.0,
            groups: vec![
                Interval { label: "Glue 2017".into(), estimate: 58.3, lo: 32.0, hi: 80.7, note: "published, n = 12".into() },
                Interval { label: "Clinic".into(), estimate: 40.0, lo: 24.0, hi: 58.0, note: "n = 30".into() },
            ],
            reference: Some(RefLine { y: 50.0, label: "50 %".into(), stroke: Stroke::dashed(0.6, Color::GREY, 3.0, 2.0) }),
            bars: false,
        };
        OutcomesReport {
            clinic: "Harbour Ketamine Clinic".into(),
            prepared_by: "Dr Mei Tanaka".into(),
            generated_at: Utc.with_ymd_and_hms(2026, 12, 6, 9, 30, 0).unwrap(),
            filter: vec![("Diagnosis".into(), "Social anxiety disorder (SAD)".into())],
            counts: vec![("Patients".into(), "42 match, 40 treated, 30 evaluable".into())],
            warning: "Exploratory statistics: groups of fewer than 10 patients are marked small n.".into(),
            sections: vec![
                Section {
                    title: "The clinic beside the published studies".into(),
                    blocks: vec![
                        Block::Note("Intervals are 95 % Wilson intervals.".into()),
                        Block::Table {
                            caption: "Responders".into(),
                            columns: vec![Column::left("Study", 1.0), Column::right("Published", 1.0), Column::right("Clinic", 1.0)],
                            rows: vec![vec!["Glue 2017".into(), "58 % (32–81)".into(), "40 % (24–58)".into()]],
                        },
                        Block::Intervals(evidence),
                    ],
                },
                Section {
                    title: "Time to response".into(),
                    blocks: vec![Block::Paragraph("30 patients, 18 events; median 21.0 days".into()), Block::Curve(km)],
                },
                Section {
                    title: "Subgroups and biomarkers (exploratory)".into(),
                    blocks: vec![
                        Block::Warning("Hypothesis-generating only.".into()),
                        Block::Table { caption: "Strata".into(), columns: vec![Column::left("Covariate", 1.0)], rows: vec![] },
                    ],
                },
            ],
        }
    }

    use crate::test_support::text_of;

    #[test]
    fn the_report_shows_the_filter_counts_sections_and_footer_on_every_page() {
        let pdf = render(&sample()).unwrap();
        assert!(pdf.starts_with(b"%PDF-"));
        let (pages, texts) = text_of(&pdf);
        let all = texts.join("\n");
        for needle in [
            "Clinic outcomes report",
            "Harbour Ketamine Clinic",
            "Filter: Diagnosis",
            "Social anxiety disorder (SAD)",
            "42 match, 40 treated, 30 evaluable",
            "Exploratory statistics",
            "The clinic beside the published studies",
            "58 % (32–81)",
            "Glue 2017",
            "Time to response",
            "median 21.0 days",
            "No patients in this table.",
            "Dr Mei Tanaka",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in\n{all}");
        }
        for (i, t) in texts.iter().enumerate() {
            assert!(t.contains("de-identified aggregate data"), "page {} has the footer", i + 1);
            assert!(t.contains(&format!("Page {} of {pages}", i + 1)), "page {} is numbered", i + 1);
        }
    }

    #[test]
    fn the_whole_clinic_is_named_when_no_filter_is_applied() {
        let mut r = sample();
        r.filter.clear();
        let (_, texts) = text_of(&render(&r).unwrap());
        assert!(texts.join("\n").contains("the whole clinic (no filter)"));
    }

    #[test]
    fn a_bad_interval_is_refused_with_the_chart_named() {
        let mut r = sample();
        let Block::Intervals(c) = &mut r.sections[0].blocks[2] else { panic!("the evidence chart") };
        c.groups[0].hi = f64::NAN;
        let e = render(&r).unwrap_err();
        assert!(e.to_string().contains("Response: published"), "{e}");
    }

    #[test]
    fn many_sections_run_onto_several_pages() {
        let mut r = sample();
        let s = r.sections[0].clone();
        r.sections = (0..8).map(|_| s.clone()).collect();
        let (pages, _) = text_of(&render(&r).unwrap());
        assert!(pages >= 3, "{pages} pages");
    }
}
