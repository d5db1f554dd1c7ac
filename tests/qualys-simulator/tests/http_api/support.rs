//! Calls to the simulator as vulnflow's Qualys connector makes them, a strict reader of its
//! XML, and the dataset's truth written as the answers must show it.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use qualys_simulator::{Detection, Host, Route, RunningSimulator, SimulatorConfig};
use quick_xml::events::Event;
use quick_xml::reader::Reader;
use reqwest::header::HeaderMap;
use reqwest::{Client, RequestBuilder, StatusCode};

pub(crate) const USERNAME: &str = "sim-user";
pub(crate) const PASSWORD: &str = "sim-password";
pub(crate) const DECLARATION: &str = r#"<?xml version="1.0" encoding="UTF-8" ?>"#;
pub(crate) const ALL_STATUSES: &str = "New,Active,Re-Opened,Fixed";

pub(crate) async fn start(config: SimulatorConfig) -> (RunningSimulator, Client) {
    let simulator = RunningSimulator::start(config).await.expect("simulator starts");
    (simulator, Client::new())
}

pub(crate) fn url(simulator: &RunningSimulator, route: Route, query: &str) -> String {
    format!("{}{}?{query}", simulator.base_url, route.path())
}

/// An answer; `document` is its root element when it is XML, which must then be well formed.
pub(crate) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
    pub document: Option<Element>,
}

impl Answer {
    pub(crate) fn document(&self) -> &Element {
        self.document.as_ref().unwrap_or_else(|| panic!("an XML answer, got {}: {}", self.status, self.body))
    }

    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|value| value.to_str().ok()).unwrap_or_else(|| panic!("header {name}"))
    }

    /// The CODE and TEXT of a SIMPLE_RETURN.
    pub(crate) fn simple_return(&self) -> (u32, String) {
        let response = self.document().expect_child("RESPONSE");
        assert_eq!(self.document().name, "SIMPLE_RETURN");
        let code = response.text_of("CODE").and_then(|code| code.parse().ok()).expect("a numeric CODE");
        (code, response.text_of("TEXT").expect("a TEXT").to_owned())
    }
}

/// With the right credentials and `X-Requested-With`, as the connector sends every call.
pub(crate) fn authorized(request: RequestBuilder) -> RequestBuilder {
    request.basic_auth(USERNAME, Some(PASSWORD)).header("X-Requested-With", "vulnflow")
}

pub(crate) async fn send(request: RequestBuilder) -> Answer {
    let response = request.send().await.expect("request sent");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.text().await.expect("body read");
    let is_xml = headers.get("content-type").is_some_and(|value| value.as_bytes().starts_with(b"text/xml"));
    let document = is_xml.then(|| parse_document(&body).unwrap_or_else(|error| panic!("{error}:\n{body}")));
    Answer { status, headers, body, document }
}

pub(crate) async fn get(client: &Client, url: &str) -> Answer {
    send(authorized(client.get(url))).await
}

/// A POST of `form` as an `application/x-www-form-urlencoded` body.
pub(crate) async fn post_form(client: &Client, url: &str, form: &str) -> Answer {
    let request = client.post(url).header("Content-Type", "application/x-www-form-urlencoded").body(form.to_owned());
    send(authorized(request)).await
}

/// An element: its children, and its value (text and CDATA, whitespace outside CDATA at
/// either end left out, entities decoded outside CDATA only).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Element {
    pub name: String,
    pub attributes: Vec<(String, String)>,
    pub children: Vec<Element>,
    pub text: String,
}

impl Element {
    pub(crate) fn children<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |child| child.name == name)
    }

    pub(crate) fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|child| child.name == name)
    }

    pub(crate) fn expect_child(&self, name: &str) -> &Element {
        self.child(name).unwrap_or_else(|| panic!("{} has no {name}", self.name))
    }

    pub(crate) fn text_of(&self, name: &str) -> Option<&str> {
        self.child(name).map(|child| child.text.as_str())
    }

    pub(crate) fn names(&self) -> Vec<&str> {
        self.children.iter().map(|child| child.name.as_str()).collect()
    }
}

/// Pieces of an element's content: (is CDATA, text).
#[derive(Default)]
struct Content {
    element: Option<Element>,
    pieces: Vec<(bool, String)>,
}

/// Parses a whole answer strictly: the declaration first, a DOCTYPE naming the root, a comment
/// before the root and Qualys' CONFIDENTIAL comment after it, nothing else outside the root.
pub(crate) fn parse_document(body: &str) -> Result<Element, String> {
    if !body.starts_with(DECLARATION) {
        return Err("no XML declaration first".into());
    }
    let mut reader = Reader::from_str(body);
    reader.config_mut().check_comments = true;
    let mut stack: Vec<Content> = Vec::new();
    let (mut doctype, mut root, mut comment_before, mut comment_after) = (None, None, false, false);
    loop {
        let event =
            reader.read_event().map_err(|error| format!("not well formed at {}: {error}", reader.error_position()))?;
        match event {
            Event::Decl(_) | Event::PI(_) => {}
            Event::DocType(text) => doctype = Some(text.trim().to_owned()),
            Event::Comment(text) if stack.is_empty() => {
                comment_before |= root.is_none();
                comment_after |= root.is_some() && text.contains("CONFIDENTIAL AND PROPRIETARY INFORMATION");
            }
            Event::Comment(_) => {}
            Event::Start(tag) | Event::Empty(tag) if root.is_some() && stack.is_empty() => {
                return Err(format!("a second root element {}", tag.name().as_ref()));
            }
            Event::Start(tag) => stack.push(Content { element: Some(element(&tag)?), pieces: Vec::new() }),
            Event::Empty(tag) => close(&mut stack, &mut root, element(&tag)?, Vec::new()),
            Event::End(_) => {
                let content = stack.pop().ok_or("an end tag without a start")?;
                let element = content.element.ok_or("an end tag without a start")?;
                close(&mut stack, &mut root, element, content.pieces);
            }
            Event::Text(text) if stack.is_empty() => {
                if !text.trim().is_empty() {
                    return Err(format!("text outside the root: {:?}", &*text));
                }
            }
            Event::Text(text) => push(&mut stack, false, text.xml10_content().into_owned()),
            Event::CData(text) => push(&mut stack, true, text.xml10_content().into_owned()),
            Event::GeneralRef(reference) => push(&mut stack, false, resolve(&reference)?),
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(format!("{} element(s) left open at the end", stack.len()));
    }
    let root = root.ok_or("no root element")?;
    let expected_doctype = format!("{} SYSTEM \"https://qualysapi.qualys.com/", root.name);
    if !doctype.as_ref().is_some_and(|doctype| doctype.starts_with(&expected_doctype)) {
        return Err(format!("DOCTYPE {doctype:?} does not name {}", root.name));
    }
    if !comment_before || !comment_after {
        return Err("no comment before the root, or no CONFIDENTIAL comment after it".into());
    }
    Ok(root)
}

fn element(tag: &quick_xml::events::BytesStart<'_>) -> Result<Element, String> {
    let mut attributes = Vec::new();
    for attribute in tag.attributes() {
        let attribute = attribute.map_err(|error| error.to_string())?;
        let value =
            attribute.normalized_value(quick_xml::XmlVersion::Explicit1_0).map_err(|error| error.to_string())?;
        attributes.push((attribute.key.as_ref().to_owned(), value.into_owned()));
    }
    Ok(Element { name: tag.name().as_ref().to_owned(), attributes, children: Vec::new(), text: String::new() })
}

fn push(stack: &mut [Content], is_cdata: bool, text: String) {
    if let Some(content) = stack.last_mut() {
        content.pieces.push((is_cdata, text));
    }
}

/// The five predefined entities and character references.
fn resolve(reference: &quick_xml::events::BytesRef<'_>) -> Result<String, String> {
    if let Some(character) = reference.resolve_char_ref().map_err(|error| error.to_string())? {
        return Ok(character.to_string());
    }
    let text = match &**reference {
        "amp" => "&",
        "lt" => "<",
        "gt" => ">",
        "apos" => "'",
        "quot" => "\"",
        other => return Err(format!("undefined entity &{other};")),
    };
    Ok(text.to_owned())
}

/// Ends `element`, its value made of `pieces`, as a child of the open element or as the root.
fn close(stack: &mut [Content], root: &mut Option<Element>, mut element: Element, mut pieces: Vec<(bool, String)>) {
    while let Some((false, text)) = pieces.first_mut() {
        *text = text.trim_start().to_owned();
        if !text.is_empty() {
            break;
        }
        pieces.remove(0);
    }
    while let Some((false, text)) = pieces.last_mut() {
        *text = text.trim_end().to_owned();
        if !text.is_empty() {
            break;
        }
        pieces.pop();
    }
    // Whitespace between children is indentation, not a value.
    if element.children.is_empty() || pieces.iter().any(|(is_cdata, text)| *is_cdata || !text.trim().is_empty()) {
        element.text = pieces.into_iter().map(|(_, text)| text).collect();
    }
    match stack.last_mut().and_then(|parent| parent.element.as_mut()) {
        Some(parent) => parent.children.push(element),
        None => *root = Some(element),
    }
}

/// Qualys' time format, written here independently of the simulator.
pub(crate) fn qualys_time(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The elements a HOST must hold, in order, for this host of the dataset.
pub(crate) fn expected_host_fields(host: &Host) -> Vec<(&'static str, String)> {
    let mut fields = vec![
        ("ID", host.id.to_string()),
        ("ASSET_ID", host.asset_id.to_string()),
        ("IP", host.ip.clone()),
        ("TRACKING_METHOD", host.tracking_method.to_owned()),
    ];
    fields.extend(host.os.map(|os| ("OS", os.to_owned())));
    if let Some(dns) = &host.dns_data {
        fields.push(("DNS", dns.fqdn.clone().unwrap_or_else(|| dns.hostname.clone())));
        fields.push(("DNS_DATA", String::new()));
    }
    fields.extend(host.netbios.clone().map(|netbios| ("NETBIOS", netbios)));
    fields.push(("LAST_SCAN_DATETIME", qualys_time(host.last_scan)));
    fields.push(("LAST_VM_SCANNED_DATE", qualys_time(host.last_scan)));
    fields.push(("DETECTION_LIST", String::new()));
    fields
}

/// The elements a DETECTION must hold, in order, for this detection of the dataset.
pub(crate) fn expected_detection_fields(detection: &Detection, show_results: bool) -> Vec<(&'static str, String)> {
    let mut fields = Vec::new();
    fields.extend(detection.unique_vuln_id.map(|id| ("UNIQUE_VULN_ID", id.to_string())));
    fields.push(("QID", detection.qid.to_string()));
    fields.push(("TYPE", detection.detection_type.as_str().to_owned()));
    fields.push(("SEVERITY", detection.severity.to_string()));
    if let (Some(port), Some(protocol)) = (detection.port, detection.protocol) {
        fields.push(("PORT", port.to_string()));
        fields.push(("PROTOCOL", protocol.to_owned()));
        fields.push(("SSL", if detection.ssl { "1" } else { "0" }.to_owned()));
    }
    if show_results && !detection.results.is_empty() {
        fields.push(("RESULTS", detection.results.clone()));
    }
    fields.push(("STATUS", detection.status.as_str().to_owned()));
    fields.push(("FIRST_FOUND_DATETIME", qualys_time(detection.first_found)));
    fields.push(("LAST_FOUND_DATETIME", qualys_time(detection.last_found)));
    fields.push(("TIMES_FOUND", detection.times_found.to_string()));
    fields.push(("LAST_TEST_DATETIME", qualys_time(detection.last_test)));
    fields.push(("LAST_UPDATE_DATETIME", qualys_time(detection.last_update)));
    fields.extend(detection.last_fixed.map(|fixed| ("LAST_FIXED_DATETIME", qualys_time(fixed))));
    fields.push(("IS_IGNORED", if detection.is_ignored { "1" } else { "0" }.to_owned()));
    fields.push(("IS_DISABLED", if detection.is_disabled { "1" } else { "0" }.to_owned()));
    fields.push(("LAST_PROCESSED_DATETIME", qualys_time(detection.last_processed)));
    fields
}

fn fields(element: &Element) -> Vec<(&str, &str)> {
    element.children.iter().map(|child| (child.name.as_str(), child.text.as_str())).collect()
}

fn as_refs<'a>(fields: &'a [(&'static str, String)]) -> Vec<(&'a str, &'a str)> {
    fields.iter().map(|(name, value)| (*name, value.as_str())).collect()
}

/// Asserts that a HOST element shows `host` with exactly `detections`, in order.
pub(crate) fn assert_host(element: &Element, host: &Host, detections: &[&Detection], show_results: bool) {
    assert_eq!(fields(element), as_refs(&expected_host_fields(host)), "host {}", host.id);
    if let Some(dns) = &host.dns_data {
        let dns_data = element.expect_child("DNS_DATA");
        let mut expected = vec![("HOSTNAME", dns.hostname.as_str())];
        expected.extend(dns.domain.as_deref().map(|domain| ("DOMAIN", domain)));
        expected.extend(dns.fqdn.as_deref().map(|fqdn| ("FQDN", fqdn)));
        assert_eq!(fields(dns_data), expected);
    }
    let shown: Vec<&Element> = element.expect_child("DETECTION_LIST").children("DETECTION").collect();
    assert_eq!(shown.len(), detections.len(), "detections of host {}", host.id);
    for (shown, detection) in shown.into_iter().zip(detections) {
        assert_eq!(fields(shown), as_refs(&expected_detection_fields(detection, show_results)), "host {}", host.id);
    }
}

/// The HOST elements of a detection page (none without a HOST_LIST).
pub(crate) fn page_hosts(answer: &Answer) -> Vec<&Element> {
    let response = answer.document().expect_child("RESPONSE");
    response.child("HOST_LIST").map(|list| list.children("HOST").collect()).unwrap_or_default()
}

pub(crate) fn host_id(host: &Element) -> u64 {
    host.text_of("ID").and_then(|id| id.parse().ok()).expect("a numeric host ID")
}

/// The WARNING's URL of a truncated page.
pub(crate) fn next_page_url(answer: &Answer) -> Option<String> {
    let warning = answer.document().expect_child("RESPONSE").child("WARNING")?;
    assert_eq!(warning.text_of("CODE"), Some("1980"));
    warning.text_of("URL").map(str::to_owned)
}

/// Follows the WARNING URLs from `url` to the last page; returns the pages.
pub(crate) async fn walk_pages(client: &Client, url: &str) -> Vec<Answer> {
    let mut pages = Vec::new();
    let mut next = Some(url.to_owned());
    while let Some(url) = next {
        assert!(pages.len() < 200, "more than 200 pages");
        let page = get(client, &url).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        next = next_page_url(&page);
        pages.push(page);
    }
    pages
}

/// The hosts an answer must show, in order, each with the detections `keep` lets through: the
/// hosts left without any are not shown.
pub(crate) fn hosts_showing(hosts: &[Host], keep: impl Fn(&Detection) -> bool) -> Vec<(&Host, Vec<&Detection>)> {
    hosts
        .iter()
        .map(|host| (host, host.detections.iter().filter(|detection| keep(detection)).collect::<Vec<_>>()))
        .filter(|(_, detections)| !detections.is_empty())
        .collect()
}

/// Asserts that the HOST elements show exactly the `expected` hosts and detections.
pub(crate) fn assert_hosts(shown: &[&Element], expected: &[(&Host, Vec<&Detection>)]) {
    assert_eq!(shown.len(), expected.len(), "hosts shown");
    for (element, (host, detections)) in shown.iter().zip(expected) {
        assert_host(element, host, detections, true);
    }
}

/// The ids of the hosts of a page, checking none repeats.
pub(crate) fn distinct_host_ids(hosts: &[&Element]) -> Vec<u64> {
    let ids: Vec<u64> = hosts.iter().map(|host| host_id(host)).collect();
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len(), "a host repeats");
    ids
}

/// A comma list of ids for an `ids` parameter.
pub(crate) fn id_list(ids: impl IntoIterator<Item = u64>) -> String {
    ids.into_iter().map(|id| id.to_string()).collect::<Vec<_>>().join(",")
}

/// The ids of an ID_SET, ranges expanded, and how many ranges it had.
pub(crate) fn id_set(answer: &Answer) -> (Vec<u64>, usize) {
    let Some(set) = answer.document().expect_child("RESPONSE").child("ID_SET") else {
        return (Vec::new(), 0);
    };
    let mut ids = Vec::new();
    let mut ranges = 0;
    for entry in &set.children {
        match entry.name.as_str() {
            "ID" => ids.push(entry.text.parse().expect("an id")),
            "ID_RANGE" => {
                let (first, last) = entry.text.split_once('-').expect("first-last");
                let (first, last): (u64, u64) = (first.parse().expect("first"), last.parse().expect("last"));
                assert!(first < last);
                ids.extend(first..=last);
                ranges += 1;
            }
            other => panic!("{other} in an ID_SET"),
        }
    }
    (ids, ranges)
}
