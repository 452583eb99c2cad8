//! PDF reports of Ketacare, drawn with vector graphics and the standard PDF fonts (nothing is
//! rendered from HTML and no font is embedded).
//!
//! The reusable pieces, shared by both reports:
//!
//! - [`canvas`]: a page to draw on in points from its top-left corner (text with alignment,
//!   rotated axis labels, lines with dashes, filled and outlined rectangles, point markers) and
//!   the [`canvas::Document`] that writes the pages as a PDF with its metadata;
//! - [`layout::Flow`]: blocks placed top to bottom with page breaks, headings, wrapped
//!   paragraphs, bullet lists, label–value pairs, and a running header and footer with
//!   "Page n of m" on every page;
//! - [`table::Table`]: columns with relative widths and alignment, wrapped cells, the header
//!   repeated on every page the table runs onto;
//! - [`chart::LineChart`]: a chart over time or a number with shaded horizontal bands,
//!   horizontal reference lines, vertical event markers, series and a legend;
//! - [`chart::IntervalChart`]: groups side by side, each an estimate (bar or point) with its
//!   interval as whiskers, and an optional reference line (e.g. response in two groups with
//!   their Wilson intervals beside a published rate);
//! - [`text`]: WinAnsi encoding and Helvetica's widths, to measure, wrap and shorten text.
//!
//! [`progress`] is the patient progress report for the referring doctor (identified);
//! [`outcomes`] is the clinic outcomes report (de-identified aggregates beside the published
//! studies).

pub mod canvas;
pub mod chart;
pub mod layout;
pub mod outcomes;
pub mod progress;
pub mod table;
pub mod text;

pub use outcomes::{render as render_outcomes_report, OutcomesReport};
pub use progress::{render as render_progress_report, ProgressReport};

/// What can go wrong when a report is drawn.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    /// A chart was given numbers it cannot draw (not finite, an empty range).
    #[error("{0}")]
    Chart(String),
}

/// Helpers of the crate's tests.
#[cfg(test)]
pub(crate) mod test_support {
    /// The number of pages of a PDF and the text of each, as lopdf reads them back.
    pub(crate) fn text_of(pdf: &[u8]) -> (usize, Vec<String>) {
        let doc = lopdf::Document::load_mem(pdf).expect("a PDF lopdf can read");
        let pages: Vec<u32> = doc.get_pages().keys().copied().collect();
        let texts = pages.iter().map(|p| doc.extract_text(&[*p]).expect("text of a page")).collect();
        (pages.len(), texts)
    }
}
