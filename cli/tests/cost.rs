//! `vulnflow cost`, run as a user runs it before deploying.

use std::process::{Command, Output};

use serde_json::Value;

fn vulnflow(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vulnflow")).arg("cost").args(args).output().expect("vulnflow runs")
}

fn estimate(args: &[&str]) -> Value {
    let output = vulnflow(&[args, &["--json"]].concat());
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("the estimate is JSON")
}

fn line<'a>(estimate: &'a Value, service: &str, item: &str) -> &'a Value {
    estimate["lines"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|line| line["service"] == service && line["item"] == item)
        .unwrap_or_else(|| panic!("no {service} {item} line in {estimate}"))
}

#[test]
fn prints_each_services_share_and_the_price_per_million_findings() {
    let output = vulnflow(&[]);
    assert_eq!(output.status.code(), Some(0));
    let text = String::from_utf8_lossy(&output.stdout);
    for expected in ["Lambda", "Step Functions", "DynamoDB", "S3", "per million findings:", "a month, 30 syncs:"] {
        assert!(text.contains(expected), "{expected} missing from:\n{text}");
    }
    assert!(text.starts_with("a sync of 1000000 findings on 50000 assets: 100 vulns and 100 assets chunks"), "{text}");
    assert!(!text.contains("warning"), "{text}");
}

#[test]
fn warns_when_a_chunk_would_not_fit_in_the_functions_memory() {
    let output = vulnflow(&["--assets-per-chunk", "5000"]);
    assert_eq!(output.status.code(), Some(0));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("warning: a chunk needs about")
            && text.contains("lower ExportAssetsPerChunk or raise MemorySize"),
        "{text}"
    );
    assert_eq!(estimate(&["--assets-per-chunk", "5000"])["chunk_fits_in_memory"], false);
    assert_eq!(estimate(&["--assets-per-chunk", "5000", "--memory-mb", "2048"])["chunk_fits_in_memory"], true);
}

#[test]
fn the_estimate_follows_the_size_of_the_sync_and_the_settings() {
    let million = estimate(&[]);
    let two_million = estimate(&["--findings", "2000000"]);
    let per_million = |estimate: &Value| estimate["usd_per_million_findings"].as_f64().expect("a price");
    let sync = |estimate: &Value| estimate["sync_usd"].as_f64().expect("a price");
    assert!((per_million(&million) - sync(&million)).abs() < 1e-9);
    let ratio = sync(&two_million) / sync(&million);
    assert!((1.9..2.1).contains(&ratio), "twice the findings, about twice the cost: {ratio}");

    let writes = line(&million, "DynamoDB", "writes");
    assert!(writes["usd"].as_f64().unwrap() > sync(&million) / 2.0, "storing findings dominates: {million}");
    let fewer_chunks = estimate(&["--assets-per-chunk", "5000"]);
    let transitions =
        |estimate: &Value| line(estimate, "Step Functions", "state transitions")["quantity"].as_f64().unwrap();
    // A tenth of the chunks: a tenth of the per-chunk transitions, and the same polls.
    assert!(transitions(&fewer_chunks) < transitions(&million) / 4.0);
    let own_price = estimate(&["--dynamodb-write-price", "0"]);
    assert_eq!(line(&own_price, "DynamoDB", "writes")["usd"], 0.0);
    assert_eq!(own_price["prices"]["dynamodb_per_million_write_units"], 0.0);
}

#[test]
fn bad_sizes_are_refused_with_the_option_named() {
    for args in [&["--findings-per-asset", "0"][..], &["--assets-per-chunk", "10"], &["--findings", "many"]] {
        let output = vulnflow(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(args[0].trim_start_matches('-')), "{args:?}: {stderr}");
    }
}
