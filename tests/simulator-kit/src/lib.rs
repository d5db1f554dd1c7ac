//! What vulnflow's scanner simulators (`tenable-simulator`, `qualys-simulator`) share:
//!
//! - the seeded generator their datasets are drawn from ([`SplitMix64`]), the services of their
//!   catalogs' host profiles ([`catalog`]) and how findings are dealt to hosts
//!   ([`pick_findings`], [`RoundRobin`]);
//! - serving a router on 127.0.0.1 ([`LocalListener`], [`Server`]), and as a demo binary
//!   ([`init_tracing`], [`announce_and_serve`]);
//! - calls counted per route ([`CallCounts`]) and the state handlers share ([`Snapshot`],
//!   [`lock`]);
//! - pieces of the failure modes they inject ([`FireCount`], [`load_balancer_error`]...).
//!
//! Only logic that is the same for every simulator lives here; what a vendor's API says, and
//! how it says it, stays in that vendor's simulator.

pub mod catalog;
mod demo;
mod estate;
mod faults;
mod prng;
mod server;
mod state;
mod traffic;

pub use crate::demo::{announce_and_serve, init_tracing};
pub use crate::estate::{RoundRobin, host_ipv4, pick_findings};
pub use crate::faults::{FireCount, load_balancer_error, status_code, text_of_length};
pub use crate::prng::SplitMix64;
pub use crate::server::{LocalListener, Server};
pub use crate::state::{Snapshot, lock};
pub use crate::traffic::{CallCounts, CountedRoute, route_of};
