//! vulnflow's library: the domain model, scanner connectors and normalizers, storage
//! ports and adapters, the pipeline stages the Lambda functions run, and the
//! control-plane API.

pub mod api;
pub mod auth;
pub mod config;
// The estimate `vulnflow cost` and the bench print: not in a Lambda binary.
#[cfg(feature = "cost-model")]
pub mod cost;
pub mod dispatch;
pub mod errors;
pub mod job;
pub mod lambda;
pub mod model;
pub mod normalize;
pub mod pipeline;
pub mod scanner_network;
pub mod scanners;
pub mod starter;
pub mod store;
pub mod usage;
pub mod workflow;
