//! A sync job's life, in one place: built from a request ([`new_job`]), planned when it
//! resumes an ended one ([`plan_resumption`]), told that a stage failed
//! ([`record_stage_failure`]), and ended ([`end`], with a [`JobEnd`] saying how). The
//! pipeline's stages, the API and the scheduler go through here; none of them writes a
//! job's end itself.

mod end;
mod failure;
mod request;
mod resumption;

pub use end::{JobEnd, end};
pub use failure::{failure_of, record_stage_failure};
pub use request::{SyncRequest, new_job};
pub use resumption::plan_resumption;
