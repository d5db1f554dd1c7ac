//! The real API's failure modes, to inject: what to break ([`Faults`]) and, while serving, how
//! many times it broke already ([`FaultInjector`]).

use std::ops::RangeInclusive;
use std::str::FromStr;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::Response;
use simulator_kit::{FireCount, load_balancer_error, status_code, text_of_length};

use crate::answers::DetectionPage;
use crate::api::error;
use crate::traffic::Route;

/// Misbehaviours to inject; the default injects none. Build with
/// `Faults { field: ..., ..Default::default() }` so that fields added later do not break
/// callers.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Calls answer 409 code 1965 (rate limit) with `X-RateLimit-ToWait-Sec` as configured.
    pub rate_limited: Option<RateLimited>,
    /// Calls answer 409 code 1960 (concurrency limit).
    pub concurrency_limited: Option<FirstCalls>,
    /// Every call with the right credentials answers 401 with this code instead of its answer.
    pub credential_error: Option<CredentialError>,
    pub server_errors: Option<ServerErrors>,
    /// A detection page holding a host of these ids answers 200 with a body cut in the middle
    /// of that host's element, every time.
    pub malformed_detection_hosts: Option<RangeInclusive<u64>>,
    /// Every detection page waits this long before answering.
    pub slow_detection_pages: Option<Duration>,
    /// The first detection served of the dataset's first host carries RESULTS of this many
    /// bytes, markup and `&apos;` included.
    pub huge_results: Option<usize>,
}

/// The first `calls` calls of `route`; of every route, known or not, when `route` is `None`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FirstCalls {
    pub calls: u32,
    pub route: Option<Route>,
}

impl FirstCalls {
    fn covers(&self, route: Option<Route>) -> bool {
        self.route.is_none() || self.route == route
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimited {
    pub first: FirstCalls,
    pub to_wait_secs: u32,
}

/// `status` for the first calls: 500 with Qualys' SIMPLE_RETURN (code 999), any other (502,
/// 503...) with the HTML page of a load balancer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerErrors {
    pub status: u16,
    pub first: FirstCalls,
}

/// Credentials Qualys knows but will not serve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CredentialError {
    /// Code 2003: the account's registration was never completed.
    RegistrationRequired,
    /// Code 2011: the account requires SecureID, so API access is blocked.
    SecureIdRequired,
}

impl CredentialError {
    pub fn code(self) -> u32 {
        match self {
            CredentialError::RegistrationRequired => 2003,
            CredentialError::SecureIdRequired => 2011,
        }
    }

    fn text(self) -> &'static str {
        match self {
            CredentialError::RegistrationRequired => {
                "Registration must be completed before API requests will be served for this account"
            }
            CredentialError::SecureIdRequired => {
                "SecureID authentication is required for this account, so API access is blocked"
            }
        }
    }
}

/// `registration-required` or `secure-id-required`.
impl FromStr for CredentialError {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "registration-required" => Ok(CredentialError::RegistrationRequired),
            "secure-id-required" => Ok(CredentialError::SecureIdRequired),
            _ => Err(format!("{text:?}: expected registration-required or secure-id-required")),
        }
    }
}

/// The faults and how many times each fired.
pub(crate) struct FaultInjector {
    faults: Faults,
    rate_limited: FireCount,
    concurrency_limited: FireCount,
    server_errors: FireCount,
}

impl FaultInjector {
    pub(crate) fn new(faults: Faults) -> Self {
        Self {
            faults,
            rate_limited: FireCount::default(),
            concurrency_limited: FireCount::default(),
            server_errors: FireCount::default(),
        }
    }

    /// The answer to a call with the right credentials, if they are not to be served.
    pub(crate) fn credential_rejection(&self) -> Option<Response> {
        let rejection = self.faults.credential_error?;
        Some(error(StatusCode::UNAUTHORIZED, rejection.code(), rejection.text(), &[]))
    }

    /// The seconds to wait, if this call is to be refused for the rate limit.
    pub(crate) fn rate_limit(&self, route: Option<Route>) -> Option<u32> {
        let fault = self.faults.rate_limited?;
        claim(&self.rate_limited, &fault.first, route).then_some(fault.to_wait_secs)
    }

    /// Whether this call is to be refused for the concurrency limit.
    pub(crate) fn concurrency_limit(&self, route: Option<Route>) -> bool {
        self.faults.concurrency_limited.is_some_and(|first| claim(&self.concurrency_limited, &first, route))
    }

    pub(crate) fn server_error(&self, route: Option<Route>) -> Option<Response> {
        let fault = self.faults.server_errors?;
        claim(&self.server_errors, &fault.first, route).then(|| server_error(status_code(fault.status)))
    }

    pub(crate) fn detection_page_delay(&self) -> Option<Duration> {
        self.faults.slow_detection_pages
    }

    pub(crate) fn huge_results(&self) -> Option<String> {
        self.faults.huge_results.map(huge_results)
    }

    /// The body of a detection page: cut in the middle of the first host of the faulty range,
    /// as a dropped connection or a truncating proxy leaves it, when there is one.
    pub(crate) fn detection_page_body(&self, page: DetectionPage) -> String {
        let faulty = self.faults.malformed_detection_hosts.as_ref();
        let span = faulty.and_then(|faulty| page.host_spans.iter().find(|(id, _)| faulty.contains(id)));
        let mut body = page.body;
        if let Some((_, span)) = span {
            let mut cut = span.start + span.len() / 2;
            while !body.is_char_boundary(cut) {
                cut -= 1;
            }
            body.truncate(cut);
        }
        body
    }
}

/// True while fewer than `first.calls` calls it covers were claimed, counting this one.
fn claim(claimed: &FireCount, first: &FirstCalls, route: Option<Route>) -> bool {
    first.covers(route) && claimed.fire_within(first.calls)
}

/// 500 from Qualys itself; any other 5xx from the load balancer in front of it.
fn server_error(status: StatusCode) -> Response {
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        return error(status, 999, "Internal error. Please contact customer support.", &[]);
    }
    load_balancer_error(status)
}

/// RESULTS of exactly `bytes` bytes, as attacker-controlled as a banner gets, and never
/// holding `]]>` (which no CDATA section can).
fn huge_results(bytes: usize) -> String {
    const MARKUP: &str = "<script>alert('results')</script>";
    const FILLER: &str = "\nBanner: <img src=x onerror=alert(1)> &amp; &apos;quoted&apos; \"double\" <b>bold</b>";
    text_of_length(bytes, MARKUP, FILLER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_results_are_exact_carry_markup_and_fit_in_cdata() {
        let results = huge_results(1_048_576);
        assert_eq!(results.len(), 1_048_576);
        assert!(results.starts_with("<script>alert('results')</script>"));
        assert!(!results.contains("]]>"));
    }

    #[test]
    fn first_calls_faults_fire_on_their_route_until_spent() {
        let injector = FaultInjector::new(Faults {
            rate_limited: Some(RateLimited {
                first: FirstCalls { calls: 2, route: Some(Route::Detections) },
                to_wait_secs: 9,
            }),
            concurrency_limited: Some(FirstCalls { calls: 1, route: None }),
            ..Faults::default()
        });
        assert_eq!(injector.rate_limit(Some(Route::KnowledgeBase)), None);
        let waits: Vec<Option<u32>> = (0..3).map(|_| injector.rate_limit(Some(Route::Detections))).collect();
        assert_eq!(waits, [Some(9), Some(9), None]);
        assert!(injector.concurrency_limit(None));
        assert!(!injector.concurrency_limit(Some(Route::About)));
    }

    #[test]
    fn server_errors_are_qualys_xml_for_500_and_html_otherwise() {
        let first = FirstCalls { calls: 1, route: Some(Route::HostList) };
        let injector = FaultInjector::new(Faults {
            server_errors: Some(ServerErrors { status: 503, first }),
            ..Faults::default()
        });
        assert!(injector.server_error(Some(Route::Detections)).is_none());
        let unavailable = injector.server_error(Some(Route::HostList)).map(|response| response.status());
        assert_eq!(unavailable, Some(StatusCode::SERVICE_UNAVAILABLE));
        assert!(injector.server_error(Some(Route::HostList)).is_none());
    }

    #[test]
    fn a_malformed_page_is_cut_inside_the_first_faulty_host() {
        let injector = FaultInjector::new(Faults { malformed_detection_hosts: Some(20..=30), ..Faults::default() });
        let page = || DetectionPage {
            body: format!("{}{}{}é{}", "a".repeat(100), "b".repeat(100), "c".repeat(49), "d".repeat(49)),
            host_spans: vec![(10, 0..100), (25, 100..200), (26, 200..300)],
        };
        assert_eq!(injector.detection_page_body(page()), format!("{}{}", "a".repeat(100), "b".repeat(50)));
        let only_sound_hosts = DetectionPage { host_spans: vec![(10, 0..100)], ..page() };
        assert_eq!(injector.detection_page_body(only_sound_hosts), page().body);
        let cut_in_a_character =
            FaultInjector::new(Faults { malformed_detection_hosts: Some(26..=26), ..Faults::default() });
        assert_eq!(cut_in_a_character.detection_page_body(page()).len(), 249, "cut before the two bytes of é");
        assert_eq!("secure-id-required".parse::<CredentialError>().map(CredentialError::code), Ok(2011));
    }
}
