//! The export request filters Tenable accepts, parsed from the request body, with Tenable's
//! defaults for what is left out. Unsupported filters are rejected rather than ignored, so a
//! client relying on a filter the simulator does not emulate fails loudly instead of silently
//! receiving unfiltered data.

use serde_json::{Map, Value};

use crate::data::{AssetFacts, AssetTag, VulnFacts};

/// Without any time filter Tenable exports only records last found in this window.
pub const DEFAULT_WINDOW_DAYS: i64 = 30;
const DAY_MS: i64 = 86_400_000;
const TAG_PREFIX: &str = "tag.";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VulnState {
    Open,
    Reopened,
    Fixed,
}

impl VulnState {
    pub const ALL: [VulnState; 3] = [VulnState::Open, VulnState::Reopened, VulnState::Fixed];

    pub fn as_str(self) -> &'static str {
        match self {
            VulnState::Open => "OPEN",
            VulnState::Reopened => "REOPENED",
            VulnState::Fixed => "FIXED",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str().eq_ignore_ascii_case(text))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 5] =
        [Severity::Info, Severity::Low, Severity::Medium, Severity::High, Severity::Critical];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// Tenable's `severity_id`: 0 (info) to 4 (critical).
    pub fn id(self) -> u8 {
        self as u8
    }

    pub(crate) fn from_id(id: u8) -> Self {
        Self::ALL[usize::from(id.min(4))]
    }

    fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|severity| severity.as_str().eq_ignore_ascii_case(text))
    }
}

/// `"tag.<category>": ["value", ...]`: the asset carries that tag with one of the values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagFilter {
    pub category: String,
    pub values: Vec<String>,
}

impl TagFilter {
    fn matches(&self, tags: &[AssetTag]) -> bool {
        tags.iter().any(|tag| tag.key == self.category && self.values.iter().any(|value| value == tag.value))
    }
}

/// Filters of `POST /vulns/export`. Times are unix seconds; each keeps records at or after it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VulnFilters {
    /// Records seen (OPEN, REOPENED: `last_found`) or fixed (FIXED: `last_fixed`) since then.
    pub since: Option<i64>,
    pub first_found: Option<i64>,
    pub last_found: Option<i64>,
    pub last_fixed: Option<i64>,
    /// Empty means Tenable's default: OPEN and REOPENED only.
    pub states: Vec<VulnState>,
    /// Empty means every severity.
    pub severities: Vec<Severity>,
    pub plugin_ids: Vec<u64>,
    pub tags: Vec<TagFilter>,
}

impl VulnFilters {
    /// What a full sync must ask for: every state, and a time filter that disables the
    /// 30-day default window.
    pub fn everything() -> Self {
        Self { since: Some(0), states: VulnState::ALL.to_vec(), ..Self::default() }
    }

    /// Parses the `filters` object of an export request; `null` (absent) means no filter.
    pub fn from_json(filters: &Value) -> Result<Self, String> {
        let mut parsed = Self::default();
        for (key, value) in filter_entries(filters)? {
            match key.as_str() {
                "since" => parsed.since = Some(unix_seconds(key, value)?),
                "first_found" => parsed.first_found = Some(unix_seconds(key, value)?),
                "last_found" => parsed.last_found = Some(unix_seconds(key, value)?),
                "last_fixed" => parsed.last_fixed = Some(unix_seconds(key, value)?),
                "state" => parsed.states = parse_each(key, value, VulnState::parse)?,
                "severity" => parsed.severities = parse_each(key, value, Severity::parse)?,
                "plugin_id" => parsed.plugin_ids = plugin_ids(value)?,
                _ => parsed.tags.push(tag_filter(key, value)?),
            }
        }
        Ok(parsed)
    }

    fn has_time_filter(&self) -> bool {
        self.since.is_some() || self.first_found.is_some() || self.last_found.is_some() || self.last_fixed.is_some()
    }

    pub(crate) fn matches(&self, vuln: &VulnFacts, asset: &AssetFacts, now_ms: i64) -> bool {
        let lifecycle = &vuln.lifecycle;
        let state_wanted = if self.states.is_empty() {
            lifecycle.state != VulnState::Fixed
        } else {
            self.states.contains(&lifecycle.state)
        };
        let window_start_ms = now_ms - DEFAULT_WINDOW_DAYS * DAY_MS;
        let in_default_window = self.has_time_filter() || lifecycle.last_found_ms >= window_start_ms;
        state_wanted
            && in_default_window
            && at_or_after(Some(lifecycle.changed_ms()), self.since)
            && at_or_after(Some(lifecycle.first_found_ms), self.first_found)
            && at_or_after(Some(lifecycle.last_found_ms), self.last_found)
            && at_or_after(lifecycle.last_fixed_ms, self.last_fixed)
            && (self.severities.is_empty() || self.severities.contains(&vuln.severity))
            && (self.plugin_ids.is_empty() || self.plugin_ids.contains(&u64::from(vuln.plugin_id)))
            && self.tags.iter().all(|tag| tag.matches(&asset.tags))
    }
}

/// Filters of `POST /assets/export`. Times are unix seconds; each keeps assets at or after it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AssetFilters {
    pub created_at: Option<i64>,
    pub updated_at: Option<i64>,
    /// Assets last seen by a scan at or after this time.
    pub last_assessed: Option<i64>,
    pub tags: Vec<TagFilter>,
}

impl AssetFilters {
    pub fn from_json(filters: &Value) -> Result<Self, String> {
        let mut parsed = Self::default();
        for (key, value) in filter_entries(filters)? {
            match key.as_str() {
                "created_at" => parsed.created_at = Some(unix_seconds(key, value)?),
                "updated_at" => parsed.updated_at = Some(unix_seconds(key, value)?),
                "last_assessed" => parsed.last_assessed = Some(unix_seconds(key, value)?),
                _ => parsed.tags.push(tag_filter(key, value)?),
            }
        }
        Ok(parsed)
    }

    pub(crate) fn matches(&self, asset: &AssetFacts) -> bool {
        at_or_after(Some(asset.created_ms), self.created_at)
            && at_or_after(Some(asset.updated_ms), self.updated_at)
            && at_or_after(Some(asset.last_seen_ms), self.last_assessed)
            && self.tags.iter().all(|tag| tag.matches(&asset.tags))
    }
}

fn at_or_after(time_ms: Option<i64>, threshold_secs: Option<i64>) -> bool {
    match (time_ms, threshold_secs) {
        (_, None) => true,
        (Some(time_ms), Some(threshold)) => time_ms >= threshold.saturating_mul(1000),
        (None, Some(_)) => false,
    }
}

fn filter_entries(filters: &Value) -> Result<&Map<String, Value>, String> {
    static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    match filters {
        Value::Null => Ok(EMPTY.get_or_init(Map::new)),
        Value::Object(entries) => Ok(entries),
        _ => Err("filters must be an object".to_owned()),
    }
}

fn unix_seconds(key: &str, value: &Value) -> Result<i64, String> {
    value
        .as_i64()
        .filter(|seconds| *seconds >= 0)
        .ok_or_else(|| format!("filters.{key} must be a unix timestamp in seconds, got {value}"))
}

fn string_list<'a>(key: &str, value: &'a Value) -> Result<Vec<&'a str>, String> {
    let items = value.as_array().ok_or_else(|| format!("filters.{key} must be an array"))?;
    items
        .iter()
        .map(|item| item.as_str().ok_or_else(|| format!("filters.{key} must hold strings, got {item}")))
        .collect()
}

fn parse_each<T>(key: &str, value: &Value, parse: fn(&str) -> Option<T>) -> Result<Vec<T>, String> {
    string_list(key, value)?
        .into_iter()
        .map(|text| parse(text).ok_or_else(|| format!("filters.{key}: invalid value {text:?}")))
        .collect()
}

fn plugin_ids(value: &Value) -> Result<Vec<u64>, String> {
    let items = value.as_array().ok_or("filters.plugin_id must be an array")?;
    items
        .iter()
        .map(|item| item.as_u64().ok_or_else(|| format!("filters.plugin_id must hold integers, got {item}")))
        .collect()
}

fn tag_filter(key: &str, value: &Value) -> Result<TagFilter, String> {
    let category = key
        .strip_prefix(TAG_PREFIX)
        .filter(|category| !category.is_empty())
        .ok_or_else(|| format!("filter {key:?} is not supported by the simulator"))?;
    let values = string_list(key, value)?.into_iter().map(str::to_owned).collect();
    Ok(TagFilter { category: category.to_owned(), values })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn parses_tenable_filters_case_insensitively() {
        let filters = VulnFilters::from_json(&json!({
            "since": 0,
            "state": ["open", "Fixed"],
            "severity": ["HIGH", "critical"],
            "plugin_id": [19506],
            "tag.env": ["prod"],
        }))
        .expect("valid filters");
        assert_eq!(filters.since, Some(0));
        assert_eq!(filters.states, vec![VulnState::Open, VulnState::Fixed]);
        assert_eq!(filters.severities, vec![Severity::High, Severity::Critical]);
        assert_eq!(filters.plugin_ids, vec![19506]);
        assert_eq!(filters.tags, vec![TagFilter { category: "env".into(), values: vec!["prod".into()] }]);
    }

    #[test]
    fn rejects_invalid_and_unsupported_filters() {
        for bad in [
            json!({"state": ["CLOSED"]}),
            json!({"severity": "high"}),
            json!({"since": "yesterday"}),
            json!({"since": -1}),
            json!({"cidr_range": "10.0.0.0/8"}),
            json!([1, 2]),
        ] {
            assert!(VulnFilters::from_json(&bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn absent_filters_mean_tenable_defaults() {
        assert_eq!(VulnFilters::from_json(&Value::Null), Ok(VulnFilters::default()));
        assert_eq!(AssetFilters::from_json(&json!({})), Ok(AssetFilters::default()));
    }
}
