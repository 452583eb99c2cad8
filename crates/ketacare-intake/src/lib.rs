//! Ketacare's documented JSON input formats, shared by the JSON API, the command-line
//! calculators and the fuzzer: the screening intake document ([`screening_doc`]) and the
//! number-or-text field ([`NumberOrText`]) every JSON form accepts. Pure: parsing and
//! conversion only, with errors that name the field and the accepted form.

pub mod screening_doc;

use serde::Deserialize;

/// A number given as JSON number or text.
#[derive(Clone, Deserialize)]
#[serde(untagged)]
pub enum NumberOrText {
    /// Number.
    Number(serde_json::Number),
    /// Text.
    Text(String),
}

impl utoipa::PartialSchema for NumberOrText {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, SchemaType, Type};
        OneOfBuilder::new()
            .item(ObjectBuilder::new().schema_type(SchemaType::new(Type::Number)))
            .item(ObjectBuilder::new().schema_type(SchemaType::new(Type::String)))
            .description(Some("A number, as a JSON number or as text (checked and converted by the server)"))
            .into()
    }
}

impl utoipa::ToSchema for NumberOrText {}

impl NumberOrText {
    /// The value as text (a JSON number as written).
    pub fn text(&self) -> String {
        match self {
            NumberOrText::Number(n) => n.to_string(),
            NumberOrText::Text(t) => t.clone(),
        }
    }
}
