//! Writes answers as Qualys does: declaration, DOCTYPE, comments around the root, CDATA for
//! texts, and indentation between (and, for some values, inside) elements.

use std::fmt::{Display, Write};

const DECLARATION: &str = r#"<?xml version="1.0" encoding="UTF-8" ?>"#;
const DTD_BASE: &str = "https://qualysapi.qualys.com";
const LEADING_COMMENT: &str = "<!-- qualys-simulator: seeded test data in the Qualys API v2 format -->";
const CONFIDENTIAL: &str = "<!-- CONFIDENTIAL AND PROPRIETARY INFORMATION. Qualys provides the QualysGuard Service \
    \"As Is,\" without any warranty of any kind. Qualys makes no warranty that the information contained in this \
    report is complete or error-free. Copyright 2024, Qualys, Inc. //--> ";
const INDENT: &str = "  ";

pub(crate) struct XmlWriter {
    out: String,
    open: Vec<&'static str>,
    values_on_own_lines: bool,
}

impl XmlWriter {
    /// A document of root element `root`, whose DTD is at `dtd_path` on Qualys' API server.
    pub(crate) fn new(root: &'static str, dtd_path: &str) -> Self {
        let out = format!("{DECLARATION}\n<!DOCTYPE {root} SYSTEM \"{DTD_BASE}{dtd_path}\">\n{LEADING_COMMENT}\n");
        let mut writer = Self { out, open: Vec::new(), values_on_own_lines: false };
        writer.open(root);
        writer
    }

    /// From now on, each value goes on a line of its own inside its element, as in
    /// `<ID>\n    123\n  </ID>`: whitespace outside CDATA that is not part of the value.
    pub(crate) fn set_values_on_own_lines(&mut self, on: bool) {
        self.values_on_own_lines = on;
    }

    pub(crate) fn open(&mut self, name: &'static str) {
        self.line(format_args!("<{name}>"));
        self.open.push(name);
    }

    pub(crate) fn close(&mut self) {
        if let Some(name) = self.open.pop() {
            self.line(format_args!("</{name}>"));
        }
    }

    /// `<NAME>value</NAME>`, the value escaped.
    pub(crate) fn value(&mut self, name: &str, value: impl Display) {
        self.element(name, &escape(&value.to_string()));
    }

    /// `<NAME><![CDATA[text]]></NAME>`: the text as is, however much markup it holds.
    pub(crate) fn cdata(&mut self, name: &str, text: &str) {
        self.element(name, &cdata_section(text));
    }

    /// `<NAME A="1" B="2"/>`.
    pub(crate) fn empty(&mut self, name: &str, attributes: &[(&str, &str)]) {
        let mut tag = format!("<{name}");
        for (key, value) in attributes {
            let _ = write!(tag, " {key}=\"{}\"", escape(value));
        }
        self.line(format_args!("{tag}/>"));
    }

    /// Bytes written so far.
    pub(crate) fn len(&self) -> usize {
        self.out.len()
    }

    /// Closes every open element and appends Qualys' closing comment.
    pub(crate) fn finish(mut self) -> String {
        while !self.open.is_empty() {
            self.close();
        }
        self.out.push_str(CONFIDENTIAL);
        self.out.push('\n');
        self.out
    }

    fn element(&mut self, name: &str, content: &str) {
        if self.values_on_own_lines {
            let inner = INDENT.repeat(self.open.len() + 1);
            let outer = INDENT.repeat(self.open.len());
            self.line(format_args!("<{name}>\n{inner}{content}\n{outer}</{name}>"));
        } else {
            self.line(format_args!("<{name}>{content}</{name}>"));
        }
    }

    fn line(&mut self, content: std::fmt::Arguments<'_>) {
        for _ in 0..self.open.len() {
            self.out.push_str(INDENT);
        }
        let _ = self.out.write_fmt(content);
        self.out.push('\n');
    }
}

fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            other => escaped.push(other),
        }
    }
    escaped
}

/// A CDATA section holding `text`; a `]]>` inside is split across two sections, the only way
/// XML allows.
fn cdata_section(text: &str) -> String {
    format!("<![CDATA[{}]]>", text.replace("]]>", "]]]]><![CDATA[>"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_have_declaration_doctype_comments_and_indentation() {
        let mut writer = XmlWriter::new("SIMPLE_RETURN", "/api/2.0/simple_return.dtd");
        writer.open("RESPONSE");
        writer.value("TEXT", "Tom & Jerry's <tag>");
        writer.cdata("URL", "a]]>b &apos;");
        writer.empty("API-VERSION", &[("MAJOR", "2"), ("MINOR", "0")]);
        let document = writer.finish();
        let expected = [
            r#"<?xml version="1.0" encoding="UTF-8" ?>"#,
            r#"<!DOCTYPE SIMPLE_RETURN SYSTEM "https://qualysapi.qualys.com/api/2.0/simple_return.dtd">"#,
            LEADING_COMMENT,
            "<SIMPLE_RETURN>",
            "  <RESPONSE>",
            "    <TEXT>Tom &amp; Jerry&apos;s &lt;tag&gt;</TEXT>",
            "    <URL><![CDATA[a]]]]><![CDATA[>b &apos;]]></URL>",
            r#"    <API-VERSION MAJOR="2" MINOR="0"/>"#,
            "  </RESPONSE>",
            "</SIMPLE_RETURN>",
        ];
        assert_eq!(document, format!("{}\n{CONFIDENTIAL}\n", expected.join("\n")));
    }

    #[test]
    fn values_on_own_lines_are_indented_inside_their_element() {
        let mut writer = XmlWriter::new("HOST", "/host.dtd");
        writer.set_values_on_own_lines(true);
        writer.value("ID", 12);
        writer.cdata("OS", "Linux");
        let document = writer.finish();
        assert!(document.contains("\n  <ID>\n    12\n  </ID>\n  <OS>\n    <![CDATA[Linux]]>\n  </OS>\n"), "{document}");
    }
}
