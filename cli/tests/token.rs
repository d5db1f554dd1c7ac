//! `vulnflow token`: the signing key read from Secrets Manager (a stand-in on loopback
//! that speaks its GetSecretValue call), a token the API's own check accepts.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{Duration, Utc};
use common::{KEY, assert_exit, stderr, stdout, vulnflow};
use serde_json::{Value, json};
use vulnflow_shared::auth::{self, AuthError, Caller, Role};

const SECRET_ID: &str = "vulnflow-cli-ApiSigningKey";

/// Answers GetSecretValue for [`SECRET_ID`] (the key) and `short-key`; every other
/// secret is missing. Keeps the secret ids asked for.
async fn secrets_manager() -> (String, Arc<Mutex<Vec<String>>>) {
    let asked = Arc::new(Mutex::new(Vec::new()));
    let app = Router::new().fallback(get_secret_value).with_state(asked.clone());
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.expect("a loopback port");
    let address = listener.local_addr().expect("the port");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}"), asked)
}

async fn get_secret_value(State(asked): State<Arc<Mutex<Vec<String>>>>, headers: HeaderMap, body: Bytes) -> Response {
    let target = headers.get("x-amz-target").and_then(|value| value.to_str().ok());
    assert_eq!(target, Some("secretsmanager.GetSecretValue"));
    let request: Value = serde_json::from_slice(&body).expect("a JSON request");
    let secret_id = request["SecretId"].as_str().unwrap_or_default().to_string();
    asked.lock().expect("lock").push(secret_id.clone());
    let value = match secret_id.as_str() {
        SECRET_ID => String::from_utf8_lossy(KEY).into_owned(),
        "short-key" => "too short".to_string(),
        _ => {
            let missing = json!({
                "__type": "ResourceNotFoundException",
                "message": "Secrets Manager can't find the specified secret."
            });
            return aws_json(StatusCode::BAD_REQUEST, missing);
        }
    };
    let found = json!({
        "ARN": format!("arn:aws:secretsmanager:us-east-1:000000000000:secret:{secret_id}-AbCdEf"),
        "Name": secret_id,
        "SecretString": value,
        "VersionId": "1",
        "VersionStages": ["AWSCURRENT"],
        "CreatedDate": 1_700_000_000
    });
    aws_json(StatusCode::OK, found)
}

fn aws_json(status: StatusCode, body: Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/x-amz-json-1.1")], body.to_string()).into_response()
}

async fn mint(endpoint: &str, args: &[&str]) -> std::process::Output {
    let mut all = vec!["token"];
    all.extend_from_slice(args);
    vulnflow(
        &all,
        &[
            ("AWS_ENDPOINT_URL", endpoint),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_prints_only_a_token_signed_with_the_deployments_key() {
    let (endpoint, asked) = secrets_manager().await;
    let output = mint(
        &endpoint,
        &["--principal", "ops@example.com", "--role", "reader", "--secret-id", SECRET_ID, "--hours", "2"],
    )
    .await;
    assert_exit(&output, 0);
    assert_eq!(asked.lock().expect("lock").as_slice(), [SECRET_ID]);
    let printed = stdout(&output);
    let token = printed.strip_suffix('\n').expect("one line");
    assert!(!token.contains(char::is_whitespace), "the token alone: {printed:?}");
    assert_eq!(
        auth::verify(KEY, token, Utc::now()),
        Ok(Caller { principal: "ops@example.com".into(), role: Role::Reader })
    );
    let later = Utc::now() + Duration::hours(2) + Duration::minutes(1);
    assert!(matches!(auth::verify(KEY, token, later), Err(AuthError::Expired(_))), "valid for 2 hours");
    assert_eq!(stderr(&output), "a reader token for ops@example.com, valid for 2 hours\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_short_signing_key_exits_3_and_prints_no_token() {
    let (endpoint, _) = secrets_manager().await;
    for (secret_id, why) in
        [("no-such-secret", "can't find the specified secret"), ("short-key", "must hold 32 characters or more")]
    {
        let output =
            mint(&endpoint, &["--principal", "ops@example.com", "--role", "admin", "--secret-id", secret_id]).await;
        assert_exit(&output, 3);
        assert_eq!(stdout(&output), "");
        let stderr = stderr(&output);
        assert!(stderr.starts_with("error: cannot mint a token: "), "{stderr}");
        assert!(stderr.contains(why), "{stderr}");
    }
}

#[tokio::test]
async fn token_needs_a_principal_a_known_role_and_sane_hours() {
    for args in [
        ["--principal", "", "--role", "admin", "--secret-id", SECRET_ID].as_slice(),
        &["--principal", "ops", "--role", "owner", "--secret-id", SECRET_ID],
        &["--principal", "ops", "--role", "admin", "--secret-id", SECRET_ID, "--hours", "0"],
        &["--principal", "ops", "--role", "admin"],
    ] {
        let output = mint("http://127.0.0.1:9", args).await;
        assert_exit(&output, 2);
        assert_eq!(stdout(&output), "", "{args:?}");
    }
}
