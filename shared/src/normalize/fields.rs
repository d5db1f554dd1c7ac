//! Reading a scanner record's fields by path, with errors that name the record and the
//! field. Shared by every normalizer: what a field accepts is the normalizer's business,
//! how a missing or unusable one is reported is decided here once.

use serde_json::Value;

use super::{RecordError, describe};

/// The most bytes a text field keeps: longer text is cut (at a character boundary) and
/// the whole stays in the raw chunk in S3. Scanner ids, names and advice are far shorter;
/// the bound keeps every stored item well under DynamoDB's 400 KB.
pub const MAX_TEXT_BYTES: usize = 4096;
/// The most bytes a list of texts (a finding's CVEs) may hold in all. A longer list is
/// refused rather than cut: which items to drop is not vulnflow's to choose.
pub const MAX_LIST_BYTES: usize = 64 * 1024;
/// The longest id a record may carry: ids become key parts, which DynamoDB bounds.
pub const MAX_ID_BYTES: usize = 256;

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

    /// A trimmed string, cut at [`MAX_TEXT_BYTES`]; a blank one counts as absent.
    pub(crate) fn text(&self, path: &str) -> Result<Option<String>, RecordError> {
        Ok(self.parse(path, "a string", |value| value.as_str().map(bounded_text))?.flatten())
    }

    /// An id the record cannot do without: a non-empty string of at most [`MAX_ID_BYTES`].
    pub(crate) fn id(&self, path: &str) -> Result<String, RecordError> {
        let id = self.required(path, "a non-empty string", |value| value.as_str().and_then(non_blank))?;
        if id.len() > MAX_ID_BYTES {
            return Err(self.error(
                path,
                format!("is {} bytes long: an id of more than {MAX_ID_BYTES} bytes is no scanner's", id.len()),
            ));
        }
        Ok(id)
    }

    /// A string or an array of strings (Tenable sends either for several fields),
    /// trimmed, blanks and nulls dropped.
    pub(crate) fn texts(&self, path: &str) -> Result<Vec<String>, RecordError> {
        let Some(value) = self.get(path)? else {
            return Ok(Vec::new());
        };
        match value {
            Value::String(text) => Ok(bounded_text(text).into_iter().collect()),
            Value::Array(items) => {
                let mut texts = Vec::with_capacity(items.len());
                let mut bytes = 0;
                for (position, item) in items.iter().enumerate() {
                    match item {
                        Value::String(text) => {
                            bytes += text.len();
                            texts.extend(bounded_text(text));
                        }
                        Value::Null => {}
                        other => {
                            return Err(self.unexpected(&format!("{path}[{position}]"), "a string", other));
                        }
                    }
                }
                if let Some(reason) = oversized_list(items.len(), bytes) {
                    return Err(self.error(path, reason));
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

/// `text` trimmed and cut at [`MAX_TEXT_BYTES`], or `None` when blank: how every
/// normalizer keeps a text field.
pub(crate) fn bounded_text(text: &str) -> Option<String> {
    non_blank(text).map(cut)
}

/// Why a list of `items` texts of `bytes` in all cannot be stored, if it cannot.
pub(crate) fn oversized_list(items: usize, bytes: usize) -> Option<String> {
    (bytes > MAX_LIST_BYTES).then(|| {
        format!("holds {items} items of {bytes} bytes in all, more than the {MAX_LIST_BYTES} a stored record may hold")
    })
}

/// `text` trimmed, or `None` when that leaves nothing.
fn non_blank(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// `text` cut to at most [`MAX_TEXT_BYTES`], at a character boundary.
fn cut(mut text: String) -> String {
    if text.len() > MAX_TEXT_BYTES {
        let end = (0..=MAX_TEXT_BYTES).rev().find(|end| text.is_char_boundary(*end)).unwrap_or(0);
        text.truncate(end);
    }
    text
}

pub(crate) fn first(texts: Vec<String>) -> Option<String> {
    texts.into_iter().next()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_long_text_is_cut_at_a_character_boundary_and_the_rest_stays_in_the_raw_chunk() {
        let long = "é".repeat(3000); // 6,000 bytes
        let record = json!({ "plugin": { "synopsis": long, "name": "short" } });
        let fields = Fields::new(&record, 0);
        let synopsis = fields.text("plugin.synopsis").expect("a string").expect("not blank");
        assert_eq!((synopsis.len(), synopsis.chars().count()), (4096, 2048));
        assert_eq!(fields.text("plugin.name").expect("a string").as_deref(), Some("short"));
        let listed = Fields::new(&json!({ "names": ["x".repeat(5000)] }), 0).texts("names").expect("one item");
        assert_eq!(listed[0].len(), 4096);
    }

    #[test]
    fn an_oversized_id_or_list_refuses_the_record_naming_the_field() {
        let record = json!({ "asset": { "uuid": "a".repeat(257) }, "id": "a".repeat(256) });
        let fields = Fields::new(&record, 7);
        assert_eq!(
            fields.id("asset.uuid").expect_err("too long").to_string(),
            "record 7: field `asset.uuid` is 257 bytes long: an id of more than 256 bytes is no scanner's"
        );
        assert_eq!(fields.id("id").expect("256 bytes is fine").len(), 256);
        let cves: Vec<String> = (0..5000).map(|n| format!("CVE-2024-{n:08}")).collect(); // 85,000 bytes
        let error = Fields::new(&json!({ "plugin": { "cve": cves } }), 3).texts("plugin.cve").expect_err("too many");
        assert_eq!(error.field, "plugin.cve");
        assert!(error.reason.starts_with("holds 5000 items of 85000 bytes"), "{}", error.reason);
    }

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
