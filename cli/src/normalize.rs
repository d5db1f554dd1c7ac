//! `vulnflow normalize`: one scanner export chunk in, the public finding (or asset)
//! records out, as the pipeline's NormalizeChunk stage writes them.

use std::collections::BTreeSet;
use std::io::{self, Read, Write};
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use vulnflow_shared::model::{Finding, FindingState, NormalizedRecord, OsCategory, Severity};
use vulnflow_shared::normalize::{ChunkError, NormalizedAsset, tenable};

use crate::error::CliError;
use crate::output::plural;

#[derive(Args)]
pub struct NormalizeArgs {
    /// The scanner the chunk comes from.
    #[arg(long, value_enum)]
    source: Source,
    /// The export the chunk comes from.
    #[arg(long, value_enum, default_value_t = Kind::Vulns)]
    kind: Kind,
    /// The chunk file (the JSON array the export API returns), or `-` for stdin.
    #[arg(long, value_name = "FILE")]
    input: PathBuf,
}

#[derive(Clone, Copy, ValueEnum)]
enum Source {
    Tenable,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Kind {
    /// A vulnerability export chunk: prints findings.
    Vulns,
    /// An asset export chunk: prints assets.
    Assets,
}

impl Kind {
    fn export(self) -> &'static str {
        match self {
            Kind::Vulns => "a vulns export",
            Kind::Assets => "an assets export",
        }
    }
}

pub fn run(args: &NormalizeArgs) -> Result<(), CliError> {
    let (input_name, bytes) = if args.input.as_os_str() == "-" {
        ("stdin".to_owned(), read_stdin())
    } else {
        (args.input.display().to_string(), std::fs::read(&args.input))
    };
    let bytes = bytes.map_err(|error| CliError::Usage(format!("cannot read {input_name}: {error}")))?;
    // The whole chunk is validated before anything is written, so a bad chunk leaves
    // stdout empty rather than half-written.
    let unusable = |error: ChunkError| {
        let advice = match error {
            ChunkError::Record(_) => "fix the record or re-export the chunk".to_owned(),
            ChunkError::NotJson(_)
            | ChunkError::NotArray(_)
            | ChunkError::NotXml(_)
            | ChunkError::WrongAnswer { .. } => {
                format!("pass one chunk of {}, as the export API returns it", args.kind.export())
            }
            ChunkError::Unwritable(_) => "this is a vulnflow fault: report it with the chunk".to_owned(),
        };
        CliError::Unusable(format!("cannot normalize {input_name}: {error}; {advice}"))
    };
    match (args.source, args.kind) {
        (Source::Tenable, Kind::Vulns) => {
            let records = tenable::normalize_vulns_chunk(&bytes).map_err(unusable)?;
            write_lines(records.iter().map(|record| serde_json::to_string(&record.finding)))
                .map_err(|error| CliError::Unusable(format!("cannot write the findings: {error}")))?;
            eprintln!("normalized {} from {input_name} ({})", counted(&records), breakdown(&records));
        }
        (Source::Tenable, Kind::Assets) => {
            let assets = tenable::normalize_assets_chunk(&bytes).map_err(unusable)?;
            write_lines(assets.iter().map(|normalized| serde_json::to_string(&normalized.asset)))
                .map_err(|error| CliError::Unusable(format!("cannot write the assets: {error}")))?;
            eprintln!("normalized {} from {input_name} ({})", plural(assets.len(), "asset"), asset_breakdown(&assets));
        }
    }
    Ok(())
}

fn read_stdin() -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    io::stdin().lock().read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// One JSON record per line. A reader that stops early (`| head`) is not an error.
fn write_lines(lines: impl IntoIterator<Item = serde_json::Result<String>>) -> io::Result<()> {
    let mut stdout = io::BufWriter::new(io::stdout().lock());
    let written = lines.into_iter().try_for_each(|line| {
        let line = line?;
        writeln!(stdout, "{line}")
    });
    match written.and_then(|()| stdout.flush()) {
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// "120 findings on 12 assets".
fn counted(records: &[NormalizedRecord]) -> String {
    let assets: BTreeSet<&str> = records.iter().map(|record| record.asset.asset_id.as_str()).collect();
    format!("{} on {}", plural(records.len(), "finding"), plural(assets.len(), "asset"))
}

/// "severity: 3 critical, 10 high, ...; state: 100 open, ...", every level listed so
/// the line reads the same for every chunk.
fn breakdown(records: &[NormalizedRecord]) -> String {
    let severities = tally(
        records,
        &[
            (Severity::Critical, "critical"),
            (Severity::High, "high"),
            (Severity::Medium, "medium"),
            (Severity::Low, "low"),
            (Severity::Info, "info"),
        ],
        |finding| finding.severity,
    );
    let states = tally(
        records,
        &[(FindingState::Open, "open"), (FindingState::Reopened, "reopened"), (FindingState::Fixed, "fixed")],
        |finding| finding.state,
    );
    format!("severity: {severities}; state: {states}")
}

/// "3 critical, 10 high": how many findings have each level, in the order given.
fn tally<Level: PartialEq>(
    records: &[NormalizedRecord],
    levels: &[(Level, &str)],
    level_of: impl Fn(&Finding) -> Level,
) -> String {
    let counts: Vec<String> = levels
        .iter()
        .map(|(level, name)| {
            let count = records.iter().filter(|record| level_of(&record.finding) == *level).count();
            format!("{count} {name}")
        })
        .collect();
    counts.join(", ")
}

/// "os: 2 windows_server, 0 windows_workstation, 3 linux, ...; 1 deleted", every OS
/// category listed (by its name in the JSON) so the line reads the same for every chunk.
fn asset_breakdown(assets: &[NormalizedAsset]) -> String {
    let categories: Vec<String> = [
        (OsCategory::WindowsServer, "windows_server"),
        (OsCategory::WindowsWorkstation, "windows_workstation"),
        (OsCategory::Linux, "linux"),
        (OsCategory::Macos, "macos"),
        (OsCategory::NetworkDevice, "network_device"),
        (OsCategory::Other, "other"),
    ]
    .iter()
    .map(|(category, name)| {
        let count = assets.iter().filter(|normalized| normalized.asset.os_category == *category).count();
        format!("{count} {name}")
    })
    .collect();
    let deleted = assets.iter().filter(|normalized| normalized.deleted).count();
    format!("os: {}; {deleted} deleted", categories.join(", "))
}
