//! Parsing of a clinic's licensed wording file (TOML) for one rating instrument.
//!
//! The format is documented in `docs/wording-format.md`, with a complete example for GAD-7
//! (`docs/examples/gad7-wording.toml`, a public-domain instrument). The file is checked
//! against the instrument by [`Instrument::check_wording`].

use ketacare_domain::instrument::Instrument;
use ketacare_domain::validation::FieldErrors;
use ketacare_domain::wording::{ItemWordingInput, Wording, WordingInput};
use serde::Deserialize;

/// Largest wording file accepted, in bytes.
pub const MAX_WORDING_BYTES: usize = 256 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    instrument: String,
    language: String,
    notice: String,
    licence_reference: Option<String>,
    instructions: Option<String>,
    choice_labels: Option<Vec<String>>,
    #[serde(default)]
    items: Vec<Item>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Item {
    key: String,
    text: String,
    choice_labels: Option<Vec<String>>,
}

/// Parses wording-file text into its unchecked form. Syntax and shape errors are reported
/// under the field `wording` with the line the parser stopped at.
pub fn parse_wording_input(text: &str) -> Result<WordingInput, FieldErrors> {
    if text.trim().is_empty() {
        return Err(FieldErrors::single("wording", "must be the text of a wording file (TOML); it is empty"));
    }
    if text.len() > MAX_WORDING_BYTES {
        return Err(FieldErrors::single(
            "wording",
            format!("must be at most {} KiB; it has {} KiB", MAX_WORDING_BYTES / 1024, text.len().div_ceil(1024)),
        ));
    }
    let f: File = toml::from_str(text).map_err(|e| {
        let at = e.span().map(|s| format!(" (line {})", text[..s.start.min(text.len())].matches('\n').count() + 1)).unwrap_or_default();
        FieldErrors::single("wording", format!("is not a valid wording file{at}: {}", e.message()))
    })?;
    Ok(WordingInput {
        instrument: f.instrument,
        language: f.language,
        notice: f.notice,
        licence_reference: f.licence_reference,
        instructions: f.instructions,
        choice_labels: f.choice_labels,
        items: f.items.into_iter().map(|i| ItemWordingInput { key: i.key, text: i.text, choice_labels: i.choice_labels }).collect(),
    })
}

/// Parses a wording file and checks it against `instrument`: every problem is reported.
pub fn parse_wording(text: &str, instrument: &Instrument) -> Result<Wording, FieldErrors> {
    instrument.check_wording(&parse_wording_input(text)?)
}

/// The GAD-7 example wording shipped with the documentation (public domain; no permission
/// is needed to reproduce it).
pub const GAD7_EXAMPLE: &str = include_str!("../../../docs/examples/gad7-wording.toml");

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Knowledge;

    #[test]
    fn the_gad7_example_loads_and_words_every_item() {
        let k = Knowledge::load().unwrap();
        let gad7 = k.instrument("gad7").unwrap();
        let w = parse_wording(GAD7_EXAMPLE, gad7).expect("the example is valid");
        assert_eq!(w.items.len(), 7);
        assert!(w.instructions.as_deref().unwrap_or("").contains("2 weeks"));
        let worded = gad7.with_wording(&w);
        assert_eq!(worded.items[6].label, "Feeling afraid, as if something awful might happen");
    }

    #[test]
    fn syntax_errors_name_the_line_and_unknown_keys_are_refused() {
        let k = Knowledge::load().unwrap();
        let gad7 = k.instrument("gad7").unwrap();
        let e = parse_wording("instrument = \"gad7\"\nlanguage = \"en\"\nnotice = \"x\"\ncolour = 1\n", gad7).unwrap_err();
        let m = e.for_field("wording").unwrap();
        assert!(m.contains("line 4") && m.contains("colour"), "{m}");
        let e = parse_wording("", gad7).unwrap_err();
        assert!(e.for_field("wording").unwrap().contains("empty"));
    }

    #[test]
    fn a_file_for_another_instrument_is_refused() {
        let k = Knowledge::load().unwrap();
        let phq9 = k.instrument("phq9").unwrap();
        let e = parse_wording(GAD7_EXAMPLE, phq9).unwrap_err();
        assert!(e.for_field("instrument").unwrap().contains("\"phq9\""));
        assert!(e.for_field("q8").is_some() && e.for_field("q9").is_some(), "{e:?}");
    }
}
