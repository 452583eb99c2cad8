//! Text for the standard PDF fonts: the WinAnsi encoding (what Helvetica shows without an
//! embedded font) and Helvetica's published glyph widths (Adobe's Core 14 AFM files), so text
//! can be measured, wrapped and aligned without a font file.

/// A font of the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Font {
    /// Helvetica.
    Regular,
    /// Helvetica-Bold.
    Bold,
    /// Helvetica-Oblique (the widths of Helvetica).
    Italic,
}

impl Font {
    /// The PDF base font name.
    pub(crate) fn base_name(self) -> &'static [u8] {
        match self {
            Font::Regular => b"Helvetica",
            Font::Bold => b"Helvetica-Bold",
            Font::Italic => b"Helvetica-Oblique",
        }
    }
    /// The resource name used in content streams.
    pub(crate) fn resource(self) -> &'static [u8] {
        match self {
            Font::Regular => b"F1",
            Font::Bold => b"F2",
            Font::Italic => b"F3",
        }
    }
    /// Every font, in resource order.
    pub(crate) const ALL: [Font; 3] = [Font::Regular, Font::Bold, Font::Italic];
}

/// Widths of characters 32 to 126 in Helvetica, per 1000 units of the font size.
const REGULAR: [u16; 95] = [
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278, 556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 278,
    278, 584, 584, 584, 556, 1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778, 667, 778, 722, 667, 611, 722,
    667, 944, 667, 667, 611, 278, 278, 278, 469, 556, 333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556, 556,
    556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584,
];

/// Widths of characters 32 to 126 in Helvetica-Bold.
const BOLD: [u16; 95] = [
    278, 333, 474, 556, 556, 889, 722, 238, 333, 333, 389, 584, 278, 333, 278, 278, 556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 333,
    333, 584, 584, 584, 611, 975, 722, 722, 722, 722, 667, 611, 778, 722, 278, 556, 722, 611, 833, 722, 778, 667, 778, 722, 667, 611, 722,
    667, 944, 667, 667, 611, 333, 278, 333, 584, 556, 333, 556, 611, 556, 611, 556, 333, 611, 611, 278, 278, 556, 278, 889, 611, 611, 611,
    611, 389, 556, 333, 611, 556, 778, 556, 556, 500, 389, 280, 389, 584,
];

/// Characters outside WinAnsi written as their nearest ASCII form.
fn replacement(c: char) -> Option<&'static str> {
    Some(match c {
        '≥' => ">=",
        '≤' => "<=",
        '→' => "->",
        '←' => "<-",
        '−' => "-",
        '\u{2009}' | '\u{202F}' | '\u{00A0}' => " ",
        _ => return None,
    })
}

/// The WinAnsi byte of a character, if it has one.
fn win_ansi(c: char) -> Option<u8> {
    let code = u32::from(c);
    if (0x20..=0x7E).contains(&code) || (0xA1..=0xFF).contains(&code) {
        return u8::try_from(code).ok();
    }
    Some(match c {
        '€' => 0x80,
        '‚' => 0x82,
        '„' => 0x84,
        '…' => 0x85,
        '†' => 0x86,
        '‡' => 0x87,
        '‰' => 0x89,
        'Š' => 0x8A,
        '‹' => 0x8B,
        'Œ' => 0x8C,
        'Ž' => 0x8E,
        '‘' => 0x91,
        '’' => 0x92,
        '“' => 0x93,
        '”' => 0x94,
        '•' => 0x95,
        '–' => 0x96,
        '—' => 0x97,
        '™' => 0x99,
        'š' => 0x9A,
        '›' => 0x9B,
        'œ' => 0x9C,
        'ž' => 0x9E,
        'Ÿ' => 0x9F,
        _ => return None,
    })
}

/// Encodes text for the standard fonts: WinAnsi bytes, with common symbols spelled out and
/// anything else shown as `?` (control characters are dropped).
pub fn encode(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            continue;
        }
        if let Some(r) = replacement(c) {
            out.extend_from_slice(r.as_bytes());
        } else {
            out.push(win_ansi(c).unwrap_or(b'?'));
        }
    }
    out
}

/// Width of one encoded byte, per 1000 units.
fn byte_width(b: u8, font: Font) -> u16 {
    let table = if font == Font::Bold { &BOLD } else { &REGULAR };
    match b {
        0x20..=0x7E => table[usize::from(b - 0x20)],
        0x85 => 1000,
        0x95 => 350,
        0x96 => 556,
        0x97 => 1000,
        0x91 | 0x92 => 222,
        0x93 | 0x94 => 333,
        0xB0 => 400,
        0xB1 | 0xD7 | 0xF7 => 584,
        0xB2 | 0xB3 | 0xB9 => 333,
        0xC6 => 1000,
        0xE6 => 889,
        0xDF => 611,
        // Accented letters are as wide as their base letter in Helvetica; 556 is the width of
        // most lower-case letters and digits.
        0xC0..=0xC5 => table[usize::from(b'A' - 0x20)],
        0xC8..=0xCB => table[usize::from(b'E' - 0x20)],
        0xCC..=0xCF => table[usize::from(b'I' - 0x20)],
        0xD2..=0xD6 | 0xD8 => table[usize::from(b'O' - 0x20)],
        0xD9..=0xDC => table[usize::from(b'U' - 0x20)],
        0xE0..=0xE5 => table[usize::from(b'a' - 0x20)],
        0xE8..=0xEB => table[usize::from(b'e' - 0x20)],
        0xEC..=0xEF => table[usize::from(b'i' - 0x20)],
        0xF2..=0xF6 | 0xF8 => table[usize::from(b'o' - 0x20)],
        0xF9..=0xFC => table[usize::from(b'u' - 0x20)],
        _ => 556,
    }
}

/// Width of `text` in points at `size`.
pub fn width(text: &str, font: Font, size: f32) -> f32 {
    let units: u32 = encode(text).iter().map(|b| u32::from(byte_width(*b, font))).sum();
    units as f32 * size / 1000.0
}

/// Breaks `text` into lines no wider than `max` points (words longer than a line are cut).
/// Explicit line breaks are kept.
pub fn wrap(text: &str, font: Font, size: f32, max: f32) -> Vec<String> {
    let mut lines = Vec::new();
    for para in text.split('\n') {
        let mut line = String::new();
        for word in para.split_whitespace() {
            let candidate = if line.is_empty() { word.to_owned() } else { format!("{line} {word}") };
            if width(&candidate, font, size) <= max {
                line = candidate;
                continue;
            }
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            // A word wider than the line is cut where it must be.
            let mut piece = String::new();
            for c in word.chars() {
                piece.push(c);
                if width(&piece, font, size) > max && piece.chars().count() > 1 {
                    piece.pop();
                    lines.push(std::mem::take(&mut piece));
                    piece.push(c);
                }
            }
            line = piece;
        }
        lines.push(line);
    }
    lines
}

/// Shortens `text` with an ellipsis to fit `max` points.
pub fn fit(text: &str, font: Font, size: f32, max: f32) -> String {
    if width(text, font, size) <= max {
        return text.to_owned();
    }
    let mut s: String = text.to_owned();
    while !s.is_empty() && width(&format!("{s}…"), font, size) > max {
        s.pop();
    }
    format!("{}…", s.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_encoded_for_the_standard_fonts() {
        assert_eq!(encode("Fernández"), b"Fern\xE1ndez".to_vec());
        assert_eq!(encode("≥ 50 % – ok"), b">= 50 % \x96 ok".to_vec());
        assert_eq!(encode("漢\tx"), b"?x".to_vec());
    }

    #[test]
    fn widths_follow_the_font_metrics() {
        // "Hello" in Helvetica: 722 + 556 + 222 + 222 + 556 = 2278 units.
        assert!((width("Hello", Font::Regular, 10.0) - 22.78).abs() < 1e-4);
        assert!(width("Hello", Font::Bold, 10.0) > width("Hello", Font::Regular, 10.0));
        assert!((width("é", Font::Regular, 10.0) - width("e", Font::Regular, 10.0)).abs() < 1e-6);
    }

    #[test]
    fn text_wraps_within_the_width_and_keeps_every_word() {
        let t = "decision support; not a substitute for clinical judgement";
        let lines = wrap(t, Font::Regular, 10.0, 90.0);
        assert!(lines.len() > 1);
        assert!(lines.iter().all(|l| width(l, Font::Regular, 10.0) <= 90.0));
        assert_eq!(lines.join(" "), t);
        let long = wrap("Supercalifragilisticexpialidocious", Font::Regular, 10.0, 40.0);
        assert!(long.len() > 1 && long.iter().all(|l| width(l, Font::Regular, 10.0) <= 40.0));
        assert_eq!(wrap("a\nb", Font::Regular, 10.0, 100.0), vec!["a", "b"]);
        assert!(fit("A rather long label", Font::Regular, 10.0, 40.0).ends_with('…'));
    }
}
