//! The simulator over HTTP, as vulnflow's Qualys connector sees it.

mod api;
mod auth_and_limits;
mod changes;
mod faults;
mod support;
