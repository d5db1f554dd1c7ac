//! Pieces of the failure modes both simulators inject.

use std::sync::atomic::{AtomicU32, Ordering};

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

/// The status of this number; 500 for a number that is none.
pub fn status_code(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// The HTML page the load balancer in front of an API answers with `status` (502, 503...),
/// rather than the API's own error body.
pub fn load_balancer_error(status: StatusCode) -> Response {
    let title = format!("{} {}", status.as_u16(), status.canonical_reason().unwrap_or_default());
    let page = format!(
        "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n</body>\r\n</html>\r\n"
    );
    (status, Html(page)).into_response()
}

/// Text of exactly `bytes` bytes: `head`, then `filler` as many times as it takes, cut to
/// length (`head` whole from its own length on). Both must be ASCII, so that any length is a
/// character boundary.
pub fn text_of_length(bytes: usize, head: &str, filler: &str) -> String {
    debug_assert!(head.is_ascii() && filler.is_ascii() && !filler.is_empty());
    let mut text = String::with_capacity(bytes + head.len() + filler.len());
    text.push_str(head);
    while text.len() < bytes {
        text.push_str(filler);
    }
    text.truncate(bytes);
    text
}

/// How many times a fault that fires for the first so-many calls fired.
#[derive(Debug, Default)]
pub struct FireCount {
    fired: AtomicU32,
}

impl FireCount {
    /// True, counting this call, while the fault fired fewer than `limit` times.
    pub fn fire_within(&self, limit: u32) -> bool {
        self.fired
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |fired| (fired < limit).then_some(fired + 1))
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_exact_and_starts_with_its_head() {
        for bytes in [0, 3, 5, 6, 1000] {
            let text = text_of_length(bytes, "<b>!", "ab");
            assert_eq!(text.len(), bytes);
            assert!(text.starts_with(&"<b>!"[..bytes.min(4)]), "{text}");
        }
        assert_eq!(text_of_length(9, "<b>!", "ab"), "<b>!ababa");
    }

    #[test]
    fn a_fault_fires_up_to_its_limit() {
        let count = FireCount::default();
        let fired: Vec<bool> = (0..4).map(|_| count.fire_within(2)).collect();
        assert_eq!(fired, [true, true, false, false]);
        assert!(!FireCount::default().fire_within(0));
    }

    #[test]
    fn other_server_errors_come_from_the_load_balancer() {
        let answer = load_balancer_error(status_code(502));
        assert_eq!(answer.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(status_code(42), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
