//! Reading requests: JSON bodies and query parameters, with every wrong field named.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;

use crate::errors::{Result, SyncError};

/// Fields that hold scanner credentials: an error about them never quotes what was sent.
const SECRET_FIELDS: [&str; 4] = ["access_key", "secret_key", "username", "password"];
const TIME_FIELDS: [&str; 2] = ["from", "to"];
const TIME_FORMAT: &str = "must be an RFC 3339 time such as 2024-01-05T10:11:12Z";

/// The body as `T`; an empty body reads as `{}`. A field `T` does not know is refused
/// rather than ignored, so a misspelt option cannot pass unnoticed.
pub(super) fn body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    let bytes = if bytes.iter().all(u8::is_ascii_whitespace) { b"{}".as_slice() } else { bytes };
    // serde would read a struct from an array's positions: only an object names its fields.
    if bytes.iter().find(|byte| !byte.is_ascii_whitespace()) != Some(&b'{') {
        return Err(SyncError::invalid_field(
            "body",
            "must be a JSON object of the request's fields (see api/openapi.yaml), not an array or a single value",
        ));
    }
    let mut unknown = Vec::new();
    let mut note_unknown = |path: serde_ignored::Path<'_>| unknown.push(field_path(&path));
    let mut json = serde_json::Deserializer::from_slice(bytes);
    let parsed = serde_path_to_error::deserialize(serde_ignored::Deserializer::new(&mut json, &mut note_unknown));
    let value: T = parsed.map_err(field_error)?;
    json.end().map_err(|e| SyncError::invalid_field("body", format!("is not JSON: {}", without_position(&e))))?;
    match unknown.first() {
        Some(field) => {
            Err(SyncError::invalid_field(field.clone(), "is not a field of this request (see api/openapi.yaml)"))
        }
        None => Ok(value),
    }
}

/// A field's path as the other errors name it: `scope.tags[0].values`.
fn field_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", field_path(parent)),
        Path::Map { parent, key } => match field_path(parent) {
            parent if parent.is_empty() => key.clone(),
            parent => format!("{parent}.{key}"),
        },
        Path::Some { parent } | Path::NewtypeStruct { parent } | Path::NewtypeVariant { parent } => field_path(parent),
    }
}

/// serde_json ends its messages with the position, which means nothing to a caller.
fn without_position(error: &serde_json::Error) -> String {
    let text = error.to_string();
    text.split(" at line ").next().unwrap_or_default().to_string()
}

fn field_error(error: serde_path_to_error::Error<serde_json::Error>) -> SyncError {
    let path = error.path().to_string();
    let inner = error.into_inner();
    let text = without_position(&inner);
    if !inner.is_data() {
        return SyncError::invalid_field("body", format!("is not JSON: {text}"));
    }
    // A missing field is reported on the object that lacks it.
    if let Some(missing) = text.strip_prefix("missing field `").and_then(|rest| rest.strip_suffix('`')) {
        let field = if path == "." { missing.to_string() } else { format!("{path}.{missing}") };
        return SyncError::invalid_field(field, "is required");
    }
    if path == "." {
        return SyncError::invalid_field("body", "must be a JSON object (see api/openapi.yaml)");
    }
    let name = path.rsplit('.').next().unwrap_or_default();
    let reason = if SECRET_FIELDS.contains(&name) {
        "must be a non-empty string".to_string()
    } else if TIME_FIELDS.contains(&name) {
        TIME_FORMAT.to_string()
    } else {
        format!("is wrong: {text}")
    };
    SyncError::invalid_field(path, reason)
}

/// A word of the API's vocabulary (a mode, a status, a stage) as the type it names.
fn word<T: DeserializeOwned>(field: &str, text: &str) -> Result<T> {
    serde_json::from_value(serde_json::Value::String(text.to_string()))
        .map_err(|e| SyncError::invalid_field(field, format!("is wrong: {e}")))
}

/// A request's query parameters. A list may be given as `a,b` or by repeating the name.
pub(super) struct Query<'a> {
    pairs: &'a [(String, String)],
}

impl<'a> Query<'a> {
    pub(super) fn new(pairs: &'a [(String, String)]) -> Self {
        Query { pairs }
    }

    fn values(&self, name: &str) -> Vec<&'a str> {
        self.pairs
            .iter()
            .filter(|(key, _)| key == name)
            .flat_map(|(_, value)| value.split(','))
            .map(str::trim)
            .filter(|value| !value.is_empty())
            .collect()
    }

    pub(super) fn text(&self, name: &str) -> Result<Option<&'a str>> {
        match self.values(name).as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(one)),
            _ => Err(SyncError::invalid_field(name, "takes one value")),
        }
    }

    pub(super) fn list<T: DeserializeOwned>(&self, name: &str) -> Result<Vec<T>> {
        self.values(name).into_iter().map(|value| word(name, value)).collect()
    }

    pub(super) fn one<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>> {
        self.text(name)?.map(|value| word(name, value)).transpose()
    }

    pub(super) fn time(&self, name: &str) -> Result<Option<DateTime<Utc>>> {
        self.text(name)?
            .map(|value| {
                DateTime::parse_from_rfc3339(value)
                    .map(|at| at.with_timezone(&Utc))
                    .map_err(|_| SyncError::invalid_field(name, TIME_FORMAT))
            })
            .transpose()
    }

    pub(super) fn number(&self, name: &str, allowed: std::ops::RangeInclusive<usize>) -> Result<Option<usize>> {
        self.text(name)?
            .map(|value| {
                value.parse().ok().filter(|number| allowed.contains(number)).ok_or_else(|| {
                    SyncError::invalid_field(
                        name,
                        format!("must be a whole number from {} to {}", allowed.start(), allowed.end()),
                    )
                })
            })
            .transpose()
    }
}
