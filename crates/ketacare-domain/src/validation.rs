//! Field-level validation reports.
//!
//! Constructors that parse user input return [`FieldErrors`]: every problem found, each tied to
//! the name of the field the user typed into, with a message that says what is accepted.

use std::fmt;

/// One problem with one input field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Name of the input field, as the forms and the JSON API spell it.
    pub field: String,
    /// What is wrong and what is accepted, written for the person who typed it.
    pub message: String,
}

/// All problems found in one submission. Empty means valid.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldErrors(Vec<FieldError>);

impl FieldErrors {
    /// No errors yet.
    pub fn new() -> Self {
        Self(Vec::new())
    }

    /// A report with a single error.
    pub fn single(field: &str, message: impl Into<String>) -> Self {
        let mut e = Self::new();
        e.add(field, message);
        e
    }

    /// Adds a problem for `field`.
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0.push(FieldError { field: field.to_owned(), message: message.into() });
    }

    /// Runs a parser and records its error under `field`, returning the value if it parsed.
    pub fn check<T>(&mut self, field: &str, result: Result<T, String>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(msg) => {
                self.add(field, msg);
                None
            }
        }
    }

    /// Whether no problem was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The problems, in the order found.
    pub fn iter(&self) -> impl Iterator<Item = &FieldError> {
        self.0.iter()
    }

    /// The first message for a field, for rendering next to that input.
    pub fn for_field(&self, field: &str) -> Option<&str> {
        self.0.iter().find(|e| e.field == field).map(|e| e.message.as_str())
    }

    /// `Ok(())` if empty, otherwise `Err(self)`.
    pub fn into_result(self) -> Result<(), FieldErrors> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(self)
        }
    }

    /// Appends all problems of `other`, prefixing their field names.
    pub fn extend_prefixed(&mut self, prefix: &str, other: FieldErrors) {
        for e in other.0 {
            self.0.push(FieldError { field: format!("{prefix}{}", e.field), message: e.message });
        }
    }
}

impl fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|e| format!("{}: {}", e.field, e.message)).collect();
        f.write_str(&parts.join("; "))
    }
}

/// Trims `raw` and checks it is between `min` and `max` characters with no control characters.
pub fn bounded_text(raw: &str, min: usize, max: usize) -> Result<String, String> {
    let t = raw.trim();
    let n = t.chars().count();
    if n < min {
        return Err(if min == 1 { "is required".to_owned() } else { format!("must be at least {min} characters") });
    }
    if n > max {
        return Err(format!("must be at most {max} characters (got {n})"));
    }
    if t.chars().any(|c| c.is_control()) {
        return Err("must not contain control characters such as tabs or line breaks".to_owned());
    }
    Ok(t.to_owned())
}

/// Like [`bounded_text`] but blank input means "not given".
pub fn optional_text(raw: &str, max: usize) -> Result<Option<String>, String> {
    if raw.trim().is_empty() {
        Ok(None)
    } else {
        bounded_text(raw, 1, max).map(Some)
    }
}

/// Free text that may span several lines (notes); tabs and line breaks are allowed.
pub fn optional_note(raw: &str, max: usize) -> Result<Option<String>, String> {
    let t = raw.trim();
    if t.is_empty() {
        return Ok(None);
    }
    let n = t.chars().count();
    if n > max {
        return Err(format!("must be at most {max} characters (got {n})"));
    }
    if t.chars().any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t') {
        return Err("must not contain control characters".to_owned());
    }
    Ok(Some(t.to_owned()))
}
