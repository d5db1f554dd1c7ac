//! `vulnflow normalize`: one scanner export chunk (Tenable) or answer page (Qualys) in,
//! the public finding (or asset) records out, as the pipeline's NormalizeChunk stage
//! writes them.

use std::collections::{BTreeSet, HashMap};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use vulnflow_shared::model::{Finding, FindingState, NormalizedRecord, OsCategory, Severity};
use vulnflow_shared::normalize::{ChunkError, NormalizedAsset};
use vulnflow_shared::scanners::qualys::knowledge_base::{self, KnowledgeEntry};
use vulnflow_shared::scanners::qualys::normalize as qualys;
use vulnflow_shared::scanners::tenable::normalize as tenable;

use crate::error::CliError;
use crate::output::plural;

#[derive(Args)]
pub struct NormalizeArgs {
    /// The scanner the input comes from.
    #[arg(long, value_enum)]
    source: Source,
    /// What to print: findings, or the assets (Tenable: of an assets export chunk;
    /// Qualys: the hosts of the page).
    #[arg(long, value_enum, default_value_t = Kind::Vulns)]
    kind: Kind,
    /// The input file, or `-` for stdin: a Tenable export chunk (the JSON array the
    /// export API returns) or a Qualys Host List Detection page (the XML the API returns).
    #[arg(long, value_name = "FILE")]
    input: PathBuf,
    /// Qualys findings only: a KnowledgeBase page (the XML the API returns) giving the
    /// findings their titles, CVEs, CVSS scores and solutions. Without it a finding's
    /// title is `QID <qid>`.
    #[arg(long, value_name = "FILE")]
    knowledge_base: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Source {
    Tenable,
    Qualys,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Kind {
    /// Findings: of a vulnerability export chunk, or of a Qualys page's detections.
    Vulns,
    /// Assets: of an asset export chunk, or of a Qualys page's hosts.
    Assets,
}

impl Source {
    /// What `--input` must hold for `kind`, as advice says it.
    fn expected_input(self, kind: Kind) -> &'static str {
        match (self, kind) {
            (Source::Tenable, Kind::Vulns) => "one chunk of a vulns export, as the export API returns it",
            (Source::Tenable, Kind::Assets) => "one chunk of an assets export, as the export API returns it",
            (Source::Qualys, _) => "one Host List Detection page, as the API returns it",
        }
    }

    /// What to do about a record the normalizer refused.
    fn record_advice(self) -> &'static str {
        match self {
            Source::Tenable => "fix the record or re-export the chunk",
            Source::Qualys => "fix the record or fetch the page again",
        }
    }
}

pub fn run(args: &NormalizeArgs) -> Result<(), CliError> {
    let knowledge = match (&args.knowledge_base, args.source, args.kind) {
        (None, ..) => HashMap::new(),
        (Some(path), Source::Qualys, Kind::Vulns) => read_knowledge_base(path)?,
        (Some(_), ..) => {
            return Err(CliError::Usage(
                "--knowledge-base describes Qualys findings: it goes with --source qualys --kind vulns".to_owned(),
            ));
        }
    };
    let (input_name, bytes) = read_input(&args.input)?;
    // The whole input is validated before anything is written, so a bad one leaves
    // stdout empty rather than half-written.
    let unusable = |error: ChunkError| {
        let advice = match error {
            ChunkError::Record(_) => args.source.record_advice().to_owned(),
            ChunkError::NotJson(_)
            | ChunkError::NotArray(_)
            | ChunkError::NotXml(_)
            | ChunkError::WrongAnswer { .. } => {
                format!("pass {}", args.source.expected_input(args.kind))
            }
            // The CLI reads its KnowledgeBase from --knowledge-base, never a chunk reference.
            ChunkError::Unwritable(_) | ChunkError::BadReference(_) => {
                "this is a vulnflow fault: report it with the chunk".to_owned()
            }
        };
        CliError::Unusable(format!("cannot normalize {input_name}: {error}; {advice}"))
    };
    match (args.source, args.kind) {
        (Source::Tenable, Kind::Vulns) => {
            print_findings(&tenable::normalize_vulns_chunk(&bytes).map_err(unusable)?, &input_name)?;
        }
        (Source::Tenable, Kind::Assets) => {
            print_assets(&tenable::normalize_assets_chunk(&bytes).map_err(unusable)?, &input_name)?;
        }
        (Source::Qualys, Kind::Vulns) => {
            let records = collected(|keep| qualys::each_detection(&bytes, &knowledge, keep)).map_err(unusable)?;
            print_findings(&records, &input_name)?;
            // The WARNING is paging, never a finding: say where the rest is.
            if let Some(url) = qualys::next_page(&bytes) {
                eprintln!("the page was truncated: the next one is {url}");
            }
        }
        (Source::Qualys, Kind::Assets) => {
            print_assets(&collected(|keep| qualys::each_host(&bytes, keep)).map_err(unusable)?, &input_name)?;
        }
    }
    Ok(())
}

/// The input's name, as messages say it, and its bytes.
fn read_input(input: &Path) -> Result<(String, Vec<u8>), CliError> {
    let (input_name, bytes) = if input.as_os_str() == "-" {
        ("stdin".to_owned(), read_stdin())
    } else {
        (input.display().to_string(), std::fs::read(input))
    };
    let bytes = bytes.map_err(|error| CliError::Usage(format!("cannot read {input_name}: {error}")))?;
    Ok((input_name, bytes))
}

/// The entries of a KnowledgeBase page, by QID.
fn read_knowledge_base(path: &Path) -> Result<HashMap<u64, KnowledgeEntry>, CliError> {
    let (name, bytes) = read_input(path)?;
    let mut entries = HashMap::new();
    knowledge_base::each_entry(&bytes, |entry| {
        entries.insert(entry.qid, entry);
    })
    .map_err(|error| {
        CliError::Unusable(format!(
            "cannot read the KnowledgeBase {name}: {error}; pass one KnowledgeBase page, as the API returns it"
        ))
    })?;
    Ok(entries)
}

/// What a streaming normalizer hands on, in order.
fn collected<T>(
    each: impl FnOnce(&mut dyn FnMut(T) -> Result<(), ChunkError>) -> Result<u64, ChunkError>,
) -> Result<Vec<T>, ChunkError> {
    let mut records = Vec::new();
    each(&mut |record| {
        records.push(record);
        Ok(())
    })?;
    Ok(records)
}

fn print_findings(records: &[NormalizedRecord], input_name: &str) -> Result<(), CliError> {
    write_lines(records.iter().map(|record| serde_json::to_string(&record.finding)))
        .map_err(|error| CliError::Unusable(format!("cannot write the findings: {error}")))?;
    eprintln!("normalized {} from {input_name} ({})", counted(records), breakdown(records));
    Ok(())
}

fn print_assets(assets: &[NormalizedAsset], input_name: &str) -> Result<(), CliError> {
    write_lines(assets.iter().map(|normalized| serde_json::to_string(&normalized.asset)))
        .map_err(|error| CliError::Unusable(format!("cannot write the assets: {error}")))?;
    eprintln!("normalized {} from {input_name} ({})", plural(assets.len(), "asset"), asset_breakdown(assets));
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
