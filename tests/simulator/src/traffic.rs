//! What clients asked: calls per route, export request bodies, chunks served.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::Method;
use serde_json::Value;
use simulator_kit::{CallCounts, CountedRoute, lock};

use crate::exports::ExportKind;

/// The calls of the export API, vulns and assets alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Route {
    /// `GET /session`
    Session,
    /// `POST /{vulns,assets}/export`
    ExportCreation,
    /// `GET /{vulns,assets}/export/{uuid}/status`
    ExportStatus,
    /// `GET /{vulns,assets}/export/{uuid}/chunks/{id}`
    ChunkDownload,
    /// `POST /{vulns,assets}/export/{uuid}/cancel`
    ExportCancel,
}

impl CountedRoute for Route {
    /// The last variant's index plus one.
    const COUNT: usize = Route::ExportCancel as usize + 1;

    fn index(self) -> usize {
        self as usize
    }
}

impl Route {
    /// The route a call is for; `None` for paths the API does not have.
    pub(crate) fn of(method: &Method, path: &str) -> Option<Route> {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        if let ["session"] = segments.as_slice() {
            return (method == Method::GET).then_some(Route::Session);
        }
        let [kind, "export", rest @ ..] = segments.as_slice() else {
            return None;
        };
        ExportKind::from_path_segment(kind)?;
        match (method.as_str(), rest) {
            ("POST", []) => Some(Route::ExportCreation),
            ("GET", [_, "status"]) => Some(Route::ExportStatus),
            ("GET", [_, "chunks", _]) => Some(Route::ChunkDownload),
            ("POST", [_, "cancel"]) => Some(Route::ExportCancel),
            _ => None,
        }
    }
}

#[derive(Default)]
pub(crate) struct Traffic {
    pub(crate) calls: CallCounts<Route>,
    export_requests: Mutex<Vec<(ExportKind, Value)>>,
    chunk_downloads: AtomicU64,
}

impl Traffic {
    pub(crate) fn record_export_request(&self, kind: ExportKind, body: Value) {
        lock(&self.export_requests).push((kind, body));
    }

    pub(crate) fn export_requests(&self, kind: Option<ExportKind>) -> Vec<Value> {
        lock(&self.export_requests)
            .iter()
            .filter(|(request_kind, _)| kind.is_none_or(|kind| kind == *request_kind))
            .map(|(_, body)| body.clone())
            .collect()
    }

    pub(crate) fn count_chunk_download(&self) {
        self.chunk_downloads.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn chunk_downloads(&self) -> u64 {
        self.chunk_downloads.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_recognised_from_method_and_path() {
        let uuid = "9f1c2d3e-4b5a-4c6d-8e7f-001122334455";
        let cases = [
            (Method::GET, "/session".to_owned(), Some(Route::Session)),
            (Method::POST, "/vulns/export".into(), Some(Route::ExportCreation)),
            (Method::POST, "/assets/export/".into(), Some(Route::ExportCreation)),
            (Method::GET, format!("/vulns/export/{uuid}/status"), Some(Route::ExportStatus)),
            (Method::GET, format!("/assets/export/{uuid}/chunks/3"), Some(Route::ChunkDownload)),
            (Method::POST, format!("/vulns/export/{uuid}/cancel"), Some(Route::ExportCancel)),
            (Method::GET, "/vulns/export".into(), None),
            (Method::POST, "/compliance/export".into(), None),
            (Method::GET, "/scans".into(), None),
        ];
        for (method, path, route) in cases {
            assert_eq!(Route::of(&method, &path), route, "{method} {path}");
        }
    }
}
