//! What a job that resumes an ended one takes from it: the chunks it carries over, or
//! why it starts over (see `pipeline::resume` for how the stages use the plan).

use crate::errors::Result;
use crate::model::{JobStatus, SyncJob};
use crate::store::{HistoryFilter, HistoryPage, JobStore, MAX_SYNC_JOBS};

/// Decides what a new job that resumes another (`job.resumed_from`) carries over:
/// fills `carries_from`, or says in `starts_over_because` why it cannot.
pub async fn plan_resumption(jobs: &dyn JobStore, job: &mut SyncJob) -> Result<()> {
    let Some(earlier_id) = job.resumed_from.clone() else { return Ok(()) };
    let carry = match jobs.get_job(&earlier_id).await? {
        None => Carry::StartsOver(format!("job {earlier_id} is no longer in the history")),
        Some(earlier) => carry(jobs, job, &earlier).await?,
    };
    match carry {
        Carry::From(carries_from) => job.carries_from = carries_from,
        Carry::StartsOver(reason) => {
            tracing::info!(job_id = %job.job_id, resumed_from = %earlier_id, %reason, "the resumed sync starts over");
            job.starts_over_because = Some(reason);
        }
    }
    Ok(())
}

/// What a resumed job takes from the job it resumes.
enum Carry {
    /// The chunks of these jobs count as its own (nearest first).
    From(Vec<String>),
    /// Nothing: it starts over, for this reason.
    StartsOver(String),
}

async fn carry(jobs: &dyn JobStore, job: &SyncJob, earlier: &SyncJob) -> Result<Carry> {
    let earlier_id = &earlier.job_id;
    let starts_over = |reason: String| Ok(Carry::StartsOver(reason));
    if earlier.connector_id != job.connector_id {
        return starts_over(format!("job {earlier_id} synced another connector"));
    }
    if earlier.status == JobStatus::Finished || !earlier.status.is_terminal() {
        return starts_over(format!("job {earlier_id} is {}, not stopped part way", earlier.status));
    }
    if earlier.mode != job.mode || earlier.scope != job.scope {
        return starts_over(format!("this sync asks for other data (mode or scope) than job {earlier_id}"));
    }
    if earlier.carries_from.len() + 2 > MAX_SYNC_JOBS {
        return starts_over(format!("job {earlier_id} continues {} earlier jobs already", earlier.carries_from.len()));
    }
    let since_earlier = HistoryFilter { from: Some(earlier.started_at), ..Default::default() };
    let (started_since, _) =
        jobs.history(&job.connector_id, &since_earlier, &HistoryPage { limit: 10, token: None }).await?;
    if let Some(newer) = started_since.iter().find(|other| other.job_id != *earlier_id && other.job_id != job.job_id) {
        return starts_over(format!(
            "sync {} of the connector started after job {earlier_id}, so its data is newer",
            newer.job_id
        ));
    }
    Ok(Carry::From(std::iter::once(earlier_id.clone()).chain(earlier.carries_from.iter().cloned()).collect()))
}
