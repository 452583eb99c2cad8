//! Charts drawn as vector lines: a line chart over time or a number (shaded horizontal bands,
//! horizontal reference lines, vertical event markers, several series with point markers and a
//! legend), and an interval chart comparing groups (a bar or point for each estimate with its
//! interval as whiskers, and an optional reference line).
//!
//! Both take an [`Area`] of a page and check their numbers first: a value that is not finite or
//! an empty range is a [`ReportError`] naming the chart, never a broken drawing.

use crate::canvas::{Align, Area, Canvas, Color, Shape, Stroke, TextStyle};
use crate::text::{fit, width, Font};
use crate::ReportError;
use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};

/// What the horizontal axis shows.
#[derive(Clone, Debug, PartialEq)]
pub enum XAxis {
    /// Time from `from` to `to`; x values are [`x_of`] of instants.
    Time {
        /// Left edge.
        from: DateTime<Utc>,
        /// Right edge.
        to: DateTime<Utc>,
    },
    /// Numbers from `min` to `max`, with a label.
    Linear {
        /// Left edge.
        min: f64,
        /// Right edge.
        max: f64,
        /// Axis label.
        label: String,
    },
}

/// The x value of an instant on a [`XAxis::Time`] axis (days since 1970).
pub fn x_of(t: DateTime<Utc>) -> f64 {
    t.timestamp() as f64 / 86_400.0
}

fn instant_of(x: f64) -> DateTime<Utc> {
    Utc.timestamp_opt((x * 86_400.0).round() as i64, 0).single().unwrap_or_default()
}

/// A shaded horizontal band (e.g. a severity band of a rating scale).
#[derive(Clone, Debug, PartialEq)]
pub struct Band {
    /// Lower edge.
    pub from: f64,
    /// Upper edge.
    pub to: f64,
    /// Label, written inside the band at the right.
    pub label: String,
    /// Lightness of its grey (0.85 to 1 reads well on paper).
    pub shade: f32,
}

/// A horizontal reference line (a baseline, a response threshold).
#[derive(Clone, Debug, PartialEq)]
pub struct RefLine {
    /// Its value.
    pub y: f64,
    /// Label, written above the line at the left.
    pub label: String,
    /// How it is drawn.
    pub stroke: Stroke,
}

/// A vertical marker at an x value (a dose), with a short label at the top.
#[derive(Clone, Debug, PartialEq)]
pub struct Marker {
    /// Where.
    pub x: f64,
    /// Label (a few characters).
    pub label: String,
}

/// One series of points joined by a line.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Name in the legend.
    pub label: String,
    /// Points (x, y), drawn in x order.
    pub points: Vec<(f64, f64)>,
    /// Colour.
    pub color: Color,
    /// Point marker.
    pub shape: Shape,
    /// Whether the points are joined.
    pub joined: bool,
}

/// A line chart.
#[derive(Clone, Debug, PartialEq)]
pub struct LineChart {
    /// Title above the plot.
    pub title: String,
    /// Label of the vertical axis.
    pub y_label: String,
    /// Horizontal axis.
    pub x: XAxis,
    /// Bottom of the vertical axis.
    pub y_min: f64,
    /// Top of the vertical axis.
    pub y_max: f64,
    /// Shaded bands, drawn first.
    pub bands: Vec<Band>,
    /// Reference lines.
    pub lines: Vec<RefLine>,
    /// Vertical markers and the legend text that explains them (e.g. "Dose (mg/kg)").
    pub markers: Vec<Marker>,
    /// What the markers are, for the legend.
    pub marker_legend: String,
    /// Series.
    pub series: Vec<Series>,
}

/// Tick positions: about `n` round numbers from `min` to `max`.
pub fn nice_ticks(min: f64, max: f64, n: usize) -> Vec<f64> {
    if !min.is_finite() || !max.is_finite() || max <= min {
        return vec![min];
    }
    let raw = (max - min) / n.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    // The round step whose tick count is nearest `n` (the smaller step on a tie).
    let count = |s: f64| ((max / s).floor() - (min / s).ceil() + 1.0).max(0.0);
    let target = n.max(1) as f64;
    let mut step = mag;
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        let s = m * mag;
        if (count(s) - target).abs() < (count(step) - target).abs() {
            step = s;
        }
    }
    let mut t = (min / step).ceil() * step;
    let mut out = Vec::new();
    while t <= max + step * 1e-9 {
        out.push(if t.abs() < step * 1e-9 { 0.0 } else { t });
        t += step;
    }
    out
}

/// Label of a number on an axis: whole numbers without decimals.
pub fn number_label(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else {
        let s = format!("{v:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

/// Date ticks for a span: days, weeks, months or quarters, with their labels.
pub fn date_ticks(from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<(f64, String)> {
    let days = (to - from).num_days().max(1);
    let first = from.date_naive();
    let mut out = Vec::new();
    let mut push = |d: NaiveDate, label: String| {
        let t = Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default());
        if t >= from && t <= to {
            out.push((x_of(t), label));
        }
    };
    if days <= 60 {
        let step = if days <= 10 {
            1
        } else if days <= 21 {
            2
        } else {
            7
        };
        let mut d = first;
        while d <= to.date_naive() {
            push(d, d.format("%d %b").to_string());
            d += Duration::days(step);
        }
    } else {
        let months = if days <= 250 {
            1
        } else if days <= 700 {
            3
        } else {
            6
        };
        let mut y = first.year();
        let mut m = first.month();
        let end = to.date_naive();
        while let Some(d) = NaiveDate::from_ymd_opt(y, m, 1) {
            if d > end {
                break;
            }
            if (m - 1).is_multiple_of(months) {
                push(d, if m == 1 || months >= 3 { d.format("%b %Y").to_string() } else { d.format("%b").to_string() });
            }
            m += 1;
            if m > 12 {
                m = 1;
                y += 1;
            }
        }
    }
    out
}

fn finite(what: &str, v: f64) -> Result<(), ReportError> {
    if v.is_finite() {
        Ok(())
    } else {
        Err(ReportError::Chart(format!("{what} is not a finite number")))
    }
}

/// Maps values to page coordinates inside the plot area.
struct Plot {
    area: Area,
    x0: f64,
    x1: f64,
    y0: f64,
    y1: f64,
}

impl Plot {
    fn px(&self, x: f64) -> f32 {
        self.area.x + ((x - self.x0) / (self.x1 - self.x0)) as f32 * self.area.w
    }
    fn py(&self, y: f64) -> f32 {
        self.area.bottom() - ((y - self.y0) / (self.y1 - self.y0)) as f32 * self.area.h
    }
    fn inside_x(&self, x: f64) -> bool {
        x >= self.x0 && x <= self.x1
    }
}

impl LineChart {
    fn check(&self) -> Result<(f64, f64), ReportError> {
        let name = |what: &str| format!("chart {:?}: {what}", self.title);
        let (x0, x1) = match &self.x {
            XAxis::Time { from, to } => (x_of(*from), x_of(*to)),
            XAxis::Linear { min, max, .. } => (*min, *max),
        };
        finite(&name("the horizontal range"), x0)?;
        finite(&name("the horizontal range"), x1)?;
        finite(&name("the vertical range"), self.y_min)?;
        finite(&name("the vertical range"), self.y_max)?;
        // Every end is finite here, so `<=` is the negation of `>`.
        if x1 <= x0 || self.y_max <= self.y_min {
            return Err(ReportError::Chart(name("an axis has an empty range")));
        }
        for s in &self.series {
            for (x, y) in &s.points {
                finite(&name(&format!("a point of {}", s.label)), *x)?;
                finite(&name(&format!("a point of {}", s.label)), *y)?;
            }
        }
        for l in &self.lines {
            finite(&name(&format!("the line {}", l.label)), l.y)?;
        }
        for b in &self.bands {
            finite(&name(&format!("the band {}", b.label)), b.from)?;
            finite(&name(&format!("the band {}", b.label)), b.to)?;
        }
        for m in &self.markers {
            finite(&name("a marker"), m.x)?;
        }
        Ok((x0, x1))
    }

    /// The legend entries: series, reference lines, markers.
    fn legend_items(&self) -> Vec<(LegendKey, String)> {
        let mut items: Vec<(LegendKey, String)> =
            self.series.iter().map(|s| (LegendKey::Series(s.color, s.shape), s.label.clone())).collect();
        for l in &self.lines {
            items.push((LegendKey::Line(l.stroke), l.label.clone()));
        }
        if !self.markers.is_empty() && !self.marker_legend.is_empty() {
            items.push((LegendKey::Marker, self.marker_legend.clone()));
        }
        items
    }

    /// Draws the chart into `area` (title, axes, plot and legend).
    pub fn draw(&self, c: &mut Canvas, area: Area) -> Result<(), ReportError> {
        let (x0, x1) = self.check()?;
        let small = TextStyle { font: Font::Regular, size: 7.0, color: Color::DARK };
        let title = TextStyle::bold(9.0);
        let y_ticks = nice_ticks(self.y_min, self.y_max, 5);
        let tick_w = y_ticks.iter().map(|t| width(&number_label(*t), Font::Regular, small.size)).fold(0.0f32, f32::max);
        let left = 14.0 + tick_w + 4.0;
        let legend = self.legend_items();
        let legend_rows = legend_rows(&legend, area.w - left, small.size);
        let legend_h = legend_rows.len() as f32 * 11.0;
        let top = 14.0 + 10.0;
        let bottom = 16.0 + legend_h + 4.0;
        let plot = Plot {
            area: Area { x: area.x + left, y: area.y + top, w: area.w - left - 6.0, h: (area.h - top - bottom).max(20.0) },
            x0,
            x1,
            y0: self.y_min,
            y1: self.y_max,
        };
        let p = plot.area;
        c.text(area.x, area.y + 10.0, &fit(&self.title, Font::Bold, 9.0, area.w), title, Align::Left);

        // Bands, clipped to the plot.
        for b in &self.bands {
            let (lo, hi) = (b.from.max(self.y_min), b.to.min(self.y_max));
            if hi <= lo {
                continue;
            }
            let (ya, yb) = (plot.py(hi), plot.py(lo));
            c.fill(Area { x: p.x, y: ya, w: p.w, h: yb - ya }, Color::grey(b.shade));
            if yb - ya >= 8.0 {
                let label = fit(&b.label, Font::Italic, 6.5, p.w * 0.4);
                c.text(p.right() - 3.0, ya + 8.0, &label, TextStyle { font: Font::Italic, size: 6.5, color: Color::DARK }, Align::Right);
            }
        }
        // Grid and vertical axis.
        for t in &y_ticks {
            let y = plot.py(*t);
            c.line(&[(p.x, y), (p.right(), y)], Stroke::solid(0.25, Color::grey(0.78)));
            c.line(&[(p.x - 3.0, y), (p.x, y)], Stroke::solid(0.5, Color::DARK));
            c.text(p.x - 5.0, y + 2.5, &number_label(*t), small, Align::Right);
        }
        c.text_up(area.x + 7.0, p.y + p.h / 2.0, &fit(&self.y_label, Font::Regular, small.size, p.h), small);
        // Horizontal axis.
        let x_ticks: Vec<(f64, String)> = match &self.x {
            XAxis::Time { from, to } => date_ticks(*from, *to),
            XAxis::Linear { min, max, .. } => nice_ticks(*min, *max, 6).into_iter().map(|t| (t, number_label(t))).collect(),
        };
        let mut last_right = f32::MIN;
        for (x, label) in &x_ticks {
            let px = plot.px(*x);
            c.line(&[(px, p.bottom()), (px, p.bottom() + 3.0)], Stroke::solid(0.5, Color::DARK));
            let w = width(label, Font::Regular, small.size);
            if px - w / 2.0 > last_right + 4.0 && px + w / 2.0 <= area.right() {
                c.text(px, p.bottom() + 11.0, label, small, Align::Center);
                last_right = px + w / 2.0;
            }
        }
        if let XAxis::Linear { label, .. } = &self.x {
            c.text(p.x + p.w / 2.0, p.bottom() + 20.0, label, small, Align::Center);
        }
        // Event markers: a dotted vertical line with its label at the top.
        for m in self.markers.iter().filter(|m| plot.inside_x(m.x)) {
            let px = plot.px(m.x);
            c.line(&[(px, p.y), (px, p.bottom())], Stroke::dashed(0.6, Color::ORANGE, 1.5, 1.5));
            c.marker(px, p.y - 2.5, Shape::Triangle, 5.0, Color::ORANGE);
            c.text(px, p.y - 6.0, &m.label, TextStyle { font: Font::Regular, size: 6.0, color: Color::ORANGE }, Align::Center);
        }
        // Reference lines with their labels.
        for l in &self.lines {
            if l.y < self.y_min || l.y > self.y_max {
                continue;
            }
            let y = plot.py(l.y);
            c.line(&[(p.x, y), (p.right(), y)], l.stroke);
            c.text(
                p.x + 3.0,
                y - 2.0,
                &fit(&l.label, Font::Regular, 6.5, p.w * 0.55),
                TextStyle { font: Font::Regular, size: 6.5, color: l.stroke.color },
                Align::Left,
            );
        }
        // Series.
        for s in &self.series {
            let mut pts: Vec<(f64, f64)> = s.points.iter().copied().filter(|(x, _)| plot.inside_x(*x)).collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            let xy: Vec<(f32, f32)> = pts.iter().map(|(x, y)| (plot.px(*x), plot.py(y.clamp(self.y_min, self.y_max)))).collect();
            if s.joined && xy.len() > 1 {
                c.line(&xy, Stroke::solid(1.2, s.color));
            }
            for (x, y) in &xy {
                c.marker(*x, *y, s.shape, 4.0, s.color);
            }
        }
        c.frame(p, Stroke::solid(0.6, Color::DARK));
        // Legend below the axis labels.
        let mut y = p.bottom() + 18.0 + if matches!(self.x, XAxis::Linear { .. }) { 9.0 } else { 0.0 };
        for row in legend_rows {
            let mut x = p.x;
            for (key, label) in row {
                draw_key(c, x, y, key);
                c.text(x + 16.0, y + 2.5, &label, small, Align::Left);
                x += 16.0 + width(&label, Font::Regular, small.size) + 12.0;
            }
            y += 11.0;
        }
        Ok(())
    }
}

/// What a legend entry shows.
#[derive(Clone, Copy, Debug, PartialEq)]
enum LegendKey {
    Series(Color, Shape),
    Line(Stroke),
    Marker,
}

fn legend_rows(items: &[(LegendKey, String)], w: f32, size: f32) -> Vec<Vec<(LegendKey, String)>> {
    let mut rows: Vec<Vec<(LegendKey, String)>> = Vec::new();
    let mut used = 0.0;
    for (k, label) in items {
        let label = fit(label, Font::Regular, size, w - 28.0);
        let need = 16.0 + width(&label, Font::Regular, size) + 12.0;
        if rows.is_empty() || used + need > w {
            rows.push(Vec::new());
            used = 0.0;
        }
        used += need;
        if let Some(r) = rows.last_mut() {
            r.push((*k, label));
        }
    }
    rows
}

fn draw_key(c: &mut Canvas, x: f32, y: f32, key: LegendKey) {
    match key {
        LegendKey::Series(color, shape) => {
            c.line(&[(x, y), (x + 12.0, y)], Stroke::solid(1.2, color));
            c.marker(x + 6.0, y, shape, 4.0, color);
        }
        LegendKey::Line(stroke) => c.line(&[(x, y), (x + 12.0, y)], stroke),
        LegendKey::Marker => {
            c.line(&[(x + 6.0, y - 4.0), (x + 6.0, y + 4.0)], Stroke::dashed(0.6, Color::ORANGE, 1.5, 1.5));
            c.marker(x + 6.0, y - 4.0, Shape::Triangle, 5.0, Color::ORANGE);
        }
    }
}

/// One group of an [`IntervalChart`].
#[derive(Clone, Debug, PartialEq)]
pub struct Interval {
    /// Group name under its bar.
    pub label: String,
    /// Estimate.
    pub estimate: f64,
    /// Lower end of the interval.
    pub lo: f64,
    /// Upper end of the interval.
    pub hi: f64,
    /// Second line under the name (e.g. "n = 42").
    pub note: String,
}

/// Groups compared by an estimate with its interval (e.g. response with a Wilson interval in
/// two groups).
#[derive(Clone, Debug, PartialEq)]
pub struct IntervalChart {
    /// Title.
    pub title: String,
    /// Label of the vertical axis.
    pub y_label: String,
    /// Bottom of the axis.
    pub y_min: f64,
    /// Top of the axis.
    pub y_max: f64,
    /// Groups, left to right.
    pub groups: Vec<Interval>,
    /// A reference line (e.g. a published rate), if any.
    pub reference: Option<RefLine>,
    /// Bars (true) or points (false) for the estimates.
    pub bars: bool,
}

impl IntervalChart {
    /// Draws the chart into `area`.
    pub fn draw(&self, c: &mut Canvas, area: Area) -> Result<(), ReportError> {
        let name = |what: &str| format!("chart {:?}: {what}", self.title);
        finite(&name("the vertical range"), self.y_min)?;
        finite(&name("the vertical range"), self.y_max)?;
        if self.y_max <= self.y_min {
            return Err(ReportError::Chart(name("the vertical axis has an empty range")));
        }
        if self.groups.is_empty() {
            return Err(ReportError::Chart(name("there is no group to show")));
        }
        for g in &self.groups {
            for v in [g.estimate, g.lo, g.hi] {
                finite(&name(&format!("the group {}", g.label)), v)?;
            }
            if g.lo > g.estimate || g.estimate > g.hi {
                return Err(ReportError::Chart(name(&format!("the group {} has its estimate outside its interval", g.label))));
            }
        }
        let small = TextStyle { font: Font::Regular, size: 7.0, color: Color::DARK };
        let ticks = nice_ticks(self.y_min, self.y_max, 5);
        let tick_w = ticks.iter().map(|t| width(&number_label(*t), Font::Regular, small.size)).fold(0.0f32, f32::max);
        let left = 14.0 + tick_w + 4.0;
        let plot = Plot {
            area: Area { x: area.x + left, y: area.y + 24.0, w: area.w - left - 6.0, h: (area.h - 24.0 - 26.0).max(20.0) },
            x0: 0.0,
            x1: self.groups.len() as f64,
            y0: self.y_min,
            y1: self.y_max,
        };
        let p = plot.area;
        c.text(area.x, area.y + 10.0, &fit(&self.title, Font::Bold, 9.0, area.w), TextStyle::bold(9.0), Align::Left);
        for t in &ticks {
            let y = plot.py(*t);
            c.line(&[(p.x, y), (p.right(), y)], Stroke::solid(0.25, Color::grey(0.78)));
            c.text(p.x - 5.0, y + 2.5, &number_label(*t), small, Align::Right);
        }
        c.text_up(area.x + 7.0, p.y + p.h / 2.0, &fit(&self.y_label, Font::Regular, small.size, p.h), small);
        let slot = p.w / self.groups.len() as f32;
        for (i, g) in self.groups.iter().enumerate() {
            let cx = p.x + slot * (i as f32 + 0.5);
            let clamp = |v: f64| plot.py(v.clamp(self.y_min, self.y_max));
            if self.bars {
                let (top, base) = (clamp(g.estimate), clamp(self.y_min.max(0.0)));
                let bw = (slot * 0.45).min(60.0);
                c.fill(Area { x: cx - bw / 2.0, y: top.min(base), w: bw, h: (base - top).abs() }, Color(0.72, 0.8, 0.9));
            } else {
                c.marker(cx, clamp(g.estimate), Shape::Square, 5.0, Color::BLUE);
            }
            let (ylo, yhi) = (clamp(g.lo), clamp(g.hi));
            c.line(&[(cx, ylo), (cx, yhi)], Stroke::solid(1.0, Color::BLACK));
            c.line(&[(cx - 5.0, ylo), (cx + 5.0, ylo)], Stroke::solid(1.0, Color::BLACK));
            c.line(&[(cx - 5.0, yhi), (cx + 5.0, yhi)], Stroke::solid(1.0, Color::BLACK));
            c.text(cx + 7.0, clamp(g.estimate) + 2.5, &number_label((g.estimate * 10.0).round() / 10.0), small, Align::Left);
            c.text(cx, p.bottom() + 10.0, &fit(&g.label, Font::Regular, 7.0, slot - 4.0), small, Align::Center);
            c.text(cx, p.bottom() + 19.0, &fit(&g.note, Font::Regular, 7.0, slot - 4.0), small, Align::Center);
        }
        if let Some(r) = &self.reference {
            if r.y >= self.y_min && r.y <= self.y_max {
                let y = plot.py(r.y);
                c.line(&[(p.x, y), (p.right(), y)], r.stroke);
                c.text(p.x + 3.0, y - 2.0, &r.label, TextStyle { font: Font::Regular, size: 6.5, color: r.stroke.color }, Align::Left);
            }
        }
        c.frame(p, Stroke::solid(0.6, Color::DARK));
        Ok(())
    }
}

/// The instant of an x value on a time axis (for captions).
pub fn date_of(x: f64) -> NaiveDate {
    instant_of(x).date_naive()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(nice_ticks(0.0, 56.0, 5), vec![0.0, 10.0, 20.0, 30.0, 40.0, 50.0]);
        assert_eq!(nice_ticks(0.0, 1.0, 4), vec![0.0, 0.25, 0.5, 0.75, 1.0]);
        assert_eq!(number_label(12.0), "12");
        assert_eq!(number_label(0.25), "0.25");
    }

    #[test]
    fn date_ticks_follow_the_span() {
        let from = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let weeks = date_ticks(from, from + Duration::days(40));
        assert!(weeks.len() >= 5 && weeks.len() <= 7, "{weeks:?}");
        let months = date_ticks(from, from + Duration::days(200));
        assert!(months.iter().all(|(_, l)| !l.is_empty()) && months.len() >= 6);
        assert_eq!(date_of(x_of(from + Duration::days(3))), NaiveDate::from_ymd_opt(2026, 1, 4).unwrap());
    }

    #[test]
    fn bad_numbers_are_named_errors() {
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let chart = LineChart {
            title: "HAM-A".into(),
            y_label: "Total".into(),
            x: XAxis::Time { from: t, to: t + Duration::days(30) },
            y_min: 0.0,
            y_max: 56.0,
            bands: vec![],
            lines: vec![],
            markers: vec![],
            marker_legend: String::new(),
            series: vec![Series {
                label: "HAM-A".into(),
                points: vec![(x_of(t), f64::NAN)],
                color: Color::BLUE,
                shape: Shape::Circle,
                joined: true,
            }],
        };
        let mut doc = crate::canvas::Document::new(crate::canvas::PageSetup::default());
        doc.add_page();
        let area = Area { x: 50.0, y: 50.0, w: 400.0, h: 200.0 };
        let e = chart.draw(doc.last_page(), area).unwrap_err().to_string();
        assert!(e.contains("HAM-A") && e.contains("not a finite number"), "{e}");
        let empty = LineChart { y_max: 0.0, series: vec![], ..chart };
        assert!(empty.draw(doc.last_page(), area).unwrap_err().to_string().contains("empty range"));
        let groups = IntervalChart {
            title: "Response".into(),
            y_label: "%".into(),
            y_min: 0.0,
            y_max: 100.0,
            groups: vec![Interval { label: "A".into(), estimate: 60.0, lo: 70.0, hi: 80.0, note: String::new() }],
            reference: None,
            bars: true,
        };
        assert!(groups.draw(doc.last_page(), area).unwrap_err().to_string().contains("outside its interval"));
    }
}
