//! Basic auth, the X-Requested-With header, and Qualys' rate and concurrency limits.

use std::time::Duration;

use qualys_simulator::{Faults, Route, SimulatorConfig};
use reqwest::StatusCode;

use crate::support::{Answer, PASSWORD, USERNAME, authorized, get, send, start, url};

const LIMIT_HEADERS: [&str; 6] = [
    "x-ratelimit-limit",
    "x-ratelimit-window-sec",
    "x-ratelimit-remaining",
    "x-ratelimit-towait-sec",
    "x-concurrency-limit-limit",
    "x-concurrency-limit-running",
];

fn limited(rate_limit: u32, concurrency_limit: u32, faults: Faults) -> SimulatorConfig {
    SimulatorConfig { hosts: 30, detections_per_host: 3, rate_limit, concurrency_limit, faults, ..Default::default() }
}

#[tokio::test]
async fn wrong_or_missing_credentials_answer_401_bad_login() {
    let (simulator, client) = start(SimulatorConfig::default()).await;
    let detections = url(&simulator, Route::Detections, "action=list");
    let requests = [
        client.get(&detections).basic_auth(USERNAME, Some("wrong")),
        client.get(&detections).basic_auth("someone-else", Some(PASSWORD)),
        client.get(&detections).basic_auth(USERNAME, None::<&str>),
        client.get(&detections).header("Authorization", "Bearer token"),
        client.get(&detections),
    ];
    for request in requests {
        let answer = send(request.header("X-Requested-With", "vulnflow")).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        assert_eq!(answer.simple_return(), (2002, "Bad Login/Password".to_owned()));
    }
    let about = send(client.get(format!("{}/msp/about.php", simulator.base_url)).header("X-Requested-With", "x")).await;
    assert_eq!(about.status, StatusCode::UNAUTHORIZED, "the connectivity test needs credentials too");
    assert_eq!(simulator.requests_received(Route::Detections), 5);
    assert!(simulator.detection_requests().is_empty());
}

#[tokio::test]
async fn calls_without_x_requested_with_answer_400_naming_the_header() {
    let (simulator, client) = start(SimulatorConfig::default()).await;
    let request =
        client.get(url(&simulator, Route::HostList, "action=list&details=None")).basic_auth(USERNAME, Some(PASSWORD));
    let answer = send(request).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    let (code, text) = answer.simple_return();
    assert_eq!(code, 1905);
    assert!(text.contains("X-Requested-With"), "{text}");
}

fn assert_limit_headers(answer: &Answer) {
    for name in LIMIT_HEADERS {
        assert!(answer.header(name).parse::<u32>().is_ok(), "{name} on a {} answer", answer.status);
    }
}

#[tokio::test]
async fn every_answer_carries_the_limit_headers() {
    let (simulator, client) = start(limited(10, 2, Faults::default())).await;
    let detections = url(&simulator, Route::Detections, "action=list");
    let answers = [
        get(&client, &detections).await,
        get(&client, &url(&simulator, Route::Detections, "action=list&status=Closed")).await,
        send(client.get(&detections).basic_auth(USERNAME, Some("wrong")).header("X-Requested-With", "x")).await,
        send(client.get(&detections)).await,
        get(&client, &format!("{}/nowhere", simulator.base_url)).await,
        get(&client, &url(&simulator, Route::Detections, &format!("action=list&ids={}", "1,".repeat(5000)))).await,
    ];
    let statuses: Vec<u16> = answers.iter().map(|answer| answer.status.as_u16()).collect();
    assert_eq!(statuses, [200, 400, 401, 400, 404, 414]);
    for answer in &answers {
        assert_limit_headers(answer);
        assert_eq!(answer.header("x-ratelimit-limit"), "10");
        assert_eq!(answer.header("x-ratelimit-window-sec"), "3600");
        assert_eq!(answer.header("x-concurrency-limit-limit"), "2");
    }
    assert_eq!(answers[0].header("x-ratelimit-remaining"), "9");
    assert_eq!(answers[0].header("x-concurrency-limit-running"), "1", "the call itself runs");
    assert_eq!(answers[1].header("x-ratelimit-remaining"), "8", "a call refused for its parameters still counts");
    assert_eq!(answers[2].header("x-ratelimit-remaining"), "8", "a call refused for its credentials does not");
}

#[tokio::test]
async fn over_the_rate_limit_calls_answer_409_1965_with_the_time_to_wait() {
    let (simulator, client) = start(limited(3, 2, Faults::default())).await;
    let detections = url(&simulator, Route::Detections, "action=list");
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let answer = get(&client, &detections).await;
        assert_eq!(answer.status, StatusCode::OK);
        remaining.push(answer.header("x-ratelimit-remaining").to_owned());
    }
    assert_eq!(remaining, ["2", "1", "0"]);

    let refused = get(&client, &detections).await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    let (code, text) = refused.simple_return();
    assert_eq!(code, 1965);
    let to_wait: u32 = refused.header("x-ratelimit-towait-sec").parse().expect("seconds");
    assert!(to_wait > 3500 && to_wait <= 3600, "{to_wait}");
    assert_eq!(text, format!("This API cannot be run again for another {to_wait} seconds."));
    let item = refused.document().expect_child("RESPONSE").expect_child("ITEM_LIST").expect_child("ITEM");
    assert_eq!(
        (item.text_of("KEY"), item.text_of("VALUE")),
        (Some("SECONDS_TO_WAIT"), Some(to_wait.to_string().as_str()))
    );
    assert_eq!(refused.header("x-ratelimit-remaining"), "0");
    assert_eq!(simulator.detection_requests().len(), 3, "a refused call never reaches the handler");

    let other_route = get(&client, &url(&simulator, Route::HostList, "action=list&details=None")).await;
    assert_eq!(other_route.status, StatusCode::OK, "each route has its own limit");
    assert_eq!(other_route.header("x-ratelimit-remaining"), "2");
}

#[tokio::test]
async fn a_call_over_the_concurrency_limit_while_another_runs_answers_409_1960() {
    let slow = Faults { slow_detection_pages: Some(Duration::from_millis(600)), ..Default::default() };
    let (simulator, client) = start(limited(100, 1, slow)).await;
    let detections = url(&simulator, Route::Detections, "action=list");
    let running = tokio::spawn(send(authorized(client.get(&detections))));
    tokio::time::sleep(Duration::from_millis(200)).await;

    let refused = get(&client, &detections).await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert_eq!(refused.simple_return().0, 1960);
    assert_eq!(refused.header("x-concurrency-limit-running"), "1");
    assert_eq!(refused.header("x-ratelimit-towait-sec"), "0");
    let other_route = get(&client, &url(&simulator, Route::KnowledgeBase, "action=list&details=All&ids=6")).await;
    assert_eq!(other_route.status, StatusCode::OK, "each route has its own limit");

    let first = running.await.expect("the first call completes");
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.header("x-concurrency-limit-running"), "1");
    let after = get(&client, &detections).await;
    assert_eq!(after.status, StatusCode::OK, "the slot is free once the first call answered");
    assert_eq!(after.header("x-ratelimit-remaining"), "98", "the refused call consumed nothing");
}
