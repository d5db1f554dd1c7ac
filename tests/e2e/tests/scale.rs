//! The scale run at a size CI affords, with a chunk download that fails once: every
//! count and every stored finding must still equal the simulator's truth.

use tenable_simulator::{Faults, ServerErrors};
use vulnflow_e2e::Stack;
use vulnflow_e2e::scale::{self, ScaleConfig};

#[tokio::test]
async fn a_full_sync_a_resync_and_a_resync_after_changes_store_exactly_what_the_scanner_has() {
    let stack = Stack::local().await;
    let faults = Faults {
        server_errors: Some(ServerErrors { status: 500, chunk_ids: vec![2], times: 1 }),
        ..Default::default()
    };
    let config = ScaleConfig { findings: 4_000, findings_per_asset: 20, faults };
    let report = scale::run(&stack, config, |line| println!("{line}")).await;
    assert!(report.failures.is_empty(), "{:#?}", report.failures);
    let [first, unchanged, changed] = &report.syncs[..] else { panic!("three syncs ran: {:?}", report.syncs.len()) };
    assert_eq!(first.findings_written, 4_000);
    assert_eq!(unchanged.findings_written, 0, "an unchanged re-sync writes no finding");
    assert!(changed.job.counts.findings_inactivated >= 40, "{:?}", changed.job.counts);
    assert!(first.job.chunks.retried >= 1, "the chunk that failed once was retried: {:?}", first.job.chunks);

    // What DynamoDB reported consuming: findings are packed several to a write unit (one
    // item each took 4,000 and more), and an unchanged re-sync writes no finding (about a
    // unit per asset, and bookkeeping).
    let (first_usage, unchanged_usage) = (&first.job.usage, &unchanged.job.usage);
    assert!(first_usage.write_units() < 0.6 * 4_000.0, "{first_usage:?}");
    assert!(unchanged_usage.write_units() < 1_000.0, "{unchanged_usage:?}");
    assert!(unchanged_usage.read_units() > 0.0 && unchanged_usage.s3_gets > 0, "{unchanged_usage:?}");
    assert!(first_usage.lambda_invocations >= 3 * first.job.chunks.total, "{first_usage:?}");
}
