//! A running sync's progress on stderr: a live bar on a terminal; elsewhere (CI logs,
//! files) one plain line each time something changes, so logs stay readable.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::output;
use crate::wire::JobStatusView;

/// Before the export announced its chunks: nothing to count yet.
const WAITING: &str = "{spinner} {prefix:<16} {msg}";
const COUNTING: &str = "{spinner} {prefix:<16} [{wide_bar}] {pos}/{len} chunks  {msg}";

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .map(|style| style.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

pub enum Progress {
    Bar(ProgressBar),
    Lines {
        /// The last line printed, to print only changes.
        last: Option<String>,
    },
}

impl Progress {
    pub fn start() -> Self {
        if !std::io::stderr().is_terminal() {
            return Progress::Lines { last: None };
        }
        let bar = ProgressBar::new(0).with_style(style(WAITING));
        bar.enable_steady_tick(Duration::from_millis(120));
        Progress::Bar(bar)
    }

    pub fn show(&mut self, status: &JobStatusView) {
        match self {
            Progress::Bar(bar) => {
                // The values first, then the layout that shows them.
                bar.set_prefix(stage(status));
                if status.chunks.total == 0 {
                    bar.set_message(format!("{}: no chunks yet", status.status));
                    bar.set_style(style(WAITING));
                } else {
                    bar.set_length(status.chunks.total);
                    bar.set_position(status.chunks.processed);
                    let more = if status.total_is_final { "" } else { "  more chunks to come" };
                    bar.set_message(format!("{}%{more}  {}", status.percent, eta(status)));
                    bar.set_style(style(COUNTING));
                }
            }
            Progress::Lines { last } => {
                // The ETA moves on every poll: it alone is no change.
                let line = line(status);
                if last.as_deref() != Some(&line) {
                    match eta(status) {
                        eta if eta.is_empty() => eprintln!("{line}"),
                        eta => eprintln!("{line}  {eta}"),
                    }
                    *last = Some(line);
                }
            }
        }
    }

    /// Takes the bar away, so that what follows starts on a clean line.
    pub fn finish(self) {
        if let Progress::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

/// "DELEGATED  Processing  2/4 chunks (50%)", with failed chunks when there are, and
/// "2/4+" while an export has yet to tell its chunks.
fn line(status: &JobStatusView) -> String {
    let chunks = status.chunks;
    let failed = match chunks.failed {
        0 => String::new(),
        failed => format!(", {failed} failed"),
    };
    let more = if status.total_is_final { "" } else { "+" };
    format!(
        "{}  {}  {}/{}{more} chunks ({}%{failed})",
        status.status,
        stage(status),
        chunks.processed,
        chunks.total,
        status.percent
    )
}

fn stage(status: &JobStatusView) -> String {
    status.current_stage.map_or_else(|| "-".to_string(), |stage| stage.to_string())
}

/// "ETA 3 min 5 s"; nothing before the API has an estimate.
fn eta(status: &JobStatusView) -> String {
    match status.eta_seconds {
        Some(_) if status.likely_stalled => "ETA over 4 h: likely stalled".to_string(),
        Some(seconds) => format!("ETA {}", output::seconds(seconds as i64)),
        None => String::new(),
    }
}
