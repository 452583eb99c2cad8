//! Inline SVG charts drawn on the server (no script): a line chart of concentration against time
//! with uncertainty bands, peak markers and shaded context bands, and a scatter with two y axes.
//!
//! Text is escaped by maud. Colours, dashes and sizes are SVG presentation attributes or classes
//! of app.css (the content security policy forbids inline styles). Every number that reaches the
//! markup goes through a guard: a value that is not finite is never drawn and never printed.

use maud::{html, Markup};

/// Curve colours (Okabe-Ito: distinguishable with the common colour-vision deficiencies).
pub const COLOURS: [&str; 4] = ["#0072b2", "#d55e00", "#009e73", "#cc79a7"];
/// Dash patterns, one per curve, so that curves differ without colour as well.
pub const DASHES: [&str; 4] = ["", "9 4", "3 3", "12 4 3 4"];

/// A concentration as whole ng/mL ("—" when not a number).
pub fn conc(v: f64) -> String {
    if !v.is_finite() {
        return "—".into();
    }
    let r = v.round();
    if r.abs() < 0.5 {
        "0".into()
    } else {
        format!("{r:.0}")
    }
}

/// A time in minutes to 0.1 min, without a trailing ".0" ("—" when not a number).
pub fn minutes(v: f64) -> String {
    number(v, 1)
}

/// A number rounded to at most `dp` decimals, trailing zeros dropped ("—" when not a number).
pub fn number(v: f64, dp: usize) -> String {
    if !v.is_finite() {
        return "—".into();
    }
    let s = format!("{v:.dp$}");
    let s = if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_owned() } else { s };
    if s == "-0" {
        "0".into()
    } else {
        s
    }
}

/// An area under the curve in ng·h/mL: whole from 100, one decimal below.
pub fn auc(v: f64) -> String {
    if v.is_finite() && v.abs() >= 100.0 {
        conc(v)
    } else {
        number(v, 1)
    }
}

/// A coordinate for the markup (one decimal; 0 for a value that is not finite).
fn c(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.1}")
    } else {
        "0".into()
    }
}

/// A round step near `raw` (1, 2, 2.5 or 5 times a power of ten).
pub fn nice_step(raw: f64) -> f64 {
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let mag = 10f64.powf(raw.log10().floor());
    let n = raw / mag;
    let m = if n <= 1.0 {
        1.0
    } else if n <= 2.0 {
        2.0
    } else if n <= 2.5 {
        2.5
    } else if n <= 5.0 {
        5.0
    } else {
        10.0
    };
    m * mag
}

/// A step for a time axis in minutes (multiples a clinician reads at a glance).
fn time_step(raw: f64) -> f64 {
    const STEPS: [f64; 18] =
        [1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 60.0, 90.0, 120.0, 180.0, 240.0, 360.0, 480.0, 720.0, 1440.0, 2880.0, 10080.0];
    STEPS.iter().copied().find(|s| *s >= raw).unwrap_or_else(|| nice_step(raw))
}

/// Ticks from `lo` to `hi` with `step` (at most 60).
fn ticks(lo: f64, hi: f64, step: f64) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite() && step.is_finite() && step > 0.0) || hi < lo {
        return vec![];
    }
    let first = (lo / step).ceil() * step;
    (0..60).map(|i| first + i as f64 * step).take_while(|t| *t <= hi + step * 1e-9).collect()
}

/// A rounded upper end of an axis that holds `max` with a little room, and its tick step.
fn axis_top(max: f64, n: f64) -> (f64, f64) {
    let max = if max.is_finite() && max > 0.0 { max } else { 1.0 };
    let step = nice_step(max * 1.06 / n);
    (((max * 1.06) / step).ceil() * step, step)
}

/// Rough width of a text in the chart's font, px.
fn text_width(s: &str, font_px: f64) -> f64 {
    s.chars().count() as f64 * font_px * 0.56
}

/// Splits `s` into lines of at most `width` characters at spaces.
fn wrap(s: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut cur = String::new();
    for w in s.split_whitespace() {
        if !cur.is_empty() && cur.chars().count() + 1 + w.chars().count() > width {
            lines.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(w);
    }
    if !cur.is_empty() {
        lines.push(cur);
    }
    lines
}

/// One curve of a line chart.
pub struct Curve<'a> {
    /// Legend text; also the `data-curve` of its path.
    pub label: &'a str,
    /// Times, min.
    pub times: &'a [f64],
    /// Values on `times`.
    pub values: &'a [f64],
    /// Lower and upper edges of the uncertainty band on `times`.
    pub band: Option<(&'a [f64], &'a [f64])>,
    /// The peak (time, value), marked with a dot and its text.
    pub peak: Option<(f64, f64)>,
}

/// A horizontal background band (context, not a target).
pub struct Background<'a> {
    /// Lower bound.
    pub low: f64,
    /// Upper bound (None: open-ended).
    pub high: Option<f64>,
    /// What the range is.
    pub label: &'a str,
}

/// A line chart of concentration against time.
pub struct LineChart<'a> {
    /// Id of the `svg` element.
    pub id: &'a str,
    /// Short title (the accessible name).
    pub title: String,
    /// Longer description (the accessible description).
    pub desc: String,
    /// Y axis label.
    pub y_label: &'a str,
    /// X axis label.
    pub x_label: &'a str,
    /// Unit printed with the peak, e.g. "ng/mL".
    pub unit: &'a str,
    /// End of the time axis, min.
    pub x_max: f64,
    /// Curves, drawn in order (at most four styles; more repeat them).
    pub curves: Vec<Curve<'a>>,
    /// Context bands behind the curves, labelled at the right edge.
    pub backgrounds: Vec<Background<'a>>,
    /// Legend text of the uncertainty band.
    pub band_legend: &'a str,
    /// Smaller chart (the dose calculator).
    pub compact: bool,
}

/// The text of a peak marker: "Cmax 240 ng/mL at 40 min".
pub fn peak_text(value: f64, time: f64, unit: &str) -> String {
    format!("Cmax {} {unit} at {} min", conc(value), minutes(time))
}

/// Draws a line chart.
pub fn line_chart(ch: &LineChart) -> Markup {
    // The compact chart sits in a narrow column: a smaller canvas with larger text.
    let fs: f64 = if ch.compact { 1.25 } else { 1.0 };
    let (tick_px, band_px, label_px, peak_px) = (11.0 * fs, 10.0 * fs, 12.0 * fs, 11.0 * fs);
    let w = if ch.compact { 520.0 } else { 820.0 };
    let (left, right_room, top): (f64, f64, f64) = (if ch.compact { 72.0 } else { 64.0 }, if ch.compact { 150.0 } else { 200.0 }, 14.0);
    let plot_h = if ch.compact { 230.0 } else { 320.0 };
    let wrap_chars = ((right_room - 8.0) / (band_px * 0.56)).floor() as usize;
    let plot_w = w - left - right_room;
    let (x0, x1, y0) = (left, left + plot_w, top + plot_h);
    let xmax = if ch.x_max.is_finite() && ch.x_max > 0.0 { ch.x_max } else { 1.0 };
    let finite_max = |v: &[f64]| v.iter().copied().filter(|x| x.is_finite()).fold(0.0_f64, f64::max);
    let mut vmax = 0.0_f64;
    for cv in &ch.curves {
        vmax = vmax.max(finite_max(cv.values));
        if let Some((_, hi)) = cv.band {
            vmax = vmax.max(finite_max(hi));
        }
        if let Some((_, v)) = cv.peak {
            if v.is_finite() {
                vmax = vmax.max(v);
            }
        }
    }
    let (ymax, ystep) = axis_top(vmax, 5.0);
    let x = |t: f64| x0 + (t.clamp(0.0, xmax) / xmax) * plot_w;
    let y = |v: f64| y0 - (v.clamp(0.0, ymax) / ymax) * plot_h;
    let xstep = time_step(xmax / 8.0);

    // Legend rows under the axis label.
    let font = label_px;
    let mut legend: Vec<(f64, f64, usize)> = Vec::new(); // (x, row, curve index or usize::MAX for the band)
    let (mut lx, mut row) = (0.0, 0.0);
    let has_band = ch.curves.iter().any(|cv| cv.band.is_some());
    let mut entries: Vec<(usize, f64)> =
        ch.curves.iter().enumerate().map(|(i, cv)| (i, 34.0 + text_width(cv.label, font) + 18.0)).collect();
    if has_band {
        entries.push((usize::MAX, 24.0 + text_width(ch.band_legend, font) + 18.0));
    }
    for (i, width) in entries {
        if lx > 0.0 && lx + width > w - left - 8.0 {
            lx = 0.0;
            row += 1.0;
        }
        legend.push((left + lx, row, i));
        lx += width;
    }
    let legend_top = y0 + 38.0 + tick_px + label_px;
    let h = legend_top + row * (label_px + 8.0) + label_px + 4.0;

    // Peak labels: right of the dot (left when it would leave the plot), pushed apart vertically.
    struct Label {
        idx: usize,
        px: f64,
        py: f64,
        tx: f64,
        ty: f64,
        anchor: &'static str,
        text: String,
    }
    let mut labels: Vec<Label> = ch
        .curves
        .iter()
        .enumerate()
        .filter_map(|(idx, cv)| {
            let (t, v) = cv.peak?;
            if !(t.is_finite() && v.is_finite()) {
                return None;
            }
            let text = peak_text(v, t, ch.unit);
            let (px, py) = (x(t), y(v));
            let right = px + 8.0 + text_width(&text, peak_px) <= x1;
            Some(Label {
                idx,
                px,
                py,
                tx: if right { px + 8.0 } else { px - 8.0 },
                ty: py - 7.0,
                anchor: if right { "start" } else { "end" },
                text,
            })
        })
        .collect();
    labels.sort_by(|a, b| a.ty.total_cmp(&b.ty));
    for i in 0..labels.len() {
        let mut ty = labels[i].ty.max(top + peak_px);
        for j in 0..i {
            let (a, b) = (&labels[i], &labels[j]);
            let span = |l: &Label| {
                let wd = text_width(&l.text, peak_px);
                if l.anchor == "start" {
                    (l.tx, l.tx + wd)
                } else {
                    (l.tx - wd, l.tx)
                }
            };
            let ((a0, a1), (b0, b1)) = (span(a), span(b));
            if a0 < b1 && b0 < a1 && ty < labels[j].ty + peak_px + 3.0 {
                ty = labels[j].ty + peak_px + 3.0;
            }
        }
        labels[i].ty = ty;
    }

    let xticks = ticks(0.0, xmax, xstep);
    let yticks = ticks(0.0, ymax, ystep);
    let shades = ["#f1f4f7", "#e6ebf0"];
    let title_id = format!("{}-title", ch.id);
    let desc_id = format!("{}-desc", ch.id);
    html! {
        svg id=(ch.id) class="pk-chart" viewBox=(format!("0 0 {w} {}", c(h))) role="img" aria-labelledby=(format!("{title_id} {desc_id}")) {
            title id=(title_id) { (ch.title) }
            desc id=(desc_id) { (ch.desc) }
            // Context bands with their labels in the right margin.
            g.context-bands {
                @for (i, b) in ch.backgrounds.iter().enumerate() {
                    @let hi = b.high.unwrap_or(f64::INFINITY).min(ymax);
                    @if b.low.is_finite() && b.low < ymax && hi > b.low {
                        @let (ya, yb) = (y(hi), y(b.low.max(0.0)));
                        @let range = match b.high { Some(hh) => format!("{}–{} ng/mL", conc(b.low), conc(hh)), None => format!("≥ {} ng/mL", conc(b.low)) };
                        @let fit = (((yb - ya) - 4.0) / (band_px + 1.0)).floor().max(0.0) as usize;
                        @let words = wrap(b.label, wrap_chars);
                        g.context-band data-band-low=(conc(b.low)) {
                            rect x=(c(x0)) y=(c(ya)) width=(c(plot_w)) height=(c(yb - ya)) fill=(shades[i % 2]) {}
                            line x1=(c(x0)) y1=(c(yb)) x2=(c(x1 + 4.0)) y2=(c(yb)) stroke="#c3ccd5" stroke-dasharray="2 3" {}
                            @if fit >= 1 {
                                text.band-label x=(c(x1 + 6.0)) y=(c(ya + band_px + 1.0)) font-size=(number(band_px, 1)) {
                                    title { (range) ": " (b.label) }
                                    tspan.band-range x=(c(x1 + 6.0)) { (range) }
                                    @for (k, line) in words.iter().enumerate().take(fit.saturating_sub(1)) {
                                        @let last = k + 2 == fit && k + 1 < words.len();
                                        tspan x=(c(x1 + 6.0)) dy=(number(band_px + 1.0, 1)) { (line) @if last { "…" } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            // Grid and axes.
            g.axes {
                @for t in &yticks {
                    line.grid x1=(c(x0)) y1=(c(y(*t))) x2=(c(x1)) y2=(c(y(*t))) stroke="#dfe5eb" stroke-width="0.6" {}
                    line x1=(c(x0 - 5.0)) y1=(c(y(*t))) x2=(c(x0)) y2=(c(y(*t))) stroke="#52606d" {}
                    text.tick x=(c(x0 - 8.0)) y=(c(y(*t) + 4.0)) text-anchor="end" font-size=(number(tick_px, 1)) { (number(*t, 1)) }
                }
                @for t in &xticks {
                    line x1=(c(x(*t))) y1=(c(y0)) x2=(c(x(*t))) y2=(c(y0 + 5.0)) stroke="#52606d" {}
                    text.tick x=(c(x(*t))) y=(c(y0 + 8.0 + tick_px)) text-anchor="middle" font-size=(number(tick_px, 1)) { (number(*t, 1)) }
                }
                line x1=(c(x0)) y1=(c(y0)) x2=(c(x1)) y2=(c(y0)) stroke="#52606d" {}
                line x1=(c(x0)) y1=(c(top)) x2=(c(x0)) y2=(c(y0)) stroke="#52606d" {}
                text.axis-label x=(c(x0 + plot_w / 2.0)) y=(c(y0 + 16.0 + tick_px + label_px)) text-anchor="middle" font-size=(number(label_px, 1)) { (ch.x_label) }
                text.axis-label x="16" y=(c(top + plot_h / 2.0)) text-anchor="middle" font-size=(number(label_px, 1)) transform=(format!("rotate(-90 16 {})", c(top + plot_h / 2.0))) { (ch.y_label) }
            }
            // Uncertainty bands, then the curves on top.
            @for (i, cv) in ch.curves.iter().enumerate() {
                @if let Some((lo, hi)) = cv.band {
                    @let d = band_path(cv.times, lo, hi, &x, &y);
                    @if !d.is_empty() {
                        path.pk-band data-band=(cv.label) d=(d) fill=(COLOURS[i % 4]) fill-opacity="0.13" stroke=(COLOURS[i % 4]) stroke-opacity="0.25" stroke-width="0.5" {}
                    }
                }
            }
            @for (i, cv) in ch.curves.iter().enumerate() {
                path.pk-curve data-curve=(cv.label) d=(curve_path(cv.times, cv.values, cv.peak, &x, &y)) fill="none" stroke=(COLOURS[i % 4]) stroke-width="2.2" stroke-linejoin="round" stroke-dasharray=[(!DASHES[i % 4].is_empty()).then_some(DASHES[i % 4])] {
                    title { (cv.label) }
                }
            }
            @for l in &labels {
                g.peak data-cmax=(ch.curves[l.idx].label) {
                    @if (l.ty - l.py).abs() > 16.0 {
                        line x1=(c(l.px)) y1=(c(l.py)) x2=(c(l.tx)) y2=(c(l.ty - 4.0)) stroke=(COLOURS[l.idx % 4]) stroke-width="0.8" {}
                    }
                    circle cx=(c(l.px)) cy=(c(l.py)) r="4.5" fill=(COLOURS[l.idx % 4]) stroke="#ffffff" stroke-width="1.5" {}
                    text.peak-label x=(c(l.tx)) y=(c(l.ty)) text-anchor=(l.anchor) font-size=(number(peak_px, 1)) fill=(COLOURS[l.idx % 4]) { (l.text) }
                }
            }
            // Legend.
            g.legend {
                @for (lx, row, i) in &legend {
                    @let ly = legend_top + row * (label_px + 8.0);
                    @if *i == usize::MAX {
                        rect x=(c(*lx)) y=(c(ly - 6.0)) width="18" height="12" fill="#52606d" fill-opacity="0.18" stroke="#52606d" stroke-opacity="0.3" {}
                        text x=(c(lx + 24.0)) y=(c(ly + 4.0)) font-size=(number(label_px, 1)) { (ch.band_legend) }
                    } @else {
                        line x1=(c(*lx)) y1=(c(ly)) x2=(c(lx + 28.0)) y2=(c(ly)) stroke=(COLOURS[i % 4]) stroke-width="2.5" stroke-dasharray=[(!DASHES[i % 4].is_empty()).then_some(DASHES[i % 4])] {}
                        text data-legend=(ch.curves[*i].label) x=(c(lx + 34.0)) y=(c(ly + 4.0)) font-size=(number(label_px, 1)) { (ch.curves[*i].label) }
                    }
                }
            }
        }
    }
}

/// The path of a curve; the peak (off the grid) is inserted so that the line passes through it.
fn curve_path(times: &[f64], values: &[f64], peak: Option<(f64, f64)>, x: &dyn Fn(f64) -> f64, y: &dyn Fn(f64) -> f64) -> String {
    let mut pts: Vec<(f64, f64)> =
        times.iter().zip(values).filter(|(t, v)| t.is_finite() && v.is_finite()).map(|(t, v)| (*t, *v)).collect();
    if let Some((pt, pv)) = peak.filter(|(t, v)| t.is_finite() && v.is_finite()) {
        let at = pts.partition_point(|(t, _)| *t < pt);
        if pts.get(at).is_none_or(|(t, _)| (t - pt).abs() > 1e-9) {
            pts.insert(at, (pt, pv));
        }
    }
    let mut d = String::with_capacity(pts.len() * 14);
    for (k, (t, v)) in pts.iter().enumerate() {
        d.push_str(if k == 0 { "M" } else { " L" });
        d.push_str(&c(x(*t)));
        d.push(',');
        d.push_str(&c(y(*v)));
    }
    d
}

/// The closed outline of a band: the upper edge forward, the lower edge back.
fn band_path(times: &[f64], lo: &[f64], hi: &[f64], x: &dyn Fn(f64) -> f64, y: &dyn Fn(f64) -> f64) -> String {
    let pts: Vec<(f64, f64, f64)> = times
        .iter()
        .zip(lo.iter().zip(hi))
        .filter(|(t, (l, h))| t.is_finite() && l.is_finite() && h.is_finite())
        .map(|(t, (l, h))| (*t, *l, *h))
        .collect();
    if pts.len() < 2 {
        return String::new();
    }
    let mut d = String::with_capacity(pts.len() * 28);
    for (k, (t, _, h)) in pts.iter().enumerate() {
        d.push_str(if k == 0 { "M" } else { " L" });
        d.push_str(&format!("{},{}", c(x(*t)), c(y(*h))));
    }
    for (t, l, _) in pts.iter().rev() {
        d.push_str(&format!(" L{},{}", c(x(*t)), c(y(*l))));
    }
    d.push_str(" Z");
    d
}

/// A point of a scatter.
pub struct Point {
    /// X value.
    pub x: f64,
    /// Y value.
    pub y: f64,
    /// Text next to the point (a date).
    pub label: String,
}

/// A scatter with one series on the left axis (circles) and one on the right axis (squares).
pub struct Scatter<'a> {
    /// Id of the `svg` element.
    pub id: &'a str,
    /// Accessible name.
    pub title: String,
    /// Accessible description.
    pub desc: String,
    /// X axis label.
    pub x_label: &'a str,
    /// Left axis label (circles).
    pub left_label: &'a str,
    /// Right axis label (squares).
    pub right_label: &'a str,
    /// Left range (low, high).
    pub left_range: (f64, f64),
    /// Left series.
    pub left: Vec<Point>,
    /// Right series.
    pub right: Vec<Point>,
}

/// Draws a two-axis scatter.
pub fn scatter(s: &Scatter) -> Markup {
    let (w, plot_h) = (640.0, 260.0);
    let (left, right, top) = (60.0, 64.0, 14.0);
    let (x0, x1, y0) = (left, w - right, top + plot_h);
    let plot_w = x1 - x0;
    let xs: Vec<f64> = s.left.iter().chain(&s.right).map(|p| p.x).filter(|v| v.is_finite()).collect();
    let (xmax, xstep) = axis_top(xs.iter().copied().fold(0.0, f64::max), 5.0);
    let (ll, lh) = s.left_range;
    let lmin = s.left.iter().map(|p| p.y).filter(|v| v.is_finite()).fold(ll, f64::min);
    let lstep = nice_step((lh - lmin) / 5.0);
    let (lmin, lmax) =
        ((lmin / lstep).floor() * lstep, (s.left.iter().map(|p| p.y).filter(|v| v.is_finite()).fold(lh, f64::max) / lstep).ceil() * lstep);
    let (rmax, rstep) = axis_top(s.right.iter().map(|p| p.y).filter(|v| v.is_finite()).fold(10.0, f64::max), 5.0);
    let x = |v: f64| x0 + (v.clamp(0.0, xmax) / xmax) * plot_w;
    let yl = |v: f64| y0 - ((v.clamp(lmin, lmax) - lmin) / (lmax - lmin).max(1e-9)) * plot_h;
    let yr = |v: f64| y0 - (v.clamp(0.0, rmax) / rmax) * plot_h;
    let h = y0 + 70.0;
    let ly = y0 + 58.0;
    let (cl, cr) = ("#0072b2", "#d55e00");
    let title_id = format!("{}-title", s.id);
    let desc_id = format!("{}-desc", s.id);
    html! {
        svg id=(s.id) class="pk-chart" viewBox=(format!("0 0 {w} {}", c(h))) role="img" aria-labelledby=(format!("{title_id} {desc_id}")) {
            title id=(title_id) { (s.title) }
            desc id=(desc_id) { (s.desc) }
            g.axes {
                @for t in ticks(lmin, lmax, lstep) {
                    line.grid x1=(c(x0)) y1=(c(yl(t))) x2=(c(x1)) y2=(c(yl(t))) stroke="#dfe5eb" stroke-width="0.6" {}
                    text.tick x=(c(x0 - 8.0)) y=(c(yl(t) + 4.0)) text-anchor="end" font-size="11" fill=(cl) { (number(t, 1)) }
                }
                @for t in ticks(0.0, rmax, rstep) {
                    line x1=(c(x1)) y1=(c(yr(t))) x2=(c(x1 + 5.0)) y2=(c(yr(t))) stroke="#52606d" {}
                    text.tick x=(c(x1 + 8.0)) y=(c(yr(t) + 4.0)) font-size="11" fill=(cr) { (number(t, 1)) }
                }
                @for t in ticks(0.0, xmax, xstep) {
                    line x1=(c(x(t))) y1=(c(y0)) x2=(c(x(t))) y2=(c(y0 + 5.0)) stroke="#52606d" {}
                    text.tick x=(c(x(t))) y=(c(y0 + 18.0)) text-anchor="middle" font-size="11" { (number(t, 1)) }
                }
                @if lmin < 0.0 {
                    line x1=(c(x0)) y1=(c(yl(0.0))) x2=(c(x1)) y2=(c(yl(0.0))) stroke="#9aa5b1" {}
                }
                line x1=(c(x0)) y1=(c(y0)) x2=(c(x1)) y2=(c(y0)) stroke="#52606d" {}
                line x1=(c(x0)) y1=(c(top)) x2=(c(x0)) y2=(c(y0)) stroke=(cl) {}
                line x1=(c(x1)) y1=(c(top)) x2=(c(x1)) y2=(c(y0)) stroke=(cr) {}
                text.axis-label x=(c(x0 + plot_w / 2.0)) y=(c(y0 + 36.0)) text-anchor="middle" font-size="12" { (s.x_label) }
                text.axis-label x="14" y=(c(top + plot_h / 2.0)) text-anchor="middle" font-size="12" fill=(cl) transform=(format!("rotate(-90 14 {})", c(top + plot_h / 2.0))) { (s.left_label) }
                text.axis-label x=(c(w - 10.0)) y=(c(top + plot_h / 2.0)) text-anchor="middle" font-size="12" fill=(cr) transform=(format!("rotate(90 {} {})", c(w - 10.0), c(top + plot_h / 2.0))) { (s.right_label) }
            }
            @for p in s.left.iter().filter(|p| p.x.is_finite() && p.y.is_finite()) {
                g.point data-series="left" {
                    circle cx=(c(x(p.x))) cy=(c(yl(p.y))) r="5" fill=(cl) stroke="#ffffff" stroke-width="1.2" { title { (p.label) ": " (number(p.y, 1)) } }
                    text.point-label x=(c(x(p.x) + 8.0)) y=(c(yl(p.y) - 6.0)) font-size="10" fill=(cl) { (p.label) }
                }
            }
            @for p in s.right.iter().filter(|p| p.x.is_finite() && p.y.is_finite()) {
                g.point data-series="right" {
                    rect x=(c(x(p.x) - 4.5)) y=(c(yr(p.y) - 4.5)) width="9" height="9" fill=(cr) stroke="#ffffff" stroke-width="1.2" { title { (p.label) ": " (number(p.y, 1)) } }
                    text.point-label x=(c(x(p.x) + 8.0)) y=(c(yr(p.y) + 14.0)) font-size="10" fill=(cr) { (p.label) }
                }
            }
            g.legend {
                circle cx=(c(x0 + 6.0)) cy=(c(ly)) r="5" fill=(cl) {}
                text x=(c(x0 + 16.0)) y=(c(ly + 4.0)) font-size="12" { (s.left_label) " (left axis)" }
                rect x=(c(x0 + 300.0)) y=(c(ly - 4.5)) width="9" height="9" fill=(cr) {}
                text x=(c(x0 + 314.0)) y=(c(ly + 4.0)) font-size="12" { (s.right_label) " (right axis)" }
            }
        }
    }
}

/// How a series over calendar time is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeKind {
    /// Points joined by a line.
    Line,
    /// A bar from zero to each value.
    Bars,
    /// A running total: level until the next point, then a vertical step.
    Step,
}

/// A series over calendar time.
pub struct TimeSeries<'a> {
    /// Legend text; also the `data-series` of its group.
    pub label: &'a str,
    /// Line or bars.
    pub kind: TimeKind,
    /// (Unix seconds, value, text shown when pointing at it), in time order.
    pub points: Vec<(i64, f64, String)>,
    /// Text printed next to the last point (for example "3.4 × ULN").
    pub last_label: Option<String>,
}

/// A horizontal reference line (a threshold or limit), labelled in the right margin.
pub struct RefLine<'a> {
    /// Where.
    pub value: f64,
    /// What it is.
    pub label: &'a str,
}

/// A chart of values over calendar dates.
pub struct TimeChart<'a> {
    /// Id of the `svg` element.
    pub id: &'a str,
    /// Short title (the accessible name).
    pub title: String,
    /// Longer description (the accessible description).
    pub desc: String,
    /// Y axis label.
    pub y_label: &'a str,
    /// Series, drawn in order (bars first is best).
    pub series: Vec<TimeSeries<'a>>,
    /// Reference lines.
    pub refs: Vec<RefLine<'a>>,
    /// The y axis reaches at least this value.
    pub y_at_least: f64,
    /// The top of the y axis when every value fits under it (a scale's maximum, such as 20).
    pub y_top: Option<f64>,
}

const DAY_S: i64 = 86_400;

/// Series colours of the time chart (Okabe-Ito, six distinguishable with the common
/// colour-vision deficiencies) and dash patterns, so that series differ without colour too.
const SERIES_COLOURS: [&str; 6] = ["#0072b2", "#d55e00", "#009e73", "#cc79a7", "#8a6d00", "#56b4e9"];
const SERIES_DASHES: [&str; 6] = ["", "9 4", "3 3", "12 4 3 4", "2 5", "6 2"];

/// The colour and dash of series `i`; bars and running totals are always solid.
fn series_style(i: usize, kind: TimeKind) -> (&'static str, Option<&'static str>) {
    let dash = SERIES_DASHES[i % SERIES_DASHES.len()];
    (SERIES_COLOURS[i % SERIES_COLOURS.len()], (kind == TimeKind::Line && !dash.is_empty()).then_some(dash))
}

/// A date for an axis or a label ("—" when out of range).
fn date_text(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0).map(|d| d.format("%Y-%m-%d").to_string()).unwrap_or_else(|| "—".into())
}

/// The path of a running total: level to the next point's time, then up or down to its value.
fn step_path(pts: &[&(i64, f64, String)], x: &dyn Fn(i64) -> f64, y: &dyn Fn(f64) -> f64) -> String {
    let mut d = String::with_capacity(pts.len() * 20);
    for (k, p) in pts.iter().enumerate() {
        if k == 0 {
            d.push_str(&format!("M{},{}", c(x(p.0)), c(y(p.1))));
        } else {
            d.push_str(&format!(" H{} V{}", c(x(p.0)), c(y(p.1))));
        }
    }
    d
}

/// Draws a chart of values over dates: lines and bars on one y axis from zero, dashed reference
/// lines labelled at the right, date ticks, and a legend.
pub fn time_chart(ch: &TimeChart) -> Markup {
    let (w, left, right_room, top, plot_h) = (820.0_f64, 64.0_f64, 190.0_f64, 14.0_f64, 260.0_f64);
    let (tick_px, label_px, ref_px) = (11.0_f64, 12.0_f64, 10.5_f64);
    let plot_w = w - left - right_room;
    let (x0, x1, y0) = (left, left + plot_w, top + plot_h);
    let all: Vec<(i64, f64)> = ch.series.iter().flat_map(|s| s.points.iter().map(|p| (p.0, p.1))).filter(|(_, v)| v.is_finite()).collect();
    let (mut t0, mut t1) = match (all.iter().map(|p| p.0).min(), all.iter().map(|p| p.0).max()) {
        (Some(a), Some(b)) => (a, b),
        _ => (0, 7 * DAY_S),
    };
    if t1 - t0 < 7 * DAY_S {
        let mid = t0 + (t1 - t0) / 2;
        t0 = mid - 7 * DAY_S / 2;
        t1 = mid + 7 * DAY_S / 2;
    }
    let pad = ((t1 - t0) / 40).max(DAY_S / 2);
    let (t0, t1) = (t0 - pad, t1 + pad);
    let span = (t1 - t0) as f64;
    let vmax = all
        .iter()
        .map(|p| p.1)
        .chain(ch.refs.iter().map(|r| r.value).filter(|v| v.is_finite()))
        .fold(if ch.y_at_least.is_finite() { ch.y_at_least } else { 0.0 }, f64::max);
    let (ymax, ystep) = match ch.y_top.filter(|t| t.is_finite() && *t > 0.0 && *t >= vmax) {
        Some(t) => (t, nice_step(t / 5.0)),
        None => axis_top(vmax, 5.0),
    };
    let x = |t: i64| x0 + ((t - t0) as f64 / span).clamp(0.0, 1.0) * plot_w;
    let y = |v: f64| y0 - (v.clamp(0.0, ymax) / ymax) * plot_h;

    // Date ticks on whole days, at a step a reader counts in (days, weeks, months).
    let days = span / DAY_S as f64;
    let step_days = [1_i64, 2, 7, 14, 28, 56, 91, 182, 364, 728].into_iter().find(|s| days / *s as f64 <= 7.0).unwrap_or(1456);
    let first = (t0 + DAY_S - 1).div_euclid(DAY_S) * DAY_S;
    let xticks: Vec<i64> = (0..40).map(|k| first + k * step_days * DAY_S).take_while(|t| *t <= t1).collect();
    let yticks = ticks(0.0, ymax, ystep);

    // Reference labels in the right margin, pushed apart so that they do not overlap.
    // Reference labels are bold: a little wider than the plain estimate.
    let wrap_chars = ((right_room - 14.0) / (ref_px * 0.64)).floor() as usize;
    let mut refs: Vec<(f64, f64, Vec<String>, usize)> = ch
        .refs
        .iter()
        .enumerate()
        .filter(|(_, r)| r.value.is_finite() && r.value >= 0.0 && r.value <= ymax)
        .map(|(i, r)| (y(r.value), y(r.value) + 3.5, wrap(r.label, wrap_chars), i))
        .collect();
    refs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut next_free = f64::MIN;
    for r in &mut refs {
        if r.1 < next_free {
            r.1 = next_free;
        }
        next_free = r.1 + r.2.len() as f64 * (ref_px + 1.0) + 3.0;
    }

    // Labels of the last points: right of the point (left when it would leave the plot), pushed
    // apart vertically where they would overlap. (series, x, y, anchor, text)
    let mut last_labels: Vec<(usize, f64, f64, &'static str, &str)> = ch
        .series
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            let text = s.last_label.as_deref()?;
            let last = s.points.iter().rev().find(|p| p.1.is_finite())?;
            let (px, py) = (x(last.0), y(last.1));
            let right = px + 8.0 + text_width(text, tick_px) <= x1;
            Some((i, if right { px + 8.0 } else { px - 8.0 }, (py - 8.0).max(top + tick_px), if right { "start" } else { "end" }, text))
        })
        .collect();
    last_labels.sort_by(|a, b| a.2.total_cmp(&b.2));
    for i in 1..last_labels.len() {
        let span = |l: &(usize, f64, f64, &str, &str)| {
            let wd = text_width(l.4, tick_px) * 1.1;
            if l.3 == "start" {
                (l.1, l.1 + wd)
            } else {
                (l.1 - wd, l.1)
            }
        };
        for j in 0..i {
            let ((a0, a1), (b0, b1)) = (span(&last_labels[i]), span(&last_labels[j]));
            if a0 < b1 && b0 < a1 && last_labels[i].2 < last_labels[j].2 + tick_px + 3.0 {
                last_labels[i].2 = last_labels[j].2 + tick_px + 3.0;
            }
        }
    }

    // Legend rows under the axis label.
    let mut legend: Vec<(f64, f64, usize)> = Vec::new();
    let (mut lx, mut row) = (0.0, 0.0);
    for (i, s) in ch.series.iter().enumerate() {
        let width = 34.0 + text_width(s.label, label_px) + 18.0;
        if lx > 0.0 && lx + width > w - left - 8.0 {
            lx = 0.0;
            row += 1.0;
        }
        legend.push((left + lx, row, i));
        lx += width;
    }
    let legend_top = y0 + 38.0 + tick_px + label_px;
    let h = (legend_top + row * (label_px + 8.0) + label_px + 4.0).max(next_free + 4.0);
    let bar_w = (plot_w * DAY_S as f64 / span * 0.7).clamp(2.0, 12.0);
    let title_id = format!("{}-title", ch.id);
    let desc_id = format!("{}-desc", ch.id);
    html! {
        svg id=(ch.id) class="pk-chart time-chart" viewBox=(format!("0 0 {w} {}", c(h))) role="img" aria-labelledby=(format!("{title_id} {desc_id}")) {
            title id=(title_id) { (ch.title) }
            desc id=(desc_id) { (ch.desc) }
            g.axes {
                @for t in &yticks {
                    line.grid x1=(c(x0)) y1=(c(y(*t))) x2=(c(x1)) y2=(c(y(*t))) stroke="#dfe5eb" stroke-width="0.6" {}
                    line x1=(c(x0 - 5.0)) y1=(c(y(*t))) x2=(c(x0)) y2=(c(y(*t))) stroke="#52606d" {}
                    text.tick x=(c(x0 - 8.0)) y=(c(y(*t) + 4.0)) text-anchor="end" font-size=(number(tick_px, 1)) { (number(*t, 2)) }
                }
                @for t in &xticks {
                    line x1=(c(x(*t))) y1=(c(y0)) x2=(c(x(*t))) y2=(c(y0 + 5.0)) stroke="#52606d" {}
                    text.tick x=(c(x(*t))) y=(c(y0 + 8.0 + tick_px)) text-anchor="middle" font-size=(number(tick_px, 1)) { (date_text(*t)) }
                }
                line x1=(c(x0)) y1=(c(y0)) x2=(c(x1)) y2=(c(y0)) stroke="#52606d" {}
                line x1=(c(x0)) y1=(c(top)) x2=(c(x0)) y2=(c(y0)) stroke="#52606d" {}
                text.axis-label x=(c(x0 + plot_w / 2.0)) y=(c(y0 + 16.0 + tick_px + label_px)) text-anchor="middle" font-size=(number(label_px, 1)) { "Date (UTC)" }
                text.axis-label x="16" y=(c(top + plot_h / 2.0)) text-anchor="middle" font-size=(number(label_px, 1)) transform=(format!("rotate(-90 16 {})", c(top + plot_h / 2.0))) { (ch.y_label) }
            }
            g.ref-lines {
                @for (ly, ty, lines, i) in &refs {
                    g.ref-line data-ref=(ch.refs[*i].label) data-value=(number(ch.refs[*i].value, 3)) {
                        line x1=(c(x0)) y1=(c(*ly)) x2=(c(x1 + 4.0)) y2=(c(*ly)) stroke="#b42318" stroke-width="1.2" stroke-dasharray="6 4" {}
                        text.ref-label x=(c(x1 + 8.0)) y=(c(*ty)) font-size=(number(ref_px, 1)) fill="#8a1c00" {
                            @for (k, line) in lines.iter().enumerate() {
                                tspan x=(c(x1 + 8.0)) dy=(if k == 0 { "0".to_owned() } else { number(ref_px + 1.0, 1) }) { (line) }
                            }
                        }
                    }
                }
            }
            @for (i, s) in ch.series.iter().enumerate() {
                @let (colour, dash) = series_style(i, s.kind);
                @let pts: Vec<&(i64, f64, String)> = s.points.iter().filter(|p| p.1.is_finite()).collect();
                g.series data-series=(s.label) {
                    @match s.kind {
                        TimeKind::Bars => {
                            @for p in &pts {
                                rect.bar x=(c(x(p.0) - bar_w / 2.0)) y=(c(y(p.1))) width=(c(bar_w)) height=(c((y0 - y(p.1)).max(0.0))) fill=(colour) fill-opacity="0.55" data-value=(number(p.1, 3)) { title { (p.2) } }
                            }
                        }
                        TimeKind::Line | TimeKind::Step => {
                            @let d = if s.kind == TimeKind::Step { step_path(&pts, &x, &y) } else { pts.iter().enumerate().map(|(k, p)| format!("{}{},{}", if k == 0 { "M" } else { " L" }, c(x(p.0)), c(y(p.1)))).collect::<String>() };
                            @if pts.len() > 1 {
                                path d=(d) fill="none" stroke=(colour) stroke-width="2.2" stroke-linejoin="round" stroke-dasharray=[dash] {}
                            }
                            @for p in &pts {
                                circle cx=(c(x(p.0))) cy=(c(y(p.1))) r=(if s.kind == TimeKind::Step { "2.5" } else { "4" }) fill=(colour) stroke="#ffffff" stroke-width="1.2" data-value=(number(p.1, 3)) { title { (p.2) } }
                            }
                        }
                    }
                    @for (_, lx, ly, anchor, text) in last_labels.iter().filter(|l| l.0 == i) {
                        text.point-label data-last=(s.label) x=(c(*lx)) y=(c(*ly)) text-anchor=(anchor) font-size=(number(tick_px, 1)) fill=(colour) { (text) }
                    }
                }
            }
            g.legend {
                @for (lx, row, i) in &legend {
                    @let ly = legend_top + row * (label_px + 8.0);
                    @let s = &ch.series[*i];
                    @let (colour, dash) = series_style(*i, s.kind);
                    @if s.kind == TimeKind::Bars {
                        rect x=(c(*lx + 8.0)) y=(c(ly - 6.0)) width="12" height="12" fill=(colour) fill-opacity="0.55" {}
                    } @else {
                        line x1=(c(*lx)) y1=(c(ly)) x2=(c(lx + 28.0)) y2=(c(ly)) stroke=(colour) stroke-width="2.5" stroke-dasharray=[dash] {}
                    }
                    text data-legend=(s.label) x=(c(lx + 34.0)) y=(c(ly + 4.0)) font-size=(number(label_px, 1)) { (s.label) }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_rounded_and_never_nan() {
        assert_eq!(conc(239.6), "240");
        assert_eq!(conc(-0.2), "0");
        assert_eq!(conc(f64::NAN), "—");
        assert_eq!(minutes(40.0), "40");
        assert_eq!(minutes(23.44), "23.4");
        assert_eq!(minutes(f64::INFINITY), "—");
        assert_eq!(auc(1234.4), "1234");
        assert_eq!(auc(12.34), "12.3");
        assert_eq!(peak_text(240.2, 40.0, "ng/mL"), "Cmax 240 ng/mL at 40 min");
    }

    #[test]
    fn steps_and_ticks_are_round() {
        assert!((nice_step(47.0) - 50.0).abs() < 1e-9);
        assert!((nice_step(0.0) - 1.0).abs() < 1e-9);
        assert_eq!(ticks(0.0, 300.0, 100.0).len(), 4);
        assert!(ticks(0.0, f64::NAN, 1.0).is_empty());
        let (top, step) = axis_top(241.0, 5.0);
        assert!(top >= 241.0 && step > 0.0);
    }

    #[test]
    fn a_chart_with_junk_values_draws_no_nan() {
        let t = [0.0, 1.0, 2.0];
        let v = [0.0, f64::NAN, f64::INFINITY];
        let ch = LineChart {
            id: "x",
            title: "t".into(),
            desc: "d".into(),
            y_label: "y",
            x_label: "x",
            unit: "ng/mL",
            x_max: f64::NAN,
            curves: vec![Curve { label: "a", times: &t, values: &v, band: Some((&v, &v)), peak: Some((f64::NAN, 1.0)) }],
            backgrounds: vec![Background { low: 0.0, high: None, label: "all" }],
            band_legend: "band",
            compact: true,
        };
        let s = line_chart(&ch).into_string();
        assert!(!s.contains("NaN") && !s.contains("inf"), "{s}");
        let sc = scatter(&Scatter {
            id: "s",
            title: "t".into(),
            desc: "d".into(),
            x_label: "x",
            left_label: "l",
            right_label: "r",
            left_range: (0.0, 100.0),
            left: vec![Point { x: f64::NAN, y: 1.0, label: "a".into() }],
            right: vec![],
        })
        .into_string();
        assert!(!sc.contains("NaN") && !sc.contains("inf"));
    }

    #[test]
    fn long_labels_wrap_at_spaces() {
        assert_eq!(
            wrap("typical of the 0.5 mg/kg antidepressant infusion", 20),
            vec!["typical of the 0.5", "mg/kg antidepressant", "infusion"]
        );
    }

    #[test]
    fn a_time_chart_draws_bars_lines_and_reference_lines_without_nan() {
        let day = 86_400;
        let ch = TimeChart {
            id: "t",
            title: "t".into(),
            desc: "d".into(),
            y_label: "mg",
            series: vec![
                TimeSeries {
                    label: "dose",
                    kind: TimeKind::Bars,
                    points: vec![(0, 70.0, "a".into()), (7 * day, f64::NAN, "b".into())],
                    last_label: None,
                },
                TimeSeries {
                    label: "28 days",
                    kind: TimeKind::Line,
                    points: vec![(0, 70.0, "a".into()), (7 * day, 140.0, "b".into())],
                    last_label: Some("140 mg".into()),
                },
            ],
            refs: vec![RefLine { value: 200.0, label: "soft limit" }, RefLine { value: f64::INFINITY, label: "never" }],
            y_at_least: 0.0,
            y_top: None,
        };
        let s = time_chart(&ch).into_string();
        assert!(!s.contains("NaN") && !s.contains("inf"), "{s}");
        assert_eq!(s.matches("rect class=\"bar\"").count(), 1, "the junk bar is not drawn");
        assert!(s.contains("data-ref=\"soft limit\"") && !s.contains("data-ref=\"never\""));
        assert!(s.contains("1970-01-01"), "date ticks");
        let empty = time_chart(&TimeChart {
            id: "e",
            title: "".into(),
            desc: "".into(),
            y_label: "",
            series: vec![],
            refs: vec![],
            y_at_least: 1.0,
            y_top: Some(20.0),
        })
        .into_string();
        assert!(!empty.contains("NaN"));
        assert!(empty.contains(">20</text>"), "the fixed top of the axis: {empty}");
    }
}
