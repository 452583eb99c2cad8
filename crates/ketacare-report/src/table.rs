//! Tables: a header row (repeated on each page the table runs onto), cells wrapped to their
//! column, light rules between rows.

use crate::canvas::{Align, Color, Stroke, TextStyle};
use crate::layout::{Flow, SMALL};
use crate::text::{wrap, Font};

/// A column: its title, its share of the table's width and how its cells align.
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    /// Title in the header row.
    pub title: String,
    /// Relative width (the widths are shared out in proportion).
    pub weight: f32,
    /// Alignment of the cells.
    pub align: Align,
}

impl Column {
    /// A left-aligned column.
    pub fn left(title: &str, weight: f32) -> Self {
        Self { title: title.to_owned(), weight, align: Align::Left }
    }
    /// A right-aligned column (numbers).
    pub fn right(title: &str, weight: f32) -> Self {
        Self { title: title.to_owned(), weight, align: Align::Right }
    }
}

/// A table of text cells.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    /// Columns.
    pub columns: Vec<Column>,
    /// Rows; a row with fewer cells than columns is padded with blanks.
    pub rows: Vec<Vec<String>>,
    /// Text size.
    pub size: f32,
}

impl Table {
    /// A table with the small text size.
    pub fn new(columns: Vec<Column>) -> Self {
        Self { columns, rows: Vec::new(), size: SMALL }
    }
    /// Adds a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }
}

const PAD: f32 = 3.0;

fn widths(t: &Table, total: f32) -> Vec<f32> {
    let sum: f32 = t.columns.iter().map(|c| c.weight.max(0.01)).sum();
    t.columns.iter().map(|c| total * c.weight.max(0.01) / sum).collect()
}

fn draw_row(flow: &mut Flow, cells: &[Vec<String>], cols: &[Column], widths: &[f32], style: TextStyle) {
    let x0 = flow.body().x;
    let y0 = flow.y();
    let mut x = x0;
    for ((lines, col), w) in cells.iter().zip(cols).zip(widths) {
        for (i, line) in lines.iter().enumerate() {
            let y = y0 + PAD + style.size + style.leading() * i as f32;
            let tx = match col.align {
                Align::Left => x + PAD,
                Align::Center => x + w / 2.0,
                Align::Right => x + w - PAD,
            };
            flow.canvas().text(tx, y, line, style, col.align);
        }
        x += w;
    }
}

impl Flow {
    /// Draws a table at the current position.
    pub fn table(&mut self, t: &Table) {
        if t.columns.is_empty() {
            return;
        }
        let ws = widths(t, self.width());
        let body = TextStyle::regular(t.size);
        let head = TextStyle { font: Font::Bold, ..body };
        let wrap_row = |cells: &[String], style: TextStyle| -> Vec<Vec<String>> {
            ws.iter()
                .enumerate()
                .map(|(i, w)| wrap(cells.get(i).map(String::as_str).unwrap_or(""), style.font, style.size, (w - 2.0 * PAD).max(1.0)))
                .collect()
        };
        let height =
            |cells: &[Vec<String>], style: TextStyle| cells.iter().map(Vec::len).max().unwrap_or(1) as f32 * style.leading() + 2.0 * PAD;
        let header: Vec<Vec<String>> = wrap_row(&t.columns.iter().map(|c| c.title.clone()).collect::<Vec<_>>(), head);
        let header_h = height(&header, head);
        let first_h = t.rows.first().map(|r| height(&wrap_row(r, body), body)).unwrap_or(0.0);
        self.ensure(header_h + first_h);
        let draw_header = |flow: &mut Flow| {
            let (x, y, w) = (flow.body().x, flow.y(), flow.width());
            flow.canvas().fill(crate::canvas::Area { x, y, w, h: header_h }, Color::LIGHT);
            draw_row(flow, &header, &t.columns, &ws, head);
            let yb = flow.y() + header_h;
            flow.canvas().line(&[(x, yb), (x + w, yb)], Stroke::solid(0.6, Color::DARK));
            let y = flow.y() + header_h;
            flow.set_y(y);
        };
        draw_header(self);
        for r in &t.rows {
            let cells = wrap_row(r, body);
            let h = height(&cells, body);
            if self.ensure(h) {
                draw_header(self);
            }
            draw_row(self, &cells, &t.columns, &ws, body);
            let (x, w) = (self.body().x, self.width());
            let yb = self.y() + h;
            self.canvas().line(&[(x, yb), (x + w, yb)], Stroke::solid(0.3, Color::GREY));
            self.set_y(yb);
        }
        self.space(6.0);
    }
}
