//! The command line: `sync`, `plan`, `check`, `run`, `status`, `probe`, `render`, `demo`.
//!
//! Exit codes: 0 everything converged (or would); 1 something failed, was refused or a camera
//! was rejected; 2 the config or the inventory could not be used at all.

use crate::output::{out, outln};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::app::{AppError, LedgerMode, load_inventory, reconciler};
use crate::config::process_env;
use crate::config::{self, Config, DEFAULT_CONFIG_PATH};
use crate::reconcile::report::SyncReport;
use crate::source::Rejection;

#[derive(Debug, Parser)]
#[command(
    name = "camsync",
    version,
    about = "Keeps go2rtc and MediaMTX in step with your camera list"
)]
pub struct Cli {
    /// The config file.
    #[arg(short, long, global = true, env = "CAMSYNC_CONFIG", default_value = DEFAULT_CONFIG_PATH)]
    pub config: PathBuf,
    /// Log filter: error, warn, info, debug, or a directive such as `camsync=debug`
    /// [default: info for `run`, warn for the other commands].
    #[arg(long, global = true, env = "CAMSYNC_LOG")]
    pub log: Option<String>,
    /// Log format: text (for people) or json (one object per line, for log collectors).
    #[arg(long, global = true, env = "CAMSYNC_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Converge every target once; exit non-zero if anything failed.
    Sync(ApplyArgs),
    /// Show what `sync` would do; write nothing.
    Plan(ApplyArgs),
    /// Validate the config and the camera inventory, listing every problem.
    Check(OutputArgs),
    /// Run as a daemon: watch the inventory, resync periodically, apply changes, serve the
    /// HTTP API.
    Run(GuardArgs),
    /// Ask a running daemon how every camera stands on every target.
    Status(StatusArgs),
    /// Check every camera's path on every target now: the server's API, then a DESCRIBE
    /// through its RTSP proxy; print each verdict and latency.
    Probe(ProbeArgs),
    /// Print the file a file target (kind go2rtc-file or mediamtx-file) would hold after a
    /// sync; writes nothing but the optional env file (for init containers and GitOps).
    Render(RenderArgs),
    /// Sync a sample inventory into built-in simulators and show each step.
    Demo,
}

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// Only these cameras (default: all).
    pub names: Vec<String>,
    /// How long one probe may take; longer than the servers' own dial time.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "15s")]
    pub timeout: std::time::Duration,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The daemon's API, e.g. http://127.0.0.1:9180 [default: from the config's api.listen].
    #[arg(long)]
    pub api: Option<String>,
    /// How long to wait for the daemon's answer.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    pub timeout: std::time::Duration,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// The name of a file target in the config.
    pub target: String,
    /// go2rtc-file: also write the `${VAR}` values the file refers to into this env file (0600).
    #[arg(long)]
    pub env_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub guard: GuardArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct GuardArgs {
    /// Allow a plan to delete more than half (or all) of the streams camsync owns on a target.
    #[arg(long)]
    pub allow_mass_delete: bool,
}

#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Runs a parsed command line.
pub async fn run(cli: Cli, shutdown: CancellationToken) -> Result<ExitCode, AppError> {
    match cli.command {
        Command::Sync(args) => sync_or_plan(&cli.config, args, LedgerMode::ReadWrite).await,
        Command::Plan(args) => sync_or_plan(&cli.config, args, LedgerMode::DryRun).await,
        Command::Check(args) => Ok(check(&cli.config, args.output).await),
        Command::Run(guard) => {
            let config = load_config(&cli.config, &guard)?;
            crate::daemon::run(config, shutdown).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Status(args) => status(&cli.config, args).await,
        Command::Probe(args) => probe(&cli.config, args).await,
        Command::Render(args) => render(&cli.config, args).await,
        #[cfg(camsync_demo)]
        Command::Demo => crate::demo::run().await,
        #[cfg(not(camsync_demo))]
        Command::Demo => Err(AppError::Usage(
            "this camsync was built without its simulators; run the demo from a checkout of \
             camsync with `cargo run -- demo` (its .cargo/config.toml sets the cfg camsync_demo; \
             a RUSTFLAGS in the environment replaces it: add `--cfg camsync_demo` there)"
                .to_owned(),
        )),
    }
}

fn load_config(path: &std::path::Path, guard: &GuardArgs) -> Result<Config, AppError> {
    let mut config = config::load(path, &process_env)?;
    config.allow_mass_delete |= guard.allow_mass_delete;
    Ok(config)
}

async fn sync_or_plan(
    path: &std::path::Path,
    args: ApplyArgs,
    mode: LedgerMode,
) -> Result<ExitCode, AppError> {
    let config = load_config(path, &args.guard)?;
    // A sync writes: not beside a daemon (or another sync) on the same ledger.
    let _lock = match mode {
        LedgerMode::ReadWrite => Some(crate::ledger::LedgerLock::acquire(&config.state)?),
        LedgerMode::DryRun => None,
    };
    let inventory = load_inventory(&config).await?;
    let reconciler = reconciler(&config, mode)?;
    let report = match mode {
        LedgerMode::ReadWrite => reconciler.sync(&inventory).await,
        LedgerMode::DryRun => reconciler.plan(&inventory).await,
    };
    print_report(&report, args.output.output);
    Ok(exit_code(report.ok()))
}

async fn status(path: &std::path::Path, args: StatusArgs) -> Result<ExitCode, AppError> {
    let config = config::load(path, &process_env)?;
    let base = args
        .api
        .unwrap_or_else(|| crate::status::base_url(config.api.listen));
    let doc = crate::status::fetch(&base, config.api.token.as_ref(), args.timeout).await?;
    match args.output.output {
        OutputFormat::Text => out!("{}", crate::status::render_text(&doc)),
        OutputFormat::Json => print_json(&doc),
    }
    Ok(exit_code(crate::status::all_well(&doc)))
}

async fn probe(path: &std::path::Path, args: ProbeArgs) -> Result<ExitCode, AppError> {
    use crate::health::check::{self, CheckedTarget, Verdict};
    let config = config::load(path, &process_env)?;
    let inventory = load_inventory(&config).await?;
    let unknown: Vec<&str> = args
        .names
        .iter()
        .filter(|n| !inventory.cameras.contains_key(*n))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        return Err(AppError::Usage(format!(
            "no valid camera named {}",
            unknown.join(", ")
        )));
    }
    let cameras: Vec<&crate::camera::Camera> = inventory
        .cameras
        .values()
        .filter(|c| args.names.is_empty() || args.names.contains(&c.name))
        .map(|c| &**c)
        .collect();
    let targets = CheckedTarget::from_config(&config)?;
    let checks = check::check(&targets, &cameras, args.timeout).await;
    match args.output.output {
        OutputFormat::Text => out!("{}", check::render_text(&checks)),
        OutputFormat::Json => print_json(&checks),
    }
    Ok(exit_code(checks.iter().all(|c| {
        matches!(c.verdict, Verdict::Ok | Verdict::NotProbed)
    })))
}

async fn render(path: &std::path::Path, args: RenderArgs) -> Result<ExitCode, AppError> {
    let config = config::load(path, &process_env)?;
    let file_targets: Vec<&str> = config
        .targets
        .iter()
        .filter(|t| t.kind.is_file())
        .map(|t| t.name.as_str())
        .collect();
    let usage = |what: String| {
        AppError::Usage(format!(
            "{what}; file targets in {}: {}",
            path.display(),
            file_targets.join(", ")
        ))
    };
    let Some(target) = config.targets.iter().find(|t| t.name == args.target) else {
        return Err(usage(format!("no target named {:?}", args.target)));
    };
    if !target.kind.is_file() {
        return Err(usage(format!(
            "target {:?} is not a file target",
            args.target
        )));
    }
    let inventory = load_inventory(&config).await?;
    let reconciler = reconciler(&config, LedgerMode::DryRun)?;
    let Some(preview) = reconciler.preview(&args.target, &inventory).await else {
        return Err(usage(format!(
            "target {:?} cannot be rendered",
            args.target
        )));
    };
    out!("{}", preview?.after);
    if let Some(env_file) = &args.env_file {
        let cameras = inventory
            .cameras
            .values()
            .filter(|c| c.wants_target(&args.target))
            .map(|c| &**c);
        let text = crate::target::go2rtc::file::env_file_text(cameras);
        crate::atomic_file::write_private(env_file, text.as_bytes())?;
    }
    for r in &inventory.rejected {
        eprintln!("rejected {r}");
    }
    Ok(exit_code(inventory.rejected.is_empty()))
}

pub fn print_report(report: &SyncReport, format: OutputFormat) {
    match format {
        OutputFormat::Text => out!("{}", report.render_text()),
        OutputFormat::Json => print_json(report),
    }
}

fn print_json(value: &impl Serialize) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => outln!("{text}"),
        Err(e) => eprintln!("cannot encode the report as JSON: {e}"),
    }
}

fn exit_code(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The `check --output json` document.
#[derive(Debug, Serialize)]
struct CheckReport {
    ok: bool,
    config: String,
    /// Valid cameras.
    cameras: usize,
    /// Problems with the config or the inventory file as a whole.
    errors: Vec<String>,
    rejected: Vec<Rejection>,
}

async fn check(path: &std::path::Path, format: OutputFormat) -> ExitCode {
    let mut report = CheckReport {
        ok: false,
        config: path.display().to_string(),
        cameras: 0,
        errors: Vec::new(),
        rejected: Vec::new(),
    };
    match config::load(path, &process_env) {
        Err(e) => report.errors.push(e.to_string()),
        Ok(config) => {
            if let Err(e) = crate::target::from_config(&config.targets) {
                report.errors.push(e.to_string());
            }
            match load_inventory(&config).await {
                Err(e) => report.errors.push(e.to_string()),
                Ok(inventory) => {
                    report.cameras = inventory.cameras.len();
                    report.rejected = inventory.rejected;
                }
            }
        }
    }
    report.ok = report.errors.is_empty() && report.rejected.is_empty();
    match format {
        OutputFormat::Json => print_json(&report),
        OutputFormat::Text => {
            for e in &report.errors {
                outln!("error: {e}");
            }
            for r in &report.rejected {
                outln!("rejected {r}");
            }
            outln!(
                "{}: {} valid camera(s), {} rejected, {} other problem(s)",
                if report.ok { "ok" } else { "problems found" },
                report.cameras,
                report.rejected.len(),
                report.errors.len()
            );
        }
    }
    if !report.errors.is_empty() {
        ExitCode::from(2)
    } else {
        exit_code(report.ok)
    }
}
