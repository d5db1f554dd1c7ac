//! The calls' normal behaviour: paging, filters, POST bodies, the KnowledgeBase, Qualys' traps.

use std::collections::{BTreeSet, HashSet};

use qualys_simulator::{DetectionStatus, Route, SimulatorConfig};
use reqwest::StatusCode;

use crate::support::{
    ALL_STATUSES, DECLARATION, assert_host, assert_hosts, distinct_host_ids, get, host_id, hosts_showing, id_list,
    id_set, next_page_url, page_hosts, post_form, qualys_time, start, url, walk_pages,
};

fn sized(hosts: u32, detections_per_host: u32) -> SimulatorConfig {
    SimulatorConfig { hosts, detections_per_host, ..Default::default() }
}

#[tokio::test]
async fn about_answers_the_api_version() {
    let (simulator, client) = start(SimulatorConfig::default()).await;
    let answer = get(&client, &format!("{}/msp/about.php", simulator.base_url)).await;
    assert_eq!(answer.status, StatusCode::OK);
    let about = answer.document();
    assert_eq!(about.name, "ABOUT");
    let version = about.expect_child("API-VERSION");
    assert_eq!(version.attributes, vec![("MAJOR".to_owned(), "2".to_owned()), ("MINOR".to_owned(), "0".to_owned())]);
    assert!(about.text_of("WEB-VERSION").is_some_and(|version| version.starts_with("10.")));
    assert_eq!(simulator.requests_received(Route::About), 1);
}

#[tokio::test]
async fn detection_pages_walk_every_host_once_following_the_warning_urls() {
    let (simulator, client) = start(sized(230, 4)).await;
    let first = url(&simulator, Route::Detections, &format!("action=list&truncation_limit=50&status={ALL_STATUSES}"));
    let pages = walk_pages(&client, &first).await;

    let sizes: Vec<usize> = pages.iter().map(|page| page_hosts(page).len()).collect();
    assert_eq!(sizes, [50, 50, 50, 50, 30]);
    let ids: Vec<u64> = pages.iter().flat_map(|page| distinct_host_ids(&page_hosts(page))).collect();
    let expected: Vec<u64> = simulator.dataset().hosts().iter().map(|host| host.id).collect();
    assert_eq!(ids, expected, "every host once, by ascending id");

    for (page, following) in pages.iter().zip(&pages[1..]) {
        let warning = page.document().expect_child("RESPONSE").expect_child("WARNING");
        assert_eq!(warning.text_of("TEXT"), Some("50 record limit exceeded. Use URL to get next batch of results."));
        let next = next_page_url(page).expect("a URL");
        let first_of_next = host_id(page_hosts(following)[0]);
        let prefix = format!("{}/api/2.0/fo/asset/host/vm/detection/?", simulator.base_url);
        assert!(next.starts_with(&prefix), "{next}");
        assert!(next.ends_with(&format!("&id_min={first_of_next}")), "{next}");
        assert!(next.contains("truncation_limit=50") && next.contains("status=New%2CActive%2CRe-Opened%2CFixed"));
    }
    assert_eq!(next_page_url(pages.last().expect("pages")), None, "the last page has no WARNING");
    assert_eq!(simulator.requests_received(Route::Detections), 5);
    assert_eq!(simulator.detection_requests().len(), 5);
}

#[tokio::test]
async fn detections_show_every_field_of_the_dataset_in_qualys_format() {
    let (simulator, client) = start(sized(150, 8)).await;
    let query = format!("action=list&truncation_limit=0&status={ALL_STATUSES}");
    let answer = get(&client, &url(&simulator, Route::Detections, &query)).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.header("content-type"), "text/xml;charset=UTF-8");
    assert!(answer.body.starts_with(&format!("{DECLARATION}\n<!DOCTYPE HOST_LIST_VM_DETECTION_OUTPUT SYSTEM ")));
    let dataset = simulator.dataset();
    assert_eq!(page_hosts(&answer).len(), 150);
    assert_hosts(&page_hosts(&answer), &hosts_showing(dataset.hosts(), |_| true));
    assert_eq!(answer.document().expect_child("RESPONSE").child("WARNING"), None);

    // What the normalizer has to survive is really on the wire.
    let body = &answer.body;
    assert!(body.contains("&apos;") && body.contains("<b>does not match</b>"), "raw markup inside CDATA");
    assert!(body.contains("<ID>\n") && body.contains("<![CDATA[Cisco IOS 15.2(4)E7]]>"));
    assert!(body.contains("ExtremeXOS Network Operating System"));
    let detections: Vec<_> = dataset.hosts().iter().flat_map(|host| &host.detections).collect();
    assert!(detections.iter().any(|detection| detection.unique_vuln_id.is_none()));
    assert!(detections.iter().any(|detection| detection.port.is_none()));
    let statuses: HashSet<&str> = detections.iter().map(|detection| detection.status.as_str()).collect();
    let types: HashSet<&str> = detections.iter().map(|detection| detection.detection_type.as_str()).collect();
    let severities: BTreeSet<u8> = detections.iter().map(|detection| detection.severity).collect();
    assert_eq!(statuses, HashSet::from(["New", "Active", "Re-Opened", "Fixed"]));
    assert_eq!(types, HashSet::from(["Confirmed", "Potential", "Info"]));
    assert_eq!(severities, BTreeSet::from([1, 2, 3, 4, 5]));
}

#[tokio::test]
async fn without_status_fixed_detections_are_left_out_and_pages_hold_1000_hosts() {
    let (simulator, client) = start(sized(1200, 3)).await;
    let pages = walk_pages(&client, &url(&simulator, Route::Detections, "action=list")).await;
    let dataset = simulator.dataset();
    let expected = hosts_showing(dataset.hosts(), |detection| DetectionStatus::DEFAULT.contains(&detection.status));
    assert!(expected.len() > 1000 && expected.len() < 1200, "{} hosts with a detection not Fixed", expected.len());
    assert_eq!(page_hosts(&pages[0]).len(), 1000);
    assert_eq!(pages.len(), 2);
    let shown: Vec<_> = pages.iter().flat_map(page_hosts).collect();
    assert_hosts(&shown, &expected);
}

#[tokio::test]
async fn ids_and_id_bounds_select_hosts() {
    let (simulator, client) = start(sized(60, 3)).await;
    let dataset = simulator.dataset();
    let ids: Vec<u64> = dataset.hosts().iter().map(|host| host.id).collect();
    let everything = format!("&status={ALL_STATUSES}&truncation_limit=0");
    let shown_ids = |answer: &crate::support::Answer| distinct_host_ids(&page_hosts(answer));

    // A list with a range, and ids that are no host's.
    let query = format!("action=list&ids={},{}-{},{}{everything}", ids[2], ids[10], ids[14], ids[59] + 1);
    let answer = get(&client, &url(&simulator, Route::Detections, &query)).await;
    let expected: Vec<u64> =
        ids.iter().copied().filter(|id| *id == ids[2] || (ids[10]..=ids[14]).contains(id)).collect();
    assert_eq!(shown_ids(&answer), expected);

    let query = format!("action=list&id_min={}&id_max={}{everything}", ids[20], ids[29]);
    let answer = get(&client, &url(&simulator, Route::Detections, &query)).await;
    assert_eq!(shown_ids(&answer), ids[20..30].to_vec());

    let query = format!("action=list&ids={}-{}&id_min={}{everything}", ids[0], ids[9], ids[5]);
    let answer = get(&client, &url(&simulator, Route::Detections, &query)).await;
    assert_eq!(shown_ids(&answer), ids[5..10].to_vec(), "ids and id_min both apply");

    let query = format!("action=list&id_min={}", ids[59] + 1);
    let answer = get(&client, &url(&simulator, Route::Detections, &query)).await;
    assert_eq!(answer.document().expect_child("RESPONSE").names(), ["DATETIME"], "no HOST_LIST without hosts");
}

#[tokio::test]
async fn status_selects_detections_and_fixed_ones_carry_last_fixed() {
    let (simulator, client) = start(sized(80, 6)).await;
    let dataset = simulator.dataset();
    for (status, statuses) in [
        ("Fixed", vec![DetectionStatus::Fixed]),
        ("New,Re-Opened", vec![DetectionStatus::New, DetectionStatus::ReOpened]),
        ("Active", vec![DetectionStatus::Active]),
    ] {
        let query = format!("action=list&truncation_limit=0&status={status}");
        let answer = get(&client, &url(&simulator, Route::Detections, &query)).await;
        let expected = hosts_showing(dataset.hosts(), |detection| statuses.contains(&detection.status));
        assert_hosts(&page_hosts(&answer), &expected);
    }
    let query = "action=list&truncation_limit=0&status=Fixed";
    let answer = get(&client, &url(&simulator, Route::Detections, query)).await;
    let fixed =
        page_hosts(&answer).into_iter().flat_map(|host| host.expect_child("DETECTION_LIST").children("DETECTION"));
    assert!(fixed.into_iter().all(|detection| detection.child("LAST_FIXED_DATETIME").is_some()));
}

#[tokio::test]
async fn vm_processed_after_and_detection_updated_since_filter_by_time() {
    let (simulator, client) = start(sized(120, 6)).await;
    let dataset = simulator.dataset();
    let mut processed: Vec<_> = dataset.hosts().iter().map(|host| host.last_vm_processed).collect();
    processed.sort_unstable();
    let since = processed[processed.len() / 2];

    let query =
        format!("action=list&truncation_limit=0&status={ALL_STATUSES}&vm_processed_after={}", qualys_time(since));
    let answer = get(&client, &url(&simulator, Route::Detections, &query)).await;
    let expected: Vec<u64> =
        dataset.hosts().iter().filter(|host| host.last_vm_processed >= since).map(|host| host.id).collect();
    assert_eq!(distinct_host_ids(&page_hosts(&answer)), expected);
    assert!(!expected.is_empty() && expected.len() < 120);

    let query =
        format!("action=list&truncation_limit=0&status={ALL_STATUSES}&detection_updated_since={}", qualys_time(since));
    let answer = get(&client, &url(&simulator, Route::Detections, &query)).await;
    let expected = hosts_showing(dataset.hosts(), |detection| detection.last_update >= since);
    assert_hosts(&page_hosts(&answer), &expected);

    let query = "action=list&truncation_limit=0&vm_processed_after=2000-01-01";
    let answer = get(&client, &url(&simulator, Route::Detections, query)).await;
    assert!(!page_hosts(&answer).is_empty(), "a bare date is midnight UTC");
}

#[tokio::test]
async fn show_results_0_leaves_results_out() {
    let (simulator, client) = start(sized(40, 6)).await;
    let query = format!("action=list&truncation_limit=0&status={ALL_STATUSES}&show_results=0");
    let answer = get(&client, &url(&simulator, Route::Detections, &query)).await;
    assert!(!answer.body.contains("<RESULTS>"));
    for (element, host) in page_hosts(&answer).into_iter().zip(simulator.dataset().hosts()) {
        let detections: Vec<_> = host.detections.iter().collect();
        assert_host(element, host, &detections, false);
    }
}

/// The answer without its DATETIME line, which moves with the clock.
fn without_datetime(body: &str) -> String {
    body.lines().filter(|line| !line.trim_start().starts_with("<DATETIME>")).collect::<Vec<_>>().join("\n")
}

#[tokio::test]
async fn a_post_form_body_answers_as_the_get() {
    let (simulator, client) = start(sized(50, 4)).await;
    let ids: Vec<u64> = simulator.dataset().hosts().iter().map(|host| host.id).collect();
    let parameters = format!("ids={}-{}&truncation_limit=5&status=Active%2CFixed", ids[3], ids[30]);
    let by_get = get(&client, &url(&simulator, Route::Detections, &format!("action=list&{parameters}"))).await;
    let by_post = post_form(&client, &url(&simulator, Route::Detections, "action=list"), &parameters).await;
    let by_body_alone =
        post_form(&client, &url(&simulator, Route::Detections, ""), &format!("action=list&{parameters}")).await;
    assert_eq!(by_get.status, StatusCode::OK);
    assert_eq!(page_hosts(&by_get).len(), 5);
    assert!(next_page_url(&by_get).is_some());
    assert_eq!(without_datetime(&by_post.body), without_datetime(&by_get.body));
    assert_eq!(without_datetime(&by_body_alone.body), without_datetime(&by_get.body));

    let host_list = format!("action=list&details=None&truncation_limit=0&id_min={}", ids[10]);
    let by_get = get(&client, &url(&simulator, Route::HostList, &host_list)).await;
    let by_post = post_form(&client, &url(&simulator, Route::HostList, ""), &host_list).await;
    assert_eq!(without_datetime(&by_post.body), without_datetime(&by_get.body));
}

#[tokio::test]
async fn get_urls_over_8_kb_answer_414_and_a_post_takes_the_same_parameters() {
    let (simulator, client) = start(sized(2000, 1)).await;
    let ids: Vec<u64> = simulator.dataset().hosts().iter().map(|host| host.id).collect();
    let many = format!("ids={}&status={ALL_STATUSES}&truncation_limit=0", id_list(ids.iter().copied()));
    let long_url = url(&simulator, Route::Detections, &format!("action=list&{many}"));
    assert!(long_url.len() > 8 * 1024);
    let answer = get(&client, &long_url).await;
    assert_eq!(answer.status, StatusCode::URI_TOO_LONG);
    assert!(answer.body.contains("414 Request-URI Too Long"));
    assert_eq!(simulator.requests_received(Route::Detections), 1);
    assert!(simulator.detection_requests().is_empty(), "a 414 never reaches the handler");

    let answer = post_form(&client, &url(&simulator, Route::Detections, "action=list"), &many).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(distinct_host_ids(&page_hosts(&answer)), ids);
}

#[tokio::test]
async fn host_list_sends_ids_with_runs_as_ranges_and_pages() {
    let (simulator, client) = start(sized(300, 2)).await;
    let dataset = simulator.dataset();
    let ids: Vec<u64> = dataset.hosts().iter().map(|host| host.id).collect();

    let answer = get(&client, &url(&simulator, Route::HostList, "action=list&details=None&truncation_limit=0")).await;
    assert_eq!(answer.document().name, "HOST_LIST_OUTPUT");
    let (listed, ranges) = id_set(&answer);
    assert_eq!(listed, ids);
    assert!(
        ranges > 10 && answer.document().expect_child("RESPONSE").expect_child("ID_SET").children("ID").count() > 10
    );

    let pages =
        walk_pages(&client, &url(&simulator, Route::HostList, "action=list&details=None&truncation_limit=70")).await;
    assert_eq!(pages.len(), 5);
    let paged: Vec<u64> = pages.iter().flat_map(|page| id_set(page).0).collect();
    assert_eq!(paged, ids);

    let query = format!("action=list&details=None&truncation_limit=0&id_min={}&id_max={}", ids[100], ids[199]);
    assert_eq!(id_set(&get(&client, &url(&simulator, Route::HostList, &query)).await).0, ids[100..200].to_vec());

    let mut processed: Vec<_> = dataset.hosts().iter().map(|host| host.last_vm_processed).collect();
    processed.sort_unstable();
    let since = processed[200];
    let query = format!("action=list&details=None&truncation_limit=0&vm_processed_after={}", qualys_time(since));
    let expected: Vec<u64> =
        dataset.hosts().iter().filter(|host| host.last_vm_processed >= since).map(|host| host.id).collect();
    assert_eq!(id_set(&get(&client, &url(&simulator, Route::HostList, &query)).await).0, expected);

    let query = format!("action=list&details=None&id_min={}", ids[299] + 1);
    let answer = get(&client, &url(&simulator, Route::HostList, &query)).await;
    assert_eq!(answer.document().expect_child("RESPONSE").names(), ["DATETIME"], "no ID_SET without hosts");
    assert_eq!(simulator.requests_received(Route::HostList), 9);
}

#[tokio::test]
async fn knowledge_base_answers_every_qid_the_dataset_uses_and_counts_what_was_asked() {
    let (simulator, client) = start(sized(100, 12)).await;
    let dataset = simulator.dataset();
    let qids: Vec<u64> = dataset.qids().into_iter().map(u64::from).collect();
    let query = format!("action=list&details=All&ids={}", id_list(qids.iter().copied()));
    let answer = get(&client, &url(&simulator, Route::KnowledgeBase, &query)).await;
    assert_eq!(answer.status, StatusCode::OK);
    let list = answer.document().expect_child("RESPONSE").expect_child("VULN_LIST");
    let served: Vec<u64> =
        list.children("VULN").map(|vuln| vuln.text_of("QID").expect("QID").parse().expect("a QID")).collect();
    assert_eq!(served.iter().collect::<BTreeSet<_>>(), qids.iter().collect::<BTreeSet<_>>());

    for vuln in list.children("VULN") {
        let qid: u32 = vuln.text_of("QID").and_then(|qid| qid.parse().ok()).expect("QID");
        let truth = dataset.knowledge_base().iter().find(|truth| truth.qid == qid).expect("a known QID");
        assert_eq!(vuln.text_of("TITLE"), Some(truth.title));
        assert_eq!(vuln.text_of("CATEGORY"), Some(truth.category));
        assert_eq!(vuln.text_of("VULN_TYPE"), Some(truth.vuln_type.as_str()));
        assert_eq!(vuln.text_of("SEVERITY_LEVEL"), Some(truth.severity.to_string().as_str()));
        assert_eq!(vuln.text_of("SOLUTION"), Some(truth.solution));
        assert_eq!(vuln.text_of("LAST_SERVICE_MODIFICATION_DATETIME"), Some(truth.last_modified));
        let cves: Vec<&str> = vuln
            .child("CVE_LIST")
            .into_iter()
            .flat_map(|list| list.children("CVE"))
            .filter_map(|cve| cve.text_of("ID"))
            .collect();
        assert_eq!(cves, truth.cves);
        let base = vuln
            .child("CVSS_V3")
            .and_then(|cvss| cvss.text_of("BASE"))
            .map(|base| base.parse::<f32>().expect("a score"));
        assert_eq!(base, truth.cvss3_base);
    }
    let log4shell = list.children("VULN").find(|vuln| vuln.text_of("QID") == Some("376157")).expect("Log4Shell");
    assert_eq!(log4shell.expect_child("CVSS_V3").text_of("BASE"), Some("10.0"));

    let answer =
        post_form(&client, &url(&simulator, Route::KnowledgeBase, "action=list"), "details=All&ids=38170,6-7").await;
    let served: Vec<&str> = answer
        .document()
        .expect_child("RESPONSE")
        .expect_child("VULN_LIST")
        .children("VULN")
        .filter_map(|vuln| vuln.text_of("QID"))
        .collect();
    assert_eq!(served, ["6", "38170"], "KnowledgeBase order; unknown QIDs left out");
    let mut asked = qids.clone();
    asked.extend([38170, 6, 7]);
    assert_eq!(simulator.knowledge_base_qids_requested(), asked);
    assert_eq!(simulator.requests_received(Route::KnowledgeBase), 2);

    let query = "action=list&details=All&last_modified_after=2024-01-01T00:00:00Z";
    let answer = get(&client, &url(&simulator, Route::KnowledgeBase, query)).await;
    let served: BTreeSet<&str> = answer
        .document()
        .expect_child("RESPONSE")
        .expect_child("VULN_LIST")
        .children("VULN")
        .filter_map(|vuln| vuln.text_of("QID"))
        .collect();
    let expected: BTreeSet<String> = dataset
        .knowledge_base()
        .iter()
        .filter(|vuln| vuln.last_modified >= "2024-01-01T00:00:00Z")
        .map(|vuln| vuln.qid.to_string())
        .collect();
    assert_eq!(served, expected.iter().map(String::as_str).collect());
    assert!(!expected.is_empty() && expected.len() < dataset.knowledge_base().len());
}

#[tokio::test]
async fn wrong_parameters_answer_400_with_qualys_codes() {
    let (simulator, client) = start(sized(10, 2)).await;
    let cases = [
        (Route::Detections, "action=list&severities=5", 1901, "Unrecognized parameter(s): severities"),
        (Route::Detections, "ids=1", 1903, "Missing required parameter(s): action"),
        (Route::Detections, "action=list&status=Closed", 1905, "parameter status has invalid value: Closed"),
        (
            Route::Detections,
            "action=list&vm_processed_after=yesterday",
            1905,
            "parameter vm_processed_after has invalid value: yesterday",
        ),
        (Route::HostList, "action=list&details=All", 1905, "parameter details has invalid value: All"),
        (Route::KnowledgeBase, "action=list", 1903, "Missing required parameter(s): details"),
    ];
    for (route, query, code, text) in cases {
        let answer = get(&client, &url(&simulator, route, query)).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(answer.simple_return(), (code, text.to_owned()));
    }
    assert!(simulator.detection_requests().is_empty());
    let answer = get(&client, &format!("{}/api/2.0/fo/scan/?action=list", simulator.base_url)).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(answer.document().name, "SIMPLE_RETURN");
}
