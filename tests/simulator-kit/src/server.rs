//! Serving a simulator's router on 127.0.0.1 until its handle is dropped.

use std::net::Ipv4Addr;

use axum::Router;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A port of 127.0.0.1, bound: its address is known before the router is built, for answers
/// that name the simulator's own URL.
pub struct LocalListener {
    listener: TcpListener,
    base_url: String,
}

impl LocalListener {
    /// Binds the given port of 127.0.0.1 (0 picks a free one).
    pub async fn bind(port: u16) -> std::io::Result<LocalListener> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?;
        let base_url = format!("http://{}", listener.local_addr()?);
        Ok(LocalListener { listener, base_url })
    }

    /// `http://127.0.0.1:<port>`, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Serves `app` in a task of its own until the returned handle is dropped; `name` (e.g.
    /// "tenable simulator") is logged if serving ever fails.
    pub fn serve(self, app: Router, name: &'static str) -> Server {
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(self.listener, app).await {
                tracing::error!(%error, "{name} stopped serving");
            }
        });
        Server { task }
    }
}

/// A router being served: dropping it stops the server.
pub struct Server {
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use axum::routing::get;

    use super::*;

    #[tokio::test]
    async fn serves_on_a_free_port_until_dropped() {
        let listener = LocalListener::bind(0).await.expect("a free port");
        let base_url = listener.base_url().to_owned();
        assert!(base_url.starts_with("http://127.0.0.1:") && !base_url.ends_with('/'), "{base_url}");
        let server = listener.serve(Router::new().route("/ping", get(|| async { "pong" })), "test server");
        let answer = reqwest::get(format!("{base_url}/ping")).await.expect("served");
        assert_eq!(answer.text().await.expect("a body"), "pong");
        drop(server);
        // The aborted task lets its listener go the next time the runtime gets to it.
        let mut refused = false;
        for _ in 0..100 {
            refused = reqwest::get(format!("{base_url}/ping")).await.is_err();
            if refused {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(refused, "still serving once dropped");
    }
}
