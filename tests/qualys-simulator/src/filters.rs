//! The parameters Qualys accepts on the simulated calls, from the query string and, for a
//! POST, the form body, with Qualys' defaults for what is left out. Parameters the simulator
//! does not know are refused as Qualys refuses them (code 1901), so a client relying on one
//! fails loudly instead of silently receiving unfiltered data.

use std::ops::RangeInclusive;

use chrono::{DateTime, NaiveDate, Utc};

use crate::catalog::KnowledgeBaseVuln;
use crate::data::{Detection, DetectionStatus, Host};

/// Hosts per page without `truncation_limit`, on the host list and detection calls alike.
pub const DEFAULT_TRUNCATION_LIMIT: usize = 1000;
/// The widest `ids` range the KnowledgeBase call accepts: it records every QID asked.
const MAX_QIDS_PER_REQUEST: u64 = 100_000;
/// Parameters of every call, that change nothing in the simulator.
const COMMON: &[&str] = &["action", "output_format", "echo_request"];
const HOST_SELECTION: &[&str] = &["ids", "id_min", "id_max", "vm_processed_after", "truncation_limit"];

/// A request Qualys refuses: HTTP 400 with this SIMPLE_RETURN code and text.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct RequestError {
    pub code: u32,
    pub text: String,
}

impl RequestError {
    fn invalid(name: &str, value: &str) -> Self {
        RequestError { code: 1905, text: format!("parameter {name} has invalid value: {value}") }
    }

    fn missing(name: &str) -> Self {
        RequestError { code: 1903, text: format!("Missing required parameter(s): {name}") }
    }
}

/// The parameters of a call: the query string's, then the form body's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    pub(crate) fn parse(query: Option<&str>, form_body: Option<&[u8]>) -> Self {
        let query = query.unwrap_or_default().as_bytes();
        let pairs = form_urlencoded::parse(query)
            .chain(form_urlencoded::parse(form_body.unwrap_or_default()))
            .map(|(name, value)| (name.into_owned(), value.into_owned()))
            .collect();
        Params { pairs }
    }

    pub(crate) fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// The last value given: the body's wins over the query string's.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().rev().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    /// The query string of the next page: every parameter but `id_min`, once each, in the
    /// order first given, then `id_min`.
    pub(crate) fn next_page_query(&self, id_min: u64) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        let mut written: Vec<&str> = Vec::new();
        for (name, _) in &self.pairs {
            if name != "id_min" && !written.contains(&name.as_str()) {
                written.push(name);
                query.append_pair(name, self.get(name).unwrap_or_default());
            }
        }
        query.append_pair("id_min", &id_min.to_string());
        query.finish()
    }

    /// Refuses unknown parameters, a missing or wrong `action`, and any output but XML.
    fn check(&self, known: &[&[&str]]) -> Result<(), RequestError> {
        let mut unknown: Vec<&str> = Vec::new();
        for (name, _) in &self.pairs {
            let is_known = COMMON.contains(&name.as_str()) || known.iter().any(|list| list.contains(&name.as_str()));
            if !is_known && !unknown.contains(&name.as_str()) {
                unknown.push(name);
            }
        }
        if !unknown.is_empty() {
            return Err(RequestError {
                code: 1901,
                text: format!("Unrecognized parameter(s): {}", unknown.join(", ")),
            });
        }
        match self.get("action") {
            None => return Err(RequestError::missing("action")),
            Some("list") => {}
            Some(other) => return Err(RequestError::invalid("action", other)),
        }
        match self.get("output_format") {
            None | Some("XML") => Ok(()),
            Some(other) => Err(RequestError::invalid("output_format", other)),
        }
    }

    /// `details` must be `expected`, the only level of detail the simulator serves.
    fn require_details(&self, expected: &str) -> Result<(), RequestError> {
        match self.get("details") {
            Some(details) if details == expected => Ok(()),
            Some(details) => Err(RequestError::invalid("details", details)),
            None => Err(RequestError::missing("details")),
        }
    }

    fn parsed<T>(&self, name: &str, parse: impl Fn(&str) -> Option<T>) -> Result<Option<T>, RequestError> {
        self.get(name).map(|value| parse(value).ok_or_else(|| RequestError::invalid(name, value))).transpose()
    }
}

/// A comma list of ids and `a-b` ranges, as in `ids=1,5-9`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct IdSet(Vec<RangeInclusive<u64>>);

impl IdSet {
    pub(crate) fn parse(text: &str) -> Option<IdSet> {
        let range = |part: &str| -> Option<RangeInclusive<u64>> {
            let part = part.trim();
            let (low, high) = part.split_once('-').unwrap_or((part, part));
            let (low, high) = (low.trim().parse().ok()?, high.trim().parse().ok()?);
            (low <= high).then_some(low..=high)
        };
        text.split(',').map(range).collect::<Option<Vec<_>>>().map(IdSet)
    }

    pub(crate) fn contains(&self, id: u64) -> bool {
        self.0.iter().any(|range| range.contains(&id))
    }

    fn count(&self) -> u64 {
        self.0.iter().map(|range| range.end() - range.start() + 1).sum()
    }

    /// Every id, ranges expanded, in the order given.
    pub(crate) fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.0.iter().flat_map(Clone::clone)
    }
}

/// `YYYY-MM-DD` (midnight UTC) or `YYYY-MM-DDTHH:MM:SSZ`, as Qualys takes dates.
fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return day.and_hms_opt(0, 0, 0).map(|time| time.and_utc());
    }
    DateTime::parse_from_rfc3339(text).ok().map(|time| time.with_timezone(&Utc))
}

/// Hosts per page: `None` for `truncation_limit=0`, no limit.
fn truncation_limit(params: &Params) -> Result<Option<usize>, RequestError> {
    let limit = params.parsed("truncation_limit", |text| text.parse::<usize>().ok())?;
    Ok(match limit.unwrap_or(DEFAULT_TRUNCATION_LIMIT) {
        0 => None,
        limit => Some(limit),
    })
}

/// Which hosts a host list or detection call is about.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct HostSelection {
    ids: Option<IdSet>,
    id_min: Option<u64>,
    id_max: Option<u64>,
    vm_processed_after: Option<DateTime<Utc>>,
    /// Hosts per page; `None`: all of them.
    pub truncation_limit: Option<usize>,
}

impl HostSelection {
    fn from_params(params: &Params) -> Result<Self, RequestError> {
        Ok(HostSelection {
            ids: params.parsed("ids", IdSet::parse)?,
            id_min: params.parsed("id_min", |text| text.parse().ok())?,
            id_max: params.parsed("id_max", |text| text.parse().ok())?,
            vm_processed_after: params.parsed("vm_processed_after", parse_time)?,
            truncation_limit: truncation_limit(params)?,
        })
    }

    pub(crate) fn matches(&self, host: &Host) -> bool {
        self.ids.as_ref().is_none_or(|ids| ids.contains(host.id))
            && self.id_min.is_none_or(|min| host.id >= min)
            && self.id_max.is_none_or(|max| host.id <= max)
            && self.vm_processed_after.is_none_or(|after| host.last_vm_processed >= after)
    }
}

/// `GET|POST /api/2.0/fo/asset/host/?action=list&details=None`.
pub(crate) fn host_list_request(params: &Params) -> Result<HostSelection, RequestError> {
    params.check(&[HOST_SELECTION, &["details"]])?;
    params.require_details("None")?;
    HostSelection::from_params(params)
}

/// `GET|POST /api/2.0/fo/asset/host/vm/detection/?action=list`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DetectionRequest {
    pub hosts: HostSelection,
    statuses: Vec<DetectionStatus>,
    updated_since: Option<DateTime<Utc>>,
    pub show_results: bool,
}

impl DetectionRequest {
    /// `show_igs` is accepted and ignored: Info detections are always served.
    const PARAMETERS: &[&str] = &["status", "detection_updated_since", "show_results", "show_igs"];

    pub(crate) fn from_params(params: &Params) -> Result<Self, RequestError> {
        params.check(&[HOST_SELECTION, Self::PARAMETERS])?;
        let statuses = params.parsed("status", |text| {
            text.split(',').map(|status| DetectionStatus::parse(status.trim())).collect::<Option<Vec<_>>>()
        })?;
        let flag = |text: &str| match text {
            "0" => Some(false),
            "1" => Some(true),
            _ => None,
        };
        Ok(DetectionRequest {
            hosts: HostSelection::from_params(params)?,
            statuses: statuses.unwrap_or_else(|| DetectionStatus::DEFAULT.to_vec()),
            updated_since: params.parsed("detection_updated_since", parse_time)?,
            show_results: params.parsed("show_results", flag)?.unwrap_or(true),
        })
    }

    pub(crate) fn detection_matches(&self, detection: &Detection) -> bool {
        self.statuses.contains(&detection.status)
            && self.updated_since.is_none_or(|since| detection.last_update >= since)
    }
}

/// `GET|POST /api/2.0/fo/knowledge_base/vuln/?action=list&details=All`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KnowledgeBaseRequest {
    pub ids: Option<IdSet>,
    last_modified_after: Option<DateTime<Utc>>,
}

impl KnowledgeBaseRequest {
    pub(crate) fn from_params(params: &Params) -> Result<Self, RequestError> {
        params.check(&[&["details", "ids", "last_modified_after"]])?;
        params.require_details("All")?;
        let ids = params.parsed("ids", |text| IdSet::parse(text).filter(|ids| ids.count() <= MAX_QIDS_PER_REQUEST))?;
        Ok(KnowledgeBaseRequest { ids, last_modified_after: params.parsed("last_modified_after", parse_time)? })
    }

    pub(crate) fn matches(&self, vuln: &KnowledgeBaseVuln) -> bool {
        let modified = parse_time(vuln.last_modified);
        self.ids.as_ref().is_none_or(|ids| ids.contains(u64::from(vuln.qid)))
            && self.last_modified_after.is_none_or(|after| modified.is_some_and(|modified| modified >= after))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(query: &str) -> Params {
        Params::parse(Some(query), None)
    }

    #[test]
    fn id_sets_take_lists_and_ranges() {
        let ids = IdSet::parse("5, 7-9,12").expect("valid");
        assert!([5, 7, 8, 9, 12].into_iter().all(|id| ids.contains(id)));
        assert!(!ids.contains(6) && !ids.contains(10));
        assert_eq!(ids.ids().collect::<Vec<_>>(), vec![5, 7, 8, 9, 12]);
        for bad in ["", "1,,2", "9-7", "a", "1-2-3"] {
            assert_eq!(IdSet::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn body_parameters_follow_and_override_the_query_string() {
        let merged = Params::parse(Some("action=list&ids=1"), Some(b"ids=2%2C3&status=Fixed"));
        assert_eq!(merged.get("ids"), Some("2,3"));
        assert_eq!(merged.get("status"), Some("Fixed"));
        assert_eq!(merged.next_page_query(77), "action=list&ids=2%2C3&status=Fixed&id_min=77");
        assert_eq!(params("id_min=5&action=list").next_page_query(9), "action=list&id_min=9");
    }

    #[test]
    fn qualys_defaults_apply_when_parameters_are_left_out() {
        let request = DetectionRequest::from_params(&params("action=list")).expect("valid");
        assert_eq!(request.hosts.truncation_limit, Some(DEFAULT_TRUNCATION_LIMIT));
        assert_eq!(request.statuses, DetectionStatus::DEFAULT.to_vec());
        assert!(request.show_results);
        let request = DetectionRequest::from_params(&params("action=list&truncation_limit=0&status=Fixed,re-opened"));
        let request = request.expect("valid");
        assert_eq!(request.hosts.truncation_limit, None);
        assert_eq!(request.statuses, vec![DetectionStatus::Fixed, DetectionStatus::ReOpened]);
    }

    #[test]
    fn times_are_days_or_utc_datetimes() {
        let day = parse_time("2024-05-01").expect("a day");
        assert_eq!(day.to_rfc3339(), "2024-05-01T00:00:00+00:00");
        assert_eq!(parse_time("2024-05-01T10:00:00Z").map(|time| time.timestamp()), Some(day.timestamp() + 36_000));
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn wrong_requests_get_qualys_codes() {
        let code = |query: &str| DetectionRequest::from_params(&params(query)).err().map(|error| error.code);
        assert_eq!(code("action=list&severity=5"), Some(1901));
        assert_eq!(code("ids=1"), Some(1903));
        for wrong in
            ["action=delete", "action=list&status=Closed", "action=list&show_results=yes", "action=list&id_min=x"]
        {
            assert_eq!(code(wrong), Some(1905), "{wrong}");
        }
        assert_eq!(code("action=list&output_format=JSON"), Some(1905));
        let error = DetectionRequest::from_params(&params("action=list&foo=1&bar=2&foo=3")).err();
        assert_eq!(error.map(|error| error.text), Some("Unrecognized parameter(s): foo, bar".into()));
        assert_eq!(host_list_request(&params("action=list")).err().map(|error| error.code), Some(1903));
        assert_eq!(host_list_request(&params("action=list&details=All")).err().map(|error| error.code), Some(1905));
        let wide = params("action=list&details=All&ids=1-200000");
        assert_eq!(KnowledgeBaseRequest::from_params(&wide).err().map(|error| error.code), Some(1905));
    }
}
