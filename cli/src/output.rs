//! What the commands print: aligned tables, times, durations and counts. Results go to
//! stdout; progress and notes to stderr, so that stdout can be piped.

use std::io::{self, Write};
use vulnflow_shared::usage::Prices;
use vulnflow_shared::usage::Usage;

use chrono::{DateTime, Local, Utc};
use vulnflow_shared::model::RecordCounts;

use crate::error::CliError;

/// Writes `text` to stdout. A reader that stops early (`| head`) is not an error.
pub fn print(text: &str) -> Result<(), CliError> {
    let mut stdout = io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other.map_err(CliError::Output),
    }
}

/// The API's JSON, indented, as `--json` prints it.
pub fn print_json(value: &serde_json::Value) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    print(&format!("{text}\n"))
}

/// Columns padded to their widest cell, two spaces apart.
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Self {
        Table { rows: vec![headers.iter().map(|header| header.to_string()).collect()] }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let width = |column: usize| {
            self.rows.iter().filter_map(|row| row.get(column)).map(|cell| cell.chars().count()).max().unwrap_or(0)
        };
        let widths: Vec<usize> = (0..self.rows[0].len()).map(width).collect();
        let mut text = String::new();
        for row in &self.rows {
            let cells: Vec<String> = row.iter().zip(&widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
            text.push_str(cells.join("  ").trim_end());
            text.push('\n');
        }
        text
    }
}

/// `text`, cut to `width` characters with an ellipsis.
pub fn cut(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let kept: String = text.chars().take(width.saturating_sub(1)).collect();
    format!("{kept}…")
}

/// `2024-03-01 13:30:05 +05:30`: in the reader's zone (`TZ`, else the system's), with
/// its offset; the API and `--json` keep UTC.
pub fn time(at: DateTime<Utc>) -> String {
    at.with_timezone(&Local).format("%Y-%m-%d %H:%M:%S %:z").to_string()
}

/// `13:30:05`: a time of day in the reader's zone, where the day is said elsewhere.
pub fn clock(at: DateTime<Utc>) -> String {
    at.with_timezone(&Local).format("%H:%M:%S").to_string()
}

/// `850 ms`, `12.4 s`, `3 min 5 s`, `2 h 5 min`.
pub fn duration_ms(ms: i64) -> String {
    match ms {
        ..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        _ => seconds(ms / 1000),
    }
}

/// `45 s`, `3 min 5 s`, `2 h 5 min`.
pub fn seconds(seconds: i64) -> String {
    match seconds {
        ..60 => format!("{seconds} s"),
        60..3_600 => format!("{} min {} s", seconds / 60, seconds % 60),
        _ => format!("{} h {} min", seconds / 3_600, (seconds % 3_600) / 60),
    }
}

/// A duration that is null while the thing still runs.
pub fn duration_or_running(ms: Option<i64>) -> String {
    ms.map_or_else(|| "running".to_string(), duration_ms)
}

/// "findings: 120 received, 12 new, ...\nassets: 40 received, ...", every counter
/// listed so the lines read the same for every sync.
pub fn counts(counts: &RecordCounts) -> String {
    format!(
        "findings: {} received, {} new, {} updated, {} unchanged, {} reopened, {} fixed, {} inactivated\n\
         assets: {} received, {} new, {} updated\n",
        counts.findings_received,
        counts.findings_new,
        counts.findings_updated,
        counts.findings_unchanged,
        counts.findings_reopened,
        counts.findings_fixed,
        counts.findings_inactivated,
        counts.assets_received,
        counts.assets_new,
        counts.assets_updated,
    )
}

/// What a sync consumed, in units and at list prices.
pub fn usage(usage: &Usage) -> String {
    let cost = usage.cost(&Prices::default());
    format!(
        "consumed: DynamoDB {:.1} read and {:.1} write units, {} function invocations ({:.1} GB-s), {} S3 requests: ${:.4} at list prices",
        usage.read_units(),
        usage.write_units(),
        usage.lambda_invocations,
        usage.lambda_mb_milliseconds as f64 / 1024.0 / 1000.0,
        usage.s3_puts + usage.s3_gets,
        cost.total_usd
    )
}

/// "12 new, 3 fixed": what changed in the findings, or "no change".
pub fn finding_changes(counts: &RecordCounts) -> String {
    let changes: Vec<String> = [
        (counts.findings_new, "new"),
        (counts.findings_updated, "updated"),
        (counts.findings_reopened, "reopened"),
        (counts.findings_fixed, "fixed"),
        (counts.findings_inactivated, "inactivated"),
    ]
    .into_iter()
    .filter(|(count, _)| *count > 0)
    .map(|(count, what)| format!("{count} {what}"))
    .collect();
    if changes.is_empty() { "no change".to_string() } else { changes.join(", ") }
}

pub fn plural(count: usize, noun: &str) -> String {
    if count == 1 { format!("1 {noun}") } else { format!("{count} {noun}s") }
}
