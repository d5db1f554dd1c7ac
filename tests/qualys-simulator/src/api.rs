//! The HTTP routes of the simulated Qualys API, behind the layers of [`crate::middleware`].

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use chrono::Utc;
use simulator_kit::Snapshot;

use crate::answers::{self, HostDetections, NextPage, XML_CONTENT_TYPE};
use crate::data::{ChangeReport, Changes, Dataset, Detection};
use crate::faults::FaultInjector;
use crate::filters::{self, DetectionRequest, KnowledgeBaseRequest, Params, RequestError};
use crate::limits::Limits;
use crate::traffic::{Route, Traffic};
use crate::{SimulatorConfig, middleware as layers};

pub(crate) struct SimulatorState {
    /// Its `faults` are moved into `faults` below.
    config: SimulatorConfig,
    /// Where the simulator serves: next-page URLs point there.
    base_url: String,
    /// Replaced whole on each change: an answer being written keeps the data it started with.
    dataset: Snapshot<Dataset>,
    pub(crate) traffic: Traffic,
    pub(crate) limits: Limits,
    pub(crate) faults: FaultInjector,
}

impl SimulatorState {
    pub(crate) fn new(mut config: SimulatorConfig, base_url: String, dataset: Dataset) -> Self {
        let faults = FaultInjector::new(std::mem::take(&mut config.faults));
        let limits = Limits::new(config.rate_limit, config.rate_limit_window_secs, config.concurrency_limit);
        Self { config, base_url, dataset: Snapshot::new(dataset), traffic: Traffic::default(), limits, faults }
    }

    pub(crate) fn username(&self) -> &str {
        &self.config.username
    }

    pub(crate) fn password(&self) -> &str {
        &self.config.password
    }

    pub(crate) fn dataset(&self) -> Arc<Dataset> {
        self.dataset.current()
    }

    pub(crate) fn apply_changes(&self, changes: Changes) -> ChangeReport {
        self.dataset.change(|dataset| dataset.apply_changes(changes, Utc::now()))
    }

    /// The WARNING of a page of `route` cut at `limit` hosts, when more follow from `next_id`.
    fn next_page(&self, route: Route, params: &Params, limit: Option<usize>, next_id: Option<u64>) -> Option<NextPage> {
        let (limit, next_id) = (limit?, next_id?);
        let url = format!("{}{}?{}", self.base_url, route.path(), params.next_page_query(next_id));
        Some(NextPage { limit, url })
    }
}

type Shared = State<Arc<SimulatorState>>;

pub(crate) fn router(state: Arc<SimulatorState>) -> Router {
    let mut router = Router::new().route(Route::About.path(), get(about));
    let listings: [(Route, MethodRouter<Arc<SimulatorState>>); 3] = [
        (Route::HostList, get(host_list).post(host_list)),
        (Route::Detections, get(detections).post(detections)),
        (Route::KnowledgeBase, get(knowledge_base).post(knowledge_base)),
    ];
    for (route, methods) in listings {
        // Clients write these paths with or without their trailing slash.
        router = router.route(route.path(), methods.clone()).route(route.path().trim_end_matches('/'), methods);
    }
    router
        .fallback(|| async {
            error(StatusCode::NOT_FOUND, 1904, "The requested URL was not found on this server.", &[])
        })
        // The last layer added runs first.
        .layer(middleware::from_fn_with_state(state.clone(), layers::inject_server_errors))
        .layer(middleware::from_fn_with_state(state.clone(), layers::enforce_limits))
        .layer(middleware::from_fn_with_state(state.clone(), layers::authenticate))
        .layer(middleware::from_fn(layers::reject_long_urls))
        .layer(middleware::from_fn_with_state(state.clone(), layers::stamp_limit_headers))
        .layer(middleware::from_fn_with_state(state.clone(), layers::count_calls))
        .with_state(state)
}

fn xml(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, XML_CONTENT_TYPE)], body).into_response()
}

/// Qualys' error answer: a SIMPLE_RETURN with `code` and `text`, and `items` as its ITEM_LIST.
pub(crate) fn error(status: StatusCode, code: u32, text: &str, items: &[(&str, String)]) -> Response {
    xml(status, answers::simple_return(code, text, items))
}

impl IntoResponse for RequestError {
    fn into_response(self) -> Response {
        error(StatusCode::BAD_REQUEST, self.code, &self.text, &[])
    }
}

/// The query string's parameters, and a form body's.
fn params(uri: &Uri, headers: &HeaderMap, body: &Bytes) -> Params {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()).unwrap_or_default();
    let form = content_type.starts_with("application/x-www-form-urlencoded").then_some(body.as_ref());
    Params::parse(uri.query(), form)
}

/// The first `limit` items (all with `None`), and the id of the first one left out.
fn paginate<T>(mut items: Vec<T>, limit: Option<usize>, id: impl Fn(&T) -> u64) -> (Vec<T>, Option<u64>) {
    match limit {
        Some(limit) if items.len() > limit => {
            let next = id(&items[limit]);
            items.truncate(limit);
            (items, Some(next))
        }
        _ => (items, None),
    }
}

async fn about() -> Response {
    xml(StatusCode::OK, answers::about())
}

async fn host_list(State(state): Shared, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let params = params(&uri, &headers, &body);
    let selection = match filters::host_list_request(&params) {
        Ok(selection) => selection,
        Err(refused) => return refused.into_response(),
    };
    let dataset = state.dataset();
    let ids = dataset.hosts().iter().filter(|host| selection.matches(host)).map(|host| host.id).collect();
    let (ids, next_id) = paginate(ids, selection.truncation_limit, |id| *id);
    let next = state.next_page(Route::HostList, &params, selection.truncation_limit, next_id);
    xml(StatusCode::OK, answers::host_ids(&ids, next.as_ref()))
}

async fn detections(State(state): Shared, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let params = params(&uri, &headers, &body);
    let request = match DetectionRequest::from_params(&params) {
        Ok(request) => request,
        Err(refused) => return refused.into_response(),
    };
    state.traffic.record_detection_request(params.pairs());
    if let Some(delay) = state.faults.detection_page_delay() {
        tokio::time::sleep(delay).await;
    }
    let dataset = state.dataset();
    let hosts = dataset.hosts();
    let matching: Vec<HostDetections<'_>> = hosts
        .iter()
        .filter(|host| request.hosts.matches(host))
        .map(|host| {
            let detections = host.detections.iter().filter(|detection| request.detection_matches(detection)).collect();
            HostDetections { host, detections }
        })
        // Qualys lists the hosts that have detections to show.
        .filter(|entry| !entry.detections.is_empty())
        .collect();
    let (mut page, next_id) = paginate(matching, request.hosts.truncation_limit, |entry| entry.host.id);
    // The dataset's first host, when served, leads the page: its first detection gets the
    // huge RESULTS fault.
    let first_host_id = hosts.first().map(|host| host.id);
    let huge = match page.first() {
        Some(entry) if Some(entry.host.id) == first_host_id => {
            state.faults.huge_results().map(|results| Detection { results, ..entry.detections[0].clone() })
        }
        _ => None,
    };
    if let (Some(huge), Some(entry)) = (&huge, page.first_mut()) {
        entry.detections[0] = huge;
    }
    let next = state.next_page(Route::Detections, &params, request.hosts.truncation_limit, next_id);
    let page = answers::detection_page(&page, request.show_results, next.as_ref());
    xml(StatusCode::OK, state.faults.detection_page_body(page))
}

async fn knowledge_base(State(state): Shared, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let params = params(&uri, &headers, &body);
    let request = match KnowledgeBaseRequest::from_params(&params) {
        Ok(request) => request,
        Err(refused) => return refused.into_response(),
    };
    if let Some(ids) = &request.ids {
        state.traffic.record_knowledge_base_qids(ids.ids());
    }
    let dataset = state.dataset();
    let vulns: Vec<_> = dataset.knowledge_base().iter().filter(|vuln| request.matches(vuln)).collect();
    xml(StatusCode::OK, answers::knowledge_base(&vulns))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paginate_cuts_at_the_limit_and_names_the_next_id() {
        assert_eq!(paginate(vec![3, 5, 8], Some(2), |id| *id), (vec![3, 5], Some(8)));
        assert_eq!(paginate(vec![3, 5], Some(2), |id| *id), (vec![3, 5], None));
        assert_eq!(paginate(vec![3, 5, 8], None, |id| *id), (vec![3, 5, 8], None));
    }
}
