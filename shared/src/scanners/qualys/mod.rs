//! Qualys VMDR. Its API answers in XML, one page at a time: `client` lists hosts and
//! fetches their detections in id buckets, `normalize` maps a Host List Detection page
//! onto the model, `knowledge_base` reads the KnowledgeBase that gives each QID its
//! title, CVEs and score, and `knowledge_cache` keeps those entries between syncs.
//! Reading streams the page (`page`).

pub mod client;
pub mod knowledge_base;
pub mod knowledge_cache;
pub mod normalize;
mod page;
