//! Qualys VMDR: the client of its v2 XML API and the normalizer of its pages.

pub mod client;
mod xml;
