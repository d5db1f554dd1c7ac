//! Calls counted per route, and the route of each call told to the layers after the counting.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, Ordering};

use axum::extract::Request;

/// The routes of a simulated API, numbered from 0.
pub trait CountedRoute: Copy + Send + Sync + 'static {
    /// How many routes there are.
    const COUNT: usize;

    /// This route's number, below [`COUNT`](Self::COUNT).
    fn index(self) -> usize;
}

/// How many calls each route received, whatever their answer.
pub struct CallCounts<R> {
    calls: Box<[AtomicU32]>,
    routes: PhantomData<R>,
}

impl<R: CountedRoute> Default for CallCounts<R> {
    fn default() -> Self {
        Self { calls: (0..R::COUNT).map(|_| AtomicU32::new(0)).collect(), routes: PhantomData }
    }
}

impl<R: CountedRoute> CallCounts<R> {
    /// Counts a call of `route` (`None`: a path the API does not have, not counted), and tags
    /// the request with it for the later layers: see [`route_of`].
    pub fn count(&self, request: &mut Request, route: Option<R>) {
        if let Some(route) = route {
            self.calls[route.index()].fetch_add(1, Ordering::Relaxed);
        }
        request.extensions_mut().insert(route);
    }

    /// The calls of `route` counted so far.
    pub fn get(&self, route: R) -> u32 {
        self.calls[route.index()].load(Ordering::Relaxed)
    }
}

/// The route [`CallCounts::count`] tagged the request with; `None` for a path the API does not
/// have, or a request that was not counted.
pub fn route_of<R: CountedRoute>(request: &Request) -> Option<R> {
    request.extensions().get::<Option<R>>().copied().flatten()
}

#[cfg(test)]
mod tests {
    use axum::body::Body;

    use super::*;

    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Route {
        Ping,
        Pong,
    }

    impl CountedRoute for Route {
        const COUNT: usize = 2;

        fn index(self) -> usize {
            self as usize
        }
    }

    #[test]
    fn calls_are_counted_per_route_and_tagged_for_later_layers() {
        let counts = CallCounts::<Route>::default();
        let mut requests: Vec<Request> = (0..4).map(|_| Request::new(Body::empty())).collect();
        for (request, route) in requests.iter_mut().zip([Some(Route::Ping), Some(Route::Ping), Some(Route::Pong), None])
        {
            counts.count(request, route);
        }
        assert_eq!((counts.get(Route::Ping), counts.get(Route::Pong)), (2, 1));
        let routes: Vec<Option<Route>> = requests.iter().map(route_of).collect();
        assert_eq!(routes, [Some(Route::Ping), Some(Route::Ping), Some(Route::Pong), None]);
        assert_eq!(route_of::<Route>(&Request::new(Body::empty())), None);
    }
}
