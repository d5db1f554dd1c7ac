//! `vulnflow sync`: start a manual sync and follow it to its end, read a job's status
//! and a connector's history, cancel a sync, resume an ended one.

use std::time::Duration;

use chrono::{DateTime, Local, NaiveDate, NaiveTime, SecondsFormat, TimeZone, Utc};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;
use tokio::time::MissedTickBehavior;
use vulnflow_shared::model::{JobStatus, LogLevel, Severity, Stage, SyncMode, TriggerKind};

use crate::api_client::ApiClient;
use crate::error::CliError;
use crate::output::{self, Table};
use crate::progress::Progress;
use crate::wire::{self, Job, JobStatusView, Started};

/// How often a followed sync's status is read.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// The most rows the API gives in one page.
const MAX_PAGE: usize = 100;
const DEFAULT_ROWS: usize = 20;

#[derive(Subcommand)]
pub enum SyncCommand {
    /// Start a manual sync of a connector and follow it to its end (admin).
    Start(StartArgs),
    /// A job's status, stage, chunks, percent and ETA.
    Status(StatusArgs),
    /// A connector's sync history, newest first.
    History(HistoryArgs),
    /// Cancel a running sync; what it processed is kept (admin).
    Cancel(CancelArgs),
    /// Start a sync that takes up an ended job's mode and scope, and follow it (admin).
    Resume(ResumeArgs),
}

#[derive(Args)]
pub struct StartArgs {
    /// The connector's id (`vulnflow connectors` lists them).
    connector: String,
    /// The sync mode; the connector's default mode when left out.
    #[arg(long, value_enum)]
    mode: Option<SyncMode>,
    /// Only records seen or changed since then: an RFC 3339 time, or a date (from its
    /// start in your time zone).
    #[arg(long, value_name = "TIME", value_parser = day_start)]
    from: Option<DateTime<Utc>>,
    /// Only findings of these severities (repeat, or separate with commas).
    #[arg(long, value_enum, value_delimiter = ',')]
    severity: Vec<Severity>,
    /// Print the job id and return at once instead of following the sync.
    #[arg(long)]
    no_wait: bool,
}

#[derive(Args)]
pub struct StatusArgs {
    /// The job id (`sync start` and `sync history` print it).
    job: String,
    /// Print the API's JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct HistoryArgs {
    /// The connector's id.
    connector: String,
    /// Only jobs in these statuses (repeat, or separate with commas).
    #[arg(long, value_name = "STATUS", value_enum, value_delimiter = ',', ignore_case = true)]
    status: Vec<JobStatus>,
    /// Only syncs started this way.
    #[arg(long, value_enum)]
    trigger: Option<TriggerKind>,
    /// Only jobs whose last stage started is one of these.
    #[arg(long, value_enum, value_delimiter = ',', ignore_case = true)]
    stage: Vec<Stage>,
    /// Only syncs of these modes.
    #[arg(long = "type", visible_alias = "activity", value_name = "MODE", value_enum, value_delimiter = ',')]
    modes: Vec<SyncMode>,
    /// Only jobs whose log has an entry at this level or above (`warn`: syncs with
    /// warnings or errors).
    #[arg(long, value_enum)]
    level: Option<LogLevel>,
    /// Only jobs started at or after this RFC 3339 time, or date (in your time zone).
    #[arg(long, value_name = "TIME", value_parser = day_start)]
    from: Option<DateTime<Utc>>,
    /// Only jobs started at or before this RFC 3339 time, or date (in your time zone;
    /// the whole day).
    #[arg(long, value_name = "TIME", value_parser = day_end)]
    to: Option<DateTime<Utc>>,
    /// At most this many rows [default: 20].
    #[arg(long, value_name = "N", conflicts_with = "all", value_parser = clap::value_parser!(u64).range(1..))]
    limit: Option<u64>,
    /// Every row, however many pages that takes.
    #[arg(long)]
    all: bool,
    /// Print JSON (the API's rows, and `next_token` when more follow).
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct CancelArgs {
    /// The job id.
    job: String,
    /// Why, kept in the execution's history with who cancelled.
    #[arg(long, value_name = "TEXT")]
    reason: Option<String>,
}

#[derive(Args)]
pub struct ResumeArgs {
    /// The ended job to take up again.
    job: String,
    /// Print the new job's id and return at once instead of following it.
    #[arg(long)]
    no_wait: bool,
}

/// A value as the API spells it: the name clap shows for it.
fn word(value: &impl ValueEnum) -> String {
    value.to_possible_value().map(|value| value.get_name().to_string()).unwrap_or_default()
}

/// A list as the API takes it: `a,b`.
fn words(values: &[impl ValueEnum]) -> String {
    values.iter().map(word).collect::<Vec<_>>().join(",")
}

/// An RFC 3339 time, or a date: its first instant in the reader's zone.
fn day_start(text: &str) -> Result<DateTime<Utc>, String> {
    time_or_date(text, NaiveTime::MIN)
}

/// An RFC 3339 time, or a date: its last instant in the reader's zone.
fn day_end(text: &str) -> Result<DateTime<Utc>, String> {
    let last = NaiveTime::from_hms_milli_opt(23, 59, 59, 999).unwrap_or(NaiveTime::MIN);
    time_or_date(text, last)
}

fn time_or_date(text: &str, time_of_day: NaiveTime) -> Result<DateTime<Utc>, String> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
        "must be an RFC 3339 time such as 2024-01-05T10:11:12Z, or a date such as 2024-01-05".to_string()
    })?;
    // A clock change may skip the time (no instant) or repeat it (the earlier one).
    Local
        .from_local_datetime(&date.and_time(time_of_day))
        .earliest()
        .map(|at| at.with_timezone(&Utc))
        .ok_or_else(|| format!("{text} has no {time_of_day} in your time zone: give an RFC 3339 time instead"))
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

pub async fn run(command: SyncCommand, client: &ApiClient) -> Result<(), CliError> {
    match command {
        SyncCommand::Start(args) => start(client, &args).await,
        SyncCommand::Status(args) => status(client, &args).await,
        SyncCommand::History(args) => history(client, &args).await,
        SyncCommand::Cancel(args) => cancel(client, &args).await,
        SyncCommand::Resume(args) => resume(client, &args).await,
    }
}

async fn start(client: &ApiClient, args: &StartArgs) -> Result<(), CliError> {
    let mut body = json!({});
    if let Some(mode) = args.mode {
        body["mode"] = json!(word(&mode));
    }
    let mut scope = json!({});
    if let Some(from) = args.from {
        scope["from"] = json!(rfc3339(from));
    }
    if !args.severity.is_empty() {
        scope["severities"] = json!(args.severity.iter().map(word).collect::<Vec<_>>());
    }
    if scope != json!({}) {
        body["scope"] = scope;
    }
    let path = ["connectors", args.connector.as_str(), "syncs"];
    let started: Started = client.post(&path, &body).await?.read()?;
    eprintln!("started sync {} of connector {}", started.job_id, args.connector);
    follow_unless(client, &started.job_id, args.no_wait).await
}

async fn resume(client: &ApiClient, args: &ResumeArgs) -> Result<(), CliError> {
    let job: Job = client.get(&["jobs", &args.job], &[]).await?.read()?;
    let path = ["connectors", job.connector_id.as_str(), "syncs"];
    let body = json!({ "resume_job_id": args.job });
    let started: Started = client.post(&path, &body).await?.read()?;
    eprintln!("resumed sync {} of connector {} as {}", args.job, job.connector_id, started.job_id);
    follow_unless(client, &started.job_id, args.no_wait).await
}

/// Follows the sync, or prints its job id (alone on stdout, for scripts) when asked not to wait.
async fn follow_unless(client: &ApiClient, job_id: &str, no_wait: bool) -> Result<(), CliError> {
    if no_wait {
        eprintln!("`vulnflow sync status {job_id}` shows its progress");
        return output::print(&format!("{job_id}\n"));
    }
    eprintln!("following it (Ctrl-C stops following, not the sync)");
    follow(client, job_id).await
}

/// Shows the sync's progress until it ends, then its stages and counts; fails unless
/// it FINISHED.
async fn follow(client: &ApiClient, job_id: &str) -> Result<(), CliError> {
    let mut progress = Progress::start();
    let polled = until_ended(client, job_id, &mut progress).await;
    progress.finish();
    polled.map_err(|error| error.while_following(job_id))?;
    let job: Job = client.get(&["jobs", job_id], &[]).await?.read()?;
    output::print(&report(&job))?;
    outcome(job)
}

async fn until_ended(client: &ApiClient, job_id: &str, progress: &mut Progress) -> Result<(), CliError> {
    let mut ticks = tokio::time::interval(POLL_INTERVAL);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let status: JobStatusView = client.get(&["jobs", job_id, "status"], &[]).await?.read()?;
        progress.show(&status);
        if status.status.is_terminal() {
            return Ok(());
        }
    }
}

/// An ended job's exit: success only for FINISHED.
fn outcome(job: Job) -> Result<(), CliError> {
    if job.status == JobStatus::Finished {
        return Ok(());
    }
    Err(CliError::SyncEnded { job_id: job.job_id, status: job.status, failure: job.failure })
}

/// The job's summary line, its stage table, chunks and counts.
fn report(job: &Job) -> String {
    let mut stages = Table::new(&["STAGE", "OUTCOME", "STARTED", "DURATION"]);
    for run in &job.stages {
        stages.row(vec![
            run.stage.to_string(),
            run.outcome.as_str().to_string(),
            output::clock(run.started_at),
            output::duration_or_running(run.duration_ms),
        ]);
    }
    let chunks = job.chunks;
    let carried = if chunks.carried_over > 0 {
        format!(" ({} carried over from {})", chunks.carried_over, job.carries_from.join(", "))
    } else {
        String::new()
    };
    let resumed = match (&job.resumed_from, &job.starts_over_because) {
        (Some(earlier), Some(reason)) => format!("resumed job {earlier} from the start: {reason}\n"),
        (Some(earlier), None) => format!("resumed job {earlier} where it stopped\n"),
        _ => String::new(),
    };
    format!(
        "sync {} of connector {}: {} after {} ({}, {}, started {})\n{resumed}\n{}\nchunks: {} of {} processed{carried}, {} failed\n{}\n{}",
        job.job_id,
        job.connector_id,
        job.status,
        output::duration_or_running(job.duration_ms),
        job.mode,
        wire::trigger(&job.trigger),
        output::time(job.started_at),
        stages.render(),
        chunks.processed,
        chunks.total,
        chunks.failed,
        output::counts(&job.counts),
        output::usage(&job.usage),
    )
}

async fn status(client: &ApiClient, args: &StatusArgs) -> Result<(), CliError> {
    let answer = client.get(&["jobs", &args.job, "status"], &[]).await?;
    let view: JobStatusView = answer.read()?;
    if args.json {
        output::print_json(&answer.body)?;
    } else {
        let chunks = view.chunks;
        let eta = match view.eta_seconds {
            Some(_) if view.likely_stalled => "over 4 h: likely stalled".to_string(),
            Some(seconds) => output::seconds(seconds as i64),
            None if !view.total_is_final => "- (an export has yet to tell its chunks)".to_string(),
            None => "-".to_string(),
        };
        let more = if view.total_is_final { "" } else { "+" };
        let stage = view.current_stage.map_or_else(|| "-".to_string(), |stage| stage.to_string());
        output::print(&format!(
            "job:     {}\nstatus:  {}\nstage:   {stage}\nchunks:  {} of {}{more} processed, {} failed\npercent: {}%\neta:     {eta}\n",
            args.job, view.status, chunks.processed, chunks.total, chunks.failed, view.percent
        ))?;
    }
    if view.status.is_terminal() && view.status != JobStatus::Finished {
        // The status view has no failure: the job has it, and what to do about it.
        let job: Job = client.get(&["jobs", &args.job], &[]).await?.read()?;
        return outcome(job);
    }
    Ok(())
}

async fn history(client: &ApiClient, args: &HistoryArgs) -> Result<(), CliError> {
    let mut filters: Vec<(&str, String)> = Vec::new();
    for (name, list) in
        [("activity", words(&args.modes)), ("status", words(&args.status)), ("stage", words(&args.stage))]
    {
        if !list.is_empty() {
            filters.push((name, list));
        }
    }
    if let Some(trigger) = args.trigger {
        filters.push(("trigger", word(&trigger)));
    }
    if let Some(level) = args.level {
        filters.push(("level", word(&level)));
    }
    for (name, at) in [("from", args.from), ("to", args.to)] {
        if let Some(at) = at {
            filters.push((name, rfc3339(at)));
        }
    }
    let wanted = match args.limit {
        _ if args.all => usize::MAX,
        Some(limit) => usize::try_from(limit).unwrap_or(usize::MAX),
        None => DEFAULT_ROWS,
    };
    // A page may hold fewer rows than asked while more follow: read on until enough.
    let (mut rows, mut json_rows) = (Vec::new(), Vec::new());
    let mut next_token: Option<String> = None;
    loop {
        let mut query = filters.clone();
        query.push(("limit", (wanted - rows.len()).min(MAX_PAGE).to_string()));
        if let Some(token) = next_token.take() {
            query.push(("next_token", token));
        }
        let answer = client.get(&["connectors", &args.connector, "syncs"], &query).await?;
        let page: wire::History = answer.read()?;
        rows.extend(page.syncs);
        json_rows.extend(answer.body["syncs"].as_array().into_iter().flatten().cloned());
        next_token = page.next_token;
        if next_token.is_none() || rows.len() >= wanted {
            break;
        }
    }
    if args.json {
        let mut body = json!({ "syncs": json_rows });
        if let Some(token) = &next_token {
            body["next_token"] = json!(token);
        }
        return output::print_json(&body);
    }
    if rows.is_empty() {
        eprintln!("no syncs of connector {} match", args.connector);
        return Ok(());
    }
    let mut table =
        Table::new(&["JOB", "TRIGGER", "MODE", "STATUS", "LOG", "STARTED", "DURATION", "FINDINGS", "CHANGES", "COST"]);
    for row in rows {
        let (received, changes) = match &row.counts {
            Some(counts) => (counts.findings_received.to_string(), output::finding_changes(counts)),
            None => ("-".to_string(), "-".to_string()),
        };
        table.row(vec![
            row.job_id,
            wire::trigger(&row.trigger),
            row.activity,
            row.status.to_string(),
            row.log_level.map_or_else(|| "-".to_string(), |level| word(&level)),
            output::time(row.started_at),
            output::duration_or_running(row.duration_ms),
            received,
            changes,
            row.cost_usd.map_or_else(|| "-".to_string(), |usd| format!("${usd:.4}")),
        ]);
    }
    output::print(&table.render())?;
    if next_token.is_some() {
        eprintln!("more syncs follow: --limit N shows more, --all shows every one");
    }
    Ok(())
}

async fn cancel(client: &ApiClient, args: &CancelArgs) -> Result<(), CliError> {
    let body = match &args.reason {
        Some(reason) => json!({ "reason": reason }),
        None => json!({}),
    };
    let job: Job = client.post(&["jobs", &args.job, "cancel"], &body).await?.read()?;
    eprintln!("cancelled sync {}", job.job_id);
    output::print(&report(&job))
}
