//! A clinic's licensed item wording for a rating instrument.
//!
//! Ketacare ships short item labels only: the wording of licensed instruments (HAM-A
//! interview guides, LSAS, Q-LES-Q-SF, C-SSRS, ...) belongs to its holders. A clinic that holds
//! a licence loads its wording; forms (the staff form and the patient's link) then show that
//! wording in place of the labels. The wording must match the instrument exactly: one text
//! for every item, and, where given, one answer label for every accepted answer. It changes
//! nothing in scoring: answers are still whole numbers in published order.

use crate::instrument::{AnswerKind, Instrument};
use crate::validation::FieldErrors;

/// Longest item text or answer label accepted, in characters.
pub const MAX_TEXT_CHARS: usize = 1000;
/// Longest instructions or licence notice accepted, in characters.
pub const MAX_NOTE_CHARS: usize = 4000;

/// The wording of one item, as typed in the wording file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ItemWordingInput {
    /// Item key (e.g. `q1`), as in the instrument definition.
    pub key: String,
    /// The licensed text of the item.
    pub text: String,
    /// Labels of the accepted answers, lowest first (optional).
    pub choice_labels: Option<Vec<String>>,
}

/// A wording file before it is checked against the instrument.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WordingInput {
    /// Instrument key the file is for.
    pub instrument: String,
    /// Language tag, e.g. `en-GB`.
    pub language: String,
    /// Who holds the rights, shown under the form (e.g. "© 1987 M. R. Liebowitz; used under licence").
    pub notice: String,
    /// The clinic's licence reference (agreement number, date), shown to staff.
    pub licence_reference: Option<String>,
    /// Instructions shown above the items.
    pub instructions: Option<String>,
    /// Answer labels for every item that gives none of its own.
    pub choice_labels: Option<Vec<String>>,
    /// One entry per item.
    pub items: Vec<ItemWordingInput>,
}

/// Checked wording of one item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemWording {
    /// Item key.
    pub key: String,
    /// Text.
    pub text: String,
    /// Answer labels aligned with the item's choices (empty: keep the definition's labels).
    pub choice_labels: Vec<String>,
}

/// Wording checked against an instrument: complete and consistent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wording {
    /// Instrument key.
    pub instrument: String,
    /// Language tag.
    pub language: String,
    /// Rights notice shown under the form.
    pub notice: String,
    /// Licence reference (staff only).
    pub licence_reference: Option<String>,
    /// Instructions.
    pub instructions: Option<String>,
    /// Items in published order.
    pub items: Vec<ItemWording>,
}

fn text_ok(field: &str, what: &str, s: &str, max: usize, e: &mut FieldErrors) -> String {
    let t = s.trim();
    if t.is_empty() {
        e.add(field, format!("{what} must not be empty"));
    } else if t.chars().count() > max {
        e.add(field, format!("{what} must be at most {max} characters; it has {}", t.chars().count()));
    } else if t.chars().any(|c| c.is_control() && c != '\n') {
        e.add(field, format!("{what} must be plain text without control characters"));
    }
    t.to_owned()
}

impl Instrument {
    /// Checks a wording file against this instrument: the right instrument, one text for every
    /// item (no unknown or repeated keys), and answer labels that match each item's accepted
    /// answers in number. Every problem is reported, with the item and what is accepted.
    pub fn check_wording(&self, input: &WordingInput) -> Result<Wording, FieldErrors> {
        let mut e = FieldErrors::new();
        if input.instrument.trim() != self.key {
            e.add("instrument", format!("must be {:?} (this file is for {:?})", self.key, input.instrument.trim()));
        }
        let language = input.language.trim();
        let lang_ok = !language.is_empty()
            && language.len() <= 35
            && language.split('-').all(|p| !p.is_empty() && p.len() <= 8 && p.chars().all(|c| c.is_ascii_alphanumeric()));
        if !lang_ok {
            e.add("language", "must be a language tag such as en, en-GB or es-419");
        }
        let notice = text_ok("notice", "The rights notice", &input.notice, MAX_NOTE_CHARS, &mut e);
        let licence_reference = input
            .licence_reference
            .as_deref()
            .filter(|s| !s.trim().is_empty())
            .map(|s| text_ok("licence_reference", "The licence reference", s, MAX_TEXT_CHARS, &mut e));
        let instructions = input
            .instructions
            .as_deref()
            .filter(|s| !s.trim().is_empty())
            .map(|s| text_ok("instructions", "The instructions", s, MAX_NOTE_CHARS, &mut e));
        for (n, i) in input.items.iter().enumerate() {
            if self.item(i.key.trim()).is_none() {
                e.add(
                    &format!("items[{n}].key"),
                    format!("{:?} is not an item of {}; the items are {}", i.key.trim(), self.name, self.item_keys()),
                );
            }
            if input.items[..n].iter().any(|o| o.key.trim() == i.key.trim()) {
                e.add(&format!("items[{n}].key"), format!("{:?} is worded twice; give each item once", i.key.trim()));
            }
        }
        let mut items = Vec::with_capacity(self.items.len());
        for (n, def) in self.items.iter().enumerate() {
            let Some(w) = input.items.iter().find(|i| i.key.trim() == def.key) else {
                e.add(&def.key, format!("{} item {} ({}) has no text; every item needs one", self.name, n + 1, def.key));
                continue;
            };
            let text = text_ok(&def.key, &format!("The text of item {} ({})", n + 1, def.key), &w.text, MAX_TEXT_CHARS, &mut e);
            let labels = w.choice_labels.as_ref().or(input.choice_labels.as_ref());
            let choice_labels = match labels {
                None => Vec::new(),
                Some(l) => {
                    let expected = match def.kind {
                        AnswerKind::YesNo => 2,
                        AnswerKind::Number => def.choices().len(),
                    };
                    if def.kind == AnswerKind::Number && expected > 11 {
                        e.add(
                            &def.key,
                            format!(
                                "item {} ({}) is answered with a number ({}); it takes no answer labels",
                                n + 1,
                                def.key,
                                def.accepted()
                            ),
                        );
                    } else if l.len() != expected {
                        let accepted = if def.kind == AnswerKind::YesNo { "yes then no".to_owned() } else { def.accepted() };
                        e.add(
                            &def.key,
                            format!("item {} ({}) needs {expected} answer labels ({accepted}); got {}", n + 1, def.key, l.len()),
                        );
                    }
                    l.iter()
                        .map(|s| text_ok(&def.key, &format!("An answer label of item {} ({})", n + 1, def.key), s, MAX_TEXT_CHARS, &mut e))
                        .collect()
                }
            };
            items.push(ItemWording { key: def.key.clone(), text, choice_labels });
        }
        e.into_result()?;
        Ok(Wording { instrument: self.key.clone(), language: language.to_owned(), notice, licence_reference, instructions, items })
    }

    /// This instrument as the form shows it with the clinic's wording: item labels become the
    /// licensed texts and answer labels the licensed labels. Scoring is unchanged. Wording
    /// checked against another instrument or version is ignored (the labels stay).
    pub fn with_wording(&self, w: &Wording) -> Instrument {
        let mut out = self.clone();
        if w.instrument != self.key || w.items.len() != self.items.len() {
            return out;
        }
        for (item, iw) in out.items.iter_mut().zip(&w.items) {
            if item.key != iw.key {
                return self.clone();
            }
            item.label = iw.text.clone();
            if !iw.choice_labels.is_empty() {
                item.choice_labels = iw.choice_labels.clone();
            }
        }
        out
    }

    fn item_keys(&self) -> String {
        let keys: Vec<&str> = self.items.iter().map(|i| i.key.as_str()).collect();
        match keys.as_slice() {
            [] => String::new(),
            [only] => (*only).to_owned(),
            [first, .., last] if keys.len() > 6 => format!("{first} to {last}"),
            _ => keys.join(", "),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instrument::tests::three_item;

    fn input() -> WordingInput {
        WordingInput {
            instrument: "t3".into(),
            language: "en-GB".into(),
            notice: "© Holder; used under licence".into(),
            licence_reference: Some("Agreement 42".into()),
            instructions: Some("Answer every question.".into()),
            choice_labels: Some(vec!["Never".into(), "Sometimes".into(), "Often".into(), "Always".into()]),
            items: vec![
                ItemWordingInput { key: "a".into(), text: "Text A".into(), choice_labels: None },
                ItemWordingInput { key: "b".into(), text: "Text B".into(), choice_labels: None },
                ItemWordingInput {
                    key: "c".into(),
                    text: "Text C".into(),
                    choice_labels: Some(vec!["No".into(), "Some".into(), "Much".into()]),
                },
            ],
        }
    }

    #[test]
    fn complete_wording_is_accepted_and_replaces_labels_only() {
        let inst = three_item();
        let w = inst.check_wording(&input()).expect("valid");
        let worded = inst.with_wording(&w);
        assert_eq!(worded.items[0].label, "Text A");
        assert_eq!(worded.items[0].choice_label(3), Some("Always"));
        assert_eq!(worded.items[2].choice_label(2), Some("Some"));
        // Scoring is untouched.
        assert_eq!(worded.score(&[Some(1), Some(2), Some(3)], None), inst.score(&[Some(1), Some(2), Some(3)], None));
    }

    #[test]
    fn every_problem_is_named() {
        let inst = three_item();
        let mut i = input();
        i.instrument = "gad7".into();
        i.language = "english please".into();
        i.notice = " ".into();
        i.items.remove(1);
        i.items.push(ItemWordingInput { key: "zz".into(), text: "x".into(), choice_labels: None });
        i.items.push(ItemWordingInput { key: "a".into(), text: "again".into(), choice_labels: None });
        i.items[1].choice_labels = Some(vec!["only one".into()]);
        let e = inst.check_wording(&i).expect_err("invalid");
        let fields: Vec<&str> = e.iter().map(|x| x.field.as_str()).collect();
        for f in ["instrument", "language", "notice", "items[2].key", "items[3].key", "b", "c"] {
            assert!(fields.contains(&f), "{f} missing from {fields:?}");
        }
        let c = e.for_field("c").expect("c");
        assert!(c.contains("needs 3 answer labels") && c.contains("one of 0, 2, 3"), "{c}");
    }

    #[test]
    fn wording_for_another_version_is_ignored() {
        let inst = three_item();
        let mut w = inst.check_wording(&input()).expect("valid");
        w.items.pop();
        assert_eq!(inst.with_wording(&w), inst);
    }
}
