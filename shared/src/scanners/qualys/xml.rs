//! The few things the client reads from Qualys' XML answers, read as a stream of
//! events: the root element's name, leaf texts by element name.

use quick_xml::Reader;
use quick_xml::events::Event;

/// The name of the document's root element, past the declaration, DOCTYPE and comments.
pub(super) fn root(xml: &[u8]) -> Option<String> {
    let mut reader = Reader::from_str(std::str::from_utf8(xml).ok()?);
    loop {
        match reader.read_event() {
            Ok(Event::Start(element) | Event::Empty(element)) => return Some(element.name().as_ref().to_string()),
            Ok(Event::Eof) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// Calls `visit(name, text)` for every element named in `names` with its text (CDATA
/// as it stands, other text with its entities decoded), in document order. An answer
/// that is not well-formed is an error naming where it broke.
pub(super) fn leaf_texts(xml: &[u8], names: &[&str], mut visit: impl FnMut(&str, String)) -> Result<(), String> {
    let xml = std::str::from_utf8(xml).map_err(|e| format!("it is not UTF-8: {e}"))?;
    let mut reader = Reader::from_str(xml);
    let mut current: Option<String> = None;
    let mut text = String::new();
    loop {
        let event = reader.read_event().map_err(|e| format!("at byte {}: {e}", reader.error_position()))?;
        match event {
            Event::Start(element) => {
                let name = element.name().as_ref().to_string();
                current = names.contains(&name.as_str()).then_some(name);
                text.clear();
            }
            Event::Text(raw) if current.is_some() => text.push_str(&raw.xml10_content()),
            Event::GeneralRef(reference) if current.is_some() => {
                let name = reference.xml10_content();
                let resolved = quick_xml::escape::resolve_predefined_entity(&name)
                    .map(str::to_string)
                    .or_else(|| reference.resolve_char_ref().ok().flatten().map(String::from))
                    .unwrap_or_else(|| format!("&{name};"));
                text.push_str(&resolved);
            }
            Event::CData(raw) if current.is_some() => text.push_str(&raw.xml10_content()),
            Event::End(_) => {
                if let Some(name) = current.take() {
                    visit(&name, text.trim().to_string());
                }
            }
            Event::Eof => return Ok(()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIMPLE_RETURN: &str = r#"<?xml version="1.0" encoding="UTF-8" ?>
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
    fn the_root_is_found_past_the_declaration_doctype_and_comments() {
        assert_eq!(root(SIMPLE_RETURN.as_bytes()).as_deref(), Some("SIMPLE_RETURN"));
        assert_eq!(root(b"not xml at all"), None);
    }

    #[test]
    fn leaf_texts_come_in_order_decoded_and_cdata_as_it_stands() {
        let mut seen = Vec::new();
        leaf_texts(SIMPLE_RETURN.as_bytes(), &["CODE", "TEXT", "VALUE"], |name, text| {
            seen.push((name.to_string(), text))
        })
        .expect("well-formed");
        assert_eq!(
            seen,
            [
                ("CODE".to_string(), "1965".to_string()),
                ("TEXT".to_string(), "This API cannot be run again for another 30 seconds & more.".to_string()),
                ("VALUE".to_string(), "30".to_string()),
            ]
        );
        assert!(leaf_texts(b"<A><B>x</A>", &["B"], |_, _| {}).is_err(), "a broken document is an error");
    }
}
