//! Everything vulnflow knows about one scanner's API, one module a scanner: how its
//! answers read and how they map onto the model. (Tenable's still live in
//! `connectors` and `normalize`.)

pub mod qualys;
