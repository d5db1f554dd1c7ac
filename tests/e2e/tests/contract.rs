//! The sync API's contract, `api/openapi.yaml`, checked against the deployed API by
//! schemathesis (installed by infra/local/install.sh): requests generated from the
//! document, valid and not, with an admin's token. No request may get a 5xx, and
//! every answer must match the document.

use std::process::Command;

use serde_json::json;
use vulnflow_e2e::api::ApiClient;
use vulnflow_e2e::{Stack, repo_root};
use vulnflow_shared::auth::Role;

#[tokio::test]
async fn generated_requests_never_get_a_server_error_and_every_answer_matches_the_document() {
    let stack = Stack::local().await;
    let api = ApiClient::new(&stack);
    let admin = stack.token("schemathesis@example.com", Role::Admin).await;
    let root = repo_root();
    let report = root.join(".local/logs/schemathesis");
    let output = Command::new(root.join(".local/schemathesis/bin/st"))
        .current_dir(&root)
        .env("SCHEMATHESIS_HOOKS", "schemathesis_hooks")
        .env("PYTHONPATH", root.join("tests/e2e"))
        .args(["run", "api/openapi.yaml", "--url", &api.base])
        .args(["--header", &format!("Authorization: Bearer {admin}")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
        ])
        .args(["--phases", "examples,coverage,fuzzing", "--max-examples", "40", "--seed", "2026"])
        .args(["--workers", "2", "--no-color", "--generation-database", "none", "--output-sanitize", "true"])
        .args(["--report", "junit", "--report-dir"])
        .arg(&report)
        .output()
        .expect("schemathesis runs (infra/local/install.sh installs it)");
    let printed = format!("{}\n{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));

    // Generated connectors may carry schedules: no later tick may sync them.
    let connectors = api.get("/connectors", &admin).await;
    for connector in connectors.body["connectors"].as_array().into_iter().flatten() {
        if !connector["schedule_hours"].is_null() {
            let path = format!("/connectors/{}", connector["connector_id"].as_str().unwrap_or_default());
            api.call(reqwest::Method::PATCH, &path, Some(&admin), Some(json!({ "schedule_hours": null }))).await;
        }
    }
    assert!(output.status.success(), "schemathesis found problems:\n{printed}");
    assert!(!printed.contains(&admin), "the token never shows in the report");
}
