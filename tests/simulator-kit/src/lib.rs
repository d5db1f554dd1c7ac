//! What vulnflow's scanner simulators (`tenable-simulator`, `qualys-simulator`) share: the
//! seeded generator their datasets are drawn from ([`SplitMix64`]), serving on 127.0.0.1
//! ([`LocalListener`], [`Server`]), counting calls per route ([`CallCounts`]) and the state
//! handlers share ([`Snapshot`], [`lock`]), pieces of the failure modes they inject, and the
//! services of their catalogs' host profiles ([`catalog`]).
//!
//! Only logic that is the same for every simulator lives here; what a vendor's API says or
//! how it says it stays in that vendor's simulator.

pub mod catalog;
mod faults;
mod prng;
mod server;
mod state;
mod traffic;

pub use crate::faults::{FireCount, load_balancer_error, status_code, text_of_length};
pub use crate::prng::SplitMix64;
pub use crate::server::{LocalListener, Server};
pub use crate::state::{Snapshot, lock};
pub use crate::traffic::{CallCounts, CountedRoute, route_of};
