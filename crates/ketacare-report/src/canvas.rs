//! Pages and the document: drawing in points from the top-left corner of an A4 page (the PDF's
//! own origin is the bottom-left), written as a PDF 1.7 file with the standard Helvetica fonts
//! (nothing embedded, so every PDF reader shows them).

use crate::text::{encode, width, Font};
use chrono::{DateTime, Datelike, Timelike, Utc};
use pdf_writer::{Content, Date, Finish, Name, Pdf, Rect as PdfRect, Ref, Str, TextStr};

/// A4 portrait, in points.
pub const A4: (f32, f32) = (595.28, 841.89);

/// An RGB colour, each channel 0 to 1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Color(pub f32, pub f32, pub f32);

impl Color {
    /// Black.
    pub const BLACK: Color = Color(0.0, 0.0, 0.0);
    /// Dark grey for secondary text and axes.
    pub const DARK: Color = Color(0.25, 0.25, 0.25);
    /// Mid grey for rules and grid lines.
    pub const GREY: Color = Color(0.6, 0.6, 0.6);
    /// Light grey for shading.
    pub const LIGHT: Color = Color(0.9, 0.9, 0.9);
    /// A blue that stays distinct when printed in grey.
    pub const BLUE: Color = Color(0.05, 0.3, 0.65);
    /// A red for thresholds and warnings.
    pub const RED: Color = Color(0.7, 0.1, 0.1);
    /// A green for reached goals.
    pub const GREEN: Color = Color(0.1, 0.45, 0.2);
    /// An orange for doses.
    pub const ORANGE: Color = Color(0.8, 0.45, 0.0);

    /// A grey of the given lightness (0 black, 1 white).
    pub fn grey(level: f32) -> Color {
        let l = level.clamp(0.0, 1.0);
        Color(l, l, l)
    }
}

/// How a line is drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stroke {
    /// Width in points.
    pub width: f32,
    /// Colour.
    pub color: Color,
    /// Dash and gap lengths, or a solid line.
    pub dash: Option<(f32, f32)>,
}

impl Stroke {
    /// A solid line.
    pub fn solid(width: f32, color: Color) -> Self {
        Self { width, color, dash: None }
    }
    /// A dashed line.
    pub fn dashed(width: f32, color: Color, dash: f32, gap: f32) -> Self {
        Self { width, color, dash: Some((dash, gap)) }
    }
}

/// Horizontal alignment of text at its x position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    /// x is the left edge.
    Left,
    /// x is the centre.
    Center,
    /// x is the right edge.
    Right,
}

/// How text is set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TextStyle {
    /// Font.
    pub font: Font,
    /// Size in points.
    pub size: f32,
    /// Colour.
    pub color: Color,
}

impl TextStyle {
    /// Regular black text of `size`.
    pub fn regular(size: f32) -> Self {
        Self { font: Font::Regular, size, color: Color::BLACK }
    }
    /// Bold black text of `size`.
    pub fn bold(size: f32) -> Self {
        Self { font: Font::Bold, size, color: Color::BLACK }
    }
    /// The same style in another colour.
    pub fn colored(self, color: Color) -> Self {
        Self { color, ..self }
    }
    /// Line height: 1.25 times the size.
    pub fn leading(&self) -> f32 {
        self.size * 1.25
    }
}

/// A rectangle in page coordinates (top-left origin, y downwards).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Area {
    /// Left edge.
    pub x: f32,
    /// Top edge.
    pub y: f32,
    /// Width.
    pub w: f32,
    /// Height.
    pub h: f32,
}

impl Area {
    /// Right edge.
    pub fn right(&self) -> f32 {
        self.x + self.w
    }
    /// Bottom edge.
    pub fn bottom(&self) -> f32 {
        self.y + self.h
    }
}

/// Shapes of point markers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// A filled square.
    Square,
    /// A filled circle.
    Circle,
    /// A filled triangle pointing up.
    Triangle,
    /// A filled diamond.
    Diamond,
    /// No marker: the series is a line only (e.g. a Kaplan-Meier curve and its interval).
    None,
}

/// One page being drawn.
pub struct Canvas {
    content: Content,
    height: f32,
    width: f32,
}

impl Canvas {
    fn new(width: f32, height: f32) -> Self {
        Self { content: Content::new(), height, width }
    }

    /// Page width.
    pub fn width(&self) -> f32 {
        self.width
    }
    /// Page height.
    pub fn height(&self) -> f32 {
        self.height
    }

    fn flip(&self, y: f32) -> f32 {
        self.height - y
    }

    fn stroke_style(&mut self, s: Stroke) {
        self.content.set_line_width(s.width);
        self.content.set_stroke_rgb(s.color.0, s.color.1, s.color.2);
        match s.dash {
            Some((d, g)) => self.content.set_dash_pattern([d, g], 0.0),
            None => self.content.set_dash_pattern([], 0.0),
        };
    }

    /// Text with its baseline at `y`.
    pub fn text(&mut self, x: f32, y: f32, text: &str, style: TextStyle, align: Align) {
        let w = width(text, style.font, style.size);
        let x = match align {
            Align::Left => x,
            Align::Center => x - w / 2.0,
            Align::Right => x - w,
        };
        let y = self.flip(y);
        let bytes = encode(text);
        self.content.begin_text();
        self.content.set_fill_rgb(style.color.0, style.color.1, style.color.2);
        self.content.set_font(Name(style.font.resource()), style.size);
        self.content.set_text_matrix([1.0, 0.0, 0.0, 1.0, x, y]);
        self.content.show(Str(&bytes));
        self.content.end_text();
    }

    /// Text turned a quarter counter-clockwise, centred on (`x`, `y`) along its length (axis labels).
    pub fn text_up(&mut self, x: f32, y: f32, text: &str, style: TextStyle) {
        let w = width(text, style.font, style.size);
        let (px, py) = (x, self.flip(y) - w / 2.0);
        let bytes = encode(text);
        self.content.begin_text();
        self.content.set_fill_rgb(style.color.0, style.color.1, style.color.2);
        self.content.set_font(Name(style.font.resource()), style.size);
        self.content.set_text_matrix([0.0, 1.0, -1.0, 0.0, px, py]);
        self.content.show(Str(&bytes));
        self.content.end_text();
    }

    /// A polyline through `points` (page coordinates).
    pub fn line(&mut self, points: &[(f32, f32)], stroke: Stroke) {
        let Some((first, rest)) = points.split_first() else { return };
        self.content.save_state();
        self.stroke_style(stroke);
        self.content.move_to(first.0, self.flip(first.1));
        for p in rest {
            self.content.line_to(p.0, self.flip(p.1));
        }
        self.content.stroke();
        self.content.restore_state();
    }

    /// A filled rectangle.
    pub fn fill(&mut self, a: Area, color: Color) {
        self.content.save_state();
        self.content.set_fill_rgb(color.0, color.1, color.2);
        self.content.rect(a.x, self.flip(a.bottom()), a.w, a.h);
        self.content.fill_nonzero();
        self.content.restore_state();
    }

    /// A rectangle's outline.
    pub fn frame(&mut self, a: Area, stroke: Stroke) {
        self.content.save_state();
        self.stroke_style(stroke);
        self.content.rect(a.x, self.flip(a.bottom()), a.w, a.h);
        self.content.stroke();
        self.content.restore_state();
    }

    /// A filled marker of `size` points centred on (`x`, `y`).
    pub fn marker(&mut self, x: f32, y: f32, shape: Shape, size: f32, color: Color) {
        if shape == Shape::None {
            return;
        }
        let r = size / 2.0;
        let y = self.flip(y);
        self.content.save_state();
        self.content.set_fill_rgb(color.0, color.1, color.2);
        match shape {
            Shape::Square => {
                self.content.rect(x - r, y - r, size, size);
            }
            Shape::Circle => {
                // Four Bézier arcs (kappa = 0.5523).
                let k = 0.5523 * r;
                self.content.move_to(x + r, y);
                self.content.cubic_to(x + r, y + k, x + k, y + r, x, y + r);
                self.content.cubic_to(x - k, y + r, x - r, y + k, x - r, y);
                self.content.cubic_to(x - r, y - k, x - k, y - r, x, y - r);
                self.content.cubic_to(x + k, y - r, x + r, y - k, x + r, y);
                self.content.close_path();
            }
            Shape::Triangle => {
                self.content.move_to(x, y + r);
                self.content.line_to(x + r, y - r);
                self.content.line_to(x - r, y - r);
                self.content.close_path();
            }
            Shape::Diamond => {
                self.content.move_to(x, y + r);
                self.content.line_to(x + r, y);
                self.content.line_to(x, y - r);
                self.content.line_to(x - r, y);
                self.content.close_path();
            }
            Shape::None => {}
        }
        self.content.fill_nonzero();
        self.content.restore_state();
    }
}

/// Page size and margins, in points.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PageSetup {
    /// Page width.
    pub width: f32,
    /// Page height.
    pub height: f32,
    /// Left and right margins.
    pub margin_x: f32,
    /// Top margin (below it the running header).
    pub margin_top: f32,
    /// Bottom margin (below it the running footer).
    pub margin_bottom: f32,
}

impl Default for PageSetup {
    /// A4 with 20 mm side margins and room for a running header and footer.
    fn default() -> Self {
        Self { width: A4.0, height: A4.1, margin_x: 56.7, margin_top: 62.0, margin_bottom: 66.0 }
    }
}

impl PageSetup {
    /// The area inside the margins.
    pub fn body(&self) -> Area {
        Area {
            x: self.margin_x,
            y: self.margin_top,
            w: self.width - 2.0 * self.margin_x,
            h: self.height - self.margin_top - self.margin_bottom,
        }
    }
}

/// Metadata of the PDF file.
#[derive(Clone, Debug, Default)]
pub struct Metadata {
    /// Document title.
    pub title: String,
    /// Author (the clinic or clinician).
    pub author: String,
    /// Subject.
    pub subject: String,
    /// When it was made.
    pub created: Option<DateTime<Utc>>,
}

/// A document: its pages, drawn in any order, written out at the end.
pub struct Document {
    setup: PageSetup,
    pages: Vec<Canvas>,
}

impl Document {
    /// An empty document.
    pub fn new(setup: PageSetup) -> Self {
        Self { setup, pages: Vec::new() }
    }
    /// Page size and margins.
    pub fn setup(&self) -> &PageSetup {
        &self.setup
    }
    /// Adds a page and returns its number (from 0).
    pub fn add_page(&mut self) -> usize {
        self.pages.push(Canvas::new(self.setup.width, self.setup.height));
        self.pages.len() - 1
    }
    /// Number of pages.
    pub fn page_count(&self) -> usize {
        self.pages.len()
    }
    /// The last page (one is added if there is none).
    pub fn last_page(&mut self) -> &mut Canvas {
        if self.pages.is_empty() {
            self.add_page();
        }
        let last = self.pages.len() - 1;
        &mut self.pages[last]
    }
    /// A page to draw on.
    pub fn page(&mut self, i: usize) -> Option<&mut Canvas> {
        self.pages.get_mut(i)
    }

    /// The PDF file.
    pub fn to_pdf(self, meta: &Metadata) -> Vec<u8> {
        let mut pdf = Pdf::new();
        let catalog = Ref::new(1);
        let tree = Ref::new(2);
        let info = Ref::new(3);
        let font_ids: Vec<Ref> = (0..Font::ALL.len()).map(|i| Ref::new(4 + i32::try_from(i).unwrap_or(0))).collect();
        let first_page = 4 + i32::try_from(Font::ALL.len()).unwrap_or(3);
        let page_ids: Vec<(Ref, Ref)> = (0..self.pages.len())
            .map(|i| {
                let n = first_page + 2 * i32::try_from(i).unwrap_or(0);
                (Ref::new(n), Ref::new(n + 1))
            })
            .collect();
        pdf.catalog(catalog).pages(tree);
        pdf.pages(tree).kids(page_ids.iter().map(|(p, _)| *p)).count(i32::try_from(page_ids.len()).unwrap_or(0));
        {
            let mut d = pdf.document_info(info);
            d.title(TextStr(&meta.title));
            d.author(TextStr(&meta.author));
            d.subject(TextStr(&meta.subject));
            d.producer(TextStr("Ketacare"));
            if let Some(t) = meta.created {
                d.creation_date(pdf_date(t));
            }
            d.finish();
        }
        for (font, id) in Font::ALL.iter().zip(&font_ids) {
            pdf.type1_font(*id).base_font(Name(font.base_name())).encoding_predefined(Name(b"WinAnsiEncoding"));
        }
        for (canvas, (page_id, content_id)) in self.pages.into_iter().zip(&page_ids) {
            let mut page = pdf.page(*page_id);
            page.media_box(PdfRect::new(0.0, 0.0, canvas.width, canvas.height));
            page.parent(tree);
            page.contents(*content_id);
            {
                let mut res = page.resources();
                let mut fonts = res.fonts();
                for (font, id) in Font::ALL.iter().zip(&font_ids) {
                    fonts.pair(Name(font.resource()), *id);
                }
            }
            page.finish();
            pdf.stream(*content_id, &canvas.content.finish());
        }
        pdf.finish()
    }
}

fn pdf_date(t: DateTime<Utc>) -> Date {
    let b = |v: u32| u8::try_from(v).unwrap_or(0);
    Date::new(u16::try_from(t.year()).unwrap_or(2000))
        .month(b(t.month()))
        .day(b(t.day()))
        .hour(b(t.hour()))
        .minute(b(t.minute()))
        .second(b(t.second()))
        .utc_offset_hour(0)
}
