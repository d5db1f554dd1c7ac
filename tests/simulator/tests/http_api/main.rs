//! The simulator over HTTP, as vulnflow's connector sees it.

mod api;
mod changes;
mod faulty_calls;
mod faulty_exports;
mod support;
