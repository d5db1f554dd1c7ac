//! `qualys-simulator`: serves a deterministic Qualys VMDR API v2 on 127.0.0.1 for demos.
//! Prints `listening on http://127.0.0.1:PORT` on stdout once ready, a dataset summary on stderr.

use std::ops::RangeInclusive;
use std::str::FromStr;
use std::time::Duration;

use clap::Parser;
use qualys_simulator::{
    CredentialError, DetectionStatus, Faults, FirstCalls, RateLimited, Route, RunningSimulator, ServerErrors,
    SimulatorConfig,
};

#[derive(Parser)]
#[command(version, about = "Simulator of the Qualys VMDR API v2: host list, Host List Detection, KnowledgeBase")]
struct Args {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 8841)]
    port: u16,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[arg(long, default_value_t = 200)]
    hosts: u32,
    #[arg(long, default_value_t = 12)]
    detections_per_host: u32,
    #[arg(long, env = "QUALYS_SIM_USERNAME", default_value = "sim-user", hide_env_values = true)]
    username: String,
    #[arg(long, env = "QUALYS_SIM_PASSWORD", default_value = "sim-password", hide_env_values = true)]
    password: String,
    /// Calls of each route admitted per window.
    #[arg(long, default_value_t = 300)]
    rate_limit: u32,
    #[arg(long, default_value_t = 3600)]
    rate_limit_window_secs: u32,
    /// Calls of each route allowed to run at once.
    #[arg(long, default_value_t = 2)]
    concurrency_limit: u32,
    /// Answer this many calls of --rate-limited-route with 409 code 1965 first.
    #[arg(long)]
    rate_limited_calls: Option<u32>,
    /// all, about, host-list, detections or knowledge-base.
    #[arg(long, default_value = "all")]
    rate_limited_route: RouteArg,
    /// X-RateLimit-ToWait-Sec of the injected 1965 answers.
    #[arg(long, default_value_t = 1)]
    rate_limited_to_wait_secs: u32,
    /// Answer this many calls of --concurrency-limited-route with 409 code 1960 first.
    #[arg(long)]
    concurrency_limited_calls: Option<u32>,
    #[arg(long, default_value = "all")]
    concurrency_limited_route: RouteArg,
    /// Answer every call with the right credentials with 401 and this code:
    /// registration-required (2003) or secure-id-required (2011).
    #[arg(long)]
    credential_error: Option<CredentialError>,
    /// Answer this many calls of --server-error-route with --server-error-status first.
    #[arg(long)]
    server_error_calls: Option<u32>,
    #[arg(long, default_value = "all")]
    server_error_route: RouteArg,
    #[arg(long, default_value_t = 503)]
    server_error_status: u16,
    /// Host ids (`A-B` or `A`) whose detection pages are cut mid-element.
    #[arg(long, value_parser = host_id_range)]
    malformed_detection_hosts: Option<RangeInclusive<u64>>,
    /// Milliseconds every detection page waits before answering.
    #[arg(long)]
    slow_detection_pages_ms: Option<u64>,
    /// Bytes of markup-laden RESULTS in the first detection of the first host.
    #[arg(long)]
    huge_results: Option<usize>,
}

/// A route, or `all`.
#[derive(Clone, Copy)]
struct RouteArg(Option<Route>);

impl FromStr for RouteArg {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if text == "all" { Ok(RouteArg(None)) } else { text.parse().map(|route| RouteArg(Some(route))) }
    }
}

fn host_id_range(text: &str) -> Result<RangeInclusive<u64>, String> {
    let (low, high) = text.split_once('-').unwrap_or((text, text));
    let parse = |id: &str| id.trim().parse::<u64>().map_err(|error| format!("{id:?}: {error}"));
    Ok(parse(low)?..=parse(high)?)
}

impl Args {
    fn faults(&self) -> Faults {
        Faults {
            rate_limited: self.rate_limited_calls.map(|calls| RateLimited {
                first: FirstCalls { calls, route: self.rate_limited_route.0 },
                to_wait_secs: self.rate_limited_to_wait_secs,
            }),
            concurrency_limited: self
                .concurrency_limited_calls
                .map(|calls| FirstCalls { calls, route: self.concurrency_limited_route.0 }),
            credential_error: self.credential_error,
            server_errors: self.server_error_calls.map(|calls| ServerErrors {
                status: self.server_error_status,
                first: FirstCalls { calls, route: self.server_error_route.0 },
            }),
            malformed_detection_hosts: self.malformed_detection_hosts.clone(),
            slow_detection_pages: self.slow_detection_pages_ms.map(Duration::from_millis),
            huge_results: self.huge_results,
        }
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    simulator_kit::init_tracing();
    let args = Args::parse();
    let faults = args.faults();
    let config = SimulatorConfig {
        username: args.username,
        password: args.password,
        seed: args.seed,
        hosts: args.hosts,
        detections_per_host: args.detections_per_host,
        rate_limit: args.rate_limit,
        rate_limit_window_secs: args.rate_limit_window_secs,
        concurrency_limit: args.concurrency_limit,
        faults,
    };
    let simulator = RunningSimulator::start_on_port(config, args.port).await?;
    let dataset = simulator.dataset();
    let detections = dataset.hosts().iter().flat_map(|host| &host.detections);
    let (total, fixed) = detections.fold((0, 0), |(total, fixed), detection| {
        (total + 1, fixed + usize::from(detection.status == DetectionStatus::Fixed))
    });
    eprintln!(
        "dataset (seed {}): {} hosts (ids {:?} to {:?}), {total} detections of {} QIDs; \
         without a status parameter the detection call omits the {fixed} Fixed ones",
        args.seed,
        dataset.hosts().len(),
        dataset.hosts().first().map(|host| host.id),
        dataset.hosts().last().map(|host| host.id),
        dataset.qids().len(),
    );
    simulator_kit::announce_and_serve(&simulator.base_url).await
}
