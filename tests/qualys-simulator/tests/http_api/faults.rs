//! Injected faults: limits, credential errors, server errors, broken, slow and huge pages.

use std::time::{Duration, Instant};

use qualys_simulator::{CredentialError, Faults, FirstCalls, RateLimited, Route, ServerErrors, SimulatorConfig};
use reqwest::StatusCode;

use crate::support::{
    ALL_STATUSES, DECLARATION, assert_host, assert_hosts, get, hosts_showing, next_page_url, page_hosts,
    parse_document, start, url, walk_pages,
};

fn with_faults(faults: Faults) -> SimulatorConfig {
    SimulatorConfig { hosts: 40, detections_per_host: 4, faults, ..Default::default() }
}

fn first(calls: u32, route: Route) -> FirstCalls {
    FirstCalls { calls, route: Some(route) }
}

#[tokio::test]
async fn injected_rate_limits_answer_409_1965_for_the_first_calls_of_their_route() {
    let rate_limited = RateLimited { first: first(2, Route::Detections), to_wait_secs: 7 };
    let (simulator, client) =
        start(with_faults(Faults { rate_limited: Some(rate_limited), ..Default::default() })).await;
    let about = get(&client, &format!("{}/msp/about.php", simulator.base_url)).await;
    assert_eq!(about.status, StatusCode::OK, "other routes are spared");
    let detections = url(&simulator, Route::Detections, "action=list");
    for _ in 0..2 {
        let refused = get(&client, &detections).await;
        assert_eq!(refused.status, StatusCode::CONFLICT);
        assert_eq!(refused.simple_return(), (1965, "This API cannot be run again for another 7 seconds.".to_owned()));
        assert_eq!(refused.header("x-ratelimit-towait-sec"), "7");
        assert_eq!(refused.header("x-ratelimit-remaining"), "0");
    }
    let served = get(&client, &detections).await;
    assert_eq!(served.status, StatusCode::OK);
    assert_eq!(served.header("x-ratelimit-towait-sec"), "0");
    assert_eq!(simulator.requests_received(Route::Detections), 3);
    assert_eq!(simulator.detection_requests().len(), 1);
}

#[tokio::test]
async fn injected_concurrency_limits_answer_409_1960_for_the_first_calls_of_any_route() {
    let faults = Faults { concurrency_limited: Some(FirstCalls { calls: 2, route: None }), ..Default::default() };
    let (simulator, client) = start(with_faults(faults)).await;
    let calls = [
        url(&simulator, Route::KnowledgeBase, "action=list&details=All"),
        url(&simulator, Route::HostList, "action=list&details=None"),
    ];
    for call in &calls {
        let refused = get(&client, call).await;
        assert_eq!(refused.status, StatusCode::CONFLICT);
        assert_eq!(refused.simple_return().0, 1960);
        assert_eq!(refused.header("x-concurrency-limit-running"), "2");
    }
    for call in &calls {
        assert_eq!(get(&client, call).await.status, StatusCode::OK);
    }
}

#[tokio::test]
async fn credential_errors_answer_401_with_2003_or_2011_and_a_wrong_password_still_2002() {
    for (error, code) in [(CredentialError::RegistrationRequired, 2003), (CredentialError::SecureIdRequired, 2011)] {
        let (simulator, client) =
            start(with_faults(Faults { credential_error: Some(error), ..Default::default() })).await;
        for call in [format!("{}/msp/about.php", simulator.base_url), url(&simulator, Route::Detections, "action=list")]
        {
            let refused = get(&client, &call).await;
            assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
            assert_eq!(refused.simple_return().0, code);
        }
        let wrong = crate::support::send(
            client
                .get(url(&simulator, Route::Detections, "action=list"))
                .basic_auth("sim-user", Some("wrong"))
                .header("X-Requested-With", "x"),
        )
        .await;
        assert_eq!(wrong.simple_return().0, 2002);
    }
}

#[tokio::test]
async fn server_errors_answer_the_first_calls_of_their_route() {
    let errors = ServerErrors { status: 500, first: first(1, Route::Detections) };
    let (simulator, client) = start(with_faults(Faults { server_errors: Some(errors), ..Default::default() })).await;
    let detections = url(&simulator, Route::Detections, "action=list");
    let failed = get(&client, &detections).await;
    assert_eq!(failed.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(failed.simple_return(), (999, "Internal error. Please contact customer support.".to_owned()));
    assert_eq!(get(&client, &detections).await.status, StatusCode::OK);

    let errors = ServerErrors { status: 503, first: first(2, Route::HostList) };
    let (simulator, client) = start(with_faults(Faults { server_errors: Some(errors), ..Default::default() })).await;
    let host_list = url(&simulator, Route::HostList, "action=list&details=None");
    assert_eq!(get(&client, &url(&simulator, Route::Detections, "action=list")).await.status, StatusCode::OK);
    for _ in 0..2 {
        let failed = get(&client, &host_list).await;
        assert_eq!(failed.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            failed.document.is_none() && failed.body.contains("<h1>503 Service Unavailable</h1>"),
            "a load balancer's page"
        );
        assert!(failed.headers.contains_key("x-ratelimit-limit"));
    }
    assert_eq!(get(&client, &host_list).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_malformed_page_is_cut_inside_the_faulty_hosts_and_other_pages_parse() {
    let (probe, _) = start(with_faults(Faults::default())).await;
    let ids: Vec<u64> = probe.dataset().hosts().iter().map(|host| host.id).collect();
    let faults = Faults { malformed_detection_hosts: Some(ids[15]..=ids[17]), ..Default::default() };
    let (simulator, client) = start(with_faults(faults)).await;
    let page = |id_min: u64| {
        url(
            &simulator,
            Route::Detections,
            &format!("action=list&truncation_limit=10&status={ALL_STATUSES}&id_min={id_min}"),
        )
    };

    let first = get(&client, &page(ids[0])).await;
    assert_eq!(page_hosts(&first).len(), 10, "the first page is whole");
    let response =
        client.get(page(ids[10])).basic_auth("sim-user", Some("sim-password")).header("X-Requested-With", "x");
    let broken = response.send().await.expect("sent");
    assert_eq!(broken.status(), StatusCode::OK);
    let body = broken.text().await.expect("body");
    assert!(body.starts_with(DECLARATION));
    assert!(parse_document(&body).is_err(), "the page is cut");
    let host_16 = format!("<ID>{}</ID>", ids[15]);
    let cut_after_host_16_began = body.contains(&host_16) || body.contains(&format!("{}\n", ids[15]));
    assert!(cut_after_host_16_began && !body.contains(&format!("{}", ids[16])), "cut inside host {}", ids[15]);
    let third = get(&client, &page(ids[20])).await;
    assert_eq!(page_hosts(&third).len(), 10, "pages without a faulty host are whole");
}

#[tokio::test]
async fn slow_pages_take_their_delay() {
    let faults = Faults { slow_detection_pages: Some(Duration::from_millis(300)), ..Default::default() };
    let (simulator, client) = start(with_faults(faults)).await;
    let started = Instant::now();
    assert_eq!(get(&client, &url(&simulator, Route::Detections, "action=list")).await.status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(300));
    let started = Instant::now();
    get(&client, &url(&simulator, Route::HostList, "action=list&details=None")).await;
    assert!(started.elapsed() < Duration::from_millis(300), "only detection pages are slow");
}

#[tokio::test]
async fn huge_results_fill_the_first_detection_of_the_first_host_only() {
    let bytes = 1_048_576;
    let (simulator, client) = start(with_faults(Faults { huge_results: Some(bytes), ..Default::default() })).await;
    let query = format!("action=list&truncation_limit=5&status={ALL_STATUSES}");
    let pages = walk_pages(&client, &url(&simulator, Route::Detections, &query)).await;
    let dataset = simulator.dataset();
    let first_host = page_hosts(&pages[0])[0];
    let detections: Vec<_> = first_host.expect_child("DETECTION_LIST").children("DETECTION").collect();
    let results = detections[0].text_of("RESULTS").expect("RESULTS");
    assert_eq!(results.len(), bytes);
    assert!(results.starts_with("<script>alert('results')</script>") && results.contains("&apos;quoted&apos;"));

    let truth = &dataset.hosts()[0];
    assert_ne!(truth.detections[0].results.len(), bytes, "the dataset itself is untouched");
    let rest: Vec<_> = truth.detections.iter().skip(1).collect();
    let mut without_first = first_host.clone();
    let list = without_first.children.iter_mut().find(|child| child.name == "DETECTION_LIST").expect("a list");
    list.children.remove(0);
    assert_host(&without_first, truth, &rest, true);
    let shown: Vec<_> = pages.iter().flat_map(page_hosts).collect();
    assert_hosts(&shown[1..], &hosts_showing(&dataset.hosts()[1..], |_| true));
    assert!(next_page_url(&pages[0]).is_some());
}
