//! Reading a Qualys answer page as a stream. The page is walked event by event, only
//! the elements asked for (each HOST, each VULN) are handed on, one at a time, as their
//! own text, and each is deserialized on its own: no tree of the page is ever built,
//! and the rest of the page (comments, the DOCTYPE, elements off the path) is skipped.
//!
//! Errors name a value by where it sits (`HOST[ID=1234567].DETECTION[QID=38170].STATUS`)
//! so an operator finds it in the page.

use chrono::{DateTime, Utc};
use quick_xml::Reader;
use quick_xml::events::Event;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::normalize::{ChunkError, RecordError, excerpt, parse_timestamp_text};

/// One Qualys API's answer: its root element, and what errors call it.
pub(super) struct Answer {
    pub root: &'static str,
    pub name: &'static str,
}

/// Hands `visit` the text of each element at `path` below the root of `page` (from its
/// start tag to its end tag), in the page's order. Fails when the page is not
/// well-formed XML, or is not `answer` (a SIMPLE_RETURN error says its code and text).
pub(super) fn each_element(
    page: &[u8],
    answer: &Answer,
    path: &[&str],
    mut visit: impl FnMut(&str) -> Result<(), ChunkError>,
) -> Result<(), ChunkError> {
    let page =
        std::str::from_utf8(page).map_err(|error| ChunkError::NotXml(format!("it is not UTF-8 text: {error}")))?;
    let mut reader = Reader::from_str(page);
    // The open elements of root + path; an element off the path is skipped whole.
    let mut depth = 0;
    let mut rooted = false;
    loop {
        let starts_at = offset(&reader);
        let event = reader.read_event().map_err(|error| malformed(reader.error_position(), error))?;
        match &event {
            Event::Start(element) | Event::Empty(element) => {
                let name = element.name();
                let has_content = matches!(event, Event::Start(_));
                if depth == 0 {
                    if rooted {
                        return Err(ChunkError::NotXml("it has a second root element".to_owned()));
                    }
                    rooted = true;
                    if name.0 != answer.root {
                        let root = name.0.to_owned();
                        if has_content {
                            // A whole error answer is small; a broken one is named without its code.
                            reader.read_to_end(name).ok();
                        }
                        return Err(wrong_answer(answer, &root, read_since(page, starts_at, &reader)));
                    }
                    depth = usize::from(has_content);
                    continue;
                }
                let on_path = path.get(depth - 1).is_some_and(|step| name.0 == *step);
                if on_path && depth < path.len() {
                    depth += usize::from(has_content);
                    continue;
                }
                // The element asked for, or one off the path: read past it.
                if has_content {
                    let at_least = starts_at as u64;
                    reader
                        .read_to_end(name)
                        .map_err(|error| malformed(reader.error_position().max(at_least), error))?;
                }
                if on_path {
                    visit(read_since(page, starts_at, &reader))?;
                }
            }
            // The parser matches end tags to start tags: none comes at depth 0.
            Event::End(_) => depth = depth.saturating_sub(1),
            Event::Text(text) if depth == 0 && !text.trim().is_empty() => {
                return Err(ChunkError::NotXml(format!(
                    "it has text outside its root element: {:?}",
                    excerpt(text.trim())
                )));
            }
            Event::CData(_) | Event::GeneralRef(_) if depth == 0 => {
                return Err(ChunkError::NotXml("it has text outside its root element".to_owned()));
            }
            Event::Eof if depth > 0 => {
                let open = if depth == 1 { answer.root } else { path[depth - 2] };
                return Err(ChunkError::NotXml(format!("it ends inside <{open}>: the page was cut short")));
            }
            Event::Eof if !rooted => return Err(ChunkError::NotXml("it has no root element".to_owned())),
            Event::Eof => return Ok(()),
            // The declaration, the DOCTYPE, comments, processing instructions.
            _ => {}
        }
    }
}

fn offset(reader: &Reader<&[u8]>) -> usize {
    usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX)
}

/// The text of `page` the reader went through since `starts_at`: an element it read.
fn read_since<'p>(page: &'p str, starts_at: usize, reader: &Reader<&[u8]>) -> &'p str {
    page.get(starts_at..offset(reader)).unwrap_or_default()
}

/// A parse error, at the byte where the markup in error starts (or, when the parser
/// cannot tell, the element it was reading).
fn malformed(at: u64, error: quick_xml::Error) -> ChunkError {
    ChunkError::NotXml(format!("at byte {at}: {error}"))
}

/// Qualys' answer to a call it refused (rate limit, bad parameter, blocked login).
#[derive(Deserialize)]
struct SimpleReturn {
    #[serde(rename = "RESPONSE")]
    response: Refusal,
}

const SIMPLE_RETURN: Answer = Answer { root: "SIMPLE_RETURN", name: "a SIMPLE_RETURN answer" };

/// A SIMPLE_RETURN's response: its code, its text, and its items (`SECONDS_TO_WAIT`...).
#[derive(Deserialize, Default)]
pub(super) struct Refusal {
    #[serde(rename = "CODE")]
    code: Option<String>,
    #[serde(rename = "TEXT")]
    text: Option<String>,
    #[serde(rename = "ITEM_LIST", default)]
    items: Items,
}

#[derive(Deserialize, Default)]
struct Items {
    #[serde(rename = "ITEM", default)]
    items: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    #[serde(rename = "KEY")]
    key: Option<String>,
    #[serde(rename = "VALUE")]
    value: Option<String>,
}

impl Refusal {
    pub(super) fn code(&self) -> &str {
        self.code.as_deref().map_or("", str::trim)
    }

    pub(super) fn text(&self) -> &str {
        self.text.as_deref().map_or("", str::trim)
    }

    /// The value of the item `key`, trimmed.
    pub(super) fn item(&self, key: &str) -> Option<&str> {
        let item = self.items.items.iter().find(|item| item.key.as_deref().map(str::trim) == Some(key))?;
        item.value.as_deref().map(str::trim)
    }
}

/// The refusal `page` is, when it is a SIMPLE_RETURN.
pub(super) fn refusal(page: &[u8]) -> Option<Refusal> {
    let mut refusal = None;
    each_element(page, &SIMPLE_RETURN, &["RESPONSE"], |element| {
        refusal = deserialize(element).ok();
        Ok(())
    })
    .ok()?;
    refusal
}

/// What the page is instead of `answer`.
fn wrong_answer(answer: &Answer, root: &str, element: &str) -> ChunkError {
    let found = match quick_xml::de::from_str::<SimpleReturn>(element) {
        Ok(SimpleReturn { response }) if root == "SIMPLE_RETURN" => {
            let code = if response.code().is_empty() { "none" } else { response.code() };
            format!("a SIMPLE_RETURN error (code {code}: {})", excerpt(response.text()))
        }
        _ => format!("a <{}> document", excerpt(root)),
    };
    ChunkError::WrongAnswer { expected: answer.name, found }
}

/// Why an element could not be deserialized: where in it serde was, and what it found.
pub(super) struct Unreadable {
    /// Dotted, as serde went (`DETECTION_LIST.DETECTION[1].STATUS`); empty for the
    /// element itself.
    pub path: String,
    pub reason: String,
}

/// `element` deserialized into `T`, every value of `T` a text read by the rules of its
/// field. Only a value of the wrong shape (an element where text was expected, a value
/// given twice) fails here.
pub(super) fn deserialize<T: DeserializeOwned>(element: &str) -> Result<T, Unreadable> {
    let mut deserializer = quick_xml::de::Deserializer::from_str(element);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        Unreadable { path: if path == "." { String::new() } else { path }, reason: error.into_inner().to_string() }
    })
}

/// An element of the page, as errors name it, and the index of the record its errors
/// count as (the detection's, the host's, the VULN's position in the page).
pub(super) struct Place {
    index: usize,
    name: String,
}

impl Place {
    /// The element `kind` whose `key` is `id` (`HOST[ID=1234567]`), or, without a
    /// usable id, at `position` among its kind (`HOST[3]`).
    pub(super) fn new(index: usize, kind: &str, key: &str, id: Option<&str>, position: usize) -> Self {
        let name = match id.and_then(whole_number) {
            Some(id) => format!("{kind}[{key}={id}]"),
            None => format!("{kind}[{position}]"),
        };
        Place { index, name }
    }

    /// An element inside this one: `HOST[ID=1234567].DETECTION[QID=38170]`.
    pub(super) fn within(&self, inner: Place) -> Place {
        Place { index: inner.index, name: format!("{}.{}", self.name, inner.name) }
    }

    /// An error about `field` of this element (the element itself when empty).
    pub(super) fn error(&self, field: &str, reason: impl Into<String>) -> RecordError {
        let field = if field.is_empty() { self.name.clone() } else { format!("{}.{field}", self.name) };
        RecordError { index: self.index, field, reason: reason.into() }
    }

    /// The error of an element serde could not read.
    pub(super) fn unreadable(&self, unreadable: Unreadable) -> RecordError {
        self.error(&unreadable.path, format!("cannot be read: {}", unreadable.reason))
    }

    /// The value of `field` read by `read`, `None` when absent or blank; `expected` says
    /// what `read` accepts. `read` gets the value trimmed.
    pub(super) fn parse<T>(
        &self,
        field: &str,
        value: Option<&str>,
        expected: &str,
        read: impl FnOnce(&str) -> Option<T>,
    ) -> Result<Option<T>, RecordError> {
        match value.map(str::trim).filter(|text| !text.is_empty()) {
            None => Ok(None),
            Some(text) => match read(text) {
                Some(read) => Ok(Some(read)),
                None => Err(self.error(field, format!("must be {expected}, found {:?}", excerpt(text)))),
            },
        }
    }

    /// Like [`Place::parse`], for a value the record cannot do without.
    pub(super) fn required<T>(
        &self,
        field: &str,
        value: Option<&str>,
        expected: &str,
        read: impl FnOnce(&str) -> Option<T>,
    ) -> Result<T, RecordError> {
        self.parse(field, value, expected, read)?.ok_or_else(|| self.missing(field))
    }

    pub(super) fn missing(&self, field: &str) -> RecordError {
        self.error(field, "is missing")
    }

    /// The time of `field` (Qualys' are UTC), `None` when absent or blank.
    pub(super) fn time(&self, field: &str, value: &Option<String>) -> Result<Option<DateTime<Utc>>, RecordError> {
        self.parse(field, value.as_deref(), TIME, parse_timestamp_text)
    }
}

const TIME: &str = "a UTC time such as 2024-04-30T22:00:00Z";

/// What [`whole_number`] accepts, as errors say it.
pub(super) const WHOLE_NUMBER: &str = "a whole number";

/// Qualys ids (host ID, QID) and ports are whole numbers.
pub(super) fn whole_number(text: &str) -> Option<u64> {
    let text = text.trim();
    text.bytes().all(|byte| byte.is_ascii_digit()).then(|| text.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    const REFUSAL: &str = r#"<?xml version="1.0" encoding="UTF-8" ?>
<!DOCTYPE SIMPLE_RETURN SYSTEM "https://qualysapi.qualys.com/api/2.0/simple_return.dtd">
<!-- before -->
<SIMPLE_RETURN>
  <RESPONSE>
    <DATETIME>2024-05-01T10:00:00Z</DATETIME>
    <CODE>1965</CODE>
    <TEXT>This API cannot be run again for another 30 seconds &amp; more.</TEXT>
    <ITEM_LIST><ITEM><KEY>SECONDS_TO_WAIT</KEY><VALUE><![CDATA[30]]></VALUE></ITEM></ITEM_LIST>
  </RESPONSE>
</SIMPLE_RETURN>
<!-- after -->"#;

    #[test]
    fn a_simple_return_gives_its_code_text_and_items_and_anything_else_is_none() {
        let refused = refusal(REFUSAL.as_bytes()).expect("a SIMPLE_RETURN");
        assert_eq!(refused.code(), "1965");
        assert_eq!(refused.text(), "This API cannot be run again for another 30 seconds & more.");
        assert_eq!(refused.item("SECONDS_TO_WAIT"), Some("30"));
        assert_eq!(refused.item("OTHER"), None);
        assert!(refusal(b"<HOST_LIST_OUTPUT><RESPONSE/></HOST_LIST_OUTPUT>").is_none());
        assert!(refusal(b"not xml at all").is_none());
    }
}
