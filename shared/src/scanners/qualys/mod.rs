//! Qualys VMDR. Its API answers in XML, one page at a time: `normalize` maps a Host
//! List Detection page onto the model, `knowledge_base` reads the KnowledgeBase that
//! gives each QID its title, CVEs and score. Both stream the page (`page`).

pub mod knowledge_base;
pub mod normalize;
mod page;
