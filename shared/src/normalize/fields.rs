//! Reading a scanner record's fields by path, with errors that name the record and the
//! field. Shared by every normalizer: what a field accepts is the normalizer's business,
//! how a missing or unusable one is reported is decided here once.

use serde_json::Value;

use super::{RecordError, describe};

/// One record's fields, read by dotted path (`asset.uuid`); every error names the
/// record's index and the path.
pub(crate) struct Fields<'a> {
    record: &'a Value,
    index: usize,
    /// Where `record` sits in the record the index counts (`tags[2]`); empty for that
    /// record itself. Error paths start with it.
    at: String,
}

impl<'a> Fields<'a> {
    pub(crate) fn new(record: &'a Value, index: usize) -> Self {
        Self { record, index, at: String::new() }
    }

    /// The fields of `value`, found at `path` of this record (an array item, say): its
    /// errors name it as `path.field` and count it as this record's.
    pub(crate) fn nested(&self, path: &str, value: &'a Value) -> Fields<'a> {
        Fields { record: value, index: self.index, at: self.name(path) }
    }

    /// The full name of `path`, as errors show it; `record` for the record itself.
    fn name(&self, path: &str) -> String {
        match (self.at.is_empty(), path.is_empty()) {
            (true, true) => "record".to_owned(),
            (true, false) => path.to_owned(),
            (false, true) => self.at.clone(),
            (false, false) => format!("{}.{path}", self.at),
        }
    }

    pub(crate) fn error(&self, field: &str, reason: impl Into<String>) -> RecordError {
        RecordError { index: self.index, field: self.name(field), reason: reason.into() }
    }

    pub(crate) fn unexpected(&self, field: &str, expected: &str, found: &Value) -> RecordError {
        self.error(field, format!("must be {expected}, found {}", describe(found)))
    }

    /// The value at `path`, `None` when it or an object on the way is absent or null
    /// (Tenable omits empty attributes). Something other than an object on the way is
    /// an error: `"port": "443"` must not silently become a host-level finding.
    pub(crate) fn get(&self, path: &str) -> Result<Option<&'a Value>, RecordError> {
        let (parent_path, key) = match path.rsplit_once('.') {
            Some((parent_path, key)) => (Some(parent_path), key),
            None => (None, path),
        };
        let parent = match parent_path {
            Some(parent_path) => self.get(parent_path)?,
            None => Some(self.record),
        };
        match parent {
            None => Ok(None),
            Some(Value::Object(object)) => Ok(object.get(key).filter(|value| !value.is_null())),
            Some(other) => Err(self.unexpected(parent_path.unwrap_or(""), "an object", other)),
        }
    }

    /// The value at `path` read by `read`; `expected` says what `read` accepts.
    pub(crate) fn parse<T>(
        &self,
        path: &str,
        expected: &str,
        read: impl FnOnce(&Value) -> Option<T>,
    ) -> Result<Option<T>, RecordError> {
        let Some(value) = self.get(path)? else {
            return Ok(None);
        };
        read(value).map(Some).ok_or_else(|| self.unexpected(path, expected, value))
    }

    /// Like [`Fields::parse`], for a field the record cannot do without.
    pub(crate) fn required<T>(
        &self,
        path: &str,
        expected: &str,
        read: impl FnOnce(&Value) -> Option<T>,
    ) -> Result<T, RecordError> {
        self.parse(path, expected, read)?.ok_or_else(|| self.error(path, "is missing"))
    }

    /// A trimmed string; a blank one counts as absent.
    pub(crate) fn text(&self, path: &str) -> Result<Option<String>, RecordError> {
        Ok(self.parse(path, "a string", |value| value.as_str().map(non_blank))?.flatten())
    }

    /// A string or an array of strings (Tenable sends either for several fields),
    /// trimmed, blanks and nulls dropped.
    pub(crate) fn texts(&self, path: &str) -> Result<Vec<String>, RecordError> {
        let Some(value) = self.get(path)? else {
            return Ok(Vec::new());
        };
        match value {
            Value::String(text) => Ok(non_blank(text).into_iter().collect()),
            Value::Array(items) => {
                let mut texts = Vec::with_capacity(items.len());
                for (position, item) in items.iter().enumerate() {
                    match item {
                        Value::String(text) => texts.extend(non_blank(text)),
                        Value::Null => {}
                        other => {
                            return Err(self.unexpected(&format!("{path}[{position}]"), "a string", other));
                        }
                    }
                }
                Ok(texts)
            }
            other => Err(self.unexpected(path, "a string or an array of strings", other)),
        }
    }

    /// The items of the array at `path`, each with its own fields (named `path[i]` in
    /// errors); null items are skipped, absent or null arrays have none.
    pub(crate) fn items(&self, path: &str, expected: &str) -> Result<Vec<Fields<'a>>, RecordError> {
        match self.get(path)? {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => Ok(items
                .iter()
                .enumerate()
                .filter(|(_, item)| !item.is_null())
                .map(|(position, item)| self.nested(&format!("{path}[{position}]"), item))
                .collect()),
            Some(other) => Err(self.unexpected(path, expected, other)),
        }
    }
}

/// `text` trimmed, or `None` when that leaves nothing.
pub(crate) fn non_blank(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

pub(crate) fn first(texts: Vec<String>) -> Option<String> {
    texts.into_iter().next()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_fields_name_their_place_in_the_record() {
        let record = json!({ "tags": [{ "key": 7 }, null, "env"] });
        let fields = Fields::new(&record, 4);
        let tags = fields.items("tags", "an array").expect("an array");
        assert_eq!(tags.len(), 2, "null items are skipped");
        assert_eq!(
            tags[0].text("key").expect_err("a number").to_string(),
            "record 4: field `tags[0].key` must be a string, found a number (7)"
        );
        assert_eq!(
            tags[1].text("key").expect_err("not an object").to_string(),
            "record 4: field `tags[2]` must be an object, found a string (\"env\")"
        );
        assert_eq!(Fields::new(&json!(3), 0).get("id").expect_err("not an object").field, "record");
        assert_eq!(
            Fields::new(&json!({ "tags": {} }), 0).items("tags", "an array").err().map(|error| error.reason),
            Some("must be an array, found an object with 0 fields".to_owned())
        );
    }
}
