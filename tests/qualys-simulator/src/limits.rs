//! Qualys' API limits, per route: a number of calls per window (rate) and of calls running at
//! once (concurrency), reported on every answer in the X-RateLimit-* and X-Concurrency-Limit-*
//! headers.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use simulator_kit::lock;

use crate::traffic::Route;

/// What the limit headers of one answer say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LimitHeaders {
    pub limit: u32,
    pub window_secs: u32,
    pub remaining: u32,
    pub to_wait_secs: u32,
    pub concurrency_limit: u32,
    pub running: u32,
}

impl LimitHeaders {
    pub(crate) fn write(&self, headers: &mut HeaderMap) {
        let values = [
            ("x-ratelimit-limit", self.limit),
            ("x-ratelimit-window-sec", self.window_secs),
            ("x-ratelimit-remaining", self.remaining),
            ("x-ratelimit-towait-sec", self.to_wait_secs),
            ("x-concurrency-limit-limit", self.concurrency_limit),
            ("x-concurrency-limit-running", self.running),
        ];
        for (name, value) in values {
            headers.insert(HeaderName::from_static(name), HeaderValue::from(value));
        }
    }
}

/// Why a call was refused, with the headers of the refusal.
pub(crate) enum Refusal {
    /// Code 1960.
    Concurrency(LimitHeaders),
    /// Code 1965.
    Rate(LimitHeaders),
}

pub(crate) struct Limits {
    rate_limit: u32,
    window: Duration,
    concurrency_limit: u32,
    routes: [RouteUsage; Route::ALL.len()],
}

#[derive(Default)]
struct RouteUsage {
    running: AtomicU32,
    /// When the current window started and how many calls it admitted.
    window: Mutex<Option<(Instant, u32)>>,
}

/// A call admitted: it counts as running until dropped.
pub(crate) struct Admission<'a> {
    pub headers: LimitHeaders,
    running: &'a AtomicU32,
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        self.running.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Limits {
    pub(crate) fn new(rate_limit: u32, window_secs: u32, concurrency_limit: u32) -> Self {
        Self {
            rate_limit,
            window: Duration::from_secs(u64::from(window_secs.max(1))),
            concurrency_limit,
            routes: Default::default(),
        }
    }

    /// The headers for an answer that did not go through [`admit`](Self::admit): nothing
    /// consumed. Unknown paths report a fresh route.
    pub(crate) fn current(&self, route: Option<Route>) -> LimitHeaders {
        let Some(route) = route else {
            return self.headers(self.rate_limit, 0, 0);
        };
        let usage = &self.routes[route as usize];
        let (remaining, to_wait_secs) = match *lock(&usage.window) {
            Some((started, used)) if started.elapsed() < self.window => {
                let remaining = self.rate_limit.saturating_sub(used);
                (remaining, if remaining == 0 { self.seconds_left(started) } else { 0 })
            }
            _ => (self.rate_limit, 0),
        };
        self.headers(remaining, to_wait_secs, usage.running.load(Ordering::SeqCst))
    }

    /// Admits a call of `route`, or refuses it: too many running (checked first), or too many
    /// in this window. A refused call consumes nothing.
    pub(crate) fn admit(&self, route: Route) -> Result<Admission<'_>, Refusal> {
        let usage = &self.routes[route as usize];
        let running = usage.running.fetch_add(1, Ordering::SeqCst) + 1;
        let mut admission = Admission { headers: self.headers(0, 0, running), running: &usage.running };
        if running > self.concurrency_limit {
            // Dropping the admission releases the slot it took.
            return Err(Refusal::Concurrency(self.headers(self.rate_limit, 0, running - 1)));
        }
        let mut window = lock(&usage.window);
        let (started, used) = match *window {
            Some((started, used)) if started.elapsed() < self.window => (started, used),
            _ => (Instant::now(), 0),
        };
        if used >= self.rate_limit {
            return Err(Refusal::Rate(self.headers(0, self.seconds_left(started), running - 1)));
        }
        *window = Some((started, used + 1));
        admission.headers = self.headers(self.rate_limit - used - 1, 0, running);
        Ok(admission)
    }

    /// The headers of a call refused by an injected rate limit.
    pub(crate) fn rate_limited(&self, route: Option<Route>, to_wait_secs: u32) -> LimitHeaders {
        LimitHeaders { remaining: 0, to_wait_secs, ..self.current(route) }
    }

    /// The headers of a call refused by an injected concurrency limit.
    pub(crate) fn concurrency_limited(&self, route: Option<Route>) -> LimitHeaders {
        LimitHeaders { running: self.concurrency_limit, ..self.current(route) }
    }

    fn headers(&self, remaining: u32, to_wait_secs: u32, running: u32) -> LimitHeaders {
        LimitHeaders {
            limit: self.rate_limit,
            window_secs: self.window.as_secs() as u32,
            remaining,
            to_wait_secs,
            concurrency_limit: self.concurrency_limit,
            running,
        }
    }

    /// Whole seconds until the window that started at `started` ends, at least 1.
    fn seconds_left(&self, started: Instant) -> u32 {
        let left = self.window.saturating_sub(started.elapsed());
        (left.as_millis().div_ceil(1000) as u32).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_counts_calls_per_route_within_the_window() {
        let limits = Limits::new(2, 3600, 5);
        let remaining: Vec<u32> = (0..2)
            .map(|_| limits.admit(Route::Detections).map(|admission| admission.headers.remaining).unwrap_or(99))
            .collect();
        assert_eq!(remaining, [1, 0]);
        match limits.admit(Route::Detections) {
            Err(Refusal::Rate(headers)) => assert!(headers.to_wait_secs > 3590 && headers.remaining == 0),
            _ => panic!("the third call is over the rate limit"),
        }
        assert!(limits.admit(Route::KnowledgeBase).is_ok(), "each route has its own window");
        assert_eq!(limits.current(Some(Route::Detections)).remaining, 0);
        assert_eq!(limits.current(None).remaining, 2);
    }

    #[test]
    fn concurrency_limit_counts_calls_running_and_frees_them_when_done() {
        let limits = Limits::new(100, 3600, 1);
        let first = limits.admit(Route::Detections).ok().expect("admitted");
        assert_eq!(first.headers.running, 1);
        match limits.admit(Route::Detections) {
            Err(Refusal::Concurrency(headers)) => assert_eq!(headers.running, 1),
            _ => panic!("a second call while one runs is over the concurrency limit"),
        }
        assert_eq!(limits.current(Some(Route::Detections)).remaining, 99, "a refused call consumes nothing");
        drop(first);
        assert_eq!(limits.current(Some(Route::Detections)).running, 0);
        assert!(limits.admit(Route::Detections).is_ok());
    }
}
