//! Running a simulator as a binary, for demos.

use tracing_subscriber::EnvFilter;

/// Logs to stderr, at the level `RUST_LOG` sets (`info` without it): stdout carries only what
/// [`announce_and_serve`] prints.
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .init();
}

/// Prints `listening on <base_url>` on stdout, which scripts wait for, then serves until
/// interrupted (Ctrl-C).
pub async fn announce_and_serve(base_url: &str) -> std::io::Result<()> {
    println!("listening on {base_url}");
    tokio::signal::ctrl_c().await
}
