//! `vulnflow connectors`, and what every API command shares: where the API is, the
//! token, and the exit codes when either is wrong.

mod common;

use common::{CONNECTOR, TestApi, admin, assert_exit, reader, stderr, stdout, vulnflow};
use serde_json::{Value, json};
use vulnflow_shared::store::ConnectorStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connectors_table_lists_a_created_connector() {
    let api = TestApi::start().await;
    let created = api
        .call(
            &admin(),
            "POST",
            "/connectors",
            json!({
                "connector_id": "tenable-manual",
                "name": "Tenable (manual only)",
                "type": "tenable",
                "base_url": "https://tenable.internal.example",
                "access_key": "AKEY-manual-000111",
                "secret_key": "SKEY-manual-222333",
                "default_mode": "incremental"
            }),
        )
        .await;
    assert_eq!(created["connector_id"], "tenable-manual", "{created}");

    let output = api.vulnflow(&reader(), &["connectors"]).await;
    assert_exit(&output, 0);
    let table = stdout(&output);
    let rows: Vec<Vec<&str>> =
        table.lines().map(|line| line.split("  ").map(str::trim).filter(|cell| !cell.is_empty()).collect()).collect();
    assert_eq!(
        rows,
        [
            vec!["ID", "NAME", "TYPE", "BASE URL", "SCHEDULE", "DEFAULT MODE"],
            vec![
                CONNECTOR,
                "Tenable (CLI tests)",
                "tenable",
                "https://cloud.tenable.example",
                "every 24 h within 30 min",
                "full"
            ],
            vec![
                "tenable-manual",
                "Tenable (manual only)",
                "tenable",
                "https://tenable.internal.example",
                "manual only",
                "incremental"
            ],
        ],
        "{table}"
    );

    let output = api.vulnflow(&reader(), &["connectors", "--json"]).await;
    assert_exit(&output, 0);
    let list: Value = serde_json::from_str(&stdout(&output)).expect("valid JSON");
    let ids: Vec<&str> = list["connectors"]
        .as_array()
        .expect("connectors")
        .iter()
        .filter_map(|connector| connector["connector_id"].as_str())
        .collect();
    assert_eq!(ids, [CONNECTOR, "tenable-manual"]);
    assert_eq!(list["connectors"][1]["secret_id"], "vulnflow/tenable-manual");
    assert!(!stdout(&output).contains("SKEY-manual"), "never a key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_url_nothing_listens_on_exits_4_naming_it() {
    // A port that was free a moment ago: nothing listens on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let url = format!("http://127.0.0.1:{port}/v1");
    let token = admin();
    for args in [["connectors"].as_slice(), &["sync", "start", CONNECTOR]] {
        let output = vulnflow(args, &[("VULNFLOW_API_URL", &url), ("VULNFLOW_TOKEN", &token)]).await;
        assert_exit(&output, 4);
        let stderr = stderr(&output);
        assert!(stderr.starts_with(&format!("error: cannot reach the API at {url}: ")), "{stderr}");
        assert!(stderr.contains("Connection refused"), "{stderr}");
        assert!(stderr.contains("check --api-url"), "{stderr}");
        assert!(!stderr.contains(&token), "the token is never printed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_url_without_the_stage_is_refused_by_the_gateway_with_exit_3() {
    let api = TestApi::start().await;
    let without_stage = api.url.trim_end_matches("/v1");
    let output = vulnflow(&["connectors"], &[("VULNFLOW_API_URL", without_stage), ("VULNFLOW_TOKEN", &admin())]).await;
    assert_exit(&output, 3);
    assert_eq!(stderr(&output), "error: 403 Forbidden: Missing Authentication Token\n");
}

#[tokio::test]
async fn without_an_api_url_or_token_or_with_a_bad_option_the_exit_is_2() {
    let token = admin();
    let no_url = vulnflow(&["connectors"], &[("VULNFLOW_TOKEN", &token)]).await;
    assert_exit(&no_url, 2);
    assert!(stderr(&no_url).starts_with("error: no API URL: pass --api-url or set VULNFLOW_API_URL"));

    let url = "http://127.0.0.1:9/v1";
    let no_token = vulnflow(&["sync", "status", "job-1"], &[("VULNFLOW_API_URL", url)]).await;
    assert_exit(&no_token, 2);
    assert!(stderr(&no_token).starts_with("error: no token: set VULNFLOW_TOKEN or pass --token"));

    let env = [("VULNFLOW_API_URL", url), ("VULNFLOW_TOKEN", token.as_str())];
    for args in [
        ["connectors", "--api-url", "not a url"].as_slice(),
        &["sync", "start", CONNECTOR, "--mode", "partial"],
        &["sync", "start", CONNECTOR, "--from", "last tuesday"],
        &["sync", "start", CONNECTOR, "--severity", "urgent"],
        &["sync", "history", CONNECTOR, "--limit", "0"],
        &["sync", "history", CONNECTOR, "--limit", "5", "--all"],
    ] {
        let output = vulnflow(args, &env).await;
        assert_exit(&output, 2);
        assert!(!stderr(&output).contains(&token), "{args:?}");
    }
}

#[tokio::test]
async fn the_help_lists_the_exit_codes_and_never_shows_the_token() {
    let token = admin();
    let output = vulnflow(&["--help"], &[("VULNFLOW_TOKEN", &token)]).await;
    assert_exit(&output, 0);
    let help = stdout(&output);
    for line in [
        "  0  success",
        "  1  the sync ended in a failure status or was cancelled",
        "  2  bad usage or unreadable input",
        "  3  the API refused or failed (HTTP 4xx or 5xx)",
        "  4  the API cannot be reached: check --api-url",
    ] {
        assert!(help.contains(line), "{line:?} in {help}");
    }
    assert!(help.contains("[env: VULNFLOW_TOKEN]"), "{help}");
    assert!(!help.contains(&token), "{help}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_creates_a_qualys_connector_with_its_login_from_the_environment_only() {
    let api = TestApi::start().await;
    let create = [
        "connectors",
        "create",
        "--type",
        "qualys",
        "--name",
        "Qualys (EU platform)",
        "--base-url",
        "https://tenable.internal.example",
        "--id",
        "qualys-eu",
        "--schedule-hours",
        "12",
    ];
    let environment = |password: &'static str| {
        vec![
            ("VULNFLOW_API_URL", api.url.clone()),
            ("VULNFLOW_TOKEN", admin()),
            ("VULNFLOW_USERNAME", "acme_ab12".to_owned()),
            ("VULNFLOW_PASSWORD", password.to_owned()),
        ]
    };
    let without_password: Vec<(&str, String)> =
        environment("").into_iter().filter(|(name, _)| *name != "VULNFLOW_PASSWORD").collect();
    let refused = vulnflow(&create, &pairs(&without_password)).await;
    assert_exit(&refused, 2);
    assert!(stderr(&refused).contains("set VULNFLOW_PASSWORD"), "{}", stderr(&refused));
    assert!(api.store.get_connector("qualys-eu").await.unwrap().is_none(), "nothing was created");

    let created = vulnflow(&create, &pairs(&environment("correct-horse-battery"))).await;
    assert_exit(&created, 0);
    let table = stdout(&created);
    let cells: Vec<&str> =
        table.lines().nth(1).unwrap_or_default().split("  ").map(str::trim).filter(|cell| !cell.is_empty()).collect();
    assert_eq!(
        cells,
        ["qualys-eu", "Qualys (EU platform)", "qualys", "https://tenable.internal.example", "every 12 h", "full"],
        "{table}"
    );
    assert!(!table.contains("correct-horse-battery") && !stderr(&created).contains("correct-horse-battery"));
    let secret = api.store.secret("vulnflow/qualys-eu").expect("the login is in the connector's secret");
    assert_eq!(secret.values(), ["acme_ab12", "correct-horse-battery"]);
}

fn pairs<'a>(environment: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    environment.iter().map(|(name, value)| (*name, value.as_str())).collect()
}
