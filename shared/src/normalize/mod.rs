//! Normalization: scanner records mapped onto the domain model ([`NormalizedRecord`]
//! for findings, [`NormalizedAsset`] for asset inventory records).
//!
//! This module holds what every scanner shares (errors, field reading, timestamps, OS
//! categories, output sanitizing); each scanner's wire format has its own submodule.
//!
//! [`NormalizedRecord`]: crate::model::NormalizedRecord

pub(crate) mod fields;
pub mod wanted;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::{Asset, OsCategory};
use wanted::{Pruned, Wanted};

/// How many characters of plugin output a finding keeps for display; the whole text
/// stays in the raw chunk in S3.
pub const DISPLAY_OUTPUT_LIMIT: usize = 2048;

/// A record that cannot be used: names the record's index in its chunk and the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("record {index}: field `{field}` {reason}")]
pub struct RecordError {
    pub index: usize,
    pub field: String,
    pub reason: String,
}

/// A normalized record of a scanner's asset inventory (Tenable's asset export): the
/// host, built by the same rules as the asset of a finding so that both sources store
/// the same [`Asset`], and what only the inventory says about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NormalizedAsset {
    pub asset: Asset,
    /// When the scanner last saw the host, if it says.
    #[serde(default)]
    pub last_seen: Option<DateTime<Utc>>,
    /// The host's tags as (category, value), in the scanner's order.
    #[serde(default)]
    pub tags: Vec<(String, String)>,
    /// The scanner terminated or deleted the host (Tenable: `terminated_at` or
    /// `deleted_at` is set).
    #[serde(default)]
    pub deleted: bool,
}

/// Why a whole chunk cannot be normalized.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ChunkError {
    #[error("the chunk is not valid JSON: {0}")]
    NotJson(String),
    #[error("the chunk is not a JSON array of records (found {0})")]
    NotArray(String),
    /// For scanners that answer in XML (Qualys): a page that cannot be parsed.
    #[error("the page is not well-formed XML: {0}")]
    NotXml(String),
    /// Well-formed XML of another answer, such as the error a scanner sent instead.
    #[error("the page is {found}, not {expected}")]
    WrongAnswer { expected: &'static str, found: String },
    #[error(transparent)]
    Record(#[from] RecordError),
    /// What the fetch stage gathered beside the chunk (see `ExportScanner::chunk_reference`)
    /// cannot be read: fetching the chunk again gathers it again.
    #[error("the chunk's reference cannot be read ({0}): run the sync again to fetch the chunk anew")]
    BadReference(String),
    #[error("a normalized record cannot be written as JSON: {0}")]
    Unwritable(String),
}

/// Normalizes a whole chunk (a JSON array of records) record by record, failing on its
/// first unusable record so a chunk is stored entirely or not at all.
pub(crate) fn normalize_chunk<T>(
    bytes: &[u8],
    wanted: &'static [Wanted],
    normalize_record: impl Fn(&Value, usize) -> Result<T, RecordError>,
) -> Result<Vec<T>, ChunkError> {
    let mut records = Vec::new();
    each_record(bytes, wanted, normalize_record, |record| {
        records.push(record);
        Ok(())
    })?;
    Ok(records)
}

/// Normalizes a chunk (a JSON array of records) one record at a time, handing each to
/// `keep` in the chunk's order, and says how many there were. The chunk is read as a
/// stream: only one record is held as a JSON tree at a time, so memory stays near the
/// raw bytes plus what `keep` keeps; and each record holds only the `wanted` fields,
/// the others being skipped unbuilt. Stops at the first unusable record.
pub fn each_record<T>(
    bytes: &[u8],
    wanted: &'static [Wanted],
    normalize_record: impl Fn(&Value, usize) -> Result<T, RecordError>,
    keep: impl FnMut(T) -> Result<(), ChunkError>,
) -> Result<u64, ChunkError> {
    let mut refused = None;
    let visitor = RecordVisitor { wanted, normalize_record, keep, refused: &mut refused, count: 0 };
    let mut parser = serde_json::Deserializer::from_slice(bytes);
    let read = serde::Deserializer::deserialize_seq(&mut parser, visitor).and_then(|count| {
        parser.end()?;
        Ok(count)
    });
    match (refused, read) {
        (Some(refused), _) => Err(refused),
        (None, Ok(count)) => Ok(count),
        // Not an array: say what it is, as a whole parse sees it.
        (None, Err(error)) if error.is_data() => match serde_json::from_slice::<Value>(bytes) {
            Ok(chunk) => Err(ChunkError::NotArray(describe(&chunk))),
            Err(error) => Err(ChunkError::NotJson(error.to_string())),
        },
        (None, Err(error)) => Err(ChunkError::NotJson(error.to_string())),
    }
}

/// Walks the chunk's array; a record it cannot use is kept in `refused` and ends the walk.
struct RecordVisitor<'r, N, K> {
    wanted: &'static [Wanted],
    normalize_record: N,
    keep: K,
    refused: &'r mut Option<ChunkError>,
    count: u64,
}

impl<'de, T, N, K> serde::de::Visitor<'de> for RecordVisitor<'_, N, K>
where
    N: Fn(&Value, usize) -> Result<T, RecordError>,
    K: FnMut(T) -> Result<(), ChunkError>,
{
    type Value = u64;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a JSON array of records")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(mut self, mut records: A) -> Result<u64, A::Error> {
        while let Some(record) = records.next_element_seed(Pruned(self.wanted))? {
            let index = usize::try_from(self.count).unwrap_or(usize::MAX);
            let kept = (self.normalize_record)(&record, index).map_err(ChunkError::from).and_then(&mut self.keep);
            if let Err(refused) = kept {
                *self.refused = Some(refused);
                return Err(serde::de::Error::custom("a record was refused"));
            }
            self.count += 1;
        }
        Ok(self.count)
    }
}

/// The OS category of a scanner's operating system string.
///
/// Rules are checked in order, case-insensitively, on the string's words (any
/// non-alphanumeric character separates words). In a pattern, a space is a word
/// boundary, so `" os x "` matches "Mac OS X" but not "Cisco IOS XE", and plain
/// "iOS" (Apple) is not a network device: only "Cisco IOS" is, through "cisco".
pub fn os_category(operating_system: &str) -> OsCategory {
    const MACOS: &[&str] = &["mac os", "macos", " os x ", "darwin"];
    const NETWORK: &[&str] = &[
        "cisco",
        " ios xe ",
        " ios xr ",
        " nx os ",
        "junos",
        "juniper",
        "fortios",
        "fortigate",
        " pan os ",
        "palo alto",
        "arista",
        " big ip ",
        " f5 ",
        "mikrotik",
        "routeros",
        "sonicwall",
        "extremexos",
        " extreme networks ",
        " procurve ",
        " aruba",
        " comware ",
        " vyos ",
        " edgeos ",
        "screenos",
        " brocade ",
        // Vendors that name no product: "ExtremeXOS Network Operating System" did.
        " network operating system ",
        "switch",
        "router",
        "firewall",
    ];
    // "Amazon Linux" and "Oracle Linux" are caught by "linux".
    const LINUX: &[&str] = &[
        "linux", "ubuntu", "debian", "red hat", "redhat", " rhel", "centos", "suse", "fedora", "alpine", " rocky",
        " alma", " kali ",
    ];

    let words = padded_words(operating_system);
    let matches_any = |patterns: &[&str]| patterns.iter().any(|pattern| words.contains(pattern));
    if words.contains("windows") {
        if words.contains("server") { OsCategory::WindowsServer } else { OsCategory::WindowsWorkstation }
    } else if matches_any(MACOS) {
        OsCategory::Macos
    } else if matches_any(NETWORK) {
        OsCategory::NetworkDevice
    } else if matches_any(LINUX) {
        OsCategory::Linux
    } else {
        OsCategory::Other
    }
}

/// `text` lowercased, every run of non-alphanumeric characters turned into one space,
/// with a space at each end, so that a space in a pattern marks a word boundary.
fn padded_words(text: &str) -> String {
    let mut words = String::with_capacity(text.len() + 2);
    words.push(' ');
    for character in text.chars().flat_map(char::to_lowercase) {
        if character.is_alphanumeric() {
            words.push(character);
        } else if !words.ends_with(' ') {
            words.push(' ');
        }
    }
    if !words.ends_with(' ') {
        words.push(' ');
    }
    words
}

/// Unix timestamps above this are milliseconds: as seconds they would lie beyond
/// the year 5000.
const UNIX_MILLIS_THRESHOLD: i64 = 100_000_000_000;

/// A scanner timestamp in UTC, or `None` when `value` is not one.
///
/// Accepted: RFC 3339 with `Z` or an offset (converted to UTC); ISO 8601 without a
/// zone, with `T` or a space, with or without fractions (taken as UTC: scanners that
/// omit the zone report UTC); unix seconds as a number or a numeric string, and unix
/// milliseconds when the number is above 10^11.
pub fn parse_timestamp(value: &Value) -> Option<DateTime<Utc>> {
    match value {
        Value::Number(number) => match number.as_i64() {
            Some(whole) => from_unix(whole),
            None => number.as_f64().and_then(from_fractional_unix),
        },
        Value::String(text) => parse_timestamp_text(text),
        _ => None,
    }
}

/// [`parse_timestamp`] of a text, for scanners whose answers are not JSON.
pub fn parse_timestamp_text(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(whole) = text.parse::<i64>() {
        return from_unix(whole);
    }
    // RFC 3339 allows a space between date and time; chrono's zone-less parser needs `T`.
    let with_t = match text.as_bytes().get(10) {
        Some(b' ') => format!("{}T{}", text.get(..10)?, text.get(11..)?),
        _ => text.to_owned(),
    };
    if let Ok(zoned) = DateTime::parse_from_rfc3339(&with_t) {
        return Some(zoned.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(&with_t, "%Y-%m-%dT%H:%M:%S%.f").ok().map(|naive| naive.and_utc())
}

fn from_unix(whole: i64) -> Option<DateTime<Utc>> {
    if !(-UNIX_MILLIS_THRESHOLD..=UNIX_MILLIS_THRESHOLD).contains(&whole) {
        DateTime::from_timestamp_millis(whole)
    } else {
        DateTime::from_timestamp(whole, 0)
    }
}

fn from_fractional_unix(number: f64) -> Option<DateTime<Utc>> {
    let millis = if number.abs() > UNIX_MILLIS_THRESHOLD as f64 { number } else { number * 1000.0 };
    // `as` saturates for out-of-range floats; the range check below rejects those.
    let millis = millis.round();
    if !millis.is_finite() || millis.abs() >= i64::MAX as f64 {
        return None;
    }
    DateTime::from_timestamp_millis(millis as i64)
}

/// Plugin output made safe to show: cut to [`DISPLAY_OUTPUT_LIMIT`] characters, then
/// `&`, `<`, `>`, `"` and `'` escaped as HTML entities so no markup can run in a
/// browser. Returns the text and whether it was cut.
///
/// Cutting happens before escaping so an entity is never split; only the first
/// characters are visited, so a 1 MB output costs no more than a short one.
pub fn sanitize_output(text: &str) -> (String, bool) {
    let (shown, truncated) = match text.char_indices().nth(DISPLAY_OUTPUT_LIMIT) {
        Some((cut_at, _)) => (text.get(..cut_at).unwrap_or_default(), true),
        None => (text, false),
    };
    let mut escaped = String::with_capacity(shown.len() + shown.len() / 8);
    for character in shown.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    (escaped, truncated)
}

/// A protocol name in lower case; `Some(None)` for a blank one. Letters and digits
/// only, since the protocol is part of the finding id.
pub(crate) fn protocol_name(name: &str) -> Option<Option<String>> {
    let name = name.trim();
    if name.is_empty() {
        Some(None)
    } else if name.chars().all(|character| character.is_ascii_alphanumeric()) {
        Some(Some(name.to_ascii_lowercase()))
    } else {
        None
    }
}

/// A short description of a JSON value for an error message: its kind and, for
/// scalars, an excerpt of at most [`EXCERPT_CHARS`] characters; never a whole output.
fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(flag) => format!("a boolean ({flag})"),
        Value::Number(number) => format!("a number ({})", excerpt(&number.to_string())),
        Value::String(text) => format!("a string ({:?})", excerpt(text)),
        Value::Array(items) => format!("an array of {}", counted(items.len(), "item")),
        Value::Object(fields) => format!("an object with {}", counted(fields.len(), "field")),
    }
}

fn counted(count: usize, noun: &str) -> String {
    match count {
        1 => format!("1 {noun}"),
        _ => format!("{count} {noun}s"),
    }
}

const EXCERPT_CHARS: usize = 80;

/// `text`, or its first [`EXCERPT_CHARS`] characters and an ellipsis.
pub(crate) fn excerpt(text: &str) -> String {
    match text.char_indices().nth(EXCERPT_CHARS) {
        Some((cut_at, _)) => format!("{}…", text.get(..cut_at).unwrap_or_default()),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;
    use serde_json::json;

    fn utc(year: i32, month: u32, day: u32, hour: u32, minute: u32, second: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(year, month, day, hour, minute, second).single().unwrap_or_default()
    }

    /// Operating systems as Tenable, Qualys and Rapid7 report them, then the rules' edges.
    #[test]
    fn os_categories_of_real_device_strings() {
        use OsCategory::*;
        let cases = [
            // Tenable (`operating_system`).
            ("Microsoft Windows Server 2019 Standard", WindowsServer),
            ("Microsoft Windows Server 2008 R2 Enterprise Service Pack 1", WindowsServer),
            ("Microsoft Windows 11 Pro", WindowsWorkstation),
            ("Linux Kernel 5.4 on Ubuntu 20.04 (focal)", Linux),
            ("Linux Kernel 3.10.0-1160.el7.x86_64 on CentOS Linux release 7.9.2009 (Core)", Linux),
            ("Mac OS X 10.15", Macos),
            ("Cisco IOS 15.2(4)E7", NetworkDevice),
            ("Cisco IOS XE Software, Version 17.03.04a", NetworkDevice),
            ("Cisco NX-OS Software Version 9.3(8)", NetworkDevice),
            ("Cisco Adaptive Security Appliance Software Version 9.14", NetworkDevice),
            ("Juniper Junos Version 20.4R3", NetworkDevice),
            ("ExtremeXOS Network Operating System", NetworkDevice),
            ("FortiOS 7.0.12 on Fortinet FortiGate", NetworkDevice),
            ("Palo Alto Networks PAN-OS 10.1", NetworkDevice),
            ("Arista EOS 4.28.3M", NetworkDevice),
            ("F5 Networks BIG-IP 16.1", NetworkDevice),
            ("MikroTik RouterOS 7.1", NetworkDevice),
            ("SonicWALL SonicOS", NetworkDevice),
            ("HP ProCurve Switch 2530", NetworkDevice),
            ("ArubaOS 8.10.0.2", NetworkDevice),
            ("Linux Kernel 4.4 on Palo Alto firewall", NetworkDevice),
            ("VMware ESXi 7.0.3", Other),
            ("HP LaserJet printer", Other),
            ("Apple iOS 17.2", Other),
            // Qualys (`OS`).
            ("Windows Server 2016 Datacenter 64 bit Edition Version 1607", WindowsServer),
            ("Windows Server 2019 Standard 1809", WindowsServer),
            ("Windows 10 Enterprise 64 bit Edition Version 21H2", WindowsWorkstation),
            ("Red Hat Enterprise Linux 8.6", Linux),
            ("CentOS Linux 7.9.2009", Linux),
            ("Ubuntu / Linux 20.04", Linux),
            ("Amazon Linux 2", Linux),
            ("Apple macOS 13.4", Macos),
            ("Cisco IOS Version 15.2(4)E7", NetworkDevice),
            ("Cisco Adaptive Security Appliance Version 9.14(3)", NetworkDevice),
            ("JUNOS 20.4R3", NetworkDevice),
            ("ExtremeXOS", NetworkDevice),
            ("Fortinet FortiOS 7.2.4", NetworkDevice),
            ("Palo Alto Networks PAN-OS", NetworkDevice),
            ("HPE Comware 7.1", NetworkDevice),
            ("VMware ESXi 6.7", Other),
            ("Linux 3.x", Linux),
            // Rapid7 InsightVM (`os.description`).
            ("Microsoft Windows Server 2022 Datacenter Edition", WindowsServer),
            ("Microsoft Windows 10 Enterprise Edition 22H2", WindowsWorkstation),
            ("Ubuntu Linux 22.04", Linux),
            ("Debian Linux 12.0", Linux),
            ("Oracle Linux 8.8", Linux),
            ("SUSE Linux Enterprise Server 15", Linux),
            ("Apple Mac OS X 10.15.7", Macos),
            ("Cisco IOS XE 17.3.4", NetworkDevice),
            ("Juniper Networks JUNOS 20.4R3", NetworkDevice),
            ("Extreme Networks ExtremeXOS 30.7", NetworkDevice),
            ("Arista Networks EOS 4.28", NetworkDevice),
            ("Ubiquiti EdgeOS 2.0.9", NetworkDevice),
            ("Brocade Fabric OS 8.2", NetworkDevice),
            ("Juniper ScreenOS 6.3", NetworkDevice),
            ("VyOS 1.4", NetworkDevice),
            ("HP JetDirect", Other),
            // The rules' edges.
            ("windows 10 enterprise", WindowsWorkstation),
            ("macOS 14.2 Sonoma", Macos),
            ("OS X El Capitan", Macos),
            ("Darwin Kernel Version 22.1.0", Macos),
            ("IOS XR 7.1", NetworkDevice),
            ("FortiGate-VM64", NetworkDevice),
            ("Debian GNU 12", Linux),
            ("RHEL 9", Linux),
            ("CentOS 7", Linux),
            ("openSUSE Leap 15.5", Linux),
            ("Fedora 39", Linux),
            ("Alpine 3.19", Linux),
            ("Rocky 9.3", Linux),
            ("AlmaLinux 9", Linux),
            ("Alma 8", Linux),
            ("Kali 2024.1", Linux),
            ("iPadOS 17", Other),
            ("", Other),
            ("   ", Other),
            // Substrings that must not fire: "darwin" holds "win", "Kalimba" holds "kali".
            ("Darwin", Macos),
            ("Kalimba RTOS", Other),
        ];
        for (operating_system, expected) in cases {
            assert_eq!(os_category(operating_system), expected, "{operating_system:?}");
        }
    }

    #[test]
    fn timestamps_with_a_zone_are_converted_to_utc() {
        let expected = utc(2024, 1, 5, 10, 11, 12);
        for text in [
            "2024-01-05T10:11:12Z",
            "2024-01-05T10:11:12.000Z",
            "2024-01-05T12:11:12+02:00",
            "2024-01-05T05:11:12-05:00",
            "2024-01-05 10:11:12Z",
        ] {
            assert_eq!(parse_timestamp(&json!(text)), Some(expected), "{text}");
        }
    }

    #[test]
    fn timestamps_without_a_zone_are_taken_as_utc() {
        let expected = utc(2024, 1, 5, 10, 11, 12);
        for text in ["2024-01-05T10:11:12", "2024-01-05 10:11:12", "2024-01-05T10:11:12.000"] {
            assert_eq!(parse_timestamp(&json!(text)), Some(expected), "{text}");
        }
        let with_millis = parse_timestamp(&json!("2024-01-05T10:11:12.345"));
        assert_eq!(with_millis.map(|time| time.timestamp_subsec_millis()), Some(345));
    }

    #[test]
    fn unix_timestamps_are_seconds_or_milliseconds() {
        let expected = utc(2024, 1, 5, 10, 11, 12);
        for value in [
            json!(1_704_449_472),
            json!("1704449472"),
            json!(" 1704449472 "),
            json!(1_704_449_472_000_i64),
            json!("1704449472000"),
            json!(1_704_449_472.0),
        ] {
            assert_eq!(parse_timestamp(&value), Some(expected), "{value}");
        }
    }

    #[test]
    fn what_is_not_a_timestamp_is_rejected() {
        for value in [
            json!(null),
            json!(true),
            json!([]),
            json!({}),
            json!(""),
            json!("yesterday"),
            json!("2024-13-05T10:11:12Z"),
            json!("2024-01-05"),
            json!("2024-01-05 "),
            json!(i64::MAX),
            json!(u64::MAX),
            json!(1e300),
        ] {
            assert_eq!(parse_timestamp(&value), None, "{value}");
        }
    }

    #[test]
    fn output_markup_is_escaped() {
        let (shown, truncated) = sanitize_output("<script>alert('x')</script> & \"y\"");
        assert_eq!(shown, "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;y&quot;");
        assert!(!truncated);
    }

    #[test]
    fn output_of_exactly_the_limit_is_kept_whole() {
        let text = "é".repeat(DISPLAY_OUTPUT_LIMIT);
        assert_eq!(sanitize_output(&text), (text.clone(), false));
    }

    #[test]
    fn a_megabyte_of_output_is_cut_to_the_limit_in_characters() {
        // Multi-byte characters make a byte-based cut fall inside a character.
        let text = "€<".repeat(512 * 1024);
        let started = std::time::Instant::now();
        let (shown, truncated) = sanitize_output(&text);
        assert!(started.elapsed() < std::time::Duration::from_millis(100));
        assert!(truncated);
        assert!(!shown.contains('<'));
        assert_eq!(shown, "€&lt;".repeat(DISPLAY_OUTPUT_LIMIT / 2));
    }

    #[test]
    fn descriptions_cap_long_strings() {
        let long = "x".repeat(1_000_000);
        let description = describe(&json!(long));
        assert!(description.chars().count() < EXCERPT_CHARS + 20, "{description}");
        assert!(description.ends_with("…\")"));
        assert_eq!(describe(&json!([1, 2])), "an array of 2 items");
    }

    fn unescape(text: &str) -> String {
        text.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&amp;", "&")
    }

    proptest! {
        #[test]
        fn sanitized_output_is_markup_free_and_a_prefix(text in any::<String>()) {
            let (shown, truncated) = sanitize_output(&text);
            prop_assert!(!shown.contains(['<', '>', '"', '\'']));
            let kept = unescape(&shown);
            prop_assert!(text.starts_with(&kept));
            prop_assert_eq!(kept.chars().count(), text.chars().count().min(DISPLAY_OUTPUT_LIMIT));
            prop_assert_eq!(truncated, text.chars().count() > DISPLAY_OUTPUT_LIMIT);
        }

        #[test]
        fn os_category_never_panics(text in any::<String>()) {
            os_category(&text);
        }

        #[test]
        fn parse_timestamp_never_panics(text in any::<String>(), number in any::<f64>(), whole in any::<i64>()) {
            parse_timestamp(&json!(text));
            parse_timestamp(&json!(number));
            parse_timestamp(&json!(whole));
        }
    }
}
