//! The jobs table: one item a job, keyed by its id, with a `by-connector` index for
//! histories. Job updates are single-attribute update expressions rather than
//! read-modify-write, because chunks of one job are processed concurrently by the
//! state machine's map. The chunk half of [`JobStore`] is in `chunks.rs`.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::builders::UpdateBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, Update};
use chrono::{DateTime, Utc};

use super::{DynamoStore, attribute, can_be_key, conditional_write, decode, item, number, storage_error, string};
use crate::errors::{Result, SyncError};
use crate::model::{
    ChunkRecord, ExportKind, ExportRef, JobFailure, JobStatus, RecordCounts, SeenAssets, Stage, StageOutcome, StageRun,
    SweepMark, SyncJob,
};
use crate::store::{HistoryCursor, HistoryFilter, HistoryPage, JobEnding, JobStore};
use crate::usage::Usage;

/// The condition every write to a job item carries: a stage still in flight when a
/// cancel stopped the execution must not write over what the cancel settled (its
/// status, stages and counts).
const NOT_CANCELLED: &str = "#status <> :cancelled";
/// The jobs table's index of a connector's jobs by start time (infra/template.yaml).
const JOBS_BY_CONNECTOR: &str = "by-connector";
/// Jobs a history query reads per call; the filter then keeps what the page asked for.
const HISTORY_QUERY_PAGE: i32 = 100;

impl DynamoStore {
    /// An update of a job item inside a transaction, refused with the whole transaction
    /// once the job was cancelled (see [`NOT_CANCELLED`]).
    pub(super) fn job_update(&self, job_id: &str) -> Result<UpdateBuilder> {
        Ok(Update::builder()
            .table_name(&self.tables.jobs)
            .set_key(Some(self.job_key(job_id)))
            .condition_expression(NOT_CANCELLED)
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":cancelled", attribute(&JobStatus::Cancelled)?))
    }

    fn job_key(&self, job_id: &str) -> HashMap<String, AttributeValue> {
        HashMap::from([("job_id".to_string(), string(job_id))])
    }

    /// Runs one update expression on a job item. A job cancelled meanwhile is left as
    /// the cancel settled it (see [`Self::update_job_if`]).
    async fn update_job(
        &self,
        job_id: &str,
        expression: &str,
        names: &[(&str, &str)],
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<()> {
        if self.update_job_if(job_id, expression, "attribute_exists(job_id)", names, values).await? {
            return Ok(());
        }
        match self.get_job(job_id).await? {
            Some(_) => Ok(()),
            None => Err(SyncError::InvalidRequest(format!("there is no job {job_id}"))),
        }
    }

    /// Adds counters to a job item (an `ADD` of [`map_addition`]'s parts, with `extra_names`).
    async fn add_to_job(
        &self,
        job_id: &str,
        (expression, names, values): ExpressionParts,
        extra_names: &[(&str, &str)],
    ) -> Result<()> {
        let mut names: Vec<(&str, &str)> = names.iter().map(|(name, field)| (name.as_str(), *field)).collect();
        names.extend_from_slice(extra_names);
        let values = values.iter().map(|(name, value)| (name.as_str(), value.clone())).collect();
        self.update_job(job_id, &format!("ADD {expression}"), &names, values).await
    }

    /// Runs one update expression on a job item if `condition` holds and the job was
    /// not cancelled ([`NOT_CANCELLED`]): false, changing nothing, when either fails.
    async fn update_job_if(
        &self,
        job_id: &str,
        expression: &str,
        condition: &str,
        names: &[(&str, &str)],
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<bool> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.tables.jobs)
            .set_key(Some(self.job_key(job_id)))
            .update_expression(expression)
            .condition_expression(format!("({condition}) AND {NOT_CANCELLED}"))
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":cancelled", attribute(&JobStatus::Cancelled)?);
        for (name, attribute) in names {
            request = request.expression_attribute_names(*name, *attribute);
        }
        for (name, value) in values {
            request = request.expression_attribute_values(name, value);
        }
        conditional_write("UpdateItem on the jobs table", request.send()).await
    }
}

/// An update expression's text with its attribute names and values.
pub(super) type ExpressionParts = (String, Vec<(String, &'static str)>, Vec<(String, AttributeValue)>);

/// `<map>.#field :field, ...` with its names and values, adding each counter to the
/// job's map at `map` (a path, or a `#name` the caller names). Attribute names
/// throughout: DynamoDB reserves words like `processed`.
fn map_addition<const N: usize>(map: &str, fields: [(&'static str, u64); N]) -> ExpressionParts {
    let expression = fields.iter().map(|(field, _)| format!("{map}.#{field} :{field}")).collect::<Vec<_>>().join(", ");
    let names = fields.iter().map(|(field, _)| (format!("#{field}"), *field)).collect();
    let values = fields.iter().map(|(field, value)| (format!(":{field}"), number(*value))).collect();
    (expression, names, values)
}

pub(super) fn counts_addition(counts: &RecordCounts) -> ExpressionParts {
    map_addition("counts", counts.fields())
}

/// The key a history query resumes after: the job's keys in the `by-connector` index,
/// encoded exactly as the job item stores them.
fn history_start_key(cursor: &HistoryCursor) -> Result<HashMap<String, AttributeValue>> {
    Ok(HashMap::from([
        ("connector_id".to_string(), string(&cursor.connector_id)),
        ("started_at".to_string(), attribute(&cursor.started_at)?),
        ("job_id".to_string(), string(&cursor.job_id)),
    ]))
}

/// A bound on `started_at` for the history index's key condition. Stored times carry
/// a varying number of fraction digits, so the bound is widened to the whole second;
/// the filter then decides exactly.
fn started_at_bound(at: DateTime<Utc>, upper: bool) -> AttributeValue {
    let second = at.format("%Y-%m-%dT%H:%M:%S").to_string();
    // `~` sorts after the `.` and `Z` any time of that second goes on with.
    string(&if upper { format!("{second}~") } else { second })
}

#[async_trait]
impl JobStore for DynamoStore {
    async fn create_job(&self, job: &SyncJob) -> Result<()> {
        let mut job_item = item(job)?;
        let expires_at = (job.started_at + self.job_retention).timestamp();
        job_item.insert("expires_at".to_string(), AttributeValue::N(expires_at.to_string()));
        let request = self
            .client
            .put_item()
            .table_name(&self.tables.jobs)
            .set_item(Some(job_item))
            .condition_expression("attribute_not_exists(job_id)");
        if conditional_write("PutItem on the jobs table", request.send()).await? {
            Ok(())
        } else {
            Err(SyncError::Conflict(format!("job {} already exists", job.job_id)))
        }
    }

    async fn get_job(&self, job_id: &str) -> Result<Option<SyncJob>> {
        if !can_be_key(job_id) {
            return Ok(None);
        }
        let item = self.read_item(&self.tables.jobs, "jobs", self.job_key(job_id)).await?;
        item.map(|item| decode("jobs", item)).transpose()
    }

    async fn stage_started(&self, job_id: &str, stage: Stage, at: DateTime<Utc>) -> Result<()> {
        let run = StageRun { outcome: StageOutcome::Running, started_at: at, ended_at: None };
        self.update_job(
            job_id,
            "SET stages.#stage = if_not_exists(stages.#stage, :run), current_stage = :stage",
            &[("#stage", stage.as_str())],
            vec![(":run", attribute(&run)?), (":stage", string(stage.as_str()))],
        )
        .await
    }

    async fn stage_ended(&self, job_id: &str, stage: Stage, outcome: StageOutcome, at: DateTime<Utc>) -> Result<()> {
        let names = [("#stage", stage.as_str())];
        let ended = self
            .update_job_if(
                job_id,
                "SET stages.#stage.ended_at = :at, stages.#stage.outcome = :outcome",
                "stages.#stage.outcome <> :failed",
                &names,
                vec![
                    (":at", attribute(&at)?),
                    (":outcome", attribute(&outcome)?),
                    (":failed", attribute(&StageOutcome::Failed)?),
                ],
            )
            .await?;
        if ended {
            return Ok(());
        }
        // The stage already failed on another chunk: it stays failed; only its end moves.
        self.update_job(job_id, "SET stages.#stage.ended_at = :at", &names, vec![(":at", attribute(&at)?)]).await
    }

    async fn set_status(&self, job_id: &str, status: JobStatus) -> Result<()> {
        self.update_job(
            job_id,
            "SET #status = :status",
            &[("#status", "status")],
            vec![(":status", attribute(&status)?)],
        )
        .await
    }

    async fn add_export(&self, job_id: &str, export: &ExportRef) -> Result<()> {
        self.update_job(
            job_id,
            "SET exports = list_append(if_not_exists(exports, :none), :export)",
            &[],
            vec![(":export", AttributeValue::L(vec![attribute(export)?])), (":none", AttributeValue::L(vec![]))],
        )
        .await
    }

    async fn add_total_chunks(&self, job_id: &str, kind: ExportKind, chunks: u64) -> Result<()> {
        // `counted_exports` (a string set) remembers which exports are in the total; an
        // export counted already changes nothing, and a job that does not exist fails at
        // the stage's next write.
        self.update_job_if(
            job_id,
            "ADD chunks.#total :chunks, counted_exports :kind",
            "attribute_exists(job_id) AND NOT contains(counted_exports, :kind_name)",
            &[("#total", "total")],
            vec![
                (":chunks", number(chunks)),
                (":kind", AttributeValue::Ss(vec![kind.as_str().to_string()])),
                (":kind_name", string(kind.as_str())),
            ],
        )
        .await
        .map(|_| ())
    }

    async fn add_counts(&self, job_id: &str, counts: &RecordCounts) -> Result<()> {
        self.add_to_job(job_id, counts_addition(counts), &[]).await
    }

    async fn add_usage(&self, job_id: &str, usage: &Usage) -> Result<()> {
        // `usage` is a reserved word.
        self.add_to_job(job_id, map_addition("#usage", usage.fields()), &[("#usage", "usage")]).await
    }

    async fn record_failure(&self, job_id: &str, failure: &JobFailure) -> Result<()> {
        // The first failure recorded stands.
        self.update_job_if(
            job_id,
            "SET failure = :failure",
            "attribute_exists(job_id) AND attribute_not_exists(failure)",
            &[],
            vec![(":failure", attribute(failure)?)],
        )
        .await
        .map(|_| ())
    }

    async fn set_execution_arn(&self, job_id: &str, execution_arn: &str) -> Result<()> {
        let arn = AttributeValue::S(execution_arn.to_string());
        self.update_job(job_id, "SET execution_arn = :arn", &[], vec![(":arn", arn)]).await
    }

    async fn note_retryable_failure(&self, job_id: &str, failure: &JobFailure) -> Result<()> {
        self.update_job(job_id, "SET last_retryable_failure = :failure", &[], vec![(":failure", attribute(failure)?)])
            .await
    }

    async fn finish_job(&self, job_id: &str, ending: &JobEnding) -> Result<()> {
        let values = vec![
            (":status", attribute(&ending.status)?),
            (":chunks", attribute(&ending.chunks)?),
            (":ended_at", attribute(&ending.ended_at)?),
        ];
        let expression = "SET #status = :status, chunks = :chunks, ended_at = :ended_at REMOVE current_stage";
        self.update_job(job_id, expression, &[("#status", "status")], values).await
    }

    async fn history(
        &self,
        connector_id: &str,
        filter: &HistoryFilter,
        page: &HistoryPage,
    ) -> Result<(Vec<SyncJob>, Option<String>)> {
        let mut start_key = match page.token.as_deref() {
            Some(token) => Some(history_start_key(&HistoryCursor::from_token(token, connector_id)?)?),
            None => None,
        };
        let (condition, bounds) = match (filter.from, filter.to) {
            (Some(from), Some(to)) => (
                "connector_id = :connector AND started_at BETWEEN :from AND :to",
                vec![(":from", started_at_bound(from, false)), (":to", started_at_bound(to, true))],
            ),
            (Some(from), None) => {
                ("connector_id = :connector AND started_at >= :from", vec![(":from", started_at_bound(from, false))])
            }
            (None, Some(to)) => {
                ("connector_id = :connector AND started_at <= :to", vec![(":to", started_at_bound(to, true))])
            }
            (None, None) => ("connector_id = :connector", vec![]),
        };
        let mut values: HashMap<String, AttributeValue> =
            bounds.into_iter().map(|(name, value)| (name.to_string(), value)).collect();
        values.insert(":connector".to_string(), string(connector_id));
        let mut kept = Vec::new();
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.tables.jobs)
                .index_name(JOBS_BY_CONNECTOR)
                .key_condition_expression(condition)
                .set_expression_attribute_values(Some(values.clone()))
                .scan_index_forward(false)
                .limit(HISTORY_QUERY_PAGE)
                .set_exclusive_start_key(start_key)
                .send()
                .await
                .map_err(|e| storage_error("Query on the jobs table's by-connector index", e))?;
            let items = output.items.unwrap_or_default();
            let read = items.len();
            for (index, item) in items.into_iter().enumerate() {
                let job: SyncJob = decode("jobs", item)?;
                if !filter.matches(&job) {
                    continue;
                }
                kept.push(job);
                if kept.len() == page.limit {
                    let more = index + 1 < read || output.last_evaluated_key.is_some();
                    let token = more.then(|| kept.last().map(|last| HistoryCursor::after(last).token())).flatten();
                    return Ok((kept, token));
                }
            }
            match output.last_evaluated_key {
                Some(key) => start_key = Some(key),
                None => return Ok((kept, None)),
            }
        }
    }

    async fn record_sweep(
        &self,
        job_id: &str,
        from: Option<&SweepMark>,
        to: &SweepMark,
        inactivated: u64,
    ) -> Result<bool> {
        let mut values = vec![(":to", attribute(to)?), (":inactivated", number(inactivated))];
        let condition = match from {
            None => "attribute_exists(job_id) AND attribute_not_exists(sweep)",
            Some(from) => {
                values.push((":from", attribute(from)?));
                "sweep = :from"
            }
        };
        self.update_job_if(
            job_id,
            "SET sweep = :to ADD counts.#inactivated :inactivated",
            condition,
            &[("#inactivated", "findings_inactivated")],
            values,
        )
        .await
    }

    // The chunks table's half of the port, written in chunks.rs.

    async fn get_chunk(&self, job_id: &str, chunk_key: &str) -> Result<Option<ChunkRecord>> {
        self.read_chunk(job_id, chunk_key).await
    }

    async fn chunks(&self, job_id: &str) -> Result<Vec<ChunkRecord>> {
        self.read_chunks_of_job(job_id).await
    }

    async fn save_chunk(&self, chunk: &ChunkRecord) -> Result<()> {
        self.save_chunk_progress(chunk).await
    }

    async fn chunk_attempt_failed(&self, job_id: &str, chunk_key: &str, failure: &JobFailure) -> Result<()> {
        self.count_failed_attempt(job_id, chunk_key, failure).await
    }

    async fn commit_chunk(
        &self,
        job_id: &str,
        chunk_key: &str,
        counts: &RecordCounts,
        seen: &SeenAssets,
        at: DateTime<Utc>,
    ) -> Result<bool> {
        self.commit_processed_chunk(job_id, chunk_key, counts, seen, at).await
    }

    async fn carry_over_chunks(&self, chunks: &[ChunkRecord]) -> Result<u64> {
        self.carry_over_in_batches(chunks).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{SyncMode, Trigger};

    #[test]
    fn a_job_round_trips_through_a_dynamodb_item() {
        let now = Utc::now();
        let by_ana = Trigger::Manual { by: "ana@example.com".into() };
        let mut job = SyncJob {
            current_stage: Some(Stage::Fetching),
            ..SyncJob::started("job-1", "c-1", SyncMode::Full, by_ana, "vulnflow-local", now)
        };
        job.stages.insert(
            Stage::Initiating,
            StageRun { outcome: StageOutcome::Succeeded, started_at: now, ended_at: Some(now) },
        );
        let encoded = item(&job).expect("encodes");
        assert!(matches!(encoded.get("stages"), Some(AttributeValue::M(stages)) if stages.contains_key("Initiating")));
        let decoded: SyncJob = decode("jobs", encoded.clone()).expect("decodes");
        assert_eq!(decoded, job);

        let start_key = history_start_key(&HistoryCursor::after(&job)).expect("encodes");
        for key in ["connector_id", "started_at", "job_id"] {
            assert_eq!(start_key.get(key), encoded.get(key), "a page resumes after exactly the stored {key}");
        }
    }

    #[test]
    fn history_time_bounds_take_in_every_stored_fraction_of_their_second() {
        let at = DateTime::parse_from_rfc3339("2024-03-01T08:00:05Z").expect("a time").with_timezone(&Utc);
        let stored = |at: DateTime<Utc>| match attribute(&at) {
            Ok(AttributeValue::S(text)) => text,
            other => panic!("a time is stored as a string, not {other:?}"),
        };
        let bounds = (started_at_bound(at, false), started_at_bound(at, true));
        let (AttributeValue::S(lower), AttributeValue::S(upper)) = bounds else { panic!("bounds are strings") };
        for inside in [at, at + chrono::Duration::milliseconds(999), at + chrono::Duration::nanoseconds(1)] {
            assert!(lower <= stored(inside) && stored(inside) <= upper, "{} within {lower}..{upper}", stored(inside));
        }
        assert!(
            stored(at + chrono::Duration::seconds(1)) > upper && stored(at - chrono::Duration::milliseconds(1)) < lower
        );
    }
}
