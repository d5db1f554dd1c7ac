//! Tenable Vulnerability Management: its export API v2 client and the normalizer of
//! its vulns and assets export records.

pub mod client;
pub mod normalize;
