//! The `camsync` binary: parses the command line, sets up logging and signals, and maps errors
//! to exit codes. Everything else lives in the library.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

use camsync::cli::{Cli, Command, LogFormat};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = if matches!(cli.command, Command::Run(_)) {
        "info"
    } else {
        "warn"
    };
    let filter = match EnvFilter::try_new(cli.log.as_deref().unwrap_or(default_level)) {
        Ok(filter) => filter,
        Err(e) => {
            eprintln!("error: --log / CAMSYNC_LOG: {e}");
            return ExitCode::from(2);
        }
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .init(),
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let code = runtime.block_on(async {
        let shutdown = CancellationToken::new();
        tokio::spawn(watch_signals(shutdown.clone()));
        match camsync::cli::run(cli, shutdown).await {
            Ok(code) => code,
            Err(e) => {
                // Each of camsync's errors says its cause in its own message (its `source()` is
                // for programs); printing the chain as well would say it twice.
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        }
    });
    // Whatever is still running (a blocking file read, a watcher) must not delay the exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    code
}

/// First SIGINT/SIGTERM: graceful shutdown. Second: exit at once.
async fn watch_signals(shutdown: CancellationToken) {
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("warning: cannot watch SIGTERM: {e}");
                return;
            }
        };
    for round in 0..2 {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
        if round == 0 {
            tracing::info!("shutting down (signal again to exit at once)");
            shutdown.cancel();
        }
    }
    std::process::exit(130);
}
