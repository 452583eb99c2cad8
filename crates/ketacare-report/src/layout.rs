//! Flowing layout: blocks placed top to bottom inside the margins, a new page when the next
//! block does not fit, and a running header and footer (with "Page n of m") drawn on every
//! page once the page count is known.

use crate::canvas::{Align, Area, Canvas, Color, Document, Metadata, PageSetup, Stroke, TextStyle};
use crate::text::{wrap, Font};

/// What every page carries above and below the body.
#[derive(Clone, Debug, Default)]
pub struct Running {
    /// Left part of the header (e.g. the report's title and the patient).
    pub header_left: String,
    /// Right part of the header (e.g. the clinic).
    pub header_right: String,
    /// Footer line(s) (e.g. the disclaimer), left-aligned; the page number goes right.
    pub footer: String,
}

/// Places blocks on pages, top to bottom.
pub struct Flow {
    doc: Document,
    running: Running,
    y: f32,
}

/// Body text size.
pub const BODY: f32 = 9.5;
/// Small text size (captions, tables, footers).
pub const SMALL: f32 = 8.0;

impl Flow {
    /// Starts the first page.
    pub fn new(setup: PageSetup, running: Running) -> Self {
        let mut doc = Document::new(setup);
        doc.add_page();
        Self { doc, running, y: setup.margin_top }
    }

    /// The body area of the pages.
    pub fn body(&self) -> Area {
        self.doc.setup().body()
    }

    /// Width available to blocks.
    pub fn width(&self) -> f32 {
        self.body().w
    }

    /// The current vertical position (top of the next block).
    pub fn y(&self) -> f32 {
        self.y
    }

    /// Moves the position (blocks drawn by hand).
    pub fn set_y(&mut self, y: f32) {
        self.y = y.clamp(self.body().y, self.body().bottom());
    }

    /// Height left on this page.
    pub fn room(&self) -> f32 {
        self.body().bottom() - self.y
    }

    /// Starts a new page.
    pub fn new_page(&mut self) {
        self.doc.add_page();
        self.y = self.doc.setup().margin_top;
    }

    /// Makes sure `h` points fit on this page (else starts a new one). Returns whether a page
    /// was started.
    pub fn ensure(&mut self, h: f32) -> bool {
        if h > self.room() && self.y > self.body().y + 0.5 {
            self.new_page();
            return true;
        }
        false
    }

    /// Vertical space (dropped at the top of a page).
    pub fn space(&mut self, h: f32) {
        if self.y > self.body().y + 0.5 {
            self.y = (self.y + h).min(self.body().bottom());
        }
    }

    /// The page being drawn (always the last one).
    pub fn canvas(&mut self) -> &mut Canvas {
        self.doc.last_page()
    }

    /// Reserves `h` points of full width (on this page or the next) and draws into them.
    pub fn block(&mut self, h: f32, draw: impl FnOnce(&mut Canvas, Area)) {
        self.ensure(h);
        let a = Area { x: self.body().x, y: self.y, w: self.width(), h };
        draw(self.canvas(), a);
        self.y += h;
    }

    /// A heading: level 1 (the title), 2 (a section, with a rule) or 3 (a subsection). Kept
    /// with at least `keep` points of what follows.
    pub fn heading(&mut self, text: &str, level: u8, keep: f32) {
        let (size, before, rule) = match level {
            1 => (17.0, 0.0, false),
            2 => (12.5, 12.0, true),
            _ => (10.5, 8.0, false),
        };
        self.space(before);
        let style = TextStyle::bold(size);
        let h = style.leading() + if rule { 4.0 } else { 0.0 };
        self.ensure(h + keep);
        let (x, w) = (self.body().x, self.width());
        let y = self.y + size;
        self.canvas().text(x, y, text, style, Align::Left);
        if rule {
            self.canvas().line(&[(x, y + 4.0), (x + w, y + 4.0)], Stroke::solid(0.6, Color::GREY));
        }
        self.y += h + 2.0;
    }

    /// A paragraph, wrapped to the width, split across pages where needed.
    pub fn paragraph(&mut self, text: &str, style: TextStyle) {
        self.paragraph_indented(text, style, 0.0);
    }

    /// A paragraph starting `indent` points in.
    pub fn paragraph_indented(&mut self, text: &str, style: TextStyle, indent: f32) {
        let x = self.body().x + indent;
        for line in wrap(text, style.font, style.size, self.width() - indent) {
            self.ensure(style.leading());
            let y = self.y + style.size;
            self.canvas().text(x, y, &line, style, Align::Left);
            self.y += style.leading();
        }
    }

    /// A list of items with a bullet.
    pub fn bullets(&mut self, items: &[String], style: TextStyle) {
        for item in items {
            let lines = wrap(item, style.font, style.size, self.width() - 12.0);
            for (i, line) in lines.iter().enumerate() {
                self.ensure(style.leading());
                let y = self.y + style.size;
                let x = self.body().x;
                if i == 0 {
                    self.canvas().text(x + 2.0, y, "•", style, Align::Left);
                }
                self.canvas().text(x + 12.0, y, line, style, Align::Left);
                self.y += style.leading();
            }
        }
    }

    /// Label–value pairs in two columns (labels bold), values wrapped.
    pub fn key_values(&mut self, pairs: &[(String, String)], label_width: f32) {
        let style = TextStyle::regular(BODY);
        let bold = TextStyle::bold(BODY);
        for (k, v) in pairs {
            let lines = wrap(v, style.font, style.size, self.width() - label_width);
            self.ensure(style.leading() * lines.len().max(1) as f32);
            let x = self.body().x;
            let y = self.y + style.size;
            self.canvas().text(x, y, k, bold, Align::Left);
            for (i, line) in lines.iter().enumerate() {
                let yy = y + style.leading() * i as f32;
                self.canvas().text(x + label_width, yy, line, style, Align::Left);
            }
            self.y += style.leading() * lines.len().max(1) as f32;
        }
    }

    /// Draws the running header and footer on every page and writes the PDF.
    pub fn finish(mut self, meta: &Metadata) -> Vec<u8> {
        let n = self.doc.page_count();
        let setup = *self.doc.setup();
        let small = TextStyle { font: Font::Regular, size: SMALL, color: Color::DARK };
        let body = setup.body();
        for i in 0..n {
            let Some(c) = self.doc.page(i) else { continue };
            let top = setup.margin_top - 18.0;
            c.text(body.x, top, &self.running.header_left, small, Align::Left);
            c.text(body.right(), top, &self.running.header_right, small, Align::Right);
            c.line(&[(body.x, top + 4.0), (body.right(), top + 4.0)], Stroke::solid(0.4, Color::GREY));
            let bottom = setup.height - setup.margin_bottom + 22.0;
            c.line(&[(body.x, bottom - 10.0), (body.right(), bottom - 10.0)], Stroke::solid(0.4, Color::GREY));
            let page = format!("Page {} of {n}", i + 1);
            let room = body.w - crate::text::width(&page, Font::Regular, SMALL) - 12.0;
            for (k, line) in wrap(&self.running.footer, Font::Bold, SMALL, room).iter().enumerate() {
                c.text(body.x, bottom + SMALL * 1.25 * k as f32, line, TextStyle { font: Font::Bold, ..small }, Align::Left);
            }
            c.text(body.right(), bottom, &page, small, Align::Right);
        }
        self.doc.to_pdf(meta)
    }
}
