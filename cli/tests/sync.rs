//! `vulnflow sync ...` run as an operator runs it, against the real API logic; the
//! tests move each job along in the store as the workflow would.

mod common;

use chrono::{DateTime, Duration, Utc};
use common::{ADMIN, CONNECTOR, TestApi, admin, assert_exit, failure, reader, stderr, stdout, token};
use serde_json::{Value, json};
use vulnflow_shared::auth::Role;
use vulnflow_shared::model::{ChunkRecord, ExportKind, JobFailure, JobStatus, RecordCounts, Stage};
use vulnflow_shared::store::JobStore;
use vulnflow_shared::usage::Usage;

/// What each chunk of the tests' syncs stores.
fn per_chunk() -> RecordCounts {
    RecordCounts {
        findings_received: 30,
        findings_new: 3,
        findings_updated: 2,
        findings_unchanged: 25,
        assets_received: 5,
        assets_new: 1,
        ..RecordCounts::default()
    }
}

fn is_status_of(job_id: &str, served: &common::Served) -> bool {
    served.path == format!("/jobs/{job_id}/status")
}

/// The stage table's rows: (stage, outcome).
fn stage_rows(stdout: &str) -> Vec<(String, String)> {
    stdout
        .lines()
        .skip_while(|line| !line.starts_with("STAGE"))
        .skip(1)
        .take_while(|line| !line.is_empty())
        .map(|line| {
            let cells: Vec<&str> = line.split_whitespace().collect();
            (cells[0].to_string(), cells[1].to_string())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_start_shows_progress_then_the_stage_table_and_exits_0() {
    let api = TestApi::start().await;
    let admin = admin();
    let cli = api.vulnflow(
        &admin,
        &["sync", "start", CONNECTOR, "--mode", "vulns_only", "--from", "2024-01-05", "--severity", "high,critical"],
    );
    let workflow = async {
        let job_id = api.started_job(0).await;
        api.run_until_processing(&job_id, 4, 2, &per_chunk()).await;
        // Half way, until the CLI has read it twice: it prints the line once.
        api.wait_served("the status at 2 of 4 chunks", 2, |served| {
            is_status_of(&job_id, served) && served.answer["chunks"]["processed"] == 2
        })
        .await;
        api.process_chunks(&job_id, 2..4, &per_chunk()).await;
        api.end(&job_id, JobStatus::Finished, None).await;
        job_id
    };
    let (output, job_id) = tokio::join!(cli, workflow);
    assert_exit(&output, 0);

    let input = &api.workflow.executions()[0].input;
    assert_eq!(input["mode"], "vulns_only");
    assert_eq!(input["scope"], json!({ "from": "2024-01-05T00:00:00Z", "severities": ["high", "critical"] }));

    let stderr = stderr(&output);
    assert!(stderr.contains(&format!("started sync {job_id} of connector {CONNECTOR}")), "{stderr}");
    // Not a terminal: plain progress lines, one per change, with the API's estimate.
    let halfway: Vec<&str> = stderr.lines().filter(|line| line.contains("2/4 chunks")).collect();
    assert_eq!(halfway.len(), 1, "one line per change: {stderr}");
    assert!(halfway[0].starts_with("DELEGATED  Processing  2/4 chunks (50%)  ETA "), "{stderr}");
    assert!(stderr.contains("FINISHED  -  4/4 chunks (100%)"), "{stderr}");

    let stdout = stdout(&output);
    let first = stdout.lines().next().unwrap_or_default();
    assert!(first.starts_with(&format!("sync {job_id} of connector {CONNECTOR}: FINISHED after ")), "{stdout}");
    assert!(first.contains("(vulns_only, manual by ana@example.com, started "), "{stdout}");
    let succeeded = |stage: &str| (stage.to_string(), "succeeded".to_string());
    assert_eq!(
        stage_rows(&stdout),
        [
            succeeded("Initiating"),
            succeeded("ConnectivityTest"),
            succeeded("Fetching"),
            succeeded("Normalizing"),
            succeeded("Processing"),
            succeeded("Finalizing"),
        ],
        "{stdout}"
    );
    assert!(stdout.contains("\nchunks: 4 of 4 processed, 0 failed\n"), "{stdout}");
    assert!(
        stdout.contains(
            "\nfindings: 120 received, 12 new, 8 updated, 100 unchanged, 0 reopened, 0 fixed, 0 inactivated\n\
             assets: 20 received, 4 new, 0 updated\n"
        ),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_that_ends_api_error_exits_1_with_its_message_and_action() {
    let api = TestApi::start().await;
    let admin = admin();
    let cli = api.vulnflow(&admin, &["sync", "start", CONNECTOR]);
    let workflow = async {
        let job_id = api.started_job(0).await;
        api.run_until_processing(&job_id, 4, 1, &per_chunk()).await;
        let why = JobFailure {
            http_status: Some(500),
            chunk: Some("vulns-00002".into()),
            ..failure(
                JobStatus::ApiError,
                Stage::Normalizing,
                "record 3 of chunk vulns-00002: field `plugin.id` is missing",
                "Re-run the sync; if the chunk fails again, report the scanner's answer",
            )
        };
        api.end(&job_id, JobStatus::ApiError, Some(why)).await;
        job_id
    };
    let (output, job_id) = tokio::join!(cli, workflow);
    assert_exit(&output, 1);
    let stderr = stderr(&output);
    assert!(
        stderr.contains(&format!(
            "error: sync {job_id} ended API_ERROR at Normalizing (HTTP 500, chunk vulns-00002): \
             record 3 of chunk vulns-00002: field `plugin.id` is missing\n  \
             what to do: Re-run the sync; if the chunk fails again, report the scanner's answer\n"
        )),
        "{stderr}"
    );
    let stdout = stdout(&output);
    assert!(stdout.starts_with(&format!("sync {job_id} of connector {CONNECTOR}: API_ERROR after ")), "{stdout}");
    let rows = stage_rows(&stdout);
    assert!(rows.contains(&("Normalizing".into(), "failed".into())), "{stdout}");
    assert!(stdout.contains("chunks: 1 of 4 processed, 3 failed"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_starting_a_sync_exits_3_with_the_403_message_and_no_token_shown() {
    let api = TestApi::start().await;
    let reader = reader();
    let output = api.vulnflow(&reader, &["sync", "start", CONNECTOR, "--no-wait"]).await;
    assert_exit(&output, 3);
    assert_eq!(
        stderr(&output),
        "error: 403 Forbidden: rui@example.com has the role \"reader\"; \
         POST /connectors/{connector_id}/syncs needs the role admin: ask an administrator for it\n"
    );
    assert_eq!(stdout(&output), "");
    assert!(api.workflow.executions().is_empty(), "no sync started");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sync_while_one_runs_exits_3_with_the_409_message() {
    let api = TestApi::start().await;
    let running = api.start_sync(json!({})).await;
    let output = api.vulnflow(&admin(), &["sync", "start", CONNECTOR]).await;
    assert_exit(&output, 3);
    assert!(
        stderr(&output)
            .starts_with(&format!("error: 409 Conflict: sync {running} of connector {CONNECTOR} is running (STARTED)")),
        "{}",
        stderr(&output)
    );
    assert_eq!(api.workflow.executions().len(), 1, "no second sync");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_job_exits_3_with_the_404_message() {
    let api = TestApi::start().await;
    for args in [
        ["sync", "status", "no-such-job"].as_slice(),
        &["sync", "cancel", "no-such-job"],
        &["sync", "resume", "no-such-job"],
    ] {
        let output = api.vulnflow(&admin(), args).await;
        assert_exit(&output, 3);
        assert!(
            stderr(&output).starts_with("error: 404 Not Found: there is no job no-such-job"),
            "{args:?}: {}",
            stderr(&output)
        );
    }
    assert!(api.workflow.executions().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_signed_with_another_key_exits_3_with_the_401_message() {
    let api = TestApi::start().await;
    let forged = vulnflow_shared::auth::mint(
        b"not this deployment's key, though 32+ bytes",
        ADMIN,
        Role::Admin,
        chrono::Duration::hours(1),
        chrono::Utc::now(),
    );
    let output = api.vulnflow(&forged, &["sync", "history", CONNECTOR]).await;
    assert_exit(&output, 3);
    let stderr = stderr(&output);
    assert!(
        stderr.starts_with(
            "error: 401 Unauthorized: the bearer token was refused: \
             the token's signature does not match this deployment's key"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("check --token or VULNFLOW_TOKEN"), "{stderr}");
    assert!(!stderr.contains(&forged), "the token is never printed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_status_shows_the_progress_and_a_failed_jobs_exit_is_1() {
    let api = TestApi::start().await;
    let job_id = api.start_sync(json!({})).await;
    api.run_until_processing(&job_id, 4, 1, &per_chunk()).await;

    let output = api.vulnflow(&reader(), &["sync", "status", &job_id]).await;
    assert_exit(&output, 0);
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[..5],
        [
            format!("job:     {job_id}").as_str(),
            "status:  DELEGATED",
            "stage:   Processing",
            "chunks:  1 of 4 processed, 0 failed",
            "percent: 25%",
        ],
        "{text}"
    );
    assert!(lines[5].starts_with("eta:     ") && lines[5].ends_with(" s"), "{text}");

    let json_output = api.vulnflow(&reader(), &["sync", "status", &job_id, "--json"]).await;
    assert_exit(&json_output, 0);
    let view: Value = serde_json::from_str(&stdout(&json_output)).expect("JSON");
    assert_eq!((&view["job_id"], &view["status"], &view["percent"]), (&json!(job_id), &json!("DELEGATED"), &json!(25)));

    let why = failure(
        JobStatus::CredentialError,
        Stage::ConnectivityTest,
        "Tenable refused the keys",
        "Check the connector's access and secret keys",
    );
    api.end(&job_id, JobStatus::CredentialError, Some(why)).await;
    let ended = api.vulnflow(&reader(), &["sync", "status", &job_id]).await;
    assert_exit(&ended, 1);
    assert!(stdout(&ended).contains("status:  CREDENTIAL_ERROR\n"));
    assert!(
        stderr(&ended).contains(
            "ended CREDENTIAL_ERROR at ConnectivityTest: \
             Tenable refused the keys\n  what to do: Check the connector's access and secret keys"
        ),
        "{}",
        stderr(&ended)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_status_says_when_more_chunks_are_to_come() {
    let api = TestApi::start().await;
    // A full sync whose assets export told its 4 chunks; the vulns export runs.
    let job_id = api.start_sync(json!({ "mode": "full" })).await;
    api.store.add_total_chunks(&job_id, ExportKind::Assets, 4).await.expect("the in-memory store");
    let output = api.vulnflow(&reader(), &["sync", "status", &job_id]).await;
    assert_exit(&output, 0);
    let text = stdout(&output);
    assert!(text.contains("chunks:  0 of 4+ processed"), "{text}");
    assert!(text.contains("eta:     - (an export has yet to tell its chunks)"), "{text}");
}

/// `count` ended syncs of the connector, oldest first; every third ends API_ERROR.
async fn past_syncs(api: &TestApi, count: usize) -> Vec<String> {
    let mut jobs = Vec::new();
    for index in 0..count {
        let job_id = api.start_sync(json!({})).await;
        api.run_until_processing(&job_id, 4, 4, &per_chunk()).await;
        let status = if index % 3 == 1 { JobStatus::ApiError } else { JobStatus::Finished };
        api.end(&job_id, status, None).await;
        jobs.push(job_id);
    }
    jobs
}

fn rows(output: &std::process::Output) -> (Vec<String>, Value) {
    let page: Value = serde_json::from_str(&stdout(output)).expect("valid JSON");
    let ids = page["syncs"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|row| row["job_id"].as_str().expect("a job id").to_string())
        .collect();
    (ids, page)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_history_json_is_newest_first_and_all_follows_every_page() {
    let api = TestApi::start().await;
    let oldest_first = past_syncs(&api, 105).await;
    let newest_first: Vec<String> = oldest_first.iter().rev().cloned().collect();

    let output = api.vulnflow(&reader(), &["sync", "history", CONNECTOR, "--json"]).await;
    assert_exit(&output, 0);
    let (ids, page) = rows(&output);
    assert_eq!(ids, newest_first[..20], "20 rows by default, newest first");
    assert!(page["next_token"].is_string(), "more follow: {page}");
    assert_eq!(page["syncs"][0]["counts"]["findings_new"], 12);
    assert_eq!(page["syncs"][0]["trigger"], json!({ "type": "manual", "by": ADMIN }));

    let output = api.vulnflow(&reader(), &["sync", "history", CONNECTOR, "--json", "--limit", "3"]).await;
    assert_eq!(rows(&output).0, newest_first[..3]);

    let output = api.vulnflow(&reader(), &["sync", "history", CONNECTOR, "--json", "--all"]).await;
    assert_exit(&output, 0);
    let (ids, page) = rows(&output);
    assert_eq!(ids, newest_first, "every sync, in order");
    assert!(page.get("next_token").is_none(), "{page:#}");
    let pages: Vec<common::Served> =
        api.served().into_iter().filter(|served| served.path == format!("/connectors/{CONNECTOR}/syncs")).collect();
    let last_two = &pages[pages.len() - 2..];
    assert!(
        last_two[1]
            .query
            .iter()
            .any(|(name, value)| name == "next_token"
                && Some(value.as_str()) == last_two[0].answer["next_token"].as_str()),
        "the second page was asked with the first page's token: {last_two:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_history_prints_a_table_and_passes_the_filters_on() {
    let api = TestApi::start().await;
    let jobs = past_syncs(&api, 3).await;
    // The newest sync consumed 1.6 million write units: $1.00 at $0.625 a million.
    let writes = Usage { dynamodb_write_milliunits: 1_600_000_000, ..Usage::default() };
    api.store.add_usage(&jobs[2], &writes).await.expect("the in-memory store");

    let output = api.vulnflow(&reader(), &["sync", "history", CONNECTOR]).await;
    assert_exit(&output, 0);
    let table = stdout(&output);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["JOB", "TRIGGER", "MODE", "STATUS", "LOG", "STARTED", "DURATION", "FINDINGS", "CHANGES", "COST"]
    );
    assert_eq!(lines.len(), 4, "{table}");
    assert!(lines[1].starts_with(&jobs[2]), "newest first: {table}");
    for (line, (status, level, cost)) in lines[1..].iter().zip([
        ("FINISHED", "info", "$1.0000"),
        ("API_ERROR", "error", "$0.0000"),
        ("FINISHED", "info", "$0.0000"),
    ]) {
        assert!(line.contains(&format!("manual by {ADMIN}  full  {status}")), "{table}");
        assert!(line.split_whitespace().any(|word| word == level), "{table}");
        assert!(line.ends_with(&format!("  120       12 new, 8 updated  {cost}")), "{table}");
    }

    let output = api.vulnflow(&reader(), &["sync", "history", CONNECTOR, "--status", "api_error"]).await;
    assert_exit(&output, 0);
    let table = stdout(&output);
    assert_eq!(table.lines().count(), 2, "{table}");
    assert!(table.lines().nth(1).is_some_and(|row| row.starts_with(&jobs[1])), "{table}");

    let output = api
        .vulnflow(
            &reader(),
            &[
                "sync",
                "history",
                CONNECTOR,
                "--type",
                "incremental,assets_only",
                "--trigger",
                "scheduled",
                "--stage",
                "processing",
                "--level",
                "warn",
                "--from",
                "2000-01-01",
                "--to",
                "2000-01-02",
            ],
        )
        .await;
    assert_exit(&output, 0);
    assert_eq!(stdout(&output), "");
    assert!(stderr(&output).contains("no syncs of connector tenable-cli match"));
    let asked = api.served().pop().expect("a request");
    let mut query = asked.query.clone();
    query.sort();
    let expected = [
        ("activity", "incremental,assets_only"),
        ("from", "2000-01-01T00:00:00Z"),
        ("level", "warn"),
        ("limit", "20"),
        ("stage", "Processing"),
        ("to", "2000-01-02T23:59:59.999Z"),
        ("trigger", "scheduled"),
    ]
    .map(|(name, value)| (name.to_string(), value.to_string()));
    assert_eq!(query, expected);

    let output = api.vulnflow(&reader(), &["sync", "history", CONNECTOR, "--stage", "Polishing"]).await;
    assert_exit(&output, 2);
}

/// Runs `vulnflow args` as a reader in India's time zone (UTC+05:30, no clock changes).
async fn in_india(api: &TestApi, args: &[&str]) -> std::process::Output {
    let token = reader();
    common::vulnflow(args, &[("VULNFLOW_API_URL", &api.url), ("VULNFLOW_TOKEN", &token), ("TZ", "IST-5:30")]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn times_show_in_the_readers_zone_and_dates_are_read_in_it() {
    let api = TestApi::start().await;
    past_syncs(&api, 1).await;
    let (_, page) = rows(&in_india(&api, &["sync", "history", CONNECTOR, "--json"]).await);
    let started = page["syncs"][0]["started_at"].as_str().expect("a time");
    let started: DateTime<Utc> = started.parse().expect("RFC 3339, UTC in JSON");
    let table = stdout(&in_india(&api, &["sync", "history", CONNECTOR]).await);
    let shown = (started + Duration::minutes(330)).format("%Y-%m-%d %H:%M:%S +05:30");
    assert!(table.contains(&shown.to_string()), "{shown} in {table}");

    let output = in_india(&api, &["sync", "history", CONNECTOR, "--from", "2000-01-01", "--to", "2000-01-02"]).await;
    assert_exit(&output, 0);
    let asked = api.served().pop().expect("a request");
    let bound = |name: &str| asked.query.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    assert_eq!(
        (bound("from"), bound("to")),
        (Some("1999-12-31T18:30:00Z".to_string()), Some("2000-01-02T18:29:59.999Z".to_string())),
        "the days as they are in India"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_cancel_stops_the_execution_with_the_reason() {
    let api = TestApi::start().await;
    let started = api.vulnflow(&admin(), &["sync", "start", CONNECTOR, "--no-wait"]).await;
    assert_exit(&started, 0);
    let job_id = stdout(&started).trim().to_string();
    assert_eq!(api.workflow.executions()[0].name, job_id, "stdout is the job id alone");
    api.run_until_processing(&job_id, 4, 1, &per_chunk()).await;

    let output = api.vulnflow(&admin(), &["sync", "cancel", &job_id, "--reason", "wrong scope"]).await;
    assert_exit(&output, 0);
    assert_eq!(api.workflow.executions()[0].stopped.as_deref(), Some("cancelled by ana@example.com: wrong scope"));
    let job = api.store.get_job(&job_id).await.unwrap().expect("the job");
    assert_eq!(job.status, JobStatus::Cancelled);
    let text = stdout(&output);
    assert!(text.starts_with(&format!("sync {job_id} of connector {CONNECTOR}: CANCELLED after ")), "{text}");
    assert!(stage_rows(&text).contains(&("Processing".into(), "cancelled".into())), "{text}");
    assert!(text.contains("chunks: 1 of 4 processed, 3 failed"), "{text}");

    let again = api.vulnflow(&admin(), &["sync", "cancel", &job_id]).await;
    assert_exit(&again, 3);
    assert!(
        stderr(&again).starts_with(&format!("error: 409 Conflict: job {job_id} already ended (CANCELLED)")),
        "{}",
        stderr(&again)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_resume_posts_resume_job_id_and_follows_the_new_sync() {
    let api = TestApi::start().await;
    let failed = api.start_sync(json!({ "mode": "assets_only", "scope": { "severities": ["critical"] } })).await;
    api.run_until_processing(&failed, 4, 2, &per_chunk()).await;
    api.end(&failed, JobStatus::ApiError, None).await;

    let admin = admin();
    let args = ["sync", "resume", failed.as_str()];
    let cli = api.vulnflow(&admin, &args);
    let workflow = async {
        let job_id = api.started_job(1).await;
        // As the workflow would: the two chunks the failed job processed are carried
        // over, the other two processed.
        api.run_until_processing(&job_id, 4, 0, &per_chunk()).await;
        let earlier = api.store.chunks(&failed).await.expect("the in-memory store");
        let carried: Vec<ChunkRecord> = earlier
            .into_iter()
            .map(|chunk| ChunkRecord { job_id: job_id.clone(), carried_from: Some(failed.clone()), ..chunk })
            .collect();
        assert_eq!(api.store.carry_over_chunks(&carried).await.expect("the in-memory store"), 2);
        api.process_chunks(&job_id, 2..4, &per_chunk()).await;
        api.end(&job_id, JobStatus::Finished, None).await;
        job_id
    };
    let (output, resumed) = tokio::join!(cli, workflow);
    assert_exit(&output, 0);
    let job = api.store.get_job(&resumed).await.expect("read").expect("the resumed job");
    assert_eq!(job.carries_from, [failed.as_str()], "same mode and scope, nothing newer: it carries over");

    let posted = api.served().into_iter().find(|served| served.method == "POST").expect("a POST");
    assert_eq!(posted.path, format!("/connectors/{CONNECTOR}/syncs"));
    assert_eq!(posted.body, json!({ "resume_job_id": failed }));
    let input = &api.workflow.executions()[1].input;
    assert_eq!(input["resumed_from"], json!(failed));
    assert_eq!(input["mode"], "assets_only", "the resumed job's mode");
    assert!(
        stderr(&output).contains(&format!("resumed sync {failed} of connector {CONNECTOR} as {resumed}")),
        "{}",
        stderr(&output)
    );
    assert!(
        stdout(&output).starts_with(&format!("sync {resumed} of connector {CONNECTOR}: FINISHED after ")),
        "{}",
        stdout(&output)
    );
    for expected in [
        format!("resumed job {failed} where it stopped"),
        format!("chunks: 4 of 4 processed (2 carried over from {failed}), 0 failed"),
    ] {
        assert!(stdout(&output).contains(&expected), "{expected} in:\n{}", stdout(&output));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_cannot_cancel_a_sync() {
    let api = TestApi::start().await;
    let job_id = api.start_sync(json!({})).await;
    let reader = token("auditor@example.com", Role::Reader);
    let output = api.vulnflow(&reader, &["sync", "cancel", &job_id]).await;
    assert_exit(&output, 3);
    assert!(stderr(&output).starts_with("error: 403 Forbidden: auditor@example.com"));
    assert_eq!(api.workflow.executions()[0].stopped, None);
}
