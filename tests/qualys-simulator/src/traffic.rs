//! What clients asked: calls per route, the parameters of detection calls, the QIDs asked of
//! the KnowledgeBase.

use std::str::FromStr;
use std::sync::Mutex;

use simulator_kit::{CallCounts, CountedRoute, lock};

/// The calls of the simulated API, GET and POST alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Route {
    /// `GET /msp/about.php`
    About,
    /// `/api/2.0/fo/asset/host/`
    HostList,
    /// `/api/2.0/fo/asset/host/vm/detection/`
    Detections,
    /// `/api/2.0/fo/knowledge_base/vuln/`
    KnowledgeBase,
}

impl CountedRoute for Route {
    const COUNT: usize = Route::ALL.len();

    fn index(self) -> usize {
        self as usize
    }
}

impl Route {
    pub const ALL: [Route; 4] = [Route::About, Route::HostList, Route::Detections, Route::KnowledgeBase];

    /// The path, as the simulator writes it in the URLs it answers with.
    pub fn path(self) -> &'static str {
        match self {
            Route::About => "/msp/about.php",
            Route::HostList => "/api/2.0/fo/asset/host/",
            Route::Detections => "/api/2.0/fo/asset/host/vm/detection/",
            Route::KnowledgeBase => "/api/2.0/fo/knowledge_base/vuln/",
        }
    }

    /// The route of a path, with or without its trailing slash; `None` for paths the API does
    /// not have.
    pub(crate) fn of(path: &str) -> Option<Route> {
        let path = path.trim_end_matches('/');
        Route::ALL.into_iter().find(|route| route.path().trim_end_matches('/') == path)
    }

    fn name(self) -> &'static str {
        match self {
            Route::About => "about",
            Route::HostList => "host-list",
            Route::Detections => "detections",
            Route::KnowledgeBase => "knowledge-base",
        }
    }
}

/// `about`, `host-list`, `detections` or `knowledge-base`.
impl FromStr for Route {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Route::ALL
            .into_iter()
            .find(|route| route.name() == text)
            .ok_or_else(|| format!("{text:?}: expected about, host-list, detections or knowledge-base"))
    }
}

#[derive(Default)]
pub(crate) struct Traffic {
    pub(crate) calls: CallCounts<Route>,
    detection_requests: Mutex<Vec<Vec<(String, String)>>>,
    knowledge_base_qids: Mutex<Vec<u64>>,
}

impl Traffic {
    pub(crate) fn record_detection_request(&self, params: &[(String, String)]) {
        lock(&self.detection_requests).push(params.to_vec());
    }

    pub(crate) fn detection_requests(&self) -> Vec<Vec<(String, String)>> {
        lock(&self.detection_requests).clone()
    }

    pub(crate) fn record_knowledge_base_qids(&self, qids: impl IntoIterator<Item = u64>) {
        lock(&self.knowledge_base_qids).extend(qids);
    }

    pub(crate) fn knowledge_base_qids(&self) -> Vec<u64> {
        lock(&self.knowledge_base_qids).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_recognised_with_or_without_trailing_slash_and_named_for_flags() {
        let cases = [
            ("/msp/about.php", Some(Route::About)),
            ("/api/2.0/fo/asset/host/", Some(Route::HostList)),
            ("/api/2.0/fo/asset/host", Some(Route::HostList)),
            ("/api/2.0/fo/asset/host/vm/detection/", Some(Route::Detections)),
            ("/api/2.0/fo/knowledge_base/vuln", Some(Route::KnowledgeBase)),
            ("/api/2.0/fo/scan/", None),
            ("/", None),
        ];
        for (path, route) in cases {
            assert_eq!(Route::of(path), route, "{path}");
        }
        assert_eq!("knowledge-base".parse(), Ok(Route::KnowledgeBase));
        assert!("kb".parse::<Route>().is_err());
    }
}
