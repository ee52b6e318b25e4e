//! The `presenced` binary: parse the command line, start tracing, run.

use clap::Parser;

/// mimalloc instead of the system allocator: allocation was about a sixth
/// of the CPU time of a getPresence under load with glibc malloc, and
/// mimalloc gives freed memory back to the system (glibc kept the peak of
/// a connection flood resident).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = presenced::cli::Cli::parse();
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(cli.log_filter());
    match cli.log_format {
        presenced::cli::LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        presenced::cli::LogFormat::Json => logs.json().init(),
    }
    match presenced::cli::run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("presenced: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
